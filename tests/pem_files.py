"""Certificates for the TLS tests: trustme blobs written to PEM files."""

from __future__ import annotations

from pathlib import Path

import trustme


def write_pem(directory: Path, name: str, blob: trustme.Blob) -> str:
    """Write ``blob`` to ``directory/name``; return the path as text."""
    path = directory / name
    blob.write_to_path(str(path))
    return str(path)
