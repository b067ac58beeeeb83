"""Durable files, restic's recipe: write ``NAME.part`` opened with mode ``x``, flush, fsync,
close, atomic rename, fsync the directory. Only then tell anyone the file exists.

Every file made here is private to the user (0600, whatever the umask: ``private_files``)."""

from __future__ import annotations

import hashlib
import os
import secrets
import sys
from pathlib import Path

from callrec_desktop.private_files import open_private, private_fd

HASH_BLOCK = 1 << 20


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable. A no-op where directories can't be opened (Windows)."""
    if sys.platform == "win32":
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a reader sees the old or the new file, never half.
    The new file is 0600 whatever the umask."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open_private(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def seal_part(part: Path, final: Path) -> None:
    """Rename a fully written, fsynced ``.part`` to its final name, durably."""
    os.replace(part, final)
    fsync_dir(final.parent)


def sha256_file(path: Path) -> tuple[int, str]:
    """(size in bytes, SHA-256 hex) of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(HASH_BLOCK):
            h.update(block)
            size += len(block)
    return size, h.hexdigest()


class DirLock:
    """An exclusive, non-blocking advisory lock on ``path`` held while a process owns a call.

    The OS drops it when the process dies (even by SIGKILL), which is how crash recovery tells
    an abandoned call from one that another process is still recording.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = private_fd(self.path, os.O_RDWR | os.O_CREAT)
        try:
            if sys.platform == "win32":
                import msvcrt

                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock on every platform
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None
