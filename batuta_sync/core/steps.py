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
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from batuta_sync.core.actions import Action, ActionKind
from batuta_sync.core.executor import StepContext, StepFn, StepResult, relock_step
from batuta_sync.core.lockfile import (
    ConversionLock,
    FileDigest,
    PublishLock,
    RepoLock,
    entry_from_dict,
    tree_digest,
)
from batuta_sync.core.manifest import ConversionSpec, Manifest, PublishSpec, RepoSpec
from batuta_sync.core.observe import WorkspaceState, hash_file, walk_files
from batuta_sync.core.planner.diff import conversion_key, snapshot_dir
from batuta_sync.errors import ConfigError, PlanError
from batuta_sync.settings import Settings
from batuta_sync.types import HfAssetType, RepoFile, RepoRef, RepoSnapshot

Spec = TypeVar("Spec", RepoSpec, ConversionSpec, PublishSpec)


def _purge(settings: Settings, entry: RepoLock, paths: list[str]) -> None:
    """Remove corrupt cached files (the snapshot link and the blob it points to) so pull re-fetches them."""
    base = Path(snapshot_dir(str(settings.hub_cache), entry.repo_type, entry.repo, entry.commit))
    for rel in paths:
        link = inside(base, rel)
        try:
            target = link.resolve()
            if target != link and target.is_file():
                target.unlink()
            link.unlink()
        except OSError:
            pass


# Paths that apply writes or deletes are derived from hf.yaml (whose digest the plan was
# checked against) and hf.lock, never taken from plan.json: a crafted plan cannot point
# a delete or a download outside the workspace outputs.


def inside(base: Path, rel: str) -> Path:
    """``base / rel``, refusing anything that would land outside ``base``."""
    path = Path(os.path.normpath(base / rel))
    if path != base and not str(path).startswith(str(base).rstrip(os.sep) + os.sep):
        raise PlanError(f"Refusing the path {rel!r}: it points outside {base}.")
    return path


def _abs(root: Path, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else Path(os.path.normpath(root / p))


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
            return _abs(manifest.root, spec.output)
        entry = ctx.lock.get(address)
        if not isinstance(entry, RepoLock):
            raise PlanError(f"{address} is not in hf.lock; apply its pull first.")
        return Path(snapshot_dir(str(settings.hub_cache), entry.repo_type, entry.repo, entry.commit))
    if isinstance(spec, ConversionSpec):
        return _abs(manifest.root, spec.output_path)
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


def make_pull_step(settings: Settings, manifest: Manifest, state: WorkspaceState) -> StepFn:
    def pull_step(action: Action, ctx: StepContext) -> StepResult:
        from batuta_sync import pull as pull_mod

        spec = _spec(manifest, action.address, RepoSpec)
        entry = entry_from_dict(action.address, action.lock_entry)
        if not isinstance(entry, RepoLock) or (entry.repo, entry.repo_type) != (spec.repo, spec.repo_type.value):
            raise PlanError(f"The plan's resolution of {action.address} does not match hf.yaml.")
        p = action.params
        output = _abs(manifest.root, spec.output) if spec.output else None
        if p.get("purge"):
            _purge(settings, entry, list(p["purge"]))
        if output is not None:
            for rel in p.get("purge_output") or []:
                inside(output, rel).unlink(missing_ok=True)
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
    tmp = dst / f".{PROVENANCE_FILE}.tmp"
    tmp.write_text(json.dumps(prov, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(dst / PROVENANCE_FILE)


def make_convert_step(settings: Settings, manifest: Manifest, state: WorkspaceState) -> StepFn:
    def convert_step(action: Action, ctx: StepContext) -> StepResult:
        from batuta_sync import convert as convert_mod

        spec = _spec(manifest, action.address, ConversionSpec)
        dst = _abs(manifest.root, spec.output_path)
        old = ctx.lock.get(action.address)
        if isinstance(old, ConversionLock):  # drop what the previous run wrote (only that)
            old_dir = _abs(manifest.root, old.output)
            for f in old.outputs:
                inside(old_dir, f.path).unlink(missing_ok=True)
        dst.mkdir(parents=True, exist_ok=True)
        result = convert_mod.convert(
            source_dir(manifest, settings, ctx, spec.source),
            dst,
            to=spec.to,
            quantization=spec.quantization,
            jobs=ctx.jobs,
            allow_unsafe=manifest.allow_unsafe,
        )
        input_tree = _tree_of(ctx, spec.source) or "unknown"
        params = spec.params()
        converter = str(convert_mod.CONVERTER_VERSION)
        write_provenance(dst, ctx.lock.get(spec.source), source_dir(manifest, settings, ctx, spec.source),
                         converter=converter, quantization=spec.quantization, to=spec.to)
        entry = ConversionLock(
            address=action.address,
            source=spec.source,
            key=conversion_key(input_tree, converter, params),
            converter=converter,
            input_tree=input_tree,
            params=tuple(sorted(params.items())),
            output=spec.output_path,
            # Only what the converter wrote (and its provenance): other files in the output
            # directory are the user's, and removing the conversion must not delete them.
            outputs=output_digests(dst, produced=[*result.files, dst / PROVENANCE_FILE]),
        )
        for f in entry.outputs:
            state.remember(dst / f.path, f.sha256, f.gitsha1)
        return StepResult(lock_entry=entry)

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
            path = _abs(manifest.root, spec.source)
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
        result = publish_mod.push(settings, req, plan=push_plan)
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


def make_delete_step(manifest: Manifest, state: WorkspaceState) -> StepFn:
    def delete_step(action: Action, ctx: StepContext) -> StepResult:
        """Remove only the files batuta materialized (as hf.lock lists them), then emptied directories."""
        entry = ctx.lock.get(action.address)
        base: Path | None = None
        files: tuple[FileDigest, ...] = ()
        if isinstance(entry, RepoLock) and entry.output:
            base, files = _abs(manifest.root, entry.output), entry.files
        elif isinstance(entry, ConversionLock):
            base, files = _abs(manifest.root, entry.output), entry.outputs
        removed = 0
        if base is not None:
            for f in files:
                p = inside(base, f.path)
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


def make_relock_step(state: WorkspaceState) -> StepFn:
    def relock(action: Action, ctx: StepContext) -> StepResult:
        """Record the planned entry; the files are already in place (remember their commit)."""
        res = relock_step(action, ctx)
        entry = action.lock_entry
        if entry is not None and entry.get("kind") == "repo":
            state.set_applied(action.address, str(entry["commit"]))
        return res

    return relock


def default_steps(settings: Settings, manifest: Manifest, state: WorkspaceState) -> dict[ActionKind, StepFn]:
    return {
        ActionKind.PULL: make_pull_step(settings, manifest, state),
        ActionKind.CONVERT: make_convert_step(settings, manifest, state),
        ActionKind.PUSH: make_push_step(settings, manifest, state),
        ActionKind.RELOCK: make_relock_step(state),
        ActionKind.DELETE_LOCAL: make_delete_step(manifest, state),
    }
