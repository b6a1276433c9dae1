"""A hostile Hub of our own (issue 13): a small ``http.server`` on 127.0.0.1 whose every answer
is configurable per route, so a test can serve each class of bad answer the real Hub never
sends: path-traversal or absolute ETags / LFS oids / commit shas in JSON and in headers,
absolute or ``..`` file names, names that collide, lying sizes, bodies that do not match.

It speaks just enough of the Hub API for ``batuta hf pull``, ``plan``/``apply``/``status``
and the real ``huggingface_hub`` client:

* ``GET /api/{models|datasets|spaces}/{id}[/revision/{rev}]`` -> ``{"id", "sha", "siblings"}``
* ``GET /api/{T}/{id}/tree/{rev}[/…]`` -> the repo's ``tree`` entries
* ``GET|HEAD /[datasets/|spaces/]{id}/resolve/{rev}/{path}`` -> the body, with ``Range`` and
  the configured headers (``ETag``, ``X-Repo-Commit``, ``X-Linked-Etag``…)

Everything else is a 404.  Request counts are bounded (``max_requests``): a client stuck in a
loop ends with 429/404 answers and the test sees it.  Start/stop it as a context manager.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

LFS_EXTS = (".safetensors", ".gguf", ".bin")


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class HostileRepo:
    """What the hostile Hub answers for one repo.  Every field is sent as is (any JSON value)."""

    sha: Any = "c" * 40
    siblings: list[Any] | None = None  # None: derived from ``bodies`` (honest)
    tree: list[Any] | None = None  # None: derived from ``bodies`` (honest)
    bodies: dict[str, bytes] = field(default_factory=dict)  # path -> content served at resolve/
    headers: dict[str, str] = field(default_factory=dict)  # extra headers on resolve/ answers
    info_extra: dict[str, Any] = field(default_factory=dict)


def honest_siblings(bodies: Mapping[str, bytes]) -> list[dict[str, Any]]:
    """Siblings as the real Hub lists them (``?blobs=true``): blob id, size, LFS oid for weights."""
    out: list[dict[str, Any]] = []
    for path, data in sorted(bodies.items()):
        s: dict[str, Any] = {"rfilename": path, "size": len(data), "blobId": git_sha1(data)}
        if path.endswith(LFS_EXTS):
            s["lfs"] = {"sha256": sha256(data), "size": len(data), "pointerSize": 134}
        out.append(s)
    return out


def honest_tree(bodies: Mapping[str, bytes]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for s in honest_siblings(bodies):
        e: dict[str, Any] = {"type": "file", "path": s["rfilename"], "size": s["size"], "oid": s["blobId"]}
        if "lfs" in s:
            e["lfs"] = {"oid": s["lfs"]["sha256"], "size": s["size"], "pointerSize": 134}
        out.append(e)
    return out


_API = re.compile(r"^/api/(models|datasets|spaces)/(?P<rest>.+)$")
_RESOLVE = re.compile(r"^/(?:(?:datasets|spaces)/)?(?P<id>[^/]+(?:/[^/]+)?)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # a client hanging up is normal
        pass


class HostileHub:
    """The server.  ``repos[repo_id]`` says what to answer; ``log`` records (method, path)."""

    def __init__(self, *, max_requests: int = 400) -> None:
        self.repos: dict[str, HostileRepo] = {}
        self.log: list[tuple[str, str]] = []
        self.ranges: list[str | None] = []  # the Range header of each file request
        # raw overrides, tried first: (method, compiled path regex, handler writing its own answer)
        # — for answers no JSON can express (endless or trickling bodies, bombs, odd status lines)
        self.routes: list[tuple[str, re.Pattern[str], Callable[[BaseHTTPRequestHandler], None]]] = []
        self.max_requests = max_requests
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ setup

    def route(self, method: str, pattern: str, handler: Callable[[BaseHTTPRequestHandler], None]) -> None:
        """Answer ``method`` requests whose path matches ``pattern`` with ``handler(request)``."""
        self.routes.append((method.upper(), re.compile(pattern), handler))

    def repo(self, repo_id: str, bodies: Mapping[str, bytes] | None = None, **kw: Any) -> HostileRepo:
        r = HostileRepo(bodies=dict(bodies or {}), **kw)
        self.repos[repo_id] = r
        return r

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> HostileHub:
        self._httpd = _Server(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> HostileHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ answers

    def _find(self, rest: str) -> tuple[str, HostileRepo, str] | None:
        """(repo id, repo, what follows the id) for an API path after ``/api/{T}/``."""
        for rid in sorted(self.repos, key=len, reverse=True):
            if rest == rid or rest.startswith(rid + "/"):
                return rid, self.repos[rid], rest[len(rid) :]
        return None

    def answer_api(self, path: str) -> tuple[int, Any]:
        m = _API.match(path)
        found = self._find(m.group("rest")) if m else None
        if found is None:
            return 404, {"error": "Repository not found"}
        rid, repo, tail = found
        if tail.startswith("/tree/"):
            return 200, repo.tree if repo.tree is not None else honest_tree(repo.bodies)
        if tail == "" or tail.startswith("/revision/"):
            sib = repo.siblings if repo.siblings is not None else honest_siblings(repo.bodies)
            return 200, {"id": rid, "modelId": rid, "sha": repo.sha, "siblings": sib, **repo.info_extra}
        return 404, {"error": "Entry not found"}

    def answer_file(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        m = _RESOLVE.match(path)
        repo = self.repos.get(m.group("id")) if m else None
        if m is None or repo is None:
            return 404, b'{"error": "Repository not found"}', {}
        name = unquote(m.group("path"))
        if name not in repo.bodies:
            return 404, b'{"error": "Entry not found"}', {"X-Error-Code": "EntryNotFound"}
        data = repo.bodies[name]
        sha = repo.sha if isinstance(repo.sha, str) else ""
        headers = {"ETag": f'"{git_sha1(data)}"', "X-Repo-Commit": sha, **repo.headers}
        return 200, data, headers


def _handler(hub: HostileHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes, headers: Mapping[str, str], *, head: bool = False) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _over(self) -> bool:
            with hub._lock:
                hub.log.append((self.command, self.path))
                over = len(hub.log) > hub.max_requests
            if over:
                self._send(429, b'{"error": "too many requests (hostile hub limit)"}', {"Retry-After": "0"})
            return over

        def _serve(self, head: bool) -> None:
            if self._over():
                return
            path = urlsplit(self.path).path
            for method, pattern, handler in hub.routes:
                if method == self.command and pattern.search(path):
                    handler(self)
                    return
            if path.startswith("/api/"):
                status, obj = hub.answer_api(path)
                self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json"}, head=head)
                return
            status, data, headers = hub.answer_file(path)
            rng = self.headers.get("Range")
            with hub._lock:
                hub.ranges.append(rng)
            m = re.fullmatch(r"bytes=(\d+)-", rng or "")
            if status == 200 and m and int(m.group(1)) < len(data):
                start = int(m.group(1))
                headers = {**headers, "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
                self._send(206, data[start:], headers, head=head)
                return
            self._send(status, data, headers, head=head)

        def do_GET(self) -> None:
            self._serve(False)

        def do_HEAD(self) -> None:
            self._serve(True)

    return Handler
