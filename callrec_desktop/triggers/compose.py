"""One composition of the automatic payment triggers, for every path that records.

``automatic_triggers(config, target, channels=..., window=...)`` reads ``[triggers]`` and
builds what pauses a call for payment on its own:

* the card key tone (DTMF) trigger on the caller's channel, when ``dtmf_enabled`` and the
  recording has two channels (mono has no caller side: a warning says the trigger is off);
* the payment-window focus trigger, only for the window (``window=True``): a headless
  ``callrec`` has no desktop focus to watch.

Used by the window (``app._start_integrations``, target: the ``Desk``), the window demo
(``ui.demo_runner``, its own ``Desk``), ``callrec record`` for every source and ``callrec
demo`` (``cli._record``, target: the bare ``Recorder`` through ``RecorderTarget``). Every
pause it starts is stamped with source ``automatic`` in the manifest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from callrec_desktop.core.timeline import EventSource

if TYPE_CHECKING:
    from callrec_desktop.audio.sources import AudioBlock
    from callrec_desktop.config import Config
    from callrec_desktop.recorder import Recorder, RecorderStatus
    from callrec_desktop.triggers.dtmf_trigger import DtmfPaymentTrigger, PaymentTarget
    from callrec_desktop.triggers.focus import FocusPaymentTrigger, TitleProbe

log = logging.getLogger(__name__)


class RecorderTarget:
    """A bare ``Recorder`` as a ``PaymentTarget`` (``callrec record``, ``callrec demo``).

    ``take_payment`` is ``Recorder.start_payment``, which stamps no earlier than the last
    event (the start of the current recording stretch); then ``on_pause(at_frame, notice)``
    is told (the CLI prints a line on stderr). Any thread.
    """

    def __init__(self, recorder: Recorder, on_pause: Callable[[int | None, str], None] | None = None) -> None:
        self._recorder = recorder
        self._on_pause = on_pause

    def status(self) -> RecorderStatus:
        return self._recorder.status()

    def take_payment(self, *, source: EventSource = EventSource.AUTOMATIC, at_frame: int | None = None,
                     notice: str | None = None) -> None:
        self._recorder.start_payment(source=source, at_frame=at_frame)
        if self._on_pause is not None:
            try:
                self._on_pause(at_frame, notice or "")
            except Exception:  # telling must never undo or break the pause
                log.exception("payment pause notice failed")


@dataclass
class AutomaticTriggers:
    """What ``automatic_triggers`` built. ``block_observers`` go to the recorder (in this
    order, after anything that must act on a block first); ``start``/``stop`` run the
    focus watcher's thread, if there is one. ``off`` says, per trigger, why it is off."""

    dtmf: DtmfPaymentTrigger | None = None
    focus: FocusPaymentTrigger | None = None
    off: dict[str, str] = field(default_factory=dict)

    @property
    def block_observers(self) -> list[Callable[[AudioBlock], None]]:
        return [self.dtmf] if self.dtmf is not None else []

    def start(self) -> None:
        if self.focus is not None:
            self.focus.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self.focus is not None:
            self.focus.stop(timeout)


def automatic_triggers(config: Config, target: PaymentTarget, *, channels: int, window: bool = False,
                       focus_probe: TitleProbe | None = None) -> AutomaticTriggers:
    """The automatic payment triggers ``config.triggers`` asks for, driving ``target``.

    ``channels``: of the recording (the DTMF trigger listens on channel 1, the caller's).
    ``window``: also the payment-window focus trigger (only the window has a focus to
    watch); ``focus_probe`` replaces the platform's focused-window reader (tests).
    Nothing is started: add ``block_observers`` to the recorder, then ``start()``.
    Any thread; builds no Qt object.
    """
    t = config.triggers
    rate = config.recorder.sample_rate
    out = AutomaticTriggers()
    if not t.dtmf_enabled:
        out.off["dtmf"] = "[triggers] dtmf_enabled is false"
    elif channels < 2:
        out.off["dtmf"] = "mono recording has no caller channel"
        log.warning("DTMF payment trigger off: mono recording has no caller channel (set [audio] channels = 2)")
    else:
        if t.dtmf_reach_back_seconds <= 0:  # only with [recorder] lookbehind_seconds = 0 (config bounds it)
            # Still far better than no trigger (which would keep every digit): the pause starts
            # at the first tone the detector is sure of, so only that tone's first ~40 ms and any
            # digit it missed before can reach a file.
            log.warning("[recorder] lookbehind_seconds is 0: the DTMF payment pause cannot reach back, so the "
                        "first key tone's first ~40 ms can reach a file; set lookbehind_seconds (default 2)")
        from callrec_desktop.triggers.dtmf_trigger import DtmfPaymentTrigger

        out.dtmf = DtmfPaymentTrigger(target, rate, channel=1,
                                      lookbehind_frames=round(config.recorder.lookbehind_seconds * rate),
                                      reach_back_seconds=t.dtmf_reach_back_seconds)
    if not window:
        out.off["focus"] = "headless: no desktop focus to watch"
    elif not t.payment_window_titles:
        out.off["focus"] = "[triggers] payment_window_titles is empty"
    else:
        from callrec_desktop.triggers.focus import FocusPaymentTrigger, focus_support

        why_not = None if focus_probe is not None else focus_support()
        if why_not is None:
            out.focus = FocusPaymentTrigger(target, t.payment_window_titles, t.focus_poll_ms,  # type: ignore[arg-type]
                                            probe=focus_probe)
        else:
            out.off["focus"] = why_not
            log.warning("window-title payment trigger unavailable: %s", why_not)
    return out
