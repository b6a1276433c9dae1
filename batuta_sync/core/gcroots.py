"""GC roots: which cached snapshots known workspaces use, so pruning never breaks their outputs.

Every apply records its workspace in the cache's roots (``HfCache.add_root``: a symlink
``<batuta state>/gc-roots/<id>`` → the workspace's hf.lock, like Nix's gcroots).  A snapshot is
*rooted* when a known workspace's hf.lock pins it, or when the workspace last materialized it
(``.batuta/state.json``, which after a ``git pull`` of a newer hf.lock is what the outputs still
point to).  ``cache prune`` and ``policies.max_cache_size`` never evict a rooted snapshot;
``cache clear`` names the outputs it would break and asks first.  A root whose hf.lock is gone is
dropped the next time the roots are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from batuta_sync.core.lockfile import RepoLock, read_lock
from batuta_sync.core.observe import WorkspaceState
from batuta_sync.errors import BatutaError
from batuta_sync.hub.cache import (
    CachedSnapshot,
    HfCache,
    PruneResult,
    SnapshotKey,
    human_bytes,
    repo_folder_name,
)


@dataclass(frozen=True)
class RootUse:
    """One workspace resource that uses a cached snapshot."""

    workspace: Path
    address: str
    output: Path | None  # the folder whose links point into the snapshot; None = read from the cache

    def describe(self) -> str:
        where = str(self.output) if self.output else f"{self.workspace} (read from the cache)"
        return f"{where}  [{self.address}]"


def uses(cache: HfCache) -> dict[SnapshotKey, list[RootUse]]:
    """Rooted snapshots → the workspace resources that use them (dangling roots are dropped).

    A workspace whose hf.lock cannot be parsed (e.g. a merge conflict in progress) roots nothing
    until it is fixed; its materialized commits (state.json) cannot be mapped to repos without it.
    """
    out: dict[SnapshotKey, list[RootUse]] = {}
    for lock_path in cache.root_locks():
        try:
            lock = read_lock(lock_path)
        except BatutaError:
            continue
        ws = lock_path.parent
        applied = WorkspaceState(ws / ".batuta").applied
        for address, entry in sorted(lock.entries.items() if lock else ()):
            if not isinstance(entry, RepoLock):
                continue
            folder = repo_folder_name(entry.repo_type, entry.repo)
            output = (ws / entry.output) if entry.output else None
            use = RootUse(ws, address, output)
            for commit in {entry.commit, applied.get(address) or entry.commit}:
                out.setdefault((folder, commit), []).append(use)
    return out


def register(cache: HfCache, lock_path: Path) -> None:
    """Record the workspace of ``lock_path`` as a GC root (nothing when it has no hf.lock yet)."""
    if lock_path.is_file():
        cache.add_root(lock_path)


def prune(cache: HfCache, limit: int) -> tuple[PruneResult, str | None]:
    """Prune to ``limit`` keeping rooted snapshots; the message to show when the limit is smaller
    than what the workspaces need (None when it was met)."""
    rooted = uses(cache)
    report = cache.prune_report(limit, keep=rooted.keys())
    if not report.over_limit or not report.kept:
        return report, None
    names = sorted({u.describe() for s in report.kept for u in rooted.get(s.key, [])})
    listing = "\n".join(f"  - {n}" for n in names)
    return report, (
        f"The cache is {human_bytes(report.size_after)}, over its limit of {human_bytes(limit)}: "
        f"{len(report.kept)} snapshot(s) that workspaces' hf.lock use were kept, since evicting them "
        f"would break these outputs:\n{listing}\n"
        "Raise policies.max_cache_size / --max-size, or remove resources from those hf.yaml files."
    )


def prune_detached(cache: HfCache) -> tuple[list[CachedSnapshot], int]:
    """Remove the snapshots no ref points to, keeping the rooted ones."""
    return cache.prune_detached(keep=uses(cache).keys())


def breaks(cache: HfCache) -> list[str]:
    """What ``cache clear`` would break: one line per output that uses a snapshot now cached."""
    present = {s.key for s in cache.snapshots()}
    return sorted({u.describe() for key, us in uses(cache).items() if key in present for u in us})
