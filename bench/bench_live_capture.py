"""Live capture CPU: the Recorder on a real (virtual) capture device vs a bare InputStream.

    .venv/bin/python bench/bench_live_capture.py --seconds 60

Starts a private PulseAudio with a null sink (tests/support/pulse.py's PulseServer: the
recipe from ci-recipes.md, with the keep-alive pacat and the latency wait), plays speech-like
audio into the sink in a loop (a separate `paplay` loop process, so its CPU is not ours), and
in this process measures, each for ``--seconds`` of wall time:

* baseline: a bare sounddevice InputStream on the same device and settings (stereo, 16 kHz,
  float32, the recorder's block size) whose callback only copies the block (into a bounded
  deque) and counts overflows;
* recorder: Recorder + DeviceSource on one call for the whole time, default codec/chunking/
  look-behind, into a Spool in a temp dir (no uploader).

CPU % = process CPU seconds (time.process_time, all threads) / wall seconds, in % of one
core. Prints both, the ratio, overflows, and a sanity check that real audio arrived.
Needs: apt-get install -y --no-install-recommends libportaudio2 pulseaudio pulseaudio-utils
libasound2-plugins. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import IDENTITY, RATE, default_settings, speech_like  # noqa: E402  (puts the root on sys.path)

from callrec_desktop.config import RecorderSettings  # noqa: E402
from tests.support.pulse import SINK, PulseServer, PulseUnavailable, pulse_environment  # noqa: E402


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def start_player(server: PulseServer, seconds: float = 30.0) -> subprocess.Popen:
    """Loop a speech-like WAV into the null sink from a separate process group."""
    import soundfile as sf

    wav = server.root / "speech.wav"
    sf.write(str(wav), speech_like(seconds, seed=5), RATE, subtype="PCM_16")
    env = {
        **os.environ, **server.env,
        "XDG_RUNTIME_DIR": str(server.root / "run"), "HOME": str(server.root / "home"),
    }
    return subprocess.Popen(
        ["sh", "-c", f'while :; do paplay --device={SINK} "{wav}" || exit 1; done'],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_player(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the group this script created for the loop
    proc.wait(timeout=5)


def thread_cpu() -> dict[int, float]:
    """CPU seconds (user+sys) so far of each live thread of this process, by native id."""
    import psutil

    return {t.id: t.user_time + t.system_time for t in psutil.Process().threads()}


def by_thread(before: dict[int, float], after: dict[int, float]) -> dict[str, float]:
    """CPU seconds per thread between two snapshots, Python threads by name, others native."""
    import threading

    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for tid, cpu in after.items():
        name = names.get(tid, "native (PortAudio/ALSA/pulse)")
        out[name] = out.get(name, 0.0) + cpu - before.get(tid, 0.0)
    return {k: v for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v >= 0.005}


def rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20)) if x.size else -200.0


def measure_bare(device: str, seconds: float, block: int) -> dict:
    import sounddevice as sd

    kept: deque[np.ndarray] = deque(maxlen=500)  # bounded: the last 10 s at 20 ms blocks
    counts = {"frames": 0, "overflows": 0, "callbacks": 0}

    def callback(indata, frames, time_info, status):  # copy-only, like DeviceSource's
        if status.input_overflow:
            counts["overflows"] += 1
        kept.append(indata.copy())
        counts["frames"] += frames
        counts["callbacks"] += 1

    c0, w0 = time.process_time(), time.perf_counter()
    stream = sd.InputStream(device=device, channels=2, samplerate=RATE, blocksize=block,
                            dtype="float32", callback=callback)
    stream.start()
    t0 = thread_cpu()
    time.sleep(seconds)
    threads = by_thread(t0, thread_cpu())
    stream.stop()
    stream.close()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    tail = np.concatenate(list(kept)) if kept else np.zeros((0, 2), np.float32)
    return {"cpu_s": cpu, "wall_s": wall, "frames": counts["frames"], "overflows": counts["overflows"],
            "callbacks": counts["callbacks"], "level_db": (rms_db(tail[:, 0]), rms_db(tail[:, 1])),
            "threads": threads}


def measure_recorder(device: str, seconds: float, block: int, codec: str, root: Path) -> dict:
    import soundfile as sf

    from callrec_desktop.audio.sources import DeviceSource
    from callrec_desktop.recorder import Recorder
    from callrec_desktop.spool import Spool

    spool = Spool(root / "spool")
    source = DeviceSource(device, None, channels=2, sample_rate=RATE, block_frames=block)
    rec = Recorder(source, spool, default_settings(codec), IDENTITY)
    c0, w0 = time.process_time(), time.perf_counter()
    rec.start_call("01443 425002", "Council Tax")
    rec.start()
    t0 = thread_cpu()
    time.sleep(seconds)
    threads = by_thread(t0, thread_cpu())
    status = rec.status()
    rec.end_call()
    rec.stop()
    rec.join(30)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    res = rec.results
    if res.errors or not res.manifests:
        raise SystemExit(f"recorder failed: {res.errors}")
    m = res.manifests[0]
    chunks = spool.chunks(m.call_id)
    level = (-200.0, -200.0)
    if chunks:  # sanity: the last full chunk holds real audio on both sides
        data, _ = sf.read(str(chunks[max(0, len(chunks) - 2)].path), dtype="float32", always_2d=True)
        level = (rms_db(data[:, 0]), rms_db(data[:, 1]))
    return {"cpu_s": cpu, "wall_s": wall, "frames": source.frames_captured, "overflows": source.overflows,
            "status_overflows": status.overflows, "call_frames": m.frames, "chunks": len(m.chunks),
            "chunk_bytes": sum(c.bytes for c in m.chunks), "level_db": level, "threads": threads}


def row(what: str, r: dict) -> str:
    pct = 100 * r["cpu_s"] / r["wall_s"]
    threads = ", ".join(f"{k} {v:.2f}" for k, v in r["threads"].items())
    return (f"{what} | {r['cpu_s']:.2f} | {r['wall_s']:.1f} | {pct:.2f} | {pct * 36:.0f} | {r['frames']} | "
            f"{r['overflows']} | {r['level_db'][0]:.0f}/{r['level_db'][1]:.0f} | {threads}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="wall seconds per measurement (default 60)")
    p.add_argument("--repeat", type=int, default=1, help="rounds of (baseline, recorder); medians reported")
    p.add_argument("--codec", default="opus", choices=("opus", "flac"))
    p.add_argument("--device", default="pulse", help="PortAudio input device (default: ALSA's pulse)")
    p.add_argument("--block-ms", type=int, default=RecorderSettings().block_ms,
                   help="callback block (default: the recorder's, %(default)s ms)")
    args = p.parse_args()
    block = RATE * args.block_ms // 1000

    try:
        server = PulseServer().start()
    except PulseUnavailable as exc:
        raise SystemExit(f"cannot start the virtual audio device: {exc}") from None
    root = Path(tempfile.mkdtemp(prefix="callrec-bench-live-"))
    player = None
    rounds = []
    try:
        with pulse_environment(server.env):  # before sounddevice's first import: PortAudio sees it
            player = start_player(server)
            time.sleep(1.0)
            for n in range(args.repeat):
                log(f"round {n + 1}/{args.repeat}: bare InputStream for {args.seconds:.0f} s")
                bare = measure_bare(args.device, args.seconds, block)
                log(f"round {n + 1}/{args.repeat}: Recorder + DeviceSource ({args.codec}) for {args.seconds:.0f} s")
                recd = measure_recorder(args.device, args.seconds, block, args.codec, root / f"r{n}")
                rounds.append((bare, recd))
    finally:
        if player is not None:
            stop_player(player)
        server.stop()
        shutil.rmtree(root, ignore_errors=True)

    print()
    print(f"Live capture, device {args.device!r} (PulseAudio null-sink monitor), stereo {RATE} Hz, "
          f"{block}-frame blocks, {args.seconds:.0f} s each, {os.cpu_count()} cores. CPU % = process CPU "
          "(all threads) / wall, % of one core; s/h = CPU seconds per hour; threads = CPU s by thread")
    print()
    print("round: what | CPU s | wall s | CPU % | CPU s/h | frames | overflows | level L/R dBFS | threads")
    print("--- | --- | --- | --- | --- | --- | --- | --- | ---")
    for n, (bare, recd) in enumerate(rounds, 1):
        print(row(f"{n}: bare InputStream (copy-only callback)", bare))
        print(row(f"{n}: Recorder + DeviceSource ({args.codec})", recd))
    b = statistics.median(100 * r["cpu_s"] / r["wall_s"] for r, _ in rounds)
    r = statistics.median(100 * x["cpu_s"] / x["wall_s"] for _, x in rounds)
    ratios = [(x["cpu_s"] / x["wall_s"]) / (y["cpu_s"] / y["wall_s"]) for y, x in rounds]
    print()
    print(f"median CPU %: bare {b:.2f}, recorder {r:.2f}; ratio recorder/bare {statistics.median(ratios):.2f}x "
          f"(per round: {', '.join(f'{q:.2f}x' for q in ratios)}); recorder minus bare {r - b:.2f} % of a core "
          f"= {(r - b) * 36:.0f} CPU s/h")
    print(f"overflows: bare {sum(y['overflows'] for y, _ in rounds)}, recorder {sum(x['overflows'] for _, x in rounds)}")
    recd = rounds[-1][1]
    print(f"last recorded call: {recd['call_frames'] / RATE:.1f} s in {recd['chunks']} chunks, "
          f"{recd['chunk_bytes'] / 1e6:.2f} MB ({recd['chunk_bytes'] / 1e6 / (recd['call_frames'] / RATE) * 3600:.2f} MB/h)")


if __name__ == "__main__":
    main()
