"""The control server's ports and shut-down: one port per user from a base, published in a
private file; no port free is a clear error in words; held or half-sent connections cannot
delay stop() (the design allows 0.5 s; the contract tested here is 2 s)."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from callrec_desktop.control import portfile
from callrec_desktop.control.client import ControlClient
from callrec_desktop.control.server import ControlBindError, ControlServer
from tests.unit.control.test_server import TOKEN, challenge, running_desk, signature

STOP_CONTRACT_SECONDS = 2.0


class Held:
    """Sockets listening on ``base`` … ``base + n - 1``: another program holding those ports."""

    def __init__(self, base: int, sockets: list[socket.socket]) -> None:
        self.base = base
        self.sockets = sockets

    def release(self, port: int) -> None:
        self.sockets[port - self.base].close()

    def close(self) -> None:
        for s in self.sockets:
            s.close()


def hold_run(n: int) -> Held:
    """Listen on ``n`` consecutive free loopback ports (a base the OS offers, tried until a
    whole run is free)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + n > 65536:
            continue
        held: list[socket.socket] = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
                s.listen(1)
            return Held(base, held)
        except OSError:
            for s in held:
                s.close()
    raise AssertionError(f"no run of {n} free ports found")


@contextmanager
def stub_desk_server(**kwargs) -> Iterator[ControlServer]:
    """A control server whose desk is never reached (these tests stop before any operation)."""
    server = ControlServer(object(), TOKEN, **kwargs)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()


def control_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("callrec-control") and t.is_alive()]


# ---- shut-down ---------------------------------------------------------------------------------


def test_ten_stuck_clients_do_not_delay_stop(tmp_path: Path) -> None:
    with running_desk(tmp_path) as rig, ExitStack() as stack:
        port = rig.port
        stuck: list[socket.socket] = []

        def connect() -> socket.socket:
            s = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
            stuck.append(s)
            return s

        for _ in range(4):  # connected, nothing sent
            connect()
        for _ in range(3):  # half a request line
            connect().sendall(b"POST /v1/payment/sta")
        for _ in range(3):  # a signed request whose body never arrives in full
            nonce, _ = challenge(port)
            body = b'{"line": "01443 425002"}'
            auth = signature(port, nonce, "POST", "/v1/call/started", body)
            connect().sendall(b"POST /v1/call/started HTTP/1.0\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\nAuthorization: %s\r\n\r\n" % (len(body), auth.encode())
                              + body[:5])
        # All ten are being served (each holds a request thread) ...
        deadline = time.monotonic() + 10
        while len([t for t in control_threads() if t.name == "callrec-control-request"]) < 10:
            assert time.monotonic() < deadline, "the server did not take the ten connections"
            threading.Event().wait(0.01)
        # ... and do not keep anyone else out.
        assert ControlClient(rig.server.url, TOKEN).status()["state"] == "idle"

        started = time.monotonic()
        rig.server.stop()
        took = time.monotonic() - started
        assert took < STOP_CONTRACT_SECONDS, f"stop() took {took:.2f} s with ten stuck clients"
        assert control_threads() == []
        assert not rig.server.running
        assert rig.desk.status().call_id is None  # the half-sent call start did nothing
        for s in stuck:  # each connection was ended, not left open
            s.settimeout(5)
            try:
                while s.recv(65536):
                    pass
            except ConnectionResetError:
                pass


def test_stop_is_idempotent_and_start_is_once() -> None:
    with stub_desk_server(port=0) as server:
        pass
    server.stop()
    with pytest.raises(RuntimeError, match="started once"):
        server.start()
    assert control_threads() == []


# ---- ports ---------------------------------------------------------------------------------------


def test_each_instance_takes_the_next_free_port_from_the_base() -> None:
    held = hold_run(5)
    base = held.base
    held.release(base + 1)
    held.release(base + 3)
    try:
        with stub_desk_server(port=base, ports=5) as a, stub_desk_server(port=base, ports=5) as b:
            assert (a.port, b.port) == (base + 1, base + 3)
            with pytest.raises(ControlBindError) as refused:
                stub_desk_server(port=base, ports=5).__enter__()
        message = refused.value.strerror
        assert message == (f"the control API cannot listen on 127.0.0.1 ports {base}–{base + 4}: other programs "
                           f"(or other users' callrec-desktop) are using all of them")
        assert "Errno" not in str(message)
    finally:
        held.close()


def test_one_port_taken_is_said_in_words() -> None:
    held = hold_run(1)
    try:
        with pytest.raises(ControlBindError) as refused:
            stub_desk_server(port=held.base).__enter__()
        assert refused.value.strerror == f"the control API cannot listen on 127.0.0.1:{held.base}: another program is using it"
        assert isinstance(refused.value, OSError)
    finally:
        held.close()
    assert control_threads() == []


def test_the_range_ends_at_65535() -> None:
    assert ControlServer(object(), TOKEN, port=65534, ports=100)._ports == 2  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ports"):
        ControlServer(object(), TOKEN, port=47800, ports=0)  # type: ignore[arg-type]


# ---- the port file ---------------------------------------------------------------------------


def test_the_port_is_published_privately_and_withdrawn(tmp_path: Path) -> None:
    path = tmp_path / "runtime" / "callrec-desktop" / "control.json"
    with stub_desk_server(port=0, port_file=path) as server:
        doc = json.loads(path.read_text())
        assert doc == {"port": server.port, "pid": os.getpid(), "protocol": "callrec-control-v2"}
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert portfile.read(path) == portfile.Published(server.port, os.getpid())
        assert [p.name for p in path.parent.iterdir()] == ["control.json"]  # no part file left
    assert not path.exists()


def test_a_file_another_instance_replaced_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "control.json"
    with stub_desk_server(port=0, port_file=path):
        portfile.publish(path, 1234)  # e.g. a second instance of the same user started since
    assert portfile.read(path) == portfile.Published(1234, os.getpid())


def test_a_private_folder_is_made_private(tmp_path: Path) -> None:
    folder = tmp_path / "open"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    portfile.publish(folder / "control.json", 47801)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_unusable_port_files(tmp_path: Path) -> None:
    path = tmp_path / "control.json"
    assert portfile.read(path) is None  # none: the client falls back to the setting
    path.write_text(json.dumps({"port": 47801, "pid": os.getpid()}))
    path.chmod(0o644)
    with pytest.raises(portfile.PortFileError, match=r"can be read or written by other users \(mode 644\)"):
        portfile.read(path)
    path.chmod(0o600)
    assert portfile.read(path) == portfile.Published(47801, os.getpid())
    for text, words in [("{", "not {\"port\": N"), (json.dumps({"port": "47801", "pid": 1}), "not numbers"),
                        (json.dumps({"port": 0, "pid": 1}), "not numbers"), (json.dumps([1]), "not {\"port\"")]:
        path.write_text(text)
        with pytest.raises(portfile.PortFileError, match=words) as refused:
            portfile.read(path)
        assert str(path) in str(refused.value)
    # A process that is gone (callrec-desktop was killed): the file is stale and ignored.
    child = os.fork()
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)
    path.write_text(json.dumps({"port": 47801, "pid": child}))
    assert portfile.read(path) is None
    assert portfile.read(path, check_alive=False) == portfile.Published(47801, child)


def test_the_default_folder_is_the_users_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    assert portfile.default_port_file() == tmp_path / "run" / "callrec-desktop" / "control.json"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    # never platformdirs' fallback in the shared /tmp
    assert portfile.default_port_file() == tmp_path / "state" / "callrec-desktop" / "control.json"


def test_connections_beyond_the_limit_are_closed_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from callrec_desktop.control import server as server_module

    monkeypatch.setattr(server_module, "MAX_CONNECTIONS", 3)
    with stub_desk_server(port=0) as server, ExitStack() as stack:
        held = [stack.enter_context(socket.create_connection(("127.0.0.1", server.port), timeout=10))
                for _ in range(3)]
        deadline = time.monotonic() + 10
        while len([t for t in control_threads() if t.name == "callrec-control-request"]) < 3:
            assert time.monotonic() < deadline, "the server did not take the three connections"
            threading.Event().wait(0.01)
        extra = stack.enter_context(socket.create_connection(("127.0.0.1", server.port), timeout=10))
        assert extra.recv(1) == b""  # closed without a thread
        assert len(held) == 3
    assert control_threads() == []
