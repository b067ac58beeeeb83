"""A private Xvfb for tests, screenshots and benchmarks.

Xvfb picks a free display number itself (``-displayfd``) and reports it on a pipe, so two
runs on one machine can never race for the same number. A server counts as started only once
an X client has opened it: another Xvfb exiting on the same number at the same moment can
remove the new one's socket (seen once as "cannot open :0" under parallel runs); such a start
is retried on a fresh server."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from pathlib import Path

APT_HINT = "sudo apt-get install -y --no-install-recommends xvfb"


class XvfbError(RuntimeError):
    pass


def start_xvfb(screen: str = "1280x800x24", timeout: float = 10.0, attempts: int = 3) -> tuple[subprocess.Popen, str]:
    """Start Xvfb; returns the process (its own session: kill with ``os.killpg``) and the
    display, e.g. ``":93"``, once an X client can open it (up to ``attempts`` fresh servers).
    Raises XvfbError naming what failed."""
    last: XvfbError | None = None
    for _ in range(max(1, attempts)):
        proc, display = _start_once(screen, timeout)
        if _opens(display, proc, deadline=time.monotonic() + 3.0):
            return proc, display
        err = proc.stderr.read().decode(errors="replace").strip() if proc.poll() is not None else "still running"
        stop_xvfb(proc)
        last = XvfbError(f"Xvfb on {display} could not be opened by an X client ({err})")
    assert last is not None
    raise last


def _opens(display: str, proc: subprocess.Popen, deadline: float) -> bool:
    """True once XOpenDisplay(display) succeeds (libX11 through ctypes), False if the server
    died or the deadline passed."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("X11")
    if name is None:  # no libX11 here: the socket check in _start_once is all we can do
        return True
    x = ctypes.CDLL(name)
    x.XOpenDisplay.argtypes, x.XOpenDisplay.restype = [ctypes.c_char_p], ctypes.c_void_p
    x.XCloseDisplay.argtypes = [ctypes.c_void_p]
    while proc.poll() is None:
        dpy = x.XOpenDisplay(display.encode())
        if dpy:
            x.XCloseDisplay(dpy)
            return True
        if time.monotonic() > deadline:
            return False
        select.select([], [], [], 0.05)
    return False


def _start_once(screen: str, timeout: float) -> tuple[subprocess.Popen, str]:
    binary = shutil.which("Xvfb")
    if binary is None:
        raise XvfbError(f"Xvfb is not installed; install it with: {APT_HINT}")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen([binary, "-displayfd", str(write_fd), "-screen", "0", screen, "-nolisten", "tcp"],
                            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    os.close(write_fd)
    deadline = time.monotonic() + timeout
    text = b""
    try:
        while not text.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([read_fd], [], [], remaining)[0]:
                raise XvfbError(f"Xvfb did not report a display within {timeout} s")
            chunk = os.read(read_fd, 16)
            if not chunk:
                err = proc.stderr.read().decode(errors="replace") if proc.poll() is not None else ""
                raise XvfbError(f"Xvfb exited before reporting a display: {err.strip()}")
            text += chunk
        display = f":{int(text)}"
        socket = Path(f"/tmp/.X11-unix/X{int(text)}")
        while not socket.exists():  # the number is reported as the server starts listening
            if time.monotonic() > deadline:
                raise XvfbError(f"Xvfb {display} did not create {socket} within {timeout} s")
            select.select([], [], [], 0.02)
        return proc, display
    except BaseException:
        stop_xvfb(proc)
        raise
    finally:
        os.close(read_fd)


def stop_xvfb(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
