"""The control API over real HTTP against a real Desk (realtime synthetic capture, spool,
uploader, folder store). Every refusal must leave the desk and the stored recording unchanged."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import secrets
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from callrec_desktop.archive import iter_manifests, load_manifest
from callrec_desktop.audio.sources import AudioSourceError, SyntheticSource
from callrec_desktop.config import load_lines, resources_dir
from callrec_desktop.control.server import MAX_BODY_BYTES, ControlBindError, ControlServer
from callrec_desktop.core.manifest import Manifest
from callrec_desktop.core.timeline import CallState
from callrec_desktop.desk import Desk, DeskStatus
from callrec_desktop.spool import Spool
from callrec_desktop.storage.folder import FolderStore
from callrec_desktop.storage.layout import manifest_key
from callrec_desktop.uploader import UploadSettings, Uploader
from tests.support.recording import IDENTITY, RATE, settings

TOKEN = "test-token-Zx9_kQ2-long-enough-to-be-real-0123456789"
LINE = "01443 425002"
CALLER = "07700900123"
BLOCK = 320  # 20 ms at 16 kHz
WAIT = 15.0  # upper bound for any wait; normally met in well under a second


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT, what: str = "condition") -> None:
    """Poll ``predicate`` until true, at most ``timeout`` seconds (never a bare sleep)."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        pause.wait(0.01)


def endless_tone(channels: int = 2) -> Iterator[np.ndarray]:
    """A stereo tone (agent 440 Hz, caller 1250 Hz) forever, in blocks of BLOCK frames."""
    n = 0
    while True:
        t = (n + np.arange(BLOCK)) / RATE
        block = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 1250 * t)], axis=1)
        n += BLOCK
        yield block[:, :channels].astype(np.float32)


@dataclass
class Rig:
    desk: Desk
    server: ControlServer
    spool: Spool
    store: FolderStore
    uploaded: set[str]  # store keys the uploader confirmed
    uploaded_changed: threading.Condition

    @property
    def port(self) -> int:
        return self.server.port

    def advance(self, seconds: float) -> None:
        """Wait until the capture has moved on by ``seconds`` of audio."""
        start = self.desk.current_frame() or 0
        wait_until(lambda: (self.desk.current_frame() or 0) >= start + round(seconds * RATE), what="capture")

    def stored_manifest(self, call_id: str) -> Manifest:
        """The call's complete manifest, once the uploader has put it in the store."""
        key = manifest_key(call_id)

        def complete() -> bool:
            if key not in self.uploaded:
                return False
            return load_manifest(self.store, call_id).status == "complete"

        with self.uploaded_changed:
            assert self.uploaded_changed.wait_for(complete, WAIT), f"manifest of {call_id} not uploaded"
        return load_manifest(self.store, call_id)


@contextmanager
def running_desk(tmp_path: Path, *, device: bool = True, token: str = TOKEN, port: int = 0, ports: int = 1,
                 port_file: Path | None = None) -> Iterator[Rig]:
    """A real desk capturing a realtime synthetic source, and its control server on a free
    port (or the first free from ``port``). Shuts both down (and checks no thread of theirs is
    left) on exit."""
    lines = load_lines(resources_dir() / "lines.toml")
    spool = Spool(tmp_path / "spool")
    (tmp_path / "store").mkdir()
    store = FolderStore(tmp_path / "store")
    uploaded: set[str] = set()
    cond = threading.Condition()
    desk_box: list[Desk] = []

    def on_uploaded(call_id: str, key: str) -> None:
        with cond:
            uploaded.add(key)
            cond.notify_all()

    uploader = Uploader(spool, store, UploadSettings(initial_backoff_seconds=0.05, max_backoff_seconds=0.5,
                                                     idle_poll_seconds=0.1),
                        on_status=lambda s: desk_box[0].upload_status_changed(s) if desk_box else None,
                        on_uploaded=on_uploaded)

    def source_factory() -> SyntheticSource:
        if not device:
            raise AudioSourceError("no input device found (test)")
        return SyntheticSource(endless_tone(), sample_rate=RATE, block_frames=BLOCK, realtime=True, channels=2)

    desk = Desk(lines=lines, spool=spool, uploader=uploader,
                settings=settings(chunk_seconds=1.0, lookbehind_seconds=0.2), identity=IDENTITY,
                source_factory=source_factory)
    desk_box.append(desk)
    before = set(threading.enumerate())
    desk.start()
    server = ControlServer(desk, token, port=port, ports=ports, port_file=port_file)
    try:
        server.start()
        yield Rig(desk, server, spool, store, uploaded, cond)
    finally:
        server.stop()
        desk.shutdown()
    left = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not left, f"threads left running: {left}"


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with running_desk(tmp_path) as r:
        yield r


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    raw: bytes
    signed: bool = False  # the answer carried a valid Callrec-MAC for the request's nonce

    @property
    def doc(self) -> Any:
        return json.loads(self.raw)

    @property
    def code(self) -> str:
        return self.doc["error"]["code"]

    @property
    def message(self) -> str:
        return self.doc["error"]["message"]


ANSWERS: list[Answer] = []  # every answer of this module, checked for the token at the end


# The protocol as docs/control-api.md states it, written out again here (not imported from the
# package), so a change on both sides of the package cannot go unnoticed.
def hmac_hex(token: str, *lines: object) -> str:
    return hmac.new(token.encode("ascii"), "\n".join(map(str, lines)).encode("utf-8"), hashlib.sha256).hexdigest()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def exchange(port: int, method: str, target: str, data: bytes | None, headers: dict[str, str]) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, target, body=data, headers=headers)
        resp = conn.getresponse()
        return Answer(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def challenge(port: int, token: str = TOKEN) -> tuple[str, bool]:
    """A server nonce, and whether the server's proof checks out with ``token``."""
    cn = secrets.token_hex(32)
    a = exchange(port, "POST", "/v1/challenge", json.dumps({"client_nonce": cn}).encode(),
                 {"Content-Type": "application/json"})
    assert a.status == 200, a.raw
    sn, proof = a.doc["server_nonce"], a.doc["proof"]
    return sn, hmac.compare_digest(proof, hmac_hex(token, "callrec-control-v2 server-proof", port, cn, sn))


def signature(port: int, nonce: str, method: str, target: str, data: bytes, token: str = TOKEN) -> str:
    mac = hmac_hex(token, "callrec-control-v2 request", port, nonce, method, target, sha(data))
    return f"Callrec-HMAC {nonce} {mac}"


def call(port: int, method: str, path: str, body: Any = None, *, token: str | None = TOKEN,
         raw: bytes | None = None, content_type: str | None = "application/json",
         headers: dict[str, str] | None = None, sign_data: bytes | None = None) -> Answer:
    """One operation over real HTTP: the challenge, then the request signed with ``token``
    (None: no Authorization header; ``headers`` may give one of its own). ``body`` is sent as
    JSON, ``raw`` as given; ``sign_data`` signs other bytes than those sent."""
    h = dict(headers or {})
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    nonce = None
    if token is not None and "Authorization" not in h:
        nonce, _ = challenge(port, token)
        h["Authorization"] = signature(port, nonce, method, path, (data or b"") if sign_data is None else sign_data,
                                       token)
    if data is not None and content_type is not None:
        h["Content-Type"] = content_type
    answer = exchange(port, method, path, data, h)
    assert answer.headers["Content-Type"] == "application/json"
    json.loads(answer.raw)  # always JSON
    given = answer.headers.get("Callrec-MAC")
    if nonce is not None and given is not None:
        answer.signed = hmac.compare_digest(
            given, hmac_hex(token, "callrec-control-v2 response", port, nonce, answer.status, sha(answer.raw)))
    ANSWERS.append(answer)
    return answer


def snapshot(st: DeskStatus) -> tuple:
    """What a refused request must not change."""
    return (st.state, st.call_id, st.line_number, st.department, st.caller, st.payment_started,
            st.payment_source, st.transferred_to, st.last_end_reason)


# ---- the happy path ---------------------------------------------------------------------------


def test_full_flow_is_recorded_with_control_api_as_source(rig: Rig) -> None:
    a = call(rig.port, "POST", "/v1/call/started", {"line": LINE, "caller": CALLER, "external_id": "cti-123"})
    assert a.status == 201 and a.signed, a.doc
    call_id = a.doc["call_id"]
    assert a.doc["state"] == "recording" and a.doc["recording"] is True
    assert a.doc["line"] == {"number": LINE, "department": "Council Tax, Business Rate and Benefits"}
    assert a.doc["caller"] == CALLER and a.doc["payment_in_progress"] is False
    assert rig.desk.status().call_id == call_id
    rig.advance(0.3)

    a = call(rig.port, "POST", "/v1/payment/started", {})
    assert a.status == 200, a.doc
    assert a.doc["state"] == "paused" and a.doc["payment_in_progress"] is True and a.doc["recording"] is False
    assert rig.desk.status().payment_source == "control_api"
    rig.advance(0.3)

    a = call(rig.port, "POST", "/v1/payment/ended")  # no body at all: an empty object
    assert a.status == 200, a.doc
    assert a.doc["state"] == "recording" and a.doc["payment_in_progress"] is False
    rig.advance(0.3)

    a = call(rig.port, "POST", "/v1/call/transferred", {"department": "Planning"})
    assert a.status == 200, a.doc
    assert a.doc["state"] == "ended" and a.doc["transferred_to"] == "Planning" and a.doc["end_reason"] == "transferred"

    m = rig.stored_manifest(call_id)
    assert (m.line_number, m.caller, m.external_id) == (LINE, CALLER, "cti-123")
    assert len(m.pauses) == 1
    pause = m.pauses[0]
    assert (pause.reason, pause.source, pause.end_source) == ("payment", "control_api", "control_api")
    assert pause.wall_seconds >= 0.25
    assert m.end is not None
    assert (m.end.reason, m.end.department, m.end.source) == ("transferred", "Planning", "control_api")
    assert m.chunks, "audio was recorded"


def test_call_ended_is_a_hangup_from_the_control_api(rig: Rig) -> None:
    call_id = call(rig.port, "POST", "/v1/call/started", {"line": "planning"}).doc["call_id"]
    rig.advance(0.1)
    a = call(rig.port, "POST", "/v1/call/ended", {})
    assert a.status == 200 and a.doc["state"] == "ended" and a.doc["end_reason"] == "hangup"
    m = rig.stored_manifest(call_id)
    assert m.end is not None and (m.end.reason, m.end.source) == ("hangup", "control_api")
    assert m.caller is None and m.department == "Planning"


def test_status_shape(rig: Rig) -> None:
    a = call(rig.port, "GET", "/v1/status")
    assert a.status == 200
    assert a.doc == {
        "state": "idle", "recording": False, "capturing": True, "payment_in_progress": False, "call_id": None,
        "line": None, "caller": None, "transferred_to": None, "end_reason": None, "faults": {},
        "upload": {"backlog_chunks": a.doc["upload"]["backlog_chunks"], "backlog_bytes": a.doc["upload"]["backlog_bytes"],
                   "last_error": None},
    }
    call(rig.port, "POST", "/v1/call/started", {"line": LINE, "caller": CALLER})
    doc = call(rig.port, "GET", "/v1/status").doc
    assert doc["state"] == "recording" and doc["recording"] is True and doc["caller"] == CALLER
    assert doc["line"]["number"] == LINE and doc["call_id"] == rig.desk.status().call_id


def test_query_string_is_ignored_and_caller_may_be_withheld(rig: Rig) -> None:
    assert call(rig.port, "GET", "/v1/status?verbose=1").status == 200
    a = call(rig.port, "POST", "/v1/call/started", {"line": LINE, "caller": "", "external_id": None})
    assert a.status == 201 and a.doc["caller"] is None


# ---- refusals ---------------------------------------------------------------------------------

MISSING_TOKEN = dict(token=None)
BAD_BODIES = [  # (body bytes, what the message mentions)
    (b'{"line": ', "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b'"01443 425002"', "JSON object"),
    (b'{"line": 1443425002}', "must be a string"),
    (b'{"line": "01443 425002", "caller": 7700900123}', "must be a string"),
    (b'{"line": "01443 425002", "external_id": ["x"]}', "must be a string"),
    (b'{"line": "01443 425002", "agent": "x"}', "unknown field"),
    (b'{"line": "01443 425002", "line": "01443 425004"}', "duplicate key"),
    (b'{"caller": "07700900123"}', "missing field 'line'"),
    (b'{"line": "   "}', "must not be empty"),
    (b'{"line": NaN}', "not valid JSON"),
    (b'{"line": "\xff"}', "not UTF-8"),
    (b'{"line": "01443 425002\\n"}', None),  # trailing whitespace is stripped: accepted shape
]


def refusals_while_idle(port: int) -> list[tuple[Answer, int, str]]:
    out = []

    def expect(answer: Answer, status: int, code: str) -> None:
        out.append((answer, status, code))

    started = "/v1/call/started"
    good = {"line": LINE, "caller": CALLER}
    # 401: no signature, a bearer token, the wrong token, a wrong scheme, a malformed header,
    # a nonce the server never issued, a nonce used twice
    expect(call(port, "POST", started, good, token=None), 401, "unauthorized")
    expect(call(port, "POST", started, good, token=None, headers={"Authorization": f"Bearer {TOKEN}"}), 401,
           "unauthorized")
    expect(call(port, "POST", started, good, token="wrong-token"), 401, "unauthorized")
    expect(call(port, "POST", started, good, token=TOKEN.upper()), 401, "unauthorized")
    expect(call(port, "POST", started, good, token=None, headers={"Authorization": f"Basic {TOKEN}"}), 401,
           "unauthorized")
    expect(call(port, "POST", started, good, token=None, headers={"Authorization": "Callrec-HMAC"}), 401,
           "unauthorized")
    forged = signature(port, secrets.token_hex(32), "POST", started, json.dumps(good).encode())
    expect(call(port, "POST", started, good, token=None, headers={"Authorization": forged}), 401, "unauthorized")
    nonce, _ = challenge(port)
    used = signature(port, nonce, "GET", "/v1/status", b"")
    assert call(port, "GET", "/v1/status", token=None, headers={"Authorization": used}).status == 200
    expect(call(port, "GET", "/v1/status", token=None, headers={"Authorization": used}), 401, "unauthorized")
    expect(call(port, "GET", "/v1/nowhere", token=None), 401, "unauthorized")  # no probing without a token
    # 404, 405
    for path in ("/v1/nowhere", "/v2/status", "/", "/v1/status/", "/v1/call/started/x"):
        expect(call(port, "GET", path), 404, "not_found")
    expect(call(port, "GET", started), 405, "method_not_allowed")
    expect(call(port, "PUT", started, good), 405, "method_not_allowed")
    expect(call(port, "POST", "/v1/status", {}), 405, "method_not_allowed")
    expect(call(port, "DELETE", "/v1/status"), 405, "method_not_allowed")
    expect(call(port, "BREW", "/v1/status"), 405, "method_not_allowed")
    # 400
    for body, _ in BAD_BODIES[:-1]:
        expect(call(port, "POST", started, raw=body), 400, "bad_request")
    expect(call(port, "POST", "/v1/payment/started", {"line": LINE}), 400, "bad_request")
    expect(call(port, "POST", "/v1/call/transferred", {"department": 5}), 400, "bad_request")
    expect(call(port, "POST", "/v1/call/transferred", {}), 400, "bad_request")
    # 415
    expect(call(port, "POST", started, good, content_type="text/plain"), 415, "unsupported_media_type")
    expect(call(port, "POST", started, good, content_type=None), 415, "unsupported_media_type")
    expect(call(port, "POST", started, good, content_type="application/x-www-form-urlencoded"), 415,
           "unsupported_media_type")
    # 413
    big = json.dumps({"line": LINE, "caller": "0" * (MAX_BODY_BYTES + 1)}).encode()
    expect(call(port, "POST", started, raw=big), 413, "payload_too_large")
    # 422
    expect(call(port, "POST", started, {"line": "01443 999999", "caller": CALLER}), 422, "unknown_line")
    expect(call(port, "POST", "/v1/call/transferred", {"department": "Narnia"}), 422, "unknown_department")
    # 409: nothing to act on while idle
    for path in ("/v1/payment/started", "/v1/payment/ended", "/v1/call/ended"):
        expect(call(port, "POST", path, {}), 409, "not_allowed")
    expect(call(port, "POST", "/v1/call/transferred", {"department": "Planning"}), 409, "not_allowed")
    return out


def check(refusals: list[tuple[Answer, int, str]]) -> None:
    for answer, status, code in refusals:
        assert (answer.status, answer.code) == (status, code), answer.doc
        assert answer.message and isinstance(answer.message, str)
        assert set(answer.doc) == {"error"} and set(answer.doc["error"]) == {"code", "message"}
        # Once the signature is verified, refusals are signed too; before that they cannot be.
        assert answer.signed is (status not in (401, 413)), (status, code)


def test_refusals_while_idle_change_nothing(rig: Rig) -> None:
    before = snapshot(rig.desk.status())
    refusals = refusals_while_idle(rig.port)
    check(refusals)
    assert snapshot(rig.desk.status()) == before
    assert rig.desk.status().state is CallState.IDLE
    rig.advance(0.3)  # had anything started a call, the gate would have opened it by now
    assert rig.spool.call_ids() == [] and list(iter_manifests(rig.store)) == []


def test_refusal_headers_and_messages(rig: Rig) -> None:
    a = call(rig.port, "GET", "/v1/status", token=None)
    assert a.status == 401 and a.headers["WWW-Authenticate"].startswith("Callrec-HMAC")
    assert "POST /v1/challenge" in a.message and not a.signed
    a = call(rig.port, "GET", "/v1/status", token="nope")
    assert a.status == 401 and a.headers["WWW-Authenticate"].startswith("Callrec-HMAC")
    assert "wrong signature" in a.message and "Callrec-MAC" not in a.headers
    a = call(rig.port, "GET", "/v1/status", token=None, headers={"Authorization": f"Bearer {TOKEN}"})
    assert a.status == 401 and "bearer tokens are no longer accepted" in a.message
    assert call(rig.port, "GET", "/v1/call/started").headers["Allow"] == "POST"
    assert call(rig.port, "POST", "/v1/status", {}).headers["Allow"] == "GET"
    a = call(rig.port, "POST", "/v1/call/started", {"line": "01443 999999"})
    assert "01443 425001" in a.message and "planning" in a.message  # lists the valid lines
    a = call(rig.port, "POST", "/v1/call/transferred", {"department": "Narnia"})
    assert "Planning" in a.message and "Housing" in a.message  # lists the departments
    a = call(rig.port, "POST", "/v1/payment/ended", {})
    assert "no call is in progress" in a.message
    for body, words in BAD_BODIES:
        if words is not None:
            a = call(rig.port, "POST", "/v1/call/started", raw=body)
            assert words in a.message, (body, a.message)


def test_refusals_during_a_call_leave_the_recording_unchanged(rig: Rig) -> None:
    call_id = call(rig.port, "POST", "/v1/call/started", {"line": LINE, "caller": CALLER}).doc["call_id"]
    rig.advance(0.2)
    during_call = snapshot(rig.desk.status())
    started = "/v1/call/started"
    refusals = [
        (call(rig.port, "POST", started, {"line": "01443 425004"}), 409, "not_allowed"),  # a call inside a call
        (call(rig.port, "POST", "/v1/payment/ended", {}), 409, "not_allowed"),
        (call(rig.port, "POST", "/v1/payment/started", {}, token="wrong"), 401, "unauthorized"),
        (call(rig.port, "POST", "/v1/call/transferred", {"department": "Narnia"}), 422, "unknown_department"),
        (call(rig.port, "POST", "/v1/call/ended", raw=b"{"), 400, "bad_request"),
        (call(rig.port, "POST", "/v1/call/ended", {}, content_type="text/plain"), 415, "unsupported_media_type"),
        (call(rig.port, "POST", "/v1/call/transferred", raw=b'{"department": "' + b"x" * MAX_BODY_BYTES + b'"}'),
         413, "payload_too_large"),
        (call(rig.port, "GET", "/v1/call/ended"), 405, "method_not_allowed"),
    ]
    check(refusals)
    assert snapshot(rig.desk.status()) == during_call

    assert call(rig.port, "POST", "/v1/payment/started", {}).status == 200
    rig.advance(0.2)
    during_payment = snapshot(rig.desk.status())
    refusals = [
        (call(rig.port, "POST", "/v1/payment/started", {}), 409, "not_allowed"),  # a payment inside a payment
        (call(rig.port, "POST", started, {"line": LINE}), 409, "not_allowed"),
        (call(rig.port, "POST", "/v1/call/transferred", {"department": "Narnia"}), 422, "unknown_department"),
        (call(rig.port, "POST", "/v1/payment/ended", {}, token=None), 401, "unauthorized"),
        (call(rig.port, "POST", "/v1/payment/ended", {"resume": True}), 400, "bad_request"),
    ]
    check(refusals)
    assert snapshot(rig.desk.status()) == during_payment
    assert rig.desk.status().payment_in_progress

    assert call(rig.port, "POST", "/v1/payment/ended", {}).status == 200
    assert call(rig.port, "POST", "/v1/call/ended", {}).status == 200
    m = rig.stored_manifest(call_id)
    assert len(m.pauses) == 1 and m.pauses[0].source == "control_api"  # only the accepted payment
    assert m.end is not None and (m.end.reason, m.end.department, m.end.source) == ("hangup", None, "control_api")
    assert m.line_number == LINE and m.caller == CALLER
    assert [x.call_id for x in iter_manifests(rig.store) if isinstance(x, Manifest)] == [call_id]


def test_no_audio_capture_is_503(tmp_path: Path) -> None:
    with running_desk(tmp_path, device=False) as r:
        before = snapshot(r.desk.status())
        a = call(r.port, "POST", "/v1/call/started", {"line": LINE})
        assert (a.status, a.code) == (503, "not_capturing") and "no input device" in a.message
        a = call(r.port, "POST", "/v1/payment/started", {})
        assert (a.status, a.code) == (503, "not_capturing")
        assert snapshot(r.desk.status()) == before
        doc = call(r.port, "GET", "/v1/status").doc
        assert doc["capturing"] is False and "no_device" in doc["faults"]


# ---- security ----------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com", ""])
def test_only_loopback_addresses_can_be_bound(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        ControlServer(object(), TOKEN, port=0, host=host)  # type: ignore[arg-type]


def test_localhost_and_an_empty_token() -> None:
    assert ControlServer(object(), TOKEN, port=0, host="localhost").host == "127.0.0.1"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="token"):
        ControlServer(object(), "", port=0)  # type: ignore[arg-type]


def test_port_in_use_is_a_clear_error(rig: Rig) -> None:
    other = ControlServer(rig.desk, TOKEN, port=rig.port)
    with pytest.raises(ControlBindError) as refused:
        other.start()
    assert refused.value.strerror == f"the control API cannot listen on 127.0.0.1:{rig.port}: another program is using it"
    assert "Errno" not in refused.value.strerror


def test_token_rotation_takes_effect_at_once(rig: Rig) -> None:
    new = "rotated-token-0123456789abcdefghijklmnop"
    rig.server.set_token(new)
    assert call(rig.port, "GET", "/v1/status").status == 401
    assert call(rig.port, "GET", "/v1/status", token=new).status == 200


def test_token_and_caller_never_logged_or_echoed(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    refusals_while_idle(rig.port)
    call_id = call(rig.port, "POST", "/v1/call/started", {"line": LINE, "caller": CALLER}).doc["call_id"]
    call(rig.port, "POST", "/v1/payment/started", {})
    call(rig.port, "POST", "/v1/payment/ended", {})
    call(rig.port, "POST", "/v1/call/transferred", {"department": "Planning"})
    rig.stored_manifest(call_id)
    assert TOKEN not in caplog.text and "wrong-token" not in caplog.text
    info = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert not [r.getMessage() for r in info if CALLER in r.getMessage()]
    requests = [r.getMessage() for r in info if r.getMessage().startswith("control API: ")]
    assert "control API: POST /v1/call/started -> 201" in "\n".join(requests)
    assert any(" -> 401 " in m for m in requests) and any(" -> 413 " in m for m in requests)
    for answer in ANSWERS:
        assert TOKEN.encode() not in answer.raw and b"wrong-token" not in answer.raw
        assert TOKEN not in str(answer.headers)
    assert TOKEN not in repr(rig.server)


def test_malformed_request_line_gets_a_json_answer(rig: Rig) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", rig.port), timeout=10) as s:
        s.sendall(b"GARBAGE\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 400") and b"application/json" in head
    assert json.loads(body)["error"]["code"] == "bad_request"
