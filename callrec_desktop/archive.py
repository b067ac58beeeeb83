"""Reading recordings back from a central store: list, verify, export.

This is the team-leader / IT side: it needs read and list permission on the store, which the
agents' write-only credentials do not have.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import soundfile as sf

from callrec_desktop.audio.encoders import CodecSettings, make_encoder
from callrec_desktop.core.ids import InvalidIdError
from callrec_desktop.core.manifest import MAX_MANIFEST_BYTES, ChunkEntry, Manifest, ManifestError
from callrec_desktop.private_files import open_private
from callrec_desktop.storage.base import (
    ObjectNotFoundError,
    PermanentStoreError,
    Store,
    TransientStoreError,
    get_capped,
)
from callrec_desktop.storage.layout import call_id_from_manifest_key, chunk_key, manifest_key, manifests_prefix

log = logging.getLogger(__name__)

EXPORT_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16")}
OPUS_SUFFIXES = (".opus", ".ogg")


class ArchiveError(Exception):
    """A recording cannot be read back as asked; the message says which and why."""


@dataclass(frozen=True)
class ManifestProblem:
    key: str
    problem: str


def iter_manifests(store: Store, day: date | None = None) -> Iterator[Manifest | ManifestProblem]:
    """Every manifest under the day's (or every) partition; unreadable ones as problems, never
    raised, whatever is wrong with them (too big, hostile JSON, a link or FIFO in a folder
    store...). Only an unreachable store (``TransientStoreError``) or a failed listing raises."""
    for key in store.list(manifests_prefix(day)):
        if not key.endswith(".json"):
            continue
        try:
            call_id = call_id_from_manifest_key(key)
            m = Manifest.from_json(get_capped(store, key, MAX_MANIFEST_BYTES), where=key)
            if m.call_id != call_id:
                raise ManifestError(f"{key}: call_id {m.call_id} does not match the key")
        except (ManifestError, InvalidIdError, ValueError, PermanentStoreError) as exc:
            yield ManifestProblem(key, str(exc))
            continue
        except TransientStoreError:
            raise
        except Exception as exc:  # one hostile object must not stop the listing
            yield ManifestProblem(key, f"{type(exc).__name__}: {exc}")
            continue
        yield m


def load_manifest(store: Store, call_id: str) -> Manifest:
    key = manifest_key(call_id)
    try:
        raw = get_capped(store, key, MAX_MANIFEST_BYTES)
    except ObjectNotFoundError:
        raise ArchiveError(f"no recording {call_id} in {store.description} (looked for {key})") from None
    except TransientStoreError:
        raise
    except PermanentStoreError as exc:  # refused: too big, a link or FIFO in a folder store
        raise ArchiveError(str(exc)) from None
    try:
        return Manifest.from_json(raw, where=key)
    except ManifestError as exc:
        raise ArchiveError(str(exc)) from None


def read_chunk(store: Store, manifest: Manifest, entry: ChunkEntry) -> bytes:
    """A chunk's bytes, checked against its manifest entry."""
    key = chunk_key(manifest.call_id, entry.name)
    try:
        data = get_capped(store, key, entry.bytes)  # never more than the manifest says
    except ObjectNotFoundError:
        raise ArchiveError(f"{manifest.call_id}: chunk {entry.seq} is missing ({key})") from None
    except TransientStoreError:
        raise
    except PermanentStoreError as exc:
        raise ArchiveError(f"{manifest.call_id}: chunk {entry.seq} cannot be read: {exc}") from None
    if len(data) != entry.bytes:
        raise ArchiveError(f"{manifest.call_id}: chunk {entry.seq} has {len(data)} bytes, manifest says {entry.bytes} ({key})")
    sha = hashlib.sha256(data).hexdigest()
    if sha != entry.sha256:
        raise ArchiveError(f"{manifest.call_id}: chunk {entry.seq} SHA-256 {sha} does not match the manifest ({key})")
    return data


@dataclass(frozen=True)
class CoverageGap:
    """Frames ``[start, end)`` of a call's timeline that neither a chunk nor a pause covers:
    audio the manifest claims as part of the call but that was never stored."""

    start: int
    end: int

    def describe(self, manifest: Manifest) -> str:
        rate = manifest.audio.sample_rate
        where = "after the last chunk and pause" if self.end == manifest.frames else "between chunks and pauses"
        return (f"{manifest.call_id}: {self.start / rate:.3f}-{self.end / rate:.3f} s "
                f"(frames {self.start}-{self.end}, {(self.end - self.start) / rate:.3f} s {where}) "
                f"is covered by neither a chunk nor a pause: not recorded")


def coverage_gaps(manifest: Manifest) -> list[CoverageGap]:
    """Spans of the call's timeline (frame 0 to ``frames``) covered by neither a chunk nor a
    pause, in order. Frames are the authority: a chunk covers ``[first_frame, first_frame +
    frames)``, a pause ``[offset_frames, offset_frames + duration_frames)``; the seconds fields
    (``offset_seconds``, ``wall_seconds``) are not used (wall_seconds is the PC clock's
    length of the pause, not the timeline's). Schema 1 has no record of an explained gap: an
    input overflow is filled with silence inside the chunk, so it is never a gap here.

    A provisional manifest is checked only up to the end of its last chunk or pause: the
    chunk being written (not listed yet) covers the rest. Pure: no I/O."""
    spans = sorted([(c.first_frame, c.first_frame + c.frames) for c in manifest.chunks if c.frames > 0]
                   + [(p.offset_frames, p.offset_frames + p.duration_frames)
                      for p in manifest.pauses if p.duration_frames > 0])
    end = manifest.frames
    if manifest.status != "complete":
        end = min(end, max((b for _, b in spans), default=0))
    gaps, covered = [], 0
    for a, b in spans:
        if a > covered:
            gaps.append(CoverageGap(covered, min(a, end)))
        covered = max(covered, b)
        if covered >= end:
            break
    if covered < end:
        gaps.append(CoverageGap(covered, end))
    return [g for g in gaps if g.end > g.start]


def verify_call(store: Store, manifest: Manifest) -> list[str]:
    """Every fault of one recording: a chunk missing, of the wrong size or checksum, or
    overlapping another; and a coverage gap (``coverage_gaps``): a span of the timeline that
    is neither a chunk nor a pause, i.e. claimed but not recorded. Does I/O (reads every
    chunk): call it on a worker."""
    faults = []
    end = 0
    for entry in manifest.chunks:
        if entry.first_frame < end:
            faults.append(f"{manifest.call_id}: chunk {entry.seq} overlaps the previous one")
        end = entry.first_frame + entry.frames
        try:
            read_chunk(store, manifest, entry)
        except ArchiveError as exc:
            faults.append(str(exc))
        except TransientStoreError:
            raise
        except Exception as exc:  # a fault of this chunk; verify the rest
            faults.append(f"{manifest.call_id}: chunk {entry.seq}: {type(exc).__name__}: {exc}")
    if end > manifest.frames:
        faults.append(f"{manifest.call_id}: chunks run to frame {end}, past the call's {manifest.frames} frames")
    faults += [g.describe(manifest) for g in coverage_gaps(manifest)]
    return faults


def decode_call(store: Store, manifest: Manifest) -> np.ndarray:
    """The call on its own timeline, float32 (frames, channels): pauses and gaps are digital
    silence of their true length; nothing after the end."""
    out = np.zeros((manifest.frames, manifest.audio.channels), dtype=np.float32)
    for entry in manifest.chunks:
        data = read_chunk(store, manifest, entry)
        try:
            audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise ArchiveError(f"{manifest.call_id}: chunk {entry.seq} does not decode: {exc}") from None
        if rate != manifest.audio.sample_rate:
            raise ArchiveError(f"{manifest.call_id}: chunk {entry.seq} is {rate} Hz, manifest says {manifest.audio.sample_rate}")
        n = min(entry.frames, len(audio), manifest.frames - entry.first_frame)
        out[entry.first_frame : entry.first_frame + n] = audio[:n]
    return out


class ExportRangeError(ArchiveError):
    """The range asked for is empty once clamped to the call (bad input, not a damaged recording)."""


EXPORT_BLOCK_SECONDS = 10.0  # how much audio an export holds at once
EXPORT_SPACE_MARGIN = 16 * 1024 * 1024  # left free on the target disk after the largest export
OPUS_EXPORT_BYTES_PER_SECOND_PER_CHANNEL = 16_000  # 128 kbit/s per channel: above any Opus export


def export_size_bound(manifest: Manifest, suffix: str, frames: int) -> int:
    """At most how many bytes exporting ``frames`` frames of ``manifest`` as ``suffix`` writes:
    16-bit PCM for WAV and FLAC (FLAC never needs much more than PCM), a generous bitrate for
    Opus; plus headers. ``frames`` is bounded by the validated manifest (at most 24 h)."""
    channels, rate = manifest.audio.channels, manifest.audio.sample_rate
    if suffix in OPUS_SUFFIXES:
        body = math.ceil(frames / rate * channels * OPUS_EXPORT_BYTES_PER_SECOND_PER_CHANNEL)
    else:
        body = frames * channels * 2 + frames * channels // 64  # FLAC's verbatim frames: PCM plus headers
    return body + 64 * 1024


def check_free_space(out: Path, needed: int) -> None:
    """``ArchiveError`` naming the folder, what is needed and what is free, unless the disk
    holding ``out`` has ``needed`` bytes plus ``EXPORT_SPACE_MARGIN`` free."""
    folder = out.parent if str(out.parent) else Path(".")
    try:
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise ArchiveError(f"{out}: cannot check the free space in {folder}: {exc.strerror or exc}") from None
    if free < needed + EXPORT_SPACE_MARGIN:
        raise ArchiveError(f"{out}: not enough free space in {folder} for this export: it may need up to "
                           f"{needed / 1e6:.1f} MB (and {EXPORT_SPACE_MARGIN // (1024 * 1024)} MiB left over), "
                           f"{free / 1e6:.1f} MB free; nothing written")


def export_range_frames(manifest: Manifest, start_seconds: float | None, end_seconds: float | None) -> tuple[int, int]:
    """``[start, end)`` in frames on the call's timeline, clamped to the call; None means the
    call's start / end. ``ExportRangeError`` when it is empty (or not a number)."""
    rate, frames = manifest.audio.sample_rate, manifest.frames
    length = frames / rate

    def say(v: float | None, default: str) -> str:
        return default if v is None else f"{v:g} s"

    for v in (start_seconds, end_seconds):
        if v is not None and not math.isfinite(v):
            raise ExportRangeError(f"{manifest.call_id}: export range from {say(start_seconds, 'the start')} "
                                   f"to {say(end_seconds, 'the end')} is not a time")
    a = 0 if start_seconds is None else min(max(round(start_seconds * rate), 0), frames)
    b = frames if end_seconds is None else min(max(round(end_seconds * rate), 0), frames)
    if a >= b:
        raise ExportRangeError(
            f"{manifest.call_id}: nothing to export from {say(start_seconds, 'the start')} to "
            f"{say(end_seconds, 'the end')}: the call is {length:g} s long, and the start must be "
            f"before the end and before {length:g} s")
    return a, b


def _to_int16(block: np.ndarray) -> np.ndarray:
    # float in [-1, 1) -> 16-bit exactly as libsndfile reads it back (x / 32768): a 16-bit
    # recording (FLAC chunks) round-trips sample for sample.
    return np.clip(np.rint(block * 32768.0), -32768, 32767).astype(np.int16)


def export_call(store: Store, call_id: str, out: Path, *, start_seconds: float | None = None,
                end_seconds: float | None = None) -> Manifest:
    """Write the call, or ``[start_seconds, end_seconds)`` of its timeline (clamped to the
    call), as one file: ``.wav`` / ``.flac`` (16-bit) or ``.opus`` / ``.ogg`` (Ogg Opus, the
    call's channels; stereo as two uncoupled mono streams under channel mapping family 1,
    which ordinary players open, whatever family the chunks were stored with). Pauses and
    gaps are digital silence in WAV and FLAC; Opus encodes them from zeros, and decodes to
    within 2 sixteen-bit steps apart from the codec's fade-out and lead-in at their edges
    (README, ``callrec export``). Streams through ``CallAudio`` in blocks of
    ``EXPORT_BLOCK_SECONDS``, so a long call is never held whole. Written beside ``out`` as
    ``out.part`` and renamed, so a failed export never leaves a file (and never one that
    looks complete).

    ``ExportRangeError`` (an ``ArchiveError``) for an empty range, and ``ArchiveError`` when
    the target disk has not the room for the largest file this export can make (see
    ``export_size_bound``), before anything is written. What is written never exceeds the
    validated manifest's duration (at most ``MAX_CALL_SECONDS``).
    """
    from callrec_desktop.playback.call_audio import CallAudio  # it imports this module

    suffix = out.suffix.lower()
    if suffix not in EXPORT_FORMATS and suffix not in OPUS_SUFFIXES:
        raise ArchiveError(f"{out}: export writes .wav, .flac, .opus or .ogg, "
                           f"not {out.suffix or 'a file without extension'}")
    manifest = load_manifest(store, call_id)
    first, end = export_range_frames(manifest, start_seconds, end_seconds)
    check_free_space(out, export_size_bound(manifest, suffix, end - first))  # before the first byte
    audio = CallAudio(store, manifest, cache_chunks=2)  # read in order: one or two chunks at a time
    rate, channels = manifest.audio.sample_rate, manifest.audio.channels
    block = max(1, round(EXPORT_BLOCK_SECONDS * rate))
    tmp = out.with_name(out.name + ".part")
    try:
        if suffix in OPUS_SUFFIXES:
            with open_private(tmp, "wb") as f:  # 0600: an export is the call itself
                encoder = make_encoder(f, CodecSettings("opus", sample_rate=rate, channels=channels))
                for at in range(first, end, block):
                    encoder.write(audio.read(at, min(block, end - at)))
                encoder.close()
        else:
            fmt, subtype = EXPORT_FORMATS[suffix]
            open_private(tmp, "wb").close()  # created 0600; libsndfile truncates it and keeps the mode
            with sf.SoundFile(tmp, "w", samplerate=rate, channels=channels, format=fmt, subtype=subtype) as f:
                for at in range(first, end, block):
                    f.write(_to_int16(audio.read(at, min(block, end - at))))
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return manifest


def verified_final_manifest(store: Store, call_id: str) -> Manifest | None:
    """The call's final manifest once it is in ``store`` and every chunk verifies; None before
    (not there yet, or still provisional). The final manifest is uploaded last, so one naming
    missing or wrong chunks is a real fault: ``ArchiveError``. Does I/O: call it on a worker."""
    try:
        manifest = load_manifest(store, call_id)
    except ArchiveError:
        return None
    if manifest.status != "complete":
        return None
    problems = verify_call(store, manifest)
    if problems:
        raise ArchiveError("; ".join(problems))
    return manifest
