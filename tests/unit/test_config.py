"""Layered settings and the recorded lines: defaults, layering, strict errors naming file and key."""

from __future__ import annotations

import dataclasses
import getpass
import shutil
import socket
import sys
import tomllib
from pathlib import Path

import platformdirs
import pytest

from callrec_desktop import config as cfg
from callrec_desktop.config import (
    CONFIG_ENV_VAR,
    AudioSettings,
    ConfigError,
    Lines,
    RecorderSettings,
    StoreSettings,
    UnknownLineError,
    UploadSettings,
    default_paths,
    load_config,
    load_lines,
    normalise_number,
    refuse_flags_against_it,
    resources_dir,
)

PACKAGED = resources_dir()

NOTICE_LINES = {  # privacy notice, section 1
    "01443 425001": "Environmental Services",
    "01443 425002": "Council Tax, Business Rate and Benefits",
    "01443 425003": "Community & Children Services",
    "01443 425004": "Planning",
    "01443 425005": "General Enquiries",
    "01443 425011": "Emergency Response",
    "01443 425014": "Consultation Line",
    "01443 425025": "Santa Appeal",
}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(system: Path | None = None, user: Path | None = None, extra: Path | None = None, **kw):
    """load_config isolated from the machine: only the files the test names."""
    env = {CONFIG_ENV_VAR: str(extra)} if extra else {}
    return load_config(system_file=system, user_file=user, env=env, **kw)


def error_from(tmp_path: Path, text: str) -> tuple[Path, str]:
    path = write(tmp_path / "etc" / "config.toml", text)
    with pytest.raises(ConfigError) as info:
        load(system=path)
    return path, str(info.value)


# ---- defaults ------------------------------------------------------------------------------


def test_defaults_have_the_documented_values(monkeypatch):
    monkeypatch.setattr(getpass, "getuser", lambda: "agent7")
    monkeypatch.setattr(socket, "gethostname", lambda: "ws-12")
    c = load()
    assert c.recorder == RecorderSettings(
        codec="opus", sample_rate=16000, chunk_seconds=10.0, lookbehind_seconds=2.0,
        opus_bitrate_per_channel=10000, opus_complexity=5, block_ms=20,
    )
    assert c.audio == AudioSettings(agent_device="default", caller_device="", channels=2, output_device="default")
    assert c.store == StoreSettings(url="", endpoint_url="", region="", addressing_style="auto", ca_bundle=None)
    assert c.upload == UploadSettings(max_backoff_seconds=60.0, initial_backoff_seconds=0.5, max_attempts_per_pass=8)
    assert (c.identity.agent_id, c.identity.workstation) == ("agent7", "ws-12")
    data = Path(platformdirs.user_data_dir("callrec-desktop", appauthor=False))
    assert c.paths.spool_dir == data / "spool"
    assert c.paths.log_dir == Path(platformdirs.user_log_dir("callrec-desktop", appauthor=False))
    assert c.store_url == str(data / "store")
    assert c.sources == (PACKAGED / "defaults.toml",)
    assert c.lines.source == PACKAGED / "lines.toml"
    assert isinstance(c.recorder.chunk_seconds, float)


def test_packaged_defaults_file_matches_dataclass_defaults():
    """The documented file and the code must not drift apart."""
    doc = tomllib.loads((PACKAGED / "defaults.toml").read_text(encoding="utf-8"))
    for name, cls in (("recorder", RecorderSettings), ("audio", AudioSettings), ("upload", UploadSettings)):
        assert doc[name] == dataclasses.asdict(cls()), name
    store = dict(dataclasses.asdict(StoreSettings()), ca_bundle="")
    assert doc["store"] == store
    assert doc["identity"] == {"agent_id": "", "workstation": ""}
    assert doc["paths"] == {"spool_dir": "", "log_dir": ""}
    assert doc["lines"] == {"file": ""}


def test_every_default_key_is_documented_by_a_comment():
    lines = (PACKAGED / "defaults.toml").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            assert lines[i - 1].startswith("#"), f"undocumented key: {line}"


def test_identity_given_in_a_file_is_kept(tmp_path):
    user = write(tmp_path / "user.toml", '[identity]\nagent_id = "jdavies"\nworkstation = "CC-PC-04"\n')
    c = load(user=user)
    assert (c.identity.agent_id, c.identity.workstation) == ("jdavies", "CC-PC-04")


def test_unknown_login_name_is_a_config_error(monkeypatch):
    def no_user() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr(getpass, "getuser", no_user)
    with pytest.raises(ConfigError, match=r"defaults\.toml: identity\.agent_id: empty and the OS login name"):
        load()


def test_default_paths_come_from_platformdirs():
    p = default_paths()
    assert p.system_file == Path(platformdirs.site_config_dir("callrec-desktop", appauthor=False)) / "config.toml"
    assert p.user_file == Path(platformdirs.user_config_dir("callrec-desktop", appauthor=False)) / "config.toml"
    assert p.defaults_file == PACKAGED / "defaults.toml"
    assert p.lines_file == PACKAGED / "lines.toml"


@pytest.mark.skipif(sys.platform != "linux", reason="XDG variables steer platformdirs on Linux only")
def test_load_config_reads_platform_files_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "etc"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home"))
    system = write(tmp_path / "etc" / "callrec-desktop" / "config.toml", '[recorder]\ncodec = "flac"\n')
    user = write(tmp_path / "home" / "callrec-desktop" / "config.toml", '[recorder]\nblock_ms = 40\ncodec = "opus"\n')
    c = load_config(env={})
    assert c.sources == (PACKAGED / "defaults.toml", user, system)  # IT's file last: it wins
    assert (c.recorder.codec, c.recorder.block_ms) == ("flac", 40)
    assert c.it_file == system and c.set_by_it("recorder.codec") and not c.set_by_it("recorder.block_ms")


def test_resources_dir_is_beside_the_package():
    assert resources_dir() == Path(cfg.__file__).resolve().parent.parent / "resources"
    assert (resources_dir() / "defaults.toml").is_file()
    assert (resources_dir() / "lines.toml").is_file()


def test_resources_dir_inside_a_pyinstaller_bundle(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resources_dir() == tmp_path / "resources"


def test_resources_dir_argument_replaces_packaged_files(tmp_path):
    res = tmp_path / "res"
    shutil.copytree(PACKAGED, res)
    text = (res / "defaults.toml").read_text(encoding="utf-8").replace("block_ms = 20", "block_ms = 30")
    write(res / "defaults.toml", text)
    c = load(resources_dir=res)
    assert c.recorder.block_ms == 30
    assert c.sources == (res / "defaults.toml",)
    assert c.lines.source == res / "lines.toml"


def test_packaged_defaults_missing_a_key_is_named(tmp_path):
    res = tmp_path / "res"
    shutil.copytree(PACKAGED, res)
    text = (res / "defaults.toml").read_text(encoding="utf-8").replace("block_ms = 20\n", "")
    write(res / "defaults.toml", text)
    with pytest.raises(ConfigError, match=r"defaults\.toml: recorder\.block_ms: missing"):
        load(resources_dir=res)


# ---- layering ------------------------------------------------------------------------------


def test_user_overrides_defaults_and_it_overrides_user(tmp_path):
    system = write(tmp_path / "system.toml",
                   '[recorder]\ncodec = "flac"\nchunk_seconds = 30\n\n[upload]\nmax_attempts_per_pass = 3\n')
    user = write(tmp_path / "user.toml", "[recorder]\nchunk_seconds = 5.5\nblock_ms = 40\n")
    c = load(system=system, user=user)
    assert c.recorder.codec == "flac"  # from IT, untouched by user
    assert c.recorder.chunk_seconds == 30  # IT wins over the user
    assert c.recorder.block_ms == 40  # a key IT does not set: the user's
    assert c.recorder.sample_rate == 16000  # deep merge keeps the defaults' other keys
    assert c.upload == UploadSettings(max_backoff_seconds=60.0, initial_backoff_seconds=0.5, max_attempts_per_pass=3)
    assert c.sources == (PACKAGED / "defaults.toml", user, system)
    assert c.origins["recorder.chunk_seconds"] == system and c.origins["recorder.block_ms"] == user
    assert c.origins["recorder.sample_rate"] == PACKAGED / "defaults.toml"


def test_missing_system_and_user_files_are_fine(tmp_path):
    c = load(system=tmp_path / "nope.toml", user=tmp_path / "nope2.toml")
    assert c.sources == (PACKAGED / "defaults.toml",)
    assert c.recorder.codec == "opus"


def test_env_file_is_read_after_the_users_and_before_its(tmp_path):
    system = write(tmp_path / "system.toml", '[store]\nendpoint_url = "https://s3.council.local"\n')
    user = write(tmp_path / "user.toml", '[store]\nregion = "eu-west-2"\naddressing_style = "path"\n'
                                         'endpoint_url = "http://127.0.0.1:1"\n')
    extra = write(tmp_path / "extra.toml", '[store]\nregion = "us-east-1"\nendpoint_url = "http://127.0.0.1:2"\n')
    c = load(system=system, user=user, extra=extra)
    assert c.store.region == "us-east-1"  # the extra file beats the user's
    assert c.store.addressing_style == "path"
    assert c.store.endpoint_url == "https://s3.council.local"  # IT's beats both
    assert c.sources == (PACKAGED / "defaults.toml", user, extra, system)
    assert c.extra_file == extra and c.it_file == system


def test_env_naming_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=rf"{CONFIG_ENV_VAR}.*no such file"):
        load(extra=tmp_path / "missing.toml")


def test_relative_paths_are_relative_to_their_file(tmp_path):
    write(tmp_path / "conf" / "ca.pem", "-----BEGIN CERTIFICATE-----\n")
    user = write(tmp_path / "conf" / "config.toml",
                 '[store]\nca_bundle = "ca.pem"\nurl = "recordings"\n\n[paths]\nspool_dir = "spool"\nlog_dir = "/var/log/cr"\n')
    c = load(user=user)
    assert c.store.ca_bundle == tmp_path / "conf" / "ca.pem"
    assert c.store_url == str(tmp_path / "conf" / "recordings")
    assert c.paths.spool_dir == tmp_path / "conf" / "spool"
    assert c.paths.log_dir == Path("/var/log/cr")


def test_s3_url_is_kept_as_given(tmp_path):
    user = write(tmp_path / "u.toml", '[store]\nurl = "s3://council-calls/desk"\nendpoint_url = "http://127.0.0.1:8333"\n')
    c = load(user=user)
    assert c.store_url == "s3://council-calls/desk"
    assert c.store.endpoint_url == "http://127.0.0.1:8333"


# ---- errors --------------------------------------------------------------------------------


def test_out_of_range_message_is_exact(tmp_path):
    path, msg = error_from(tmp_path, "[recorder]\nchunk_seconds = 0\n")
    assert msg == f"{path}: recorder.chunk_seconds: must be between 1 and 300, got 0"


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[recorderr]\ncodec = 'opus'\n", "recorderr", "unknown table; expected one of recorder, audio"),
        ("[recorder]\ncodecs = 'opus'\n", "recorder.codecs", "unknown key; expected one of codec, sample_rate"),
        ("recorder = 5\n", "recorder", "expected a table, got integer 5"),
        ("[recorder]\nsample_rate = '16000'\n", "recorder.sample_rate", "expected an integer, got string '16000'"),
        ("[recorder]\nopus_complexity = true\n", "recorder.opus_complexity", "expected an integer, got boolean True"),
        ("[recorder]\nblock_ms = 20.0\n", "recorder.block_ms", "expected an integer, got float 20"),
        ("[recorder]\nchunk_seconds = '10'\n", "recorder.chunk_seconds", "expected a number, got string '10'"),
        ("[recorder]\nchunk_seconds = nan\n", "recorder.chunk_seconds", "expected a finite number, got nan"),
        ("[recorder]\nchunk_seconds = 300.5\n", "recorder.chunk_seconds", "must be between 1 and 300, got 300.5"),
        ("[recorder]\nlookbehind_seconds = -0.5\n", "recorder.lookbehind_seconds", "must be between 0 and 10, got -0.5"),
        ("[recorder]\nopus_bitrate_per_channel = 5999\n", "recorder.opus_bitrate_per_channel",
         "must be between 6000 and 64000, got 5999"),
        ("[recorder]\nopus_complexity = 11\n", "recorder.opus_complexity", "must be between 0 and 10, got 11"),
        ("[recorder]\nblock_ms = 101\n", "recorder.block_ms", "must be between 5 and 100, got 101"),
        ("[recorder]\ncodec = 'mp3'\n", "recorder.codec", "must be one of 'opus', 'flac', got 'mp3'"),
        ("[recorder]\nsample_rate = 44100\n", "recorder.sample_rate",
         "must be one of 8000, 12000, 16000, 24000, 48000, got 44100"),
        ("[audio]\nchannels = 3\n", "audio.channels", "must be one of 1, 2, got 3"),
        ("[audio]\nagent_device = 3\n", "audio.agent_device", 'expected a string, got integer 3 (write "3"'),
        ("[audio]\nagent_device = ''\n", "audio.agent_device", "must not be empty"),
        ("[audio]\noutput_device = ''\n", "audio.output_device", "must not be empty"),
        ("[audio]\noutput_device = 2\n", "audio.output_device", 'expected a string, got integer 2 (write "2"'),
        ("[store]\naddressing_style = 'dns'\n", "store.addressing_style", "must be one of 'auto', 'path', 'virtual'"),
        ("[store]\nurl = 'https://example.org/x'\n", "store.url", "must be empty, a folder path or s3://bucket/prefix"),
        ("[store]\nurl = 's3://'\n", "store.url", "must be s3://bucket/prefix"),
        ("[store]\nendpoint_url = 'minio:9000'\n", "store.endpoint_url", "must be empty or start with http://"),
        ("[upload]\nmax_backoff_seconds = 3601\n", "upload.max_backoff_seconds", "must be between 1 and 3600, got 3601"),
        ("[upload]\ninitial_backoff_seconds = 0.001\n", "upload.initial_backoff_seconds",
         "must be between 0.01 and 60, got 0.001"),
        ("[upload]\nmax_attempts_per_pass = 0\n", "upload.max_attempts_per_pass", "must be between 1 and 100, got 0"),
        ("[identity]\nagent_id = 42\n", "identity.agent_id", "expected a string, got integer 42"),
        ("[paths]\nspool_dir = ['a']\n", "paths.spool_dir", "expected a string, got array"),
        ("[lines]\nfile = 1979-05-27\n", "lines.file", "expected a string, got date 1979-05-27"),
    ],
)
def test_bad_values_name_file_and_key(tmp_path, text, key, problem):
    path, msg = error_from(tmp_path, text)
    assert msg.startswith(f"{path}: {key}: "), msg
    assert problem in msg


def test_toml_syntax_error_names_file_and_line(tmp_path):
    path, msg = error_from(tmp_path, '[recorder]\ncodec = "opus"\nsample_rate 16000\n')
    assert msg.startswith(f"{path}: invalid TOML: ")
    assert "line 3" in msg


def test_non_utf8_file_is_named(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[identity]\nagent_id = "J\xf6rg"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=rf"^{path}: not UTF-8"):
        load(user=path)


def test_missing_ca_bundle_names_file_key_and_path(tmp_path):
    pem = tmp_path / "certs" / "council-ca.pem"
    path, msg = error_from(tmp_path, f'[store]\nca_bundle = "{pem}"\n')
    assert msg == f"{path}: store.ca_bundle: no such file: {pem}"


def test_error_names_the_layer_that_set_the_bad_value(tmp_path):
    system = write(tmp_path / "system.toml", "[upload]\nmax_backoff_seconds = 10\n")
    user = write(tmp_path / "user.toml", "[upload]\ninitial_backoff_seconds = 30\n")
    with pytest.raises(ConfigError) as info:
        load(system=system, user=user)
    msg = str(info.value)
    assert msg.startswith(f"{user}: upload.initial_backoff_seconds: must not exceed upload.max_backoff_seconds")
    assert f"set in {system}" in msg and msg.endswith("got 30")


def test_ca_bundle_cleared_by_a_later_layer_is_not_checked(tmp_path):
    user = write(tmp_path / "user.toml", '[store]\nca_bundle = "/nonexistent/ca.pem"\n')
    extra = write(tmp_path / "extra.toml", '[store]\nca_bundle = ""\n')
    assert load(user=user, extra=extra).store.ca_bundle is None


def test_a_missing_ca_bundle_set_by_it_is_an_error_even_if_the_user_clears_it(tmp_path):
    system = write(tmp_path / "system.toml", '[store]\nca_bundle = "/nonexistent/ca.pem"\n')
    user = write(tmp_path / "user.toml", '[store]\nca_bundle = ""\n')
    with pytest.raises(ConfigError, match=rf"^{system}: store\.ca_bundle: no such file: /nonexistent/ca\.pem$"):
        load(system=system, user=user)


def test_bad_user_file_is_named_not_the_good_system_file(tmp_path):
    system = write(tmp_path / "system.toml", '[recorder]\ncodec = "flac"\n')
    user = write(tmp_path / "user.toml", '[recorder]\ncodec = "wav"\n')
    with pytest.raises(ConfigError, match=rf"^{user}: recorder\.codec: must be one of"):
        load(system=system, user=user)


# ---- lines ---------------------------------------------------------------------------------


@pytest.fixture
def lines() -> Lines:
    return load_lines(PACKAGED / "lines.toml")


def test_the_nine_lines_of_the_notice(lines):
    assert len(lines.lines) == 9
    numbered = {ln.number: ln.department for ln in lines.lines if ln.number}
    assert numbered == NOTICE_LINES
    lifeline = [ln for ln in lines.lines if not ln.number]
    assert [(ln.id, ln.department) for ln in lifeline] == [("lifeline", "Lifeline Emergency Alarm")]
    assert len({ln.id for ln in lines.lines}) == 9


def test_config_carries_the_packaged_lines(lines):
    assert load().lines == lines


def test_transfer_departments(lines):
    deps = lines.transfer_departments
    assert isinstance(deps, tuple)
    for line in lines.lines:
        assert line.department in deps
    for internal in ("Housing", "Social Services", "Revenues"):
        assert internal in deps
    assert len(set(deps)) == len(deps)


@pytest.mark.parametrize(
    "key",
    ["01443 425002", "01443425002", "+441443425002", "+44 1443 425002", "+44 (0)1443 425002", "0044 1443 425002",
     " 01443-425002 ", "(01443) 425002", "council-tax", "COUNCIL-TAX", "Council-Tax"],
)
def test_find_by_any_number_spelling_or_id(lines, key):
    line = lines.find(key)
    assert (line.id, line.number, line.department) == (
        "council-tax", "01443 425002", "Council Tax, Business Rate and Benefits")


def test_find_lifeline_by_id_only(lines):
    assert lines.find("Lifeline").department == "Lifeline Emergency Alarm"
    with pytest.raises(UnknownLineError):
        lines.find("")  # its empty number must not match an empty key


@pytest.mark.parametrize("key", ["01443 425099", "+33 1443 425002", "441443425002x", "tax", "425002"])
def test_unknown_line_lists_the_valid_lines(lines, key):
    with pytest.raises(UnknownLineError) as info:
        lines.find(key)
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert repr(key) in msg
    for number, department in NOTICE_LINES.items():
        assert number in msg and department in msg
    assert "lifeline" in msg and "Lifeline Emergency Alarm" in msg


def test_normalise_number():
    assert normalise_number("+44 1443 425002") == "01443425002"
    assert normalise_number("0044 1443 425002") == "01443425002"
    assert normalise_number("+44 (0)1443 425002") == "01443425002"
    assert normalise_number("+33 1 23") == "+33123"
    assert normalise_number("ext 425002") == ""


LINE_A = '[[line]]\nid = "a"\nnumber = "01443 425001"\ndepartment = "A"\n'
LINE_B = '[[line]]\nid = "b"\nnumber = "01443 425002"\ndepartment = "B"\n'
DEPS = 'transfer_departments = ["A", "Housing"]\n'


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (DEPS + LINE_A + LINE_A.replace("425001", "425009"), "line[1].id", "duplicate of line[0].id 'a'"),
        (DEPS + LINE_A + LINE_B.replace("01443 425002", "01443425001"), "line[1].number",
         "duplicate of line[0].number '01443425001'"),
        (DEPS + LINE_A + LINE_B.replace('department = "B"\n', ""), "line[1].department", "missing"),
        (DEPS + LINE_A + LINE_B.replace('"B"', '"  "'), "line[1].department", "must not be empty"),
        (DEPS + LINE_A + LINE_B.replace("01443 425002", "01443-425002"), "line[1].number",
         "must hold only digits and single spaces (or be empty), got '01443-425002'"),
        (DEPS + LINE_A + LINE_B.replace('"01443 425002"', "1443425002"), "line[1].number", "expected a string"),
        (DEPS + LINE_A + LINE_B.replace('id = "b"', 'id = "Council Tax"'), "line[1].id", "must be a lower-case slug"),
        (DEPS + LINE_A + LINE_B + 'colour = "red"\n', "line[1].colour", "unknown key"),
        (DEPS + "line = []\n", "line", "must list at least one line"),
        (DEPS, "line", "missing"),
        (LINE_A, "transfer_departments", "missing"),
        ('transfer_departments = ["A", "A"]\n' + LINE_A, "transfer_departments[1]", "duplicate 'A'"),
        ('transfer_departments = ["A", ""]\n' + LINE_A, "transfer_departments[1]", "expected a non-empty string"),
        ('owner = "x"\n' + DEPS + LINE_A, "owner", "unknown key"),
    ],
)
def test_invalid_lines_files_name_file_index_and_key(tmp_path, text, key, problem):
    path = write(tmp_path / "lines.toml", text)
    with pytest.raises(ConfigError) as info:
        load_lines(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: {key}: "), msg
    assert problem in msg


def test_lines_file_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path / "lines.toml", DEPS + '[[line]]\nid = "a"\nnumber = 01443 425001\n')
    with pytest.raises(ConfigError, match=rf"^{path}: invalid TOML: .*line 4"):
        load_lines(path)


def test_lines_file_setting_replaces_packaged_lines(tmp_path):
    write(tmp_path / "conf" / "my-lines.toml", DEPS + LINE_A + LINE_B)
    user = write(tmp_path / "conf" / "config.toml", '[lines]\nfile = "my-lines.toml"\n')
    c = load(user=user)
    assert [ln.id for ln in c.lines.lines] == ["a", "b"]
    assert c.lines.source == tmp_path / "conf" / "my-lines.toml"
    assert c.lines.find("+44 1443 425002").department == "B"


def test_lines_file_setting_to_a_missing_file_names_the_setting(tmp_path):
    user = write(tmp_path / "config.toml", '[lines]\nfile = "gone.toml"\n')
    with pytest.raises(ConfigError) as info:
        load(user=user)
    assert str(info.value) == f"{user}: lines.file: no such file: {tmp_path / 'gone.toml'}"


def test_bad_lines_file_from_config_names_the_lines_file(tmp_path):
    bad = write(tmp_path / "lines.toml", DEPS + LINE_A + LINE_A)
    user = write(tmp_path / "config.toml", f'[lines]\nfile = "{bad}"\n')
    with pytest.raises(ConfigError, match=rf"^{bad}: line\[1\]\.id: duplicate"):
        load(user=user)


# ---- control API and automatic triggers -------------------------------------------------------


def test_control_and_trigger_defaults_and_overrides(tmp_path):
    c = load()
    assert c.control.enabled is True and c.control.port == 47800
    assert "card payment" in c.triggers.payment_window_titles and c.triggers.dtmf_enabled
    user = write(tmp_path / "u.toml", '[control]\nport = 50123\n[triggers]\npayment_window_titles = ["^Pay"]\ndtmf_enabled = false\n')
    c = load(user=user)
    assert (c.control.port, c.triggers.payment_window_titles, c.triggers.dtmf_enabled) == (50123, ("^Pay",), False)


@pytest.mark.parametrize(("text", "key", "problem"), [
    ("[control]\nenabled = 'yes'\n", "control.enabled", "expected true or false, got string 'yes'"),
    ("[control]\nport = 80\n", "control.port", "must be between 1024 and 65535, got 80"),
    ("[triggers]\npayment_window_titles = 'pay'\n", "triggers.payment_window_titles", "expected a list of non-empty strings"),
    ("[triggers]\npayment_window_titles = ['(unclosed']\n", "triggers.payment_window_titles", "item 0 is not a valid regular expression"),
])
def test_bad_control_and_trigger_settings_are_named(tmp_path, text, key, problem):
    path, msg = error_from(tmp_path, text)
    assert msg.startswith(f"{path}: {key}: {problem}"), msg


# ---- IT policy: the machine-wide file wins over every other file -------------------------------
# Precedence, lowest first: packaged defaults < the user's file < CALLREC_CONFIG / --config < IT's
# file. Real files in tmp dirs; CALLREC_CONFIG both as the env argument and as the process's own
# environment variable (what --config sets).

IT_TRIGGERS = '[triggers]\ndtmf_enabled = true\npayment_window_titles = ["card payment", "pay360"]\n'
HANDLER_OFF = '[triggers]\ndtmf_enabled = false\npayment_window_titles = ["nothing matches this"]\n'


def ignored_records(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "callrec_desktop.config" and r.levelname == "WARNING"]


@pytest.mark.parametrize("layer", ["user file", "CALLREC_CONFIG argument", "CALLREC_CONFIG variable"])
def test_a_handler_cannot_switch_off_the_payment_triggers_it_set(tmp_path, monkeypatch, caplog, layer):
    system = write(tmp_path / "etc" / "config.toml", IT_TRIGGERS)
    mine = write(tmp_path / "me" / "config.toml", HANDLER_OFF)
    caplog.set_level("WARNING", logger="callrec_desktop.config")
    if layer == "user file":
        c = load(system=system, user=mine)
    elif layer == "CALLREC_CONFIG argument":
        c = load(system=system, extra=mine)
    else:
        monkeypatch.setenv(CONFIG_ENV_VAR, str(mine))
        c = load_config(system_file=system, user_file=None)  # env: the real os.environ
        assert c.extra_file == mine
    assert c.triggers.dtmf_enabled is True
    assert c.triggers.payment_window_titles == ("card payment", "pay360")
    assert c.set_by_it("triggers.dtmf_enabled") and c.set_by_it("triggers.payment_window_titles")
    assert ignored_records(caplog) == [
        f"{mine}: triggers.dtmf_enabled = false is ignored: IT's machine-wide settings file {system} "
        f"sets triggers.dtmf_enabled = true, and IT's settings win",
        f'{mine}: triggers.payment_window_titles = ["nothing matches this"] is ignored: IT\'s machine-wide '
        f'settings file {system} sets triggers.payment_window_titles = ["card payment", "pay360"], '
        f"and IT's settings win",
    ]


def test_a_list_set_by_it_wins_whole_not_item_by_item(tmp_path):
    system = write(tmp_path / "it.toml", '[triggers]\npayment_window_titles = ["card payment"]\n')
    user = write(tmp_path / "user.toml", '[triggers]\npayment_window_titles = ["card payment", "my extra"]\n')
    extra = write(tmp_path / "extra.toml", '[triggers]\npayment_window_titles = ["^$"]\n')
    c = load(system=system, user=user, extra=extra)
    assert c.triggers.payment_window_titles == ("card payment",)
    assert [(i.key, i.file) for i in c.ignored] == [("triggers.payment_window_titles", user),
                                                     ("triggers.payment_window_titles", extra)]


def test_keys_it_does_not_set_still_layer_user_then_extra(tmp_path):
    system = write(tmp_path / "it.toml", "[triggers]\ndtmf_enabled = true\n")
    user = write(tmp_path / "user.toml", '[triggers]\nfocus_poll_ms = 500\n[recorder]\ncodec = "flac"\n')
    extra = write(tmp_path / "extra.toml", "[triggers]\nfocus_poll_ms = 700\n")
    c = load(system=system, user=user, extra=extra)
    assert (c.triggers.focus_poll_ms, c.recorder.codec, c.triggers.dtmf_enabled) == (700, "flac", True)
    assert c.ignored == ()
    assert not c.set_by_it("triggers.focus_poll_ms")


def test_the_same_value_as_its_is_not_an_override_attempt(tmp_path, caplog):
    system = write(tmp_path / "etc" / "it.toml", f'[recorder]\ncodec = "flac"\n[paths]\nspool_dir = "{tmp_path / "spool"}"\n')
    # the same folder spelled relative to the user's file is the same value
    user = write(tmp_path / "me" / "user.toml", '[recorder]\ncodec = "flac"\n[paths]\nspool_dir = "../spool"\n')
    caplog.set_level("WARNING", logger="callrec_desktop.config")
    c = load(system=system, user=user)
    assert c.ignored == () and ignored_records(caplog) == []
    assert c.set_by_it("recorder.codec") and c.set_by_it("paths.spool_dir")


def test_each_override_is_logged_once_and_the_window_can_log_it_later(tmp_path, caplog):
    system = write(tmp_path / "it.toml", "[control]\nport = 47801\n")
    user = write(tmp_path / "user.toml", "[control]\nport = 50000\n")
    caplog.set_level("WARNING", logger="callrec_desktop.config")
    c = load(system=system, user=user, log_ignored=False)
    assert ignored_records(caplog) == []  # the window: not before its log file exists
    c.log_ignored()
    [message] = ignored_records(caplog)
    assert message.startswith(f"{user}: control.port = 50000 is ignored: IT's machine-wide settings file {system}")
    assert c.control.port == 47801
    caplog.clear()
    load(system=system, user=user)
    assert len(ignored_records(caplog)) == 1


def test_a_file_named_twice_is_read_once_in_its_own_place(tmp_path, caplog):
    system = write(tmp_path / "it.toml", "[control]\nport = 47801\n")
    user = write(tmp_path / "user.toml", "[control]\nport = 50000\n")
    caplog.set_level("WARNING", logger="callrec_desktop.config")
    c = load(system=system, user=user, extra=system)  # --config naming IT's own file
    assert c.sources == (PACKAGED / "defaults.toml", user, system) and c.extra_file is None
    assert c.control.port == 47801 and len(ignored_records(caplog)) == 1
    c = load(system=system, user=user, extra=user)  # --config naming the user's own file
    assert c.sources == (PACKAGED / "defaults.toml", user, system) and c.extra_file is None


def test_a_bad_value_in_the_users_file_is_still_refused_where_it_sets_the_key(tmp_path):
    """Strict reading does not depend on precedence: a broken file is named, never half-read."""
    system = write(tmp_path / "it.toml", "[triggers]\ndtmf_enabled = true\n")
    user = write(tmp_path / "user.toml", '[triggers]\ndtmf_enabled = "no"\n')
    with pytest.raises(ConfigError, match=rf"^{user}: triggers\.dtmf_enabled: expected true or false"):
        load(system=system, user=user)


def _two_values(section: str, key: str, tmp_path: Path) -> tuple[str, str]:
    """Two different valid TOML values for any key of the schema: (IT's, the handler's)."""
    spec = cfg._SCHEMA[section][key]
    if spec.kind == "bool":
        return "true", "false"
    if spec.kind in ("int", "number"):  # the packaged default and one just below it (or another choice):
        default = DEFAULTS[section][key]  # both agree with the other keys' defaults (reach-back <= look-behind)
        if spec.choices:
            return str(default), str(next(v for v in spec.choices if v != default))
        other = default - (1 if spec.kind == "int" else 0.25)
        return str(default), str(other if other > spec.lo else default + (1 if spec.kind == "int" else 0.25))
    if spec.kind == "str_list":
        return '["card payment"]', '["mine"]'
    if spec.kind == "store_url":
        return '"s3://it-calls/centre"', '"s3://my-calls"'
    if spec.kind == "http_url":
        return '"https://s3.council.local"', '"http://127.0.0.1:9"'
    if spec.kind == "path":
        if (section, key) == ("lines", "file"):
            it = tmp_path / "it-lines.toml"
            shutil.copy(PACKAGED / "lines.toml", it)
            return f'"{it}"', '""'
        it, mine = tmp_path / f"it-{key}", tmp_path / f"my-{key}"
        for p in (it, mine):
            write(p, "-----BEGIN CERTIFICATE-----\n")  # ca_bundle must exist; folders need not
        return f'"{it}"', f'"{mine}"'
    if spec.choices:
        return f'"{spec.choices[0]}"', f'"{spec.choices[-1]}"'
    return '"it-value"', '"my-value"'


DEFAULTS = tomllib.loads((PACKAGED / "defaults.toml").read_text(encoding="utf-8"))
EVERY_KEY = [(section, key) for section, keys in cfg._SCHEMA.items() for key in keys]


@pytest.mark.parametrize(("section", "key"), EVERY_KEY, ids=[f"{s}.{k}" for s, k in EVERY_KEY])
def test_every_key_it_sets_wins_over_the_user_file_and_callrec_config(tmp_path, caplog, section, key):
    it_text, my_text = _two_values(section, key, tmp_path)
    system = write(tmp_path / "it.toml", f"[{section}]\n{key} = {it_text}\n")
    user = write(tmp_path / "user.toml", f"[{section}]\n{key} = {my_text}\n")
    extra = write(tmp_path / "extra.toml", f"[{section}]\n{key} = {my_text}\n")
    caplog.set_level("WARNING", logger="callrec_desktop.config")
    c = load(system=system, user=user, extra=extra)
    it_only = load(system=system)
    dotted = f"{section}.{key}"
    assert c.set_by_it(dotted) and c.origins[dotted] == system
    assert _settings(c) == _settings(it_only)  # exactly as if the other two files did not exist
    assert [(i.key, i.file, i.it_file) for i in c.ignored] == [(dotted, user, system), (dotted, extra, system)]
    messages = ignored_records(caplog)
    assert len(messages) == 2 and all(dotted in m and str(system) in m for m in messages)
    assert str(user) in messages[0] and str(extra) in messages[1]


def _settings(c) -> tuple:
    """What a Config records about the call and its files, without where each value came from."""
    return (c.recorder, c.audio, c.store, c.upload, c.identity, c.paths, c.control, c.triggers, c.lines.source)


# ---- IT policy and one-off command-line flags (callrec record / demo) -----------------------------


def test_a_flag_that_contradicts_a_key_it_set_is_refused_naming_flag_key_and_file(tmp_path):
    system = write(tmp_path / "it.toml", '[recorder]\ncodec = "flac"\n[store]\nurl = "s3://council-calls/centre"\n')
    c = load(system=system)
    with pytest.raises(ConfigError) as info:
        refuse_flags_against_it(c, [("--codec", "recorder.codec", "opus")])
    assert str(info.value) == (f'--codec opus: refused: recorder.codec is set to "flac" by IT\'s machine-wide '
                               f"settings file {system}, and IT's settings apply to every run; leave out --codec "
                               f"(or ask IT)")
    with pytest.raises(ConfigError, match=r"^--store /tmp/mine: refused: store\.url is set to \"s3://council-calls"):
        refuse_flags_against_it(c, [("--store", "store.url", "/tmp/mine")])


def test_flags_that_agree_with_it_or_name_keys_it_leaves_alone_are_accepted(tmp_path, monkeypatch):
    folder = tmp_path / "calls"
    system = write(tmp_path / "etc" / "it.toml",
                   f'[recorder]\ncodec = "flac"\n[store]\nurl = "s3://council-calls/centre"\n[paths]\nspool_dir = "{folder}"\n')
    c = load(system=system)
    monkeypatch.chdir(tmp_path)
    refuse_flags_against_it(c, [
        ("--codec", "recorder.codec", "flac"),
        ("--store", "store.url", "s3://council-calls/centre/"),  # a trailing slash is the same store
        ("--spool", "paths.spool_dir", Path("calls")),  # relative to the current folder: the same folder
        ("--chunk-seconds", "recorder.chunk_seconds", 3.0),  # IT does not set it
        ("--endpoint-url", "store.endpoint_url", None),  # not given
    ])


def test_a_bad_flag_value_for_a_key_it_set_is_named(tmp_path):
    system = write(tmp_path / "it.toml", "[recorder]\nchunk_seconds = 10\n")
    with pytest.raises(ConfigError, match=r"^--chunk-seconds 0\.5: must be between 1 and 300, got 0\.5$"):
        refuse_flags_against_it(load(system=system), [("--chunk-seconds", "recorder.chunk_seconds", 0.5)])
