"""Running the real `callrec` command in a subprocess, with its own settings and folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_callrec(args, env, check_rc: int | None = None, *, timeout: float = 120, module: str = "callrec_desktop",
                stdin: str | None = None) -> subprocess.CompletedProcess:
    """``python -m callrec_desktop ARGS`` with ``env``; asserts the exit code when ``check_rc``
    is given (the assertion shows both streams)."""
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], env=env, input=stdin,
                          capture_output=True, text=True, timeout=timeout)
    if check_rc is not None:
        assert proc.returncode == check_rc, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def callrec_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment whose settings file (``CALLREC_CONFIG``) puts the spool and the log under
    ``tmp_path``, with private XDG folders, and an empty folder store at ``tmp_path/store``."""
    cfg = tmp_path / "settings.toml"
    cfg.write_text(f'[paths]\nspool_dir = "{tmp_path / "spool"}"\nlog_dir = "{tmp_path / "log"}"\n')
    (tmp_path / "store").mkdir(exist_ok=True)
    return dict(os.environ, CALLREC_CONFIG=str(cfg), XDG_CONFIG_HOME=str(tmp_path / "xdg-config"),
                XDG_DATA_HOME=str(tmp_path / "xdg-data"), PYTHONPATH=str(REPO), **extra)
