"""The library's player: a waveform of both channels with the payment pauses and the end of
the call marked, the transport controls, and the call's notes beside it.

Threads: decoding for the overview (``waveform.load_or_compute``) runs on a worker through
``DeskAdapter.run_task``. The ``Player`` (playback/player.py) is created and controlled on the
GUI thread; its feeder thread decodes and feeds the device. The position shown here is *read*
by a GUI-thread QTimer every 50 ms while playing (``Player.position`` is safe to read from any
thread), instead of forwarding the feeder's ``position_changed`` listener through a second
signal path: the adapter stays the one way back to the GUI thread, and a late listener call can
never reach a deleted widget.

Access control is not decided here: before playing, the widget asks ``request_access("play",
granted)``, which the library window answers (purpose prompt + access log) by calling
``granted()`` on the GUI thread, or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QKeySequence, QPainter, QPen, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from callrec_desktop.core.manifest import Manifest
from callrec_desktop.notes import Note
from callrec_desktop.playback.call_audio import CallAudio, Mark
from callrec_desktop.playback.player import Player
from callrec_desktop.playback.waveform import Waveform, load_or_compute
from callrec_desktop.storage.base import Store
from callrec_desktop.audio.sources import device_spec
from callrec_desktop.ui.adapter import DeskAdapter, TaskResult, emit_signal
from callrec_desktop.ui.settings_services import DEFAULT_OUTPUT, PlaybackDevices
from callrec_desktop.ui.widgets import format_duration, make_labels_plain, safe_tooltip

log = logging.getLogger(__name__)

SPEEDS = (0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
CHANNELS = (("Both", "both"), ("Agent", "agent"), ("Caller", "caller"))
OUTPUT_DEFAULT_TEXT = "System default output"
OUTPUT_TIP = "Where calls are played. Your choice is kept for next time."
SEEK_STEP = 5.0
DRAG_PIXELS = 4  # a press that moves less than this is a click (seek), not a drag (select)
MIN_SELECTION_SECONDS = 0.1
PAUSE_LABELS = {"payment": "Payment — not recorded", "agent_request": "Paused — not recorded"}
END_LABELS = {"hangup": "Call ended", "transferred": "Transferred", "interrupted": "Interrupted",
              "error": "Ended by an error", "shutdown": "Program closed",
              "disk_full": "Disk full"}


@dataclass(frozen=True)
class MarkGeometry:
    """Where a mark is drawn: ``rect`` in widget coordinates (an end mark is 0 wide)."""

    kind: str  # pause | end
    reason: str
    rect: QRectF
    label: str


def mark_label(mark: Mark) -> str:
    if mark.kind == "pause":
        return PAUSE_LABELS.get(mark.reason, "Not recorded")
    text = END_LABELS.get(mark.reason, mark.reason)
    return f"{text} to {mark.department}" if mark.reason == "transferred" and mark.department else text


class WaveformView(QWidget):
    """Min/max per pixel column for each channel (agent above, caller below). Click to seek;
    drag across it to select a range (for a note over a range, or an export)."""

    seek_requested = Signal(float)
    range_selected = Signal(object)  # (start, end) seconds, or None when the selection is cleared

    TOP = 20  # room for the mark labels
    BOTTOM = 4
    SIDE = 6

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.waveform: Waveform | None = None
        self.position = 0.0
        self.note_times: list[float] = []
        self.note_ranges: list[tuple[float, float]] = []
        self.selection: tuple[float, float] | None = None
        self._press_x: float | None = None
        self._dragging = False
        self.channel_mode = "both"
        self.message = "Select a call to see and play it."
        self.setMinimumHeight(140)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAccessibleName("Waveform of the call; click to move the playing position, drag to select a range")
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    # ---- state ------------------------------------------------------------------------------------
    def set_waveform(self, waveform: Waveform | None, message: str = "") -> None:
        self.waveform = waveform
        self.message = message
        self.position = 0.0
        self.selection = None
        self.update()

    def set_selection(self, selection: tuple[float, float] | None) -> None:
        """Select ``(start, end)`` seconds (clamped to the call, in order), or clear with None.
        Emits ``range_selected`` with what is selected now."""
        if selection is not None:
            d = self.duration
            a, b = sorted(min(max(float(t), 0.0), d) for t in selection)
            selection = (a, b) if b - a >= MIN_SELECTION_SECONDS else None
        self.selection = selection
        self.update()
        emit_signal(self.range_selected, selection)

    def set_position(self, seconds: float) -> None:
        self.position = seconds
        self.update()

    @property
    def duration(self) -> float:
        wf = self.waveform
        return wf.frames / wf.sample_rate if wf is not None and wf.sample_rate else 0.0

    # ---- geometry (tests check this, not pixels) --------------------------------------------------
    def plot_rect(self) -> QRectF:
        return QRectF(self.SIDE, self.TOP, max(self.width() - 2 * self.SIDE, 1),
                      max(self.height() - self.TOP - self.BOTTOM, 1))

    def x_for(self, seconds: float) -> float:
        plot, d = self.plot_rect(), self.duration
        return plot.left() + (min(max(seconds / d, 0.0), 1.0) * plot.width() if d > 0 else 0.0)

    def seconds_at(self, x: float) -> float:
        plot, d = self.plot_rect(), self.duration
        return min(max((x - plot.left()) / plot.width(), 0.0), 1.0) * d

    def mark_geometry(self) -> list[MarkGeometry]:
        wf = self.waveform
        if wf is None or not wf.frames:
            return []
        plot = self.plot_rect()
        out = []
        for m in wf.marks:
            x0 = self.x_for(m.start_frame / wf.sample_rate)
            x1 = self.x_for(m.end_frame / wf.sample_rate)
            if m.kind == "pause":
                x1 = max(x1, x0 + 2)  # a very short pause still shows
            out.append(MarkGeometry(m.kind, m.reason, QRectF(x0, plot.top(), x1 - x0, plot.height()), mark_label(m)))
        return out

    def envelope(self, columns: int) -> tuple[np.ndarray, np.ndarray]:
        """(mins, maxs) of shape (channels, columns): the waveform reduced to pixel columns."""
        wf = self.waveform
        n = wf.mins.shape[1] if wf is not None else 0
        if wf is None or n == 0 or columns <= 0:
            return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
        starts = np.minimum((np.arange(columns) * n) // columns, n - 1)
        return np.minimum.reduceat(wf.mins, starts, axis=1), np.maximum.reduceat(wf.maxs, starts, axis=1)

    # ---- Qt ---------------------------------------------------------------------------------------
    def selection_rect(self) -> QRectF | None:
        if self.selection is None or self.waveform is None:
            return None
        plot = self.plot_rect()
        x0, x1 = self.x_for(self.selection[0]), self.x_for(self.selection[1])
        return QRectF(x0, plot.top(), max(x1 - x0, 1.0), plot.height())

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self.waveform is not None and event.button() == Qt.MouseButton.LeftButton:
            self._press_x = event.position().x()
            self._dragging = False

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self._press_x is None:
            return
        x = event.position().x()
        if not self._dragging and abs(x - self._press_x) < DRAG_PIXELS:
            return  # a click that wobbled, not a drag
        self._dragging = True
        a, b = sorted((self.seconds_at(self._press_x), self.seconds_at(x)))
        self.selection = (a, b)
        self.update()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self._press_x is None or event.button() != Qt.MouseButton.LeftButton:
            return
        press, self._press_x = self._press_x, None
        if self._dragging:
            self._dragging = False
            self.set_selection((self.seconds_at(press), self.seconds_at(event.position().x())))
        else:
            emit_signal(self.seek_requested, self.seconds_at(press))

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#FFFFFF"))
        plot = self.plot_rect()
        p.setPen(QPen(QColor("#D0D5DD")))
        p.drawRect(plot)
        wf = self.waveform
        if wf is None:
            p.setPen(QColor("#667085"))
            p.drawText(plot, int(Qt.AlignmentFlag.AlignCenter), self.message)
            return
        columns = int(plot.width())
        mins, maxs = self.envelope(columns)
        channels = mins.shape[0]
        names = ("Agent", "Caller") if channels == 2 else ("Agent",)
        band = plot.height() / max(channels, 1)
        for ch in range(channels):
            dim = (self.channel_mode == "agent" and ch == 1) or (self.channel_mode == "caller" and ch == 0)
            p.setPen(QPen(QColor("#D0D5DD" if dim else ("#1570EF" if ch == 0 else "#0E9384"))))
            mid = plot.top() + band * (ch + 0.5)
            half = band / 2 - 2
            for x in range(columns):
                lo, hi = float(mins[ch, x]), float(maxs[ch, x])
                px = plot.left() + x + 0.5
                p.drawLine(QPointF(px, mid - hi * half), QPointF(px, mid - min(lo, hi - 0.01) * half))
            p.setPen(QColor("#475467"))
            p.drawText(QRectF(plot.left() + 4, plot.top() + band * ch + 2, 80, 16),
                       int(Qt.AlignmentFlag.AlignLeft), names[ch] if ch < len(names) else "")
        for g in self.mark_geometry():
            if g.kind == "pause":
                p.fillRect(g.rect, QColor(253, 176, 34, 70))
                p.fillRect(g.rect, QBrush(QColor("#B54708"), Qt.BrushStyle.BDiagPattern))
                p.setPen(QPen(QColor("#B54708"), 1))
                p.drawRect(g.rect)
                label = QRectF(g.rect.left() - 60, 2, g.rect.width() + 120, self.TOP - 4)
                text = p.fontMetrics().elidedText(g.label, Qt.TextElideMode.ElideRight, int(label.width()))
                p.setPen(QColor("#93370D"))
                p.drawText(label, int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter), text)
            else:
                p.setPen(QPen(QColor("#7A271A" if g.reason != "hangup" else "#344054"), 3))
                p.drawLine(QPointF(g.rect.left() - 1, plot.top()), QPointF(g.rect.left() - 1, plot.bottom()))
                p.drawText(QRectF(plot.right() - 260, 2, 256, self.TOP - 4),
                           int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), g.label + " ▸")
        sel = self.selection_rect()
        if sel is not None:
            p.fillRect(sel, QColor(127, 86, 217, 45))
            p.setPen(QPen(QColor("#7F56D9"), 1))
            p.drawLine(sel.topLeft(), sel.bottomLeft())
            p.drawLine(sel.topRight(), sel.bottomRight())
        p.setPen(QPen(QColor("#7F56D9"), 1))
        for t in self.note_times:
            x = self.x_for(t)
            p.drawLine(QPointF(x, plot.top()), QPointF(x, plot.top() + 8))
        for a, b in self.note_ranges:
            p.fillRect(QRectF(self.x_for(a), plot.top(), max(self.x_for(b) - self.x_for(a), 1.0), 4),
                       QColor("#7F56D9"))
        p.setPen(QPen(QColor("#D92D20"), 2))
        x = self.x_for(self.position)
        p.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()))


@dataclass(frozen=True)
class LoadJob:
    generation: int
    store: Store
    manifest: Manifest
    cache_dir: Path


def load_audio(job: LoadJob) -> tuple[CallAudio, Waveform]:
    """Runs on a worker thread: the call's audio and its overview (cached on disk)."""
    audio = CallAudio(job.store, job.manifest)
    return audio, load_or_compute(audio, job.cache_dir)


class PlayerWidget(QWidget):
    """Waveform, transport and notes of one call."""

    loaded = Signal(str)  # call_id, once the waveform is shown and the player is ready
    load_failed = Signal(str)
    note_requested = Signal(float, object, str, object)  # at, end (None: a point), text, tags (tuple[str, ...])
    note_revision_requested = Signal(str, str, object)  # note_id, new text, new tags
    note_withdraw_requested = Signal(str)  # note_id
    note_clicked = Signal(float)
    range_selected = Signal(object)  # (start, end) seconds, or None
    output_device_chosen = Signal(str)  # the "Play on" choice, as the settings file spells it

    def __init__(self, adapter: DeskAdapter, *, cache_dir: Path,
                 request_access: Callable[[str, Callable[[], None]], None],
                 output_factory: Callable[..., Any] | None = None, output_device: str | int | None = None,
                 user: str | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.user = user  # whose notes may be changed or withdrawn here
        self.editing: Note | None = None  # the note being changed, while its text is in the fields
        self._adapter = adapter
        self._cache_dir = Path(cache_dir)
        self._request_access = request_access
        self._output_factory = output_factory
        self._output_device = output_device  # as sounddevice takes it; None: the system default
        self._loaded: tuple[CallAudio, Waveform] | None = None  # the current call's audio, for a new output
        self._generation = 0
        self.player: Player | None = None
        self.manifest: Manifest | None = None
        self.notes: list[Note] = []
        self._timer = QTimer(self)
        self._timer.setInterval(50)
        self._timer.timeout.connect(self._on_timer_timeout)
        self._build()
        self._enable(False)

    def _build(self) -> None:
        self.wave = WaveformView(self)
        self.wave.seek_requested.connect(self.seek)
        self.wave.range_selected.connect(self._on_wave_range_selected)
        self.selection_label = QLabel("Drag across the waveform, or press [ and ], to select a part.", self)
        self.selection_label.setStyleSheet("color: #475467;")
        self.clear_selection_button = QPushButton("Clear selection", self)
        self.clear_selection_button.setToolTip("Clear the selection (Esc)")
        self.clear_selection_button.clicked.connect(self.clear_selection)
        self.clear_selection_button.setVisible(False)
        self.play_button = QPushButton("▶ Play", self)
        self.play_button.setToolTip("Play or pause (Space)")
        self.play_button.clicked.connect(self.toggle_play)
        self.back_button = QPushButton("« 5 s", self)
        self.back_button.setToolTip("Back 5 seconds (Left)")
        self.back_button.clicked.connect(lambda: self.skip(-SEEK_STEP))
        self.forward_button = QPushButton("5 s »", self)
        self.forward_button.setToolTip("Forward 5 seconds (Right)")
        self.forward_button.clicked.connect(lambda: self.skip(SEEK_STEP))
        self.time_label = QLabel("00:00 / 00:00", self)
        self.time_label.setMinimumWidth(110)
        self.speed = QComboBox(self)
        for s in SPEEDS:
            self.speed.addItem(f"{s:g}×", s)
        self.speed.setCurrentIndex(SPEEDS.index(1.0))
        self.speed.setAccessibleName("Playback speed")
        self.speed.currentIndexChanged.connect(self._on_speed_current_index_changed)
        self.channel = QComboBox(self)
        for text, mode in CHANNELS:
            self.channel.addItem(text, mode)
        self.channel.setAccessibleName("Channels to hear")
        self.channel.currentIndexChanged.connect(self._on_channel_current_index_changed)
        self.skip_silence = QCheckBox("Skip silences", self)
        self.skip_silence.toggled.connect(self._on_skip_silence_toggled)
        self.output = QComboBox(self)
        self.output.setAccessibleName("Sound output to play on")
        self.output.addItem(OUTPUT_DEFAULT_TEXT, DEFAULT_OUTPUT)
        self.output.setToolTip(OUTPUT_TIP)
        self.output.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.output.currentIndexChanged.connect(self._on_output_current_index_changed)
        self.status = QLabel(self)
        self.status.setStyleSheet("color: #B42318;")
        self.status.setWordWrap(True)

        controls = QHBoxLayout()
        for w in (self.play_button, self.back_button, self.forward_button, self.time_label):
            controls.addWidget(w)
        controls.addStretch(1)
        controls.addWidget(QLabel("Speed", self))
        controls.addWidget(self.speed)
        controls.addWidget(QLabel("Hear", self))
        controls.addWidget(self.channel)
        controls.addWidget(self.skip_silence)
        output_row = QHBoxLayout()
        output_row.addWidget(QLabel("Play on", self))
        output_row.addWidget(self.output)
        output_row.addStretch(1)
        left = QVBoxLayout()
        left.addLayout(controls)
        left.addLayout(output_row)
        left.addWidget(self.wave, 1)
        selection_row = QHBoxLayout()
        selection_row.addWidget(self.selection_label, 1)
        selection_row.addWidget(self.clear_selection_button)
        left.addLayout(selection_row)
        left.addWidget(self.status)

        self.note_list = QListWidget(self)
        self.note_list.setAccessibleName("Notes on this call; click one to jump to it")
        self.note_list.itemClicked.connect(self._on_note_list_item_clicked)
        self.note_list.currentRowChanged.connect(self._on_note_list_current_row_changed)
        self.note_list.setWordWrap(True)
        self.change_note_button = QPushButton("Change…", self)
        self.change_note_button.setToolTip("Change your note: its text and tags (the earlier version is kept)")
        self.change_note_button.clicked.connect(self._on_change_note_button_clicked)
        self.withdraw_note_button = QPushButton("Withdraw", self)
        self.withdraw_note_button.setToolTip("Withdraw your note (a record of it is kept)")
        self.withdraw_note_button.clicked.connect(self._on_withdraw_note_button_clicked)
        self.cancel_change_button = QPushButton("Cancel change", self)
        self.cancel_change_button.clicked.connect(self.cancel_change)
        self.cancel_change_button.setVisible(False)
        self.note_text = QLineEdit(self)
        self.note_text.setPlaceholderText("Note text")
        self.note_text.setAccessibleName("Note text")
        self.note_tags = QLineEdit(self)
        self.note_tags.setPlaceholderText("Tags, e.g. good-practice, complaint")
        self.note_tags.setAccessibleName("Note tags")
        self.add_note_button = QPushButton("Add note at current time", self)
        self.add_note_button.clicked.connect(self._on_add_note_button_clicked)
        notes = QVBoxLayout()
        notes_title = QLabel("<b>Notes</b>", self)
        notes_title.setTextFormat(Qt.TextFormat.RichText)  # ours, constant
        notes.addWidget(notes_title)
        notes.addWidget(self.note_list, 1)
        note_buttons = QHBoxLayout()
        note_buttons.addWidget(self.change_note_button)
        note_buttons.addWidget(self.withdraw_note_button)
        notes.addLayout(note_buttons)
        notes.addWidget(self.note_text)
        notes.addWidget(self.note_tags)
        notes.addWidget(self.add_note_button)
        notes.addWidget(self.cancel_change_button)
        notes_box = QWidget(self)
        notes_box.setLayout(notes)
        notes_box.setMaximumWidth(340)

        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addLayout(left, 1)
        row.addWidget(notes_box)
        make_labels_plain(self)  # errors name devices and store keys: text, never HTML

        for key, slot in ((Qt.Key.Key_Space, self.toggle_play), (Qt.Key.Key_Left, lambda: self.skip(-SEEK_STEP)),
                          (Qt.Key.Key_Right, lambda: self.skip(SEEK_STEP)),
                          (Qt.Key.Key_BracketLeft, self.select_from_here), (Qt.Key.Key_BracketRight, self.select_to_here),
                          (Qt.Key.Key_Escape, self.clear_selection)):
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)  # text fields keep their own keys
            shortcut.activated.connect(slot)

    def _enable(self, on: bool) -> None:
        for w in (self.play_button, self.back_button, self.forward_button, self.speed, self.channel,
                  self.skip_silence, self.add_note_button):
            w.setEnabled(on)

    # ---- loading ---------------------------------------------------------------------------------
    def load(self, store: Store, manifest: Manifest) -> None:
        """Show ``manifest``'s call (waveform computed on a worker); stops any other."""
        self.clear()
        self.manifest = manifest
        self.wave.set_waveform(None, "Loading the waveform…")
        job = LoadJob(self._generation, store, manifest, self._cache_dir)
        self._adapter.run_task(lambda: load_audio(job), lambda r: self._on_load_done(job, r), name="player-load")

    def _on_load_done(self, job: LoadJob, result: TaskResult) -> None:
        if job.generation != self._generation:
            return  # another call was selected meanwhile
        if not result.ok:
            self.wave.set_waveform(None, "This recording cannot be shown.")
            self.status.setText(f"Cannot read the recording: {result.error}")
            emit_signal(self.load_failed, str(result.error))
            return
        audio, waveform = result.value
        self.wave.set_waveform(waveform)
        self._set_time(0.0)
        self._loaded = (audio, waveform)
        if self._open_player():
            emit_signal(self.loaded, job.manifest.call_id)

    def _open_player(self) -> bool:
        """A Player for the loaded call on the chosen output (GUI thread: it opens the stream)."""
        audio, waveform = self._loaded
        try:
            self.player = Player(audio, waveform=waveform, output_factory=self._output_factory,
                                 device=self._output_device,
                                 speed=float(self.speed.currentData()), channel_mode=self.channel.currentData(),
                                 skip_silence=self.skip_silence.isChecked())
        except Exception as exc:  # noqa: BLE001 - no sound device: the waveform and notes still work
            log.warning("cannot open the sound output: %s", exc)
            self.status.setText(f"No sound output: {exc}")
            self._enable(False)
            emit_signal(self.load_failed, str(exc))
            return False
        self.status.setText("")
        self._enable(True)
        return True

    # ---- the sound output ------------------------------------------------------------------------
    def set_output_devices(self, devices: PlaybackDevices) -> None:
        """Fill "Play on" with this PC's outputs and select the current setting (no signal)."""
        self.output.blockSignals(True)
        try:
            self.output.clear()
            self.output.addItem(OUTPUT_DEFAULT_TEXT, DEFAULT_OUTPUT)
            for name in devices.names:
                self.output.addItem(name, name)
            current = devices.current.strip()
            if current.lower() in ("", DEFAULT_OUTPUT):
                self.output.setCurrentIndex(0)
            else:
                index = self.output.findData(current)
                if index < 0:  # set by name part or index, or a device that is not plugged in now
                    self.output.addItem(f"{current} (as set)", current)
                    index = self.output.count() - 1
                self.output.setCurrentIndex(index)
        finally:
            self.output.blockSignals(False)
        self.output.setEnabled(devices.locked is None)
        tip = devices.locked or devices.error or OUTPUT_TIP
        self.output.setToolTip(safe_tooltip(tip))  # IT's reason or a device error: shown as text

    def _on_output_current_index_changed(self, _: int) -> None:
        choice = self.output.currentData()
        if choice is None:
            return
        self._output_device = device_spec(choice)
        if self._loaded is not None:  # the loaded call moves to the new output, paused where it was
            at = 0.0
            if self.player is not None:  # (None: the last output could not be opened)
                at = self.player.position
                self.pause()
                player, self.player = self.player, None
                player.close()
            if self._open_player():
                self.player.seek(at)
                self._set_time(at)
        emit_signal(self.output_device_chosen, str(choice))

    def clear(self) -> None:
        """Stop and forget the current call."""
        self._generation += 1
        self._timer.stop()
        if self.player is not None:
            player, self.player = self.player, None
            player.close()
        self.manifest = None
        self._loaded = None
        self.editing = None
        self.cancel_change_button.setVisible(False)
        self.wave.set_waveform(None, "Select a call to see and play it.")
        self._on_wave_range_selected(None)
        self.play_button.setText("▶ Play")
        self.status.setText("")
        self._set_time(0.0)
        self._enable(False)

    def set_notes(self, notes: list[Note]) -> None:
        """Show the call's current notes (a revision says "changed")."""
        self.notes = list(notes)
        self.note_list.clear()
        for n in self.notes:
            tags = f"  [{', '.join(n.tags)}]" if n.tags else ""
            when = format_duration(n.at_seconds)
            if n.end_seconds is not None:
                when += f"–{format_duration(n.end_seconds)}"
            changed = " (changed)" if n.replaces is not None else ""
            item = QListWidgetItem(f"{when}  {n.text}{tags}\n— {n.author}{changed}")
            item.setData(Qt.ItemDataRole.UserRole, n.at_seconds)
            self.note_list.addItem(item)
        self._on_note_list_current_row_changed(self.note_list.currentRow())
        self.wave.note_times = [n.at_seconds for n in self.notes]
        self.wave.note_ranges = [(n.at_seconds, n.end_seconds) for n in self.notes if n.end_seconds is not None]
        self.wave.update()

    # ---- selection --------------------------------------------------------------------------------
    @property
    def selection(self) -> tuple[float, float] | None:
        return self.wave.selection

    def select(self, start: float, end: float) -> None:
        self.wave.set_selection((start, end))

    def select_from_here(self) -> None:
        """``[``: the selection starts at the playing position (and runs to its end, or the call's)."""
        if self.player is None:
            return
        pos, sel = self.position, self.wave.selection
        self.wave.set_selection((pos, sel[1] if sel and sel[1] > pos else self.wave.duration))

    def select_to_here(self) -> None:
        """``]``: the selection ends at the playing position (from its start, or the call's)."""
        if self.player is None:
            return
        pos, sel = self.position, self.wave.selection
        self.wave.set_selection((sel[0] if sel and sel[0] < pos else 0.0, pos))

    def clear_selection(self) -> None:
        if self.wave.selection is not None:
            self.wave.set_selection(None)

    def _on_wave_range_selected(self, selection) -> None:
        if selection is None:
            self.selection_label.setText("Drag across the waveform, or press [ and ], to select a part.")
        else:
            a, b = selection
            self.selection_label.setText(f"Selected {format_duration(a)}–{format_duration(b)} "
                                         f"({b - a:.1f} s): add a note on it, or export it.")
        self.clear_selection_button.setVisible(selection is not None)
        self._show_note_action()
        emit_signal(self.range_selected, selection)

    def _show_note_action(self) -> None:
        """What the add button does now: save a change, note the selection, or the position."""
        self.add_note_button.setText("Save changes" if self.editing is not None else
                                     "Add note on the selection" if self.wave.selection is not None else
                                     "Add note at current time")

    # ---- transport --------------------------------------------------------------------------------
    @property
    def position(self) -> float:
        return self.player.position if self.player is not None else 0.0

    def toggle_play(self) -> None:
        if self.player is None:
            return
        if self.player.playing:
            self.pause()
        else:
            self.play()

    def play(self) -> None:
        """Plays once the window has granted access (purpose chosen and logged)."""
        if self.player is None:
            return
        generation = self._generation

        def granted() -> None:  # GUI thread
            if generation == self._generation and self.player is not None:
                self.player.play()
                self.play_button.setText("⏸ Pause")
                self._timer.start()

        self._request_access("play", granted)

    def pause(self) -> None:
        if self.player is not None:
            self.player.pause()
        self.play_button.setText("▶ Play")
        self._timer.stop()
        self._set_time(self.position)

    def seek(self, seconds: float) -> None:
        if self.player is None:
            return
        self.player.seek(seconds)
        self._set_time(self.player.position)

    def skip(self, delta: float) -> None:
        if self.player is not None:
            self.seek(self.player.position + delta)

    def _set_time(self, seconds: float) -> None:
        total = self.manifest.duration_seconds if self.manifest is not None else 0.0
        self.time_label.setText(f"{format_duration(seconds)} / {format_duration(total)}")
        self.wave.set_position(seconds)

    def _on_timer_timeout(self) -> None:
        player = self.player
        if player is None:
            self._timer.stop()
            return
        self._set_time(player.position)
        if not player.playing:  # finished (or the feeder stopped)
            self._timer.stop()
            self.play_button.setText("▶ Play")
            if player.error is not None:
                self.status.setText(f"Playback stopped: {player.error}")

    def _on_speed_current_index_changed(self, _: int) -> None:
        if self.player is not None:
            self.player.set_speed(float(self.speed.currentData()))

    def _on_channel_current_index_changed(self, _: int) -> None:
        mode = self.channel.currentData()
        self.wave.channel_mode = mode
        self.wave.update()
        if self.player is not None:
            self.player.set_channel_mode(mode)

    def _on_skip_silence_toggled(self, on: bool) -> None:
        if self.player is not None:
            self.player.set_skip_silence(on)

    # ---- notes ------------------------------------------------------------------------------------
    def _on_note_list_item_clicked(self, item: QListWidgetItem) -> None:
        seconds = float(item.data(Qt.ItemDataRole.UserRole))
        self.seek(seconds)
        emit_signal(self.note_clicked, seconds)

    def selected_note(self) -> Note | None:
        row = self.note_list.currentRow()
        return self.notes[row] if 0 <= row < len(self.notes) else None

    def _on_note_list_current_row_changed(self, _: int) -> None:
        note = self.selected_note()
        own = note is not None and self.user is not None and note.author == self.user and self.manifest is not None
        self.change_note_button.setEnabled(own and self.editing is None)
        self.withdraw_note_button.setEnabled(own and self.editing is None)

    def _on_change_note_button_clicked(self) -> None:
        note = self.selected_note()
        if note is None:
            return
        self.editing = note
        self.note_text.setText(note.text)
        self.note_tags.setText(", ".join(note.tags))
        self._show_note_action()
        self.cancel_change_button.setVisible(True)
        self._on_note_list_current_row_changed(self.note_list.currentRow())
        self.note_text.setFocus()

    def cancel_change(self) -> None:
        self.editing = None
        self.note_text.clear()
        self.note_tags.clear()
        self.cancel_change_button.setVisible(False)
        self._show_note_action()
        self._on_note_list_current_row_changed(self.note_list.currentRow())

    def _on_withdraw_note_button_clicked(self) -> None:
        note = self.selected_note()
        if note is not None:
            emit_signal(self.note_withdraw_requested, note.note_id)

    def _on_add_note_button_clicked(self) -> None:
        text = self.note_text.text().strip()
        if not text:
            self.status.setText("Write the note first.")
            return
        tags = tuple(t.strip().lower() for t in self.note_tags.text().replace(";", ",").split(",") if t.strip())
        if self.editing is not None:
            emit_signal(self.note_revision_requested, self.editing.note_id, text, tags)
            return
        sel = self.wave.selection
        at, end = (sel[0], sel[1]) if sel is not None else (self.position, None)
        emit_signal(self.note_requested, round(at, 3), None if end is None else round(end, 3), text, tags)

    def note_saved(self) -> None:
        self.cancel_change()
        self.status.setText("")

    def timers(self) -> list[QTimer]:
        return [self._timer]
