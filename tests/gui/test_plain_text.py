"""Data is shown as text: a caller, line, department, agent, workstation, note, device name,
store description or fault message holding ``<h1>X</h1><img src='file:///etc/passwd'>``
(from the control API, a hostile store, a device or the settings) is shown literally by
every label, tooltip, dialog and tray message of the handler's window and the Library: a
label shows exactly the raw string and is plain text, or (where a label is rich text on
purpose) its rendered document holds the raw string as text and no image and no heading."""

from __future__ import annotations

import time

import pytest
from PySide6 import QtGui
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QLabel, QWidget

from callrec_desktop.core.timeline import CallState
from callrec_desktop.desk import DeskStatus, Fault
from callrec_desktop.governance.access_log import AccessLog
from callrec_desktop.notes import NoteStore
from callrec_desktop.storage.folder import FolderStore
from callrec_desktop.ui import tray as tray_mod
from callrec_desktop.ui.purpose_dialog import PurposeDialog
from callrec_desktop.ui.widgets import safe_tooltip
from callrec_desktop.uploader import UploadStatus
from tests.gui.test_library import WHEN, Leader
from tests.support.recording import record_calls

HOSTILE = "<h1>X</h1><img src='file:///etc/passwd'>"


def rendered(html: str) -> tuple[str, list[str]]:
    """What Qt's rich-text engine makes of ``html``: its plain text, and the images and
    headings in it (what a hostile string must never produce)."""
    doc = QTextDocument()
    doc.setHtml(html)
    leaks = []
    block = doc.begin()
    while block.isValid():
        if block.blockFormat().headingLevel():
            leaks.append(f"heading: {block.text()!r}")
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            if fragment.isValid() and fragment.charFormat().isImageFormat():
                leaks.append(f"image: {fragment.charFormat().toImageFormat().name()!r}")
            it += 1
        block = block.next()
    return doc.toPlainText(), leaks


def shown(label: QLabel) -> tuple[str, list[str]]:
    """(the text a person sees, anything rendered as HTML) for ``label``, as Qt decides it."""
    fmt = label.textFormat()
    text = label.text()
    if fmt == Qt.TextFormat.PlainText or (fmt == Qt.TextFormat.AutoText and not QtGui.Qt.mightBeRichText(text)):
        return text, []
    if fmt == Qt.TextFormat.MarkdownText:
        return text, ["markdown"]
    return rendered(text)


def assert_plain(label: QLabel, raw: str) -> None:
    assert label.text() == raw
    assert label.textFormat() == Qt.TextFormat.PlainText, (label.objectName(), label.textFormat())


def tooltip_shows(tip: str) -> tuple[str, list[str]]:
    """A tooltip as Qt shows it: rich text when it looks like markup."""
    return rendered(tip) if QtGui.Qt.mightBeRichText(tip) else (tip, [])


def assert_no_label_renders_html(root: QWidget) -> None:
    """No label below ``root`` turns text into an image or a heading, whatever it shows."""
    for label in root.findChildren(QLabel):
        text, leaks = shown(label)
        assert not leaks, (label.objectName() or label.accessibleName(), label.text(), leaks)
        _, leaks = tooltip_shows(label.toolTip())
        assert not leaks, ("tooltip", label.toolTip(), leaks)


def test_safe_tooltip_shows_markup_literally_and_leaves_plain_text_alone():
    assert safe_tooltip("Upload failed: timeout") == "Upload failed: timeout"
    text, leaks = tooltip_shows(safe_tooltip(HOSTILE + "\nsecond line"))
    assert text == HOSTILE + "\nsecond line" and leaks == []
    _, leaks = tooltip_shows(HOSTILE)
    assert leaks, "the raw string would render as HTML in a tooltip (the test would not see it)"


# ---- the handler's window -----------------------------------------------------------------------

def test_the_callers_number_from_a_call_start_is_shown_as_text(rig):
    """The control API and the start dialog give the desk the caller's number as typed."""
    line = rig.config.lines.find("01443 425002")
    rig.line_choice = (line, HOSTILE)
    rig.window.start_call_button.click()
    rig.qtbot.waitUntil(lambda: rig.window.state_label.text() == "Recording", timeout=5000)
    assert_plain(rig.window.caller, f"Caller: {HOSTILE}")
    assert_no_label_renders_html(rig.window)


def test_every_field_of_the_handlers_window_tray_and_compact_window_is_shown_as_text(make_rig, monkeypatch):
    rig = make_rig()  # not started: the window shows only the statuses given here
    w = rig.window
    device_fault = f"audio input device '{HOSTILE}' was lost (unplugged?): recording cannot continue"
    store_fault = f"folder {HOSTILE}: store folder not found (network share not mounted?)"
    status = DeskStatus(state=CallState.RECORDING, call_id="20260302T091500Z-0123456789ab", line_number=HOSTILE,
                        department=HOSTILE, caller=HOSTILE, call_started=time.monotonic(), capturing=True,
                        faults={Fault.STORAGE_UNREACHABLE: store_fault}, upload=UploadStatus(last_error=store_fault))
    w.render(status)
    # the tray: while recording its tooltip names the line and department
    assert f"{HOSTILE} – {HOSTILE}" in w.tray.tooltip
    assert tooltip_shows(w.tray.icon.toolTip()) == (w.tray.tooltip, [])
    status = DeskStatus(state=CallState.RECORDING, call_id="20260302T091500Z-0123456789ab", line_number=HOSTILE,
                        department=HOSTILE, caller=HOSTILE, call_started=time.monotonic(), capturing=False,
                        faults={Fault.DEVICE_LOST: device_fault, Fault.STORAGE_UNREACHABLE: store_fault},
                        upload=UploadStatus(last_error=store_fault), notice=HOSTILE)
    w.render(status)
    assert_plain(w.line_number, HOSTILE)
    assert_plain(w.department, HOSTILE)
    assert_plain(w.caller, f"Caller: {HOSTILE}")
    assert_plain(w.compact.line, f"{HOSTILE} – {HOSTILE}")
    assert_plain(w.notice_bar.text, HOSTILE)
    assert_plain(w.upload_error, f"Last upload error: {store_fault}")
    assert tooltip_shows(w.upload_error.toolTip()) == (f"Last upload error: {store_fault}", [])
    messages = {b.message.text(): b for b in w.findChildren(type(w.storage_slow_banner)) if b.message.text()}
    assert set(messages) == {f"Details: {device_fault}", f"Details: {store_fault}"}
    for text, banner in messages.items():
        assert_plain(banner.message, text)
        assert tooltip_shows(banner.message.toolTip()) == (text, [])
    w.error_bar.show_message(f"Could not start audio capture: {device_fault}")
    assert_plain(w.error_bar.text, f"Could not start audio capture: {device_fault}")
    w.show_message(HOSTILE)
    assert_plain(w.notice_bar.text, HOSTILE)
    # the faults' desktop notifications carry their messages
    notes = [m for _, m in w.tray.notifications if device_fault in m or store_fault in m]
    assert notes, w.tray.notifications
    for message in notes:  # what the freedesktop notification server would get: markup, escaped
        # (notification servers keep the body's line breaks; an HTML renderer makes them spaces)
        assert rendered(tray_mod.notification_body(message)) == (message.replace("\n", " "), [])
    assert_no_label_renders_html(w)
    # an ordinary message goes out as it is (a balloon shows it as plain text too)
    assert tray_mod.notification_body("Revenues & Benefits: upload failed") == "Revenues & Benefits: upload failed"


# ---- the Library --------------------------------------------------------------------------------

@pytest.fixture
def hostile_store(tmp_path):
    """A folder store holding a call whose line, department, caller, agent and workstation are
    the hostile string, with a note and an access event by a hostile author."""
    root = tmp_path / "store"
    root.mkdir()
    store = FolderStore(root)
    [call] = record_calls(tmp_path / "spool", store, WHEN, [
        {"line": ("01443 425002", HOSTILE), "caller": HOSTILE, "seconds": 1.5, "payment": (0.5, 1.0)},
    ], agent=HOSTILE)
    NoteStore(store).add(call.call_id, HOSTILE, 0.5, HOSTILE, tags=("x",), manifest=call)
    AccessLog(store, user=HOSTILE, workstation=HOSTILE).record("play", call.call_id, "other", HOSTILE)
    return root, call


def test_every_field_of_the_library_is_shown_as_text(qtbot, tmp_path, hostile_store):
    root, call = hostile_store
    lib = Leader(qtbot, tmp_path, root, "tl001")
    try:
        w = lib.window
        lib.sync()
        lib.select(call.call_id)
        qtbot.waitUntil(lambda: "Nobody" not in w.history_label.text() and w.history_label.text() != "", timeout=5000)
        text, leaks = shown(w.detail_label)
        assert leaks == []
        assert f"Line01443 425002 — {HOSTILE}" in text.replace("\t", "").replace("\n", "")
        assert f"Caller{HOSTILE}" in text.replace("\t", "").replace("\n", "")
        assert f"Agent{HOSTILE} on workstation ws-{HOSTILE}" in text.replace("\t", "").replace("\n", "")
        text, leaks = shown(w.history_label)
        assert leaks == [] and f"{HOSTILE} (ws-{HOSTILE})" not in text and f"{HOSTILE} ({HOSTILE})" in text
        assert f"“{HOSTILE}”" in text
        # the note: in the player's list, as text
        items = [w.player.note_list.item(i).text() for i in range(w.player.note_list.count())]
        assert any(HOSTILE in t and f"— {HOSTILE}" in t for t in items), items
        # the table: cells are drawn as plain text by the view; no tooltip turns them into HTML
        model = w.model
        for col in range(model.columnCount()):
            tip = model.data(model.index(0, col), Qt.ItemDataRole.ToolTipRole)
            if tip:
                assert tooltip_shows(str(tip))[1] == []
        # the purpose dialog, asked with the call's summary
        from callrec_desktop.ui.library_window import call_summary

        dialog = PurposeDialog("play", call_summary(w.manifest), w)
        intro = dialog.findChild(QLabel, "purposeIntro")
        text, leaks = shown(intro)
        assert leaks == [] and f"with {HOSTILE}, " in text and f"({HOSTILE})" in text
        assert dialog.problem.textFormat() == Qt.TextFormat.PlainText
        assert_no_label_renders_html(dialog)
        dialog.deleteLater()
        # a device error and a store failure
        w.player.output.setToolTip(safe_tooltip(f"Cannot list sound outputs: {HOSTILE}"))
        assert tooltip_shows(w.player.output.toolTip()) == (f"Cannot list sound outputs: {HOSTILE}", [])
        w.player.status.setText(f"No sound output: device '{HOSTILE}' cannot be opened")
        assert w.player.status.textFormat() == Qt.TextFormat.PlainText
        w.message.setText(f"Export failed: {HOSTILE}")
        assert w.message.textFormat() == Qt.TextFormat.PlainText
        assert_no_label_renders_html(w)
    finally:
        lib.close()


def test_a_store_description_and_its_failures_are_shown_as_text_in_the_library(qtbot, tmp_path, hostile_store):
    root, _ = hostile_store

    def hostile_description(store):
        store.description = f"folder {HOSTILE}"
        store.root = tmp_path / "gone"  # unreachable: the sync fails, naming the store
        return store

    lib = Leader(qtbot, tmp_path, root, "tl002", wrap=hostile_description)
    try:
        with qtbot.waitSignal(lib.window.sync_finished, timeout=15000):
            lib.window.sync_button.click()
        assert HOSTILE in lib.window.sync_label.text()
        assert lib.window.sync_label.textFormat() == Qt.TextFormat.PlainText
        assert_no_label_renders_html(lib.window)
    finally:
        lib.close()


def test_sync_problems_naming_hostile_keys_are_escaped_in_the_librarys_warning(qtbot, tmp_path, hostile_store):
    root, call = hostile_store
    bad = root / "manifests" / "2026" / "03" / "02" / "20260302T090000Z-aaaaaaaaaaaa.json"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text(HOSTILE)
    lib = Leader(qtbot, tmp_path, root, "tl003")
    try:
        report = lib.sync()
        assert report.problems
        text, leaks = shown(lib.window.problems.advice)
        assert leaks == [] and "20260302T090000Z-aaaaaaaaaaaa.json" in text
        assert_no_label_renders_html(lib.window)
    finally:
        lib.close()


# ---- settings and the call dialogs ----------------------------------------------------------------

def test_device_names_settings_files_and_errors_in_the_settings_dialog_are_shown_as_text(qtbot, tmp_path):
    from callrec_desktop.config import load_config
    from callrec_desktop.ui.adapter import DeskAdapter
    from callrec_desktop.ui.settings_dialog import SettingsDialog
    from callrec_desktop.ui.settings_services import SettingsServices
    from callrec_desktop.ui.user_settings import SettingsSnapshot, effective_values
    from tests.gui.conftest import write_config

    (tmp_path / "store").mkdir()
    config = load_config(system_file=None, user_file=None,
                         env={"CALLREC_CONFIG": str(write_config(tmp_path, store=tmp_path / "store"))})
    snapshot = SettingsSnapshot(values=effective_values(config), locked={"audio.agent_device": f"set by IT in {HOSTILE}"},
                                user_file=tmp_path / "user.toml", default_store_dir=tmp_path / HOSTILE.replace("/", "_"),
                                devices=(HOSTILE,), devices_error=f"PortAudio: device {HOSTILE} failed",
                                credentials_note=HOSTILE, token_note=HOSTILE, focus_unsupported=HOSTILE)
    adapter = DeskAdapter()
    dialog = SettingsDialog(snapshot, config, adapter, SettingsServices(credentials=None))
    qtbot.addWidget(dialog)
    try:
        assert HOSTILE in [dialog.caller_device.itemText(i) for i in range(dialog.caller_device.count())]
        hints = [label for label in dialog.findChildren(QLabel) if HOSTILE in label.text()]
        assert any(label.text() == f"PortAudio: device {HOSTILE} failed" for label in hints), [h.text() for h in hints]
        for label in hints:
            assert label.textFormat() == Qt.TextFormat.PlainText, label.text()
        assert tooltip_shows(dialog.agent_device.toolTip()) == (f"set by IT in {HOSTILE}", [])
        assert_no_label_renders_html(dialog)
    finally:
        dialog.reject()
        assert adapter.shutdown(10)


def test_confirmations_naming_a_department_or_a_note_are_plain_text(qtbot, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from callrec_desktop.ui import call_dialogs

    seen = {}

    def exec_(box):
        seen["format"], seen["text"] = box.textFormat(), box.text()
        return 0

    monkeypatch.setattr(QMessageBox, "exec", exec_)
    assert call_dialogs.ask_confirmation(None, "Transfer", f"Transfer the call to {HOSTILE}?", "Transfer") is False
    assert seen == {"format": Qt.TextFormat.PlainText, "text": f"Transfer the call to {HOSTILE}?"}
    from callrec_desktop.ui import library_window

    assert library_window.ask_confirmation(None, "Withdraw note", f"Withdraw {HOSTILE}?") is False
    assert seen == {"format": Qt.TextFormat.PlainText, "text": f"Withdraw {HOSTILE}?"}
