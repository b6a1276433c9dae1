"""The real step functions apply runs, one per action kind (the I/O edge of apply).

Each step does one thing through the engine that owns it and returns the lock
entry to record: pull (``batuta_sync.pull``), convert (``batuta_sync.convert``),
push (``batuta_sync.publish``), delete-local (here).  Heavy modules are imported
inside the steps.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
from batuta_sync.core.manifest import Manifest
from batuta_sync.core.observe import WorkspaceState, hash_file, walk_files
from batuta_sync.core.planner.diff import conversion_key, snapshot_dir
from batuta_sync.settings import Settings
from batuta_sync.types import HfAssetType, RepoFile, RepoRef, RepoSnapshot


def _purge(settings: Settings, entry: RepoLock, paths: list[str]) -> None:
    """Remove corrupt cached files (the snapshot link and the blob it points to) so pull re-fetches them."""
    base = Path(snapshot_dir(str(settings.hub_cache), entry.repo_type, entry.repo, entry.commit))
    for rel in paths:
        link = base / rel
        try:
            target = link.resolve()
            if target != link and target.is_file():
                target.unlink()
            link.unlink()
        except OSError:
            pass


def make_pull_step(settings: Settings, manifest: Manifest, state: WorkspaceState) -> StepFn:
    def pull_step(action: Action, ctx: StepContext) -> StepResult:
        from batuta_sync import pull as pull_mod

        p = action.params
        entry = entry_from_dict(action.address, action.lock_entry)
        assert isinstance(entry, RepoLock)
        if p.get("purge"):
            _purge(settings, entry, list(p["purge"]))
        if p.get("output"):
            for rel in p.get("purge_output") or []:
                (Path(p["output"]) / rel).unlink(missing_ok=True)
        ref = RepoRef(entry.repo, HfAssetType(entry.repo_type), entry.revision)
        snapshot = RepoSnapshot(
            ref, entry.commit, tuple(RepoFile(f.path, f.size, f.gitsha1 or "", f.sha256) for f in entry.files)
        )
        req = pull_mod.PullRequest(
            ref=ref,
            files=tuple(f.path for f in entry.files),
            output=Path(p["output"]) if p.get("output") else None,
            copy=bool(p.get("copy")),
            allow_unsafe=bool(p.get("allow_unsafe")),
        )
        progress_for = ctx.extra.get("progress_for")
        progress = progress_for(action) if progress_for else None
        result = pull_mod.pull(settings, req, jobs=max(4, ctx.jobs), snapshot=snapshot, progress=progress)
        if result.blocked:
            from batuta_sync.safety import unsafe_files_error

            raise unsafe_files_error(result.blocked)
        state.set_applied(action.address, entry.commit)
        return StepResult(
            lock_entry=entry,
            applied_commit=entry.commit,
            bytes=int(getattr(result, "downloaded_bytes", 0) or 0),
        )

    return pull_step


def output_digests(path: Path) -> tuple[FileDigest, ...]:
    """sha256 + git sha1 of every file under ``path`` (or of ``path`` itself)."""
    if not path.exists():
        return ()
    base = path.parent if path.is_file() else path
    out = []
    for rel in walk_files(path):
        sha256, sha1 = hash_file(base / rel)
        out.append(FileDigest(rel, (base / rel).stat().st_size, sha1, sha256))
    return tuple(out)


def _input_tree(ctx: StepContext, source: str) -> str:
    entry = ctx.lock.get(source)
    if isinstance(entry, RepoLock):
        return entry.tree
    if isinstance(entry, ConversionLock):
        return tree_digest(entry.outputs)
    return "unknown"


def make_convert_step(settings: Settings, manifest: Manifest, state: WorkspaceState) -> StepFn:
    def convert_step(action: Action, ctx: StepContext) -> StepResult:
        from batuta_sync import convert as convert_mod

        p = action.params
        dst = Path(p["dst"])
        old = ctx.lock.get(action.address)
        if isinstance(old, ConversionLock):  # drop what the previous run wrote (only that)
            old_dir = manifest.root / old.output
            for f in old.outputs:
                (old_dir / f.path).unlink(missing_ok=True)
        dst.mkdir(parents=True, exist_ok=True)
        convert_mod.convert(
            Path(p["src"]),
            dst,
            to=p["to"],
            quantization=p.get("quantization"),
            jobs=ctx.jobs,
            allow_unsafe=manifest.allow_unsafe,
        )
        input_tree = p.get("input_tree") or _input_tree(ctx, p["from"])
        params: dict[str, Any] = dict(p.get("params") or {})
        converter = str(p.get("converter") or getattr(convert_mod, "CONVERTER_VERSION", ""))
        entry = ConversionLock(
            address=action.address,
            source=p["from"],
            key=p.get("key") or conversion_key(input_tree, converter, params),
            converter=converter,
            input_tree=input_tree,
            params=tuple(sorted(params.items())),
            output=p["output"],
            outputs=output_digests(dst),
        )
        return StepResult(lock_entry=entry)

    return convert_step


def _source_tree(ctx: StepContext, p: Mapping[str, Any]) -> str:
    if p.get("source_tree"):
        return str(p["source_tree"])
    src = str(p.get("from", ""))
    entry = ctx.lock.get(src)
    if isinstance(entry, RepoLock):
        return entry.tree
    if isinstance(entry, ConversionLock):
        return tree_digest(entry.outputs)
    return tree_digest(output_digests(Path(p["path"])))


def make_push_step(settings: Settings, manifest: Manifest, state: WorkspaceState) -> StepFn:
    def push_step(action: Action, ctx: StepContext) -> StepResult:
        from batuta_sync import publish as publish_mod

        p = action.params
        req = publish_mod.PushRequest(
            path=Path(p["path"]),
            repo_id=p["repo"],
            repo_type=HfAssetType(p["type"]),
            revision=p["revision"],
            format=p.get("format"),
            private=bool(p.get("private")),
            message=p.get("message") or f"batuta apply: {action.address}",
            delete=bool(p.get("prune")),
            sdk=p.get("sdk"),
            card=dict(p.get("card") or {}),
            allow_unsafe=bool(p.get("allow_unsafe")) or manifest.allow_unsafe,
            parent_commit=p.get("parent_commit"),
        )
        push_plan = publish_mod.prepare_push(settings, req)
        result = publish_mod.push(settings, req, plan=push_plan)
        entry = PublishLock(
            address=action.address,
            repo=p["repo"],
            repo_type=p["type"],
            revision=p["revision"],
            commit=str(result.commit),
            source_tree=_source_tree(ctx, p),
        )
        return StepResult(lock_entry=entry, bytes=int(getattr(result, "bytes_sent", 0) or 0))

    return push_step


def make_delete_step(state: WorkspaceState) -> StepFn:
    def delete_step(action: Action, ctx: StepContext) -> StepResult:
        """Remove only the files batuta materialized (listed in the lock), then empty directories."""
        removed = 0
        for path in action.params.get("paths", []):
            p = Path(path)
            try:
                if p.is_symlink() or p.is_file():
                    p.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        for d in action.params.get("dirs", []):
            root = Path(d)
            if not root.is_dir():
                continue
            for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda t: -len(t[0])):
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
        ActionKind.DELETE_LOCAL: make_delete_step(state),
    }
