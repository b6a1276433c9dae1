"""Branches, tags, commits, revisions (branch/tag/sha/short sha/refs/pr/N), parentCommit, paths-info."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

from batuta_sync.server import HubServer, StoreError


@pytest.fixture
def api(hub_server: HubServer) -> HfApi:
    return HfApi(endpoint=hub_server.url, token="tok")


def _add(path: str, data: bytes) -> CommitOperationAdd:
    return CommitOperationAdd(path_in_repo=path, path_or_fileobj=data)


def test_branches_tags_and_revisions(hub_server: HubServer, api: HfApi, tmp_path: Path) -> None:
    api.create_repo("local/h")
    c1 = api.create_commit("local/h", [_add("f.txt", b"v1")], commit_message="one").oid
    api.create_branch("local/h", branch="dev")
    api.create_tag("local/h", tag="v1.0", tag_message="first")
    c2 = api.create_commit("local/h", [_add("f.txt", b"v2")], commit_message="two\n\nbody").oid
    c3 = api.create_commit("local/h", [_add("f.txt", b"v3")], commit_message="three", revision="dev").oid
    refs = api.list_repo_refs("local/h")
    assert {b.name: b.target_commit for b in refs.branches} == {"main": c2, "dev": c3}
    assert [(t.name, t.ref, t.target_commit) for t in refs.tags] == [("v1.0", "refs/tags/v1.0", c1)]
    commits = api.list_repo_commits("local/h")
    assert [c.commit_id for c in commits][:2] == [c2, c1]
    assert commits[0].title == "two" and commits[0].message == "body"
    assert commits[-1].title == "initial commit"
    assert [c.commit_id for c in api.list_repo_commits("local/h", revision="dev")][:2] == [c3, c1]
    assert api.list_repo_commits("local/h", formatted=True)[0].formatted_title == "two"

    def get(rev: str, cache: str) -> bytes:
        return Path(
            hf_hub_download(
                "local/h", "f.txt", revision=rev, endpoint=hub_server.url, cache_dir=tmp_path / cache
            )
        ).read_bytes()

    assert get("main", "a") == b"v2"
    assert get("dev", "b") == b"v3"
    assert get("v1.0", "c") == b"v1"
    assert get(c1, "d") == b"v1"
    assert api.model_info("local/h", revision=c2[:8]).sha == c2
    assert api.model_info("local/h", revision="refs/heads/dev").sha == c3
    with pytest.raises(RevisionNotFoundError):
        api.model_info("local/h", revision="0" * 40)
    # duplicate branch/tag -> 409 (exist_ok swallows)
    with pytest.raises(HfHubHTTPError):
        api.create_branch("local/h", branch="dev")
    api.create_branch("local/h", branch="dev", exist_ok=True)
    with pytest.raises(HfHubHTTPError):
        api.create_tag("local/h", tag="v1.0")
    api.delete_tag("local/h", tag="v1.0")
    api.delete_branch("local/h", branch="dev")
    refs = api.list_repo_refs("local/h")
    assert [b.name for b in refs.branches] == ["main"] and refs.tags == []


def test_pull_request_ref_and_local_dir(hub_server: HubServer, api: HfApi, tmp_path: Path) -> None:
    api.create_repo("local/pr")
    api.create_commit("local/pr", [_add("a.txt", b"main")], commit_message="base")
    info = api.create_commit("local/pr", [_add("a.txt", b"proposal")], commit_message="pr", create_pr=True)
    assert info.pr_num == 1 and info.pr_revision == "refs/pr/1"
    refs = api.list_repo_refs("local/pr", include_pull_requests=True)
    assert refs.pull_requests is not None and refs.pull_requests[0].ref == "refs/pr/1"
    p = hf_hub_download(
        "local/pr", "a.txt", revision="refs/pr/1", endpoint=hub_server.url, local_dir=tmp_path / "ld"
    )
    assert Path(p) == tmp_path / "ld" / "a.txt" and Path(p).read_bytes() == b"proposal"
    assert (tmp_path / "ld" / ".cache" / "huggingface" / "download" / "a.txt.metadata").exists()
    assert hub_server.log.count("HEAD", "/resolve/refs%2Fpr%2F1/a.txt") == 1
    assert api.model_info("local/pr").siblings[0].rfilename == "a.txt"  # type: ignore[index]


def test_parent_commit_mismatch_is_412(api: HfApi) -> None:
    api.create_repo("local/p")
    old = api.create_commit("local/p", [_add("x", b"1")], commit_message="1").oid
    api.create_commit("local/p", [_add("x", b"2")], commit_message="2", parent_commit=old)
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_commit("local/p", [_add("x", b"3")], commit_message="3", parent_commit=old)
    assert exc.value.response.status_code == 412


def test_paths_info_delete_and_delete_repo(hub_server: HubServer, api: HfApi) -> None:
    api.create_repo("local/d")
    api.create_commit(
        "local/d",
        [_add("a/b.txt", b"b"), _add("a/c.bin", b"\0" * 10), _add("top.md", b"t")],
        commit_message="files",
    )
    infos = {i.path: i for i in api.get_paths_info("local/d", ["a", "a/c.bin", "missing"])}
    assert set(infos) == {"a", "a/c.bin"}
    assert type(infos["a"]).__name__ == "RepoFolder"
    assert infos["a/c.bin"].lfs is not None  # .bin is LFS by policy
    expanded = api.get_paths_info("local/d", ["top.md"], expand=True)
    assert expanded[0].last_commit is not None and expanded[0].last_commit.title == "files"
    api.create_commit("local/d", [CommitOperationDelete("a/")], commit_message="rm a")
    assert api.list_repo_files("local/d") == ["top.md"]
    api.delete_repo("local/d")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("local/d")
    api.delete_repo("local/d", missing_ok=True)


def test_tree_pagination_with_link_header(hub_server: HubServer, api: HfApi) -> None:
    hub_server.store.commit("local/many", {f"f{i:02d}.txt": str(i).encode() for i in range(25)})
    hub_server.page_size = 10
    files = [e.path for e in api.list_repo_tree("local/many")]
    assert files == [f"f{i:02d}.txt" for i in range(25)]
    assert hub_server.log.count("GET", "/tree/") == 3
    commits = api.list_repo_commits("local/many")
    assert len(commits) == 2


def test_store_seeding_api(hub_server: HubServer, tmp_path: Path) -> None:
    store = hub_server.store
    src = tmp_path / "w.bin"
    src.write_bytes(b"abc" * 100)
    sha1 = store.commit("local/s", {"w.bin": src, "r.txt": b"r"}, message="seed")
    store.create_branch("local/s", "b2")
    store.create_tag("local/s", "t1", rev=sha1)
    sha2 = store.commit("local/s", {"r.txt": b"r2"}, deletes=["w.bin"], branch="b2")
    assert store.resolve("local/s", "b2") == sha2
    assert store.resolve("local/s", "t1") == sha1
    assert store.resolve("local/s", sha1[:10]) == sha1
    store.commit("local/s", {"n.txt": b"new"}, branch="fresh")  # new branch from main
    assert store.resolve("local/s", "fresh") != sha1
    with pytest.raises(StoreError) as exc:
        store.commit("local/s", {"x": b"1"}, parent=sha2)
    assert exc.value.status == 412
