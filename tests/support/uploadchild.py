"""A process that only uploads, for the kill -9 tests. Test-only.

    python -m tests.support.uploadchild SPOOL STORE_URL ENDPOINT

Composed like ``callrec record`` composes its uploader (recover the spool, then upload), but
without recording: it drains SPOOL into STORE_URL (a folder path or ``s3://bucket/prefix``;
ENDPOINT is the S3 endpoint URL, or ``-`` for a folder store) and exits 0 once the spool is
empty, 1 if it is not empty after ``--timeout`` seconds. S3 credentials come from boto3's
usual chain (the test sets ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``). Prints one line
per object the store confirmed (``uploaded KEY``) and a JSON summary at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from callrec_desktop.spool import Spool
from callrec_desktop.storage.factory import open_store
from callrec_desktop.uploader import UploadSettings, Uploader

# Short backoffs: the test kills and restarts this process many times within seconds.
SETTINGS = UploadSettings(initial_backoff_seconds=0.05, max_backoff_seconds=0.5, max_attempts_per_pass=8,
                          idle_poll_seconds=0.1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="uploadchild")
    p.add_argument("spool", type=Path)
    p.add_argument("store")
    p.add_argument("endpoint", help="S3 endpoint URL, or '-' for a folder store")
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args(argv)
    spool = Spool(args.spool)
    report = spool.recover()
    store = open_store(args.store, endpoint_url=None if args.endpoint == "-" else args.endpoint,
                       region="us-east-1", addressing_style="path")

    def uploaded(call_id: str, key: str) -> None:
        print(f"uploaded {key}", flush=True)

    uploader = Uploader(spool, store, SETTINGS, on_uploaded=uploaded)
    drained = uploader.drain(args.timeout)
    status = uploader.status()
    print(json.dumps({"drained": drained, "objects_uploaded": status.objects_uploaded,
                      "recovered": list(report.interrupted_calls), "quarantined": list(report.quarantined),
                      "last_error": status.last_error}), flush=True)
    return 0 if drained else 1


if __name__ == "__main__":
    sys.exit(main())
