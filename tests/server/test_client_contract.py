"""Contract tests: the REAL huggingface_hub client against our server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from batuta_sync.server import HubServer


def _api(srv: HubServer, token: str | None = "tok") -> HfApi:
    return HfApi(endpoint=srv.url, token=token)


def _folder(tmp_path: Path) -> Path:
    d = tmp_path / "up"
    (d / "sub").mkdir(parents=True)
    (d / "config.json").write_text('{"hidden_size": 4}')
    (d / "sub" / "model.safetensors").write_bytes(os.urandom(3000))
    (d / "empty.txt").write_bytes(b"")
    (d / "README.md").write_text("---\nlicense: mit\nlibrary_name: transformers\ntags: [demo]\n---\n# demo\n")
    return d


def test_whoami_open_mode(hub_server: HubServer) -> None:
    me = _api(hub_server).whoami()
    assert me["name"] == "local"
    assert me["auth"]["accessToken"]["role"] == "write"


def test_create_repo_exist_ok(hub_server: HubServer) -> None:
    api = _api(hub_server)
    url = api.create_repo("local/one")
    assert url.repo_id == "local/one"
    assert str(url) == f"{hub_server.url}/local/one"
    again = api.create_repo("local/one", exist_ok=True)
    assert again.repo_id == "local/one"
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo("local/one", exist_ok=False)
    assert exc.value.response.status_code == 409
    ds = api.create_repo("local/data", repo_type="dataset")
    assert str(ds) == f"{hub_server.url}/datasets/local/data"


def test_upload_folder_regular_and_lfs(hub_server: HubServer, tmp_path: Path) -> None:
    api = _api(hub_server)
    api.create_repo("local/up")
    folder = _folder(tmp_path)
    info = api.upload_folder(repo_id="local/up", folder_path=folder, commit_message="first")
    assert len(info.oid) == 40
    # LFS went through batch + PUT + verify; the rest inline in the NDJSON commit.
    assert hub_server.log.count("POST", "/info/lfs/objects/batch") == 1
    assert hub_server.log.count("PUT", "/lfs-upload/") == 1
    assert hub_server.log.count("POST", "/lfs-verify") == 1
    m = api.model_info("local/up", files_metadata=True)
    assert m.sha == info.oid
    sib = {s.rfilename: s for s in m.siblings or []}
    assert set(sib) == {"README.md", "config.json", "empty.txt", "sub/model.safetensors"}
    st = sib["sub/model.safetensors"]
    data = (folder / "sub" / "model.safetensors").read_bytes()
    assert st.lfs is not None and st.lfs.sha256 == hashlib.sha256(data).hexdigest()
    assert st.size == 3000
    cfg = (folder / "config.json").read_bytes()
    assert sib["config.json"].blob_id == hashlib.sha1(b"blob %d\0" % len(cfg) + cfg).hexdigest()
    assert sib["config.json"].lfs is None and sib["empty.txt"].lfs is None
    assert m.card_data is not None and m.card_data.get("license") == "mit"
    assert m.library_name == "transformers"
    assert "demo" in (m.tags or []) and "license:mit" in (m.tags or [])
    # Re-uploading the same content: preupload returns remote oids, client makes no new commit.
    hub_server.log.clear()
    api.upload_folder(repo_id="local/up", folder_path=folder)
    assert hub_server.log.count("POST", "/commit/") == 0
    assert api.model_info("local/up").sha == info.oid


def test_tree_and_download(hub_server: HubServer, tmp_path: Path) -> None:
    api = _api(hub_server)
    folder = _folder(tmp_path)
    api.create_repo("local/dl")
    commit = api.upload_folder(repo_id="local/dl", folder_path=folder).oid
    tree = {e.path: e for e in api.list_repo_tree("local/dl", recursive=True)}
    assert set(tree) == {"README.md", "config.json", "empty.txt", "sub", "sub/model.safetensors"}
    assert type(tree["sub"]).__name__ == "RepoFolder"
    top = {e.path for e in api.list_repo_tree("local/dl")}
    assert top == {"README.md", "config.json", "empty.txt", "sub"}
    sub = [e.path for e in api.list_repo_tree("local/dl", path_in_repo="sub")]
    assert sub == ["sub/model.safetensors"]
    cache = tmp_path / "cache"
    p = hf_hub_download("local/dl", "sub/model.safetensors", endpoint=hub_server.url, cache_dir=cache)
    assert Path(p).read_bytes() == (folder / "sub" / "model.safetensors").read_bytes()
    assert commit in p
    snap = snapshot_download("local/dl", endpoint=hub_server.url, cache_dir=tmp_path / "c2")
    assert (Path(snap) / "config.json").read_bytes() == (folder / "config.json").read_bytes()
    assert (Path(snap) / "empty.txt").read_bytes() == b""
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("local/dl", "nope.txt", endpoint=hub_server.url, cache_dir=tmp_path / "c3")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(
            "local/dl", "config.json", revision="nobranch", endpoint=hub_server.url, cache_dir=cache
        )
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("local/missing")


def test_range_request_returns_206(hub_server: HubServer) -> None:
    import httpx2 as httpx

    hub_server.store.commit("local/r", {"big.bin": bytes(range(256)) * 40})
    url = f"{hub_server.url}/local/r/resolve/main/big.bin"
    with httpx.Client(follow_redirects=True) as c:
        head = c.head(url)
        assert head.status_code == 200
        assert head.headers["X-Repo-Commit"] == hub_server.store.resolve("local/r", "main")
        r = c.get(url, headers={"Range": "bytes=10-19"})
        assert r.status_code == 206
        assert r.content == (bytes(range(256)) * 40)[10:20]
        assert r.headers["Content-Range"] == "bytes 10-19/10240"
        r = c.get(url, headers={"Range": "bytes=-5"})
        assert r.status_code == 206 and len(r.content) == 5
        r = c.get(url, headers={"Range": "bytes=0-3", "If-Range": '"other"'})
        assert r.status_code == 200 and len(r.content) == 10240
        r = c.get(url, headers={"Range": "bytes=99999-"})
        assert r.status_code == 416


def test_lfs_resolve_headers(hub_server: HubServer) -> None:
    import httpx2 as httpx

    data = b"x" * 1000
    sha = hub_server.store.commit("local/h", {"w.safetensors": data, "a.txt": b"hello"})
    with httpx.Client() as c:
        r = c.head(f"{hub_server.url}/local/h/resolve/main/w.safetensors")
        assert r.status_code == 302
        assert r.headers["X-Linked-Etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
        assert r.headers["X-Linked-Size"] == "1000"
        assert r.headers["X-Repo-Commit"] == sha
        r2 = c.head(f"{hub_server.url}/local/h/resolve/main/a.txt")
        assert r2.status_code == 200
        assert r2.headers["ETag"] == f'"{hashlib.sha1(b"blob 5" + bytes([0]) + b"hello").hexdigest()}"'
        assert r2.headers["Content-Length"] == "5"
        r3 = c.post(
            f"{hub_server.url}/api/validate-yaml", json={"content": "---\na: [\n---\n", "repoType": "model"}
        )
        assert r3.status_code == 400 and r3.json()["errors"][0]["message"]
        r4 = c.get(f"{hub_server.url}/api/models/local/h/resolve-nothing")
        assert r4.status_code == 404 and "error" in json.loads(r4.content)


def test_cdn_blob_is_scoped_to_its_repo(hub_server: HubServer) -> None:
    import httpx2 as httpx

    data = b"secret weights" * 10
    sha_a = hub_server.store.commit("local/a", {"w.bin": data})
    sha_b = hub_server.store.commit("local/b", {"other.bin": b"o" * 20})
    oid = hashlib.sha256(data).hexdigest()
    base = hub_server.url
    assert httpx.get(f"{base}/cdn-lfs/model/local/a/resolve/{sha_a}/{oid}").content == data
    assert httpx.get(f"{base}/cdn-lfs/model/local/b/resolve/{sha_b}/{oid}").status_code == 404
    assert httpx.get(f"{base}/cdn-lfs/bogus/local/b/resolve/{sha_b}/{oid}").status_code == 404
    # git-lfs style download batch
    body = {
        "operation": "download",
        "objects": [{"oid": oid, "size": len(data)}, {"oid": "0" * 64, "size": 1}],
    }
    r = httpx.post(f"{base}/local/a.git/info/lfs/objects/batch", json=body).json()
    href = r["objects"][0]["actions"]["download"]["href"]
    assert httpx.get(href).content == data
    assert r["objects"][1]["error"]["code"] == 404
    bad = {"operation": "upload", "objects": [{"oid": "nothex", "size": 1}]}
    assert httpx.post(f"{base}/local/a.git/info/lfs/objects/batch", json=bad).json()["objects"][0]["error"]
    # PUT without a negotiated batch is refused; verify of an unknown object is 404
    assert httpx.put(f"{base}/lfs-upload/{'1' * 64}", content=b"x").status_code == 403
    assert httpx.post(f"{base}/lfs-verify", json={"oid": "1" * 64, "size": 1}).status_code == 404


def test_snapshot_download_allow_patterns_and_cache_reuse(hub_server: HubServer, tmp_path: Path) -> None:
    files = {
        "config.json": b"{}",
        "w/model.safetensors": b"s" * 100,
        "w/extra.bin": b"b" * 50,
        "notes.md": b"n",
    }
    sha = hub_server.store.commit("local/snap", files)
    cache = tmp_path / "cache"
    p = Path(
        snapshot_download(
            "local/snap",
            endpoint=hub_server.url,
            cache_dir=cache,
            allow_patterns=["*.json", "w/*.safetensors"],
        )
    )
    got = sorted(str(f.relative_to(p)) for f in p.rglob("*") if f.is_file())
    assert got == ["config.json", "w/model.safetensors"]
    assert p.name == sha
    assert (p / "w" / "model.safetensors").read_bytes() == b"s" * 100
    hub_server.log.clear()
    # Same sha again: everything answered from the cache (only the revision lookup hits the server).
    snapshot_download(
        "local/snap", revision=sha, endpoint=hub_server.url, cache_dir=cache, allow_patterns=["*.json"]
    )
    assert hub_server.log.count(path_contains="/resolve/") == 0
    ld = tmp_path / "ld"
    snapshot_download("local/snap", endpoint=hub_server.url, local_dir=ld, ignore_patterns=["*.bin"])
    assert sorted(
        str(f.relative_to(ld)) for f in ld.rglob("*") if f.is_file() and ".cache" not in f.parts
    ) == ["config.json", "notes.md", "w/model.safetensors"]


def test_invalid_readme_yaml_rejected_by_client(hub_server: HubServer) -> None:
    api = _api(hub_server)
    api.create_repo("local/y")
    with pytest.raises(ValueError, match="Invalid metadata"):
        api.upload_file(path_or_fileobj=b"---\na: [\n---\n", path_in_repo="README.md", repo_id="local/y")


def test_request_log_is_bounded() -> None:
    from batuta_sync.server import LogEntry, RequestLog

    log = RequestLog(max_entries=10)
    idx = [log.add(LogEntry("GET", f"/p{i}", "", 200, 0, 0)) for i in range(25)]
    assert len(log.entries) <= 10 and log.entries[-1].path == "/p24"
    log.replace(idx[-1], LogEntry("GET", "/p24", "", 200, 0, 5))
    log.replace(idx[0], LogEntry("GET", "/gone", "", 200, 0, 5))  # dropped long ago: ignored
    assert log.entries[-1].bytes_out == 5 and all(e.path != "/gone" for e in log.entries)


def test_preupload_should_ignore_follows_gitignore(hub_server: HubServer, tmp_path: Path) -> None:
    api = _api(hub_server)
    hub_server.store.commit("local/gi", {".gitignore": b"*.log\nscratch/\n"})
    d = tmp_path / "gi"
    (d / "scratch").mkdir(parents=True)
    (d / "keep.txt").write_text("k")
    (d / "debug.log").write_text("noise")
    (d / "scratch" / "tmp.txt").write_text("t")
    api.upload_folder(repo_id="local/gi", folder_path=d)
    assert sorted(api.list_repo_files("local/gi")) == [".gitignore", "keep.txt"]
