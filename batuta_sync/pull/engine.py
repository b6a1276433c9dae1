"""Fetching what :mod:`batuta_sync.pull.select` chose: the I/O half of the pull engine.

:func:`pull` resolves the snapshot (≤ 2 API calls via :class:`~batuta_sync.hub.client.HubApi`,
or none when given a snapshot / offline), downloads into the huggingface_hub-layout cache
(:mod:`batuta_sync.hub.download`), content-checks every blob, links the snapshot, optionally
materializes ``--output`` and records cache statistics.  :func:`cached_snapshot` is the cached
listing of a repo, without network.

This module never imports :mod:`batuta_sync.convert`: a pull whose format must be converted
raises :class:`ConversionNeededError` (carrying the snapshot and the selection), and callers
that want the conversion opt in with :func:`batuta_sync.convert.on_pull.pull_or_convert`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batuta_sync.errors import (
    ConversionError,
    IntegrityError,
    NetworkError,
    NotFoundError,
    OfflineError,
)
from batuta_sync.pull._notice import warn as _warn
from batuta_sync.pull.select import ConversionNeeded, PullRequest, PullSelection, plan_pull
from batuta_sync.safety import check_name_collisions, path_problem
from batuta_sync.types import HfAssetType, RepoFile, RepoRef, RepoSnapshot, check_repo_id

if TYPE_CHECKING:
    from batuta_sync.hub.cache import CacheLayout
    from batuta_sync.hub.download import ProgressSink
    from batuta_sync.remote.cas import SharedStore
    from batuta_sync.settings import Settings

__all__ = ["ConversionNeededError", "PullResult", "cached_snapshot", "pull"]


@dataclass(frozen=True)
class PullResult:
    snapshot: RepoSnapshot  # commit + ALL remote files
    selected: tuple[RepoFile, ...]
    snapshot_dir: Path
    output: Path | None
    downloaded_bytes: int
    cache_hits: int
    blocked: tuple[tuple[str, str], ...] = ()
    format: str | None = None
    notes: tuple[str, ...] = ()
    transferred_bytes: int = 0
    reused_bytes: int = 0  # Xet reconstruction: bytes copied from earlier revisions' blobs, not fetched
    seconds: float = 0.0
    offline: bool = False

    @property
    def files(self) -> tuple[Path, ...]:
        base = self.output or self.snapshot_dir
        return tuple(base / f.path for f in self.selected)

    def to_json(self) -> dict[str, Any]:
        return {
            "repo": self.snapshot.ref.repo_id,
            "repo_type": self.snapshot.ref.repo_type.value,
            "revision": self.snapshot.ref.revision,
            "commit": self.snapshot.commit,
            "snapshot_dir": str(self.snapshot_dir),
            "output": str(self.output) if self.output else None,
            "format": self.format,
            "files": [
                {"path": f.path, "size": f.size, "sha256": f.sha256, "blob_id": f.blob_id}
                for f in self.selected
            ],
            "downloaded_bytes": self.downloaded_bytes,
            "transferred_bytes": self.transferred_bytes,
            "reused_bytes": self.reused_bytes,
            "cache_hits": self.cache_hits,
            "blocked": [{"path": p, "reason": r} for p, r in self.blocked],
            "notes": list(self.notes),
            "seconds": round(self.seconds, 3),
            "offline": self.offline,
        }


class ConversionNeededError(ConversionError):
    """The repo lacks the requested format; ``batuta convert`` can produce it.

    Carries what a converter needs to go on: ``conversion`` (source/target format, source
    files), the ``snapshot`` that was resolved, the ``selection`` and whether the pull was
    ``offline`` (then no conversion can fetch its sources).
    """

    code = "conversion-needed"

    def __init__(
        self,
        message: str,
        conversion: ConversionNeeded,
        *,
        hint: str | None = None,
        snapshot: RepoSnapshot | None = None,
        selection: PullSelection | None = None,
        offline: bool = False,
    ) -> None:
        self.conversion = conversion
        self.snapshot = snapshot
        self.selection = selection
        self.offline = offline
        super().__init__(message, hint=hint)



# --------------------------------------------------------------------------- offline


def cached_snapshot(settings: Settings, ref: RepoRef) -> RepoSnapshot | None:
    """The cached listing of ``ref`` (``refs/`` + ``trees/<sha>.json``); no network."""
    from batuta_sync.hub.cache import cached_snapshot_at

    return cached_snapshot_at(settings.hub_cache, ref, settings.batuta_dir)


# --------------------------------------------------------------------------- shared remote




def open_shared(settings: Settings) -> SharedStore | None:
    """The shared remote of ``settings`` (None without one, or when it cannot be opened: the pull
    goes on with the Hub, with a warning).  A malformed URL is a UsageError."""
    if not settings.remote:
        return None
    from batuta_sync.remote import open_remote
    from batuta_sync.remote.cas import SharedStore
    from batuta_sync.remote.store import RemoteError

    try:
        return SharedStore(open_remote(settings.remote))
    except RemoteError as exc:
        _warn(f"the shared remote cannot be used ({exc.message}); downloading from the Hub.")
        return None


def fetch_from_remote(
    shared: SharedStore, layout: CacheLayout, state_dir: Path, files: Sequence[RepoFile], *, jobs: int = 4
) -> list[str]:
    """Fetch ``files`` (not in the local cache) from the remote into the cache, ``jobs`` blobs at a
    time, verified and stamped like a Hub download; returns the paths it served.  A corrupt object
    is a miss; a remote error stops the lookup with one warning (the Hub serves the rest)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from batuta_sync.errors import BatutaError
    from batuta_sync.hub.cache import BLOB_MODE, mark_verified

    first: dict[str, RepoFile] = {}
    for f in files:
        first.setdefault(f.etag, f)
    failed = threading.Event()

    def one(f: RepoFile) -> bool:
        if failed.is_set():
            return False
        try:
            got = shared.fetch_blob(f.etag, layout.blob_path(f.etag), size=f.size, mode=BLOB_MODE)
        except (BatutaError, OSError) as exc:
            if not failed.is_set():
                failed.set()
                _warn(f"the shared remote {shared.url} failed ({exc}); downloading from the Hub instead.")
            return False
        if got.hit:
            mark_verified(state_dir, layout, f)
        return got.hit

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(first)))) as pool:
        hits = {etag for etag, ok in zip(first, pool.map(one, first.values()), strict=True) if ok}
    return [f.path for f in files if f.etag in hits]


def write_through(shared: SharedStore, layout: CacheLayout, files: Sequence[RepoFile]) -> None:
    """Share the blobs the Hub just sent (create-only); a remote error only warns."""
    from batuta_sync.errors import BatutaError

    for etag in dict.fromkeys(f.etag for f in files):
        try:
            shared.put_blob(etag, layout.blob_path(etag))
        except (BatutaError, OSError) as exc:
            _warn(f"could not share blobs with the remote {shared.url} ({exc}); the pull itself is fine.")
            return


# --------------------------------------------------------------------------- I/O


def _parse_card(text: str) -> dict[str, Any] | None:
    """The card's front matter (``fileformats/card.py``, the one parser), or None."""
    from batuta_sync.fileformats.card import parse

    return parse(text)[0]


def _resolve_snapshot(
    settings: Settings, ref: RepoRef, shared: SharedStore | None = None, **http_kwargs: Any
) -> tuple[RepoSnapshot, bool]:
    """(snapshot, offline?) - from the Hub, or the cache when offline / the Hub is unreachable.
    A commit sha's listing comes from the local cache, else the shared remote, before the Hub;
    a listing the Hub sends is written through to the remote."""
    if settings.offline:
        snap = cached_snapshot(settings, ref)
        if snap is None:
            raise OfflineError(
                f"Offline mode and {ref} is not in the cache ({settings.hub_cache}): no refs/{ref.revision} "
                "or no trees/<commit>.json listing."
            )
        return snap, True
    from batuta_sync.ids import is_git_sha1

    if is_git_sha1(ref.revision):  # a commit's (complete) listing never changes
        from batuta_sync.hub.cache import cached_snapshot_at

        snap = cached_snapshot_at(settings.hub_cache, ref)
        if snap is not None:
            return snap, False
    from batuta_sync.hub.client import HubApi
    from batuta_sync.pull.listings import ListingClient

    try:
        with HubApi(settings, **http_kwargs) as client:
            return (ListingClient(client, shared) if shared is not None else client).snapshot(ref), False
    except NetworkError:
        snap = cached_snapshot(settings, ref)
        if snap is None:
            raise
        return snap, True


def pull(
    settings: Settings,
    req: PullRequest,
    *,
    jobs: int = 8,
    progress: ProgressSink | None = None,
    snapshot: RepoSnapshot | None = None,
    max_wait: float | None = None,
    no_wait: bool = False,
    sleep: Callable[[float], None] | None = None,
) -> PullResult:
    """Download ``req`` into the cache (and ``req.output``); see the module docstring.

    Raises :class:`~batuta_sync.errors.UnsafeFileError` when the policy blocks everything
    asked for, :class:`ConversionNeededError` when the format must be converted (callers that
    want the conversion use :func:`batuta_sync.convert.on_pull.pull_or_convert`),
    :class:`~batuta_sync.errors.OfflineError` naming the
    missing files when offline.  Files blocked while others were pulled are in ``blocked``.
    """
    import time

    from batuta_sync.hub.cache import (
        CacheLayout,
        HfCache,
        ensure_cache_root,
        link_snapshot_file,
        materialize,
        verified_blob,
        write_partial_listing,
        write_ref,
        write_tree,
    )
    from batuta_sync.hub.download import Downloader, DownloadJob
    from batuta_sync.safety import sniff_file_safety, unsafe_files_error

    t0 = time.monotonic()
    check_repo_id(req.ref.repo_id)
    offline = settings.offline
    complete_listing = snapshot is None  # ours: the commit's full listing; a caller's may be a subset
    shared = None if offline else open_shared(settings)
    if snapshot is None:
        waits: dict[str, Any] = {"max_wait": max_wait, "no_wait": no_wait}
        if sleep is not None:
            waits["sleep"] = sleep
        snapshot, offline = _resolve_snapshot(settings, req.ref, shared, **waits)
        complete_listing = not offline
    else:
        offline = settings.offline
    if snapshot.ref != req.ref:
        snapshot = replace(snapshot, ref=req.ref)
    ref = req.ref
    layout = CacheLayout.of(settings.hub_cache, ref)
    cache = HfCache.from_settings(settings)
    dl = Downloader(
        settings, jobs=jobs, progress=progress, max_wait=max_wait, no_wait=no_wait, sleep=sleep or time.sleep
    )

    def have(f: RepoFile) -> bool:  # verified by batuta (or re-hashed now), never by size
        return verified_blob(settings.batuta_dir, layout, f)

    shared = None if offline else shared
    from_remote: set[str] = set()  # paths whose blob came from the shared remote this pull
    from_xet: set[str] = set()  # paths rebuilt through Xet reconstruction (BATUTA_DOWNLOAD_PROTOCOL=xet)
    xet_stats: list[Any] = []
    from batuta_sync.pull.xet import protocol as xet_protocol

    def fetch(files: Sequence[RepoFile]) -> Any:
        missing = [f for f in files if not have(f)]
        if offline and missing:
            raise OfflineError(
                f"Offline and {len(missing)} file(s) of {ref} (commit {snapshot.commit[:12]}) are not in the cache: "
                + ", ".join(f.path for f in missing)
                + "."
            )
        if shared is not None and missing:  # local cache -> remote -> Hub
            from_remote.update(fetch_from_remote(shared, layout, settings.batuta_dir, missing, jobs=jobs))
        if missing and not offline and xet_protocol() == "xet":  # opt-in: docs/pull-and-cache.md
            from batuta_sync.hub._http import HubHttp
            from batuta_sync.pull.xet import fetch_by_reconstruction

            with HubHttp(settings) as http:
                rebuilt, stats = fetch_by_reconstruction(
                    settings, http, layout, ref, snapshot.commit, [f for f in missing if f.path not in from_remote])
            xet_stats.append(stats)
            from_xet.update(rebuilt)
        return dl.fetch_all([DownloadJob(ref, snapshot.commit, f, layout) for f in files])

    card: Mapping[str, Any] | None = snapshot.card  # the Hub's cardData, when it sent it
    if card is None and ref.repo_type is HfAssetType.DATASET and req.split:
        readme = snapshot.file("README.md")
        if readme is not None and readme.etag and path_problem(readme.path) is None and (have(readme) or not offline):
            ensure_cache_root(settings.hub_cache)
            fetch([readme])
            try:
                card = _parse_card(
                    layout.blob_path(readme.etag).read_text(encoding="utf-8", errors="replace")
                )
            except OSError:
                card = None

    selection = plan_pull(snapshot, req, card=card)
    if selection.conversion is not None:
        c = selection.conversion
        target = c.target_format + (f" {c.quantization}" if c.quantization else "")
        raise ConversionNeededError(
            f"{ref} has no {target} file; it has {c.source_format} weights "
            f"({len(c.source_files)} file(s)). A conversion is needed.",
            c,
            hint=f"Pull the {c.source_format} files (`--format {c.source_format}` if supported) and run "
            f"`batuta convert` to produce {target}, or declare the conversion in hf.yaml.",
            snapshot=snapshot,
            selection=selection,
            offline=offline,
        )
    if not selection.selected:
        if selection.blocked:
            raise unsafe_files_error(selection.blocked)
        raise NotFoundError(
            f"{ref}: nothing to pull.", hint="Check --include/--exclude.", code="entry-not-found"
        )

    blocked = list(selection.blocked)
    check_name_collisions([f.path for f in selection.selected], f"{ref} (commit {snapshot.commit[:12]})")
    unnamed = [f.path for f in selection.selected if not f.etag]
    if unnamed:
        raise IntegrityError(
            f"{ref}: no hash known for {', '.join(unnamed)}; cannot verify or cache it.",
            hint="Give the snapshot's files their blob ids / sha256 (HubApi.snapshot does).",
        )
    if not offline:
        ensure_cache_root(settings.hub_cache)
        if complete_listing:
            write_tree(layout, snapshot)
        else:
            write_partial_listing(settings.batuta_dir, layout, replace(snapshot, files=selection.selected))
    if req.output is not None and req.copy:
        from batuta_sync._fmt import human_bytes
        from batuta_sync._fs import disk_free

        out_dir = Path(req.output)
        need = sum(
            f.size
            for f in selection.selected
            if not ((out_dir / f.path).is_file() and (out_dir / f.path).stat().st_size == f.size)
        )
        if disk_free(Path(req.output)) < need + (16 << 20):
            from batuta_sync.errors import DiskFullError

            raise DiskFullError(
                f"Not enough free space in {req.output} for copies of {len(selection.selected)} file(s) "
                f"({human_bytes(need)}). Nothing was downloaded.",
                hint="Drop --copy (symlinks need no space), free space, or choose another --output.",
            )
    try:
        report = fetch(selection.selected)
    finally:
        if progress is not None:
            progress.close()

    # content check: a pickle renamed .safetensors & co never enter the snapshot
    keep: list[RepoFile] = []
    fresh = {o.path for o in report.outcomes if not o.cached} | from_remote | from_xet
    for f in selection.selected:
        blob = layout.blob_path(f.etag)
        verdict = sniff_file_safety(blob, f.path)
        if verdict.unsafe and not req.allow_unsafe:
            blocked.append((f.path, f"{verdict.reason}; allow with --allow-unsafe (it is never loaded)"))
            if f.path in fresh and not any(g.etag == f.etag for g in keep):
                blob.unlink(missing_ok=True)  # never cached (a blob that was already there may serve others)
            continue
        keep.append(f)
    if shared is not None:  # write-through of what the Hub sent and passed the content check
        write_through(shared, layout, [f for f in keep if f.path in fresh and f.path not in from_remote])
    for f in keep:
        link_snapshot_file(layout, snapshot.commit, f)
    if not offline:
        write_ref(layout, ref.revision, snapshot.commit)
    snap_dir = layout.snapshot_dir(snapshot.commit)
    snap_dir.mkdir(parents=True, exist_ok=True)
    output = None
    if req.output is not None:
        output = materialize(snap_dir, [f.path for f in keep], Path(req.output), copy=req.copy)

    hits = [f for f in keep if f.path not in fresh]
    misses = [f for f in keep if f.path in fresh]
    cache.index.touch(layout.folder, snapshot.commit)
    cache.index.record(
        {
            "repo": layout.folder,
            "revision": ref.revision,
            "commit": snapshot.commit,
            "hits": len(hits),
            "misses": len(misses),
            "hit_bytes": sum(f.size for f in hits),
            "miss_bytes": sum(f.size for f in misses),
            "transferred": report.transferred,
        }
    )
    if not keep and blocked:
        raise unsafe_files_error(blocked)
    return PullResult(
        snapshot=snapshot,
        selected=tuple(keep),
        snapshot_dir=snap_dir,
        output=output,
        downloaded_bytes=sum(f.size for f in misses),
        cache_hits=len(hits),
        blocked=tuple(blocked),
        format=selection.format,
        notes=selection.notes,
        transferred_bytes=report.transferred + sum(x.fetched_bytes for x in xet_stats),
        reused_bytes=sum(x.reused_bytes for x in xet_stats),
        seconds=time.monotonic() - t0,
        offline=offline,
    )
