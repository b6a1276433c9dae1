"""Pull-through mirror of an upstream Hub (``batuta hub serve --upstream URL``).

A repo the server does not host is looked up on the upstream on first request: its refs
(``/api/{T}s/{id}/refs``) and the commit a revision names (``/api/{T}s/{id}/revision/{rev}?blobs=true``)
become a *mirrored* repo of the local store (``RepoState.mirrored``; read-only, its commit records
immutable), so every read endpoint of the server (info, tree, paths-info, refs, resolve with Range,
``/v2/`` registry) serves it unchanged.  File contents are fetched on the first download, verified
(sha256 for LFS files, git blob sha1 otherwise; sizes exact) and kept in the store:

    blobs/<aa>/<sha256>           LFS files (shared with hosted repos, content-addressed)
    mirror/git/<aa>/<git sha1>    regular (non-LFS) files of mirrored repos

Rules:

* Revisions: a full commit sha is resolved once and never again (commits are immutable); branch and
  tag names are re-resolved after ``ttl`` seconds (refs and visibility refetched).  While the upstream
  is unreachable a name resolved before is served stale; nothing cached answers ``503``.
* ``offline``: the upstream is never contacted; what is not cached answers ``404`` saying so.
* Single flight: concurrent requests for the same missing file wait for ONE upstream download.
* Size limit ``max_bytes``: mirrored file contents are evicted least recently used first (never a
  blob a hosted repo holds, never one being downloaded); a file larger than the limit answers 507.
* Upstream answers are hostile input: identifiers checked with :mod:`batuta_sync.ids`, repo paths
  with ``ids.repo_path``, JSON bodies bounded (``max_json``), file listings bounded (``max_files``),
  file bodies never read past their announced size.  Upstream 429/5xx/dropped connections are
  retried (``attempts``, exponential backoff, ``Retry-After`` honoured up to ``max_retry_after``);
  downloads resume with ``Range``.
* Access: public upstream repos are public on the mirror.  Upstream-private or gated repos (which
  the mirror's upstream token can see) are served only to the mirror users an :class:`AccessRule`
  allows; with no rule nobody sees them (404, as for a repo that does not exist).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote

from batuta_sync import ids
from batuta_sync._fmt import git_blob_sha1
from batuta_sync.server.protocol import HTTPError
from batuta_sync.server.store import (
    Commit,
    FileEntry,
    RepoNotFound,
    RepoState,
    RevisionNotFound,
    Store,
    StoreError,
    check_repo_id,
    check_repo_type,
    lfs_pointer,
    now_iso,
)

if TYPE_CHECKING:
    import httpx2 as httpx

    from batuta_sync.server.app import HubServer
    from batuta_sync.server.state import UserSpec

_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_CHUNK = 4 << 20
_MAX_REFS = 10_000
_MAX_README = 16 << 20  # a README up to this size is fetched with its commit (the card)
_MAX_FILE_SIZE = 1 << 44  # 16 TiB: a larger announced size is a hostile answer


@dataclass(frozen=True)
class AccessRule:
    """Who may read upstream-private (or gated) repos matching ``pattern`` (``fnmatch`` on the repo
    id, e.g. ``acme/*``): ``*`` = every user the mirror accepts (everyone in open mode), otherwise
    user names and organisations (their members)."""

    pattern: str
    who: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> AccessRule:
        """``GLOB=WHO[,WHO...]``, e.g. ``acme/*=alice,acme`` or ``*=*``; ValueError if malformed."""
        pattern, sep, who = text.partition("=")
        names = tuple(w.strip() for w in who.split(",") if w.strip())
        if not sep or not pattern.strip() or not names:
            raise ValueError(f"an upstream access rule is GLOB=WHO[,WHO...], not {text!r}")
        return cls(pattern.strip(), names)


@dataclass(frozen=True)
class MirrorConfig:
    """How a server mirrors ``upstream`` (see the module docstring for the rules)."""

    upstream: str
    token: str | None = field(default=None, repr=False)
    ttl: float = 300.0
    offline: bool = False
    max_bytes: int = 0  # 0 = no limit
    private_access: tuple[AccessRule, ...] = ()
    timeout: float = 60.0
    attempts: int = 6
    backoff: float = 0.25
    max_retry_after: float = 10.0
    max_json: int = 64 << 20
    max_files: int = 200_000


class _Flight:
    """One upstream download in progress; followers wait on ``done``."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None


class _Sink:
    """Writes and hashes downloaded chunks in a worker thread, so that hashing (which releases the
    GIL) overlaps with reading the next chunk from the upstream."""

    def __init__(self, f: BinaryIO, new_hash: Callable[[], Any]) -> None:
        self.f = f
        self.new_hash = new_hash
        self.h = new_hash()
        self.q: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self.error: BaseException | None = None
        self.t = threading.Thread(target=self._run, name="batuta-mirror-sink", daemon=True)
        self.t.start()

    def _run(self) -> None:
        while True:
            chunk = self.q.get()
            try:
                if chunk is None:
                    return
                if self.error is None:
                    self.f.write(chunk)
                    self.h.update(chunk)
            except BaseException as exc:  # disk full...: reported by the next sync
                self.error = exc
            finally:
                self.q.task_done()

    def put(self, chunk: bytes) -> None:
        self.q.put(chunk)

    def _sync(self) -> None:
        self.q.join()
        if self.error is not None:
            raise self.error

    def digest(self) -> str:
        self._sync()
        return str(self.h.hexdigest())

    def reset(self) -> None:
        self._sync()
        self.f.seek(0)
        self.f.truncate()
        self.h = self.new_hash()

    def close(self) -> None:
        self.q.put(None)
        self.t.join()


def _unavailable(what: str) -> HTTPError:
    return HTTPError(
        503,
        f"The upstream Hub did not answer for {what} and this mirror has no cached copy; retry later.",
        None,
        {"Retry-After": "5"},
    )


def _hostile(what: str, exc: Exception | None = None) -> HTTPError:
    why = f": {exc}" if exc is not None else ""
    return HTTPError(502, f"The upstream Hub answered an invalid {what}{why}", None)


def can_read(hub: HubServer, user: UserSpec | None, st: RepoState) -> bool:
    """Whether ``user`` may read the mirrored ``st``: public upstream repos yes; upstream-private or
    gated ones only by an access rule of the running mirror (without a mirror: never)."""
    if not (st.private or st.gated):
        return True
    mirror = hub.mirror
    if mirror is None or user is None:
        return False
    for rule in mirror.config.private_access:
        if not fnmatch.fnmatchcase(st.repo_id, rule.pattern):
            continue
        for who in rule.who:
            if who == "*" or hub.member_of(user, who):
                return True
    return False


def cache_path(store: Store, e: FileEntry) -> Path:
    """Where the contents of ``e`` of a mirrored repo are kept (whether or not they are there)."""
    if e.sha256:  # LFS files, and the README (fetched with its commit: its sha256 is known)
        return store.blob_path(e.sha256)
    return store.root / "mirror" / "git" / e.oid[:2] / e.oid


def file_path(hub: HubServer, st: RepoState, commit: str, e: FileEntry, *, fetch: bool) -> Path:
    """The local file of ``e`` in the mirrored ``st``: fetched from the upstream first when ``fetch``
    and a mirror runs; without a running mirror only what is cached (else 404)."""
    if hub.mirror is not None and fetch:
        return hub.mirror.file_path(st, commit, e)
    path = cache_path(hub.store, e)
    if fetch and not path.is_file():
        raise HTTPError(
            404,
            f"{e.path!r} of {st.repo_id} is not cached and this server does not mirror an upstream now.",
            "EntryNotFound",
            {"X-Repo-Commit": commit},
        )
    return path


class Mirror:
    """The pull-through side of a :class:`~batuta_sync.server.app.HubServer`."""

    def __init__(self, hub: HubServer, config: MirrorConfig) -> None:
        import httpx2 as httpx

        from batuta_sync.server.protocol import check_public_url

        self.hub = hub
        self.store = hub.store
        self.config = config
        self.upstream = check_public_url(config.upstream)
        headers = {"User-Agent": "batuta-hub-mirror/1"}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        # httpx drops Authorization on a redirect to another origin (a CDN).
        self.client = httpx.Client(
            timeout=httpx.Timeout(config.timeout, connect=min(config.timeout, 10.0)),
            follow_redirects=True,
            headers=headers,
        )
        self._lock = threading.Lock()
        self._repo_locks: dict[tuple[str, str], threading.Lock] = {}
        self._fresh: dict[tuple[str, str], float] = {}  # repo -> when refs were last fetched
        self._flights: dict[Path, _Flight] = {}
        self._lru: OrderedDict[Path, int] = OrderedDict()
        self._bytes = 0
        self.git_dir = self.store.root / "mirror" / "git"
        self.git_dir.mkdir(parents=True, exist_ok=True)
        self._scan()
        self.store.mirror_resolve = self.resolve

    def close(self) -> None:
        self.store.mirror_resolve = None
        self.client.close()

    # ------------------------------------------------------------------ cache accounting
    def _scan(self) -> None:
        """Rebuild the LRU order (by mtime) of the mirrored contents already on disk."""
        found: list[tuple[float, Path, int]] = []
        for p in self.git_dir.glob("*/*"):
            self._scan_one(found, p)
        for st in self.store.repos():
            if not st.mirrored:
                continue
            for sha in list(st.commits):  # loaded: every one has its record
                for e in self.store.get_commit(sha).files.values():
                    if e.lfs and not self._hosted_holds(e.sha256):
                        self._scan_one(found, self.store.blob_path(e.sha256))
        for _, p, size in sorted(set(found)):
            if p not in self._lru:
                self._lru[p] = size
                self._bytes += size

    @staticmethod
    def _scan_one(found: list[tuple[float, Path, int]], p: Path) -> None:
        try:
            s = p.stat()
        except OSError:
            return
        found.append((s.st_mtime, p, s.st_size))

    def _hosted_holds(self, sha256: str) -> bool:
        return any(not h.mirrored for h in self.store.holders(sha256))

    @property
    def cached_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def _touch(self, path: Path) -> None:
        with self._lock:
            if path in self._lru:
                self._lru.move_to_end(path)
        try:
            os.utime(path)
        except OSError:
            pass

    def _account(self, path: Path, size: int) -> None:
        """Count a newly cached file and evict the least recently used ones beyond the limit."""
        limit = self.config.max_bytes
        with self._lock:
            if path not in self._lru:
                self._lru[path] = size
                self._bytes += size
            self._lru.move_to_end(path)
            if not limit:
                return
            victims: list[Path] = []
            for p in list(self._lru):  # oldest first; ``path`` (last, <= limit) is never reached
                if self._bytes <= limit:
                    break
                self._bytes -= self._lru.pop(p)
                victims.append(p)
        for p in victims:
            if p.parent.parent == self.git_dir or not self._hosted_holds(p.name):
                p.unlink(missing_ok=True)

    # ------------------------------------------------------------------ upstream HTTP
    def _url(self, path: str) -> str:
        return self.upstream + path

    def _sleep_for(self, attempt: int, response: httpx.Response | None) -> None:
        wait = self.config.backoff * (2**attempt)
        if response is not None:
            try:
                wait = max(wait, float(response.headers.get("Retry-After", "")))
            except ValueError:
                pass
        time.sleep(min(wait, self.config.max_retry_after))

    def _get_json(self, path: str, params: Mapping[str, str], what: str) -> Any:
        """The JSON answer of ``GET path`` (None on 401/403/404), retrying 429/5xx and drops."""
        import httpx2 as httpx

        limit = self.config.max_json
        for attempt in range(self.config.attempts):
            try:
                with self.client.stream("GET", self._url(path), params=dict(params)) as r:
                    if r.status_code in (401, 403, 404):
                        return None
                    if r.status_code == 429 or r.status_code >= 500:
                        self._sleep_for(attempt, r)
                        continue
                    if r.status_code != 200:
                        raise _hostile(f"answer (HTTP {r.status_code}) for {what}")
                    body = bytearray()
                    for chunk in r.iter_bytes():
                        body += chunk
                        if len(body) > limit:
                            raise _hostile(f"answer for {what}: larger than {limit} bytes")
            except httpx.HTTPError:
                self._sleep_for(attempt, None)
                continue
            import json

            try:
                return json.loads(bytes(body))
            except (ValueError, RecursionError) as exc:
                raise _hostile(f"JSON answer for {what}", exc) from None
        raise _unavailable(what)

    def _download(self, st: RepoState | tuple[str, str], commit: str, e: FileEntry, dest: Path) -> None:
        """Fetch ``e`` of ``commit`` into ``dest``: resumed with Range after a drop, restarted after
        a content that does not verify; at most ``attempts`` requests."""
        import httpx2 as httpx

        repo_type, repo_id = (st.repo_type, st.repo_id) if isinstance(st, RepoState) else st
        url = self._url(f"/{_PREFIX[repo_type]}{repo_id}/resolve/{commit}/{quote(e.path)}")
        tmp = self.store.tmp_path()
        what = f"{repo_id}/{e.path}"
        have = 0
        try:
            with open(tmp, "wb") as f:
                sink = _Sink(f, lambda: hashlib.sha256() if e.lfs else hashlib.sha1(b"blob %d\0" % e.size))
                try:
                    for attempt in range(self.config.attempts):
                        # identity: the bytes hashed and stored are the file's, not a compressed body
                        headers = {"Accept-Encoding": "identity"}
                        if have:
                            headers["Range"] = f"bytes={have}-"
                        try:
                            with self.client.stream("GET", url, headers=headers) as r:
                                if r.status_code == 429 or r.status_code >= 500:
                                    self._sleep_for(attempt, r)
                                    continue
                                if r.status_code in (401, 403, 404):
                                    raise HTTPError(
                                        404, f"The upstream Hub no longer serves {what}.", "EntryNotFound"
                                    )
                                if r.status_code == 200 and have:  # Range ignored: start over
                                    have = 0
                                    sink.reset()
                                elif r.status_code not in (200, 206):
                                    raise _hostile(f"answer (HTTP {r.status_code}) for {what}")
                                elif r.status_code == 206 and not (
                                    r.headers.get("Content-Range") or ""
                                ).startswith(f"bytes {have}-"):
                                    raise _hostile(f"Content-Range for {what}")
                                for chunk in r.iter_raw(_CHUNK):
                                    if have + len(chunk) > e.size:
                                        raise _hostile(f"file body for {what}: longer than {e.size} bytes")
                                    sink.put(chunk)
                                    have += len(chunk)
                        except httpx.HTTPError:
                            self._sleep_for(attempt, None)
                            continue
                        if have < e.size:
                            continue  # cut short: resume
                        if sink.digest() == (e.sha256 if e.lfs else e.oid):
                            break
                        have = 0  # corrupted in transit: fetch it again
                        sink.reset()
                    else:
                        raise _unavailable(what)
                finally:
                    sink.close()
                if self.store.durable:
                    f.flush()
                    os.fsync(f.fileno())
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
        except OSError as exc:  # disk full, read-only store...
            raise HTTPError(507, f"The mirror could not store {what}: {exc.strerror or exc}.") from None
        finally:
            tmp.unlink(missing_ok=True)

    # ------------------------------------------------------------------ upstream answers -> records
    def _commit_from_info(self, st_key: tuple[str, str], info: Any, want: str | None) -> Commit:
        """A commit record from an upstream ``revision/{rev}?blobs=true`` answer (validated)."""
        repo_type, repo_id = st_key
        where = f"the upstream info of {repo_id}"
        if not isinstance(info, dict):
            raise _hostile(f"info answer for {repo_id}")
        try:
            sha = ids.commit_sha(info.get("sha"), where=where)
            if want is not None and ids.is_git_sha1(want) and sha != want:
                raise _hostile(f"info answer for {repo_id}@{want}: it names commit {sha}")
            sibs = info.get("siblings")
            if not isinstance(sibs, list) or len(sibs) > self.config.max_files:
                raise _hostile(f"file list for {repo_id} (missing or over {self.config.max_files} files)")
            files: dict[str, FileEntry] = {}
            for s in sibs:
                e = self._entry(s, where)
                if e.path in files:
                    raise _hostile(f"file list for {repo_id}: {e.path!r} twice")
                files[e.path] = e
        except ids.InvalidIdentifierError as exc:
            raise _hostile(f"info answer for {repo_id}", exc) from None
        try:
            tree, dirs = self.store.tree_shas(files)
        except StoreError as exc:
            raise _hostile(f"file list for {repo_id}: {exc.message}") from None
        meta: dict[str, Any] = {}
        card = info.get("cardData")
        meta["cardData"] = card if isinstance(card, dict) else {}
        tags = info.get("tags")
        meta["tags"] = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
        for key in ("gguf", "safetensors"):
            if isinstance(info.get(key), dict):
                meta[key] = info[key]
        date = info.get("lastModified")
        date = date if isinstance(date, str) and len(date) <= 40 else now_iso()
        del repo_type
        readme = files.get("README.md")
        if readme is not None and not readme.lfs and readme.size <= _MAX_README:
            files["README.md"] = self._fetch_readme(st_key, sha, readme)
        return Commit(sha, (), tree, dirs, files, "", "", "", date, meta)

    def _fetch_readme(self, key: tuple[str, str], commit: str, e: FileEntry) -> FileEntry:
        """Fetch (verified) the README with its commit and store it by sha256, so that the card can be
        read like a hosted repo's (``store.blob_path(entry.sha256)``, e.g. by the web pages).  It is
        not counted in, nor evicted from, the size-limited cache."""
        tmp = self.store.tmp_path()
        try:
            self._download(key, commit, e, tmp)
            sha256, _, _ = self.store.put_file(tmp)
        finally:
            tmp.unlink(missing_ok=True)
        return FileEntry(e.path, e.size, sha256, e.oid, False)

    @staticmethod
    def _entry(s: Any, where: str) -> FileEntry:
        if not isinstance(s, dict):
            raise _hostile(f"file entry in {where}")
        path = ids.repo_path(s.get("rfilename"), where=where)
        size = s.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= _MAX_FILE_SIZE:
            raise _hostile(f"size for {path!r} in {where}")
        oid = ids.git_sha1(s.get("blobId"), where=where, kind="git blob id")
        lfs = s.get("lfs")
        if lfs is None:
            return FileEntry(path, size, "", oid, False)
        if not isinstance(lfs, dict):
            raise _hostile(f"lfs entry for {path!r} in {where}")
        sha256 = ids.sha256_hex(lfs.get("sha256"), where=where, kind="LFS sha256")
        if lfs.get("size", size) != size or git_blob_sha1(lfs_pointer(sha256, size)) != oid:
            raise _hostile(f"lfs entry for {path!r} in {where}: pointer, size and blob id disagree")
        return FileEntry(path, size, sha256, oid, True)

    def _refs_from(self, refs: Any, repo_id: str) -> tuple[dict[str, str], dict[str, str], dict[int, str]]:
        where = f"the upstream refs of {repo_id}"
        if not isinstance(refs, dict):
            raise _hostile(f"refs answer for {repo_id}")
        out: list[dict[Any, str]] = []
        try:
            for key in ("branches", "tags", "pullRequests"):
                items = refs.get(key) or []
                if not isinstance(items, list) or len(items) > _MAX_REFS:
                    raise _hostile(f"refs answer for {repo_id} ({key})")
                got: dict[Any, str] = {}
                for item in items:
                    if not isinstance(item, dict):
                        raise _hostile(f"refs answer for {repo_id} ({key})")
                    target = ids.commit_sha(item.get("targetCommit"), where=where)
                    if key == "pullRequests":
                        ref = str(item.get("ref") or "")
                        num = ref[len("refs/pr/") :]
                        if not ref.startswith("refs/pr/") or not num.isdigit() or len(num) > 9:
                            raise _hostile(f"pull request ref {ref[:80]!r} for {repo_id}")
                        got[int(num)] = target
                    else:
                        name = ids.revision(item.get("name"), where=where)
                        if ids.is_git_sha1(name) or name.startswith("refs/"):
                            raise _hostile(f"ref name {name!r} for {repo_id}")
                        got[name] = target
                out.append(got)
        except ids.InvalidIdentifierError as exc:
            raise _hostile(f"refs answer for {repo_id}", exc) from None
        return out[0], out[1], out[2]

    # ------------------------------------------------------------------ repos and revisions
    def _repo_lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._lock:
            return self._repo_locks.setdefault(key, threading.Lock())

    def _is_fresh(self, key: tuple[str, str]) -> bool:
        at = self._fresh.get(key)
        return at is not None and time.monotonic() - at < self.config.ttl

    def open_repo(self, repo_type: str, repo_id: str) -> RepoState:
        """The mirrored repo ``repo_id`` (fetched from the upstream if not cached)."""
        rt = check_repo_type(repo_type)
        check_repo_id(repo_id)
        key = (rt, repo_id)
        try:
            st = self.store.repo(repo_id, rt)
        except RepoNotFound:
            st = None
        if st is not None:
            return st
        if self.config.offline:
            raise RepoNotFound(
                f"Repository {rt} {repo_id!r} is not in this offline mirror's cache (it serves only what "
                "was fetched while it was online)."
            )
        with self._repo_lock(key):
            try:
                return self.store.repo(repo_id, rt)
            except RepoNotFound:
                pass
            st = self._refresh(key)
            if st is None:
                raise RepoNotFound(f"Repository {rt} {repo_id!r} not found (here or upstream).")
            return st

    def _refresh(self, key: tuple[str, str]) -> RepoState | None:
        """Refetch the refs and the default branch's commit (with the visibility) of ``key``; None
        when the upstream does not know the repo (or hides it from the mirror's token).  Repo lock
        held."""
        repo_type, repo_id = key
        base = f"/api/{repo_type}s/{repo_id}"
        info = self._get_json(base, {"blobs": "true"}, f"{repo_type} {repo_id}")
        if info is None:
            return None
        c = self._commit_from_info(key, info, None)
        refs = self._get_json(f"{base}/refs", {"include_prs": "1"}, f"the refs of {repo_id}")
        if refs is None:
            return None
        branches, tags, prs = self._refs_from(refs, repo_id)
        private = info.get("private") is True
        gated = info.get("gated") if isinstance(info.get("gated"), str) else bool(info.get("gated"))
        try:
            st = self.store.mirror_repo(repo_type, repo_id, private=private, gated=gated)
        except StoreError:
            return None  # became hosted here meanwhile
        self.store.add_mirror_commit(st, c)
        self.store.set_mirror_refs(st, branches, tags, prs)
        self._fresh[key] = time.monotonic()
        return st

    def resolve(self, st: RepoState, rev: str) -> str:
        """The commit ``rev`` names in the mirrored ``st``, its record cached (the store's hook)."""
        key = (st.repo_type, st.repo_id)
        low = rev.lower()
        if ids.is_git_sha1(low) and low in st.commits:
            return low  # a commit never changes: never re-resolved
        if self.config.offline:
            return self._cached(st, rev)
        if self._is_fresh(key):
            try:
                return self._cached(st, rev)
            except RevisionNotFound:
                pass
        with self._repo_lock(key):
            if not self._is_fresh(key):
                try:
                    if self._refresh(key) is None:
                        raise RepoNotFound(f"Repository {st.repo_type} {st.repo_id!r} is gone upstream.")
                except HTTPError as exc:
                    if exc.status != 503:
                        raise
                    try:  # upstream unreachable: serve what was resolved before
                        return self._cached(st, rev)
                    except StoreError:
                        raise exc from None
            try:
                sha: str | None = self.store.resolve_local(st, rev)
            except RevisionNotFound:
                sha = None
            if sha is not None and sha in st.commits:
                return sha
            want = sha or rev
            if ids.revision_problem(want):
                raise RevisionNotFound(f"Invalid rev id: {rev}")
            info = self._get_json(
                f"/api/{st.repo_type}s/{st.repo_id}/revision/{quote(want, safe='')}",
                {"blobs": "true"},
                f"{st.repo_id}@{rev}",
            )
            if info is None:
                raise RevisionNotFound(f"Invalid rev id: {rev}")
            c = self._commit_from_info(key, info, want.lower() if ids.is_git_sha1(want.lower()) else None)
            self.store.add_mirror_commit(st, c)
            return c.id

    def _cached(self, st: RepoState, rev: str) -> str:
        """``rev`` resolved from the cache alone: its ref known and its commit record present."""
        try:
            sha = self.store.resolve_local(st, rev)
            if sha in st.commits:
                return sha
        except RevisionNotFound:
            pass
        if self.config.offline:
            raise RevisionNotFound(f"Revision {rev!r} of {st.repo_id} is not in this offline mirror's cache.")
        raise RevisionNotFound(f"Invalid rev id: {rev}")

    # ------------------------------------------------------------------ file contents
    def file_path(self, st: RepoState, commit: str, e: FileEntry) -> Path:
        """The local file holding ``e`` of the mirrored ``st`` at ``commit``, downloaded (once, for
        all concurrent callers) and verified first if needed."""
        path = cache_path(self.store, e)
        if path.is_file():
            self._touch(path)
            return path
        if self.config.offline:
            raise HTTPError(
                404,
                f"{e.path!r} of {st.repo_id} is not in this offline mirror's cache.",
                "EntryNotFound",
                {"X-Repo-Commit": commit},
            )
        if self.config.max_bytes and e.size > self.config.max_bytes:
            raise HTTPError(
                507,
                f"{e.path!r} ({e.size} bytes) is larger than this mirror's cache ({self.config.max_bytes}).",
            )
        with self._lock:
            flight = self._flights.get(path)
            leader = flight is None
            if flight is None:
                flight = self._flights[path] = _Flight()
        if not leader:
            if not flight.done.wait(self.config.timeout * self.config.attempts):
                raise _unavailable(f"{st.repo_id}/{e.path}")
            if flight.error is not None:
                raise flight.error
            return path
        try:
            if not path.is_file():
                self._download(st, commit, e, path)
            self._account(path, e.size)
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[path]
            flight.done.set()
        return path


def parse_size(text: str) -> int:
    """``10G``, ``512M``, ``1.5T``, ``1000`` (bytes; binary units) -> bytes; ValueError if malformed."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = 1
    for unit, m in (("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("T", 1 << 40)):
        if t.endswith(unit):
            t, mult = t[:-1], m
            break
    value = float(t)
    if value < 0:
        raise ValueError(f"a size cannot be negative: {text!r}")
    return int(value * mult)


__all__ = ["AccessRule", "Mirror", "MirrorConfig", "can_read", "parse_size"]
