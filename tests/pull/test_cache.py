"""HfCache (get/put/prune/clear, LRU, stats) and the cache layout helpers, on real files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from batuta_sync._fs import PathEscapeError
from batuta_sync.errors import UsageError
from batuta_sync.hub.cache import (
    CacheLayout,
    HfCache,
    cached_snapshot_at,
    git_blob_sha1,
    hash_local_file,
    materialize,
    parse_repo_folder,
    parse_size,
    read_ref,
    read_tree,
    repo_folder_name,
    write_ref,
    write_tree,
)
from batuta_sync.ids import InvalidIdentifierError
from batuta_sync.settings import resolve_settings
from batuta_sync.types import HfAssetType, RepoFile, RepoRef, RepoSnapshot


def make_model(root: Path, name: str, size: int) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"name": name}))
    (d / "model.safetensors").write_bytes(os.urandom(size))
    return d


@pytest.fixture
def cache(tmp_path: Path) -> HfCache:
    return HfCache.from_settings(resolve_settings())


def test_put_get_roundtrip_in_hf_layout(cache: HfCache, tmp_path: Path) -> None:
    src = make_model(tmp_path / "src", "m", 5000)
    snap = cache.put_model("org/m", "main", src)
    assert snap.parent.parent.name == "models--org--m"
    assert (snap / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()
    assert os.readlink(snap / "config.json").startswith("../../blobs/")
    assert cache.get_model("org/m", "main") == snap
    assert cache.get_model("org/m", "v2") is None and cache.get_model("org/other") is None
    listing = cached_snapshot_at(cache.root, RepoRef("org/m"))
    assert listing is not None and {f.path for f in listing.files} == {"config.json", "model.safetensors"}
    st = next(f for f in listing.files if f.path == "model.safetensors")
    assert st.sha256 is not None and st.blob_id
    cfg = next(f for f in listing.files if f.path == "config.json")
    assert cfg.sha256 is None and cfg.blob_id == git_blob_sha1((src / "config.json").read_bytes())
    # a 40-hex revision is the commit itself, no ref written
    sha = "b" * 40
    cache.put_model("org/m", sha, src / "config.json")
    assert cache.get_model("org/m", sha) == CacheLayout.of(cache.root, RepoRef("org/m")).snapshot_dir(sha)
    with pytest.raises(UsageError):
        cache.put_model("org/m", "main", tmp_path / "missing")


def test_prune_evicts_least_recently_used_to_fit(cache: HfCache, tmp_path: Path) -> None:
    for i, name in enumerate(["a", "b", "c"]):
        cache.put_model(f"org/{name}", "main", make_model(tmp_path / "src", name, 100_000 + i))
    folders = {s.repo_id: s for s in cache.snapshots()}
    # access order: b oldest, then a, then c (most recent)
    for when, rid in [(100.0, "org/b"), (200.0, "org/a"), (300.0, "org/c")]:
        cache.index.touch(repo_folder_name("model", rid), folders[rid].commit, when)
    for blob in cache.root.glob("models--org--*/blobs/*"):  # and nobody read the blobs since (LRU reads atime)
        os.utime(blob, (50.0, blob.stat().st_mtime))
    total = cache.total_size()
    assert total > 300_000
    freed = cache.prune(total - 50_000)  # must drop one repo: the LRU one
    assert freed >= 100_000
    assert sorted(s.repo_id for s in cache.snapshots()) == ["org/a", "org/c"]
    assert not (cache.root / "models--org--b").exists()
    assert cache.prune(10**12) == 0
    cache.get_model("org/a")  # a becomes most recent; c is next to go
    cache.prune(150_000)
    assert [s.repo_id for s in cache.snapshots()] == ["org/a"]
    with pytest.raises(UsageError):
        HfCache(cache.root).prune()


def test_prune_keeps_blobs_shared_with_remaining_snapshots(cache: HfCache, tmp_path: Path) -> None:
    src = make_model(tmp_path / "src", "m", 50_000)
    old = cache.put_model("org/m", "a" * 40, src)
    (src / "extra.safetensors").write_bytes(os.urandom(60_000))
    new = cache.put_model("org/m", "c" * 40, src)
    cache.index.touch("models--org--m", "a" * 40, 1.0)
    cache.index.touch("models--org--m", "c" * 40, 2.0)
    cache.prune(cache.total_size() - 1)
    assert (
        not old.exists()
        and (new / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()
    )
    assert (new / "extra.safetensors").exists()


def test_stats_hit_rate_and_clear(cache: HfCache, tmp_path: Path) -> None:
    cache.put_model("org/m", "main", make_model(tmp_path / "src", "m", 1000))
    cache.index.record({"repo": "models--org--m", "hits": 0, "misses": 2, "hit_bytes": 0, "miss_bytes": 1000})
    for _ in range(4):
        cache.index.record(
            {"repo": "models--org--m", "hits": 2, "misses": 0, "hit_bytes": 1000, "miss_bytes": 0}
        )
    st = cache.stats()
    assert (st.repos, st.snapshots, st.blobs) == (1, 1, 2)
    assert st.hit_rate == pytest.approx(0.8) and st.byte_hit_rate == pytest.approx(0.8)
    assert st.to_json()["hit_rate"] == pytest.approx(0.8)
    blobs = cache.root / "models--org--m" / "blobs"
    (blobs / "deadbeef.incomplete").write_bytes(b"x" * 10)
    assert cache.stats().incomplete == 10
    (cache.root / "not-a-repo").mkdir()
    assert cache.clear() > 1000
    assert cache.snapshots() == [] and (cache.root / "not-a-repo").exists()
    assert HfCache(tmp_path / "nowhere").stats().size == 0 and HfCache(tmp_path / "nowhere").clear() == 0


def test_layout_refs_trees_and_names(tmp_path: Path) -> None:
    ref = RepoRef("org/d", HfAssetType.DATASET, "refs/pr/1")
    lay = CacheLayout.of(tmp_path, ref)
    assert lay.repo_dir.name == "datasets--org--d"
    assert parse_repo_folder("datasets--org--d") == (HfAssetType.DATASET, "org/d")
    assert parse_repo_folder("spaces--x") == (HfAssetType.SPACE, "x")
    assert parse_repo_folder("junk") is None and parse_repo_folder("blobs--x") is None
    assert read_ref(lay, "refs/pr/1") is None
    write_ref(lay, "refs/pr/1", "d" * 40)
    write_ref(lay, "refs/pr/1", "d" * 40)  # idempotent
    assert (lay.repo_dir / "refs" / "refs" / "pr" / "1").read_text() == "d" * 40
    assert read_ref(lay, "refs/pr/1") == "d" * 40 and read_ref(lay, "e" * 40) == "e" * 40
    with pytest.raises(InvalidIdentifierError):  # a revision that is a path trick is refused
        read_ref(lay, "../../x")
    files = (RepoFile("a.json", 2, "1" * 40), RepoFile("w.gguf", 9, "2" * 40, "3" * 64))
    write_tree(lay, RepoSnapshot(ref, "d" * 40, files))
    assert read_tree(lay, "d" * 40) == files
    lay.tree_path("f" * 40).write_text('{"format_version": 2, "files": {}}')
    assert read_tree(lay, "f" * 40) is None
    assert cached_snapshot_at(tmp_path, RepoRef("org/d", HfAssetType.DATASET, "main")) is None


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("50GB", 50 * 10**9),
        ("1.5GiB", int(1.5 * 2**30)),
        ("500MB", 500 * 10**6),
        ("1024", 1024),
        ("2G", 2 * 10**9),
    ],
)
def test_parse_size(text: str, n: int) -> None:
    assert parse_size(text) == n


@pytest.mark.parametrize("text", ["", "lots", "5XB", "-1GB"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size(text)


def test_hash_local_file_matches_git(tmp_path: Path) -> None:
    p = tmp_path / "x.txt"
    p.write_bytes(b"hello\n")
    f = hash_local_file(p, "x.txt")
    assert f.blob_id == "ce013625030ba8dba906f756967f9e9ca394464a"  # git hash-object
    assert f.sha256 is None


def test_materialize_refuses_escaping_folders(tmp_path: Path) -> None:
    from batuta_sync.safety import UnsafePathError

    snap = tmp_path / "snap"
    (snap / "sub").mkdir(parents=True)
    (snap / "sub" / "a.txt").write_text("a")
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "sub").symlink_to(elsewhere)
    with pytest.raises(PathEscapeError):  # a symlinked folder in the output leads out (exit 20)
        materialize(snap, ["sub/a.txt"], out)
    assert list(elsewhere.iterdir()) == []
    with pytest.raises(UnsafePathError):
        materialize(snap, ["../x"], out)
