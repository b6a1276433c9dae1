"""The HTTP side of the local Hub: a threaded HTTP/1.1 server speaking the Hub API.

Stdlib only (``http.server`` + ``os.sendfile`` for file bodies).  This module holds the server
(:class:`HubServer`: lifecycle, users and permissions, LFS upload tickets) and joins the request
handlers: ``server/routes.py`` is the route table (on the RAW request path, so that ``refs%2Fpr%2F1``
stays one segment), ``server/handlers/`` one module an area (``base`` plumbing, ``control``,
``auth``, ``repos``, ``info``, ``tree``, ``commit``, ``lfs``, ``resolve``); the wire-level helpers
are in ``server/protocol.py``.  See docs/hub-server.md for the endpoint list.
"""

from __future__ import annotations

import hmac
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batuta_sync.server import routes
from batuta_sync.server.handlers.auth import AuthHandlers
from batuta_sync.server.handlers.commit import CommitHandlers
from batuta_sync.server.handlers.control import ControlHandlers
from batuta_sync.server.handlers.info import InfoHandlers
from batuta_sync.server.handlers.lfs import LfsHandlers
from batuta_sync.server.handlers.repos import RepoHandlers
from batuta_sync.server.handlers.resolve import ResolveHandlers
from batuta_sync.server.handlers.tree import TreeHandlers
from batuta_sync.server.protocol import LOCAL, HTTPError, check_public_url, is_loopback, ndjson_lines
from batuta_sync.server.state import Faults, Limits, RequestLog, UserSpec
from batuta_sync.server.store import RepoState, Store
from batuta_sync.server.xet.cas import XetStore

if TYPE_CHECKING:
    from batuta_sync.server.mirror import Mirror, MirrorConfig

_TICKET_RE = re.compile(r"\A[A-Za-z0-9_-]{20,64}\Z")


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

    def collect_garbage(self, grace: float | None = None) -> Any:
        """Remove Xet objects no repo can reach any more (deleted repos, abandoned uploads) older
        than ``grace`` seconds (default 24 h); run before serving, while nothing uploads."""
        from batuta_sync.server.xet.cas import DEFAULT_GC_GRACE

        return self.xet.collect(self.store.committed_sha256(), grace=DEFAULT_GC_GRACE if grace is None else grace)

    def _bind(self) -> _Server:
        if self._httpd is None:
            self.collect_garbage()
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
            return LOCAL
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


class _Handler(
    ControlHandlers,
    AuthHandlers,
    RepoHandlers,
    InfoHandlers,
    TreeHandlers,
    CommitHandlers,
    LfsHandlers,
    ResolveHandlers,
):
    """One request: the areas' handlers joined, routed by the table in ``server/routes.py``."""

    def _route(self) -> None:
        routes.route(self)


__all__ = ["HTTPError", "HubServer", "check_public_url", "is_loopback", "ndjson_lines"]
