"""Pause for payment when the caller keys card digits: a block observer on the recorder thread.

The recorder calls every block observer with each captured block *before* the look-behind
buffer, so when the detector is sure of a key press (~40 ms into a tone it recognises) the
tones before it are still in memory, unencoded. The pause *reaches back*: it is stamped at

    max(oldest frame still in the look-behind,
        min(onset of the earliest dual-tone energy the detector still remembers,
            first detected digit - reach_back))

so digits the detector missed before its first hit (short, quiet or distorted tones) are
removed too: nothing of them is encoded, written or uploaded. The target (desk or recorder)
never stamps an event before the start of the current recording stretch (the call's start
or the end of the previous pause): that is the third bound, applied where the timeline is.

``PaymentTarget`` is what the trigger drives: ``Desk`` satisfies it as it is (the window,
the window demo); ``callrec record`` and ``callrec demo`` drive a bare ``Recorder`` through
``triggers.compose.RecorderTarget``. ``triggers.compose.automatic_triggers`` builds the
trigger for every path.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from typing import Protocol

from callrec_desktop.audio.dtmf import DtmfDetector, DtmfHit
from callrec_desktop.audio.sources import AudioBlock
from callrec_desktop.core.timeline import CallState, EventSource, TimelineError
from callrec_desktop.status import DeskError

log = logging.getLogger(__name__)

NOTICE = "Card key tones heard: recording paused for payment. Press Payment finished when the payment is done."
DEFAULT_REACH_BACK_SECONDS = 1.5


class _HasState(Protocol):
    @property
    def state(self) -> CallState: ...


class PaymentTarget(Protocol):
    """What an automatic trigger drives. ``Desk`` satisfies it; ``compose.RecorderTarget``
    adapts a bare ``Recorder``. ``take_payment`` starts the enforced payment pause stamped at
    ``at_frame`` (never before the current recording stretch began; ``None``: now) and
    raises ``DeskError`` or ``TimelineError`` when refused; it only takes short locks."""

    def status(self) -> _HasState: ...

    def take_payment(self, *, source: EventSource = ..., at_frame: int | None = None,
                     notice: str | None = None) -> None: ...


class DtmfPaymentTrigger:
    """Callable block observer: ``recorder block_observers=[..., trigger]`` or
    ``desk.add_block_observer(trigger)``.

    ``channel``: the caller's channel (1 on stereo sources; a mono source has channel 0 only,
    which the detector then reads). ``lookbehind_frames``: the recorder's look-behind (the
    pause is never stamped before what it still holds). ``reach_back_seconds``: the pause
    starts at least this long before the first detected digit; more than 0 and not more than
    the look-behind (``[triggers] dtmf_reach_back_seconds``).
    """

    def __init__(self, target: PaymentTarget, sample_rate: int, channel: int = 1, *, lookbehind_frames: int,
                 reach_back_seconds: float = DEFAULT_REACH_BACK_SECONDS,
                 detector: DtmfDetector | None = None) -> None:
        # 0 only with no look-behind at all: the pause then starts at the first tone it is sure of.
        if isinstance(reach_back_seconds, bool) or not math.isfinite(reach_back_seconds) or reach_back_seconds < 0:
            raise ValueError(f"reach_back_seconds must be 0 or more, got {reach_back_seconds!r}")
        if lookbehind_frames < 0:
            raise ValueError(f"lookbehind_frames must not be negative, got {lookbehind_frames}")
        reach_back = round(reach_back_seconds * sample_rate)
        if reach_back > lookbehind_frames:
            raise ValueError(f"reach_back_seconds ({reach_back_seconds}) must not be more than the look-behind "
                             f"({lookbehind_frames / sample_rate:g} s): frames older than that are already written")
        self._target = target
        self.sample_rate = int(sample_rate)
        self.detector = detector or DtmfDetector(sample_rate, channel)
        self.lookbehind_frames = int(lookbehind_frames)
        self.reach_back_frames = reach_back
        self.hits: deque[DtmfHit] = deque(maxlen=256)  # the latest key presses heard (diagnostics, tests)
        # (first detected digit's frame, frame the pause was asked for): diagnostics, tests.
        self.pauses: deque[tuple[int, int]] = deque(maxlen=64)

    def __call__(self, block: AudioBlock) -> None:
        """Runs on the recorder thread for every captured block, before the look-behind;
        never raises, never blocks (the target only takes short locks)."""
        try:
            for hit in self.detector.feed(block):
                self.hits.append(hit)
                self._on_hit(hit, block)
        except Exception:  # an observer that raises would stop the recording
            log.exception("DTMF payment trigger failed on block at frame %d", block.start_frame)

    def pause_frame(self, hit: DtmfHit, block: AudioBlock) -> int:
        """Where a pause for ``hit`` (found in ``block``) starts: see the module docstring.
        ``block`` is not yet in the look-behind, which holds everything from ``block.start_frame
        - lookbehind_frames`` on (it releases whole blocks once they are that old)."""
        oldest = max(0, block.start_frame - self.lookbehind_frames)
        latest = hit.frame - self.reach_back_frames
        onset = self._earliest_tone_energy(oldest)
        return max(oldest, latest if onset is None else min(onset, latest))

    def _earliest_tone_energy(self, since: int) -> int | None:
        # The detector's loose dual-tone history (DtmfDetector.earliest_tone_energy, added with
        # the Q.24 rework); a detector without it gives no onset, and the reach-back alone applies.
        earliest = getattr(self.detector, "earliest_tone_energy", None)
        return None if earliest is None else earliest(since)

    def _on_hit(self, hit: DtmfHit, block: AudioBlock) -> None:
        if self._target.status().state is not CallState.RECORDING:
            return  # idle, already paused, or ended: nothing to do
        at = self.pause_frame(hit, block)
        self.pauses.append((hit.frame, at))
        log.info("card key tone %r heard at frame %d: pausing for payment from frame %d (%.2f s earlier)",
                 hit.digit, hit.frame, at, (hit.frame - at) / self.sample_rate)
        try:
            self._target.take_payment(source=EventSource.AUTOMATIC, at_frame=at, notice=NOTICE)
        except TimelineError as exc:
            # Not expected (targets stamp no earlier than the last event): pause now, which is
            # stamped at the newest captured frame; loud, as frames may be lost.
            log.warning("pause at frame %d refused (%s); pausing at the current frame", at, exc)
            try:
                self._target.take_payment(source=EventSource.AUTOMATIC, notice=NOTICE)
            except (DeskError, TimelineError) as exc2:
                log.error("automatic payment pause refused: %s", exc2)
        except DeskError as exc:  # e.g. the call ended or capture stopped meanwhile
            log.warning("automatic payment pause refused: %s", exc)
