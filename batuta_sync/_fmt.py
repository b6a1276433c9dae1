"""Tiny shared helpers (stdlib only, cheap to import): sizes and git digests.

One implementation each, used by the CLI, the planner, the pull engine, the publisher and the server.
"""

from __future__ import annotations

import hashlib


def human_bytes(n: float | None) -> str:
    """``1536`` → ``1.5 kB``: decimal units, as the Hub shows sizes; ``None`` → ``unknown``."""
    if n is None:
        return "unknown"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1000:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def git_blob_sha1(data: bytes) -> str:
    """The git blob id of ``data`` (what the Hub calls a regular file's ``oid``/``blobId``)."""
    h = hashlib.sha1(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()
