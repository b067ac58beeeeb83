"""Recordings in formats older versions wrote, committed under tests/data, for tests that
check they still play, export and verify. Copied into the test's own folder first: export
writes an access-log object beside the call, and the committed files must never change."""

from __future__ import annotations

import shutil
from pathlib import Path

from callrec_desktop.archive import load_manifest
from callrec_desktop.core.manifest import Manifest
from callrec_desktop.storage.folder import FolderStore

DATA = Path(__file__).resolve().parents[1] / "data"

# tests/data/family255: Ogg Opus channel mapping family 255 (written up to b599d8a).
FAMILY255_CALL_ID = "20261204T041144Z-86c35a3bf215"
FAMILY255_PAUSE = (2.3, 3.7)  # payment pause, seconds on the call's timeline
FAMILY255_SECONDS = 5.5  # hang-up
FAMILY255_TONES = (440.0, 1250.0)  # agent (left), caller (right)


def family255_store(folder: Path) -> tuple[FolderStore, Manifest]:
    """A folder store under ``folder`` holding the family-255 call, and its manifest."""
    root = folder / "store"
    shutil.copytree(DATA / "family255" / "store", root)
    store = FolderStore(root)
    return store, load_manifest(store, FAMILY255_CALL_ID)
