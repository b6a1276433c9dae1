"""Protocol edge cases and error paths, driven over raw HTTP (what odd clients may send)."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx  # the one HTTP client library (huggingface_hub installs it)
import pytest

from batuta_sync.server import HubServer, UserSpec
from batuta_sync.server.store import Store, StoreError, check_path, check_repo_type, lfs_pointer


@pytest.fixture
def c(hub_server: HubServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub_server.url, timeout=30) as client:
        yield client


def _ndjson(*items: dict[str, object]) -> bytes:
    return b"\n".join(json.dumps(i).encode() for i in items)


def _negotiate(c: httpx.Client, repo: str, data: bytes) -> str:
    oid = hashlib.sha256(data).hexdigest()
    r = c.post(
        f"/{repo}.git/info/lfs/objects/batch",
        json={"operation": "upload", "objects": [{"oid": oid, "size": len(data)}]},
    )
    return str(r.json()["objects"][0]["actions"]["upload"]["href"])


def test_chunked_lfs_upload_and_commit(hub_server: HubServer, c: httpx.Client) -> None:
    hub_server.store.create_repo("local/e")
    data = b"0123456789" * 50_000
    href = _negotiate(c, "local/e", data)

    def gen() -> Iterator[bytes]:
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    r = c.put(href, content=gen())  # Transfer-Encoding: chunked
    assert r.status_code == 200, r.text
    oid = hashlib.sha256(data).hexdigest()
    assert c.put(href, content=b"again").status_code == 200  # already stored: accepted, ignored
    body = _ndjson(
        {"key": "header", "value": {"summary": "add", "description": ""}},
        {"key": "lfsFile", "value": {"path": "w.dat", "algo": "sha256", "oid": oid, "size": len(data)}},
        {
            "key": "file",
            "value": {"path": "a.txt", "content": base64.b64encode(b"a").decode(), "encoding": "base64"},
        },
    )
    r = c.post(
        "/api/models/local/e/commit/main", content=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert r.status_code == 200 and len(r.json()["commitOid"]) == 40
    assert c.get("/local/e/resolve/main/w.dat", follow_redirects=True).content == data


def test_lfs_upload_errors(hub_server: HubServer, c: httpx.Client) -> None:
    hub_server.store.create_repo("local/e")
    data = b"x" * 1000
    href = _negotiate(c, "local/e", data)
    assert c.put(href, content=b"x" * 999 + b"y").status_code == 422  # wrong content for the oid
    href = _negotiate(c, "local/e", data)
    assert c.put(href, content=b"x" * 10).status_code == 400  # wrong size
    r = c.post(
        "/local/e.git/info/lfs/objects/batch", json={"operation": "nope", "objects": [{"oid": "a" * 64}]}
    )
    assert r.status_code == 400
    href = _negotiate(c, "local/e", data)
    verify = href.replace("/lfs-upload/", "/lfs-verify/")
    oid = hashlib.sha256(data).hexdigest()
    assert c.post(verify, json={"oid": oid, "size": 1000}).status_code == 404  # not uploaded yet
    c.put(href, content=data)
    assert c.post(verify, json={"oid": oid, "size": 5}).status_code == 422
    assert c.post(verify, json={"oid": "0" * 64, "size": 1000}).status_code == 404  # another object
    assert c.post(verify, json={"oid": oid, "size": 1000}).status_code == 200
    assert c.post("/lfs-verify", json={"oid": oid, "size": 1000}).status_code == 404  # no ticket, no answer


@pytest.mark.parametrize(
    ("lines", "status"),
    [
        ([b"not json"], 400),
        ([json.dumps({"key": "weird", "value": {}}).encode()], 400),
        (
            [
                json.dumps(
                    {"key": "file", "value": {"path": "a", "content": "x", "encoding": "utf-8"}}
                ).encode()
            ],
            400,
        ),
        ([json.dumps({"key": "lfsFile", "value": {"path": "a", "oid": "b" * 64, "size": 1}}).encode()], 422),
        ([json.dumps({"key": "file", "value": {"path": "../evil", "content": ""}}).encode()], 400),
        ([json.dumps({"key": "file", "value": {"path": ".git/config", "content": ""}}).encode()], 400),
    ],
)
def test_bad_commit_payloads(hub_server: HubServer, c: httpx.Client, lines: list[bytes], status: int) -> None:
    hub_server.store.create_repo("local/e")
    r = c.post("/api/models/local/e/commit/main", content=b"\n".join(lines))
    assert r.status_code == status, r.text
    assert r.json()["error"]


def test_lfs_file_size_mismatch_and_path_conflicts(hub_server: HubServer, c: httpx.Client) -> None:
    hub_server.store.commit("local/e", {"w.bin": b"w" * 10, "dir/x.txt": b"x"})
    oid = hashlib.sha256(b"w" * 10).hexdigest()
    body = _ndjson({"key": "lfsFile", "value": {"path": "v.bin", "oid": oid, "size": 11}})
    assert c.post("/api/models/local/e/commit/main", content=body).status_code == 422
    body = _ndjson({"key": "file", "value": {"path": "dir", "content": ""}})
    assert c.post("/api/models/local/e/commit/main", content=body).status_code == 400
    body = _ndjson({"key": "file", "value": {"path": "w.bin/inner", "content": ""}})
    assert c.post("/api/models/local/e/commit/main", content=body).status_code == 400
    body = _ndjson({"key": "file", "value": {"path": "n.txt", "content": ""}})
    r = c.post("/api/models/local/e/commit/nobranch", content=body)
    assert r.status_code == 404 and r.headers["X-Error-Code"] == "RevisionNotFound"


def test_misc_routes_and_errors(hub_server: HubServer, c: httpx.Client) -> None:
    hub_server.store.commit("local/e", {"a.txt": b"a", "d/b.txt": b"b"})
    assert c.get("/").json()["api"] == "/api"
    assert c.get("/nothing/here").status_code == 404
    assert c.get("/api/unknown").status_code == 404
    assert c.get("/api/models/local/e/unknown").status_code == 404
    assert c.post("/api/repos/move", json={}).status_code == 501
    # Xet is spoken now (issue #21): a write token for an open-mode repo (tests/xet/ cover the rest)
    assert c.get("/api/models/local/e/xet-write-token/main").headers["X-Xet-Cas-Url"].endswith("/xet-cas")
    assert c.post("/api/repos/create", json={"name": "x", "type": "kernel"}).status_code == 400
    assert c.post("/api/repos/create", json={"name": "bad name"}).status_code == 400
    assert (
        c.post(
            "/api/repos/create", content=b"{nope", headers={"Content-Type": "application/json"}
        ).status_code
        == 400
    )
    assert c.get("/api/models/local/e/tree/main/a.txt").status_code == 400
    r = c.get("/api/models/local/e/tree/main/missing")
    assert (
        r.status_code == 404 and r.headers["X-Error-Code"] == "EntryNotFound" and r.headers["X-Repo-Commit"]
    )
    assert c.get("/api/models/local/e/tree/main", params={"limit": "x"}).status_code == 400
    assert c.get("/api/models/local/e/tree/main", params={"cursor": "x"}).status_code == 400
    r = c.get("/api/models/local/e/tree/main/d", params={"expand": "true"})
    assert r.json()[0]["lastCommit"]["title"] == "seed"
    r = c.post("/api/models/local/e/paths-info/main", json={"paths": "d", "expand": True})
    assert r.json()[0]["type"] == "directory" and r.json()[0]["lastCommit"]
    assert (
        c.post(
            "/api/models/local/e/paths-info/main", content=b"{", headers={"Content-Type": "application/json"}
        ).status_code
        == 400
    )
    assert c.delete("/api/models/local/e/branch/main").status_code == 403
    assert c.delete("/api/models/local/e/branch/nope").status_code == 404
    assert c.delete("/api/models/local/e/tag/nope").status_code == 404
    assert c.post("/api/models/local/e/branch/bad..name", json={}).status_code == 400
    assert c.post("/api/models/local/e/tag/main", json={"tag": "a" * 40}).status_code == 400
    r = c.head("/local/e/resolve/main/missing.txt")
    assert r.status_code == 404 and r.headers["X-Error-Code"] == "EntryNotFound"
    r = c.post(
        "/api/models/local/e/preupload/nobranch?create_pr=1", json={"files": [{"path": "a.txt", "size": 1}]}
    )
    assert r.status_code == 200 and r.json()["files"][0]["oid"] is None
    assert c.put("/api/models/local/e/settings", json={"visibility": "private"}).status_code == 200
    assert c.get("/api/models/local/e").json()["private"] is True
    assert c.post("/api/models/local/e/like").json()["likes"] == 1
    r = c.get("/local/e/resolve/main/a.txt", headers={"Range": "bytes=a-b"})
    assert r.status_code == 200  # malformed Range is ignored
    r = c.get("/local/e/resolve/main/a.txt", headers={"Range": "bytes=0-0", "If-Range": 'W/"x"'})
    assert r.status_code == 200
    assert c.get("/api/models?limit=1&full=true&expand=siblings").status_code == 200
    assert c.delete("/_batuta/faults").status_code == 404  # the control API is off by default
    hub_server.control_api = True
    assert c.delete("/_batuta/faults").status_code == 200
    assert c.post("/_batuta/faults", json=[1]).status_code == 400


def test_request_body_on_fault_is_drained_keepalive(hub_server: HubServer) -> None:
    hub_server.store.create_repo("local/k")
    hub_server.faults.configure(rate_limit=1, retry_after="1")
    port = int(hub_server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as s:
        body = b'{"files": []}'
        req = (
            b"POST /api/models/local/k/preupload/main HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        s.sendall(req + req)  # pipelined: the 429 must not leave the body in the stream
        data = b""
        while data.count(b"HTTP/1.1 ") < 2 or not data.endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 429") and b"HTTP/1.1 200" in data


def test_open_vs_user_mode_writes(tmp_path: Path) -> None:
    srv = HubServer(tmp_path / "r", users=[UserSpec("u", "tok-u-123456", "write")]).start()
    try:
        srv.store.commit("u/x", {"a": b"a"})
        r = httpx.post(f"{srv.url}/api/models/u/x/like")
        assert r.status_code == 401
        r = httpx.post(f"{srv.url}/api/models/u/x/preupload/main", json={"files": []})
        assert r.status_code == 401
        r = httpx.get(f"{srv.url}/api/models/u/x", headers={"authorization": "Basic abc"})
        assert r.status_code == 200  # non-bearer auth = anonymous
    finally:
        srv.stop()


def test_store_validation_helpers(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        check_repo_type("kernel")
    for bad in ("", "/abs", "a//b", "a/../b", "a\\b"):
        with pytest.raises(StoreError):
            check_path(bad)
    store = Store(tmp_path / "s")
    with pytest.raises(StoreError):
        store.create_repo("noslash")
    store.create_repo("a/b")
    with pytest.raises(StoreError) as exc:
        store.create_repo("a/b", exist_ok=False)
    assert exc.value.status == 409
    with pytest.raises(StoreError):
        store.resolve("a/b", "abc")  # too short to be a sha prefix, not a ref
    assert len(lfs_pointer("0" * 64, 5)) == len(lfs_pointer("1" * 64, 5))
    store.delete_repo("a/b")
    with pytest.raises(StoreError):
        store.repo("a/b")
    # a corrupted settings file is skipped on load, not fatal
    bad = tmp_path / "s" / "repos" / "models" / "x" / "y"
    bad.mkdir(parents=True)
    (bad / "repo.json").write_text("{nope")
    assert [r.repo_id for r in Store(tmp_path / "s").repos()] == []


def test_client_reset_is_silent(hub_server: HubServer, capfd: pytest.CaptureFixture[str]) -> None:
    import struct
    import time

    port = int(hub_server.url.rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /api/models HTTP/1.1\r\nHost: x\r\n\r\n")
    s.recv(65536)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # RST while the server waits for the next request line
    time.sleep(0.2)
    assert "Traceback" not in capfd.readouterr().err
    hub_server.store.create_repo("local/alive")
    assert httpx.get(f"{hub_server.url}/api/models/local/alive").status_code == 200
