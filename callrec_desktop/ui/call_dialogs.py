"""The call handler's dialogs: confirm a step that would lose audio, choose the line a call
came in on, choose the department a call is transferred to.

Loaded by the window when first needed (``main_window._dialog``), not to show the window."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from callrec_desktop.config import Line, Lines


def ask_confirmation(parent: QWidget, title: str, text: str, accept_text: str) -> bool:
    """A QMessageBox whose default button is Cancel: Enter alone never ends a recording."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.NoButton, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)  # it names departments and lines from the settings
    accept = box.addButton(accept_text, QMessageBox.ButtonRole.AcceptRole)
    cancel = box.addButton("Cancel", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(cancel)
    box.setEscapeButton(cancel)
    box.exec()
    return box.clickedButton() is accept


class LineDialog(QDialog):
    """Choose the line the call came in on (manual mode), and the caller's number if known."""

    def __init__(self, lines: Lines, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Start call")
        self.setMinimumWidth(460)
        self.lines = lines
        self.list = QListWidget(self)
        self.list.setAccessibleName("Line the call came in on")
        for line in lines.lines:
            item = QListWidgetItem(line.label, self.list)
            item.setData(Qt.ItemDataRole.UserRole, line.id)
        self.list.setCurrentRow(0)
        self.list.itemDoubleClicked.connect(self.accept)
        self.caller = QLineEdit(self)
        self.caller.setPlaceholderText("optional, e.g. 07700 900123")
        self.caller.setAccessibleName("Caller's number")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        start = buttons.addButton("Start recording", QDialogButtonBox.ButtonRole.AcceptRole)
        start.setDefault(True)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Which line did the call come in on?", self))
        layout.addWidget(self.list)
        layout.addWidget(QLabel("Caller's number", self))
        layout.addWidget(self.caller)
        layout.addWidget(buttons)

    def choice(self) -> tuple[Line, str | None] | None:
        item = self.list.currentItem()
        if item is None:
            return None
        line = self.lines.find(item.data(Qt.ItemDataRole.UserRole))
        return line, (self.caller.text().strip() or None)


class DepartmentDialog(QDialog):
    """Choose the department a call is transferred to."""

    def __init__(self, departments: tuple[str, ...], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Transfer call")
        self.setMinimumWidth(420)
        self.list = QListWidget(self)
        self.list.setAccessibleName("Department to transfer to")
        self.list.addItems(list(departments))
        self.list.setCurrentRow(0)
        self.list.itemDoubleClicked.connect(self.accept)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        buttons.addButton("Transfer", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Transfer the call to which department?\nRecording stops at the transfer.", self))
        layout.addWidget(self.list)
        layout.addWidget(buttons)

    def choice(self) -> str | None:
        item = self.list.currentItem()
        return item.text() if item is not None else None


def ask_line(parent: QWidget, lines: Lines) -> tuple[Line, str | None] | None:
    dialog = LineDialog(lines, parent)
    return dialog.choice() if dialog.exec() == QDialog.DialogCode.Accepted else None


def ask_department(parent: QWidget, departments: tuple[str, ...]) -> str | None:
    dialog = DepartmentDialog(departments, parent)
    return dialog.choice() if dialog.exec() == QDialog.DialogCode.Accepted else None
