"""The look-behind buffer: captured frames wait here, in memory only, before the gate sees them.

A pause stamped slightly in the past (an automatic detector, a late control signal) can still
remove frames that are inside this window, because nothing here has been encoded or written.
Memory is bounded by the window: about 250 KiB for 2 s of 16 kHz stereo float32.
"""

from __future__ import annotations

from collections import deque

from callrec_desktop.audio.sources import AudioBlock


class LookBehindBuffer:
    def __init__(self, window_frames: int) -> None:
        if window_frames < 0:
            raise ValueError("window_frames must not be negative")
        self.window_frames = window_frames
        self._blocks: deque[AudioBlock] = deque()

    @property
    def held_from(self) -> int | None:
        """Capture frame of the oldest frame still held (not yet released to the gate)."""
        return self._blocks[0].start_frame if self._blocks else None

    def push(self, block: AudioBlock) -> list[AudioBlock]:
        """Hold ``block``; return the blocks that have aged out of the window, oldest first."""
        if len(block.data):
            self._blocks.append(block)
        newest_end = block.start_frame + len(block.data)
        out = []
        while self._blocks:
            b = self._blocks[0]
            if newest_end - (b.start_frame + len(b.data)) < self.window_frames:
                break
            out.append(self._blocks.popleft())
        return out

    def drain(self) -> list[AudioBlock]:
        """Release everything (end of stream)."""
        out = list(self._blocks)
        self._blocks.clear()
        return out
