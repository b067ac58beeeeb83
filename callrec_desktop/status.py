"""What the window shows and what desk operations refuse, apart from the engine that makes them.

Snapshots (``DeskStatus``, ``UploadStatus``), the faults shown as banners, and the errors a
desk operation raises. Deliberately light (no numpy, no audio, no storage, no Qt): the window
imports this before the recording engine is loaded, so it can be on screen at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from callrec_desktop.core.timeline import CallState


@dataclass(frozen=True)
class UploadStatus:
    """A snapshot for the UI and ``callrec status``; built on the uploader thread."""

    backlog_chunks: int = 0
    backlog_bytes: int = 0
    backlog_calls: int = 0
    oldest_age_seconds: float | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_error_permanent: bool = False
    objects_uploaded: int = 0
    bytes_uploaded: int = 0
    # time.monotonic() when the store request now in flight began (None: none is), so the
    # window can say central storage is slow to answer long before the request times out.
    request_started: float | None = None

    @property
    def healthy(self) -> bool:
        return self.last_error is None



class DeskError(Exception):
    """An operation the desk refuses; nothing changed. The message is fit for the agent."""


class UnknownLine(DeskError):
    pass


class UnknownDepartment(DeskError):
    pass


class NotAllowed(DeskError):
    """Not allowed in the current state (e.g. payment finished with no payment)."""


class PaymentInProgress(NotAllowed):
    pass


class NotCapturing(DeskError):
    """No audio device is capturing, so a call cannot be recorded."""


class Fault(Enum):
    """Conditions the window shows as banners until they are resolved."""

    NO_DEVICE = "no_device"
    DEVICE_LOST = "device_lost"
    DISK_FULL = "disk_full"
    STORAGE_UNREACHABLE = "storage_unreachable"
    RECORDING_FAILED = "recording_failed"
    # The control API could not listen: payment pages and the phone system cannot pause it.
    CONTROL_UNREACHABLE = "control_unreachable"


@dataclass(frozen=True)
class DeskStatus:
    """A snapshot; cheap to take on the GUI thread (no I/O)."""

    state: CallState = CallState.IDLE  # IDLE: not in a call
    call_id: str | None = None
    line_number: str | None = None
    department: str | None = None
    caller: str | None = None
    call_started: float | None = None  # time.monotonic() at call start (for the call timer)
    payment_started: float | None = None  # time.monotonic() at payment start
    payment_source: str | None = None
    last_end_reason: str | None = None  # of the last call that ended, while idle after it
    transferred_to: str | None = None
    capturing: bool = False
    faults: dict[Fault, str] = field(default_factory=dict)
    upload: UploadStatus = UploadStatus()
    notice: str | None = None  # a one-off message for the agent (e.g. "card tones detected")

    @property
    def recording(self) -> bool:
        return self.state is CallState.RECORDING and self.capturing

    @property
    def payment_in_progress(self) -> bool:
        return self.payment_started is not None
