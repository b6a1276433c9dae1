"""Small in-memory builders for the pure planner and executor tests (no I/O)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from batuta_sync.core.lockfile import FileDigest, Lock, RepoLock
from batuta_sync.core.manifest import Manifest, RepoSpec, parse_manifest
from batuta_sync.core.planner.diff import PlanOptions
from batuta_sync.core.select import select_files
from batuta_sync.core.state import LocalFile, LocalRepoState, RemoteState, World
from batuta_sync.types import HfAssetType, RepoFile, RepoRef, RepoSnapshot

C1 = "1" * 40
C2 = "2" * 40
C3 = "3" * 40
OPTS = PlanOptions(cache_dir="/cache", root="/ws", converter_version="conv-1")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def rfile(path: str, size: int = 10, *, lfs: bool = False) -> RepoFile:
    return RepoFile(path, size, hashlib.sha1(path.encode()).hexdigest(), sha(path) if lfs else None)


FILES = (rfile("config.json", 10), rfile("model.safetensors", 1000, lfs=True))


def manifest(body: str) -> Manifest:
    return parse_manifest("version: 1\n" + body, source="/ws/hf.yaml")


def select(snapshot: RepoSnapshot, spec: RepoSpec) -> Sequence[RepoFile]:
    """The production selection (``batuta plan`` and ``batuta hf pull`` use the same rules)."""
    return select_files(snapshot, spec)


def snapshot(repo: str, commit: str, files: Sequence[RepoFile] = FILES, rev: str = "main") -> RepoSnapshot:
    return RepoSnapshot(RepoRef(repo, HfAssetType.MODEL, rev), commit, tuple(files))


def remote_snap(address: str, repo: str, commit: str, files: Sequence[RepoFile] = FILES) -> RemoteState:
    s = snapshot(repo, commit, files)
    return RemoteState(address, s.ref, commit, s)


def remote_head(address: str, repo: str, commit: str | None, rev: str = "main") -> RemoteState:
    return RemoteState(address, RepoRef(repo, HfAssetType.MODEL, rev), commit)


def repo_lock(man: Manifest, address: str, commit: str, files: Sequence[RepoFile] = FILES) -> RepoLock:
    spec = man.get(address)
    assert isinstance(spec, RepoSpec)
    return RepoLock(
        address=address,
        repo=spec.repo,
        repo_type=spec.repo_type.value,
        revision=spec.revision,
        commit=commit,
        selection=spec.selection_digest(),
        files=tuple(FileDigest(f.path, f.size, f.blob_id, f.sha256) for f in files),
        output=spec.output,
    )


def present(files: Sequence[RepoFile] = FILES, *, sizes: Mapping[str, int] | None = None) -> dict[str, LocalFile]:
    sizes = sizes or {}
    return {f.path: LocalFile(sizes.get(f.path, f.size)) for f in files}


def local_repo(address: str, commit: str, files: Mapping[str, LocalFile] | None = None, *,
               output: Mapping[str, LocalFile] | None = None, applied: str | None = None) -> LocalRepoState:
    return LocalRepoState(address, {commit: files if files is not None else present()}, output, applied)


def lock_of(*entries: object) -> Lock:
    lock = Lock(lineage="L", serial=1)
    for e in entries:
        lock = lock.with_entry(e)  # type: ignore[arg-type]
    return lock


def world(remote: Sequence[RemoteState] = (), local: Sequence[object] = (), **kw: object) -> World:
    return World(remote={r.address: r for r in remote}, local={x.address: x for x in local}, **kw)  # type: ignore[attr-defined,arg-type]
