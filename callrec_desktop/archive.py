"""Reading recordings back from a central store: list, verify, export.

This is the team-leader / IT side: it needs read and list permission on the store, which the
agents' write-only credentials do not have.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import soundfile as sf

from callrec_desktop.core.ids import InvalidIdError
from callrec_desktop.core.manifest import ChunkEntry, Manifest, ManifestError
from callrec_desktop.storage.base import ObjectNotFoundError, Store
from callrec_desktop.storage.layout import call_id_from_manifest_key, chunk_key, manifest_key, manifests_prefix

log = logging.getLogger(__name__)

EXPORT_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16")}


class ArchiveError(Exception):
    """A recording cannot be read back as asked; the message says which and why."""


@dataclass(frozen=True)
class ManifestProblem:
    key: str
    problem: str


def iter_manifests(store: Store, day: date | None = None) -> Iterator[Manifest | ManifestProblem]:
    """Every manifest under the day's (or every) partition; unreadable ones as problems, never raised."""
    for key in store.list(manifests_prefix(day)):
        if not key.endswith(".json"):
            continue
        try:
            call_id_from_manifest_key(key)
            yield Manifest.from_json(store.get(key), where=key)
        except (ManifestError, InvalidIdError, ValueError) as exc:
            yield ManifestProblem(key, str(exc))


def load_manifest(store: Store, call_id: str) -> Manifest:
    key = manifest_key(call_id)
    try:
        raw = store.get(key)
    except ObjectNotFoundError:
        raise ArchiveError(f"no recording {call_id} in {store.description} (looked for {key})") from None
    try:
        return Manifest.from_json(raw, where=key)
    except ManifestError as exc:
        raise ArchiveError(str(exc)) from None


def read_chunk(store: Store, manifest: Manifest, entry: ChunkEntry) -> bytes:
    """A chunk's bytes, checked against its manifest entry."""
    key = chunk_key(manifest.call_id, entry.name)
    try:
        data = store.get(key)
    except ObjectNotFoundError:
        raise ArchiveError(f"{manifest.call_id}: chunk {entry.seq} is missing ({key})") from None
    if len(data) != entry.bytes:
        raise ArchiveError(f"{manifest.call_id}: chunk {entry.seq} has {len(data)} bytes, manifest says {entry.bytes} ({key})")
    sha = hashlib.sha256(data).hexdigest()
    if sha != entry.sha256:
        raise ArchiveError(f"{manifest.call_id}: chunk {entry.seq} SHA-256 {sha} does not match the manifest ({key})")
    return data


def verify_call(store: Store, manifest: Manifest) -> list[str]:
    """Every fault of one recording (missing, wrong size or checksum, overlapping chunks)."""
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
    if end > manifest.frames:
        faults.append(f"{manifest.call_id}: chunks run to frame {end}, past the call's {manifest.frames} frames")
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


def export_call(store: Store, call_id: str, out: Path) -> Manifest:
    """Write the call as one WAV or FLAC file. Written beside ``out`` and renamed, so a failed
    export never leaves a file that looks complete."""
    fmt = EXPORT_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ArchiveError(f"{out}: export writes .wav or .flac, not {out.suffix or 'a file without extension'}")
    manifest = load_manifest(store, call_id)
    audio = decode_call(store, manifest)
    tmp = out.with_name(out.name + ".part")
    try:
        sf.write(tmp, audio, manifest.audio.sample_rate, format=fmt[0], subtype=fmt[1])
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return manifest
