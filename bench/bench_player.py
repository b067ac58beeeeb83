"""Player core on a one-hour call: time to first audio, waveform, seek latency, memory.

    .venv/bin/python bench/bench_player.py                  # one hour, opus (the default codec)
    .venv/bin/python bench/bench_player.py --seconds 600 --codec flac

A one-hour call is recorded with the real pipeline (SyntheticSource of speech-like audio →
Recorder with the default settings → Spool → Uploader → FolderStore in a temp dir; a minute of
audio generated once and repeated, so generation never holds the hour in memory). Then a
fresh worker process (clean RSS) measures:

* first audio: ``load_manifest`` + ``CallAudio(...)`` + ``read(0, 0.1 s)`` (target < 300 ms);
* waveform: ``load_or_compute`` cold (streams the whole call) and warm (the cached .npz);
* seek: 50 random seeks, time until the first 0.1 s block is available, with the default
  cache (each seek typically decodes one chunk);
* memory: RSS after each step, and peak (ru_maxrss).

Prints a table. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import IDENTITY, RATE, default_settings, maxrss_bytes, rss_bytes, speech_like  # noqa: I001

from callrec_desktop.archive import load_manifest  # noqa: E402
from callrec_desktop.audio.sources import SyntheticSource  # noqa: E402
from callrec_desktop.core.timeline import EventSource  # noqa: E402
from callrec_desktop.recorder import Recorder  # noqa: E402
from callrec_desktop.spool import Spool  # noqa: E402
from callrec_desktop.storage.folder import FolderStore  # noqa: E402
from callrec_desktop.uploader import Uploader  # noqa: E402


def record(root: Path, seconds: float, codec: str) -> str:
    minute = speech_like(60.0)
    total = int(seconds * RATE)

    def blocks():
        for start in range(0, total, RATE // 2):
            i = start % len(minute)
            n = min(RATE // 2, total - start, len(minute) - i)
            yield minute[i : i + n]

    spool = Spool(root / "spool")
    (root / "store").mkdir()
    store = FolderStore(root / "store")
    uploader = Uploader(spool, store)
    rec = Recorder(SyntheticSource(blocks(), sample_rate=RATE, channels=2), spool, default_settings(codec),
                   IDENTITY, listeners=[lambda e: uploader.wake()])
    call_id = rec.start_call("01443 425002", "Council Tax", source=EventSource.SCRIPT, at_frame=0)
    rec.start_payment(source=EventSource.SCRIPT, at_frame=int(seconds / 3 * RATE))
    rec.end_payment(source=EventSource.SCRIPT, at_frame=int(seconds / 3 * RATE) + 90 * RATE)
    uploader.start()
    rec.run()
    if not uploader.drain(600):
        raise SystemExit(f"upload did not finish: {uploader.status()}")
    uploader.stop()
    return call_id


def measure(store_dir: Path, call_id: str, cache_dir: Path) -> dict:
    from callrec_desktop.playback.call_audio import CallAudio
    from callrec_desktop.playback.waveform import load_or_compute

    out: dict = {"rss_start": rss_bytes()}
    store = FolderStore(store_dir)
    t0 = time.perf_counter()
    m = load_manifest(store, call_id)
    ca = CallAudio(store, m)
    block = ca.read(0, RATE // 10)
    out["first_audio_ms"] = (time.perf_counter() - t0) * 1000
    out["first_audio_chunks"] = ca.chunks_decoded
    assert block.shape == (RATE // 10, 2)
    out["rss_after_first"] = rss_bytes()
    out["chunks"], out["duration_s"] = len(m.chunks), m.frames / RATE

    t0 = time.perf_counter()
    load_or_compute(CallAudio(store, m), cache_dir)
    out["waveform_cold_s"] = time.perf_counter() - t0
    out["rss_after_waveform"] = rss_bytes()
    t0 = time.perf_counter()
    load_or_compute(CallAudio(store, m), cache_dir)
    out["waveform_warm_ms"] = (time.perf_counter() - t0) * 1000

    rng = np.random.default_rng(5)
    lat = []
    for target in rng.uniform(0, m.frames / RATE - 1, 50):
        t0 = time.perf_counter()
        ca.read(int(target * RATE), RATE // 10)
        lat.append((time.perf_counter() - t0) * 1000)
    out["seek_ms_median"], out["seek_ms_p95"], out["seek_ms_max"] = (
        float(np.median(lat)), float(np.percentile(lat, 95)), float(max(lat)))
    out["rss_end"] = rss_bytes()
    out["maxrss"] = maxrss_bytes()
    out["store_mb"] = sum(p.stat().st_size for p in store_dir.rglob("*") if p.is_file()) / 1e6
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3600)
    ap.add_argument("--codec", default="opus", choices=("opus", "flac"))
    ap.add_argument("--measure", nargs=3, metavar=("STORE", "CALL_ID", "CACHE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), args.measure[1], Path(args.measure[2]))))
        return
    with tempfile.TemporaryDirectory(prefix="bench-player-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        call_id = record(root, args.seconds, args.codec)
        print(f"recorded {args.seconds:.0f} s ({args.codec}) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        proc = subprocess.run([sys.executable, __file__, "--measure", str(root / "store"), call_id, str(root / "cache")],
                              capture_output=True, text=True, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
    mb = 1 / 2**20
    rows = [
        ("call", f"{r['duration_s']:.0f} s, {r['chunks']} chunks, {args.codec}, store {r['store_mb']:.1f} MB"),
        ("first audio: manifest + CallAudio + read(0, 0.1 s)",
         f"{r['first_audio_ms']:.1f} ms ({r['first_audio_chunks']} chunk decoded; target < 300 ms)"),
        ("waveform, cold (stream whole call)", f"{r['waveform_cold_s']:.2f} s"),
        ("waveform, cached (.npz)", f"{r['waveform_warm_ms']:.1f} ms"),
        ("seek to first 0.1 s block (50 random)",
         f"median {r['seek_ms_median']:.1f} ms, p95 {r['seek_ms_p95']:.1f} ms, max {r['seek_ms_max']:.1f} ms"),
        ("RSS start / after first audio", f"{r['rss_start'] * mb:.0f} / {r['rss_after_first'] * mb:.0f} MiB"),
        ("RSS after waveform / end / peak",
         f"{r['rss_after_waveform'] * mb:.0f} / {r['rss_end'] * mb:.0f} / {r['maxrss'] * mb:.0f} MiB"),
    ]
    w = max(len(a) for a, _ in rows)
    print(f"{'measure':<{w}}  value\n{'-' * w}  {'-' * 40}")
    for a, b in rows:
        print(f"{a:<{w}}  {b}")


if __name__ == "__main__":
    main()
