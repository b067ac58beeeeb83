"""The window's building blocks: what the state means in words (``describe_state``, pure), the
large state banner, the level meters, fault banners and the info bar.

Colour is never the only signal: every state has words and its own icon shape (a filled
circle while recording, two bars while paused, a ring when not recording, a warning
triangle when something stops recording), and the words are what screen readers get.

Data is shown as text: line numbers, callers, departments, device names, store names and
fault messages come from the control API, settings, devices and the store, and a QLabel
left at Qt's default (``AutoText``) renders anything that looks like HTML as HTML (a caller
``<img src='file:///…'>`` would load a local file). So every label here is ``PlainText``
(``plain_label``, ``make_labels_plain``), a label that is rich on purpose escapes what it
shows, and tooltips, which Qt also renders as rich text when they look like it, go through
``safe_tooltip``. All of it runs on the GUI thread.
"""

from __future__ import annotations

import html

from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6 import QtGui
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from callrec_desktop.core.timeline import CallState
from callrec_desktop.status import DeskStatus, Fault
from callrec_desktop.ui.adapter import emit_signal

# ---- data shown as text ------------------------------------------------------------------------

def plain_label(text: str = "", parent: QWidget | None = None) -> QLabel:
    """A QLabel that shows ``text`` (and whatever is set later) literally, never as HTML."""
    label = QLabel(text, parent)
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


def make_labels_plain(root: QWidget) -> None:
    """Every QLabel below ``root`` still at Qt's guessing default (``AutoText``) becomes
    ``PlainText``; labels set to rich text on purpose are left alone (they escape their data).
    Call it once a window's widgets are built."""
    for label in root.findChildren(QLabel):
        if label.textFormat() == Qt.TextFormat.AutoText:
            label.setTextFormat(Qt.TextFormat.PlainText)


def safe_tooltip(text: str) -> str:
    """``text`` as a tooltip that Qt shows literally: Qt renders a tooltip as rich text when
    it looks like markup (``Qt.mightBeRichText``), so such text is escaped, with its line
    breaks kept; any other text is returned as it is."""
    if not text or not QtGui.Qt.mightBeRichText(text):  # (QtGui's Qt namespace has it, QtCore's not)
        return text
    return "<p style='white-space:pre-wrap'>" + html.escape(text, quote=False).replace("\n", "<br>") + "</p>"


# ---- what the state means ---------------------------------------------------------------------

#: Faults that stop a recording; shown as "NOT RECORDING" in the state banner during a call.
STOPPING_FAULTS = (Fault.DEVICE_LOST, Fault.DISK_FULL, Fault.RECORDING_FAILED)

SHORT_REASON = {
    Fault.DEVICE_LOST: "The microphone or headset was lost",
    Fault.DISK_FULL: "This PC's disk is full",
    Fault.RECORDING_FAILED: "Recording failed",
    Fault.NO_DEVICE: "No microphone or headset found",
    Fault.STORAGE_UNREACHABLE: "Central storage unreachable",
    Fault.CONTROL_UNREACHABLE: "Payment pages and the phone system cannot reach this PC: card details may be recorded",
}

CONTROL_UNREACHABLE_TEXT = SHORT_REASON[Fault.CONTROL_UNREACHABLE]  # the banner says it in full too

NO_DEVICE_TEXT = "No microphone or headset found — calls cannot be recorded on this PC"
PAYMENT_EXPLANATION = "Recording resumes when you press Payment finished"


@dataclass(frozen=True)
class StateView:
    """The recording state as the agent reads it.

    ``kind`` picks icon and colours: recording | payment | paused | idle | ended | fault.
    ``recording`` is True only while audio of a call is really being kept.
    """

    kind: str
    title: str
    detail: str
    recording: bool = False
    timer_caption: str = ""  # e.g. "Paused for" beside the payment timer
    timer_seconds: float | None = None

    @property
    def accessible_name(self) -> str:
        return f"Recording state: {self.title}"

    @property
    def short(self) -> str:
        """One line for the tray tooltip and the window title."""
        return self.title


def format_duration(seconds: float | None) -> str:
    """mm:ss, or h:mm:ss from an hour; "" for None."""
    if seconds is None:
        return ""
    s = max(0, int(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


def stopping_reason(status: DeskStatus) -> str | None:
    for fault in STOPPING_FAULTS:
        if fault in status.faults:
            return SHORT_REASON[fault]
    return None


def describe_state(status: DeskStatus, now: float) -> StateView:
    """Words for the state; ``now`` is ``time.monotonic()`` (for the payment timer)."""
    reason = stopping_reason(status)
    in_call = status.state in (CallState.RECORDING, CallState.PAUSED)
    if in_call and not status.capturing:
        why = reason or (SHORT_REASON[Fault.NO_DEVICE] if Fault.NO_DEVICE in status.faults else None)
        return StateView("fault", "NOT RECORDING",
                         f"{why or 'Audio capture stopped'}. This call is not being recorded.")
    if status.state is CallState.RECORDING:
        detail = "This call is being recorded."
        if reason:
            detail = f"This call is being recorded. Earlier problem: {reason.lower()} — see the warning above."
        return StateView("recording", "Recording", detail, recording=True)
    if status.state is CallState.PAUSED:
        since = None if status.payment_started is None else now - status.payment_started
        if status.payment_in_progress:
            who = " (started automatically)" if status.payment_source in ("automatic", "control_api") else ""
            return StateView("payment", "Paused for payment",
                             f"Card details are not being recorded{who}.",
                             timer_caption="Paused for", timer_seconds=since)
        return StateView("paused", "Paused — not recording", "Recording is paused.")
    if status.state is CallState.ENDED:
        if status.last_end_reason in ("error", "interrupted", "disk_full"):
            if reason or Fault.NO_DEVICE in status.faults:
                why = reason or SHORT_REASON[Fault.NO_DEVICE]
                return StateView("fault", "NOT RECORDING", f"{why}. This call is not being recorded.")
            return StateView("ended", "Call ended — not recording",
                             "The last recording stopped early; what was recorded before that is kept.")
        if status.last_end_reason == "transferred":
            return StateView("ended", f"Transferred to {status.transferred_to} — not recording",
                             "Recording stopped at the transfer.")
        return StateView("ended", "Call ended — not recording", "Ready for the next call.")
    # idle
    if Fault.NO_DEVICE in status.faults:
        return StateView("idle", "Not recording", NO_DEVICE_TEXT + ".")
    if Fault.DEVICE_LOST in status.faults:
        return StateView("idle", "Not recording",
                         "The microphone or headset was lost — calls cannot be recorded until it is back.")
    if not status.capturing:
        return StateView("idle", "Not recording", "Starting audio capture…")
    return StateView("idle", "Not recording", "No call in progress. Press Start call when a call begins.")


# ---- colours and icons --------------------------------------------------------------------------

@dataclass(frozen=True)
class Palette:
    background: str
    foreground: str
    accent: str  # the icon's colour
    border: str


PALETTES = {
    "recording": Palette("#B42318", "#FFFFFF", "#FFFFFF", "#912018"),
    "payment": Palette("#FEC84B", "#1D1D1F", "#1D1D1F", "#DC6803"),
    "paused": Palette("#FEC84B", "#1D1D1F", "#1D1D1F", "#DC6803"),
    "idle": Palette("#EEF0F3", "#1D2939", "#667085", "#D0D5DD"),
    "ended": Palette("#EEF0F3", "#1D2939", "#667085", "#D0D5DD"),
    "fault": Palette("#1D2939", "#FFFFFF", "#FDB022", "#FDB022"),
}

ICON_SHAPES = {"recording": "dot", "payment": "bars", "paused": "bars", "idle": "ring", "ended": "ring",
               "fault": "warning"}


def paint_icon(shape: str, size: int, color: str, *, ring_fill: str | None = None) -> QPixmap:
    """A state icon drawn with QPainter (no font or file needed): dot, bars, ring, warning."""
    ratio = 2.0
    pm = QPixmap(int(size * ratio), int(size * ratio))
    pm.setDevicePixelRatio(ratio)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    c = QColor(color)
    m = size * 0.08
    r = QRectF(m, m, size - 2 * m, size - 2 * m)
    if shape == "dot":
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(c)
        p.drawEllipse(r)
    elif shape == "ring":
        w = max(2.0, size * 0.11)
        if ring_fill:
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(ring_fill))
            p.drawEllipse(r)
        p.setPen(QPen(c, w))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawEllipse(r.adjusted(w / 2, w / 2, -w / 2, -w / 2))
    elif shape == "bars":
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(c)
        bw = r.width() * 0.28
        gap = r.width() * 0.18
        left = r.center().x() - gap / 2 - bw
        p.drawRoundedRect(QRectF(left, r.top(), bw, r.height()), bw * 0.2, bw * 0.2)
        p.drawRoundedRect(QRectF(r.center().x() + gap / 2, r.top(), bw, r.height()), bw * 0.2, bw * 0.2)
    elif shape == "warning":
        path = QPainterPath()
        path.moveTo(QPointF(r.center().x(), r.top()))
        path.lineTo(QPointF(r.right(), r.bottom()))
        path.lineTo(QPointF(r.left(), r.bottom()))
        path.closeSubpath()
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(c)
        p.drawPath(path)
        p.setBrush(QColor("#1D2939"))
        cx = r.center().x()
        bar_w = r.width() * 0.1
        p.drawRoundedRect(QRectF(cx - bar_w / 2, r.top() + r.height() * 0.32, bar_w, r.height() * 0.36),
                          bar_w / 2, bar_w / 2)
        p.drawEllipse(QPointF(cx, r.top() + r.height() * 0.82), bar_w * 0.65, bar_w * 0.65)
    elif shape == "info":
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(c)
        p.drawEllipse(r)
        p.setBrush(QColor("#FFFFFF"))
        cx = r.center().x()
        bar_w = r.width() * 0.12
        p.drawRoundedRect(QRectF(cx - bar_w / 2, r.top() + r.height() * 0.42, bar_w, r.height() * 0.36),
                          bar_w / 2, bar_w / 2)
        p.drawEllipse(QPointF(cx, r.top() + r.height() * 0.27), bar_w * 0.7, bar_w * 0.7)
    p.end()
    return pm


def state_icon(kind: str, size: int = 64) -> QIcon:
    """The icon for a state kind, on a light or transparent background (tray, window icon)."""
    shape = ICON_SHAPES.get(kind, "ring")
    color = {"recording": "#D92D20", "payment": "#DC6803", "paused": "#DC6803", "fault": "#F79009"}.get(kind, "#667085")
    return QIcon(paint_icon(shape, size, color, ring_fill="#FFFFFF" if shape == "ring" else None))


def _font(widget: QWidget, scale: float, bold: bool = False) -> QFont:
    f = QFont(widget.font())
    f.setPointSizeF(max(7.0, f.pointSizeF() * scale))
    f.setBold(bold)
    return f


# ---- the state banner ---------------------------------------------------------------------------

class StateBanner(QFrame):
    """The recording state in large words, with an icon and colours, and the payment timer.

    ``compact`` makes a smaller one for the always-on-top window.
    """

    def __init__(self, parent: QWidget | None = None, *, compact: bool = False) -> None:
        super().__init__(parent)
        self.setObjectName("stateBanner")
        self._compact = compact
        self._icon_size = 30 if compact else 52
        self.icon = QLabel(self)
        self.icon.setFixedSize(self._icon_size, self._icon_size)
        self.icon.setAccessibleName("State icon")
        self.title = QLabel(self)
        self.title.setObjectName("stateTitle")
        self._title_fonts = (_font(self, 1.35 if compact else 2.3, bold=True),
                             _font(self, 1.2 if compact else 1.75, bold=True))
        self.title.setFont(self._title_fonts[0])
        self.title.setWordWrap(True)
        self.title.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # screen readers can land on it
        self.detail = QLabel(self)
        self.detail.setObjectName("stateDetail")
        self.detail.setWordWrap(True)
        self.detail.setFont(_font(self, 0.95 if compact else 1.1))
        self.timer = QLabel(self)
        self.timer.setObjectName("stateTimer")
        self.timer.setFont(_font(self, 1.3 if compact else 1.8, bold=True))
        self.timer.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.timer_caption = QLabel(self)
        self.timer_caption.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        text = QVBoxLayout()
        text.setSpacing(2 if compact else 6)
        text.addWidget(self.title)
        if compact:
            self.detail.hide()
        else:
            text.addWidget(self.detail)
        timer_box = QVBoxLayout()
        timer_box.setSpacing(0)
        timer_box.addWidget(self.timer_caption)
        timer_box.addWidget(self.timer)
        row = QHBoxLayout(self)
        m = 12 if compact else 24
        row.setContentsMargins(m, m - 2, m, m - 2)
        row.setSpacing(12 if compact else 20)
        row.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignVCenter)
        row.addLayout(text, 1)
        row.addLayout(timer_box, 0)
        make_labels_plain(self)
        self.view: StateView | None = None

    def show_state(self, view: StateView) -> None:
        changed = self.view is None or (view.kind, view.title, view.detail) != (
            self.view.kind, self.view.title, self.view.detail)
        self.view = view
        if changed:
            pal = PALETTES.get(view.kind, PALETTES["idle"])
            self.setStyleSheet(
                f"#stateBanner {{ background: {pal.background}; border: 2px solid {pal.border};"
                f" border-radius: 10px; }}"
                f"#stateBanner QLabel {{ color: {pal.foreground}; background: transparent; }}")
            self.icon.setPixmap(paint_icon(ICON_SHAPES.get(view.kind, "ring"), self._icon_size, pal.accent))
            self.title.setFont(self._title_fonts[0 if len(view.title) <= 26 else 1])
            self.title.setText(view.title)
            self.detail.setText(view.detail)
            self.timer_caption.setText(view.timer_caption)
            # Screen readers: the title label carries the state; Qt announces name changes.
            self.title.setAccessibleName(view.accessible_name)
            self.title.setAccessibleDescription(view.detail)
            self.setAccessibleName(view.accessible_name)
            self.setAccessibleDescription(view.detail)
            self.icon.setAccessibleDescription(ICON_SHAPES.get(view.kind, "ring"))
            if self._compact:
                self.setToolTip(safe_tooltip(view.detail))
        self.timer.setText(format_duration(view.timer_seconds))
        self.timer.setVisible(view.timer_seconds is not None)
        self.timer_caption.setVisible(view.timer_seconds is not None)


# ---- level meters -------------------------------------------------------------------------------

FLOOR_DB = -60.0


class LevelMeter(QWidget):
    """An input level (dBFS) as a bar with words beside it; "No signal" when it stays below
    -60 dBFS for ``no_signal_seconds`` during a call, so a dead microphone is seen at once."""

    def __init__(self, name: str, accessible: str, parent: QWidget | None = None, *,
                 no_signal_seconds: float = 3.0) -> None:
        super().__init__(parent)
        self.no_signal_seconds = no_signal_seconds
        self.label = QLabel(name, self)
        self.label.setMinimumWidth(120)
        self.label.setVisible(bool(name))
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 600)
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(14)
        self.bar.setAccessibleName(accessible)
        self.value = QLabel(self)
        self.value.setMinimumWidth(200)
        self.value.setAccessibleName(f"{accessible} status")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(12)
        row.addWidget(self.label)
        row.addWidget(self.bar, 1)
        row.addWidget(self.value)
        make_labels_plain(self)  # the name may be a device's
        self.db: float | None = None
        self._shown = FLOOR_DB
        self._last_signal: float | None = None
        self.no_signal = False
        self._style = ""
        self._set_style("ok")

    def _set_style(self, mode: str) -> None:
        if mode == self._style:
            return
        self._style = mode
        chunk = {"ok": "#12B76A", "warn": "#F79009", "off": "#98A2B3"}[mode]
        self.bar.setStyleSheet(
            "QProgressBar { background: #EAECF0; border: 1px solid #D0D5DD; border-radius: 4px; }"
            f"QProgressBar::chunk {{ background: {chunk}; border-radius: 3px; }}")
        self.value.setStyleSheet("color: #B54708; font-weight: bold;" if mode == "warn" else "color: #475467;")

    def set_level(self, db: float | None, now: float, *, in_call: bool, available: bool = True,
                  unavailable_text: str = "No input") -> None:
        """Show a new level (``None``: no new block since last time). Called ~15 times a second."""
        if not available:
            self.db = None
            self._shown = FLOOR_DB
            self._last_signal = None
            self.no_signal = False
            self.bar.setValue(0)
            self._set_style("off")
            self._text(unavailable_text)
            return
        if db is not None:
            self.db = db
            if db > FLOOR_DB:
                self._last_signal = now
            elif self._last_signal is None:
                self._last_signal = now  # silent from the start: count from the first block
            # fast attack, gentle fall: readable, not jittery
            self._shown = db if db > self._shown else max(db, self._shown - 2.5)
        self.bar.setValue(int(round((max(FLOOR_DB, min(0.0, self._shown)) - FLOOR_DB) * 10)))
        silent_for = 0.0 if self._last_signal is None else now - self._last_signal
        self.no_signal = in_call and self.db is not None and self.db <= FLOOR_DB and silent_for > self.no_signal_seconds
        if self.no_signal:
            self._set_style("warn")
            self._text("No signal — check the headset")
        elif self.db is None:
            self._set_style("off")
            self._text("Waiting for audio…")
        else:
            self._set_style("ok")
            heard = self._last_signal is not None and now - self._last_signal < 1.5
            self._text("Sound" if heard else "Quiet")

    def _text(self, text: str) -> None:
        if self.value.text() != text:
            self.value.setText(text)
            self.bar.setAccessibleDescription(text)


# ---- banners --------------------------------------------------------------------------------------

class ElidedLabel(QLabel):
    """One line; text too long for the width ends in "…". The full text stays in ``text()``,
    in the tooltip and for screen readers, so long technical detail never pushes the layout."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.PlainText)  # painted with drawText below, which is plain too
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        super().setText(text)
        self.setToolTip(safe_tooltip(text) if text else "")
        self.setAccessibleDescription(text)

    def minimumSizeHint(self):  # noqa: N802 - Qt's name
        hint = super().minimumSizeHint()
        hint.setWidth(40)
        return hint

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        rect = self.contentsRect()
        elided = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, rect.width())
        painter.drawText(rect, int(self.alignment() | Qt.AlignmentFlag.AlignVCenter), elided)


class FaultBanner(QFrame):
    """A fault that stays until it is resolved: icon, bold title, what to do, the technical
    detail on one line (all of it in the tooltip), optional action buttons."""

    def __init__(self, title: str, advice: str, severity: str = "error", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("faultBanner")
        colours = {"error": ("#FEF3F2", "#D92D20", "#7A271A"), "warning": ("#FFFAEB", "#DC6803", "#7A2E0E")}
        bg, border, fg = colours[severity]
        self.setStyleSheet(f"#faultBanner {{ background: {bg}; border: 1px solid {border}; border-left: 6px solid"
                           f" {border}; border-radius: 6px; }} #faultBanner QLabel {{ color: {fg};"
                           f" background: transparent; }}")
        icon = QLabel(self)
        icon.setPixmap(paint_icon("warning", 22, border))
        icon.setFixedSize(24, 24)
        self.title = QLabel(title, self)
        self.title.setFont(_font(self, 1.05, bold=True))
        self.title.setWordWrap(True)
        self.advice = QLabel(advice, self)
        self.advice.setWordWrap(True)
        self.message = ElidedLabel(self)
        self.message.setStyleSheet("color: #667085;")
        text = QVBoxLayout()
        text.setSpacing(2)
        text.addWidget(self.title)
        text.addWidget(self.advice)
        text.addWidget(self.message)
        make_labels_plain(self)  # the advice may be set to escaped rich text on purpose (Library)
        self.actions_row = QHBoxLayout()
        self.actions_row.setSpacing(8)
        row = QHBoxLayout(self)
        row.setContentsMargins(12, 10, 12, 10)
        row.setSpacing(12)
        row.addWidget(icon, 0, Qt.AlignmentFlag.AlignTop)
        row.addLayout(text, 1)
        row.addLayout(self.actions_row, 0)
        self.setAccessibleName(f"Warning: {title}")

    def add_action_button(self, text: str) -> QPushButton:
        button = QPushButton(text, self)
        button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.actions_row.addWidget(button, 0, Qt.AlignmentFlag.AlignVCenter)
        return button

    def set_message(self, message: str) -> None:
        if self.message.text() != f"Details: {message}":
            self.message.setText(f"Details: {message}")
            self.setAccessibleDescription(f"{self.advice.text()} {message}")


class InfoBar(QFrame):
    """A one-off message the agent can dismiss (``dismissed`` carries its text)."""

    dismissed = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, kind: str = "info") -> None:
        super().__init__(parent)
        self.setObjectName("infoBar")
        bg, border, fg = {"info": ("#EFF8FF", "#2E90FA", "#194185"),
                          "error": ("#FEF3F2", "#D92D20", "#7A271A")}[kind]
        self.setStyleSheet(f"#infoBar {{ background: {bg}; border: 1px solid {border}; border-radius: 6px; }}"
                           f" #infoBar QLabel {{ color: {fg}; background: transparent; }}")
        icon = QLabel(self)
        icon.setPixmap(paint_icon("info" if kind == "info" else "warning", 20, border))
        icon.setFixedSize(22, 22)
        self.text = QLabel(self)
        self.text.setWordWrap(True)
        self.dismiss = QPushButton("Dismiss", self)
        self.dismiss.setAccessibleName("Dismiss message")
        self.dismiss.clicked.connect(self._on_dismiss_clicked)
        row = QHBoxLayout(self)
        row.setContentsMargins(12, 8, 8, 8)
        row.setSpacing(10)
        row.addWidget(icon, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.text, 1)
        row.addWidget(self.dismiss, 0, Qt.AlignmentFlag.AlignVCenter)
        make_labels_plain(self)
        self.hide()

    def show_message(self, text: str) -> None:
        self.text.setText(text)
        self.setAccessibleName(text)
        self.show()

    def _on_dismiss_clicked(self) -> None:
        text = self.text.text()
        self.hide()
        emit_signal(self.dismissed, text)
