"""Placeholder: the S3 server fixture (filled in by the storage work)."""
