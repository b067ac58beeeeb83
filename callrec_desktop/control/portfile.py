"""Where a user's running callrec-desktop publishes its control API port.

On a multi-user PC (a terminal server) every signed-in user runs their own callrec-desktop,
so each needs its own port: the app listens on the first free port from ``[control] port``
up, and writes ``{"port": N, "pid": P, "protocol": "callrec-control-v2"}`` to ``control.json``
in the user's runtime folder, readable by that user only (file 0600 in a 0700 folder on
Linux and macOS; on Windows the folder is under the user's own ``%LOCALAPPDATA%``).
``callrec signal`` and connectors read it to find their own user's instance.

The folder: ``$XDG_RUNTIME_DIR/callrec-desktop`` on Linux (a per-user tmpfs, emptied at
log-out), else ``~/.local/state/callrec-desktop`` (never the shared ``/tmp``); platformdirs'
runtime folder on Windows and macOS.

Nothing in the file is a secret (anyone can try ports): it is private so that one user's
connectors are not pointed at another user's instance. A stale or forged file cannot make a
client trust anything, because the program on the port must still prove it knows the token.

Plain file I/O; any thread.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from callrec_desktop.control.protocol import VERSION

APP_NAME = "callrec-desktop"
FILE_NAME = "control.json"


class PortFileError(Exception):
    """The port file cannot be written or trusted; the message names the file and why."""


@dataclass(frozen=True)
class Published:
    port: int
    pid: int


def default_port_file() -> Path:
    """This user's ``control.json`` (see the module docstring for the folder)."""
    import platformdirs

    if sys.platform in ("win32", "darwin"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about its own fallbacks
            return Path(platformdirs.user_runtime_dir(APP_NAME, appauthor=False)) / FILE_NAME
    # Not platformdirs' runtime folder here: it falls back to /tmp/runtime-UID (which another
    # user could create first) and quietly to that when it dislikes $XDG_RUNTIME_DIR's mode.
    # Our own folder in it is made 0700 and checked (``_private_folder``).
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime):
        return Path(runtime) / APP_NAME / FILE_NAME
    return Path(platformdirs.user_state_dir(APP_NAME, appauthor=False)) / FILE_NAME


def _private_folder(folder: Path) -> None:
    """Create ``folder`` (0700) or check an existing one is this user's and private."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.name != "posix":
        return
    st = folder.stat()
    if st.st_uid != os.getuid():
        raise PortFileError(f"{folder} belongs to another user (uid {st.st_uid}); not publishing the control "
                            f"API port there")
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(folder, 0o700)


def publish(path: Path, port: int) -> None:
    """Write this process's port to ``path`` (0600, atomically: written beside it, then renamed)."""
    try:
        _private_folder(path.parent)
        part = path.with_name(f".{path.name}.{os.getpid()}.part")
        part.unlink(missing_ok=True)
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"port": port, "pid": os.getpid(), "protocol": VERSION}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, path)
    except OSError as exc:
        raise PortFileError(f"cannot write the control API port file {path}: {exc.strerror or exc}") from None


def withdraw(path: Path, port: int) -> None:
    """Remove ``path`` if it still names this process and ``port`` (another instance may have
    replaced it since)."""
    try:
        found = read(path, check_alive=False)
    except PortFileError:
        return
    if found == Published(port, os.getpid()):
        path.unlink(missing_ok=True)


def read(path: Path, *, check_alive: bool = True) -> Published | None:
    """The published port, or None if there is no file (or, with ``check_alive``, its process
    is gone: callrec-desktop was not shut down cleanly). Raises ``PortFileError`` for a file
    that is malformed, another user's, or readable by others."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            raw = f.read(4096)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PortFileError(f"cannot read the control API port file {path}: {exc.strerror or exc}") from None
    if os.name == "posix":
        if st.st_uid != os.getuid():
            raise PortFileError(f"the control API port file {path} belongs to another user (uid {st.st_uid}); "
                                f"not using it")
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise PortFileError(f"the control API port file {path} can be read or written by other users "
                                f"(mode {stat.S_IMODE(st.st_mode):o}); not using it")
    try:
        doc = json.loads(raw.decode("utf-8"))
        port, pid = doc["port"], doc["pid"]
    except (UnicodeDecodeError, ValueError, TypeError, KeyError):
        raise PortFileError(f"the control API port file {path} is not {{\"port\": N, \"pid\": P}} JSON") from None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (port, pid)) or not 1 <= port <= 65535:
        raise PortFileError(f"the control API port file {path} holds port {port!r} and pid {pid!r}: not numbers "
                            f"in range")
    if check_alive and not _alive(pid):
        return None
    return Published(port, pid)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists. POSIX only: on Windows os.kill would end the process,
    so there every file counts as current (a stale one only leads to "nothing answers")."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's (pid reused): the port's proof decides
    return True
