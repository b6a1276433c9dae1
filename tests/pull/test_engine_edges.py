"""Downloader edge cases against a deliberately misbehaving stdlib HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from batuta_sync.errors import AuthError, NetworkError, NotFoundError, RateLimitedError
from batuta_sync.hub.cache import CacheLayout
from batuta_sync.hub.download import Downloader, DownloadJob, _content_range, resolve_url
from batuta_sync.settings import resolve_settings
from batuta_sync.types import RepoFile, RepoRef

DATA = bytes(range(256)) * 400  # 102400 bytes
SHA = hashlib.sha256(DATA).hexdigest()
COMMIT = "c" * 40


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    mode: ClassVar[dict[str, Any]] = {}
    seen: ClassVar[list[tuple[str, str | None, str | None]]] = []

    def log_message(self, *a: object) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        rng = self.headers.get("Range")
        self.seen.append((self.path, rng, self.headers.get("Authorization")))
        mode = self.mode.get("kind")
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        if self.path.startswith("/elsewhere/") or mode == "plain":
            if rng:
                return self._send(
                    206, DATA[start:], {"Content-Range": f"bytes {start}-{len(DATA) - 1}/{len(DATA)}"}
                )
            return self._send(200, DATA)
        if mode == "redirect":
            return self._send(
                302, b"", {"Location": f"http://127.0.0.1:{self.mode['other_port']}/elsewhere/blob"}
            )
        if mode == "wrong-range":
            if rng:  # claims a range that does not start where asked
                return self._send(206, DATA[:100], {"Content-Range": f"bytes 0-99/{len(DATA)}"})
            return self._send(200, DATA)
        if mode == "416":
            if rng:
                return self._send(416, b"", {"Content-Range": f"bytes */{len(DATA)}"})
            return self._send(200, DATA)
        if mode == "short":  # always promises the whole rest, sends 4 bytes, hangs up
            body = DATA[start:] if self.mode.get("honour") else DATA
            status = 206 if (rng and self.mode.get("honour")) else 200
            self.send_response(status)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(DATA) - 1}/{len(DATA)}")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body[:4])
            self.close_connection = True
            return None
        if mode == "longer":
            return self._send(200, DATA + b"extra")
        if mode == "status":
            return self._send(self.mode["status"], b'{"error": "nope"}', self.mode.get("headers", {}))
        return self._send(500, b"unknown mode")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


@pytest.fixture
def server() -> Iterator[tuple[str, type[Handler]]]:
    handler = type("H", (Handler,), {"mode": {}, "seen": []})
    srv = _Server(("127.0.0.1", 0), handler)
    other = _Server(("127.0.0.1", 0), handler)
    handler.mode["other_port"] = other.server_address[1]
    threads = [threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True) for s in (srv, other)]
    for t in threads:
        t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", handler
    finally:
        for s in (srv, other):
            s.shutdown()
            s.server_close()


def job(tmp_path: Path, size: int = len(DATA)) -> DownloadJob:
    ref = RepoRef("org/edge")
    return DownloadJob(
        ref, COMMIT, RepoFile("w.safetensors", size, "0" * 40, SHA), CacheLayout.of(tmp_path / "hub", ref)
    )


def dl(url: str, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> Downloader:
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_TOKEN", "tok-secret-abcdef")
    return Downloader(resolve_settings(), sleep=lambda s: None, **kw)


def test_cross_origin_redirect_drops_the_token(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, h = server
    h.mode["kind"] = "redirect"
    j = job(tmp_path)
    out = dl(url, monkeypatch).fetch(j)
    assert not out.cached and j.layout.blob_path(SHA).read_bytes() == DATA
    assert (
        h.seen[0][2] == "Bearer tok-secret-abcdef"
        and h.seen[1][0] == "/elsewhere/blob"
        and h.seen[1][2] is None
    )


def test_range_answer_from_the_wrong_offset_restarts(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, h = server
    h.mode["kind"] = "wrong-range"
    j = job(tmp_path)
    j.layout.blobs_dir.mkdir(parents=True)
    j.layout.incomplete_path(SHA).write_bytes(DATA[:5000])
    dl(url, monkeypatch).fetch(j)
    assert j.layout.blob_path(SHA).read_bytes() == DATA
    assert [r for _, r, _ in h.seen] == ["bytes=5000-", None]


def test_416_on_a_complete_partial_and_on_a_bad_one(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, h = server
    h.mode["kind"] = "416"
    j = job(tmp_path)
    j.layout.blobs_dir.mkdir(parents=True)
    j.layout.incomplete_path(SHA).write_bytes(DATA[:100])
    dl(url, monkeypatch).fetch(j)
    assert j.layout.blob_path(SHA).read_bytes() == DATA
    assert [r for _, r, _ in h.seen] == ["bytes=100-", None]


def test_a_longer_body_and_a_complete_blob(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, h = server
    h.mode["kind"] = "longer"
    j = job(tmp_path)
    d = dl(url, monkeypatch)
    d.fetch(j)
    assert j.layout.blob_path(SHA).read_bytes() == DATA
    assert d.fetch(j).cached  # no request for a blob that exists
    assert len(h.seen) == 1
    report = d.fetch_all([j])
    assert report.hits == 1 and report.misses == 0 and report.transferred == 0


@pytest.mark.parametrize(
    ("status", "headers", "error", "exit_code"),
    [
        (401, {"X-Error-Code": "GatedRepo"}, AuthError, 7),
        (404, {"X-Error-Code": "EntryNotFound"}, NotFoundError, 8),
        (403, {}, AuthError, 7),
        (503, {}, NetworkError, 9),
    ],
)
def test_error_statuses_map_to_batuta_errors(
    server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    headers: dict[str, str],
    error: type,
    exit_code: int,
) -> None:
    url, h = server
    h.mode.update(kind="status", status=status, headers=headers)
    with pytest.raises(error) as exc:
        dl(url, monkeypatch).fetch(job(tmp_path))
    assert exc.value.exit_code == exit_code
    assert "tok-secret-abcdef" not in exc.value.render()
    assert not job(tmp_path).layout.blob_path(SHA).exists()


def test_rate_limit_no_wait_and_max_wait(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, h = server
    h.mode.update(kind="status", status=429, headers={"Retry-After": "120"})
    with pytest.raises(RateLimitedError) as exc:
        dl(url, monkeypatch, no_wait=True).fetch(job(tmp_path))
    assert exc.value.exit_code == 10 and "120 s" in exc.value.message
    with pytest.raises(RateLimitedError):
        dl(url, monkeypatch, max_wait=30).fetch(job(tmp_path))
    assert len(h.seen) == 2


def test_unreachable_server_is_a_network_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    with pytest.raises(NetworkError):
        dl(f"http://127.0.0.1:{port}", monkeypatch).fetch(job(tmp_path))


def test_helpers() -> None:
    assert _content_range("bytes 10-19/100") == (10, 100)
    assert _content_range("bytes 10-19/*") == (10, None)
    assert _content_range("items 1-2/3") == (None, None)
    assert _content_range("bytes x-y/z") == (None, None)
    assert _content_range(None) == (None, None)
    ref = RepoRef("org/d", revision="main")
    from batuta_sync.types import HfAssetType

    assert (
        resolve_url("http://h/", ref, COMMIT, "a b/c.json") == f"http://h/org/d/resolve/{COMMIT}/a%20b/c.json"
    )
    assert resolve_url("http://h", RepoRef("o/d", HfAssetType.DATASET), COMMIT, "x").startswith(
        "http://h/datasets/o/d/"
    )


@pytest.mark.parametrize("honour", [True, False], ids=["honours-range", "ignores-range"])
def test_a_server_that_always_hangs_up_early_is_given_up_on(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, honour: bool
) -> None:
    url, h = server
    h.mode.update(kind="short", honour=honour)
    j = job(tmp_path)
    with pytest.raises(NetworkError):
        dl(url, monkeypatch).fetch(j)
    assert len(h.seen) < 200  # bounded, whatever the server does
    assert not j.layout.blob_path(SHA).exists()
