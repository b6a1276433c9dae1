"""The I/O edge of planning: look at the Hub and the disk, return a frozen :class:`World`.

Remote: at most one call per locked repo (``resolve_commit``, for drift) and at
most two per repo that must be (re)resolved (``snapshot``), all concurrently.
Nothing for a pinned sha, nothing with ``--frozen`` (except publish targets) and
nothing offline (then the metadata cache answers, if it can).

Local: ``stat`` of the expected files in the huggingface_hub cache layout and the
output directories (size); full sha256 + git sha1 with ``--verify``.  Digests of
publish sources are cached in ``.batuta/state.json`` by (size, mtime).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from batuta_sync.core.lockfile import Lock, RepoLock
from batuta_sync.core.manifest import ConversionSpec, Manifest, RepoSpec
from batuta_sync.core.planner.diff import PlanOptions, resolve_reason, snapshot_dir
from batuta_sync.core.state import LocalDirState, LocalFile, LocalRepoState, RemoteState, World
from batuta_sync.errors import BatutaError, NotFoundError
from batuta_sync.types import SHA1_RE, RepoRef

SKIP_DIRS = frozenset({".git", ".cache", ".batuta", "__pycache__"})


# --------------------------------------------------------------------------- hashing + workspace state


def hash_file(path: Path) -> tuple[str, str]:
    """(sha256, git blob sha1) of a file in one read."""
    from batuta_sync._fmt import file_digests

    _size, sha256, sha1 = file_digests(path)
    assert sha256 is not None and sha1 is not None
    return sha256, sha1


class WorkspaceState:
    """``.batuta/state.json``: machine-local facts that must not go into hf.lock.

    ``applied``: address -> commit last materialized here (for ``revision_moved``);
    ``hashes``: absolute path -> [size, mtime_ns, sha256, gitsha1] (a hash cache).
    """

    def __init__(self, workdir: Path) -> None:
        self.path = workdir / "state.json"
        self._lock = threading.Lock()
        from batuta_sync.core.workspace import parse_state, read_json

        self.applied, self.hashes = parse_state(read_json(self.path), str(self.path))
        self.dirty = False

    def digests(self, path: Path) -> tuple[int, str, str]:
        """(size, sha256, gitsha1), from the cache when size and mtime match."""
        st = path.stat()
        key = str(path)
        hit = self.hashes.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns and hit[2] and hit[3]:
            return st.st_size, hit[2], hit[3]
        sha256, sha1 = hash_file(path)
        with self._lock:
            self.hashes[key] = [st.st_size, st.st_mtime_ns, sha256, sha1]
            self.dirty = True
        return st.st_size, sha256, sha1

    def remember(self, path: Path, sha256: str | None, gitsha1: str | None) -> None:
        """Record a file batuta just wrote (content known): later plans trust it while size+mtime hold."""
        try:
            st = path.stat()
        except OSError:
            return
        with self._lock:
            self.hashes[str(path)] = [st.st_size, st.st_mtime_ns, sha256, gitsha1]
            self.dirty = True

    def set_applied(self, address: str, commit: str | None) -> None:
        with self._lock:
            if commit is None:
                self.applied.pop(address, None)
            else:
                self.applied[address] = commit
            self.dirty = True

    def save(self) -> None:
        with self._lock:
            if not self.dirty:
                return
            from batuta_sync._fs import atomic_write

            text = json.dumps({"version": 1, "applied": self.applied, "hashes": self.hashes}, sort_keys=True)
            atomic_write(self.path, text, fsync=True)  # state must survive power loss
            self.dirty = False


# --------------------------------------------------------------------------- local


def _stat_files(
    base: Path, paths: Iterable[str], verify: bool, ws: WorkspaceState | None = None
) -> dict[str, LocalFile]:
    """Size of each file; digests with ``verify``, or (with ``ws``) when the file's mtime moved
    since batuta recorded it (``WorkspaceState.remember``), so same-size edits are caught too."""
    out: dict[str, LocalFile] = {}
    for rel in paths:
        p = base / rel
        try:
            st = p.stat()  # follows the cache symlink to its blob
        except OSError:
            continue
        size = st.st_size
        if ws is not None and not verify:
            rec = ws.hashes.get(str(p))
            if rec and rec[0] == size and rec[1] == st.st_mtime_ns:
                out[rel] = LocalFile(size, rec[2], rec[3])
                continue
            if rec:  # touched since batuta wrote it: look at the content
                try:
                    _, sha256, sha1 = ws.digests(p)
                except OSError:
                    continue
                out[rel] = LocalFile(size, sha256, sha1)
                continue
        if verify:
            try:
                sha256, sha1 = hash_file(p)
            except OSError:
                continue
            out[rel] = LocalFile(size, sha256, sha1)
        else:
            out[rel] = LocalFile(size)
    return out


def walk_files(root: Path) -> list[str]:
    """Relative POSIX paths of the files under ``root`` (hidden tool dirs skipped), sorted."""
    if root.is_file():
        return [root.name]
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        rel = Path(dirpath).relative_to(root)
        for name in filenames:
            found.append((rel / name).as_posix())
    return sorted(found)


def dir_state(address: str, path: Path, *, digests: bool, ws: WorkspaceState | None, verify: bool) -> LocalDirState:
    """The files under ``path``: with ``digests`` every file's sha256 (hash cache by size+mtime),
    else sizes (plus digests for files touched since batuta wrote them)."""
    if not path.exists():
        return LocalDirState(address, str(path), False)
    base = path.parent if path.is_file() else path
    if not digests:
        return LocalDirState(address, str(path), True, _stat_files(base, walk_files(path), verify, ws))
    files: dict[str, LocalFile] = {}
    for rel in walk_files(path):
        p = base / rel
        try:
            if ws is not None and not verify:
                size, sha256, sha1 = ws.digests(p)
            else:
                sha256, sha1 = hash_file(p)
                size = p.stat().st_size
        except OSError:
            continue
        files[rel] = LocalFile(size, sha256, sha1)
    return LocalDirState(address, str(path), True, files)


def free_bytes(path: Path) -> int | None:
    for p in (path, *path.parents):
        if p.exists():
            try:
                return shutil.disk_usage(p).free
            except OSError:
                return None
    return None


# --------------------------------------------------------------------------- remote


def remote_queries(manifest: Manifest, lock: Lock, opts: PlanOptions) -> dict[str, tuple[str, RepoRef]]:
    """address -> ("snapshot" | "resolve", ref): the Hub calls this plan needs (pure)."""
    out: dict[str, tuple[str, RepoRef]] = {}
    for spec in manifest.repos:
        entry = lock.get(spec.address)
        locked = entry if isinstance(entry, RepoLock) else None
        why = None if opts.frozen else resolve_reason(spec, locked)
        if why is not None and opts.locked:
            continue  # --locked fails on it before looking at the Hub
        if why is not None:
            # Same repo and revision, only the file selection changed: keep the pinned commit.
            same_rev = (
                locked is not None
                and locked.repo == spec.repo
                and locked.repo_type == spec.repo_type.value
                and locked.revision == spec.revision
            )
            rev = locked.commit if same_rev and locked else spec.revision
            out[spec.address] = ("snapshot", RepoRef(spec.repo, spec.repo_type, rev))
        elif not opts.frozen and not SHA1_RE.match(spec.revision):
            out[spec.address] = ("resolve", RepoRef(spec.repo, spec.repo_type, spec.revision))
    for pub in manifest.publishes:
        out[pub.address] = ("resolve", RepoRef(pub.repo, pub.repo_type, pub.revision))
    return out


Fetcher = Callable[[str, RepoRef], RemoteState]


def fetch_remote(
    queries: Mapping[str, tuple[str, RepoRef]], client: Any, *, jobs: int = 16
) -> dict[str, RemoteState]:
    """Run the queries concurrently through ``client`` (``resolve_commit``/``snapshot``)."""

    def one(item: tuple[str, tuple[str, RepoRef]]) -> RemoteState:
        address, (what, ref) = item
        try:
            if what == "snapshot":
                snap = client.snapshot(ref)
                return RemoteState(address, ref, snap.commit, snap)
            return RemoteState(address, ref, client.resolve_commit(ref))
        except NotFoundError as exc:
            if address.startswith("publish."):
                return RemoteState(address, ref, None)
            return RemoteState(address, ref, None, error=exc.message, error_exit=exc.exit_name)
        except BatutaError as exc:
            return RemoteState(address, ref, None, error=exc.message, error_exit=exc.exit_name)

    from concurrent.futures import ThreadPoolExecutor

    items = sorted(queries.items())
    if not items:
        return {}
    if len(items) == 1:
        return {items[0][0]: one(items[0])}
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(items)))) as pool:
        return {s.address: s for s in pool.map(one, items)}


# --------------------------------------------------------------------------- world


def observe(
    manifest: Manifest,
    lock: Lock,
    opts: PlanOptions,
    *,
    ws: WorkspaceState,
    client_factory: Callable[[], Any] | None,
) -> World:
    """Observe the Hub (through ``client_factory()``, None = no Hub at all) and the disk."""
    queries = remote_queries(manifest, lock, opts)
    if opts.offline:
        # Only what must be resolved; the client answers from its metadata cache.
        queries = {a: q for a, q in queries.items() if q[0] == "snapshot"}
    remote: dict[str, RemoteState] = {}
    if queries and client_factory is not None:
        client = client_factory()
        try:
            remote = fetch_remote(queries, client, jobs=16)
        finally:
            close = getattr(client, "close", None)
            if close:
                close()
    root = Path(opts.root)
    cache = Path(opts.cache_dir)
    local: dict[str, LocalRepoState | LocalDirState] = {}
    for spec in manifest.repos:
        local[spec.address] = _repo_state(spec, lock, remote.get(spec.address), cache, root, opts.verify, ws)
    for conv in manifest.conversions:
        local[conv.address] = dir_state(conv.address, _conv_dir(manifest, conv.address, root), digests=False, ws=ws, verify=opts.verify)
    for pub in manifest.publishes:
        if not pub.source_is_address:
            local[pub.address] = dir_state(pub.address, _abs(root, pub.source), digests=True, ws=ws, verify=opts.verify)
    return World(remote=remote, local=local, free_bytes=free_bytes(cache), verified=opts.verify)


def _conv_dir(manifest: Manifest, address: str, root: Path) -> Path:
    """Where a conversion's outputs are: its output directory, or, for one renamed by ``moved:``
    whose default directory apply has not renamed yet, the directory of its old name."""
    spec = manifest.get(address)
    assert isinstance(spec, ConversionSpec)
    path = _abs(root, spec.output_path)
    outputs = manifest.moved_output(address)
    if outputs and not path.exists() and _abs(root, outputs[0]).is_dir():
        return _abs(root, outputs[0])
    return path


def _abs(root: Path, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else root / p


def _repo_state(
    spec: RepoSpec,
    lock: Lock,
    remote: RemoteState | None,
    cache: Path,
    root: Path,
    verify: bool,
    ws: WorkspaceState,
) -> LocalRepoState:
    candidates: dict[str, list[str]] = {}
    etags: set[str] = set()
    entry = lock.get(spec.address)
    if isinstance(entry, RepoLock):
        candidates[entry.commit] = [f.path for f in entry.files]
        etags.update(f.sha256 or f.gitsha1 or "" for f in entry.files)
    if remote is not None and remote.snapshot is not None:
        candidates.setdefault(remote.snapshot.commit, [f.path for f in remote.snapshot.files])
        etags.update(f.etag for f in remote.snapshot.files)
    blob_dir = Path(snapshot_dir(str(cache), spec.repo_type.value, spec.repo, "x")).parent.parent / "blobs"
    blobs = frozenset(e for e in etags if e and (blob_dir / e).is_file()) if blob_dir.is_dir() else frozenset()
    snaps: dict[str, Mapping[str, LocalFile]] = {}
    for commit, paths in candidates.items():
        base = Path(snapshot_dir(str(cache), spec.repo_type.value, spec.repo, commit))
        snaps[commit] = _stat_files(base, paths, verify) if base.is_dir() else {}
    output: dict[str, LocalFile] | None = None
    if spec.output:
        out_dir = _abs(root, spec.output)
        wanted = sorted({p for paths in candidates.values() for p in paths})
        output = _stat_files(out_dir, wanted, verify, ws) if out_dir.is_dir() else {}
    return LocalRepoState(spec.address, snaps, output, ws.applied.get(spec.address), blobs)

