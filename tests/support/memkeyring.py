"""TEST-ONLY keyring backends. Never use outside tests: they keep secrets in plain text.

- ``MemoryKeyring``: a dict in this process. ``keyring.set_keyring(MemoryKeyring())``, or pass
  it to ``CredentialStore(keyring_backend=...)``.
- ``FileBackedTestKeyring``: for subprocesses, which cannot share memory with the test:
  ``PYTHON_KEYRING_BACKEND=tests.support.memkeyring.FileBackedTestKeyring`` and
  ``CALLREC_TEST_KEYRING_FILE=/tmp/.../keyring.json`` (a plain JSON file,
  ``{service: {username: password}}``).

Both are ``viable = False`` so keyring's automatic backend detection never picks them just
because this module was imported; they are used only when asked for by name or instance.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import KeyringLocked, PasswordDeleteError

ENV_FILE = "CALLREC_TEST_KEYRING_FILE"


class MemoryKeyring(KeyringBackend):
    """An in-memory keyring for tests. ``fail_with`` makes every call raise that exception
    (for example ``keyring.errors.KeyringLocked()``), to test error handling."""

    priority = 0.1  # low; only for display, since viable is False
    viable = False  # never auto-detected

    def __init__(self) -> None:
        super().__init__()
        self._data: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self.fail_with: BaseException | None = None

    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    def get_password(self, service: str, username: str) -> str | None:
        self._check()
        with self._lock:
            return self._data.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self._check()
        with self._lock:
            self._data[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self._check()
        with self._lock:
            if self._data.pop((service, username), None) is None:
                raise PasswordDeleteError("no such password")

    def __repr__(self) -> str:
        return f"MemoryKeyring({len(self._data)} entries)"


class FileBackedTestKeyring(KeyringBackend):
    """TEST-ONLY: a plain-text JSON file named by ``$CALLREC_TEST_KEYRING_FILE``."""

    priority = 0.1
    viable = False

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        path = path or os.environ.get(ENV_FILE)
        if not path:
            raise RuntimeError(f"FileBackedTestKeyring needs ${ENV_FILE} (a JSON file path)")
        self.path = Path(path)

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    def _save(self, data: dict[str, dict[str, str]]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, self.path)

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(service, {}).get(username)

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data.setdefault(service, {})[username] = password
        self._save(data)

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        if data.get(service, {}).pop(username, None) is None:
            raise PasswordDeleteError("no such password")
        self._save(data)

    def __repr__(self) -> str:
        return f"FileBackedTestKeyring({str(self.path)!r})"


class LockedTestKeyring(KeyringBackend):
    """TEST-ONLY, for subprocesses: a keyring that is there but locked (every call raises
    ``KeyringLocked``), as a Secret Service is before the desktop session unlocks it."""

    priority = 0.1
    viable = False

    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringLocked("the test keyring is locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise KeyringLocked("the test keyring is locked")

    def delete_password(self, service: str, username: str) -> None:
        raise KeyringLocked("the test keyring is locked")
