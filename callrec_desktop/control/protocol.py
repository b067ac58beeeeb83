"""The control API's authentication: who holds the port must prove it knows the token.

Why: only one program can listen on a loopback port, but *any* program of any user can take
it first. With a bearer token, the first program on 127.0.0.1:47800 received every
connector's token and could answer "payment started: 200" while recording went on. So the
token never crosses the socket: both sides prove they know it with HMAC-SHA256 over fresh
nonces, and the port the server listens on is part of every proof, so a program on one port
cannot relay proofs made by callrec-desktop on another.

One operation, two HTTP exchanges (``docs/control-api.md`` has a worked example):

1. ``POST /v1/challenge`` ``{"client_nonce": CN}`` → ``{"server_nonce": SN, "proof": P}``; the
   client checks ``P == mac(token, "server-proof", port, CN, SN)`` in constant time. A program
   that does not know the token cannot compute it: the client stops and sends nothing else.
2. The request, with ``Authorization: Callrec-HMAC SN M`` where
   ``M = mac(token, "request", port, SN, METHOD, TARGET, sha256hex(body))``. The server accepts
   each SN once, within ``NONCE_TTL_SECONDS``, and signs its answer with the header
   ``Callrec-MAC: mac(token, "response", port, SN, STATUS, sha256hex(answer body))``, which the
   client checks before believing the answer.

The purpose label in each message keeps the three kinds of MAC apart: a proof the server
gives anyone who asks can never be used as a request or an answer. Nonces are lowercase hex
(checked on both sides), so no field can carry the ``\\n`` that separates the fields.

Pure functions of their arguments, no I/O: used by the server's request threads and by the
client (any thread).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

VERSION = "callrec-control-v2"
SCHEME = "Callrec-HMAC"  # the Authorization scheme of a signed request
RESPONSE_HEADER = "Callrec-MAC"  # the header carrying the answer's MAC
CHALLENGE_PATH = "/v1/challenge"
NONCE_BYTES = 32
NONCE_TTL_SECONDS = 30.0
_NONCE = re.compile(r"[0-9a-f]{32,128}")


def new_nonce() -> str:
    """A fresh random nonce: 256 bits as 64 lowercase hex digits."""
    return secrets.token_hex(NONCE_BYTES)


def is_nonce(text: object) -> bool:
    """True for 32 to 128 lowercase hex digits (what either side accepts as a nonce)."""
    return isinstance(text, str) and _NONCE.fullmatch(text) is not None


def body_hash(body: bytes) -> str:
    """SHA-256 of a body (b"" when there is none), lowercase hex."""
    return hashlib.sha256(body).hexdigest()


def mac(token: str | bytes, purpose: str, port: int, *fields: str | int) -> str:
    """HMAC-SHA256 keyed by the token's ASCII bytes over
    ``"callrec-control-v2 <purpose>\\n<port>\\n<field>\\n<field>..."`` (UTF-8), lowercase hex."""
    key = token if isinstance(token, bytes) else token.encode("ascii")
    message = "\n".join([f"{VERSION} {purpose}", str(port), *map(str, fields)]).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def server_proof(token: str | bytes, port: int, client_nonce: str, server_nonce: str) -> str:
    """What the server answers to a challenge: it knows the token, and listens on ``port``."""
    return mac(token, "server-proof", port, client_nonce, server_nonce)


def request_mac(token: str | bytes, port: int, server_nonce: str, method: str, target: str, body: bytes) -> str:
    """What signs one request: ``target`` is the request line's path (with any query string)."""
    return mac(token, "request", port, server_nonce, method.upper(), target, body_hash(body))


def response_mac(token: str | bytes, port: int, server_nonce: str, status: int, body: bytes) -> str:
    """What signs the server's answer to the request that used ``server_nonce``."""
    return mac(token, "response", port, server_nonce, status, body_hash(body))


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two MACs (as text)."""
    return hmac.compare_digest(a.encode("ascii", "replace"), b.encode("ascii", "replace"))
