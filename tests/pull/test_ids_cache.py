"""Issue 13 on the pull side, unit level: identifiers refused by the types, the layout and the
cache readers; verified blobs (never by size); name clashes; a full disk stopping every worker."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from batuta_sync._fs import PathEscapeError
from batuta_sync.errors import DiskFullError, HubError
from batuta_sync.hub import cache as hc
from batuta_sync.hub.cache import (
    CacheLayout,
    blob_digest_ok,
    cached_snapshot_at,
    link_snapshot_file,
    mark_verified,
    materialize,
    read_tree,
    verified_blob,
    write_partial_listing,
)
from batuta_sync.hub.client import _commit_of
from batuta_sync.hub.download import CountingProgress, Downloader, DownloadJob
from batuta_sync.hub.models import files_from_siblings, files_from_tree
from batuta_sync.ids import InvalidIdentifierError
from batuta_sync.safety import NameCollisionError, check_name_collisions, name_collisions
from batuta_sync.settings import Settings
from batuta_sync.types import HfAssetType, RepoFile, RepoRef, RepoSnapshot

REF = RepoRef("org/m")
SHA1 = "1" * 40
COMMIT = "c" * 40


def _blob_file(data: bytes, path: str = "a.txt") -> RepoFile:
    return RepoFile(path, len(data), hc.git_blob_sha1(data))


# --------------------------------------------------------------------------- types and layout


@pytest.mark.parametrize(
    "kwargs",
    [
        {"path": 3, "size": 1, "blob_id": SHA1},
        {"path": "a", "size": True, "blob_id": SHA1},
        {"path": "a", "size": -1, "blob_id": SHA1},
        {"path": "a", "size": 1, "blob_id": "../../x"},
        {"path": "a", "size": 1, "blob_id": "A" * 40},
        {"path": "a", "size": 1, "blob_id": SHA1, "sha256": "/etc/passwd"},
        {"path": "a", "size": 1, "blob_id": SHA1, "sha256": "a" * 64 + "\n"},
    ],
)
def test_repo_file_refuses_identifiers_without_their_shape(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidIdentifierError):
        RepoFile(**kwargs)


def test_repo_file_and_snapshot_accept_the_real_shapes() -> None:
    f = RepoFile("a", 1, "")  # unknown blob id: allowed, never cached (no etag)
    assert f.etag == "" and RepoFile("w", 2, SHA1, "a" * 64).etag == "a" * 64
    with pytest.raises(InvalidIdentifierError):
        RepoSnapshot(REF, "../../x", ())
    assert RepoSnapshot(REF, COMMIT, (f,)).commit == COMMIT


@pytest.mark.parametrize(
    ("method", "value"),
    [
        ("blob_path", "../../x"),
        ("incomplete_path", "/abs"),
        ("lock_path", "a" * 39),
        ("snapshot_dir", "../x"),
        ("tree_path", "a" * 40 + "/.."),
        ("ref_path", "../../refs"),
    ],
)
def test_layout_path_builders_validate(method: str, value: str, tmp_path: Path) -> None:
    lay = CacheLayout.of(tmp_path, REF)
    with pytest.raises(InvalidIdentifierError):
        getattr(lay, method)(value)


def test_layout_refuses_a_repo_id_that_is_a_path_trick(tmp_path: Path) -> None:
    with pytest.raises(InvalidIdentifierError):
        CacheLayout(tmp_path, HfAssetType.MODEL, "../../x")


# --------------------------------------------------------------------------- Hub JSON


def test_hub_json_identifiers_checked_where_they_enter() -> None:
    (f,) = files_from_siblings([{"rfilename": "a", "size": None, "blobId": None}])
    assert (f.size, f.blob_id, f.sha256) == (0, "", None)
    with pytest.raises(InvalidIdentifierError, match="siblings"):
        files_from_siblings([{"rfilename": "a", "size": 1, "blobId": "../x"}])
    with pytest.raises(InvalidIdentifierError, match="tree listing"):
        files_from_tree([{"type": "file", "path": "a", "size": 1.5, "oid": SHA1}])
    with pytest.raises(InvalidIdentifierError, match="LFS oid"):
        files_from_tree([{"type": "file", "path": "a", "size": 1, "oid": SHA1, "lfs": {"oid": "x"}}])
    with pytest.raises(HubError, match="no commit sha"):
        _commit_of({}, REF)
    with pytest.raises(InvalidIdentifierError):
        _commit_of({"sha": "../x"}, REF)


# --------------------------------------------------------------------------- cache listings


def test_listings_that_are_not_ours_are_ignored_and_bad_ids_refused(tmp_path: Path) -> None:
    lay = CacheLayout.of(tmp_path, REF)
    tree = lay.tree_path(COMMIT)
    tree.parent.mkdir(parents=True)
    for body in ('[1]', '{"format_version": 1, "files": []}', '{"format_version": 1, "files": {"a": 3}}', "{"):
        tree.write_text(body)
        assert read_tree(lay, COMMIT) is None
    (lay.repo_dir / "refs").mkdir()
    (lay.repo_dir / "refs" / "main").write_text(COMMIT)
    tree.unlink()
    assert cached_snapshot_at(tmp_path, REF, tmp_path / "state") is None  # a ref, no listing
    write_partial_listing(tmp_path / "state", lay, RepoSnapshot(REF, COMMIT, (_blob_file(b"x"),)))
    snap = cached_snapshot_at(tmp_path, REF, tmp_path / "state")
    assert snap is not None and [f.path for f in snap.files] == ["a.txt"]
    listing = tmp_path / "state" / "listings" / lay.folder / f"{COMMIT}.json"
    data = json.loads(listing.read_text())
    data["files"]["a.txt"]["lfs_sha256"] = "../../x"
    listing.write_text(json.dumps(data))
    with pytest.raises(InvalidIdentifierError, match="cache file"):
        cached_snapshot_at(tmp_path, REF, tmp_path / "state")


# --------------------------------------------------------------------------- verified blobs


def test_a_blob_counts_only_with_its_stamp_or_after_hashing(tmp_path: Path) -> None:
    lay = CacheLayout.of(tmp_path / "hub", REF)
    state = tmp_path / "state"
    data = b"hello world"
    f = _blob_file(data)
    blob = lay.blob_path(f.etag)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"x" * len(data))  # right size, wrong bytes
    assert not verified_blob(state, lay, f, rehash=False) and blob.exists()  # cheap check: no stamp
    assert not verified_blob(state, lay, f) and not blob.exists()  # hashed, wrong: deleted
    blob.write_bytes(data)
    assert verified_blob(state, lay, f)  # hashed, right: stamped
    assert verified_blob(state, lay, f, rehash=False)
    blob.unlink()
    blob.symlink_to(tmp_path / "elsewhere")
    assert not verified_blob(state, lay, f, rehash=False) and blob.is_symlink()
    assert not verified_blob(state, lay, f) and not blob.is_symlink()
    blob.mkdir()
    assert not blob_digest_ok(blob, f)


def test_a_stamp_that_cannot_be_written_costs_only_a_rehash(tmp_path: Path) -> None:
    lay = CacheLayout.of(tmp_path / "hub", REF)
    state = tmp_path / "state-is-a-file"
    state.write_text("")
    f = _blob_file(b"abc")
    lay.blob_path(f.etag).parent.mkdir(parents=True)
    lay.blob_path(f.etag).write_bytes(b"abc")
    mark_verified(state, lay, f)  # no exception
    assert verified_blob(state, lay, f) and not verified_blob(state, lay, f, rehash=False)


# --------------------------------------------------------------------------- name clashes


def test_name_collisions_kinds_and_message() -> None:
    assert name_collisions(["a", "b/c"]) == []
    assert [(a, b) for a, b, _ in name_collisions(["A.txt", "a.txt", "x", "x/y", "X/z"])] == [
        ("A.txt", "a.txt"),
        ("x", "x/y"),
        ("x", "X/z"),
    ]
    many = [f"f{i}" for i in range(12)] + [f"F{i}" for i in range(12)]
    with pytest.raises(NameCollisionError, match=r"and 2 more") as info:
        check_name_collisions(many, "org/m")
    assert info.value.exit_code == 21
    check_name_collisions(["a", "b"], "org/m")


def _snapshot(tmp_path: Path, files: dict[str, bytes]) -> tuple[CacheLayout, Path]:
    lay = CacheLayout.of(tmp_path / "hub", REF)
    for name, data in files.items():
        f = _blob_file(data, name)
        lay.blob_path(f.etag).parent.mkdir(parents=True, exist_ok=True)
        lay.blob_path(f.etag).write_bytes(data)
        link_snapshot_file(lay, COMMIT, f)
    return lay, lay.snapshot_dir(COMMIT)


def test_materialize_reports_a_file_where_a_folder_must_be(tmp_path: Path) -> None:
    _lay, snap = _snapshot(tmp_path, {"sub/x.json": b"{}"})
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").write_text("a file")
    with pytest.raises(NameCollisionError, match="'sub' there is a file"):
        materialize(snap, ["sub/x.json"], out)
    assert (out / "sub").read_text() == "a file"


def test_materialize_refuses_a_dangling_entry_and_a_racing_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lay, snap = _snapshot(tmp_path, {"a.json": b"{}", "b.json": b"[]"})
    os.unlink(lay.blob_path(hc.git_blob_sha1(b"[]")))
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError):
        materialize(snap, ["b.json"], out)

    def racing(src: Any, dst: Any) -> None:  # a folder appears at the destination meanwhile
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(dst))

    monkeypatch.setattr(hc.os, "replace", racing)
    with pytest.raises(NameCollisionError):
        materialize(snap, ["a.json"], out, copy=True)
    assert [p.name for p in out.iterdir()] == []  # the temporary copy is gone

    def failing(src: Any, dst: Any) -> None:
        raise PermissionError(errno.EACCES, "denied", str(dst))

    monkeypatch.setattr(hc.os, "replace", failing)
    with pytest.raises(PermissionError):
        materialize(snap, ["a.json"], out, copy=True)
    assert [p.name for p in out.iterdir()] == []

    def no_copy(*a: Any, **k: Any) -> None:
        raise OSError(errno.EIO, "io")

    monkeypatch.undo()
    monkeypatch.setattr(hc.shutil, "copyfile", no_copy)
    with pytest.raises(OSError, match="io"):
        materialize(snap, ["a.json"], out, copy=True)
    assert [p.name for p in out.iterdir()] == []


def test_a_snapshot_entry_leading_out_of_the_repo_is_refused(tmp_path: Path) -> None:
    _lay, snap = _snapshot(tmp_path, {"a.json": b"{}"})
    (snap / "a.json").unlink()
    (snap / "a.json").symlink_to(tmp_path / "outside.txt")
    (tmp_path / "outside.txt").write_text("secret")
    with pytest.raises(PathEscapeError):
        materialize(snap, ["a.json"], tmp_path / "out", copy=True)


def test_snapshot_links_fall_back_to_copies_without_symlinks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_symlinks(*a: Any, **k: Any) -> None:
        raise OSError(errno.EPERM, "no symlinks here")

    monkeypatch.setattr(hc.os, "symlink", no_symlinks)
    _lay, snap = _snapshot(tmp_path, {"a.json": b"{}"})
    assert not (snap / "a.json").is_symlink() and (snap / "a.json").read_bytes() == b"{}"


# --------------------------------------------------------------------------- disk full, every worker


def _job(settings: Settings, hub_env: Any, data: bytes) -> DownloadJob:
    from batuta_sync.hub.client import HfClient

    hub_env.store.commit("org/m", {"data.txt": data})
    snap = HfClient(settings).snapshot(REF)
    return DownloadJob(REF, snap.commit, snap.files[0], CacheLayout.of(settings.hub_cache, REF))


def test_a_full_disk_seen_by_another_worker_stops_this_one(settings: Settings, hub_env: Any) -> None:
    job = _job(settings, hub_env, b"d" * 300_000)
    dl = Downloader(settings)
    dl._disk_full.set()  # another worker hit the full disk before this one started
    with pytest.raises(DiskFullError):
        dl.fetch(job)
    assert list(job.layout.blobs_dir.iterdir()) == []  # nothing written, nothing parked


def test_a_full_disk_seen_mid_transfer_parks_what_was_written(settings: Settings, hub_env: Any) -> None:
    data = bytes(range(256)) * 2000
    job = _job(settings, hub_env, data)
    dl: Downloader

    class Hook(CountingProgress):
        def advance(self, path: str, nbytes: int) -> None:
            super().advance(path, nbytes)
            if self.done_bytes >= 100_000:
                dl._disk_full.set()

    dl = Downloader(settings, progress=Hook(), chunk_size=65536)
    with pytest.raises(DiskFullError, match="another file"):
        dl.fetch(job)
    (parked,) = job.layout.blobs_dir.iterdir()
    assert parked.name == f"{job.file.etag}.incomplete" and data.startswith(parked.read_bytes())
    assert 100_000 <= parked.stat().st_size < len(data)


def test_enospc_on_a_write_stops_the_transfer_and_parks_the_bytes(
    settings: Settings, hub_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batuta_sync.hub import download

    data = bytes(range(256)) * 1000
    job = _job(settings, hub_env, data)
    real = download._Writer.write

    def full_after_one_chunk(self: Any, chunk: memoryview, pos: int) -> None:
        if pos >= 65536:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, chunk, pos)

    monkeypatch.setattr(download._Writer, "write", full_after_one_chunk)
    dl = Downloader(settings, chunk_size=65536)
    with pytest.raises(DiskFullError, match="ENOSPC") as info:
        dl.fetch(job)
    assert info.value.exit_code == 16 and dl._disk_full.is_set()
    (parked,) = job.layout.blobs_dir.iterdir()
    assert parked.name == f"{job.file.etag}.incomplete" and parked.read_bytes() == data[:65536]
    gets = [e for e in hub_env.log.entries if e.method == "GET" and "/resolve/" in e.path]
    assert len(gets) == 1  # not retried as a network error


def test_put_model_stamps_what_it_verified_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"alpha")
    (src / "b.txt").write_bytes(b"beta")
    cache = hc.HfCache(tmp_path / "hub", state_dir=tmp_path / "state")
    real_copy = hc.shutil.copyfile

    def changed_meanwhile(a: Any, b: Any, **k: Any) -> Any:  # b.txt changes between hash and copy
        out = real_copy(a, b, **k)
        if str(a).endswith("b.txt"):
            Path(b).write_bytes(b"BETA")
        return out

    monkeypatch.setattr(hc.shutil, "copyfile", changed_meanwhile)
    cache.put_model("org/local", COMMIT, src)
    lay = CacheLayout(tmp_path / "hub", HfAssetType.MODEL, "org/local")
    assert verified_blob(tmp_path / "state", lay, _blob_file(b"alpha"), rehash=False)
    assert not verified_blob(tmp_path / "state", lay, _blob_file(b"beta", "b.txt"), rehash=False)
