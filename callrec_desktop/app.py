"""``callrec-desktop``: the call handler's window, and its composition root.

Every object is built here (or in ``compose.py``, shared with the headless ``callrec``) and
passed in; nothing is a singleton.

    callrec-desktop [--config FILE] [--demo [--exit-when-done] [--demo-speed N]] [--self-test] [--library] [-v]

Exit codes: 0 normal exit / self-test passed / demo call stored and verified; 1 self-test or
``--demo --exit-when-done`` failed; 2 bad settings or arguments (reported before any audio
device is touched).
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from callrec_desktop import __version__
from callrec_desktop.logs import PrivateRotatingFileHandler, quiet_credential_loggers
from callrec_desktop.config import Config, ConfigError, load_config, resources_dir
from callrec_desktop.private_files import tighten_at_start

EXIT_OK = 0
EXIT_FAULT = 1
EXIT_BAD_INPUT = 2
SELF_TEST_TIMEOUT_S = 30.0
SELF_TEST_SECONDS = 2.0

log = logging.getLogger("callrec_desktop.app")


# ---- hooks for the other parts of the product ----------------------------------------------------------

def _start_integrations(config: Config, desk, control_token) -> list:
    """Start the local control API and the automatic payment triggers against ``desk``.

    Runs on a worker thread once the desk has started. Returns what must be stopped on exit,
    in the order to stop it (before the desk shuts down)."""
    from callrec_desktop.triggers.compose import automatic_triggers

    started: list = []
    # The same composition as `callrec record` and the demos, plus the focus trigger.
    triggers = automatic_triggers(config, desk, channels=config.audio.channels, window=True)
    for observe in triggers.block_observers:
        desk.add_block_observer(observe)
    triggers.start()
    started.append(triggers)
    if control_token is not None:
        from callrec_desktop.control.portfile import default_port_file
        from callrec_desktop.control.server import PORTS_PER_PC, ControlServer
        from callrec_desktop.status import Fault

        # The first free port from [control] port up (one per user on a shared PC), published
        # where only this user's connectors read it.
        server = ControlServer(desk, control_token().value, port=config.control.port, ports=PORTS_PER_PC,
                               port_file=default_port_file())
        try:
            server.start()
            started.append(server)
        except OSError as exc:  # every port taken: recording goes on, the agent is told, and it stays
            log.error("control API not started: %s", exc)
            desk.report_fault(Fault.CONTROL_UNREACHABLE, f"{exc.strerror or exc}. Pause with Take payment "
                                                         "yourself; tell IT.")
    return started


def _control_token(config: Config):
    """The control API token, loaded (or created) once from the OS keyring on first use.
    None when the control API is disabled."""
    if not config.control.enabled:
        return None
    from callrec_desktop.control.token import load_or_create_token

    cache: list = []
    lock = threading.Lock()

    def get():
        with lock:
            if not cache:
                cache.append(load_or_create_token())
            return cache[0]

    return get


def _token_provider(control_token) -> Callable[[], str] | None:
    """What the settings dialog shows: the token, or why it is not kept."""
    if control_token is None:
        return None
    from callrec_desktop.control.token import NOT_STORED_MESSAGE

    def text() -> str:
        token = control_token()
        return token.value if token.stored else f"{token.value}  ({NOT_STORED_MESSAGE})"

    return text


def run_demo(window, desk, config: Config, *, speed: float = 1.0):
    """Play the bundled demo call through the real pipeline in a demo window of its own (the
    "Try the demo" button on a PC without a microphone). GUI thread; returns at once with the
    running ``DemoSession`` (the caller keeps it, and ``shutdown()``s it on exit).

    The demo never touches ``desk`` (the device desk): it gets its own Desk capturing the demo
    file instead of the device, recording into the embedded folder store (see
    ``ui/demo_runner.py``). ``desk`` is only asked whether a real call is in progress."""
    from callrec_desktop.compose import open_configured_store
    from callrec_desktop.core.timeline import CallState
    from callrec_desktop.demo import demo_config
    from callrec_desktop.ui.demo_runner import DemoSession

    if desk is not None and desk.status().state in (CallState.RECORDING, CallState.PAUSED):
        raise DemoUnavailable("A call is being recorded: finish it before trying the demo.")
    cfg = demo_config(config)
    session = DemoSession(cfg, open_configured_store(cfg), speed=speed, notice_text=_read_notice())
    if window is not None:  # beside the app's own window: over it, and no second tray icon
        session.window.setGeometry(window.geometry())
        session.window.tray.stop()
    session.start()
    return session


class DemoUnavailable(Exception):
    """The demo cannot run now; the message is fit for the agent."""


# ---- logging and crashes -------------------------------------------------------------------------------

def _setup_logging(log_dir: Path, verbose: bool) -> Path | None:
    """A rotating log file in ``log_dir`` plus warnings on stderr. Returns the log file (None if
    the folder cannot be written: then stderr only, and a warning says so)."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if verbose else logging.WARNING)
    console.setFormatter(logging.Formatter("callrec-desktop: %(levelname)s: %(message)s"))
    root.addHandler(console)
    quiet_credential_loggers()
    path = log_dir / "callrec-desktop.log"
    try:  # 0600 files in a 0700 folder whatever the umask, the rotated ones too
        handler = PrivateRotatingFileHandler(path, maxBytes=2_000_000, backupCount=5, encoding="utf-8")
    except OSError as exc:
        log.warning("cannot write the log in %s (%s); logging to stderr only", log_dir, exc)
        return None
    handler.setFormatter(fmt)
    root.addHandler(handler)
    log.info("callrec-desktop %s starting; log %s", __version__, path)
    tighten_at_start(log_dir=log_dir)  # what older versions or another umask left readable; logged
    return path


def _install_qt_message_handler() -> None:
    """Qt's own warnings go into the log, not to a console nobody reads."""
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    qt_log = logging.getLogger("qt")
    levels = {QtMsgType.QtDebugMsg: logging.DEBUG, QtMsgType.QtInfoMsg: logging.INFO,
              QtMsgType.QtWarningMsg: logging.WARNING, QtMsgType.QtCriticalMsg: logging.ERROR,
              QtMsgType.QtFatalMsg: logging.CRITICAL}

    def handler(mode, context, message) -> None:
        if message.startswith("This plugin does not support"):  # offscreen/xcb chatter, harmless
            mode = QtMsgType.QtDebugMsg
        where = f" ({context.file}:{context.line})" if context is not None and context.file else ""
        qt_log.log(levels.get(mode, logging.WARNING), "%s%s", message, where)

    qInstallMessageHandler(handler)


class ErrorReporter:
    """``sys.excepthook`` and ``threading.excepthook``: log every unexpected error and show ONE
    error dialog (never a silent death, never a cascade of dialogs). Offscreen and in the
    self-test it prints to stderr instead, and ``on_error`` is told."""

    def __init__(self, headless: bool, log_file: Path | None) -> None:
        self.headless = headless
        self.log_file = log_file
        self.adapter = None  # set once built: thread errors reach the GUI thread through it
        self.on_error: Callable[[str], None] | None = None
        self.shown = False

    def install(self) -> None:
        sys.excepthook = self.excepthook
        threading.excepthook = self.thread_excepthook

    def excepthook(self, exc_type, exc, tb) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        log.critical("unexpected error", exc_info=(exc_type, exc, tb))
        self.report(f"{exc_type.__name__}: {exc}")

    def thread_excepthook(self, args) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        log.critical("unexpected error on thread %s", name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
        message = f"{args.exc_type.__name__} on thread {name}: {args.exc_value}"
        if self.adapter is not None:
            self.adapter.report_error(message)  # shown on the GUI thread
        elif self.headless:
            self.report(message)

    def report(self, summary: str) -> None:
        """GUI thread (or headless)."""
        if self.on_error is not None:
            self.on_error(summary)
        if self.headless:
            print(f"callrec-desktop: unexpected error: {summary}", file=sys.stderr, flush=True)
            return
        if self.shown:
            return
        self.shown = True
        from PySide6.QtWidgets import QMessageBox

        where = f"\n\nDetails are in the log: {self.log_file}" if self.log_file else ""
        QMessageBox.critical(
            None, "callrec-desktop: unexpected error",
            f"Something went wrong inside callrec-desktop:\n\n{summary}{where}\n\n"
            "Check the recording state in the window. If it looks wrong, restart callrec-desktop "
            "and tell IT.")


def _fatal(problem: str, detail: str, headless: bool) -> None:
    """One clear message naming the file and key: a box on a desktop, always on stderr."""
    print(f"callrec-desktop: error: {problem}: {detail}", file=sys.stderr, flush=True)
    if not headless:
        from PySide6.QtWidgets import QMessageBox

        QMessageBox.critical(None, "callrec-desktop cannot start", f"callrec-desktop cannot start: {problem}.\n\n{detail}")


# ---- main ----------------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="callrec-desktop", description="The call handler's call recording window.")
    p.add_argument("--version", action="version", version=f"callrec-desktop {__version__}")
    p.add_argument("--config", type=Path, help="an extra settings file read last")
    p.add_argument("--demo", action="store_true",
                   help="play the bundled demonstration call through the window (no microphone needed; "
                        "recorded into this PC's embedded store)")
    p.add_argument("--exit-when-done", action="store_true",
                   help="with --demo: exit once the demo call is stored and verified (0), or failed (1)")
    p.add_argument("--demo-speed", type=float, default=1.0, metavar="N",
                   help="with --demo: play the demo call N times faster than real time (tests, screenshots)")
    p.add_argument("--self-test", action="store_true",
                   help="record 2 s of generated audio offscreen through the real window and pipeline, verify it, exit")
    p.add_argument("--library", action="store_true",
                   help="open the team leaders' Library (find, play, annotate and export recorded calls) "
                        "instead of the recording window")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _load_config(path: Path | None) -> Config:
    # Values IT's file overrode are logged by main() once the log file exists (Config.log_ignored).
    if path is None:
        return load_config(log_ignored=False)
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file")
    return load_config(env=dict(os.environ, CALLREC_CONFIG=str(path)), log_ignored=False)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, qt_args = parser.parse_known_args(argv)
    if args.exit_when_done and not args.demo:
        parser.error("--exit-when-done needs --demo")
    if not 0.1 <= args.demo_speed <= 20:
        parser.error(f"--demo-speed: must be between 0.1 and 20, got {args.demo_speed}")
    if args.self_test:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before the QApplication exists
    headless = args.self_test or os.environ.get("QT_QPA_PLATFORM") == "offscreen"

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0], *qt_args])
    app.setApplicationName("callrec-desktop")
    app.setOrganizationName("callrec-desktop")
    app.setApplicationVersion(__version__)
    try:
        config = _load_config(args.config)
    except ConfigError as exc:
        _fatal("the settings are not valid", str(exc), headless)
        return EXIT_BAD_INPUT
    log_file = _setup_logging(config.paths.log_dir, args.verbose)
    config.log_ignored()  # a handler's value that IT's machine-wide file overrode: once, into the log
    _install_qt_message_handler()
    reporter = ErrorReporter(headless, log_file)
    reporter.install()
    if args.self_test:
        return SelfTest(app, config, reporter).run()
    if args.library:
        return _run_library(app, config, args, reporter)
    if args.demo:
        return _run_demo_window(app, config, args, reporter)
    return _run_window(app, config, args, reporter)


def _read_notice() -> str:
    path = resources_dir() / "privacy-notice.txt"
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        log.error("cannot read the privacy notice %s: %s", path, exc)
        return ""


# SIGTERM / SIGHUP / logoff during a call: from the signal to the process's exit, at most this
# long (the promise is 5 s; the rest is the interpreter's and Qt's own exit).
SHUTDOWN_BUDGET_S = 4.0


def _quit_on_signals(app, on_signal: Callable[[str], None] | None = None):
    """SIGTERM, SIGINT and SIGHUP (logoff, service stop, Ctrl+C, the terminal closing) call
    ``on_signal(name)`` (default: quit) on the GUI thread, at once: Python's C-level handler
    writes the signal number to a socket (``signal.set_wakeup_fd``) that a QSocketNotifier
    watches, so Qt's loop wakes even while it waits in C. Returns what must be kept alive."""
    import signal
    import socket

    from PySide6.QtCore import QSocketNotifier

    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):  # no SIGHUP on Windows
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda *_: None)  # the work is done below, on the GUI thread
    handle = on_signal or (lambda name: app.quit())
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read)

    def on_ready(*_) -> None:
        try:
            data = reader.recv(64)
        except (BlockingIOError, InterruptedError):
            return
        for number in dict.fromkeys(data):
            try:
                name = signal.Signals(number).name
            except ValueError:
                name = f"signal {number}"
            handle(name)

    notifier.activated.connect(on_ready)
    return notifier, reader, writer


def _budget(started: float, total: float) -> Callable[[float], float]:
    """Seconds left of ``total`` since ``started`` (monotonic), keeping ``reserve`` back; at
    least 0.1 so every step is still tried."""
    import time

    return lambda reserve=0.0: max(0.1, started + total - time.monotonic() - reserve)


def _stop_all(things: list) -> None:
    for thing in reversed(things):
        try:
            (thing.stop if hasattr(thing, "stop") else thing)()
        except Exception:
            log.exception("stopping %r failed", thing)


def _run_window(app, config: Config, args, reporter: ErrorReporter) -> int:
    """The handler's window. It is shown first, with nothing of the recording engine loaded
    (numpy, PyAV, PortAudio, the keyring and boto3 take three times as long to import as Qt
    itself); a worker then opens the store, builds the desk and hands it to the window, and a
    second job recovers the spool and starts capture, uploads and the integrations."""
    from PySide6.QtCore import QSettings, QTimer

    from callrec_desktop.compose import StoreSetupError
    from callrec_desktop.credentials import CredentialStore  # light: the keyring loads on first use
    from callrec_desktop.ui.adapter import DeskAdapter
    from callrec_desktop.ui.main_window import MainWindow
    from callrec_desktop.ui.settings_services import SettingsServices

    # A store URL that cannot work was refused with the settings (``_load_config``), before
    # any window; what needs the keyring or the network is found out on the worker below.
    adapter = DeskAdapter()
    reporter.adapter = adapter
    adapter.error_reported.connect(reporter.report)
    control_token = _control_token(config)
    services = SettingsServices(credentials=CredentialStore(), token_provider=_token_provider(control_token),
                                focus_support=_focus_support)
    holder: dict = {}
    rc_override: list[int] = []

    def demo() -> None:
        if holder.get("desk") is None:
            holder["window"].show_message("The demo can start once the recorder has started.")
            return
        running = holder.get("demo")
        if running is not None and running.window.isVisible():
            running.window.raise_()
            running.window.activateWindow()
            return
        if running is not None:
            running.shutdown()
        try:
            holder["demo"] = run_demo(holder["window"], holder["desk"], config)
        except Exception as exc:  # DemoUnavailable, or a broken installation (no demo files)
            log.warning("demo: %s", exc)
            holder["window"].show_message(f"The demo cannot run: {exc}")

    window = MainWindow(None, adapter, config, notice_text=_read_notice(), services=services,
                        qsettings=QSettings(), on_demo=demo)
    holder["window"] = window
    app.setQuitOnLastWindowClosed(False)  # the compact window may be the only one shown
    window.closed.connect(app.quit)
    window.show()

    integrations: list = []

    def build():  # worker thread: keyring, boto3, numpy, PyAV, PortAudio load here
        from callrec_desktop.compose import build_desk, device_source_factory, open_configured_store

        # A configured folder that is missing (an unmounted share) is not fatal: recording goes
        # on into the spool and the window shows "central storage unreachable".
        store = open_configured_store(config, require_folder=False)
        return build_desk(config, store=store, source_factory=device_source_factory(config))

    def start() -> list:  # worker thread: spool recovery, uploader, capture, integrations
        holder["desk"].start()
        return _start_integrations(config, holder["desk"], control_token)

    def built(result) -> None:
        if not result.ok:
            if isinstance(result.error, StoreSetupError):
                log.error("the central store cannot be used: %s", result.error)
                _fatal("the central store cannot be used", str(result.error), reporter.headless)
                rc_override.append(EXIT_BAD_INPUT)
            else:
                log.error("start-up failed: %s", result.error, exc_info=result.error)
                _fatal("the recorder could not start", str(result.error), reporter.headless)
                rc_override.append(EXIT_FAULT)
            app.quit()
            return
        desk = holder["desk"] = result.value
        adapter.attach(desk)
        window.attach_desk(desk)
        adapter.run_task(start, started, name="desk-start")

    def started(result) -> None:
        if result.ok:
            integrations.extend(result.value)
        else:
            log.error("start-up failed: %s", result.error, exc_info=result.error)
            reporter.report(f"start-up failed: {result.error}")

    ending: list[float] = []  # when the session began to end (a signal, logoff), if it did

    def end_session(why: str) -> None:
        """SIGTERM / SIGHUP / SIGINT, or the desktop session ending: nobody is there to answer
        a question. The open call ends now as ``shutdown`` (the recorder seals it), the window
        closes without asking, and the app exits within SHUTDOWN_BUDGET_S. GUI thread."""
        import time

        if not ending:
            ending.append(time.monotonic())
            log.warning("%s: ending any call as 'shutdown' and closing without asking", why)
        if holder.get("desk") is not None and holder["desk"].end_for_shutdown():
            log.info("the call in progress was ended (shutdown)")
        window.close_without_asking()
        app.exit(0)  # also leaves the event loop of a question that is open, if any

    def on_commit_data_request(manager) -> None:
        """The desktop session is ending (logoff, shutdown): Qt asks us to save our data. The
        call ends now (the session manager may kill us soon after) and no close will ask."""
        log.warning("the desktop session is ending: ending any call as 'shutdown'")
        if holder.get("desk") is not None:
            holder["desk"].end_for_shutdown()
        window.session_ending()

    signal_handling = _quit_on_signals(app, end_session)  # noqa: F841 - kept alive for the event loop
    app.commitDataRequest.connect(on_commit_data_request)
    log.info("ready")
    QTimer.singleShot(0, _log_window_shown)
    # On the loop's first turn, once the window is up: a worker importing the engine meanwhile
    # would hold the GIL while the window is being built and painted.
    QTimer.singleShot(0, lambda: adapter.run_task(build, built, name="desk-build"))
    rc = app.exec()
    log.info("closing: stopping capture and uploads")
    # After a signal or logoff everything below fits in SHUTDOWN_BUDGET_S from the signal;
    # an agent's own close waits longer for the last uploads.
    left = _budget(ending[0], SHUTDOWN_BUDGET_S) if ending else None
    if holder.get("demo") is not None:
        holder["demo"].shutdown()
    _stop_all(integrations)
    if not adapter.shutdown(**({"timeout": left(2.5)} if left else {})):
        log.warning("a background job was still running at exit")
    if holder.get("desk") is not None:  # built, and its start job has run (adapter.shutdown waited)
        timeouts = {"timeout": left(1.0) * 0.75, "upload_timeout": left(1.0) * 0.25} if left else {}
        if holder["desk"].shutdown(**timeouts):
            log.info("closed: everything recorded has been uploaded")
        else:
            log.warning("closed: recordings are still waiting in the spool; they upload at the next start")
    if ending:
        import time

        log.info("closed %.1f s after the session began to end", time.monotonic() - ending[0])
    return rc_override[0] if rc_override else rc


def _focus_support() -> str | None:
    from callrec_desktop.triggers.focus import focus_support

    return focus_support()


def _run_library(app, config: Config, args, reporter: ErrorReporter) -> int:
    """``--library``: the team leaders' Library window. No recorder, no device capture.

    Team leaders use their own read credentials for the store (read + list, put without
    delete), kept in the OS keyring like the agents' write-only ones. The author of their notes
    and access events is their OS login (``governance.os_user``); ``config.identity.agent_id``
    is only a label shown beside it."""
    import platformdirs
    from PySide6.QtCore import QTimer

    from callrec_desktop.catalog import Catalog
    from callrec_desktop.compose import StoreSetupError, open_configured_store
    from callrec_desktop.ui.adapter import DeskAdapter
    from callrec_desktop.ui.library_window import LibraryWindow
    from callrec_desktop.ui.settings_services import PlaybackChoice

    try:
        store = open_configured_store(config)
    except StoreSetupError as exc:
        _fatal("the central store cannot be used", str(exc), reporter.headless)
        return EXIT_BAD_INPUT
    cache = Path(platformdirs.user_cache_dir("callrec-desktop", appauthor=False))
    catalog = Catalog(cache / "catalog.sqlite")
    adapter = DeskAdapter()
    reporter.adapter = adapter
    adapter.error_reported.connect(reporter.report)
    window = LibraryWindow(catalog, store, adapter, label=config.identity.agent_id,
                           workstation=config.identity.workstation, cache_dir=cache / "waveforms",
                           lines=config.lines, playback=PlaybackChoice(config))
    window.show()
    signal_timer = _quit_on_signals(app)  # noqa: F841 - kept alive for the event loop
    log.info("ready")
    QTimer.singleShot(0, _log_window_shown)
    rc = app.exec()
    window.player.clear()
    adapter.shutdown()
    catalog.close()
    return rc


def _log_window_shown() -> None:
    """First turn of the event loop after ``window.show()``: the window is up. Logged at INFO
    (bench/bench_startup.py and the bundle's smoke test wait for this line with ``-v``)."""
    log.info("window shown")


def _run_demo_window(app, config: Config, args, reporter: ErrorReporter) -> int:
    """``--demo``: the demo call's window is the app's only window. No device is opened, and
    neither the control API nor the window-title trigger starts (they belong to real calls).
    With ``--exit-when-done``: prints ``demo: ok <call_id>`` and exits 0 once the call is in
    the store and verifies, or ``demo: FAILED: <reason>`` and exits 1."""
    from PySide6.QtCore import QTimer

    from callrec_desktop.compose import StoreSetupError
    from callrec_desktop.demo import DemoError

    try:
        session = run_demo(None, None, config, speed=args.demo_speed)
    except (DemoError, StoreSetupError, OSError) as exc:
        _fatal("the demo call cannot be played", str(exc), reporter.headless)
        return EXIT_FAULT
    reporter.adapter = session.adapter
    session.adapter.error_reported.connect(reporter.report)
    app.setQuitOnLastWindowClosed(False)
    session.window.closed.connect(app.quit)
    outcome: dict = {}

    def finished(manifest) -> None:
        outcome["rc"] = EXIT_OK
        print(f"demo: ok {manifest.call_id}", flush=True)
        if args.exit_when_done:
            app.exit(EXIT_OK)

    def failed(reason: str) -> None:
        outcome["rc"] = EXIT_FAULT
        print(f"demo: FAILED: {reason}", flush=True)
        if args.exit_when_done:
            app.exit(EXIT_FAULT)

    session.runner.finished.connect(finished)
    session.runner.failed.connect(failed)
    if args.exit_when_done:
        reporter.on_error = lambda summary: failed(f"unexpected error: {summary}")
    signal_timer = _quit_on_signals(app)  # noqa: F841 - kept alive for the event loop
    log.info("ready")
    QTimer.singleShot(0, _log_window_shown)
    rc = app.exec()
    log.info("closing the demo")
    session.shutdown()
    if args.exit_when_done and "rc" not in outcome:
        return EXIT_FAULT  # closed or signalled before the demo call was stored
    return rc


# ---- self-test -----------------------------------------------------------------------------------------

class SelfTest:
    """``--self-test``: the real window, Desk, recorder, spool, uploader and a folder store, fed by a
    generated two-tone WAV at real-time pace. Driven by QTimers; no sleeps. Prints
    ``self-test: ok <call_id>`` (exit 0) or ``self-test: FAILED: <reason>`` (exit 1)."""

    def __init__(self, app, config: Config, reporter: ErrorReporter) -> None:
        self.app = app
        self.config = config
        self.reporter = reporter
        reporter.on_error = lambda summary: self.fail(f"unexpected error: {summary}")
        self.rc: int | None = None
        self.phase = "starting"
        self.call_id: str | None = None
        self.saw_recording = False
        self.checking = False

    def run(self) -> int:
        from PySide6.QtCore import QTimer

        with tempfile.TemporaryDirectory(prefix="callrec-selftest-") as tmp:
            try:
                self._build(Path(tmp))
            except Exception as exc:
                print(f"self-test: FAILED: cannot set up: {exc}", flush=True)
                return EXIT_FAULT
            self.poll = QTimer()
            self.poll.setInterval(10)
            self.poll.timeout.connect(self._step)
            self.deadline = QTimer()
            self.deadline.setSingleShot(True)
            self.deadline.timeout.connect(lambda: self.fail(f"timed out after {SELF_TEST_TIMEOUT_S:.0f} s in phase "
                                                            f"{self.phase}"))
            self.deadline.start(int(SELF_TEST_TIMEOUT_S * 1000))
            self.window.show()
            self.adapter.run_task(self.desk.start, self._on_started, name="self-test-start")
            self.app.exec()
            self.poll.stop()
            self.deadline.stop()
            self.adapter.shutdown()
            self.desk.shutdown()
        return EXIT_FAULT if self.rc is None else self.rc

    def _build(self, root: Path) -> None:
        import numpy as np
        import soundfile as sf

        from callrec_desktop.audio.sources import FileSource
        from callrec_desktop.compose import block_frames, build_desk
        from callrec_desktop.storage.folder import FolderStore
        from callrec_desktop.ui.adapter import DeskAdapter
        from callrec_desktop.ui.main_window import MainWindow

        rate = self.config.recorder.sample_rate
        self.rate = rate
        self.block = block_frames(self.config)
        # Two seconds of call, plus a short tail so "end call" is pressed while audio still flows.
        t = np.arange(round((SELF_TEST_SECONDS + 0.5) * rate)) / rate
        audio = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 1250 * t)], axis=1)
        wav = root / "two-tone.wav"
        sf.write(wav, audio.astype(np.float32), rate, subtype="PCM_16")
        (root / "store").mkdir()
        self.store = FolderStore(root / "store")
        self.desk = build_desk(self.config, store=self.store, spool_dir=root / "spool", channels=2,
                               source_factory=lambda: FileSource(wav, self.block, realtime=True, sample_rate=rate))
        self.adapter = DeskAdapter(self.desk)
        self.desk.add_listener(self.adapter.emit_status)
        self.reporter.adapter = self.adapter
        self.adapter.error_reported.connect(self.reporter.report)
        self.window = MainWindow(self.desk, self.adapter, self.config, notice_text=_read_notice(),
                                 confirm=lambda *a: True, offer_settings=False)

    def _on_started(self, result) -> None:
        if not result.ok:
            self.fail(f"the desk did not start: {result.error}")
            return
        self.phase = "waiting for capture"
        self.poll.start()

    def _step(self) -> None:
        try:
            self._advance()
        except Exception as exc:
            log.exception("self-test step failed")
            self.fail(f"{type(exc).__name__}: {exc}")

    def _advance(self) -> None:
        status = self.desk.status()
        if self.phase == "waiting for capture":
            if _capture_failed(status):
                self.fail(f"capture failed: {status.faults}")
            elif status.capturing:
                line = self.config.lines.lines[0]
                # Stamped at frame 0: nothing has left the look-behind buffer yet.
                self.call_id = self.desk.start_call(line.id, caller="07700900123", at_frame=0)
                self.phase = "recording"
        elif self.phase == "recording":
            self.saw_recording = self.saw_recording or self.window.view.kind == "recording"
            frame = self.desk.current_frame()
            if frame is not None and frame >= SELF_TEST_SECONDS * self.rate:
                self.desk.end_call(at_frame=round(SELF_TEST_SECONDS * self.rate))
                self.phase = "uploading"
                self.poll.setInterval(100)
        elif self.phase == "uploading" and not self.checking:
            if not self.saw_recording:
                self.fail("the window never showed \"Recording\" during the call")
                return
            self.checking = True
            store, call_id = self.store, self.call_id
            from callrec_desktop.archive import verified_final_manifest

            self.adapter.run_task(lambda: verified_final_manifest(store, call_id), self._on_checked,
                                  name="self-test-check")

    def _on_checked(self, result) -> None:
        self.checking = False
        if not result.ok:
            self.fail(f"{result.error}")
            return
        manifest = result.value
        if manifest is None:
            return  # not uploaded yet; poll again
        frames, want = manifest.frames, round(SELF_TEST_SECONDS * self.rate)
        if abs(frames - want) > self.block:
            self.fail(f"recorded {frames} frames, expected {want} ± {self.block}")
        elif manifest.end is None or manifest.end.reason != "hangup":
            self.fail(f"the recording ended as {manifest.end and manifest.end.reason}, expected hangup")
        elif self.window.view.kind != "ended":
            self.fail(f"the window shows {self.window.view.title!r} after the call ended")
        else:
            self.finish(EXIT_OK, f"self-test: ok {manifest.call_id}")

    def fail(self, reason: str) -> None:
        self.finish(EXIT_FAULT, f"self-test: FAILED: {reason}")

    def finish(self, rc: int, line: str) -> None:
        if self.rc is not None:
            return
        self.rc = rc
        print(line, flush=True)
        (log.info if rc == EXIT_OK else log.error)("%s", line)
        if hasattr(self, "window"):
            self.window.close()
        self.app.exit(rc)


def _capture_failed(status) -> bool:
    from callrec_desktop.desk import Fault

    return Fault.NO_DEVICE in status.faults or Fault.DEVICE_LOST in status.faults


if __name__ == "__main__":
    raise SystemExit(main())
