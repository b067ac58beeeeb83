"""The control API cannot be impersonated: a program on the port that does not know the token
gets neither the token nor a request it can use, and cannot make a client believe a fake
answer; signed requests cannot be replayed, changed or relayed to another port. Real HTTP
against a real Desk (``running_desk``), and a squatting server built from a plain socket."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from callrec_desktop.control import protocol
from callrec_desktop.control.client import ControlClient, ControlError, ControlImpostor, ControlUnreachable
from tests.unit.control.test_server import (
    LINE,
    TOKEN,
    Rig,
    call,
    challenge,
    exchange,
    running_desk,
    signature,
    snapshot,
)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with running_desk(tmp_path) as r:
        yield r


def _stop_listening(sock: socket.socket) -> None:
    """Wake a thread blocked in accept() (close() alone does not, on Linux), then close."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class Squatter:
    """A program that took the port first: it logs every byte it receives and answers
    ``200 OK`` with a plausible status to anything, as a malicious or careless program would."""

    ANSWER = (b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n'
              b'{"state": "paused", "payment_in_progress": true, "recording": false, '
              b'"server_nonce": "' + b"ab" * 32 + b'", "proof": "' + b"cd" * 32 + b'"}')

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        self.connections = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="test-squatter", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed: stop
                return
            with conn:
                conn.settimeout(5)
                data = bytearray()
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    head, _, body = bytes(data).partition(b"\r\n\r\n")
                    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    while len(body) < length:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        body += chunk
                        data += chunk
                    conn.sendall(self.ANSWER)
                except OSError:
                    pass
                with self._lock:
                    self.received += data
                    self.connections += 1

    @property
    def log(self) -> bytes:
        with self._lock:
            return bytes(self.received)

    def close(self) -> None:
        _stop_listening(self.sock)
        self._thread.join(5)
        assert not self._thread.is_alive()

    def __enter__(self) -> Squatter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def test_a_squatter_gets_no_token_and_cannot_fake_success() -> None:
    with Squatter() as squatter:
        client = ControlClient(f"http://127.0.0.1:{squatter.port}", TOKEN)
        for operation in (client.payment_started, client.status, lambda: client.call_started(LINE, caller="07700900123")):
            with pytest.raises(ControlImpostor) as refused:
                operation()
            assert refused.value.message.startswith(
                f"the program on port {squatter.port} is not callrec-desktop: it could not prove it knows the token")
        log = squatter.log
    assert squatter.connections == 3
    # It saw three challenges (a random nonce each) and nothing else: no token, no MAC, no event,
    # no caller's number.
    assert TOKEN.encode() not in log and b"Authorization" not in log
    assert log.count(b"POST /v1/challenge HTTP/1.1") == 3
    assert b"/v1/payment" not in log and b"/v1/status" not in log and b"07700900123" not in log


def test_a_squatter_that_answers_the_request_unsigned_is_not_believed(rig: Rig) -> None:
    """The program on the port changed between the challenge and the request (callrec-desktop
    exited and another program took the port): the answer is not signed, so it is refused."""
    client = ControlClient(f"http://127.0.0.1:{rig.port}", TOKEN)
    with Squatter() as squatter:
        real_exchange = client._exchange

        def switch(method, path, data, headers):
            if path == protocol.CHALLENGE_PATH:
                return real_exchange(method, path, data, headers)
            client._port = squatter.port  # the request goes to the squatter; the MACs stay those of rig.port
            try:
                return real_exchange(method, path, data, headers)
            finally:
                client._port = rig.port

        client._exchange = switch  # type: ignore[method-assign]
        with pytest.raises(ControlImpostor, match="was not signed with the token"):
            client.payment_started()
        assert TOKEN.encode() not in squatter.log and b"POST /v1/payment/started" in squatter.log


class Relay:
    """A program on another port that forwards every byte to callrec-desktop and back."""

    def __init__(self, target: int) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.target = target
        self.threads: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._serve, name="test-relay", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            for a, b in ((conn, upstream), (upstream, conn)):
                t = threading.Thread(target=self._pipe, args=(a, b), daemon=True)
                t.start()
                self.threads.append(t)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        _stop_listening(self.sock)
        self._thread.join(5)
        for t in self.threads:
            t.join(5)


def test_a_relay_on_another_port_cannot_use_callrec_desktops_proofs(rig: Rig) -> None:
    """The port is inside every MAC: proofs made on rig.port do not verify for the relay's port,
    so a client talking to the relay stops after the challenge and nothing happens."""
    relay = Relay(rig.port)
    try:
        before = snapshot(rig.desk.status())
        with pytest.raises(ControlImpostor, match="its proof is wrong"):
            ControlClient(f"http://127.0.0.1:{relay.port}", TOKEN).call_started(LINE)
        assert snapshot(rig.desk.status()) == before
        # A request signed for the relay's port and relayed is refused by callrec-desktop too.
        nonce, _ = challenge(rig.port)
        a = exchange(relay.port, "GET", "/v1/status", None,
                     {"Authorization": signature(relay.port, nonce, "GET", "/v1/status", b"")})
        assert a.status == 401 and "wrong signature" in a.doc["error"]["message"]
    finally:
        relay.close()


def test_a_signed_request_cannot_be_changed_or_replayed(rig: Rig) -> None:
    before = snapshot(rig.desk.status())
    body = json.dumps({"line": LINE}).encode()
    other = json.dumps({"line": "01443 425004"}).encode()
    # body swapped after signing; path swapped; method swapped
    assert call(rig.port, "POST", "/v1/call/started", raw=other, sign_data=body).status == 401
    nonce, ok = challenge(rig.port)
    assert ok
    a = call(rig.port, "POST", "/v1/call/ended", {}, token=None,
             headers={"Authorization": signature(rig.port, nonce, "POST", "/v1/call/started", b"{}")})
    assert a.status == 401
    nonce, _ = challenge(rig.port)
    a = call(rig.port, "POST", "/v1/status", token=None,
             headers={"Authorization": signature(rig.port, nonce, "GET", "/v1/status", b"")})
    assert a.status == 401
    assert snapshot(rig.desk.status()) == before

    # A request accepted once is refused the second time, and changes nothing then.
    nonce, _ = challenge(rig.port)
    header = {"Authorization": signature(rig.port, nonce, "POST", "/v1/call/started", body)}
    first = call(rig.port, "POST", "/v1/call/started", raw=body, token=None, headers=header)
    assert first.status == 201
    assert call(rig.port, "POST", "/v1/call/ended", {}).status == 200
    ended = snapshot(rig.desk.status())
    again = call(rig.port, "POST", "/v1/call/started", raw=body, token=None, headers=header)
    assert again.status == 401 and "used or expired nonce" in again.doc["error"]["message"]
    assert snapshot(rig.desk.status()) == ended


def test_a_nonce_expires(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "NONCE_TTL_SECONDS", 0.0)  # expired as soon as issued
    nonce, _ = challenge(rig.port)
    a = call(rig.port, "GET", "/v1/status", token=None,
             headers={"Authorization": signature(rig.port, nonce, "GET", "/v1/status", b"")})
    assert a.status == 401 and "expired" in a.doc["error"]["message"]


@pytest.mark.parametrize("doc", [
    {}, {"client_nonce": "ab" * 8}, {"client_nonce": "AB" * 32}, {"client_nonce": "ab" * 32 + "\n"},
    {"client_nonce": "ab" * 65}, {"client_nonce": 5}, {"client_nonce": "ab" * 32, "port": 1},
])
def test_a_malformed_challenge_is_refused(rig: Rig, doc: dict) -> None:
    a = exchange(rig.port, "POST", "/v1/challenge", json.dumps(doc).encode(), {"Content-Type": "application/json"})
    assert (a.status, a.doc["error"]["code"]) == (400, "bad_request")


def test_challenge_method_and_answer(rig: Rig) -> None:
    a = exchange(rig.port, "GET", "/v1/challenge", None, {})
    assert (a.status, a.headers["Allow"]) == (405, "POST")
    cn = "0f" * 32
    a = exchange(rig.port, "POST", "/v1/challenge", json.dumps({"client_nonce": cn}).encode(),
                 {"Content-Type": "application/json"})
    assert a.status == 200 and set(a.doc) == {"server_nonce", "proof", "protocol"}
    assert a.doc["protocol"] == "callrec-control-v2" and protocol.is_nonce(a.doc["server_nonce"])
    assert a.doc["proof"] == protocol.server_proof(TOKEN, rig.port, cn, a.doc["server_nonce"])
    assert a.doc["proof"] != protocol.server_proof(TOKEN, rig.port + 1, cn, a.doc["server_nonce"])


def test_the_client_speaks_the_protocol_and_checks_every_answer(rig: Rig) -> None:
    client = ControlClient(f"http://127.0.0.1:{rig.port}", TOKEN)
    assert client.status()["state"] == "idle"
    with pytest.raises(ControlError) as refused:  # a signed refusal is an ordinary error
        client.payment_ended()
    assert (refused.value.status, refused.value.code) == (409, "not_allowed")
    assert not isinstance(refused.value, ControlImpostor)
    with pytest.raises(ControlImpostor, match="check that this is the token Settings shows now"):
        ControlClient(f"http://127.0.0.1:{rig.port}", "an-old-token-0123456789").status()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    with pytest.raises(ControlUnreachable, match=f"no answer on 127.0.0.1:{free}"):
        ControlClient(f"http://127.0.0.1:{free}", TOKEN).status()
    assert TOKEN not in repr(client)


def test_the_three_kinds_of_mac_are_kept_apart() -> None:
    """A proof the server gives anyone is never valid as a request or an answer."""
    n1, n2 = "aa" * 32, "bb" * 32
    proof = protocol.server_proof(TOKEN, 47800, n1, n2)
    assert proof != protocol.mac(TOKEN, "request", 47800, n1, n2)
    assert proof != protocol.mac(TOKEN, "response", 47800, n1, n2)
    assert protocol.request_mac(TOKEN, 47800, n1, "get", "/v1/status", b"") == \
        protocol.request_mac(TOKEN, 47800, n1, "GET", "/v1/status", b"")
    assert not protocol.is_nonce("ab" * 32 + "\n") and not protocol.is_nonce("xyz" * 20)


# ---- the documentation ------------------------------------------------------------------------

DOC = Path(__file__).resolve().parents[3] / "docs" / "control-api.md"


def doc_section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(title)
    end = text.find("\n#", start + len(title))
    return text[start:end if end != -1 else None]


def test_the_documented_client_works_against_the_real_server(rig: Rig) -> None:
    section = doc_section("### Worked example in code")
    code = section.split("```python\n")[1].split("```")[0]
    assert len(code.strip().splitlines()) <= 24  # "about 20 lines"
    scope: dict = {}
    exec(compile(code, str(DOC), "exec"), scope)  # noqa: S102 - our own documentation
    callrec = scope["callrec"]
    status, doc = callrec(TOKEN, rig.port, "POST", "/v1/call/started", {"line": LINE})
    assert status == 201 and doc["state"] == "recording"
    assert callrec(TOKEN, rig.port, "POST", "/v1/payment/started", {})[1]["payment_in_progress"] is True
    assert callrec(TOKEN, rig.port, "POST", "/v1/payment/ended")[1]["state"] == "recording"
    assert callrec(TOKEN, rig.port, "POST", "/v1/payment/ended")[0] == 409  # a signed refusal
    assert callrec(TOKEN, rig.port, "GET", "/v1/status")[1]["state"] == "recording"
    assert callrec(TOKEN, rig.port, "POST", "/v1/call/ended")[0] == 200
    with pytest.raises(RuntimeError, match="not callrec-desktop"):
        callrec("not-the-token", rig.port, "GET", "/v1/status")
    with Squatter() as squatter:
        with pytest.raises((RuntimeError, ValueError, KeyError)):
            callrec(TOKEN, squatter.port, "POST", "/v1/payment/started", {})
        assert TOKEN.encode() not in squatter.log and b"/v1/payment" not in squatter.log


def test_the_documented_numbers_are_right() -> None:
    section = doc_section("### Worked example with numbers")
    token, port, cn, sn = "example-token-do-not-use", 47800, "0" * 64, "1" * 64
    body = b'{"line": "01443 425002"}'
    for value in (protocol.server_proof(token, port, cn, sn),
                  protocol.request_mac(token, port, sn, "GET", "/v1/status", b""),
                  protocol.body_hash(body),
                  protocol.request_mac(token, port, sn, "POST", "/v1/call/started", body),
                  protocol.response_mac(token, port, sn, 200, b"{}")):
        assert f"`{value}`" in section


def test_nonces_are_single_use_and_bounded() -> None:
    from callrec_desktop.control.server import MAX_NONCES, _Nonces

    nonces = _Nonces()
    first = nonces.issue()
    assert nonces.take(first) and not nonces.take(first)
    assert not nonces.take(protocol.new_nonce())  # never issued
    oldest = nonces.issue()
    newer = [nonces.issue() for _ in range(MAX_NONCES)]  # a flood of challenges forgets the oldest first
    assert not nonces.take(oldest)
    assert all(nonces.take(n) for n in newer)
