"""Logging rules shared by both programs. Tiny on purpose: imported before anything heavy."""

from __future__ import annotations

import logging


def quiet_credential_loggers() -> None:
    """botocore logs each signed request at DEBUG, access key id included: keep those
    libraries at INFO or above whatever our own level is, so no credential reaches a log.
    Call it after the root level is set."""
    for name in ("botocore", "boto3", "s3transfer", "urllib3"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:  # only ever raise the bar: quieter, never louder
            logger.setLevel(logging.INFO)
