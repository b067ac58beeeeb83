"""Pause for payment when the caller keys card digits: a block observer on the recorder thread.

The desk's recorder calls every block observer with each captured block *before* the
look-behind buffer, so when the detector is sure of a key press (~40 ms into the tone) the
tone's frames are still in memory, and a pause stamped at the first tone (minus a margin)
removes all of it: nothing of it is encoded, written or uploaded.
"""

from __future__ import annotations

import logging
from collections import deque

from callrec_desktop.audio.dtmf import DtmfDetector, DtmfHit
from callrec_desktop.audio.sources import AudioBlock
from callrec_desktop.core.timeline import CallState, EventSource, TimelineError
from callrec_desktop.desk import Desk, DeskError, DeskStatus

log = logging.getLogger(__name__)

NOTICE = "Card key tones heard: recording paused for payment. Press Payment finished when the payment is done."


class DtmfPaymentTrigger:
    """Callable block observer: ``Desk(block_observers=[trigger])``.

    ``channel``: the caller's channel (1 on stereo sources; mono sources use channel 0).
    ``margin_seconds``: the pause is stamped this long before the first tone, so the onset
    of the tone is removed too. Keep it well below the recorder's look-behind.
    """

    def __init__(self, desk: Desk, sample_rate: int, channel: int = 1, margin_seconds: float = 0.1) -> None:
        if margin_seconds < 0:
            raise ValueError(f"margin_seconds must not be negative, got {margin_seconds}")
        self._desk = desk
        self.detector = DtmfDetector(sample_rate, channel)
        self._margin = round(margin_seconds * sample_rate)
        # The capture frame at or after the latest time the desk went (back) to recording: a
        # pause must not be stamped before the event that started this recording stretch
        # (the timeline refuses events out of order). Written by the desk listener on any
        # thread, read on the recorder thread; a plain int assignment, so no lock is needed.
        self._floor = 0
        self._was_recording = False
        self.hits: deque[DtmfHit] = deque(maxlen=256)  # the latest key presses heard (diagnostics, tests)
        desk.add_listener(self._on_desk_status)

    def __call__(self, block: AudioBlock) -> None:
        """Runs on the recorder thread for every captured block; never raises, never blocks
        (``Desk.take_payment`` only takes short locks)."""
        try:
            hits = self.detector.feed(block)
            for hit in hits:
                self.hits.append(hit)
                self._on_hit(hit)
        except Exception:  # an observer that raises would stop the recording
            log.exception("DTMF payment trigger failed on block at frame %d", block.start_frame)

    def _on_hit(self, hit: DtmfHit) -> None:
        if self._desk.status().state is not CallState.RECORDING:
            return  # idle, already paused, or ended: nothing to do
        at = max(0, hit.frame - self._margin, self._floor)
        log.info("card key tone %r heard at frame %d: pausing for payment from frame %d", hit.digit, hit.frame, at)
        try:
            self._desk.take_payment(source=EventSource.AUTOMATIC, at_frame=at, notice=NOTICE)
        except TimelineError as exc:
            # The recording stretch began after ``at`` (a race with the listener): pause now,
            # which the recorder stamps at the newest captured frame; loud, as frames may be lost.
            log.warning("pause at frame %d refused (%s); pausing at the current frame", at, exc)
            try:
                self._desk.take_payment(source=EventSource.AUTOMATIC, notice=NOTICE)
            except (DeskError, TimelineError) as exc2:
                log.error("automatic payment pause refused: %s", exc2)
        except DeskError as exc:  # e.g. the call ended or capture stopped meanwhile
            log.warning("automatic payment pause refused: %s", exc)

    def _on_desk_status(self, status: DeskStatus) -> None:
        """Desk listener (any thread): note where each recording stretch starts."""
        recording = status.state is CallState.RECORDING
        if recording and not self._was_recording:
            frame = self._desk.current_frame()
            if frame is not None:
                self._floor = frame
        self._was_recording = recording
