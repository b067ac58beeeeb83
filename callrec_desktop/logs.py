"""Logging rules shared by both programs. Tiny on purpose: imported before anything heavy."""

from __future__ import annotations

import logging


def quiet_credential_loggers() -> None:
    """botocore logs each signed request at DEBUG, access key id included: keep those
    libraries at INFO whatever our own level is, so no credential reaches a log."""
    for name in ("botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(name).setLevel(max(logging.getLogger(name).level, logging.INFO))
