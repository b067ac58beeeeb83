"""The team leaders' Library window against a folder store filled by the real pipeline
(recorder → spool → uploader → FolderStore): sync, filters, sort, details, the purpose prompt
before play and export, the access log, notes shared between two team leaders, and the
waveform's payment-pause mark.

Audio output: the GUI tests give the ``Player`` an ``output_factory`` that opens no device
(``NullOutput``: nothing calls its callback, so the position only moves by seeking). Real
device playback is covered by tests/integration/test_player_device.py.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
import soundfile as sf
from PySide6.QtCore import QPoint, Qt

from callrec_desktop.catalog import Catalog
from callrec_desktop.config import load_config
from callrec_desktop.core.manifest import Manifest
from callrec_desktop.governance.access_log import AccessLog
from callrec_desktop.governance.purposes import Purpose
from callrec_desktop.notes import NoteStore
from callrec_desktop.storage import layout
from callrec_desktop.storage.base import PermanentStoreError
from callrec_desktop.storage.folder import FolderStore
from callrec_desktop.ui.adapter import DeskAdapter
from callrec_desktop.ui.library_window import LibraryWindow
from callrec_desktop.ui.settings_services import PlaybackChoice
from tests.support.recording import RATE, record_calls, record_interrupted

WHEN = datetime(2026, 3, 2, 9, 0, 0, tzinfo=timezone.utc)
CT, HOUSING = ("01443 425002", "Council Tax"), ("01443 425003", "Housing")


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[Path, dict[str, Manifest]]:
    root = tmp_path_factory.mktemp("library-store")
    (root / "store").mkdir()
    store = FolderStore(root / "store")
    pay, transfer, short = record_calls(root / "spool1", store, WHEN, [
        {"line": CT, "caller": "07700 900123", "seconds": 3.0, "payment": (1.0, 2.0)},
        {"line": HOUSING, "caller": "+44 7700 900456", "seconds": 2.0, "transfer": "Planning"},
        {"line": CT, "caller": "07700 900789", "seconds": 1.0},
    ])
    interrupted = record_interrupted(root / "spool2", store, WHEN, HOUSING, seconds=1.5)
    return root / "store", {"pay": pay, "transfer": transfer, "short": short, "interrupted": interrupted}


class NullOutput:
    """An output stream that needs no device (see the module docstring)."""

    latency = 0.0

    def __init__(self, **kwargs) -> None:
        self.started = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        pass


class Leader:
    """A team leader's Library window, with the dialogs answered by the test."""

    def __init__(self, qtbot, tmp_path: Path, store_root: Path, user: str, wrap=None, playback=None) -> None:
        self.qtbot = qtbot
        self.outputs: list = []  # the device each Player's output was opened on
        self.store = FolderStore(store_root) if wrap is None else wrap(FolderStore(store_root))
        self.catalog = Catalog(tmp_path / f"cache-{user}" / "catalog.sqlite")
        self.adapter = DeskAdapter()
        self.purpose: Purpose | None = None
        self.asked: list[str] = []
        self.export_path: Path | None = None
        self.confirm_answer = True
        self.confirmations: list[str] = []
        self.window = LibraryWindow(self.catalog, self.store, self.adapter, user=user, workstation=f"pc-{user}",
                                    cache_dir=tmp_path / f"cache-{user}" / "waveforms",
                                    choose_purpose=self._choose_purpose,
                                    choose_export_path=lambda parent, suggested: self.export_path,
                                    confirm=self._confirm, output_factory=self._output, playback=playback)
        self.window.show()
        qtbot.waitExposed(self.window)
        qtbot.waitUntil(lambda: self.window.model.total is not None, timeout=5000)

    def _output(self, **kwargs) -> NullOutput:
        self.outputs.append(kwargs["device"])
        return NullOutput(**kwargs)

    def _confirm(self, parent, title, text):
        self.confirmations.append(title)
        return self.confirm_answer

    def _choose_purpose(self, parent, action, summary):
        self.asked.append(action)
        return self.purpose

    def sync(self):
        with self.qtbot.waitSignal(self.window.sync_finished, timeout=15000) as blocker:
            self.window.sync_button.click()
        self.qtbot.waitUntil(lambda: not self.window.model.loading, timeout=5000)
        return blocker.args[0]

    def search(self, **fields) -> set[str]:
        w = self.window
        w.caller.setText(fields.get("caller", ""))
        w.department.setEditText(fields.get("department", ""))
        with self.qtbot.waitSignal(w.model.page_loaded, timeout=5000):
            w.search_button.click()
        return set(w.model.call_ids())

    def select(self, call_id: str) -> None:
        w = self.window
        row = w.model.call_ids().index(call_id)
        with self.qtbot.waitSignal(w.details_shown, timeout=5000):
            w.select_row(row)
        self.qtbot.waitUntil(lambda: w.player.player is not None, timeout=10000)

    def close(self) -> None:
        self.window.close()
        assert self.adapter.shutdown(), "a library job did not finish"
        assert not [t for t in self.window.timers() if t.isActive()], "a QTimer of the library is still running"
        self.catalog.close()
        self.window.deleteLater()


@pytest.fixture
def store_root(template, tmp_path) -> Path:
    shutil.copytree(template[0], tmp_path / "store")
    return tmp_path / "store"


@pytest.fixture
def leaders(qtbot, tmp_path, store_root):
    made: list[Leader] = []

    def make(user: str = "tl001", wrap=None, playback=None) -> Leader:
        leader = Leader(qtbot, tmp_path, store_root, user, wrap, playback)
        made.append(leader)
        return leader

    yield make
    for leader in made:
        leader.close()


def test_sync_filter_sort_and_details(leaders, template):
    calls = template[1]
    lib = leaders()
    report = lib.sync()
    assert (report.added, report.problems) == (4, ())
    assert lib.window.count_label.text() == "4 calls"
    assert not lib.window.problems.isVisible()

    assert lib.search(caller="+44 (0)7700 900123") == {calls["pay"].call_id}  # another spelling
    assert lib.search(department="Housing") == {calls["transfer"].call_id, calls["interrupted"].call_id}
    assert lib.search() == {m.call_id for m in calls.values()}

    with lib.qtbot.waitSignal(lib.window.model.page_loaded, timeout=5000):
        lib.window.table.sortByColumn(5, Qt.SortOrder.AscendingOrder)
    assert lib.window.model.call_ids() == [calls["short"].call_id, calls["interrupted"].call_id,
                                           calls["transfer"].call_id, calls["pay"].call_id]

    lib.select(calls["pay"].call_id)
    text = lib.window.detail_label.text()
    assert "Council Tax" in text and "Payment pause from 00:01 to 00:02" in text
    lib.select(calls["transfer"].call_id)
    text = lib.window.detail_label.text()
    assert "Housing" in text and "Transferred to Planning" in text
    lib.select(calls["interrupted"].call_id)
    assert "Interrupted: the recording stopped unexpectedly" in lib.window.detail_label.text()


def test_a_corrupt_manifest_is_named_in_a_visible_warning(leaders, template, store_root):
    bad = layout.manifest_key(template[1]["short"].call_id)
    (store_root / bad).write_bytes(b"{ not json")
    lib = leaders()
    report = lib.sync()
    assert [p.key for p in report.problems] == [bad]
    assert lib.window.problems.isVisible()
    assert bad in lib.window.problems.advice.text()
    assert lib.window.count_label.text() == "3 calls"


def test_purpose_is_asked_before_play_and_cancel_plays_and_logs_nothing(leaders, template, store_root):
    call = template[1]["pay"]
    lib = leaders()
    lib.sync()
    lib.select(call.call_id)
    player = lib.window.player

    lib.purpose = None  # the team leader cancels the prompt
    with lib.qtbot.waitSignal(lib.window.access_refused, timeout=2000):
        player.play_button.click()
    assert lib.asked == ["play"]
    assert not player.player.playing and not player.player._stream.started
    assert AccessLog(lib.store, user="x", workstation="y").history(call.call_id) == []

    lib.purpose = Purpose("staff_training")
    with lib.qtbot.waitSignal(lib.window.access_recorded, timeout=5000) as blocker:
        player.play_button.click()
    lib.qtbot.waitUntil(lambda: player.player.playing, timeout=2000)
    event = blocker.args[0]
    assert (event.action, event.purpose, event.user, event.workstation) == ("play", "staff_training", "tl001", "pc-tl001")
    history = AccessLog(lib.store, user="x", workstation="y").history(call.call_id)
    assert [(e.action, e.purpose) for e in history] == [("play", "staff_training")]
    lib.qtbot.waitUntil(lambda: "tl001" in lib.window.history_label.text(), timeout=5000)
    assert "staff training" in lib.window.history_label.text()

    player.pause()
    player.play()  # the second play of the same call asks nothing more
    assert lib.asked == ["play", "play"]
    assert player.player.playing


def test_note_at_current_time_is_seen_by_another_team_leader(leaders, template):
    call = template[1]["pay"]
    lib = leaders("tl001")
    lib.sync()
    lib.select(call.call_id)
    lib.purpose = Purpose("complaint")
    player = lib.window.player
    with lib.qtbot.waitSignal(lib.window.access_recorded, timeout=5000):
        player.play_button.click()
    player.pause()
    player.seek(2.5)
    player.note_text.setText("Agent explained the payment pause well")
    player.note_tags.setText("good-practice")
    with lib.qtbot.waitSignal(lib.window.note_added, timeout=5000) as blocker:
        player.add_note_button.click()
    note = blocker.args[0]
    assert (note.at_seconds, note.author, note.tags) == (2.5, "tl001", ("good-practice",))
    assert [n.text for n in NoteStore(lib.store).list(call.call_id)] == ["Agent explained the payment pause well"]
    assert player.note_list.count() == 1

    other = leaders("tl002")  # another team leader, a fresh catalogue of their own
    assert other.sync().notes_indexed == 1
    other.window.has_notes.setCurrentIndex(other.window.has_notes.findData(True))
    assert other.search() == {call.call_id}
    other.select(call.call_id)
    assert other.window.player.note_list.count() == 1
    assert "Agent explained" in other.window.player.note_list.item(0).text()


def test_export_asks_the_purpose_writes_the_file_and_logs_it(leaders, template, tmp_path):
    call = template[1]["transfer"]
    lib = leaders()
    lib.sync()
    lib.select(call.call_id)
    lib.export_path = tmp_path / "out" / "call.flac"
    lib.export_path.parent.mkdir()

    lib.purpose = None
    lib.window.export_button.click()
    assert lib.asked == ["export"] and not lib.export_path.exists()

    lib.purpose = Purpose("other", "subject access request 2026/117")
    with lib.qtbot.waitSignal(lib.window.export_finished, timeout=10000) as blocker:
        lib.window.export_button.click()
    assert blocker.args[0] == lib.export_path
    info = sf.info(lib.export_path)
    assert (info.samplerate, info.channels, info.frames) == (RATE, 2, call.frames)
    history = AccessLog(lib.store, user="x", workstation="y").history(call.call_id)
    assert [(e.action, e.purpose, e.reason, e.detail["format"]) for e in history] == [
        ("export", "other", "subject access request 2026/117", "flac")]


def opened(leaders, template, name: str = "pay", user: str = "tl001"):
    """A team leader's window, synced, with the template's call ``name`` selected and loaded;
    its waveform 1000 px wide. Returns (leader, manifest)."""
    call = template[1][name]
    lib = leaders(user)
    lib.sync()
    lib.select(call.call_id)
    lib.window.player.wave.resize(1000, 200)
    return lib, call


def test_the_waveform_marks_the_payment_pause_where_it_was(leaders, template):
    lib, call = opened(leaders, template)
    wave = lib.window.player.wave
    plot = wave.plot_rect()
    marks = wave.mark_geometry()
    pause = [g for g in marks if g.kind == "pause"]
    assert [(g.reason, g.label) for g in pause] == [("payment", "Payment — not recorded")]
    p = call.pauses[0]
    start, end = p.offset_frames / call.frames, (p.offset_frames + p.duration_frames) / call.frames
    assert abs(start - 1 / 3) < 0.02 and abs(end - 2 / 3) < 0.02  # 1 s to 2 s of a 3 s call
    assert pause[0].rect.left() == pytest.approx(plot.left() + start * plot.width(), abs=1)
    assert pause[0].rect.right() == pytest.approx(plot.left() + end * plot.width(), abs=1)
    ends = [g for g in marks if g.kind == "end"]
    assert [(g.reason, g.rect.left()) for g in ends] == [("hangup", pytest.approx(plot.right(), abs=1))]

    lib.purpose = Purpose("staff_training")  # clicking the waveform seeks
    with lib.qtbot.waitSignal(lib.window.access_recorded, timeout=5000):
        lib.window.player.play_button.click()
    lib.window.player.pause()
    lib.qtbot.mouseClick(wave, Qt.MouseButton.LeftButton, pos=QPoint(int(plot.left() + plot.width() / 2), 100))
    assert lib.window.player.position == pytest.approx(call.duration_seconds / 2, abs=0.05)


def test_export_a_range_from_the_player_position_writes_that_part_and_logs_it(leaders, template, tmp_path):
    call = template[1]["pay"]  # 3 s, payment pause 1..2 s
    lib = leaders()
    lib.sync()
    lib.select(call.call_id)
    w = lib.window
    w.player.seek(1.0)
    w.export_format.setCurrentIndex(w.export_format.findData(".flac"))
    w.export_range.setCurrentIndex(w.export_range.findData(True))  # "From … to …": prefilled position .. end
    assert (w.export_from.text(), w.export_to.text()) == ("00:01", "00:03")
    assert w.export_from.isEnabled() and w.export_to.isEnabled()
    w.export_from.setText("00:00.5")
    w.export_to.setText("00:02.5")
    lib.export_path = tmp_path / "part.flac"
    lib.purpose = Purpose("complaint")
    with lib.qtbot.waitSignal(w.export_finished, timeout=10000) as blocker:
        w.export_button.click()
    assert blocker.args[0] == lib.export_path
    info = sf.info(lib.export_path)
    assert (info.samplerate, info.channels, info.frames) == (RATE, 2, 2 * RATE)
    back = sf.read(lib.export_path, dtype="float32", always_2d=True)[0]
    p = call.pauses[0]
    a, b = p.offset_frames - RATE // 2, p.offset_frames + p.duration_frames - RATE // 2
    assert not back[a:b].any() and back[: a - 160].any() and back[b + 160 :].any()
    [event] = AccessLog(lib.store, user="x", workstation="y").history(call.call_id)
    assert (event.action, event.purpose) == ("export", "complaint")
    assert event.detail == {"format": "flac", "file": "part.flac", "from_seconds": 0.5, "to_seconds": 2.5}

    # Opus, from the player's position to the end
    w.player.seek(2.0)
    w.export_range.setCurrentIndex(0)
    w.export_range.setCurrentIndex(1)
    assert (w.export_from.text(), w.export_to.text()) == ("00:02", "00:03")
    w.export_format.setCurrentIndex(w.export_format.findData(".opus"))
    lib.export_path = tmp_path / "tail.opus"
    with lib.qtbot.waitSignal(w.export_finished, timeout=10000) as blocker:
        w.export_button.click()
    assert blocker.args[0] == lib.export_path
    assert abs(sf.info(lib.export_path).frames - RATE) <= RATE // 50
    assert lib.asked == ["export", "export"]


@pytest.mark.parametrize("start, end", [("00:02", "00:01"), ("00:05", "00:09"), ("1:xx", "00:02"), ("", "00:02")])
def test_a_bad_export_range_asks_nothing_writes_nothing_and_logs_nothing(leaders, template, tmp_path, start, end):
    call = template[1]["pay"]
    lib = leaders()
    lib.sync()
    lib.select(call.call_id)
    w = lib.window
    w.export_range.setCurrentIndex(w.export_range.findData(True))
    w.export_from.setText(start)
    w.export_to.setText(end)
    lib.export_path = tmp_path / "bad.wav"
    lib.purpose = Purpose("complaint")
    with lib.qtbot.waitSignal(w.access_refused, timeout=2000):
        w.export_button.click()
    assert lib.asked == [] and not lib.export_path.exists()
    assert w.message.text().startswith("Not exported:")
    assert AccessLog(lib.store, user="x", workstation="y").history(call.call_id) == []


def _x(wave, seconds: float) -> int:
    return round(wave.x_for(seconds))


def test_dragging_across_the_waveform_selects_the_range_that_export_then_writes(leaders, template, tmp_path):
    lib, call = opened(leaders, template)  # 3 s, payment pause 1..2 s
    w, wave = lib.window, lib.window.player.wave
    y = 100
    with lib.qtbot.waitSignal(w.player.range_selected, timeout=2000) as blocker:
        lib.qtbot.mousePress(wave, Qt.MouseButton.LeftButton, pos=QPoint(_x(wave, 2.5), y))
        lib.qtbot.mouseMove(wave, QPoint(_x(wave, 1.5), y))
        lib.qtbot.mouseRelease(wave, Qt.MouseButton.LeftButton, pos=QPoint(_x(wave, 0.5), y))
    start, end = blocker.args[0]  # dragged right to left: still in order
    assert start == pytest.approx(0.5, abs=0.01) and end == pytest.approx(2.5, abs=0.01)
    assert w.player.position == 0.0, "a drag selects; it does not seek"
    assert wave.selection_rect().left() == pytest.approx(_x(wave, 0.5), abs=1)
    assert w.export_range.currentData() is True
    assert (w.export_from.text(), w.export_to.text()) == ("00:00.5", "00:02.5")
    assert "Selected 00:00–00:02" in w.player.selection_label.text()
    assert w.player.add_note_button.text() == "Add note on the selection"

    w.export_format.setCurrentIndex(w.export_format.findData(".wav"))
    lib.export_path = tmp_path / "selected.wav"
    lib.purpose = Purpose("staff_training")
    with lib.qtbot.waitSignal(w.export_finished, timeout=10000) as done:
        w.export_button.click()
    assert done.args[0] == lib.export_path
    assert sf.info(lib.export_path).frames == 2 * RATE
    [event] = AccessLog(lib.store, user="x", workstation="y").history(call.call_id)
    assert (event.detail["from_seconds"], event.detail["to_seconds"]) == (0.5, 2.5)

    # Esc clears the selection: the export is the whole call again
    lib.qtbot.keyClick(w, Qt.Key.Key_Escape)
    assert wave.selection is None and w.export_range.currentData() is False
    assert not w.player.clear_selection_button.isVisible()


def test_brackets_select_from_and_to_the_playing_position_and_a_note_covers_the_selection(leaders, template):
    lib, call = opened(leaders, template)
    player = lib.window.player
    player.seek(1.0)
    lib.qtbot.keyClick(lib.window, Qt.Key.Key_BracketLeft)
    assert player.selection == pytest.approx((1.0, call.duration_seconds))
    player.seek(2.0)
    lib.qtbot.keyClick(lib.window, Qt.Key.Key_BracketRight)
    assert player.selection == pytest.approx((1.0, 2.0))
    assert (lib.window.export_from.text(), lib.window.export_to.text()) == ("00:01.0", "00:02.0")

    lib.purpose = Purpose("staff_training")
    player.note_text.setText("The payment pause, start to finish")
    with lib.qtbot.waitSignal(lib.window.note_added, timeout=5000) as blocker:
        player.add_note_button.click()
    note = blocker.args[0]
    assert (note.at_seconds, note.end_seconds) == (1.0, 2.0)
    assert player.note_list.item(0).text().startswith("00:01–00:02  The payment pause")
    assert player.wave.note_ranges == [(1.0, 2.0)]

    other = leaders("tl002")
    other.sync()
    other.select(call.call_id)
    [seen] = NoteStore(other.store).list(call.call_id)
    assert (seen.at_seconds, seen.end_seconds) == (1.0, 2.0)
    assert other.window.player.wave.note_ranges == [(1.0, 2.0)]


def test_a_click_on_the_waveform_seeks_and_clears_nothing_and_a_tiny_drag_is_a_click(leaders, template):
    lib, call = opened(leaders, template)  # 3 s, payment pause 1..2 s
    wave = lib.window.player.wave
    lib.window.player.select(0.5, 1.5)
    lib.qtbot.mousePress(wave, Qt.MouseButton.LeftButton, pos=QPoint(_x(wave, 2.0), 100))
    lib.qtbot.mouseMove(wave, QPoint(_x(wave, 2.0) + 2, 100))  # less than DRAG_PIXELS
    lib.qtbot.mouseRelease(wave, Qt.MouseButton.LeftButton, pos=QPoint(_x(wave, 2.0) + 2, 100))
    assert lib.window.player.position == pytest.approx(2.0, abs=0.02)
    assert lib.window.player.selection == pytest.approx((0.5, 1.5))


def _items(combo) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


def test_filter_lists_are_filled_from_the_catalogue_and_every_filter_narrows_the_table(leaders, template):
    calls = template[1]
    lib = leaders()
    with lib.qtbot.waitSignal(lib.window.choices_refreshed, timeout=5000):
        lib.sync()
    w = lib.window
    assert _items(w.agent) == ["", "agent007", "agent042"]
    assert _items(w.workstation) == ["", "ws-agent007", "ws-agent042"]
    assert "Council Tax" in _items(w.department) and "Housing" in _items(w.department)
    assert _items(w.tag) == [""]

    w.agent.setCurrentIndex(w.agent.findText("agent042"))
    assert lib.search() == {calls["interrupted"].call_id}
    w.clear_filters()
    w.workstation.setEditText("ws-agent007")
    w.max_minutes.setValue(1)  # shorter than a minute: every call here
    assert lib.search() == {calls["pay"].call_id, calls["transfer"].call_id, calls["short"].call_id}
    w.workstation.setEditText("")
    w.max_minutes.setValue(0)
    w.min_minutes.setValue(1)  # longer than a minute: none
    assert lib.search() == set()

    # a tag used on a note shows up in the list after the next sync, and finds its call
    w.min_minutes.setValue(0)
    NoteStore(lib.store).add(calls["transfer"].call_id, "tl009", 0.5, "Transfer explained", tags=["good-practice"])
    with lib.qtbot.waitSignal(w.choices_refreshed, timeout=5000):
        lib.sync()
    assert _items(w.tag) == ["", "good-practice"]
    w.tag.setCurrentIndex(1)
    assert lib.search() == {calls["transfer"].call_id}


def test_a_team_leader_changes_and_withdraws_their_own_note_and_another_sees_only_what_stands(leaders, template):
    lib, call = opened(leaders, template)
    player = lib.window.player
    lib.purpose = Purpose("staff_training")
    player.seek(1.5)
    player.note_text.setText("Card number read back aloud")
    player.note_tags.setText("complaint")
    with lib.qtbot.waitSignal(lib.window.note_added, timeout=5000) as added:
        player.add_note_button.click()
    first = added.args[0]
    player.note_list.setCurrentRow(0)
    assert player.change_note_button.isEnabled() and player.withdraw_note_button.isEnabled()

    player.change_note_button.click()
    assert (player.note_text.text(), player.note_tags.text()) == ("Card number read back aloud", "complaint")
    assert player.add_note_button.text() == "Save changes"
    player.note_text.setText("Agent paused before the card number: good")
    player.note_tags.setText("good-practice")
    with lib.qtbot.waitSignal(lib.window.note_added, timeout=5000) as changed:
        player.add_note_button.click()
    second = changed.args[0]
    assert (second.replaces, second.at_seconds, second.tags) == (first.note_id, 1.5, ("good-practice",))
    assert player.note_list.count() == 1 and player.add_note_button.text() == "Add note at current time"
    assert player.note_list.item(0).text().startswith("00:01  Agent paused before the card number: good")
    assert "(changed)" in player.note_list.item(0).text()
    lib.qtbot.waitUntil(lambda: "changed a note on it" in lib.window.history_label.text(), timeout=5000)

    # another team leader sees the change, and may neither change nor withdraw it
    other = leaders("tl002")
    other.sync()
    other.window.tag.setEditText("complaint")
    assert other.search() == set()
    other.window.tag.setEditText("good-practice")
    assert other.search() == {call.call_id}
    other.select(call.call_id)
    other.window.player.note_list.setCurrentRow(0)
    assert not other.window.player.change_note_button.isEnabled()
    assert not other.window.player.withdraw_note_button.isEnabled()

    # the author withdraws it: asked first; "no" changes nothing
    lib.confirm_answer = False
    player.note_list.setCurrentRow(0)
    player.withdraw_note_button.click()
    assert lib.confirmations == ["Withdraw note"] and len(NoteStore(lib.store).list(call.call_id)) == 1
    lib.confirm_answer = True
    with lib.qtbot.waitSignal(lib.window.note_added, timeout=5000) as withdrawn:
        player.withdraw_note_button.click()
    assert withdrawn.args[0].withdrawn and player.note_list.count() == 0
    listed = NoteStore(lib.store).list(call.call_id)
    assert listed == [] and [n.note_id for n in listed.versions] == [first.note_id, second.note_id,
                                                                      withdrawn.args[0].note_id]
    history = AccessLog(lib.store, user="x", workstation="y").history(call.call_id)
    assert [sorted(e.detail) for e in history if e.action == "note"] == [
        ["note_id"], ["note_id", "replaces"], ["note_id", "withdraws"]]


class NoAccessLogStore:
    """A fault-injecting wrapper around the real FolderStore: every put under ``access/`` is
    refused (a store whose access-log prefix is read-only); everything else is the real store."""

    def __init__(self, inner) -> None:
        self.inner, self.description = inner, inner.description

    def put(self, key, source, **kw):
        if key.startswith(layout.ACCESS_ROOT):
            raise PermanentStoreError(f"{self.description} {key}: access denied (403, injected)")
        return self.inner.put(key, source, **kw)

    def get(self, key):
        return self.inner.get(key)

    def list(self, prefix):
        return self.inner.list(prefix)


def test_a_note_saved_whose_access_entry_cannot_be_written_says_so_and_is_still_shown(leaders, template):
    call = template[1]["short"]
    lib = leaders("tl001", wrap=NoAccessLogStore)
    lib.sync()
    lib.select(call.call_id)
    lib.purpose = Purpose("staff_training")
    player = lib.window.player
    player.note_text.setText("Short call, no greeting")
    with lib.qtbot.waitSignal(lib.window.note_added, timeout=5000) as added:
        player.add_note_button.click()
    assert [n.note_id for n in NoteStore(lib.store).list(call.call_id)] == [added.args[0].note_id]
    assert player.note_list.count() == 1
    assert "the access log could not be written" in player.status.text() and "Tell IT" in player.status.text()
    assert AccessLog(lib.store, user="x", workstation="y").history(call.call_id) == []


def test_saving_or_cancelling_a_note_change_leaves_the_typed_export_range_alone(leaders, template):
    lib, call = opened(leaders, template)
    w, player = lib.window, lib.window.player
    lib.purpose = Purpose("staff_training")
    player.note_text.setText("Greeting")
    with lib.qtbot.waitSignal(w.note_added, timeout=5000):
        player.add_note_button.click()
    player.select(0.5, 2.5)
    w.export_to.setText("00:02.9")  # typed after selecting
    with lib.qtbot.assertNotEmitted(player.range_selected):
        player.note_list.setCurrentRow(0)
        player.change_note_button.click()
        player.cancel_change_button.click()
        player.change_note_button.click()
        player.note_text.setText("Greeting, with the department")
        with lib.qtbot.waitSignal(w.note_added, timeout=5000):
            player.add_note_button.click()
    assert (w.export_from.text(), w.export_to.text()) == ("00:00.5", "00:02.9")
    assert player.selection == pytest.approx((0.5, 2.5))
    assert player.add_note_button.text() == "Add note on the selection"


# ---- "Play on": the playback device ------------------------------------------------------------------
# The device list is given by the test: these GUI tests run without an audio server. The real
# PortAudio list and playback on the chosen device: tests/integration/test_library_device.py.

OUTPUTS = [{"name": "Headset"}, {"name": "Speakers"}, {"name": "Headset"}]


def playback_choice(tmp_path: Path, *, system: str = "", user_file: Path | None = None,
                    list_devices=lambda: OUTPUTS) -> PlaybackChoice:
    system_file = tmp_path / "it.toml"
    system_file.write_text(system, encoding="utf-8")
    user_file = user_file or tmp_path / "me" / "config.toml"
    config = load_config(system_file=system_file, user_file=user_file, env={})
    return PlaybackChoice(config, list_devices=list_devices, user_file=user_file)


def wait_outputs(lib, count: int) -> None:
    lib.qtbot.waitUntil(lambda: lib.window.player.output.count() == count, timeout=5000)


def test_play_on_moves_the_call_to_the_chosen_output_paused_where_it_was_and_keeps_the_choice(
        leaders, template, tmp_path):
    call = template[1]["pay"]
    playback = playback_choice(tmp_path)
    lib = leaders(playback=playback)
    combo = lib.window.player.output
    wait_outputs(lib, 3)  # the default, then each output once
    assert [combo.itemText(i) for i in range(3)] == ["System default output", "Headset", "Speakers"]
    assert combo.currentData() == "default" and combo.isEnabled()
    lib.sync()
    lib.select(call.call_id)
    assert lib.outputs == [None]  # sounddevice's None: the system default
    lib.window.player.seek(1.5)
    combo.setCurrentIndex(combo.findData("Speakers"))
    lib.qtbot.waitUntil(lambda: "kept for next time" in lib.window.message.text(), timeout=5000)
    assert lib.outputs == [None, "Speakers"]
    player = lib.window.player.player
    assert abs(player.position - 1.5) < 0.05 and not player.playing
    assert lib.window.player.play_button.isEnabled()
    assert str(playback.user_file) in lib.window.message.text()
    assert load_config(system_file=None, user_file=playback.user_file, env={}).audio.output_device == "Speakers"

    again = leaders("tl002", playback=playback_choice(tmp_path))  # the Library opened the next day
    wait_outputs(again, 3)
    assert again.window.player.output.currentText() == "Speakers"
    again.sync()
    again.select(call.call_id)
    assert again.outputs == ["Speakers"]


def test_quick_play_on_choices_are_kept_in_the_order_they_were_made(leaders, tmp_path):
    playback = playback_choice(tmp_path)
    lib = leaders(playback=playback)
    combo = lib.window.player.output
    wait_outputs(lib, 3)
    for name in ("Headset", "Speakers", "Headset", "Speakers"):  # faster than a save takes
        combo.setCurrentIndex(combo.findData(name))
    lib.qtbot.waitUntil(lambda: "kept for next time" in lib.window.message.text(), timeout=5000)
    assert lib.window.message.text().startswith("Calls play on Speakers;")
    assert load_config(system_file=None, user_file=playback.user_file, env={}).audio.output_device == "Speakers"


def test_play_on_set_by_it_cannot_be_changed_and_says_where_it_is_set(leaders, tmp_path):
    lib = leaders(playback=playback_choice(tmp_path, system='[audio]\noutput_device = "Speakers"\n'))
    combo = lib.window.player.output
    wait_outputs(lib, 3)
    assert combo.currentText() == "Speakers" and not combo.isEnabled()
    assert "Set by IT" in combo.toolTip() and str(tmp_path / "it.toml") in combo.toolTip()


def test_a_choice_that_cannot_be_saved_still_applies_and_says_why(leaders, template, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the settings folder should be", encoding="utf-8")
    playback = playback_choice(tmp_path, user_file=blocker / "config.toml")
    lib = leaders(playback=playback)
    wait_outputs(lib, 3)
    lib.sync()
    lib.select(template[1]["short"].call_id)
    combo = lib.window.player.output
    combo.setCurrentIndex(combo.findData("Headset"))
    lib.qtbot.waitUntil(lambda: "could not be kept" in lib.window.message.text(), timeout=5000)
    assert "Calls play on Headset until you close the Library" in lib.window.message.text()
    assert str(blocker) in lib.window.message.text()
    assert lib.outputs[-1] == "Headset" and lib.window.player.player is not None
    assert blocker.read_text(encoding="utf-8").startswith("a file")


def test_outputs_that_cannot_be_listed_leave_the_default_and_say_why(leaders, tmp_path):
    def broken():
        raise RuntimeError("PortAudio is not installed")

    lib = leaders(playback=playback_choice(tmp_path, list_devices=broken))
    combo = lib.window.player.output
    lib.qtbot.waitUntil(lambda: "Cannot list sound outputs" in combo.toolTip(), timeout=5000)
    assert "PortAudio is not installed" in combo.toolTip()
    assert combo.count() == 1 and combo.currentData() == "default" and combo.isEnabled()


# ---- a hostile store (issue 10, part 3) ------------------------------------------------------------

def test_a_hostile_store_syncs_shows_the_good_calls_and_names_every_bad_object(qtbot, tmp_path):
    """Every case of ``tests.support.hostile_store`` in one real folder store: the sync skips each
    bad manifest and note with its key (the banner names them), the good calls are listed and
    open with their readable note, the skipped notes and access events are named in the details,
    and a call whose chunks are links to /dev/zero says it cannot be read instead of playing."""
    from tests.support import hostile_store

    (tmp_path / "store").mkdir()
    h = hostile_store.build(tmp_path / "store", tmp_path / "work")
    lib = Leader(qtbot, tmp_path, tmp_path / "store", "tl001")
    try:
        report = lib.sync()
        assert report is not None, lib.window.sync_label.text()
        assert sorted(p.key for p in report.problems) == sorted(c.key for c in h.cases if c.kind in ("manifest", "note"))
        assert report.added == 4
        assert lib.window.problems.isVisible()
        assert f"{len(report.problems)} file(s) in the store could not be read" in lib.window.problems.advice.text()
        assert lib.window.count_label.text() == "4 calls"
        listed = {m.call_id for m in h.good} | {h.case("chunk_symlinks").call_id, h.case("html_ansi").call_id}
        assert set(lib.window.model.call_ids()) == listed

        good = h.good[0].call_id
        with qtbot.waitSignal(lib.window.history_shown, timeout=10000):
            lib.select(good)
        assert [n.note_id for n in lib.window.player.notes] == [h.good_note_id]
        message = lib.window.message.text()
        assert "4 note(s) on this call could not be read and were skipped" in message
        assert h.case("note_deep_nesting").key in message
        history = lib.window.history_label.text()
        assert "3 entry(ies) of this history could not be read and were skipped" in history
        assert h.case("access_huge_integer").key in history and "tl001" in history

        w = lib.window
        row = w.model.call_ids().index(h.case("chunk_symlinks").call_id)
        with qtbot.waitSignal(w.player.load_failed, timeout=10000) as failed:
            w.select_row(row)
        assert "is a symbolic link" in failed.args[0] and "chunk 1" in failed.args[0]
    finally:
        lib.close()
