"""The local cache: huggingface_hub's layout, plus LRU bookkeeping (spec ``HfCache``).

Layout (shared with huggingface_hub 2.x, so ``snapshot_download(..., local_files_only=True)``
and transformers find our downloads offline)::

    $HF_HUB_CACHE/
      CACHEDIR.TAG
      .locks/models--org--name/<etag>.lock
      models--org--name/                      (datasets--…, spaces--…)
        refs/<revision>                       commit sha (text, no newline)
        blobs/<etag>                          content, named by sha256 (LFS) or git sha1
        blobs/<etag>.incomplete               a download in progress (resumable)
        snapshots/<commit>/<path>             relative symlink ../../blobs/<etag>
        trees/<commit>.json                   {"format_version": 1, "files": {path: {size, blob_id, lfs_sha256?, lfs_size?}}}

batuta's own bookkeeping lives in ``settings.batuta_dir/cache-index.json``: the last access
of every snapshot (for LRU pruning), when a branch was last resolved (metadata TTL), and
the hit/miss counts of recent pulls (``batuta cache stats``).

Everything written here is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import shutil
import stat
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batuta_sync import ids
from batuta_sync._fmt import BYTE_UNITS
from batuta_sync._fmt import git_blob_sha1 as git_blob_sha1  # re-exported
from batuta_sync._fmt import human_bytes as human_bytes  # re-exported
from batuta_sync._fs import FileLock, atomic_write, confine
from batuta_sync._fs import disk_free as _fs_disk_free
from batuta_sync._fs import file_lock as _fs_file_lock
from batuta_sync.errors import UsageError
from batuta_sync.safety import NameCollisionError, validate_repo_path
from batuta_sync.types import SHA1_RE, HfAssetType, RepoFile, RepoRef, RepoSnapshot, byte_count
from batuta_sync.types import repo_folder_name as _repo_folder_name

if TYPE_CHECKING:
    from batuta_sync.settings import Settings

TREE_FORMAT_VERSION = 1
INDEX_VERSION = 1
MAX_OPS = 200
_CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by batuta_sync (huggingface_hub layout).\n"
)
_UNITS = BYTE_UNITS  # the one table (batuta_sync._fmt)


# --------------------------------------------------------------------------- helpers


def parse_size(text: str) -> int:
    """``50GB`` / ``1.5GiB`` / ``500MB`` / ``1024`` -> bytes (UsageError otherwise)."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = m.group(2).upper() if m else ""
    if unit in {"K", "M", "G", "T"}:
        unit += "B"
    if not m or (unit and unit not in _UNITS):
        raise UsageError(
            f"{text!r} is not a size.", hint="Use e.g. 50GB, 500MB, 1.5GiB or a number of bytes."
        )
    return int(float(m.group(1)) * _UNITS[unit or "B"])


def repo_folder_name(repo_type: HfAssetType | str, repo_id: str) -> str:
    """``models--org--name`` as huggingface_hub names it."""
    return _repo_folder_name(repo_type, repo_id)


def parse_repo_folder(name: str) -> tuple[HfAssetType, str] | None:
    prefix, sep, rest = name.partition("--")
    if not sep or not rest:
        return None
    for t in HfAssetType:
        if t.cache_prefix == prefix:
            return t, rest.replace("--", "/")
    return None


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, text)


def file_lock(path: Path, *, shared: bool = False) -> FileLock:
    """An advisory lock on ``path`` (created 0o664 for shared caches); released on exit or
    process death.  The one primitive, :func:`batuta_sync._fs.file_lock`."""
    return _fs_file_lock(path, shared=shared)


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class CacheLayout:
    """Paths of one repo inside a hub cache root.

    Every path builder checks the identifier it joins (defence in depth: the values were
    checked where they entered, see :mod:`batuta_sync.ids`): a blob name is a git sha1 or
    a sha256, a commit a git sha1, a revision a plain ref name, the repo id the Hub's shape.
    """

    root: Path
    repo_type: HfAssetType
    repo_id: str

    def __post_init__(self) -> None:
        ids.repo_id(self.repo_id, where="the cache layout")

    @classmethod
    def of(cls, root: Path, ref: RepoRef) -> CacheLayout:
        return cls(Path(root), ref.repo_type, ref.repo_id)

    @property
    def folder(self) -> str:
        return repo_folder_name(self.repo_type, self.repo_id)

    @property
    def repo_dir(self) -> Path:
        return self.root / self.folder

    @property
    def blobs_dir(self) -> Path:
        return self.repo_dir / "blobs"

    @property
    def locks_dir(self) -> Path:
        return self.root / ".locks" / self.folder

    def blob_path(self, etag: str) -> Path:
        return self.blobs_dir / ids.blob_id(etag, where="a cache blob name")

    def incomplete_path(self, etag: str) -> Path:
        return self.blobs_dir / f"{ids.blob_id(etag, where='a cache blob name')}.incomplete"

    def lock_path(self, etag: str) -> Path:
        return self.locks_dir / f"{ids.blob_id(etag, where='a cache blob name')}.lock"

    def snapshot_dir(self, commit: str) -> Path:
        return self.repo_dir / "snapshots" / ids.commit_sha(commit, where="a cache snapshot name")

    def snapshot_file(self, commit: str, path: str) -> Path:
        validate_repo_path(path)
        return self.snapshot_dir(commit) / path

    def tree_path(self, commit: str) -> Path:
        return self.repo_dir / "trees" / f"{ids.commit_sha(commit, where='a cache tree name')}.json"

    def ref_path(self, revision: str) -> Path:
        return self.repo_dir / "refs" / ids.revision(revision, where="a cache ref name")


def ensure_cache_root(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    tag = root / "CACHEDIR.TAG"
    if not tag.exists():
        with contextlib.suppress(OSError):
            atomic_write_text(tag, _CACHEDIR_TAG)


def read_ref(layout: CacheLayout, revision: str) -> str | None:
    """The commit a revision points to in the cache (a 40-hex revision is its own commit).

    None when there is no such ref; a ref file whose content is not a commit sha (edited by
    hand, or planted) is refused with :class:`~batuta_sync.ids.InvalidIdentifierError`.
    """
    if ids.is_git_sha1(revision):
        return revision
    path = layout.ref_path(revision)
    try:
        raw = confine(layout.root, path, what="cache ref").read_bytes()
    except OSError:
        return None
    text = raw.decode("utf-8", "replace").strip()
    return ids.commit_sha(text, where=f"the cache file {path}")


def write_ref(layout: CacheLayout, revision: str, commit: str) -> None:
    """``refs/<revision>`` = commit (not for a revision that is the commit itself, like huggingface_hub)."""
    if revision == commit:
        return
    path = confine(layout.root, layout.ref_path(revision), follow_last=False, what="cache ref")
    try:
        if path.read_text(encoding="utf-8") == commit:
            return
    except OSError:
        pass
    atomic_write_text(path, commit)


def tree_json(files: Iterable[RepoFile]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in sorted(files, key=lambda f: f.path):
        entry: dict[str, Any] = {"size": f.size, "blob_id": f.blob_id}
        if f.sha256:
            entry["lfs_sha256"] = f.sha256
            entry["lfs_size"] = f.size
        out[f.path] = entry
    return {"format_version": TREE_FORMAT_VERSION, "files": out}


def write_tree(layout: CacheLayout, snapshot: RepoSnapshot) -> None:
    """``trees/<commit>.json``: the commit's full listing (what huggingface_hub checks for completeness)."""
    path = confine(layout.root, layout.tree_path(snapshot.commit), follow_last=False, what="cache listing")
    if path.exists():
        return
    atomic_write_text(path, json.dumps(tree_json(snapshot.files), indent=1))


def _listing_files(path: Path, base: Path) -> tuple[RepoFile, ...] | None:
    """The files of a listing written by :func:`tree_json` (``trees/<sha>.json`` or batuta's
    partial listings); None when absent or not one of ours.  Identifiers that lack their
    shape are refused (:class:`~batuta_sync.ids.InvalidIdentifierError`), naming the file."""
    try:
        data = json.loads(confine(base, path, what="cache listing").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format_version") != TREE_FORMAT_VERSION:
        return None
    entries = data.get("files")
    if not isinstance(entries, dict):
        return None
    where = f"the cache file {path}"
    files = []
    for rel, info in entries.items():
        if not isinstance(info, dict):
            return None
        blob = info.get("blob_id", "")
        lfs = info.get("lfs_sha256")
        files.append(
            RepoFile(
                path=str(rel),
                size=byte_count(info.get("size"), where=f"{where} ({rel!r})"),
                blob_id="" if blob == "" else ids.git_sha1(blob, where=where, kind="git blob id"),
                sha256=None if lfs is None else ids.sha256_hex(lfs, where=where, kind="LFS sha256"),
            )
        )
    return tuple(sorted(files, key=lambda f: f.path))


def read_tree(layout: CacheLayout, commit: str) -> tuple[RepoFile, ...] | None:
    return _listing_files(layout.tree_path(commit), layout.root)


def _partial_listing_path(state_dir: Path, layout: CacheLayout, commit: str) -> Path:
    return Path(state_dir) / "listings" / layout.folder / f"{ids.commit_sha(commit, where='a listing name')}.json"


def write_partial_listing(state_dir: Path, layout: CacheLayout, snapshot: RepoSnapshot) -> None:
    """Remember files of a commit pulled from a caller-given (possibly partial) listing.

    ``trees/<sha>.json`` must stay the commit's *complete* listing (huggingface_hub trusts
    it even online), so subsets go to batuta's own state; the union is kept.
    """
    path = confine(state_dir, _partial_listing_path(state_dir, layout, snapshot.commit), follow_last=False, what="listing")
    known: dict[str, RepoFile] = {f.path: f for f in _listing_files(path, Path(state_dir)) or ()}
    before = dict(known)
    known.update({f.path: f for f in snapshot.files})
    if known != before or not path.exists():
        atomic_write_text(path, json.dumps(tree_json(known.values()), indent=1))


def cached_snapshot_at(root: Path, ref: RepoRef, state_dir: Path | None = None) -> RepoSnapshot | None:
    """The cached listing of ``ref`` (via ``refs/`` and ``trees/``, else batuta's partial
    listing under ``state_dir``), without any network."""
    layout = CacheLayout.of(root, ref)
    commit = read_ref(layout, ref.revision)
    if commit is None:
        return None
    files = read_tree(layout, commit)
    if files is None and state_dir is not None:
        files = _listing_files(_partial_listing_path(state_dir, layout, commit), Path(state_dir))
    if files is None:
        return None
    return RepoSnapshot(ref=ref, commit=commit, files=files)


def _clash(base: Path, rel: str) -> NameCollisionError:
    """The error for ``rel`` clashing with what already is in ``base`` (file vs folder)."""
    parts = rel.split("/")
    for i in range(1, len(parts)):
        prefix = "/".join(parts[:i])
        if (base / prefix).exists() and not (base / prefix).is_dir():
            return NameCollisionError(
                f"Cannot place {rel!r} in {base}: {prefix!r} there is a file, and {rel!r} needs it to be a folder."
            )
    return NameCollisionError(f"Cannot place the file {rel!r} in {base}: a folder of that name is there.")


def _place(base: Path, rel: str) -> Path:
    """``base/rel`` ready to be (re)placed: its folders made inside ``base`` (each existing one
    resolved first, so a symlinked folder cannot lead out), clashes as NameCollisionError."""
    dest = confine(base, validate_repo_path(rel), follow_last=False, what="file name")
    confine(base, dest.parent, what="folder")  # before mkdir: never create a folder outside
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise _clash(base, rel) from exc
    confine(base, dest.parent, what="folder")
    if dest.is_dir() and not dest.is_symlink():
        raise _clash(base, rel)
    return dest


def _replace(tmp: Path, dest: Path, base: Path, rel: str) -> None:
    try:
        os.replace(tmp, dest)
    except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:  # a folder appeared there
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _clash(base, rel) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def link_snapshot_file(layout: CacheLayout, commit: str, f: RepoFile) -> Path:
    """``snapshots/<commit>/<path>`` -> ``../../blobs/<etag>`` (relative; a copy where symlinks fail)."""
    snap = layout.snapshot_dir(commit)
    blob = layout.blob_path(f.etag)
    confine(layout.root, snap, what="snapshot folder")
    snap.mkdir(parents=True, exist_ok=True)
    dest = _place(snap, f.path)
    rel = os.path.relpath(blob, dest.parent)
    with contextlib.suppress(OSError):
        if os.readlink(dest) == rel:
            return dest
    tmp = _tmp_name(dest)
    try:
        os.symlink(rel, tmp)
    except OSError as exc:  # no symlinks on this filesystem: a copy
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        shutil.copyfile(confine(layout.blobs_dir, blob, what="cache blob"), tmp, follow_symlinks=False)
        seal_blob(tmp)  # the copy stands for the blob: as read-only
    _replace(tmp, dest, snap, f.path)
    return dest


def _tmp_name(dest: Path) -> Path:
    """A sibling name no other thread or process uses (so concurrent writers never collide), after
    removing the ones a killed writer left for this name (their pid is gone): a crash never leaves
    litter in an output folder or a snapshot for good."""
    import uuid

    from batuta_sync._proc import pid_alive

    prefix = f".{dest.name}."
    with contextlib.suppress(OSError):
        for old in dest.parent.glob(f"{glob.escape(prefix)}*.tmp"):
            pid = old.name[len(prefix):].split(".", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)) and (old.is_symlink() or old.is_file()):
                old.unlink(missing_ok=True)
    return dest.parent / f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"


def materialize(snapshot_dir: Path, paths: Sequence[str], output: Path, *, copy: bool = False) -> Path:
    """Make ``output/<path>`` for each path: a symlink to the cached blob, or a real copy (``copy``).

    Reads only inside the cached repo (a snapshot entry resolving anywhere else is a
    :class:`~batuta_sync._fs.PathEscapeError`), writes only inside ``output``, never follows a
    symlink already at the destination (it is replaced), and reports a name that clashes with
    a file or folder already there as :class:`~batuta_sync.safety.NameCollisionError`.
    Files are written under a temporary name and renamed.
    """
    output.mkdir(parents=True, exist_ok=True)
    repo_dir = Path(snapshot_dir).parent.parent
    for path in paths:
        src = confine(snapshot_dir, validate_repo_path(path), follow_last=False, what="snapshot file")
        real = Path(os.path.realpath(confine(repo_dir, src, what="cached file")))
        if not real.is_file():
            raise FileNotFoundError(errno.ENOENT, "not in the cache", str(src))
        dest = _place(output, path)
        if copy:
            if dest.exists() and not dest.is_symlink() and _same_content(dest, real):
                continue
        else:
            with contextlib.suppress(OSError):
                if os.readlink(dest) == str(real):
                    continue
        tmp = _tmp_name(dest)
        try:
            if copy:
                shutil.copyfile(real, tmp)
            else:
                os.symlink(real, tmp)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _replace(tmp, dest, output, path)
    return output


# --------------------------------------------------------------------------- verified blobs
#
# A blob counts as cached only when batuta put it there after verifying it, or re-verifies
# it now by hashing: never because its size matches.  The cheap marker is a stamp, in
# batuta's own state (``<state>/verified/<repo folder>/<etag>``), of the blob's inode as it
# was right after verification: device, inode, size, mtime and ctime (ctime cannot be set by
# anyone, and every rename/link/chmod/write changes it).  A blob without a matching stamp
# (written by huggingface_hub, or planted, or edited) is hashed once: right, it gets a stamp;
# wrong, it is deleted so the download replaces it.  A symlink at ``blobs/<etag>`` is never
# a blob.


BLOB_MODE = 0o444
"""Blobs batuta publishes are read-only: a write through an output symlink (``open(out/x, "w")``,
an editor saving in place) fails with PermissionError instead of corrupting every snapshot and
workspace sharing the blob.  Blobs are only ever replaced by rename or unlinked (verify --repair,
prune, rm), which the folder's permissions govern, not the file's; partial downloads
(``*.incomplete``) stay writable and become read-only when published."""


def seal_blob(path: Path) -> None:
    """Make a file about to be published as a blob read-only (:data:`BLOB_MODE`).  Call it before
    the rename/link that publishes it, and before :func:`mark_verified` (chmod changes the ctime
    the stamp records)."""
    os.chmod(path, BLOB_MODE)  # the caller's own temporary file (a regular file it just wrote)


def _verified_marker(state_dir: Path, layout: CacheLayout, etag: str) -> Path:
    path = Path(state_dir) / "verified" / layout.folder / ids.blob_id(etag, where="a cache blob name")
    return confine(state_dir, path, follow_last=False, what="verification stamp")


def _stamp(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def mark_verified(state_dir: Path, layout: CacheLayout, f: RepoFile) -> None:
    """Record that ``blobs/<etag>`` (as it is now) was verified by batuta."""
    st = os.lstat(layout.blob_path(f.etag))
    with contextlib.suppress(OSError):  # no stamp only costs a re-hash next time
        atomic_write(_verified_marker(state_dir, layout, f.etag), _stamp(st))


def blob_digest_ok(path: Path, f: RepoFile) -> bool:
    """Whether the file at ``path`` has ``f``'s size and digest (sha256 for LFS, else git sha1)."""
    from batuta_sync._fmt import file_digests

    try:
        size, sha256, sha1 = file_digests(path, sha256=f.is_lfs, sha1=not f.is_lfs)
    except OSError:
        return False
    return size == f.size and (sha256 == f.sha256 if f.is_lfs else sha1 == f.blob_id)


def verified_blob(state_dir: Path, layout: CacheLayout, f: RepoFile, *, rehash: bool = True) -> bool:
    """True when ``blobs/<etag>`` holds ``f``'s verified content (see the section comment).

    ``rehash=False`` only trusts the stamp (a cheap "did someone publish it meanwhile").
    With ``rehash``, a stamp-less file of the right size is hashed; a wrong one is deleted.
    """
    blob = confine(layout.root, layout.blob_path(f.etag), follow_last=False, what="cache blob")
    try:
        st = os.lstat(blob)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):  # a symlink (or anything else) planted under a blob name
        if rehash:
            with contextlib.suppress(OSError):
                os.unlink(confine(layout.blobs_dir, blob, follow_last=False, what="cache blob"))
        return False
    if st.st_size != f.size:
        return False
    marker = _verified_marker(state_dir, layout, f.etag)
    with contextlib.suppress(OSError):
        if marker.read_text(encoding="utf-8") == _stamp(st):
            return True
    if not rehash:
        return False
    if blob_digest_ok(blob, f):
        mark_verified(state_dir, layout, f)
        return True
    with contextlib.suppress(OSError):
        os.unlink(confine(layout.blobs_dir, blob, follow_last=False, what="cache blob"))
    return False


def _same_content(a: Path, b: Path) -> bool:
    sa, sb = a.stat(), b.stat()
    if (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino):
        return True
    if sa.st_size != sb.st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(1 << 20), fb.read(1 << 20)
            if ca != cb:
                return False
            if not ca:
                return True


# --------------------------------------------------------------------------- index (LRU + stats)


class CacheIndex:
    """A small JSON file: last access per snapshot, branch resolution times, recent pull stats."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "cache-index.json"
        self.lock = Path(state_dir) / "cache-index.lock"

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and data.get("version") == INDEX_VERSION:
                data.setdefault("access", {})
                data.setdefault("resolved", {})
                data.setdefault("ops", [])
                return data
        except (OSError, ValueError):
            pass
        return {"version": INDEX_VERSION, "access": {}, "resolved": {}, "ops": []}

    @contextlib.contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        with file_lock(self.lock):
            data = self.load()
            yield data
            data["ops"] = data["ops"][-MAX_OPS:]
            atomic_write_text(self.path, json.dumps(data, indent=1, sort_keys=True))

    def touch(self, folder: str, commit: str, when: float | None = None) -> None:
        with self.update() as data:
            data["access"].setdefault(folder, {})[commit] = when if when is not None else time.time()

    def mark_resolved(self, folder: str, revision: str, commit: str, when: float | None = None) -> None:
        with self.update() as data:
            data["resolved"][f"{folder}@{revision}"] = {
                "commit": commit,
                "at": when if when is not None else time.time(),
            }

    def resolved_within(self, folder: str, revision: str, ttl: float) -> str | None:
        entry = self.load()["resolved"].get(f"{folder}@{revision}")
        if not isinstance(entry, dict) or ttl <= 0:
            return None
        at = entry.get("at")
        if isinstance(at, int | float) and 0 <= time.time() - at < ttl:
            commit = entry.get("commit")
            return commit if isinstance(commit, str) else None
        return None

    def record(self, op: dict[str, Any]) -> None:
        with self.update() as data:
            data["ops"].append({"at": time.time(), **op})

    def forget(self, folder: str, commit: str | None = None) -> None:
        with self.update() as data:
            if commit is None:
                data["access"].pop(folder, None)
                for key in [k for k in data["resolved"] if k.startswith(folder + "@")]:
                    del data["resolved"][key]
            else:
                data["access"].get(folder, {}).pop(commit, None)
                for key in [
                    k
                    for k, v in data["resolved"].items()
                    if k.startswith(folder + "@") and v.get("commit") == commit
                ]:
                    del data["resolved"][key]


# --------------------------------------------------------------------------- HfCache


SnapshotKey = tuple[str, str]
"""``(repo folder, commit)``, e.g. ``("models--org--name", "<40 hex>")``: one cached snapshot."""


@dataclass(frozen=True)
class CachedSnapshot:
    repo_type: HfAssetType
    repo_id: str
    commit: str
    refs: tuple[str, ...]
    files: int
    size: int  # bytes of the files in this snapshot (shared blobs counted in each)
    last_access: float  # the latest of batuta's record and the blobs' atime (any reader's last read)
    path: Path

    @property
    def key(self) -> SnapshotKey:
        return repo_folder_name(self.repo_type, self.repo_id), self.commit


SORT_KEYS = ("accessed", "size", "name", "files")
"""``cache ls --sort``: most recently used, largest, repo id A→Z (then commit), most files — first."""


def select_snapshots(
    snaps: Iterable[CachedSnapshot],
    *,
    repo_type: HfAssetType | None = None,
    repo: str | None = None,
    detached: bool = False,
    min_size: int = 0,
    sort: str = "accessed",
    reverse: bool = False,
) -> list[CachedSnapshot]:
    """``cache ls`` filters and order (pure): ``repo`` is a glob on the repo id (``org/*``,
    case-sensitive), ``detached`` keeps the snapshots no ref points to (what ``hf cache prune``
    calls detached revisions), ``min_size`` in bytes; ``reverse`` flips the order."""
    import fnmatch

    if sort not in SORT_KEYS:
        raise UsageError(f"Unknown sort key {sort!r}.", hint=f"Use one of: {', '.join(SORT_KEYS)}.")
    keep = [
        s
        for s in snaps
        if (repo_type is None or s.repo_type is repo_type)
        and (repo is None or fnmatch.fnmatchcase(s.repo_id, repo))
        and (not detached or not s.refs)
        and s.size >= min_size
    ]
    name = {"accessed": lambda s: -s.last_access, "size": lambda s: -s.size, "files": lambda s: -s.files}
    primary = name.get(sort)
    keep.sort(key=lambda s: (primary(s) if primary else 0, s.repo_id, s.repo_type.value, s.commit))
    return keep[::-1] if reverse else keep


@dataclass(frozen=True)
class PruneResult:
    """What a prune did; ``kept`` are rooted snapshots left although the cache is over ``limit``."""

    freed: int
    size_before: int
    size_after: int
    limit: int
    kept: tuple[CachedSnapshot, ...] = ()

    @property
    def over_limit(self) -> bool:
        return self.size_after > self.limit


@dataclass(frozen=True)
class CacheStats:
    root: Path
    repos: int
    snapshots: int
    blobs: int
    size: int
    incomplete: int
    operations: int
    hits: int
    misses: int
    hit_bytes: int
    miss_bytes: int
    max_size: int | None = None

    @property
    def hit_rate(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None

    @property
    def byte_hit_rate(self) -> float | None:
        total = self.hit_bytes + self.miss_bytes
        return self.hit_bytes / total if total else None

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "repos": self.repos,
            "snapshots": self.snapshots,
            "blobs": self.blobs,
            "size_bytes": self.size,
            "incomplete_bytes": self.incomplete,
            "max_size_bytes": self.max_size,
            "recent_operations": self.operations,
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": self.hit_rate,
            "byte_hit_rate": self.byte_hit_rate,
        }


@dataclass
class HfCache:
    """Spec ``HfCache``: get/put/prune/clear over the shared hub cache, LRU by last access."""

    root: Path
    max_size: int | None = None
    metadata_ttl: float = 600.0
    state_dir: Path | None = None
    index: CacheIndex = field(init=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.index = CacheIndex(Path(self.state_dir) if self.state_dir else self.root.parent / "batuta")

    @classmethod
    def from_settings(cls, settings: Settings, *, max_size: int | None = None) -> HfCache:
        return cls(
            settings.hub_cache,
            max_size=max_size,
            metadata_ttl=settings.metadata_ttl,
            state_dir=settings.batuta_dir,
        )

    def layout(self, ref: RepoRef) -> CacheLayout:
        return CacheLayout.of(self.root, ref)

    # ------------------------------------------------------------------ spec API

    def get_model(
        self, repo_id: str, revision: str = "main", *, repo_type: HfAssetType = HfAssetType.MODEL
    ) -> Path | None:
        """The cached snapshot folder of ``repo_id@revision`` (None when absent); records the access."""
        ref = RepoRef(repo_id, repo_type, revision)
        layout = self.layout(ref)
        commit = read_ref(layout, revision)
        if commit is None:
            return None
        snap = layout.snapshot_dir(commit)
        if not snap.is_dir():
            return None
        self.index.touch(layout.folder, commit)
        return snap

    def put_model(
        self, repo_id: str, revision: str, path: Path, *, repo_type: HfAssetType = HfAssetType.MODEL
    ) -> Path:
        """Store a local folder (or file) as the snapshot ``repo_id@revision``; returns the snapshot folder.

        Files are hashed like the Hub does (sha256 for files ≥ 10 MB or weight formats,
        git blob sha1 otherwise).  A 40-hex ``revision`` is used as the commit; otherwise
        the commit is derived from the content and ``refs/<revision>`` points to it.
        """
        path = Path(path)
        if not path.exists():
            raise UsageError(f"{path} does not exist.", hint="Pass an existing file or folder to put_model.")
        sources = (
            [(path.name, path)]
            if path.is_file()
            else sorted(
                (p.relative_to(path).as_posix(), p)
                for p in path.rglob("*")
                if p.is_file() and ".git" not in p.relative_to(path).parts
            )
        )
        files: list[RepoFile] = []
        for rel, src in sources:
            validate_repo_path(rel)
            files.append(hash_local_file(src, rel))
        commit = (
            revision
            if SHA1_RE.match(revision)
            else hashlib.sha1(json.dumps(tree_json(files)).encode()).hexdigest()
        )
        ref = RepoRef(repo_id, repo_type, revision)
        layout = self.layout(ref)
        ensure_cache_root(self.root)
        state = self.index.path.parent
        confine(self.root, layout.blobs_dir, what="cache blobs folder")
        for (_rel, src), f in zip(sources, files, strict=True):
            blob = layout.blob_path(f.etag)
            if not verified_blob(state, layout, f):
                blob.parent.mkdir(parents=True, exist_ok=True)
                tmp = layout.blobs_dir / f".{f.etag}.{os.getpid()}.put"
                shutil.copyfile(src, tmp)
                seal_blob(tmp)
                os.replace(tmp, blob)
                if blob_digest_ok(blob, f):  # the source may have changed since it was hashed
                    mark_verified(state, layout, f)
            link_snapshot_file(layout, commit, f)
        snapshot = RepoSnapshot(ref=ref, commit=commit, files=tuple(files))
        write_tree(layout, snapshot)
        write_ref(layout, revision, commit)
        self.index.touch(layout.folder, commit)
        return layout.snapshot_dir(commit)

    def prune(self, max_size: int | None = None, *, keep: Collection[SnapshotKey] = ()) -> int:
        """Evict least-recently-used snapshots until the cache is ≤ ``max_size``; returns bytes freed.

        Snapshots in ``keep`` (GC roots: what known workspaces' hf.lock use) are never evicted;
        :meth:`prune_report` says whether the limit could be met without them.
        """
        return self.prune_report(max_size, keep=keep).freed

    def prune_report(self, max_size: int | None = None, *, keep: Collection[SnapshotKey] = ()) -> PruneResult:
        """:meth:`prune`, returning what was freed and which rooted snapshots kept the cache over the limit."""
        limit = self.max_size if max_size is None else max_size
        if limit is None:
            raise UsageError(
                "No size limit to prune to.",
                hint="Pass --max-size, e.g. `batuta cache prune --max-size 50GB`.",
            )
        keep = frozenset(keep)
        before = total = self.total_size()
        freed = 0
        rooted: list[CachedSnapshot] = []
        for snap in sorted(self.snapshots(), key=lambda s: (s.last_access, s.repo_id, s.commit)):
            if snap.key in keep:
                rooted.append(snap)
                continue
            if total <= limit:
                break
            n = self._remove_snapshot(snap)
            total -= n
            freed += n
        return PruneResult(freed, before, total, limit, tuple(rooted) if total > limit else ())

    def prune_detached(self, *, keep: Collection[SnapshotKey] = ()) -> tuple[list[CachedSnapshot], int]:
        """Remove every snapshot no branch or tag points to (``hf cache prune``'s detached
        revisions) except those in ``keep`` (GC roots: a workspace's hf.lock may pin a commit no
        ref names); returns the removed snapshots and the bytes freed."""
        keep = frozenset(keep)
        removed: list[CachedSnapshot] = []
        freed = 0
        for snap in select_snapshots(self.snapshots(), detached=True, sort="name"):
            if snap.key not in keep:
                freed += self._remove_snapshot(snap)
                removed.append(snap)
        return removed, freed

    # ------------------------------------------------------------------ GC roots

    @property
    def roots_dir(self) -> Path:
        """``<batuta state>/gc-roots/``: one symlink per known workspace, to its hf.lock."""
        return self.index.path.parent / "gc-roots"

    def add_root(self, lock_path: Path) -> Path:
        """Record a workspace as a GC root (idempotent): ``gc-roots/<digest of the path>`` → hf.lock.

        Like a content-addressed store's GC roots: pruning keeps every snapshot a root's hf.lock
        uses, and a root whose hf.lock is gone (workspace deleted) is dropped (:meth:`root_locks`).
        """
        target = Path(os.path.abspath(lock_path))
        link = self.roots_dir / hashlib.sha256(str(target).encode("utf-8")).hexdigest()[:24]
        with contextlib.suppress(OSError):
            if os.readlink(link) == str(target):
                return link
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_name(link)
        os.symlink(target, tmp)
        os.replace(tmp, link)
        return link

    def root_locks(self) -> list[Path]:
        """The hf.lock of every known workspace, sorted; roots whose hf.lock is gone are removed."""
        d = self.roots_dir
        if not d.is_dir():
            return []
        out: list[Path] = []
        for link in sorted(d.iterdir()):
            if not link.is_symlink():
                continue
            target = Path(os.readlink(link))
            if target.is_file():
                out.append(target)
            else:  # the workspace is gone (or lost its lock): nothing to protect any more
                with contextlib.suppress(OSError):
                    link.unlink()
        return sorted(set(out))

    def clear(self) -> int:
        """Delete every cached repo (and its locks and LRU records); returns bytes freed."""
        freed = 0
        if not self.root.is_dir():
            return 0
        for child in sorted(self.root.iterdir()):
            if parse_repo_folder(child.name) and child.is_dir() and not child.is_symlink():
                freed += _dir_size(child)
                shutil.rmtree(child, ignore_errors=True)
        shutil.rmtree(self.root / ".locks", ignore_errors=True)
        shutil.rmtree(self.index.path.parent / "listings", ignore_errors=True)
        shutil.rmtree(self.index.path.parent / "verified", ignore_errors=True)
        with self.index.update() as data:
            data["access"] = {}
            data["resolved"] = {}
        return freed

    # ------------------------------------------------------------------ listing

    def repo_dirs(self) -> list[tuple[HfAssetType, str, Path]]:
        if not self.root.is_dir():
            return []
        out = []
        for child in sorted(self.root.iterdir()):
            parsed = parse_repo_folder(child.name)
            if parsed and child.is_dir():
                out.append((parsed[0], parsed[1], child))
        return out

    def snapshots(self) -> list[CachedSnapshot]:
        access = self.index.load()["access"]
        out: list[CachedSnapshot] = []
        for repo_type, repo_id, repo_dir in self.repo_dirs():
            refs: dict[str, list[str]] = {}
            refs_dir = repo_dir / "refs"
            if refs_dir.is_dir():
                for rp in refs_dir.rglob("*"):
                    if rp.is_file():
                        with contextlib.suppress(OSError, UnicodeDecodeError):
                            refs.setdefault(rp.read_text(encoding="utf-8").strip(), []).append(
                                rp.relative_to(refs_dir).as_posix()
                            )
            snaps = repo_dir / "snapshots"
            if not snaps.is_dir():
                continue
            for sd in sorted(snaps.iterdir()):
                if not sd.is_dir():
                    continue
                n = size = 0
                read = 0.0  # the last read of the snapshot's blobs (transformers, huggingface_hub, …)
                for p in sd.rglob("*"):
                    if p.is_symlink() or p.is_file():
                        with contextlib.suppress(OSError):
                            st = p.stat()  # through the link: the blob
                            size += st.st_size
                            n += 1
                            read = max(read, st.st_atime)
                recorded = access.get(repo_dir.name, {}).get(sd.name)
                last = max(float(recorded) if isinstance(recorded, int | float) else 0.0, read)
                if not last:
                    last = sd.stat().st_mtime
                out.append(
                    CachedSnapshot(
                        repo_type,
                        repo_id,
                        sd.name,
                        tuple(sorted(refs.get(sd.name, []))),
                        n,
                        size,
                        float(last),
                        sd,
                    )
                )
        return out

    def total_size(self) -> int:
        return sum(_dir_size(d) for _t, _i, d in self.repo_dirs())

    def stats(self, *, recent: int = 50) -> CacheStats:
        blobs = incomplete = 0
        for _t, _i, d in self.repo_dirs():
            bd = d / "blobs"
            if bd.is_dir():
                for p in bd.iterdir():
                    if p.name.endswith(".incomplete"):
                        with contextlib.suppress(OSError):
                            incomplete += p.stat().st_size
                    else:
                        blobs += 1
        ops = self.index.load()["ops"][-recent:]

        def s(key: str) -> int:
            return sum(int(o.get(key, 0)) for o in ops if isinstance(o, dict))

        snaps = self.snapshots()
        return CacheStats(
            root=self.root,
            repos=len(self.repo_dirs()),
            snapshots=len(snaps),
            blobs=blobs,
            size=self.total_size(),
            incomplete=incomplete,
            operations=len(ops),
            hits=s("hits"),
            misses=s("misses"),
            hit_bytes=s("hit_bytes"),
            miss_bytes=s("miss_bytes"),
            max_size=self.max_size,
        )

    # ------------------------------------------------------------------ internals

    def _remove_snapshot(self, snap: CachedSnapshot) -> int:
        repo_dir = self.root / repo_folder_name(snap.repo_type, snap.repo_id)
        for sub in ("", "snapshots", "refs", "blobs", "trees"):  # a symlinked folder must not lead a delete out
            confine(self.root, repo_dir / sub, what="cache folder")
        before = _dir_size(repo_dir)
        lock = self.root / ".locks" / repo_dir.name / "repo.lock"
        with file_lock(lock):
            shutil.rmtree(snap.path, ignore_errors=True)
            with contextlib.suppress(OSError):
                (repo_dir / "trees" / f"{snap.commit}.json").unlink()
            refs_dir = repo_dir / "refs"
            for ref in snap.refs:
                with contextlib.suppress(OSError):
                    (refs_dir / ref).unlink()
            remaining = (
                [p for p in (repo_dir / "snapshots").iterdir() if p.is_dir()]
                if (repo_dir / "snapshots").is_dir()
                else []
            )
            if not remaining:
                shutil.rmtree(repo_dir, ignore_errors=True)
            else:
                used: set[str] = set()
                for sd in remaining:
                    for p in sd.rglob("*"):
                        if p.is_symlink():
                            used.add(os.path.basename(os.readlink(p)))
                bd = repo_dir / "blobs"
                for blob in bd.iterdir() if bd.is_dir() else []:
                    if blob.name not in used and not blob.name.endswith(".incomplete"):
                        with contextlib.suppress(OSError):
                            blob.unlink()
        with contextlib.suppress(OSError):
            (self.index.path.parent / "listings" / repo_dir.name / f"{snap.commit}.json").unlink()
        self.index.forget(repo_dir.name, snap.commit)
        return before - (_dir_size(repo_dir) if repo_dir.exists() else 0)


def _dir_size(path: Path) -> int:
    """Bytes on disk of regular files under ``path`` (symlinks not followed)."""
    total = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if not os.path.islink(os.path.join(dirpath, name)):
                total += st.st_size
    return total


# --------------------------------------------------------------------------- hashing local files

LFS_THRESHOLD = 10 * 1000 * 1000
_LFS_EXTS = (
    ".safetensors",
    ".gguf",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".pkl",
    ".onnx",
    ".h5",
    ".msgpack",
    ".parquet",
    ".arrow",
    ".npy",
    ".npz",
    ".tflite",
    ".model",
)


def hash_local_file(path: Path, rel: str) -> RepoFile:
    """A RepoFile for a local file: git blob sha1 always; sha256 when the Hub would store it in LFS."""
    from batuta_sync._fmt import file_digests

    lfs = path.stat().st_size >= LFS_THRESHOLD or rel.lower().endswith(_LFS_EXTS)
    size, sha256, sha1 = file_digests(path, sha256=lfs)
    assert sha1 is not None
    return RepoFile(path=rel, size=size, blob_id=sha1, sha256=sha256)


def disk_free(path: Path) -> int:
    """Bytes available where ``path`` lives (:func:`batuta_sync._fs.disk_free`)."""
    return _fs_disk_free(path)


# --------------------------------------------------------------------------- verify / rm / stale partials


@dataclass(frozen=True)
class VerifyProblem:
    """One file of a cached snapshot that is not what its name and listing say."""

    repo_type: HfAssetType
    repo_id: str
    commit: str
    path: str
    kind: str  # "missing" (link or blob absent) | "corrupt" (size/digest wrong) | "mislinked"
    etag: str

    def to_json(self) -> dict[str, Any]:
        return {
            "repo_type": self.repo_type.value,
            "repo_id": self.repo_id,
            "commit": self.commit,
            "path": self.path,
            "problem": self.kind,
            "blob": self.etag,
        }


def _listed_or_named(layout: CacheLayout, commit: str) -> tuple[RepoFile, ...]:
    """The files of a cached snapshot: its listing (``trees/<commit>.json``), else what its
    symlinks name (a snapshot written by huggingface_hub has no listing: the blob's name is
    its digest, sha256 when 64 hex, git blob sha1 when 40)."""
    listed = read_tree(layout, commit)
    if listed is not None:
        return listed
    snap = layout.snapshot_dir(commit)
    out: list[RepoFile] = []
    for p in sorted(snap.rglob("*")) if snap.is_dir() else []:
        if not p.is_symlink():
            continue
        name = os.path.basename(os.readlink(p))
        try:
            size = os.stat(p).st_size
        except OSError:  # the blob it points to is gone: reported as missing
            size = 0
        rel = p.relative_to(snap).as_posix()
        if ids.is_sha256(name):
            out.append(RepoFile(path=rel, size=size, blob_id="", sha256=name))
        elif ids.is_git_sha1(name):
            out.append(RepoFile(path=rel, size=size, blob_id=name))
    return tuple(out)


def verify_snapshot(state_dir: Path, snap: CachedSnapshot, root: Path) -> tuple[int, list[VerifyProblem]]:
    """Re-hash every blob of ``snap`` against its name and the listing (stamps are not trusted);
    returns (files checked, problems).  Blobs found right get a fresh verification stamp."""
    ref = RepoRef(snap.repo_id, snap.repo_type, snap.commit)
    layout = CacheLayout.of(root, ref)
    problems: list[VerifyProblem] = []
    files = _listed_or_named(layout, snap.commit)
    for f in files:
        def problem(kind: str, f: RepoFile = f) -> None:
            problems.append(VerifyProblem(snap.repo_type, snap.repo_id, snap.commit, f.path, kind, f.etag))

        link = layout.snapshot_file(snap.commit, f.path)
        blob = confine(root, layout.blob_path(f.etag), follow_last=False, what="cache blob")
        try:
            st = os.lstat(blob)
        except OSError:
            problem("missing")
            continue
        if not stat.S_ISREG(st.st_mode):
            problem("missing")
            continue
        if not os.path.lexists(link):
            problem("missing")
        elif not link.is_symlink() or os.path.basename(os.readlink(link)) != f.etag:
            problem("mislinked")
        if not blob_digest_ok(blob, f):
            problem("corrupt")
        else:
            mark_verified(state_dir, layout, f)
    return len(files), problems


def discard_blob(state_dir: Path, root: Path, p: VerifyProblem) -> None:
    """Delete a corrupt blob (and its stamp) so the next pull downloads it again."""
    layout = CacheLayout.of(root, RepoRef(p.repo_id, p.repo_type, p.commit))
    with contextlib.suppress(OSError):
        os.unlink(confine(layout.blobs_dir, layout.blob_path(p.etag), follow_last=False, what="cache blob"))
    with contextlib.suppress(OSError):
        os.unlink(_verified_marker(state_dir, layout, p.etag))


def prune_incomplete(root: Path, older_than: float, *, now: float | None = None) -> tuple[int, int]:
    """Delete ``blobs/*.incomplete`` not written to for ``older_than`` seconds (a download that
    died long ago); returns (files, bytes) removed.  A download in progress keeps its mtime fresh."""
    now = time.time() if now is None else now
    count = freed = 0
    for child in sorted(Path(root).iterdir()) if Path(root).is_dir() else []:
        if not parse_repo_folder(child.name) or child.is_symlink():
            continue
        bd = child / "blobs"
        if bd.is_symlink() or not bd.is_dir():
            continue
        for p in sorted(bd.iterdir()):
            if not p.name.endswith(".incomplete") or p.is_symlink():
                continue
            with contextlib.suppress(OSError):
                st = p.stat()
                if now - st.st_mtime >= older_than:
                    p.unlink()
                    count += 1
                    freed += st.st_size
    return count, freed


def remove_snapshots(cache: HfCache, snaps: Sequence[CachedSnapshot]) -> int:
    """Delete these snapshots (blobs no other snapshot uses go too); returns bytes freed."""
    return sum(cache._remove_snapshot(s) for s in snaps)
