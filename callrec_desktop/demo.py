"""The demo call: the bundled recording (``resources/demo``) and what plays it. No Qt.

* ``load_demo()`` reads ``demo-call.flac`` (a 45 s two-sided call spoken by espeak-ng, agent
  left, caller right, with the caller keying a test card number as DTMF tones) and its script
  ``demo-call.json`` (``callrec record --script`` format). ``scripts/make_demo_audio.py``
  generates both.
* ``DemoSource`` delivers that file to the recorder like a live headset: paced at real time
  (or ``speed`` times faster, for tests), then silence for as long as capture runs.
* ``demo_events()`` is what the demo applies of the script: the payment pause itself comes
  from the DTMF trigger hearing the caller's key tones (the script's ``payment_started`` is
  left out), as in a real call; the agent's Payment finished and the transfer are scripted.
* ``demo_steps()`` turns those events into what the window demo does, and when.
* ``demo_call_audio()`` is the older generated (speech-like bursts) audio, still used by
  ``scripts/screenshots.py``.

``callrec demo`` (headless) and ``callrec-desktop --demo`` (the window) play the same call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from callrec_desktop.audio.sources import AudioBlock, FileSource
from callrec_desktop.config import Config, StoreSettings, resources_dir
from callrec_desktop.core.script import ScriptEvent, parse_script

DEMO_AUDIO = "demo-call.flac"
DEMO_SCRIPT = "demo-call.json"


class DemoError(Exception):
    """The bundled demo call is missing or unusable (a broken installation)."""


@dataclass(frozen=True)
class DemoCall:
    audio: Path
    script: Path
    events: tuple[ScriptEvent, ...]
    seconds: float  # length of the audio

    @property
    def last_event_at(self) -> float:
        return self.events[-1].at


def demo_dir(resources: Path | None = None) -> Path:
    return (resources or resources_dir()) / "demo"


def load_demo(resources: Path | None = None, *, config: Config | None = None) -> DemoCall:
    """The bundled demo call, its script validated (lines and departments against ``config``)."""
    import soundfile as sf

    folder = demo_dir(resources)
    audio, script = folder / DEMO_AUDIO, folder / DEMO_SCRIPT
    try:
        text = script.read_bytes()
        info = sf.info(str(audio))
    except (OSError, RuntimeError) as exc:
        raise DemoError(f"the demo call is missing from this installation ({folder}): {exc}") from None

    check_line = check_department = None
    if config is not None:
        lines = config.lines
        check_line = lines.find

        def check_department(name: str) -> None:
            if name not in lines.transfer_departments:
                raise ValueError(f"unknown department {name!r}")

    try:
        events = parse_script(text, str(script), check_line=check_line, check_department=check_department)
    except ValueError as exc:
        raise DemoError(str(exc)) from None
    return DemoCall(audio, script, tuple(events), info.frames / info.samplerate)


def demo_config(config: Config) -> Config:
    """The settings the demo records with: the user's, except stereo (the demo call has a caller
    side) and always the embedded folder store, so a demonstration call never reaches the
    council's central storage."""
    return replace(config, audio=replace(config.audio, channels=2), store=StoreSettings())


def demo_events(demo: DemoCall, *, dtmf_trigger: bool) -> tuple[ScriptEvent, ...]:
    """The script events the demo applies. With the DTMF trigger on, the script's
    ``payment_started`` is left out: the pause must come from the trigger hearing the caller
    key the card number (README, "Try it without a headset"); ``payment_ended`` (the agent's
    Payment finished) and the transfer stay. With the trigger off (``[triggers] dtmf_enabled
    = false``) the script's ``payment_started`` stands for the agent pressing Take payment,
    so the demo never keeps the card tones either way. The bundled script keeps its
    ``payment_started`` so that it stays a valid ``callrec record`` script."""
    if not dtmf_trigger:
        return tuple(demo.events)
    return tuple(e for e in demo.events if e.event != "payment_started")


@dataclass(frozen=True)
class DemoStep:
    """One scripted event: applied once capture reaches ``due_frame``, stamped at ``at_frame``."""

    due_frame: int
    at_frame: int
    event: ScriptEvent


def demo_steps(events: tuple[ScriptEvent, ...] | list[ScriptEvent], sample_rate: int) -> list[DemoStep]:
    """When the window demo applies each event: once capture reaches it, stamped at its own
    script frame (the look-behind still holds that frame)."""
    return [DemoStep(e.frame(sample_rate), e.frame(sample_rate), e) for e in events]


class DemoSource:
    """The demo file delivered like a live capture device (an ``AudioSource``).

    Paced on ``time.monotonic`` from ``start()``: a block is handed out once the time of its
    last frame has come, ``speed`` times faster than real time (1 = real time). After the file,
    silent blocks follow for as long as capture runs: a headset does not stop when a call
    ends, and the desk must never show "capturing" over a source that has run dry (a call
    started after the demo then records silence, truthfully, instead of nothing).
    ``read``/``start`` run on the recorder thread; ``stop`` on any thread.
    """

    def __init__(self, path: Path, block_frames: int, sample_rate: int, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self._file = FileSource(path, block_frames, realtime=False, sample_rate=sample_rate)
        self.path = Path(path)
        self.channels = self._file.channels
        self.sample_rate = int(sample_rate)
        self.block_frames = int(block_frames)
        self.speed = float(speed)
        self._stop = threading.Event()
        self._held: np.ndarray | None = None
        self._next_frame = 0
        self._file_done = False
        self._t0 = 0.0

    @property
    def frames_captured(self) -> int:
        return self._next_frame

    @property
    def overflows(self) -> int:
        return 0

    def start(self) -> None:
        self._file.start()
        self._t0 = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        self._file.stop()

    def __enter__(self) -> DemoSource:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def read(self, timeout: float | None = None) -> AudioBlock | None:
        if self._stop.is_set():
            return None
        if self._held is None:
            block = None if self._file_done else self._file.read()
            if block is None:
                self._file_done = True
                self._held = np.zeros((self.block_frames, self.channels), dtype=np.float32)
            else:
                self._held = block.data
        due = self._t0 + (self._next_frame + len(self._held)) / (self.sample_rate * self.speed)
        delay = due - time.monotonic()
        if delay > 0:
            if timeout is not None and timeout < delay:
                if self._stop.wait(max(0.0, timeout)):
                    return None
                return AudioBlock(self._next_frame, np.zeros((0, self.channels), dtype=np.float32))
            if self._stop.wait(delay):
                return None
        data, self._held = self._held, None
        block = AudioBlock(self._next_frame, data)
        self._next_frame += len(data)
        return block


def demo_source_factory(config: Config, demo: DemoCall, speed: float = 1.0) -> Callable[[], DemoSource]:
    """For ``compose.build_desk(source_factory=...)``: the demo call instead of the device."""
    from callrec_desktop.compose import block_frames

    def make() -> DemoSource:
        return DemoSource(demo.audio, block_frames(config), config.recorder.sample_rate, speed)

    return make


# ---- the older generated demo audio (scripts/screenshots.py) -------------------------------------

DTMF = {"4": (770, 1209), "1": (697, 1209), "7": (852, 1209), "5": (770, 1336)}


def _burst(rate: int, seconds: float, pitch: float, rng: np.random.Generator) -> np.ndarray:
    """A voiced-sounding burst: a few harmonics with a syllable-rate envelope."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = pitch * (1 + 0.05 * np.sin(2 * np.pi * 1.3 * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6)), 0, None) ** 0.7
    return (0.15 * voice * envelope).astype(np.float32)


def demo_call_audio(rate: int = 16000, seconds: float = 20.0, seed: int = 7) -> np.ndarray:
    """20 s of speech-like bursts on alternating sides, card digits keyed at 6.5-9.5 s."""
    rng = np.random.default_rng(seed)
    out = np.zeros((int(seconds * rate), 2), dtype=np.float32)
    t = 0.0
    side = 0
    while t < seconds - 1:
        length = float(rng.uniform(0.8, 2.0))
        seg = _burst(rate, length, 120.0 if side == 0 else 210.0, rng)
        i = int(t * rate)
        out[i : i + len(seg), side] += seg[: len(out) - i]
        t += length + 0.2
        side ^= 1
    for n, digit in enumerate("4157" * 3):  # card digits keyed by the caller, 6.5-9.5 s
        lo, hi = DTMF[digit]
        i = int((6.5 + n * 0.25) * rate)
        tt = np.arange(int(0.1 * rate)) / rate
        out[i : i + len(tt), 1] += (0.2 * (np.sin(2 * np.pi * lo * tt) + np.sin(2 * np.pi * hi * tt))).astype(np.float32)
    return out
