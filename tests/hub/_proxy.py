"""A small HTTP proxy on 127.0.0.1 for the proxy tests (issue 15 point 1): CONNECT tunnels and
plain absolute-URI forwarding, one request per client connection (it answers ``Connection: close``).

The proxy is the only one that can reach the Hub: the Hub is addressed by a host name that does
not resolve (``hub.test``), which the proxy maps to 127.0.0.1 (``resolve``).  So a download that
works went through the proxy, and one that bypasses it cannot even look the name up.

It records every request head it receives (``proxy.seen``: method, target, headers) and can
demand credentials (``require_auth``: ``Proxy-Authorization`` value, else 407).  Bounds: every
socket has a 10 s timeout, a head is at most 64 KiB, ``stop()`` closes every socket and joins
every thread.  :class:`TLSFront` terminates TLS for ``hub.test`` in front of a plain Hub, so an
``https://`` endpoint can be tunnelled through CONNECT.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

HEAD_LIMIT = 64 * 1024
TIMEOUT = 10.0


@dataclass(frozen=True)
class Seen:
    method: str
    target: str
    headers: dict[str, str]


def _read_head(conn: socket.socket) -> tuple[bytes, bytes] | None:
    """(head without the blank line, bytes already read past it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk or len(data) > HEAD_LIMIT:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _parse(head: bytes) -> tuple[str, str, list[tuple[str, str]]]:
    line, *rest = head.decode("latin-1").split("\r\n")
    method, target, _version = line.split(" ", 2)
    headers = [(k.strip(), v.strip()) for k, _, v in (h.partition(":") for h in rest)]
    return method, target, headers


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@dataclass
class _Server:
    """Accept loop + per-connection threads, all stopped by :meth:`stop`."""

    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._srv = socket.create_server(("127.0.0.1", 0))
        self._srv.settimeout(0.2)
        self.port = self._srv.getsockname()[1]
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> _Server:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def track(self, s: socket.socket) -> socket.socket:
        s.settimeout(TIMEOUT)
        with self._lock:
            self._socks.append(s)
        return s

    def spawn(self, target: object, *args: object) -> threading.Thread:
        t = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(t)
        t.start()
        return t

    def stop(self) -> None:
        self._stopping.set()
        self._acceptor.join(timeout=5)
        with self._lock:
            socks, threads = list(self._socks), list(self._threads)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        for t in threads:
            t.join(timeout=5)
        self._srv.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.spawn(self._handle_safely, self.track(conn))

    def _handle_safely(self, conn: socket.socket) -> None:
        try:
            self.handle(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def handle(self, conn: socket.socket) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class HttpProxy(_Server):
    """CONNECT + absolute-URI forwarding; ``resolve`` maps host names to addresses."""

    def __init__(self, resolve: dict[str, str], *, require_auth: str | None = None) -> None:
        super().__init__()
        self.resolve = resolve
        self.require_auth = require_auth
        self.url = f"http://127.0.0.1:{self.port}"

    def _upstream(self, host: str, port: int) -> socket.socket:
        addr = self.resolve.get(host.lower())
        if addr is None:
            raise OSError(f"proxy: unknown host {host}")
        return self.track(socket.create_connection((addr, port), timeout=TIMEOUT))

    def handle(self, conn: socket.socket) -> None:
        got = _read_head(conn)
        if got is None:
            return
        head, rest = got
        method, target, headers = _parse(head)
        self.seen.append(Seen(method, target, {k.lower(): v for k, v in headers}))
        if self.require_auth is not None and dict((k.lower(), v) for k, v in headers).get("proxy-authorization") != self.require_auth:
            conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            try:
                up = self._upstream(host, int(port))
            except OSError:
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                up.sendall(rest)
            t = self.spawn(_pipe, conn, up)
            _pipe(up, conn)
            t.join(TIMEOUT)
            return
        parts = urlsplit(target)
        if parts.scheme != "http" or not parts.hostname:  # origin-form: we are not a web server
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        up = self._upstream(parts.hostname, parts.port or 80)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        keep = [(k, v) for k, v in headers if k.lower() not in ("connection", "proxy-authorization", "proxy-connection")]
        lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in keep), "Connection: close"]
        up.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + rest)
        t = self.spawn(_pipe, conn, up)  # the request body, if any
        answer = _read_head(up)
        if answer is not None:
            rhead, rrest = answer
            rlines = [ln for ln in rhead.decode("latin-1").split("\r\n") if not ln.lower().startswith("connection:")]
            conn.sendall(("\r\n".join([*rlines, "Connection: close"]) + "\r\n\r\n").encode("latin-1") + rrest)
            _pipe(up, conn)
        up.close()
        t.join(TIMEOUT)


class TLSFront(_Server):
    """TLS for ``hostname`` on 127.0.0.1, forwarding the plaintext to ``backend`` (host, port)."""

    def __init__(self, backend: tuple[str, int], cert: Path, key: Path) -> None:
        super().__init__()
        self.backend = backend
        self._ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ctx.load_cert_chain(cert, key)

    def handle(self, conn: socket.socket) -> None:
        tls = self._ctx.wrap_socket(conn, server_side=True)
        self.track(tls)
        up = self.track(socket.create_connection(self.backend, timeout=TIMEOUT))
        t = self.spawn(_pipe, tls, up)
        _pipe(up, tls)
        t.join(TIMEOUT)


def self_signed(dirpath: Path, hostname: str) -> tuple[Path, Path]:
    """A self-signed certificate + key for ``hostname`` (PEM files), made with ``cryptography``."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = dirpath / "cert.pem", dirpath / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path
