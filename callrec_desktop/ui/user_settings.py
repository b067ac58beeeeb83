"""The handler's own choices: the per-user settings file, and window geometry.

The per-user file is layer 3 of the settings (see ``config.py``):
``platformdirs.user_config_dir("callrec-desktop", appauthor=False)/config.toml``. Saving writes
only the keys the handler changed (merged into what the file already holds), checks the
result with the same strict loader the app starts with, and replaces the file atomically, so
a save can never leave a file that stops the app from starting.

Keys set in the machine-wide file (IT's, which wins over every other file) or in a file read
after the user's (``--config``, ``CALLREC_CONFIG``) would override the user's value, so they are
read-only in the dialog, which shows the value in force (IT's) and says in a tooltip which file
set it. A save never writes such a key.

Everything except the two geometry helpers is Qt-free and does I/O: call it on a worker
thread, never on the GUI thread.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callrec_desktop.config import Config, ConfigError, default_paths, load_config
from callrec_desktop.durable import fsync_dir
from callrec_desktop.private_files import private_dir

log = logging.getLogger(__name__)

#: The keys the settings dialog edits (the Library's "Play on" list edits the playback
#: device), with the words it uses for them.
FIELDS: dict[str, str] = {
    "audio.agent_device": "Agent microphone",
    "audio.caller_device": "Caller input",
    "audio.output_device": "Playback device",
    "store.url": "Central store",
    "store.endpoint_url": "S3 endpoint",
    "triggers.payment_window_titles": "Payment window titles",
    "identity.agent_id": "Handler id",
}

#: Keys the dialog shows but never edits: they change only in a settings file (IT's, usually).
SHOWN_READ_ONLY: dict[str, str] = {
    "triggers.dtmf_enabled": "Card key-tone detection",
}

SET_BY_IT = "set by IT"


# ---- reading ----------------------------------------------------------------------------------

def effective_values(config: Config) -> dict[str, Any]:
    """The value in force (IT's where IT's file sets it) of every key the dialog shows, as the
    settings file would spell it."""
    return {
        "audio.agent_device": config.audio.agent_device,
        "audio.caller_device": config.audio.caller_device,
        "audio.output_device": config.audio.output_device,
        "store.url": config.store.url,
        "store.endpoint_url": config.store.endpoint_url,
        "triggers.payment_window_titles": list(config.triggers.payment_window_titles),
        "identity.agent_id": config.identity.agent_id,
        "triggers.dtmf_enabled": config.triggers.dtmf_enabled,  # shown, never edited
    }


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; {} when it does not exist."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def lock_reason(config: Config, key: str) -> str | None:
    """Why the handler cannot change ``key`` (tooltip words naming the file), or None.

    From the loaded config's own record of which file each value came from: IT's machine-wide
    file (which wins over every other file), or the ``--config`` / ``CALLREC_CONFIG`` file,
    read after the per-user one. Any key, not only those the dialog edits. No I/O: any thread.
    """
    origin = config.origins.get(key)
    if origin is None:
        return None
    if config.set_by_it(key):
        return f"Set by IT in {origin}; ask IT to change it"
    if config.extra_file is not None and origin == config.extra_file:
        return f"Set in {origin}, which is read after your own settings"
    return None


def locked_keys(config: Config) -> dict[str, str]:
    """The keys the dialog shows (``FIELDS``, ``SHOWN_READ_ONLY``) that the handler cannot
    change, each with the reason (for a tooltip); see ``lock_reason``."""
    locked: dict[str, str] = {}
    for key in (*FIELDS, *SHOWN_READ_ONLY):
        reason = lock_reason(config, key)
        if reason is not None:
            locked[key] = reason
    return locked


@dataclass(frozen=True)
class SettingsSnapshot:
    """Everything the settings dialog shows, gathered on a worker thread before it opens."""

    values: Mapping[str, Any]
    locked: Mapping[str, str]
    user_file: Path
    default_store_dir: Path
    devices: tuple[str, ...] = ()
    devices_error: str | None = None
    has_credentials: bool = False
    credentials_note: str = ""
    token: str | None = None
    token_note: str = ""
    focus_unsupported: str | None = None  # why the window-title trigger cannot work here


def load_snapshot(config: Config, *, credentials=None, token_provider: Callable[[], str] | None = None,
                  focus_support: Callable[[], str | None] | None = None,
                  list_devices: Callable[[], list[dict]] | None = None,
                  user_file: Path | None = None) -> SettingsSnapshot:
    """Read files, the keyring, the control token and the device list. Worker thread only."""
    from callrec_desktop.credentials import CredentialsError, profile_for
    from callrec_desktop.storage.factory import StoreUrlError, parse_store_url

    paths = default_paths()
    devices: tuple[str, ...] = ()
    devices_error = None
    if list_devices is not None:
        try:
            devices = tuple(dict.fromkeys(str(d["name"]) for d in list_devices()))
            if not devices:
                devices_error = "No microphone or headset found on this PC."
        except Exception as exc:  # PortAudio missing or broken: say so in the dialog
            devices_error = f"Cannot list audio devices: {exc}"

    has_credentials, note = False, ""
    try:
        parsed = parse_store_url(config.store_url)
    except StoreUrlError:
        parsed = ("folder",)
    if parsed[0] == "s3" and credentials is not None:
        try:
            has_credentials = credentials.get(profile_for(config.store.endpoint_url or None, parsed[1])) is not None
        except CredentialsError as exc:
            note = str(exc)

    token, token_note = None, ""
    if token_provider is None or not config.control.enabled:
        token_note = "control API disabled"
    else:
        try:
            token = token_provider()
        except Exception as exc:
            token_note = f"control API token unavailable: {exc}"

    focus_unsupported = focus_support() if focus_support is not None else None  # may load libX11

    return SettingsSnapshot(
        focus_unsupported=focus_unsupported,
        values=effective_values(config),
        locked=locked_keys(config),
        user_file=user_file or paths.user_file,
        default_store_dir=paths.store_dir,
        devices=devices, devices_error=devices_error,
        has_credentials=has_credentials, credentials_note=note,
        token=token, token_note=token_note,
    )


# ---- validating and saving -----------------------------------------------------------------------

def validate_values(values: Mapping[str, Any]) -> list[str]:
    """Problems with the values the handler typed, in words fit for the dialog."""
    from callrec_desktop.storage.factory import StoreUrlError, parse_store_url

    problems = []
    for i, pattern in enumerate(values.get("triggers.payment_window_titles", ()), start=1):
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.append(f"Payment window titles, line {i}: {pattern!r} is not a valid regular expression ({exc}).")
    url = values.get("store.url", "")
    if url:
        try:
            parse_store_url(url)
        except StoreUrlError as exc:
            problems.append(f"Central store: {exc}.")
    endpoint = values.get("store.endpoint_url", "")
    if endpoint and not endpoint.startswith(("http://", "https://")):
        problems.append("S3 endpoint: must start with http:// or https://.")
    if not str(values.get("audio.agent_device", "")).strip():
        problems.append("Agent microphone: choose a device.")
    return problems


def changed_values(before: Mapping[str, Any], after: Mapping[str, Any], locked: Mapping[str, str] = {}) -> dict[str, Any]:
    """Only what differs from the current settings, never a locked key."""
    return {k: v for k, v in after.items() if k in FIELDS and k not in locked and before.get(k) != v}


def toml_value(value: Any) -> str:
    """A value as TOML. Strings: JSON's escaping is a subset of TOML basic strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to the settings file")


def to_toml(doc: Mapping[str, Mapping[str, Any]]) -> str:
    lines = ["# callrec-desktop: your own settings, written by the Settings window.",
             "# Keys here override the packaged defaults; any key IT's machine-wide file sets wins over them.", ""]
    for section, table in doc.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in table.items())
        lines.append("")
    return "\n".join(lines)


def write_user_changes(path: Path, changes: Mapping[str, Any]) -> None:
    """Merge ``changes`` (dotted keys) into the per-user file; check; replace atomically."""
    doc = read_toml(path)
    for dotted, value in changes.items():
        section, key = dotted.split(".", 1)
        doc.setdefault(section, {})[key] = list(value) if isinstance(value, tuple) else value
    text = to_toml(doc)
    if tomllib.loads(text) != doc:
        raise ValueError("internal error: the settings file would not read back as written")
    private_dir(path.parent)  # 0700 whatever the umask; mkstemp makes the file 0600
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        # The same strict loader the app starts with: a file it refuses is never installed.
        try:
            load_config(system_file=None, user_file=tmp, env={})
        except ConfigError as exc:
            raise ValueError(str(exc).replace(str(tmp), str(path))) from None
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class SaveRequest:
    """A save job for a worker thread. The secret never appears in its repr."""

    user_file: Path
    changes: Mapping[str, Any]
    credentials: tuple[str, str, str] | None = field(default=None, repr=False)  # (profile, access key, secret)


@dataclass(frozen=True)
class SaveResult:
    user_file: Path
    written: tuple[str, ...]
    credentials_saved: bool

    @property
    def restart_needed(self) -> tuple[str, ...]:
        """Words for what applies after a restart (every setting here is read at start-up)."""
        names = [FIELDS[k] for k in self.written]
        if self.credentials_saved:
            names.append("S3 credentials")
        return tuple(names)


def save_settings(request: SaveRequest, credentials=None) -> SaveResult:
    """Write the changed keys and the credentials. Worker thread only."""
    if request.changes:
        write_user_changes(request.user_file, request.changes)
        log.info("saved %s to %s", ", ".join(request.changes), request.user_file)
    saved = False
    if request.credentials is not None:
        profile, access, secret = request.credentials
        credentials.set(profile, access, secret)
        saved = True
    return SaveResult(request.user_file, tuple(request.changes), saved)


# ---- window geometry (GUI thread; QSettings caches and writes on its own) --------------------------

def restore_geometry(qsettings, key: str, widget) -> bool:
    data = qsettings.value(key)
    return bool(data) and widget.restoreGeometry(data)


def save_geometry(qsettings, key: str, widget) -> None:
    qsettings.setValue(key, widget.saveGeometry())
