"""Where a plan's pulls will come from: the shared remote or the Hub (the I/O half of plan output).

The planner is pure: it says *which* files a pull needs.  This module, run by ``core.api`` after
planning, asks the remote which of those blobs it already holds -- one ``head`` per distinct blob
not in the local cache, at most :data:`HEAD_JOBS` at a time -- so ``batuta plan`` can say
``from remote``, ``from Hub`` or ``partly: N of M files from remote`` per pull.  It downloads
nothing.  :func:`remote_status` is what ``batuta status`` shows about the remote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from batuta_sync.pull._notice import warn as _warn
from batuta_sync.types import RepoFile, RepoRef

if TYPE_CHECKING:
    from batuta_sync.settings import Settings

__all__ = ["HEAD_JOBS", "Availability", "remote_availability", "remote_status", "source_label"]

HEAD_JOBS = 8  # concurrent HEAD requests against the remote


@dataclass(frozen=True, slots=True)
class Availability:
    """Of the ``files`` a pull must fetch (not in the local cache), ``remote`` are on the remote."""

    files: int
    remote: int

    @property
    def source(self) -> str:
        """``cache`` (nothing to fetch), ``remote``, ``hub`` or ``partly``."""
        if self.files == 0:
            return "cache"
        if self.remote == self.files:
            return "remote"
        return "hub" if self.remote == 0 else "partly"

    def to_dict(self) -> dict[str, Any]:
        return {"files": self.files, "remote": self.remote, "from": self.source}


def source_label(files: int, remote: int) -> str:
    """The plan's words for a pull's source ("" when nothing is fetched)."""
    a = Availability(files, remote)
    return {
        "cache": "",
        "remote": "from remote",
        "hub": "from Hub",
        "partly": f"partly: {remote} of {files} files from remote",
    }[a.source]


def _needed(settings: Settings, ref: RepoRef, files: Sequence[RepoFile]) -> list[RepoFile]:
    """The files whose blob is not in the local cache (what the pull will fetch)."""
    from batuta_sync.hub.cache import CacheLayout

    layout = CacheLayout.of(settings.hub_cache, ref)
    return [f for f in files if f.etag and not layout.blob_path(f.etag).is_file()]


def remote_availability(
    settings: Settings, pulls: Mapping[str, tuple[RepoRef, Sequence[RepoFile]]], *, jobs: int = HEAD_JOBS
) -> dict[str, Availability] | None:
    """``{address: Availability}`` for each pull, or None (no remote, offline, or the remote
    failed: a warning says so and the plan names no sources)."""
    if not settings.remote or settings.offline or not pulls:
        return None
    from batuta_sync.pull.engine import open_shared
    from batuta_sync.remote.store import RemoteError

    shared = open_shared(settings)
    if shared is None:
        return None
    needed = {addr: _needed(settings, ref, files) for addr, (ref, files) in pulls.items()}
    etags = sorted({f.etag for fs in needed.values() for f in fs})
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(etags) or 1))) as pool:
            present = {e for e, ok in zip(etags, pool.map(shared.has_blob, etags), strict=True) if ok}
    except RemoteError as exc:
        _warn(f"could not ask the shared remote {shared.url} which blobs it has ({exc.message}).")
        return None
    return {addr: Availability(len(fs), sum(1 for f in fs if f.etag in present)) for addr, fs in needed.items()}


def remote_status(settings: Settings) -> dict[str, Any] | None:
    """``{"url", "reachable", "error"}`` of the configured remote (one ``head``), or None without one.
    The URL carries no credentials (``open_remote`` refuses them)."""
    if not settings.remote:
        return None
    from batuta_sync.errors import BatutaError
    from batuta_sync.remote import open_remote

    out: dict[str, Any] = {"url": settings.remote, "reachable": False, "error": None}
    if settings.offline:
        out["error"] = "offline: not checked"
        return out
    try:
        store = open_remote(settings.remote)
        out["url"] = store.url
        store.head("locks/.status-probe")
        out["reachable"] = True
    except BatutaError as exc:
        out["error"] = exc.message
    return out
