"""The byte mover of the download engine: ``http.client`` with one keep-alive connection per worker.

Why not the metadata client (httpx2): it is faster here — one keep-alive connection per worker and
``readinto`` straight into one reused, page-aligned buffer (hashed and written from there,
``O_DIRECT`` for big files), with no per-chunk ``bytes`` objects; ``tests/bench/bench_pull.py``
measures it against ``snapshot_download`` (figures in docs/_drafts/http.md).  Everything else is
shared with the other clients (docs/architecture.md "HTTP"): the retry loop (``hub.retry``; this
module gives it one try, :meth:`Transport.open_checked`, and the classification of its failures,
:meth:`Transport.classify`), the header builder and User-Agent (``hub.auth.request_headers``), the
proxy rule (``hub.proxy``: ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY``; https through a
``CONNECT`` tunnel, :class:`TunnelConnection`, http as absolute-URI requests to the proxy,
:class:`ForwardConnection`; a loopback Hub never proxied), and the client limits of
:mod:`batuta_sync.hub.limits` (connect and read-inactivity timeouts; :class:`PacedReader` cuts
off a peer trickling bytes).
"""

from __future__ import annotations

import contextlib
import http.client
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from batuta_sync.errors import BatutaError, ConfigError, NetworkError
from batuta_sync.hub.auth import request_headers
from batuta_sync.hub.limits import NetLimits, Pace
from batuta_sync.hub.proxy import Proxy, proxy_for
from batuta_sync.hub.ratelimit import is_retryable_status
from batuta_sync.hub.retry import Failure, Kind
from batuta_sync.types import RepoFile

if TYPE_CHECKING:
    from batuta_sync.settings import Settings

CHUNK = 1 << 20
REDIRECTS = {301, 302, 303, 307, 308}


class Transport:
    """The content connections of one :class:`~batuta_sync.hub.download.Downloader`: per worker
    thread, one keep-alive connection per origin (or proxy); all of them closed by :meth:`close`."""

    def __init__(self, settings: Settings, limits: NetLimits) -> None:
        self.settings = settings
        self.limits = limits
        self._local = threading.local()
        self._conns: list[http.client.HTTPConnection] = []
        self._conns_lock = threading.Lock()

    def close(self) -> None:
        with self._conns_lock:
            for c in self._conns:
                with contextlib.suppress(Exception):
                    c.close()
            self._conns.clear()

    def open_checked(self, url: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        """One try of :meth:`Retry.request <batuta_sync.hub.retry.Retry.request>`: open ``url``.

        200, 206 and 416 are returned; a retryable status (408/429/5xx) is read (its first
        64 KiB) and raised as :class:`StatusAnswer`; any other status is its BatutaError.
        A transport error drops this worker's connections and propagates for ``classify``."""
        try:
            resp = self.open(url, headers)
        except (OSError, http.client.HTTPException):
            self.drop_all()
            raise
        status = resp.status
        if status in (200, 206, 416):
            return resp
        if status == 407:  # only a proxy sends it (HTTP_PROXY: CONNECT failures are connect errors)
            self.drop_all()
            raise ConfigError(
                f"The proxy refused the download of {urlsplit(url).path}: 407 Proxy Authentication Required.",
                hint="Give the proxy's credentials in the variable (http://user:password@host:port), "
                "or exclude the Hub with NO_PROXY.",
            )
        answer = StatusAnswer(status, {k.lower(): v for k, v in resp.getheaders()}, read_small(resp), url)
        self.drop_all()
        if is_retryable_status(status):
            raise answer
        raise answer.error(self.settings, 1)

    def classify(self, f: RepoFile) -> Callable[[BaseException], Failure | None]:
        """What a failed open means, by type and status (see :mod:`batuta_sync.hub.retry`)."""
        endpoint = self.settings.endpoint

        def classify(exc: BaseException) -> Failure | None:
            if isinstance(exc, StatusAnswer):
                kind = Kind.RATE_LIMITED if exc.status == 429 else Kind.STATUS
                return Failure(kind, lambda n: exc.error(self.settings, n), exc.status, exc.headers)
            if not isinstance(exc, (OSError, http.client.HTTPException)):
                return None
            if isinstance(exc, ConnectFailed):  # refused / DNS / connect timeout
                kind = Kind.REFUSED
            elif isinstance(exc, TimeoutError):  # connected, no answer within limits.read
                kind = Kind.SILENT
            else:
                kind = Kind.DROPPED

            def error(n: int) -> BaseException:
                return NetworkError(
                    f"Could not download {f.path} from {endpoint}: {exc} ({n} attempts).",
                    hint="Check HF_ENDPOINT / --endpoint and the network; completed files are kept.",
                )

            return Failure(kind, error)

        return classify

    def conn_for(self, url: str) -> http.client.HTTPConnection:
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname, parts.port)
        conns: dict[Any, http.client.HTTPConnection] = getattr(self._local, "conns", None) or {}
        self._local.conns = conns
        conn = conns.get(key)
        if conn is None:
            host = parts.hostname or "localhost"
            via = proxy_for(url)  # HTTPS_PROXY / HTTP_PROXY / NO_PROXY (hub.proxy), read per connection
            if via is None:
                cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
                conn = cls(host, parts.port, timeout=self.limits.connect)
            elif parts.scheme == "https":  # CONNECT tunnel: TLS to the Hub end to end
                conn = TunnelConnection(via, host, parts.port, timeout=self.limits.connect)
            else:  # plain http: absolute-URI requests to the proxy
                conn = ForwardConnection(via, timeout=self.limits.connect)
            conns[key] = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def drop_all(self) -> None:
        """Close this worker's connections (after an answer whose body was not fully read)."""
        conns = getattr(self._local, "conns", None) or {}
        for conn in conns.values():
            conn.close()
        conns.clear()

    def drop_conn(self, url: str) -> None:
        parts = urlsplit(url)
        conns = getattr(self._local, "conns", None) or {}
        conn = conns.pop((parts.scheme, parts.hostname, parts.port), None)
        if conn is not None:
            conn.close()

    def open(self, url: str, extra: dict[str, str]) -> http.client.HTTPResponse:
        for _hop in range(6):
            parts = urlsplit(url)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            # the one header builder: User-Agent, the token only on the endpoint's origin
            headers = request_headers(self.settings, url, extra, accept_encoding="identity")
            resp = self.request(url, path, headers)
            if resp.status in REDIRECTS and resp.getheader("Location"):
                location = urljoin(url, resp.getheader("Location") or "")
                discard(resp)
                url = location
                continue
            # every body read (content, error text) keeps the minimum pace
            pace = Pace(self.limits, f"The download of {urlsplit(url).path}")
            resp.fp = PacedReader(resp.fp, pace)  # type: ignore[assignment]
            return resp
        raise NetworkError(f"Too many redirects while downloading {url}.")

    def request(self, url: str, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        """Send one GET on this worker's keep-alive connection.  A *reused* connection the server
        closed meanwhile is reopened once and the request sent again (what every connection pool
        does; nothing was processed); every other failure goes to the retry loop."""
        for attempt in (0, 1):
            conn = self.conn_for(url)
            reused = conn.sock is not None
            if not reused:
                try:
                    conn.connect()  # under limits.connect; then reads under limits.read
                except OSError as exc:
                    conn.close()
                    where = f"{conn.host}:{conn.port}"
                    if isinstance(conn, (ForwardConnection, TunnelConnection)):
                        where += f" (the proxy from {urlsplit(url).scheme.upper()}_PROXY)"
                    raise ConnectFailed(f"cannot connect to {where}: {exc}") from exc
                if conn.sock is not None:
                    conn.sock.settimeout(self.limits.read)
            try:
                if isinstance(conn, ForwardConnection):
                    conn.request("GET", url, headers={**headers, **conn.proxy.headers()})
                else:
                    conn.request("GET", path, headers=headers)
                return conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.drop_conn(url)
                if attempt or not reused:  # a fresh connection failing is a real failure
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


class ForwardConnection(http.client.HTTPConnection):
    """A connection to a plain-HTTP proxy that forwards ``http://`` requests (absolute URIs)."""

    def __init__(self, proxy: Proxy, *, timeout: float) -> None:
        super().__init__(proxy.host, proxy.port, timeout=timeout)
        self.proxy = proxy


class TunnelConnection(http.client.HTTPSConnection):
    """TLS to ``host`` through a ``CONNECT`` tunnel of a plain-HTTP proxy."""

    def __init__(self, proxy: Proxy, host: str, port: int | None, *, timeout: float) -> None:
        super().__init__(proxy.host, proxy.port, timeout=timeout)
        self.proxy = proxy
        self.set_tunnel(host, port, headers=proxy.headers())


class ConnectFailed(OSError):
    """The connection never got through (refused, DNS failure, connect timeout)."""


class PacedReader:
    """Wraps a response's socket file: reads one ``recv`` at a time and reports each to a
    :class:`~batuta_sync.hub.limits.Pace`, so a peer trickling bytes is cut off (a plain
    ``readinto`` would wait for the whole chunk, one byte per read timeout)."""

    def __init__(self, fp: Any, pace: Pace) -> None:
        self._fp = fp
        self._pace = pace
        self._too_slow: NetworkError | None = None

    def _check(self, n: int) -> bool:
        """Count ``n`` bytes; False once too slow (the bytes in hand are returned first, so the
        partial keeps them, and the next read raises)."""
        try:
            self._pace.add(n)
        except NetworkError as exc:
            self._too_slow = exc
            return False
        return True

    def _raise_if_too_slow(self) -> None:
        if self._too_slow is not None:
            raise self._too_slow

    def readinto(self, b: Any) -> int:
        self._raise_if_too_slow()
        mv = memoryview(b).cast("B")
        got = 0
        while got < len(mv):
            n = self._fp.readinto1(mv[got:])
            if not n:
                break
            got += n
            if not self._check(n):
                break
        return got

    def read(self, amt: int | None = None) -> bytes:
        self._raise_if_too_slow()
        parts: list[bytes] = []
        left = -1 if amt is None or amt < 0 else amt
        while left:
            data = self._fp.read1(left if left > 0 else CHUNK)
            if not data:
                break
            parts.append(data)
            if left > 0:
                left -= len(data)
            if not self._check(len(data)):
                break
        return b"".join(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fp, name)


def content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes 100-199/1000`` -> (100, 1000); Nones if unparseable."""
    if not value:
        return None, None
    try:
        unit, _, rest = value.strip().partition(" ")
        if unit.lower() != "bytes":
            return None, None
        span, _, total = rest.partition("/")
        start = int(span.split("-", 1)[0])
        return start, (None if total.strip() == "*" else int(total))
    except ValueError:
        return None, None


def read_small(resp: http.client.HTTPResponse, limit: int = 65536) -> str:
    try:
        data = resp.read(limit)
    except (OSError, http.client.HTTPException):
        return ""
    return data.decode("utf-8", "replace")


def discard(resp: http.client.HTTPResponse) -> None:
    """Consume a small remaining body so the connection can be reused (or close it)."""
    try:
        if resp.length is not None and resp.length > (1 << 16):
            resp.close()
            return
        resp.read()
    except (OSError, http.client.HTTPException):
        resp.close()


class StatusAnswer(Exception):
    """An error answer to a content request (status, lower-cased headers, the start of its body)."""

    def __init__(self, status: int, headers: dict[str, str], body: str, url: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.headers = headers
        self.body = body
        self.url = url

    def error(self, settings: Settings, attempts: int) -> BatutaError:
        from batuta_sync.hub import errors_map

        return errors_map.error_for(
            self.status,
            self.headers,
            urlsplit(self.url).path,
            self.body,
            method="GET",
            has_token=settings.token is not None,
            endpoint=settings.endpoint,
            attempts=attempts,
            token_source=settings.auth.value,
        )
