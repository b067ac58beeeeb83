"""The purposes for which a team leader may play or export a recording.

From section 4 of the privacy notice ("What will we do with your personal information?"):
complaints, crime/fraud, staff training and development, staff safety. ``other`` exists for
the rare case that fits none of them (e.g. a subject-access request) and must give a reason in
words, so that the data-protection officer can review it.
"""

from __future__ import annotations

from dataclasses import dataclass

PURPOSES: dict[str, str] = {
    "complaint": "Investigating and resolving a complaint",
    "fraud_investigation": "Detecting, investigating or preventing crime (fraud)",
    "staff_training": "Reviewing call quality for staff training and development",
    "staff_safety": "Ensuring the safety and wellbeing of staff",
    "other": "Other (reason required)",
}
MAX_REASON = 500


class PurposeError(ValueError):
    """A purpose that is not one of the notice's, or ``other`` without a reason."""


@dataclass(frozen=True)
class Purpose:
    code: str
    reason: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or self.code not in PURPOSES:
            raise PurposeError(f"purpose {self.code!r} is not one of the privacy notice's purposes: "
                               + ", ".join(f"{k} ({v})" for k, v in PURPOSES.items()))
        reason = self.reason.strip() if isinstance(self.reason, str) else self.reason
        if reason is not None and not isinstance(reason, str):
            raise PurposeError(f"reason must be text, got {type(reason).__name__}")
        if self.code == "other" and not reason:
            raise PurposeError("purpose 'other' needs a reason in words (say why this recording is needed)")
        if reason and len(reason) > MAX_REASON:
            raise PurposeError(f"reason is {len(reason)} characters; at most {MAX_REASON}")
        object.__setattr__(self, "reason", reason or None)

    @property
    def label(self) -> str:
        return PURPOSES[self.code]


def label(code: str) -> str:
    """The human label of a purpose code (``PurposeError`` if unknown)."""
    return Purpose(code, "-" if code == "other" else None).label
