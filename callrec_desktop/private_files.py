"""Files private to the user who runs the program, whatever the umask.

The spool (chunks, manifests with caller numbers), the embedded store, the catalogue, the
logs, the settings, lock files and exports hold personal data. Under the usual umask 022 a
plain ``open(path, "w")`` or ``mkdir`` makes them readable by every user of the PC, so every
place that creates one goes through here:

- ``private_dir(path)``: create missing folders 0700;
- ``open_private(path, mode)``: open for writing a file that is (or becomes) 0600;
- ``private_fd(path, flags)``: the same for ``os.open``-style callers;
- ``tighten(root)``: once at start-up, take group and other permissions away from files and
  folders that already exist (written by an older version, or under another umask).

The modes are set with ``fchmod``/``chmod`` after creation, so a umask that takes away even
the owner's bits (``0o277``) cannot leave a file that is unreadable or world-readable.

Windows has no POSIX modes (``os.chmod`` only toggles read-only): there these functions only
create and open, and privacy comes from where the files live: under the user's profile
(``%LOCALAPPDATA%`` via platformdirs), whose ACL grants only the user, SYSTEM and
Administrators. See the README's "File permissions".

No Qt; safe on any thread (each call is independent; nothing here keeps state).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import sys
from pathlib import Path

log = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700
POSIX = sys.platform != "win32"
# chmod of our own file fails with these only where the filesystem has no POSIX modes (a
# CIFS share without Unix extensions, FAT): its mount options decide, and we go on.
_NO_MODES = {errno.EPERM, errno.EROFS, getattr(errno, "ENOTSUP", errno.EPERM), getattr(errno, "EOPNOTSUPP", errno.EPERM)}

_WRITE_FLAGS = {
    "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "x": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
    "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
}


def private_dir(path: Path | str, mode: int = DIR_MODE) -> Path:
    """Make ``path`` a folder, creating each missing folder (parents too) 0700 (or ``mode``).
    Folders that already exist are left as they are (``tighten`` is for those we own).
    Returns ``path``."""
    path = Path(path)
    missing = []
    p = path
    while not p.is_dir():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, mode)
        except FileExistsError:
            if not d.is_dir():
                raise
            continue  # made by someone else meanwhile: not ours to change
        set_mode(d, mode)  # the umask may have taken owner bits away
    return path


def private_fd(path: Path | str, flags: int, mode: int = FILE_MODE) -> int:
    """``os.open(path, flags, 0o600)`` and, if the file is ours and not already 0600, make it
    so (a file created under an odd umask, or an existing one opened with ``O_TRUNC``).
    ``mode``: another mode for a store shared with a group (``shared_modes``)."""
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), mode)
    if POSIX:
        try:
            _fchmod(fd, mode)
        except BaseException:
            os.close(fd)
            raise
    return fd


def open_private(path: Path | str, mode: str = "xb", *, buffering: int = -1, encoding: str | None = None,
                 errors: str | None = None, newline: str | None = None, file_mode: int = FILE_MODE):
    """``open(path, mode)`` for writing, the file 0600 whatever the umask.

    ``mode`` is one of ``w``, ``x`` or ``a`` with optional ``b`` and ``+`` (reading-only modes
    are refused: there is nothing to make private). Takes ``open``'s keyword arguments."""
    kind = mode.replace("b", "").replace("+", "").replace("t", "")
    if kind not in _WRITE_FLAGS or len(kind) != 1:
        raise ValueError(f"open_private({path}): mode {mode!r} does not create a file (use w, x or a)")
    flags = _WRITE_FLAGS[kind]
    if "+" in mode:
        flags = (flags & ~os.O_WRONLY) | os.O_RDWR
    flags |= getattr(os, "O_BINARY", 0)  # Windows: no newline translation at the OS level
    fd = private_fd(path, flags, file_mode)
    try:
        return open(fd, mode, buffering=buffering, encoding=encoding, errors=errors, newline=newline)
    except BaseException:
        os.close(fd)
        raise


def make_private(path: Path | str) -> None:
    """chmod one existing file 0600 (or folder 0700) if it is ours and grants more. For files
    another library created (SQLite, libsndfile) right after it created them."""
    if not POSIX:
        return
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid():
        return
    want = DIR_MODE if stat.S_ISDIR(st.st_mode) else FILE_MODE
    if stat.S_IMODE(st.st_mode) != want:
        set_mode(path, want)


def tighten(root: Path | str, *, what: str = "", depth: int | None = None) -> int:
    """Take group and other permissions away from ``root`` and everything below it that this
    user owns (0644 becomes 0600, 0755 becomes 0700; the owner's bits are kept), down to
    ``depth`` levels below ``root`` (None: all; 1: its own entries). Symbolic links are neither followed nor
    changed; files of other users are left alone. Returns how many were changed, and logs
    the count once (naming ``what``) when there were any. A missing ``root`` is not an error.

    Meant for start-up, once per folder (the spool, the catalogue's, the log's and the
    settings' folders); it stats every entry, so run it before a folder grows large, or on a
    worker thread. Errors on single entries are logged and skipped: tightening must never
    stop the recorder from starting."""
    if not POSIX:
        return 0
    root = Path(root)
    changed = 0
    failed: list[str] = []

    def visit(path: str, st: os.stat_result) -> None:
        nonlocal changed
        if st.st_uid != uid:
            return
        is_dir = stat.S_ISDIR(st.st_mode)
        if not (is_dir or stat.S_ISREG(st.st_mode)):
            return  # sockets, FIFOs, devices: not ours to create, not ours to change
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:  # only ever take bits away: 0644 -> 0600, 0755 -> 0700
            try:
                os.chmod(path, mode & 0o700)  # lstat said: not a link
                changed += 1
            except OSError as exc:
                failed.append(f"{path}: {exc.strerror or exc}")

    uid = os.geteuid()
    try:
        st = os.stat(root)  # the root itself may be a link the user configured (a spool on another disk)
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        if stat.S_ISREG(st.st_mode):
            visit(str(root), st)
        return changed
    visit(str(root), st)
    top = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: failed.append(f"{e.filename}: {e.strerror}")):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue  # removed meanwhile
            visit(path, st)
        if depth is not None and len(Path(dirpath).parts) - top + 1 >= depth:
            dirnames[:] = []  # these entries were the last level: do not descend
    label = what or str(root)
    if changed:
        log.warning("made %d existing file(s) and folder(s) in %s (%s) private to this user (0600/0700)",
                    changed, label, root)
    for problem in failed[:5]:
        log.warning("could not make %s private: %s", label, problem)
    return changed


def shared_modes(root_mode: int) -> tuple[int, int]:
    """(file mode, folder mode) for what a program creates below a folder whose mode is
    ``root_mode``: private (0600/0700) plus the group access the folder's owner gave the
    root (a store folder IT shares with a group: files group-readable, folders with the
    root's group bits and set-group-ID). Never anything for other users."""
    group = root_mode & 0o070
    return FILE_MODE | (group & 0o040), DIR_MODE | group | (root_mode & stat.S_ISGID)


def set_mode(path: Path | str, mode: int) -> None:
    """chmod, except where the filesystem has no POSIX modes (then its mount options decide)
    and on Windows (see the module docstring)."""
    if not POSIX:
        return
    try:
        os.chmod(path, mode)
    except OSError as exc:
        if exc.errno not in _NO_MODES:
            raise


def _fchmod(fd: int, mode: int) -> None:
    st = os.fstat(fd)
    if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != mode:
        try:
            os.fchmod(fd, mode)
        except OSError as exc:
            if exc.errno not in _NO_MODES:
                raise


def tighten_at_start(*, log_dir: Path | None, log_file_name: str = "callrec-desktop.log") -> int:
    """Once at the app's start-up (GUI thread, before the window; a few dozen files): make
    private what earlier versions or another umask left readable in the folders that are ours
    alone: the settings folder (``user_config_dir``: settings, window geometry), the cache
    (``user_cache_dir``: the catalogue and waveforms), the log folder when it is the
    platform's default (else only our log files in it), and the data folder itself
    (``user_data_dir``, which holds the default spool and embedded store: 0700 closes both
    without walking a year of recordings; the spool's calls are walked by its recovery).
    In the cache only its own entries are: the catalogue's files and the waveform folder itself,
    not each cached waveform (a 0700 folder already closes them; measured 13 ms per 1000 files
    to walk, on the start-up path). Returns how many entries were changed; each folder with
    changes is logged."""
    import platformdirs

    app = "callrec-desktop"
    changed = tighten(platformdirs.user_config_dir(app, appauthor=False), what="the settings folder")
    changed += tighten(platformdirs.user_cache_dir(app, appauthor=False), what="the catalogue's folder", depth=1)
    data = Path(platformdirs.user_data_dir(app, appauthor=False))
    try:
        before = stat.S_IMODE(os.stat(data).st_mode)
        make_private(data)
        if before & 0o077:
            changed += 1
            log.warning("made the data folder %s private to this user (0700)", data)
    except FileNotFoundError:
        pass
    if log_dir is not None:
        default_logs = Path(platformdirs.user_log_dir(app, appauthor=False))
        if Path(log_dir) == default_logs:
            changed += tighten(log_dir, what="the log folder")
        else:
            for path in sorted(Path(log_dir).glob(f"{log_file_name}*")):
                changed += tighten(path, what="the log files")
    return changed
