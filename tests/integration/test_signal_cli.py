"""`callrec signal` as a CTI script runs it: a real subprocess talking HTTP to a real control
server (started here, over a real Desk)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from callrec_desktop.core.timeline import CallState
from tests.unit.control.test_server import CALLER, LINE, TOKEN, Rig, running_desk, snapshot

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with running_desk(tmp_path) as r:
        yield r


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("CALLREC_CONTROL_TOKEN", "CALLREC_CONFIG")}
    e.update(XDG_CONFIG_HOME=str(tmp_path / "xdg-config"), XDG_DATA_HOME=str(tmp_path / "xdg-data"),
             PYTHONPATH=str(ROOT),
             # A test keyring in a file: the subprocess cannot see this process's memory.
             PYTHON_KEYRING_BACKEND="tests.support.memkeyring.FileBackedTestKeyring",
             CALLREC_TEST_KEYRING_FILE=str(tmp_path / "keyring.json"))
    return e


def signal(env: dict[str, str], *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "callrec_desktop", "signal", *map(str, args)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_a_call_driven_by_callrec_signal(rig: Rig, env: dict[str, str]) -> None:
    auth = ("--port", rig.port, "--token", TOKEN)
    p = signal(env, "call-started", "--line", LINE, "--caller", CALLER, "--external-id", "cti-9", *auth)
    assert p.returncode == 0, p.stderr
    answer = json.loads(p.stdout)
    call_id = answer["call_id"]
    assert answer["state"] == "recording" and rig.desk.status().call_id == call_id
    rig.advance(0.2)
    p = signal(env, "payment-started", *auth)
    assert p.returncode == 0 and json.loads(p.stdout)["payment_in_progress"] is True, p.stderr
    p = signal(env, "status", *auth)
    assert p.returncode == 0 and json.loads(p.stdout)["state"] == "paused"
    p = signal(env, "payment-ended", *auth)
    assert p.returncode == 0 and json.loads(p.stdout)["state"] == "recording"
    rig.advance(0.2)
    p = signal(env, "transferred", "--to", "Planning", *auth)
    assert p.returncode == 0 and json.loads(p.stdout)["transferred_to"] == "Planning", p.stderr
    assert TOKEN not in p.stdout + p.stderr

    m = rig.stored_manifest(call_id)
    assert m.external_id == "cti-9" and m.caller == CALLER
    assert [(x.reason, x.source) for x in m.pauses] == [("payment", "control_api")]
    assert m.end is not None and (m.end.reason, m.end.department, m.end.source) == ("transferred", "Planning",
                                                                                    "control_api")


def test_error_answer_exits_1_with_the_message(rig: Rig, env: dict[str, str]) -> None:
    auth = ("--port", rig.port, "--token", TOKEN)
    p = signal(env, "payment-ended", *auth)
    assert p.returncode == 1 and "no call is in progress" in p.stderr and "409" in p.stderr
    p = signal(env, "call-started", "--line", "01443 999999", *auth)
    assert p.returncode == 1 and "unknown line" in p.stderr and "01443 425001" in p.stderr
    p = signal(env, "status", "--port", rig.port, "--token", "not-the-token")
    assert p.returncode == 1 and "wrong token" in p.stderr and "not-the-token" not in p.stderr
    assert rig.desk.status().state is CallState.IDLE


def test_usage_errors_exit_2_and_send_nothing(rig: Rig, env: dict[str, str]) -> None:
    before = snapshot(rig.desk.status())
    auth = ("--port", rig.port, "--token", TOKEN)
    for args, words in [
        (("call-started", *auth), "call-started needs --line"),
        (("transferred", *auth), "transferred needs --to"),
        (("status", "--line", LINE, *auth), "--line is not used by status"),
        (("payment-started", "--to", "Planning", *auth), "--to is not used by payment-started"),
        (("call-started", "--line", LINE, "--port", "70000", "--token", TOKEN), "--port"),
    ]:
        p = signal(env, *args)
        assert p.returncode == 2 and words in p.stderr, (args, p.returncode, p.stderr)
    p = signal(env, "hang-up", *auth)  # not an OP: argparse refuses
    assert p.returncode == 2 and "invalid choice" in p.stderr
    assert snapshot(rig.desk.status()) == before


def test_nothing_listening_is_a_clear_error(env: dict[str, str]) -> None:
    with socket.socket() as s:  # a port that was free a moment ago, and nothing listens on now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = signal(env, "status", "--port", port, "--token", TOKEN)
    assert p.returncode == 1
    assert (f"callrec-desktop is not running or the control API is disabled (no answer on 127.0.0.1:{port})"
            in p.stderr)


def test_token_from_the_environment_then_the_keyring(rig: Rig, env: dict[str, str], tmp_path: Path) -> None:
    p = signal(dict(env, CALLREC_CONTROL_TOKEN=TOKEN), "status", "--port", rig.port)
    assert p.returncode == 0 and json.loads(p.stdout)["state"] == "idle", p.stderr

    # No token anywhere: refused before sending, and the client does not create one.
    p = signal(env, "status", "--port", rig.port)
    assert p.returncode == 2 and "no control API token" in p.stderr
    assert not (tmp_path / "keyring.json").exists()

    (tmp_path / "keyring.json").write_text(json.dumps({"callrec-desktop": {"control-api-token": TOKEN}}))
    p = signal(env, "status", "--port", rig.port)
    assert p.returncode == 0 and json.loads(p.stdout)["state"] == "idle", p.stderr
    assert TOKEN not in p.stdout + p.stderr


def test_port_comes_from_the_settings(rig: Rig, env: dict[str, str], tmp_path: Path) -> None:
    cfg = tmp_path / "settings.toml"
    cfg.write_text(f"[control]\nport = {rig.port}\n")
    p = signal(dict(env, CALLREC_CONFIG=str(cfg)), "status", "--token", TOKEN)
    assert p.returncode == 0 and json.loads(p.stdout)["state"] == "idle", p.stderr
