"""IT's machine-wide settings hold for `callrec` runs and the window: a handler's `--config`
file cannot switch off the payment triggers IT set (the attempt is logged once), and a one-off
`callrec` flag that contradicts a key IT set is refused.

IT's file is found where the platform puts it (``XDG_CONFIG_DIRS`` on Linux, set per test to a
tmp folder); the handler's file is named by the real `--config` flag. In-process tests parse
the real command line and load the Config the command would record with; the subprocess tests
run `callrec` as a user would, one of them on card key tones, with the independent reference
decoders (multimon-ng, spandsp dtmf_rx) on every stored chunk.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from callrec_desktop import cli

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="XDG_CONFIG_DIRS steers platformdirs on Linux only")

RATE = 16000
IT_FILE = ('[triggers]\ndtmf_enabled = true\npayment_window_titles = ["card payment", "pay360"]\n'
           '[recorder]\ncodec = "flac"\n')
CALL = [{"at": 0.0, "event": "call_started", "line": "01443 425002"}, {"at": 2.0, "event": "call_ended"}]


@pytest.fixture
def files(tmp_path, monkeypatch):
    """IT's file in the platform's machine-wide place, the handler's own file switching the
    key-tone trigger off, a 2.5 s stereo file and a script that only starts and ends a call."""
    it = tmp_path / "etc" / "callrec-desktop" / "config.toml"
    it.parent.mkdir(parents=True)
    it.write_text(IT_FILE, encoding="utf-8")
    user = tmp_path / "user.toml"
    user.write_text(f'[triggers]\ndtmf_enabled = false\n[paths]\nspool_dir = "{tmp_path / "spool"}"\n'
                    f'log_dir = "{tmp_path / "log"}"\n', encoding="utf-8")
    t = np.arange(round(2.5 * RATE)) / RATE
    sf.write(tmp_path / "call.wav", np.stack([0.3 * np.sin(2 * np.pi * 440 * t),
                                              0.3 * np.sin(2 * np.pi * 1250 * t)], axis=1), RATE, subtype="FLOAT")
    (tmp_path / "call.json").write_text(json.dumps(CALL))
    (tmp_path / "store").mkdir()
    for name, value in (("XDG_CONFIG_DIRS", tmp_path / "etc"), ("XDG_CONFIG_HOME", tmp_path / "home"),
                        ("XDG_DATA_HOME", tmp_path / "data")):
        monkeypatch.setenv(name, str(value))
    monkeypatch.delenv("CALLREC_CONFIG", raising=False)
    return tmp_path, it, user


def run(args, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))  # XDG_* from the fixture
    return subprocess.run([sys.executable, "-m", "callrec_desktop", *map(str, args)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_record_with_a_config_file_switching_the_key_tone_trigger_off_keeps_it_on(files, caplog):
    """The Config `callrec --config user.toml record ...` records with: IT's triggers, and the
    override attempt logged once as a warning naming the file, the key and IT's file."""
    tmp_path, it, user = files
    args = cli._parser().parse_args(["--config", str(user), "record", "--source", str(tmp_path / "call.wav"),
                                     "--script", str(tmp_path / "call.json")])
    caplog.set_level(logging.WARNING, logger="callrec_desktop.config")
    config = cli._config(args)
    assert config.triggers.dtmf_enabled is True
    assert config.triggers.payment_window_titles == ("card payment", "pay360")
    assert config.it_file == it and config.extra_file == user
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"{user}: triggers.dtmf_enabled = false is ignored: IT's machine-wide settings file {it} "
                        f"sets triggers.dtmf_enabled = true, and IT's settings win"]


def test_record_as_a_user_runs_it_warns_once_and_records_with_its_settings(files):
    tmp_path, it, user = files
    proc = run(["--config", user, "record", "--source", "call.wav", "--script", "call.json", "--store", "store"],
               tmp_path)
    assert proc.returncode == 0, proc.stderr
    warning = (f"callrec: WARNING: {user}: triggers.dtmf_enabled = false is ignored: IT's machine-wide settings "
               f"file {it} sets triggers.dtmf_enabled = true, and IT's settings win")
    assert proc.stderr.count(warning) == 1, proc.stderr
    [result] = [json.loads(line) for line in proc.stdout.splitlines()]
    [stored] = (tmp_path / "store" / "manifests").rglob(f"{result['call_id']}.json")
    manifest = json.loads(stored.read_text())
    assert manifest["audio"]["codec"] == "flac"  # IT's codec, though the defaults say opus


@pytest.mark.parametrize(("flags", "refused"), [
    (["--codec", "opus"], '--codec opus: refused: recorder.codec is set to "flac" by IT\'s machine-wide settings file'),
])
def test_a_flag_that_contradicts_it_is_refused_before_anything_is_recorded(files, flags, refused):
    tmp_path, it, user = files
    proc = run(["--config", user, "record", "--source", "call.wav", "--script", "call.json", "--store", "store",
                *flags], tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert f"callrec: error: {refused} {it}" in proc.stderr
    assert proc.stdout == "" and not any((tmp_path / "store").iterdir())


def test_a_flag_that_agrees_with_it_is_accepted(files):
    tmp_path, it, user = files
    proc = run(["--config", user, "record", "--source", "call.wav", "--script", "call.json", "--store", "store",
                "--codec", "flac"], tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_demo_into_another_store_than_its_is_refused(files):
    tmp_path, it, user = files
    it.write_text(IT_FILE + f'[store]\nurl = "{tmp_path / "it-store"}"\n', encoding="utf-8")
    proc = run(["--config", user, "demo", "--store", "store"], tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert f"callrec: error: --store store: refused: store.url is set to \"{tmp_path / 'it-store'}\"" in proc.stderr
    assert not any((tmp_path / "store").iterdir())


def test_the_window_logs_the_override_attempt_once_into_its_log_file(files):
    """callrec-desktop --config user.toml: the warning is written after the log file is set up,
    so it reaches the log IT reads, once (and stderr once)."""
    tmp_path, it, user = files
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"), PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run([sys.executable, "-m", "callrec_desktop.app", "--self-test", "--config", str(user)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    message = (f"{user}: triggers.dtmf_enabled = false is ignored: IT's machine-wide settings file {it} "
               f"sets triggers.dtmf_enabled = true, and IT's settings win")
    log_text = (tmp_path / "log" / "callrec-desktop.log").read_text()
    assert log_text.count(message) == 1 and f"WARNING MainThread callrec_desktop.config: {message}" in log_text
    assert proc.stderr.count(message) == 1


def test_record_with_the_key_tone_trigger_off_in_the_config_file_still_pauses_when_it_enabled_it(files):
    """The recording itself: card key tones on the caller's side, a script that only starts and
    ends the call, the handler's --config file switching the trigger off. With IT's file the
    call pauses on its own and no reference decoder finds a digit in any stored chunk; without
    IT's file (the control) the same run stores the digits, so the handler's file was in force."""
    from tests.support.dtmf_reference import dtmf_sequence, leaked_digits_in

    tmp_path, it, user = files
    card = "4929123456781234"
    caller = np.concatenate([np.zeros(RATE), dtmf_sequence(card, RATE, 0.1, 0.1), np.zeros(RATE)])
    t = np.arange(len(caller)) / RATE
    sf.write(tmp_path / "card.wav", np.stack([0.05 * np.sin(2 * np.pi * 440 * t), caller], axis=1), RATE,
             subtype="FLOAT")
    seconds = len(caller) / RATE
    (tmp_path / "card.json").write_text(json.dumps([
        {"at": 0.0, "event": "call_started", "line": "01443 425002"},
        {"at": round(seconds - 0.25, 2), "event": "call_ended"}]))

    def record(store: str) -> tuple[dict, dict]:
        (tmp_path / store).mkdir()
        proc = run(["--config", user, "record", "--source", "card.wav", "--script", "card.json", "--store", store],
                   tmp_path)
        assert proc.returncode == 0, proc.stderr
        [result] = [json.loads(line) for line in proc.stdout.splitlines()]
        [stored] = (tmp_path / store / "manifests").rglob(f"{result['call_id']}.json")
        chunks = sorted(f for f in (tmp_path / store / "audio").rglob("*") if f.is_file())  # FLAC, or Opus without IT
        return json.loads(stored.read_text()), leaked_digits_in(chunks)

    manifest, leaked = record("with-it")
    assert [p["reason"] for p in manifest["pauses"]] == ["payment"]
    assert manifest["pauses"][0]["source"] != "script"  # the trigger paused it, not the script
    assert leaked == {}, leaked

    it.unlink()  # the control: only the handler's file, which switches the trigger off
    manifest, leaked = record("without-it")
    assert manifest["pauses"] == []
    assert any(card[:6] in digits for digits in leaked.values()), leaked
