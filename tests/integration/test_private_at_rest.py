"""Private at rest, end to end: under the usual umask 022, calls recorded with the real
``callrec`` command (one uploaded into the embedded default store, one left in the spool
because its S3 store cannot be reached), a catalogue sync, an export and the app's own log
(its ``--self-test``) leave nothing that another user of the PC could read: every file 0600,
every folder 0700. Then files an older version left 0644 are tightened at the next start."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes; Windows relies on the profile's ACL")

RATE = 16000
APP = "callrec-desktop"
CALL = [
    {"at": 0.0, "event": "call_started", "line": "01443 425002", "caller": "07700900123"},
    {"at": 1.5, "event": "payment_started"},
    {"at": 2.5, "event": "payment_ended"},
    {"at": 4.0, "event": "call_ended"},
]


@pytest.fixture
def env(tmp_path):
    cfg = tmp_path / "settings.toml"
    cfg.write_text(f'[paths]\nspool_dir = "{tmp_path / "spool"}"\nlog_dir = "{tmp_path / "log"}"\n')
    e = dict(os.environ, CALLREC_CONFIG=str(cfg), XDG_CONFIG_HOME=str(tmp_path / "xdg-config"),
             XDG_DATA_HOME=str(tmp_path / "xdg-data"), XDG_CACHE_HOME=str(tmp_path / "xdg-cache"),
             XDG_STATE_HOME=str(tmp_path / "xdg-state"), PYTHONPATH=str(Path(__file__).resolve().parents[2]),
             AWS_ACCESS_KEY_ID="test-not-a-key", AWS_SECRET_ACCESS_KEY="test-not-a-secret")
    e.pop("XDG_RUNTIME_DIR", None)
    return e


def run(args, env, rc=0, module="callrec_desktop"):
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == rc, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def modes_under(root: Path) -> dict[str, tuple[str, int]]:
    """Every entry below ``root`` (root included): (kind, mode), links not followed."""
    out = {}
    for p in [root, *root.rglob("*")]:
        st = os.lstat(p)
        kind = "dir" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else "other"
        out[p.relative_to(root.parent).as_posix()] = (kind, stat.S_IMODE(st.st_mode))
    return out


def not_private(root: Path) -> dict[str, str]:
    return {k: f"{kind} {oct(m)}" for k, (kind, m) in modes_under(root).items()
            if (kind, m) not in (("dir", 0o700), ("file", 0o600))}


def test_recording_with_the_cli_under_umask_022_leaves_everything_private(tmp_path, env, umask022):
    t = np.arange(round(4.5 * RATE)) / RATE
    sf.write(tmp_path / "call.wav", np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 1250 * t)],
                                             axis=1), RATE, subtype="PCM_16")
    (tmp_path / "call.json").write_text(json.dumps(CALL))
    # 1. into the embedded default store (created by the CLI under XDG_DATA_HOME)
    rec = run(["record", "--source", tmp_path / "call.wav", "--script", tmp_path / "call.json",
               "--chunk-seconds", "1"], env)
    call_id = json.loads(rec.stdout.splitlines()[0])["call_id"]
    store = tmp_path / "xdg-data" / APP / "store"
    run(["verify", "--store", store], env)
    # 2. into an S3 store nobody answers: the call stays in the spool, chunks and manifest
    run(["record", "--source", tmp_path / "call.wav", "--script", tmp_path / "call.json", "--chunk-seconds", "1",
         "--store", "s3://nobody/calls", "--endpoint-url", "http://127.0.0.1:9", "--upload-timeout", "1"], env, rc=1)
    # 3. the catalogue, an export, the access log (objects in the store)
    run(["catalog", "sync", "--store", store], env)
    (tmp_path / "exports").mkdir()
    run(["export", call_id, "--store", store, "--out", tmp_path / "exports" / "call.wav", "--purpose", "complaint"], env)
    run(["export", call_id, "--store", store, "--out", tmp_path / "exports" / "call.opus", "--purpose", "complaint"], env)
    # 4. the app's log (its self-test records through the real window into its own temp folders)
    run(["--self-test"], env, module="callrec_desktop.app")

    spool = tmp_path / "spool"
    spooled = [p.name for p in (spool / "calls").iterdir()]
    assert len(spooled) == 1, spooled
    left = sorted(p.name for p in (spool / "calls" / spooled[0]).iterdir())
    assert "manifest.json" in left and ".lock" in left and sum(n.endswith(".flac") or n.endswith(".opus")
                                                               for n in left) >= 4, left
    assert (spool / "upload-status.json").is_file()
    assert any(store.glob("audio/**/*.opus")) and any(store.glob("manifests/**/*.json")), "nothing uploaded?"
    assert any(store.glob("access/**/*")), "the export's access event"
    catalogue = tmp_path / "xdg-cache" / APP
    assert (catalogue / "catalog.sqlite").is_file()
    assert (tmp_path / "log" / "callrec-desktop.log").read_text().count("self-test: ok") == 1
    for root in (spool / "calls", spool / "quarantine", store.parent, catalogue, tmp_path / "log"):
        assert not_private(root) == {}, root
    assert not_private(spool / "upload-status.json") == {}
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "exports").iterdir()} == {
        "call.wav": 0o600, "call.opus": 0o600}


def test_what_an_older_version_left_readable_is_tightened_at_the_next_start(tmp_path, env, umask022):
    """Files and folders made 0644/0755 before this version: the app's start-up makes the
    settings, catalogue and log folders private (the cache's own entries: its waveform folder
    0700, not each waveform), and the data folder 0700 (the embedded
    store and default spool inside it); the spool's calls are tightened by its recovery."""
    app_dirs = [tmp_path / "xdg-config" / APP, tmp_path / "xdg-cache" / APP / "waveforms", tmp_path / "log",
                tmp_path / "xdg-data" / APP / "store" / "manifests", tmp_path / "spool" / "calls" / "old"]
    for d in app_dirs:
        d.mkdir(parents=True, mode=0o755)
    old_files = [tmp_path / "xdg-config" / APP / "config.toml", tmp_path / "xdg-cache" / APP / "catalog.sqlite",
                 tmp_path / "xdg-cache" / APP / "waveforms" / "x.npz", tmp_path / "log" / "callrec-desktop.log.1",
                 tmp_path / "spool" / "calls" / "old" / "manifest.json"]
    for f in old_files:
        f.write_text("" if f.suffix != ".toml" else "[identity]\n")
    for p in [*old_files, *[q for d in app_dirs for q in (d, *d.parents) if tmp_path in q.parents]]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    run(["--self-test"], env, module="callrec_desktop.app")
    assert not_private(tmp_path / "xdg-config" / APP) == {}
    # the cache: its own entries (a cached waveform is not walked; its folder closes it)
    assert not_private(tmp_path / "xdg-cache" / APP) == {"callrec-desktop/waveforms/x.npz": "file 0o644"}
    # a log folder named in the settings may be shared: only our log files in it are changed
    assert not_private(tmp_path / "log") == {"log": "dir 0o755"}
    assert stat.S_IMODE((tmp_path / "xdg-data" / APP).stat().st_mode) == 0o700
    log_text = (tmp_path / "log" / "callrec-desktop.log").read_text()
    assert "private to this user" in log_text
    # the spool's calls: at the next recording (its recovery runs first)
    (tmp_path / "call.json").write_text(json.dumps(CALL))
    t = np.arange(round(4.5 * RATE)) / RATE
    sf.write(tmp_path / "call.wav", 0.3 * np.sin(2 * np.pi * 440 * t), RATE, subtype="PCM_16")
    run(["record", "--source", tmp_path / "call.wav", "--script", tmp_path / "call.json"], env)
    assert not_private(tmp_path / "spool" / "calls") == {}
