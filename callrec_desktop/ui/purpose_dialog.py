"""Why is this recording needed? Asked before the first play, and before every export.

The purposes are the privacy notice's (``governance.purposes``); "other" needs a reason in
words. Cancel means nothing is played or exported and nothing is logged. The choice itself is
recorded by the library window (``AccessLog.record`` on a worker), not here.

The call's summary holds the line, department and caller from the store: the intro is rich
text on purpose (the verb in bold), so everything in it that is not ours is escaped; every
other label is plain text.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from callrec_desktop.governance.purposes import MAX_REASON, PURPOSES, Purpose, PurposeError

ACTION_WORDS = {"play": "play", "export": "export", "note": "add a note to"}


class PurposeDialog(QDialog):
    """Pick one of the notice's purposes (and a reason for "other")."""

    def __init__(self, action: str, call_summary: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Why do you need this recording?")
        verb = ACTION_WORDS.get(action, action)
        intro = QLabel(f"You are about to <b>{html.escape(verb)}</b> {html.escape(call_summary)}.<br>Recordings may "
                       "only be used for the purposes in the privacy notice. Your choice is recorded with your name "
                       "and the time.", self)
        intro.setTextFormat(Qt.TextFormat.RichText)
        intro.setObjectName("purposeIntro")
        intro.setWordWrap(True)
        self.group = QButtonGroup(self)
        self.buttons: dict[str, QRadioButton] = {}
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        for code, text in PURPOSES.items():
            button = QRadioButton(text, self)
            button.setObjectName(f"purpose_{code}")
            self.group.addButton(button)
            self.buttons[code] = button
            layout.addWidget(button)
            button.toggled.connect(self._update)
        self.reason = QLineEdit(self)
        self.reason.setPlaceholderText("Reason (required for Other), e.g. subject access request 2026/117")
        self.reason.setMaxLength(MAX_REASON)
        self.reason.setAccessibleName("Reason")
        self.reason.textChanged.connect(self._update)
        layout.addWidget(self.reason)
        self.problem = QLabel(self)
        self.problem.setTextFormat(Qt.TextFormat.PlainText)
        self.problem.setStyleSheet("color: #B42318;")
        layout.addWidget(self.problem)
        self.box = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        self.box.button(QDialogButtonBox.StandardButton.Ok).setText("Continue")
        self.box.accepted.connect(self.accept)
        self.box.rejected.connect(self.reject)
        layout.addWidget(self.box)
        self._update()

    def choice(self) -> Purpose | None:
        """The valid choice, or None (nothing picked, or "other" without a reason)."""
        for code, button in self.buttons.items():
            if button.isChecked():
                try:
                    return Purpose(code, self.reason.text() or None)
                except PurposeError:
                    return None
        return None

    def _update(self, *_: object) -> None:
        other = self.buttons["other"].isChecked()
        self.reason.setEnabled(other)
        ok = self.choice() is not None
        self.box.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)
        self.problem.setText("Say why, in words." if other and not ok else "")


def ask_purpose(parent: QWidget | None, action: str, call_summary: str) -> Purpose | None:
    """The default ``choose_purpose``: a modal dialog; None when cancelled."""
    dialog = PurposeDialog(action, call_summary, parent)
    return dialog.choice() if dialog.exec() == QDialog.DialogCode.Accepted else None
