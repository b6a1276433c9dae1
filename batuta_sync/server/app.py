"""The HTTP side of the local Hub: a threaded HTTP/1.1 server speaking the Hub API.

Stdlib only (``http.server`` + ``os.sendfile`` for file bodies).  Routing works on the RAW request
path so that ``refs%2Fpr%2F1`` stays one segment.  See docs/hub-server.md for the endpoint list.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from batuta_sync.ids import is_sha256
from batuta_sync.server import meta, web
from batuta_sync.server.state import FaultDraw, Faults, Limits, LogEntry, RequestLog, UserSpec
from batuta_sync.server.store import (
    Commit,
    EntryNotFound,
    FileEntry,
    NewFile,
    RepoNotFound,
    RepoState,
    Store,
    StoreError,
    check_path,
    check_repo_id,
    is_lfs_policy,
)
from batuta_sync.server.xet import routes as xet_routes
from batuta_sync.server.xet.cas import XetStore
from batuta_sync.server.xet.errors import XetError

if TYPE_CHECKING:
    from batuta_sync.server.mirror import Mirror, MirrorConfig

_TYPES_BY_PLURAL = {"models": "model", "datasets": "dataset", "spaces": "space"}
_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_CHUNK = 1 << 20
_DRAIN_ON_ERROR = 8 << 20  # unread request bytes discarded so the client can read an early error
_LOCAL = UserSpec("local", "", "write")
# A Host header used in absolute URLs: a DNS name or an IPv4/[IPv6] literal, an optional port.
_HOST_RE = re.compile(r"\A(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?\Z")
_TICKET_RE = re.compile(r"\A[A-Za-z0-9_-]{20,64}\Z")


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
        or not _HOST_RE.match(parts.netloc)
        or parts.query
        or parts.fragment
    ):
        raise ValueError(f"public URL {url!r} must look like http(s)://host[:port][/path]")
    return url.rstrip("/")


@dataclass
class _Upload:
    """An LFS upload ticket handed out by a batch request: the object it is for, its announced size,
    the repo it will belong to once its bytes are received, who asked for it, when it expires, and
    when its bytes were received (None = pending)."""

    oid: str
    size: int
    repo: tuple[str, str]
    user: str
    expires: float
    done_at: float | None = None

    @property
    def done(self) -> bool:
        return self.done_at is not None


_DONE_TICKET_KEPT = 600.0  # seconds a used ticket still answers a retried PUT and the verify call


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


def _norm_etag(value: str) -> str:
    v = value.strip()
    if v.startswith("W/"):
        v = v[2:]
    return v.strip('"')


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256
    allow_reuse_address = True
    hub: HubServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients vanishing mid-request are normal: no traceback on stderr (other errors: one line)."""
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return
        print(f"batuta hub: error serving {client_address[0]}: {type(exc).__name__}: {exc}", file=sys.stderr)


class HubServer:
    """A local Hugging Face Hub on ``host:port`` storing everything under ``root``.

    With no ``users`` the server is open: every request acts as user ``local`` with write access.
    """

    def __init__(
        self,
        root: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        users: Sequence[UserSpec] | None = None,
        orgs: Mapping[str, Sequence[str]] | None = None,
        lfs_redirect: bool = True,
        page_size: int | None = None,
        durable: bool = True,
        control_api: bool = False,
        admin_token: str | None = None,
        public_url: str | None = None,
        limits: Limits | None = None,
        insecure_open_write: bool = False,
        upstream: MirrorConfig | None = None,
        xet: bool = True,
    ) -> None:
        """``control_api``: serve ``/_batuta/`` (faults, log, counters) over HTTP; with users it needs
        ``admin_token`` (sent as ``Authorization: Bearer …``).  ``public_url``: the base of the absolute
        URLs the server hands out (else a well-formed ``Host`` header, else the bound address).  Open
        mode (no users) on a non-loopback ``host`` gives everyone write access: refused unless
        ``insecure_open_write``.  Raises ValueError for a refused combination."""
        if control_api and users and not admin_token:
            raise ValueError(
                "the control API needs an admin token when users are configured (it can inject faults "
                "and read the request log)"
            )
        if not users and not insecure_open_write and not is_loopback(host):
            raise ValueError(
                f"open mode (no users) on the non-loopback address {host} would give everyone who can "
                "reach it write access; configure users, bind 127.0.0.1, or accept the risk explicitly"
            )
        self.public_url = check_public_url(public_url) if public_url else None
        self.admin_token = admin_token or None
        self.limits = limits or Limits()
        self.root = Path(root)
        self.host = host
        self.port = port
        self.store = Store(self.root, durable=durable)
        self.xet = XetStore(self.root, durable=durable)
        self.xet_enabled = xet  # False: no Xet tokens (clients then need HF_HUB_DISABLE_XET=1)
        self.store.external = self.xet  # Xet-stored files are served from their xorbs
        self.faults = Faults()
        self.log = RequestLog()
        self.users: dict[str, UserSpec] = {u.token: u for u in (users or ())}
        self.user_names = {u.name for u in (users or ())}
        self.orgs: dict[str, list[str]] = {k: list(v) for k, v in (orgs or {}).items()}
        self.open_mode = not self.users
        self.lfs_redirect = lfs_redirect
        self.page_size = page_size
        self.control_api = control_api
        self._uploads: dict[str, _Upload] = {}
        self._pending_by_user: dict[str, int] = {}  # tickets not yet used, per user (the quota)
        self._next_sweep = 0.0
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {
            "requests": 0,
            "bytes_in": 0,
            "bytes_out": 0,
            "errors_4xx": 0,
            "errors_5xx": 0,
            "connections": 0,
            "active_connections": 0,
            "max_active_connections": 0,
        }
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self.mirror: Mirror | None = None
        if upstream is not None:  # a pull-through mirror of another Hub (server/mirror.py)
            from batuta_sync.server.mirror import Mirror

            self.mirror = Mirror(self, upstream)

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    def _bind(self) -> _Server:
        httpd = _Server((self.host, self.port), _Handler)
        httpd.hub = self
        self.port = httpd.server_address[1]
        self._httpd = httpd
        return httpd

    def start(self) -> HubServer:
        """Serve in a background thread; returns self (``.url`` is then valid)."""
        httpd = self._bind()
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.name = f"batuta-hub-{self.port}"
        self._thread.start()
        return self

    def serve_forever(self, ready: Callable[[HubServer], None] | None = None) -> None:
        """Serve in the calling thread until ``stop()`` or KeyboardInterrupt."""
        httpd = self._bind()
        if ready is not None:
            ready(self)
        try:
            httpd.serve_forever(poll_interval=0.2)
        finally:
            self._close_all()

    def stop(self) -> None:
        httpd = self._httpd
        if httpd is None:
            return
        if self._thread is not None:
            httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._close_all()
        if self.mirror is not None:
            self.mirror.close()

    def _close_all(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def counters(self) -> dict[str, int]:
        with self._lock:
            out = dict(self._counters)
        out["faults_injected"] = self.faults.injected
        return out

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for k, v in deltas.items():
                self._counters[k] = self._counters.get(k, 0) + v
            if self._counters["active_connections"] > self._counters["max_active_connections"]:
                self._counters["max_active_connections"] = self._counters["active_connections"]

    # ------------------------------------------------------------------ auth
    def user_for(self, auth_header: str | None) -> UserSpec | None:
        """The user a request acts as; None = anonymous.  Raises 401 for an unknown token."""
        if self.open_mode:
            return _LOCAL
        if not auth_header:
            return None
        scheme, _, token = auth_header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        user = self.users.get(token.strip())
        if user is None:
            raise HTTPError(401, "Invalid credentials in Authorization header")
        return user

    def admin_ok(self, auth_header: str | None) -> bool:
        """Whether a control-API request may proceed: always without an admin token configured (open
        mode only), else only with ``Bearer <admin token>``."""
        if self.admin_token is None:
            return self.open_mode
        scheme, _, token = (auth_header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self.admin_token.encode()
        )

    def member_of(self, user: UserSpec, namespace: str) -> bool:
        return user.name == namespace or user.name in self.orgs.get(namespace, ())

    def can_read(self, user: UserSpec | None, st: RepoState) -> bool:
        if st.mirrored:
            from batuta_sync.server import mirror

            return mirror.can_read(self, user, st)
        if self.open_mode or not st.private:
            return True
        return user is not None and self.member_of(user, st.namespace)

    def can_write_ns(self, user: UserSpec | None, namespace: str) -> bool:
        if self.open_mode:
            return True
        return user is not None and user.role == "write" and self.member_of(user, namespace)

    def can_read_object(self, user: UserSpec | None, sha256: str) -> bool:
        """Whether ``user`` may already read the stored object ``sha256``: some repo they can read
        holds it (references it, or had it uploaded).  Existence alone proves nothing."""
        return self.store.has_blob(sha256) and any(
            self.can_read(user, st) for st in self.store.holders(sha256)
        )

    def new_uploads(
        self, objects: Sequence[tuple[str, int]], st: RepoState, user: UserSpec | None
    ) -> list[str]:
        """Upload tickets for ``(oid, size)`` objects into ``st`` (the bytes, once received and hashed,
        prove possession); all or none.  Each user has at most ``limits.max_pending_uploads`` unused
        tickets, so one user cannot exhaust the uploads of the others."""
        name = user.name if user is not None else ""
        now = time.monotonic()
        with self._lock:
            cap = self.limits.max_pending_uploads
            if now >= self._next_sweep or self._pending_by_user.get(name, 0) + len(objects) > cap:
                self._sweep_uploads(now)
            if self._pending_by_user.get(name, 0) + len(objects) > cap:
                raise HTTPError(
                    503,
                    f"Too many pending LFS uploads for {name or 'this client'} ({cap}); retry later.",
                    None,
                    {"Retry-After": "60"},
                )
            tickets = []
            for oid, size in objects:
                ticket = secrets.token_urlsafe(24)
                expires = now + self.limits.upload_ticket_ttl
                self._uploads[ticket] = _Upload(oid, size, (st.repo_type, st.repo_id), name, expires)
                tickets.append(ticket)
            self._pending_by_user[name] = self._pending_by_user.get(name, 0) + len(objects)
        return tickets

    def _sweep_uploads(self, now: float) -> None:
        """Drop expired tickets and tickets used a while ago; recount the quota (lock held)."""
        for k in [
            k
            for k, u in self._uploads.items()
            if u.expires <= now or (u.done_at is not None and u.done_at + _DONE_TICKET_KEPT <= now)
        ]:
            del self._uploads[k]
        counts: dict[str, int] = {}
        for u in self._uploads.values():
            if not u.done:
                counts[u.user] = counts.get(u.user, 0) + 1
        self._pending_by_user = counts
        self._next_sweep = now + 60.0

    def upload_done(self, up: _Upload) -> None:
        with self._lock:
            if up.done_at is None:
                up.done_at = time.monotonic()
                self._pending_by_user[up.user] = max(0, self._pending_by_user.get(up.user, 0) - 1)

    def upload_for(self, ticket: str) -> _Upload | None:
        if not _TICKET_RE.match(ticket):
            return None
        with self._lock:
            up = self._uploads.get(ticket)
            if up is not None and up.expires <= time.monotonic():
                return None  # removed (and the quota recounted) by the next sweep
            return up


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "batuta-hub/1"
    sys_version = ""
    timeout = 120
    server: _Server

    # ------------------------------------------------------------------ plumbing
    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        hub = self.server.hub
        with hub._lock:
            hub._conns.add(self.connection)
        hub._count(connections=1, active_connections=1)

    def finish(self) -> None:
        hub = self.server.hub
        with hub._lock:
            hub._conns.discard(self.connection)
        hub._count(active_connections=-1)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    @property
    def hub(self) -> HubServer:
        return self.server.hub

    def _dispatch(self) -> None:
        raw_path, _, query = self.path.partition("?")
        self.raw_path = raw_path
        self.query = query
        self.params = parse_qs(query, keep_blank_values=True)
        self.bytes_in = 0
        self.bytes_out = 0
        self.status = 0
        self.body_done = (self.headers.get("Content-Length") or "0").strip() == "0" and "chunked" not in (
            self.headers.get("Transfer-Encoding") or ""
        ).lower()
        self.logged: tuple[int, LogEntry] | None = None
        self.reader: tuple[Callable[[int], bytes], int | None] | None = None
        self.head_sent = False
        self.fault_drawn = False
        control = raw_path.startswith("/_batuta/")
        self.control = control
        try:
            if not control:
                self._inject_request_faults()
            self._route()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception as exc:
            if self.head_sent:  # too late for an error response: cut the connection
                self.close_connection = True
            else:
                try:
                    self._send_exception(exc)
                    if isinstance(exc, HTTPError) and exc.status == 413:
                        self._linger()
                except OSError:
                    self.close_connection = True
        finally:
            if not self.body_done:
                self.close_connection = True
            if not control:
                self._record(self.bytes_out)

    def _send_exception(self, exc: Exception) -> None:
        if isinstance(exc, StoreError):
            headers = {"X-Repo-Commit": exc.commit} if isinstance(exc, EntryNotFound) else {}
            self._error(exc.status, exc.message, exc.error_code, headers)
        elif isinstance(exc, HTTPError):
            self._error(exc.status, exc.message, exc.error_code, exc.headers)
        elif isinstance(exc, XetError):
            self._error(exc.status, exc.message)
        else:  # a bug: answer 500, keep serving
            self._error(500, f"Internal server error: {type(exc).__name__}: {exc}")

    def _record(self, bytes_out: int) -> None:
        """Log the request and count it.  Called once before the response head is sent (so a client
        that has its answer always finds it in the log), and again at the end to fix up the byte
        counts if the body was cut short."""
        hub = self.hub
        entry = LogEntry(self.command, self.raw_path, self.query, self.status, self.bytes_in, bytes_out)
        if self.logged is None:
            self.logged = (hub.log.add(entry), entry)
            hub._count(
                requests=1,
                bytes_in=entry.bytes_in,
                bytes_out=entry.bytes_out,
                errors_4xx=int(400 <= entry.status < 500),
                errors_5xx=int(entry.status >= 500),
            )
            return
        index, old = self.logged
        if entry != old:
            hub.log.replace(index, entry)
            hub._count(bytes_in=entry.bytes_in - old.bytes_in, bytes_out=entry.bytes_out - old.bytes_out)
            self.logged = (index, entry)

    def _inject_request_faults(self) -> None:
        faults = self.hub.faults
        if not faults.applies(self.raw_path):
            return
        if faults.latency_ms > 0:
            time.sleep(faults.latency_ms / 1000.0)
        fault = faults.take_request_fault()
        if fault is not None:
            kind, details = fault
            if kind == "429":
                self._raise_429(details.get("retry_after"), details.get("reset"))
            self._raise_5xx(int(details["status"]))
        # A download's random fault is drawn once its answer is known (a file body or a redirect).
        is_download = self.command == "GET" and (
            "/resolve/" in self.raw_path or self.raw_path.startswith("/cdn-lfs/")
        )
        if not is_download:
            self._random_fault(body=False)

    def _random_fault(self, *, body: bool) -> FaultDraw | None:
        """Random mode: draw this request's fault once; raise a 429/5xx, return a body fault."""
        faults = self.hub.faults
        if self.control or self.fault_drawn or not faults.applies(self.raw_path):
            return None
        self.fault_drawn = True
        drawn = faults.draw(self.command, self.raw_path, body=body)
        if drawn is None or drawn.kind in ("drop", "truncate", "corrupt"):
            return drawn
        if drawn.kind == "429":
            self._raise_429(faults.retry_after, None)
        self._raise_5xx(drawn.status)

    def _raise_429(self, retry_after: Any, reset: Any) -> NoReturn:
        self._drain_small_body()
        headers: dict[str, str] = {}
        if retry_after:
            headers["Retry-After"] = str(retry_after)
        if reset is not None:
            headers["RateLimit"] = f'"api";r=0;t={int(reset)}'
            headers["RateLimit-Policy"] = '"fixed window";"api";q=500;w=300'
        raise HTTPError(429, "Rate limit reached (injected fault). Retry later.", None, headers)

    def _raise_5xx(self, status: int) -> NoReturn:
        self._drain_small_body()
        raise HTTPError(status, "Service temporarily unavailable (injected fault).")

    def _drain_small_body(self) -> None:
        if self.body_done:
            return
        _, length = self._body_reader()
        if length is not None and length <= _DRAIN_ON_ERROR:
            self._discard_body(_DRAIN_ON_ERROR)

    def _linger(self) -> None:
        """After an early error answer: read and drop what the client is still sending (a while, a
        bounded amount) before closing, so it reads the answer instead of a connection reset.  (The
        answer said ``Connection: close`` whenever the body was not read to its end.)"""
        if self.body_done:
            return
        self.close_connection = True
        self.connection.settimeout(1.0)  # an OSError here is handled by the caller (_dispatch)
        self._discard_body(_DRAIN_ON_ERROR)

    def _discard_body(self, limit: int) -> None:
        """Read and drop up to ``limit`` more body bytes (the connection closes if more remain)."""
        read, _ = self._body_reader()
        left = limit
        try:
            while left > 0 and (chunk := read(min(_CHUNK, left))):
                left -= len(chunk)
        except (HTTPError, OSError):
            self.close_connection = True

    # ------------------------------------------------------------------ request bodies
    def _body_reader(self) -> tuple[Callable[[int], bytes], int | None]:
        """A read(n) function over the request body and its length (None = chunked); one per request."""
        if self.reader is None:
            self.reader = self._new_body_reader()
        return self.reader

    def _new_body_reader(self) -> tuple[Callable[[int], bytes], int | None]:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            state = {"left": 0, "eof": False}

            def read_chunked(n: int) -> bytes:
                if state["eof"]:
                    return b""
                if state["left"] == 0:
                    line = self.rfile.readline(65537)
                    try:
                        size = int(line.split(b";")[0].strip() or b"0", 16)
                    except ValueError:
                        raise HTTPError(400, "Malformed chunked request body.") from None
                    if size == 0:
                        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                            pass
                        state["eof"] = True
                        self.body_done = True
                        return b""
                    state["left"] = size
                data = self.rfile.read(min(n, state["left"]))
                if not data:
                    raise HTTPError(400, "Request body ended early.")
                state["left"] -= len(data)
                if state["left"] == 0:
                    self.rfile.readline(3)
                self.bytes_in += len(data)
                return data

            return read_chunked, None
        try:
            length = int((self.headers.get("Content-Length") or "0").strip())
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise HTTPError(400, "Invalid Content-Length header.")
        remaining = {"n": length}
        if length == 0:
            self.body_done = True

        def read_plain(n: int) -> bytes:
            if remaining["n"] <= 0:
                return b""
            data = self.rfile.read(min(n, remaining["n"]))
            remaining["n"] -= len(data)
            self.bytes_in += len(data)
            if not data:
                raise HTTPError(400, "Request body ended early.")
            if remaining["n"] == 0:
                self.body_done = True
            return data

        return read_plain, length

    @staticmethod
    def _too_large(what: str, limit: int, unit: str = "bytes") -> HTTPError:
        return HTTPError(
            413, f"{what} is larger than this server accepts ({limit} {unit}).", "PayloadTooLarge"
        )

    def _read_body(self, limit: int | None = None) -> bytes:
        """The whole request body, at most ``limit`` bytes (default: the JSON body limit) else 413."""
        if self.body_done:
            return b""
        limit = self.hub.limits.max_json_body if limit is None else limit
        read, length = self._body_reader()
        if length is not None and length > limit:
            raise self._too_large("The request body", limit)
        parts: list[bytes] = []
        total = 0
        while chunk := read(_CHUNK):
            parts.append(chunk)
            total += len(chunk)
            if total > limit:
                raise self._too_large("The request body", limit)
        self.body_done = True
        return b"".join(parts)

    def _body_lines(self) -> Iterator[bytes]:
        """Non-empty lines of the request body, read incrementally (see :func:`ndjson_lines`), bounded
        by the commit body and line limits (413)."""
        if self.body_done:
            return
        lim = self.hub.limits
        read, length = self._body_reader()
        if length is not None and length > lim.max_commit_body:
            raise self._too_large("The commit payload", lim.max_commit_body)

        def chunks() -> Iterator[bytes]:
            total = 0
            while chunk := read(_CHUNK):
                total += len(chunk)
                if total > lim.max_commit_body:
                    raise self._too_large("The commit payload", lim.max_commit_body)
                yield chunk
            self.body_done = True

        yield from ndjson_lines(
            chunks(),
            max_line=lim.max_commit_line,
            too_long=lambda: self._too_large("A commit operation (one NDJSON line)", lim.max_commit_line),
        )

    def _json_body(self) -> dict[str, Any]:
        """The request body as a JSON object ({} when empty); anything else is a 400."""
        raw = self._read_body()
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise HTTPError(400, "Request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise HTTPError(400, "Request body must be a JSON object.")
        return body

    # ------------------------------------------------------------------ responses
    def _base(self) -> str:
        """The base of absolute URLs: the configured public URL, else the ``Host`` header when it is
        a plain ``host[:port]``, else the bound address (a hostile Host cannot inject into links)."""
        if self.hub.public_url:
            return self.hub.public_url
        host = (self.headers.get("Host") or "").strip()
        return f"http://{host}" if _HOST_RE.match(host) else self.hub.url

    def _send_head(
        self, status: int, headers: Mapping[str, str], length: int, expected_out: int | None = None
    ) -> None:
        self.status = status
        self.head_sent = True
        if not self.control:
            body = 0 if self.command == "HEAD" else (length if expected_out is None else expected_out)
            self._record(self.bytes_out + body)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        if self.close_connection or not self.body_done:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()

    def _send_bytes(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        h = {"Content-Type": "application/json; charset=utf-8"}
        h.update(headers or {})
        self._send_head(status, h, len(body))
        if self.command != "HEAD" and body:
            self.wfile.write(body)
            self.bytes_out += len(body)

    def _json(self, obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(obj).encode(), headers)

    def _error(
        self,
        status: int,
        message: str,
        error_code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        h = dict(headers or {})
        if error_code:
            h["X-Error-Code"] = error_code
        h["X-Error-Message"] = message.replace("\r", " ").replace("\n", " ")[:500]
        self._send_bytes(status, json.dumps({"error": message}).encode(), h)

    # ------------------------------------------------------------------ routing
    def _route_storage_protocols(self, d: list[str]) -> bool:
        """Xet's CAS (``/xet-cas/…``) and the container registry Ollama pulls from (``/v2/…``);
        False when the path is neither (the caller goes on routing)."""
        if d[0] == "xet-cas":
            xet_routes.cas(self, d[1:])
            return True
        if d[0] == "v2" and (len(d) <= 2 or (len(d) == 5 and d[3] in ("manifests", "blobs"))):
            from batuta_sync.server import registry

            registry.route(self, d[1:])
            return True
        return False

    def _route(self) -> None:
        if web.handle(self):  # browser pages (Accept prefers text/html) and /_web/
            return
        segs = [s for s in self.raw_path.split("/")[1:]]
        if segs and segs[-1] == "" and len(segs) > 1:
            segs = segs[:-1]
        d = [unquote(s) for s in segs]
        m = self.command
        if not d or d == [""]:
            return self._json({"name": "batuta local hub", "api": "/api"})
        if d[0] == "_batuta":
            if not self.hub.control_api:
                raise HTTPError(404, "The control API is disabled on this server (see --control-api).")
            if not self.hub.admin_ok(self.headers.get("Authorization")):
                self._drain_small_body()
                raise HTTPError(
                    401 if not self.headers.get("Authorization") else 403,
                    "The control API needs the admin token (Authorization: Bearer <admin token>).",
                )
            return self._control(d[1:])
        if d[0] == "api":
            return self._api(segs[1:], d[1:])
        if d[0] in ("xet-cas", "v2") and self._route_storage_protocols(d):
            return None
        if d[0] == "lfs-upload" and len(d) == 2 and m == "PUT":
            return self._lfs_upload(d[1])
        if d[0] == "lfs-verify" and len(d) == 2 and m == "POST":
            return self._lfs_verify(d[1])
        if d[0] == "cdn-lfs" and len(d) == 7 and d[4] == "resolve" and m in ("GET", "HEAD"):
            return self._cdn_blob(d[1], f"{d[2]}/{d[3]}", d[5], d[6])
        repo_type = "model"
        if d[0] in ("datasets", "spaces") and len(d) > 2:
            repo_type = _TYPES_BY_PLURAL[d[0]]
            segs, d = segs[1:], d[1:]
        if (
            len(d) >= 6
            and d[1].endswith(".git")
            and d[2:] == ["info", "lfs", "objects", "batch"]
            and m == "POST"
        ):
            return self._lfs_batch(repo_type, f"{d[0]}/{d[1][:-4]}")
        if len(d) >= 5 and d[2] == "resolve" and m in ("GET", "HEAD"):
            return self._resolve(repo_type, f"{d[0]}/{d[1]}", d[3], "/".join(d[4:]))
        raise HTTPError(404, f"Not found: {self.raw_path}")

    def _api(self, segs: list[str], d: list[str]) -> None:
        m = self.command
        if d == ["whoami-v2"] and m == "GET":
            return self._whoami()
        if d[:1] == ["repos"] and len(d) == 2:
            if d[1] == "create" and m == "POST":
                return self._create_repo()
            if d[1] == "delete" and m == "DELETE":
                return self._delete_repo()
            if d[1] == "move" and m == "POST":
                raise HTTPError(501, "Moving repos is not supported by the local hub.")
        if d == ["validate-yaml"] and m == "POST":
            body = self._json_body()
            errors, warnings = meta.validate_card_yaml(str(body.get("content") or ""))
            out = {"errors": [{"message": e} for e in errors], "warnings": [{"message": w} for w in warnings]}
            return self._json(out, 400 if errors else 200)
        if len(d) == 1 and d[0] in _TYPES_BY_PLURAL and m == "GET":
            return self._search(_TYPES_BY_PLURAL[d[0]])
        if len(d) >= 3 and d[0] in _TYPES_BY_PLURAL:
            repo_type = _TYPES_BY_PLURAL[d[0]]
            repo_id = f"{d[1]}/{d[2]}"
            rest, rest_raw = d[3:], segs[3:]
            return self._repo_api(repo_type, repo_id, rest, rest_raw)
        raise HTTPError(404, f"Not found: {self.raw_path}")

    def _repo_api(self, repo_type: str, repo_id: str, rest: list[str], rest_raw: list[str]) -> None:
        m = self.command
        head = rest[0] if rest else ""
        if not rest and m == "GET":
            return self._info(repo_type, repo_id, "main", explicit_rev=False)
        if head == "revision" and len(rest) >= 2 and m == "GET":
            return self._info(repo_type, repo_id, "/".join(rest[1:]), explicit_rev=True)
        if head == "tree" and len(rest) >= 2 and m == "GET":
            return self._tree(repo_type, repo_id, rest[1], "/".join(rest[2:]))
        if head == "paths-info" and len(rest) >= 2 and m == "POST":
            return self._paths_info(repo_type, repo_id, "/".join(rest[1:]))
        if head == "refs" and len(rest) == 1 and m == "GET":
            return self._refs(repo_type, repo_id)
        if head == "commits" and len(rest) >= 2 and m == "GET":
            return self._commits(repo_type, repo_id, "/".join(rest[1:]))
        if head == "preupload" and len(rest) >= 2 and m == "POST":
            return self._preupload(repo_type, repo_id, "/".join(rest[1:]))
        if head == "commit" and len(rest) >= 2 and m == "POST":
            return self._commit(repo_type, repo_id, "/".join(rest[1:]))
        if head == "branch" and len(rest) >= 2 and m in ("POST", "DELETE"):
            return self._branch(repo_type, repo_id, "/".join(rest[1:]))
        if head == "tag" and len(rest) >= 2 and m in ("POST", "DELETE"):
            return self._tag(repo_type, repo_id, "/".join(rest[1:]))
        if head == "settings" and len(rest) == 1 and m == "PUT":
            return self._settings(repo_type, repo_id)
        if head == "like" and len(rest) == 1 and m in ("POST", "DELETE"):
            return self._like(repo_type, repo_id)
        if head == "runtime" and len(rest) == 1 and m == "GET" and repo_type == "space":
            st, _ = self._visible_repo(repo_type, repo_id)
            c = self.hub.store.get_commit(st.branches["main"])
            return self._json(self._info_json(st, c, siblings=False, blobs=False)["runtime"])
        if head in ("xet-read-token", "xet-write-token"):
            return xet_routes.token(self, repo_type, repo_id, head[4:-6], "/".join(rest[1:]) or "main")
        raise HTTPError(404, f"Not found: {self.raw_path}")

    # ------------------------------------------------------------------ helpers
    def _user(self) -> UserSpec | None:
        user = self.hub.user_for(self.headers.get("Authorization"))
        if user is None and self.command in ("GET", "HEAD"):  # downloads linked from the web pages
            user = web.session_user(self)
        return user

    def _visible_repo(self, repo_type: str, repo_id: str) -> tuple[RepoState, UserSpec | None]:
        user = self._user()
        try:
            st = self.hub.store.repo(repo_id, repo_type)
        except RepoNotFound:
            if self.hub.mirror is None:
                raise RepoNotFound(self._not_found_msg(repo_type, repo_id))
            st = self.hub.mirror.open_repo(repo_type, repo_id)
        if not self.hub.can_read(user, st):
            raise RepoNotFound(self._not_found_msg(repo_type, repo_id))
        return st, user

    @staticmethod
    def _not_found_msg(repo_type: str, repo_id: str) -> str:
        return (
            f"Repository Not Found for {repo_type} {repo_id!r}: it does not exist, or it is private and "
            "your token cannot see it."
        )

    def _writable_repo(self, repo_type: str, repo_id: str) -> tuple[RepoState, UserSpec]:
        st, user = self._visible_repo(repo_type, repo_id)
        if st.mirrored:
            raise HTTPError(403, f"{repo_id} is a read-only mirror of the upstream Hub.")
        if not self.hub.can_write_ns(user, st.namespace):
            if user is None:
                raise HTTPError(401, "You must be authenticated to write to this repo.", "RepoNotFound")
            raise HTTPError(
                403, f"You don't have the rights to write to {repo_id} (token role or membership)."
            )
        return st, user or _LOCAL

    def _param(self, name: str, default: str | None = None) -> str | None:
        v = self.params.get(name)
        return v[-1] if v else default

    def _flag(self, name: str) -> bool:
        return (self._param(name, "") or "").lower() in ("1", "true", "yes")

    def _paginate(self, items: Sequence[Any], default_size: int) -> tuple[Sequence[Any], dict[str, str]]:
        size = self.hub.page_size or default_size
        try:
            limit = int(self._param("limit") or 0)
        except ValueError:
            raise HTTPError(400, "limit must be an integer")
        if limit > 0:
            size = min(size, limit) if self.hub.page_size else limit
        try:
            start = max(0, int(self._param("cursor") or 0))
        except ValueError:
            raise HTTPError(400, "Invalid cursor")
        page = items[start : start + size]
        headers: dict[str, str] = {}
        if start + size < len(items):
            q = [(k, v) for k, vs in self.params.items() if k != "cursor" for v in vs]
            q.append(("cursor", str(start + size)))
            headers["Link"] = f'<{self._base()}{self.raw_path}?{urlencode(q)}>; rel="next"'
        return page, headers

    # ------------------------------------------------------------------ control plane
    def _control(self, d: list[str]) -> None:
        hub = self.hub
        m = self.command
        if d == ["faults"]:
            if m == "POST":
                body = self._json_body()
                try:
                    if body:
                        hub.faults.configure(**body)
                    else:
                        hub.faults.reset()
                except (ValueError, TypeError) as exc:
                    raise HTTPError(400, str(exc))
                return self._faults_json()
            if m == "GET":
                return self._faults_json()
            if m == "DELETE":
                hub.faults.reset()
                return self._faults_json()
        if d == ["faults", "counts"] and m == "DELETE":
            hub.faults.clear_counts()
            return self._faults_json()
        if d == ["log"]:
            if m == "GET":
                return self._json(hub.log.as_json())
            if m == "DELETE":
                hub.log.clear()
                return self._json({"cleared": True})
        if d == ["counters"] and m == "GET":
            return self._json(hub.counters)
        raise HTTPError(404, f"Not found: {self.raw_path}")

    def _faults_json(self) -> None:
        faults = self.hub.faults
        counts = faults.counts
        self._json({"faults": faults.snapshot(), "injected": counts, "injected_total": sum(counts.values())})

    # ------------------------------------------------------------------ identity & repos
    def _whoami(self) -> None:
        user = self._user()
        if user is None:
            raise HTTPError(401, "Invalid username or password.")
        orgs = [
            {
                "type": "org",
                "name": org,
                "fullname": org,
                "roleInOrg": "write" if user.role == "write" else "read",
            }
            for org, members in sorted(self.hub.orgs.items())
            if user.name in members
        ]
        self._json(
            {
                "type": "user",
                "id": user.name,
                "name": user.name,
                "fullname": user.name,
                "email": None,
                "emailVerified": False,
                "canPay": False,
                "isPro": False,
                "orgs": orgs,
                "auth": {
                    "type": "access_token",
                    "accessToken": {"displayName": f"{user.name}-token", "role": user.role},
                },
            }
        )

    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        return f"{self._base()}/{_PREFIX[repo_type]}{repo_id}"

    def _create_repo(self) -> None:
        body = self._json_body()
        user = self._user()
        if user is None:
            raise HTTPError(401, "You must be authenticated to create a repo.")
        name = str(body.get("name") or "")
        org = body.get("organization") or user.name
        repo_type = str(body.get("type") or "model")
        if repo_type not in _PREFIX:
            raise HTTPError(400, f"Invalid repo type {repo_type!r}.")
        repo_id = f"{org}/{name}"
        check_repo_id(repo_id)
        if not self.hub.can_write_ns(user, str(org)):
            raise HTTPError(403, f"You don't have the rights to create a repo under {org!r}.")
        private = body.get("private")
        if body.get("visibility") in ("private", "public"):
            private = body["visibility"] == "private"
        store = self.hub.store
        try:
            store.repo(repo_id, repo_type)
            raise HTTPError(409, f"You already created this {repo_type} repo", None)
        except RepoNotFound:
            pass
        except HTTPError as exc:
            body_409 = {"error": exc.message, "url": self._repo_url(repo_type, repo_id)}
            self.status = 409
            return self._json(body_409, 409, {"X-Error-Message": exc.message})
        st = store.create_repo(
            repo_id, repo_type, private=bool(private), exist_ok=True, sdk=body.get("sdk"), author=user.name
        )
        self._json(
            {"url": self._repo_url(repo_type, repo_id), "name": repo_id, "id": repo_id, "private": st.private}
        )

    def _delete_repo(self) -> None:
        body = self._json_body()
        user = self._user()
        name = str(body.get("name") or "")
        org = body.get("organization") or (user.name if user else "")
        repo_type = str(body.get("type") or "model")
        repo_id = f"{org}/{name}"
        self._writable_repo(repo_type, repo_id)
        self.hub.store.delete_repo(repo_id, repo_type)
        self._json({"deleted": repo_id})

    def _settings(self, repo_type: str, repo_id: str) -> None:
        self._writable_repo(repo_type, repo_id)
        body = self._json_body()
        private = body.get("private")
        if body.get("visibility") in ("private", "public"):
            private = body["visibility"] == "private"
        gated = body.get("gated")
        self.hub.store.update_settings(
            repo_id, repo_type, private=None if private is None else bool(private), gated=gated
        )
        self._json({"ok": True})

    def _like(self, repo_type: str, repo_id: str) -> None:
        st, user = self._visible_repo(repo_type, repo_id)
        if user is None:
            raise HTTPError(401, "You must be authenticated to like a repo.")
        delta = 1 if self.command == "POST" else -1
        self.hub.store.set_likes(repo_id, max(0, st.likes + delta), repo_type=repo_type)
        self._json({"likes": st.likes})

    # ------------------------------------------------------------------ info & search
    def _info_json(self, st: RepoState, c: Commit, *, siblings: bool, blobs: bool) -> dict[str, Any]:
        info = c.info
        card = dict(info.get("cardData") or {})
        out: dict[str, Any] = {
            "_id": c.tree[:24],
            "id": st.repo_id,
            "author": st.namespace,
            "sha": c.id,
            "lastModified": c.date,
            "createdAt": st.created_at,
            "private": st.private,
            "gated": st.gated,
            "disabled": False,
            "likes": st.likes,
            "tags": list(info.get("tags") or []),
            "cardData": card,
            "usedStorage": sum(e.size for e in c.files.values()),
        }
        if st.repo_type != "space":
            out["downloads"] = st.downloads
        if st.repo_type == "model":
            out["modelId"] = st.repo_id
            for key in ("library_name", "pipeline_tag"):
                if isinstance(card.get(key), str):
                    out[key] = card[key]
            for key in ("safetensors", "gguf"):
                if key in info:
                    out[key] = info[key]
        elif st.repo_type == "dataset":
            if isinstance(card.get("dataset_info"), (dict, list)):
                out["dataset_info"] = card["dataset_info"]
        else:
            sdk = card.get("sdk") if isinstance(card.get("sdk"), str) else st.sdk
            out["sdk"] = sdk
            app_files = {"app.py", "Dockerfile", "index.html", "app.R"}
            if isinstance(card.get("app_file"), str):
                app_files.add(card["app_file"])
            stage = "RUNNING" if any(p in c.files for p in app_files) else "NO_APP_FILE"
            out["runtime"] = {
                "stage": stage,
                "hardware": {"current": "cpu-basic", "requested": "cpu-basic"},
                "storage": None,
                "gcTimeout": None,
                "replicas": {"current": 1, "requested": 1},
                "devMode": False,
                "domains": [],
            }
            out["subdomain"] = st.repo_id.replace("/", "-").lower()
        if siblings:
            sibs = []
            for p in sorted(c.files):
                e = c.files[p]
                s: dict[str, Any] = {"rfilename": p}
                if blobs:
                    s["size"] = e.size
                    s["blobId"] = e.oid
                    if e.lfs:
                        s["lfs"] = {"size": e.size, "sha256": e.sha256, "pointerSize": e.pointer_size}
                sibs.append(s)
            out["siblings"] = sibs
        return out

    def _info(self, repo_type: str, repo_id: str, rev: str, *, explicit_rev: bool) -> None:
        st, _ = self._visible_repo(repo_type, repo_id)
        c = self.hub.store.get_commit(self.hub.store.resolve_state(st, rev))
        self._json(self._info_json(st, c, siblings=True, blobs=self._flag("blobs")))

    def _search(self, repo_type: str) -> None:
        user = self._user()
        store = self.hub.store
        searches = [s.lower() for s in self.params.get("search", []) if s]
        author = self._param("author")
        filters = [f for f in self.params.get("filter", []) if f]
        for key in ("pipeline_tag", "library", "language", "sdk", "task_categories", "size_categories"):
            for v in self.params.get(key, []):
                if v:
                    filters.append(v if key in ("pipeline_tag", "library", "sdk") else f"{key}:{v}")
        gated = self._param("gated")
        rows: list[tuple[RepoState, Commit]] = []
        for st in store.repos():
            if st.repo_type != repo_type or not self.hub.can_read(user, st):
                continue
            if author and st.namespace.lower() != author.lower():
                continue
            if any(s not in st.repo_id.lower() for s in searches):
                continue
            if gated is not None and bool(st.gated) != (gated.lower() == "true"):
                continue
            try:
                c = store.get_commit(st.branches["main"])
            except (KeyError, StoreError):
                continue
            if filters and not all(self._matches(f, st, c) for f in filters):
                continue
            rows.append((st, c))
        sort = self._param("sort")
        desc = (self._param("direction") or "-1") != "1"
        keyfuncs: dict[str, Callable[[tuple[RepoState, Commit]], Any]] = {
            "downloads": lambda r: (r[0].downloads, r[0].repo_id),
            "likes": lambda r: (r[0].likes, r[0].repo_id),
            "trendingScore": lambda r: (r[0].likes + r[0].downloads, r[0].repo_id),
            "lastModified": lambda r: (r[1].date, r[0].repo_id),
            "last_modified": lambda r: (r[1].date, r[0].repo_id),
            "createdAt": lambda r: (r[0].created_at, r[0].repo_id),
            "created_at": lambda r: (r[0].created_at, r[0].repo_id),
            "id": lambda r: r[0].repo_id,
        }
        if sort:
            if sort not in keyfuncs:
                raise HTTPError(400, f"Invalid sort parameter {sort!r}.")
            rows.sort(key=keyfuncs[sort], reverse=desc)
        else:
            rows.sort(key=lambda r: r[0].repo_id)
        full = self._flag("full")
        card = self._flag("cardData") or full
        expand = set(self.params.get("expand", []) + self.params.get("expand[]", []))
        page, headers = self._paginate(rows, 1000)
        out = []
        for st, c in page:
            item = self._info_json(st, c, siblings=full or "siblings" in expand, blobs=False)
            if not card and "cardData" not in expand:
                item.pop("cardData", None)
            out.append(item)
        self._json(out, headers=headers)

    @staticmethod
    def _matches(f: str, st: RepoState, c: Commit) -> bool:
        tags = set(c.info.get("tags") or [])
        if f in tags:
            return True
        card = c.info.get("cardData") or {}
        key, sep, val = f.partition(":")
        if sep:
            if key == "language" and val in tags:
                return True
            if key in ("library", "library_name") and card.get("library_name") == val:
                return True
            return bool(key == "sdk" and (card.get("sdk") or st.sdk) == val)
        if card.get("pipeline_tag") == f or card.get("library_name") == f:
            return True
        return st.repo_type == "space" and (card.get("sdk") or st.sdk) == f

    # ------------------------------------------------------------------ tree / paths-info / refs / commits
    def _entry_json(self, c: Commit, path: str, *, is_dir: bool) -> dict[str, Any]:
        if is_dir:
            return {"type": "directory", "oid": c.dirs[path], "size": 0, "path": path}
        e = c.files[path]
        out: dict[str, Any] = {"type": "file", "oid": e.oid, "size": e.size, "path": path}
        if e.lfs:
            out["lfs"] = {"oid": e.sha256, "size": e.size, "pointerSize": e.pointer_size}
            xet_hash = self.hub.xet.file_for_sha256(e.sha256)
            if xet_hash is not None:
                out["xetHash"] = xet_hash
        return out

    def _add_last_commits(self, c: Commit, entries: list[dict[str, Any]]) -> None:
        """``expand=true``: the last commit that changed each path (first-parent walk)."""
        want = {e["path"]: e for e in entries}
        store = self.hub.store

        def key_of(commit: Commit, path: str, kind: str) -> str | None:
            if kind == "directory":
                return commit.dirs.get(path)
            f = commit.files.get(path)
            return f.oid if f else None

        hist = list(store.history(c.id))
        for path, e in want.items():
            cur = key_of(hist[0], path, e["type"])
            last = hist[0]
            for older in hist[1:]:
                if key_of(older, path, e["type"]) != cur:
                    break
                last = older
            e["lastCommit"] = {"id": last.id, "title": last.title, "date": last.date}
            if e["type"] == "file":
                e["securityFileStatus"] = {
                    "status": "unscanned",
                    "avScan": {"virusFound": False, "virusNames": None},
                    "pickleImportScan": None,
                }

    def _tree(self, repo_type: str, repo_id: str, rev: str, path: str) -> None:
        st, _ = self._visible_repo(repo_type, repo_id)
        store = self.hub.store
        c = store.get_commit(store.resolve_state(st, rev))
        path = path.strip("/")
        recursive = self._flag("recursive")
        expand = self._flag("expand")
        if path and path not in c.dirs:
            if path in c.files:
                raise HTTPError(400, f"{path!r} is a file, not a folder.")
            raise EntryNotFound(f"Entry {path!r} not found in {repo_id}@{rev}.", c.id)
        prefix = path + "/" if path else ""
        names: list[tuple[str, bool]] = []
        for d in c.dirs:
            if d.startswith(prefix) and (recursive or "/" not in d[len(prefix) :]):
                names.append((d, True))
        for p in c.files:
            if p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :]):
                names.append((p, False))
        names.sort(key=lambda x: (x[0].split("/")[:-1], not x[1], x[0]))
        page, headers = self._paginate(names, 50 if expand else 1000)
        entries = [self._entry_json(c, p, is_dir=is_dir) for p, is_dir in page]
        if expand:
            self._add_last_commits(c, entries)
        self._json(entries, headers=headers)

    def _paths_info(self, repo_type: str, repo_id: str, rev: str) -> None:
        st, _ = self._visible_repo(repo_type, repo_id)
        store = self.hub.store
        c = store.get_commit(store.resolve_state(st, rev))
        raw = self._read_body()
        ctype = (self.headers.get("Content-Type") or "").lower()
        paths: list[str]
        expand = False
        if "json" in ctype:
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                raise HTTPError(400, "Invalid JSON body.")
            p = body.get("paths") or []
            paths = [p] if isinstance(p, str) else list(p)
            expand = bool(body.get("expand"))
        else:
            form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
            paths = form.get("paths", [])
            expand = (form.get("expand", [""])[-1]).lower() in ("1", "true")
        entries = []
        for p in paths:
            p = p.strip("/")
            if p in c.files:
                entries.append(self._entry_json(c, p, is_dir=False))
            elif p in c.dirs:
                entries.append(self._entry_json(c, p, is_dir=True))
        if expand:
            if len(entries) > self.hub.limits.max_expand_paths:  # each costs a walk of the history
                raise self._too_large("paths-info with expand", self.hub.limits.max_expand_paths, "paths")
            self._add_last_commits(c, entries)
        self._json(entries)

    def _refs(self, repo_type: str, repo_id: str) -> None:
        st, _ = self._visible_repo(repo_type, repo_id)
        branches, tags, prs = self.hub.store.refs_snapshot(st)
        out: dict[str, Any] = {
            "branches": [
                {"name": b, "ref": f"refs/heads/{b}", "targetCommit": sha}
                for b, sha in sorted(branches.items())
            ],
            "tags": [
                {"name": t, "ref": f"refs/tags/{t}", "targetCommit": sha} for t, sha in sorted(tags.items())
            ],
            "converts": [],
        }
        if self._flag("include_prs"):
            out["pullRequests"] = [
                {"name": str(n), "ref": f"refs/pr/{n}", "targetCommit": sha} for n, sha in sorted(prs.items())
            ]
        self._json(out)

    def _commits(self, repo_type: str, repo_id: str, rev: str) -> None:
        st, _ = self._visible_repo(repo_type, repo_id)
        store = self.hub.store
        hist = list(store.history(store.resolve_state(st, rev)))
        page, headers = self._paginate(hist, 50)
        formatted = "formatted" in self.params.get("expand[]", []) + self.params.get("expand", [])
        self._json(
            [
                {
                    "id": c.id,
                    "title": c.title,
                    "message": c.message,
                    "date": c.date,
                    "authors": [{"user": c.author, "avatar": None}],
                    **(
                        {"formatted": {"title": _html(c.title), "message": _html(c.message)}}
                        if formatted
                        else {}
                    ),
                }
                for c in page
            ],
            headers=headers,
        )

    def _branch(self, repo_type: str, repo_id: str, branch: str) -> None:
        self._writable_repo(repo_type, repo_id)
        store = self.hub.store
        if self.command == "DELETE":
            store.delete_branch(repo_id, branch, repo_type=repo_type)
            return self._json({"deleted": branch})
        body = self._json_body()
        start = body.get("startingPoint") or "main"
        store.create_branch(repo_id, branch, repo_type=repo_type, from_rev=str(start))
        self._json({"created": branch})

    def _tag(self, repo_type: str, repo_id: str, rev_or_tag: str) -> None:
        self._writable_repo(repo_type, repo_id)
        store = self.hub.store
        if self.command == "DELETE":
            store.delete_tag(repo_id, rev_or_tag, repo_type=repo_type)
            return self._json({"deleted": rev_or_tag})
        body = self._json_body()
        tag = str(body.get("tag") or "")
        store.create_tag(repo_id, tag, repo_type=repo_type, rev=rev_or_tag)
        self._json({"created": tag})

    # ------------------------------------------------------------------ upload
    def _preupload(self, repo_type: str, repo_id: str, rev: str) -> None:
        st, _ = self._writable_repo(repo_type, repo_id)
        body = self._json_body()
        store = self.hub.store
        try:
            c: Commit | None = store.get_commit(store.resolve_state(st, rev))
        except StoreError:
            if self._flag("create_pr"):
                c = None
            else:
                raise
        gitignore = body.get("gitIgnore")
        if not isinstance(gitignore, str) and c is not None and ".gitignore" in c.files:
            entry = c.files[".gitignore"]
            if entry.size <= 1 << 20:
                gitignore = store.blob_path(entry.sha256).read_text("utf-8", errors="replace")
        ignored = meta.gitignore_matcher(gitignore) if isinstance(gitignore, str) else (lambda p: False)
        out = []
        files = body.get("files") or []
        if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
            raise HTTPError(400, "preupload 'files' must be a list of {path, size} objects.")
        for f in files:
            path = str(f.get("path") or "")
            size = f.get("size") or 0
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise HTTPError(400, f"preupload: invalid size for {path[:200]!r}.")
            lfs = is_lfs_policy(path, size)
            existing = c.files.get(path) if c is not None else None
            oid: str | None = None
            if existing is not None:
                oid = existing.sha256 if lfs else (existing.oid if not existing.lfs else None)
            out.append(
                {
                    "path": path,
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": ignored(path),
                    "oid": oid,
                }
            )
        self._json({"files": out, "commitOid": c.id if c else None})

    def _lfs_batch(self, repo_type: str, repo_id: str) -> None:
        """git-lfs batch.  Nothing is revealed about objects in repos the caller cannot read: an upload
        of such an object is answered "needs upload" (its bytes then prove possession), a download of
        an object not in this repo is "does not exist" whether or not some other repo holds it."""
        body = self._json_body()
        op = body.get("operation")
        user: UserSpec | None
        if op == "upload":
            st, user = self._writable_repo(repo_type, repo_id)
        elif op == "download":
            st, user = self._visible_repo(repo_type, repo_id)
        else:
            raise HTTPError(400, f"Unknown LFS operation {str(op)[:50]!r}.")
        raw_objects = body.get("objects") or []
        if not isinstance(raw_objects, list) or not all(isinstance(o, dict) for o in raw_objects):
            raise HTTPError(400, "LFS batch 'objects' must be a list of {oid, size} objects.")
        limit = self.hub.limits.max_lfs_objects
        if len(raw_objects) > limit:
            raise self._too_large("The LFS batch request", limit, "objects; split it into batches")
        base = self._base()
        objects = []
        needs_upload: list[dict[str, Any]] = []
        for obj in raw_objects:
            oid, size = obj.get("oid"), obj.get("size", 0)
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                size = -1
            item: dict[str, Any] = {"oid": str(oid)[:64], "size": max(size, 0)}
            if not is_sha256(oid) or size < 0:
                item["error"] = {"code": 422, "message": "Invalid object: expected a sha256 oid and a size."}
            elif op == "upload":
                if not self.hub.can_read_object(user, str(oid)):
                    needs_upload.append(item)
            else:
                held = self.hub.store.holds(st, str(oid))  # cheap: no history walk for others' oids
                commit = self._commit_with_blob(st, str(oid)) if held else None
                if commit is not None:
                    href = f"{base}/cdn-lfs/{repo_type}/{repo_id}/resolve/{commit}/{oid}"
                    item["actions"] = {"download": {"href": href}}
                else:
                    item["error"] = {"code": 404, "message": "Object does not exist"}
            objects.append(item)
        tickets = self.hub.new_uploads([(i["oid"], i["size"]) for i in needs_upload], st, user)
        for item, ticket in zip(needs_upload, tickets, strict=True):
            item["actions"] = {
                "upload": {"href": f"{base}/lfs-upload/{ticket}", "header": {}},
                "verify": {"href": f"{base}/lfs-verify/{ticket}", "header": {}},
            }
        self._json(
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
            headers={"Content-Type": "application/vnd.git-lfs+json"},
        )

    def _commit_with_blob(self, st: RepoState, sha256: str) -> str | None:
        store = self.hub.store
        branches, tags, prs = store.refs_snapshot(st)
        for head in [*branches.values(), *tags.values(), *prs.values()]:
            for c in store.history(head):
                if any(e.sha256 == sha256 for e in c.files.values()):
                    return c.id
        return None

    def _lfs_upload(self, ticket: str) -> None:
        """PUT the bytes of a negotiated object.  The body is always read and hashed, even when the
        store already has the object: the upload is what proves the uploader has it."""
        up = self.hub.upload_for(ticket)
        if up is None:
            self._drain_small_body()
            raise HTTPError(403, "No LFS upload was negotiated for this URL (use the batch API first).")
        if up.done:  # a retried PUT of an upload already received: accepted, ignored
            self._drain_small_body()
            return self._json({"ok": True})
        try:
            st = self.hub.store.repo(up.repo[1], up.repo[0])
        except RepoNotFound:
            self._drain_small_body()
            raise HTTPError(404, "The repo this upload was negotiated for no longer exists.") from None
        read, length = self._body_reader()
        if length is not None and length != up.size:
            raise HTTPError(400, f"Upload size {length} does not match the announced size {up.size}.")
        try:
            self.hub.store.put_stream(read, up.size, expected_sha256=up.oid)
        except StoreError:
            self.close_connection = True
            raise
        self._read_body()  # consume a chunked terminator, if any
        self.hub.store.add_owner(st, up.oid)
        self.hub.upload_done(up)
        self._json({"ok": True})

    def _lfs_verify(self, ticket: str) -> None:
        """Verify one upload ticket: says only whether that upload (whose oid and size the caller
        announced) was received, never anything about other objects."""
        body = self._json_body()
        up = self.hub.upload_for(ticket)
        if up is None or not up.done or body.get("oid") != up.oid:
            raise HTTPError(404, "No completed LFS upload for this URL and oid.")
        if body.get("size") is not None and body["size"] != up.size:
            raise HTTPError(422, f"The upload has size {up.size}, not {str(body['size'])[:20]}.")
        self._json({"ok": True})

    def _commit(self, repo_type: str, repo_id: str, rev: str) -> None:
        _, user = self._writable_repo(repo_type, repo_id)
        store = self.hub.store
        header: dict[str, Any] = {}
        adds: list[NewFile] = []
        deletes: list[str] = []
        max_ops = self.hub.limits.max_commit_ops
        for n, line in enumerate(self._body_lines()):  # streamed: one operation in memory at a time
            if n > max_ops:  # line 0 is the header
                raise self._too_large("The commit", max_ops, "operations")
            try:
                item = json.loads(line)
            except ValueError:
                raise HTTPError(400, "Commit payload must be NDJSON.")
            if not isinstance(item, dict):
                raise HTTPError(400, "Each NDJSON line must be an object.")
            key = item.get("key")
            value = item.get("value") or {}
            if key == "header":
                header = value
            elif key == "file":
                path = check_path(str(value.get("path") or ""))
                if value.get("encoding", "base64") != "base64":
                    raise HTTPError(400, "Only base64 encoding is supported for inline files.")
                adds.append(store.put_inline(path, str(value.get("content") or "")))
            elif key == "lfsFile":
                path = check_path(str(value.get("path") or ""))
                oid = str(value.get("oid") or "")[:64]
                if not self.hub.can_read_object(user, oid):
                    # Same answer whether the object is absent or held only by repos the committer
                    # cannot read: a commit cannot be used to learn of, or to take, someone's object.
                    raise HTTPError(
                        422,
                        f"LFS object {oid} for {path!r} was not uploaded to this repo (or to a repo you can "
                        "read); upload its content first (LFS batch + upload).",
                    )
                size = store.blob_size(oid)
                if value.get("size") is not None and int(value["size"]) != size:
                    raise HTTPError(422, f"LFS object {oid} has size {size}, not {value['size']}.")
                adds.append(NewFile(path, oid, size, None, lfs=True))
            elif key in ("deletedFile", "deletedFolder"):
                deletes.append(check_path(str(value.get("path") or "").strip("/")))
            else:
                raise HTTPError(400, f"Unknown commit operation {key!r}.")
        summary = str(header.get("summary") or "")
        title, _, rest = summary.partition("\n")
        description = "\n\n".join(
            x for x in (rest.strip(), str(header.get("description") or "").strip()) if x
        )
        create_pr = self._flag("create_pr")
        sha, pr = store.apply_commit(
            repo_id,
            repo_type,
            rev,
            adds,
            deletes,
            parent=header.get("parentCommit") or None,
            title=title.strip(),
            description=description,
            author=user.name,
            create_pr=create_pr,
        )
        url = self._repo_url(repo_type, repo_id)
        self._json(
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{url}/commit/{sha}",
                "pullRequestUrl": f"{url}/discussions/{pr}" if pr is not None and create_pr else None,
            }
        )

    # ------------------------------------------------------------------ download
    def _resolve(self, repo_type: str, repo_id: str, rev: str, path: str) -> None:
        st, user = self._visible_repo(repo_type, repo_id)
        if st.gated and user is None and not self.hub.open_mode:
            raise HTTPError(401, f"Access to {repo_id} is restricted: log in to access it.", "GatedRepo")
        store = self.hub.store
        sha = store.resolve_state(st, rev)
        c = store.get_commit(sha)
        e = c.files.get(path)
        if e is None:
            raise EntryNotFound(f"Entry not found: {path!r} in {repo_id}@{rev}.", sha)
        head = {"X-Repo-Commit": sha, "ETag": f'"{e.oid}"', "Vary": "Origin, Accept-Encoding"}
        if e.lfs:
            head["X-Linked-Etag"] = f'"{e.sha256}"'
            head["X-Linked-Size"] = str(e.size)
            head.update(xet_routes.resolve_headers(self, repo_type, repo_id, sha, e.sha256))
            if self.hub.lfs_redirect:
                loc = f"{self._base()}/cdn-lfs/{repo_type}/{repo_id}/resolve/{sha}/{e.sha256}"
                head["Location"] = loc
                self._random_fault(body=False)
                return self._send_bytes(302, b"", head)
        drawn = self._random_fault(body=self.command == "GET")  # before counting: a 429/5xx is no download
        if self.command == "GET":
            store.record_download(st)
        if not (e.lfs and not st.mirrored and xet_routes.send_file(self, e.sha256, e.size, e.etag, head)):
            self._send_file(self._file_path(st, sha, e), e.size, e.etag, head, drawn)

    def _cdn_blob(self, repo_type: str, repo_id: str, commit: str, sha256: str) -> None:
        if repo_type not in _PREFIX:
            raise HTTPError(404, "Not found")
        st, user = self._visible_repo(repo_type, repo_id)
        if st.gated and user is None and not self.hub.open_mode:
            raise HTTPError(401, f"Access to {repo_id} is restricted: log in to access it.", "GatedRepo")
        store = self.hub.store
        # The blob must belong to that commit of that repo: authorisation is per repo, not per blob.
        e = None
        if commit in st.commits:
            e = next((e for e in store.get_commit(commit).files.values() if e.sha256 == sha256), None)
        if e is None:
            raise HTTPError(404, "Blob not found in this repo.", "EntryNotFound")
        size = e.size
        head = {"ETag": f'"{sha256}"', "X-Linked-Size": str(size), "X-Repo-Commit": commit}
        head.update(xet_routes.resolve_headers(self, repo_type, repo_id, commit, sha256))
        drawn = self._random_fault(body=self.command == "GET")
        if self.command == "GET":
            store.record_download(st)
        if st.mirrored or not xet_routes.send_file(self, sha256, size, sha256, head):
            self._send_file(self._file_path(st, commit, e), size, sha256, head, drawn)

    def _file_path(self, st: RepoState, commit: str, e: FileEntry) -> Path:
        """Where the contents of ``e`` are (for a mirrored repo: fetched from the upstream first;
        not needed for a HEAD)."""
        if st.mirrored:
            from batuta_sync.server import mirror

            return mirror.file_path(self.hub, st, commit, e, fetch=self.command == "GET")
        return self.hub.store.blob_path(e.sha256)

    def _parse_range(self, size: int, etag: str) -> tuple[int, int] | None:
        rng = self.headers.get("Range")
        if not rng or size == 0:
            return None
        if self.hub.faults.ignore_range and self.hub.faults.applies(self.raw_path):
            self.hub.faults.count("ignore_range")
            return None
        if_range = self.headers.get("If-Range")
        if if_range and _norm_etag(if_range) != etag:
            return None
        unit, _, spec = rng.partition("=")
        if unit.strip().lower() != "bytes" or "," in spec:
            return None
        first, _, last = spec.strip().partition("-")
        try:
            if first == "":
                n = int(last)
                if n <= 0:
                    raise ValueError
                start, end = max(0, size - n), size - 1
            else:
                start = int(first)
                end = int(last) if last else size - 1
                end = min(end, size - 1)
        except ValueError:
            return None
        if start >= size or start > end:
            raise HTTPError(
                416, "Requested range not satisfiable.", None, {"Content-Range": f"bytes */{size}"}
            )
        return start, end

    def _send_file(
        self, fs_path: Path, size: int, etag: str, headers: Mapping[str, str], drawn: FaultDraw | None = None
    ) -> None:
        """Send a file (or the requested range); ``drawn``: a random body fault drawn for this request."""
        h = dict(headers)
        h["Accept-Ranges"] = "bytes"
        h["Content-Type"] = "application/octet-stream"
        h["Last-Modified"] = formatdate(usegmt=True)
        rng = self._parse_range(size, etag)
        status = 200
        start, length = 0, size
        if rng is not None:
            status = 206
            start, length = rng[0], rng[1] - rng[0] + 1
            h["Content-Range"] = f"bytes {rng[0]}-{rng[1]}/{size}"
        if self.command == "HEAD":
            return self._send_head(status, h, length)
        fault = None
        if self.hub.faults.applies(self.raw_path):
            fault = self.hub.faults.take_body_fault(length, drawn)
        with open(fs_path, "rb") as f:
            self._send_head(status, h, length, expected_out=length if fault is None else fault.send)
            if fault is None:
                sent = self.connection.sendfile(f, offset=start, count=length) if length else 0
                self.bytes_out += sent
                if sent != length:
                    self.close_connection = True
                return
            flip_at = -1 if fault.flip_at is None else fault.flip_at
            f.seek(start)
            pos = 0
            for chunk in _chunks(f, fault.send):
                if 0 <= flip_at - pos < len(chunk):
                    b = bytearray(chunk)
                    b[flip_at - pos] ^= 0xFF
                    chunk = bytes(b)
                self.wfile.write(chunk)
                pos += len(chunk)
                self.bytes_out += len(chunk)
            if fault.send < length:
                self.close_connection = True
                try:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


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


def _html(text: str) -> str:
    import html

    return html.escape(text)


def _chunks(f: Any, limit: int) -> Iterator[bytes]:
    left = limit
    while left > 0:
        chunk = f.read(min(_CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)
        yield chunk


__all__ = ["HTTPError", "HubServer", "check_public_url", "is_loopback", "ndjson_lines"]
