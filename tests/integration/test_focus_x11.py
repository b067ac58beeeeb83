"""The real X11 focus probe against a real X server (Xvfb), windows made through libX11.

Xvfb runs no window manager, so nobody maintains the root window's ``_NET_ACTIVE_WINDOW``:
the test sets that property itself, exactly as an EWMH window manager does when the focus
moves (a 32-bit WINDOW property on the root holding the active client window). Without the
property the probe falls back to ``XGetInputFocus``, which the test drives with
``XSetInputFocus``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time

import pytest

from callrec_desktop.triggers import focus
from tests.support.xvfb import XvfbError, start_xvfb, stop_xvfb
from callrec_desktop.triggers.focus import FocusProbe, FocusWatcher, active_window_title, focus_support



@pytest.fixture(scope="module")
def xvfb():
    """A private Xvfb (display picked by Xvfb itself); killed at teardown."""
    try:
        proc, display = start_xvfb("800x600x24")
    except XvfbError as exc:
        pytest.fail(str(exc))
    try:
        yield display
    finally:
        stop_xvfb(proc)
        proc.stderr.close()


class _Client:
    """A minimal X client (what an application and a window manager do), through libX11."""

    def __init__(self, display: str) -> None:
        x = ctypes.CDLL(ctypes.util.find_library("X11"))
        vp, ul = ctypes.c_void_p, ctypes.c_ulong
        x.XOpenDisplay.argtypes, x.XOpenDisplay.restype = [ctypes.c_char_p], vp
        x.XDefaultRootWindow.argtypes, x.XDefaultRootWindow.restype = [vp], ul
        x.XCreateSimpleWindow.argtypes = [vp, ul, ctypes.c_int, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                          ctypes.c_uint, ul, ul]
        x.XCreateSimpleWindow.restype = ul
        x.XStoreName.argtypes = [vp, ul, ctypes.c_char_p]
        x.XInternAtom.argtypes, x.XInternAtom.restype = [vp, ctypes.c_char_p, ctypes.c_int], ul
        x.XChangeProperty.argtypes = [vp, ul, ul, ul, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
        x.XDeleteProperty.argtypes = [vp, ul, ul]
        x.XMapWindow.argtypes = [vp, ul]
        x.XDestroyWindow.argtypes = [vp, ul]
        x.XSetInputFocus.argtypes = [vp, ul, ctypes.c_int, ul]
        x.XSync.argtypes = [vp, ctypes.c_int]
        x.XCloseDisplay.argtypes = [vp]
        self.x = x
        self.dpy = x.XOpenDisplay(display.encode())
        assert self.dpy, f"cannot open {display}"
        self.root = x.XDefaultRootWindow(self.dpy)
        self.net_active = x.XInternAtom(self.dpy, b"_NET_ACTIVE_WINDOW", 0)
        self.net_wm_name = x.XInternAtom(self.dpy, b"_NET_WM_NAME", 0)
        self.utf8 = x.XInternAtom(self.dpy, b"UTF8_STRING", 0)

    def window(self, title: str | None, *, net_wm_name: bool = True) -> int:
        w = self.x.XCreateSimpleWindow(self.dpy, self.root, 10, 10, 200, 100, 1, 0, 0xFFFFFF)
        if title is not None:
            self.x.XStoreName(self.dpy, w, title.encode("latin-1", errors="replace"))  # WM_NAME is STRING
            if net_wm_name:
                raw = title.encode("utf-8")
                self.x.XChangeProperty(self.dpy, w, self.net_wm_name, self.utf8, 8, 0, raw, len(raw))
        self.x.XMapWindow(self.dpy, w)
        self.x.XSync(self.dpy, 0)
        return w

    def set_active(self, window: int) -> None:
        """What an EWMH window manager does when the focus moves."""
        value = (ctypes.c_ulong * 1)(window)  # format-32 data is passed as C longs
        self.x.XChangeProperty(self.dpy, self.root, self.net_active, 33, 32, 0, value, 1)  # 33: XA_WINDOW
        self.x.XSync(self.dpy, 0)

    def drop_active(self) -> None:
        self.x.XDeleteProperty(self.dpy, self.root, self.net_active)
        self.x.XSync(self.dpy, 0)

    def focus(self, window: int) -> None:
        self.x.XSetInputFocus(self.dpy, window, 2, 0)  # RevertToParent, CurrentTime
        self.x.XSync(self.dpy, 0)

    def destroy(self, window: int) -> None:
        self.x.XDestroyWindow(self.dpy, window)
        self.x.XSync(self.dpy, 0)

    def close(self) -> None:
        self.x.XCloseDisplay(self.dpy)


@pytest.fixture
def x11(xvfb, monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("XDG_SESSION_TYPE", raising=False)
    client = _Client(xvfb)
    yield client
    client.drop_active()
    client.close()


def test_the_active_window_title_follows_net_active_window(x11):
    crm = x11.window("Contact centre CRM - Firefox")
    pay = x11.window("Take a Payment – Pay360 (Straße, 5 £, café ✓)")
    assert focus_support() is None
    x11.set_active(crm)
    assert active_window_title() == "Contact centre CRM - Firefox"
    with FocusProbe() as probe:  # one connection, polled repeatedly
        assert probe.active_window_title() == "Contact centre CRM - Firefox"
        x11.set_active(pay)
        assert probe.active_window_title() == "Take a Payment – Pay360 (Straße, 5 £, café ✓)"
        x11.set_active(crm)
        assert probe.active_window_title() == "Contact centre CRM - Firefox"
        x11.set_active(0)  # EWMH: None when no window is active
        assert probe.active_window_title() is None


def test_wm_name_is_used_when_there_is_no_net_wm_name(x11):
    old = x11.window("Pay360 Caf\u00e9 terminal", net_wm_name=False)  # WM_NAME only, Latin-1 STRING
    x11.set_active(old)
    assert active_window_title() == "Pay360 Café terminal"


def test_without_a_window_manager_the_input_focus_is_read(x11):
    a = x11.window("Council Tax account")
    b = x11.window("Card payment – Capita")
    x11.drop_active()
    with FocusProbe() as probe:
        x11.focus(a)
        assert probe.active_window_title() == "Council Tax account"
        x11.focus(b)
        assert probe.active_window_title() == "Card payment – Capita"
        x11.focus(1)  # PointerRoot: no window holds the focus
        assert probe.active_window_title() is None


def test_a_vanished_window_gives_none_and_the_probe_keeps_working(x11):
    """The active window can be destroyed between two requests: X errors (BadWindow) must be
    absorbed, not end the process (Xlib's default error handler exits)."""
    gone = x11.window("short-lived dialog")
    keep = x11.window("Take a payment")
    with FocusProbe() as probe:
        x11.set_active(gone)
        x11.destroy(gone)
        assert probe.active_window_title() is None
        x11.set_active(0xDEAD001)  # never existed
        assert probe.active_window_title() is None
        x11.set_active(keep)
        assert probe.active_window_title() == "Take a payment"


def test_the_watcher_with_the_real_probe_reports_focus_moving_onto_a_payment_window(x11):
    crm = x11.window("CRM")
    pay = x11.window("Capita Pay - card entry")
    x11.set_active(crm)
    seen: list[str] = []
    watcher = FocusWatcher(["capita pay"], 20, seen.append)  # default probe: FocusProbe on its thread
    watcher.start()
    try:
        time.sleep(0.1)
        x11.set_active(pay)
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # staying on it must not report again
    finally:
        watcher.stop()
    assert seen == ["Capita Pay - card entry"]


def test_support_is_explained_when_x11_cannot_be_used(monkeypatch):
    assert "DISPLAY" in focus_support({})
    wayland = focus_support({"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"})
    assert wayland is not None and "Wayland" in wayland
    assert "cannot reach the X display :199" in focus_support({"DISPLAY": ":199"})
    monkeypatch.setattr(focus, "_load_xlib", lambda: None)
    assert "libX11" in focus_support({"DISPLAY": ":0"})
    monkeypatch.delenv("DISPLAY", raising=False)
    with FocusProbe() as probe:
        assert not probe.supported and probe.active_window_title() is None
