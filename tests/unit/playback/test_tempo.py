"""Speed change keeps the pitch: a 1 kHz tone stays 1 kHz while the duration scales by 1/speed."""

from __future__ import annotations

import numpy as np
import pytest

from callrec_desktop.playback.tempo import TempoStretcher, atempo_factors

RATE = 16000


def tone(seconds, hz=1000.0, rate=RATE):
    t = np.arange(round(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * hz * t)
    return np.stack([x, x], axis=1).astype(np.float32)


def peak_hz(x, rate=RATE):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[spec.argmax()])


def stretch(x, speed, block=800, **kw):
    st = TempoStretcher(RATE, 2, speed, **kw)
    parts = [st.process(x[i : i + block]) for i in range(0, len(x), block)]
    parts.append(st.flush())
    return np.concatenate(parts)


@pytest.mark.parametrize("speed", [0.75, 1.0, 1.5, 2.0])
def test_a_tone_keeps_its_pitch_and_the_duration_scales(speed):
    x = tone(4.0)
    y = stretch(x, speed)
    assert y.dtype == np.float32 and y.shape[1] == 2
    assert abs(len(y) - len(x) / speed) <= 0.03 * len(x) / speed, (len(y), len(x) / speed)
    mid = y[len(y) // 4 : 3 * len(y) // 4]
    for ch in range(2):
        assert abs(peak_hz(mid[:, ch]) - 1000.0) <= 5.0


def test_changing_speed_on_the_fly_neither_drops_nor_repeats_much():
    x = tone(4.0)
    st = TempoStretcher(RATE, 2, 1.5)
    out = []
    for i in range(0, len(x), 800):
        if i == 2 * RATE:
            st.set_speed(0.75)
        out.append(st.process(x[i : i + 800]))
    out.append(st.flush())
    y = np.concatenate(out)
    want = 2 * RATE / 1.5 + 2 * RATE / 0.75
    assert abs(len(y) - want) <= 0.03 * want
    assert abs(peak_hz(y[-RATE:, 0]) - 1000.0) <= 5.0


def test_resampling_in_the_same_graph():
    y = stretch(tone(2.0), 1.5, out_rate=48000)
    assert abs(len(y) - 2 * 48000 / 1.5) <= 0.03 * 2 * 48000 / 1.5
    assert abs(peak_hz(y[len(y) // 4 : -len(y) // 4, 0], 48000) - 1000.0) <= 5.0


def test_factors_and_limits():
    assert atempo_factors(1.5) == [1.5]
    assert atempo_factors(3.0) == [2.0, 1.5]
    with pytest.raises(ValueError):
        TempoStretcher(RATE, 2, 5.0)
    with pytest.raises(ValueError):
        TempoStretcher(RATE, 3, 1.0)
