"""The local spool: sealed chunks and manifests wait here, durably, until the store has them.

Layout (one folder per call)::

    <spool>/calls/<call_id>/manifest.json          provisional (status "recording") or final
    <spool>/calls/<call_id>/000003@160000.opus     a sealed chunk: sequence @ first frame
    <spool>/calls/<call_id>/000004@320000.opus.part  the chunk being written
    <spool>/calls/<call_id>/.lock                  held (flock) by the process recording it
    <spool>/calls/<call_id>/.uploaded-manifest     SHA-256 of the manifest the store last confirmed
    <spool>/quarantine/<call_id>/...               what could not be repaired, with a reason

The first frame is part of a chunk's spool name so that recovery can place a chunk on the
call's timeline even when the process died before the manifest listed it.

Everything here is private to the user: folders 0700, files 0600 whatever the umask
(``private_files``); recovery also tightens what an older version or another umask left.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import soundfile as sf

from callrec_desktop.audio.encoders import CodecSettings, make_encoder
from callrec_desktop.core.ids import InvalidIdError, validate_call_id
from callrec_desktop.core.manifest import (
    CODECS,
    ChunkEntry,
    EndInfo,
    Manifest,
    ManifestError,
    chunk_file_name,
)
from callrec_desktop.durable import DirLock, fsync_dir, seal_part, sha256_file, write_atomic
from callrec_desktop.private_files import DIR_MODE, make_private, open_private, private_dir, tighten

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
LOCK = ".lock"
UPLOADED = ".uploaded-manifest"
_CHUNK_RE = re.compile(r"^(\d{6})@(\d+)\.(opus|flac)(\.part)?$")
_READ_FRAMES = 4096  # frames per read when decoding a chunk for recovery


@dataclass(frozen=True)
class SpooledChunk:
    seq: int
    first_frame: int
    path: Path
    sealed: bool

    @property
    def codec(self) -> str:
        return _CHUNK_RE.match(self.path.name).group(3)  # type: ignore[union-attr]


def spool_chunk_name(seq: int, first_frame: int, codec: str) -> str:
    return f"{seq:06d}@{first_frame}.{CODECS[codec][1]}"


def parse_chunk_name(path: Path) -> SpooledChunk | None:
    m = _CHUNK_RE.match(path.name)
    if not m:
        return None
    return SpooledChunk(int(m.group(1)), int(m.group(2)), path, sealed=m.group(4) is None)


class CallSpool:
    """One call's folder, owned (locked) by the process recording it."""

    def __init__(self, path: Path, lock: DirLock) -> None:
        self.path = path
        self._lock = lock

    def open_part(self, seq: int, first_frame: int, codec: str):
        """A new ``.part`` file opened exclusive and unbuffered (each encoder write reaches the OS),
        0600. Runs on the recorder thread."""
        part = self.path / (spool_chunk_name(seq, first_frame, codec) + ".part")
        return part, open_private(part, "xb", buffering=0)

    def seal(self, part: Path) -> Path:
        final = part.with_name(part.name[: -len(".part")])
        seal_part(part, final)
        return final

    def write_manifest(self, manifest: Manifest) -> None:
        write_atomic(self.path / MANIFEST, manifest.to_json())

    def release(self) -> None:
        self._lock.release()


@dataclass(frozen=True)
class RecoveryReport:
    interrupted_calls: tuple[str, ...] = ()
    repaired_chunks: tuple[str, ...] = ()
    quarantined: tuple[str, ...] = ()
    # Calls that could not be recovered now (the disk is full, or another write failed):
    # left as they are, consistent, and tried again by the next recovery.
    deferred: tuple[str, ...] = ()


class Spool:
    """The spool folder. Safe to share between processes: every call folder is locked by its owner."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls_dir = root / "calls"
        self.quarantine_dir = root / "quarantine"
        private_dir(self.calls_dir)
        private_dir(self.quarantine_dir)

    # ---- writing side (recorder) ---------------------------------------------------
    def create_call(self, manifest: Manifest) -> CallSpool:
        """Create a call's folder, locked, with its provisional manifest, then make it visible.

        Built under a hidden name and renamed, so a reader never sees a call folder without
        its lock held or without a manifest. If that fails (the disk is full) the hidden folder
        is removed and its lock released before the error is raised, so a caller may try again.
        """
        call_id = validate_call_id(manifest.call_id)
        for _ in range(5):
            tmp = self.calls_dir / f".new-{call_id}-{secrets.token_hex(3)}"
            tmp.mkdir(DIR_MODE)
            make_private(tmp)  # the umask may have taken the owner's bits away
            lock = DirLock(tmp / LOCK)
            try:
                if lock.acquire():
                    break
            except FileNotFoundError:
                pass
            # A recovery in another process took the folder for a dead one between our mkdir and
            # our lock (it locks, then removes it): start again under a new name.
        else:
            raise RuntimeError(f"could not lock a new spool folder in {self.calls_dir}")
        final = self.calls_dir / call_id
        try:
            write_atomic(tmp / MANIFEST, manifest.to_json())
            os.rename(tmp, final)  # the lock follows the inode
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # still locked by us: nobody else is in it
            lock.release()
            raise
        lock.path = final / LOCK
        fsync_dir(self.calls_dir)  # after this the folder is published, whatever fsync says
        return CallSpool(final, lock)

    # ---- reading side (uploader, recovery, status) ----------------------------------
    def call_ids(self) -> list[str]:
        out = []
        for p in sorted(self.calls_dir.iterdir()):
            if p.name.startswith("."):
                continue
            try:
                out.append(validate_call_id(p.name))
            except InvalidIdError:
                log.warning("spool: ignoring a folder that is not a call: %s", p)
        return out

    def call_path(self, call_id: str) -> Path:
        return self.calls_dir / validate_call_id(call_id)

    def manifest_bytes(self, call_id: str) -> bytes | None:
        try:
            return (self.call_path(call_id) / MANIFEST).read_bytes()
        except FileNotFoundError:
            return None

    def chunks(self, call_id: str) -> list[SpooledChunk]:
        out = []
        for p in self.call_path(call_id).iterdir():
            c = parse_chunk_name(p)
            if c is not None:
                out.append(c)
        return sorted(out, key=lambda c: (c.seq, not c.sealed))

    def is_locked(self, call_id: str) -> bool:
        lock = DirLock(self.call_path(call_id) / LOCK)
        if lock.acquire():
            lock.release()
            return False
        return True

    def quarantine(self, path: Path, call_id: str, reason: str) -> Path:
        """Move ``path`` aside with a note saying why. Never deletes."""
        dest_dir = self.quarantine_dir / call_id
        private_dir(dest_dir)
        dest = dest_dir / path.name
        if dest.exists():
            dest = dest_dir / f"{path.name}.{secrets.token_hex(3)}"
        shutil.move(str(path), dest)
        write_atomic(dest.with_name(dest.name + ".reason.txt"), (reason + "\n").encode())
        log.error("spool: quarantined %s: %s", dest, reason)
        return dest

    # ---- crash recovery --------------------------------------------------------------
    def recover(self) -> RecoveryReport:
        """Make the spool consistent after a crash. Touches only calls no live process holds.

        ``.part`` files are repaired into sealed chunks where their audio reads back, else
        quarantined; a call with no end is ended as ``interrupted`` with what survived, ending
        where that ends (``recovered_end``). A call that cannot be recovered now because a
        write fails (the disk is still full) is left consistent and reported as deferred. First,
        files and folders that other users could read (an older version, another umask) are
        made private (logged when there were any). Runs at start-up, on a worker thread.
        """
        # Only what is ours: the spool folder may be one the user named (never chmod a /tmp).
        tighten(self.calls_dir, what="the spool's calls")
        tighten(self.quarantine_dir, what="the spool's quarantine")
        interrupted, repaired, quarantined, deferred = [], [], [], []
        for p in sorted(self.calls_dir.glob(".new-*")):
            lock = DirLock(p / LOCK)
            if not _try_lock(lock):
                continue  # being built right now (or already gone)
            try:  # a process died between mkdir and publishing: no audio yet
                for q in p.iterdir():
                    if q.name not in (LOCK, MANIFEST):
                        quarantined.append(str(self.quarantine(q, p.name.lstrip("."), "left in an unpublished call folder")))
                shutil.rmtree(p)  # still locked, so its creator cannot be writing into it
            finally:
                lock.release()
        for call_id in self.call_ids():
            path = self.call_path(call_id)
            lock = DirLock(path / LOCK)
            if not _try_lock(lock):
                continue  # another process is recording this call right now (or uploaded it meanwhile)
            try:
                self._recover_call(call_id, path, interrupted, repaired, quarantined)
            except OSError as exc:  # disk full: what was done is consistent; the rest waits
                deferred.append(call_id)
                log.error("spool: call %s cannot be recovered now (%s); the next start tries again", call_id, exc)
            finally:
                lock.release()
        return RecoveryReport(tuple(interrupted), tuple(repaired), tuple(quarantined), tuple(deferred))

    def _recover_call(self, call_id, path, interrupted, repaired, quarantined) -> None:
        raw = self.manifest_bytes(call_id)
        try:
            manifest = Manifest.from_json(raw or b"", where=str(path / MANIFEST))
        except ManifestError as exc:
            for c in self.chunks(call_id):
                quarantined.append(str(self.quarantine(c.path, call_id, f"its call has no readable manifest: {exc}")))
            if (path / MANIFEST).exists():
                quarantined.append(str(self.quarantine(path / MANIFEST, call_id, str(exc))))
            shutil.rmtree(path)
            return
        for stale in path.glob("*.rpart"):
            stale.unlink()  # a repair that was itself interrupted; the .part is still there
        settings = CodecSettings(
            codec=manifest.audio.codec, sample_rate=manifest.audio.sample_rate,
            channels=manifest.audio.channels,
            opus_bitrate_per_channel=(manifest.audio.bitrate or 20_000) // manifest.audio.channels,
        )
        for c in self.chunks(call_id):
            if c.sealed:
                continue
            if manifest.status == "complete":
                quarantined.append(str(self.quarantine(c.path, call_id, "unsealed chunk beside a complete manifest")))
                continue
            ok, why = _repair_part(c, settings)
            if ok:
                repaired.append(str(c.path))
            else:
                quarantined.append(str(self.quarantine(c.path, call_id, f"could not be repaired: {why}")))
        if manifest.status == "complete":
            return
        listed = {e.seq: e for e in manifest.chunks}
        entries = []
        for c in self.chunks(call_id):
            if not c.sealed:
                continue
            entry = listed.get(c.seq)
            size, sha = sha256_file(c.path)
            if entry is not None and (entry.bytes, entry.sha256) != (size, sha):
                # Changed after it was sealed and listed: never re-list it under its new checksum.
                # Its entry stays, so the loss shows up in the store's verify as a missing chunk
                # (what the uploader does with such a chunk too).
                quarantined.append(str(self.quarantine(
                    c.path, call_id, f"sealed chunk differs from its manifest entry ({size} bytes, sha256 {sha}; "
                                     f"manifest says {entry.bytes} bytes, sha256 {entry.sha256})")))
                continue
            if entry is None:
                frames = _count_frames(c.path)
                if frames is None:
                    quarantined.append(str(self.quarantine(c.path, call_id, "sealed chunk does not decode")))
                    continue
                entry = ChunkEntry(c.seq, c.first_frame, frames, size, sha, chunk_file_name(c.seq, c.codec))
            entries.append(entry)
        # Chunks the manifest lists that are no longer here were uploaded already: keep them.
        here = {e.seq for e in entries}
        entries += [e for e in manifest.chunks if e.seq not in here]
        entries.sort(key=lambda e: e.seq)
        end_frame, pauses = recovered_end(manifest, entries)
        if end_frame < manifest.frames:
            log.warning("spool: call %s: frames %d-%d were captured but never reached the disk whole; "
                        "its recovered manifest ends at frame %d", call_id, end_frame, manifest.frames, end_frame)
        final = replace(
            manifest, status="complete", chunks=tuple(entries), pauses=pauses, frames=end_frame,
            ended_at=manifest.started_at + timedelta(seconds=end_frame / manifest.audio.sample_rate),
            end=EndInfo("interrupted", "system"), recovered=True,
        )
        write_atomic(path / MANIFEST, final.to_json())
        interrupted.append(call_id)
        log.warning("spool: call %s had no end; recovered as interrupted with %d chunks", call_id, len(entries))


def recovered_end(manifest: Manifest, chunks: list[ChunkEntry]) -> tuple[int, tuple]:
    """Where a call recovered after a crash ends, and its pauses clipped to that end.

    Only what exists is claimed: the end is the end of the last chunk that survived (a
    repaired ``.part`` counts up to the last frame it really holds), carried on through a
    pause that begins there (the call was paused when it died: the pause is closed at the
    provisional manifest's last frame, by "system"). Frames after that were captured but
    never reached the disk, so they are not part of the recording; a pause that begins after
    the end is dropped (the timeline stops before it). Pure."""
    end = max((e.first_frame + e.frames for e in chunks), default=0)
    pauses = []
    for p in sorted(manifest.pauses, key=lambda p: p.offset_frames):
        if p.offset_frames > end:
            break
        if p.end_source is None:  # open when the process died: it lasted up to the last frame gated
            until = max(manifest.frames, p.offset_frames)
            p = replace(p, duration_frames=until - p.offset_frames, end_source="system",
                        wall_seconds=round((until - p.offset_frames) / manifest.audio.sample_rate, 3))
        pauses.append(p)
        end = max(end, p.offset_frames + p.duration_frames)
    return end, tuple(pauses)


def _try_lock(lock: DirLock) -> bool:
    """Take ``lock`` if nobody holds it; False if someone does or its folder was just removed."""
    try:
        return lock.acquire()
    except FileNotFoundError:
        return False


def _read_frames(path: Path) -> np.ndarray | None:
    """All audio that decodes from ``path``, stopping at the first error (a torn last page).

    A FLAC ``.part`` left by a kill claims 2^63 frames, and the read that runs into its torn
    end raises ("Internal psf_fseek() failed") *after* decoding what it could into the
    buffer: soundfile then drops the whole read, up to a FLAC block (256 ms) of good audio,
    or all of it when the file holds one complete block. So each read goes into a buffer
    pre-filled with NaN (no decoder yields NaN) and, on an error, the decoded prefix is kept.
    """
    blocks = []
    try:
        with sf.SoundFile(path) as f:
            while True:
                buf = np.full((_READ_FRAMES, f.channels), np.nan, dtype=np.float32)
                try:
                    block = f.read(_READ_FRAMES, dtype="float32", always_2d=True, out=buf)
                except (sf.LibsndfileError, RuntimeError):
                    decoded = ~np.isnan(buf).any(axis=1)
                    kept = _READ_FRAMES if decoded.all() else int(np.argmin(decoded))
                    if kept:
                        blocks.append(buf[:kept])
                    break
                if len(block) == 0:
                    break
                blocks.append(block.copy())
    except (sf.LibsndfileError, RuntimeError):
        return None
    if not blocks:
        return None
    return np.concatenate(blocks)


def _count_frames(path: Path) -> int | None:
    data = _read_frames(path)
    return None if data is None else len(data)


def _repair_part(chunk: SpooledChunk, settings: CodecSettings) -> tuple[bool, str]:
    """Re-encode what decodes from a ``.part`` into a sealed chunk; remove the ``.part`` after."""
    data = _read_frames(chunk.path)
    if data is None:
        return False, "no audio decodes from it (torn header or empty)"
    if data.shape[1] != settings.channels:
        return False, f"it has {data.shape[1]} channels, the call has {settings.channels}"
    final = chunk.path.with_name(chunk.path.name[: -len(".part")])
    tmp = final.with_name(final.name + ".rpart")
    try:
        with open_private(tmp, "xb") as out:
            enc = make_encoder(out, settings)
            enc.write(data)
            enc.close()
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)  # the .part stays: a later recovery repairs it
        raise
    seal_part(tmp, final)
    chunk.path.unlink()
    fsync_dir(final.parent)
    log.warning("spool: repaired %s into %s (%d frames)", chunk.path.name, final.name, len(data))
    return True, ""
