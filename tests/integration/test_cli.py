"""The `callrec` command as users and other tools run it: a real subprocess, real files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tests.support.cli import callrec_env, run_callrec

RATE = 16000


def run(args, env, check_rc=None):
    return run_callrec(args, env, check_rc)


@pytest.fixture
def env(tmp_path):
    return callrec_env(tmp_path)


def tone_file(path: Path, seconds: float, left=440.0, right=1250.0) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    audio = np.stack([0.3 * np.sin(2 * np.pi * left * t), 0.3 * np.sin(2 * np.pi * right * t)], axis=1)
    sf.write(path, audio, RATE, subtype="FLOAT")
    return audio


def write_script(path: Path, events) -> Path:
    path.write_text(json.dumps(events))
    return path


CALL = [
    {"at": 0.0, "event": "call_started", "line": "01443 425002", "caller": "07700900123"},
    {"at": 4.25, "event": "payment_started"},
    {"at": 7.5, "event": "payment_ended"},
    {"at": 11.0, "event": "transferred", "to": "Planning"},
]


@pytest.mark.parametrize("codec", ["opus", "flac"])
def test_record_then_export_has_silence_exactly_over_the_payment_window(tmp_path, env, codec):
    audio = tone_file(tmp_path / "call.wav", 13.0)
    script = write_script(tmp_path / "call.json", CALL)
    rec = run(["record", "--source", tmp_path / "call.wav", "--script", script, "--store", tmp_path / "store",
               "--codec", codec, "--chunk-seconds", "3"], env, 0)
    [line] = rec.stdout.splitlines()
    result = json.loads(line)
    assert result["end_reason"] == "transferred" and result["transferred_to"] == "Planning"
    run(["verify", "--store", tmp_path / "store"], env, 0)
    out = tmp_path / "out.wav"
    run(["export", result["call_id"], "--store", tmp_path / "store", "--out", out, "--purpose", "staff_training"], env, 0)
    back, rate = sf.read(out, dtype="float32", always_2d=True)
    assert rate == RATE and back.shape == (11 * RATE, 2)  # nothing after the transfer
    a, b = round(4.25 * RATE), round(7.5 * RATE)
    assert not back[a:b].any(), "payment window is not digital silence"
    kept = np.concatenate([back[:a], back[b:]])
    assert np.count_nonzero(np.abs(kept).max(axis=1) > 0.01) > 0.95 * len(kept)
    if codec == "flac":  # lossless: the kept audio is the source, sample for sample (16-bit)
        np.testing.assert_allclose(back[:a], audio[:a], atol=2 / 32768)
        np.testing.assert_allclose(back[b:], audio[b : 11 * RATE], atol=2 / 32768)
    # the spool is empty after a finished upload
    assert not list((tmp_path / "spool" / "calls").iterdir())


def test_several_calls_in_one_script_and_ls(tmp_path, env):
    tone_file(tmp_path / "shift.wav", 8.0)
    script = write_script(tmp_path / "shift.json", [
        {"at": 0.0, "event": "call_started", "line": "01443425001"},
        {"at": 3.0, "event": "call_ended"},
        {"at": 4.0, "event": "call_started", "line": "lifeline", "external_id": "cti-42"},
        {"at": 7.0, "event": "call_ended"},
    ])
    rec = run(["record", "--source", tmp_path / "shift.wav", "--script", script, "--store", tmp_path / "store"], env, 0)
    ids = [json.loads(x)["call_id"] for x in rec.stdout.splitlines()]
    assert len(ids) == 2
    ls = run(["ls", "--store", tmp_path / "store", "--json"], env, 0)
    rows = {r["call_id"]: r for r in map(json.loads, ls.stdout.splitlines())}
    assert set(rows) == set(ids)
    assert sorted(r["department"] for r in rows.values()) == ["Environmental Services", "Lifeline Emergency Alarm"]
    assert all(abs(r["duration_seconds"] - 3.0) < 1e-6 and r["end"] == "hangup" for r in rows.values())


@pytest.mark.parametrize("events, expected", [
    ("not json", "not valid JSON"),
    ([{"at": 0, "event": "call_started", "line": "01443 999999"}], "unknown line"),
    ([{"at": 0, "event": "call_started", "line": "01443 425002"}, {"at": 1, "event": "payment_ended"}],
     "event[1] (payment_ended at 1.0 s): payment cannot end: no payment is in progress"),
    ([{"at": 2, "event": "call_started", "line": "01443 425002"}, {"at": 1, "event": "call_ended"}],
     "event[1].at: 1 goes backwards"),
    ([{"at": 0, "event": "call_started", "line": "01443 425002"}, {"at": 1, "event": "call_started", "line": "01443 425004"}],
     "cannot start"),
    ([{"at": 0, "event": "call_started", "line": "01443 425002"}, {"at": 1, "event": "transferred", "to": "Narnia"}],
     "unknown department 'Narnia'"),
    ([{"at": 0, "event": "call_started", "line": "01443 425002", "colour": "red"}], "unknown field(s) colour"),
    ([{"at": -1, "event": "call_started", "line": "01443 425002"}], "event[0].at: must be a non-negative"),
    ([{"at": 0, "event": "hold"}], "event[0].event: 'hold' is not one of"),
])
def test_bad_script_is_a_clear_error_and_nothing_is_written(tmp_path, env, events, expected):
    tone_file(tmp_path / "call.wav", 2.0)
    script = tmp_path / "bad.json"
    script.write_text(events if isinstance(events, str) else json.dumps(events))
    proc = run(["record", "--source", tmp_path / "call.wav", "--script", script, "--store", tmp_path / "store"], env, 2)
    assert str(script) in proc.stderr and expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert list((tmp_path / "store").rglob("*")) == []
    assert not (tmp_path / "spool").exists() or not list((tmp_path / "spool").rglob("*.opus*"))


@pytest.mark.parametrize("make_source, expected", [
    (lambda d: d / "missing.wav", "missing.wav"),
    (lambda d: (d / "junk.wav").write_bytes(b"RIFF0000WAVEjunk") and d / "junk.wav", "junk.wav"),
])
def test_bad_source_is_a_clear_error(tmp_path, env, make_source, expected):
    script = write_script(tmp_path / "call.json", CALL)
    proc = run(["record", "--source", make_source(tmp_path), "--script", script, "--store", tmp_path / "store"], env, 2)
    assert expected in proc.stderr and "Traceback" not in proc.stderr
    assert list((tmp_path / "store").rglob("*")) == []


def test_bad_config_names_file_and_key_before_touching_audio(tmp_path, env):
    Path(env["CALLREC_CONFIG"]).write_text("[recorder]\nchunk_seconds = 0\n")
    proc = run(["record", "--source", tmp_path / "nothing.wav", "--script", tmp_path / "nothing.json",
                "--store", tmp_path / "store"], env, 2)
    assert env["CALLREC_CONFIG"] in proc.stderr and "recorder.chunk_seconds" in proc.stderr
    assert "nothing.wav" not in proc.stderr  # failed before looking at the source


def test_missing_store_folder_is_refused_not_created(tmp_path, env):
    tone_file(tmp_path / "call.wav", 2.0)
    script = write_script(tmp_path / "call.json", CALL[:1])
    proc = run(["record", "--source", tmp_path / "call.wav", "--script", script, "--store", tmp_path / "share" / "calls"], env, 2)
    assert "does not exist" in proc.stderr and not (tmp_path / "share").exists()


def test_verify_finds_corrupt_and_missing_chunks_and_export_refuses_them(tmp_path, env):
    tone_file(tmp_path / "call.wav", 9.0)
    script = write_script(tmp_path / "call.json", CALL[:1] + [{"at": 8.0, "event": "call_ended"}])
    call_id = json.loads(run(["record", "--source", tmp_path / "call.wav", "--script", script, "--store",
                              tmp_path / "store", "--chunk-seconds", "3"], env, 0).stdout)["call_id"]
    chunks = sorted((tmp_path / "store" / "audio").rglob("*.opus"))
    assert len(chunks) == 3
    data = bytearray(chunks[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunks[0].write_bytes(bytes(data))
    chunks[2].unlink()
    proc = run(["verify", "--store", tmp_path / "store"], env, 1)
    assert f"{call_id}: chunk 1 SHA-256" in proc.stdout and f"{call_id}: chunk 3 is missing" in proc.stdout
    assert "2 fault(s)" in proc.stdout
    exp = run(["export", call_id, "--store", tmp_path / "store", "--out", tmp_path / "x.wav", "--purpose", "complaint"], env, 1)
    assert "chunk 1" in exp.stderr and not (tmp_path / "x.wav").exists()


def test_export_of_an_unknown_or_malformed_call_id(tmp_path, env):
    proc = run(["export", "20261129T092233Z-3f9a1c0b7d2e", "--store", tmp_path / "store", "--out", tmp_path / "x.wav", "--purpose", "complaint"], env, 1)
    assert "no recording 20261129T092233Z-3f9a1c0b7d2e" in proc.stderr
    proc = run(["export", "../../etc/passwd", "--store", tmp_path / "store", "--out", tmp_path / "x.wav", "--purpose", "complaint"], env, 2)
    assert "not a call id" in proc.stderr


def test_demo_records_into_the_embedded_default_store(tmp_path, env):
    proc = run(["demo"], env, 0)
    result = json.loads(proc.stdout.splitlines()[0])
    assert result["end_reason"] == "transferred" and result["pauses"] == 1
    store = tmp_path / "xdg-data" / "callrec-desktop" / "store"
    assert result["store"] == f"folder {store}"
    run(["verify", "--store", store], env, 0)


# ---- export purpose and the access log ------------------------------------------------------


def _access_events(store: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((store / "access").rglob("*.json"))] if (store / "access").exists() else []


def test_export_needs_a_purpose_and_is_logged_with_it(tmp_path, env):
    tone_file(tmp_path / "call.wav", 3.0)
    script = write_script(tmp_path / "call.json", CALL[:1] + [{"at": 2.0, "event": "call_ended"}])
    call_id = json.loads(run(["record", "--source", tmp_path / "call.wav", "--script", script, "--store",
                              tmp_path / "store"], env, 0).stdout)["call_id"]
    store, out = tmp_path / "store", tmp_path / "out.wav"
    proc = run(["export", call_id, "--store", store, "--out", out], env, 2)
    assert "--purpose" in proc.stderr and not out.exists()
    proc = run(["export", call_id, "--store", store, "--out", out, "--purpose", "curiosity"], env, 2)
    assert "privacy notice" in proc.stderr and not out.exists()
    proc = run(["export", call_id, "--store", store, "--out", out, "--purpose", "other"], env, 2)
    assert "needs a reason" in proc.stderr and not out.exists()
    assert _access_events(store) == []
    run(["export", call_id, "--store", store, "--out", out, "--purpose", "other", "--reason", "SAR-114"], env, 0)
    [event] = _access_events(store)
    assert (event["call_id"], event["action"], event["purpose"], event["reason"]) == (call_id, "export", "other", "SAR-114")
    assert event["user"] and event["workstation"] and event["detail"] == {"out_format": "wav"}
    log = run(["access-log", call_id, "--store", store], env, 0)
    assert "export" in log.stdout and "SAR-114" in log.stdout
    # a failed export logs nothing
    run(["export", "20261129T092233Z-3f9a1c0b7d2e", "--store", store, "--out", out, "--purpose", "complaint"], env, 1)
    assert len(_access_events(store)) == 1


# ---- range export ------------------------------------------------------------------------------------


def _record_flac_call(tmp_path, env) -> str:
    tone_file(tmp_path / "call.wav", 13.0)
    script = write_script(tmp_path / "call.json", CALL)
    rec = run(["record", "--source", tmp_path / "call.wav", "--script", script, "--store", tmp_path / "store",
               "--codec", "flac", "--chunk-seconds", "3"], env, 0)
    return json.loads(rec.stdout)["call_id"]


def test_export_from_to_writes_the_range_and_logs_it(tmp_path, env):
    call_id = _record_flac_call(tmp_path, env)  # 11 s (transferred), payment pause 4.25..7.5 s
    store, out = tmp_path / "store", tmp_path / "range.flac"
    whole = tmp_path / "whole.wav"
    run(["export", call_id, "--store", store, "--out", whole, "--purpose", "complaint"], env, 0)
    proc = run(["export", call_id, "--store", store, "--out", out, "--purpose", "complaint",
                "--from", "2.5", "--to", "8"], env, 0)
    result = json.loads(proc.stdout)
    assert (result["frames"], result["from_seconds"], result["to_seconds"]) == (round(5.5 * RATE), 2.5, 8.0)
    back, rate = sf.read(out, dtype="float32", always_2d=True)
    ref = sf.read(whole, dtype="float32", always_2d=True)[0]
    assert rate == RATE and back.shape == (round(5.5 * RATE), 2)
    np.testing.assert_array_equal(back, ref[round(2.5 * RATE) : 8 * RATE])
    assert not back[round(1.75 * RATE) : 5 * RATE].any()  # the payment pause, 4.25..7.5 s of the call
    events = [e for e in _access_events(store) if e["detail"].get("out_format") == "flac"]
    assert [e["detail"] for e in events] == [{"out_format": "flac", "from_seconds": 2.5, "to_seconds": 8.0}]
    # --to past the end is clamped to the call's end; an Ogg Opus export
    opus = tmp_path / "tail.opus"
    proc = run(["export", call_id, "--store", store, "--out", opus, "--purpose", "complaint", "--from", "9",
                "--to", "600"], env, 0)
    assert json.loads(proc.stdout)["to_seconds"] == 11.0
    assert abs(sf.info(opus).frames - 2 * RATE) <= RATE // 50
    assert {"out_format": "opus", "from_seconds": 9.0, "to_seconds": 11.0} in [e["detail"] for e in _access_events(store)]


@pytest.mark.parametrize("bounds", [["--from", "8", "--to", "3"], ["--from", "20"], ["--from", "5", "--to", "5"]])
def test_export_of_a_bad_range_is_exit_2_writes_nothing_and_logs_nothing(tmp_path, env, bounds):
    call_id = _record_flac_call(tmp_path, env)
    store, out = tmp_path / "store", tmp_path / "bad.wav"
    proc = run(["export", call_id, "--store", store, "--out", out, "--purpose", "complaint", *bounds], env, 2)
    assert "the call is 11 s long" in proc.stderr and f"{float(bounds[1]):g} s" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() and not (tmp_path / "bad.wav.part").exists()
    assert _access_events(store) == []


@pytest.mark.parametrize("command", [["ls"], ["verify"], ["catalog", "sync"], ["notes", "list", "20261129T092233Z-3f9a1c0b7d2e"],
                                     ["access-log", "20261129T092233Z-3f9a1c0b7d2e"]])
def test_an_unreachable_store_is_one_clear_error_for_every_reading_command(tmp_path, env, command):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = run([*command, "--store", "s3://calls/site1", "--endpoint-url", f"http://127.0.0.1:{port}"],
               dict(env, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y"), 1)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("callrec: error: ")]
    assert len(errors) == 1 and "s3://calls/site1" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and "INFO" not in proc.stderr


# ---- the automatic payment triggers and the script on one timeline ---------------------------


def keyed_call(path: Path, seconds: float, keys: list[tuple[float, str]], seed: int = 3) -> np.ndarray:
    """A stereo WAV: speech-like sound on both sides, the caller's side replaced by key tones
    (80 ms tones, 80 ms gaps, -12 dBFS per tone) where ``keys`` [(start seconds, digits)] say."""
    from tests.support.dtmf_reference import dtmf_sequence
    from tests.unit.audio.test_dtmf import speech

    rng = np.random.default_rng(seed)
    audio = np.stack([0.5 * speech(seconds, rng), 0.5 * speech(seconds, rng)], axis=1)
    for start, digits in keys:
        tones = dtmf_sequence(digits, RATE, 0.08, 0.08, level_dbfs=-12.0)
        at = round(start * RATE)
        audio[at : at + len(tones), 1] = tones
    sf.write(path, audio, RATE, subtype="PCM_16")
    return audio


def test_record_attaches_the_dtmf_trigger_and_interleaves_its_pauses_with_the_script(tmp_path, env):
    """The card number is keyed from 3 s. The trigger pauses at least 1.5 s before the first
    digit; the script's payment_started at 4 s is merged into that pause (no error; it keeps
    its earlier start and its source), the script's payment_ended at 7 s ends it; the security
    code keyed at 9 s pauses again (never before 7 s), until the transfer at 11 s."""
    from tests.support.dtmf_reference import leaked_digits

    keyed_call(tmp_path / "call.wav", 12.0, [(3.0, "4929123456781234"), (9.0, "737")])
    script = write_script(tmp_path / "call.json", [
        {"at": 0.0, "event": "call_started", "line": "01443 425002"},
        {"at": 4.0, "event": "payment_started"},
        {"at": 7.0, "event": "payment_ended"},
        {"at": 11.0, "event": "transferred", "to": "Planning"},
    ])
    rec = run(["record", "--source", tmp_path / "call.wav", "--script", script, "--store", tmp_path / "store",
               "--codec", "flac"], env, 0)
    [line] = rec.stdout.splitlines()
    result = json.loads(line)
    assert result["pauses"] == 2 and result["pause_sources"] == ["automatic", "automatic"]
    assert result["end_reason"] == "transferred" and result["duration_seconds"] == 11.0
    assert rec.stderr.count("card key tones heard, paused for payment") == 2, rec.stderr
    assert "error" not in rec.stderr

    [manifest] = [json.loads(p.read_text()) for p in (tmp_path / "store" / "manifests").rglob("*.json")]
    first, second = manifest["pauses"]
    assert 1.0 <= first["offset_seconds"] <= 1.5  # 1.5 s (up to 2 s) before the first digit at 3 s
    assert first["offset_frames"] + first["duration_frames"] == 7 * RATE and first["end_source"] == "script"
    assert 7.0 <= second["offset_seconds"] <= 7.5  # never before the payment_ended it follows
    assert second["offset_frames"] + second["duration_frames"] == 11 * RATE and second["end_source"] == "script"

    out = tmp_path / "out.wav"
    run(["export", result["call_id"], "--store", tmp_path / "store", "--out", out, "--purpose", "staff_training"],
        env, 0)
    back, _ = sf.read(out, dtype="float32", always_2d=True)
    assert back.shape == (11 * RATE, 2)
    a, b, c = first["offset_frames"], 7 * RATE, second["offset_frames"]
    assert not back[a:b].any() and not back[c:].any()
    assert np.abs(back[: a - 160]).max() > 0.1 and np.abs(back[b:c]).max() > 0.1  # the talk around it is kept
    assert not any(leaked_digits(out).values()), leaked_digits(out)
    assert leaked_digits(tmp_path / "call.wav")["multimon-ng/caller"] == "4929123456781234737"  # they were there


def test_a_scripted_pause_already_on_is_left_alone_by_the_trigger(tmp_path, env):
    keyed_call(tmp_path / "call.wav", 6.0, [(2.0, "1234")])
    script = write_script(tmp_path / "call.json", [
        {"at": 0.0, "event": "call_started", "line": "01443 425002"},
        {"at": 1.0, "event": "payment_started"},
        {"at": 3.5, "event": "payment_ended"},
        {"at": 5.0, "event": "call_ended"},
    ])
    result = json.loads(run(["record", "--source", tmp_path / "call.wav", "--script", script, "--store",
                             tmp_path / "store"], env, 0).stdout)
    assert result["pause_sources"] == ["script"]


def test_a_mono_source_says_the_dtmf_trigger_is_off(tmp_path, env):
    t = np.arange(3 * RATE) / RATE
    sf.write(tmp_path / "mono.wav", 0.3 * np.sin(2 * np.pi * 440 * t), RATE, subtype="FLOAT")
    script = write_script(tmp_path / "call.json", CALL[:1] + [{"at": 2.0, "event": "call_ended"}])
    proc = run(["record", "--source", tmp_path / "mono.wav", "--script", script, "--store", tmp_path / "store"],
               env, 0)
    assert "DTMF payment trigger off: mono recording has no caller channel" in proc.stderr
    assert json.loads(proc.stdout)["pauses"] == 0


def test_events_past_the_end_of_the_file_still_happen_at_their_own_time(tmp_path, env):
    """A script may run past its source: the transfer at 11 s of a 9 s file still ends the call
    as transferred, at 11 s (the frames after the audio are not there to keep)."""
    tone_file(tmp_path / "call.wav", 9.0)
    script = write_script(tmp_path / "call.json", CALL)
    result = json.loads(run(["record", "--source", tmp_path / "call.wav", "--script", script, "--store",
                             tmp_path / "store"], env, 0).stdout)
    assert result["end_reason"] == "transferred" and result["transferred_to"] == "Planning"
    assert result["pause_sources"] == ["script"] and result["duration_seconds"] == 11.0
