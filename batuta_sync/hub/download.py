"""The download engine: parallel, resumable, every byte hashed, atomic.

For each file (a :class:`~batuta_sync.types.RepoFile` at a commit):

1. ``blobs/<etag>`` is a verified blob → cache hit, no request.  Verified means stamped by
   batuta when it published it, or hashed now (:func:`~batuta_sync.hub.cache.verified_blob`);
   a size match is never enough, a symlink is never a blob.
2. Take ``.locks/<repo>/<etag>.lock`` (``flock``; two threads or processes fetching the
   same blob serialize, and the second finds the blob done).  The lock only avoids duplicate
   work: correctness does not depend on it (NFS without lockd and some FUSE mounts accept
   ``flock`` and do nothing), see "Partial files" below.
3. A resumable partial (``blobs/<etag>.incomplete`` parked by an interrupted run, or the
   per-fetcher partial of a process that died, even by SIGKILL) is claimed, re-hashed and
   resumed with ``Range: bytes=N-`` + ``If-Range: "<etag>"``.  A ``200``
   answer (Range ignored, or the ETag changed) restarts cleanly from byte 0; a ``206``
   whose ``Content-Range`` does not start at N or has another total restarts too.
4. Stream with large ``readinto`` calls into one reused buffer per worker; each chunk is
   hashed (sha256 for LFS files, git blob sha1 ``"blob <size>\\0" + content`` otherwise)
   and written.  hashlib and file writes release the GIL, so workers overlap on cores; files
   of 8 MiB or more hash in a helper thread one chunk behind the network, so even a single
   big file keeps two cores busy.
5. A dropped connection resumes from the byte where it stopped; opening each request runs in
   the one retry loop, :class:`batuta_sync.hub.retry.Retry` (408/429/5xx on the schedule of
   :mod:`batuta_sync.hub.ratelimit`, server hints a minimum; one 429 pauses every worker on
   the endpoint, API calls through ``hub._http`` included: both use the endpoint's
   process-wide :func:`~batuta_sync.hub.ratelimit.shared_gate`).  The initial backoff follows
   ``BATUTA_RETRY_BACKOFF`` unless a ``config`` is given.
6. Size and digest verified → published as ``blobs/<etag>`` (hard link, else ``os.replace``).
   A corrupt body is deleted, retried, then :class:`~batuta_sync.errors.IntegrityError`; it
   is never cached.

Partial files (security.md DL-4: correct even when locks lie):

* every fetcher writes only its own partial, ``blobs/<etag>.<host>-<pid>-<tid>-<rand>.incomplete``;
  nobody else ever opens it while its owner lives;
* a resumable partial is taken over by ``os.rename`` to the taker's own name, which only one
  taker can win; the losers start from byte 0 (or take another one);
* the published blob is never written into: a fetcher that finds ``blobs/<etag>`` already
  there (another fetcher was faster) drops its own copy; a final name that already exists is
  only replaced when its size is wrong;
* on Ctrl-C or a network/rate-limit failure the partial is parked as ``blobs/<etag>.incomplete``
  for the next run; on any other failure it is deleted.  A partial of a dead process (same
  host, pid gone; another host: untouched for an hour) is resumable; any partial nobody writes
  that is older than 7 days is deleted.

Free space is checked before anything is requested (:class:`~batuta_sync.errors.DiskFullError`),
counting the bytes a resumable partial already holds.  A write that fails for lack of space
(``ENOSPC``, ``EDQUOT``, ``EFBIG``) drops the connection at once, stops every worker at its next
chunk and parks what was written: exit 16, never a network error, nothing more received.
Transport: content requests use ``http.client``, not the metadata client (httpx2), because it is
faster here: one keep-alive connection per worker and ``readinto`` straight into one reused,
page-aligned buffer (hashed and written from there, ``O_DIRECT`` for big files), with no
per-chunk ``bytes`` objects; ``tests/bench/bench_pull.py`` measures it against
``snapshot_download`` (figures in docs/_drafts/http.md).  Everything else is shared with the
other clients (docs/architecture.md "HTTP"): the retry loop (``hub.retry``), the header builder
and User-Agent (``hub.auth.request_headers``), the proxy rule (``hub.proxy``:
``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY``; https through a ``CONNECT`` tunnel, http as
absolute-URI requests to the proxy; a loopback Hub never proxied), and the client limits of
:mod:`batuta_sync.hub.limits`: connect and read-inactivity timeouts, a minimum average rate
(a trickling peer is cut off, the partial kept), a few quick retries when the connection is
refused; ``--timeout`` caps every wait and ``no_wait`` makes none.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import http.client
import mmap
import os
import queue
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urljoin, urlsplit

from batuta_sync._fs import FileLock, confine, file_lock
from batuta_sync._proc import pid_alive
from batuta_sync.errors import (
    BatutaError,
    ConfigError,
    DiskFullError,
    IntegrityError,
    NetworkError,
    RateLimitedError,
)
from batuta_sync.hub.auth import request_headers
from batuta_sync.hub.cache import CacheLayout, disk_free, human_bytes, mark_verified, seal_blob, verified_blob
from batuta_sync.hub.limits import NetLimits, Pace
from batuta_sync.hub.proxy import Proxy, proxy_for
from batuta_sync.hub.ratelimit import Gate, RateLimitConfig, is_retryable_status, shared_gate
from batuta_sync.hub.retry import Failure, Kind, Retry
from batuta_sync.types import RepoFile, RepoRef

if TYPE_CHECKING:
    from batuta_sync.settings import Settings

CHUNK = 1 << 20
MAX_DROPS = 8  # consecutive failed attempts (no progress) on one file before giving up
DIRECT_MIN = 64 << 20  # files this big are written around the page cache (O_DIRECT), when possible
ALIGN = 4096
PIPELINE_MIN = 8 << 20  # files this big hash in a helper thread
DIRECT_IO = os.environ.get("BATUTA_DIRECT_IO", "1") != "0"
MAX_CORRUPT = 2  # corrupt bodies tolerated per file before IntegrityError
DISK_MARGIN = 16 << 20
STALE_FOREIGN = 3600.0  # a partial of another host untouched this long is abandoned
STALE_ANY = 7 * 86400.0  # any partial nobody writes that is older than this is garbage
_REDIRECTS = {301, 302, 303, 307, 308}
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}  # no space, quota, file-size limit


class ProgressSink(Protocol):
    """Receives download progress (called from worker threads; implementations must be cheap)."""

    def start(self, files: int, total_bytes: int) -> None: ...

    def file_start(self, path: str, size: int, done: int) -> None: ...

    def advance(self, path: str, nbytes: int) -> None: ...

    def file_done(self, path: str, *, cached: bool) -> None: ...

    def close(self) -> None: ...


class NullProgress:
    def start(self, files: int, total_bytes: int) -> None:
        pass

    def file_start(self, path: str, size: int, done: int) -> None:
        pass

    def advance(self, path: str, nbytes: int) -> None:
        pass

    def file_done(self, path: str, *, cached: bool) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class DownloadJob:
    ref: RepoRef
    commit: str
    file: RepoFile
    layout: CacheLayout


@dataclass(frozen=True, slots=True)
class FetchOutcome:
    path: str
    cached: bool
    transferred: int  # bytes received over the wire for this file (incl. restarts)
    resumed_from: int = 0


@dataclass(frozen=True)
class DownloadReport:
    outcomes: tuple[FetchOutcome, ...]
    seconds: float

    @property
    def hits(self) -> int:
        return sum(1 for o in self.outcomes if o.cached)

    @property
    def misses(self) -> int:
        return sum(1 for o in self.outcomes if not o.cached)

    @property
    def transferred(self) -> int:
        return sum(o.transferred for o in self.outcomes)


def resolve_url(endpoint: str, ref: RepoRef, commit: str, path: str) -> str:
    return f"{endpoint.rstrip('/')}/{ref.repo_type.url_prefix}{ref.repo_id}/resolve/{commit}/{quote(path, safe='/')}"


class _Hasher:
    """sha256 for LFS files; git blob sha1 (``blob <size>\\0`` + content) for the rest."""

    def __init__(self, f: RepoFile) -> None:
        self.file = f
        self.reset()

    def reset(self) -> None:
        f = self.file
        if f.sha256:
            self.h = hashlib.sha256()
            self.expected = f.sha256.lower()
            self.kind = "sha256"
        else:
            self.h = hashlib.sha1(b"blob %d\x00" % f.size)
            self.expected = f.blob_id.lower()
            self.kind = "git-sha1"

    def update(self, data: Any) -> None:
        self.h.update(data)

    def ok(self) -> bool:
        return not self.expected or self.h.hexdigest() == self.expected


class _PipelinedHasher(_Hasher):
    """A :class:`_Hasher` whose digest runs in a helper thread, one chunk behind the network.

    The worker takes a free buffer (:meth:`buffer`), fills and writes it, then hands it over
    (:meth:`submit`); the helper hashes it and returns it to the pool.  Receiving/writing and
    hashing of one file thus proceed on two cores.  :meth:`reset` and :meth:`ok` wait for
    the helper to catch up first.
    """

    DEPTH = 4

    def __init__(self, f: RepoFile, chunk_size: int) -> None:
        super().__init__(f)
        self._free: queue.Queue[memoryview] = queue.Queue()
        for _ in range(self.DEPTH):
            self._free.put(_aligned_buffer(chunk_size))
        self._todo: queue.Queue[tuple[memoryview, int] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="batuta-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._todo.get()
            try:
                if item is None:
                    return
                buf, n = item
                try:
                    self.h.update(buf[:n])
                except BaseException as exc:  # pragma: no cover - hashlib does not fail on bytes
                    self._error = exc
                self._free.put(buf)
            finally:
                self._todo.task_done()

    def buffer(self) -> memoryview:
        return self._free.get()

    def give_back(self, buf: memoryview) -> None:
        self._free.put(buf)

    def submit(self, buf: memoryview, n: int) -> None:
        self._todo.put((buf, n))

    def drain(self) -> None:
        self._todo.join()
        if self._error is not None:  # pragma: no cover
            raise self._error

    def update(self, data: Any) -> None:
        self.drain()
        self.h.update(data)

    def reset(self) -> None:
        if hasattr(self, "_todo"):
            self.drain()
        super().reset()

    def ok(self) -> bool:
        self.drain()
        return super().ok()

    def close(self) -> None:
        self._todo.put(None)
        self._thread.join()


def _block_signals() -> None:
    """Worker threads leave SIGINT/SIGTERM to the main thread (so Ctrl-C interrupts it at once)."""
    import signal

    with contextlib.suppress(AttributeError, ValueError, OSError):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


def _aligned_buffer(size: int) -> memoryview:
    """A page-aligned buffer (usable for O_DIRECT writes)."""
    return memoryview(mmap.mmap(-1, size))


class _Writer:
    """Writes a partial file at explicit offsets.

    For big files, whole aligned chunks go straight to the disk (``O_DIRECT``): no copy into
    the page cache, whose first-touch cost dominates on VMs, and no eviction of everyone
    else's cache by a 100 GB download.  Anything unaligned (a chunk cut short by a dropped
    connection, the file's tail) and filesystems without O_DIRECT use the normal path.
    """

    def __init__(self, fh: Any, path: Path, *, direct: bool) -> None:
        self.fh = fh
        self.dfd: int | None = None
        if direct and DIRECT_IO and hasattr(os, "O_DIRECT"):
            try:
                self.dfd = os.open(path, os.O_WRONLY | os.O_DIRECT | getattr(os, "O_NOFOLLOW", 0))
            except OSError:
                self.dfd = None

    def next_size(self, pos: int, want: int, chunk: int) -> int:
        """How much to read next: realign to ALIGN first when writing direct."""
        if self.dfd is not None and pos % ALIGN:
            return min(ALIGN - pos % ALIGN, want)
        return min(chunk, want)

    def write(self, data: memoryview, pos: int) -> None:
        n = len(data)
        if self.dfd is not None and pos % ALIGN == 0 and n % ALIGN == 0:
            try:
                _pwrite_all(self.dfd, data, pos)
                return
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self.close()  # this filesystem refuses O_DIRECT: normal writes from now on
        _pwrite_all(self.fh.fileno(), data, pos)

    def restart(self) -> None:
        self.fh.truncate(0)

    def close(self) -> None:
        if self.dfd is not None:
            with contextlib.suppress(OSError):
                os.close(self.dfd)
            self.dfd = None


def _pwrite_all(fd: int, data: memoryview, pos: int) -> None:
    while len(data):
        n = os.pwrite(fd, data, pos)
        data = data[n:]
        pos += n


class _Restart(Exception):
    """The server's answer means: start this file again from byte 0."""


class _Published(Exception):
    """Another fetcher published the blob while this one was still downloading it."""

    def __init__(self, received: int) -> None:
        super().__init__("published by another fetcher")
        self.received = received  # bytes this fetcher had received for nothing


class Downloader:
    """Fetch blobs into the cache with ``jobs`` workers (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        *,
        jobs: int = 8,
        progress: ProgressSink | None = None,
        sleep: Callable[[float], None] = time.sleep,
        config: RateLimitConfig | None = None,
        max_wait: float | None = None,
        no_wait: bool = False,
        chunk_size: int = CHUNK,
        timeout: float | None = None,
        gate: Gate | None = None,
        limits: NetLimits | None = None,
    ) -> None:
        self.settings = settings
        self.jobs = max(1, int(jobs))
        self.progress: ProgressSink = progress or NullProgress()
        self._sleep = sleep
        self.config = config or RateLimitConfig.from_env()
        self.limits = limits or NetLimits.from_settings(settings)
        if timeout is not None:  # the old knob: the read (inactivity) timeout
            self.limits = self.limits.with_timeout(timeout)
        self.no_wait = no_wait
        self.chunk_size = chunk_size
        # one 429 pauses every worker of this pull and every API call to the same Hub (one
        # process-wide gate per endpoint, shared with hub._http.HubHttp)
        self.gate = gate if gate is not None else shared_gate(settings.endpoint)
        # the one retry loop (hub.retry); a dropped connection gets up to MAX_DROPS quick
        # reconnects (0.1 s, 0.2 s … 1 s): the partial file resumes where it stopped
        self._retry = Retry(
            settings.endpoint,
            config=self.config,
            limits=self.limits,
            gate=self.gate,
            sleep=lambda seconds: self.sleep(seconds),
            max_wait=max_wait,
            no_wait=no_wait,
            drop_retries=MAX_DROPS,
            drop_wait=lambda n: min(0.1 * n, 1.0),
            rate_hint="Wait and rerun (completed files are kept), or allow waiting with a larger --max-wait.",
        )
        self.max_wait = self._retry.max_wait
        self._local = threading.local()
        self._cancel = threading.Event()
        self._disk_full = threading.Event()  # one worker hit a full disk: every worker stops
        self._state = settings.batuta_dir  # where verified-blob stamps live
        self._conns: list[http.client.HTTPConnection] = []
        self._conns_lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        self._sleep(seconds)

    # ------------------------------------------------------------------ public

    def fetch_all(self, jobs: Sequence[DownloadJob]) -> DownloadReport:
        """Fetch every job (hits first, no request); raise the first error after the others finish."""
        t0 = time.monotonic()
        todo = [j for j in jobs if not self._have(j)]
        self.check_disk(todo)
        self.progress.start(len(todo), sum(j.file.size for j in todo))
        outcomes: list[FetchOutcome] = []
        for j in jobs:
            if j not in todo:
                self.progress.file_done(j.file.path, cached=True)
                outcomes.append(FetchOutcome(j.file.path, True, 0))
        errors: list[BaseException] = []
        # biggest first: the long poles start early
        todo.sort(key=lambda j: -j.file.size)
        try:
            if len(todo) <= 1 or self.jobs == 1:
                for j in todo:
                    outcomes.append(self.fetch(j))
            else:
                pool = ThreadPoolExecutor(
                    max_workers=min(self.jobs, len(todo)),
                    thread_name_prefix="batuta-dl",
                    initializer=_block_signals,
                )
                try:
                    futures = [pool.submit(self.fetch, j) for j in todo]
                    pending = set(futures)
                    while pending:  # short waits: the main thread stays responsive to Ctrl-C
                        _done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    for fut in futures:
                        try:
                            outcomes.append(fut.result())
                        except Exception as exc:  # a worker's error; the others finished their files
                            errors.append(exc)
                except BaseException:  # Ctrl-C: stop every worker at its next chunk (partials are kept)
                    self._cancel.set()
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
                pool.shutdown(wait=True)
        finally:
            self.close()
        if errors:
            raise _most_relevant(errors)
        return DownloadReport(tuple(outcomes), time.monotonic() - t0)

    def check_disk(self, jobs: Iterable[DownloadJob]) -> None:
        need_by_dir: dict[Path, int] = {}
        scans: dict[Path, dict[str, list[tuple[Path, int]]]] = {}
        for j in jobs:
            blobs_dir = j.layout.blobs_dir
            if blobs_dir not in scans:
                scans[blobs_dir] = _resumable_partials(blobs_dir)
            have = max((size for _p, size in scans[blobs_dir].get(j.file.etag, ())), default=0)
            need_by_dir[j.layout.root] = need_by_dir.get(j.layout.root, 0) + max(0, j.file.size - have)
        for root, need in need_by_dir.items():
            free = disk_free(root)
            margin = max(DISK_MARGIN, need // 100)
            if need and free < need + margin:
                raise DiskFullError(
                    f"Not enough free disk space in {root}: the download needs {human_bytes(need)} "
                    f"(+{human_bytes(margin)} margin) but only {human_bytes(free)} is free. Nothing was downloaded."
                )

    def _have(self, job: DownloadJob) -> bool:
        """Whether the blob is in the cache, verified (a stamp, else hashed now; never by size)."""
        return verified_blob(self._state, job.layout, job.file)

    def fetch(self, job: DownloadJob) -> FetchOutcome:
        f = job.file
        if self._have(job):
            self.progress.file_done(f.path, cached=True)
            return FetchOutcome(f.path, True, 0)
        # a symlinked repo/blobs/.locks folder must not lead the partial, blob or lock out of the cache
        confine(job.layout.root, job.layout.blobs_dir, what="cache blobs folder")
        lock = confine(job.layout.root, job.layout.lock_path(f.etag), what="cache lock file")
        job.layout.blobs_dir.mkdir(parents=True, exist_ok=True)
        with self._blob_lock(lock):
            if self._have(job):  # another thread/process finished it while we waited
                self.progress.file_done(f.path, cached=True)
                return FetchOutcome(f.path, True, 0)
            outcome = self._fetch_locked(job)
        self.progress.file_done(f.path, cached=outcome.cached)
        return outcome

    def _blob_lock(self, path: Path) -> FileLock:
        """Lock on the blob's lock file: avoids duplicate work only (correctness never
        depends on it); waiting for another process stays cancellable."""
        return file_lock(path, cancel=self._cancel.is_set)

    def close(self) -> None:
        with self._conns_lock:
            for c in self._conns:
                with contextlib.suppress(Exception):
                    c.close()
            self._conns.clear()

    # ------------------------------------------------------------------ one file

    def _fetch_locked(self, job: DownloadJob) -> FetchOutcome:
        f = job.file
        hasher = _PipelinedHasher(f, self.chunk_size) if f.size >= PIPELINE_MIN else _Hasher(f)
        try:
            return self._fetch_with(job, hasher)
        finally:
            if isinstance(hasher, _PipelinedHasher):
                hasher.close()

    def _fetch_with(self, job: DownloadJob, hasher: _Hasher) -> FetchOutcome:
        f = job.file
        mine = _own_partial_path(job.layout, f.etag)
        corrupt = 0
        transferred = 0
        resumed_from = 0
        try:
            _claim_partial(job.layout, f.etag, mine)
            while True:
                with _open_partial(mine) as fh:
                    pos = self._rehash_prefix(fh, hasher, f.size)
                    if corrupt == 0:
                        resumed_from = pos
                    self.progress.file_start(f.path, f.size, pos)
                    writer = _Writer(fh, mine, direct=f.size >= DIRECT_MIN)
                    try:
                        transferred += self._stream(job, writer, hasher, pos)
                    finally:
                        writer.close()
                    complete = os.fstat(fh.fileno()).st_size == f.size
                if complete and hasher.ok():
                    _publish(job, mine, self._state)
                    return FetchOutcome(f.path, False, transferred, resumed_from)
                # corrupt: never cached; start over from nothing
                _unlink(mine)
                corrupt += 1
                if corrupt > MAX_CORRUPT:
                    raise IntegrityError(
                        f"{job.ref.repo_id}: {f.path} failed verification {corrupt} times "
                        f"(expected {hasher.kind} {hasher.expected}, size {f.size}); the data was discarded.",
                        hint="The server or a proxy is corrupting data. Retry later; nothing corrupt was cached.",
                    )
                hasher.reset()
        except _Published as done:  # another fetcher (its lock did not exclude us) was faster
            _unlink(mine)
            return FetchOutcome(f.path, True, transferred + done.received, resumed_from)
        except BaseException as exc:
            keep = isinstance(exc, (KeyboardInterrupt, NetworkError, RateLimitedError, DiskFullError))
            _abandon_partial(job, mine, self._state, keep=keep)
            raise

    def _rehash_prefix(self, fh: Any, hasher: _Hasher, size: int) -> int:
        """Hash the bytes already in a partial file; return where to resume."""
        hasher.reset()
        have = os.fstat(fh.fileno()).st_size
        if have > size:
            fh.truncate(0)
            have = 0
        buf = bytearray(self.chunk_size)
        mv = memoryview(buf)
        fh.seek(0)
        pos = 0
        while pos < have:
            n = fh.readinto(mv[: min(self.chunk_size, have - pos)])
            if not n:
                break
            hasher.update(mv[:n])
            pos += n
        fh.seek(pos)
        fh.truncate(pos)
        return pos

    def _stream(self, job: DownloadJob, out: _Writer, hasher: _Hasher, pos: int) -> int:
        """Fill ``fh`` from ``pos`` to the file's size; returns bytes received."""
        f = job.file
        url = resolve_url(self.settings.endpoint, job.ref, job.commit, f.path)
        etag = f.etag
        buf = getattr(self._local, "buf", None)
        if buf is None or len(buf) != self.chunk_size:
            buf = self._local.buf = _aligned_buffer(self.chunk_size)
        received = 0
        drops = 0  # consecutive attempts that got no byte further than before
        high = pos  # furthest byte reached: re-fetching bytes after a restart is not progress
        restarted = False
        budget = 50 + max(f.size, 0) // (1 << 20)  # connections per file: ~1 per MiB + slack
        while True:
            budget -= 1
            if budget < 0:
                raise NetworkError(
                    f"Gave up on {f.path}: the server kept cutting the transfer short "
                    f"({received} bytes received in all, {pos} of {f.size} kept)."
                )
            self._stop_if_disk_full(f)
            if self._have(job):  # another fetcher published it (ours or huggingface_hub's: hashed)
                raise _Published(received)
            headers = {}
            if pos > 0:
                headers["Range"] = f"bytes={pos}-"
                headers["If-Range"] = f'"{etag}"'
            # opening (gate, 408/429/5xx, refused/silent/dropped connections) runs in the one retry loop
            resp = self._retry.request(functools.partial(self._open_checked, url, headers), self._classify(f))
            status = resp.status
            try:
                if status == 200:
                    if pos > 0:  # Range ignored or the ETag changed: restart cleanly
                        out.restart()
                        hasher.reset()
                        pos = 0
                        restarted = True
                elif status == 206:
                    start, total = _content_range(resp.getheader("Content-Range"))
                    if start != pos or (total is not None and total != f.size):
                        raise _Restart
                elif pos == f.size:  # 416 (_open_checked lets only 200/206/416 through)
                    _discard(resp)
                    return received
                else:
                    raise _Restart
            except _Restart:
                self._drop_all()
                out.restart()
                hasher.reset()
                pos = 0
                if restarted:
                    drops += 1
                    if drops > MAX_DROPS:
                        raise NetworkError(f"The server keeps answering {f.path} with inconsistent ranges.")
                restarted = True
                continue
            # stream the body
            try:
                want = f.size - pos
                piped = hasher if isinstance(hasher, _PipelinedHasher) else None
                while want > 0:
                    if self._cancel.is_set():
                        self._drop_all()
                        raise KeyboardInterrupt
                    self._stop_if_disk_full(f)
                    if piped is not None:
                        pbuf = piped.buffer()
                        try:
                            n = resp.readinto(pbuf[: out.next_size(pos, want, len(pbuf))])
                            if not n:
                                raise http.client.IncompleteRead(b"", want)
                            self._write(out, pbuf[:n], pos, f)
                        except BaseException:
                            piped.give_back(pbuf)
                            raise
                        piped.submit(pbuf, n)
                    else:
                        n = resp.readinto(buf[: out.next_size(pos, want, self.chunk_size)])
                        if not n:
                            raise http.client.IncompleteRead(b"", want)
                        chunk = buf[:n]
                        hasher.update(chunk)
                        self._write(out, chunk, pos, f)
                    pos += n
                    want -= n
                    received += n
                    self.progress.advance(f.path, n)
                if resp.length:  # more bytes than the listing says: leave them, drop the connection
                    self._drop_all()
                else:
                    _discard(resp)
                return received
            except (OSError, http.client.HTTPException) as exc:
                self._drop_all()
                advanced = pos > high
                high = max(high, pos)
                drops = 0 if advanced else drops + 1
                if drops > MAX_DROPS or received > 3 * max(f.size, 0) + (64 << 20):
                    raise NetworkError(
                        f"Download of {f.path} kept failing at byte {pos} of {f.size} "
                        f"({type(exc).__name__}; {received} bytes received in all)."
                    )
                if not advanced:
                    self.sleep(min(0.1 * drops, 1.0))
                continue

    def _stop_if_disk_full(self, f: RepoFile) -> None:
        if self._disk_full.is_set():
            self._drop_all()
            raise DiskFullError(f"Stopped downloading {f.path}: the disk is full (another file hit it).")

    def _write(self, out: _Writer, data: memoryview, pos: int, f: RepoFile) -> None:
        """Write one chunk; a full disk (or quota, or file-size limit) stops the whole transfer:
        the connection is dropped at once (nothing more is received), every worker stops at its
        next chunk and the partial is parked for resume (:class:`DiskFullError`, exit 16)."""
        try:
            out.write(data, pos)
        except OSError as exc:
            if exc.errno not in _DISK_FULL:
                raise
            self._disk_full.set()
            self._drop_all()
            raise DiskFullError(
                f"The disk is full ({errno.errorcode.get(exc.errno or 0, exc.errno)}) while writing {f.path} "
                f"at byte {pos} of {f.size}; the download stopped and the {human_bytes(pos)} written so far "
                "are kept to resume from."
            ) from None

    # ------------------------------------------------------------------ HTTP

    def _open_checked(self, url: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        """One try of :meth:`Retry.request <batuta_sync.hub.retry.Retry.request>`: open ``url``.

        200, 206 and 416 are returned; a retryable status (408/429/5xx) is read (its first
        64 KiB) and raised as :class:`_StatusAnswer`; any other status is its BatutaError.
        A transport error drops this worker's connections and propagates for ``classify``."""
        try:
            resp = self._open(url, headers)
        except (OSError, http.client.HTTPException):
            self._drop_all()
            raise
        status = resp.status
        if status in (200, 206, 416):
            return resp
        if status == 407:  # only a proxy sends it (HTTP_PROXY: CONNECT failures are connect errors)
            self._drop_all()
            raise ConfigError(
                f"The proxy refused the download of {urlsplit(url).path}: 407 Proxy Authentication Required.",
                hint="Give the proxy's credentials in the variable (http://user:password@host:port), "
                "or exclude the Hub with NO_PROXY.",
            )
        answer = _StatusAnswer(status, {k.lower(): v for k, v in resp.getheaders()}, _read_small(resp), url)
        self._drop_all()
        if is_retryable_status(status):
            raise answer
        raise answer.error(self.settings, 1)

    def _classify(self, f: RepoFile) -> Callable[[BaseException], Failure | None]:
        """What a failed open means, by type and status (see :mod:`batuta_sync.hub.retry`)."""
        endpoint = self.settings.endpoint

        def classify(exc: BaseException) -> Failure | None:
            if isinstance(exc, _StatusAnswer):
                kind = Kind.RATE_LIMITED if exc.status == 429 else Kind.STATUS
                return Failure(kind, lambda n: exc.error(self.settings, n), exc.status, exc.headers)
            if not isinstance(exc, (OSError, http.client.HTTPException)):
                return None
            if isinstance(exc, _ConnectFailed):  # refused / DNS / connect timeout
                kind = Kind.REFUSED
            elif isinstance(exc, TimeoutError):  # connected, no answer within limits.read
                kind = Kind.SILENT
            else:
                kind = Kind.DROPPED

            def error(n: int) -> BaseException:
                return NetworkError(
                    f"Could not download {f.path} from {endpoint}: {exc} ({n} attempts).",
                    hint="Check HF_ENDPOINT / --endpoint and the network; completed files are kept.",
                )

            return Failure(kind, error)

        return classify

    def _conn_for(self, url: str) -> http.client.HTTPConnection:
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname, parts.port)
        conns: dict[Any, http.client.HTTPConnection] = getattr(self._local, "conns", None) or {}
        self._local.conns = conns
        conn = conns.get(key)
        if conn is None:
            host = parts.hostname or "localhost"
            via = proxy_for(url)  # HTTPS_PROXY / HTTP_PROXY / NO_PROXY (hub.proxy), read per connection
            if via is None:
                cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
                conn = cls(host, parts.port, timeout=self.limits.connect)
            elif parts.scheme == "https":  # CONNECT tunnel: TLS to the Hub end to end
                conn = _TunnelConnection(via, host, parts.port, timeout=self.limits.connect)
            else:  # plain http: absolute-URI requests to the proxy
                conn = _ForwardConnection(via, timeout=self.limits.connect)
            conns[key] = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _drop_all(self) -> None:
        """Close this worker's connections (after an answer whose body was not fully read)."""
        conns = getattr(self._local, "conns", None) or {}
        for conn in conns.values():
            conn.close()
        conns.clear()

    def _drop_conn(self, url: str) -> None:
        parts = urlsplit(url)
        conns = getattr(self._local, "conns", None) or {}
        conn = conns.pop((parts.scheme, parts.hostname, parts.port), None)
        if conn is not None:
            conn.close()

    def _open(self, url: str, extra: dict[str, str]) -> http.client.HTTPResponse:
        for _hop in range(6):
            parts = urlsplit(url)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            # the one header builder: User-Agent, the token only on the endpoint's origin
            headers = request_headers(self.settings, url, extra, accept_encoding="identity")
            resp = self._request(url, path, headers)
            if resp.status in _REDIRECTS and resp.getheader("Location"):
                location = urljoin(url, resp.getheader("Location") or "")
                _discard(resp)
                url = location
                continue
            # every body read (content, error text) keeps the minimum pace
            pace = Pace(self.limits, f"The download of {urlsplit(url).path}")
            resp.fp = _PacedReader(resp.fp, pace)  # type: ignore[assignment]
            return resp
        raise NetworkError(f"Too many redirects while downloading {url}.")

    def _request(self, url: str, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        """Send one GET on this worker's keep-alive connection.  A *reused* connection the server
        closed meanwhile is reopened once and the request sent again (what every connection pool
        does; nothing was processed); every other failure goes to the retry loop."""
        for attempt in (0, 1):
            conn = self._conn_for(url)
            reused = conn.sock is not None
            if not reused:
                try:
                    conn.connect()  # under limits.connect; then reads under limits.read
                except OSError as exc:
                    conn.close()
                    where = f"{conn.host}:{conn.port}"
                    if isinstance(conn, (_ForwardConnection, _TunnelConnection)):
                        where += f" (the proxy from {urlsplit(url).scheme.upper()}_PROXY)"
                    raise _ConnectFailed(f"cannot connect to {where}: {exc}") from exc
                if conn.sock is not None:
                    conn.sock.settimeout(self.limits.read)
            try:
                if isinstance(conn, _ForwardConnection):
                    conn.request("GET", url, headers={**headers, **conn.proxy.headers()})
                else:
                    conn.request("GET", path, headers=headers)
                return conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._drop_conn(url)
                if attempt or not reused:  # a fresh connection failing is a real failure
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------- transport helpers


class _ForwardConnection(http.client.HTTPConnection):
    """A connection to a plain-HTTP proxy that forwards ``http://`` requests (absolute URIs)."""

    def __init__(self, proxy: Proxy, *, timeout: float) -> None:
        super().__init__(proxy.host, proxy.port, timeout=timeout)
        self.proxy = proxy


class _TunnelConnection(http.client.HTTPSConnection):
    """TLS to ``host`` through a ``CONNECT`` tunnel of a plain-HTTP proxy."""

    def __init__(self, proxy: Proxy, host: str, port: int | None, *, timeout: float) -> None:
        super().__init__(proxy.host, proxy.port, timeout=timeout)
        self.proxy = proxy
        self.set_tunnel(host, port, headers=proxy.headers())


class _ConnectFailed(OSError):
    """The connection never got through (refused, DNS failure, connect timeout)."""


class _PacedReader:
    """Wraps a response's socket file: reads one ``recv`` at a time and reports each to a
    :class:`~batuta_sync.hub.limits.Pace`, so a peer trickling bytes is cut off (a plain
    ``readinto`` would wait for the whole chunk, one byte per read timeout)."""

    def __init__(self, fp: Any, pace: Pace) -> None:
        self._fp = fp
        self._pace = pace
        self._too_slow: NetworkError | None = None

    def _check(self, n: int) -> bool:
        """Count ``n`` bytes; False once too slow (the bytes in hand are returned first, so the
        partial keeps them, and the next read raises)."""
        try:
            self._pace.add(n)
        except NetworkError as exc:
            self._too_slow = exc
            return False
        return True

    def _raise_if_too_slow(self) -> None:
        if self._too_slow is not None:
            raise self._too_slow

    def readinto(self, b: Any) -> int:
        self._raise_if_too_slow()
        mv = memoryview(b).cast("B")
        got = 0
        while got < len(mv):
            n = self._fp.readinto1(mv[got:])
            if not n:
                break
            got += n
            if not self._check(n):
                break
        return got

    def read(self, amt: int | None = None) -> bytes:
        self._raise_if_too_slow()
        parts: list[bytes] = []
        left = -1 if amt is None or amt < 0 else amt
        while left:
            data = self._fp.read1(left if left > 0 else CHUNK)
            if not data:
                break
            parts.append(data)
            if left > 0:
                left -= len(data)
            if not self._check(len(data)):
                break
        return b"".join(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fp, name)


# --------------------------------------------------------------------------- helpers


# --------------------------------------------------------------------------- partial files

_PARTIAL = re.compile(
    r"^(?P<etag>[^.]+)\.(?:(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-(?P<tid>\d+)-(?P<rand>[0-9a-f]{8})\.)?incomplete$"
)
_HOST_TAG: list[str] = []


def _host_tag() -> str:
    """8 hex digits naming this machine in partial names (pids mean something only here)."""
    if not _HOST_TAG:
        _HOST_TAG.append(hashlib.sha1(os.uname().nodename.encode("utf-8", "replace")).hexdigest()[:8])
    return _HOST_TAG[0]


def _own_partial_path(layout: CacheLayout, etag: str) -> Path:
    """This fetcher's own partial: ``<etag>.<host>-<pid>-<tid>-<rand>.incomplete``."""
    tag = f"{_host_tag()}-{os.getpid()}-{threading.get_native_id()}-{secrets.token_hex(4)}"
    return layout.blobs_dir / f"{etag}.{tag}.incomplete"


def _nobody_writes(m: re.Match[str], mtime: float, now: float) -> bool:
    """Whether a partial is free to take: parked, or its writer is gone."""
    age = now - mtime
    if m.group("pid") is None or age > STALE_ANY:
        return True
    if m.group("host") != _host_tag():
        return age > STALE_FOREIGN
    return not pid_alive(int(m.group("pid")))


def _resumable_partials(blobs_dir: Path) -> dict[str, list[tuple[Path, int]]]:
    """Partials in ``blobs_dir`` nobody writes, per etag, biggest first.

    Those older than :data:`STALE_ANY` are deleted on the way (security.md DL-3).
    """
    found: dict[str, list[tuple[Path, int]]] = {}
    now = time.time()
    try:
        entries = list(os.scandir(blobs_dir))
    except OSError:
        return found
    for e in entries:
        m = _PARTIAL.match(e.name)
        if m is None:
            continue
        try:
            st = e.stat(follow_symlinks=False)
        except OSError:
            continue
        if not e.is_file(follow_symlinks=False) or not _nobody_writes(m, st.st_mtime, now):
            continue
        if now - st.st_mtime > STALE_ANY:
            _unlink(Path(e.path))
            continue
        found.setdefault(m.group("etag"), []).append((Path(e.path), st.st_size))
    for parts in found.values():
        parts.sort(key=lambda ps: -ps[1])
    return found


def _claim_partial(layout: CacheLayout, etag: str, mine: Path) -> bool:
    """Take over the biggest resumable partial of ``etag`` as ``mine`` (atomic rename: only one
    taker wins each; a loser tries the next).  False when there is none."""
    for path, _size in _resumable_partials(layout.blobs_dir).get(etag, ()):
        try:
            os.rename(path, mine)
        except OSError:  # taken by another fetcher a moment ago
            continue
        return True
    return False


def _open_partial(path: Path) -> Any:
    """Open this fetcher's partial (its own name; only regular files are ever renamed to it)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    return open(fd, "r+b", buffering=0)


def _publish(job: DownloadJob, mine: Path, state: Path) -> None:
    """Give the verified partial its final name without ever touching a published blob, and
    stamp it verified.  A file already under the final name is kept only when it is a
    verified blob (stamp, else re-hashed); anything else there is replaced."""
    blob = job.layout.blob_path(job.file.etag)
    seal_blob(mine)  # published blobs are read-only (hub.cache.BLOB_MODE)
    try:
        os.link(mine, blob)
    except OSError:  # taken already, or no hard links on this filesystem
        if not verified_blob(state, job.layout, job.file):  # not a blob another fetcher published
            os.replace(mine, blob)
            mark_verified(state, job.layout, job.file)
            return
        _unlink(mine)
    else:
        _unlink(mine)
        mark_verified(state, job.layout, job.file)  # after the unlink: it changes the ctime
    # partials of this blob left by dead fetchers are worthless now
    for path, _size in _resumable_partials(job.layout.blobs_dir).get(job.file.etag, ()):
        _unlink(path)


def _abandon_partial(job: DownloadJob, mine: Path, state: Path, *, keep: bool) -> None:
    """After a failure: park a resumable partial as ``<etag>.incomplete`` (``keep``) or delete it."""
    try:
        size = os.lstat(mine).st_size
    except OSError:
        return
    if not keep or size == 0 or verified_blob(state, job.layout, job.file, rehash=False):
        _unlink(mine)
        return
    parked = job.layout.incomplete_path(job.file.etag)
    try:
        other = os.lstat(parked).st_size
    except OSError:
        other = -1
    if other >= size:  # a longer one is parked already
        _unlink(mine)
        return
    with contextlib.suppress(OSError):  # sealed by a publish that failed: a partial stays writable (resume appends)
        os.chmod(mine, 0o644)
    try:
        os.replace(mine, parked)
    except OSError:  # pragma: no cover - same directory; the dead-owner rule still finds it
        pass


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes 100-199/1000`` -> (100, 1000); Nones if unparseable."""
    if not value:
        return None, None
    try:
        unit, _, rest = value.strip().partition(" ")
        if unit.lower() != "bytes":
            return None, None
        span, _, total = rest.partition("/")
        start = int(span.split("-", 1)[0])
        return start, (None if total.strip() == "*" else int(total))
    except ValueError:
        return None, None


def _read_small(resp: http.client.HTTPResponse, limit: int = 65536) -> str:
    try:
        data = resp.read(limit)
    except (OSError, http.client.HTTPException):
        return ""
    return data.decode("utf-8", "replace")


def _discard(resp: http.client.HTTPResponse) -> None:
    """Consume a small remaining body so the connection can be reused (or close it)."""
    try:
        if resp.length is not None and resp.length > (1 << 16):
            resp.close()
            return
        resp.read()
    except (OSError, http.client.HTTPException):
        resp.close()


class _StatusAnswer(Exception):
    """An error answer to a content request (status, lower-cased headers, the start of its body)."""

    def __init__(self, status: int, headers: dict[str, str], body: str, url: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.headers = headers
        self.body = body
        self.url = url

    def error(self, settings: Settings, attempts: int) -> BatutaError:
        from batuta_sync.hub import errors_map

        return errors_map.error_for(
            self.status,
            self.headers,
            urlsplit(self.url).path,
            self.body,
            method="GET",
            has_token=settings.token is not None,
            endpoint=settings.endpoint,
            attempts=attempts,
            token_source=settings.auth.value,
        )


def _most_relevant(errors: list[BaseException]) -> BaseException:
    for e in errors:
        if isinstance(e, KeyboardInterrupt):
            return e
    for kind in (DiskFullError, IntegrityError, RateLimitedError):
        for e in errors:
            if isinstance(e, kind):
                return e
    return errors[0]


@dataclass
class CountingProgress:
    """A ProgressSink that only counts (tests, JSON output)."""

    files: int = 0
    total: int = 0
    done_bytes: int = 0
    cached: list[str] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start(self, files: int, total_bytes: int) -> None:
        self.files, self.total = files, total_bytes

    def file_start(self, path: str, size: int, done: int) -> None:
        with self._lock:
            self.done_bytes += done

    def advance(self, path: str, nbytes: int) -> None:
        with self._lock:
            self.done_bytes += nbytes

    def file_done(self, path: str, *, cached: bool) -> None:
        with self._lock:
            (self.cached if cached else self.fetched).append(path)

    def close(self) -> None:
        pass
