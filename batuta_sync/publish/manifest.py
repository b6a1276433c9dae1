"""``UploadManifest`` (spec: Differential Uploads) and the local hash cache.

A manifest maps repo paths to :class:`FileHash` (size, sha256, git blob sha1).  ``diff`` against
the remote manifest (built from a :class:`~batuta_sync.types.RepoSnapshot`) says what to add,
change, delete and what is unchanged.  Comparison follows the Hub's own rule (huggingface_hub
``_local_oid``): LFS files compare by sha256, regular files by git blob sha1.

Hashing is the expensive part (≈ 1 CPU-second per GB), so :class:`HashCache` remembers digests by
``(device, inode, size, mtime_ns)`` in ``settings.batuta_dir/hash-cache.json``; an unchanged file is
never re-read.  ``verify=True`` (``--rehash``) ignores the cache.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from batuta_sync._fmt import file_digests
from batuta_sync._fs import atomic_write
from batuta_sync.ids import matches_patterns
from batuta_sync.types import RepoSnapshot

#: Files larger than this are always stored as LFS on the Hub, so their git sha1 is never needed.
LFS_THRESHOLD = 10 * 1024 * 1024
CACHE_VERSION = 1

# Never uploaded: VCS and tool state, and the secret-scan allowlist itself.
EXCLUDED_DIRS = {".git", ".cache", ".hg", ".svn", "__pycache__", ".ipynb_checkpoints", ".batuta"}
EXCLUDED_FILES = {".DS_Store", ".batuta-secrets-allow"}
# Never deleted by --delete (the Hub keeps its LFS patterns there; huggingface_hub protects it too).
NEVER_DELETE = {".gitattributes"}


@dataclass(frozen=True, slots=True)
class FileHash:
    size: int
    sha256: str
    git_sha1: str | None = None  # None for files > LFS_THRESHOLD (never compared by sha1)


@dataclass(frozen=True)
class ManifestDiff:
    adds: tuple[str, ...]
    changes: tuple[str, ...]
    deletes: tuple[str, ...]
    unchanged: tuple[str, ...]

    @property
    def to_upload(self) -> tuple[str, ...]:
        return tuple(sorted(self.adds + self.changes))

    @property
    def is_empty(self) -> bool:
        return not (self.adds or self.changes or self.deletes)


@dataclass(frozen=True)
class RemoteFile:
    size: int
    blob_id: str
    sha256: str | None


@dataclass(frozen=True)
class UploadManifest:
    """Repo path -> hash.  Local manifests carry :class:`FileHash`; see :meth:`diff`."""

    files: Mapping[str, FileHash] = field(default_factory=dict)

    def diff(self, remote: RemoteManifest, *, delete: bool = False, delete_patterns: Sequence[str] = ()) -> ManifestDiff:
        """What to send so that the remote equals this manifest.  Remote files this manifest lacks
        are deleted with ``delete`` (all of them) or when they match ``delete_patterns``."""
        adds: list[str] = []
        changes: list[str] = []
        unchanged: list[str] = []
        for path in sorted(self.files):
            local = self.files[path]
            r = remote.files.get(path)
            if r is None:
                adds.append(path)
            elif same_content(local, r):
                unchanged.append(path)
            else:
                changes.append(path)
        deletes = sorted(
            p for p in remote.files
            if p not in self.files and p not in NEVER_DELETE and (delete or matches_patterns(p, delete_patterns))
        )
        return ManifestDiff(tuple(adds), tuple(changes), tuple(deletes), tuple(unchanged))

    def changed_paths(self, remote: RemoteManifest) -> list[str]:
        """Spec signature ``diff(&self, remote) -> Vec<String>``: paths to upload."""
        return list(self.diff(remote).to_upload)

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files.values())


@dataclass(frozen=True)
class RemoteManifest:
    commit: str | None
    files: Mapping[str, RemoteFile] = field(default_factory=dict)

    @classmethod
    def from_snapshot(cls, snap: RepoSnapshot | None) -> RemoteManifest:
        if snap is None:
            return cls(None, {})
        return cls(snap.commit, {f.path: RemoteFile(f.size, f.blob_id, f.sha256) for f in snap.files})


def same_content(local: FileHash, remote: RemoteFile) -> bool:
    if local.size != remote.size:
        return False
    if remote.sha256:
        return local.sha256 == remote.sha256
    if local.git_sha1 is None:
        return False
    return local.git_sha1 == remote.blob_id


def hash_file(path: Path) -> FileHash:
    """sha256 (and git blob sha1 for files ≤ LFS_THRESHOLD) in one read."""
    size, sha256, sha1 = file_digests(path, sha1=path.stat().st_size <= LFS_THRESHOLD)
    assert sha256 is not None
    return FileHash(size, sha256, sha1)


class HashCache:
    """Digests by ``(dev, inode, size, mtime_ns)``; JSON file, written atomically."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, list[object]] = {}
        self._dirty = False
        self.hashed = 0  # files actually read by this instance (tests / bench)
        if path is not None:
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(doc, dict) and doc.get("version") == CACHE_VERSION:
                    entries = doc.get("entries")
                    if isinstance(entries, dict):
                        self._entries = entries
            except (OSError, ValueError):
                pass

    @staticmethod
    def _key(path: Path, st: os.stat_result) -> tuple[str, list[object]]:
        return str(path.resolve()), [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]

    def get(self, path: Path, *, verify: bool = False) -> FileHash:
        st = path.stat()
        key, stamp = self._key(path, st)
        if not verify:
            with self._lock:
                hit = self._entries.get(key)
            if isinstance(hit, list) and len(hit) == 6 and hit[:4] == stamp:
                return FileHash(st.st_size, str(hit[4]), str(hit[5]) if hit[5] else None)
        fh = hash_file(path)
        self.hashed += 1
        st2 = path.stat()
        if (st2.st_size, st2.st_mtime_ns) == (st.st_size, st.st_mtime_ns):  # not modified while hashing
            with self._lock:
                self._entries[key] = [*stamp, fh.sha256, fh.git_sha1]
                self._dirty = True
        return fh

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        with self._lock:
            doc = {"version": CACHE_VERSION, "entries": self._entries}
            atomic_write(self.path, json.dumps(doc, separators=(",", ":")))
            self._dirty = False


def hash_cache_path(batuta_dir: Path) -> Path:
    return batuta_dir / "hash-cache.json"


def iter_files(root: Path, trusted: Sequence[Path] = ()) -> Iterator[str]:
    """Repo-relative posix paths of the regular files to push under ``root`` (sorted, exclusions applied).

    Symlinks are followed only when they stay inside ``root`` or resolve into a ``trusted`` directory
    (the Hub cache, whose blobs batuta verified: a pulled model materialized with symlinks can be
    republished); others raise ValidationError.
    """
    from batuta_sync.errors import ValidationError

    real_root = root.resolve()
    allowed = [real_root, *(t.resolve() for t in trusted)]
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIRS)
        base = Path(dirpath)
        for d in list(dirnames):
            p = base / d
            if p.is_symlink():
                dirnames.remove(d)
                raise ValidationError(
                    f"{p.relative_to(root).as_posix()} is a symlinked directory; refusing to follow it.",
                    hint="Copy the files into the folder instead of linking them.",
                )
        for name in filenames:
            if name in EXCLUDED_FILES:
                continue
            p = base / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                target = p.resolve()
                if not any(target.is_relative_to(a) for a in allowed) or not target.is_file():
                    raise ValidationError(
                        f"{rel} is a symlink pointing outside the folder; refusing to upload it.",
                        hint="Copy the file into the folder (or remove the link).",
                    )
            elif not p.is_file():
                continue
            out.append(rel)
    yield from sorted(out)


def build_manifest(root: Path, paths: Iterable[str], cache: HashCache, *, verify: bool = False) -> UploadManifest:
    return UploadManifest({rel: cache.get(root / rel, verify=verify) for rel in paths})
