"""A loopback TCP proxy that injects HTTP faults, for upload retry tests. Test-only.

Sits between a client and an upstream HTTP server (the S3 test server). For every HTTP
request it reads the request head and, with probability ``p`` (seeded RNG), injects one
fault instead of relaying:

- ``500``/``503``: answers with an S3-style XML error (InternalError / SlowDown) and closes;
- ``reset``: resets the client connection (SO_LINGER 0) before anything reaches upstream;
- ``reset_after``: relays the request upstream, then resets the client connection instead
  of relaying the reply (the write happened, the client never hears: tests idempotency);
- ``silent`` (only when asked for by name): reads the request head and answers nothing, as a
  server gone quiet, until ``release()`` (or ``stop()``) resets the connections it holds.

Otherwise it relays bytes both ways. Knows just enough HTTP/1.1 to find request boundaries
(Content-Length, ``Expect: 100-continue``); a chunked request body makes the rest of that
connection a plain relay. Bounded: at most ``max_connections`` at once, and every socket
has a timeout. Use as a context manager; ``counts`` says what was injected.
"""

from __future__ import annotations

import collections
import random
import socket
import struct
import threading
from typing import Self

FAULTS = ("500", "503", "reset", "reset_after")  # the default mix: each ends its request at once
ALL_FAULTS = (*FAULTS, "silent")
_ERRORS = {
    "500": (b"500 Internal Server Error", b"InternalError", b"We encountered an internal error. Please try again."),
    "503": (b"503 Slow Down", b"SlowDown", b"Please reduce your request rate."),
}


class FaultProxy:
    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        p: float = 0.2,
        seed: int = 1234,
        faults: tuple[str, ...] = FAULTS,
        max_connections: int = 32,
        timeout: float = 30.0,
    ) -> None:
        if upstream_host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("FaultProxy is for loopback only")
        if not set(faults) <= set(ALL_FAULTS):
            raise ValueError(f"faults must be among {ALL_FAULTS}")
        self.upstream = (upstream_host, upstream_port)
        self.p = p
        self.faults = faults
        self.timeout = timeout
        self.counts: collections.Counter[str] = collections.Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._sockets: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._stopping = threading.Event()
        self._silence = 0  # bumped by release(): the silent requests of earlier rounds end
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._acceptor = threading.Thread(target=self._accept_loop, name="faultproxy-accept", daemon=True)

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> Self:
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._acceptor.join(timeout=5)
        self._listener.close()
        with self._lock:
            socks, threads = list(self._sockets), list(self._threads)
        for s in socks:
            _close(s)
        for t in threads:
            t.join(timeout=5)

    def release(self) -> None:
        """End every request held by the ``silent`` fault: its connection is reset."""
        with self._lock:
            self._silence += 1

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def injected(self) -> int:
        return sum(self.counts[f] for f in ALL_FAULTS)

    # ---- connections -------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._slots.acquire(timeout=self.timeout):
                _close(client)
                continue
            t = threading.Thread(target=self._serve, args=(client,), name="faultproxy-conn", daemon=True)
            with self._lock:
                self._threads.add(t)
                self.counts["connections"] += 1
            t.start()

    def _track(self, *socks: socket.socket) -> None:
        with self._lock:
            self._sockets.update(socks)

    def _decide(self) -> str | None:
        with self._lock:
            if self._rng.random() < self.p:
                fault = self._rng.choice(self.faults)
                self.counts[fault] += 1
                return fault
            self.counts["relayed"] += 1
            return None

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        drop_reply = threading.Event()
        try:
            client.settimeout(self.timeout)
            self._track(client)
            buf = b""
            while not self._stopping.is_set():
                head, buf = _read_head(client, buf)
                if head is None:
                    return
                length, chunked, expect = _parse_head(head)
                fault = self._decide()
                if fault in ("500", "503"):
                    if not expect:  # read the body, else closing with unread data sends RST
                        buf = _discard(client, buf, length)
                    _send_error(client, fault)
                    return
                if fault == "reset":
                    _reset(client)
                    return
                if fault == "silent":
                    with self._lock:
                        round_ = self._silence
                    while not self._stopping.wait(0.05):
                        with self._lock:
                            if self._silence != round_:
                                break
                    _reset(client)
                    return
                if upstream is None:
                    upstream = socket.create_connection(self.upstream, timeout=self.timeout)
                    self._track(upstream)
                    threading.Thread(target=self._pump_back, args=(upstream, client, drop_reply),
                                     name="faultproxy-back", daemon=True).start()
                if fault == "reset_after":
                    drop_reply.set()
                upstream.sendall(head)
                if chunked:
                    if buf:
                        upstream.sendall(buf)
                    _relay(client, upstream)
                    return
                buf = _forward(client, upstream, buf, length)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                if s is not None:
                    _close(s)
            with self._lock:
                self._sockets.discard(client)
                if upstream is not None:
                    self._sockets.discard(upstream)
                self._threads.discard(threading.current_thread())
            self._slots.release()

    def _pump_back(self, upstream: socket.socket, client: socket.socket, drop_reply: threading.Event) -> None:
        """Upstream → client. When a reply is to be dropped, reset the client instead."""
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                if drop_reply.is_set() and not data.startswith(b"HTTP/1.1 100 "):
                    _reset(client)
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            _close(client)
            _close(upstream)


# ---- small HTTP helpers ------------------------------------------------------------------
def _read_head(sock: socket.socket, buf: bytes) -> tuple[bytes | None, bytes]:
    while b"\r\n\r\n" not in buf:
        if len(buf) > 64 * 1024:
            return None, b""
        data = sock.recv(65536)
        if not data:
            return None, b""
        buf += data
    end = buf.index(b"\r\n\r\n") + 4
    return buf[:end], buf[end:]


def _parse_head(head: bytes) -> tuple[int, bool, bool]:
    length, chunked, expect = 0, False, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value:
            chunked = True
        elif name == b"expect" and value == b"100-continue":
            expect = True
    return length, chunked, expect


def _forward(src: socket.socket, dst: socket.socket, buf: bytes, length: int) -> bytes:
    """Send ``length`` body bytes (some already in ``buf``) to ``dst``; return the surplus."""
    take = buf[:length]
    if take:
        dst.sendall(take)
    rest, remaining = buf[length:], length - len(take)
    while remaining > 0:
        data = src.recv(min(65536, remaining))
        if not data:
            raise ConnectionResetError("client closed mid-body")
        dst.sendall(data)
        remaining -= len(data)
    return rest


def _discard(sock: socket.socket, buf: bytes, length: int) -> bytes:
    rest, remaining = buf[length:], length - min(len(buf), length)
    while remaining > 0:
        data = sock.recv(min(65536, remaining))
        if not data:
            break
        remaining -= len(data)
    return rest


def _relay(src: socket.socket, dst: socket.socket) -> None:
    while data := src.recv(65536):
        dst.sendall(data)


def _send_error(sock: socket.socket, fault: str) -> None:
    status, code, message = _ERRORS[fault]
    body = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>' + code + b"</Code><Message>" + message
            + b"</Message><RequestId>faultproxy</RequestId></Error>")
    head = (b"HTTP/1.1 " + status + b"\r\nContent-Type: application/xml\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n")
    sock.sendall(head + body)
    sock.shutdown(socket.SHUT_WR)
    # Let the client read the reply and close first: closing with unread input sends a RST,
    # which could destroy the reply before the client reads it.
    sock.settimeout(2.0)
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


def _reset(sock: socket.socket) -> None:
    """Abort the connection: the peer gets a TCP RST."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # SHUT_RD sends nothing but wakes a recv() blocked in another thread; without it
        # close() would wait for that recv to time out before the RST goes out.
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # also wakes a recv() blocked in another thread
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
