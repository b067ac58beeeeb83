"""The Library writes notes and access events as the OS login; ``[identity] agent_id`` is only a
label beside it, and the history pane shows both (offscreen, the real window and folder store)."""

from __future__ import annotations

import functools
import os
import pwd

import tests.gui.test_library as library_tests
from callrec_desktop.governance.access_log import AccessLog
from callrec_desktop.governance.purposes import Purpose
from callrec_desktop.notes import NoteStore
from callrec_desktop.ui.library_window import LibraryWindow
from tests.gui.test_library import store_root, template  # noqa: F401 (fixtures)


def test_the_library_authors_as_the_os_login_with_the_agent_id_as_label(qtbot, tmp_path, store_root, template,
                                                                         monkeypatch):
    login = pwd.getpwuid(os.getuid()).pw_name
    monkeypatch.setenv("USER", "head-of-service")  # not what the author is read from
    # as app.py builds it: no user, the configured agent id as the label
    monkeypatch.setattr(library_tests, "LibraryWindow", functools.partial(LibraryWindow, label="tl-anne"))
    lib = library_tests.Leader(qtbot, tmp_path, store_root, None)
    try:
        assert lib.window.user == login
        call = template[1]["pay"]
        lib.sync()
        lib.select(call.call_id)
        lib.purpose = Purpose("complaint")
        player = lib.window.player
        with qtbot.waitSignal(lib.window.access_recorded, timeout=5000):
            player.play_button.click()
        player.pause()
        player.seek(1.0)
        player.note_text.setText("Good greeting")
        with qtbot.waitSignal(lib.window.note_added, timeout=5000) as added:
            player.add_note_button.click()
        note = added.args[0]
        assert (note.author, note.label) == (login, "tl-anne")
        assert [(n.author, n.label) for n in NoteStore(lib.store).list(call.call_id)] == [(login, "tl-anne")]
        reader = AccessLog(lib.store, user="dpo", workstation="x")
        assert [(e.action, e.user, e.label, e.seq) for e in reader.history(call.call_id)] == [
            ("play", login, "tl-anne", 1), ("note", login, "tl-anne", 2)]
        assert reader.verify(call.call_id).ok
        qtbot.waitUntil(lambda: "tl-anne" in lib.window.history_label.text(), timeout=5000)
        assert f"<b>{login}</b> “tl-anne”" in lib.window.history_label.text()
    finally:
        lib.close()
