"""`callrec verify` and `callrec export` on a call stored in an older format (Ogg Opus channel
mapping family 255, tests/data/family255), run as users run them: a real subprocess."""

from __future__ import annotations

import json

import pytest
import soundfile as sf

from tests.integration.test_cli import env, run  # noqa: F401  (env is a fixture)
from tests.support import players
from tests.support.old_recordings import FAMILY255_CALL_ID, FAMILY255_PAUSE, FAMILY255_SECONDS, family255_store
from tests.support.recording import RATE, band_db


def test_verify_and_export_a_family_255_call(tmp_path, env):  # noqa: F811
    family255_store(tmp_path / "old")
    store = tmp_path / "old" / "store"
    proc = run(["verify", "--store", store], env, 0)
    assert "1 recording(s), 3 chunk(s) checked" in proc.stdout and proc.stdout.rstrip().endswith("no faults"), proc.stdout
    wav = tmp_path / "old.wav"
    run(["export", FAMILY255_CALL_ID, "--store", store, "--out", wav, "--purpose", "complaint"], env, 0)
    back, rate = sf.read(wav, dtype="float32", always_2d=True)
    assert rate == RATE and back.shape == (round(FAMILY255_SECONDS * RATE), 2)
    a, b = (round(t * RATE) for t in FAMILY255_PAUSE)
    assert not back[a:b].any()
    assert band_db(back[RATE // 4 : RATE, 0], 440) - band_db(back[RATE // 4 : RATE, 0], 1250) > 20
    assert band_db(back[RATE // 4 : RATE, 1], 1250) - band_db(back[RATE // 4 : RATE, 1], 440) > 20
    opus = tmp_path / "old.opus"
    proc = run(["export", FAMILY255_CALL_ID, "--store", store, "--out", opus, "--purpose", "complaint"], env, 0)
    assert json.loads(proc.stdout)["call_id"] == FAMILY255_CALL_ID
    if not players.have("opusdec"):
        pytest.skip("opusdec not installed (scripts/setup.sh installs it)")
    decoded = players.decode("opusdec", opus, RATE, tmp=tmp_path)  # the stored chunks it refuses
    assert decoded.shape == back.shape
    x = decoded[RATE // 4 : RATE]  # lossy twice over: compare tones, not samples
    assert band_db(x[:, 0], 440) - band_db(x[:, 0], 1250) > 20 and band_db(x[:, 1], 1250) - band_db(x[:, 1], 440) > 20
    assert abs(band_db(x[:, 0], 440) - band_db(back[RATE // 4 : RATE, 0], 440)) < 3
