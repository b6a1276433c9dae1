"""The real step functions apply runs, one per action kind (the I/O edge of apply).

Each step does one thing through the engine that owns it and returns the lock
entry to record: pull (``batuta_sync.pull``), convert (``batuta_sync.convert``),
push (``batuta_sync.publish``), delete-local (here).  Heavy modules are imported
inside the steps.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from batuta_sync import ids
from batuta_sync._fs import atomic_write, confine, is_inside
from batuta_sync.core.actions import Action, ActionKind
from batuta_sync.core.executor import StepContext, StepFn, StepResult, relock_step
from batuta_sync.core.lockfile import (
    ConversionLock,
    FileDigest,
    LockEntry,
    PublishLock,
    RepoLock,
    entry_from_dict,
    tree_digest,
)
from batuta_sync.core.manifest import ConversionSpec, Manifest, PublishSpec, RepoSpec
from batuta_sync.core.observe import WorkspaceState, hash_file, walk_files
from batuta_sync.core.planner.diff import conversion_key, snapshot_dir
from batuta_sync.core.workspace import workspace_path
from batuta_sync.errors import ConfigError, PlanError
from batuta_sync.settings import Settings
from batuta_sync.types import HfAssetType, RepoFile, RepoRef, RepoSnapshot

if TYPE_CHECKING:
    from batuta_sync.remote.cas import SharedStore

Spec = TypeVar("Spec", RepoSpec, ConversionSpec, PublishSpec)


def _purge(settings: Settings, entry: RepoLock, paths: list[str]) -> None:
    """Remove corrupt cached files (the snapshot link and the blob it points to) so pull re-fetches them.

    The link is confined to the snapshot folder (not followed), the blob it points to to the
    repo's ``blobs/`` folder: a planted symlink cannot make this delete anything else."""
    base = Path(snapshot_dir(str(settings.hub_cache), entry.repo_type, entry.repo, entry.commit))
    blobs = base.parent.parent / "blobs"
    for rel in paths:
        link = confine(base, rel, follow_last=False, what="cached file")
        try:
            if link.is_symlink() and is_inside(blobs, link) and os.path.isfile(link):
                os.unlink(os.path.realpath(link))
            link.unlink()
        except OSError:
            pass


# Paths that apply writes or deletes are derived from hf.yaml (whose digest the plan was
# checked against), hf.lock and the settings, never taken from plan.json; each is confined
# (``_fs.confine``: real paths, symlinks included) to the workspace, an output folder or the
# cache.  A plan's lock entries must agree with hf.yaml (``_agrees``).  So even a correctly
# signed plan with crafted paths cannot point a write or a delete anywhere else.


def _abs(manifest: Manifest, settings: Settings, path: str, what: str) -> Path:
    return workspace_path(manifest, path, allow_outside=settings.allow_outside_workspace, what=what)


def _agrees(manifest: Manifest, entry: LockEntry) -> None:
    """Refuse a lock entry from the plan that does not match what hf.yaml declares for its address."""
    spec = manifest.get(entry.address)
    ok = False
    if isinstance(entry, RepoLock) and isinstance(spec, RepoSpec):
        ok = (entry.repo, entry.repo_type, entry.revision, entry.output, entry.selection) == (
            spec.repo, spec.repo_type.value, spec.revision, spec.output, spec.selection_digest()
        )
    elif isinstance(entry, ConversionLock) and isinstance(spec, ConversionSpec):
        ok = (entry.source, entry.output) == (spec.source, spec.output_path)
    elif isinstance(entry, PublishLock) and isinstance(spec, PublishSpec):
        ok = (entry.repo, entry.repo_type, entry.revision) == (spec.repo, spec.repo_type.value, spec.revision)
    if not ok:
        raise PlanError(
            f"The plan's lock entry for {entry.address} does not match hf.yaml (repo, revision, output or "
            "selection differ); refusing it.",
            hint="Re-create the plan with `batuta plan -o plan.json`.",
        )


def _spec(manifest: Manifest, address: str, kind: type[Spec]) -> Spec:
    spec = manifest.get(address)
    if not isinstance(spec, kind):
        raise PlanError(f"The plan has an action for {address}, which hf.yaml does not declare as expected.")
    return spec


def source_dir(manifest: Manifest, settings: Settings, ctx: StepContext, address: str) -> Path:
    """Where the files of ``address`` are now: a repo's output (or cache snapshot), a conversion's output."""
    spec = manifest.get(address)
    if isinstance(spec, RepoSpec):
        if spec.output:
            return _abs(manifest, settings, spec.output, f"{address}.output")
        entry = ctx.lock.get(address)
        if not isinstance(entry, RepoLock):
            raise PlanError(f"{address} is not in hf.lock; apply its pull first.")
        return Path(snapshot_dir(str(settings.hub_cache), entry.repo_type, entry.repo, entry.commit))
    if isinstance(spec, ConversionSpec):
        return _abs(manifest, settings, spec.output_path, f"{address}.output")
    raise PlanError(f"{address} has no local files.")


class AbortableProgress:
    """A download progress sink that raises KeyboardInterrupt at the next chunk once ``abort`` is
    set (a second Ctrl-C in apply): the download engine keeps that partial for the next run."""

    def __init__(self, inner: Any, abort: threading.Event) -> None:
        self.inner = inner
        self.abort = abort

    def _check(self) -> None:
        if self.abort.is_set():
            raise KeyboardInterrupt

    def start(self, files: int, total_bytes: int) -> None:
        self._check()
        if self.inner is not None:
            self.inner.start(files, total_bytes)

    def file_start(self, path: str, size: int, done: int) -> None:
        self._check()
        if self.inner is not None:
            self.inner.file_start(path, size, done)

    def advance(self, path: str, nbytes: int) -> None:
        self._check()
        if self.inner is not None:
            self.inner.advance(path, nbytes)

    def file_done(self, path: str, *, cached: bool) -> None:
        if self.inner is not None:
            self.inner.file_done(path, cached=cached)

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


def _served_by_run_cache(settings: Settings, spec: RepoSpec, ctx: StepContext) -> bool:
    """A ``fetch: on-demand`` repo need not be downloaded when this apply converts it and the
    remote run-cache has every one of those conversions (record and blobs; nothing is fetched
    here).  Conversions of it that the plan does not run are unchanged: they need no input."""
    plan = ctx.extra.get("plan")
    if not spec.on_demand or spec.output or plan is None or not settings.remote or settings.offline:
        return False
    keys = [a.params.get("key") for a in plan.actions
            if a.kind is ActionKind.CONVERT and a.params.get("from") == spec.address]
    if not keys or not all(isinstance(k, str) and k for k in keys):
        return False
    from batuta_sync.pull.engine import open_shared
    from batuta_sync.remote.store import RemoteError

    shared = open_shared(settings)
    try:
        return shared is not None and all(shared.has_run(str(k)) for k in keys)
    except RemoteError:
        return False  # the pull goes on; the convert step warns if the remote stays down


def make_pull_step(settings: Settings, manifest: Manifest, state: WorkspaceState) -> StepFn:
    def pull_step(action: Action, ctx: StepContext) -> StepResult:
        from batuta_sync import pull as pull_mod

        spec = _spec(manifest, action.address, RepoSpec)
        entry = entry_from_dict(action.address, action.lock_entry)
        if not isinstance(entry, RepoLock):
            raise PlanError(f"The plan's resolution of {action.address} is not a repo entry.")
        _agrees(manifest, entry)
        if _served_by_run_cache(settings, spec, ctx):  # recorded in hf.lock, not downloaded
            return StepResult(lock_entry=entry, message="not downloaded: the remote run-cache has its conversions")
        p = action.params
        output = _abs(manifest, settings, spec.output, f"{action.address}.output") if spec.output else None
        if p.get("purge"):
            _purge(settings, entry, [ids.repo_path(r, where="plan") for r in p["purge"]])
        if output is not None:
            for rel in p.get("purge_output") or []:
                confine(output, ids.repo_path(rel, where="plan"), follow_last=False, what="output file").unlink(missing_ok=True)
        ref = RepoRef(entry.repo, HfAssetType(entry.repo_type), entry.revision)
        snapshot = RepoSnapshot(
            ref, entry.commit, tuple(RepoFile(f.path, f.size, f.gitsha1 or "", f.sha256) for f in entry.files)
        )
        req = pull_mod.PullRequest(
            ref=ref,
            files=tuple(f.path for f in entry.files),
            output=output,
            copy=manifest.materialize == "copy",
            allow_unsafe=spec.allow_unsafe,
        )
        progress_for = ctx.extra.get("progress_for")
        progress = AbortableProgress(progress_for(action) if progress_for else None, ctx.abort)
        try:
            result = pull_mod.pull(settings, req, jobs=max(4, ctx.jobs), snapshot=snapshot, progress=progress)
        except OSError as exc:
            if output is None or exc.errno == errno.ENOSPC or not str(exc.filename or "").startswith(str(output)):
                raise
            raise ConfigError(
                f"{action.address}: cannot write its output folder {spec.output}: {exc.strerror or exc}.",
                hint=f"Make {spec.output} writable, or change `output:` of {action.address} in hf.yaml.",
            ) from None
        if result.blocked:
            from batuta_sync.safety import unsafe_files_error

            raise unsafe_files_error(result.blocked)
        state.set_applied(action.address, entry.commit)
        if output is not None:
            for f in entry.files:
                state.remember(output / f.path, f.sha256, f.gitsha1)
        return StepResult(
            lock_entry=entry,
            applied_commit=entry.commit,
            bytes=int(getattr(result, "downloaded_bytes", 0) or 0),
        )

    return pull_step


def output_digests(path: Path, produced: Sequence[Path] | None = None) -> tuple[FileDigest, ...]:
    """sha256 + git sha1 of every file under ``path`` (or of ``path`` itself), or only of the
    ``produced`` files (under ``path``) when given."""
    if not path.exists():
        return ()
    base = path.parent if path.is_file() else path
    out = []
    rels = walk_files(path)
    if produced is not None:
        wanted = {f.resolve().relative_to(base.resolve()).as_posix() for f in produced if f.is_file()}
        rels = [r for r in rels if r in wanted]
    for rel in rels:
        sha256, sha1 = hash_file(base / rel)
        out.append(FileDigest(rel, (base / rel).stat().st_size, sha1, sha256))
    return tuple(out)


def locked_selection(ctx: StepContext, address: str) -> tuple[str, ...]:
    """The files hf.lock records for ``address`` (a repo's selected files, a conversion's outputs):
    exactly what ``publish.from: <address>`` publishes, never the rest of a shared cache snapshot
    or of an output folder, and what the plan's upload estimate counts."""
    entry = ctx.lock.get(address)
    if isinstance(entry, RepoLock):
        return tuple(f.path for f in entry.files)
    if isinstance(entry, ConversionLock):
        return tuple(f.path for f in entry.outputs)
    raise PlanError(f"{address} is not in hf.lock; apply it before publishing from it.")


def _tree_of(ctx: StepContext, address: str) -> str | None:
    entry = ctx.lock.get(address)
    if isinstance(entry, RepoLock):
        return entry.tree
    if isinstance(entry, ConversionLock):
        return tree_digest(entry.outputs)
    return None


PROVENANCE_FILE = "provenance.json"


def write_provenance(
    dst: Path, source: object, source_path: Path, *, converter: str, quantization: str | None, to: str
) -> None:
    """Record where a conversion came from, for the model card of whatever publishes it.

    Deterministic (sorted, no timestamps) so an unchanged conversion stays byte-identical. A
    conversion of a conversion carries the original source forward.
    """
    import json

    prov: dict[str, str] = {}
    if isinstance(source, RepoLock):
        prov = {"source_repo": source.repo, "source_commit": source.commit}
    else:
        try:
            upstream = json.loads((source_path / PROVENANCE_FILE).read_text(encoding="utf-8"))
            prov = {k: str(upstream[k]) for k in ("source_repo", "source_commit") if k in upstream}
        except (OSError, ValueError, TypeError):
            prov = {}
    prov.update({"converter": "batuta", "converter_version": converter, "format": to})
    if quantization:
        prov["quantization"] = quantization
    atomic_write(dst / PROVENANCE_FILE, json.dumps(prov, indent=2, sort_keys=True) + "\n")


def _shared_for_runs(settings: Settings, input_tree: str) -> SharedStore | None:
    """The shared remote for the run-cache (``SharedStore``), or None: no remote, offline, or an
    input whose tree digest is unknown (then the memo key identifies nothing)."""
    if not settings.remote or settings.offline or input_tree == "unknown":
        return None
    from batuta_sync.pull.engine import open_shared

    return open_shared(settings)


def _fetch_run(shared: SharedStore, key: str, dst: Path) -> tuple[Path, ...] | None:
    """The conversion's outputs from the remote run-cache (verified), or None: convert locally."""
    from batuta_sync.pull._notice import warn as _warn
    from batuta_sync.remote.store import RemoteError

    try:
        return shared.fetch_run(key, dst)
    except RemoteError as exc:
        _warn(f"the remote run-cache {shared.url} failed ({exc.message}); converting locally.")
        return None


def _share_run(shared: SharedStore, key: str, dst: Path, outputs: Sequence[FileDigest]) -> None:
    """Record a local conversion in the remote run-cache (its blobs, then ``runs/<key>.json``)."""
    from batuta_sync.pull._notice import warn as _warn
    from batuta_sync.remote.store import RemoteError

    try:
        shared.share_run(key, dst, {f.path: (f.sha256, f.size) for f in outputs if f.sha256})
    except RemoteError as exc:
        _warn(f"could not share the conversion with the remote {shared.url} ({exc.message}); it is applied.")


PREWARM_MIN_BYTES = 32 << 20
"""A K-quant conversion of a source this large compiles its kernels while the pulls run."""


def prewarm(plan: Any, lock: Any, manifest: Manifest) -> threading.Thread | None:
    """Start compiling (or loading) the K-quant kernels the plan's conversions need, in a daemon
    thread, so the first conversion on a fresh install does not wait for numba (issue 19, cold
    start).  Only for sources big enough to use the kernels (small ones run on numpy, never compile)."""
    from batuta_sync.core.lockfile import RepoLock, entry_from_dict

    wanted: set[str] = set()
    for action in plan.actions:
        if action.kind is not ActionKind.CONVERT:
            continue
        spec = manifest.get(action.address)
        if not isinstance(spec, ConversionSpec) or spec.to != "gguf":
            continue
        pulls = [a for a in plan.actions if a.kind is ActionKind.PULL and a.address == spec.source and a.lock_entry]
        entry = entry_from_dict(spec.source, pulls[0].lock_entry) if pulls else (lock.get(spec.source) if lock else None)
        size = sum(f.size for f in entry.files if f.path.endswith(".safetensors")) if isinstance(entry, RepoLock) else 0
        if size >= PREWARM_MIN_BYTES:
            from batuta_sync.convert.kquants import families

            wanted.update(families(spec.quantization))
    if not wanted:
        return None

    def run() -> None:
        from batuta_sync.convert.kquants import warm_up

        try:
            warm_up(sorted(wanted))
        except Exception:  # the conversion itself reports a broken numba (and falls back to numpy)
            pass

    thread = threading.Thread(target=run, name="batuta-kquants-warm-up", daemon=True)
    thread.start()
    return thread


def _hub_split(spec: ConversionSpec, manifest: Manifest) -> dict[str, Any]:
    """A published GGUF larger than the Hub's per-file limit is written split (docs/conversion.md)."""
    from batuta_sync.core.planner.diff import HUB_SPLIT_BYTES, splits_for_hub  # read now (tests lower them)

    return {"split_if_larger": HUB_SPLIT_BYTES} if splits_for_hub(spec, manifest) else {}


def _abort_check(abort: threading.Event) -> Callable[[int, int], None]:
    """A conversion progress callback (after each tensor) that stops the conversion once ``abort``
    is set (a second Ctrl-C in apply); the converter removes its partial output."""

    def check(_done: int, _total: int) -> None:
        if abort.is_set():
            raise KeyboardInterrupt

    return check


def _fetch_on_demand_input(
    settings: Settings, manifest: Manifest, state: WorkspaceState, ctx: StepContext, address: str
) -> None:
    """Before converting: download a ``fetch: on-demand`` input whose pull this apply skipped
    (the run-cache had the conversion when the pull ran, but its fetch missed since -- a record
    removed by gc, a corrupt blob).  A normal pull of the locked entry, verified as always."""
    spec = manifest.get(address)
    entry = ctx.lock.get(address)
    if not (isinstance(spec, RepoSpec) and spec.on_demand and isinstance(entry, RepoLock)):
        return
    snap = Path(snapshot_dir(str(settings.hub_cache), entry.repo_type, entry.repo, entry.commit))
    if all((snap / f.path).is_file() for f in entry.files):
        return
    from batuta_sync.core.actions import Reason

    pull = Action(ActionKind.PULL, address, Reason.NOT_IN_CACHE, lock_entry=entry.to_dict())
    make_pull_step(settings, manifest, state)(pull, StepContext(lock=ctx.lock, jobs=ctx.jobs, abort=ctx.abort))


def make_convert_step(settings: Settings, manifest: Manifest, state: WorkspaceState) -> StepFn:
    def convert_step(action: Action, ctx: StepContext) -> StepResult:
        from batuta_sync import convert as convert_mod

        spec = _spec(manifest, action.address, ConversionSpec)
        dst = _abs(manifest, settings, spec.output_path, f"{action.address}.output")
        # a conversion renamed by hf.yaml `moved:` (the old address from hf.yaml, never from the plan)
        old = ctx.lock.get(action.address) or ctx.lock.get(manifest.moved_from(action.address) or "")
        if isinstance(old, ConversionLock):  # drop what the previous run wrote (only that)
            old_dir = _abs(manifest, settings, old.output, f"hf.lock {action.address}.output")
            for f in old.outputs:
                confine(old_dir, f.path, follow_last=False, what="conversion output").unlink(missing_ok=True)
        dst.mkdir(parents=True, exist_ok=True)
        input_tree = _tree_of(ctx, spec.source) or "unknown"
        params = spec.params()
        converter = str(convert_mod.CONVERTER_VERSION)
        key = conversion_key(input_tree, converter, params)
        shared = _shared_for_runs(settings, input_tree)
        files = _fetch_run(shared, key, dst) if shared is not None else None
        note = "outputs from the remote run-cache (no conversion)" if files is not None else ""
        if files is None and ctx.extra.get("require_run_cache"):  # a cluster worker converted it
            from batuta_sync.errors import IntegrityError

            raise IntegrityError(
                f"{action.address}: the conversion's outputs are not (or not intact) in the remote's run-cache "
                "although a worker reported them; nothing was recorded for it.",
                hint="Apply again; if it repeats, run `batuta remote check` on the remote.",
            )
        if files is None:
            _fetch_on_demand_input(settings, manifest, state, ctx, spec.source)
            result = convert_mod.convert(
                source_dir(manifest, settings, ctx, spec.source),
                dst,
                to=spec.to,
                quantization=spec.quantization,
                jobs=ctx.jobs,
                progress=_abort_check(ctx.abort),
                allow_unsafe=manifest.allow_unsafe,
                **_hub_split(spec, manifest),
                **spec.convert_kwargs(),
            )
            files = result.files
            if shared is not None:
                _share_run(shared, key, dst, output_digests(dst, produced=list(files)))
        upstream = ctx.lock.get(spec.source)
        # A run-cache hit never reads the source: a repo source's provenance is its lock entry;
        # only a conversion of a conversion reads the upstream's provenance.json.
        upstream_dir = Path() if isinstance(upstream, RepoLock) else source_dir(manifest, settings, ctx, spec.source)
        write_provenance(dst, upstream, upstream_dir, converter=converter, quantization=spec.quantization, to=spec.to)
        entry = ConversionLock(
            address=action.address,
            source=spec.source,
            key=key,
            converter=converter,
            input_tree=input_tree,
            params=tuple(sorted(params.items())),
            output=spec.output_path,
            # Only what the converter wrote (and its provenance): other files in the output
            # directory are the user's, and removing the conversion must not delete them.
            outputs=output_digests(dst, produced=[*files, dst / PROVENANCE_FILE]),
        )
        for f in entry.outputs:
            state.remember(dst / f.path, f.sha256, f.gitsha1)
        return StepResult(lock_entry=entry, message=note)

    return convert_step


def make_push_step(settings: Settings, manifest: Manifest, state: WorkspaceState) -> StepFn:
    def push_step(action: Action, ctx: StepContext) -> StepResult:
        from batuta_sync import publish as publish_mod

        spec = _spec(manifest, action.address, PublishSpec)
        selection: tuple[str, ...] | None = None
        if spec.source_is_address:
            path = source_dir(manifest, settings, ctx, spec.source)
            tree = _tree_of(ctx, spec.source)
            selection = locked_selection(ctx, spec.source)
        else:
            path = _abs(manifest, settings, spec.source, f"{action.address}.from")
            tree = None
        req = publish_mod.PushRequest(
            path=path,
            repo_id=spec.repo,
            repo_type=spec.repo_type,
            revision=spec.revision,
            format=spec.format,
            private=spec.private,
            message=spec.message or f"batuta apply: {action.address}",
            delete=spec.prune,
            sdk=spec.sdk,
            card=dict(spec.card),
            allow_unsafe=spec.allow_unsafe,
            parent_commit=action.params.get("parent_commit"),
            files=selection,
        )
        push_plan = publish_mod.prepare_push(settings, req)
        progress_for = ctx.extra.get("progress_for")
        result = publish_mod.push(settings, req, plan=push_plan, sink=progress_for(action) if progress_for else None,
                                  abort=ctx.abort)
        if tree is None:
            tree = str(action.params.get("source_tree") or "") or tree_digest(output_digests(path))
        entry = PublishLock(
            address=action.address,
            repo=spec.repo,
            repo_type=spec.repo_type.value,
            revision=spec.revision,
            commit=str(result.commit),
            source_tree=tree,
        )
        return StepResult(
            lock_entry=entry, bytes=int(getattr(result, "bytes_sent", 0) or 0), message=result.commit_url(settings, req) or ""
        )

    return push_step


def make_delete_step(manifest: Manifest, state: WorkspaceState, settings: Settings | None = None) -> StepFn:
    allow_outside = bool(settings and settings.allow_outside_workspace)

    def delete_step(action: Action, ctx: StepContext) -> StepResult:
        """Remove only the files batuta materialized (as hf.lock lists them), then emptied directories."""
        entry = ctx.lock.get(action.address)
        base: Path | None = None
        files: tuple[FileDigest, ...] = ()
        where = f"hf.lock {action.address}.output"
        if isinstance(entry, RepoLock) and entry.output:
            base, files = workspace_path(manifest, entry.output, allow_outside=allow_outside, what=where), entry.files
        elif isinstance(entry, ConversionLock):
            base, files = workspace_path(manifest, entry.output, allow_outside=allow_outside, what=where), entry.outputs
        removed = 0
        if base is not None:
            for f in files:
                p = confine(base, f.path, follow_last=False, what="materialized file")
                if p.is_symlink() or p.is_file():
                    p.unlink()
                    removed += 1
            if base.is_dir():
                for dirpath, _dirs, _files in sorted(os.walk(base), key=lambda t: -len(t[0])):
                    try:
                        os.rmdir(dirpath)
                    except OSError:
                        pass
        state.set_applied(action.address, None)
        return StepResult(drop=True, message=f"removed {removed} files")

    return delete_step


def _move_output(manifest: Manifest, address: str) -> None:
    """hf.yaml ``moved:`` renamed a conversion whose default output directory is named after its
    address: rename the directory (both paths from hf.yaml, inside the workspace), keeping the files."""
    outputs = manifest.moved_output(address)
    if outputs is None:
        return
    old, new = (workspace_path(manifest, p, allow_outside=False, what="conversion output") for p in outputs)
    if old.is_dir() and not old.is_symlink() and not new.exists():
        new.parent.mkdir(parents=True, exist_ok=True)
        os.replace(old, new)


def make_relock_step(state: WorkspaceState, manifest: Manifest | None = None) -> StepFn:
    def relock(action: Action, ctx: StepContext) -> StepResult:
        """Record the planned entry (once it agrees with hf.yaml); the files are already in place."""
        res = relock_step(action, ctx)
        if action.lock_entry is None:
            return res
        entry = entry_from_dict(action.address, action.lock_entry)
        if manifest is not None:
            _agrees(manifest, entry)
            _move_output(manifest, action.address)
        if isinstance(entry, RepoLock):
            state.set_applied(action.address, entry.commit)
        moved_from = action.params.get("moved_from")
        if isinstance(moved_from, str):  # hf.yaml `moved:`: the old address's record goes with it
            state.set_applied(moved_from, None)
        return StepResult(lock_entry=entry)

    return relock


def default_steps(settings: Settings, manifest: Manifest, state: WorkspaceState) -> dict[ActionKind, StepFn]:
    return {
        ActionKind.PULL: make_pull_step(settings, manifest, state),
        ActionKind.CONVERT: make_convert_step(settings, manifest, state),
        ActionKind.PUSH: make_push_step(settings, manifest, state),
        ActionKind.RELOCK: make_relock_step(state, manifest),
        ActionKind.DELETE_LOCAL: make_delete_step(manifest, state, settings),
    }
