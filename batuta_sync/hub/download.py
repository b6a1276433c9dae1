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

Partial files (security.md DL-4: correct even when locks lie): every fetcher writes only its own
partial, takes a resumable one over by an atomic rename, never writes into a published blob, and
parks or deletes its partial after a failure -- the rules and their code are in
:mod:`batuta_sync.hub.partials`.

Free space is checked before anything is requested (:class:`~batuta_sync.errors.DiskFullError`),
counting the bytes a resumable partial already holds.  A write that fails for lack of space
(``ENOSPC``, ``EDQUOT``, ``EFBIG``) drops the connection at once, stops every worker at its next
chunk and parks what was written: exit 16, never a network error, nothing more received.
Transport: content requests use ``http.client`` (why, and what it shares with the other clients:
:mod:`batuta_sync.hub.transfer`), under the client limits of :mod:`batuta_sync.hub.limits`: connect
and read-inactivity timeouts, a minimum average rate (a trickling peer is cut off, the partial
kept), a few quick retries when the connection is refused; ``--timeout`` caps every wait and
``no_wait`` makes none.

Layout: this module is the engine (jobs, workers, one file's fetch loop);
:mod:`~batuta_sync.hub.partials` (the partials protocol and the partial-file writer),
:mod:`~batuta_sync.hub.hashing` (inline and pipelined hashers) and
:mod:`~batuta_sync.hub.transfer` (the byte mover and the proxy connections) are its parts, still
importable here under their old names.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import http.client
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from batuta_sync._fs import FileLock, confine, file_lock
from batuta_sync.errors import (
    DiskFullError,
    IntegrityError,
    NetworkError,
    RateLimitedError,
)
from batuta_sync.hub import partials
from batuta_sync.hub.cache import CacheLayout, disk_free, human_bytes, verified_blob
from batuta_sync.hub.hashing import Hasher as _Hasher
from batuta_sync.hub.hashing import PipelinedHasher as _PipelinedHasher
from batuta_sync.hub.limits import NetLimits
from batuta_sync.hub.partials import ALIGN, STALE_ANY, STALE_FOREIGN  # noqa: F401
from batuta_sync.hub.partials import Writer as _Writer
from batuta_sync.hub.partials import abandon_partial as _abandon_partial
from batuta_sync.hub.partials import aligned_buffer as _aligned_buffer
from batuta_sync.hub.partials import host_tag as _host_tag  # noqa: F401
from batuta_sync.hub.partials import open_partial as _open_partial
from batuta_sync.hub.partials import own_partial_path as _own_partial_path
from batuta_sync.hub.partials import publish as _publish
from batuta_sync.hub.partials import resumable_partials as _resumable_partials
from batuta_sync.hub.partials import unlink as _unlink
from batuta_sync.hub.ratelimit import Gate, RateLimitConfig, shared_gate
from batuta_sync.hub.retry import Retry
from batuta_sync.hub.transfer import CHUNK, Transport
from batuta_sync.hub.transfer import PacedReader as _PacedReader  # noqa: F401
from batuta_sync.hub.transfer import content_range as _content_range
from batuta_sync.hub.transfer import discard as _discard
from batuta_sync.types import RepoFile, RepoRef

if TYPE_CHECKING:
    from batuta_sync.settings import Settings

MAX_DROPS = 8  # consecutive failed attempts (no progress) on one file before giving up
DIRECT_MIN = 64 << 20  # files this big are written around the page cache (O_DIRECT), when possible
PIPELINE_MIN = 8 << 20  # files this big hash in a helper thread
DIRECT_IO = os.environ.get("BATUTA_DIRECT_IO", "1") != "0"
MAX_CORRUPT = 2  # corrupt bodies tolerated per file before IntegrityError
DISK_MARGIN = 16 << 20
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


def _block_signals() -> None:
    """Worker threads leave SIGINT/SIGTERM to the main thread (so Ctrl-C interrupts it at once)."""
    import signal

    with contextlib.suppress(AttributeError, ValueError, OSError):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


@dataclass
class _Progress:
    """Where one file's transfer stands: the next byte to write and the bytes received in all."""

    pos: int
    received: int = 0


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
        self._http = Transport(settings, self.limits)  # the byte mover (hub/transfer.py)

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
        self._http.close()

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
                    writer = _Writer(fh, mine, direct=DIRECT_IO and f.size >= DIRECT_MIN)
                    try:
                        transferred += self._stream(job, writer, hasher, pos)
                    finally:
                        writer.close()
                    complete = os.fstat(fh.fileno()).st_size == f.size
                if complete and hasher.ok():
                    _publish(job.layout, job.file, mine, self._state)
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
            _abandon_partial(job.layout, job.file, mine, self._state, keep=keep)
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
        at = _Progress(pos)
        drops = 0  # consecutive attempts that got no byte further than before
        high = pos  # furthest byte reached: re-fetching bytes after a restart is not progress
        restarted = False
        budget = 50 + max(f.size, 0) // (1 << 20)  # connections per file: ~1 per MiB + slack
        while True:
            budget -= 1
            if budget < 0:
                raise NetworkError(
                    f"Gave up on {f.path}: the server kept cutting the transfer short "
                    f"({at.received} bytes received in all, {at.pos} of {f.size} kept)."
                )
            self._stop_if_disk_full(f)
            if self._have(job):  # another fetcher published it (ours or huggingface_hub's: hashed)
                raise _Published(at.received)
            resp = self._open_at(url, f, at.pos)
            try:
                start = self._accept(resp, out, hasher, at.pos, f.size)
            except _Restart:
                self._http.drop_all()
                out.restart()
                hasher.reset()
                at.pos = 0
                if restarted:
                    drops += 1
                    if drops > MAX_DROPS:
                        raise NetworkError(f"The server keeps answering {f.path} with inconsistent ranges.")
                restarted = True
                continue
            if start is None:  # 416 at the end: the partial was complete
                return at.received
            restarted = restarted or start < at.pos
            at.pos = start
            try:
                self._receive(resp, out, hasher, f, at)
                return at.received
            except (OSError, http.client.HTTPException) as exc:
                self._http.drop_all()
                advanced = at.pos > high
                high = max(high, at.pos)
                drops = 0 if advanced else drops + 1
                if drops > MAX_DROPS or at.received > 3 * max(f.size, 0) + (64 << 20):
                    raise NetworkError(
                        f"Download of {f.path} kept failing at byte {at.pos} of {f.size} "
                        f"({type(exc).__name__}; {at.received} bytes received in all)."
                    )
                if not advanced:
                    self.sleep(min(0.1 * drops, 1.0))

    def _open_at(self, url: str, f: RepoFile, pos: int) -> http.client.HTTPResponse:
        """Open ``url`` from byte ``pos`` (``Range`` + ``If-Range``); opening (gate, 408/429/5xx,
        refused/silent/dropped connections) runs in the one retry loop."""
        headers = {}
        if pos > 0:
            headers["Range"] = f"bytes={pos}-"
            headers["If-Range"] = f'"{f.etag}"'
        return self._retry.request(
            functools.partial(self._http.open_checked, url, headers), self._http.classify(f)
        )

    @staticmethod
    def _accept(
        resp: http.client.HTTPResponse, out: _Writer, hasher: _Hasher, pos: int, size: int
    ) -> int | None:
        """Where the body of ``resp`` starts: ``pos``, or 0 when a 200 restarts the file cleanly
        (Range ignored or the ETag changed); None for a 416 at the end (nothing left to fetch).
        Raises :class:`_Restart` for a range the file cannot continue from."""
        status = resp.status
        if status == 200:
            if pos > 0:  # Range ignored or the ETag changed: restart cleanly
                out.restart()
                hasher.reset()
            return 0
        if status == 206:
            start, total = _content_range(resp.getheader("Content-Range"))
            if start != pos or (total is not None and total != size):
                raise _Restart
            return pos
        if pos == size:  # 416 (open_checked lets only 200/206/416 through)
            _discard(resp)
            return None
        raise _Restart

    def _buffer(self) -> memoryview:
        """This worker's reused, page-aligned read buffer."""
        buf: memoryview | None = getattr(self._local, "buf", None)
        if buf is None or len(buf) != self.chunk_size:
            buf = self._local.buf = _aligned_buffer(self.chunk_size)
        return buf

    def _receive(
        self, resp: http.client.HTTPResponse, out: _Writer, hasher: _Hasher, f: RepoFile, at: _Progress
    ) -> None:
        """Stream the body of ``resp`` into ``out`` up to the file's size, hashing it; ``at``
        follows every chunk written (what a failure mid-body resumes from)."""
        buf = self._buffer()
        want = f.size - at.pos
        piped = hasher if isinstance(hasher, _PipelinedHasher) else None
        while want > 0:
            if self._cancel.is_set():
                self._http.drop_all()
                raise KeyboardInterrupt
            self._stop_if_disk_full(f)
            if piped is not None:
                pbuf = piped.buffer()
                try:
                    n = resp.readinto(pbuf[: out.next_size(at.pos, want, len(pbuf))])
                    if not n:
                        raise http.client.IncompleteRead(b"", want)
                    self._write(out, pbuf[:n], at.pos, f)
                except BaseException:
                    piped.give_back(pbuf)
                    raise
                piped.submit(pbuf, n)
            else:
                n = resp.readinto(buf[: out.next_size(at.pos, want, self.chunk_size)])
                if not n:
                    raise http.client.IncompleteRead(b"", want)
                chunk = buf[:n]
                hasher.update(chunk)
                self._write(out, chunk, at.pos, f)
            at.pos += n
            want -= n
            at.received += n
            self.progress.advance(f.path, n)
        if resp.length:  # more bytes than the listing says: leave them, drop the connection
            self._http.drop_all()
        else:
            _discard(resp)

    def _stop_if_disk_full(self, f: RepoFile) -> None:
        if self._disk_full.is_set():
            self._http.drop_all()
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
            self._http.drop_all()
            raise DiskFullError(
                f"The disk is full ({errno.errorcode.get(exc.errno or 0, exc.errno)}) while writing {f.path} "
                f"at byte {pos} of {f.size}; the download stopped and the {human_bytes(pos)} written so far "
                "are kept to resume from."
            ) from None

    # ------------------------------------------------------------------ HTTP


# --------------------------------------------------------------------------- transport helpers


# --------------------------------------------------------------------------- helpers


# --------------------------------------------------------------------------- partial files


def _claim_partial(layout: CacheLayout, etag: str, mine: Path) -> bool:
    """:func:`batuta_sync.hub.partials.claim_partial`, listing through this module's
    ``_resumable_partials`` (so one name swaps the listing: tests/pull/test_dl_partials.py)."""
    return partials.claim_partial(layout, etag, mine, listing=_resumable_partials)


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
