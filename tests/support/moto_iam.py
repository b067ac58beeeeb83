"""An S3 server that enforces IAM policies, on 127.0.0.1: moto's server (``pip install 'moto[server]'``).

Session fixture ``moto_iam``: ``INITIAL_NO_AUTH_ACTION_COUNT=3 moto_server -H 127.0.0.1 -p PORT``.
The first 3 requests are unauthenticated and make an administrator (user, ``s3:*``/``iam:*``
policy, access key); every later request, the administrator's included, is signed and checked
against the IAM policies of the key that signed it. ``make_store()`` then creates a fresh
bucket and one IAM user per role (agent, team leader, retention) whose inline policy is the
README's policy for that role, with the README's bucket and prefix replaced by the test's:
the tests enforce exactly what the README tells IT to deploy.

What moto checks (5.2): the action and the resource ARN of each S3 request; not IAM
``Condition`` keys (a statement with a condition it cannot evaluate is treated as a deny),
not ``x-amz-checksum-sha256`` nor ``Content-MD5``. It honours ``If-None-Match: *`` and
``If-Match`` on PutObject.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

PIP_LINE = "pip install 'moto[server]'  (or: pip install -e '.[test]')"
README = Path(__file__).resolve().parents[2] / "README.md"
README_BUCKET = "council-calls"
README_PREFIX = "contact-centre"
ROLES = ("agent", "team-leader", "retention")
READY_TIMEOUT = 30.0
_ADMIN_POLICY = {"Version": "2012-10-17",
                 "Statement": [{"Effect": "Allow", "Action": ["s3:*", "iam:*"], "Resource": "*"}]}


def readme_policy(role: str) -> dict:
    """The IAM policy the README gives for ``role``: the JSON block after ``<!-- policy:ROLE -->``."""
    text = README.read_text(encoding="utf-8")
    m = re.search(rf"<!-- policy:{re.escape(role)} -->\s*```json\n(.*?)```", text, re.S)
    if m is None:
        raise AssertionError(f"README.md has no '<!-- policy:{role} -->' JSON block")
    return json.loads(m.group(1))


def _client(service: str, endpoint: str, access: str, secret: str):
    return boto3.session.Session().client(
        service, endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=access, aws_secret_access_key=secret,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      retries={"total_max_attempts": 1}))


@dataclass(frozen=True)
class RoleStore:
    """One bucket with a key pair per role. ``keys[role]`` is ``(access key id, secret)``."""

    endpoint_url: str
    bucket: str
    prefix: str
    keys: dict[str, tuple[str, str]]

    def client(self, role: str):
        """A raw boto3 S3 client signing with ``role``'s key (for forgeries: any header, any key)."""
        return _client("s3", self.endpoint_url, *self.keys[role])


class MotoIAMServer:
    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen | None = None
        self._admin: tuple[str, str] | None = None

    def start(self) -> None:
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
        env.pop("AWS_ACCESS_KEY_ID", None)
        env.pop("AWS_SECRET_ACCESS_KEY", None)
        self._log = open(self.workdir / "moto.log", "wb")
        self._proc = subprocess.Popen([self.binary, "-H", "127.0.0.1", "-p", str(self.port)],
                                      stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:  # wait for the port: a plain TCP connect is not an S3 request (not counted)
            if self._proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self._proc.returncode}; see {self.workdir / 'moto.log'}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server not listening after {READY_TIMEOUT} s") from None
                time.sleep(0.05)
        # The three unauthenticated requests: the administrator.
        iam = _client("iam", self.endpoint_url, "bootstrap", "bootstrap")
        iam.create_user(UserName="admin")
        iam.put_user_policy(UserName="admin", PolicyName="admin", PolicyDocument=json.dumps(_ADMIN_POLICY))
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        self._admin = (key["AccessKeyId"], key["SecretAccessKey"])

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()

    def admin(self, service: str = "s3"):
        assert self._admin is not None
        return _client(service, self.endpoint_url, *self._admin)

    def make_store(self, prefix: str = "contact-centre", *, versioning: bool = False) -> RoleStore:
        """A fresh bucket and one user per role with the README's policy for it."""
        bucket = f"t-{uuid.uuid4().hex[:16]}"
        s3 = self.admin("s3")
        s3.create_bucket(Bucket=bucket)
        if versioning:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        iam = self.admin("iam")
        keys = {}
        for role in ROLES:
            doc = json.dumps(readme_policy(role))
            doc = doc.replace(f"arn:aws:s3:::{README_BUCKET}/{README_PREFIX}/", f"arn:aws:s3:::{bucket}/{prefix}/")
            doc = doc.replace(f"arn:aws:s3:::{README_BUCKET}", f"arn:aws:s3:::{bucket}")
            doc = doc.replace(f'"{README_PREFIX}/', f'"{prefix}/')
            user = f"{role}-{bucket}"
            iam.create_user(UserName=user)
            iam.put_user_policy(UserName=user, PolicyName=f"callrec-{role}", PolicyDocument=doc)
            k = iam.create_access_key(UserName=user)["AccessKey"]
            keys[role] = (k["AccessKeyId"], k["SecretAccessKey"])
        return RoleStore(self.endpoint_url, bucket, prefix, keys)


def find_moto_server() -> str | None:
    """The venv's own moto_server (the version pyproject pins) first, then one on PATH."""
    candidate = Path(sys.executable).parent / "moto_server"
    if candidate.is_file():
        return str(candidate)
    return shutil.which("moto_server")


@pytest.fixture(scope="session")
def moto_iam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoIAMServer]:
    """The session's moto server with IAM enforcement; fails (never skips) if it is missing."""
    binary = find_moto_server()
    if binary is None:
        pytest.fail(f"moto_server not found on PATH or next to {sys.executable}: {PIP_LINE}", pytrace=False)
    server = MotoIAMServer(binary, tmp_path_factory.mktemp("moto"))
    try:
        server.start()
        yield server
    finally:
        server.stop()
