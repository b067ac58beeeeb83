"""The whole app, driven by the control API alone, as a softphone and a payment page would:
`callrec-desktop` runs as a real process (offscreen window) capturing the virtual audio
device; a client speaks HTTP to it on 127.0.0.1; SIGTERM closes it. Then the store is read.

The keyring is the file-backed test backend (no OS keyring runs here): the app creates the
control token in it on first start, and the test reads it from there like `callrec signal`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from callrec_desktop.archive import decode_call, iter_manifests, verify_call
from callrec_desktop.control.client import ControlClient, ControlError
from callrec_desktop.storage.folder import FolderStore
from tests.support.recording import RATE, band_db

pytestmark = pytest.mark.device

ROOT = Path(__file__).resolve().parents[2]
SPEECH_HZ, CARD_HZ = 600.0, 1700.0


def tone(freq: float, seconds: float, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    x = amplitude * np.sin(2 * np.pi * freq * t)
    return np.stack([x, x], axis=1).astype(np.float32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)  # polling a subprocess's state: there is no event to wait on
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def test_a_call_taken_with_the_control_api_alone(tmp_path, pulse_server):
    port = free_port()
    store = tmp_path / "store"
    store.mkdir()
    cfg = tmp_path / "settings.toml"
    cfg.write_text(f'[store]\nurl = "{store}"\n[paths]\nspool_dir = "{tmp_path / "spool"}"\n'
                   f'log_dir = "{tmp_path / "log"}"\n[control]\nport = {port}\n'
                   '[recorder]\nchunk_seconds = 2\n[identity]\nagent_id = "agent-e2e"\n')
    keyring_file = tmp_path / "keyring.json"
    env = dict(os.environ, **pulse_server.env, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT),
               PYTHON_KEYRING_BACKEND="tests.support.memkeyring.FileBackedTestKeyring",
               CALLREC_TEST_KEYRING_FILE=str(keyring_file), XDG_CONFIG_HOME=str(tmp_path / "xdg-config"),
               XDG_DATA_HOME=str(tmp_path / "xdg-data"), XDG_STATE_HOME=str(tmp_path / "xdg-state"))
    env.pop("DISPLAY", None)
    app = subprocess.Popen([sys.executable, "-c", "from callrec_desktop.app import main; raise SystemExit(main())",
                            "--config", str(cfg)], env=env, cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stuck: list[socket.socket] = []
    port_file = Path(env["XDG_RUNTIME_DIR"]) / "callrec-desktop" / "control.json"  # the audio server's runtime folder
    try:
        token = wait_for(lambda: keyring_file.exists() and json.loads(keyring_file.read_text())
                         .get("callrec-desktop", {}).get("control-api-token"), 30, "the control token")
        client = ControlClient(f"http://127.0.0.1:{port}", token)

        def capturing():
            try:
                return client.status()["capturing"]
            except ControlError:
                return False

        wait_for(capturing, 30, "the app to capture audio")
        # The app published its port for this user only; `callrec signal` finds it there.
        assert json.loads(port_file.read_text()) == {"port": port, "pid": app.pid, "protocol": "callrec-control-v2"}
        assert port_file.stat().st_mode & 0o777 == 0o600
        env.pop("CALLREC_CONFIG", None)
        signalled = subprocess.run([sys.executable, "-m", "callrec_desktop", "signal", "status"], cwd=ROOT,
                                   env=dict(env, CALLREC_CONTROL_TOKEN=token), capture_output=True, text=True,
                                   timeout=60)
        assert signalled.returncode == 0 and json.loads(signalled.stdout)["capturing"] is True, signalled.stderr
        started = client.call_started("01443 425004", caller="07700900555", external_id="cti-77")
        assert started["state"] == "recording" and started["line"]["department"] == "Planning"
        pulse_server.play(tone(SPEECH_HZ, 1.5))
        assert client.payment_started()["payment_in_progress"] is True
        with pytest.raises(ControlError) as refused:  # a second payment start is refused, nothing changes
            client.payment_started()
        assert refused.value.status == 409
        pulse_server.play(np.concatenate([tone(CARD_HZ, 1.0), tone(SPEECH_HZ, 0.5, amplitude=0.0)]))
        assert client.payment_ended()["state"] == "recording"
        pulse_server.play(tone(SPEECH_HZ, 1.5))
        ended = client.transferred("Housing")
        assert ended["recording"] is False and ended["transferred_to"] == "Housing"
        # Ten stuck clients (connected and silent, or half a request) are open when the session ends.
        for i in range(10):
            stuck.append(socket.create_connection(("127.0.0.1", port), timeout=10))
            if i % 2:
                stuck[-1].sendall(b"POST /v1/payment/sta")
    finally:
        app.send_signal(signal.SIGTERM)
        sent_at = time.monotonic()
        try:
            out, _ = app.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            app.kill()
            out, _ = app.communicate()
        exited_after = time.monotonic() - sent_at
        for s in stuck:
            s.close()
    assert app.returncode == 0, out
    print(f"app exited {exited_after:.2f} s after SIGTERM with ten stuck control-API clients")
    assert not port_file.exists()  # withdrawn at exit
    assert token not in out and token not in "".join(p.read_text() for p in (tmp_path / "log").rglob("*.log"))

    folder = FolderStore(store)
    [m] = list(iter_manifests(folder))
    assert verify_call(folder, m) == []
    assert (m.line_number, m.department, m.caller, m.external_id, m.agent) == (
        "01443 425004", "Planning", "07700900555", "cti-77", "agent-e2e")
    assert m.end.reason == "transferred" and m.end.department == "Housing" and m.end.source == "control_api"
    [pause] = m.pauses
    assert (pause.reason, pause.source, pause.end_source) == ("payment", "control_api", "control_api")
    out_audio = decode_call(folder, m)
    a, b = pause.offset_frames, pause.offset_frames + pause.duration_frames
    assert not out_audio[a:b].any()
    kept = np.concatenate([out_audio[:a, 1], out_audio[b:, 1]])
    assert band_db(kept, CARD_HZ) < band_db(kept, SPEECH_HZ) - 40, "card tone reached the store"
    assert np.abs(out_audio[:a]).max() > 0.1 and np.abs(out_audio[b:]).max() > 0.1
