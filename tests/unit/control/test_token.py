"""The control API token in the (in-memory test) keyring."""

from __future__ import annotations

import logging

import keyring.errors
import pytest

from callrec_desktop.control.token import (
    ENTRY,
    NOT_STORED_MESSAGE,
    ControlToken,
    ControlTokenError,
    load_or_create_token,
    read_token,
    reset_token,
)
from callrec_desktop.credentials import SERVICE
from tests.support.memkeyring import MemoryKeyring


@pytest.fixture
def kr() -> MemoryKeyring:
    return MemoryKeyring()


def test_created_once_then_reused(kr: MemoryKeyring) -> None:
    assert read_token(kr) is None
    token, stored = load_or_create_token(kr)
    assert stored is True and len(token) >= 40
    assert kr.get_password(SERVICE, ENTRY) == token
    assert load_or_create_token(kr) == ControlToken(token, True)
    assert read_token(kr) == token


def test_reset_replaces_the_stored_token(kr: MemoryKeyring) -> None:
    old, _ = load_or_create_token(kr)
    new, stored = reset_token(kr)
    assert stored is True and new != old
    assert kr.get_password(SERVICE, ENTRY) == new == read_token(kr)


def test_read_token_never_creates_one(kr: MemoryKeyring) -> None:
    assert read_token(kr) is None
    assert read_token(kr) is None
    assert kr.get_password(SERVICE, ENTRY) is None


def test_an_empty_entry_counts_as_none(kr: MemoryKeyring) -> None:
    kr.set_password(SERVICE, ENTRY, "")
    assert read_token(kr) is None
    token, stored = load_or_create_token(kr)
    assert stored and token and kr.get_password(SERVICE, ENTRY) == token


@pytest.mark.parametrize("failure", [keyring.errors.NoKeyringError(), keyring.errors.KeyringLocked(),
                                     keyring.errors.KeyringError("dbus went away")])
def test_unavailable_keyring_gives_an_ephemeral_token(kr: MemoryKeyring, failure: Exception,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    kr.fail_with = failure
    first, stored = load_or_create_token(kr)
    assert stored is False and len(first) >= 40
    second, _ = load_or_create_token(kr)
    assert second != first  # nothing kept: each start gets a fresh one
    again, stored = reset_token(kr)
    assert stored is False and again not in (first, second)
    with pytest.raises(ControlTokenError, match="cannot read the control API token"):
        read_token(kr)
    for t in (first, second, again):
        assert t not in caplog.text
    assert "valid until callrec-desktop exits" in caplog.text
    assert NOT_STORED_MESSAGE == "token not stored: the OS keyring is unavailable"


def test_store_failing_after_a_read_gives_an_ephemeral_token(kr: MemoryKeyring) -> None:
    class ReadOnly(MemoryKeyring):
        def set_password(self, service: str, username: str, password: str) -> None:
            raise keyring.errors.PasswordSetError("refused")

    token, stored = load_or_create_token(ReadOnly())
    assert token and stored is False


def test_token_never_logged_or_shown(kr: MemoryKeyring, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    t = load_or_create_token(kr)
    r = reset_token(kr)
    for tok in (t, r):
        assert tok.value not in caplog.text
        assert tok.value not in repr(tok) and tok.value not in str(tok) and "<hidden>" in repr(tok)
