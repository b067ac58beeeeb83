"""The folder store: the embedded default. A local folder or a mounted network share.

Each key is a file ``<root>/<key>``. A put is restic's durable-file recipe: a hidden temp
file in the target's own folder, opened with mode ``"xb"``; write while hashing; flush;
fsync; close; check size and SHA-256; atomic ``os.replace``; fsync the folder. A reader never
sees half a file, and a crash leaves at most a ``.<name>.<random>.tmp`` that listings skip.

Files are created 0600 and folders 0700 whatever the umask (recordings are personal data),
plus the group access the root folder gives (a share IT opened to a group: files
group-readable, folders with the root's group bits); never access for other users
(``private_files.shared_modes``).

Reading never follows a symlink and opens only regular files: each folder below the root is
opened with ``O_NOFOLLOW`` relative to the one above (``openat``), so no path component can
lead outside the root; the object itself is opened ``O_NOFOLLOW | O_NONBLOCK`` (a FIFO cannot
hang the reader) and checked with ``fstat`` after opening (a device, FIFO or socket is refused
as ``ObjectRefusedError``, as is a file larger than the reader's ``max_bytes``). Writes refuse
to go through a symlinked folder. Keys with ``..``, absolute keys and the like are refused
before any file system call (``layout.check_relative_key``).

Metadata is not stored here (no sidecar files): everything a reader needs about a recording
is in its manifest, which is itself an object in the store. The S3 store's object metadata
is only a convenience for people browsing a bucket with other tools.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from callrec_desktop.durable import fsync_dir
from callrec_desktop.private_files import private_fd, set_mode, shared_modes
from callrec_desktop.storage.base import (
    ObjectNotFoundError,
    ObjectRefusedError,
    PermanentStoreError,
    PutReceipt,
    StoreError,
    TransientStoreError,
)
from callrec_desktop.storage.layout import InvalidKeyError, check_prefix, check_relative_key

BLOCK_SIZE = 1024 * 1024
MAX_LIST_DEPTH = 8  # folders below the root a listing descends (layout keys use at most 5)
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NOT_ALLOWED = {errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENOTDIR}
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# openat() with O_NOFOLLOW on each component: POSIX. Windows falls back to lstat checks.
_OPENAT = bool(_O_NOFOLLOW and _O_DIRECTORY) and os.open in os.supports_dir_fd


class FolderStore:
    """A store in a folder. ``root`` must already exist: it is never created, because a
    missing root usually means an unmounted network share, and writing into the bare mount
    point would put recordings on the wrong disk."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()
        self.description = f"folder {self.root}"

    def __repr__(self) -> str:
        return f"FolderStore({str(self.root)!r})"

    # ---- put -------------------------------------------------------------------------
    def put(
        self,
        key: str,
        source: Path | bytes,
        *,
        sha256: str,
        metadata: Mapping[str, str],  # not stored: see the module docstring
        content_type: str,
    ) -> PutReceipt:
        target = self._path(key)
        if not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256):
            raise PermanentStoreError(f"{self.description} {key}: expected SHA-256 is not lowercase hex: {sha256!r}")
        file_mode, dir_mode = shared_modes(self._check_root(key).st_mode)
        existing = self._existing_digest(key)
        if existing is not None and existing[1] == sha256:
            # Same bytes already there: a repeated put (retry after a lost reply) is harmless.
            return PutReceipt(key, existing[0], sha256)

        self._make_dirs(target.parent, key, dir_mode)
        self._check_no_links(target.parent, key)
        _sweep_stale_temps(target)
        tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
        try:
            try:
                with open(tmp, "xb", buffering=0, opener=lambda p, flags: private_fd(p, flags, file_mode)) as out:
                    size, digest = self._copy(key, source, out)
                    os.fsync(out.fileno())
            except StoreError:
                raise
            except OSError as exc:
                raise self._os_error(key, "writing", exc) from exc
            if digest != sha256:
                raise PermanentStoreError(
                    f"{self.description} {key}: checksum mismatch: source has SHA-256 {digest} "
                    f"({size} bytes), expected {sha256}; nothing stored")
            try:
                os.replace(tmp, target)
            except OSError as exc:
                raise self._os_error(key, "renaming into place", exc) from exc
        except BaseException:
            _unlink_quietly(tmp)
            raise
        try:
            fsync_dir(target.parent)
        except OSError as exc:
            raise self._os_error(key, "syncing the folder", exc) from exc
        return PutReceipt(key, size, digest)

    def _copy(self, key: str, source: Path | bytes, out) -> tuple[int, str]:
        h = hashlib.sha256()
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            h.update(data)
            _write_all(out, data)
            return len(data), h.hexdigest()
        size = 0
        try:
            src = open(source, "rb")
        except OSError as exc:
            # The local source is gone or unreadable: retrying the store will not help.
            raise PermanentStoreError(f"{self.description} {key}: cannot read source {source}: {exc.strerror or exc}") from exc
        with src:
            while True:
                try:
                    block = src.read(BLOCK_SIZE)
                except OSError as exc:
                    raise PermanentStoreError(f"{self.description} {key}: cannot read source {source}: {exc.strerror or exc}") from exc
                if not block:
                    break
                h.update(block)
                _write_all(out, block)
                size += len(block)
        return size, h.hexdigest()

    def _existing_digest(self, key: str) -> tuple[int, str] | None:
        """(size, SHA-256) of the object already at ``key``, or None. Refuses (permanent) to
        replace anything that is not a regular file: a symlink or FIFO there was not put by us."""
        try:
            fd = self._open_regular(key)
        except ObjectNotFoundError:
            return None
        except ObjectRefusedError as exc:
            raise PermanentStoreError(f"{exc}; not replaced") from None
        h, size = hashlib.sha256(), 0
        try:
            while block := os.read(fd, BLOCK_SIZE):
                h.update(block)
                size += len(block)
        except OSError as exc:
            raise self._os_error(key, "reading the existing object", exc) from exc
        finally:
            os.close(fd)
        return size, h.hexdigest()

    def _check_no_links(self, folder: Path, key: str) -> None:
        """Refuse a write whose folder below the root is, or passes through, a symlink (it would
        land outside the store). Missing folders are fine: ``_make_dirs`` creates them."""
        p = self.root
        for part in folder.relative_to(self.root).parts:
            p = p / part
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                return
            except OSError as exc:
                raise self._os_error(key, "checking folders", exc) from exc
            if stat.S_ISLNK(st.st_mode):
                raise PermanentStoreError(f"{self.description} {key}: {p.relative_to(self.root).as_posix()} is a "
                                          f"symbolic link; the folder store does not follow links")

    # ---- get / list --------------------------------------------------------------------
    def get(self, key: str, *, max_bytes: int | None = None) -> bytes:
        """The bytes of the regular file at ``key`` (see the module docstring for what is
        refused). Runs on the caller's thread; never blocks on a FIFO."""
        self._path(key)  # refuses unsafe keys
        fd = self._open_regular(key)
        try:
            size = os.fstat(fd).st_size
            if max_bytes is not None and size > max_bytes:
                raise ObjectRefusedError(f"{self.description} {key}: object is {size} bytes, more than the "
                                         f"{max_bytes} allowed for it; not read")
            parts, got = [], 0
            while max_bytes is None or got <= max_bytes:  # a file growing while read is cut at the cap
                block = os.read(fd, BLOCK_SIZE if max_bytes is None else min(BLOCK_SIZE, max_bytes + 1 - got))
                if not block:
                    break
                parts.append(block)
                got += len(block)
            if max_bytes is not None and got > max_bytes:
                raise ObjectRefusedError(f"{self.description} {key}: object grew past the {max_bytes} bytes "
                                         f"allowed for it; not read")
            return b"".join(parts)
        except OSError as exc:
            raise self._os_error(key, "reading", exc) from exc
        finally:
            os.close(fd)

    def _open_regular(self, key: str) -> int:
        """A read-only descriptor of the regular file at ``key``, opened without following any
        symlink below the root; ``ObjectNotFoundError`` / ``ObjectRefusedError`` otherwise."""
        parts = key.split("/")
        try:
            if _OPENAT:
                dfd = os.open(self.root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
                try:
                    for i, part in enumerate(parts[:-1]):
                        try:
                            nfd = os.open(part, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=dfd)
                        except OSError as exc:
                            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                                self._refuse_link(dfd, part, key, "/".join(parts[:i + 1]))
                            raise
                        os.close(dfd)
                        dfd = nfd
                    try:
                        fd = os.open(parts[-1], os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC, dir_fd=dfd)
                    except OSError as exc:
                        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                            self._refuse_link(dfd, parts[-1], key, key)
                        if exc.errno == errno.ENXIO:  # a socket
                            raise ObjectRefusedError(f"{self.description} {key}: not a regular file (a socket); "
                                                     f"not read") from None
                        raise
                finally:
                    os.close(dfd)
            else:
                p = self.root
                for part in parts:
                    p = p / part
                    st = os.lstat(p)
                    if stat.S_ISLNK(st.st_mode) or getattr(st, "st_file_attributes", 0) & 0x400:  # reparse point
                        raise ObjectRefusedError(f"{self.description} {key}: {p.relative_to(self.root).as_posix()} "
                                                 f"is a link; the folder store does not follow links")
                fd = os.open(p, os.O_RDONLY | _O_BINARY | _O_NONBLOCK)
        except FileNotFoundError:
            self._check_root(key)
            raise ObjectNotFoundError(f"{self.description} {key}: no such object") from None
        except NotADirectoryError:
            raise ObjectNotFoundError(f"{self.description} {key}: no such object") from None
        except OSError as exc:
            raise self._os_error(key, "opening", exc) from exc
        try:
            mode = os.fstat(fd).st_mode
        except OSError as exc:
            os.close(fd)
            raise self._os_error(key, "opening", exc) from exc
        if not stat.S_ISREG(mode):
            os.close(fd)
            if stat.S_ISDIR(mode):
                raise ObjectNotFoundError(f"{self.description} {key}: no such object (a folder)")
            raise ObjectRefusedError(f"{self.description} {key}: not a regular file ({_kind(mode)}); not read")
        return fd

    def _refuse_link(self, dfd: int, part: str, key: str, rel: str) -> None:
        """Raise ``ObjectRefusedError`` if ``part`` (in the folder ``dfd``) is a symlink."""
        try:
            st = os.lstat(part, dir_fd=dfd)
        except OSError:
            return
        if stat.S_ISLNK(st.st_mode):
            what = "is a symbolic link" if rel == key else f"{rel} is a symbolic link"
            raise ObjectRefusedError(f"{self.description} {key}: {what}; the folder store does not follow links")

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix`` in lexical order, streamed; temp and hidden files skipped."""
        try:
            check_prefix(prefix)
        except InvalidKeyError as exc:
            raise PermanentStoreError(f"{self.description}: {exc}") from None
        self._check_root(prefix)
        start = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
        return self._walk(start, prefix)

    def _walk(self, rel_dir: str, prefix: str) -> Iterator[str]:
        if rel_dir.count("/") >= MAX_LIST_DEPTH:
            # No layout key is this deep: a folder nested past it is not the store's (and a
            # thousand levels would exhaust the recursion of this walk).
            return
        try:
            with os.scandir(self.root / rel_dir if rel_dir else self.root) as it:
                entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it if not e.name.startswith(".")]
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise self._os_error(rel_dir or "/", "listing", exc) from exc
        # Sorting directories as "name/" yields full keys in exact lexical order
        # ("a-c" < "a/b"), the same order S3 lists in.
        entries.sort(key=lambda e: e[0] + "/" if e[1] else e[0])
        for name, is_dir in entries:
            key = rel_dir + name
            if is_dir:
                sub = key + "/"
                if sub.startswith(prefix) or prefix.startswith(sub):
                    yield from self._walk(sub, prefix)
            elif key.startswith(prefix):
                yield key

    # ---- helpers -----------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        try:
            check_relative_key(key)
        except InvalidKeyError as exc:
            raise PermanentStoreError(f"{self.description}: {exc}") from None
        return self.root.joinpath(*key.split("/"))

    def _check_root(self, key: str) -> os.stat_result:
        try:
            st = os.stat(self.root)
        except FileNotFoundError:
            raise TransientStoreError(
                f"{self.description} {key}: store folder not found (network share not mounted?)") from None
        except OSError as exc:
            raise self._os_error(key, "reaching the store folder", exc) from exc
        if not stat.S_ISDIR(st.st_mode):
            raise PermanentStoreError(f"{self.description} {key}: store root is not a folder")
        return st

    def _make_dirs(self, folder: Path, key: str, mode: int = 0o700) -> None:
        """Create missing folders below the root (``mode`` whatever the umask), fsyncing each
        parent so they survive a crash."""
        missing = []
        p = folder
        while p != self.root and not p.is_dir():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            try:
                os.mkdir(d, mode & 0o777)
                set_mode(d, mode)  # the umask took group bits away; set-group-ID needs chmod
            except FileExistsError:
                if not d.is_dir():
                    raise PermanentStoreError(f"{self.description} {key}: {d} exists and is not a folder") from None
                continue
            except OSError as exc:
                raise self._os_error(key, "creating folders", exc) from exc
            try:
                fsync_dir(d.parent)
            except OSError as exc:
                raise self._os_error(key, "syncing the folder", exc) from exc

    def _os_error(self, key: str, doing: str, exc: OSError) -> StoreError:
        what = exc.strerror or str(exc)
        if exc.errno in _DISK_FULL:
            return PermanentStoreError(f"{self.description} {key}: disk full or quota exceeded while {doing} ({what})")
        if exc.errno in _NOT_ALLOWED:
            return PermanentStoreError(f"{self.description} {key}: not allowed while {doing} ({what})")
        # Anything else (EIO, ESTALE, ENOTCONN, EHOSTDOWN...) is most often a network share
        # that went away for a while: worth retrying.
        return TransientStoreError(f"{self.description} {key}: I/O error while {doing} ({what})")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a file"


def _write_all(out, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = out.write(view)  # unbuffered FileIO may write less than asked
        view = view[n:]


STALE_TEMP_SECONDS = 600


def _sweep_stale_temps(target: Path) -> None:
    """Remove temp files a killed put of this same key left behind (older than 10 minutes, so
    a concurrent put by another uploader is never disturbed). They never held a visible object."""
    cutoff = time.time() - STALE_TEMP_SECONDS
    for old in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            continue


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
