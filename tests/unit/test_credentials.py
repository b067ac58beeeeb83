"""S3 credentials in the OS keyring (an in-memory test backend here): stored, found,
removed, never shown; keyring failures become a clear CredentialsError without the secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

import keyring
import keyring.backends.fail
import keyring.errors
import pytest

from callrec_desktop.credentials import SERVICE, CredentialsError, CredentialStore, S3Credentials, profile_for
from callrec_desktop.storage.factory import open_store
from tests.support.memkeyring import FileBackedTestKeyring, MemoryKeyring

ACCESS = "AKIATESTACCESSKEY01"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRET"
PROFILE = profile_for("http://127.0.0.1:8333", "recordings")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def mem():
    return MemoryKeyring()


@pytest.fixture
def global_keyring():
    """Install a MemoryKeyring as the process-wide backend, and put the old one back."""
    old = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    yield ring
    keyring.set_keyring(old)


def test_profile_names():
    assert PROFILE == "s3:http://127.0.0.1:8333:recordings"
    assert profile_for(None, "recordings") == "s3:aws:recordings"
    assert profile_for("HTTPS://Store.Example.org:9000/", "b") == "s3:https://store.example.org:9000:b"


def test_set_get_clear(mem):
    creds = CredentialStore(keyring_backend=mem)
    assert creds.get(PROFILE) is None
    creds.set(PROFILE, ACCESS, SECRET)
    got = creds.get(PROFILE)
    assert isinstance(got, S3Credentials) and got == (ACCESS, SECRET)
    access, secret = got
    assert (got.access_key_id, got.secret_access_key) == (access, secret) == (ACCESS, SECRET)
    assert json.loads(mem.get_password(SERVICE, PROFILE)) == {"access_key_id": ACCESS, "secret_access_key": SECRET}
    creds.clear(PROFILE)
    assert creds.get(PROFILE) is None
    creds.clear(PROFILE)  # clearing nothing is fine


def test_default_backend_is_the_process_keyring(global_keyring):
    CredentialStore().set(PROFILE, ACCESS, SECRET)
    assert CredentialStore().get(PROFILE) == (ACCESS, SECRET)
    assert global_keyring.get_password(SERVICE, PROFILE) is not None


def test_nothing_shows_a_secret(mem):
    creds = CredentialStore(keyring_backend=mem)
    creds.set(PROFILE, ACCESS, SECRET)
    got = creds.get(PROFILE)
    for text in (repr(got), str(got), f"{got}", f"{got!r}", repr([got]), repr(creds), str(creds)):
        assert ACCESS not in text and SECRET not in text


def test_no_keyring_maps_to_credentials_error_without_the_secret():
    """A fresh Linux venv has keyring's 'fail' backend: every call raises NoKeyringError."""
    creds = CredentialStore(keyring_backend=keyring.backends.fail.Keyring())
    with pytest.raises(CredentialsError, match="OS keyring is unavailable") as info:
        creds.set(PROFILE, ACCESS, SECRET)
    assert info.value.no_keyring
    text = "".join(traceback.format_exception(info.value))
    assert SECRET not in text and ACCESS not in text
    assert "Secret Service" in text and PROFILE in text  # says how to fix it, and for what
    with pytest.raises(CredentialsError, match="OS keyring is unavailable"):
        creds.get(PROFILE)
    with pytest.raises(CredentialsError):
        creds.clear(PROFILE)


def test_locked_keyring_maps_to_credentials_error(mem):
    mem.fail_with = keyring.errors.KeyringLocked(f"locked while storing {SECRET}")
    creds = CredentialStore(keyring_backend=mem)
    with pytest.raises(CredentialsError, match="locked") as info:
        creds.set(PROFILE, ACCESS, SECRET)
    assert SECRET not in str(info.value)
    assert not info.value.no_keyring


def test_unreadable_entry_is_reported_without_its_content(mem):
    mem.set_password(SERVICE, PROFILE, f"not json {SECRET}")
    with pytest.raises(CredentialsError, match="not in the expected form") as info:
        CredentialStore(keyring_backend=mem).get(PROFILE)
    assert SECRET not in "".join(traceback.format_exception(info.value))


def test_empty_values_refused(mem):
    with pytest.raises(ValueError):
        CredentialStore(keyring_backend=mem).set(PROFILE, ACCESS, "")


def test_lookup_falls_back_to_boto3_chain_only_without_any_keyring(mem):
    assert CredentialStore(keyring_backend=keyring.backends.fail.Keyring()).lookup("http://127.0.0.1:8333", "recordings") is None
    mem.fail_with = keyring.errors.KeyringLocked("locked")
    with pytest.raises(CredentialsError, match="locked"):
        CredentialStore(keyring_backend=mem).lookup("http://127.0.0.1:8333", "recordings")


def test_open_store_takes_s3_credentials_from_the_keyring(mem):
    creds = CredentialStore(keyring_backend=mem)
    creds.set(PROFILE, ACCESS, SECRET)
    store = open_store("s3://recordings/site1", endpoint_url="http://127.0.0.1:8333", region="us-east-1",
                       credentials_provider=creds.lookup)
    used = store._client._request_signer._credentials
    assert (used.access_key, used.secret_key) == (ACCESS, SECRET)
    assert SECRET not in repr(store) and ACCESS not in repr(store)
    store.close()
    other = open_store("s3://elsewhere", endpoint_url="http://127.0.0.1:8333", credentials_provider=creds.lookup)
    assert other._client._request_signer._credentials is None or \
        other._client._request_signer._credentials.access_key != ACCESS
    other.close()


def test_memory_keyring_is_never_auto_detected():
    assert MemoryKeyring not in list(keyring.backend.KeyringBackend.get_viable_backends())
    assert FileBackedTestKeyring not in list(keyring.backend.KeyringBackend.get_viable_backends())


def test_file_backed_test_keyring_reaches_a_subprocess(tmp_path):
    path = tmp_path / "keyring.json"
    CredentialStore(keyring_backend=FileBackedTestKeyring(path)).set(PROFILE, ACCESS, SECRET)
    env = dict(os.environ, PYTHON_KEYRING_BACKEND="tests.support.memkeyring.FileBackedTestKeyring",
               CALLREC_TEST_KEYRING_FILE=str(path), PYTHONPATH=str(REPO))
    code = ("from callrec_desktop.credentials import CredentialStore as C;"
            f"c = C().get({PROFILE!r}); print(c.access_key_id, len(c.secret_access_key))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [ACCESS, str(len(SECRET))]
