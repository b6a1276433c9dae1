"""Request plumbing every handler area shares: dispatch (fault injection, logging, the error answer),
request bodies (plain, chunked, NDJSON, JSON; bounded), responses, and the repo access checks."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import parse_qs, urlencode

from batuta_sync.server import web
from batuta_sync.server.protocol import CHUNK, HOST_RE, LOCAL, PREFIX, HTTPError, ndjson_lines
from batuta_sync.server.state import FaultDraw, LogEntry, UserSpec
from batuta_sync.server.store import (
    EntryNotFound,
    RepoNotFound,
    RepoState,
    StoreError,
)
from batuta_sync.server.xet.errors import XetError

if TYPE_CHECKING:
    from batuta_sync.server.app import HubServer, _Server

_DRAIN_ON_ERROR = 8 << 20  # unread request bytes discarded so the client can read an early error


class BaseHandler(BaseHTTPRequestHandler):
    """The request/response helpers; the areas' handlers subclass it, ``app._Handler`` joins them."""

    protocol_version = "HTTP/1.1"
    server_version = "batuta-hub/1"
    sys_version = ""
    timeout = 120
    server: _Server

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
            while left > 0 and (chunk := read(min(CHUNK, left))):
                left -= len(chunk)
        except (HTTPError, OSError):
            self.close_connection = True

    def _body_reader(self) -> tuple[Callable[[int], bytes], int | None]:
        """A read(n) function over the request body and its length (None = chunked); one per request."""
        if self.reader is None:
            self.reader = self._new_body_reader()
        return self.reader

    def _new_body_reader(self) -> tuple[Callable[[int], bytes], int | None]:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            return self._chunked_reader(), None
        try:
            length = int((self.headers.get("Content-Length") or "0").strip())
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise HTTPError(400, "Invalid Content-Length header.")
        return self._plain_reader(length), length

    def _chunked_reader(self) -> Callable[[int], bytes]:
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

        return read_chunked

    def _plain_reader(self, length: int) -> Callable[[int], bytes]:
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

        return read_plain

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
        while chunk := read(CHUNK):
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
            while chunk := read(CHUNK):
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

    def _base(self) -> str:
        """The base of absolute URLs: the configured public URL, else the ``Host`` header when it is
        a plain ``host[:port]``, else the bound address (a hostile Host cannot inject into links)."""
        if self.hub.public_url:
            return self.hub.public_url
        host = (self.headers.get("Host") or "").strip()
        return f"http://{host}" if HOST_RE.match(host) else self.hub.url

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
        return st, user or LOCAL

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

    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        return f"{self._base()}/{PREFIX[repo_type]}{repo_id}"

    def _route(self) -> None:
        raise NotImplementedError  # app._Handler routes (server/routes.py)
