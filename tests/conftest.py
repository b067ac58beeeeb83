"""Shared test set-up. Real components (virtual audio server, S3 server) are started by the
session fixtures in tests/support/; nothing here mocks them."""

from __future__ import annotations

import os

import pytest

# Qt offscreen for any GUI test; keyring never touches a real OS keyring in tests
# (tests that need one install the in-memory backend from tests/support/memkeyring.py).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest_plugins = [
    "tests.support.pulse",
    "tests.support.s3server",
]


@pytest.fixture
def umask022():
    """The usual umask (022) for this process and the programs it starts; restored after.
    The umask is process-wide, so nothing else runs in between."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)
