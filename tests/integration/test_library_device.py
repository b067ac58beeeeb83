"""The Library window playing a call on the real output path: the window's speed and "Hear"
controls → Player → sounddevice → PortAudio → ALSA pulse plugin → the private PulseAudio's
null sink, whose monitor this test records (as tests/integration/test_player_device.py does
for the player alone). The call is recorded by the real pipeline into a folder store."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import numpy as np
import pytest

from callrec_desktop.catalog import Catalog
from callrec_desktop.config import load_config
from callrec_desktop.governance.access_log import AccessLog
from callrec_desktop.governance.purposes import Purpose
from callrec_desktop.storage.folder import FolderStore
from callrec_desktop.ui.adapter import DeskAdapter
from callrec_desktop.ui.library_window import LibraryWindow
from callrec_desktop.ui.settings_services import PlaybackChoice
from tests.integration.test_player_device import Monitor, loud_part
from tests.support.recording import RATE, band_db, record_calls

pytestmark = pytest.mark.device


def recorded_library(tmp_path, qtbot, *, wait_loaded: bool = True, **window_kwargs):
    (tmp_path / "store").mkdir()
    store = FolderStore(tmp_path / "store")
    [call] = record_calls(tmp_path / "spool", store, datetime(2026, 3, 2, 9, tzinfo=timezone.utc),
                          [{"line": ("01443 425002", "Council Tax"), "caller": "07700 900123", "seconds": 3.0}])
    catalog = Catalog(tmp_path / "catalog.sqlite")
    adapter = DeskAdapter()
    window = LibraryWindow(catalog, store, adapter, user="tl001", workstation="pc-tl001",
                           cache_dir=tmp_path / "waveforms", choose_purpose=lambda *a: Purpose("staff_training"),
                           **window_kwargs)
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.sync_finished, timeout=15000):
        window.sync_button.click()
    qtbot.waitUntil(lambda: window.model.call_ids() == [call.call_id], timeout=5000)
    if wait_loaded:
        with qtbot.waitSignal(window.player.loaded, timeout=10000):
            window.select_row(0)
    else:
        window.select_row(0)
    return window, call, store, adapter, catalog


@pytest.fixture
def library(tmp_path, qtbot, pulse_server):
    window, call, store, adapter, catalog = recorded_library(tmp_path, qtbot, output_device="pulse")
    yield window, call, store
    window.close()
    assert adapter.shutdown()
    catalog.close()


def heard_while_playing(player, qtbot):
    """Play the loaded call to its end; what the sink's monitor heard."""
    with Monitor() as mon:
        player.play_button.click()
        qtbot.waitUntil(lambda: player.player is not None and player.player.playing, timeout=5000)
        qtbot.waitUntil(lambda: player.play_button.text() == "▶ Play", timeout=15000)  # played to the end
        assert player.player.error is None
        end = mon.frames
        deadline = time.monotonic() + 5
        while mon.frames < end + 0.3 * RATE and time.monotonic() < deadline:  # the device's last ~latency
            qtbot.wait(20)
        return mon.collected()


def test_the_window_plays_the_caller_alone_at_one_and_a_half_speed_with_the_pitch_kept(library, qtbot):
    window, call, store = library
    player = window.player
    player.speed.setCurrentIndex(player.speed.findData(1.5))
    player.channel.setCurrentIndex(player.channel.findData("caller"))
    x = loud_part(heard_while_playing(player, qtbot))
    assert abs(len(x) / RATE - 2.0) < 0.25, len(x) / RATE  # 3 s of call at 1.5x
    mid = x[len(x) // 4 : 3 * len(x) // 4]
    for ear in range(2):  # the caller (right channel, 1250 Hz) on both ears, the agent (440 Hz) not at all
        assert band_db(mid[:, ear], 1250) > band_db(mid[:, ear], 440) + 30, ear
        spectrum = np.abs(np.fft.rfft(mid[:, ear] * np.hanning(len(mid))))
        peak = np.fft.rfftfreq(len(mid), 1 / RATE)[spectrum.argmax()]
        assert abs(peak - 1250) <= 5, (ear, peak)  # pitch kept: not 1875 Hz
    [event] = AccessLog(store, user="x", workstation="y").history(call.call_id)
    assert (event.action, event.purpose) == ("play", "staff_training")


def test_play_on_lists_portaudios_outputs_and_plays_on_the_one_chosen(tmp_path, qtbot, pulse_server):
    """The Library as the app builds it (a PlaybackChoice over the real PortAudio list), set to a
    speaker that is not there: it says so, the team leader picks the pulse output, hears the
    call on it, and the choice is kept in their settings file."""
    import sounddevice as sd

    user_file = tmp_path / "me" / "config.toml"
    user_file.parent.mkdir()
    user_file.write_text('[audio]\noutput_device = "no such speaker"\n', encoding="utf-8")
    playback = PlaybackChoice(load_config(system_file=None, user_file=user_file, env={}), user_file=user_file)
    window, call, store, adapter, catalog = recorded_library(tmp_path, qtbot, wait_loaded=False, playback=playback)
    try:
        player = window.player
        qtbot.waitUntil(lambda: "No sound output" in player.status.text(), timeout=10000)
        assert "no such speaker" in player.status.text() and not player.play_button.isEnabled()
        outputs = list(dict.fromkeys(d["name"] for d in sd.query_devices() if d["max_output_channels"] > 0))
        assert "pulse" in outputs
        qtbot.waitUntil(lambda: player.output.count() == len(outputs) + 2, timeout=5000)
        shown = [player.output.itemText(i) for i in range(player.output.count())]
        assert shown == ["System default output", *outputs, "no such speaker (as set)"]
        assert player.output.currentData() == "no such speaker"

        player.output.setCurrentIndex(player.output.findData("pulse"))
        qtbot.waitUntil(lambda: "kept for next time" in window.message.text(), timeout=5000)
        assert player.player is not None and player.play_button.isEnabled() and player.status.text() == ""
        x = loud_part(heard_while_playing(player, qtbot))
        assert abs(len(x) / RATE - 3.0) < 0.3, len(x) / RATE
        mid = x[len(x) // 4 : 3 * len(x) // 4]
        assert band_db(mid[:, 0], 440) > band_db(mid[:, 0], 1250) + 20  # agent on the left
        assert band_db(mid[:, 1], 1250) > band_db(mid[:, 1], 440) + 20  # caller on the right
        assert load_config(system_file=None, user_file=user_file, env={}).audio.output_device == "pulse"
    finally:
        window.close()
        assert adapter.shutdown()
        catalog.close()
