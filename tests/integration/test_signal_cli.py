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
from tests.unit.control.test_auth import Squatter
from tests.unit.control.test_lifecycle import hold_run
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
             XDG_STATE_HOME=str(tmp_path / "xdg-state"), XDG_RUNTIME_DIR=str(tmp_path / "xdg-runtime"),
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
    assert p.returncode == 1 and "not-the-token" not in p.stderr
    assert f"the program on port {rig.port} is not callrec-desktop: it could not prove it knows the token" in p.stderr
    assert "check that this is the token Settings shows now" in p.stderr
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


# ---- who is on the port ---------------------------------------------------------------------


def test_a_squatter_on_the_port_gets_no_token_and_the_signal_fails(env: dict[str, str]) -> None:
    """Another program took the port first and answers 200 to everything, logging what it gets."""
    with Squatter() as squatter:
        for op in ("payment-started", "status"):
            p = signal(env, op, "--port", squatter.port, "--token", TOKEN)
            assert p.returncode == 1, (p.stdout, p.stderr)
            assert (f"callrec: error: the program on port {squatter.port} is not callrec-desktop: it could not prove "
                    f"it knows the token" in p.stderr)
            assert p.stdout == ""  # no "success" printed
        p = signal(dict(env, CALLREC_CONTROL_TOKEN=TOKEN), "call-started", "--line", LINE, "--caller", CALLER,
                   "--port", squatter.port)
        assert p.returncode == 1
        log = squatter.log
    assert TOKEN.encode() not in log and b"Authorization" not in log and CALLER.encode() not in log
    assert log.count(b"POST /v1/challenge ") == 3 and b"/v1/payment" not in log


def test_the_published_port_is_used_and_a_stale_one_is_not(tmp_path: Path, env: dict[str, str]) -> None:
    port_file = Path(env["XDG_RUNTIME_DIR"]) / "callrec-desktop" / "control.json"
    with running_desk(tmp_path / "desk", port_file=port_file) as rig:
        assert json.loads(port_file.read_text())["port"] == rig.port
        cfg = tmp_path / "settings.toml"
        cfg.write_text("[control]\nport = 1024\n")  # the published port wins over the setting
        p = signal(dict(env, CALLREC_CONFIG=str(cfg)), "status", "--token", TOKEN)
        assert p.returncode == 0 and json.loads(p.stdout)["state"] == "idle", p.stderr
    assert not port_file.exists()  # withdrawn at stop: the setting's port is tried, and nothing answers
    p = signal(dict(env, CALLREC_CONFIG=str(cfg)), "status", "--token", TOKEN)
    assert p.returncode == 1 and "no answer on 127.0.0.1:1024" in p.stderr
    port_file.parent.mkdir(parents=True, exist_ok=True)
    port_file.write_text(json.dumps({"port": 47801, "pid": 1}))
    port_file.chmod(0o666)
    p = signal(env, "status", "--token", TOKEN)
    assert p.returncode == 2 and "can be read or written by other users" in p.stderr and "--port" in p.stderr


def test_two_users_get_their_own_ports_and_each_signal_reaches_its_own(tmp_path: Path, env: dict[str, str]) -> None:
    """Two instances as two users of one PC would run them: the same [control] port base, their
    own token and runtime folder. Each user's `callrec signal` (no --port) finds its own."""
    held = hold_run(2)
    base = held.base
    held.close()
    ann_token, bob_token = "ann-token-0123456789abcdefghijklmnopqrstu", "bob-token-0123456789abcdefghijklmnopqrstu"
    ann_env = dict(env, XDG_RUNTIME_DIR=str(tmp_path / "ann-run"), CALLREC_CONTROL_TOKEN=ann_token)
    bob_env = dict(env, XDG_RUNTIME_DIR=str(tmp_path / "bob-run"), CALLREC_CONTROL_TOKEN=bob_token)
    cfg = tmp_path / "settings.toml"
    cfg.write_text(f"[control]\nport = {base}\n")
    ann_env["CALLREC_CONFIG"] = bob_env["CALLREC_CONFIG"] = str(cfg)
    file_of = {name: tmp_path / f"{name}-run" / "callrec-desktop" / "control.json" for name in ("ann", "bob")}
    with running_desk(tmp_path / "ann", token=ann_token, port=base, ports=10, port_file=file_of["ann"]) as ann, \
            running_desk(tmp_path / "bob", token=bob_token, port=base, ports=10, port_file=file_of["bob"]) as bob:
        assert ann.port == base and bob.port == base + 1
        p = signal(ann_env, "call-started", "--line", LINE)
        assert p.returncode == 0, p.stderr
        assert ann.desk.status().state is CallState.RECORDING and bob.desk.status().state is CallState.IDLE
        p = signal(bob_env, "status")
        assert p.returncode == 0 and json.loads(p.stdout)["state"] == "idle", p.stderr
        p = signal(ann_env, "status")
        assert p.returncode == 0 and json.loads(p.stdout)["state"] == "recording", p.stderr
        # Bob's token against Ann's instance (e.g. a copied port file): refused before anything is sent.
        p = signal(dict(bob_env, XDG_RUNTIME_DIR=ann_env["XDG_RUNTIME_DIR"]), "payment-started")
        assert p.returncode == 1 and f"the program on port {base} is not callrec-desktop" in p.stderr
        assert not ann.desk.status().payment_in_progress
        assert signal(ann_env, "call-ended").returncode == 0
