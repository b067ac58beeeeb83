#!/usr/bin/env python3
"""Smoke test of the PyInstaller bundle (Friture's scripts/smoke_test.py, for ours).

    .venv/bin/python scripts/smoke_bundle.py [--bundle dist/callrec-desktop]

Runs the frozen programs with every XDG folder (settings, data, logs) and HOME in a temporary
folder, no D-Bus session (so no real keyring is touched) and no audio server, and checks:

1. ``callrec --version`` and ``callrec-desktop --version`` print the package's version;
2. ``callrec-desktop --self-test`` (offscreen): the real window, desk, recorder, spool, uploader
   and folder store over 2 s of generated audio: prints ``self-test: ok``;
3. ``callrec-desktop -v`` (offscreen) starts for real (no microphone: the fault banner), logs
   ``window shown``, and exits 0 on SIGTERM;
4. ``callrec demo`` records the bundled demo call (libsndfile FLAC, Opus via PyAV) into the
   embedded store, and ``callrec verify`` accepts it;
5. ``callrec-desktop --demo --exit-when-done`` (offscreen, 8x speed) plays the demo through the
   window and the DTMF trigger: prints ``demo: ok``;
6. ``callrec record --source device`` reaches PortAudio (no device here: "PortAudio found
   none", not "PortAudio library not found"); as root with ``unshare``, once more with the
   system's libportaudio hidden from the linker and its cache, so the bundled copy must be
   found and loaded (this fails without packaging/rthooks/pyi_rth_callrec_portaudio.py);
7. ``callrec ls --store s3://...`` against a closed port: botocore's S3 model is in the bundle
   (a connection error, not UnknownServiceError/DataNotFoundError).

Every output is scanned for fatal markers ("ModuleNotFoundError", "could not load the Qt
platform plugin", "PortAudio library not found", "Traceback", ...). Exits 0 if all pass, else 1
naming the first failure and showing its output.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FATAL_MARKERS = (
    "ModuleNotFoundError",
    "ImportError",
    "could not load the Qt platform plugin",
    "PortAudio library not found",
    "Traceback",
    "Failed to execute script",
    "[PYI-",  # PyInstaller bootloader errors
    "UnknownServiceError",
    "DataNotFoundError",
    "cannot open shared object file",
    "unexpected error",
)
TIMEOUT_S = 120


class SmokeFailure(Exception):
    pass


def version() -> str:
    sys.path.insert(0, str(REPO))
    from callrec_desktop import __version__

    return __version__


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Smoke:
    def __init__(self, bundle: Path, root: Path) -> None:
        self.bundle = bundle
        self.root = root
        self.gui = bundle / "callrec-desktop"
        self.cli = bundle / "callrec"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PULSE_", "DBUS_", "XDG_", "QT_", "CALLREC_", "AWS_", "PYTHON", "LD_"))}
        home = root / "home"
        for sub in ("home", "config", "data", "state", "cache", "etc", "run"):
            (root / sub).mkdir(mode=0o700)
        env.update(HOME=str(home), XDG_CONFIG_HOME=str(root / "config"), XDG_DATA_HOME=str(root / "data"),
                   XDG_STATE_HOME=str(root / "state"), XDG_CACHE_HOME=str(root / "cache"),
                   XDG_CONFIG_DIRS=str(root / "etc"), XDG_RUNTIME_DIR=str(root / "run"),
                   QT_QPA_PLATFORM="offscreen")
        self.env = env
        self.store = root / "data" / "callrec-desktop" / "store"
        self.settings = root / "smoke-settings.toml"
        # a free control API port: a callrec-desktop already running on this PC keeps its own
        self.settings.write_text(f"[control]\nport = {free_port()}\n", encoding="utf-8")
        self.passed: list[str] = []

    # ---- helpers ------------------------------------------------------------------------------
    def run(self, what: str, argv: list, *, ok_codes=(0,), prefix: list | None = None,
            timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
        started = time.monotonic()
        try:
            proc = subprocess.run([*(prefix or []), *map(str, argv)], env=self.env, cwd=self.root,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise SmokeFailure(f"{what}: no exit within {timeout:.0f} s\n{_show(exc.stdout, exc.stderr)}") from None
        self.check_output(what, proc.stdout, proc.stderr)
        if proc.returncode not in ok_codes:
            raise SmokeFailure(f"{what}: exit status {proc.returncode}, expected {ok_codes}\n"
                               f"{_show(proc.stdout, proc.stderr)}")
        print(f"smoke: ok   {what} ({time.monotonic() - started:.1f} s)", flush=True)
        self.passed.append(what)
        return proc

    @staticmethod
    def check_output(what: str, stdout, stderr) -> None:
        text = f"{_text(stdout)}\n{_text(stderr)}"
        low = text.lower()
        for marker in FATAL_MARKERS:
            if marker.lower() in low:
                raise SmokeFailure(f"{what}: fatal marker {marker!r} in the output\n{_show(stdout, stderr)}")

    # ---- checks -------------------------------------------------------------------------------
    def versions(self, want: str) -> None:
        for exe, name in ((self.cli, "callrec"), (self.gui, "callrec-desktop")):
            out = self.run(f"{name} --version", [exe, "--version"]).stdout.strip()
            if out != f"{name} {want}":
                raise SmokeFailure(f"{name} --version printed {out!r}, expected '{name} {want}'")

    def self_test(self) -> None:
        out = self.run("callrec-desktop --self-test", [self.gui, "--self-test"]).stdout
        if "self-test: ok" not in out:
            raise SmokeFailure(f"callrec-desktop --self-test did not report ok\n{_show(out, '')}")

    def window_starts(self) -> None:
        """The real start path, offscreen: up until 'window shown', then SIGTERM closes it cleanly."""
        what = "callrec-desktop starts, shows its window, exits 0 on SIGTERM"
        started = time.monotonic()
        proc = subprocess.Popen([str(self.gui), "-v", "--config", str(self.settings)], env=self.env, cwd=self.root,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines: list[str] = []
        try:
            deadline = time.monotonic() + TIMEOUT_S
            assert proc.stdout is not None
            for line in proc.stdout:  # stderr is merged; the log's INFO lines go there with -v
                lines.append(line)
                if "window shown" in line:
                    break
                if time.monotonic() > deadline:
                    break
            else:
                raise SmokeFailure(f"{what}: exited ({proc.wait()}) before 'window shown'\n{''.join(lines)}")
            if not any("window shown" in line for line in lines):
                raise SmokeFailure(f"{what}: no 'window shown' within {TIMEOUT_S} s\n{''.join(lines)}")
            proc.send_signal(signal.SIGTERM)
            rest, _ = proc.communicate(timeout=30)
            lines.append(rest)
        except subprocess.TimeoutExpired:
            raise SmokeFailure(f"{what}: did not exit within 30 s of SIGTERM\n{''.join(lines)}") from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        text = "".join(lines)
        self.check_output(what, text, "")
        if proc.returncode != 0:
            raise SmokeFailure(f"{what}: exit status {proc.returncode}\n{text}")
        print(f"smoke: ok   {what} ({time.monotonic() - started:.1f} s)", flush=True)
        self.passed.append(what)

    def cli_demo(self) -> None:
        out = self.run("callrec demo", [self.cli, "demo"]).stdout
        try:
            result = json.loads(out.splitlines()[0])
        except (IndexError, json.JSONDecodeError):
            raise SmokeFailure(f"callrec demo printed no JSON result\n{_show(out, '')}") from None
        if result.get("end_reason") != "transferred" or result.get("transferred_to") != "Housing" \
                or result.get("pauses") != 1 or not result.get("uploaded"):
            raise SmokeFailure(f"callrec demo: unexpected result {result}")
        self.run("callrec verify (the demo call)", [self.cli, "verify", "--store", self.store])

    def window_demo(self) -> None:
        out = self.run("callrec-desktop --demo --exit-when-done",
                       [self.gui, "--demo", "--exit-when-done", "--demo-speed", "8"]).stdout
        if "demo: ok" not in out:
            raise SmokeFailure(f"callrec-desktop --demo did not report ok\n{_show(out, '')}")

    def portaudio(self) -> None:
        script = self.root / "device-call.json"
        script.write_text(json.dumps([{"at": 0, "event": "call_started", "line": "01443 425002"},
                                      {"at": 0.5, "event": "call_ended"}]), encoding="utf-8")
        (self.root / "device-store").mkdir(exist_ok=True)
        argv = [self.cli, "record", "--source", "device", "--script", script, "--store", self.root / "device-store",
                "--spool", self.root / "device-spool"]
        # 0: a device was there and recorded; 1: "no audio input device" (PortAudio loaded, found none)
        proc = self.run("callrec record --source device (PortAudio loads)", argv, ok_codes=(0, 1))
        _expect_portaudio_loaded(proc)
        hide = hidden_system_portaudio(self.root)
        if hide is None:
            print("smoke: skip the bundled-PortAudio-only check (needs root, unshare and the system "
                  "libportaudio.so.2)", flush=True)
            return
        proc = self.run("callrec record --source device, system PortAudio hidden (the bundled one loads)", argv,
                        ok_codes=(0, 1), prefix=hide)
        _expect_portaudio_loaded(proc)

    def s3_model(self) -> None:
        self.env.update(AWS_ACCESS_KEY_ID="smoke-test", AWS_SECRET_ACCESS_KEY="smoke-test")
        try:
            proc = self.run("callrec ls --store s3://... (botocore's S3 model is bundled)",
                            [self.cli, "ls", "--store", "s3://smoke-bucket/calls", "--endpoint-url",
                             f"http://127.0.0.1:{free_port()}"], ok_codes=(1,), timeout=60)
        finally:
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                self.env.pop(key, None)
        if "Could not connect" not in proc.stderr:
            raise SmokeFailure(f"callrec ls against a closed port: expected a connection error\n"
                               f"{_show(proc.stdout, proc.stderr)}")


def _expect_portaudio_loaded(proc: subprocess.CompletedProcess) -> None:
    if proc.returncode == 1 and "PortAudio found none" not in proc.stderr:
        raise SmokeFailure(f"callrec record --source device failed, but not for want of a device\n"
                           f"{_show(proc.stdout, proc.stderr)}")


def hidden_system_portaudio(scratch: Path) -> list[str] | None:
    """A command prefix running its command in a private mount namespace where the system's
    libportaudio is an empty file and the dynamic linker's cache (what ``ldconfig -p`` and so
    ``find_library`` read) is rebuilt without it: a PC without libportaudio2, as far as
    finding and loading it goes. None when that cannot be done here (not root, no unshare)."""
    import ctypes.util

    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ldconfig") is None:
        return None
    name = ctypes.util.find_library("portaudio")
    candidates = [Path(d) / (name or "libportaudio.so.2") for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64",
                                                                    "/usr/lib", "/lib/x86_64-linux-gnu")]
    real = next((p.resolve() for p in candidates if p.exists()), None)
    if real is None or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        return None
    cache = scratch / "ld.so.cache"
    # ldconfig -X: never touch the system's symlinks; -C: write the cache to our file only.
    hide = (f'mount --bind /dev/null "{real}" && {{ ldconfig -X -C "{cache}" 2>/dev/null; true; }} && '
            f'mount --bind "{cache}" /etc/ld.so.cache && '
            f'if ldconfig -p | grep -q libportaudio; then echo "smoke: could not hide PortAudio" >&2; exit 97; fi && '
            'exec "$0" "$@"')
    return ["unshare", "-m", "sh", "-c", hide]


def _text(data) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def _show(stdout, stderr, limit: int = 6000) -> str:
    text = f"--- stdout ---\n{_text(stdout)}\n--- stderr ---\n{_text(stderr)}"
    return text if len(text) <= limit else f"...{text[-limit:]}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=REPO / "dist" / "callrec-desktop",
                   help="the one-folder bundle (default: dist/callrec-desktop)")
    args = p.parse_args()
    bundle = args.bundle.resolve()
    for exe in ("callrec-desktop", "callrec"):
        if not os.access(bundle / exe, os.X_OK):
            print(f"smoke: FAILED: {bundle / exe} not found; build it with scripts/build_bundle.sh", file=sys.stderr)
            return 1
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="callrec-smoke-") as tmp:
        smoke = Smoke(bundle, Path(tmp))
        try:
            smoke.versions(version())
            smoke.self_test()
            smoke.window_starts()
            smoke.cli_demo()
            smoke.window_demo()
            smoke.portaudio()
            smoke.s3_model()
        except SmokeFailure as exc:
            print(f"smoke: FAILED: {exc}", file=sys.stderr, flush=True)
            return 1
    print(f"smoke: all {len(smoke.passed)} checks passed in {time.monotonic() - started:.0f} s ({bundle})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
