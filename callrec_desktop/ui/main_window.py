"""The call handler's window: the line, the recording state in large words, live input
levels, the call buttons, upload health and fault banners; a compact always-on-top window;
a tray icon.

It drives one ``Desk`` and observes it through ``DeskAdapter.status_changed`` (GUI thread).
Desk operations only stamp an event and return, so buttons call them directly; everything
that does I/O (restarting capture, settings) runs through ``adapter.run_task``.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from callrec_desktop.config import Config, Line, Lines
from callrec_desktop.core.timeline import CallState
from callrec_desktop.status import DeskError, DeskStatus, Fault, UploadStatus
from callrec_desktop.ui.adapter import DeskAdapter, TaskResult, emit_signal
from callrec_desktop.ui.settings_services import SettingsServices
from callrec_desktop.ui.tray import TrayIcon
from callrec_desktop.ui.user_settings import load_snapshot, restore_geometry, save_geometry
from callrec_desktop.ui.widgets import (
    CONTROL_UNREACHABLE_TEXT,
    NO_DEVICE_TEXT,
    PAYMENT_EXPLANATION,
    SHORT_REASON,
    ElidedLabel,
    FaultBanner,
    InfoBar,
    LevelMeter,
    StateBanner,
    StateView,
    describe_state,
    format_duration,
    make_labels_plain,
    paint_icon,
    safe_tooltip,
    state_icon,
)

if TYPE_CHECKING:  # the engine loads on a worker after the window is shown
    from callrec_desktop.desk import Desk
    from callrec_desktop.ui.help import HelpDialog
    from callrec_desktop.ui.settings_dialog import SettingsDialog

log = logging.getLogger(__name__)

# Injectable interactions (tests pass their own; defaults are real dialogs).
Confirm = Callable[[QWidget, str, str, str], bool]  # (parent, title, text, accept button) -> accepted
AskLine = Callable[[QWidget, Lines], tuple[Line, str | None] | None]
AskDepartment = Callable[[QWidget, tuple[str, ...]], str | None]

SHORTCUTS = {
    "start": "Ctrl+N",
    "pay": "Ctrl+P",
    "paid": "Ctrl+Shift+P",
    "transfer": "Ctrl+T",
    "end": "Ctrl+E",
    "compact": "Ctrl+Shift+M",
    "settings": "Ctrl+,",
}

FAULT_TITLES = {
    Fault.NO_DEVICE: NO_DEVICE_TEXT,
    Fault.DEVICE_LOST: "Microphone or headset lost — calls are not being recorded",
    Fault.DISK_FULL: "This PC's disk is full — recording stopped",
    Fault.RECORDING_FAILED: "Recording failed — the call is not being recorded",
    Fault.STORAGE_UNREACHABLE: "Central storage unreachable — recordings are kept safely on this PC",
    Fault.CONTROL_UNREACHABLE: CONTROL_UNREACHABLE_TEXT,
}
FAULT_ADVICE = {
    Fault.NO_DEVICE: "Plug in a headset, then press Try again.",
    Fault.DEVICE_LOST: "Check that the headset is plugged in, then press Try again. Nothing is recorded until then.",
    Fault.DISK_FULL: "Recording stopped because this PC's disk is full. Tell IT now.",
    Fault.RECORDING_FAILED: "Recording stopped because of an error. Tell IT now; the details are in the log.",
    Fault.STORAGE_UNREACHABLE: "You can carry on: recordings upload by themselves when central storage is back.",
    Fault.CONTROL_UNREACHABLE: "Press Take payment yourself before the caller gives card details, and tell IT now. "
                               "Restarting callrec-desktop may help.",
}
# An upload in flight this long without an answer (an endpoint that drops packets, a server
# that accepted the connection and went quiet) is shown before the request times out.
STORAGE_SLOW_SECONDS = 1.0
STORAGE_SLOW_TITLE = "Central storage is slow to answer — recordings are kept safely on this PC"
STORAGE_SLOW_ADVICE = "You can carry on: recordings upload by themselves as soon as it answers."

FAULT_ORDER = (Fault.NO_DEVICE, Fault.DEVICE_LOST, Fault.DISK_FULL, Fault.RECORDING_FAILED, Fault.CONTROL_UNREACHABLE,
               Fault.STORAGE_UNREACHABLE)

GEOMETRY_KEY = "main_window/geometry"
COMPACT_GEOMETRY_KEY = "compact_window/geometry"


def native(shortcut: str) -> str:
    return QKeySequence(shortcut).toString(QKeySequence.SequenceFormat.NativeText)


# ---- default interactions ---------------------------------------------------------------------------

def _dialog(name: str) -> Callable:
    """A default interaction from ``ui.call_dialogs``, imported when first used: its Qt classes
    (message boxes, dialogs, lists) are not needed to show the window, and PySide6 builds each
    class's enums on first import, which would delay the first frame."""
    def interact(*args):
        from callrec_desktop.ui import call_dialogs

        return getattr(call_dialogs, name)(*args)
    return interact


# ---- upload health in words ---------------------------------------------------------------------------

def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def _size(n: int) -> str:
    if n < 1_000_000:
        return f"{max(1, round(n / 1000)) if n else 0} KB"
    return f"{n / 1e6:.1f} MB"


def describe_upload(u: UploadStatus) -> tuple[str, str | None]:
    """(backlog sentence, last error sentence or None)."""
    if u.backlog_chunks == 0:
        text = "Uploads: all recordings are in central storage."
    else:
        text = (f"Uploads: {u.backlog_chunks} chunk{'s' if u.backlog_chunks != 1 else ''} "
                f"({_size(u.backlog_bytes)}) waiting on this PC")
        if u.oldest_age_seconds is not None:
            text += f", oldest {_age(u.oldest_age_seconds)}"
        text += "."
    if u.last_success is not None:
        text += f" Last upload {u.last_success.astimezone():%H:%M}."
    error = None
    if u.last_error:
        when = f" at {u.last_error_at.astimezone():%H:%M}" if u.last_error_at else ""
        error = f"Last upload error{when}: {u.last_error}"
    return text, error


# ---- the compact window -------------------------------------------------------------------------------

class CompactWindow(QWidget):
    """Small, always on top: the state, the line, the payment buttons. Closing it returns to the
    full window."""

    closed = Signal()

    def __init__(self, parent: QWidget, take_payment: QAction, payment_finished: QAction, compact: QAction) -> None:
        flags = (Qt.WindowType.Window | Qt.WindowType.WindowStaysOnTopHint | Qt.WindowType.CustomizeWindowHint
                 | Qt.WindowType.WindowTitleHint | Qt.WindowType.WindowCloseButtonHint)
        super().__init__(parent, flags)
        self.setWindowTitle("callrec-desktop")
        self.setObjectName("compactWindow")
        self.state = StateBanner(self, compact=True)
        self.line = QLabel(self)
        self.line.setWordWrap(True)
        self.line.setAccessibleName("Current line")
        self.warning = QLabel(self)
        self.warning.setStyleSheet("color: #B54708; font-weight: bold;")
        self.warning.hide()
        self.pay = ActionButton(take_payment, self)
        self.paid = ActionButton(payment_finished, self)
        self.full = QPushButton("Full window", self)
        self.full.setToolTip(f"Back to the full window ({native(SHORTCUTS['compact'])})")
        self.full.clicked.connect(compact.trigger)
        buttons = QHBoxLayout()
        buttons.setSpacing(8)
        buttons.addWidget(self.pay)
        buttons.addWidget(self.paid)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.setSpacing(8)
        layout.addWidget(self.state)
        layout.addWidget(self.line)
        layout.addWidget(self.warning)
        layout.addLayout(buttons)
        layout.addWidget(self.full, 0, Qt.AlignmentFlag.AlignRight)
        for action in (take_payment, payment_finished, compact):
            self.addAction(action)  # shortcuts work while this window is the active one
        self.setMinimumWidth(400)
        self._quitting = False

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._quitting:
            emit_signal(self.closed)
        super().closeEvent(event)


class ActionButton(QPushButton):
    """A push button that mirrors a QAction: text, tooltip, enabled; clicking triggers it."""

    def __init__(self, action: QAction, parent: QWidget | None = None, *, label: str | None = None) -> None:
        super().__init__(parent)
        self.action = action
        self._label = label
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumHeight(52)
        self.clicked.connect(action.trigger)
        action.changed.connect(self._sync)
        self._sync()

    def _sync(self) -> None:
        text = self._label or self.action.text().replace("&", "")
        shortcut = self.action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        self.setText(f"{text}\n{shortcut}" if shortcut else text)
        self.setToolTip(safe_tooltip(self.action.toolTip()))
        self.setEnabled(self.action.isEnabled())
        self.setAccessibleName(text)
        self.setAccessibleDescription(self.action.toolTip())


# ---- the main window ------------------------------------------------------------------------------------

class MainWindow(QMainWindow):
    """The call handler's window. Build it on the GUI thread, with the desk or (at start-up,
    so the window is on screen before the recording engine has loaded) with ``None`` and then
    ``attach_desk()``; until then it says it is starting and every operation is refused.

    ``closed`` is emitted once the window accepted a close (the app quits on it).
    """

    closed = Signal()

    def __init__(
        self,
        desk: Desk | None,
        adapter: DeskAdapter,
        config: Config,
        *,
        notice_text: str = "",
        services: SettingsServices | None = None,
        confirm: Confirm | None = None,
        choose_line: AskLine | None = None,
        choose_department: AskDepartment | None = None,
        qsettings: QSettings | None = None,
        on_demo: Callable[[], None] | None = None,
        no_signal_seconds: float = 3.0,
        meter_interval_ms: int = 66,
        offer_settings: bool = True,
    ) -> None:
        super().__init__()
        self.desk = desk
        self.adapter = adapter
        self.config = config
        self._notice_text = notice_text
        self._services = services
        self._confirm = confirm or _dialog("ask_confirmation")
        self._choose_line = choose_line or _dialog("ask_line")
        self._choose_department = choose_department or _dialog("ask_department")
        self._qsettings = qsettings
        self._on_demo = on_demo
        self.status = DeskStatus()
        self.view: StateView = describe_state(self.status, time.monotonic())
        self._dismissed_notice: str | None = None
        self._last_levels_at: float | None = None
        self._closing = False
        self._ending_session = False  # set by close_without_asking(): no question on close
        self.settings_dialog: SettingsDialog | None = None
        self.help_dialog: HelpDialog | None = None
        self._settings_loading = False

        self.setWindowTitle("callrec-desktop")
        self.setWindowIcon(state_icon("idle"))
        self._build_actions(offer_settings)
        self._build_ui(no_signal_seconds)
        self._build_menus()
        self.compact = CompactWindow(self, self.take_payment_action, self.payment_finished_action, self.compact_action)
        self.compact.closed.connect(self._on_compact_closed)
        # Line, department, caller, device and fault texts come from the control API, settings,
        # devices and the store: every label shows them as text, never as HTML (the compact
        # window is a child too).
        make_labels_plain(self)
        self.tray = TrayIcon(self, [self.take_payment_action, self.payment_finished_action, None,
                                    self.compact_action, None, self.quit_action])
        self.tray.show_window_requested.connect(self._on_tray_show_window_requested)
        self.tray.start()

        adapter.status_changed.connect(self._on_adapter_status_changed)
        adapter.error_reported.connect(self._on_adapter_error_reported)
        self.tick = QTimer(self)
        self.tick.setInterval(meter_interval_ms)
        self.tick.timeout.connect(self._on_tick_timeout)
        self.tick.start()

        self.resize(760, 660)
        if qsettings is not None:
            restore_geometry(qsettings, GEOMETRY_KEY, self)
            restore_geometry(qsettings, COMPACT_GEOMETRY_KEY, self.compact)
        self.render(desk.status() if desk is not None else DeskStatus())

    def attach_desk(self, desk: Desk) -> None:
        """The desk, once built (GUI thread). The adapter must already report its statuses."""
        self.desk = desk
        self.render(desk.status())

    # ---- construction ------------------------------------------------------------------------
    def _action(self, text: str, shortcut: str | None, tip: str, slot=None) -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
            tip = f"{tip} ({native(shortcut)})"
        action.setToolTip(tip)
        action.setStatusTip(tip)
        if slot is not None:
            action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self, offer_settings: bool) -> None:
        s = SHORTCUTS
        self.start_call_action = self._action("Start call", s["start"], "Choose the line and start recording",
                                              self.start_call)
        self.take_payment_action = self._action("Take payment", s["pay"],
                                                "Pause recording now so card details are not recorded",
                                                self.take_payment)
        self.payment_finished_action = self._action("Payment finished", s["paid"],
                                                    "The payment is done: resume recording", self.payment_finished)
        self.transfer_action = self._action("Transfer…", s["transfer"],
                                            "Transfer the call to a department; recording stops at the transfer",
                                            self.transfer)
        self.end_call_action = self._action("End call", s["end"], "End the call and stop recording", self.end_call)
        self.resume_action = self._action("Resume recording", None, "Resume a paused recording", self.resume)
        self.compact_action = self._action("Compact always-on-top window", s["compact"],
                                           "Show a small window that stays on top")
        self.compact_action.setCheckable(True)
        self.compact_action.toggled.connect(self._on_compact_action_toggled)
        self.settings_action = self._action("Settings…", s["settings"], "Devices, storage, payment pause",
                                            self.open_settings)
        self.settings_action.setVisible(offer_settings)
        self.help_action = self._action("How calls are recorded", "F1",
                                        "What is recorded, what is not, and the privacy notice", self.show_help)
        self.quit_action = self._action("Quit", "Ctrl+Q", "Close callrec-desktop", self.close)

    def _build_ui(self, no_signal_seconds: float) -> None:
        central = QWidget(self)
        central.setObjectName("central")
        outer = QVBoxLayout(central)
        outer.setContentsMargins(24, 20, 24, 16)
        outer.setSpacing(14)

        # fault banners and messages, above everything: they must not be missed
        self.banner_area = QVBoxLayout()
        self.banner_area.setSpacing(8)
        self.fault_banners: dict[Fault, FaultBanner] = {}
        for fault in FAULT_ORDER:
            banner = FaultBanner(FAULT_TITLES[fault], FAULT_ADVICE[fault],
                                 "warning" if fault is Fault.STORAGE_UNREACHABLE else "error", central)
            if fault in (Fault.NO_DEVICE, Fault.DEVICE_LOST):
                retry = banner.add_action_button("Try again")
                retry.setToolTip("Look for the microphone or headset again")
                retry.clicked.connect(self.retry_capture)
                banner.retry_button = retry  # type: ignore[attr-defined]
            if fault is Fault.NO_DEVICE and self._on_demo is not None:
                demo = banner.add_action_button("Try the demo")
                demo.setToolTip("See how the window works with a recorded demonstration call")
                demo.clicked.connect(self._on_demo_button_clicked)
                banner.demo_button = demo  # type: ignore[attr-defined]
            banner.hide()
            self.fault_banners[fault] = banner
            self.banner_area.addWidget(banner)
        self.storage_slow_banner = FaultBanner(STORAGE_SLOW_TITLE, STORAGE_SLOW_ADVICE, "warning", central)
        self.storage_slow_banner.hide()
        self.banner_area.addWidget(self.storage_slow_banner)
        outer.addLayout(self.banner_area)
        self.notice_bar = InfoBar(central)
        self.notice_bar.dismissed.connect(self._on_notice_bar_dismissed)
        outer.addWidget(self.notice_bar)
        self.error_bar = InfoBar(central, kind="error")
        outer.addWidget(self.error_bar)

        # the line
        header = QGridLayout()
        header.setHorizontalSpacing(16)
        header.setVerticalSpacing(2)
        caption = QLabel("LINE", central)
        caption.setStyleSheet("color: #667085; font-weight: bold; letter-spacing: 1px;")
        self.line_number = QLabel(central)
        self.line_number.setObjectName("lineNumber")
        self.line_number.setStyleSheet("font-size: 20pt; font-weight: bold; color: #101828;")
        self.line_number.setAccessibleName("Line number")
        self.department = QLabel(central)
        self.department.setStyleSheet("font-size: 13pt; color: #344054;")
        self.department.setWordWrap(True)
        self.department.setAccessibleName("Department")
        self.caller = QLabel(central)
        self.caller.setStyleSheet("font-size: 11pt; color: #475467;")
        self.caller.setAccessibleName("Caller")
        timer_caption = QLabel("CALL TIME", central)
        timer_caption.setStyleSheet("color: #667085; font-weight: bold; letter-spacing: 1px;")
        timer_caption.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.call_timer = QLabel(central)
        self.call_timer.setObjectName("callTimer")
        self.call_timer.setStyleSheet("font-size: 20pt; font-weight: bold; color: #101828;")
        self.call_timer.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.call_timer.setAccessibleName("Call time")
        header.addWidget(caption, 0, 0)
        header.addWidget(timer_caption, 0, 1)
        header.addWidget(self.line_number, 1, 0)
        header.addWidget(self.call_timer, 1, 1)
        header.addWidget(self.department, 2, 0, 1, 2)
        header.addWidget(self.caller, 3, 0, 1, 2)
        header.setColumnStretch(0, 1)
        outer.addLayout(header)

        # the state, large
        self.state_banner = StateBanner(central)
        self.state_banner.setMinimumHeight(120)
        outer.addWidget(self.state_banner)
        self.state_label = self.state_banner.title  # the label screen readers announce

        # levels
        levels = QFrame(central)
        levels.setObjectName("levels")
        levels.setStyleSheet("#levels { border: 1px solid #EAECF0; border-radius: 8px; }")
        lv = QVBoxLayout(levels)
        lv.setContentsMargins(14, 10, 14, 10)
        lv.setSpacing(6)
        self.agent_meter = LevelMeter("Your microphone", "Agent microphone level", levels,
                                      no_signal_seconds=no_signal_seconds)
        self.caller_meter = LevelMeter("Caller", "Caller level", levels, no_signal_seconds=no_signal_seconds)
        lv.addWidget(self.agent_meter)
        lv.addWidget(self.caller_meter)
        outer.addWidget(levels)

        # buttons
        grid = QGridLayout()
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(10)
        self.start_call_button = ActionButton(self.start_call_action, central)
        self.transfer_button = ActionButton(self.transfer_action, central)
        self.end_call_button = ActionButton(self.end_call_action, central)
        self.take_payment_button = ActionButton(self.take_payment_action, central)
        self.payment_finished_button = ActionButton(self.payment_finished_action, central)
        grid.addWidget(self.start_call_button, 0, 0)
        grid.addWidget(self.transfer_button, 0, 1)
        grid.addWidget(self.end_call_button, 0, 2)
        grid.addWidget(self.take_payment_button, 1, 0)
        grid.addWidget(self.payment_finished_button, 1, 1, 1, 2)
        outer.addLayout(grid)
        self.payment_hint = QLabel(central)
        self.payment_hint.setWordWrap(True)
        self.payment_hint.setStyleSheet("color: #93370D; font-weight: bold;")
        self.payment_hint.setText(f"{PAYMENT_EXPLANATION} ({native(SHORTCUTS['paid'])}).")
        self.payment_hint.setAccessibleName(PAYMENT_EXPLANATION)
        hint_row = QHBoxLayout()
        self.payment_hint_icon = QLabel(central)
        self.payment_hint_icon.setPixmap(paint_icon("bars", 16, "#DC6803"))
        hint_row.addWidget(self.payment_hint_icon)
        hint_row.addWidget(self.payment_hint, 1)
        outer.addLayout(hint_row)

        outer.addStretch(1)
        # upload health
        line = QFrame(central)
        line.setFrameShape(QFrame.Shape.HLine)
        line.setStyleSheet("color: #EAECF0;")
        outer.addWidget(line)
        self.upload_label = QLabel(central)
        self.upload_label.setWordWrap(True)
        self.upload_label.setStyleSheet("color: #475467;")
        self.upload_label.setAccessibleName("Upload health")
        self.upload_error = ElidedLabel(central)
        self.upload_error.setStyleSheet("color: #B54708;")
        self.upload_error.setAccessibleName("Last upload error")
        outer.addWidget(self.upload_label)
        outer.addWidget(self.upload_error)
        self.setCentralWidget(central)
        central.setStyleSheet("#central { background: #FFFFFF; } QPushButton { padding: 6px 14px; }")

    def _build_menus(self) -> None:
        bar = self.menuBar()
        call = bar.addMenu("&Call")
        for action in (self.start_call_action, self.take_payment_action, self.payment_finished_action,
                       self.resume_action, self.transfer_action, self.end_call_action):
            call.addAction(action)
        call.addSeparator()
        call.addAction(self.settings_action)
        call.addAction(self.quit_action)
        view = bar.addMenu("&View")
        view.addAction(self.compact_action)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.help_action)

    # ---- status -----------------------------------------------------------------------------
    def _on_adapter_status_changed(self, status: DeskStatus) -> None:
        self.render(status)

    def render(self, status: DeskStatus) -> None:
        """Show a desk status. GUI thread."""
        shown_faults = self.status.faults
        self.status = status
        now = time.monotonic()
        view = describe_state(status, now)
        self._show_view(view)
        in_call = status.state in (CallState.RECORDING, CallState.PAUSED)
        paying = status.payment_in_progress

        # the line (after the recording ended too: the caller may still be on it)
        if status.line_number and (in_call or status.state is CallState.ENDED):
            self.line_number.setText(status.line_number)
            self.department.setText(status.department or "")
            self.caller.setText(f"Caller: {status.caller}" if status.caller else "Caller's number not known")
            self.compact.line.setText(f"{status.line_number} – {status.department}")
        else:
            self.line_number.setText("No call")
            self.department.setText("")
            self.caller.setText("")
            self.compact.line.setText("No call")
        self.line_number.setAccessibleDescription(f"{self.line_number.text()} {self.department.text()}".strip())
        self._update_timers(now)

        # actions
        capturing = status.capturing
        self._enable(self.start_call_action, not in_call and capturing,
                     "No microphone or headset: calls cannot be recorded on this PC" if not capturing
                     else "A call is in progress: end or transfer it first" if in_call else None)
        self._enable(self.take_payment_action, status.state is CallState.RECORDING and capturing,
                     f"Already paused for payment. {PAYMENT_EXPLANATION}." if paying else
                     "Only during a recorded call" if not in_call else None)
        self._enable(self.payment_finished_action, paying, "No payment in progress" if not paying else None)
        self._enable(self.transfer_action, in_call, None if in_call else "Only during a call")
        self._enable(self.end_call_action, in_call, None if in_call else "Only during a call")
        self._enable(self.resume_action, status.state is CallState.PAUSED and not paying,
                     f"{PAYMENT_EXPLANATION}." if paying else "Recording is not paused")
        self.payment_hint.setVisible(paying)
        self.payment_hint_icon.setVisible(paying)
        emphasis = ("QPushButton { background: #FEC84B; color: #1D1D1F; font-weight: bold; border: 2px solid"
                    " #DC6803; border-radius: 6px; padding: 6px 14px; }" if paying else "")
        for button in (self.payment_finished_button, self.compact.paid):
            if button.styleSheet() != emphasis:
                button.setStyleSheet(emphasis)

        # faults and messages
        for fault, banner in self.fault_banners.items():
            message = status.faults.get(fault)
            if message is None:
                banner.hide()
            else:
                banner.set_message(message)
                banner.show()
        for fault in FAULT_ORDER:  # a new fault is announced on the desktop too: the window may be behind others
            if fault in status.faults and fault not in shown_faults:
                self.tray.notify(FAULT_TITLES[fault], f"{FAULT_ADVICE[fault]}\n{status.faults[fault]}")
        if status.notice and status.notice != self._dismissed_notice:
            self.notice_bar.show_message(status.notice)
        elif not status.notice:
            self.notice_bar.hide()
            self._dismissed_notice = None

        self._update_storage_wait(now)
        text, error = describe_upload(status.upload)
        self.upload_label.setText(text)
        self.upload_error.setText(error or "")
        self.upload_error.setVisible(error is not None)

    def _show_view(self, view: StateView) -> None:
        changed = view.kind != self.view.kind or view.title != self.view.title
        self.view = view
        self.state_banner.show_state(view)
        self.compact.state.show_state(view)
        if changed:
            self.setWindowTitle(f"{view.title} — callrec-desktop")
            self.compact.setWindowTitle(view.title)
            self.setWindowIcon(state_icon(view.kind))
        line = f"{self.status.line_number} – {self.status.department}" if self.status.line_number and view.kind in (
            "recording", "payment", "paused") else None
        self.tray.update_state(view, line)

    def _enable(self, action: QAction, enabled: bool, why_not: str | None) -> None:
        base = action.statusTip()
        tip = base if enabled or not why_not else f"{base}. Not available now: {why_not}"
        if action.isEnabled() != enabled or action.toolTip() != tip:
            action.setEnabled(enabled)
            action.setToolTip(tip)

    def _update_timers(self, now: float) -> None:
        s = self.status
        in_call = s.state in (CallState.RECORDING, CallState.PAUSED)
        self.call_timer.setText(format_duration(now - s.call_started) if in_call and s.call_started else "—")
        if s.payment_in_progress:
            view = describe_state(s, now)
            self.state_banner.show_state(view)
            self.compact.state.show_state(view)

    # ---- periodic: levels and clocks ----------------------------------------------------------
    def _on_tick_timeout(self) -> None:
        now = time.monotonic()
        agent = caller = None
        if self.desk is not None:
            try:
                agent, caller = self.desk.levels.get_nowait()
                self._last_levels_at = now
            except queue.Empty:
                pass
        s = self.status
        in_call = s.state in (CallState.RECORDING, CallState.PAUSED)
        live = s.capturing and self._last_levels_at is not None and now - self._last_levels_at < 1.5
        self.agent_meter.set_level(agent, now, in_call=in_call, available=live,
                                   unavailable_text="No input" if s.capturing else "Not capturing")
        mono = self.config.audio.channels == 1
        self.caller_meter.set_level(caller, now, in_call=in_call, available=live and not mono,
                                    unavailable_text="Not recorded (agent only)" if mono else
                                    "No input" if s.capturing else "Not capturing")
        self._update_timers(now)
        slow = self._update_storage_wait(now)
        # The compact window has no banners: it lists what they say, in short words, worst first.
        warnings = [SHORT_REASON[fault] for fault in FAULT_ORDER if fault in s.faults]
        if slow:
            warnings.append("Central storage is slow to answer")
        silent = [name for name, m in (("your microphone", self.agent_meter), ("the caller", self.caller_meter))
                  if m.no_signal]
        if silent:
            warnings.append(f"No signal from {' or '.join(silent)}")
        text = "\n".join(f"⚠ {w}" for w in warnings)
        self.tray.set_warnings(warnings)
        if self.compact.warning.text() != text:
            self.compact.warning.setText(text)
            self.compact.warning.setAccessibleName(f"Warnings: {'; '.join(warnings)}" if warnings else "No warnings")
            self.compact.warning.setVisible(bool(warnings))

    def _update_storage_wait(self, now: float) -> bool:
        """The "slow to answer" banner, while an upload has waited STORAGE_SLOW_SECONDS or more
        and no storage fault says more (render and every tick). True while it is shown."""
        started = self.status.upload.request_started
        waiting = (started is not None and now - started >= STORAGE_SLOW_SECONDS
                   and Fault.STORAGE_UNREACHABLE not in self.status.faults)
        if waiting:
            self.storage_slow_banner.set_message(f"an upload has had no answer for {now - started:.0f} s")
        if waiting != self.storage_slow_banner.isVisibleTo(self):
            self.storage_slow_banner.setVisible(waiting)
        return waiting

    # ---- operations ---------------------------------------------------------------------------
    def _run(self, what: str, op: Callable[[], object]) -> bool:
        """Call a desk operation (it only stamps an event: safe on the GUI thread)."""
        if self.desk is None:
            self.error_bar.show_message(f"Could not {what}: the recorder is still starting. Try again in a moment.")
            return False
        try:
            op()
        except DeskError as exc:
            self.error_bar.show_message(f"Could not {what}: {exc}")
            self.render(self.desk.status())
            return False
        self.error_bar.hide()
        self.render(self.desk.status())
        return True

    def start_call(self) -> None:
        if not self.start_call_action.isEnabled():
            return
        choice = self._choose_line(self, self.config.lines)
        if choice is None:
            return
        line, caller = choice
        self._run("start the call", lambda: self.desk.start_call(line.id, caller=caller))

    def take_payment(self) -> None:
        # No guard on the (possibly a moment stale) button state: the desk decides, and a pause
        # must never be dropped because the window had not caught up yet.
        self._run("pause for payment", lambda: self.desk.take_payment())

    def payment_finished(self) -> None:
        if self.payment_finished_action.isEnabled():
            self._run("resume after the payment", lambda: self.desk.payment_finished())

    def resume(self) -> None:
        if self.resume_action.isEnabled():
            self._run("resume recording", lambda: self.desk.resume())

    def transfer(self) -> None:
        if not self.transfer_action.isEnabled():
            return
        department = self._choose_department(self, self.config.lines.transfer_departments)
        if not department:
            return
        if not self._confirm(self, "Transfer call",
                             f"Transfer the call to {department}?\n\nRecording stops now, at the transfer. "
                             "Nothing after this point is recorded.", f"Transfer to {department}"):
            return
        self._run("transfer the call", lambda: self.desk.transfer(department))

    def end_call(self) -> None:
        if not self.end_call_action.isEnabled():
            return
        if not self._confirm(self, "End call", "End the call?\n\nRecording stops now.", "End call"):
            return
        self._run("end the call", lambda: self.desk.end_call())

    def retry_capture(self) -> None:
        """Look for the device again (opening it is I/O: on a worker)."""
        if self.desk is None:
            return  # the desk's own start opens the device
        for fault in (Fault.NO_DEVICE, Fault.DEVICE_LOST):
            self.fault_banners[fault].retry_button.setEnabled(False)  # type: ignore[attr-defined]
        self.adapter.run_task(self.desk.start_capture, self._on_retry_done, name="start-capture")

    def _on_retry_done(self, result: TaskResult) -> None:
        for fault in (Fault.NO_DEVICE, Fault.DEVICE_LOST):
            self.fault_banners[fault].retry_button.setEnabled(True)  # type: ignore[attr-defined]
        if not result.ok:
            self.error_bar.show_message(f"Could not start audio capture: {result.error}")

    def _on_demo_button_clicked(self) -> None:
        if self._on_demo is not None:
            self._on_demo()

    # ---- notices ----------------------------------------------------------------------------
    def _on_notice_bar_dismissed(self, text: str) -> None:
        self._dismissed_notice = text

    def show_message(self, text: str) -> None:
        """An informational message for the agent (e.g. after saving settings)."""
        self.notice_bar.show_message(text)

    def _on_adapter_error_reported(self, message: str) -> None:
        self.error_bar.show_message(message)

    # ---- compact mode and tray ------------------------------------------------------------------
    def _on_compact_action_toggled(self, on: bool) -> None:
        if on:
            self.compact.show()
            self.compact.raise_()
            self.hide()
        else:
            self.show()
            self.raise_()
            self.activateWindow()
            self.compact.hide()

    def _on_compact_closed(self) -> None:
        self.compact_action.setChecked(False)

    def _on_tray_show_window_requested(self) -> None:
        if self.compact_action.isChecked():
            self.compact.show()
            self.compact.raise_()
        else:
            self.showNormal()
            self.raise_()
            self.activateWindow()

    # ---- help and settings -----------------------------------------------------------------------
    def show_help(self) -> None:
        if self.help_dialog is None:
            from callrec_desktop.ui.help import HelpDialog  # loaded on first use, like the dialogs

            self.help_dialog = HelpDialog(self._notice_text, {k: native(v) for k, v in SHORTCUTS.items()}, self)
        self.help_dialog.show()
        self.help_dialog.raise_()

    def open_settings(self) -> None:
        """Gather the settings on a worker, then open the dialog."""
        if self._services is None or self._settings_loading:
            return
        if self.settings_dialog is not None and self.settings_dialog.isVisible():
            self.settings_dialog.raise_()
            return
        self._settings_loading = True
        self.settings_action.setEnabled(False)
        config, services = self.config, self._services
        self.adapter.run_task(
            lambda: load_snapshot(config, credentials=services.credentials, token_provider=services.token_provider,
                                  focus_support=services.focus_support, list_devices=services.list_devices),
            self._on_settings_loaded, name="load-settings")

    def _on_settings_loaded(self, result: TaskResult) -> None:
        self._settings_loading = False
        self.settings_action.setEnabled(True)
        if not result.ok:
            self.error_bar.show_message(f"Could not open the settings: {result.error}")
            return
        if self._closing:
            return
        from callrec_desktop.ui.settings_dialog import SettingsDialog  # loaded when first opened

        dialog = SettingsDialog(result.value, self.config, self.adapter, self._services, self)
        dialog.saved.connect(self._on_settings_dialog_saved)
        self.settings_dialog = dialog
        dialog.open()

    def _on_settings_dialog_saved(self, saved) -> None:
        from callrec_desktop.ui.settings_dialog import restart_message

        self.show_message(restart_message(saved))

    # ---- closing ---------------------------------------------------------------------------------
    def session_ending(self) -> None:
        """The desktop session is ending (logoff): from now on closing asks no question, as
        nobody is there to answer; the app ends the call as ``shutdown``. GUI thread."""
        self._ending_session = True

    def close_without_asking(self) -> None:
        """Close now, with no "a call is in progress" question (SIGTERM, logoff). GUI thread;
        also when the question is already open (its answer is then ignored)."""
        self.session_ending()
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._closing:
            event.accept()
            return
        st = self.desk.status() if self.desk is not None else self.status
        if (st.state in (CallState.RECORDING, CallState.PAUSED) and not self._ending_session
                and not self._confirm(self, "Close callrec-desktop",
                                      "A call is in progress.\n\nClosing stops the recording now.",
                                      "Close and stop recording")
                and not self._ending_session):  # the session ended while the question was open
            event.ignore()
            return
        if self._closing:  # closed by the session's end while the question was open
            event.accept()
            return
        self._closing = True
        self.tick.stop()
        if self._qsettings is not None:
            save_geometry(self._qsettings, GEOMETRY_KEY, self)
            save_geometry(self._qsettings, COMPACT_GEOMETRY_KEY, self.compact)
        self.compact._quitting = True
        self.compact.close()
        self.tray.stop()
        for dialog in (self.settings_dialog, self.help_dialog):
            if dialog is not None:
                dialog.close()
        event.accept()
        emit_signal(self.closed)

    def timers(self) -> list[QTimer]:
        """Every QTimer this window owns (tests check none is left running after close)."""
        return self.findChildren(QTimer)
