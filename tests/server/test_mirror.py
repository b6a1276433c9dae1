"""The pull-through mirror (``HubServer(upstream=MirrorConfig(...))``, ``batuta hub serve --upstream``).

The upstream is another local Hub in the same process; its request log shows what the mirror asked.
Clients are the real ``huggingface_hub`` (hf_hub_download, snapshot_download, HfApi) and raw httpx.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

from batuta_sync.server import HubServer, UserSpec
from batuta_sync.server.mirror import AccessRule, MirrorConfig, cache_path, parse_size

from ._serve import free_port

LFS = os.urandom(300_000)  # .safetensors: an LFS file
LFS2 = os.urandom(300_000)
LFS3 = os.urandom(300_000)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[HubServer]:
    srv = HubServer(tmp_path / "upstream").start()
    try:
        yield srv
    finally:
        srv.stop()


def seed(up: HubServer) -> dict[str, str]:
    c1 = up.store.commit(
        "alice/tiny", {"config.json": b'{"v": 1}', "model.safetensors": LFS, "sub/notes.txt": b"hello"}
    )
    up.store.create_tag("alice/tiny", "v1")
    up.store.create_branch("alice/tiny", "dev")
    c2 = up.store.commit("alice/tiny", {"config.json": b'{"v": 2}'}, branch="dev")
    return {"c1": c1, "c2": c2}


def start_mirror(root: Path, upstream: str, **kw: Any) -> HubServer:
    server_kw = {k: kw.pop(k) for k in ("users", "orgs") if k in kw}
    cfg = MirrorConfig(upstream, backoff=0.01, max_retry_after=0.05, **kw)
    return HubServer(root, upstream=cfg, **server_kw).start()


@pytest.fixture
def mirror(tmp_path: Path, up: HubServer) -> Iterator[HubServer]:
    srv = start_mirror(tmp_path / "mirror", up.url)
    try:
        yield srv
    finally:
        srv.stop()


def gets(up: HubServer, prefix: str) -> int:
    """GET requests the upstream saw whose path starts with ``prefix``."""
    return sum(1 for e in up.log.entries if e.method == "GET" and e.path.startswith(prefix))


def exact(up: HubServer, path: str) -> int:
    return sum(1 for e in up.log.entries if e.method == "GET" and e.path == path)


def test_hf_hub_download_fetches_each_file_from_upstream_once(
    tmp_path: Path, up: HubServer, mirror: HubServer
) -> None:
    seed(up)
    for n in range(2):  # two clients with their own caches
        cache = tmp_path / f"cache{n}"
        p = hf_hub_download("alice/tiny", "model.safetensors", endpoint=mirror.url, cache_dir=cache)
        assert Path(p).read_bytes() == LFS
        p = hf_hub_download("alice/tiny", "sub/notes.txt", endpoint=mirror.url, cache_dir=cache)
        assert Path(p).read_bytes() == b"hello"
    assert gets(up, "/cdn-lfs/") == 1  # the LFS body (after the upstream's 302)
    assert gets(up, "/alice/tiny/resolve/") == 2  # model.safetensors (302) + notes.txt, once each
    assert up.log.count("GET", "/refs") == 1


def test_snapshot_download_by_branch_tag_and_sha(tmp_path: Path, up: HubServer, mirror: HubServer) -> None:
    shas = seed(up)
    for rev, want in (
        ("main", b'{"v": 1}'),
        ("dev", b'{"v": 2}'),
        ("v1", b'{"v": 1}'),
        (shas["c2"], b'{"v": 2}'),
    ):
        d = Path(snapshot_download("alice/tiny", revision=rev, endpoint=mirror.url, cache_dir=tmp_path / rev))
        assert (d / "config.json").read_bytes() == want
        assert (d / "model.safetensors").read_bytes() == LFS
        assert (d / "sub" / "notes.txt").read_bytes() == b"hello"
    api = HfApi(endpoint=mirror.url)
    refs = api.list_repo_refs("alice/tiny")
    assert {b.name: b.target_commit for b in refs.branches} == {"main": shas["c1"], "dev": shas["c2"]}
    assert [t.name for t in refs.tags] == ["v1"]
    info = api.model_info("alice/tiny", revision="dev", files_metadata=True)
    assert info.sha == shas["c2"]
    sizes = {s.rfilename: s.size for s in info.siblings or []}
    assert sizes["model.safetensors"] == len(LFS)
    tree = {e.path: e for e in api.list_repo_tree("alice/tiny", recursive=True)}
    up_tree = {e.path: e for e in HfApi(endpoint=up.url).list_repo_tree("alice/tiny", recursive=True)}
    assert {p: getattr(e, "blob_id", None) or e.tree_id for p, e in tree.items()} == {  # type: ignore[union-attr]
        p: getattr(e, "blob_id", None) or e.tree_id  # type: ignore[union-attr]
        for p, e in up_tree.items()
    }
    assert gets(up, "/cdn-lfs/") == 1  # the same LFS object in every revision: fetched once


def test_range_requests_cold_and_warm(up: HubServer, mirror: HubServer) -> None:
    seed(up)
    url = f"{mirror.url}/alice/tiny/resolve/main/model.safetensors"
    for _ in range(2):
        r = httpx.get(url, headers={"Range": "bytes=1000-1999"}, follow_redirects=True)
        assert r.status_code == 206 and r.content == LFS[1000:2000]
        assert r.headers["Content-Range"] == f"bytes 1000-1999/{len(LFS)}"
    r = httpx.get(url, headers={"Range": f"bytes={len(LFS)}-"}, follow_redirects=True)
    assert r.status_code == 416
    head = httpx.head(f"{mirror.url}/alice/tiny/resolve/main/config.json")
    assert head.headers["X-Repo-Commit"] == up.store.resolve("alice/tiny") and head.headers["ETag"]
    assert gets(up, "/cdn-lfs/") == 1


def test_hf_hub_download_with_a_range_resume(tmp_path: Path, up: HubServer, mirror: HubServer) -> None:
    seed(up)
    r = httpx.get(f"{mirror.url}/alice/tiny/resolve/main/sub/notes.txt", headers={"Range": "bytes=-3"})
    assert r.status_code == 206 and r.content == b"llo"


def test_branches_reresolve_after_the_ttl_commits_never(tmp_path: Path, up: HubServer) -> None:
    shas = seed(up)
    slow = start_mirror(tmp_path / "slow", up.url, ttl=3600)
    fast = start_mirror(tmp_path / "fast", up.url, ttl=0)
    try:
        assert HfApi(endpoint=slow.url).model_info("alice/tiny").sha == shas["c1"]
        assert HfApi(endpoint=fast.url).model_info("alice/tiny").sha == shas["c1"]
        c3 = up.store.commit("alice/tiny", {"config.json": b'{"v": 3}'})
        assert HfApi(endpoint=slow.url).model_info("alice/tiny").sha == shas["c1"]  # within the TTL
        assert HfApi(endpoint=fast.url).model_info("alice/tiny").sha == c3
        p = hf_hub_download("alice/tiny", "config.json", endpoint=fast.url, cache_dir=tmp_path / "c")
        assert Path(p).read_bytes() == b'{"v": 3}'
        up.log.clear()
        for _ in range(3):  # a commit sha is never re-resolved, even with a TTL of 0
            assert HfApi(endpoint=fast.url).model_info("alice/tiny", revision=shas["c2"]).sha == shas["c2"]
            httpx.head(f"{fast.url}/alice/tiny/resolve/{c3}/config.json").raise_for_status()
        assert (
            up.log.count("GET", "/revision/") == 1 and up.log.count("GET", "/refs") == 1
        )  # c2 once (it is on no branch now)
    finally:
        slow.stop()
        fast.stop()


def test_offline_serves_only_the_cache(tmp_path: Path, up: HubServer) -> None:
    seed(up)
    root = tmp_path / "m"
    online = start_mirror(root, up.url)
    try:
        hf_hub_download("alice/tiny", "config.json", endpoint=online.url, cache_dir=tmp_path / "c0")
    finally:
        online.stop()
    up.stop()
    dead = f"http://127.0.0.1:{free_port()}"
    off = start_mirror(root, dead, offline=True)
    try:
        p = hf_hub_download("alice/tiny", "config.json", endpoint=off.url, cache_dir=tmp_path / "c1")
        assert Path(p).read_bytes() == b'{"v": 1}'
        r = httpx.get(f"{off.url}/alice/tiny/resolve/main/model.safetensors", follow_redirects=True)
        assert r.status_code == 404 and "offline mirror" in r.json()["error"]
        with pytest.raises(EntryNotFoundError):
            hf_hub_download("alice/tiny", "model.safetensors", endpoint=off.url, cache_dir=tmp_path / "c2")
        r = httpx.get(f"{off.url}/api/models/alice/other")
        assert r.status_code == 404 and r.headers["X-Error-Code"] == "RepoNotFound"
        assert "offline mirror" in r.json()["error"]
        r = httpx.get(f"{off.url}/api/models/alice/tiny/revision/dev")
        assert r.status_code == 404 and r.headers["X-Error-Code"] == "RevisionNotFound"
        assert "offline mirror" in r.json()["error"]
    finally:
        off.stop()


def test_unreachable_upstream_503_or_stale(tmp_path: Path, up: HubServer) -> None:
    dead = start_mirror(tmp_path / "dead", f"http://127.0.0.1:{free_port()}", attempts=2)
    try:
        r = httpx.get(f"{dead.url}/api/models/alice/tiny")
        assert r.status_code == 503 and r.headers["Retry-After"] and "no cached copy" in r.json()["error"]
    finally:
        dead.stop()
    seed(up)
    m = start_mirror(tmp_path / "m", up.url, ttl=0, attempts=2)
    try:
        hf_hub_download("alice/tiny", "config.json", endpoint=m.url, cache_dir=tmp_path / "c0")
        up.stop()  # the upstream goes away: what was resolved and fetched before is still served
        assert HfApi(endpoint=m.url).model_info("alice/tiny").sha == up.store.resolve("alice/tiny")
        r = httpx.get(f"{m.url}/alice/tiny/resolve/main/config.json")
        assert r.status_code == 200 and r.content == b'{"v": 1}'
        r = httpx.get(f"{m.url}/alice/tiny/resolve/main/sub/notes.txt")
        assert r.status_code == 503
    finally:
        m.stop()


def test_lru_eviction_under_the_size_limit(tmp_path: Path, up: HubServer) -> None:
    up.store.commit("alice/three", {"a.safetensors": LFS, "b.safetensors": LFS2, "c.safetensors": LFS3})
    up.store.commit("alice/big", {"big.safetensors": os.urandom(800_000)})
    m = start_mirror(tmp_path / "m", up.url, max_bytes=700_000)
    try:
        base = f"{m.url}/alice/three/resolve/main"
        assert httpx.get(f"{base}/a.safetensors", follow_redirects=True).content == LFS
        assert httpx.get(f"{base}/b.safetensors", follow_redirects=True).content == LFS2
        assert httpx.get(f"{base}/a.safetensors", follow_redirects=True).content == LFS  # a: recently used
        assert httpx.get(f"{base}/c.safetensors", follow_redirects=True).content == LFS3  # evicts b
        assert m.mirror is not None and m.mirror.cached_bytes <= 700_000
        files = m.store.commit_of("alice/three").files
        assert not cache_path(m.store, files["b.safetensors"]).exists()
        assert cache_path(m.store, files["a.safetensors"]).exists()
        assert httpx.get(f"{base}/b.safetensors", follow_redirects=True).content == LFS2
        assert gets(up, "/cdn-lfs/") == 4  # a, b, c, and b again
        r = httpx.get(f"{m.url}/alice/big/resolve/main/big.safetensors", follow_redirects=True)
        assert r.status_code == 507 and "larger than this mirror's cache" in r.json()["error"]
    finally:
        m.stop()


def test_eviction_spares_blobs_hosted_repos_hold(tmp_path: Path, up: HubServer) -> None:
    up.store.commit("alice/three", {"a.safetensors": LFS, "b.safetensors": LFS2})
    m = start_mirror(tmp_path / "m", up.url, max_bytes=400_000)
    try:
        m.store.commit("local/own", {"a.safetensors": LFS})  # a hosted repo holds the same object
        base = f"{m.url}/alice/three/resolve/main"
        assert httpx.get(f"{base}/a.safetensors", follow_redirects=True).content == LFS
        assert httpx.get(f"{base}/b.safetensors", follow_redirects=True).content == LFS2
        r = httpx.get(f"{m.url}/local/own/resolve/main/a.safetensors", follow_redirects=True)
        assert r.content == LFS
    finally:
        m.stop()


def test_concurrent_clients_cause_one_upstream_fetch(
    tmp_path: Path, up: HubServer, mirror: HubServer
) -> None:
    seed(up)
    up.faults.configure(latency_ms=300, path_filter="/cdn-lfs/")  # keep the first fetch in flight
    n = 8
    results: list[bytes] = []
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            p = hf_hub_download(
                "alice/tiny", "model.safetensors", endpoint=mirror.url, cache_dir=tmp_path / f"c{i}"
            )
            results.append(Path(p).read_bytes())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and results == [LFS] * n
    assert gets(up, "/cdn-lfs/") == 1  # one upstream body for N clients
    assert exact(up, "/api/models/alice/tiny") == 1  # and one metadata fetch


@pytest.mark.parametrize(
    "knobs",
    [
        {"rate_limit": 2, "retry_after": "0"},
        {"server_errors": 3},
        {"drop_after_bytes": 100_000, "drop_count": 2, "path_filter": "/cdn-lfs/"},
        {"corrupt": 1, "path_filter": "/cdn-lfs/"},
        {"ignore_range": True, "drop_after_bytes": 50_000, "drop_count": 1, "path_filter": "/cdn-lfs/"},
    ],
    ids=["429", "5xx", "drops", "corrupt", "no-range-after-drop"],
)
def test_upstream_faults_are_survived(
    tmp_path: Path, up: HubServer, mirror: HubServer, knobs: dict[str, Any]
) -> None:
    seed(up)
    up.faults.configure(**knobs)
    p = hf_hub_download("alice/tiny", "model.safetensors", endpoint=mirror.url, cache_dir=tmp_path / "c")
    assert Path(p).read_bytes() == LFS
    assert up.faults.injected > 0


def test_random_upstream_faults_are_survived(tmp_path: Path, up: HubServer) -> None:
    # Fixed contents: the fault draws depend on the request paths, which name the LFS digest.
    weights = random.Random(5).randbytes(300_000)
    up.store.commit("alice/chaos", {"config.json": b'{"v": 9}', "model.safetensors": weights})
    m = start_mirror(tmp_path / "m", up.url, attempts=20)
    try:
        up.faults.configure(fault_rate=0.4, fault_seed=3)
        d = snapshot_download("alice/chaos", endpoint=m.url, cache_dir=tmp_path / "c")
        assert (Path(d) / "model.safetensors").read_bytes() == weights
        assert (Path(d) / "config.json").read_bytes() == b'{"v": 9}'
        assert up.faults.injected > 0
    finally:
        m.stop()


def test_content_that_never_verifies_is_not_cached(tmp_path: Path, up: HubServer) -> None:
    seed(up)
    m = start_mirror(tmp_path / "m", up.url, attempts=3)
    try:
        up.faults.configure(corrupt=100, path_filter="/resolve/")  # every regular body corrupted
        r = httpx.get(f"{m.url}/alice/tiny/resolve/main/sub/notes.txt")
        assert r.status_code == 503
        entry = m.store.commit_of("alice/tiny").files["sub/notes.txt"]
        assert not cache_path(m.store, entry).exists()
        up.faults.reset()
        assert httpx.get(f"{m.url}/alice/tiny/resolve/main/sub/notes.txt").content == b"hello"
    finally:
        m.stop()


@pytest.mark.parametrize("bad", ["a:b.txt", "x/CON", "dir/.git/config"])
def test_hostile_upstream_paths_are_refused(
    tmp_path: Path, up: HubServer, mirror: HubServer, bad: str
) -> None:
    up.store.commit("evil/repo", {bad: b"x", "ok.txt": b"y"})
    r = httpx.get(f"{mirror.url}/api/models/evil/repo")
    assert r.status_code == 502 and "invalid" in r.json()["error"]
    assert not any(st.repo_id == "evil/repo" for st in mirror.store.repos())


def test_oversized_upstream_answers_are_refused(tmp_path: Path, up: HubServer) -> None:
    up.store.commit("alice/many", {f"f{i}.txt": b"x" for i in range(50)})
    m = start_mirror(tmp_path / "m", up.url, max_json=2000)
    try:
        r = httpx.get(f"{m.url}/api/models/alice/many")
        assert r.status_code == 502 and "larger than 2000 bytes" in r.json()["error"]
    finally:
        m.stop()
    m = start_mirror(tmp_path / "m2", up.url, max_files=10)
    try:
        r = httpx.get(f"{m.url}/api/models/alice/many")
        assert r.status_code == 502 and "over 10 files" in r.json()["error"]
    finally:
        m.stop()


def test_mirrored_repos_are_read_only_and_hosted_repos_win(
    tmp_path: Path, up: HubServer, mirror: HubServer
) -> None:
    seed(up)
    api = HfApi(endpoint=mirror.url, token="x")
    api.model_info("alice/tiny")
    with pytest.raises(HfHubHTTPError) as exc:
        api.upload_file(path_or_fileobj=b"x", path_in_repo="new.txt", repo_id="alice/tiny")
    assert exc.value.response.status_code == 403 and "read-only mirror" in str(exc.value)
    mirror.store.commit("bob/tiny", {"config.json": b"local"})
    up.store.commit("bob/tiny", {"config.json": b"upstream"})
    up.log.clear()
    r = httpx.get(f"{mirror.url}/bob/tiny/resolve/main/config.json")
    assert r.content == b"local" and not up.log.entries


def test_restart_serves_the_cache_without_refetching(tmp_path: Path, up: HubServer) -> None:
    seed(up)
    up.store.commit("alice/tiny", {"other.safetensors": LFS2}, branch="dev")  # never fetched
    m = start_mirror(tmp_path / "m", up.url)
    try:
        hf_hub_download("alice/tiny", "model.safetensors", endpoint=m.url, cache_dir=tmp_path / "c0")
        HfApi(endpoint=m.url).model_info("alice/tiny", revision="dev")
        m.store.commit("local/own", {"x.safetensors": LFS3})  # hosted: not counted in the cache
    finally:
        m.stop()
    m = start_mirror(tmp_path / "m", up.url, max_bytes=10_000_000)
    try:
        assert m.mirror is not None and m.mirror.cached_bytes == len(LFS)
        up.log.clear()
        p = hf_hub_download("alice/tiny", "model.safetensors", endpoint=m.url, cache_dir=tmp_path / "c1")
        assert Path(p).read_bytes() == LFS and gets(up, "/cdn-lfs/") == 0
    finally:
        m.stop()
    # Served by a plain server (no --upstream): public cached content stays readable, uncached is 404.
    plain = HubServer(tmp_path / "m").start()
    try:
        r = httpx.get(f"{plain.url}/alice/tiny/resolve/main/model.safetensors", follow_redirects=True)
        assert r.content == LFS
        r = httpx.get(f"{plain.url}/alice/tiny/resolve/main/config.json")
        assert r.status_code == 404 and "not cached" in r.json()["error"]
    finally:
        plain.stop()


# ---------------------------------------------------------------------- private upstream repos
@pytest.fixture
def private_up(tmp_path: Path) -> Iterator[HubServer]:
    srv = HubServer(
        tmp_path / "pup",
        users=[UserSpec("bot", "tok-upstream-bot", "read"), UserSpec("owner", "tok-owner", "write")],
        orgs={"acme": ["bot", "owner"]},
    ).start()
    srv.store.commit("acme/secret", {"weights.safetensors": LFS, "config.json": b"{}"})
    srv.store.update_settings("acme/secret", private=True)
    srv.store.commit("acme/gated", {"config.json": b"{}"})
    srv.store.update_settings("acme/gated", gated="auto")
    srv.store.commit("acme/open", {"config.json": b"{}"})
    try:
        yield srv
    finally:
        srv.stop()


MIRROR_USERS = [UserSpec("alice", "tok-m-alice", "read"), UserSpec("bob", "tok-m-bob", "read")]


def _status(m: HubServer, repo: str, token: str | None) -> int:
    h = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{m.url}/{repo}/resolve/main/config.json", headers=h).status_code


def test_upstream_private_repos_are_hidden_by_default(tmp_path: Path, private_up: HubServer) -> None:
    m = start_mirror(tmp_path / "m", private_up.url, token="tok-upstream-bot", users=MIRROR_USERS)
    try:
        for repo in ("acme/secret", "acme/gated"):
            for tok in (None, "tok-m-alice", "tok-m-bob"):
                assert _status(m, repo, tok) == 404
        assert _status(m, "acme/open", None) == 200
        with pytest.raises(RepositoryNotFoundError):
            HfApi(endpoint=m.url, token="tok-m-alice").model_info("acme/secret")
        # the search never lists them either
        names = [x.id for x in HfApi(endpoint=m.url, token="tok-m-bob").list_models()]
        assert names == ["acme/open"]
    finally:
        m.stop()


def test_upstream_private_repos_follow_the_access_rules(tmp_path: Path, private_up: HubServer) -> None:
    m = start_mirror(
        tmp_path / "m",
        private_up.url,
        token="tok-upstream-bot",
        users=MIRROR_USERS,
        orgs={"team": ["alice"]},
        private_access=(AccessRule.parse("other/*=*"), AccessRule.parse("acme/*=team")),
    )
    try:
        assert _status(m, "acme/secret", "tok-m-alice") == 200
        assert _status(m, "acme/gated", "tok-m-alice") == 200
        assert _status(m, "acme/secret", "tok-m-bob") == 404
        assert _status(m, "acme/secret", None) == 404
        p = hf_hub_download(
            "acme/secret",
            "weights.safetensors",
            endpoint=m.url,
            token="tok-m-alice",
            cache_dir=tmp_path / "c",
        )
        assert Path(p).read_bytes() == LFS
        r = httpx.get(  # the blob URL is authorised like the repo
            f"{m.url}/acme/secret/resolve/main/weights.safetensors",
            headers={"Authorization": "Bearer tok-m-bob"},
            follow_redirects=True,
        )
        assert r.status_code == 404
    finally:
        m.stop()
    nobody = start_mirror(tmp_path / "m3", private_up.url, token="tok-upstream-bot")
    try:  # open mode without a rule: hidden from everyone too
        assert _status(nobody, "acme/secret", None) == 404 and _status(nobody, "acme/open", None) == 200
    finally:
        nobody.stop()
    everyone = start_mirror(
        tmp_path / "m2", private_up.url, token="tok-upstream-bot", private_access=(AccessRule.parse("*=*"),)
    )
    try:  # open mode + '*': everyone
        assert _status(everyone, "acme/secret", None) == 200
    finally:
        everyone.stop()


def test_without_an_upstream_token_private_repos_do_not_exist(tmp_path: Path, private_up: HubServer) -> None:
    m = start_mirror(tmp_path / "m", private_up.url, private_access=(AccessRule.parse("*=*"),))
    try:
        assert _status(m, "acme/secret", None) == 404
        assert "tok-upstream-bot" not in repr(m.mirror.config if m.mirror else "")
    finally:
        m.stop()


def test_config_helpers() -> None:
    assert parse_size("10G") == 10 << 30 and parse_size("1.5MiB") == 3 << 19 and parse_size("123") == 123
    with pytest.raises(ValueError):
        parse_size("-1")
    with pytest.raises(ValueError):
        AccessRule.parse("nope")
    assert AccessRule.parse("acme/* = alice, acme") == AccessRule("acme/*", ("alice", "acme"))


def test_the_readme_comes_with_its_commit(tmp_path: Path, up: HubServer, mirror: HubServer) -> None:
    card = b"---\nlicense: mit\n---\n# Tiny\n"
    up.store.commit("alice/card", {"README.md": card, "config.json": b"{}"})
    info = HfApi(endpoint=mirror.url).model_info("alice/card")
    assert info.card_data is not None and info.card_data.get("license") == "mit"
    readme = mirror.store.commit_of("alice/card").files["README.md"]
    assert mirror.store.blob_path(readme.sha256).read_bytes() == card  # readable like a hosted card
    assert mirror.mirror is not None and mirror.mirror.cached_bytes == 0  # not part of the LRU cache
    up.log.clear()
    assert httpx.get(f"{mirror.url}/alice/card/resolve/main/README.md").content == card
    assert not up.log.entries


def test_web_pages_of_an_upstream_repo_render_through_the_mirror(up: HubServer, mirror: HubServer) -> None:
    import httpx2

    seed(up)
    up.store.commit("alice/tiny", {"README.md": b"---\nlicense: mit\n---\n# Tiny <b>card</b>\n"})
    html = {"Accept": "text/html"}
    r = httpx2.get(f"{mirror.url}/alice/tiny", headers=html)
    assert r.status_code == 200 and "text/html" in r.headers["content-type"], r.text[:300]
    assert "alice/tiny" in r.text and "Tiny" in r.text and "<b>card</b>" not in r.text
    assert httpx2.get(f"{mirror.url}/alice/tiny/tree/main", headers=html).status_code == 200
    assert httpx2.get(f"{mirror.url}/alice/none-such", headers=html).status_code == 404
