"""Settings: layered TOML files read into frozen dataclasses, and the council's recorded lines.

Layers, later ones overriding earlier ones key by key:

1. the packaged ``resources/defaults.toml`` (holds every key, documented);
2. the per-user ``user_config_dir("callrec-desktop")/config.toml``;
3. the file named by the ``CALLREC_CONFIG`` environment variable, if set (tests, ``--config``);
4. the machine-wide ``site_config_dir("callrec-desktop")/config.toml`` (IT's install-time file).

IT's file is read last because it is policy: a handler's own file, ``--config`` or
``CALLREC_CONFIG`` must not switch off the DTMF trigger or the payment-window titles. Every key
IT's file sets wins, and a list (``payment_window_titles``) wins whole: it is one key, never
merged item by item. A lower file that sets such a key to another value is not an error (the
handler cannot edit IT's file, and the app must start); it is an ``IgnoredSetting``, logged
once per load as a WARNING naming the file, the key and IT's file. ``refuse_flags_against_it``
applies the same rule to the command-line flags of a one-off ``callrec`` run.

Missing machine/user files are fine. Reading is strict: an unknown key, a wrong type or an
out-of-range value gives one ``ConfigError`` naming the file, the dotted key and the problem,
never a half-filled object, so a typo in IT's file cannot silently change what is recorded.
Relative paths in a file are relative to that file's folder.

The recorded lines (privacy notice, section 1) live in ``resources/lines.toml``; ``[lines]
file`` may point at another file. No Qt, no module-level state: build a ``Config`` with
``load_config()`` in the composition root and pass it on.
"""

from __future__ import annotations

import getpass
import json
import logging
import math
import os
import re
import socket
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from enum import Enum
from pathlib import Path
from typing import Any

import platformdirs

APP_NAME = "callrec-desktop"
CONFIG_ENV_VAR = "CALLREC_CONFIG"
CONFIG_FILE_NAME = "config.toml"
DEFAULTS_FILE_NAME = "defaults.toml"
LINES_FILE_NAME = "lines.toml"

CODECS = ("opus", "flac")
SAMPLE_RATES = (8000, 12000, 16000, 24000, 48000)  # the rates Opus encodes natively
ADDRESSING_STYLES = ("auto", "path", "virtual")

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A settings or lines file that cannot be used; the message names file, key and problem."""


class UnknownLineError(ValueError):
    """No recorded line matches; the message lists the valid lines."""


# ---- locations -----------------------------------------------------------------------------


def resources_dir() -> Path:
    """The packaged ``resources`` folder: beside the package, or inside a PyInstaller bundle."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


@dataclass(frozen=True)
class DefaultPaths:
    """Where settings and data live when nothing says otherwise (for the CLI to print)."""

    defaults_file: Path
    system_file: Path
    user_file: Path
    lines_file: Path
    store_dir: Path
    spool_dir: Path
    log_dir: Path


def default_paths(resources: Path | None = None) -> DefaultPaths:
    """The platform's default locations, from platformdirs (which reads ``os.environ``)."""
    res = resources if resources is not None else resources_dir()
    data = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    return DefaultPaths(
        defaults_file=res / DEFAULTS_FILE_NAME,
        system_file=Path(platformdirs.site_config_dir(APP_NAME, appauthor=False)) / CONFIG_FILE_NAME,
        user_file=Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / CONFIG_FILE_NAME,
        lines_file=res / LINES_FILE_NAME,
        store_dir=data / "store",
        spool_dir=data / "spool",
        log_dir=Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)),
    )


# ---- settings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecorderSettings:
    """How audio is encoded and chunked."""

    codec: str = "opus"
    sample_rate: int = 16000
    chunk_seconds: float = 10.0
    lookbehind_seconds: float = 2.0
    opus_bitrate_per_channel: int = 10000  # bits per second
    opus_complexity: int = 5
    block_ms: int = 20


@dataclass(frozen=True)
class AudioSettings:
    """Which audio devices to use. ``caller_device`` "" = caller on the agent device's 2nd
    channel; ``output_device`` is the team leaders' playback device."""

    agent_device: str = "default"
    caller_device: str = ""
    channels: int = 2
    output_device: str = "default"  # where the Library plays calls back


@dataclass(frozen=True)
class StoreSettings:
    """Central store. ``url`` "" = the embedded folder store (see ``Config.store_url``)."""

    url: str = ""
    endpoint_url: str = ""
    region: str = ""
    addressing_style: str = "auto"
    ca_bundle: Path | None = None  # checked to exist at load time


@dataclass(frozen=True)
class UploadSettings:
    """Retry policy of the uploader."""

    max_backoff_seconds: float = 60.0
    initial_backoff_seconds: float = 0.5
    max_attempts_per_pass: int = 8


@dataclass(frozen=True)
class ControlSettings:
    """The local control API (softphones, CTI, payment pages): loopback only, token required."""

    enabled: bool = True
    port: int = 47800


@dataclass(frozen=True)
class TriggerSettings:
    """Automatic payment pause triggers."""

    payment_window_titles: tuple[str, ...] = ()  # regular expressions, matched case-insensitively
    focus_poll_ms: int = 300
    dtmf_enabled: bool = True
    # A DTMF pause starts at least this long before the first detected digit (digits the
    # detector missed before it are removed too); more than 0, at most the look-behind.
    dtmf_reach_back_seconds: float = 1.5


@dataclass(frozen=True)
class IdentitySettings:
    """Who records where; ``load_config`` fills empty values from the OS."""

    agent_id: str
    workstation: str


@dataclass(frozen=True)
class PathsSettings:
    """Local folders; ``load_config`` fills empty values from platformdirs."""

    spool_dir: Path
    log_dir: Path


@dataclass(frozen=True)
class Line:
    """One recorded public line. ``number`` may be "" (a line without a published number)."""

    id: str
    number: str
    department: str

    @property
    def label(self) -> str:
        """Human-readable: number (or id when there is none) and department."""
        return f"{self.number or self.id} – {self.department}"


@dataclass(frozen=True)
class Lines:
    """The council's recorded lines and the departments a call may be transferred to."""

    lines: tuple[Line, ...]
    transfer_departments: tuple[str, ...]
    source: Path | None = None

    def find(self, key: str) -> Line:
        """The line whose id (any case) or number (digits only, +44 = 0) is ``key``.

        Raises ``UnknownLineError`` listing the valid lines, so a bad script or CTI message
        says what would have been accepted.
        """
        text = key.strip() if isinstance(key, str) else ""
        if text:
            for line in self.lines:
                if line.id == text.lower():
                    return line
            digits = normalise_number(text)
            if digits:
                for line in self.lines:
                    if normalise_number(line.number) == digits:  # "" never equals digits
                        return line
        valid = "; ".join(f"{ln.number} ({ln.id}) {ln.department}" if ln.number else f"{ln.id} {ln.department}"
                          for ln in self.lines)
        raise UnknownLineError(f"unknown line {key!r}; valid lines (number or id): {valid}")


_NUMBER_KEY_RE = re.compile(r"^\+?[0-9 ()./-]+$")


def normalise_number(text: str) -> str:
    """Digits of a UK phone number with the country code folded to 0; "" if not a number.

    "01443 425002", "01443425002", "+44 1443 425002" and "0044 1443 425002" all give
    "01443425002", as does "+44 (0)1443 425002". Letters make it not a number.
    """
    text = text.strip()
    if not _NUMBER_KEY_RE.match(text):
        return ""
    if text.startswith(("+", "00")):
        text = text.replace("(0)", "", 1)  # "+44 (0)1443 ...": the trunk 0 written in brackets
    digits = re.sub(r"[^0-9]", "", text)
    if text.startswith("+"):
        return "0" + digits[2:] if digits.startswith("44") else "+" + digits
    if digits.startswith("0044"):
        return "0" + digits[4:]
    return digits


@dataclass(frozen=True)
class IgnoredSetting:
    """A key a handler's file (or ``--config`` / ``CALLREC_CONFIG``) sets to another value than
    IT's machine-wide file does: IT's value is used, and this says so."""

    key: str  # dotted, e.g. "triggers.dtmf_enabled"
    file: Path  # the file whose value is ignored
    value: Any
    it_file: Path
    it_value: Any

    @property
    def message(self) -> str:
        """One line for the log: the file, the key, both values and IT's file."""
        return (f"{self.file}: {self.key} = {_toml_text(self.value)} is ignored: IT's machine-wide settings "
                f"file {self.it_file} sets {self.key} = {_toml_text(self.it_value)}, and IT's settings win")


@dataclass(frozen=True)
class Config:
    """Everything the app needs from settings files, validated and resolved."""

    recorder: RecorderSettings
    audio: AudioSettings
    store: StoreSettings
    upload: UploadSettings
    identity: IdentitySettings
    paths: PathsSettings
    lines: Lines
    control: ControlSettings = ControlSettings()
    triggers: TriggerSettings = TriggerSettings()
    sources: tuple[Path, ...] = ()  # settings files read, lowest precedence first (the lines file is ``lines.source``)
    it_file: Path | None = None  # IT's machine-wide file, when it was read (always the last source)
    extra_file: Path | None = None  # the CALLREC_CONFIG / --config file, when it was read
    # dotted key -> the file its value came from (compare=False keeps Config hashable)
    origins: Mapping[str, Path] = field(default_factory=dict, compare=False)
    ignored: tuple[IgnoredSetting, ...] = ()  # lower files' values that IT's file overrode

    @property
    def store_url(self) -> str:
        """The store to use: ``store.url``, or the embedded default folder store when empty."""
        return self.store.url or str(default_paths().store_dir)

    def set_by_it(self, dotted: str) -> bool:
        """Whether IT's machine-wide file sets ``dotted`` (so nothing else may change it)."""
        return self.it_file is not None and self.origins.get(dotted) == self.it_file

    def log_ignored(self) -> None:
        """Log each ignored setting once as a WARNING. ``load_config`` does this unless told not
        to (the window calls it after its log file is set up, so the warnings land there)."""
        for item in self.ignored:
            log.warning("%s", item.message)


# ---- schema --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    """One allowed key: its kind and limits. Kinds: str, int, number, path, store_url, http_url."""

    kind: str
    choices: tuple[Any, ...] = ()
    lo: float | None = None
    hi: float | None = None
    non_empty: bool = False


_SCHEMA: Mapping[str, Mapping[str, _Key]] = {
    "recorder": {
        "codec": _Key("str", choices=CODECS),
        "sample_rate": _Key("int", choices=SAMPLE_RATES),
        "chunk_seconds": _Key("number", lo=1, hi=300),
        "lookbehind_seconds": _Key("number", lo=0, hi=10),
        "opus_bitrate_per_channel": _Key("int", lo=6000, hi=64000),
        "opus_complexity": _Key("int", lo=0, hi=10),
        "block_ms": _Key("int", lo=5, hi=100),
    },
    "audio": {
        "agent_device": _Key("str", non_empty=True),
        "caller_device": _Key("str"),
        "channels": _Key("int", choices=(1, 2)),
        "output_device": _Key("str", non_empty=True),
    },
    "store": {
        "url": _Key("store_url"),
        "endpoint_url": _Key("http_url"),
        "region": _Key("str"),
        "addressing_style": _Key("str", choices=ADDRESSING_STYLES),
        "ca_bundle": _Key("path"),
    },
    "upload": {
        "max_backoff_seconds": _Key("number", lo=1, hi=3600),
        "initial_backoff_seconds": _Key("number", lo=0.01, hi=60),
        "max_attempts_per_pass": _Key("int", lo=1, hi=100),
    },
    "identity": {
        "agent_id": _Key("str"),
        "workstation": _Key("str"),
    },
    "paths": {
        "spool_dir": _Key("path"),
        "log_dir": _Key("path"),
    },
    "lines": {
        "file": _Key("path"),
    },
    "control": {
        "enabled": _Key("bool"),
        "port": _Key("int", lo=1024, hi=65535),
    },
    "triggers": {
        "payment_window_titles": _Key("str_list", choices=("regex",)),
        "focus_poll_ms": _Key("int", lo=50, hi=5000),
        "dtmf_enabled": _Key("bool"),
        "dtmf_reach_back_seconds": _Key("number", lo=0, hi=10),
    },
}

_S3_URL_RE = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")
_URL_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
_LINE_ID_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
_LINE_NUMBER_RE = re.compile(r"^[0-9]+( [0-9]+)*$")


def _type_name(value: Any) -> str:
    """The TOML name of a parsed value's type, for messages."""
    for kind, name in ((bool, "boolean"), (int, "integer"), (float, "float"), (str, "string"),
                       (list, "array"), (dict, "table"), (datetime, "date-time"), (date, "date"),
                       (time, "time")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _show(value: Any) -> str:
    """A value as it would appear in a message: strings quoted, numbers as written."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _got(value: Any) -> str:
    return f"{_type_name(value)} {_show(value)}"


def _toml_text(value: Any) -> str:
    """A checked value as a settings file would spell it, for messages about whole values."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, Path)):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_text(v) for v in value) + "]"
    if value is None:
        return '""'
    return _show(value)


def _check(spec: _Key, value: Any, base_dir: Path, fail: Any) -> Any:
    """Validate and convert one value; ``fail(problem)`` builds the ConfigError."""
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise fail(f"expected true or false, got {_got(value)}")
        return value
    if spec.kind == "str_list":
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise fail(f"expected a list of non-empty strings, got {_got(value)}")
        if spec.kind == "str_list" and spec.choices == ("regex",):
            for i, pattern in enumerate(value):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise fail(f"item {i} is not a valid regular expression ({exc}): {_show(pattern)}") from None
        return tuple(value)
    if spec.kind in ("int", "number"):
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if spec.kind == "int" and not is_int:
            raise fail(f"expected an integer, got {_got(value)}")
        if spec.kind == "number":
            if not is_int and not isinstance(value, float):
                raise fail(f"expected a number, got {_got(value)}")
            if math.isnan(value) or math.isinf(value):
                raise fail(f"expected a finite number, got {value}")
        if spec.choices and value not in spec.choices:
            raise fail(f"must be one of {', '.join(map(_show, spec.choices))}, got {_show(value)}")
        if spec.lo is not None and spec.hi is not None and not spec.lo <= value <= spec.hi:
            raise fail(f"must be between {_show(spec.lo)} and {_show(spec.hi)}, got {_show(value)}")
        return float(value) if spec.kind == "number" else value

    if not isinstance(value, str):
        hint = f' (write "{value}" for a device index)' if isinstance(value, int) and spec.kind == "str" else ""
        raise fail(f"expected a string, got {_got(value)}{hint}")
    if spec.non_empty and not value.strip():
        raise fail("must not be empty")
    if spec.choices and value not in spec.choices:
        raise fail(f"must be one of {', '.join(map(_show, spec.choices))}, got {_show(value)}")
    if spec.kind == "path":
        return _as_path(value, base_dir) if value else None
    if spec.kind == "http_url":
        if value and not value.startswith(("http://", "https://")):
            raise fail(f"must be empty or start with http:// or https://, got {_show(value)}")
    elif spec.kind == "store_url" and value:
        if value.startswith("s3://"):
            if not _S3_URL_RE.match(value):
                raise fail(f"must be s3://bucket/prefix with a valid bucket name, got {_show(value)}")
        elif _URL_SCHEME_RE.match(value):
            raise fail(f"must be empty, a folder path or s3://bucket/prefix, got {_show(value)}")
        else:
            return str(_as_path(value, base_dir))
    return value


def _as_path(text: str, base_dir: Path) -> Path:
    """``~`` expanded; a relative path is taken relative to the file that named it."""
    path = Path(text).expanduser()
    return path if path.is_absolute() else base_dir / path


# ---- reading -------------------------------------------------------------------------------


def _read_toml(path: Path) -> dict[str, Any]:
    """Parse one TOML file; any failure is a ConfigError naming the file (and line for syntax)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: byte {exc.start}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc


def _read_layer(path: Path) -> dict[str, tuple[Any, Path]]:
    """One settings file, validated key by key: ``{"section.key": (value, path)}``."""
    doc = _read_toml(path)
    out: dict[str, tuple[Any, Path]] = {}
    for section, table in doc.items():
        if section not in _SCHEMA:
            raise ConfigError(f"{path}: {section}: unknown table; expected one of {', '.join(_SCHEMA)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {section}: expected a table, got {_got(table)}")
        keys = _SCHEMA[section]
        for key, value in table.items():
            dotted = f"{section}.{key}"

            def fail(problem: str, dotted: str = dotted) -> ConfigError:
                return ConfigError(f"{path}: {dotted}: {problem}")

            if key not in keys:
                raise fail(f"unknown key; expected one of {', '.join(keys)}")
            out[dotted] = (_check(keys[key], value, path.parent, fail), path)
    return out


class _Default(Enum):
    """Sentinel type: "use the platform's default path" (None means "no file")."""

    PATH = "default"


_DEFAULT = _Default.PATH


def load_config(
    *,
    system_file: Path | None | _Default = _DEFAULT,
    user_file: Path | None | _Default = _DEFAULT,
    resources_dir: Path | None = None,  # shadows resources_dir() here; same meaning, caller's override
    env: Mapping[str, str] | None = None,
    log_ignored: bool = True,
) -> Config:
    """Read and merge all layers into a validated ``Config``. Any thread (it only reads files).

    ``system_file``/``user_file``: the platform defaults unless given; ``None`` skips the layer.
    ``resources_dir``: where ``defaults.toml`` and ``lines.toml`` are (default: packaged).
    ``env``: looked up for ``CALLREC_CONFIG`` (default ``os.environ``).
    ``log_ignored``: log each value IT's file overrode as a WARNING now; the window passes
    False and calls ``Config.log_ignored()`` once its log file exists.

    Precedence, lowest first: packaged defaults, the user's file, ``CALLREC_CONFIG``, IT's file.
    """
    env = os.environ if env is None else env
    defaults = default_paths(resources_dir)

    def existing(given: Path | None | _Default, default: Path) -> Path | None:
        path = default if given is _DEFAULT else given
        return path if isinstance(path, Path) and path.is_file() else None

    it_path = existing(system_file, defaults.system_file)
    user_path = existing(user_file, defaults.user_file)
    extra_path: Path | None = None
    extra = env.get(CONFIG_ENV_VAR, "")
    if extra:
        extra_path = Path(extra).expanduser()
        if not extra_path.is_file():
            raise ConfigError(f"{extra_path}: named by {CONFIG_ENV_VAR} but there is no such file")
    # A file named twice (--config naming the user's or IT's own file) is read once, in its own place.
    if user_path is not None and it_path is not None and user_path.samefile(it_path):
        user_path = None
    if extra_path is not None and any(p is not None and extra_path.samefile(p) for p in (user_path, it_path)):
        extra_path = None
    layers = [p for p in (defaults.defaults_file, user_path, extra_path, it_path) if p is not None]

    read = [(path, _read_layer(path)) for path in layers]
    merged: dict[str, tuple[Any, Path]] = {}
    for _, values in read:
        merged.update(values)  # key by key: a file only overrides what it names; IT's file comes last
    ignored: list[IgnoredSetting] = []
    if it_path is not None:
        it_values = read[-1][1]
        for path, values in read[1:-1]:  # the user's and the extra file, never the packaged defaults
            for key, (value, _) in values.items():
                section, name = key.split(".", 1)
                if key in it_values and not _same_setting(_SCHEMA[section][name], value, it_values[key][0]):
                    ignored.append(IgnoredSetting(key, path, value, it_path, it_values[key][0]))
    config = replace(
        _build(merged, defaults, tuple(layers)),
        it_file=it_path, extra_file=extra_path, ignored=tuple(ignored),
        origins={key: path for key, (_, path) in merged.items()},
    )
    if log_ignored:
        config.log_ignored()
    return config


def refuse_flags_against_it(config: Config, flags: Iterable[tuple[str, str, Any]]) -> None:
    """Refuse a one-off command-line flag that contradicts a key IT's file sets.

    ``flags``: ``(flag, dotted key, value)``; a value of None means "not given". The value is
    checked like a settings value (relative paths against the current folder) and compared
    with IT's. Refused rather than silently replaced, so a script never believes it recorded
    FLAC into its own folder when it did not. Raises ``ConfigError`` naming the flag, the key,
    IT's value and IT's file; also on a flag value that is not valid for its key. Called by the
    CLI's main thread before anything is opened.
    """
    for flag, dotted, value in flags:
        if value is None or not config.set_by_it(dotted):
            continue
        section, key = dotted.split(".", 1)
        spec = _SCHEMA[section][key]

        def fail(problem: str, flag: str = flag, value: Any = value) -> ConfigError:
            return ConfigError(f"{flag} {value}: {problem}")

        given = _check(spec, str(value) if isinstance(value, Path) else value, Path.cwd(), fail)
        it_value = getattr(getattr(config, section), key)
        if _same_setting(spec, given, it_value):
            continue
        raise ConfigError(
            f"{flag} {value}: refused: {dotted} is set to {_toml_text(it_value)} by IT's machine-wide settings "
            f"file {config.it_file}, and IT's settings apply to every run; leave out {flag} (or ask IT)")


def _same_setting(spec: _Key, a: Any, b: Any) -> bool:
    """Equal as settings: folders compared as resolved paths, S3 URLs without a trailing slash."""
    if spec.kind in ("path", "store_url") and a and b and not str(a).startswith("s3://"):
        return Path(a).resolve() == Path(b).resolve()
    if spec.kind == "store_url" and isinstance(a, str) and isinstance(b, str):
        return a.rstrip("/") == b.rstrip("/")
    return a == b


def _build(merged: Mapping[str, tuple[Any, Path]], defaults: DefaultPaths, sources: tuple[Path, ...]) -> Config:
    """Turn merged, already type-checked values into a Config, resolving empty values."""

    def get(dotted: str) -> Any:
        if dotted not in merged:
            raise ConfigError(f"{defaults.defaults_file}: {dotted}: missing from the packaged defaults")
        return merged[dotted][0]

    def src(dotted: str) -> Path:
        return merged[dotted][1]

    def section(name: str) -> dict[str, Any]:
        return {key: get(f"{name}.{key}") for key in _SCHEMA[name]}

    store = StoreSettings(**section("store"))
    if store.ca_bundle is not None and not store.ca_bundle.is_file():
        raise ConfigError(f"{src('store.ca_bundle')}: store.ca_bundle: no such file: {store.ca_bundle}")

    upload = UploadSettings(**section("upload"))
    if upload.initial_backoff_seconds > upload.max_backoff_seconds:
        raise ConfigError(
            f"{src('upload.initial_backoff_seconds')}: upload.initial_backoff_seconds: must not exceed "
            f"upload.max_backoff_seconds ({_show(upload.max_backoff_seconds)}, set in "
            f"{src('upload.max_backoff_seconds')}), got {_show(upload.initial_backoff_seconds)}"
        )

    reach_back, lookbehind = get("triggers.dtmf_reach_back_seconds"), get("recorder.lookbehind_seconds")
    if src("triggers.dtmf_reach_back_seconds") == defaults.defaults_file:
        reach_back = min(reach_back, lookbehind)  # the packaged default is bounded by the look-behind
    elif not 0 < reach_back <= lookbehind:  # a value someone set: refused when it cannot be honoured
        raise ConfigError(
            f"{src('triggers.dtmf_reach_back_seconds')}: triggers.dtmf_reach_back_seconds: must be more than 0 and "
            f"not more than recorder.lookbehind_seconds ({_show(lookbehind)}, set in "
            f"{src('recorder.lookbehind_seconds')}), got {_show(reach_back)}"
        )

    agent_id = get("identity.agent_id") or _login_name(src("identity.agent_id"))
    workstation = get("identity.workstation") or socket.gethostname()

    lines_file = get("lines.file")
    if lines_file is not None and not lines_file.is_file():
        raise ConfigError(f"{src('lines.file')}: lines.file: no such file: {lines_file}")

    return Config(
        recorder=RecorderSettings(**section("recorder")),
        audio=AudioSettings(**section("audio")),
        store=store,
        upload=upload,
        identity=IdentitySettings(agent_id=agent_id, workstation=workstation),
        paths=PathsSettings(
            spool_dir=get("paths.spool_dir") or defaults.spool_dir,
            log_dir=get("paths.log_dir") or defaults.log_dir,
        ),
        lines=load_lines(lines_file or defaults.lines_file),
        sources=sources,
        control=ControlSettings(**section("control")),
        triggers=TriggerSettings(**{**section("triggers"), "dtmf_reach_back_seconds": reach_back}),
    )


def _login_name(source: Path) -> str:
    """The OS login name, for an empty ``identity.agent_id``; every recording must name an agent."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError, ImportError) as exc:
        raise ConfigError(
            f"{source}: identity.agent_id: empty and the OS login name cannot be determined ({exc}); set it"
        ) from exc
    if not name:
        raise ConfigError(f"{source}: identity.agent_id: empty and the OS login name is empty; set it")
    return name


# ---- lines ---------------------------------------------------------------------------------


def load_lines(path: Path) -> Lines:
    """Read and validate a lines file (format: see ``resources/lines.toml``)."""
    doc = _read_toml(path)

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{path}: {key}: {problem}")

    for key in doc:
        if key not in ("line", "transfer_departments"):
            raise fail(key, "unknown key; expected line, transfer_departments")
    if "line" not in doc:
        raise fail("line", "missing; list the recorded lines as [[line]] tables")
    entries = doc["line"]
    if not isinstance(entries, list):
        raise fail("line", f"expected an array of tables ([[line]]), got {_got(entries)}")
    if not entries:
        raise fail("line", "must list at least one line")

    lines: list[Line] = []
    seen_ids: dict[str, int] = {}
    seen_numbers: dict[str, int] = {}
    for i, entry in enumerate(entries):
        where = f"line[{i}]"
        if not isinstance(entry, dict):
            raise fail(where, f"expected a table, got {_got(entry)}")
        for key in entry:
            if key not in ("id", "number", "department"):
                raise fail(f"{where}.{key}", "unknown key; expected id, number, department")
        for key in ("id", "number", "department"):
            if key not in entry:
                raise fail(f"{where}.{key}", "missing")
            if not isinstance(entry[key], str):
                raise fail(f"{where}.{key}", f"expected a string, got {_got(entry[key])}")
        line_id, number, department = entry["id"], entry["number"], entry["department"]
        if not _LINE_ID_RE.match(line_id):
            raise fail(f"{where}.id", f"must be a lower-case slug (a-z, 0-9, - or _, starting with a letter), "
                                      f"got {_show(line_id)}")
        if line_id in seen_ids:
            raise fail(f"{where}.id", f"duplicate of line[{seen_ids[line_id]}].id {_show(line_id)}")
        if number and not _LINE_NUMBER_RE.match(number):
            raise fail(f"{where}.number", f"must hold only digits and single spaces (or be empty), got {_show(number)}")
        digits = number.replace(" ", "")
        if digits and digits in seen_numbers:
            raise fail(f"{where}.number", f"duplicate of line[{seen_numbers[digits]}].number {_show(number)}")
        if not department.strip():
            raise fail(f"{where}.department", "must not be empty")
        seen_ids[line_id] = i
        if digits:
            seen_numbers[digits] = i
        lines.append(Line(id=line_id, number=number, department=department))

    if "transfer_departments" not in doc:
        raise fail("transfer_departments", "missing; list the departments a call may be transferred to")
    departments = doc["transfer_departments"]
    if not isinstance(departments, list) or not departments:
        raise fail("transfer_departments", "expected a non-empty array of department names")
    seen: set[str] = set()
    for i, name in enumerate(departments):
        if not isinstance(name, str) or not name.strip():
            raise fail(f"transfer_departments[{i}]", f"expected a non-empty string, got {_got(name)}")
        if name in seen:
            raise fail(f"transfer_departments[{i}]", f"duplicate {_show(name)}")
        seen.add(name)
    return Lines(lines=tuple(lines), transfer_departments=tuple(departments), source=path)
