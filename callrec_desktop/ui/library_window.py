"""The team leaders' Library: find a recorded call, read what happened, listen, annotate, export.

Built on the Qt-free catalogue (``catalog.py``), notes (``notes.py``), access log and purposes
(``governance``), playback and archive. Everything that touches SQLite or the store runs on a
worker through ``DeskAdapter.run_task`` (the one way back to the GUI thread); the GUI thread
only shows results.

Governance: before the first play of a recording, and before every export, the team leader
picks the purpose from the privacy notice's list (``choose_purpose``; the default is
``purpose_dialog.ask_purpose``). The choice is recorded with ``AccessLog.record`` on a worker
and only once it is stored does the call play or export. Cancel: nothing plays, nothing is
logged. Adding, changing or withdrawing a note asks for the purpose too (unless the call was
played for one), and is recorded as a "note" access event naming the note, once it is stored.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from PySide6.QtCore import QDate, QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from callrec_desktop.archive import ArchiveError, export_call, export_range_frames
from callrec_desktop.audio.sources import device_spec
from callrec_desktop.catalog import Catalog, CatalogFilter, SyncReport
from callrec_desktop.config import Lines, normalise_number
from callrec_desktop.core.manifest import END_REASONS, Manifest
from callrec_desktop.governance.access_log import AccessEvent, AccessLog
from callrec_desktop.governance.purposes import PURPOSES, Purpose
from callrec_desktop.notes import Note, NoteError, NoteStore
from callrec_desktop.storage.base import Store
from callrec_desktop.ui.adapter import DeskAdapter, TaskResult, emit_signal
from callrec_desktop.ui.library_model import END_WORDS, LibraryModel
from callrec_desktop.ui.player_widget import PlayerWidget
from callrec_desktop.ui.purpose_dialog import ask_purpose
from callrec_desktop.ui.settings_services import PlaybackChoice
from callrec_desktop.ui.widgets import FaultBanner, format_duration, make_labels_plain, safe_tooltip

log = logging.getLogger(__name__)

SOURCE_WORDS = {"agent": "the agent (button)", "control_api": "the softphone or payment page",
                "automatic": "automatic detection", "script": "a script", "system": "the recorder"}
ACTION_WORDS = {"play": "played", "export": "exported", "note": "added a note to"}
ANY = "Any"


# ---- words (pure) ---------------------------------------------------------------------------------

def _when(t: datetime | None) -> str:
    return t.astimezone().strftime("%a %d %b %Y %H:%M:%S") if t is not None else "—"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def describe_call(m: Manifest) -> str:
    """The manifest's facts in plain words (rich text for the detail pane)."""
    rate = m.audio.sample_rate
    rows = [
        ("Line", f"{m.line_number} — {m.department}"),
        ("Caller", m.caller or "number withheld"),
        ("Agent", f"{m.agent} on workstation {m.workstation}"),
        ("Started", _when(m.started_at)),
        ("Ended", _when(m.ended_at)),
        ("Length", format_duration(m.duration_seconds)),
        ("Kept until", m.retention_until.astimezone().strftime("%d %b %Y")
         + (" — on legal hold: kept until the hold is lifted" if m.legal_hold else "")),
    ]
    pauses = []
    for p in sorted(m.pauses, key=lambda p: p.offset_frames):
        what = "Payment pause" if p.reason == "payment" else "Pause at the agent's request"
        a, b = p.offset_frames / rate, (p.offset_frames + p.duration_frames) / rate
        ended = f", ended by {SOURCE_WORDS.get(p.end_source, p.end_source)}" if p.end_source else ""
        pauses.append(_escape(f"{what} from {format_duration(a)} to {format_duration(b)} ({b - a:.0f} s): not "
                              f"recorded. Started by {SOURCE_WORDS.get(p.source, p.source)}{ended}."))
    rows.append(("Pauses", "<br>".join(pauses) if pauses else "none"))
    if m.status == "recording":
        end = "Still being recorded (this is a provisional copy)."
    elif m.end is None:
        end = "Unknown."
    elif m.end.reason == "transferred":
        end = f"Transferred to {m.end.department or 'another department'} at {format_duration(m.duration_seconds)}."
    elif m.end.reason == "hangup":
        end = "The call was ended (hung up)."
    elif m.end.reason == "interrupted":
        end = ("Interrupted: the recording stopped unexpectedly (the PC was shut down, or the recorder "
               "stopped) and was closed when the recorder next started. The call itself may have gone on "
               "after the recording ends.")
    elif m.end.reason == "disk_full":
        end = (f"The recording stopped at {format_duration(m.duration_seconds)} because the PC's disk was full; "
               f"it holds everything recorded up to there. The call itself may have gone on after it.")
    else:
        end = "Ended by an error in the recorder: the recording may be incomplete."
    if m.recovered and (m.end is None or m.end.reason != "interrupted"):
        end += " Recovered after a restart."
    rows.append(("End", end))
    body = "".join(f"<tr><td style='padding-right:10px; color:#475467;'><b>{k}</b></td><td>{v if k == 'Pauses' else _escape(v)}"
                   f"</td></tr>" for k, v in rows)
    return f"<table>{body}</table><p style='color:#98A2B3;'>Call {m.call_id}</p>"


def describe_history(events: list[AccessEvent]) -> str:
    if not events:
        return "Nobody has played or exported this recording yet."
    lines = []
    for e in events:
        purpose = _escape(PURPOSES.get(e.purpose, e.purpose))  # an unknown code is the store's text
        reason = f" — “{_escape(e.reason)}”" if e.reason else ""
        detail = e.detail or {}
        did = ("withdrew a note on" if e.action == "note" and "withdraws" in detail else
               "changed a note on" if e.action == "note" and "replaces" in detail else
               _escape(ACTION_WORDS.get(e.action, e.action)))
        who = f"<b>{_escape(e.user)}</b>" + (f" “{_escape(e.label)}”" if e.label and e.label != e.user else "")
        lines.append(f"{_when(e.at)}: {who} ({_escape(e.workstation)}) {did} it for: "
                     f"{purpose}{reason}")
    return "<br>".join(lines)


def call_summary(m: Manifest | None) -> str:
    if m is None:
        return "this recording"
    return (f"the call on {m.line_number} ({m.department}) with {m.caller or 'a withheld number'}, "
            f"{_when(m.started_at)}")


def ask_confirmation(parent: QWidget | None, title: str, text: str) -> bool:
    """The default ``confirm``: a Yes/No question, No by default, its text shown as text."""
    box = QMessageBox(QMessageBox.Icon.Question, title, text,
                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    return box.exec() == QMessageBox.StandardButton.Yes


def ask_export_path(parent: QWidget | None, suggested: str) -> Path | None:
    """The default ``choose_export_path``: a save dialog for .wav, .flac or .opus; None when cancelled."""
    filters = {".wav": "WAV audio (*.wav)", ".flac": "FLAC audio (*.flac)", ".opus": "Opus audio (*.opus *.ogg)"}
    first = filters.get(Path(suggested).suffix.lower(), filters[".wav"])
    path, chosen = QFileDialog.getSaveFileName(parent, "Export recording", suggested,
                                               ";;".join([first, *(f for f in filters.values() if f != first)]))
    if not path:
        return None
    p = Path(path)
    if p.suffix.lower() not in (".wav", ".flac", ".opus", ".ogg"):
        p = p.with_suffix(".flac" if "flac" in chosen.lower() else ".opus" if "opus" in chosen.lower() else ".wav")
    return p


def parse_clock(text: str) -> float:
    """Seconds from "mm:ss", "h:mm:ss" or "ss" (seconds may have a fraction: "01:02.5");
    ``ValueError`` (fit to show) otherwise."""
    parts = text.strip().split(":")
    try:
        if not 1 <= len(parts) <= 3 or any(not p.strip() for p in parts):
            raise ValueError
        *whole, sec = parts
        seconds = float(sec)
        for p in whole:
            if not p.strip().isdigit():
                raise ValueError
        minutes = 0
        for p in whole:
            minutes = minutes * 60 + int(p)
        if not math.isfinite(seconds) or seconds < 0 or (whole and seconds >= 60):
            raise ValueError
    except ValueError:
        raise ValueError(f"“{text.strip()}” is not a time: write it as mm:ss") from None
    return minutes * 60 + seconds


def clock(seconds: float, *, up: bool = False) -> str:
    """mm:ss (h:mm:ss from an hour), whole seconds, rounded down (or ``up``)."""
    return format_duration(math.ceil(seconds) if up else seconds)


def clock_tenths(seconds: float) -> str:
    """mm:ss.s (h:mm:ss.s from an hour), to the nearest tenth: a waveform selection as typed."""
    tenths = round(max(seconds, 0.0) * 10)
    return f"{format_duration(tenths // 10)}.{tenths % 10}"


@dataclass(frozen=True)
class Details:
    manifest: Manifest
    notes: list[Note]


class _Progress:
    """The sync's latest (done, listed), written by the sync worker and read by a GUI-thread
    QTimer: only the newest value matters, so a plain attribute swap (atomic under the GIL)
    replaces a queue."""

    def __init__(self) -> None:
        self.value: tuple[int, int] | None = None

    def put(self, done: int, listed: int) -> None:  # runs on the sync worker thread
        self.value = (done, listed)


# ---- the window ---------------------------------------------------------------------------------

class _NoteNotLogged(Exception):
    """A note was stored but its access-log entry could not be (worker → GUI thread)."""

    def __init__(self, note: Note, notes: list[Note], cause: Exception) -> None:
        super().__init__(str(cause))
        self.note, self.notes, self.cause = note, notes, cause


class LibraryWindow(QMainWindow):
    """The Library. ``user`` and ``workstation`` go into every access event and note.

    ``playback`` (the app gives it) is the team leader's playback device: "Play on" lists this
    PC's outputs and keeps the choice in their settings file. Without it (tests), calls play
    on ``output_device`` and "Play on" is disabled."""

    sync_finished = Signal(object)  # SyncReport, or None when the sync failed
    choices_refreshed = Signal()  # the filter lists were filled from the catalogue
    details_shown = Signal(str)  # call_id
    history_shown = Signal(str)  # call_id
    access_recorded = Signal(object)  # AccessEvent
    access_refused = Signal(str)  # why a play/export did not happen
    note_added = Signal(object)  # Note (a new note, a revision or a withdrawal record)
    export_finished = Signal(object)  # Path, or None when it failed

    def __init__(self, catalog: Catalog, store: Store, adapter: DeskAdapter, *, workstation: str,
                 cache_dir: Path, user: str | None = None, label: str | None = None, lines: Lines | None = None,
                 choose_purpose: Callable[[QWidget, str, str], Purpose | None] = ask_purpose,
                 choose_export_path: Callable[[QWidget, str], Path | None] = ask_export_path,
                 confirm: Callable[[QWidget, str, str], bool] = ask_confirmation,
                 output_factory: Callable[..., Any] | None = None, output_device: str | int | None = None,
                 playback: PlaybackChoice | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.catalog = catalog
        self.store = store
        self.adapter = adapter
        if user is None:  # the author of notes and access events: the OS login (tests pass another)
            from callrec_desktop.governance.os_user import os_login

            user = os_login()
        self.user = user
        self.notes = NoteStore(store, catalog, label=label)  # label: the typed id, shown beside the author
        self.access = AccessLog(store, user=user, label=label, workstation=workstation)
        self._choose_purpose = choose_purpose
        self._choose_export_path = choose_export_path
        self._confirm = confirm
        self._purposes: dict[str, Purpose] = {}  # call_id -> purpose given before its first play
        self.call_id: str | None = None
        self.manifest: Manifest | None = None
        self._generation = 0
        self._syncing = False
        self._progress = _Progress()
        self._progress_timer = QTimer(self)
        self._progress_timer.setInterval(100)
        self._progress_timer.timeout.connect(self._on_progress_timer_timeout)
        self.model = LibraryModel(catalog, adapter, self)
        self.setWindowTitle("Call recordings — Library")
        self.resize(1280, 860)
        if playback is not None:  # the team leader's setting, which "Play on" shows and changes
            output_device = device_spec(playback.config.audio.output_device)
        self._build(lines, cache_dir, output_factory, output_device)
        make_labels_plain(self)  # store, device and error texts: shown as text, never HTML
        self.model.page_loaded.connect(self._on_model_page_loaded)
        self.model.load_failed.connect(self._on_model_load_failed)
        self._playback = playback
        self._output_to_save: str | None = None  # a "Play on" choice waiting for the save before it
        self._saving_output = False
        if playback is not None:  # "Play on": this PC's outputs (PortAudio) and the setting, on a worker
            self.player.output_device_chosen.connect(self._on_player_output_device_chosen)
            self.adapter.run_task(playback.load, self._on_playback_loaded, name="library-outputs")
        else:
            self.player.output.setEnabled(False)
            self.player.output.setToolTip("Set by the program that opened this window")

    # ---- building ----------------------------------------------------------------------------------
    def _build(self, lines: Lines | None, cache_dir: Path, output_factory, output_device) -> None:
        central = QWidget(self)
        root = QVBoxLayout(central)
        root.setSpacing(8)

        box = QGroupBox("Find calls", central)
        grid = QGridLayout(box)
        self.from_on, self.from_date = QCheckBox("From", box), QDateEdit(box)
        self.to_on, self.to_date = QCheckBox("To", box), QDateEdit(box)
        today = QDate.currentDate()
        for on, edit, d in ((self.from_on, self.from_date, today.addDays(-30)), (self.to_on, self.to_date, today)):
            edit.setCalendarPopup(True)
            edit.setDate(d)
            edit.setDisplayFormat("dd MMM yyyy")
            edit.setEnabled(False)
            on.toggled.connect(edit.setEnabled)
        numbers = [ln.number or ln.id for ln in lines.lines] if lines else []
        departments = sorted({ln.department for ln in lines.lines} | set(lines.transfer_departments)) if lines else []
        self._line_choices, self._department_choices = numbers, departments
        self.line = self._combo(box, numbers, "Line")
        self.department = self._combo(box, departments, "Department")
        self.agent = self._combo(box, [], "Agent")
        self.workstation = self._combo(box, [], "Workstation")
        self.tag = self._combo(box, [], "Note tag")
        self.min_minutes, self.max_minutes = self._minutes(box, "Longer than"), self._minutes(box, "Shorter than")
        self.caller = QLineEdit(box)
        self.caller.setPlaceholderText("any spelling, or the first digits")
        self.caller.setAccessibleName("Caller number")
        self.end_reason = QComboBox(box)
        self.end_reason.addItem(ANY, None)
        for r in END_REASONS:
            self.end_reason.addItem(END_WORDS.get(r, r), r)
        self.payment = self._yes_no(box)
        self.has_notes = self._yes_no(box)
        self.search_button = QPushButton("Search", box)
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.apply_filters)
        self.clear_button = QPushButton("Clear", box)
        self.clear_button.clicked.connect(self.clear_filters)
        self.caller.returnPressed.connect(self.apply_filters)
        for combo in (self.line, self.department, self.agent, self.workstation, self.tag):
            combo.lineEdit().returnPressed.connect(self.apply_filters)
        cells = [
            (self.from_on, self.from_date), (self.to_on, self.to_date), ("Line", self.line),
            ("Department", self.department), ("Agent", self.agent),
            ("Caller", self.caller), ("Workstation", self.workstation), ("End", self.end_reason),
            ("Payment pause", self.payment), ("Notes", self.has_notes),
            ("Note tag", self.tag), ("Longer than", self.min_minutes), ("Shorter than", self.max_minutes),
        ]
        for i, (label, widget) in enumerate(cells):
            r, c = divmod(i, 5)
            grid.addWidget(label if isinstance(label, QWidget) else QLabel(label, box), r, 2 * c)
            grid.addWidget(widget, r, 2 * c + 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.search_button)
        buttons.addWidget(self.clear_button)
        grid.addLayout(buttons, 2, 8, 1, 2)
        root.addWidget(box)

        sync_row = QHBoxLayout()
        self.sync_button = QPushButton("Sync with the store", central)
        self.sync_button.setToolTip("Read new recordings and notes from the central store into this PC's index")
        self.sync_button.clicked.connect(self.sync)
        self.sync_progress = QProgressBar(central)
        self.sync_progress.setMaximumWidth(260)
        self.sync_progress.hide()
        self.sync_label = QLabel("", central)
        self.count_label = QLabel("", central)
        self.count_label.setStyleSheet("color: #475467;")
        sync_row.addWidget(self.sync_button)
        sync_row.addWidget(self.sync_progress)
        sync_row.addWidget(self.sync_label, 1)
        sync_row.addWidget(self.count_label)
        root.addLayout(sync_row)

        self.problems = FaultBanner("Some recordings could not be read", "", severity="warning", parent=central)
        self.problems.advice.setTextFormat(Qt.TextFormat.RichText)  # line breaks; the keys and problems are escaped
        self.problems.hide()
        root.addWidget(self.problems)

        self.table = QTableView(central)
        self.table.setModel(self.model)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSortIndicator(0, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        self.table.setAccessibleName("Recorded calls")
        self.table.selectionModel().currentRowChanged.connect(self._on_table_current_row_changed)

        detail = QWidget(central)
        dl = QVBoxLayout(detail)
        self.detail_label = QLabel("Select a call.", detail)
        self.detail_label.setWordWrap(True)
        self.detail_label.setTextFormat(Qt.TextFormat.RichText)
        self.detail_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail_label.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.history_label = QLabel("", detail)
        self.history_label.setWordWrap(True)
        self.history_label.setTextFormat(Qt.TextFormat.RichText)
        self.export_format = QComboBox(detail)
        self.export_format.addItem("WAV", ".wav")
        self.export_format.addItem("FLAC", ".flac")
        self.export_format.addItem("Opus", ".opus")
        self.export_format.setAccessibleName("Export format")
        self.export_range = QComboBox(detail)
        self.export_range.addItem("Whole call", False)
        self.export_range.addItem("From … to …", True)
        self.export_range.setAccessibleName("What to export")
        self.export_from, self.export_to = QLineEdit(detail), QLineEdit(detail)
        for edit, name in ((self.export_from, "Export from (mm:ss)"), (self.export_to, "Export to (mm:ss)")):
            edit.setPlaceholderText("mm:ss")
            edit.setAccessibleName(name)
            edit.setMaximumWidth(80)
            edit.setEnabled(False)
        self.export_range.currentIndexChanged.connect(self._on_export_range_current_index_changed)
        self.export_button = QPushButton("Export…", detail)
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self.export)
        export_row = QHBoxLayout()
        export_row.addWidget(self.export_format)
        export_row.addWidget(self.export_range)
        export_row.addWidget(self.export_from)
        export_row.addWidget(QLabel("to", detail))
        export_row.addWidget(self.export_to)
        export_row.addWidget(self.export_button)
        export_row.addStretch(1)
        self.message = QLabel("", detail)
        self.message.setWordWrap(True)
        for heading in ("About this call", "Who has used this recording"):
            label = QLabel(f"<b>{heading}</b>", detail)
            label.setTextFormat(Qt.TextFormat.RichText)  # ours, constant
            dl.addWidget(label)
            dl.addWidget(self.detail_label if heading.startswith("About") else self.history_label)
        dl.addLayout(export_row)
        dl.addWidget(self.message)
        dl.addStretch(1)
        scroll = QScrollArea(central)
        scroll.setWidgetResizable(True)
        scroll.setWidget(detail)

        top = QSplitter(Qt.Orientation.Horizontal, central)
        top.addWidget(self.table)
        top.addWidget(scroll)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 2)
        top.setSizes([820, 460])
        self.player = PlayerWidget(self.adapter, cache_dir=cache_dir, request_access=self.request_access,
                                   output_factory=output_factory, output_device=output_device, user=self.user,
                                   parent=central)
        self.player.note_requested.connect(self._on_player_note_requested)
        self.player.note_revision_requested.connect(self._on_player_note_revision_requested)
        self.player.note_withdraw_requested.connect(self._on_player_note_withdraw_requested)
        self.player.range_selected.connect(self._on_player_range_selected)
        split = QSplitter(Qt.Orientation.Vertical, central)
        split.addWidget(top)
        split.addWidget(self.player)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        root.addWidget(split, 1)
        self.setCentralWidget(central)

    @staticmethod
    def _combo(parent: QWidget, items: list[str], name: str) -> QComboBox:
        combo = QComboBox(parent)
        combo.setEditable(True)
        combo.addItem("")
        combo.addItems(items)
        combo.lineEdit().setPlaceholderText(ANY)
        combo.setAccessibleName(name)
        combo.setMinimumContentsLength(12)
        return combo

    @staticmethod
    def _minutes(parent: QWidget, name: str) -> QSpinBox:
        box = QSpinBox(parent)
        box.setRange(0, 24 * 60)
        box.setSuffix(" min")
        box.setSpecialValueText(ANY)  # 0 is "any"
        box.setAccessibleName(f"{name} (minutes)")
        return box

    @staticmethod
    def _set_choices(combo: QComboBox, values: list[str]) -> None:
        """Replace ``combo``'s list with ``values`` (after a blank for "any"), keeping what is typed."""
        typed = combo.currentText()
        with QSignalBlocker(combo):
            combo.clear()
            combo.addItem("")
            combo.addItems(values)
            combo.setEditText(typed)

    def refresh_choices(self) -> None:
        """Fill the line, department, agent, workstation and tag lists from the catalogue (worker)."""
        catalog, base_lines, base_departments = self.catalog, self._line_choices, self._department_choices

        def work() -> dict[str, list[str]]:
            try:
                return {"line": sorted(set(base_lines) | set(catalog.values("line"))),
                        "department": sorted(set(base_departments) | set(catalog.values("department"))),
                        "agent": catalog.values("agent"), "workstation": catalog.values("workstation"),
                        "tag": catalog.all_tags()}
            finally:
                catalog.close()

        def done(result: TaskResult) -> None:
            if not result.ok:
                log.warning("cannot read the filter lists from the catalogue: %s", result.error)
                return
            for name, values in result.value.items():
                self._set_choices(getattr(self, name), values)
            emit_signal(self.choices_refreshed)

        self.adapter.run_task(work, done, name="library-choices")

    @staticmethod
    def _yes_no(parent: QWidget) -> QComboBox:
        combo = QComboBox(parent)
        combo.addItem(ANY, None)
        combo.addItem("Yes", True)
        combo.addItem("No", False)
        return combo

    # ---- filters ------------------------------------------------------------------------------------
    def current_filter(self) -> CatalogFilter:
        """The filter the fields describe; ``ValueError`` (fit to show) for a bad caller number."""
        def local_midnight(d: date) -> datetime:
            return datetime.combine(d, time()).astimezone()  # the PC's local day

        caller = self.caller.text().strip() or None
        if caller is not None and not normalise_number(caller):
            raise ValueError(f"“{caller}” is not a phone number")
        return CatalogFilter(
            started_from=local_midnight(self.from_date.date().toPython()) if self.from_on.isChecked() else None,
            started_to=(local_midnight(self.to_date.date().toPython() + timedelta(days=1))
                        if self.to_on.isChecked() else None),
            line=self.line.currentText().strip() or None,
            department=self.department.currentText().strip() or None,
            agent=self.agent.currentText().strip() or None,
            workstation=self.workstation.currentText().strip() or None,
            tag=self.tag.currentText().strip().lower() or None,
            min_seconds=self.min_minutes.value() * 60 or None,
            max_seconds=self.max_minutes.value() * 60 or None,
            caller=caller, caller_prefix=True,
            end_reason=self.end_reason.currentData(),
            had_payment_pause=self.payment.currentData(),
            has_notes=self.has_notes.currentData(),
        )

    def apply_filters(self) -> None:
        try:
            flt = self.current_filter()
        except ValueError as exc:
            self.count_label.setText(str(exc))
            return
        self.count_label.setText("Searching…")
        self.model.set_filter(flt)

    def clear_filters(self) -> None:
        self.caller.clear()
        for combo in (self.line, self.department, self.agent, self.workstation, self.tag):
            combo.setCurrentIndex(0)
            combo.setEditText("")
        for box in (self.min_minutes, self.max_minutes):
            box.setValue(0)
        for combo in (self.end_reason, self.payment, self.has_notes):
            combo.setCurrentIndex(0)
        self.from_on.setChecked(False)
        self.to_on.setChecked(False)
        self.apply_filters()

    def _on_model_page_loaded(self, total: int) -> None:
        self.count_label.setText(f"{total} call{'s' if total != 1 else ''}")
        if self.model.rowCount() <= self.model.page_size:  # the first page: fit the columns once
            self.table.resizeColumnsToContents()

    def _on_model_load_failed(self, message: str) -> None:
        self.count_label.setText(f"Search failed: {message}")

    # ---- sync -----------------------------------------------------------------------------------------
    def sync(self) -> None:
        """Bring this PC's index up to date with the store (on a worker)."""
        if self._syncing:
            return
        self._syncing = True
        self.sync_button.setEnabled(False)
        self.sync_progress.setRange(0, 0)
        self.sync_progress.show()
        self.sync_label.setText("Syncing…")
        self._progress = progress = _Progress()
        self._progress_timer.start()
        catalog, store = self.catalog, self.store

        def work() -> SyncReport:  # worker thread
            try:
                return catalog.sync(store, progress=progress.put)
            finally:
                catalog.close()

        self.adapter.run_task(work, self._on_sync_done, name="library-sync")

    def _on_progress_timer_timeout(self) -> None:
        value = self._progress.value
        if value is not None:
            done, listed = value
            self.sync_progress.setRange(0, max(listed, 1))
            self.sync_progress.setValue(done)
            self.sync_label.setText(f"Syncing… {done} of {listed} recordings checked")

    def _on_sync_done(self, result: TaskResult) -> None:
        self._syncing = False
        self._progress_timer.stop()
        self.sync_progress.hide()
        self.sync_button.setEnabled(True)
        if not result.ok:
            self.sync_label.setText(f"Sync failed: {result.error}")
            emit_signal(self.sync_finished, None)
            return
        report: SyncReport = result.value
        self.sync_label.setText(f"Synced at {datetime.now().strftime('%H:%M')}: {report.added} new, "
                                f"{report.updated} updated, {report.notes_indexed} new notes")
        if report.problems:
            shown = report.problems[:5]
            more = f"<br>…and {len(report.problems) - len(shown)} more (see the log)" if len(report.problems) > 5 else ""
            self.problems.advice.setText(
                f"{len(report.problems)} file(s) in the store could not be read and were skipped (the calls "
                "and notes that could be read are listed). Tell IT: they may be damaged or tampered with.<br>"
                + "<br>".join(f"{_escape(p.key)}: {_escape(p.problem)}" for p in shown) + more)
            self.problems.show()
            for p in report.problems:
                log.warning("sync: %s: %s", p.key, p.problem)
        else:
            self.problems.hide()
        self.model.reload()
        self.refresh_choices()
        emit_signal(self.sync_finished, report)

    # ---- selection and details ----------------------------------------------------------------------------
    def _on_table_current_row_changed(self, current, _previous) -> None:
        row = self.model.row_at(current.row()) if current.isValid() else None
        if row is None or row.call_id == self.call_id:
            return
        self.show_call(row.call_id)

    def select_row(self, row: int) -> None:
        self.table.selectRow(row)

    def show_call(self, call_id: str) -> None:
        self._generation += 1
        generation = self._generation
        self.call_id, self.manifest = call_id, None
        self.export_button.setEnabled(False)
        self.player.clear()
        self.player.set_notes([])
        self.detail_label.setText("Loading…")
        self.history_label.setText("")
        self.message.setText("")
        catalog, notes = self.catalog, self.notes

        def work() -> Details:  # worker thread
            try:
                return Details(catalog.manifest(call_id), notes.list(call_id))
            finally:
                catalog.close()

        self.adapter.run_task(work, lambda r: self._on_details_done(generation, r), name="library-details")
        self._refresh_history()

    def _on_details_done(self, generation: int, result: TaskResult) -> None:
        if generation != self._generation:
            return
        if not result.ok:
            self.detail_label.setText(f"Cannot show this call: {_escape(str(result.error))}")
            return
        details: Details = result.value
        self.manifest = details.manifest
        self.detail_label.setText(describe_call(details.manifest))
        self.player.set_notes(details.notes)
        skipped = getattr(details.notes, "problems", ())
        if skipped:  # notes that are damaged or hostile: named, and the readable ones shown
            self.message.setText(f"{len(skipped)} note(s) on this call could not be read and were skipped "
                                 f"(tell IT): " + "; ".join(key for key, _ in skipped[:3])
                                 + (" …" if len(skipped) > 3 else ""))
            for key, why in skipped:
                log.warning("notes: %s: %s", key, why)
        self.player.load(self.store, details.manifest)
        self.export_button.setEnabled(True)
        self.prefill_export_range()
        emit_signal(self.details_shown, details.manifest.call_id)

    def _refresh_history(self) -> None:
        call_id, access, generation = self.call_id, self.access, self._generation
        if call_id is None:
            return
        self.adapter.run_task(lambda: access.history(call_id), lambda r: self._on_history_done(generation, call_id, r),
                              name="library-history")

    def _on_history_done(self, generation: int, call_id: str, result: TaskResult) -> None:
        if generation != self._generation:
            return
        if result.ok:
            text = describe_history(result.value)
            skipped = getattr(result.value, "problems", ())
            if skipped:  # damaged or hostile events: named, the readable ones shown
                text += (f"<br><b>{len(skipped)} entry(ies) of this history could not be read and were skipped "
                         f"(tell IT):</b> " + "; ".join(_escape(key) for key, _ in skipped[:3])
                         + (" …" if len(skipped) > 3 else ""))
                for key, why in skipped:
                    log.warning("access log: %s: %s", key, why)
            self.history_label.setText(text)
        else:
            self.history_label.setText(f"The access history cannot be read: {_escape(str(result.error))}")
        emit_signal(self.history_shown, call_id)

    # ---- the playback device -----------------------------------------------------------------------
    def _on_playback_loaded(self, result: TaskResult) -> None:
        if not result.ok:
            log.warning("cannot list the sound outputs: %s", result.error)
            self.player.output.setToolTip(safe_tooltip(f"Cannot list sound outputs: {result.error}"))
            return
        self.player.set_output_devices(result.value)

    def _on_player_output_device_chosen(self, device: str) -> None:
        self._output_to_save = device
        if not self._saving_output:
            self._save_output()

    def _save_output(self) -> None:
        """One save at a time, so two quick choices are written in the order they were made."""
        playback, device = self._playback, self._output_to_save
        self._output_to_save, self._saving_output = None, True
        self.adapter.run_task(lambda: playback.save(device), lambda r: self._on_output_saved(device, r),
                              name="library-output-save")

    def _on_output_saved(self, device: str, result: TaskResult) -> None:
        self._saving_output = False
        if self._output_to_save is not None:  # chosen again meanwhile: save that, and say so then
            self._save_output()
            return
        where = self.player.output.currentText() if self.player.output.currentData() == device else device
        if result.ok:
            self.message.setText(f"Calls play on {where}; kept for next time in {result.value}.")
        else:
            log.error("cannot save the playback device: %s", result.error)
            self.message.setText(f"Calls play on {where} until you close the Library, but the choice could not "
                                 f"be kept: {result.error}")

    # ---- access: purpose first, logged, then play / export / note -------------------------------------------
    def request_access(self, action: str, granted: Callable[[], None]) -> None:
        """Ask for the purpose (unless this call already has one, for play), record it on a
        worker, then call ``granted()`` on the GUI thread. Cancel: nothing happens. (Notes are
        logged by ``_save_note`` once they exist, so the entry can name them.)"""
        call_id = self.call_id
        if call_id is None:
            return
        if action == "play" and call_id in self._purposes:
            granted()
            return
        purpose = self._choose_purpose(self, action, call_summary(self.manifest))
        if purpose is None:
            self.message.setText("Not played: no purpose was given." if action == "play" else "Cancelled.")
            emit_signal(self.access_refused, "cancelled")
            return
        self._record(action, call_id, purpose, None, granted)

    def _record(self, action: str, call_id: str, purpose: Purpose, detail: dict | None,
                then: Callable[[], None] | None) -> None:
        access = self.access

        def work() -> AccessEvent:  # worker thread
            return access.record(action, call_id, purpose.code, purpose.reason, detail)

        def done(result: TaskResult) -> None:
            if not result.ok:
                self.message.setText(f"Not {ACTION_WORDS.get(action, action)}: the access could not be logged "
                                     f"({result.error}).")
                emit_signal(self.access_refused, str(result.error))
                return
            if action == "play":
                self._purposes[call_id] = purpose
            emit_signal(self.access_recorded, result.value)
            if call_id == self.call_id:
                self._refresh_history()
                if then is not None:
                    then()

        self.adapter.run_task(work, done, name=f"access-{action}")

    # ---- export -----------------------------------------------------------------------------------------
    def _on_export_range_current_index_changed(self, _: int) -> None:
        ranged = bool(self.export_range.currentData())
        self.export_from.setEnabled(ranged)
        self.export_to.setEnabled(ranged)
        if ranged:
            self.prefill_export_range()

    def _on_player_range_selected(self, selection) -> None:
        """A range selected on the waveform is what "Export…" writes; clearing it, the whole call."""
        with QSignalBlocker(self.export_range):
            self.export_range.setCurrentIndex(self.export_range.findData(selection is not None))
        self._on_export_range_current_index_changed(self.export_range.currentIndex())

    def prefill_export_range(self) -> None:
        """The waveform's selection; without one, from the player's position to the call's end."""
        if self.manifest is None:
            self.export_from.clear()
            self.export_to.clear()
            return
        selection = self.player.selection
        if selection is not None:
            self.export_from.setText(clock_tenths(selection[0]))
            self.export_to.setText(clock_tenths(selection[1]))
            return
        self.export_from.setText(clock(self.player.position))
        self.export_to.setText(clock(self.manifest.duration_seconds, up=True))

    def export_bounds(self) -> tuple[float | None, float | None]:
        """The range the export fields describe (None, None for the whole call); ``ValueError``
        (fit to show) for a field that is not a time or a range with nothing in it."""
        if not self.export_range.currentData():
            return None, None
        start, end = parse_clock(self.export_from.text()), parse_clock(self.export_to.text())
        if self.manifest is not None:
            try:
                export_range_frames(self.manifest, start, end)
            except ArchiveError:
                raise ValueError(f"Nothing to export from {clock(start)} to {clock(end)}: the call is "
                                 f"{clock(self.manifest.duration_seconds, up=True)} long, and the start must "
                                 "be before the end.") from None
        return start, end

    def export(self) -> None:
        """Export the whole call or a range (WAV/FLAC/Opus): purpose, file, logged, written on a worker."""
        call_id, manifest = self.call_id, self.manifest
        if call_id is None or manifest is None:
            return
        try:
            start, end = self.export_bounds()
        except ValueError as exc:  # before the purpose prompt: nothing asked, nothing logged
            self.message.setText(f"Not exported: {exc}")
            emit_signal(self.access_refused, "bad range")
            return
        purpose = self._choose_purpose(self, "export", call_summary(manifest))
        if purpose is None:
            self.message.setText("Not exported: no purpose was given.")
            emit_signal(self.access_refused, "cancelled")
            return
        suffix = self.export_format.currentData()
        stamp = manifest.started_at.astimezone().strftime("%Y%m%d-%H%M%S")
        part = "" if start is None else f"-{clock(start).replace(':', '')}-{clock(end).replace(':', '')}"
        path = self._choose_export_path(self, f"call-{stamp}-{manifest.department.replace(' ', '-')}{part}{suffix}")
        if path is None:
            self.message.setText("Not exported.")
            return
        path = Path(path)
        detail: dict = {"format": path.suffix.lower().lstrip("."), "file": path.name}
        if start is not None:
            first, last = export_range_frames(manifest, start, end)  # as written: clamped to the call
            rate = manifest.audio.sample_rate
            detail.update(from_seconds=first / rate, to_seconds=last / rate)
        store, access = self.store, self.access
        self.export_button.setEnabled(False)
        self.message.setText(f"Exporting to {path}…")

        def work() -> tuple[AccessEvent, Path]:  # worker thread: logged first, then written
            event = access.record("export", call_id, purpose.code, purpose.reason, detail)
            export_call(store, call_id, path, start_seconds=start, end_seconds=end)
            return event, path

        def done(result: TaskResult) -> None:
            self.export_button.setEnabled(self.manifest is not None)
            if not result.ok:
                self.message.setText(f"Export failed: {result.error}")
                emit_signal(self.export_finished, None)
                return
            event, written = result.value
            self.message.setText(f"Exported to {written}")
            emit_signal(self.access_recorded, event)
            if call_id == self.call_id:
                self._refresh_history()
            emit_signal(self.export_finished, written)

        self.adapter.run_task(work, done, name="library-export")

    def _on_player_note_requested(self, at_seconds: float, end_seconds: float | None, text: str, tags: tuple) -> None:
        call_id, manifest, user = self.call_id, self.manifest, self.user
        if call_id is None or manifest is None:
            return
        self._save_note(lambda notes: notes.add(call_id, user, at_seconds, text, tags, end_seconds, manifest=manifest))

    def _on_player_note_revision_requested(self, note_id: str, text: str, tags: tuple) -> None:
        call_id, manifest, user = self.call_id, self.manifest, self.user
        if call_id is None or manifest is None:
            return
        self._save_note(lambda notes: notes.revise(call_id, user, note_id, text, tags, manifest=manifest))

    def _on_player_note_withdraw_requested(self, note_id: str) -> None:
        call_id, user = self.call_id, self.user
        if call_id is None or not self._confirm(self, "Withdraw note",
                                                "Withdraw your note? Nobody will see it any more; a record "
                                                "that it was there and withdrawn is kept."):
            return
        self._save_note(lambda notes: notes.withdraw(call_id, user, note_id))

    def _save_note(self, change: Callable[[NoteStore], Note]) -> None:
        """Add, revise or withdraw a note (``change``, on a worker), then log it with the
        purpose (asked unless this call was played for one) and the note's id, and show the
        call's notes. A note is the team leader's own words, not the recording leaving: it is
        logged once it exists, so the entry can name it."""
        call_id = self.call_id
        if call_id is None:
            return
        purpose = self._purposes.get(call_id) or self._choose_purpose(self, "note", call_summary(self.manifest))
        if purpose is None:
            self.message.setText("Cancelled: no purpose was given.")
            emit_signal(self.access_refused, "cancelled")
            return
        notes, access, catalog = self.notes, self.access, self.catalog

        def work() -> tuple[Note, list[Note]]:  # worker thread
            try:
                note = change(notes)
                try:
                    access.record("note", call_id, purpose.code, purpose.reason, note.access_detail())
                except Exception as exc:  # the note exists: say so, and that its log entry is missing
                    raise _NoteNotLogged(note, notes.list(call_id), exc) from exc
                return note, notes.list(call_id)
            finally:
                catalog.close()

        def done(result: TaskResult) -> None:
            warning = ""
            if isinstance(result.error, _NoteNotLogged):
                log.error("note %s saved but not logged: %s", result.error.note.note_id, result.error.cause)
                note, all_notes = result.error.note, result.error.notes
                warning = f"The note was saved, but the access log could not be written ({result.error.cause}). Tell IT."
            elif not result.ok:
                why = result.error if isinstance(result.error, NoteError) else f"could not be saved ({result.error})"
                self.player.status.setText(f"Note not saved: {why}")
                return
            else:
                note, all_notes = result.value
            if call_id == self.call_id:
                self.player.set_notes(all_notes)
                self.player.note_saved()
                self.player.status.setText(warning)
                self._refresh_history()
            emit_signal(self.note_added, note)

        self.adapter.run_task(work, done, name="library-note")

    # ---- lifetime ----------------------------------------------------------------------------------------
    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if self.model.total is None and not self.model.loading:
            self.apply_filters()
            self.refresh_choices()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        self.player.clear()
        self._progress_timer.stop()
        super().closeEvent(event)

    def timers(self) -> list[QTimer]:
        return [self._progress_timer, *self.player.timers()]


__all__ = ["LibraryWindow", "ask_export_path", "clock", "clock_tenths", "describe_call", "describe_history", "parse_clock"]
