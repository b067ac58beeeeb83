#!/usr/bin/env python3
"""Start-up time of the call handler's window, as a ratio to a bare PySide6 window, and memory.

    .venv/bin/python bench/bench_startup.py                  # N=5, offscreen and (if Xvfb) xcb
    .venv/bin/python bench/bench_startup.py --runs 9 --platforms offscreen
    .venv/bin/python bench/bench_startup.py --bundle dist/callrec-desktop   # also the frozen app

Start-up = from spawning the process to its "window shown" line on stderr: the app logs it
(``-v`` puts INFO on stderr) from a ``QTimer.singleShot(0)`` queued right after
``window.show()``, i.e. on the event loop's first turn; the baseline (a QMainWindow with a
QLabel, same interpreter, same flags) prints it the same way. Every run gets fresh XDG folders
(so no saved geometry or log to reuse) and one unmeasured warm-up run per variant fills the
page cache. Medians of ``--runs``; the ratio is app / bare in the same run.

A second baseline, "PySide6 window, app's Qt classes", is the bare window after importing the
Qt classes the app's window uses (listed by a probe run of the real app, so it cannot drift):
PySide6 builds each class, and its Python enums, on first import, and the ``Qt`` namespace
alone has 93 of them. A third, "... and the app's libraries", also imports every other module
the app has loaded by then except ours (the standard library for settings and logging,
platformdirs, ...): the app's ratio to it is what our own code costs.

Memory (RSS, psutil, offscreen): the bare window; the app idle (started normally; this machine
has no microphone, so it shows the no-device banner and captures nothing); the app recording
a call (``--demo``: the bundled demo call through the real desk, recorder, encoder, DTMF
trigger, spool and uploader; maximum RSS sampled every 0.25 s over the first 20 s of the call).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # for tests.support.xvfb: `python bench/x.py` puts bench/ first
    sys.path.insert(0, str(ROOT))

MARKER = "window shown"

BARE = f"""
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow
app = QApplication(sys.argv)
w = QMainWindow()
w.setCentralWidget(QLabel("bare PySide6 window"))
w.resize(760, 660)
w.show()
QTimer.singleShot(0, lambda: print("{MARKER}", file=sys.stderr, flush=True))
sys.exit(app.exec())
"""
APP = "import sys; from callrec_desktop.app import main; sys.exit(main())"

# Which PySide6 classes the app's window makes PySide6 create (each on first import, with its
# enums) by the time it is shown: run the real app, list them on the event loop's first turn.
PROBE = """
import os, sys
import PySide6.QtCore, PySide6.QtGui, PySide6.QtWidgets
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
MODULES = ("PySide6.QtCore", "PySide6.QtGui", "PySide6.QtWidgets")
before = {m: set(vars(sys.modules[m])) for m in MODULES}
app = QApplication(sys.argv)
loaded = set(sys.modules)

def dump():
    for m in MODULES:
        names = sorted(n for n in set(vars(sys.modules[m])) - before[m] if n.startswith("Q"))
        print(m, " ".join(names), flush=True)
    libraries = sorted(m for m in set(sys.modules) - loaded
                       if not m.startswith(("callrec_desktop", "__main__")) and sys.modules[m] is not None)
    print("LIBRARIES", " ".join(libraries), flush=True)
    os._exit(0)

QTimer.singleShot(0, dump)  # queued before the app's own first-turn jobs
from callrec_desktop.app import main
main(["-v"])
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_env(base: dict, root: Path, platform: str) -> dict:
    env = {k: v for k, v in base.items() if not k.startswith(("XDG_", "CALLREC_", "PULSE_", "DBUS_", "QT_"))}
    for sub in ("config", "data", "state", "cache", "etc", "run"):
        (root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    env.update(XDG_CONFIG_HOME=str(root / "config"), XDG_DATA_HOME=str(root / "data"),
               XDG_STATE_HOME=str(root / "state"), XDG_CACHE_HOME=str(root / "cache"),
               XDG_CONFIG_DIRS=str(root / "etc"), XDG_RUNTIME_DIR=str(root / "run"), QT_QPA_PLATFORM=platform)
    settings = root / "bench-settings.toml"
    settings.write_text(f"[control]\nport = {free_port()}\n", encoding="utf-8")
    env["CALLREC_CONFIG"] = str(settings)
    return env


def start(argv: list[str], env: dict) -> tuple[subprocess.Popen, float]:
    """Spawn; return the process and the seconds until its "window shown" line."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if MARKER in line:
            return proc, time.monotonic() - t0
    proc.wait()
    raise RuntimeError(f"{argv[0]} exited ({proc.returncode}) before {MARKER!r}:\n{''.join(seen)[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def app_imports(env: dict) -> dict[str, list[str]]:
    """What the app loads before its window is shown, beyond a bare PySide6 window:
    {PySide6 module: [class names PySide6 created]} and {"LIBRARIES": [module names not ours]}."""
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    out = {}
    for line in done.stdout.splitlines():
        module, _, names = line.partition(" ")
        if (module.startswith("PySide6.") or module == "LIBRARIES") and names:
            out[module] = names.split()
    if not out:
        raise RuntimeError(f"the class probe printed nothing ({done.returncode}):\n{done.stderr[-3000:]}")
    return out


def same_classes_window(imported: dict[str, list[str]], libraries: bool = False) -> str:
    """The bare window, after importing the Qt classes the app uses (so PySide6 builds them and
    their enums, as it does for the app): Qt's own share of the app's start-up. With
    ``libraries``, also every other module the app loads before its window, ours excepted
    (the standard library, platformdirs, ...): all but our own code."""
    lines = [f"from {m} import {', '.join(names)}" for m, names in imported.items() if m.startswith("PySide6.")]
    if libraries:
        lines.append("import importlib")
        lines.append(f"for _name in {imported.get('LIBRARIES', [])!r}:")
        lines.append("    try:\n        importlib.import_module(_name)\n    except ImportError:\n        pass")
    return BARE.replace("import sys\n", "import sys\n" + "\n".join(lines) + "\n", 1)


def variants(bundle: Path | None, classes: dict[str, list[str]]) -> dict[str, list[str]]:
    py = sys.executable
    out = {"bare PySide6 window": [py, "-c", BARE],
           "PySide6 window, app's Qt classes": [py, "-c", same_classes_window(classes)],
           "... and the app's libraries": [py, "-c", same_classes_window(classes, libraries=True)],
           "callrec-desktop": [py, "-c", APP, "-v"]}
    if bundle is not None:
        out["callrec-desktop (bundle)"] = [str(bundle / "callrec-desktop"), "-v"]
    return out


def time_startup(platform: str, runs: int, bundle: Path | None, display: str | None) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    base = dict(os.environ)
    if display:
        base["DISPLAY"] = display
    with tempfile.TemporaryDirectory(prefix="callrec-bench-") as tmp:
        classes = app_imports(fresh_env(base, Path(tmp), platform))
    print(f"  {platform:9} the app loads {sum(len(v) for k, v in classes.items() if k != 'LIBRARIES')} Qt classes "
          f"and {len(classes.get('LIBRARIES', []))} other modules before its window", file=sys.stderr, flush=True)
    for name, argv in variants(bundle, classes).items():
        times = []
        for i in range(runs + 1):  # run 0 warms the page cache and is not counted
            with tempfile.TemporaryDirectory(prefix="callrec-bench-") as tmp:
                proc, seconds = start(argv, fresh_env(base, Path(tmp), platform))
                stop(proc)
            if i:
                times.append(seconds)
        results[name] = times
        print(f"  {platform:9} {name:34} " + " ".join(f"{t:.3f}" for t in times), file=sys.stderr, flush=True)
    return results


def rss_mib(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def memory() -> dict[str, float]:
    """RSS in MiB: bare window, idle app, app recording the demo call (max over 20 s)."""
    py = sys.executable
    out = {}
    with tempfile.TemporaryDirectory(prefix="callrec-bench-") as tmp:
        env = fresh_env(dict(os.environ), Path(tmp), "offscreen")
        for name, argv in (("bare PySide6 window", [py, "-c", BARE]), ("callrec-desktop idle", [py, "-c", APP, "-v"])):
            proc, _ = start(argv, env)
            time.sleep(3.0)  # let start-up work (spool recovery, control API, first paints) settle
            out[name] = rss_mib(proc.pid)
            stop(proc)
        proc, _ = start([py, "-c", APP, "-v", "--demo"], env)
        peak = 0.0
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and proc.poll() is None:
            peak = max(peak, rss_mib(proc.pid))
            time.sleep(0.25)
        out["callrec-desktop recording (--demo)"] = peak
        stop(proc)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--platforms", default="offscreen,xcb", help="comma-separated Qt platforms (xcb starts Xvfb)")
    p.add_argument("--bundle", type=Path, help="also time the frozen app in this bundle folder")
    p.add_argument("--no-memory", action="store_true")
    args = p.parse_args()
    bundle = args.bundle.resolve() if args.bundle else None
    # An installed app (the bundle's PYZ, a wheel) runs from bytecode; a checkout with
    # PYTHONDONTWRITEBYTECODE set would compile every module of ours at every start instead.
    import compileall

    compileall.compile_dir(str(ROOT / "callrec_desktop"), quiet=2)

    rows = []
    for platform in args.platforms.split(","):
        xvfb = None
        display = None
        if platform == "xcb":
            from tests.support.xvfb import XvfbError, start_xvfb, stop_xvfb

            try:
                started = start_xvfb()
            except XvfbError:
                started = None
            if started is None:
                print("bench_startup: no Xvfb; skipping xcb (apt-get install xvfb)", file=sys.stderr)
                continue
            xvfb, display = started
        try:
            results = time_startup(platform, args.runs, bundle, display)
        finally:
            if xvfb is not None:
                stop_xvfb(xvfb)
        bare = statistics.median(results["bare PySide6 window"])
        same = statistics.median(results["PySide6 window, app's Qt classes"])
        libs = statistics.median(results["... and the app's libraries"])
        for name, times in results.items():
            med = statistics.median(times)
            rows.append((platform, name, med, min(times), max(times), med / bare, med / same, med / libs))

    print(f"\nStart-up to window shown (N={args.runs}, medians; ratios to the three baselines on the same platform)\n")
    print("| platform | program | median s | min s | max s | ratio to bare window | to window + app's Qt classes "
          "| to window + app's Qt classes and libraries |")
    print("|---|---|---|---|---|---|---|---|")
    for platform, name, med, lo, hi, *ratios in rows:
        print(f"| {platform} | {name} | {med:.3f} | {lo:.3f} | {hi:.3f} | " + " | ".join(f"{r:.2f}×" for r in ratios) + " |")
    if not args.no_memory:
        mem = memory()
        bare = mem["bare PySide6 window"]
        print("\nMemory (RSS, offscreen)\n")
        print("| process | RSS MiB | vs bare window |")
        print("|---|---|---|")
        for name, mib in mem.items():
            print(f"| {name} | {mib:.0f} | {mib / bare:.2f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
