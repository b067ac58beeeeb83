"""``cli._record`` in process: how a script is applied as capture reaches it, around the
automatic triggers (the rules in the README, "The callrec command"), with the real recorder,
spool, uploader and folder store over in-memory audio. The subprocess tests of the same
rules with key tones are in tests/integration/test_cli.py and test_payment_leaks.py."""

from __future__ import annotations

import itertools
import json

import numpy as np

from callrec_desktop import cli
from callrec_desktop.audio.sources import SyntheticSource
from callrec_desktop.compose import recording_settings
from callrec_desktop.config import load_config
from callrec_desktop.core.script import ScriptEvent
from callrec_desktop.storage.folder import FolderStore
from callrec_desktop.triggers.dtmf_trigger import DtmfPaymentTrigger

RATE = 16000
LINE = "01443 425002"


def _setup(tmp_path):
    config = load_config(system_file=None, user_file=None, env={})
    (tmp_path / "store").mkdir()
    return config, recording_settings(config, "flac", None, 2), FolderStore(tmp_path / "store")


def _lines(capsys) -> tuple[list[dict], str]:
    out = capsys.readouterr()
    return [json.loads(x) for x in out.out.splitlines()], out.err


def test_a_payment_ended_with_no_pause_on_is_skipped_with_a_note(tmp_path, capsys):
    """Only possible in a script whose payment_started is left to the trigger (callrec demo's)
    when the trigger did not pause: nothing to end, said on stderr, not an error."""
    config, settings, store = _setup(tmp_path)
    source = SyntheticSource(np.zeros((3 * RATE, 2), np.float32), sample_rate=RATE, block_frames=RATE // 2)
    events = [ScriptEvent(0, 0.0, "call_started", line=LINE), ScriptEvent(1, 1.0, "payment_ended"),
              ScriptEvent(2, 2.0, "call_ended")]
    rc = cli._record(config, source, events, settings, store, tmp_path / "spool", 30,
                     stop_after_last_event=False, where="demo-call.json")
    [result], err = _lines(capsys)
    assert rc == 0 and result["pauses"] == 0 and result["duration_seconds"] == 2.0
    assert ("callrec: demo-call.json: event[1] (payment_ended at 1.0 s): no payment pause was on "
            "(the DTMF trigger did not pause): nothing to end") in err
    assert "error" not in err


def test_events_are_applied_as_capture_reaches_them_before_the_trigger_sees_the_block(tmp_path, capsys,
                                                                                        monkeypatch):
    """Each event is applied when the block holding its frame is read, before any block
    observer (the DTMF trigger) sees that block: what the trigger sees is the state the script
    leaves at the block's end."""
    seen: list[tuple[int, int, str]] = []  # (block start, block end, state the trigger saw)
    original = DtmfPaymentTrigger.__call__

    def spy(self, block):  # noqa: ANN001, ANN202
        seen.append((block.start_frame, block.start_frame + len(block.data), self._target.status().state.value))
        return original(self, block)

    monkeypatch.setattr(DtmfPaymentTrigger, "__call__", spy)
    config, settings, store = _setup(tmp_path)
    source = SyntheticSource(np.zeros((4 * RATE, 2), np.float32), sample_rate=RATE, block_frames=RATE // 2)
    events = [ScriptEvent(0, 0.25, "call_started", line=LINE), ScriptEvent(1, 1.5, "payment_started"),
              ScriptEvent(2, 2.75, "payment_ended"), ScriptEvent(3, 3.5, "call_ended")]
    assert cli._record(config, source, events, settings, store, tmp_path / "spool", 30,
                       stop_after_last_event=False) == 0
    [result], _ = _lines(capsys)
    assert result["pause_sources"] == ["script"] and result["duration_seconds"] == 3.25
    state_at_end = {end: state for _, end, state in seen}
    assert state_at_end[RATE // 2] == "recording"  # call_started at 0.25 s applied in the first block
    assert state_at_end[2 * RATE] == "paused"  # payment_started at 1.5 s: in the block ending at 2 s
    assert state_at_end[3 * RATE] == "recording"  # payment_ended at 2.75 s
    assert state_at_end[4 * RATE] == "ended"  # call_ended at 3.5 s


def test_with_stop_after_last_event_capture_ends_soon_after_the_script(tmp_path, capsys):
    """``--source device``: an endless source; capture ends once every event is applied and a
    quarter of the look-behind more has been read."""
    config, settings, store = _setup(tmp_path)
    block = np.zeros((RATE // 10, 2), np.float32)
    source = SyntheticSource(itertools.repeat(block), sample_rate=RATE)
    events = [ScriptEvent(0, 0.0, "call_started", line=LINE), ScriptEvent(1, 2.0, "transferred", to="Planning")]
    assert cli._record(config, source, events, settings, store, tmp_path / "spool", 30,
                       stop_after_last_event=True) == 0
    [result], _ = _lines(capsys)
    assert result["end_reason"] == "transferred" and result["duration_seconds"] == 2.0
    stop_at = 2 * RATE + settings.lookbehind_frames // 4
    assert stop_at <= source.frames_captured <= stop_at + RATE // 10
