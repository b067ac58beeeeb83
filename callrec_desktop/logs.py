"""Logging rules shared by both programs. Tiny on purpose: imported before anything heavy."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path


def quiet_credential_loggers() -> None:
    """botocore logs each signed request at DEBUG, access key id included: keep those
    libraries at INFO or above whatever our own level is, so no credential reaches a log.
    Call it after the root level is set."""
    for name in ("botocore", "boto3", "s3transfer", "urllib3"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:  # only ever raise the bar: quieter, never louder
            logger.setLevel(logging.INFO)


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A ``RotatingFileHandler`` whose files are private to the user (0600, whatever the umask):
    logs name callers' numbers and calls; and whose lines never carry a terminal escape. Rotation renames, which keeps the mode, and every new
    file is opened through ``_open``, so the rotated files ``.1`` … ``.N`` are private too.
    Runs on whichever thread logs (``logging`` holds the handler's lock around ``_open``)."""

    def __init__(self, filename, *args, **kwargs) -> None:
        from callrec_desktop.private_files import private_dir

        private_dir(Path(filename).parent)
        super().__init__(filename, *args, **kwargs)

    def _open(self):
        from callrec_desktop.private_files import open_private

        return open_private(self.baseFilename, self.mode, encoding=self.encoding, errors=self.errors)

    def format(self, record: logging.LogRecord) -> str:
        """The record as the formatter makes it, with control characters from the data in it
        (a department holding ``ESC [ 2 J``) made visible, so reading the log with ``cat`` or
        ``tail -f`` never runs them as terminal commands."""
        from callrec_desktop.terminal_text import lines_shown

        return lines_shown(super().format(record))
