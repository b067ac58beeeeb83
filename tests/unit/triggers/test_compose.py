"""One composition of the automatic payment triggers (``triggers.compose``), from ``[triggers]``
settings read by the real ``load_config``, for the window, ``callrec record`` and the demos;
and ``[triggers] dtmf_reach_back_seconds``' limits."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from callrec_desktop.config import ConfigError, load_config
from callrec_desktop.core.timeline import CallState, EventSource
from callrec_desktop.triggers.compose import AutomaticTriggers, RecorderTarget, automatic_triggers
from callrec_desktop.triggers.dtmf_trigger import DtmfPaymentTrigger
from callrec_desktop.triggers.focus import FocusPaymentTrigger
from tests.support.recording import RATE, pipeline, settings


def config_with(tmp_path: Path, text: str = ""):
    """The packaged defaults plus ``text`` as the only other settings file."""
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(system_file=None, user_file=path, env={})


class Target:
    """A PaymentTarget that records what it is asked."""

    def __init__(self) -> None:
        self.asked: list[dict] = []

    def status(self):  # noqa: ANN201
        from callrec_desktop.status import DeskStatus

        return DeskStatus(state=CallState.RECORDING)

    def take_payment(self, **kw) -> None:  # noqa: ANN003
        self.asked.append(kw)


def test_stereo_headless_gets_the_dtmf_trigger_only_with_the_settings_reach_back(tmp_path):
    config = config_with(tmp_path, "[recorder]\nlookbehind_seconds = 2.5\n[triggers]\ndtmf_reach_back_seconds = 2.0\n")
    target = Target()
    t = automatic_triggers(config, target, channels=2)
    assert isinstance(t.dtmf, DtmfPaymentTrigger) and t.focus is None
    assert t.block_observers == [t.dtmf]
    assert (t.dtmf.detector.channel, t.dtmf.sample_rate) == (1, config.recorder.sample_rate)
    assert t.dtmf.lookbehind_frames == round(2.5 * config.recorder.sample_rate)
    assert t.dtmf.reach_back_frames == round(2.0 * config.recorder.sample_rate)
    assert t.off == {"focus": "headless: no desktop focus to watch"}
    t.start()  # nothing to start headless; must not fail
    t.stop()


def test_the_packaged_defaults_enable_dtmf_with_a_1_5_s_reach_back(tmp_path):
    config = config_with(tmp_path)
    assert config.triggers.dtmf_enabled and config.triggers.dtmf_reach_back_seconds == 1.5
    t = automatic_triggers(config, Target(), channels=2)
    assert t.dtmf is not None and t.dtmf.reach_back_frames == round(1.5 * config.recorder.sample_rate)


def test_mono_has_no_caller_channel_so_the_dtmf_trigger_is_off_with_a_warning(tmp_path, caplog):
    config = config_with(tmp_path)
    with caplog.at_level(logging.WARNING, logger="callrec_desktop.triggers.compose"):
        t = automatic_triggers(config, Target(), channels=1)
    assert t.dtmf is None and t.block_observers == []
    assert t.off["dtmf"] == "mono recording has no caller channel"
    assert any("mono recording has no caller channel" in r.getMessage() for r in caplog.records)


def test_dtmf_disabled_in_the_settings(tmp_path):
    t = automatic_triggers(config_with(tmp_path, "[triggers]\ndtmf_enabled = false\n"), Target(), channels=2)
    assert t.dtmf is None and t.off["dtmf"] == "[triggers] dtmf_enabled is false"


def test_no_look_behind_keeps_the_dtmf_trigger_pausing_at_the_first_sure_tone(tmp_path, caplog):
    """Switching the trigger off would keep every digit; without a look-behind it still pauses,
    from the first tone it is sure of, and says what that costs."""
    config = config_with(tmp_path, "[recorder]\nlookbehind_seconds = 0\n")
    assert config.triggers.dtmf_reach_back_seconds == 0  # the default, bounded by the look-behind
    with caplog.at_level(logging.WARNING, logger="callrec_desktop.triggers.compose"):
        t = automatic_triggers(config, Target(), channels=2)
    assert t.dtmf is not None and "dtmf" not in t.off
    assert t.dtmf.reach_back_frames == 0 and t.dtmf.lookbehind_frames == 0
    assert any("lookbehind_seconds is 0" in r.getMessage() for r in caplog.records)


def test_the_window_also_gets_the_focus_trigger_driving_the_same_target(tmp_path):
    config = config_with(tmp_path, '[triggers]\npayment_window_titles = ["card payment"]\nfocus_poll_ms = 50\n')
    target = Target()
    t = automatic_triggers(config, target, channels=2, window=True, focus_probe=lambda: None)
    assert isinstance(t.focus, FocusPaymentTrigger) and t.dtmf is not None and t.off == {}
    assert t.focus.watcher._poll == 0.05  # [triggers] focus_poll_ms
    t.focus.watcher.poll_once("CRM")
    assert target.asked == []
    t.focus.watcher.poll_once("Card Payment - Pay360")
    [asked] = target.asked
    assert asked["source"] is EventSource.AUTOMATIC and "Card Payment - Pay360" in asked["notice"]


def test_the_window_without_payment_titles_has_no_focus_trigger(tmp_path):
    t = automatic_triggers(config_with(tmp_path, "[triggers]\npayment_window_titles = []\n"), Target(), channels=2,
                           window=True)
    assert t.focus is None and t.off["focus"] == "[triggers] payment_window_titles is empty"


@pytest.mark.parametrize("text, problem", [
    ("[triggers]\ndtmf_reach_back_seconds = 0\n", "got 0"),
    ("[triggers]\ndtmf_reach_back_seconds = -1\n", "between 0 and 10"),
    ("[triggers]\ndtmf_reach_back_seconds = 2.5\n", "got 2.5"),
    ("[recorder]\nlookbehind_seconds = 1.0\n[triggers]\ndtmf_reach_back_seconds = 1.5\n", "lookbehind_seconds (1, set in"),
    ('[triggers]\ndtmf_reach_back_seconds = "1.5"\n', "expected a number"),
])
def test_a_reach_back_set_in_a_file_must_be_positive_and_within_the_look_behind(tmp_path, text, problem):
    with pytest.raises(ConfigError) as info:
        config_with(tmp_path, text)
    message = str(info.value)
    assert str(tmp_path / "config.toml") in message and "triggers.dtmf_reach_back_seconds" in message
    assert problem in message, message


def test_the_default_reach_back_is_bounded_by_a_shorter_look_behind(tmp_path):
    assert config_with(tmp_path, "[recorder]\nlookbehind_seconds = 0.5\n").triggers.dtmf_reach_back_seconds == 0.5


def test_a_bare_recorder_is_a_payment_target_through_the_adapter(tmp_path):
    """``callrec record``'s target: the pause is the recorder's own, source automatic in the
    manifest, stamped where asked (and never before the call's start); the notice is told."""
    p = pipeline(tmp_path, np.zeros((2 * RATE, 2), np.float32), settings("flac", lookbehind_seconds=2.0))
    told = []
    target = RecorderTarget(p.recorder, on_pause=lambda at, notice: told.append((at, notice)))
    p.recorder.start_call("01443 425002", "Council Tax", source=EventSource.SCRIPT, at_frame=1000)
    assert target.status().state is CallState.RECORDING
    target.take_payment(source=EventSource.AUTOMATIC, at_frame=500, notice="keys")
    assert target.status().state is CallState.PAUSED and target.status().payment_in_progress
    assert told == [(500, "keys")]
    p.recorder.run()
    [m] = p.recorder.results.manifests
    [pause] = m.pauses
    assert (pause.reason, pause.source, pause.offset_frames) == ("payment", "automatic", 0)


def test_the_window_composes_its_triggers_through_the_same_function(tmp_path, monkeypatch):
    """app._start_integrations: the DTMF trigger goes onto the desk's block observers and the
    composition is returned to be stopped on exit."""
    from callrec_desktop import app

    class Desk(Target):
        def __init__(self) -> None:
            super().__init__()
            self.observers = []

        def add_block_observer(self, observer) -> None:  # noqa: ANN001
            self.observers.append(observer)

    desk = Desk()
    config = config_with(tmp_path, '[audio]\nchannels = 2\n[triggers]\npayment_window_titles = []\n')
    started = app._start_integrations(config, desk, None)
    [composition] = [s for s in started if isinstance(s, AutomaticTriggers)]
    assert desk.observers == [composition.dtmf] and isinstance(composition.dtmf, DtmfPaymentTrigger)
    app._stop_all(started)
