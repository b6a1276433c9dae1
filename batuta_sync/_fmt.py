"""Tiny shared helpers (stdlib only, cheap to import): sizes and git digests.

One implementation each, used by the CLI, the planner, the pull engine, the publisher and the server.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO

#: Byte units (upper case; decimal and binary), the one table for every size parser.
BYTE_UNITS: dict[str, int] = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


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


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 file`` / ``2 files`` (``many`` for irregular plurals)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def human_age(seconds: float) -> str:
    """``40 s``, ``3 min``, ``2 h``, ``5 days``: how long ago, rounded down."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 172800:
        return f"{s // 3600} h"
    return f"{s // 86400} days"


def words(token: str) -> str:
    """A snake_case token (a plan reason, a drift kind) as the words a person reads: ``not locked``."""
    return token.replace("_", " ")


def open_noatime(path: Path) -> BinaryIO:
    """``open(path, "rb")`` that leaves the file's access time alone where the OS allows
    (``O_NOATIME``: Linux, for the file's owner or root): hashing a cached blob (``cache verify``)
    must not make it look recently used to LRU pruning, which reads blobs' atime."""
    flag = getattr(os, "O_NOATIME", 0)
    if flag:
        try:
            return os.fdopen(os.open(path, os.O_RDONLY | flag), "rb")
        except PermissionError:  # not the owner: an ordinary read
            pass
    return open(path, "rb")


def file_digests(path: Path, *, sha256: bool = True, sha1: bool = True) -> tuple[int, str | None, str | None]:
    """``(size, sha256, git blob sha1)`` of a file in one read (a digest not asked for is None)."""
    size = path.stat().st_size
    h256 = hashlib.sha256() if sha256 else None
    h1 = hashlib.sha1(b"blob %d\0" % size) if sha1 else None
    with open_noatime(path) as fh:
        while chunk := fh.read(1 << 20):
            if h256 is not None:
                h256.update(chunk)
            if h1 is not None:
                h1.update(chunk)
    return size, h256.hexdigest() if h256 else None, h1.hexdigest() if h1 else None


def git_blob_sha1(data: bytes) -> str:
    """The git blob id of ``data`` (what the Hub calls a regular file's ``oid``/``blobId``)."""
    h = hashlib.sha1(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()
