"""A hostile (or broken) upstream: a scripted HTTP server answering what a test wants.

Every bad answer must end in a clear 502/503/404 from the mirror, with nothing cached from it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from batuta_sync._fmt import git_blob_sha1
from batuta_sync.server import HubServer
from batuta_sync.server.mirror import MirrorConfig, cache_path
from batuta_sync.server.store import lfs_pointer

SHA = "1" * 40
DATA = b"hello world"
LFS_DATA = b"L" * 5000
LFS_SHA = hashlib.sha256(LFS_DATA).hexdigest()

Answer = tuple[int, dict[str, str], bytes]


def info(sha: str = SHA) -> dict[str, Any]:
    return {
        "id": "evil/r",
        "sha": sha,
        "private": False,
        "siblings": [
            {"rfilename": "a.txt", "size": len(DATA), "blobId": git_blob_sha1(DATA)},
            {
                "rfilename": "w.safetensors",
                "size": len(LFS_DATA),
                "blobId": git_blob_sha1(lfs_pointer(LFS_SHA, len(LFS_DATA))),
                "lfs": {"sha256": LFS_SHA, "size": len(LFS_DATA)},
            },
        ],
    }


REFS = {"branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": SHA}], "tags": []}


class Fake:
    """Routes: path (without query) -> callable(handler) -> (status, headers, body)."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[BaseHTTPRequestHandler], Answer]] = {}
        self.hits: list[str] = []
        self.json("/api/models/evil/r", info())
        self.json("/api/models/evil/r/refs", REFS)
        self.route(f"/evil/r/resolve/{SHA}/a.txt", lambda h: (200, {}, DATA))
        self.route(f"/evil/r/resolve/{SHA}/w.safetensors", lambda h: (200, {}, LFS_DATA))
        fake = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                return

            def do_GET(self) -> None:
                path = self.path.partition("?")[0]
                fake.hits.append(path)
                fn = fake.routes.get(path)
                status, headers, body = fn(self) if fn else (404, {}, b'{"error": "not found"}')
                self.send_response(status)
                length = headers.pop("X-Fake-Length", str(len(body)))
                self.send_header("Content-Length", length)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
                if length != str(len(body)):
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def route(self, path: str, fn: Callable[[BaseHTTPRequestHandler], Answer]) -> None:
        self.routes[path] = fn

    def json(self, path: str, obj: Any, status: int = 200) -> None:
        body = json.dumps(obj).encode()
        self.routes[path] = lambda h: (status, {"Content-Type": "application/json"}, body)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake() -> Iterator[Fake]:
    f = Fake()
    try:
        yield f
    finally:
        f.stop()


def start(tmp_path: Path, url: str, **kw: Any) -> HubServer:
    return HubServer(
        tmp_path / "m", upstream=MirrorConfig(url, backoff=0.01, max_retry_after=0.02, **kw)
    ).start()


@pytest.fixture
def mirror(tmp_path: Path, fake: Fake) -> Iterator[HubServer]:
    m = start(tmp_path, fake.url, attempts=3)
    try:
        yield m
    finally:
        m.stop()


def _mut(fn: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    d = copy.deepcopy(info())
    fn(d)
    return d


BAD_INFOS: dict[str, Any] = {
    "not-an-object": [],
    "bad-sha": _mut(lambda d: d.update(sha="xyz")),
    "no-siblings": _mut(lambda d: d.pop("siblings")),
    "sibling-not-object": _mut(lambda d: d["siblings"].append("x")),
    "size-bool": _mut(lambda d: d["siblings"][0].update(size=True)),
    "size-negative": _mut(lambda d: d["siblings"][0].update(size=-1)),
    "size-huge": _mut(lambda d: d["siblings"][0].update(size=1 << 60)),
    "bad-blob-id": _mut(lambda d: d["siblings"][0].update(blobId="../../x")),
    "lfs-not-object": _mut(lambda d: d["siblings"][1].update(lfs="yes")),
    "lfs-bad-sha": _mut(lambda d: d["siblings"][1]["lfs"].update(sha256="g" * 64)),
    "lfs-pointer-mismatch": _mut(lambda d: d["siblings"][1]["lfs"].update(sha256="a" * 64)),
    "lfs-size-mismatch": _mut(lambda d: d["siblings"][1]["lfs"].update(size=1)),
    "duplicate-path": _mut(lambda d: d["siblings"].append(dict(d["siblings"][0]))),
    "file-and-folder": _mut(
        lambda d: d["siblings"].append({"rfilename": "a.txt/b", "size": 1, "blobId": git_blob_sha1(b"x")})
    ),
    "path-escape": _mut(lambda d: d["siblings"][0].update(rfilename="../../etc/passwd")),
}


@pytest.mark.parametrize("case", sorted(BAD_INFOS))
def test_bad_info_answers_are_refused(fake: Fake, mirror: HubServer, case: str) -> None:
    fake.json("/api/models/evil/r", BAD_INFOS[case])
    r = httpx.get(f"{mirror.url}/api/models/evil/r")
    assert r.status_code == 502 and "upstream Hub answered an invalid" in r.json()["error"]
    assert not mirror.store.repos()


BAD_REFS: dict[str, Any] = {
    "not-an-object": [],
    "branches-not-list": {"branches": "main"},
    "item-not-object": {"branches": ["main"]},
    "bad-target": {"branches": [{"name": "main", "targetCommit": "zz"}]},
    "bad-name": {"branches": [{"name": "a..b", "targetCommit": SHA}]},
    "sha-name": {"tags": [{"name": SHA, "targetCommit": SHA}]},
    "refs-name": {"tags": [{"name": "refs/x", "targetCommit": SHA}]},
    "bad-pr": {"pullRequests": [{"ref": "refs/pr/x", "targetCommit": SHA}]},
    "too-many": {"tags": [{"name": f"t{i}", "targetCommit": SHA} for i in range(10_001)]},
}


@pytest.mark.parametrize("case", sorted(BAD_REFS))
def test_bad_refs_answers_are_refused(fake: Fake, mirror: HubServer, case: str) -> None:
    fake.json("/api/models/evil/r/refs", BAD_REFS[case])
    r = httpx.get(f"{mirror.url}/api/models/evil/r")
    assert r.status_code == 502


def test_good_refs_with_prs(fake: Fake, mirror: HubServer) -> None:
    fake.json(
        "/api/models/evil/r/refs", {**REFS, "pullRequests": [{"ref": "refs/pr/3", "targetCommit": SHA}]}
    )
    r = httpx.get(f"{mirror.url}/api/models/evil/r/refs?include_prs=1")
    assert r.json()["pullRequests"] == [{"name": "3", "ref": "refs/pr/3", "targetCommit": SHA}]


@pytest.mark.parametrize(
    ("answer", "status"),
    [((200, {}, b"{not json"), 502), ((418, {}, b"{}"), 502), ((403, {}, b"{}"), 404)],
    ids=["invalid-json", "teapot", "forbidden"],
)
def test_odd_statuses(fake: Fake, mirror: HubServer, answer: Answer, status: int) -> None:
    fake.route("/api/models/evil/r", lambda h: answer)
    assert httpx.get(f"{mirror.url}/api/models/evil/r").status_code == status


def test_refs_missing_means_not_found(fake: Fake, mirror: HubServer) -> None:
    del fake.routes["/api/models/evil/r/refs"]
    assert httpx.get(f"{mirror.url}/api/models/evil/r").status_code == 404


@pytest.mark.parametrize(
    ("path", "answers", "status"),
    [
        ("a.txt", [(200, {}, DATA + b"!")], 502),  # longer than announced
        ("a.txt", [(404, {}, b"")], 404),
        ("a.txt", [(418, {}, b"")], 502),
        (
            "a.txt",
            [(200, {}, b"hello wor"), (206, {"Content-Range": "bytes 0-10/11"}, DATA)],
            502,
        ),  # bad resume
        ("a.txt", [(200, {}, b"hello"), (200, {}, DATA)], 200),  # short, then the server ignores Range
        ("a.txt", [(200, {}, b"hello"), (206, {"Content-Range": "bytes 5-10/11"}, DATA[5:])], 200),  # resumed
        ("a.txt", [(200, {"X-Fake-Length": "11"}, b"hel"), (200, {}, DATA)], 200),  # connection dropped
        (
            "w.safetensors",
            [(200, {}, b"X" * len(LFS_DATA)), (200, {}, LFS_DATA)],
            200,
        ),  # bad sha256, refetched
    ],
    ids=["too-long", "gone", "teapot", "bad-content-range", "range-ignored", "resumed", "dropped", "corrupt"],
)
def test_file_bodies(fake: Fake, mirror: HubServer, path: str, answers: list[Answer], status: int) -> None:
    queue = list(answers)
    fake.route(f"/evil/r/resolve/{SHA}/{path}", lambda h: queue.pop(0) if len(queue) > 1 else queue[0])
    r = httpx.get(f"{mirror.url}/evil/r/resolve/main/{path}", follow_redirects=True)
    assert r.status_code == status, r.text
    e = mirror.store.commit_of("evil/r").files[path]
    assert cache_path(mirror.store, e).exists() == (status == 200)
    if status == 200:
        assert r.content == (DATA if path == "a.txt" else LFS_DATA)


def test_revisions(fake: Fake, tmp_path: Path) -> None:
    other = "2" * 40
    fake.json(f"/api/models/evil/r/revision/{other}", info(sha="3" * 40))  # names another commit
    m = start(tmp_path, fake.url, attempts=2, ttl=0)
    try:
        assert httpx.get(f"{m.url}/api/models/evil/r/revision/{other}").status_code == 502
        r = httpx.get(f"{m.url}/api/models/evil/r/revision/nope")  # upstream 404
        assert r.status_code == 404 and r.headers["X-Error-Code"] == "RevisionNotFound"
        r = httpx.get(f"{m.url}/api/models/evil/r/revision/a..b")  # never sent upstream
        assert r.status_code == 404 and not any("a..b" in p for p in fake.hits)
        fake.json("/api/models/evil/r/refs", BAD_REFS["bad-name"])  # a refresh answered badly: 502
        assert httpx.get(f"{m.url}/api/models/evil/r").status_code == 502
        fake.json("/api/models/evil/r/refs", REFS)
        assert httpx.get(f"{m.url}/api/models/evil/r").status_code == 200
        del fake.routes["/api/models/evil/r"]  # gone upstream
        r = httpx.get(f"{m.url}/api/models/evil/r")
        assert r.status_code == 404 and "gone upstream" in r.json()["error"]
        fake.stop()  # unreachable: a revision never resolved is a 503
        fake.json("/api/models/evil/r", info())
        r = httpx.get(f"{m.url}/api/models/evil/r/revision/v9")
        assert r.status_code == 503
    finally:
        m.stop()


def test_followers_get_the_leaders_error(fake: Fake, mirror: HubServer) -> None:
    def slow_gone(h: BaseHTTPRequestHandler) -> Answer:
        time.sleep(0.3)
        return 404, {}, b""

    fake.route(f"/evil/r/resolve/{SHA}/w.safetensors", slow_gone)
    httpx.get(f"{mirror.url}/api/models/evil/r").raise_for_status()
    statuses: list[int] = []

    def client() -> None:
        r = httpx.get(f"{mirror.url}/evil/r/resolve/main/w.safetensors", follow_redirects=True, timeout=30)
        statuses.append(r.status_code)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert statuses == [404] * 4
    assert fake.hits.count(f"/evil/r/resolve/{SHA}/w.safetensors") == 1


def test_a_repo_hosted_meanwhile_is_not_mirrored(fake: Fake, mirror: HubServer) -> None:
    mirror.store.commit("evil/r", {"x": b"local"})
    assert mirror.mirror is not None
    assert mirror.mirror._refresh(("model", "evil/r")) is None
    assert httpx.get(f"{mirror.url}/evil/r/resolve/main/x").content == b"local"


def test_concurrent_first_requests_fetch_the_repo_once(fake: Fake, mirror: HubServer) -> None:
    body = json.dumps(info()).encode()

    def slow(h: BaseHTTPRequestHandler) -> Answer:
        time.sleep(0.3)
        return 200, {}, body

    fake.route("/api/models/evil/r", slow)
    statuses: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: statuses.append(httpx.get(f"{mirror.url}/api/models/evil/r").status_code)
        )
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert statuses == [200] * 4 and fake.hits.count("/api/models/evil/r") == 1


def test_a_write_error_while_storing_is_reported() -> None:
    import io

    from batuta_sync.server.mirror import _Sink

    class Full(io.BytesIO):
        def write(self, b: Any) -> int:
            raise OSError(28, "No space left on device")

    sink = _Sink(Full(), hashlib.sha256)
    try:
        sink.put(b"x" * 10)
        sink.put(b"y")  # dropped after the error
        with pytest.raises(OSError, match="No space"):
            sink.digest()
    finally:
        sink.close()


def test_disk_full_while_storing_is_507(
    fake: Fake, mirror: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batuta_sync.server import mirror as mirror_mod

    def full(self: Any) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mirror_mod._Sink, "digest", full)
    r = httpx.get(f"{mirror.url}/evil/r/resolve/main/a.txt")
    assert r.status_code == 507 and "No space left" in r.json()["error"]


def test_files_are_fetched_without_content_encoding(fake: Fake, mirror: HubServer) -> None:
    import gzip

    def maybe_gzip(h: BaseHTTPRequestHandler) -> Answer:
        if "gzip" in (h.headers.get("Accept-Encoding") or ""):
            return 200, {"Content-Encoding": "gzip"}, gzip.compress(DATA)
        return 200, {}, DATA

    fake.route(f"/evil/r/resolve/{SHA}/a.txt", maybe_gzip)
    r = httpx.get(f"{mirror.url}/evil/r/resolve/main/a.txt")
    assert r.status_code == 200 and r.content == DATA
