"""The system-tray icon: its icon and tooltip carry the recording state and the warnings, its
menu the payment buttons, and a fault that appears is announced as a desktop notification
(the window may be behind the softphone or CRM). Where the desktop has no tray
(``isSystemTrayAvailable()`` false, e.g. offscreen) the icon is never shown, but its state
and the notifications it would show are still kept, so the compact window and tests agree.

Data is shown as text: the tooltip goes through ``safe_tooltip`` (Qt renders a tooltip that
looks like markup as rich text), and a notification's message is escaped where the desktop's
notification server reads markup in it (freedesktop notifications: Linux and other X11/Wayland
desktops), so a line, department or fault message holding ``<img …>`` is shown, not loaded.
``tooltip`` and ``notifications`` keep the texts as the user reads them."""

from __future__ import annotations

import html
import sys
import time

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from callrec_desktop.ui.adapter import emit_signal
from callrec_desktop.ui.widgets import StateView, safe_tooltip, state_icon


NOTIFY_AGAIN_AFTER_SECONDS = 300.0


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
        self.title = ""
        self.line: str | None = None
        self.warnings: tuple[str, ...] = ()
        self.notifications: list[tuple[str, str]] = []  # (title, message), as shown or as they would be
        self._notified_at: dict[str, float] = {}  # title -> time.monotonic() it was last announced

    def start(self) -> None:
        if self.available:
            self.icon.show()

    def stop(self) -> None:
        self.icon.hide()

    def update_state(self, view: StateView, line: str | None) -> None:
        if view.kind != self.kind:
            self.kind = view.kind
            self.icon.setIcon(state_icon(view.kind))
        self.title, self.line = view.title, line
        self._set_tooltip()

    def set_warnings(self, warnings: list[str]) -> None:
        self.warnings = tuple(warnings)
        self._set_tooltip()

    def notify(self, title: str, message: str, *, again_after: float = NOTIFY_AGAIN_AFTER_SECONDS) -> bool:
        """Announce a fault, unless the same one was announced less than ``again_after``
        seconds ago (a network that comes and goes must not flood the desktop). True if shown."""
        now = time.monotonic()
        last = self._notified_at.get(title)
        if last is not None and now - last < again_after:
            return False
        self._notified_at[title] = now
        self.notifications.append((title, message))
        if self.available:
            self.icon.showMessage(title, notification_body(message), QSystemTrayIcon.MessageIcon.Warning, 10_000)
        return True

    def _set_tooltip(self) -> None:
        parts = [f"callrec-desktop — {self.title}", self.line or "",
                 *(f"⚠ {w}" for w in self.warnings)]
        tooltip = "\n".join(p for p in parts if p)
        if tooltip != self.tooltip:
            self.tooltip = tooltip
            self.icon.setToolTip(safe_tooltip(tooltip))

    def _on_icon_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            emit_signal(self.show_window_requested)


def notification_body(message: str) -> str:
    """``message`` as the body of a desktop notification, never read as markup.

    Where Qt sends it to a freedesktop notification server (GNOME, KDE, XFCE…: Linux with a
    StatusNotifier tray), the server reads a small HTML subset, ``<img>`` included, in the
    body; where Qt draws its own balloon (no such tray, Windows, macOS) the body is plain text.
    Which one Qt uses cannot be asked from here (QtDBus is not in the bundle), so on Linux a
    message holding ``<`` or ``>`` is escaped: literal on a notification server, visibly
    escaped (``&lt;``) in a balloon, and a tag in neither. Any other message is left as it is
    (an ``&`` alone is not markup a server acts on)."""
    if sys.platform in ("win32", "darwin") or not ("<" in message or ">" in message):
        return message
    return html.escape(message, quote=False)
