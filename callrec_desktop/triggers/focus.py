"""Pause for payment when a payment application's window takes the keyboard focus.

The agent types card details into a payment application (a browser page, a desktop client).
When a window whose title matches one of ``triggers.payment_window_titles`` gains focus during
a call, recording pauses for payment at once, before any digit is typed or read out.

It does not resume when the focus leaves that window: agents switch windows during a payment
(to look up the account, to read the caller's reference in the CRM) while card details are
still being given, so a focus change proves nothing about the payment being over. Only the
agent (Payment finished) or the payment software (control API) ends it.

Platforms: the focused window's title is read with ctypes, no extra packages.

* Linux/BSD on X11 (including XWayland): libX11. The root window's EWMH
  ``_NET_ACTIVE_WINDOW`` (set by every current window manager), then that window's
  ``_NET_WM_NAME`` (UTF-8) or ``WM_NAME``; without a window manager, ``XGetInputFocus``.
* Windows: ``GetForegroundWindow`` + ``GetWindowTextW``.
* Anything else (a Wayland session, macOS, no ``$DISPLAY``, no libX11): unsupported;
  ``focus_support()`` says why in a sentence for the Settings dialog.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from callrec_desktop.core.timeline import CallState, EventSource
from callrec_desktop.status import DeskError

if TYPE_CHECKING:  # the desk (and the audio stack) load after the window is shown
    from callrec_desktop.desk import Desk

log = logging.getLogger(__name__)

TitleProbe = Callable[[], "str | None"]

# ---- X11 through ctypes ---------------------------------------------------------------------

_Window = ctypes.c_ulong  # XID
_Atom = ctypes.c_ulong
_SUCCESS = 0
_XA_STRING = 31
_XA_WINDOW = 33
_XA_WM_NAME = 39
_ANY_PROPERTY_TYPE = 0
_POINTER_ROOT = 1
_MAX_PROPERTY_LONGS = 16384  # 64 KiB: far more than any title


class _XErrorEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("display", ctypes.c_void_p),
        ("resourceid", ctypes.c_ulong),
        ("serial", ctypes.c_ulong),
        ("error_code", ctypes.c_ubyte),
        ("request_code", ctypes.c_ubyte),
        ("minor_code", ctypes.c_ubyte),
    ]


_XErrorHandler = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(_XErrorEvent))

_xlib_lock = threading.Lock()  # Xlib's error handler is process-wide: one probe at a time swaps it
_xlib: ctypes.CDLL | None = None


def _load_xlib() -> ctypes.CDLL | None:
    """libX11 with the prototypes used here, or None when it is not installed."""
    global _xlib
    if _xlib is not None:
        return _xlib
    name = ctypes.util.find_library("X11")
    if name is None:
        return None
    try:
        x = ctypes.CDLL(name)
    except OSError:
        return None
    dp = ctypes.c_void_p
    x.XOpenDisplay.argtypes, x.XOpenDisplay.restype = [ctypes.c_char_p], dp
    x.XCloseDisplay.argtypes, x.XCloseDisplay.restype = [dp], ctypes.c_int
    x.XDefaultRootWindow.argtypes, x.XDefaultRootWindow.restype = [dp], _Window
    x.XInternAtom.argtypes, x.XInternAtom.restype = [dp, ctypes.c_char_p, ctypes.c_int], _Atom
    x.XGetWindowProperty.argtypes = [
        dp, _Window, _Atom, ctypes.c_long, ctypes.c_long, ctypes.c_int, _Atom,
        ctypes.POINTER(_Atom), ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_ulong),
        ctypes.POINTER(ctypes.c_ulong), ctypes.POINTER(ctypes.c_void_p),
    ]
    x.XGetWindowProperty.restype = ctypes.c_int
    x.XGetInputFocus.argtypes = [dp, ctypes.POINTER(_Window), ctypes.POINTER(ctypes.c_int)]
    x.XGetInputFocus.restype = ctypes.c_int
    x.XQueryTree.argtypes = [
        dp, _Window, ctypes.POINTER(_Window), ctypes.POINTER(_Window),
        ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_uint),
    ]
    x.XQueryTree.restype = ctypes.c_int
    x.XFree.argtypes, x.XFree.restype = [ctypes.c_void_p], ctypes.c_int
    x.XSync.argtypes, x.XSync.restype = [dp, ctypes.c_int], ctypes.c_int
    x.XSetErrorHandler.argtypes, x.XSetErrorHandler.restype = [ctypes.c_void_p], ctypes.c_void_p
    _xlib = x
    return x


class _X11Probe:
    """One open X connection; reads the focused window's title. Use from one thread."""

    def __init__(self, display_name: str) -> None:
        x = _load_xlib()
        if x is None:
            raise OSError("libX11 is not installed")
        self._x = x
        self._dpy = x.XOpenDisplay(display_name.encode())
        if not self._dpy:
            raise OSError(f"cannot open the X display {display_name!r}")
        self._root = x.XDefaultRootWindow(self._dpy)
        self._errors: list[int] = []
        # Kept referenced for as long as the probe lives: Xlib holds only the C pointer.
        self._handler = _XErrorHandler(self._on_x_error)
        self._previous_handler: int | None = None
        with self._x_errors_caught():
            self._net_active = x.XInternAtom(self._dpy, b"_NET_ACTIVE_WINDOW", 0)
            self._net_wm_name = x.XInternAtom(self._dpy, b"_NET_WM_NAME", 0)
            self._utf8 = x.XInternAtom(self._dpy, b"UTF8_STRING", 0)

    def close(self) -> None:
        if self._dpy:
            with _xlib_lock:
                previous = self._x.XSetErrorHandler(ctypes.cast(self._handler, ctypes.c_void_p))
                try:
                    self._x.XCloseDisplay(self._dpy)  # flushes: late errors must not exit the process
                finally:
                    self._x.XSetErrorHandler(previous)
            self._dpy = None

    def active_window_title(self) -> str | None:
        if not self._dpy:
            return None
        with self._x_errors_caught():
            window = self._active_window()
            if window is None:
                return None
            # Without a window manager the focus may sit on an unnamed child: walk up to a
            # named ancestor (at most a few levels).
            for _ in range(8):
                title = self._title(window)
                if title is not None or window in (0, self._root):
                    return title
                window = self._parent(window)
                if window is None:
                    return None
            return None

    # ---- X requests (caller holds the error handler) ------------------------------------
    def _active_window(self) -> int | None:
        prop = self._property(self._root, self._net_active, _XA_WINDOW)
        if prop is not None:  # a window manager keeps this up to date
            kind, fmt, data = prop
            if fmt != 32 or len(data) < ctypes.sizeof(ctypes.c_ulong):
                return None
            window = ctypes.c_ulong.from_buffer_copy(data[: ctypes.sizeof(ctypes.c_ulong)]).value
            return window or None
        focus, revert = _Window(0), ctypes.c_int(0)
        self._x.XGetInputFocus(self._dpy, ctypes.byref(focus), ctypes.byref(revert))
        if focus.value in (0, _POINTER_ROOT):  # None / PointerRoot: no window has the focus
            return None
        return focus.value

    def _title(self, window: int) -> str | None:
        prop = self._property(window, self._net_wm_name, self._utf8)
        if prop is not None and prop[1] == 8:
            return prop[2].decode("utf-8", errors="replace")
        prop = self._property(window, _XA_WM_NAME, _ANY_PROPERTY_TYPE)
        if prop is not None and prop[1] == 8:
            kind, _, data = prop
            if kind == self._utf8:
                return data.decode("utf-8", errors="replace")
            if kind == _XA_STRING:
                return data.decode("latin-1")
            return data.decode("utf-8", errors="replace")  # COMPOUND_TEXT: ASCII part is exact
        return None

    def _parent(self, window: int) -> int | None:
        root, parent = _Window(0), _Window(0)
        children, count = ctypes.c_void_p(), ctypes.c_uint(0)
        ok = self._x.XQueryTree(self._dpy, window, ctypes.byref(root), ctypes.byref(parent),
                                ctypes.byref(children), ctypes.byref(count))
        if children.value:
            self._x.XFree(children)
        if not ok or not parent.value:
            return None
        return parent.value

    def _property(self, window: int, atom: int, kind: int) -> tuple[int, int, bytes] | None:
        """(actual type, format, raw bytes) of a property, None if absent or on an X error.
        Format-32 items come back from Xlib as C longs (8 bytes on 64-bit systems)."""
        actual, fmt = _Atom(0), ctypes.c_int(0)
        nitems, after = ctypes.c_ulong(0), ctypes.c_ulong(0)
        data = ctypes.c_void_p()
        status = self._x.XGetWindowProperty(
            self._dpy, window, atom, 0, _MAX_PROPERTY_LONGS, 0, kind, ctypes.byref(actual),
            ctypes.byref(fmt), ctypes.byref(nitems), ctypes.byref(after), ctypes.byref(data),
        )
        try:
            if status != _SUCCESS or actual.value == 0 or not data.value:
                return None
            if fmt.value == 32:
                size = nitems.value * ctypes.sizeof(ctypes.c_ulong)
            else:
                size = nitems.value * (fmt.value // 8)
            return actual.value, fmt.value, ctypes.string_at(data.value, size)
        finally:
            if data.value:
                self._x.XFree(data)

    # ---- X errors ------------------------------------------------------------------------
    def _on_x_error(self, display: int, event) -> int:  # noqa: ANN001 - ctypes pointer
        """Xlib's error callback (runs inside our own Xlib calls, on the watcher thread)."""
        self._errors.append(int(event.contents.error_code))
        return 0

    class _Caught:
        def __init__(self, probe: _X11Probe) -> None:
            self.probe = probe

        def __enter__(self) -> None:
            _xlib_lock.acquire()
            p = self.probe
            p._errors.clear()
            # Xlib's default handler exits the process on any error (a window that vanished
            # between two requests gives BadWindow): swap in one that records, for the
            # duration of our requests only, so other Xlib users keep their own handler.
            p._previous_handler = p._x.XSetErrorHandler(ctypes.cast(p._handler, ctypes.c_void_p))

        def __exit__(self, *exc: object) -> None:
            p = self.probe
            try:
                if p._dpy:
                    p._x.XSync(p._dpy, 0)  # deliver our errors while our handler is in place
                p._x.XSetErrorHandler(p._previous_handler)
                if p._errors:
                    log.debug("X errors while reading the focused window (ignored): %s", p._errors)
            finally:
                _xlib_lock.release()

    def _x_errors_caught(self) -> _X11Probe._Caught:
        return _X11Probe._Caught(self)


# ---- Windows ---------------------------------------------------------------------------------


class _Win32Probe:
    def __init__(self) -> None:
        user32 = ctypes.windll.user32  # type: ignore[attr-defined]
        user32.GetForegroundWindow.argtypes, user32.GetForegroundWindow.restype = [], ctypes.c_void_p
        user32.GetWindowTextLengthW.argtypes = [ctypes.c_void_p]
        user32.GetWindowTextLengthW.restype = ctypes.c_int
        user32.GetWindowTextW.argtypes = [ctypes.c_void_p, ctypes.c_wchar_p, ctypes.c_int]
        user32.GetWindowTextW.restype = ctypes.c_int
        self._user32 = user32

    def active_window_title(self) -> str | None:
        hwnd = self._user32.GetForegroundWindow()
        if not hwnd:
            return None  # e.g. the secure desktop (UAC, lock screen) is showing
        length = self._user32.GetWindowTextLengthW(hwnd)
        buf = ctypes.create_unicode_buffer(length + 2)
        got = self._user32.GetWindowTextW(hwnd, buf, len(buf))
        return buf.value[:got] if got > 0 else ""

    def close(self) -> None:
        pass


# ---- public ----------------------------------------------------------------------------------


def focus_support(env: dict[str, str] | None = None) -> str | None:
    """None when the focused window's title can be read here; otherwise one sentence saying
    why the payment-window trigger cannot work on this computer (shown in Settings)."""
    env = dict(os.environ) if env is None else env
    if sys.platform == "win32":
        return None
    if sys.platform == "darwin":
        return "The payment-window trigger is not available on macOS; use the Payment button or the control API."
    display = env.get("DISPLAY", "")
    if not display:
        if env.get("WAYLAND_DISPLAY") or env.get("XDG_SESSION_TYPE") == "wayland":
            return ("The payment-window trigger needs X11: this Wayland session has no X server (XWayland), "
                    "and Wayland does not let applications see which window has focus.")
        return "The payment-window trigger needs an X11 display, and DISPLAY is not set."
    if _load_xlib() is None:
        return "The payment-window trigger needs the X11 library (libX11), which is not installed."
    try:
        probe = _X11Probe(display)
    except OSError as exc:
        return f"The payment-window trigger cannot reach the X display {display}: {exc}."
    probe.close()
    if env.get("WAYLAND_DISPLAY") or env.get("XDG_SESSION_TYPE") == "wayland":
        return ("The payment-window trigger cannot work in a Wayland session: it only sees applications "
                "running through XWayland, not native Wayland windows. Log in with an X11 (Xorg) session.")
    return None


class FocusProbe:
    """Reads the title of the window that has the keyboard focus, keeping one connection to
    the window system open until ``close()``. Use it from one thread (the watcher's).

    ``active_window_title()`` returns None when no window has focus or the platform is
    unsupported (see ``focus_support``).
    """

    def __init__(self, display: str | None = None) -> None:
        self._impl: _X11Probe | _Win32Probe | None = None
        if sys.platform == "win32":
            self._impl = _Win32Probe()
        elif sys.platform != "darwin":
            name = display if display is not None else os.environ.get("DISPLAY", "")
            if name:
                try:
                    self._impl = _X11Probe(name)
                except OSError as exc:
                    log.warning("focused window cannot be read: %s", exc)

    @property
    def supported(self) -> bool:
        return self._impl is not None

    def active_window_title(self) -> str | None:
        return None if self._impl is None else self._impl.active_window_title()

    def close(self) -> None:
        if self._impl is not None:
            self._impl.close()
            self._impl = None

    def __enter__(self) -> FocusProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def active_window_title() -> str | None:
    """The focused window's title on this platform, or None (no focus, or unsupported).
    One-off: opens and closes a connection; pollers keep a ``FocusProbe`` instead."""
    with FocusProbe() as probe:
        return probe.active_window_title()


class FocusWatcher:
    """A thread that polls the focused window's title every ``poll_ms`` and calls
    ``on_payment_window(title)`` when the focus moves onto a window whose title matches any
    of ``patterns`` (``re.search``, case-insensitive): once per focus change, not again while
    the focus stays. A change of title counts as a change of focus (a payment page's next
    step may pause again: the safe side, and the desk ignores it while paused).

    ``probe``: a callable returning the focused title (or None); by default a ``FocusProbe``
    opened and closed on the watcher's own thread.
    """

    def __init__(self, patterns: Sequence[str], poll_ms: int, on_payment_window: Callable[[str], None],
                 probe: TitleProbe | None = None) -> None:
        if poll_ms <= 0:
            raise ValueError(f"poll_ms must be positive, got {poll_ms}")
        self._patterns = [re.compile(p, re.IGNORECASE) for p in patterns]
        self._poll = poll_ms / 1000
        self._on_payment_window = on_payment_window
        self._probe = probe
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: str | None = None

    def matches(self, title: str | None) -> bool:
        return title is not None and any(p.search(title) for p in self._patterns)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("FocusWatcher already started")
        self._thread = threading.Thread(target=self._run, name="callrec-focus", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling and join the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def poll_once(self, title: str | None) -> None:
        """Handle one observed title (the thread's step; public for synchronous tests)."""
        if title == self._last:
            return
        self._last = title
        if self.matches(title):
            assert title is not None
            try:
                self._on_payment_window(title)
            except Exception:
                log.exception("payment window handler failed")

    def _run(self) -> None:
        """Runs on the focus thread."""
        own: FocusProbe | None = None
        probe = self._probe
        if probe is None:
            own = FocusProbe()
            if not own.supported:
                log.warning("payment-window trigger off: %s", focus_support() or "the focused window cannot be read")
                own.close()
                return
            probe = own.active_window_title
        try:
            while not self._stop.is_set():
                try:
                    title = probe()
                except Exception:
                    log.exception("reading the focused window failed")
                    title = None
                self.poll_once(title)
                self._stop.wait(self._poll)
        finally:
            if own is not None:
                own.close()


class FocusPaymentTrigger:
    """Starts the payment pause (source ``automatic``) when a payment window takes focus
    during a recorded call. Never ends it: see the module docstring."""

    def __init__(self, desk: Desk, patterns: Sequence[str], poll_ms: int, probe: TitleProbe | None = None) -> None:
        self._desk = desk
        self.watcher = FocusWatcher(patterns, poll_ms, self._on_payment_window, probe)

    def start(self) -> None:
        self.watcher.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.watcher.stop(timeout)

    def _on_payment_window(self, title: str) -> None:
        """Runs on the focus thread."""
        if self._desk.status().state is not CallState.RECORDING:
            return  # idle, ended, or already paused
        log.info("payment window %r has focus: pausing for payment", title)
        try:
            self._desk.take_payment(
                source=EventSource.AUTOMATIC,
                notice=f"Payment window '{title}' has focus: recording paused for payment.",
            )
        except DeskError as exc:
            log.warning("automatic payment pause refused: %s", exc)
