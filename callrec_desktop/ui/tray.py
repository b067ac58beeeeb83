"""The system-tray icon: its icon and tooltip carry the recording state, its menu the payment
buttons. Where the desktop has no tray (``isSystemTrayAvailable()`` false, e.g. offscreen) the
icon is never shown, but its state is still kept so the compact window and tests agree."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from callrec_desktop.ui.adapter import emit_signal
from callrec_desktop.ui.widgets import StateView, state_icon


class TrayIcon(QObject):
    """Owned by the main window (GUI thread). ``show_window_requested`` on a click."""

    show_window_requested = Signal()

    def __init__(self, parent: QWidget, actions: list[QAction | None]) -> None:
        super().__init__(parent)
        self.available = QSystemTrayIcon.isSystemTrayAvailable()
        self.icon = QSystemTrayIcon(parent)
        self.menu = QMenu(parent)
        show = self.menu.addAction("Show callrec-desktop")
        show.triggered.connect(self.show_window_requested)
        self.menu.addSeparator()
        for action in actions:
            if action is None:
                self.menu.addSeparator()
            else:
                self.menu.addAction(action)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._on_icon_activated)
        self.kind = ""
        self.tooltip = ""

    def start(self) -> None:
        if self.available:
            self.icon.show()

    def stop(self) -> None:
        self.icon.hide()

    def update_state(self, view: StateView, line: str | None) -> None:
        tooltip = f"callrec-desktop — {view.title}" + (f"\n{line}" if line else "")
        if view.kind != self.kind:
            self.kind = view.kind
            self.icon.setIcon(state_icon(view.kind))
        if tooltip != self.tooltip:
            self.tooltip = tooltip
            self.icon.setToolTip(tooltip)

    def _on_icon_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            emit_signal(self.show_window_requested)
