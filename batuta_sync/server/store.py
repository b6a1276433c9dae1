"""Persistent, content-addressed repository store of the local Hub.

Layout under ``root``::

    blobs/<aa>/<sha256>                 file contents, content-addressed (immutable)
    objects/<aa>/<commit-sha>.json      commit records (immutable): parents, full file table, derived metadata
    repos/<type>s/<ns>/<name>/repo.json repo settings + refs (branches, tags, PRs); replaced atomically
    repos/<type>s/<ns>/<name>/stats.json downloads / likes counters
    tmp/                                staging for blobs and records (same filesystem => atomic rename)

A commit writes its blobs, then its record, then swaps ``repo.json`` (temp + fsync + ``os.replace``).
A crash at any point leaves the previous refs — and so the previous commit — intact; at worst an
unreferenced blob or record remains.  Shas follow git: blob sha1 over ``blob <size>\\0<content>``
(for LFS files over the pointer file, as git stores the pointer), git tree objects, and a git commit
object over tree + parents + author + message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from batuta_sync._fmt import git_blob_sha1
from batuta_sync.ids import is_sha256, repo_path_problem
from batuta_sync.server import meta

LFS_EXTENSIONS = frozenset(
    [
        ".safetensors",
        ".gguf",
        ".bin",
        ".pt",
        ".pth",
        ".pkl",
        ".ckpt",
        ".onnx",
        ".parquet",
        ".arrow",
        ".h5",
        ".msgpack",
        ".npy",
        ".npz",
        ".zip",
        ".tar",
        ".gz",
        ".model",
        ".tflite",
        ".ot",
    ]
)
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
REPO_TYPES = ("model", "dataset", "space")
_CHUNK = 1 << 20
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEXPREFIX = re.compile(r"^[0-9a-f]{7,40}$")
_REPO_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_PR_REF = re.compile(r"^refs/pr/(\d+)$")


class StoreError(Exception):
    """A request the store cannot satisfy; carries the HTTP status and Hub ``X-Error-Code``."""

    status = 400
    error_code: str | None = None

    def __init__(self, message: str, *, status: int | None = None, error_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if error_code is not None:
            self.error_code = error_code


class RepoNotFound(StoreError):
    status = 404
    error_code = "RepoNotFound"


class RevisionNotFound(StoreError):
    status = 404
    error_code = "RevisionNotFound"


class EntryNotFound(StoreError):
    status = 404
    error_code = "EntryNotFound"

    def __init__(self, message: str, commit: str) -> None:
        super().__init__(message)
        self.commit = commit


class RepoExists(StoreError):
    status = 409
    error_code = "RepoExists"


class ParentMismatch(StoreError):
    status = 412
    error_code = "PreconditionFailed"


def is_lfs_policy(path: str, size: int) -> bool:
    """The server's LFS policy: binary model/data extensions or >= 10 MiB; empty files are regular."""
    if size == 0:
        return False
    if size >= LFS_SIZE_THRESHOLD:
        return True
    return os.path.splitext(path)[1].lower() in LFS_EXTENSIONS


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def now_iso(ts: float | None = None) -> str:
    ts = time.time() if ts is None else ts
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def check_repo_id(repo_id: str) -> tuple[str, str]:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(_REPO_PART.match(p) for p in parts) or "--" in repo_id or ".." in repo_id:
        raise StoreError(f"Invalid repo id {repo_id!r}: expected 'namespace/name'.", status=400)
    return parts[0], parts[1]


def check_repo_type(repo_type: str | None) -> str:
    rt = (repo_type or "model").rstrip("s")
    if rt not in REPO_TYPES:
        raise StoreError(f"Invalid repo type {repo_type!r}.", status=400)
    return rt


def check_path(path: str) -> str:
    """``path`` if it is a repo file path the client would accept too (``ids.repo_path_problem``:
    no ``..``, no absolute path, no ``.git`` component, no control characters, …); else a 400.
    The rule for every path that arrives over HTTP."""
    problem = repo_path_problem(path)
    if problem:
        raise StoreError(f"Invalid path in repo {path[:200]!r}: it {problem}.", status=400)
    return path


def tree_path(path: str) -> str:
    """``path`` if it can be stored in a git tree (relative, no empty / ``.`` / ``..`` segments, no NUL).

    The looser rule of the trusted seeding API (:meth:`Store.commit`): tests use it to make the server
    list names a client must refuse (``x/CON``, ``C:/…``, control characters).  Paths never become
    file-system paths in the store (blobs are stored by digest)."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts) or parts[0] == ".git":
        raise StoreError(f"Invalid path in repo: {path[:200]!r}.", status=400)
    if "\0" in path or "\\" in path:
        raise StoreError(f"Invalid path in repo: {path[:200]!r}.", status=400)
    return path


@dataclass(frozen=True)
class FileEntry:
    """One file in a commit's tree."""

    path: str
    size: int
    sha256: str
    oid: str  # git blob sha1 (of the pointer file for LFS)
    lfs: bool

    @property
    def pointer_size(self) -> int:
        return len(lfs_pointer(self.sha256, self.size))

    @property
    def etag(self) -> str:
        """What huggingface_hub names the blob: sha256 for LFS, git sha1 otherwise."""
        return self.sha256 if self.lfs else self.oid


@dataclass(frozen=True)
class Commit:
    id: str
    parents: tuple[str, ...]
    tree: str
    dirs: Mapping[str, str]
    files: Mapping[str, FileEntry]
    title: str
    message: str
    author: str
    date: str
    info: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "parents": list(self.parents),
            "tree": self.tree,
            "dirs": dict(self.dirs),
            "files": {p: [e.size, e.sha256, e.oid, e.lfs] for p, e in sorted(self.files.items())},
            "title": self.title,
            "message": self.message,
            "author": self.author,
            "date": self.date,
            "info": dict(self.info),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Commit:
        files = {p: FileEntry(p, int(v[0]), str(v[1]), str(v[2]), bool(v[3])) for p, v in d["files"].items()}
        return cls(
            id=d["id"],
            parents=tuple(d["parents"]),
            tree=d["tree"],
            dirs=dict(d["dirs"]),
            files=files,
            title=d["title"],
            message=d["message"],
            author=d["author"],
            date=d["date"],
            info=dict(d.get("info") or {}),
        )


@dataclass
class RepoState:
    """Mutable per-repo state (guarded by the store lock)."""

    repo_type: str
    repo_id: str
    private: bool = False
    gated: Any = False
    sdk: str | None = None
    created_at: str = field(default_factory=now_iso)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    prs: dict[int, str] = field(default_factory=dict)
    downloads: int = 0
    likes: int = 0
    commits: set[str] = field(default_factory=set)
    mirrored: bool = False  # a read-only copy of an upstream repo (server/mirror.py), not hosted here

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]

    def settings_json(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"mirrored": True} if self.mirrored else {}
        return {
            **extra,
            "repo_type": self.repo_type,
            "repo_id": self.repo_id,
            "private": self.private,
            "gated": self.gated,
            "sdk": self.sdk,
            "created_at": self.created_at,
            "refs": {
                "branches": dict(sorted(self.branches.items())),
                "tags": dict(sorted(self.tags.items())),
                "prs": {str(k): v for k, v in sorted(self.prs.items())},
            },
        }


@dataclass(frozen=True)
class NewFile:
    """A file to add in a commit, already in the blob store."""

    path: str
    sha256: str
    size: int
    git_sha1: str | None  # content sha1, known for inline/seeded files
    lfs: bool | None = None  # None = apply the LFS policy


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ExternalBlobs(Protocol):
    """Content the store serves but does not keep under ``blobs/`` (Xet files: rebuilt from xorbs)."""

    def size(self, sha256: str) -> int | None: ...

    def write_to(self, sha256: str, f: BinaryIO) -> None: ...


class Store:
    """All repositories under one root.  Thread-safe; safe to reopen after a crash or restart."""

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = Path(root)
        self.durable = durable
        self.external: ExternalBlobs | None = None
        self.lock = threading.RLock()
        for sub in ("blobs", "objects", "repos", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._clean_tmp()
        self._repos: dict[tuple[str, str], RepoState] = {}
        self._commits: dict[str, Commit] = {}
        self._file_info: dict[tuple[str, str], Any] = {}
        # Who holds each stored object: the repos whose commits reference it, plus the repos it was
        # uploaded to (an upload proves possession).  Authorisation of an object is per repo.
        self._owners: dict[str, set[tuple[str, str]]] = {}
        # Set by a pull-through mirror (server/mirror.py): resolves revisions of mirrored repos,
        # fetching refs and commits from the upstream when needed.
        self.mirror_resolve: Callable[[RepoState, str], str] | None = None
        self._load()

    # ------------------------------------------------------------------ persistence helpers
    def _clean_tmp(self) -> None:
        for p in (self.root / "tmp").iterdir():
            try:
                if p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink()
            except OSError:
                pass

    def tmp_path(self) -> Path:
        return self.root / "tmp" / uuid.uuid4().hex

    def _write_atomic(self, path: Path, data: bytes, *, durable: bool | None = None) -> None:
        durable = self.durable if durable is None else durable
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp_path()
        with open(tmp, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if durable:
            _fsync_dir(path.parent)

    def _repo_dir(self, repo_type: str, repo_id: str) -> Path:
        ns, name = repo_id.split("/")
        return self.root / "repos" / f"{repo_type}s" / ns / name

    def _load(self) -> None:
        for settings in sorted((self.root / "repos").glob("*/*/*/repo.json")):
            try:
                d = json.loads(settings.read_text("utf-8"))
            except (OSError, ValueError):
                continue
            refs = d.get("refs") or {}
            st = RepoState(
                repo_type=d["repo_type"],
                repo_id=d["repo_id"],
                private=bool(d.get("private")),
                gated=d.get("gated", False),
                sdk=d.get("sdk"),
                created_at=d.get("created_at") or now_iso(),
                branches=dict(refs.get("branches") or {}),
                tags=dict(refs.get("tags") or {}),
                prs={int(k): v for k, v in (refs.get("prs") or {}).items()},
                mirrored=bool(d.get("mirrored")),
            )
            try:
                stats = json.loads((settings.parent / "stats.json").read_text("utf-8"))
                st.downloads = int(stats.get("downloads", 0))
                st.likes = int(stats.get("likes", 0))
            except (OSError, ValueError):
                pass
            heads = [*st.branches.values(), *st.tags.values(), *st.prs.values()]
            st.commits = self._reachable(heads)
            self._repos[(st.repo_type, st.repo_id)] = st
            for sha in st.commits:
                try:
                    files = self.get_commit(sha).files.values()
                except StoreError:
                    continue
                for e in files:
                    self._owners.setdefault(e.sha256, set()).add((st.repo_type, st.repo_id))

    def _reachable(self, heads: Sequence[str]) -> set[str]:
        seen: set[str] = set()
        stack = list(heads)
        while stack:
            sha = stack.pop()
            if sha in seen:
                continue
            try:
                stack.extend(self.get_commit(sha).parents)
            except StoreError:
                continue  # no record (e.g. a mirrored ref whose commit was never fetched)
            seen.add(sha)
        return seen

    def _save_settings(self, st: RepoState) -> None:
        data = json.dumps(st.settings_json(), indent=1, sort_keys=True).encode()
        self._write_atomic(self._repo_dir(st.repo_type, st.repo_id) / "repo.json", data)

    def _save_stats(self, st: RepoState) -> None:
        data = json.dumps({"downloads": st.downloads, "likes": st.likes}).encode()
        self._write_atomic(self._repo_dir(st.repo_type, st.repo_id) / "stats.json", data, durable=False)

    # ------------------------------------------------------------------ blobs
    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    def has_blob(self, sha256: str) -> bool:
        return is_sha256(sha256) and (self.blob_path(sha256).is_file() or self._external_size(sha256) is not None)

    def _external_size(self, sha256: str) -> int | None:
        return self.external.size(sha256) if self.external is not None else None

    def _install_blob(self, tmp: Path, sha256: str) -> None:
        dest = self.blob_path(sha256)
        if dest.exists():
            tmp.unlink(missing_ok=True)
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
        if self.durable:
            _fsync_dir(dest.parent)

    def put_bytes(self, data: bytes) -> tuple[str, str]:
        """Store ``data``; return (sha256, git blob sha1)."""
        sha256 = hashlib.sha256(data).hexdigest()
        sha1 = git_blob_sha1(data)
        if not self.blob_path(sha256).exists():
            tmp = self.tmp_path()
            with open(tmp, "wb") as f:
                f.write(data)
                if self.durable:
                    f.flush()
                    os.fsync(f.fileno())
            self._install_blob(tmp, sha256)
        return sha256, sha1

    def put_file(self, src: Path) -> tuple[str, str, int]:
        """Copy a local file into the store (streamed); return (sha256, git blob sha1, size)."""
        size = src.stat().st_size
        h256 = hashlib.sha256()
        h1 = hashlib.sha1(b"blob %d\0" % size)
        tmp = self.tmp_path()
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            while chunk := fin.read(_CHUNK):
                h256.update(chunk)
                h1.update(chunk)
                fout.write(chunk)
            if self.durable:
                fout.flush()
                os.fsync(fout.fileno())
        sha256 = h256.hexdigest()
        self._install_blob(tmp, sha256)
        return sha256, h1.hexdigest(), size

    def put_stream(
        self, read: Callable[[int], bytes], length: int, expected_sha256: str | None = None
    ) -> str:
        """Store ``length`` bytes read with ``read(n)``; check the sha256 when given; return it."""
        h = hashlib.sha256()
        tmp = self.tmp_path()
        remaining = length
        try:
            with open(tmp, "wb") as f:
                while remaining > 0:
                    chunk = read(min(_CHUNK, remaining))
                    if not chunk:
                        raise StoreError("Upload body ended early.", status=400)
                    h.update(chunk)
                    f.write(chunk)
                    remaining -= len(chunk)
                if self.durable:
                    f.flush()
                    os.fsync(f.fileno())
            sha256 = h.hexdigest()
            if expected_sha256 is not None and sha256 != expected_sha256:
                raise StoreError(
                    f"Uploaded content has sha256 {sha256}, expected {expected_sha256}.", status=422
                )
            self._install_blob(tmp, sha256)
            return sha256
        finally:
            tmp.unlink(missing_ok=True)

    def blob_size(self, sha256: str) -> int:
        path = self.blob_path(sha256)
        size = None if path.is_file() else self._external_size(sha256)
        return path.stat().st_size if size is None else size

    def add_owner(self, st: RepoState, sha256: str) -> None:
        """Record that ``st`` holds the stored object ``sha256`` (it was uploaded to it)."""
        with self.lock:
            self._owners.setdefault(sha256, set()).add((st.repo_type, st.repo_id))

    def holders(self, sha256: str) -> list[RepoState]:
        """The existing repos that hold ``sha256`` (reference it in a commit, or had it uploaded)."""
        with self.lock:
            keys = list(self._owners.get(sha256, ()))
            return [self._repos[k] for k in keys if k in self._repos]

    def committed_sha256(self) -> set[str]:
        """The content of every file any commit of an existing repo names (the roots of the Xet
        garbage collection; an upload no commit took is not one)."""
        with self.lock:
            commits = {c for st in self._repos.values() for c in st.commits}
        out: set[str] = set()
        for cid in commits:
            try:
                out.update(e.sha256 for e in self.get_commit(cid).files.values() if e.sha256)
            except (StoreError, OSError, KeyError):
                continue
        return out

    def holds(self, st: RepoState, sha256: str) -> bool:
        """Whether ``st`` holds ``sha256`` (a cheap pre-check before walking its history)."""
        with self.lock:
            return (st.repo_type, st.repo_id) in self._owners.get(sha256, ())

    def _blob_git_sha1(self, sha256: str, size: int) -> str:
        h = hashlib.sha1(b"blob %d\0" % size)
        with open(self.blob_path(sha256), "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        return h.hexdigest()

    # ------------------------------------------------------------------ repos
    def repo(self, repo_id: str, repo_type: str = "model") -> RepoState:
        rt = check_repo_type(repo_type)
        st = self._repos.get((rt, repo_id))
        if st is None:
            raise RepoNotFound(f"Repository {rt} {repo_id!r} not found.")
        return st

    def repos(self) -> list[RepoState]:
        with self.lock:
            return list(self._repos.values())

    def create_repo(
        self,
        repo_id: str,
        repo_type: str = "model",
        private: bool = False,
        exist_ok: bool = True,
        *,
        sdk: str | None = None,
        author: str = "local",
    ) -> RepoState:
        """Create a repo with an empty initial commit on ``main`` (no-op if it exists and ``exist_ok``)."""
        rt = check_repo_type(repo_type)
        check_repo_id(repo_id)
        with self.lock:
            existing = self._repos.get((rt, repo_id))
            if existing is not None:
                if exist_ok:
                    return existing
                raise RepoExists(f"You already created this {rt} repo: {repo_id}.")
            st = RepoState(repo_type=rt, repo_id=repo_id, private=private, sdk=sdk)
            initial = self._make_commit({}, (), "initial commit", "", author)
            st.branches["main"] = initial.id
            st.commits.add(initial.id)
            self._save_settings(st)
            self._save_stats(st)
            self._repos[(rt, repo_id)] = st
            return st

    def delete_repo(self, repo_id: str, repo_type: str = "model") -> None:
        with self.lock:
            st = self.repo(repo_id, repo_type)
            d = self._repo_dir(st.repo_type, st.repo_id)
            # Make the deletion atomic: drop repo.json first, then the directory.
            (d / "repo.json").unlink(missing_ok=True)
            shutil.rmtree(d, ignore_errors=True)
            key = (st.repo_type, st.repo_id)
            del self._repos[key]
            for holders in self._owners.values():
                holders.discard(key)

    def update_settings(
        self, repo_id: str, repo_type: str = "model", *, private: bool | None = None, gated: Any = None
    ) -> None:
        with self.lock:
            st = self.repo(repo_id, repo_type)
            if private is not None:
                st.private = private
            if gated is not None:
                st.gated = gated
            self._save_settings(st)

    def set_likes(self, repo_id: str, likes: int, *, repo_type: str = "model") -> None:
        with self.lock:
            st = self.repo(repo_id, repo_type)
            st.likes = likes
            self._save_stats(st)

    def set_downloads(self, repo_id: str, downloads: int, *, repo_type: str = "model") -> None:
        with self.lock:
            st = self.repo(repo_id, repo_type)
            st.downloads = downloads
            self._save_stats(st)

    def record_download(self, st: RepoState) -> None:
        with self.lock:
            st.downloads += 1
            self._save_stats(st)

    # ------------------------------------------------------------------ revisions
    def get_commit(self, sha: str) -> Commit:
        c = self._commits.get(sha)
        if c is not None:
            return c
        if not _HEX40.match(sha):
            raise RevisionNotFound(f"Invalid rev id: {sha}")
        p = self.root / "objects" / sha[:2] / f"{sha}.json"
        try:
            c = Commit.from_json(json.loads(p.read_text("utf-8")))
        except (OSError, ValueError, KeyError) as exc:
            raise RevisionNotFound(f"Invalid rev id: {sha}") from exc
        self._commits[sha] = c
        return c

    def resolve_state(self, st: RepoState, rev: str) -> str:
        hook = self.mirror_resolve
        if st.mirrored and hook is not None:
            return hook(st, rev)
        return self.resolve_local(st, rev)

    def resolve_local(self, st: RepoState, rev: str) -> str:
        """``rev`` resolved with what this store holds (no upstream)."""
        with self.lock:  # refs may change under concurrent commits
            return self._resolve_locked(st, rev)

    def refs_snapshot(self, st: RepoState) -> tuple[dict[str, str], dict[str, str], dict[int, str]]:
        """Consistent copies of (branches, tags, PRs)."""
        with self.lock:
            return dict(st.branches), dict(st.tags), dict(st.prs)

    def _resolve_locked(self, st: RepoState, rev: str) -> str:
        if rev in st.branches:
            return st.branches[rev]
        if rev in st.tags:
            return st.tags[rev]
        if rev.startswith("refs/heads/") and rev[11:] in st.branches:
            return st.branches[rev[11:]]
        if rev.startswith("refs/tags/") and rev[10:] in st.tags:
            return st.tags[rev[10:]]
        m = _PR_REF.match(rev)
        if m and int(m.group(1)) in st.prs:
            return st.prs[int(m.group(1))]
        low = rev.lower()
        if _HEX40.match(low):
            if low in st.commits:
                return low
        elif _HEXPREFIX.match(low):
            hits = [c for c in st.commits if c.startswith(low)]
            if len(hits) == 1:
                return hits[0]
        raise RevisionNotFound(f"Invalid rev id: {rev}")

    def resolve(self, repo_id: str, rev: str = "main", *, repo_type: str = "model") -> str:
        """The commit sha a branch, tag, ``refs/…`` name, full or short sha points at."""
        return self.resolve_state(self.repo(repo_id, repo_type), rev)

    def commit_of(self, repo_id: str, rev: str = "main", *, repo_type: str = "model") -> Commit:
        return self.get_commit(self.resolve(repo_id, rev, repo_type=repo_type))

    def history(self, sha: str) -> Iterator[Commit]:
        """First-parent history, newest first."""
        seen: set[str] = set()
        cur: str | None = sha
        while cur and cur not in seen:
            seen.add(cur)
            c = self.get_commit(cur)
            yield c
            cur = c.parents[0] if c.parents else None

    def create_branch(
        self,
        repo_id: str,
        branch: str,
        *,
        repo_type: str = "model",
        from_rev: str = "main",
        exist_ok: bool = False,
    ) -> None:
        self._check_ref_name(branch)
        with self.lock:
            st = self.repo(repo_id, repo_type)
            sha = self.resolve_state(st, from_rev)
            if branch in st.branches and not exist_ok:
                raise StoreError(f"Reference already exists: refs/heads/{branch}", status=409)
            st.branches[branch] = sha
            self._save_settings(st)

    def delete_branch(self, repo_id: str, branch: str, *, repo_type: str = "model") -> None:
        with self.lock:
            st = self.repo(repo_id, repo_type)
            if branch == "main":
                raise StoreError("Cannot delete the default branch.", status=403)
            if branch not in st.branches:
                raise RevisionNotFound(f"Invalid rev id: {branch}")
            del st.branches[branch]
            self._save_settings(st)

    def create_tag(
        self, repo_id: str, tag: str, *, repo_type: str = "model", rev: str = "main", exist_ok: bool = False
    ) -> None:
        self._check_ref_name(tag)
        with self.lock:
            st = self.repo(repo_id, repo_type)
            sha = self.resolve_state(st, rev)
            if tag in st.tags and not exist_ok:
                raise StoreError(f"Tag already exists: {tag}", status=409)
            st.tags[tag] = sha
            self._save_settings(st)

    def delete_tag(self, repo_id: str, tag: str, *, repo_type: str = "model") -> None:
        with self.lock:
            st = self.repo(repo_id, repo_type)
            if tag not in st.tags:
                raise RevisionNotFound(f"Invalid rev id: {tag}")
            del st.tags[tag]
            self._save_settings(st)

    @staticmethod
    def _check_ref_name(name: str) -> None:
        if (
            not name
            or name.startswith(("/", "refs/", "-"))
            or name.endswith(("/", ".lock"))
            or ".." in name
            or any(c in name for c in " ~^:?*[\\\0")
            or _HEX40.match(name)
        ):
            raise StoreError(f"Invalid reference name: {name!r}", status=400)

    # ------------------------------------------------------------------ commits
    def commit(
        self,
        repo_id: str,
        files: Mapping[str, bytes | Path],
        *,
        repo_type: str = "model",
        branch: str = "main",
        message: str = "seed",
        deletes: Sequence[str] = (),
        parent: str | None = None,
        author: str = "local",
    ) -> str:
        """Seed a commit directly (creates the repo, and the branch from ``main``, if missing)."""
        rt = check_repo_type(repo_type)
        self.create_repo(repo_id, rt, exist_ok=True, author=author)
        adds: list[NewFile] = []
        for path, content in files.items():
            tree_path(path)
            if isinstance(content, (bytes, bytearray, memoryview)):
                data = bytes(content)
                sha256, sha1 = self.put_bytes(data)
                adds.append(NewFile(path, sha256, len(data), sha1))
            else:
                sha256, sha1, size = self.put_file(Path(content))
                adds.append(NewFile(path, sha256, size, sha1))
        with self.lock:
            st = self.repo(repo_id, rt)
            if branch not in st.branches and self._is_plain_branch(branch):
                st.branches[branch] = st.branches["main"]
        title, _, desc = message.partition("\n")
        sha, _ = self.apply_commit(
            repo_id,
            rt,
            branch,
            adds,
            deletes,
            parent=parent,
            title=title,
            description=desc.strip(),
            author=author,
        )
        return sha

    @staticmethod
    def _is_plain_branch(name: str) -> bool:
        try:
            Store._check_ref_name(name)
        except StoreError:
            return False
        return True

    def apply_commit(
        self,
        repo_id: str,
        repo_type: str,
        rev: str,
        adds: Sequence[NewFile],
        deletes: Sequence[str] = (),
        *,
        parent: str | None = None,
        title: str = "",
        description: str = "",
        author: str = "local",
        create_pr: bool = False,
    ) -> tuple[str, int | None]:
        """Commit on branch ``rev`` (or open a PR against it); return (commit sha, PR number or None)."""
        for a in adds:
            tree_path(a.path)
            if not self.has_blob(a.sha256):
                raise StoreError(f"LFS object {a.sha256} for {a.path!r} was never uploaded.", status=422)
            if a.path == "README.md":
                self._card(a.sha256)  # parsed (bounded) before taking the store lock, then cached
        with self.lock:
            st = self.repo(repo_id, repo_type)
            pr_num: int | None = None
            m = _PR_REF.match(rev)
            if m:
                pr_num = int(m.group(1))
                if pr_num not in st.prs:
                    raise RevisionNotFound(f"Invalid rev id: {rev}")
                head = st.prs[pr_num]
            elif rev.startswith("refs/heads/") and rev[11:] in st.branches:
                rev = rev[11:]
                head = st.branches[rev]
            elif rev in st.branches:
                head = st.branches[rev]
            else:
                raise RevisionNotFound(f"Invalid rev id: {rev} (commits need a branch)")
            if parent is not None and parent != head:
                try:
                    full_parent = self.resolve_state(st, parent)
                except StoreError:
                    full_parent = parent
                if full_parent != head:
                    raise ParentMismatch(
                        f"A commit has happened since. Please refresh and try again (head is {head}, "
                        f"parentCommit was {parent})."
                    )
            base = self.get_commit(head)
            files: dict[str, FileEntry] = dict(base.files)
            for d in deletes:
                d = d.strip("/")
                if d in files:
                    del files[d]
                else:
                    prefix = d + "/" if d else ""
                    for p in [p for p in files if p.startswith(prefix)]:
                        del files[p]
            for a in adds:
                lfs = a.lfs if a.lfs is not None else is_lfs_policy(a.path, a.size)
                if lfs:
                    oid = git_blob_sha1(lfs_pointer(a.sha256, a.size))
                else:
                    oid = a.git_sha1 or self._blob_git_sha1(a.sha256, a.size)
                files[a.path] = FileEntry(a.path, a.size, a.sha256, oid, lfs)
            c = self._make_commit(files, (head,), title or "Upload files", description, author, st.repo_type)
            if create_pr and pr_num is None:
                pr_num = max(st.prs, default=0) + 1
                st.prs[pr_num] = c.id
            elif pr_num is not None:
                st.prs[pr_num] = c.id
            else:
                st.branches[rev] = c.id
            st.commits.add(c.id)
            for a in adds:
                self._owners.setdefault(a.sha256, set()).add((st.repo_type, st.repo_id))
            self._save_settings(st)
            return c.id, (pr_num if (create_pr or m) else None)

    def _make_commit(
        self,
        files: Mapping[str, FileEntry],
        parents: tuple[str, ...],
        title: str,
        description: str,
        author: str,
        repo_type: str = "model",
    ) -> Commit:
        tree, dirs = self._tree_shas(files)
        ts = time.time()
        message = title + ("\n\n" + description if description else "")
        body = f"tree {tree}\n"
        body += "".join(f"parent {p}\n" for p in parents)
        ident = f"{author} <{author}@users.noreply.huggingface.co> {int(ts)} +0000"
        body += f"author {ident}\ncommitter {ident}\n\n{message}\n"
        raw = body.encode()
        sha = hashlib.sha1(b"commit %d\0" % len(raw) + raw).hexdigest()
        p = self.root / "objects" / sha[:2] / f"{sha}.json"
        if p.exists():  # the same git commit object already exists (same tree, parents, second): reuse it
            try:
                return self.get_commit(sha)
            except StoreError:
                pass
        info = self._derive_info(files, repo_type)
        c = Commit(sha, parents, tree, dirs, dict(files), title, description, author, now_iso(ts), info)
        self._write_atomic(p, json.dumps(c.to_json(), sort_keys=True).encode())
        self._commits[sha] = c
        return c

    @staticmethod
    def _tree_shas(files: Mapping[str, FileEntry]) -> tuple[str, dict[str, str]]:
        root: dict[str, Any] = {}
        for p, e in files.items():
            parts = p.split("/")
            node = root
            for d in parts[:-1]:
                nxt = node.setdefault(d, {})
                if not isinstance(nxt, dict):
                    raise StoreError(f"{p!r} conflicts with the file {d!r}.", status=400)
                node = nxt
            if isinstance(node.get(parts[-1]), dict):
                raise StoreError(f"{p!r} conflicts with a folder of the same name.", status=400)
            node[parts[-1]] = e
        dirs: dict[str, str] = {}

        def walk(node: dict[str, Any], prefix: str) -> str:
            entries: list[tuple[bytes, bytes]] = []
            for name, v in node.items():
                if isinstance(v, dict):
                    sha = walk(v, prefix + name + "/")
                    entries.append(
                        ((name + "/").encode(), b"40000 " + name.encode() + b"\0" + bytes.fromhex(sha))
                    )
                else:
                    entries.append((name.encode(), b"100644 " + name.encode() + b"\0" + bytes.fromhex(v.oid)))
            entries.sort(key=lambda x: x[0])
            body = b"".join(e[1] for e in entries)
            sha = hashlib.sha1(b"tree %d\0" % len(body) + body).hexdigest()
            dirs[prefix.rstrip("/")] = sha
            return sha

        tree = walk(root, "")
        dirs.pop("", None)
        return tree, dirs

    # ------------------------------------------------------------------ mirrored repos (server/mirror.py)
    def mirror_repo(self, repo_type: str, repo_id: str, *, private: bool, gated: Any) -> RepoState:
        """The mirrored repo ``repo_id`` (created without commits if missing), with the upstream's
        visibility.  Refuses to turn a hosted repo into a mirror."""
        rt = check_repo_type(repo_type)
        check_repo_id(repo_id)
        with self.lock:
            st = self._repos.get((rt, repo_id))
            if st is None:
                st = RepoState(repo_type=rt, repo_id=repo_id, mirrored=True)
                self._repos[(rt, repo_id)] = st
            elif not st.mirrored:
                raise StoreError(f"{repo_id} is hosted here, not mirrored.", status=409)
            if (st.private, st.gated) != (private, gated) or not (
                self._repo_dir(rt, repo_id) / "repo.json"
            ).exists():
                st.private, st.gated = private, gated
                self._save_settings(st)
            return st

    def add_mirror_commit(self, st: RepoState, c: Commit) -> None:
        """Record an upstream commit of the mirrored ``st`` (its record written once, immutable)."""
        p = self.root / "objects" / c.id[:2] / f"{c.id}.json"
        if not p.exists():
            self._write_atomic(p, json.dumps(c.to_json(), sort_keys=True).encode())
        with self.lock:
            self._commits[c.id] = c
            st.commits.add(c.id)
            for e in c.files.values():
                if e.sha256:
                    self._owners.setdefault(e.sha256, set()).add((st.repo_type, st.repo_id))

    def set_mirror_refs(
        self, st: RepoState, branches: Mapping[str, str], tags: Mapping[str, str], prs: Mapping[int, str]
    ) -> None:
        """Replace the refs of the mirrored ``st`` with the upstream's (saved atomically)."""
        with self.lock:
            if (st.branches, st.tags, st.prs) == (dict(branches), dict(tags), dict(prs)):
                return
            st.branches, st.tags, st.prs = dict(branches), dict(tags), dict(prs)
            self._save_settings(st)

    def tree_shas(self, files: Mapping[str, FileEntry]) -> tuple[str, dict[str, str]]:
        """The git tree sha of ``files`` and of each folder in it."""
        return self._tree_shas(files)

    # ------------------------------------------------------------------ derived metadata
    def _cached(self, kind: str, sha256: str, fn: Callable[[Path], Any]) -> Any:
        key = (kind, sha256)
        if key not in self._file_info:
            path = self.blob_path(sha256)
            if self.external is not None and not path.is_file() and self._external_size(sha256) is not None:
                tmp = self.tmp_path()  # content held elsewhere (Xet): rebuilt for the parser, then dropped
                try:
                    with open(tmp, "wb") as f:
                        self.external.write_to(sha256, f)
                    self._file_info[key] = fn(tmp)
                finally:
                    tmp.unlink(missing_ok=True)
            else:
                self._file_info[key] = fn(path)
        return self._file_info[key]

    def gguf_summary(self, sha256: str) -> dict[str, Any] | None:
        """The ``gguf`` metadata of a stored GGUF blob (cached by digest); None if absent or not GGUF."""
        if not self.has_blob(sha256):
            return None
        got: dict[str, Any] | None = self._cached("gguf", sha256, meta.gguf_summary)
        return got

    def _card(self, sha256: str) -> dict[str, Any]:
        """The card data of a README blob (cached by digest; see ``meta.front_matter`` for the bounds)."""

        def parse(path: Path) -> dict[str, Any]:
            try:
                with open(path, "rb") as f:
                    head = f.read(meta.MAX_FRONT_MATTER_BYTES * 2 + 16)  # the front matter is at the top
            except OSError:
                return {}
            return meta.front_matter(head.decode("utf-8", errors="replace"))

        card: dict[str, Any] = self._cached("card", sha256, parse)
        return card

    def _derive_info(self, files: Mapping[str, FileEntry], repo_type: str) -> dict[str, Any]:
        info: dict[str, Any] = {}
        readme = files.get("README.md")
        card: dict[str, Any] = {}
        if readme is not None:
            card = dict(self._card(readme.sha256))
        info["cardData"] = card
        if repo_type == "model":
            params: dict[str, int] = {}
            any_st = False
            for p in sorted(files):
                if p.endswith(".safetensors"):
                    got = self._cached("st", files[p].sha256, meta.safetensors_params)
                    if got is not None:
                        any_st = True
                        for k, v in got.items():
                            params[k] = params.get(k, 0) + v
            if any_st:
                info["safetensors"] = {"parameters": params, "total": sum(params.values())}
            for p in sorted(files):
                if p.endswith(".gguf"):
                    g = self._cached("gguf", files[p].sha256, meta.gguf_summary)
                    if g is not None:
                        info["gguf"] = g
                        break
        info["tags"] = meta.derive_tags(repo_type, card, sorted(files), info)
        return info

    # ------------------------------------------------------------------ inline helpers for the HTTP layer
    def put_inline(self, path: str, b64: str) -> NewFile:
        try:
            data = base64.b64decode(b64, validate=False)
        except ValueError as exc:
            raise StoreError(f"Invalid base64 content for {path!r}.", status=400) from exc
        sha256, sha1 = self.put_bytes(data)
        return NewFile(path, sha256, len(data), sha1)
