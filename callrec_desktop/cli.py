"""``callrec``: the headless command, and its composition root.

Contract (kept stable, documented in the README)::

    callrec record --source SOURCE --script SCRIPT.json --store STORE [--codec opus|flac]
                   [--chunk-seconds N] [--realtime]
    callrec export CALL_ID --store STORE --out FILE.wav|.flac|.opus --purpose PURPOSE [--reason TEXT]
                   [--from SECONDS] [--to SECONDS]
    callrec catalog sync [--full] --store STORE [--db PATH]
    callrec find --store STORE [--caller C] [--from DATE] [--to DATE] [--line L] [--department D]
                 [--agent A] [--reason R] [--payment|--no-payment] [--min-seconds N] [--json]
    callrec notes add CALL_ID --at SECONDS --text T [--tag X]... [--label L] --purpose P --store STORE
    callrec notes change CALL_ID NOTE_ID --text T [--tag X]... [--label L] --purpose P --store STORE
    callrec notes withdraw CALL_ID NOTE_ID [--label L] --purpose P --store STORE
    callrec notes list CALL_ID [--versions] --store STORE
    callrec access-log CALL_ID --store STORE
    callrec access-log verify CALL_ID|--all --store STORE
    callrec verify --store STORE
    callrec ls --store STORE
    callrec status
    callrec credentials set|clear|test --store s3://bucket/prefix
    callrec demo

Exit codes: 0 success; 1 a recording, upload or verification fault; 2 bad input (config,
script, source, store URL, arguments), reported before any audio is touched.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from callrec_desktop import __version__
from callrec_desktop.config import Config, ConfigError, load_config, refuse_flags_against_it
from callrec_desktop.core.ids import InvalidIdError, validate_call_id
from callrec_desktop.core.manifest import END_REASONS
from callrec_desktop.logs import quiet_credential_loggers
from callrec_desktop.storage.base import StoreError
from callrec_desktop.terminal_text import EscapingWriter, shown

EXIT_FAULT = 1
EXIT_BAD_INPUT = 2

log = logging.getLogger("callrec")


class UsageError(Exception):
    """Bad input found before anything was recorded: message goes to stderr, exit 2."""


def _check_call_id(call_id: str) -> None:

    try:
        validate_call_id(call_id)
    except InvalidIdError as exc:
        raise UsageError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    """The ``callrec`` command. Everything it prints (and logs) passes through
    ``EscapingWriter``: a control character from the store reaches the terminal as a visible
    escape, never as a command; store fields in text output go through ``shown`` too."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = EscapingWriter(out), EscapingWriter(err)
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = out, err


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="callrec: %(levelname)s: %(message)s")
    quiet_credential_loggers()
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return args.func(args)
    except (UsageError, ConfigError) as exc:
        print(f"callrec: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StoreError as exc:  # the store refused or could not be reached: named in the message
        print(f"callrec: error: {exc}", file=sys.stderr)
        return EXIT_FAULT
    except KeyboardInterrupt:
        print("callrec: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="callrec", description="Headless call recorder (callrec-desktop).")
    p.add_argument("--version", action="version", version=f"callrec {__version__}")
    p.add_argument("--config", type=Path, help="an extra settings file read last")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(metavar="COMMAND")

    def store_args(sp: argparse.ArgumentParser, required: bool = True) -> None:
        sp.add_argument("--store", required=required, help="folder path or s3://bucket/prefix")
        sp.add_argument("--endpoint-url", help="S3 endpoint (default: settings [store] endpoint_url)")

    def purpose_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--purpose", required=True, metavar="PURPOSE", type=_purpose_arg,
                        help="why (privacy notice section 4): complaint, fraud_investigation, staff_training, "
                             "staff_safety or other (with --reason); logged in the call's access log")
        sp.add_argument("--reason", help="the reason in words (required with --purpose other)")

    r = sub.add_parser("record", help="record a source with a script of call events")
    r.add_argument("--source", required=True, help="an audio file (mono: agent; stereo: agent left, caller right) or 'device'")
    r.add_argument("--script", required=True, type=Path, help="JSON list of call events")
    store_args(r, required=False)
    r.add_argument("--codec", choices=("opus", "flac"))
    r.add_argument("--chunk-seconds", type=float)
    r.add_argument("--realtime", action="store_true", help="feed a file at real-time speed")
    r.add_argument("--spool", type=Path, help="spool folder (default: settings [paths] spool_dir)")
    r.add_argument("--upload-timeout", type=float, default=120.0,
                   help="seconds to wait for the upload at the end (what is left stays spooled)")
    r.set_defaults(func=cmd_record)

    e = sub.add_parser("export", help="write one recording, or part of it, as a WAV, FLAC or Ogg Opus file "
                                      "on its own timeline")
    e.add_argument("call_id")
    store_args(e)
    e.add_argument("--out", required=True, type=Path, help="the file: .wav, .flac, .opus or .ogg (Ogg Opus)")
    e.add_argument("--from", dest="from_seconds", type=float, metavar="SECONDS",
                   help="start this many seconds into the call (default: the call's start)")
    e.add_argument("--to", dest="to_seconds", type=float, metavar="SECONDS",
                   help="end this many seconds into the call (default: the call's end); clamped to the call")
    purpose_args(e)
    e.set_defaults(func=cmd_export)

    v = sub.add_parser("verify", help="check every recording's objects against its manifest")
    store_args(v)
    v.set_defaults(func=cmd_verify)

    ls = sub.add_parser("ls", help="list recordings")
    store_args(ls)
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(func=cmd_ls)

    st = sub.add_parser("status", help="upload backlog and the last upload result")
    st.add_argument("--spool", type=Path)
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)

    c = sub.add_parser("credentials", help="S3 credentials in the OS keyring")
    c.add_argument("action", choices=("set", "clear", "test"))
    store_args(c)
    c.add_argument("--access-key", help="access key id (the secret is always read from the terminal or stdin)")
    c.set_defaults(func=cmd_credentials)

    d = sub.add_parser("demo", help="record a short scripted demo call into the default store")
    d.add_argument("--store", help="store (default: the embedded folder store)")
    d.set_defaults(func=cmd_demo)

    sg = sub.add_parser("signal", help="send a call event to the running callrec-desktop (local control API)",
                        description="Send one event to callrec-desktop's local control API and print its JSON "
                                    "answer (see docs/control-api.md). Exit 0: done; 1: refused or nothing "
                                    "listening; 2: bad arguments.")
    sg.add_argument("op", metavar="OP", choices=("call-started", "payment-started", "payment-ended", "transferred",
                                                 "call-ended", "status"),
                    help="call-started, payment-started, payment-ended, transferred, call-ended or status")
    sg.add_argument("--line", help="call-started: the line's number or id")
    sg.add_argument("--caller", help="call-started: the caller's number, if known")
    sg.add_argument("--external-id", help="call-started: the call's id in the CTI or softphone")
    sg.add_argument("--to", help="transferred: the department")
    sg.add_argument("--port", type=int, help="control API port (default: the port this user's callrec-desktop "
                                             "published, else settings [control] port)")
    sg.add_argument("--token", help="API token (default: $CALLREC_CONTROL_TOKEN, else the OS keyring); "
                                    "visible to other users in the process list, so prefer those")
    sg.set_defaults(func=cmd_signal)
    _add_catalog_commands(sub, store_args, purpose_args)
    return p


# ---- composition ---------------------------------------------------------------------------


def _config(args) -> Config:
    if args.config is not None and not args.config.is_file():
        raise UsageError(f"--config {args.config}: no such file")
    env = None
    if args.config is not None:
        import os

        env = dict(os.environ, CALLREC_CONFIG=str(args.config))
    return load_config(env=env) if env is not None else load_config()


def _open_store(config: Config, url: str | None, endpoint_url: str | None = None):
    from callrec_desktop.compose import StoreSetupError, open_configured_store

    try:
        return open_configured_store(config, url, endpoint_url)
    except StoreSetupError as exc:
        raise UsageError(str(exc)) from None


def _recording_settings(config: Config, codec: str | None, chunk_seconds: float | None, channels: int):
    from callrec_desktop.compose import recording_settings

    try:
        return recording_settings(config, codec, chunk_seconds, channels)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_record(args) -> int:
    from callrec_desktop.audio.sources import AudioSourceError, open_source
    from callrec_desktop.core.script import ScriptError, parse_script

    config = _config(args)
    refuse_flags_against_it(config, (  # IT's settings apply to one-off runs too (README, Configuration)
        ("--store", "store.url", args.store), ("--endpoint-url", "store.endpoint_url", args.endpoint_url),
        ("--codec", "recorder.codec", args.codec), ("--chunk-seconds", "recorder.chunk_seconds", args.chunk_seconds),
        ("--spool", "paths.spool_dir", args.spool)))
    lines = config.lines

    def check_department(name: str) -> None:
        if name not in lines.transfer_departments:
            raise ValueError(f"unknown department {name!r}; known: {', '.join(lines.transfer_departments)}")

    try:
        text = args.script.read_bytes()
    except OSError as exc:
        raise UsageError(f"--script {args.script}: cannot read ({exc.strerror or exc})") from None
    try:
        events = parse_script(text, str(args.script), check_line=lines.find, check_department=check_department)
    except ScriptError as exc:
        raise UsageError(str(exc)) from None
    rate = config.recorder.sample_rate
    realtime = args.realtime or args.source == "device"
    block_frames = round(config.recorder.block_ms * rate / 1000) if realtime else rate // 2
    try:
        source = open_source(
            args.source, agent_device=config.audio.agent_device, caller_device=config.audio.caller_device or None,
            channels=config.audio.channels, sample_rate=rate, block_frames=block_frames, realtime=realtime,
        )
    except AudioSourceError as exc:
        raise UsageError(str(exc)) from None
    settings = _recording_settings(config, args.codec, args.chunk_seconds, source.channels)
    store = _open_store(config, args.store, args.endpoint_url)
    return _record(config, source, events, settings, store, args.spool or config.paths.spool_dir,
                   args.upload_timeout, stop_after_last_event=args.source == "device", where=str(args.script))


def _record(config: Config, source, events, settings, store, spool_dir: Path, upload_timeout: float,
            *, stop_after_last_event: bool, where: str = "script") -> int:
    """Record ``source`` through the spool into ``store``, applying the script's ``events`` as
    capture reaches them, with the automatic payment triggers ``[triggers]`` asks for (see
    ``_ScriptedSource`` for the rules). Runs on the calling thread (it is the recorder thread)."""
    from callrec_desktop.compose import identity, upload_settings
    from callrec_desktop.core.timeline import EndReason
    from callrec_desktop.recorder import Recorder
    from callrec_desktop.spool import Spool
    from callrec_desktop.triggers.compose import RecorderTarget, automatic_triggers
    from callrec_desktop.uploader import Uploader

    spool = Spool(spool_dir)
    log.debug("recording through spool %s into %s", spool.root, store.description)
    report = spool.recover()
    for call_id in report.interrupted_calls:
        print(f"callrec: recovered interrupted call {call_id} from the spool", file=sys.stderr)
    uploader = Uploader(spool, store, upload_settings(config), status_file=spool.root / "upload-status.json")
    rate = settings.codec.sample_rate
    stop_at = events[-1].frame(rate) + settings.lookbehind_frames // 4 if stop_after_last_event else None
    scripted = _ScriptedSource(source, events, config, rate, stop_at=stop_at, where=where)
    observers: list = []  # the triggers need the recorder, which takes its observers when built

    def observe(block) -> None:  # recorder thread
        for observer in observers:
            observer(block)

    recorder = Recorder(scripted, spool, settings, identity(config), listeners=[lambda e: uploader.wake()],
                        block_observers=[observe])
    scripted.recorder = recorder

    def announce(at_frame: int | None, notice: str) -> None:  # recorder thread; rare
        status = recorder.status()  # where the pause was applied (never before the call's start)
        frame = status.pause_started_frame if status.pause_started_frame is not None else at_frame
        when = f" from {frame / rate:.2f} s into the source" if frame is not None else ""
        print(f"callrec: call {status.call_id}: card key tones heard, paused for payment{when}",
              file=sys.stderr, flush=True)

    # After the script (its applier runs in the source's read, before any observer sees the block).
    observers.extend(automatic_triggers(config, RecorderTarget(recorder, on_pause=announce),
                                        channels=source.channels).block_observers)
    uploader.start()
    results = recorder.run(end_open_call_as=EndReason.HANGUP)
    uploader.stop(timeout=30)
    drained = uploader.drain(upload_timeout)
    status = uploader.status()
    for m in results.manifests:
        print(json.dumps({
            "call_id": m.call_id, "line": m.line_number, "department": m.department,
            "duration_seconds": round(m.duration_seconds, 3), "chunks": len(m.chunks),
            "pauses": len(m.pauses), "pause_sources": [p.source for p in m.pauses],
            "end_reason": m.end.reason if m.end else None,
            "transferred_to": m.end.department if m.end else None,
            "uploaded": drained, "store": store.description,
        }), flush=True)
    for note in scripted.notes:
        print(f"callrec: {note}", file=sys.stderr)
    errors = [*scripted.errors, *results.errors]
    for err in errors:
        print(f"callrec: error: {err}", file=sys.stderr)
    if source.overflows:
        print(f"callrec: warning: {source.overflows} input overflow(s): audio was lost at the device", file=sys.stderr)
    if not drained:
        print(f"callrec: error: upload to {store.description} not finished ({status.backlog_chunks} chunk(s) "
              f"still spooled in {spool.root}; last error: {status.last_error})", file=sys.stderr)
    return EXIT_FAULT if errors or not drained else 0


class _ScriptedSource:
    """The capture source of ``callrec record`` / ``callrec demo``, applying the script's
    events to the recorder as capture reaches them, so the automatic triggers' pauses
    interleave with the scripted events on one timeline.

    Rules (README, "The callrec command"):

    * Each event is applied, stamped at its own frame, when the block holding that frame is
      read: before the recorder's block observers (the DTMF trigger) see that block, and
      long before the gate reaches the frame (the look-behind holds it).
    * ``payment_started`` while a payment pause is already on (the trigger was first): merged,
      no error; the pause keeps its earlier start and its source (``automatic``).
    * ``payment_ended`` ends the payment pause on, whoever started it.
    * A trigger after a ``payment_ended`` pauses again, until the next scripted
      ``payment_ended``, ``transferred`` or ``call_ended`` (or the end of the source).
    * ``payment_ended`` with no pause on (only possible in a script with its
      ``payment_started`` left to the trigger, as ``callrec demo``'s, when the trigger did not
      pause) is skipped, with a note on stderr.
    * Events after the end of a file source are applied at their own frames when it ends (a
      call whose end lies past the audio still ends as scripted). With ``stop_at`` (``--source
      device``) capture ends once every event is applied and ``stop_at`` is reached.

    ``read`` runs on the recorder thread; the rest delegates to the wrapped source.
    """

    def __init__(self, source, events, config: Config, rate: int, *, stop_at: int | None, where: str) -> None:
        self._source = source
        self._pending = list(events)
        self._config = config
        self._rate = rate
        self._stop_at = stop_at
        self._where = where
        self._ended = False
        self.recorder = None  # set by _record once the recorder exists
        self.errors: list[str] = []
        self.notes: list[str] = []

    def __getattr__(self, name: str):  # channels, sample_rate, frames_captured, overflows, ...
        return getattr(self._source, name)

    def start(self) -> None:
        self._source.start()

    def stop(self) -> None:
        self._source.stop()

    def read(self, timeout: float | None = None):
        """Recorder thread: the next block, after applying every event stamped before its end."""
        if self._ended:
            return None
        block = self._source.read(timeout)
        if block is None:  # the file ran out: what is left of the script happens at its own frames
            self._apply_until(None)
            return None
        end = block.start_frame + len(block.data)
        self._apply_until(end)
        if self._stop_at is not None and not self._pending and end >= self._stop_at:
            self._ended = True  # --source device: the script is done; the next read ends capture
        return block

    def _apply_until(self, end: int | None) -> None:
        from callrec_desktop.core.timeline import TimelineError

        while self._pending and (end is None or self._pending[0].frame(self._rate) < end):
            e = self._pending.pop(0)
            try:
                self._apply(e)
            except TimelineError as exc:  # not expected: parse_script checked the script's own order
                self.errors.append(f"{self._where}: event[{e.index}] ({e.event} at {e.at} s): {exc}")

    def _apply(self, e) -> None:
        from callrec_desktop.core.timeline import EventSource

        r, src, f = self.recorder, EventSource.SCRIPT, e.frame(self._rate)
        if e.event == "call_started":
            line = self._config.lines.find(e.line)
            r.start_call(line.number or line.id, line.department, caller=e.caller, external_id=e.external_id,
                         source=src, at_frame=f)
        elif e.event == "payment_started":
            if r.status().payment_in_progress:
                log.info("%s: event[%d] payment_started at %s s: already paused for payment; merged",
                         self._where, e.index, e.at)
            else:
                r.start_payment(source=src, at_frame=f)
        elif e.event == "payment_ended":
            if r.status().payment_in_progress:
                r.end_payment(source=src, at_frame=f)
            else:
                self.notes.append(f"{self._where}: event[{e.index}] (payment_ended at {e.at} s): no payment pause "
                                  "was on (the DTMF trigger did not pause): nothing to end")
        elif e.event == "transferred":
            r.transfer(e.to, source=src, at_frame=f)
        elif e.event == "call_ended":
            r.end_call(source=src, at_frame=f)


def cmd_export(args) -> int:
    from callrec_desktop.archive import ArchiveError, ExportRangeError, export_call, export_range_frames

    config = _config(args)
    _check_call_id(args.call_id)
    purpose = _purpose(args.purpose, args.reason)
    store = _open_store(config, args.store, args.endpoint_url)
    start, end = args.from_seconds, args.to_seconds
    try:
        m = export_call(store, args.call_id, args.out, start_seconds=start, end_seconds=end)
    except ExportRangeError as exc:  # bad input: nothing written, nothing logged
        print(f"callrec: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ArchiveError as exc:
        print(f"callrec: error: {exc}", file=sys.stderr)
        return EXIT_FAULT
    first, last = export_range_frames(m, start, end)
    rate = m.audio.sample_rate
    detail: dict = {"out_format": args.out.suffix.lower().lstrip(".")}
    if start is not None or end is not None:  # the range actually written, clamped to the call
        detail.update(from_seconds=first / rate, to_seconds=last / rate)
    if not _log_access(config, store, "export", m.call_id, purpose, detail):
        args.out.unlink(missing_ok=True)  # every export is logged: one that cannot be, is undone
        return EXIT_FAULT
    print(json.dumps({"call_id": m.call_id, "out": str(args.out), "frames": last - first,
                      "from_seconds": first / rate, "to_seconds": last / rate,
                      "sample_rate": rate, "channels": m.audio.channels}))
    return 0


def cmd_verify(args) -> int:
    from callrec_desktop.archive import ManifestProblem, iter_manifests, verify_call

    config = _config(args)
    store = _open_store(config, args.store, args.endpoint_url)
    calls = faults = chunks = 0
    for m in iter_manifests(store):
        if isinstance(m, ManifestProblem):
            faults += 1
            print(f"FAULT {shown(m.key)}: {shown(m.problem)}")
            continue
        calls += 1
        chunks += len(m.chunks)
        problems = verify_call(store, m)
        faults += len(problems)
        for p in problems:
            print(f"FAULT {shown(p)}")
        if m.status != "complete":
            print(f"NOTE {m.call_id}: provisional manifest (call in progress, or its workstation has not finished uploading)")
    print(f"{calls} recording(s), {chunks} chunk(s) checked in {store.description}: "
          f"{'no faults' if not faults else f'{faults} fault(s)'}")
    return EXIT_FAULT if faults else 0


def cmd_ls(args) -> int:
    from callrec_desktop.archive import ManifestProblem, iter_manifests

    config = _config(args)
    store = _open_store(config, args.store, args.endpoint_url)
    bad = 0
    for m in iter_manifests(store):
        if isinstance(m, ManifestProblem):
            bad += 1
            print(f"callrec: warning: skipped {shown(m.key)}: {shown(m.problem)}", file=sys.stderr)
            continue
        end = m.end.reason if m.end else "in progress"
        if m.end and m.end.department:
            end += f" to {m.end.department}"
        if args.json:
            print(json.dumps({"call_id": m.call_id, "started_at": m.to_dict()["started_at"], "line": m.line_number,
                              "department": m.department, "caller": m.caller, "agent": m.agent,
                              "duration_seconds": round(m.duration_seconds, 3), "end": end,
                              "pauses": len(m.pauses), "status": m.status}))
        else:
            print(f"{m.call_id}  {m.started_at:%Y-%m-%d %H:%M:%S}Z  {shown(m.line_number or '-'):<13} "
                  f"{shown(m.department[:28]):<28} {m.duration_seconds:8.1f}s  {len(m.pauses)} pause(s)  {shown(end)}")
    return EXIT_FAULT if bad else 0


def cmd_status(args) -> int:
    from callrec_desktop.spool import Spool
    from callrec_desktop.uploader import read_status_file, spool_backlog

    config = _config(args)
    spool = Spool(args.spool or config.paths.spool_dir)
    backlog = spool_backlog(spool)
    last = read_status_file(spool.root / "upload-status.json")
    doc = {"spool": str(spool.root), **backlog, **last}
    if args.json:
        print(json.dumps(doc))
    else:
        age = backlog["oldest_age_seconds"]
        print(f"spool:        {spool.root}")
        print(f"backlog:      {backlog['backlog_chunks']} chunk(s), {backlog['backlog_bytes']} bytes in "
              f"{backlog['backlog_calls']} call(s)" + (f", oldest {age:.0f} s" if age is not None else ""))
        print(f"last success: {last.get('last_success') or 'never'}")
        print(f"last error:   {last.get('last_error') or 'none'}")
        if last.get("store_checks"):
            print(f"store checks: {last['store_checks']}")
    return 0


def cmd_credentials(args) -> int:
    import getpass

    from callrec_desktop.credentials import CredentialsError, CredentialStore, profile_for
    from callrec_desktop.storage.factory import StoreUrlError, parse_store_url

    config = _config(args)
    try:
        parsed = parse_store_url(args.store)
    except StoreUrlError as exc:
        raise UsageError(str(exc)) from None
    if parsed[0] != "s3":
        raise UsageError(f"--store {args.store}: credentials are only for s3:// stores")
    bucket = parsed[1]
    endpoint = args.endpoint_url or config.store.endpoint_url or None
    creds = CredentialStore()
    profile = profile_for(endpoint, bucket)
    try:
        if args.action == "set":
            access = args.access_key or input("access key id: ").strip()
            secret = getpass.getpass("secret access key: ") if sys.stdin.isatty() else sys.stdin.readline().strip()
            if not access or not secret:
                raise UsageError("both the access key id and the secret are needed")
            creds.set(profile, access, secret)
            print(f"stored credentials for {profile} in the OS keyring")
        elif args.action == "clear":
            creds.clear(profile)
            print(f"cleared credentials for {profile}")
        else:
            return _test_credentials(config, args)
    except CredentialsError as exc:
        print(f"callrec: error: {exc}", file=sys.stderr)
        return EXIT_FAULT
    return 0


def _test_credentials(config: Config, args) -> int:
    """Write one small object (write-only credentials cannot read or list)."""
    import hashlib
    from datetime import datetime, timezone

    from callrec_desktop.storage.base import StoreError

    store = _open_store(config, args.store, args.endpoint_url)
    body = json.dumps({"workstation": config.identity.workstation,
                       "at": datetime.now(timezone.utc).isoformat()}).encode()
    key = f"health/{_safe_name(config.identity.workstation)}.json"
    try:
        store.put(key, body, sha256=hashlib.sha256(body).hexdigest(), metadata={"kind": "health"},
                  content_type="application/json")
    except StoreError as exc:
        print(f"callrec: credentials test failed: {exc}", file=sys.stderr)
        return EXIT_FAULT
    print(f"ok: wrote {key} to {store.description}")
    checks = getattr(store, "checks", None)
    if checks is not None:  # what this server verifies (a few PUTs to health/checksum-probe)
        print(f"store checks: {checks().summary()}")
    return 0


def _safe_name(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:64] or "workstation"


def cmd_demo(args) -> int:
    """The bundled demo call (resources/demo, the same call ``callrec-desktop --demo`` plays):
    the DTMF trigger pauses for payment when the caller keys the card number, the scripted
    agent presses Payment finished, then the call is transferred to Housing."""
    import tempfile

    from callrec_desktop.audio.sources import AudioSourceError, FileSource
    from callrec_desktop.demo import DemoError, demo_events, load_demo

    config = _config(args)
    refuse_flags_against_it(config, (("--store", "store.url", args.store),))
    try:
        demo = load_demo(config=config)
    except DemoError as exc:
        raise UsageError(str(exc)) from None
    rate = config.recorder.sample_rate
    try:
        source = FileSource(demo.audio, rate // 2, sample_rate=rate)
    except AudioSourceError as exc:
        raise UsageError(str(exc)) from None
    settings = _recording_settings(config, None, None, source.channels)
    store = _open_store(config, args.store, None)
    when = {e.event: e for e in demo.events}
    paid, transfer = when["payment_ended"], when["transferred"]
    trigger = config.triggers.dtmf_enabled  # the demo call is stereo: the caller's side is there
    pause = ("the DTMF trigger pauses for payment on the caller's key tones" if trigger else
             f"[triggers] dtmf_enabled is false: the scripted agent pauses for payment at "
             f"{when['payment_started'].at:.1f} s")
    print(f"callrec demo: recording the {demo.seconds:.0f} s demo call on {when['call_started'].line} "
          f"({pause}, payment finished at {paid.at:.1f} s, transfer to {transfer.to} at {transfer.at:.1f} s) "
          f"into {store.description}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="callrec-demo-spool-") as tmp:
        spool_dir = config.paths.spool_dir if config.paths.spool_dir else Path(tmp)
        return _record(config, source, list(demo_events(demo, dtmf_trigger=trigger)), settings, store, spool_dir,
                       60.0, stop_after_last_event=False, where=str(demo.script))


def cmd_signal(args) -> int:
    """Send one event to the running app's control API (for CTI and softphone scripts)."""
    import os

    from callrec_desktop.control import portfile
    from callrec_desktop.control.client import ControlClient, ControlError, ControlImpostor, ControlUnreachable
    from callrec_desktop.control.token import ControlTokenError, read_token

    options = {"call-started": ("line", "caller", "external_id"), "transferred": ("to",)}.get(args.op, ())
    for name in ("line", "caller", "external_id", "to"):
        flag = "--" + name.replace("_", "-")
        if getattr(args, name) is not None and name not in options:
            raise UsageError(f"{flag} is not used by {args.op}")
    if args.op == "call-started" and not args.line:
        raise UsageError("call-started needs --line (the line's number or id)")
    if args.op == "transferred" and not args.to:
        raise UsageError("transferred needs --to (the department)")
    port = args.port
    if port is None:  # this user's running instance publishes its port (one per user on a shared PC)
        try:
            published = portfile.read(portfile.default_port_file())
        except portfile.PortFileError as exc:
            raise UsageError(f"{exc}; pass --port") from None
        port = published.port if published is not None else _config(args).control.port
    if not 1 <= port <= 65535:
        raise UsageError(f"--port: must be 1..65535, got {port}")
    token = args.token or os.environ.get("CALLREC_CONTROL_TOKEN")
    if not token:
        try:
            token = read_token()  # read-only: a client never creates the token
        except ControlTokenError as exc:
            raise UsageError(f"no control API token: {exc}; pass --token or set CALLREC_CONTROL_TOKEN") from None
    if not token:
        raise UsageError("no control API token: pass --token or set CALLREC_CONTROL_TOKEN (Settings → Control API "
                         "shows it), or start callrec-desktop once on this account to create it")
    client = ControlClient(f"http://127.0.0.1:{port}", token)
    try:
        if args.op == "call-started":
            answer = client.call_started(args.line, caller=args.caller, external_id=args.external_id)
        elif args.op == "payment-started":
            answer = client.payment_started()
        elif args.op == "payment-ended":
            answer = client.payment_ended()
        elif args.op == "transferred":
            answer = client.transferred(args.to)
        elif args.op == "call-ended":
            answer = client.call_ended()
        else:
            answer = client.status()
    except (ControlUnreachable, ControlImpostor) as exc:
        print(f"callrec: error: {exc.message}", file=sys.stderr)
        return EXIT_FAULT
    except ControlError as exc:
        print(f"callrec: error: {exc.message} (HTTP {exc.status} {exc.code})", file=sys.stderr)
        return EXIT_FAULT
    print(json.dumps(answer))
    return 0


# ---- catalogue, notes, access log (team leaders) --------------------------------------------


def _purpose_arg(text: str) -> str:
    from callrec_desktop.governance.purposes import PURPOSES

    if text not in PURPOSES:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of the privacy notice's purposes: "
                                         + ", ".join(PURPOSES))
    return text


def _purpose(code: str, reason: str | None):
    from callrec_desktop.governance.purposes import Purpose, PurposeError

    try:
        return Purpose(code, reason)
    except PurposeError as exc:
        raise UsageError(str(exc)) from None


def _log_access(config: Config, store, action: str, call_id: str, purpose, detail: dict | None,
                label: str | None = None) -> bool:
    """Record the access, chained to the call's earlier events; the author is this process's OS
    login (``governance.os_user``), the team leader's typed id (``label``, else ``[identity]
    agent_id``) only a label beside it. Runs on the main thread."""
    from callrec_desktop.governance.access_log import AccessLog, AccessLogError
    from callrec_desktop.governance.os_user import OsUserError
    from callrec_desktop.storage.base import StoreError

    try:
        AccessLog(store, label=label or config.identity.agent_id, workstation=config.identity.workstation).record(
            action, call_id, purpose.code, purpose.reason, detail)
    except (StoreError, AccessLogError, OsUserError) as exc:
        print(f"callrec: error: could not record the {action} in the access log: {exc}", file=sys.stderr)
        return False
    return True


def _add_catalog_commands(sub, store_args, purpose_args) -> None:
    def catalog_args(sp: argparse.ArgumentParser) -> None:
        store_args(sp)
        sp.add_argument("--db", type=Path, help="catalogue file (default: the user cache folder's catalog.sqlite)")

    cat = sub.add_parser("catalog", help="the team leaders' local catalogue of recordings")
    cat_sub = cat.add_subparsers(metavar="ACTION", required=True)
    cs = cat_sub.add_parser("sync", help="bring the catalogue up to date with the store")
    catalog_args(cs)
    cs.add_argument("--full", action="store_true", help="drop this store's entries and re-read every manifest")
    cs.set_defaults(func=cmd_catalog_sync)

    f = sub.add_parser("find", help="search the catalogue (syncs incrementally first)")
    catalog_args(f)
    f.add_argument("--no-sync", action="store_true", help="search the catalogue as it is")
    f.add_argument("--caller", help="caller number in any spelling")
    f.add_argument("--from", dest="date_from", type=_date_arg, help="started on or after (YYYY-MM-DD or ISO time, UTC)")
    f.add_argument("--to", dest="date_to", type=_date_arg, help="started before the end of this day (or this ISO time)")
    f.add_argument("--line")
    f.add_argument("--department")
    f.add_argument("--agent")
    f.add_argument("--reason", choices=END_REASONS, help="how the call ended")
    f.add_argument("--payment", dest="payment", action=argparse.BooleanOptionalAction, default=None,
                   help="only calls with (--payment) or without (--no-payment) a payment pause")
    f.add_argument("--min-seconds", type=float)
    f.add_argument("--max-seconds", type=float)
    f.add_argument("--tag", help="only calls with a note carrying this tag")
    f.add_argument("--limit", type=int, default=100)
    f.add_argument("--json", action="store_true", help="one JSON object per line")
    f.set_defaults(func=cmd_find)

    n = sub.add_parser("notes", help="team leaders' notes on a call")
    n_sub = n.add_subparsers(metavar="ACTION", required=True)
    na = n_sub.add_parser("add", help="add a note at a time in the call")
    na.add_argument("call_id")
    store_args(na)
    na.add_argument("--at", type=float, required=True, help="seconds into the call")
    na.add_argument("--end", type=float, help="seconds into the call where the noted span ends")
    na.add_argument("--text", required=True)
    na.add_argument("--tag", action="append", default=[], help="a short slug; repeatable")
    na.add_argument("--label", "--author", dest="label", help=_LABEL_HELP)
    purpose_args(na)
    na.set_defaults(func=cmd_notes_add)
    nc = n_sub.add_parser("change", help="replace the text and tags of your own note (the old version is kept)")
    nc.add_argument("call_id")
    nc.add_argument("note_id")
    store_args(nc)
    nc.add_argument("--text", required=True)
    nc.add_argument("--tag", action="append", default=[], help="a short slug; repeatable")
    nc.add_argument("--label", "--author", dest="label", help=_LABEL_HELP)
    purpose_args(nc)
    nc.set_defaults(func=cmd_notes_change)
    nw = n_sub.add_parser("withdraw", help="withdraw your own note (a record of it is kept)")
    nw.add_argument("call_id")
    nw.add_argument("note_id")
    store_args(nw)
    nw.add_argument("--label", "--author", dest="label", help=_LABEL_HELP)
    purpose_args(nw)
    nw.set_defaults(func=cmd_notes_withdraw)
    nl = n_sub.add_parser("list", help="list a call's notes")
    nl.add_argument("call_id")
    store_args(nl)
    nl.add_argument("--versions", action="store_true", help="every version, changed and withdrawn ones too")
    nl.add_argument("--json", action="store_true")
    nl.set_defaults(func=cmd_notes_list)

    al = sub.add_parser("access-log", help="who played, exported or annotated a call, when and why; "
                                           "'access-log verify CALL_ID|--all' checks the hash chain")
    al.add_argument("call_id", metavar="CALL_ID|verify")
    al.add_argument("verify_call_id", nargs="?", metavar="CALL_ID", help="with verify: the call to check")
    store_args(al)
    al.add_argument("--all", action="store_true", help="with verify: every call in the store's access log")
    al.add_argument("--json", action="store_true")
    al.set_defaults(func=cmd_access_log)


def _date_arg(text: str):
    from datetime import date, datetime, timezone

    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected YYYY-MM-DD or an ISO 8601 time") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _open_catalog(args):
    import platformdirs

    from callrec_desktop.catalog import Catalog

    path = args.db or Path(platformdirs.user_cache_dir("callrec-desktop", appauthor=False)) / "catalog.sqlite"
    try:
        return Catalog(path)
    except Exception as exc:  # sqlite3.Error, OSError: an unusable catalogue file
        raise UsageError(f"catalogue {path}: {exc}") from None


def _sync(catalog, store, full: bool) -> int:
    from callrec_desktop.storage.base import StoreError

    try:
        report = catalog.sync(store, full=full)
    except StoreError as exc:
        print(f"callrec: error: sync with {store.description} failed: {exc}", file=sys.stderr)
        return EXIT_FAULT
    for p in report.problems:
        print(f"callrec: warning: skipped {shown(p.key)}: {shown(p.problem)}", file=sys.stderr)
    print(f"synced {store.description}: {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
          f"{len(report.problems)} skipped, {report.partitions} partition(s)", file=sys.stderr)
    return 0


def cmd_catalog_sync(args) -> int:
    config = _config(args)
    store = _open_store(config, args.store, args.endpoint_url)
    catalog = _open_catalog(args)
    rc = _sync(catalog, store, args.full)
    if rc == 0:
        print(f"catalogue {catalog.db_path}: {catalog.count()} recording(s)")
    return rc


def cmd_find(args) -> int:
    from datetime import date, datetime, time, timedelta, timezone

    from callrec_desktop.catalog import CatalogFilter

    config = _config(args)
    store = _open_store(config, args.store, args.endpoint_url)
    catalog = _open_catalog(args)
    if not args.no_sync and _sync(catalog, store, False):
        return EXIT_FAULT

    def start(d):
        return datetime.combine(d, time(), timezone.utc) if isinstance(d, date) and not isinstance(d, datetime) else d

    date_to = args.date_to
    if isinstance(date_to, date) and not isinstance(date_to, datetime):
        date_to = date_to + timedelta(days=1)  # --to DAY: through the end of that day
    try:
        flt = CatalogFilter(
            started_from=start(args.date_from), started_to=start(date_to), line=args.line,
            department=args.department, agent=args.agent, caller=args.caller, min_seconds=args.min_seconds,
            max_seconds=args.max_seconds, end_reason=args.reason, had_payment_pause=args.payment, tag=args.tag,
            store=store.description)
        rows = catalog.query(flt, limit=max(args.limit, 0))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for r in rows:
        end = r.end_reason or "in progress"
        if r.transferred_to:
            end += f" to {r.transferred_to}"
        if args.json:
            print(json.dumps({"call_id": r.call_id, "started_at": r.started_at.isoformat().replace("+00:00", "Z"),
                              "line": r.line_number, "department": r.department, "caller": r.caller,
                              "agent": r.agent, "duration_seconds": r.duration_seconds, "end_reason": r.end_reason,
                              "transferred_to": r.transferred_to, "payment_pauses": r.payment_pause_count,
                              "status": r.status}))
        else:
            print(f"{r.call_id}  {r.started_at:%Y-%m-%d %H:%M:%S}Z  {shown(r.line_number or '-'):<13} "
                  f"{shown(r.department[:24]):<24} {shown(r.caller or '-'):<14} {r.duration_seconds:8.1f}s  {shown(end)}")
    return 0


def _change_note(args, change) -> int:
    """Run ``change(NoteStore, manifest, author)`` (add / change / withdraw), then log it with the
    purpose and the note's id. The author is this process's OS login, ``--label`` (else
    ``[identity] agent_id``) a label beside it. A note that was stored but could not be logged: exit 1."""
    from callrec_desktop.archive import ArchiveError, load_manifest
    from callrec_desktop.governance.os_user import OsUserError, os_login
    from callrec_desktop.notes import NoteError, NoteStore

    config = _config(args)
    _check_call_id(args.call_id)
    purpose = _purpose(args.purpose, args.reason)
    try:
        author = os_login()
    except OsUserError as exc:
        raise UsageError(f"who is writing this note: {exc}") from None
    store = _open_store(config, args.store, args.endpoint_url)
    label = args.label or config.identity.agent_id
    try:
        note = change(NoteStore(store, label=label), load_manifest(store, args.call_id), author)
    except NoteError as exc:
        raise UsageError(str(exc)) from None
    except ArchiveError as exc:
        print(f"callrec: error: {exc}", file=sys.stderr)
        return EXIT_FAULT
    print(json.dumps({"note_id": note.note_id, "call_id": note.call_id, "at_seconds": note.at_seconds,
                      "end_seconds": note.end_seconds, "tags": list(note.tags), "replaces": note.replaces,
                      "withdrawn": note.withdrawn}))
    return 0 if _log_access(config, store, "note", note.call_id, purpose, note.access_detail(), label) else EXIT_FAULT


_LABEL_HELP = ("a display label beside the author (default: [identity] agent_id); the author is always "
               "your OS login (--author is the old name of this option)")


def cmd_notes_add(args) -> int:
    return _change_note(args, lambda notes, manifest, author: notes.add(
        args.call_id, author, args.at, args.text, args.tag, args.end, manifest=manifest))


def cmd_notes_change(args) -> int:
    return _change_note(args, lambda notes, manifest, author: notes.revise(
        args.call_id, author, args.note_id, args.text, args.tag, manifest=manifest))


def cmd_notes_withdraw(args) -> int:
    return _change_note(args, lambda notes, manifest, author: notes.withdraw(args.call_id, author, args.note_id))


def cmd_notes_list(args) -> int:
    from callrec_desktop.notes import NoteStore

    config = _config(args)
    _check_call_id(args.call_id)
    store = _open_store(config, args.store, args.endpoint_url)
    notes = NoteStore(store).list(args.call_id)
    for key, problem in notes.problems:
        print(f"callrec: warning: skipped {shown(key)}: {shown(problem)}", file=sys.stderr)
    for n in (notes.versions if args.versions else notes):
        if args.json:
            print(json.dumps({"note_id": n.note_id, "author": n.author, "label": n.label,
                              "created_at": n.created_at.isoformat(),
                              "at_seconds": n.at_seconds, "end_seconds": n.end_seconds, "text": n.text,
                              "tags": list(n.tags), "replaces": n.replaces, "withdrawn": n.withdrawn},
                             ensure_ascii=False))
        else:
            span = f"{n.at_seconds:.1f}s" + (f"-{n.end_seconds:.1f}s" if n.end_seconds is not None else "")
            tags = f" [{', '.join(n.tags)}]" if n.tags else ""
            what = (f" (withdraws {n.replaces})" if n.withdrawn else
                    f" (replaces {n.replaces})" if n.replaces is not None else "")
            print(f"{span:>14}  {shown(n.author)}  {n.created_at:%Y-%m-%d %H:%M}Z{shown(tags)}{what}: {shown(n.text)}")
    return 0


def cmd_access_log(args) -> int:
    """``access-log CALL_ID``: the call's events, oldest first. ``access-log verify CALL_ID|--all``:
    check each call's hash chain (``governance.access_log.verify_chain``), one line per call;
    exit 1 if any call has a fault (the line names its first), 0 if none (unchained and
    concurrent events are said, not faults). Runs on the main thread."""
    from callrec_desktop.governance.access_log import AccessLog
    from callrec_desktop.governance.purposes import label

    if args.call_id == "verify":
        return _verify_access_log(args)
    if args.verify_call_id is not None or args.all:
        raise UsageError("a second CALL_ID and --all go with 'access-log verify' only")
    config = _config(args)
    _check_call_id(args.call_id)
    store = _open_store(config, args.store, args.endpoint_url)
    history = AccessLog(store, user="(reader)", workstation=config.identity.workstation).history(args.call_id)
    for key, problem in history.problems:
        print(f"callrec: warning: skipped {shown(key)}: {shown(problem)}", file=sys.stderr)
    for e in history:
        if args.json:
            print(json.dumps({"event_id": e.event_id, "at": e.at.isoformat(), "action": e.action,
                              "purpose": e.purpose, "reason": e.reason, "user": e.user, "label": e.label,
                              "workstation": e.workstation, "detail": e.detail, "seq": e.seq},
                             ensure_ascii=False))
        else:
            why = label(e.purpose) + (f": {e.reason}" if e.reason else "")
            shown_label = f" ({shown(e.label)})" if e.label and e.label != e.user else ""
            print(f"{e.at:%Y-%m-%d %H:%M:%S}Z  {shown(e.action):<6} {shown(e.user)}{shown_label} on "
                  f"{shown(e.workstation)}  ({shown(why)})")
    return EXIT_FAULT if history.problems else 0


def _verify_access_log(args) -> int:
    from callrec_desktop.governance.access_log import AccessLog

    if (args.verify_call_id is None) == (not args.all):
        raise UsageError("access-log verify needs a CALL_ID or --all (not both)")
    config = _config(args)
    if args.verify_call_id is not None:
        _check_call_id(args.verify_call_id)
    store = _open_store(config, args.store, args.endpoint_url)
    access = AccessLog(store, user="(reader)", workstation=config.identity.workstation)
    calls = access.calls() if args.all else [args.verify_call_id]
    faulty = 0
    for call_id in calls:
        report = access.verify(call_id)
        faulty += not report.ok
        if args.json:
            print(json.dumps({"call_id": call_id, "ok": report.ok, "events": report.events,
                              "unchained": report.unchained, "concurrent": report.concurrent,
                              "faults": report.faults}, ensure_ascii=False))
        else:
            print(f"{call_id}: {shown(report.summary())}")
    if args.all and not args.json:
        print(f"{len(calls)} call(s) checked, {faulty} with a fault")
    return EXIT_FAULT if faulty else 0

if __name__ == "__main__":
    raise SystemExit(main())
