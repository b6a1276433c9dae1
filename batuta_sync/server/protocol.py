"""Wire-level pieces the server modules share: the HTTP error they raise, URL and host checks, the
NDJSON line splitter, and the repo type tables."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from urllib.parse import urlsplit

from batuta_sync.server.state import UserSpec

TYPES_BY_PLURAL = {"models": "model", "datasets": "dataset", "spaces": "space"}
PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
CHUNK = 1 << 20
LOCAL = UserSpec("local", "", "write")
# A Host header used in absolute URLs: a DNS name or an IPv4/[IPv6] literal, an optional port.
HOST_RE = re.compile(r"\A(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?\Z")


class HTTPError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        error_code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.headers = dict(headers or {})


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_public_url(url: str) -> str:
    """``url`` without a trailing slash if it is ``http(s)://host[:port][/path]``; else ValueError."""
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or "@" in parts.netloc
        or not HOST_RE.match(parts.netloc)
        or parts.query
        or parts.fragment
    ):
        raise ValueError(f"public URL {url!r} must look like http(s)://host[:port][/path]")
    return url.rstrip("/")


def ndjson_lines(
    chunks: Iterable[bytes], *, max_line: int, too_long: Callable[[], Exception]
) -> Iterator[bytes]:
    """The non-empty lines of a byte stream given in ``chunks``, in linear time: each chunk is scanned
    once for newlines and a line's pieces are joined once, so a single long line costs O(its length),
    not O(length**2).  A line longer than ``max_line`` raises ``too_long()``."""
    parts: list[bytes] = []  # pieces of the line being read
    pending = 0
    for chunk in chunks:
        start = 0
        while (nl := chunk.find(b"\n", start)) >= 0:
            if pending + nl - start > max_line:
                raise too_long()
            parts.append(chunk[start:nl])
            line = b"".join(parts)
            parts, pending = [], 0
            if line.strip():
                yield line
            start = nl + 1
        if start < len(chunk):
            pending += len(chunk) - start
            if pending > max_line:
                raise too_long()
            parts.append(chunk[start:])
    line = b"".join(parts)
    if line.strip():
        yield line
