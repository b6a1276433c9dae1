"""The server as a multi-user service: control API, body limits, card parsing, request log bound,
path rules, URL building and open mode (issue 13, point 5)."""

from __future__ import annotations

import base64
import http.client
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx  # the one HTTP client library (huggingface_hub installs it)
import pytest
from huggingface_hub import HfApi

from batuta_sync.server import HubServer, Limits, LogEntry, RequestLog, UserSpec, meta
from batuta_sync.server.app import check_public_url, is_loopback, ndjson_lines
from batuta_sync.server.store import StoreError

ADMIN = "admin-token-0123456789"
ALICE = "tok-alice-aaaaaaaa"


def _ndjson(*items: object) -> bytes:
    return b"\n".join(json.dumps(i).encode() for i in items)


def _inline(path: str, data: bytes) -> dict[str, object]:
    return {
        "key": "file",
        "value": {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64"},
    }


HEADER = {"key": "header", "value": {"summary": "s", "description": ""}}


# --------------------------------------------------------------------------- control API


def test_control_api_is_off_by_default(hub_server: HubServer) -> None:
    for method, path in (("GET", "/_batuta/log"), ("POST", "/_batuta/faults"), ("DELETE", "/_batuta/log")):
        r = httpx.request(method, f"{hub_server.url}{path}", json={"server_errors": 5})
        assert r.status_code == 404 and "--control-api" in r.json()["error"]
    assert hub_server.faults.snapshot()["server_errors"] == 0  # nothing was configured
    assert httpx.get(f"{hub_server.url}/api/whoami-v2").status_code == 200


def test_control_api_with_users_needs_the_admin_token(tmp_path: Path) -> None:
    users = [UserSpec("alice", ALICE, "write")]
    with pytest.raises(ValueError, match="admin token"):
        HubServer(tmp_path / "r", users=users, control_api=True)
    with HubServer(tmp_path / "r", users=users, control_api=True, admin_token=ADMIN) as s:
        HfApi(endpoint=s.url, token=ALICE).create_repo("alice/private-name", private=True)
        httpx.get(f"{s.url}/api/models/alice/private-name", headers={"Authorization": f"Bearer {ALICE}"})
        assert httpx.get(f"{s.url}/_batuta/log").status_code == 401
        user = {"Authorization": f"Bearer {ALICE}"}
        assert httpx.get(f"{s.url}/_batuta/log", headers=user).status_code == 403
        r = httpx.post(f"{s.url}/_batuta/faults", headers=user, json={"server_errors": 9})
        assert r.status_code == 403 and s.faults.snapshot()["server_errors"] == 0
        assert httpx.delete(f"{s.url}/_batuta/log", headers={"Authorization": "Basic x"}).status_code == 403
        admin = {"Authorization": f"Bearer {ADMIN}"}
        log = httpx.get(f"{s.url}/_batuta/log", headers=admin)
        assert log.status_code == 200 and "private-name" in log.text
        assert httpx.post(f"{s.url}/_batuta/faults", headers=admin, json={"latency_ms": 1}).status_code == 200
        assert s.faults.latency_ms == 1.0


def test_open_mode_control_api_with_an_admin_token_needs_it(tmp_path: Path) -> None:
    with HubServer(tmp_path / "r", control_api=True, admin_token=ADMIN) as s:
        assert httpx.get(f"{s.url}/_batuta/counters").status_code == 401
        assert (
            httpx.get(f"{s.url}/_batuta/counters", headers={"Authorization": f"Bearer {ADMIN}"}).status_code
            == 200
        )


# --------------------------------------------------------------------------- body limits


@pytest.fixture
def small(tmp_path: Path) -> Iterator[HubServer]:
    limits = Limits(
        max_json_body=2000, max_commit_body=20_000, max_commit_line=3000, max_commit_ops=3, max_lfs_objects=2
    )
    with HubServer(tmp_path / "small", limits=limits) as s:
        s.store.create_repo("local/s")
        yield s


def _is_413(r: httpx.Response) -> bool:
    return (
        r.status_code == 413
        and r.headers.get("X-Error-Code") == "PayloadTooLarge"
        and "larger than" in r.json()["error"]
    )


def test_json_bodies_over_the_limit_get_413(small: HubServer) -> None:
    with httpx.Client(base_url=small.url, timeout=30) as c:
        files = [{"path": f"f{i}.txt", "size": 1} for i in range(200)]
        assert _is_413(c.post("/api/models/local/s/preupload/main", json={"files": files}))
        assert c.post("/api/models/local/s/preupload/main", json={"files": files[:5]}).status_code == 200

        def chunks() -> Iterator[bytes]:  # chunked: no Content-Length to refuse up front
            yield b'{"paths": ['
            for _ in range(300):
                yield b'"aaaaaaaaaa",'
            yield b'"b"]}'

        r = c.post(
            "/api/models/local/s/paths-info/main",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
        assert _is_413(r)
        assert c.get("/api/models/local/s").status_code == 200  # the server keeps serving


def test_commit_limits_line_body_and_operations(small: HubServer) -> None:
    url = "/api/models/local/s/commit/main"
    with httpx.Client(base_url=small.url, timeout=30) as c:
        r = c.post(url, content=_ndjson(HEADER, _inline("big.txt", b"x" * 4000)))
        assert _is_413(r) and "NDJSON line" in r.json()["error"]
        r = c.post(
            url,
            content=_ndjson(HEADER, _inline("a.txt", b"a"), {"key": "deletedFile", "value": {"path": "b"}}),
        )
        assert r.status_code == 200, r.text
        ops = [{"key": "deletedFile", "value": {"path": f"p{i}"}} for i in range(4)]
        r = c.post(url, content=_ndjson(HEADER, *ops))
        assert _is_413(r) and "operations" in r.json()["error"]
        many = [_inline(f"f{i}.txt", b"y" * 1000) for i in range(16)]  # short lines, too much in all
        assert _is_413(c.post(url, content=_ndjson(HEADER, *many)))

        def short_lines() -> Iterator[bytes]:  # chunked: the total is only known while reading
            yield json.dumps(HEADER).encode() + b"\n"
            for _ in range(30):
                yield b" " * 900 + b"\n"  # blank lines: no operations, but bytes

        r = c.post(url, content=short_lines())
        assert _is_413(r) and "commit payload" in r.json()["error"]

        def endless_line() -> Iterator[bytes]:
            yield b'{"key": "header", "value": {"summary": "'
            for _ in range(100):
                yield b"z" * 100

        assert _is_413(c.post(url, content=endless_line()))
    assert sorted(small.store.commit_of("local/s").files) == ["a.txt"]


def test_paths_info_expand_is_capped(tmp_path: Path) -> None:
    with HubServer(tmp_path / "e", limits=Limits(max_expand_paths=2)) as s:
        s.store.commit("local/e", {f"f{i}": b"x" for i in range(3)})
        url = f"{s.url}/api/models/local/e/paths-info/main"
        paths = ["f0", "f1", "f2"]
        assert _is_413(httpx.post(url, json={"paths": paths, "expand": True}))
        assert len(httpx.post(url, json={"paths": paths[:2], "expand": True}).json()) == 2
        assert len(httpx.post(url, json={"paths": paths}).json()) == 3  # without expand: cheap, no cap


def test_lfs_batch_object_count_is_capped(small: HubServer) -> None:
    objs = [{"oid": f"{i:064x}", "size": 1} for i in range(3)]
    with httpx.Client(base_url=small.url, timeout=30) as c:
        r = c.post("/local/s.git/info/lfs/objects/batch", json={"operation": "upload", "objects": objs})
        assert _is_413(r) and "objects" in r.json()["error"]
        r = c.post("/local/s.git/info/lfs/objects/batch", json={"operation": "upload", "objects": objs[:2]})
        assert r.status_code == 200


def test_declared_body_over_the_limit_is_refused_before_reading(small: HubServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", small.port, timeout=30)
    try:
        conn.putrequest("POST", "/api/models/local/s/preupload/main")
        conn.putheader("Content-Length", str(10**12))  # a terabyte announced, a few bytes sent
        conn.endheaders(b"{}")
        r = conn.getresponse()
        assert r.status == 413 and b"larger than" in r.read()
    finally:
        conn.close()
    for bad in ("-5", "abc"):
        conn = http.client.HTTPConnection("127.0.0.1", small.port, timeout=30)
        try:
            conn.putrequest("POST", "/api/models/local/s/preupload/main", skip_accept_encoding=True)
            conn.putheader("Content-Length", bad)
            conn.endheaders()
            assert conn.getresponse().status == 400
        finally:
            conn.close()


def test_malformed_chunked_body_is_a_400(small: HubServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", small.port, timeout=30)
    try:
        conn.putrequest("POST", "/api/models/local/s/preupload/main")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders(b"zz\r\nxx\r\n0\r\n\r\n")
        assert conn.getresponse().status == 400
    finally:
        conn.close()


def test_ndjson_lines_are_split_in_linear_time() -> None:
    """One 64 KiB line delivered a byte at a time (the old `buf += chunk; buf.split()` re-copied and
    re-scanned the whole line per chunk: ~4e9 byte operations here), plus lines split across chunks."""
    line = b'{"k": "' + b"v" * 65536 + b'"}'
    pieces = [line[i : i + 1] for i in range(len(line))] + [b"\n\n", b"a\nb", b"c\n", b"  \n", b"tail"]
    got = list(ndjson_lines(iter(pieces), max_line=1 << 20, too_long=lambda: ValueError("long")))
    assert got == [line, b"a", b"bc", b"tail"]
    with pytest.raises(ValueError, match="long"):
        list(
            ndjson_lines(
                iter([b"x" * 10, b"y" * 10, b"\n"]), max_line=15, too_long=lambda: ValueError("long")
            )
        )
    with pytest.raises(ValueError, match="long"):
        list(
            ndjson_lines(
                iter([b"ab\n" + b"x" * 20 + b"\n"]), max_line=15, too_long=lambda: ValueError("long")
            )
        )


def test_a_long_inline_line_across_many_reads_commits(hub_server: HubServer) -> None:
    data = bytes(range(256)) * 12_000  # 3 MB: a 4 MB base64 line read in 1 MiB pieces
    body = _ndjson(HEADER, _inline("long.txt", data), _inline("short.txt", b"s"))
    hub_server.store.create_repo("local/l")
    r = httpx.post(f"{hub_server.url}/api/models/local/l/commit/main", content=body, timeout=60)
    assert r.status_code == 200, r.text
    assert httpx.get(f"{hub_server.url}/local/l/resolve/main/long.txt", timeout=60).content == data


# --------------------------------------------------------------------------- card parsing

ALIAS_BOMB = (
    "---\n"
    + "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))
    + "---\n# bomb\n"
)


def test_alias_bomb_readme_is_refused_in_bounded_memory(hub_server: HubServer) -> None:
    """10**9 leaves once expanded (the old yaml.safe_load + json round trip ate gigabytes)."""
    assert len(ALIAS_BOMB) < 1000
    tracemalloc.start()
    try:
        assert meta.front_matter(ALIAS_BOMB) == {}
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000
    with pytest.raises(meta.CardYAMLError, match="aliases"):
        meta.load_card_yaml(ALIAS_BOMB.split("---\n")[1])
    hub_server.store.create_repo("local/bomb")
    r = httpx.post(
        f"{hub_server.url}/api/models/local/bomb/commit/main",
        content=_ndjson(HEADER, _inline("README.md", ALIAS_BOMB.encode())),
        timeout=60,
    )
    assert r.status_code == 200
    info = httpx.get(f"{hub_server.url}/api/models/local/bomb", timeout=60).json()
    assert info["cardData"] == {}
    r = httpx.post(f"{hub_server.url}/api/validate-yaml", json={"content": ALIAS_BOMB, "repoType": "model"})
    assert r.status_code == 400 and "aliases" in r.text
    with pytest.raises(ValueError):  # the real client asks validate-yaml first and refuses
        HfApi(endpoint=hub_server.url, token="x").upload_file(
            path_or_fileobj=ALIAS_BOMB.encode(), path_in_repo="README.md", repo_id="local/bomb"
        )


@pytest.mark.parametrize(
    "body",
    [
        "a: " + "[" * 200 + "]" * 200,  # deeper than MAX_YAML_DEPTH
        "a: '" + "x" * (meta.MAX_FRONT_MATTER_BYTES + 10) + "'",  # larger than the bound
        "a: &x 1\nb: *x",  # a single alias
        "<<: *undefined",
        "a: [" + "x, " * meta.MAX_YAML_NODES + "x]",  # too many values (parse time bound)
        "a: [1, 2",  # not YAML
    ],
)
@pytest.mark.parametrize("libyaml", [True, False])
def test_card_yaml_bounds(body: str, libyaml: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    monkeypatch.setattr(yaml, "__with_libyaml__", libyaml and yaml.__with_libyaml__)
    with pytest.raises(meta.CardYAMLError):
        meta.load_card_yaml(body)
    assert meta.front_matter(f"---\n{body}\n---\n") == {}
    errors, _ = meta.validate_card_yaml(f"---\n{body}\n---\n")
    assert errors and errors[0].startswith("Invalid YAML")


@pytest.mark.parametrize("libyaml", [True, False])
def test_card_yaml_normal_cards_and_unclosed_large_front_matter(
    libyaml: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    monkeypatch.setattr(yaml, "__with_libyaml__", libyaml and yaml.__with_libyaml__)
    assert meta.front_matter("---\nlicense: mit\ntags: [a, b]\nx: &anchor 1\n---\n") == {
        "license": "mit",
        "tags": ["a", "b"],
        "x": 1,
    }
    inner = meta.MAX_YAML_DEPTH - 1  # the top-level mapping is the first level
    at_the_bound = "a: " + "[" * inner + "x" + "]" * inner
    assert meta.load_card_yaml(at_the_bound)["a"]  # 32 levels: accepted by both parsers
    with pytest.raises(meta.CardYAMLError, match="deeper"):
        meta.load_card_yaml("a: " + "[" * inner + "{b: x}" + "]" * inner)
    assert meta.front_matter("---\n2024-01-01: [2024-02-02, !!binary aGk=]\n1: x\n---\n") == {
        "2024-01-01": ["2024-02-02", "b'hi'"],
        "1": "x",
    }
    huge = "---\n" + "k: v\n" * (meta.MAX_FRONT_MATTER_BYTES // 2) + "---\n"
    assert meta.front_matter(huge) == {}  # closed only beyond the bound: not parsed
    errors, _ = meta.validate_card_yaml(huge)
    assert "larger than" in errors[0]


# --------------------------------------------------------------------------- request log


def test_request_log_is_bounded_in_bytes() -> None:
    log = RequestLog(max_bytes=10_000)
    idx = [log.add(LogEntry("GET", "/" + "p" * 1000, f"i={i}", 200, 0, 0)) for i in range(50)]
    assert log.bytes_used <= 10_000 and len(log.entries) < 10
    assert log.entries[-1].query == "i=49"
    used = log.bytes_used
    log.replace(idx[-1], LogEntry("GET", "/short", "", 200, 0, 7))
    assert log.bytes_used < used and log.entries[-1].bytes_out == 7
    log.replace(idx[0], LogEntry("GET", "/gone", "", 200, 0, 5))  # dropped long ago: ignored
    log.clear()
    assert log.bytes_used == 0 and log.entries == []


def test_server_log_stays_bounded_under_long_urls(hub_server: HubServer) -> None:
    hub_server.log = RequestLog(max_bytes=20_000)
    with httpx.Client(base_url=hub_server.url, timeout=30) as c:
        for i in range(60):
            c.get(f"/api/models/local/nope-{i}", params={"q": "x" * 2000})
    assert hub_server.log.bytes_used <= 20_000 and hub_server.log.entries[-1].path.endswith("nope-59")


# --------------------------------------------------------------------------- path rules


@pytest.mark.parametrize(
    "path",
    [".git/config", "a/.git/hooks/x", ".GIT", "a/../b", "con.txt", "a:b", "a\\b", "x/", "a/./b", "bad. "],
)
def test_commit_refuses_paths_the_client_refuses(hub_server: HubServer, path: str) -> None:
    hub_server.store.create_repo("local/p")
    r = httpx.post(
        f"{hub_server.url}/api/models/local/p/commit/main", content=_ndjson(HEADER, _inline(path, b"x"))
    )
    assert r.status_code == 400 and "Invalid path in repo" in r.json()["error"]
    assert list(hub_server.store.commit_of("local/p").files) == []
    r = httpx.post(
        f"{hub_server.url}/api/models/local/p/commit/main",
        content=_ndjson(HEADER, {"key": "deletedFile", "value": {"path": path}}),
    )
    assert r.status_code == (200 if path == "x/" else 400)  # deleting folder "x/" is fine


def test_seeding_api_stays_able_to_make_a_hostile_hub(hub_server: HubServer) -> None:
    """Tests of the client seed names the client must refuse; only tree-breaking paths are refused."""
    hub_server.store.commit("local/h", {"x/CON": b"x", "C:/evil": b"y", "a\x01b": b"z"})
    assert sorted(hub_server.store.commit_of("local/h").files) == ["C:/evil", "a\x01b", "x/CON"]
    for bad in ("", "/abs", "a//b", "../up", ".git/config", "a\\b", "nul\0"):
        with pytest.raises(StoreError):
            hub_server.store.commit("local/h", {bad: b"x"})


# --------------------------------------------------------------------------- URLs


def _upload_href(base: str, host: str | None) -> str:
    headers = {"Host": host} if host is not None else {}
    r = httpx.post(
        f"{base}/local/u.git/info/lfs/objects/batch",
        json={"operation": "upload", "objects": [{"oid": "a" * 64, "size": 1}]},
        headers=headers,
    )
    return str(r.json()["objects"][0]["actions"]["upload"]["href"])


def test_absolute_urls_come_from_a_validated_host_or_the_public_url(
    hub_server: HubServer, tmp_path: Path
) -> None:
    hub_server.store.create_repo("local/u")
    base = hub_server.url
    assert _upload_href(base, "hub.example:8080").startswith("http://hub.example:8080/lfs-upload/")
    assert _upload_href(base, "[::1]:9").startswith("http://[::1]:9/lfs-upload/")
    for evil in ("evil.example/steal?x=", "a@evil.example", "evil.example:80:80", "x y"):
        assert _upload_href(base, evil).startswith(f"{base}/lfs-upload/"), evil
    r = httpx.get(f"{base}/api/models", params={"limit": 0}, headers={"Host": "evil/x"})
    assert r.status_code == 200
    with HubServer(tmp_path / "pub", public_url="https://hub.example.org/") as s:
        s.store.create_repo("local/u")
        assert _upload_href(s.url, "other.example").startswith("https://hub.example.org/lfs-upload/")
        s.store.commit("local/u", {f"f{i}": b"x" for i in range(3)})
        s.page_size = 1
        link = httpx.get(f"{s.url}/api/models/local/u/tree/main").headers["Link"]
        assert link.startswith("<https://hub.example.org/api/models/local/u/tree/main?")


@pytest.mark.parametrize(
    "url", ["ftp://x", "http://", "http://u:p@x", "http://x/?q=1", "http://x/#f", "http://ev il"]
)
def test_bad_public_urls(url: str) -> None:
    with pytest.raises(ValueError):
        check_public_url(url)


# --------------------------------------------------------------------------- open mode


def test_open_mode_refuses_non_loopback_binds(tmp_path: Path) -> None:
    for host in ("0.0.0.0", "192.0.2.10", "::", "hub.example"):
        assert not is_loopback(host)
        with pytest.raises(ValueError, match="open mode"):
            HubServer(tmp_path / "r", host=host)
        HubServer(tmp_path / "r", host=host, insecure_open_write=True)  # the risk named: allowed
        HubServer(tmp_path / "r", host=host, users=[UserSpec("a", "tok-aaaaaaaa")])  # users: allowed
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.0.1", "::1", "localhost", "[::1]"))


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/repos/create", [1]),
        ("/api/models/local/j/preupload/main", {"files": "x"}),
        ("/api/models/local/j/preupload/main", {"files": [{"path": "a", "size": "big"}]}),
        ("/api/models/local/j/preupload/main", {"files": [{"path": "a", "size": -1}]}),
        ("/local/j.git/info/lfs/objects/batch", "upload"),
        ("/api/validate-yaml", []),
    ],
)
def test_malformed_json_bodies_are_400_not_500(hub_server: HubServer, path: str, body: object) -> None:
    hub_server.store.create_repo("local/j")
    r = httpx.post(f"{hub_server.url}{path}", json=body)
    assert r.status_code == 400, r.text
    deep = b"[" * 100_000 + b"]" * 100_000
    r = httpx.post(f"{hub_server.url}/api/models/local/j/preupload/main", content=deep)
    assert r.status_code in (400, 413)


def test_card_is_parsed_once_and_outside_the_store_lock(
    hub_server: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow card cannot stall other repos' commits: it is parsed before the store lock is taken."""
    seen: list[bool] = []
    real = meta.front_matter

    def spy(text: str) -> dict[str, object]:
        seen.append(hub_server.store.lock._is_owned())  # type: ignore[attr-defined]
        return real(text)

    monkeypatch.setattr(meta, "front_matter", spy)
    hub_server.store.create_repo("local/card")
    readme = _inline("README.md", b"---\nlicense: mit\n---\n# hi\n")
    url = f"{hub_server.url}/api/models/local/card/commit/main"
    assert httpx.post(url, content=_ndjson(HEADER, readme)).status_code == 200
    assert httpx.post(url, content=_ndjson(HEADER, _inline("b.txt", b"b"))).status_code == 200
    assert seen == [False]  # once, unlocked; the second commit reuses the parsed card
    assert httpx.get(f"{hub_server.url}/api/models/local/card").json()["cardData"] == {"license": "mit"}
