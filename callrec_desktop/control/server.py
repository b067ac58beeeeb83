"""The control API server: JSON over HTTP on a loopback address, every request signed.

Softphones, CTI connectors, CRM and payment pages tell the desk that a call started, that a
payment is being taken or is finished, that the call was transferred or ended; every such
change is stamped with the source ``control_api``. The wire format (endpoints, bodies,
error codes) is documented in ``docs/control-api.md``; keep the two in step.

Authentication (``protocol.py``): the token never crosses the socket. A client first asks
``POST /v1/challenge`` and checks the server's proof that it knows the token; then it signs
its request with the server's nonce, and the server signs its answer. Bearer tokens are
refused (a program squatting the port would have received them).

Rules every request goes through, in this order, and nothing changes on any refusal:
signature header and nonce (401) → body length (411/413) → signature (401) → path (404) →
method (405) → body: media type (415), JSON object with the endpoint's fields and types
(400) → the desk: unknown line or department (422), not allowed now (409), no audio capture
(503). Answers from the path check on are signed.

Ports: the server listens on the first free port of ``port`` … ``port + ports - 1`` (one per
signed-in user on a terminal server) and publishes it in the user's port file
(``portfile.py``). If none is free, ``start()`` raises ``ControlBindError`` with words for
people (the app shows them as a fault).

Threads: ``start()`` runs ``serve_forever`` on the thread ``callrec-control-api``; each
connection is handled on its own short-lived thread ``callrec-control-request``, which calls
the desk directly: desk operations are thread-safe and return at once. ``stop()`` shuts every
open connection down, so held or half-sent requests cannot delay it (designed for 0.5 s).
The token, MACs and request bodies are never logged; the caller's number only at DEBUG.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from callrec_desktop.control import portfile, protocol
from callrec_desktop.core.timeline import EventSource
from callrec_desktop.desk import (
    Desk,
    DeskError,
    DeskStatus,
    NotCapturing,
    PaymentInProgress,
    UnknownDepartment,
    UnknownLine,
)

log = logging.getLogger(__name__)

API_PREFIX = "/v1"
MAX_BODY_BYTES = 16 * 1024
SOURCE = EventSource.CONTROL_API
# A refused body up to this size is read and discarded before answering, so the client reads
# the answer instead of a connection reset; a larger one is not read at all.
_DRAIN_LIMIT = 1024 * 1024
_MAX_TEXT = 256  # longest accepted string field
_MAX_CHALLENGE_BYTES = 1024
MAX_CONNECTIONS = 64  # open connections at once; more are closed at once (each holds a thread)
MAX_NONCES = 1024  # outstanding challenge nonces; the oldest is forgotten first
STOP_SECONDS = 0.5  # what stop() allows the connection threads after shutting their sockets
PORTS_PER_PC = 100  # [control] port and the 99 ports above it: one per signed-in user
# Windows reports socket errors with its WSA numbers, not the C library's.
_IN_USE = {errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", errno.EADDRINUSE)}
_DENIED = {errno.EACCES, getattr(errno, "WSAEACCES", errno.EACCES)}


class ControlBindError(OSError):
    """No port could be listened on; the message says which and why, in words for people."""


class ApiError(Exception):
    """A refused request: HTTP status, a stable machine code and a message for people."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def status_document(st: DeskStatus) -> dict[str, Any]:
    """The desk's state as the API shows it (``GET /v1/status`` and every operation's answer)."""
    up = st.upload
    return {
        "state": st.state.value,
        "recording": st.recording,
        "capturing": st.capturing,
        "payment_in_progress": st.payment_in_progress,
        "call_id": st.call_id,
        "line": {"number": st.line_number, "department": st.department} if st.call_id is not None else None,
        "caller": st.caller,
        "transferred_to": st.transferred_to,
        "end_reason": st.last_end_reason,
        "faults": {fault.value: message for fault, message in st.faults.items()},
        "upload": {
            "backlog_chunks": up.backlog_chunks,
            "backlog_bytes": up.backlog_bytes,
            "last_error": up.last_error,
        },
    }


# ---- endpoints -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    required: bool = False


@dataclass(frozen=True)
class _Route:
    method: str
    fields: Mapping[str, _Field]
    run: Callable[[Desk, dict[str, str | None]], tuple[int, dict[str, Any]]]


def _call_started(desk: Desk, a: dict[str, str | None]) -> tuple[int, dict[str, Any]]:
    line = a["line"]
    assert line is not None  # required
    log.debug("control API: call started on line %s, caller %s, external id %s", line, a.get("caller"),
              a.get("external_id"))
    call_id = desk.start_call(line, caller=a.get("caller"), external_id=a.get("external_id"), source=SOURCE)
    return 201, {**status_document(desk.status()), "call_id": call_id}


def _payment_started(desk: Desk, a: dict[str, str | None]) -> tuple[int, dict[str, Any]]:
    desk.take_payment(source=SOURCE)
    return 200, status_document(desk.status())


def _payment_ended(desk: Desk, a: dict[str, str | None]) -> tuple[int, dict[str, Any]]:
    desk.payment_finished(source=SOURCE)
    return 200, status_document(desk.status())


def _transferred(desk: Desk, a: dict[str, str | None]) -> tuple[int, dict[str, Any]]:
    department = a["department"]
    assert department is not None  # required
    desk.transfer(department, source=SOURCE)
    return 200, status_document(desk.status())


def _call_ended(desk: Desk, a: dict[str, str | None]) -> tuple[int, dict[str, Any]]:
    desk.end_call(source=SOURCE)
    return 200, status_document(desk.status())


def _status(desk: Desk, a: dict[str, str | None]) -> tuple[int, dict[str, Any]]:
    return 200, status_document(desk.status())


ROUTES: dict[str, _Route] = {
    f"{API_PREFIX}/call/started": _Route(
        "POST", {"line": _Field(required=True), "caller": _Field(), "external_id": _Field()}, _call_started),
    f"{API_PREFIX}/payment/started": _Route("POST", {}, _payment_started),
    f"{API_PREFIX}/payment/ended": _Route("POST", {}, _payment_ended),
    f"{API_PREFIX}/call/transferred": _Route("POST", {"department": _Field(required=True)}, _transferred),
    f"{API_PREFIX}/call/ended": _Route("POST", {}, _call_ended),
    f"{API_PREFIX}/status": _Route("GET", {}, _status),
}


def _desk_error(exc: DeskError) -> ApiError:
    """Map a refusal of the desk (nothing changed) to an HTTP answer."""
    if isinstance(exc, UnknownLine):
        return ApiError(422, "unknown_line", str(exc))
    if isinstance(exc, UnknownDepartment):
        return ApiError(422, "unknown_department", str(exc))
    if isinstance(exc, NotCapturing):
        return ApiError(503, "not_capturing", str(exc))
    if isinstance(exc, PaymentInProgress):
        return ApiError(409, "payment_in_progress", str(exc))
    return ApiError(409, "not_allowed", str(exc))


def _fields(doc: dict[str, Any], spec: Mapping[str, _Field]) -> dict[str, str | None]:
    """The endpoint's fields from a request object: strings (or null when optional), nothing else."""
    unknown = sorted(set(doc) - set(spec))
    if unknown:
        expected = ", ".join(spec) if spec else "none"
        raise ApiError(400, "bad_request", f"unknown field(s) {', '.join(map(repr, unknown))}; expected: {expected}")
    out: dict[str, str | None] = {}
    for name, field in spec.items():
        value = doc.get(name)
        if value is None:
            if field.required:
                raise ApiError(400, "bad_request", f"missing field {name!r} (a string)")
            out[name] = None
            continue
        if not isinstance(value, str):
            raise ApiError(400, "bad_request", f"field {name!r} must be a string, got {_json_type(value)}")
        text = value.strip()
        if len(text) > _MAX_TEXT:
            raise ApiError(400, "bad_request", f"field {name!r} is longer than {_MAX_TEXT} characters")
        if any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise ApiError(400, "bad_request", f"field {name!r} contains control characters")
        if not text:
            if field.required:
                raise ApiError(400, "bad_request", f"field {name!r} must not be empty")
            text = None  # e.g. a withheld caller number sent as ""
        out[name] = text
    return out


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# ---- HTTP --------------------------------------------------------------------------------------


class _Nonces:
    """Server nonces handed out by ``/v1/challenge``: each accepted once, within its lifetime.
    Any request thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._issued: OrderedDict[str, float] = OrderedDict()  # nonce -> time.monotonic() it expires

    def issue(self) -> str:
        nonce = protocol.new_nonce()
        now = time.monotonic()
        with self._lock:
            self._issued[nonce] = now + protocol.NONCE_TTL_SECONDS
            while len(self._issued) > MAX_NONCES:
                self._issued.popitem(last=False)
        return nonce

    def take(self, nonce: str) -> bool:
        """True once for a nonce this server issued and that has not expired."""
        with self._lock:
            expires = self._issued.pop(nonce, None)
        return expires is not None and time.monotonic() < expires


class _Api:
    """What the handler threads share: the desk, the current token and the nonces."""

    def __init__(self, desk: Desk, token: str) -> None:
        self.desk = desk
        self.token = token.encode("ascii")
        self.nonces = _Nonces()

    def __repr__(self) -> str:
        return "_Api(token=<hidden>)"


class _HTTPServer(ThreadingHTTPServer):
    """One thread per connection, each tracked with its socket so ``close_connections`` can
    end them all at once: a held or half-sent request must not delay the app's exit."""

    daemon_threads = True  # joined by close_connections() with a deadline, not by server_close()
    block_on_close = False
    api: _Api

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._conn_lock = threading.Lock()
        self._conns: dict[threading.Thread, socket.socket] = {}
        self._closing = False
        super().__init__(*args, **kwargs)

    def server_bind(self) -> None:
        # Windows: SO_REUSEADDR would let another process bind the same port and receive our
        # clients' requests; ask for exclusive use instead.
        if hasattr(socket, "SO_EXCLUSIVEADDRUSE"):
            self.allow_reuse_address = False
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        super().server_bind()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Runs on the serve_forever thread: start the connection's thread (or refuse it)."""
        thread = threading.Thread(target=self._serve_connection, args=(request, client_address),
                                  name="callrec-control-request", daemon=True)
        with self._conn_lock:
            refuse = self._closing or len(self._conns) >= MAX_CONNECTIONS
            if not refuse:
                self._conns[thread] = request
        if refuse:
            log.warning("control API: %d connections are open; refusing another", MAX_CONNECTIONS)
            self.shutdown_request(request)
            return
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        """Runs on a ``callrec-control-request`` thread."""
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._conn_lock:
                self._conns.pop(threading.current_thread(), None)

    def close_connections(self, deadline: float) -> list[threading.Thread]:
        """Shut every open connection down (a blocked read returns at once) and join their
        threads until ``deadline`` (time.monotonic()). Call after serve_forever has returned,
        so no new thread starts. Returns the threads still alive (none, normally)."""
        with self._conn_lock:
            self._closing = True
            conns = dict(self._conns)
        for sock in conns.values():
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed by its thread
                pass
        for thread in conns:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [t for t in conns if t.is_alive()]

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("control API: unexpected error handling a connection")


class _Handler(BaseHTTPRequestHandler):
    """Runs on a request thread of the control server."""

    server: _HTTPServer
    server_version = "callrec-desktop"
    sys_version = ""
    protocol_version = "HTTP/1.0"  # one request per connection: nothing idles on a thread
    timeout = 10.0  # socket timeout: a stalled client cannot hold a thread for long

    _unread = 0  # request body bytes not read yet
    _signed: tuple[bytes, str] | None = None  # (token, server nonce) signing the answer, once verified

    # Every method goes through _handle so a wrong one gets 405 with Allow, not 501.
    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # any other method token (http.server looks up do_<METHOD>)
            return self._handle
        raise AttributeError(name)

    def _handle(self) -> None:
        started = time.monotonic()
        path = urlsplit(self.path).path
        self._signed = None
        try:
            status, doc, headers = self._dispatch(path)
        except ApiError as exc:
            status, doc, headers = exc.status, error_body(exc.code, exc.message), exc.headers
        except Exception:
            log.exception("control API: %s %s failed", self.command, _loggable(path))
            status, doc, headers = 500, error_body("internal_error", "internal error; see the callrec-desktop log"), {}
        self._discard_body()
        self._answer(status, doc, headers)
        level = (logging.WARNING if status in (401, 500) else
                 logging.DEBUG if path == protocol.CHALLENGE_PATH and status == 200 else  # one per request: noise
                 logging.INFO)
        log.log(level, "control API: %s %s -> %d (%.0f ms)", self.command, _loggable(path), status,
                (time.monotonic() - started) * 1000)

    @property
    def _port(self) -> int:
        return self.server.server_address[1]

    def _dispatch(self, path: str) -> tuple[int, dict[str, Any], Mapping[str, str]]:
        self._unread = self._content_length()
        if path == protocol.CHALLENGE_PATH:
            return self._challenge()
        nonce, given = self._authorisation()
        token = self.server.api.token  # one read: a rotation during this request does not split it
        if not self.server.api.nonces.take(nonce):
            raise _unauthorised("unknown, used or expired nonce: ask POST /v1/challenge for a new one "
                                "(each nonce signs one request, within "
                                f"{protocol.NONCE_TTL_SECONDS:g} s)")
        raw = self._read_body()
        expected = protocol.request_mac(token, self._port, nonce, self.command, self.path, raw)
        if not protocol.same(given, expected):
            raise _unauthorised("wrong signature: the token is not this user's current control API token "
                                "(Settings shows it), or the request was changed after it was signed")
        self._signed = (token, nonce)  # from here on every answer is signed
        route = ROUTES.get(path)
        if route is None:
            raise ApiError(404, "not_found", f"no endpoint {path!r}; endpoints: " +
                           ", ".join(f"{r.method} {p}" for p, r in ROUTES.items()))
        if self.command != route.method:
            raise ApiError(405, "method_not_allowed", f"{path} accepts {route.method} only, not {self.command}",
                           {"Allow": route.method})
        doc = self._parse_json(raw) if route.method == "POST" else {}
        args = _fields(doc, route.fields)
        try:
            status, answer = route.run(self.server.api.desk, args)
        except DeskError as exc:
            raise _desk_error(exc) from None
        return status, answer, {}

    def _challenge(self) -> tuple[int, dict[str, Any], Mapping[str, str]]:
        """``POST /v1/challenge``: a fresh server nonce and the proof that this server knows the
        token and listens on this port. Needs no authentication: the proof is the point."""
        if self.command != "POST":
            raise ApiError(405, "method_not_allowed", f"{protocol.CHALLENGE_PATH} accepts POST only, not "
                                                      f"{self.command}", {"Allow": "POST"})
        if self._unread > _MAX_CHALLENGE_BYTES:
            raise ApiError(413, "payload_too_large", f"a challenge is at most {_MAX_CHALLENGE_BYTES} bytes")
        doc = self._parse_json(self._read_body())
        cn = doc.get("client_nonce")
        if set(doc) != {"client_nonce"} or not protocol.is_nonce(cn):
            raise ApiError(400, "bad_request", 'send {"client_nonce": "<32 to 128 lowercase hex digits>"} '
                                               "and nothing else")
        sn = self.server.api.nonces.issue()
        proof = protocol.server_proof(self.server.api.token, self._port, cn, sn)
        return 200, {"server_nonce": sn, "proof": proof, "protocol": protocol.VERSION}, {}

    def _content_length(self) -> int:
        if "Transfer-Encoding" in self.headers:
            raise ApiError(411, "length_required", "send the body with a Content-Length (no chunked encoding)")
        raw = self.headers.get("Content-Length")
        if raw is None:
            return 0
        try:
            n = int(raw)
        except ValueError:
            n = -1
        if n < 0:
            raise ApiError(400, "bad_request", "Content-Length is not a non-negative integer")
        return n

    def _authorisation(self) -> tuple[str, str]:
        """The server nonce and MAC of ``Authorization: Callrec-HMAC <nonce> <mac>``."""
        header = self.headers.get("Authorization")
        if header is None:
            raise _unauthorised("missing signature: ask POST /v1/challenge, check its proof, then send "
                                f"'Authorization: {protocol.SCHEME} <server_nonce> <mac>' (docs/control-api.md)")
        scheme, _, rest = header.strip().partition(" ")
        if scheme.lower() == "bearer":
            raise _unauthorised("bearer tokens are no longer accepted: a program holding the port would receive "
                                "them. Sign the request instead (docs/control-api.md); the token itself is "
                                "never sent")
        parts = rest.split()
        if scheme != protocol.SCHEME or len(parts) != 2 or not protocol.is_nonce(parts[0]):
            raise _unauthorised(f"malformed Authorization header: expected '{protocol.SCHEME} <server_nonce> <mac>'")
        return parts[0], parts[1]

    def _read_body(self) -> bytes:
        n = self._unread
        if n > MAX_BODY_BYTES:
            raise ApiError(413, "payload_too_large", f"the body is {n} bytes; at most {MAX_BODY_BYTES} are accepted")
        raw = self.rfile.read(n) if n else b""
        self._unread = 0
        if len(raw) < n:
            raise ApiError(400, "bad_request", f"the body ended after {len(raw)} of {n} bytes")
        return raw

    def _parse_json(self, raw: bytes) -> dict[str, Any]:
        if not raw:
            return {}  # an empty body is an empty object: bodiless events need none
        media_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise ApiError(415, "unsupported_media_type",
                           f"the body must be JSON sent with 'Content-Type: application/json', "
                           f"got {media_type or 'no Content-Type'}")
        try:
            doc = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
        except UnicodeDecodeError:
            raise ApiError(400, "bad_request", "the body is not UTF-8") from None
        except ValueError as exc:  # JSONDecodeError is a ValueError; so are duplicate keys
            raise ApiError(400, "bad_request", f"the body is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ApiError(400, "bad_request", f"the body must be a JSON object, got {_json_type(doc)}")
        return doc

    def _discard_body(self) -> None:
        """Read what the client sent and we did not, so it reads our answer and not a reset."""
        n, self._unread = self._unread, 0
        if n <= 0:
            return
        if n > _DRAIN_LIMIT:
            self.close_connection = True
            return
        try:
            while n > 0:
                got = self.rfile.read(min(n, 65536))
                if not got:
                    break
                n -= len(got)
        except OSError:
            self.close_connection = True

    def _answer(self, status: int, doc: dict[str, Any], headers: Mapping[str, str]) -> None:
        body = json.dumps(doc).encode("utf-8")
        if self._signed is not None:
            token, nonce = self._signed
            headers = {**headers, protocol.RESPONSE_HEADER: protocol.response_mac(token, self._port, nonce, status, body)}
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError as exc:  # the client went away; nothing to tell it
            log.debug("control API: client gone before the answer was sent: %s", exc)

    # ---- http.server hooks -----------------------------------------------------------------
    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (malformed request line, headers too long): JSON too."""
        self.close_connection = True
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        slug = phrase.lower().replace(" ", "_").replace("-", "_")
        if not getattr(self, "command", None):
            self.command = ""
        # http.server treats an unparsable request line as HTTP/0.9 and would send no status
        # line or headers; nobody speaks 0.9 to this API, so answer as 1.0.
        self.request_version = "HTTP/1.0"
        self._answer(code, error_body(slug, message or phrase), {})
        log.info("control API: malformed request -> %d (%s)", code, message or phrase)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _handle logs each request once, without its query string

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        log.debug("control API: " + format, *args)


def _unauthorised(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": f'{protocol.SCHEME} realm="callrec-desktop"'})


def _loggable(path: str) -> str:
    """The path as it may appear in a log line: escaped, bounded (no query string is passed in)."""
    text = path.encode("unicode_escape").decode("ascii")
    return text if len(text) <= 120 else text[:117] + "..."


def _loopback(host: str) -> tuple[str, socket.AddressFamily]:
    """``host`` if it is a loopback address (or "localhost"), with its address family."""
    if host == "localhost":
        return "127.0.0.1", socket.AF_INET
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"the control API listens on a loopback address only (127.0.0.1 or ::1), "
                         f"got {host!r}") from None
    if not ip.is_loopback:
        raise ValueError(f"the control API listens on a loopback address only (127.0.0.1 or ::1): "
                         f"{host} would let other machines reach it")
    return str(ip), socket.AF_INET6 if ip.version == 6 else socket.AF_INET


def _check_token(token: str) -> str:
    if not isinstance(token, str) or not token or not token.isascii() or not token.isprintable() or " " in token:
        raise ValueError("the control API token must be non-empty printable ASCII without spaces")
    return token


class ControlServer:
    """The control API on ``host`` (loopback only) for ``desk``, on the first free port of
    ``port`` … ``port + ports - 1``.

    ``port`` 0 picks a free port; ``.port`` and ``.url`` give the real one once started.
    ``port_file``: where to publish the port for this user's clients (``portfile.py``); None
    publishes nothing. Build it in the composition root; ``start()`` binds and serves on its
    own thread, ``stop()`` stops and joins every thread it started.
    """

    def __init__(self, desk: Desk, token: str, *, port: int, host: str = "127.0.0.1", ports: int = 1,
                 port_file: os.PathLike[str] | str | None = None) -> None:
        self._host, self._family = _loopback(host)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be 0..65535, got {port!r}")
        if isinstance(ports, bool) or not isinstance(ports, int) or ports < 1:
            raise ValueError(f"ports must be a whole number from 1, got {ports!r}")
        self._port = port
        self._ports = 1 if port == 0 else min(ports, 65536 - port)
        self._port_file = None if port_file is None else Path(port_file)
        self._api = _Api(desk, _check_token(token))
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._published = False

    def __repr__(self) -> str:
        return f"ControlServer({self.url!r}, running={self.running})"

    @property
    def port(self) -> int:
        return self._httpd.server_address[1] if self._httpd is not None else self._port

    @property
    def host(self) -> str:
        return self._host

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if self._family == socket.AF_INET6 else self._host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def set_token(self, token: str) -> None:
        """Accept ``token`` from now on, instead of the old one (Settings rotated it)."""
        # One reference assignment: a request thread sees either the old or the new token.
        self._api.token = _check_token(token).encode("ascii")

    def start(self) -> None:
        """Bind, publish the port and serve. Raises ``ControlBindError`` (an OSError whose
        message names the address and ports, in words) if no port of the range can be used."""
        if self._httpd is not None:
            raise RuntimeError("a ControlServer is started once; build a new one to listen again")
        httpd = self._bind()
        httpd.api = self._api
        self._httpd = httpd
        if self.port != self._port and self._port != 0:
            log.warning("control API: port %d is used by another program (or another user's callrec-desktop); "
                        "listening on %d instead", self._port, self.port)
        if self._port_file is not None:
            try:
                portfile.publish(self._port_file, self.port)
                self._published = True
            except portfile.PortFileError as exc:  # clients can still be given the port by hand
                log.error("control API: %s", exc)
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="callrec-control-api", daemon=True)
        self._thread.start()
        log.info("control API listening on %s%s", self.url,
                 f" (published in {self._port_file})" if self._published else "")

    def _bind(self) -> _HTTPServer:
        class Server(_HTTPServer):
            address_family = self._family

        first: OSError | None = None
        for port in range(self._port, self._port + self._ports):
            try:
                return Server((self._host, port), _Handler)
            except OSError as exc:
                first = first or exc
                if exc.errno not in _IN_USE | _DENIED:
                    break
        assert first is not None
        where = (f"{self._host}:{self._port}" if self._ports == 1 else
                 f"{self._host} ports {self._port}–{self._port + self._ports - 1}")
        if first.errno in _IN_USE:
            why = ("another program is using it" if self._ports == 1 else
                   "other programs (or other users' callrec-desktop) are using all of them")
        elif first.errno in _DENIED:
            why = "this account is not allowed to use it"
        else:
            why = first.strerror or str(first)
        raise ControlBindError(first.errno, f"the control API cannot listen on {where}: {why}") from first

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Stop serving, withdraw the port file, end every open connection and join the
        threads, allowing them ``timeout`` seconds after their sockets are shut. Idempotent.
        Runs on the caller's thread (the app's shut-down)."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        if self._published and self._port_file is not None:
            portfile.withdraw(self._port_file, self.port)
            self._published = False
        httpd.shutdown()  # returns once serve_forever has returned (within its 0.1 s poll)
        httpd.server_close()
        left = httpd.close_connections(time.monotonic() + timeout)
        thread.join(timeout)
        self._thread = None
        if left:
            log.warning("control API: %d connection thread(s) still running after %g s", len(left), timeout)
        log.info("control API stopped")
        # Keep self._httpd so .port still names the port it had; start() again is refused.

    def __enter__(self) -> ControlServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
