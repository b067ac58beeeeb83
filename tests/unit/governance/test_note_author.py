"""A note's author is the OS login of the writer; a typed id is only a label beside it."""

from __future__ import annotations

import json
import os
import pwd

import pytest

from callrec_desktop.governance.os_user import os_login
from callrec_desktop.notes import NoteError, NoteStore
from callrec_desktop.storage import layout
from callrec_desktop.storage.folder import FolderStore

CALL = "20261129T092233Z-3f9a1c0b7d2e"


@pytest.fixture
def store(tmp_path) -> FolderStore:
    (tmp_path / "store").mkdir()
    return FolderStore(tmp_path / "store")


def test_os_login_is_the_real_uids_login_name_not_the_environment(monkeypatch):
    monkeypatch.setenv("USER", "head-of-service")
    monkeypatch.setenv("LOGNAME", "head-of-service")
    assert os_login() == pwd.getpwuid(os.getuid()).pw_name != "head-of-service"


def test_a_uid_without_a_password_entry_is_named_by_number(monkeypatch):
    def missing(uid):
        raise KeyError(uid)

    monkeypatch.setattr(pwd, "getpwuid", missing)
    assert os_login() == f"uid:{os.getuid()}"


def test_a_note_stores_the_label_beside_the_author_and_only_the_same_login_changes_it(store):
    notes = NoteStore(store, label="head-of-service")
    note = notes.add(CALL, os_login(), 1.0, "Agent was polite")
    doc = json.loads(store.get(layout.note_key(CALL, note.note_id)))
    assert (doc["author"], doc["label"]) == (os_login(), "head-of-service")
    assert notes.list(CALL)[0].label == "head-of-service"
    # another login (another team leader's PC session) cannot change or withdraw it, whatever label it types
    with pytest.raises(NoteError, match="only its author"):
        NoteStore(store, label=os_login()).revise(CALL, "someone-else", note.note_id, "Agent was rude")
    with pytest.raises(NoteError, match="only its author"):
        NoteStore(store).withdraw(CALL, "someone-else", note.note_id)
    changed = NoteStore(store).revise(CALL, os_login(), note.note_id, "Agent was polite and quick")
    assert changed.replaces == note.note_id and changed.label is None
    assert "label" not in json.loads(store.get(layout.note_key(CALL, changed.note_id)))  # as in schema 1


def test_a_label_that_is_not_short_text_makes_the_note_unreadable(store):
    from callrec_desktop.notes import Note

    note = NoteStore(store).add(CALL, "ajones", 1.0, "x")
    doc = json.loads(note.to_json())
    doc["label"] = {"html": "<h1>"}
    with pytest.raises(ValueError, match="label must be text"):
        Note.from_json(json.dumps(doc).encode(), "k")
