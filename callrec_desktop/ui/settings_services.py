"""What the Settings dialog needs from outside (keyring, control token, device list, focus
support), built by the composition root. Separate from the dialog so the window can hold it
without importing the dialog, which loads only when it is first opened."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from callrec_desktop.audio.sources import AudioSource
    from callrec_desktop.config import Config

DEFAULT_OUTPUT = "default"  # the settings file's word for the system's default output


def input_devices() -> list[dict]:
    """The audio stack's input devices (PortAudio loads on this first call, on a worker)."""
    from callrec_desktop.audio.sources import list_input_devices

    return list_input_devices()


def output_devices() -> list[dict]:
    """The audio stack's output devices (PortAudio loads on this first call, on a worker)."""
    from callrec_desktop.audio.sources import list_output_devices

    return list_output_devices()


@dataclass(frozen=True)
class PlaybackDevices:
    """What the Library's "Play on" list shows: the output devices' names, the current
    setting as the settings file spells it, why it cannot be changed here (or None), and why
    the devices could not be listed (or None)."""

    names: tuple[str, ...]
    current: str
    locked: str | None = None
    error: str | None = None


@dataclass
class PlaybackChoice:
    """The team leader's playback device: listing the outputs and saving the choice to their
    own settings file (``[audio] output_device``), as the Settings dialog saves its keys. Both
    methods do I/O: worker thread only. Built by the composition root; tests pass their own
    files and device list."""

    config: Config
    list_devices: Callable[[], list[dict]] = field(default_factory=lambda: output_devices)
    user_file: Path | None = None

    def load(self) -> PlaybackDevices:
        from callrec_desktop.ui.user_settings import lock_reason

        current = self.config.audio.output_device  # IT's value when IT's file sets it
        locked = lock_reason(self.config, "audio.output_device")
        try:
            names = tuple(dict.fromkeys(str(d["name"]) for d in self.list_devices()))
            error = None if names else "No sound output found on this PC."
        except Exception as exc:  # PortAudio missing or broken: say so beside the list
            names, error = (), f"Cannot list sound outputs: {exc}"
        return PlaybackDevices(names, current, locked, error)

    def save(self, device: str) -> Path:
        """Write ``device`` (a name, or ``DEFAULT_OUTPUT``) to the user's file; its path."""
        from callrec_desktop.config import default_paths
        from callrec_desktop.ui.user_settings import write_user_changes

        path = self.user_file or default_paths().user_file
        write_user_changes(path, {"audio.output_device": device})
        return path


@dataclass
class SettingsServices:
    """What the dialog needs from outside, built by the composition root (tests pass their own)."""

    credentials: Any  # credentials.CredentialStore
    token_provider: Callable[[], str] | None = None
    list_devices: Callable[[], list[dict]] = field(default_factory=lambda: input_devices)
    # (device name, sample rate, block frames) -> a mono source, not started. Default: DeviceSource.
    test_source_factory: Callable[[str, int, int], AudioSource] | None = None
    # Why the window-title trigger cannot work on this PC (None: it can). From triggers.focus.
    focus_support: Callable[[], str | None] | None = None
