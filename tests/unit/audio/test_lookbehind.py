"""The look-behind buffer: frames wait until they are a window old, and no longer."""

from __future__ import annotations

import numpy as np
import pytest

from callrec_desktop.audio.lookbehind import LookBehindBuffer
from callrec_desktop.audio.sources import AudioBlock


def blocks(sizes, start=0, channels=2):
    out, pos = [], start
    for n in sizes:
        data = np.full((n, channels), pos, dtype=np.float32) + np.arange(n, dtype=np.float32)[:, None]
        out.append(AudioBlock(pos, data))
        pos += n
    return out


def test_negative_window_is_refused():
    with pytest.raises(ValueError):
        LookBehindBuffer(-1)


def test_a_block_is_released_only_once_it_is_a_whole_window_old():
    buf = LookBehindBuffer(1000)
    bs = blocks([300] * 10)
    released = []
    for b in bs:
        out = buf.push(b)
        newest_end = b.end_frame
        for r in out:  # everything released is at least a window old ...
            assert newest_end - r.end_frame >= 1000
        released += out
        # ... and everything still held is younger than that
        held_from = buf.held_from
        if held_from is not None:
            oldest_held = next(x for x in bs if x.start_frame == held_from)
            assert newest_end - oldest_held.end_frame < 1000
    # after 3000 frames with a 1000-frame window: blocks ending at <= 2000 are out
    assert [r.start_frame for r in released] == [0, 300, 600, 900, 1200, 1500]
    assert buf.held_from == 1800


def test_drain_returns_the_rest_in_order_and_empties_the_buffer():
    buf = LookBehindBuffer(1000)
    bs = blocks([250, 333, 417, 100, 900])
    released = []
    for b in bs:
        released += buf.push(b)
    rest = buf.drain()
    assert released + rest == bs  # the same blocks, same order, none lost or repeated
    assert all(a.data is b.data for a, b in zip(released + rest, bs))
    assert buf.drain() == [] and buf.held_from is None


def test_window_zero_releases_every_block_immediately():
    buf = LookBehindBuffer(0)
    for b in blocks([1, 320, 7]):
        assert buf.push(b) == [b]
        assert buf.held_from is None


def test_empty_blocks_are_not_held():
    buf = LookBehindBuffer(500)
    [b] = blocks([200])
    buf.push(b)
    assert buf.push(AudioBlock(200, np.zeros((0, 2), dtype=np.float32))) == []
    assert buf.drain() == [b]


@pytest.mark.parametrize("window", [0, 1, 319, 320, 1000, 32000])
def test_never_holds_more_than_the_window_plus_one_block(window):
    rng = np.random.default_rng(window)
    bs = blocks(rng.integers(1, 700, size=400))
    size_at = {b.start_frame: b.frames for b in bs}
    buf = LookBehindBuffer(window)
    released = 0
    for b in bs:
        released += sum(r.frames for r in buf.push(b))
        held = b.end_frame - released
        if buf.held_from is None:
            assert held == 0
            continue
        assert held == b.end_frame - buf.held_from
        oldest = size_at[buf.held_from]
        assert held < window + oldest, (held, window, oldest)  # at most the window + one block
        assert b.end_frame - (buf.held_from + oldest) < window  # and it holds nothing window-old
    assert released + sum(r.frames for r in buf.drain()) == bs[-1].end_frame
