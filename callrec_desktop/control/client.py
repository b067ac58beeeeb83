"""A client for the control API (``docs/control-api.md``), stdlib only.

Used by ``callrec signal``; small enough to copy into a CTI connector. Every operation first
asks the program on the port to prove it knows the token (``protocol.py``) and sends nothing
else until it has; the token itself never leaves this process. Every method returns the
server's JSON answer as a dict and raises ``ControlError`` on an error answer,
``ControlImpostor`` when the program on the port cannot prove it is callrec-desktop, or
``ControlUnreachable`` when nothing answers (callrec-desktop not running, API disabled).

Runs on the caller's thread; one connection per exchange, no shared state between calls.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

from callrec_desktop.control import protocol


class ControlError(Exception):
    """An error answer: HTTP ``status``, the API's ``code`` and its ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.code!r}, {self.message!r})"


class ControlUnreachable(ControlError):
    """Nothing answered: no connection, or no answer in time. ``status`` is 0."""


class ControlImpostor(ControlError):
    """The program on the port answered but could not prove it knows the token: it is not
    this user's callrec-desktop (or the token is not the current one). Nothing was sent to it
    but a random nonce (or, if it took the port between the challenge and the request, a
    signed request it cannot use), and its answer was not believed. ``status`` is 0."""


class ControlClient:
    """Speaks to ``http://127.0.0.1:PORT`` (or another loopback ``url``) with ``token``."""

    def __init__(self, url: str, token: str, timeout: float = 5) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or parts.path.strip("/"):
            raise ValueError(f"the control API URL must be http://HOST:PORT, got {url!r}")
        if not token or not token.isascii():
            raise ValueError("the control API token must be non-empty ASCII")
        self.url = url.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._where = f"{self._host}:{self._port}"
        self._token = token.encode("ascii")
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"ControlClient({self.url!r}, token=<hidden>)"

    # ---- the endpoints ------------------------------------------------------------------------
    def call_started(self, line: str, *, caller: str | None = None, external_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"line": line}
        if caller is not None:
            body["caller"] = caller
        if external_id is not None:
            body["external_id"] = external_id
        return self.request("POST", "/v1/call/started", body)

    def payment_started(self) -> dict[str, Any]:
        return self.request("POST", "/v1/payment/started", {})

    def payment_ended(self) -> dict[str, Any]:
        return self.request("POST", "/v1/payment/ended", {})

    def transferred(self, department: str) -> dict[str, Any]:
        return self.request("POST", "/v1/call/transferred", {"department": department})

    def call_ended(self) -> dict[str, Any]:
        return self.request("POST", "/v1/call/ended", {})

    def status(self) -> dict[str, Any]:
        return self.request("GET", "/v1/status")

    # ---- transport ----------------------------------------------------------------------------
    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One operation: the challenge, then the signed request; the answer's JSON object."""
        server_nonce = self._challenge()
        data = b"" if body is None else json.dumps(body).encode("utf-8")
        mac = protocol.request_mac(self._token, self._port, server_nonce, method, path, data)
        headers = {"Authorization": f"{protocol.SCHEME} {server_nonce} {mac}", "Accept": "application/json"}
        if data:
            headers["Content-Type"] = "application/json"
        status, answer_headers, raw = self._exchange(method, path, data, headers)
        given = answer_headers.get(protocol.RESPONSE_HEADER) or ""
        if not protocol.same(given, protocol.response_mac(self._token, self._port, server_nonce, status, raw)):
            raise self._impostor(f"its answer (HTTP {status}) was not signed with the token")
        doc = self._json(status, raw)
        if 200 <= status < 300:
            return doc
        err = doc.get("error") if isinstance(doc.get("error"), dict) else {}
        raise ControlError(status, str(err.get("code") or "http_error"), str(err.get("message") or f"HTTP {status}"))

    def _challenge(self) -> str:
        """Ask the program on the port to prove it knows the token; its server nonce if it did."""
        client_nonce = protocol.new_nonce()
        data = json.dumps({"client_nonce": client_nonce}).encode("ascii")
        status, _, raw = self._exchange("POST", protocol.CHALLENGE_PATH, data,
                                        {"Content-Type": "application/json", "Accept": "application/json"})
        try:
            doc = json.loads(raw.decode("utf-8"))
            server_nonce, proof = doc["server_nonce"], doc["proof"]
        except (UnicodeDecodeError, ValueError, TypeError, KeyError):
            raise self._impostor(f"it answered the challenge with HTTP {status} and no proof") from None
        if status != 200 or not protocol.is_nonce(server_nonce) or not isinstance(proof, str) or not protocol.same(
                proof, protocol.server_proof(self._token, self._port, client_nonce, server_nonce)):
            raise self._impostor("its proof is wrong")
        return server_nonce

    def _exchange(self, method: str, path: str, data: bytes, headers: dict[str, str]) -> tuple[int, Any, bytes]:
        # http.client uses no proxy (HTTP_PROXY must never see a request meant for loopback)
        # and follows no redirect.
        conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        try:
            conn.request(method, path, body=data or None, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read(1024 * 1024)
        except (TimeoutError, socket.timeout):
            raise ControlUnreachable(0, "timeout", f"callrec-desktop did not answer within {self.timeout:g} s "
                                                   f"on {self._where}") from None
        except ConnectionRefusedError:
            raise ControlUnreachable(0, "unreachable", f"callrec-desktop is not running or the control API is "
                                                       f"disabled (no answer on {self._where})") from None
        except (OSError, http.client.HTTPException) as exc:
            raise ControlUnreachable(0, "unreachable", f"the connection to {self._where} failed: "
                                                       f"{type(exc).__name__}") from None
        finally:
            conn.close()

    def _json(self, status: int, raw: bytes) -> dict[str, Any]:
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ControlError(status, "bad_answer", f"{self._where} answered HTTP {status} without JSON") from None
        if not isinstance(doc, dict):
            raise ControlError(status, "bad_answer", f"{self._where} answered HTTP {status} with JSON that is not "
                                                     f"an object")
        return doc

    def _impostor(self, what: str) -> ControlImpostor:
        return ControlImpostor(0, "not_callrec",
                               f"the program on port {self._port} is not callrec-desktop: it could not prove it "
                               f"knows the token ({what}). If callrec-desktop is running, check that this is "
                               f"the token Settings shows now")
