"""A client for the control API (``docs/control-api.md``), stdlib only.

Used by ``callrec signal``; small enough to copy into a CTI connector. Every method returns
the server's JSON answer as a dict and raises ``ControlError`` on an error answer, or
``ControlUnreachable`` when nothing answers (callrec-desktop not running, API disabled).
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # The API never redirects; following one would send the token elsewhere.
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


class ControlClient:
    def __init__(self, url: str, token: str, timeout: float = 5) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the control API URL must be http://HOST:PORT, got {url!r}")
        self.url = url.rstrip("/")
        self._where = f"{parts.hostname}:{parts.port or 80}"
        self._token = token
        self.timeout = timeout
        # No proxies: HTTP_PROXY must never receive a request (or the token) meant for loopback.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())

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
        """Send one request; the answer's JSON object, or ControlError / ControlUnreachable."""
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            with exc:
                status, raw = exc.code, exc.read()
        except urllib.error.URLError as exc:
            raise self._unreachable(exc.reason) from None
        except (OSError, socket.timeout) as exc:  # e.g. a timeout while reading the answer
            raise self._unreachable(exc) from None
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ControlError(status, "bad_answer",
                               f"{self._where} answered HTTP {status} without JSON: is it callrec-desktop?") from None
        if not isinstance(doc, dict):
            raise ControlError(status, "bad_answer", f"{self._where} answered HTTP {status} with JSON that is not an object")
        if 200 <= status < 300:
            return doc
        err = doc.get("error") if isinstance(doc.get("error"), dict) else {}
        raise ControlError(status, str(err.get("code") or "http_error"), str(err.get("message") or f"HTTP {status}"))

    def _unreachable(self, reason: object) -> ControlUnreachable:
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return ControlUnreachable(0, "timeout", f"callrec-desktop did not answer within {self.timeout:g} s "
                                                    f"on {self._where}")
        return ControlUnreachable(0, "unreachable", f"callrec-desktop is not running or the control API is disabled "
                                                    f"(no answer on {self._where})")
