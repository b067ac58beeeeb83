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
from callrec_desktop.governance.access_log import AccessLog
from callrec_desktop.governance.purposes import Purpose
from callrec_desktop.storage.folder import FolderStore
from callrec_desktop.ui.adapter import DeskAdapter
from callrec_desktop.ui.library_window import LibraryWindow
from tests.integration.test_player_device import Monitor, loud_part
from tests.support.recording import RATE, band_db, record_calls

pytestmark = pytest.mark.device


@pytest.fixture
def library(tmp_path, qtbot, pulse_server):
    (tmp_path / "store").mkdir()
    store = FolderStore(tmp_path / "store")
    [call] = record_calls(tmp_path / "spool", store, datetime(2026, 3, 2, 9, tzinfo=timezone.utc),
                          [{"line": ("01443 425002", "Council Tax"), "caller": "07700 900123", "seconds": 3.0}])
    catalog = Catalog(tmp_path / "catalog.sqlite")
    adapter = DeskAdapter()
    window = LibraryWindow(catalog, store, adapter, user="tl001", workstation="pc-tl001",
                           cache_dir=tmp_path / "waveforms", choose_purpose=lambda *a: Purpose("staff_training"),
                           output_device="pulse")
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.sync_finished, timeout=15000):
        window.sync_button.click()
    qtbot.waitUntil(lambda: window.model.call_ids() == [call.call_id], timeout=5000)
    with qtbot.waitSignal(window.player.loaded, timeout=10000):
        window.select_row(0)
    yield window, call, store
    window.close()
    assert adapter.shutdown()
    catalog.close()


def test_the_window_plays_the_caller_alone_at_one_and_a_half_speed_with_the_pitch_kept(library, qtbot):
    window, call, store = library
    player = window.player
    player.speed.setCurrentIndex(player.speed.findData(1.5))
    player.channel.setCurrentIndex(player.channel.findData("caller"))
    with Monitor() as mon:
        player.play_button.click()
        qtbot.waitUntil(lambda: player.player is not None and player.player.playing, timeout=5000)
        qtbot.waitUntil(lambda: player.play_button.text() == "▶ Play", timeout=15000)  # played to the end
        assert player.player.error is None
        end = mon.frames
        deadline = time.monotonic() + 5
        while mon.frames < end + 0.3 * RATE and time.monotonic() < deadline:  # the device's last ~latency
            qtbot.wait(20)
        heard = mon.collected()
    x = loud_part(heard)
    assert abs(len(x) / RATE - 2.0) < 0.25, len(x) / RATE  # 3 s of call at 1.5x
    mid = x[len(x) // 4 : 3 * len(x) // 4]
    for ear in range(2):  # the caller (right channel, 1250 Hz) on both ears, the agent (440 Hz) not at all
        assert band_db(mid[:, ear], 1250) > band_db(mid[:, ear], 440) + 30, ear
        spectrum = np.abs(np.fft.rfft(mid[:, ear] * np.hanning(len(mid))))
        peak = np.fft.rfftfreq(len(mid), 1 / RATE)[spectrum.argmax()]
        assert abs(peak - 1250) <= 5, (ear, peak)  # pitch kept: not 1875 Hz
    [event] = AccessLog(store, user="x", workstation="y").history(call.call_id)
    assert (event.action, event.purpose) == ("play", "staff_training")
