"""Card digits never reach a file: leak tests with independent decoders.

Every path that records (``callrec record`` from a file and from the real capture device,
``callrec demo``) runs as a user runs it, a real subprocess, with scripts that never pause
for payment themselves: the pause must come from the automatic DTMF trigger composed from
``[triggers]``. Then every stored chunk in the store, and the call exported with ``callrec
export`` (WAV and Ogg Opus), is decoded by ffmpeg and searched by multimon-ng and spandsp's
``dtmf_rx`` on both channels (``tests/support/dtmf_reference.py``; nothing there is ours).
Each test first shows the same decoders find every digit in the audio that was played, so
a decoder that found nothing because it could not hear would fail the test, not pass it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from callrec_desktop.audio.dtmf import DtmfDetector
from callrec_desktop.audio.sources import AudioBlock
from tests.support.dtmf_reference import dtmf_tone, leaked_digits, leaked_digits_in, multimon_digits, spandsp_digits
from tests.support.cli import callrec_env, run_callrec

RATE = 16000
CARD, CVV = "4929123456781234", "737"
LINE = "01443 425002"


def run(args, env, check_rc=None, timeout=180):
    return run_callrec(args, env, check_rc, timeout=timeout)


@pytest.fixture
def env(tmp_path):
    return callrec_env(tmp_path)


def speech(seconds: float, seed: int) -> np.ndarray:
    from tests.unit.audio.test_dtmf import speech as voices

    return 0.5 * voices(seconds, np.random.default_rng(seed))


def place(channel: np.ndarray, start: float, digits: str, tone: float, gap: float, ramp: float = 0.0,
          level: float = -12.0) -> list[int]:
    """Key ``digits`` into ``channel`` (replacing what is there) from ``start`` seconds; the onsets."""
    onsets = []
    for i, d in enumerate(digits):
        at = round((start + i * (tone + gap)) * RATE)
        x = dtmf_tone(d, RATE, tone, level, ramp_seconds=ramp)
        channel[at : at + len(x)] = x
        onsets.append(at)
    return onsets


def card_call(seconds: float = 14.0, card_at: float = 5.0, cvv_at: float = 10.0, seed: int = 11) -> np.ndarray:
    """Agent speaking on the left all along; on the right the caller speaks, then keys the 16
    card digits and, a little later, the security code (80 ms tones, 80 ms gaps)."""
    audio = np.stack([speech(seconds, seed), speech(seconds, seed + 1)], axis=1)
    place(audio[:, 1], card_at, CARD, 0.08, 0.08)
    place(audio[:, 1], cvv_at, CVV, 0.08, 0.08)
    return audio


def write_wav(path: Path, audio: np.ndarray) -> Path:
    sf.write(path, audio, RATE, subtype="PCM_16")
    return path


def write_script(path: Path, events) -> Path:
    path.write_text(json.dumps(events))
    return path


def manifest(store: Path, call_id: str) -> dict:
    [path] = (store / "manifests").rglob(f"{call_id}.json")
    return json.loads(path.read_text())


def chunks(store: Path, call_id: str) -> list[Path]:
    found = sorted(p for p in (store / "audio").rglob("*") if p.is_file() and p.parent.name == call_id)
    assert found, f"no stored chunks for {call_id} in {store}"
    return found


def assert_nothing_decodes(store: Path, call_id: str, env, tmp_path: Path) -> None:
    """No digit in any stored chunk of the call, nor in its WAV and Ogg Opus exports."""
    assert leaked_digits_in(chunks(store, call_id)) == {}
    for suffix in ("wav", "opus"):
        out = tmp_path / f"export-{call_id}.{suffix}"
        run(["export", call_id, "--store", store, "--out", out, "--purpose", "staff_training"], env, 0)
        found = {k: v for k, v in leaked_digits(out).items() if v}
        assert found == {}, f"digits decoded from the {suffix} export: {found}"


def our_hits(caller: np.ndarray) -> list:
    detector = DtmfDetector(RATE, 0)
    hits = []
    for i in range(0, len(caller), 320):
        hits += detector.feed(AudioBlock(i, np.ascontiguousarray(caller[i : i + 320, None], dtype=np.float32)))
    return hits


# ---- (a) a file source -----------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["opus", "flac"])
def test_record_from_a_file_with_a_script_that_only_starts_and_ends_the_call(tmp_path, env, codec):
    audio = card_call()
    source = write_wav(tmp_path / "call.wav", audio)
    assert multimon_digits(audio[:, 1], RATE) == spandsp_digits(audio[:, 1], RATE) == CARD + CVV  # they are there
    script = write_script(tmp_path / "call.json", [{"at": 0.0, "event": "call_started", "line": LINE},
                                                   {"at": 13.5, "event": "call_ended"}])
    rec = run(["record", "--source", source, "--script", script, "--store", tmp_path / "store", "--codec", codec,
               "--chunk-seconds", "2"], env, 0)
    result = json.loads(rec.stdout)
    assert result["pause_sources"] == ["automatic"] and result["end_reason"] == "hangup"
    m = manifest(tmp_path / "store", result["call_id"])
    [pause] = m["pauses"]
    assert (pause["reason"], pause["source"]) == ("payment", "automatic")
    assert pause["offset_seconds"] <= 5.0 - 1.5  # the reach-back: at least 1.5 s before the first digit
    assert len(m["chunks"]) >= 2  # speech before the payment was kept, in more than one chunk
    assert_nothing_decodes(tmp_path / "store", result["call_id"], env, tmp_path)


# ---- (b) the real capture device -----------------------------------------------------------------


@pytest.mark.device
def test_record_from_the_device_with_a_script_that_only_starts_and_ends_the_call(tmp_path, env, pulse_server):
    """``--source device`` on the virtual audio server: the call is played into the null sink
    while ``callrec record`` captures its monitor through ALSA's pulse plugin and PortAudio. The
    speech before the keys is long enough (5 s) for the command to have started capturing."""
    audio = card_call(seconds=12.0, card_at=5.0, cvv_at=9.0, seed=21)
    assert multimon_digits(audio[:, 1], RATE) == CARD + CVV
    Path(env["CALLREC_CONFIG"]).write_text(Path(env["CALLREC_CONFIG"]).read_text()
                                          + '[audio]\nagent_device = "pulse"\ncaller_device = ""\nchannels = 2\n')
    script = write_script(tmp_path / "call.json", [{"at": 0.0, "event": "call_started", "line": LINE},
                                                   {"at": 14.0, "event": "call_ended"}])
    proc = subprocess.Popen([sys.executable, "-m", "callrec_desktop", "record", "--source", "device", "--script",
                             str(script), "--store", str(tmp_path / "store")],
                            env={**env, **pulse_server.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pulse_server.play(audio, wait=True, timeout=60)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, (out, err)
    result = json.loads(out)
    assert result["pause_sources"] == ["automatic"], (result, err)
    m = manifest(tmp_path / "store", result["call_id"])
    [pause] = m["pauses"]
    assert pause["source"] == "automatic" and pause["offset_seconds"] > 1.0  # speech came first, and was kept
    assert_nothing_decodes(tmp_path / "store", result["call_id"], env, tmp_path)


# ---- (c) digits the detector misses before its first hit -------------------------------------------


def test_digits_our_detector_misses_before_its_first_hit_never_reach_a_file(tmp_path, env):
    """40 ms tones with 1 ms ramps, the first six keyed as 20 ms tones (ITU-T Q.24: a receiver
    must reject those, and ours does; multimon-ng still decodes them). Our detector's first hit
    comes six or more digits in; the pause reaches back over every digit before it."""
    seconds = 12.0
    audio = np.stack([speech(seconds, 31), speech(seconds, 32)], axis=1)
    audio[round(4.5 * RATE) : round(9.0 * RATE), 1] = 0.0  # the caller stops talking to key the number
    onsets = place(audio[:, 1], 5.0, CARD[:6], 0.02, 0.08, ramp=0.001, level=-15.0)
    onsets += place(audio[:, 1], 5.6, CARD[6:], 0.04, 0.06, ramp=0.001, level=-15.0)
    source = write_wav(tmp_path / "call.wav", audio)
    back, _ = sf.read(source, always_2d=True)
    assert multimon_digits(back[:, 1], RATE) == CARD  # the short ones too: a leak would show

    hit = next(h for h in our_hits(back[:, 1]) if h.frame >= onsets[0] - 160)  # among the keyed digits
    first = int(np.argmin([abs(hit.frame - o) for o in onsets]))
    assert first >= 6, f"our detector heard digit {first} first: this test needs it to miss the first six"

    script = write_script(tmp_path / "call.json", [{"at": 0.0, "event": "call_started", "line": LINE},
                                                   {"at": 11.5, "event": "call_ended"}])
    result = json.loads(run(["record", "--source", source, "--script", script, "--store", tmp_path / "store",
                             "--chunk-seconds", "2"], env, 0).stdout)
    [pause] = manifest(tmp_path / "store", result["call_id"])["pauses"]
    assert pause["source"] == "automatic" and pause["offset_frames"] <= onsets[0]
    assert_nothing_decodes(tmp_path / "store", result["call_id"], env, tmp_path)


# ---- (d) callrec demo ------------------------------------------------------------------------------


def test_the_demos_pause_comes_from_the_dtmf_trigger_and_nothing_decodes(tmp_path, env):
    from callrec_desktop.demo import load_demo

    demo = load_demo()
    original, rate = sf.read(demo.audio, always_2d=True)
    assert rate == RATE
    keyed = multimon_digits(original[:, 1], RATE)
    assert len(keyed) == 16 and keyed == spandsp_digits(original[:, 1], RATE)

    proc = run(["demo"], env, 0)
    assert "the DTMF trigger pauses for payment" in proc.stderr
    result = json.loads(proc.stdout.splitlines()[0])
    assert result["pause_sources"] == ["automatic"] and result["end_reason"] == "transferred"
    store = tmp_path / "xdg-data" / "callrec-desktop" / "store"
    [pause] = manifest(store, result["call_id"])["pauses"]
    assert pause["source"] == "automatic" and pause["end_source"] == "script"
    first_tone = our_hits(original[:, 1])[0].frame
    assert pause["offset_frames"] <= first_tone - round(1.5 * RATE) + 320  # the reach-back, before the first tone
    assert_nothing_decodes(store, result["call_id"], env, tmp_path)
