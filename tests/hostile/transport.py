"""Hostile HTTP peers on raw sockets (issue 13 point 6, issue 14 "fail fast").

Each :class:`Peer` listens on 127.0.0.1, reads one request head per connection (bounded) and
hands the socket to a *behaviour*, a function that answers as an attacker or a broken network
would, below what ``http.server`` lets one write:

* :func:`endless_json` — a JSON array that never ends (no Content-Length, chunked);
* :func:`bomb` — a small gzip / deflate body that inflates to hundreds of MiB;
* :func:`encoded` — a body with a Content-Encoding batuta never asked for (``br``);
* :func:`trickle` — headers at once, then one byte every ``interval`` seconds;
* :func:`self_link` / :func:`link_chain` — pagination whose ``Link: rel=next`` loops or never ends;
* :func:`silent` — accepts, reads the request, never answers;
* :func:`endless_headers` — a status line, then header lines forever;
* :func:`redirect` — a 302 to another peer (for "the token never leaves the endpoint's origin");
* :func:`record_ok` — a 200 with a small body (the redirect target).

Every peer records the request heads it saw (``peer.requests``).  Bounds: each behaviour
stops after ``MAX_BYTES`` or when the client hangs up; ``stop()`` closes every socket and
joins every thread (with a timeout).  Use a peer as a context manager.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

MAX_BYTES = 1 << 30  # no behaviour sends more than this on one connection
HEAD_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: dict[str, str]


Behaviour = Callable[[socket.socket, Request, "Peer"], None]


@dataclass
class Peer:
    """A raw-socket HTTP/1.1 peer on 127.0.0.1 answering every request with ``behaviour``."""

    behaviour: Behaviour
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._srv = socket.create_server(("127.0.0.1", 0))
        self._srv.settimeout(0.2)
        self.port = self._srv.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept, name="hostile-peer", daemon=True)

    def __enter__(self) -> Peer:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self._acceptor.join(timeout=5)
        for t in list(self._threads):
            t.join(timeout=5)
        self._srv.close()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _addr = self._srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            while not self.stopping.is_set():
                req = _read_head(conn)
                if req is None:
                    return
                self.requests.append(req)
                self.behaviour(conn, req, self)
        except OSError:
            return
        finally:
            conn.close()


def _read_head(conn: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk or len(data) > HEAD_LIMIT:
            return None
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    line, *rest = head.split("\r\n")
    method, target, _version = line.split(" ", 2)
    headers = {}
    for h in rest:
        k, _, v = h.partition(":")
        headers[k.strip().lower()] = v.strip()
    return Request(method, target, headers)


def _head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


# --------------------------------------------------------------------------- behaviours


def endless_json(conn: socket.socket, req: Request, peer: Peer) -> None:
    """``[{"id": "x/0"}, {"id": "x/1"}, …`` forever (chunked), until the client hangs up."""
    conn.sendall(_head("200 OK", {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}))
    item = b'{"id": "acme/model", "downloads": 1, "padding": "' + b"x" * 4000 + b'"},'
    block = _chunk(b"[" + item * 16)
    sent = 0
    while sent < MAX_BYTES and not peer.stopping.is_set():
        conn.sendall(block)
        sent += len(block)
        block = _chunk(item * 16)
    raise OSError("enough")


@cache
def bomb_body(coding: str, inflated: int = 256 << 20) -> bytes:
    """``inflated`` bytes of JSON-looking zeros, compressed with ``coding`` (gzip, deflate, raw-deflate)."""
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS, "raw-deflate": -zlib.MAX_WBITS}[coding]
    z = zlib.compressobj(9, zlib.DEFLATED, wbits)
    parts = [z.compress(b"[" + b" " * ((1 << 20) - 1))]
    zeros = b" " * (1 << 20)
    parts += [z.compress(zeros) for _ in range(inflated >> 20)]
    parts.append(z.compress(b"]") + z.flush())
    return b"".join(parts)


def bomb(coding: str) -> Behaviour:
    """A small body with Content-Encoding ``gzip``/``deflate`` that inflates to 256 MiB."""
    body = bomb_body(coding)
    header = "deflate" if coding == "raw-deflate" else coding

    def behave(conn: socket.socket, req: Request, peer: Peer) -> None:
        conn.sendall(
            _head(
                "200 OK",
                {"Content-Type": "application/json", "Content-Encoding": header, "Content-Length": str(len(body))},
            )
            + body
        )

    return behave


def encoded(coding: str, body: bytes = b"\x1b\x00\x00") -> Behaviour:
    """A body labelled with a Content-Encoding batuta did not ask for."""

    def behave(conn: socket.socket, req: Request, peer: Peer) -> None:
        conn.sendall(
            _head("200 OK", {"Content-Encoding": coding, "Content-Length": str(len(body))}) + body
        )

    return behave


def trickle(interval: float, *, length: int = 10 << 20, content_type: str = "application/json") -> Behaviour:
    """Headers at once (a ``length`` byte body announced), then one byte every ``interval`` s."""

    def behave(conn: socket.socket, req: Request, peer: Peer) -> None:
        conn.sendall(
            _head("200 OK", {"Content-Type": content_type, "Content-Length": str(length), "ETag": '"e"'})
        )
        for _ in range(length):
            if peer.stopping.wait(interval):
                break
            conn.sendall(b" ")
        raise OSError("done")

    return behave


def self_link(conn: socket.socket, req: Request, peer: Peer) -> None:
    """One page of a listing whose ``Link: rel=next`` is the page itself."""
    body = json.dumps([{"id": "acme/a"}]).encode()
    link = f'<{peer.url}{req.target}>; rel="next"'
    conn.sendall(
        _head("200 OK", {"Content-Type": "application/json", "Content-Length": str(len(body)), "Link": link}) + body
    )


def link_chain(*, cycle: int | None = None) -> Behaviour:
    """Page ``n`` links to page ``n+1`` (forever), or back to page 0 after ``cycle`` pages."""

    def behave(conn: socket.socket, req: Request, peer: Peer) -> None:
        n = int(req.target.rsplit("page=", 1)[1]) if "page=" in req.target else 0
        nxt = (n + 1) if cycle is None or n + 1 < cycle else 0
        body = json.dumps([{"id": f"acme/m{n}"}]).encode()
        link = f'</api/models?page={nxt}>; rel="next"'
        conn.sendall(
            _head("200 OK", {"Content-Type": "application/json", "Content-Length": str(len(body)), "Link": link})
            + body
        )

    return behave


def silent(conn: socket.socket, req: Request, peer: Peer) -> None:
    """Accept, read the request, never answer (until the client gives up or the peer stops)."""
    conn.settimeout(0.2)
    while not peer.stopping.is_set():
        try:
            if not conn.recv(4096):
                break
        except TimeoutError:
            continue
    raise OSError("client gone")


def endless_headers(conn: socket.socket, req: Request, peer: Peer) -> None:
    """``HTTP/1.1 200 OK`` and then ``X-Pad: …`` header lines, never the blank line."""
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    line = b"X-Pad: " + b"p" * 1000 + b"\r\n"
    sent = 0
    while sent < MAX_BYTES and not peer.stopping.is_set():
        conn.sendall(line * 64)
        sent += len(line) * 64
    raise OSError("enough")


def redirect(to: str) -> Behaviour:
    """``302 Location: <to><same path>``."""

    def behave(conn: socket.socket, req: Request, peer: Peer) -> None:
        conn.sendall(_head("302 Found", {"Location": to + req.target, "Content-Length": "0"}))

    return behave


def record_ok(body: bytes = b'{"id": "acme/model", "sha": "' + b"a" * 40 + b'"}') -> Behaviour:
    """A plain 200 with ``body`` (JSON by default)."""

    def behave(conn: socket.socket, req: Request, peer: Peer) -> None:
        conn.sendall(
            _head("200 OK", {"Content-Type": "application/json", "Content-Length": str(len(body)), "ETag": '"e"'})
            + body
        )

    return behave


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``cond`` up to ``timeout`` s (for counting what a peer saw after the client returned)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()
