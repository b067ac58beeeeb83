"""kill -9 of the uploading process at random moments loses nothing and doubles nothing.

A spool of several complete calls (recorded by the real Recorder, fast) is drained by a child
process (``tests/support/uploadchild.py``) that is SIGKILLed again and again at seeded random
moments after it has started storing objects; a last child then runs to completion. Every
chunk of every call must be in the store exactly once, matching its manifest, the final
manifests must be complete, and the spool must be empty with nothing quarantined. Against
the S3 test server and against the folder store.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from callrec_desktop.archive import verify_call
from callrec_desktop.audio.sources import SyntheticSource
from callrec_desktop.core.manifest import Manifest
from callrec_desktop.recorder import Recorder
from callrec_desktop.spool import Spool
from callrec_desktop.storage.folder import FolderStore
from callrec_desktop.storage.layout import chunk_key, manifest_key
from callrec_desktop.storage.s3 import S3Store
from tests.support.recording import IDENTITY, RATE, settings, two_tones

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "crash"
KILLS = 12  # at least 10 asked for; a couple spare
TIME_BUDGET = 45.0
# (codec, calls, seconds per call): 1-s chunks, ~160 chunks and 10 manifests in all
BACKLOG = (("opus", 6, 18.0), ("flac", 4, 12.0))


def record_backlog(spool: Spool) -> dict[str, bytes]:
    """Complete calls in the spool, recorded fast; returns each call's final spooled manifest."""
    for codec, calls, seconds in BACKLOG:
        gap = seconds + 0.5
        source = SyntheticSource(two_tones(calls * gap + 0.5), sample_rate=RATE, block_frames=RATE // 2)
        rec = Recorder(source, spool, settings(codec, chunk_seconds=1.0, lookbehind_seconds=0.2), IDENTITY)
        for i in range(calls):
            start = round(i * gap * RATE)
            rec.start_call("01443 425002", "Council Tax, Business Rate and Benefits", at_frame=start)
            rec.end_call(at_frame=start + round(seconds * RATE))
        results = rec.run()
        assert results.errors == [] and len(results.manifests) == calls
    return {call_id: spool.manifest_bytes(call_id) for call_id in spool.call_ids()}


class S3Target:
    # The random extra delay before a kill is up to this many seconds after the first new
    # object appeared; a child stores ~300 objects/s into the local S3 server.
    max_extra_delay = 0.03

    def __init__(self, server) -> None:
        self.bucket = server.make_bucket()
        self.client = server.client()
        self.url = f"s3://{self.bucket}/{PREFIX}"
        self.endpoint = server.endpoint_url
        self.store = S3Store(self.bucket, PREFIX, endpoint_url=server.endpoint_url, region=server.region,
                             addressing_style="path", credentials=(server.access_key, server.secret_key))
        self.env = {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}

    def keys(self) -> list[str]:
        """Every key the uploader stored, as listed (a duplicate would show twice); not the
        probe of what the server verifies (``S3Store.checks``)."""
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=PREFIX + "/"):
            keys += [o["Key"][len(PREFIX) + 1:] for o in page.get("Contents", ())
                     if o["Key"] != f"{PREFIX}/health/checksum-probe"]
        return keys

    def leftovers(self) -> list[str]:
        return []  # an interrupted S3 put leaves nothing


class FolderTarget:
    max_extra_delay = 0.008  # ~1,000 objects/s into a local folder

    def __init__(self, root: Path) -> None:
        root.mkdir()
        self.root = root
        self.url = str(root)
        self.endpoint = "-"
        self.store = FolderStore(root)
        self.env: dict[str, str] = {}

    def _walk(self) -> tuple[list[str], list[str]]:
        keys, hidden = [], []
        for dirpath, _, filenames in os.walk(self.root):
            rel = Path(dirpath).relative_to(self.root)
            for name in filenames:
                (hidden if name.startswith(".") else keys).append((rel / name).as_posix())
        return keys, hidden

    def keys(self) -> list[str]:
        return self._walk()[0]

    def leftovers(self) -> list[str]:
        """Temp files of puts killed mid-write: hidden, never listed, never a duplicate."""
        return self._walk()[1]


@pytest.fixture(params=[pytest.param("s3", marks=pytest.mark.s3), "folder"])
def target(request, tmp_path):
    if request.param == "s3":
        return S3Target(request.getfixturevalue("s3_server"))
    return FolderTarget(tmp_path / "store")


def test_kill_9_while_uploading_loses_and_doubles_nothing(target, tmp_path):
    spool = Spool(tmp_path / "spool")
    finals = record_backlog(spool)
    manifests = {cid: Manifest.from_json(raw) for cid, raw in finals.items()}
    assert all(m.status == "complete" for m in manifests.values())
    expected = sorted({manifest_key(cid) for cid in manifests}
                      | {chunk_key(cid, e.name) for cid, m in manifests.items() for e in m.chunks})
    assert len(expected) == sum(calls * (int(seconds) + 1) for _, calls, seconds in BACKLOG)

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k == "AWS_CA_BUNDLE"}
    env.update(target.env, PYTHONPATH=str(ROOT), AWS_EC2_METADATA_DISABLED="true")
    command = [sys.executable, "-m", "tests.support.uploadchild", str(spool.root), target.url, target.endpoint]
    child_log = tmp_path / "children.log"
    rng = random.Random(f"kill-9-{type(target).__name__}")
    kills: list[tuple[int, float]] = []  # (objects in the store when killed, extra delay)
    deadline = time.monotonic() + TIME_BUDGET
    with open(child_log, "ab") as log:
        while len(kills) < KILLS:
            assert time.monotonic() < deadline, f"only {len(kills)} kills in {TIME_BUDGET:.0f} s"
            before = len(target.keys())
            child = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            try:
                limit = time.monotonic() + 20
                while child.poll() is None and len(target.keys()) <= before:
                    assert time.monotonic() < limit, "the child stored nothing within 20 s"
                    time.sleep(0.002)
                if child.poll() is not None:
                    break  # it finished the whole backlog before we could kill it
                extra = rng.uniform(0, target.max_extra_delay)
                time.sleep(extra)  # the random part of the kill moment (deliberate)
                child.send_signal(signal.SIGKILL)
            finally:
                if child.poll() is None:
                    child.kill()
                child.wait(timeout=10)
            if child.returncode == -signal.SIGKILL:
                kills.append((len(target.keys()), extra))
            else:
                assert child.returncode == 0, f"child exited with {child.returncode}; see {child_log}"
    assert len(kills) >= 10, f"the backlog drained after only {len(kills)} kills: make it bigger"
    stored_at_kills = [n for n, _ in kills]

    final = subprocess.run([*command, "--timeout", "60"], env=env, cwd=ROOT, capture_output=True, text=True,
                           timeout=90)
    assert final.returncode == 0, (final.stdout[-2000:], final.stderr[-2000:])
    summary = json.loads(final.stdout.splitlines()[-1])
    assert summary["drained"] and summary["quarantined"] == [], summary

    # the spool: empty, nothing quarantined
    assert os.listdir(spool.calls_dir) == [], os.listdir(spool.calls_dir)
    assert list(spool.quarantine_dir.rglob("*")) == []
    # the store: every expected key exactly once, nothing else
    assert sorted(target.keys()) == expected
    assert all(Path(p).name.endswith(".tmp") for p in target.leftovers()), target.leftovers()
    for call_id, raw in finals.items():
        stored = target.store.get(manifest_key(call_id))
        assert stored == raw, f"{call_id}: the stored manifest is not the final one"
        m = manifests[call_id]
        assert [e.seq for e in m.chunks] == list(range(1, len(m.chunks) + 1))
        assert sum(e.frames for e in m.chunks) == m.frames
        for e in m.chunks:
            data = target.store.get(chunk_key(call_id, e.name))
            assert (len(data), hashlib.sha256(data).hexdigest()) == (e.bytes, e.sha256)
        assert verify_call(target.store, m) == []
    print(f"{len(kills)} kills at {stored_at_kills} of {len(expected)} objects; "
          f"{len(target.leftovers())} temp file(s) left by interrupted puts")
