"""A private Xvfb for tests, screenshots and benchmarks.

Xvfb picks a free display number itself (``-displayfd``) and reports it on a pipe, so two
runs on one machine can never race for the same number."""

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


def start_xvfb(screen: str = "1280x800x24", timeout: float = 10.0) -> tuple[subprocess.Popen, str]:
    """Start Xvfb; returns the process (its own session: kill with ``os.killpg``) and the
    display, e.g. ``":93"``, once its socket exists. Raises XvfbError naming what failed."""
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
