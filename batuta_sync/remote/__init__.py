"""A shared remote for runners: blob CAS, commit listings, conversion run-cache, lease lock.

``open_remote(url)`` accepts ``s3://bucket[/prefix]`` (S3 and S3-compatible servers with the
standard AWS configuration; ``pip install 'batuta_sync[s3]'``) and ``file:///path`` (a shared
file system).  See ``docs/remote.md``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from batuta_sync.errors import UsageError

if TYPE_CHECKING:
    from batuta_sync.remote.store import RemoteStore

_BUCKET_RE = re.compile(r"\A[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")

__all__ = ["open_remote"]


def open_remote(url: str) -> RemoteStore:
    """The store behind ``url`` (UsageError for anything but s3:// and file://)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise UsageError(f"{url!r} is not a file remote.", hint="Use file:///absolute/path.")
        from batuta_sync.remote._file import FileStore

        return FileStore(Path(parts.path))
    if parts.scheme == "s3":
        if parts.username or parts.password or not _BUCKET_RE.match(parts.netloc or ""):
            raise UsageError(
                "The s3:// remote must be s3://bucket[/prefix] with a valid bucket name and no credentials.",
                hint="Credentials come from AWS_* variables or a profile, never from the URL.",
            )
        prefix = parts.path.strip("/")
        if any(p in (".", "..") for p in prefix.split("/")):
            raise UsageError(f"The remote prefix {prefix!r} has a '.' or '..' segment.")
        from batuta_sync.remote._s3 import S3Store

        return S3Store(parts.netloc, prefix)
    raise UsageError(
        "The remote must be an s3:// or file:// URL.",
        hint="e.g. s3://my-bucket/batuta (with AWS_* settings) or file:///mnt/shared/batuta",
    )
