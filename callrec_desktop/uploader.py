"""The upload worker: drains the spool into the central store, in an order a reader can trust.

For each call, a pass uploads the chunks its spooled manifest lists, then that manifest. So
the provisional manifest reaches the store as soon as the call starts (a workstation that
dies mid-call still leaves a findable call), a manifest never names a chunk the store lacks,
and the final manifest goes last. A spool file is deleted only after the store confirmed its
size and SHA-256. Puts are idempotent (same key, same bytes), so a crash between a put and
the delete only costs a harmless re-put.

Only ``put`` is used: agent workstations run with write-only credentials. On a store with
conditional writes (``S3Store``) sealed chunks are write-once (``If-None-Match: *``) and each
manifest put may replace only the manifest this PC put before for that call (``If-Match`` its
MD5, kept beside the upload marker), so once the final manifest is stored nothing this program
does can replace it; a put whose bytes are already there (a reply lost) is a success.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from callrec_desktop.core.manifest import Manifest, ManifestError
from callrec_desktop.durable import fsync_dir, sha256_file, write_atomic
from callrec_desktop.private_files import open_private
from callrec_desktop.spool import UPLOADED, Spool

MANIFEST_ATTEMPT = ".manifest-put"  # MD5s of manifests put for the call whose reply may be lost
from callrec_desktop.status import UploadStatus
from callrec_desktop.storage.base import PermanentStoreError, Store, StoreError, TransientStoreError
from callrec_desktop.core.ids import call_date
from callrec_desktop.storage.layout import arrival_key, chunk_content_type, chunk_key, manifest_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadSettings:
    initial_backoff_seconds: float = 0.5
    max_backoff_seconds: float = 60.0
    max_attempts_per_pass: int = 8
    idle_poll_seconds: float = 1.0
    provisional_manifest_seconds: float = 60.0


class Uploader:
    def __init__(
        self,
        spool: Spool,
        store: Store,
        settings: UploadSettings = UploadSettings(),
        *,
        on_status: Callable[[UploadStatus], None] | None = None,
        on_uploaded: Callable[[str, str], None] | None = None,
        status_file: Path | None = None,
        utc_now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self._spool = spool
        self._utc_now = utc_now  # for the arrival markers' day (tests move it)
        self._store = store
        self._settings = settings
        self._on_status = on_status
        self._on_uploaded = on_uploaded  # (call_id, key) after the store confirmed it
        self._status_file = status_file  # last success/error for `callrec status` in another process
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._status = UploadStatus()
        self._status_lock = threading.Lock()
        self._deadline: float | None = None  # drain()'s deadline (caller's thread), else None
        # Calls held back by a permanent error: a success elsewhere must not hide them.
        self._stuck: dict[str, str] = {}
        self._checks_summary: str | None = None  # what the server verifies (S3Store.checks), once

    # ---- any thread ---------------------------------------------------------------------
    def wake(self) -> None:
        """Something new is in the spool: start a pass now instead of at the next poll."""
        self._wake.set()

    def status(self) -> UploadStatus:
        with self._status_lock:
            return self._status

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="callrec-uploader", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def finish(self, stop_timeout: float, upload_timeout: float) -> bool:
        """Stop the worker, then make a last upload pass of at most ``upload_timeout`` seconds
        on the caller's thread, so what was recorded just before closing (a call's final
        manifest, its last chunk) reaches the store now rather than at the next start.
        Whatever is left stays in the spool. True if the spool is empty."""
        self.stop(stop_timeout)
        if self._thread is not None and self._thread.is_alive():
            return False  # never two passes at once from this process
        return self.drain(upload_timeout)

    # ---- the uploader thread (or the caller, in synchronous mode) ----------------------
    def drain(self, timeout: float) -> bool:
        """Pass until the spool is empty or ``timeout`` seconds passed. True if empty."""
        deadline = time.monotonic() + timeout
        self._deadline = deadline  # retries inside a pass give up at the deadline too
        backoff = self._settings.initial_backoff_seconds
        try:
            while True:
                if self.run_pass() and not self._spool.call_ids():
                    return True
                if time.monotonic() >= deadline:
                    return False
                time.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
                backoff = min(backoff * 2, self._settings.max_backoff_seconds)
        finally:
            self._deadline = None

    def run_pass(self) -> bool:
        """Upload everything that can be uploaded now. True if nothing failed."""
        ok = True
        for call_id in self._spool.call_ids():
            try:
                self._upload_call(call_id)
                self._stuck.pop(call_id, None)
            except StoreError as exc:
                ok = False
                if not exc.transient:
                    self._stuck[call_id] = str(exc)
                self._record_error(exc)
                if not exc.transient:
                    continue  # other calls may still go (e.g. one bad object)
                break  # the store is unreachable: stop the pass, back off
            except FileNotFoundError:
                continue  # the call folder went away under us (another uploader finished it)
        self._refresh_backlog()
        if ok and self._checks_summary is None and self._status.last_success is not None:
            # Only once the store has answered: the probe never delays an upload, nor waits on
            # a store that is down.
            self._probe_checks()
        return ok

    def _probe_checks(self) -> None:
        """Ask the store once what it verifies (``S3Store.checks``: a few PUTs to ``health/``),
        after the first pass in which the store confirmed a put, and say it once: a log warning
        if a checksum or write-once is not enforced there, and in the status file `callrec
        status` reads. Runs on the uploader's thread (or drain()'s caller)."""
        checks = getattr(self._store, "checks", None)
        if checks is None:
            self._checks_summary = ""
            return
        self._update(request_started=time.monotonic())  # a store gone quiet shows as slow
        try:
            result = checks()
        except Exception:  # the probe must never break a pass
            log.debug("store checks probe failed", exc_info=True)
            return
        finally:
            self._update(request_started=None)
        if result.problem is not None and "not allowed" not in result.problem:
            return  # the store is unreachable now: ask again on the next pass
        self._checks_summary = f"{self._store.description}: {result.summary()}"
        if result.weak:
            log.warning("store checks: %s", self._checks_summary)
        else:
            log.info("store checks: %s", self._checks_summary)
        if self._status_file is not None:
            _write_status_file(self._status_file, self.status(), self._checks_summary)

    def _loop(self) -> None:
        backoff = self._settings.initial_backoff_seconds
        while not self._stop.is_set():
            try:
                ok = self.run_pass()
            except Exception as exc:  # never die silently: report and keep trying
                log.exception("uploader pass failed")
                self._record_error(exc)
                ok = False
            if ok:
                backoff = self._settings.initial_backoff_seconds
                self._wake.wait(self._settings.idle_poll_seconds)
            else:
                wait = self._settings.max_backoff_seconds if self._status.last_error_permanent else backoff
                self._wake.wait(wait)
                backoff = min(backoff * 2, self._settings.max_backoff_seconds)
            self._wake.clear()

    def _upload_call(self, call_id: str) -> None:
        path = self._spool.call_path(call_id)
        raw = self._spool.manifest_bytes(call_id)
        if raw is None:
            return
        try:
            manifest = Manifest.from_json(raw, where=str(path / "manifest.json"))
        except ManifestError as exc:
            raise PermanentStoreError(f"spooled manifest unreadable, not uploaded: {exc}") from None
        spooled = {c.seq: c for c in self._spool.chunks(call_id) if c.sealed}
        for entry in manifest.chunks:
            chunk = spooled.get(entry.seq)
            if chunk is None:
                continue  # uploaded and deleted in an earlier pass
            size, sha = sha256_file(chunk.path)
            if (size, sha) != (entry.bytes, entry.sha256):
                self._spool.quarantine(chunk.path, call_id, f"spooled chunk differs from its manifest entry (sha256 {sha})")
                raise PermanentStoreError(f"{call_id} chunk {entry.seq}: spooled file is corrupt; quarantined")
            key = chunk_key(call_id, entry.name)
            try:
                self._put(call_id, key, chunk.path, entry.sha256, chunk_content_type(entry.name), {
                    "call-id": call_id, "seq": str(entry.seq), "first-frame": str(entry.first_frame),
                    "frames": str(entry.frames), "line": manifest.line_number, "kind": "audio",
                }, write_once=True)
            except (StoreError, FileNotFoundError):
                if not chunk.path.exists():
                    continue  # another uploader on this spool confirmed and removed it meanwhile
                raise
            chunk.path.unlink(missing_ok=True)
            fsync_dir(path)
        sha = hashlib.sha256(raw).hexdigest()
        marker = path / UPLOADED
        # "<sha256> <md5>" of the manifest the store last confirmed (older spools: sha256 only).
        done, _, done_md5 = (marker.read_text().strip() if marker.exists() else "").partition(" ")
        # The provisional manifest is rewritten locally at every seal; re-sending it each time
        # would grow the bytes sent with the square of the call's length. The store gets the
        # first one at once, then one a minute, and the final one as soon as it exists.
        recent = bool(done) and time.time() - marker.stat().st_mtime < self._settings.provisional_manifest_seconds
        if done != sha and (manifest.status == "complete" or not recent):
            md5 = hashlib.md5(raw, usedforsecurity=False).hexdigest()
            # The manifest may replace only what this PC put for the call before: the one the
            # store confirmed and the one a put was sent for when its reply was lost (or this
            # process died). Written before the put, so a crash cannot lose it.
            attempt = path / MANIFEST_ATTEMPT
            tried = attempt.read_text().split() if attempt.exists() else []
            replaces = tuple(m for m in (done_md5, *tried) if m and m != md5)
            write_atomic(attempt, " ".join(list(dict.fromkeys((*tried, md5)))[-4:]).encode())
            legacy = bool(done) and not done_md5  # a spool from before conditional writes
            self._put(call_id, manifest_key(call_id), raw, sha, "application/json", {
                "call-id": call_id, "line": manifest.line_number, "status": manifest.status, "kind": "manifest",
            }, write_once=not legacy, replaces=replaces)
            self._mark_late_arrival(call_id, manifest)
            write_atomic(marker, f"{sha} {md5}".encode())
            write_atomic(attempt, md5.encode())
        if manifest.status == "complete" and not any(c.sealed for c in self._spool.chunks(call_id)):
            if not self._spool.is_locked(call_id):
                # A ``.part`` beside a complete manifest (a recording that failed mid-chunk) is
                # audio nobody has repaired or uploaded: move it aside, never delete it.
                for c in self._spool.chunks(call_id):
                    if not c.sealed:
                        self._spool.quarantine(c.path, call_id, "unsealed chunk left beside a complete manifest")
                shutil.rmtree(path)
                fsync_dir(path.parent)

    def _mark_late_arrival(self, call_id: str, manifest: Manifest) -> None:
        """A manifest put on a later UTC day than its call started is in a date partition an
        incremental catalogue sync no longer lists: say so in today's arrivals partition
        (after the manifest, so a marker never names a manifest the store lacks)."""
        today = self._utc_now().date()
        if today <= call_date(call_id):
            return
        body = json.dumps({"call_id": call_id, "manifest": manifest_key(call_id), "status": manifest.status,
                           "uploaded_on": today.isoformat()}, sort_keys=True).encode()
        self._put(call_id, arrival_key(call_id, today), body, hashlib.sha256(body).hexdigest(), "application/json",
                  {"call-id": call_id, "kind": "arrival"})

    def _put(self, call_id: str, key: str, source, sha: str, content_type: str, metadata: dict[str, str], *,
             write_once: bool = False, replaces: tuple[str, ...] = ()) -> None:
        """Put with retries (transient errors only). ``write_once``/``replaces``: see
        ``S3Store.put``; passed only to a store that takes them (``conditional_writes``).
        Runs on the uploader's thread (or drain()'s caller)."""
        s = self._settings
        extra = {}
        if getattr(self._store, "conditional_writes", False) and (write_once or replaces):
            extra = {"write_once": write_once, "replaces": replaces}
        retrying = Retrying(
            retry=retry_if_exception_type(TransientStoreError),
            # "full jitter": a random wait up to initial × 2^n, capped (tenacity >= 8)
            wait=wait_random_exponential(multiplier=s.initial_backoff_seconds, max=s.max_backoff_seconds),
            stop=stop_after_attempt(s.max_attempts_per_pass) | self._past_deadline,
            reraise=True,
            sleep=self._interruptible_sleep,
            # Say so at once: during an outage the UI must not wait for a whole pass to give up.
            before_sleep=lambda state: (self._record_error(state.outcome.exception()), self._refresh_backlog()),
        )
        receipt = retrying(self._store_put, key, source, sha256=sha, metadata=metadata, content_type=content_type,
                           **extra)
        size = source.stat().st_size if isinstance(source, os.PathLike) else len(source)
        if receipt.sha256 != sha or receipt.size != size:
            raise PermanentStoreError(f"{self._store.description} {key}: store confirmed {receipt.size} bytes "
                                      f"sha256 {receipt.sha256}, expected {size} bytes sha256 {sha}")
        self._record_success(size)
        if self._on_uploaded is not None:
            self._on_uploaded(call_id, key)

    def _store_put(self, key: str, source, **kwargs):
        """One store request, its start in the status while it is in flight."""
        self._update(request_started=time.monotonic())
        try:
            return self._store.put(key, source, **kwargs)
        finally:
            self._update(request_started=None)

    def _past_deadline(self, retry_state) -> bool:
        """A tenacity stop condition: drain()'s deadline has passed (never on the worker)."""
        return threading.current_thread() is not self._thread and self._deadline is not None \
            and time.monotonic() >= self._deadline

    def _interruptible_sleep(self, seconds: float) -> None:
        """Backoff wait. On the worker thread ``stop()`` cuts it short; a caller's own
        ``drain()`` after ``stop()`` simply waits (so its error is the store's, not ours)."""
        if threading.current_thread() is not self._thread:
            if self._deadline is not None:
                seconds = min(seconds, max(0.0, self._deadline - time.monotonic()))
            time.sleep(seconds)
            return
        if self._stop.wait(seconds):
            raise TransientStoreError("uploader stopping")

    # ---- status ---------------------------------------------------------------------------
    def _update(self, **changes) -> None:
        with self._status_lock:
            before = self._status
            self._status = replace(self._status, **changes)
            status = self._status
        if self._on_status is not None:
            self._on_status(status)
        if self._status_file is not None and (status.last_error, status.last_success) != (before.last_error, before.last_success):
            _write_status_file(self._status_file, status, self._checks_summary)

    def _record_success(self, size: int) -> None:
        st = self._status
        changes = dict(last_success=datetime.now(timezone.utc), objects_uploaded=st.objects_uploaded + 1,
                       bytes_uploaded=st.bytes_uploaded + size)
        stuck = {k: v for k, v in self._stuck.items() if self._spool.call_path(k).exists()}
        self._stuck = stuck
        if stuck:  # still failing for some call: keep saying so
            call_id, message = next(iter(stuck.items()))
            changes.update(last_error=message if call_id in message else f"{call_id}: {message}",
                           last_error_permanent=True)
        else:
            changes.update(last_error=None, last_error_at=None, last_error_permanent=False)
        self._update(**changes)

    def _record_error(self, exc: BaseException) -> None:
        log.warning("upload failed: %s", exc)
        self._update(last_error=str(exc), last_error_at=datetime.now(timezone.utc),
                     last_error_permanent=not getattr(exc, "transient", False))

    def _refresh_backlog(self) -> None:
        self._update(**spool_backlog(self._spool))


def spool_backlog(spool: Spool) -> dict:
    """What waits in the spool: sealed chunks, their bytes, calls, the oldest chunk's age."""
    chunks = size = 0
    oldest = None
    calls = spool.call_ids()
    for call_id in calls:
        try:
            for c in spool.chunks(call_id):
                if c.sealed:
                    st = c.path.stat()
                    chunks += 1
                    size += st.st_size
                    oldest = st.st_mtime if oldest is None else min(oldest, st.st_mtime)
        except FileNotFoundError:
            continue  # uploaded and removed while we looked
    return {"backlog_chunks": chunks, "backlog_bytes": size, "backlog_calls": len(calls),
            "oldest_age_seconds": None if oldest is None else max(0.0, time.time() - oldest)}


def _write_status_file(path: Path, status: UploadStatus, checks: str | None = None) -> None:
    """Advisory, for `callrec status`: replaced atomically but not fsynced (it is not a record).
    ``checks``: what the store verifies (``Uploader._probe_checks``)."""
    doc = {
        "store_checks": checks or None,
        "last_success": status.last_success.isoformat() if status.last_success else None,
        "last_error": status.last_error,
        "last_error_at": status.last_error_at.isoformat() if status.last_error_at else None,
        "last_error_permanent": status.last_error_permanent,
    }
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open_private(tmp, "w", encoding="utf-8") as f:  # 0600: it names the last error
            f.write(json.dumps(doc))
        os.replace(tmp, path)
    except OSError:
        log.debug("could not write %s", path, exc_info=True)


def read_status_file(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
