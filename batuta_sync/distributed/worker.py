"""What runs on a Dask worker: one pull or one conversion, inputs and outputs through the remote.

A task gets a small, picklable description (:class:`PullTask`, :class:`ConvertTask`: no token,
no manifest, no driver path) and returns a small dict: ``{"digests": {path: [digest, size]},
"bytes": n, "worker": address}``, or ``{"error": {...}}`` for an expected failure (a
:class:`~batuta_sync.errors.BatutaError`, which a retry would not fix).  Anything else raises,
so Dask retries it (``retries=``) -- and a worker lost mid-task is rescheduled by the scheduler.

The worker's own HF cache is ``$BATUTA_WORKER_CACHE`` or ``<dask local directory>/batuta``,
never the driver's; its token is its own (``HF_TOKEN`` or its ``batuta hf login``), and the
remote's credentials are its own (``AWS_*``).  This module imports no core module: the driver
verifies what a worker returns before anything is recorded.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batuta_sync.errors import BatutaError, IntegrityError

#: seconds between two byte-progress events a worker sends for one pull
PROGRESS_EVERY = 0.25


@dataclass(frozen=True)
class PullTask:
    action_id: str
    endpoint: str
    remote: str
    repo: str
    repo_type: str
    revision: str
    commit: str
    files: tuple[tuple[str, int, str, str | None], ...]  # (path, size, gitsha1, sha256)
    allow_unsafe: bool = False
    topic: str = ""  # the driver's progress topic ("" = no progress events)


@dataclass(frozen=True)
class ConvertTask:
    action_id: str
    remote: str
    key: str  # the conversion's memo key (the run-cache record it writes)
    source_name: str  # the basename of the source folder on the driver (converters name outputs after it)
    inputs: tuple[tuple[str, str, int], ...]  # (path, digest, size): blobs in the remote's CAS
    to: str
    quantization: str | None
    options: tuple[tuple[str, Any], ...] = ()  # batuta_sync.convert.convert keyword arguments
    allow_unsafe: bool = False


def _worker() -> Any:
    from distributed import get_worker

    return get_worker()


def _base_dir() -> Path:
    env = os.environ.get("BATUTA_WORKER_CACHE")
    base = Path(env).expanduser() if env else Path(_worker().local_directory) / "batuta"
    base.mkdir(parents=True, exist_ok=True)
    return base


def _nthreads() -> int:
    try:
        return max(1, int(_worker().state.nthreads))
    except (AttributeError, ValueError, TypeError):
        return 1


def worker_settings(endpoint: str, remote: str) -> Any:
    """Settings on this worker: the driver's endpoint and remote, this worker's cache and token."""
    from batuta_sync.settings import resolve_settings

    own = resolve_settings().token_value()  # the token of this worker's environment (HF_TOKEN, its login)
    base = _base_dir()
    flags = {"endpoint": endpoint, "remote": remote, "hf_home": str(base / "hf-home"), "hub_cache": str(base / "hub")}
    if own:
        flags["token"] = own
    return resolve_settings(flags=flags)


def _shared(remote: str) -> Any:
    from batuta_sync.remote import open_remote
    from batuta_sync.remote.cas import SharedStore

    return SharedStore(open_remote(remote))


def _error(exc: BatutaError) -> dict[str, Any]:
    return {"error": {"message": exc.message, "hint": exc.hint, "code": exc.code, "exit_name": exc.exit_name},
            "worker": _address()}


def _address() -> str:
    try:
        return str(_worker().address)
    except (ValueError, AttributeError):
        return "?"


class _EventProgress:
    """A download progress sink that sends byte counts to the driver (``log_event``), throttled."""

    def __init__(self, topic: str, action_id: str) -> None:
        self.topic = topic
        self.action_id = action_id
        self.pending = 0
        self.last = 0.0
        self.worker = _worker() if topic else None  # here: the download threads have no worker context
        self.guard = threading.Lock()

    def _send(self, **msg: Any) -> None:
        if self.worker is not None:
            self.worker.log_event(self.topic, {"action": self.action_id, **msg})

    def start(self, files: int, total_bytes: int) -> None:
        self._send(event="start", files=files, total=total_bytes)

    def file_start(self, path: str, size: int, done: int) -> None:
        pass

    def advance(self, path: str, nbytes: int) -> None:
        with self.guard:
            self.pending += nbytes
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        with self.guard:
            pending, self.pending = self.pending, 0
            self.last = time.monotonic() if now is None else now
        if pending:
            self._send(event="advance", bytes=pending)

    def file_done(self, path: str, *, cached: bool) -> None:
        pass

    def close(self) -> None:
        self.flush()


def pull_task(task: PullTask) -> dict[str, Any]:
    """Pull ``task``'s files into this worker's cache (local cache -> remote -> Hub), make sure
    each blob is in the remote's CAS, and return their digests."""
    try:
        return _pull(task)
    except BatutaError as exc:
        return _error(exc)


def _pull(task: PullTask) -> dict[str, Any]:
    from batuta_sync.hub.cache import CacheLayout
    from batuta_sync.pull import PullRequest, pull
    from batuta_sync.safety import unsafe_files_error
    from batuta_sync.types import HfAssetType, RepoFile, RepoRef, RepoSnapshot

    settings = worker_settings(task.endpoint, task.remote)
    shared = _shared(task.remote)
    ref = RepoRef(task.repo, HfAssetType(task.repo_type), task.revision)
    snapshot = RepoSnapshot(ref, task.commit, tuple(RepoFile(p, size, sha1, sha256) for p, size, sha1, sha256 in task.files))
    req = PullRequest(ref=ref, files=tuple(f[0] for f in task.files), allow_unsafe=task.allow_unsafe)
    result = pull(settings, req, jobs=max(4, _nthreads()), snapshot=snapshot,
                  progress=_EventProgress(task.topic, task.action_id))
    if result.blocked:
        raise unsafe_files_error(result.blocked)
    layout = CacheLayout.of(settings.hub_cache, ref)
    digests: dict[str, list[Any]] = {}
    for f in snapshot.files:
        if not shared.has_blob(f.etag):  # served from this worker's cache: share it now
            shared.put_blob(f.etag, layout.blob_path(f.etag))
        digests[f.path] = [f.etag, f.size]
    return {"digests": digests, "bytes": int(getattr(result, "downloaded_bytes", 0) or 0), "worker": _address()}


def convert_task(task: ConvertTask) -> dict[str, Any]:
    """Fetch the inputs from the remote's CAS, convert in a scratch folder of this worker, share
    the outputs as the run-cache record ``task.key``, return their digests.  A record that is
    already there (another runner converted the same input) is returned as is."""
    try:
        return _convert(task)
    except BatutaError as exc:
        return _error(exc)


def _convert(task: ConvertTask) -> dict[str, Any]:
    from batuta_sync._fs import confine
    from batuta_sync.remote.cas import digest_file

    shared = _shared(task.remote)
    done = shared.get_run(task.key)
    if done and all(shared.has_blob(r["sha256"]) for r in done.values()):
        return {"digests": {n: [r["sha256"], r["size"]] for n, r in done.items()}, "bytes": 0,
                "worker": _address(), "cached": True}
    with tempfile.TemporaryDirectory(prefix="convert-", dir=_base_dir()) as tmp:
        src = Path(tmp) / "in" / task.source_name
        for path, digest, size in task.inputs:
            dest = confine(src, path, follow_last=False, what="a conversion input")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not shared.fetch_blob(digest, dest, size=size).hit:
                raise IntegrityError(
                    f"The input {path} ({digest[:12]}) of the conversion is not in the remote {shared.url} "
                    "(or does not match its digest).",
                    hint="Apply again: the pull that provides it runs first and shares it with the remote.",
                )
        dst = Path(tmp) / "out"
        dst.mkdir()
        from batuta_sync import convert as convert_mod

        result = convert_mod.convert(src, dst, to=task.to, quantization=task.quantization, jobs=_nthreads(),
                                     allow_unsafe=task.allow_unsafe, **dict(task.options))
        outputs: dict[str, tuple[str, int]] = {}
        for f in result.files:
            rel = Path(f).resolve().relative_to(dst.resolve()).as_posix()
            outputs[rel] = (digest_file(Path(f), "sha256"), Path(f).stat().st_size)
        shared.share_run(task.key, dst, outputs)
    return {"digests": {n: [sha, size] for n, (sha, size) in outputs.items()}, "bytes": 0, "worker": _address()}
