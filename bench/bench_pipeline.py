"""Recording pipeline cost per hour of audio, against the bare encoder library in the same run.

    .venv/bin/python bench/bench_pipeline.py                 # one hour, opus then flac
    .venv/bin/python bench/bench_pipeline.py --seconds 600 --codecs opus --profile

For each codec a worker process (so peak RSS is per codec) generates deterministic stereo
speech-like audio, then:

* pipeline: SyntheticSource (fast, 0.5 s blocks) -> Recorder (default chunking and look-behind
  from config.RecorderSettings) -> Spool in a temp dir; no uploader. One call over the whole
  audio with two payment pauses. CPU (process_time and getrusage user+sys), wall, RSS (psutil
  sampled every 0.5 s; at 10 %, 50 %, 100 % progress; ru_maxrss);
* bare: the same kept frames through the library alone: PyAV libopus with the pipeline's
  options (mapping_family 255, bitrate, compression_level, application voip) into one Ogg in
  memory, fed in the same 0.5 s blocks; soundfile.write of the whole kept audio for FLAC;
* channel separation: 10 s of 440 Hz left / 1250 Hz right through the pipeline (and the
  uploader to a folder store), decoded, worst 1-s window of either side.

Prints a table and the issue's Done criteria as PASS/FAIL lines. Asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    IDENTITY,
    RATE,
    cpu_seconds,
    default_settings,
    maxrss_bytes,
    rss_bytes,
    separation_db,
    speech_like,
    two_tones,
)

from callrec_desktop.audio.sources import SyntheticSource  # noqa: E402
from callrec_desktop.core.timeline import EventSource  # noqa: E402
from callrec_desktop.recorder import Recorder  # noqa: E402
from callrec_desktop.spool import Spool  # noqa: E402

MiB = 1024 * 1024
LIMITS = {"cpu_s_per_h": 45.0, "ratio": 1.3, "sep_db": 30.0, "mb_per_h": 12.0}


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def payment_windows(frames: int) -> list[tuple[int, int]]:
    """Two payments: at 30 % for 60 s and at 72 % for 90 s (shorter on short runs)."""
    out = []
    for at, length in ((0.30, 60.0), (0.72, 90.0)):
        n = int(min(length * RATE, 0.025 * frames))
        a = int(at * frames)
        out.append((a, a + n))
    return out


def kept_ranges(frames: int, pauses: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, pos = [], 0
    for a, b in pauses:
        out.append((pos, a))
        pos = b
    out.append((pos, frames))
    return [(a, b) for a, b in out if b > a]


# ---------------------------------------------------------------- the pipeline


def run_pipeline(audio: np.ndarray, codec: str, block_frames: int, root: Path, profiler=None) -> dict:
    settings = default_settings(codec)
    spool = Spool(root / "spool")
    frames = len(audio)
    marks: dict[str, int] = {}
    points = [0.1, 0.5]

    def blocks():
        nxt = 0
        for i in range(0, frames, block_frames):
            while nxt < len(points) and i >= points[nxt] * frames:
                marks[f"{int(points[nxt] * 100)}%"] = rss_bytes()
                nxt += 1
            yield audio[i : i + block_frames]  # a view: SyntheticSource copies each block

    source = SyntheticSource(blocks(), sample_rate=RATE, block_frames=block_frames, channels=2)
    rec = Recorder(source, spool, settings, IDENTITY)
    rec.start_call("01443 425002", "Council Tax", caller="07700900123", source=EventSource.SCRIPT, at_frame=0)
    pauses = payment_windows(frames)
    for a, b in pauses:
        rec.start_payment(source=EventSource.SCRIPT, at_frame=a)
        rec.end_payment(source=EventSource.SCRIPT, at_frame=b)

    samples: list[tuple[float, int, int]] = []
    stop = threading.Event()

    def sampler():
        t0 = time.perf_counter()
        while not stop.is_set():
            samples.append((time.perf_counter() - t0, source.frames_captured, rss_bytes()))
            stop.wait(0.5)

    gc.collect()
    rss_before = rss_bytes()
    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    pt0, ru0 = cpu_seconds()
    w0 = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    results = rec.run()
    if profiler is not None:
        profiler.disable()
    wall = time.perf_counter() - w0
    pt1, ru1 = cpu_seconds()
    marks["100%"] = rss_bytes()
    stop.set()
    thread.join()
    peak = maxrss_bytes()

    if results.errors:
        raise SystemExit(f"pipeline errors: {results.errors}")
    [manifest] = results.manifests
    kept = sum(c.frames for c in manifest.chunks)
    chunk_bytes = sum(c.bytes for c in manifest.chunks)
    on_disk = sum(p.path.stat().st_size for p in spool.chunks(manifest.call_id))
    sampled_max = max(r for _, _, r in samples) if samples else marks["100%"]
    return {
        "cpu_s": pt1 - pt0,
        "rusage_cpu_s": ru1 - ru0,
        "wall_s": wall,
        "rss_before_mib": rss_before / MiB,
        "rss_sampled_max_mib": max(sampled_max, marks["100%"]) / MiB,
        "rss_growth_mib": (max(sampled_max, marks["100%"]) - rss_before) / MiB,
        "rss_at_mib": {k: v / MiB for k, v in marks.items()},
        "ru_maxrss_mib": peak / MiB,
        "rss_samples": len(samples),
        "kept_frames": kept,
        "manifest_frames": manifest.frames,
        "pauses": [(a, b) for a, b in pauses],
        "chunks": len(manifest.chunks),
        "chunk_bytes": chunk_bytes,
        "chunk_bytes_on_disk": on_disk,
    }


# ---------------------------------------------------------------- the bare library


def bare_opus(audio: np.ndarray, ranges, codec: str, block_frames: int) -> tuple[float, float, int]:
    import av

    c = default_settings(codec).codec
    buf = io.BytesIO()
    pt0, ru0 = cpu_seconds()
    w0 = time.perf_counter()
    container = av.open(buf, "w", format="ogg")
    stream = container.add_stream("libopus", rate=RATE, layout="stereo")
    stream.bit_rate = c.bitrate
    stream.options = {"compression_level": str(c.opus_complexity), "application": "voip", "mapping_family": "255"}
    for a, b in ranges:
        for i in range(a, b, block_frames):
            frame = av.AudioFrame.from_ndarray(audio[i : min(i + block_frames, b)].reshape(1, -1),
                                               format="flt", layout="stereo")
            frame.sample_rate = RATE
            for packet in stream.encode(frame):
                container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
    wall = time.perf_counter() - w0
    pt1, ru1 = cpu_seconds()
    return pt1 - pt0, wall, len(buf.getbuffer())


def bare_flac(audio: np.ndarray, ranges, root: Path) -> tuple[float, float, int]:
    import soundfile as sf

    kept = np.concatenate([audio[a:b] for a, b in ranges])  # outside the timed part
    path = root / "bare.flac"
    pt0, _ = cpu_seconds()
    w0 = time.perf_counter()
    sf.write(str(path), kept, RATE, format="FLAC", subtype="PCM_16")
    wall = time.perf_counter() - w0
    pt1, _ = cpu_seconds()
    size = path.stat().st_size
    path.unlink()
    return pt1 - pt0, wall, size


# ---------------------------------------------------------------- channel separation


def separation(codec: str, block_frames: int, root: Path) -> dict:
    from callrec_desktop.archive import decode_call, load_manifest
    from callrec_desktop.storage.folder import FolderStore
    from callrec_desktop.uploader import Uploader

    audio = two_tones(10.0)
    spool = Spool(root / "sep-spool")
    (root / "sep-store").mkdir()
    store = FolderStore(root / "sep-store")
    rec = Recorder(SyntheticSource(audio, sample_rate=RATE, block_frames=block_frames), spool,
                   default_settings(codec), IDENTITY)
    rec.start_call("01443 425002", "Council Tax", source=EventSource.SCRIPT, at_frame=0)
    results = rec.run()
    if not Uploader(spool, store).drain(30):
        raise SystemExit("separation run: upload did not finish")
    out = decode_call(store, load_manifest(store, results.manifests[0].call_id))
    worst, left, right = separation_db(out)
    return {"sep_db": worst, "sep_left_db": left, "sep_right_db": right}


# ---------------------------------------------------------------- worker and driver


def worker(args) -> None:
    codec = args.worker
    block = int(round(args.block_seconds * RATE))
    root = Path(tempfile.mkdtemp(prefix=f"callrec-bench-{codec}-", dir=args.tmpdir))
    try:
        log(f"{codec}: generating {args.seconds:.0f} s of speech-like stereo audio")
        t = time.perf_counter()
        audio = speech_like(args.seconds)
        log(f"{codec}: generated in {time.perf_counter() - t:.1f} s ({audio.nbytes / MiB:.0f} MiB); running the pipeline")
        res = {"codec": codec, "seconds": len(audio) / RATE, "block_frames": block}
        res.update(run_pipeline(audio, codec, block, root))
        log(f"{codec}: pipeline {res['cpu_s']:.1f} CPU s, {res['wall_s']:.1f} s wall; running the bare library")
        ranges = kept_ranges(len(audio), [tuple(p) for p in res["pauses"]])
        assert sum(b - a for a, b in ranges) == res["kept_frames"], (ranges, res["kept_frames"])
        if codec == "opus":
            cpu, wall, size = bare_opus(audio, ranges, codec, block)
        else:
            cpu, wall, size = bare_flac(audio, ranges, root)
        res.update({"bare_cpu_s": cpu, "bare_wall_s": wall, "bare_bytes": size})
        log(f"{codec}: bare {cpu:.1f} CPU s; measuring channel separation")
        res.update(separation(codec, block, root))
        if args.profile:
            import cProfile
            import pstats

            n = int(min(args.profile_seconds, args.seconds) * RATE)
            log(f"{codec}: profiling the pipeline on the first {n / RATE:.0f} s (cProfile)")
            prof = cProfile.Profile()
            shutil.rmtree(root / "spool", ignore_errors=True)
            run_pipeline(audio[:n], codec, block, root, profiler=prof)
            stats = pstats.Stats(prof, stream=sys.stderr)
            stats.sort_stats("tottime").print_stats(25)
            stats.sort_stats("cumulative").print_stats(30)
            if args.profile_out:
                stats.dump_stats(f"{args.profile_out}.{codec}.pstats")
        print("RESULT " + json.dumps(res), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def fmt_table(rows: list[dict]) -> str:
    head = ("codec", "audio h", "CPU s/h", "rusage s/h", "bare CPU s/h", "ratio", "wall s",
            "ru_maxrss MiB", "RSS growth MiB", "RSS 10/50/100% MiB", "MB/h", "sep dB (L/R)")
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        hours = r["seconds"] / 3600
        kept_h = r["kept_frames"] / RATE / 3600
        at = r["rss_at_mib"]
        lines.append(" | ".join([
            r["codec"],
            f"{hours:.2f}",
            f"{r['cpu_s'] / hours:.1f}",
            f"{r['rusage_cpu_s'] / hours:.1f}",
            f"{r['bare_cpu_s'] / hours:.1f}",
            f"{r['cpu_s'] / r['bare_cpu_s']:.2f}x",
            f"{r['wall_s']:.1f}",
            f"{r['ru_maxrss_mib']:.0f}",
            f"{r['rss_growth_mib']:+.1f}",
            f"{at.get('10%', 0):.0f}/{at.get('50%', 0):.0f}/{at.get('100%', 0):.0f}",
            f"{r['chunk_bytes'] / 1e6 / kept_h:.2f}",
            f"{r['sep_db']:.1f} ({r['sep_left_db']:.0f}/{r['sep_right_db']:.0f})",
        ]))
    return "\n".join(lines)


def done_checks(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        hours = r["seconds"] / 3600
        kept_h = r["kept_frames"] / RATE / 3600
        cpu_h = r["cpu_s"] / hours
        ratio = r["cpu_s"] / r["bare_cpu_s"]
        mbh = r["chunk_bytes"] / 1e6 / kept_h
        checks = [
            (f"ratio pipeline/bare {ratio:.2f}x <= {LIMITS['ratio']}x", ratio <= LIMITS["ratio"]),
            (f"separation {r['sep_db']:.1f} dB >= {LIMITS['sep_db']:.0f} dB", r["sep_db"] >= LIMITS["sep_db"]),
        ]
        if r["codec"] == "opus":  # the default codec: CPU and size budgets apply to it
            checks[:0] = [(f"CPU {cpu_h:.1f} s/h <= {LIMITS['cpu_s_per_h']:.0f} s/h", cpu_h <= LIMITS["cpu_s_per_h"])]
            checks.append((f"size {mbh:.2f} MB/h <= {LIMITS['mb_per_h']:.0f} MB/h", mbh <= LIMITS["mb_per_h"]))
        for text, ok in checks:
            out.append(f"  {r['codec']:5s} {'PASS' if ok else 'FAIL'}  {text}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=3600.0, help="audio length (default 3600)")
    p.add_argument("--codecs", default="opus,flac", help="comma-separated (default opus,flac)")
    p.add_argument("--block-seconds", type=float, default=0.5, help="SyntheticSource block (default 0.5)")
    p.add_argument("--tmpdir", default=None, help="where the spool goes (default: system temp)")
    p.add_argument("--profile", action="store_true", help="also profile the pipeline with cProfile (stderr)")
    p.add_argument("--profile-seconds", type=float, default=600.0, help="audio length for the profiled run")
    p.add_argument("--profile-out", default=None, help="also dump pstats to PREFIX.CODEC.pstats")
    p.add_argument("--json", default=None, help="also write the raw results to this file")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return

    rows = []
    for codec in [c.strip() for c in args.codecs.split(",") if c.strip()]:
        cmd = [sys.executable, __file__, "--worker", codec, "--seconds", str(args.seconds),
               "--block-seconds", str(args.block_seconds), "--profile-seconds", str(args.profile_seconds)]
        if args.tmpdir:
            cmd += ["--tmpdir", args.tmpdir]
        if args.profile:
            cmd.append("--profile")
        if args.profile_out:
            cmd += ["--profile-out", args.profile_out]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"worker for {codec} failed ({proc.returncode})")
        [line] = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        rows.append(json.loads(line[len("RESULT "):]))

    print()
    print(f"Pipeline vs bare library, {args.seconds:.0f} s of stereo 16 kHz speech-like audio, "
          f"{args.block_seconds} s blocks, default chunking/look-behind (one call, two payment pauses)")
    print("CPU s/h = process_time per hour of input audio; bare encodes the same kept frames; "
          "MB/h = chunk bytes per hour of kept audio (10^6 B); RSS growth = max sampled RSS minus RSS "
          "before the pipeline (the input audio itself is held in memory, see ru_maxrss)")
    print()
    print(fmt_table(rows))
    print()
    print("Done criteria (issue):")
    print("\n".join(done_checks(rows)))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
