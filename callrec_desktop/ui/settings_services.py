"""What the Settings dialog needs from outside (keyring, control token, device list, focus
support), built by the composition root. Separate from the dialog so the window can hold it
without importing the dialog, which loads only when it is first opened."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from callrec_desktop.audio.sources import AudioSource


def input_devices() -> list[dict]:
    """The audio stack's input devices (PortAudio loads on this first call, on a worker)."""
    from callrec_desktop.audio.sources import list_input_devices

    return list_input_devices()


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
