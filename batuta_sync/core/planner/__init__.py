"""The pure planner: ``build_plan(manifest, lock, world, options, select)`` → :class:`Plan`.

Orchestrates :mod:`.diff` (per-resource reasons), target/exclude selection, the
``--locked`` / ``--frozen`` / ``--refresh-only`` modes, and packs the result into
a frozen Plan.  The I/O wrapper that observes the world first is
:func:`batuta_sync.core.api.make_plan`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import PurePosixPath

from batuta_sync.core.lockfile import Lock, lock_digest
from batuta_sync.core.manifest import Manifest
from batuta_sync.core.planner.diff import (
    DiffResult,
    PlanOptions,
    Selector,
    apply_moves,
    diff,
    lock_disagreements,
    select_actions,
    unchecked,
    unchecked_error,
)
from batuta_sync.core.planner.plan import Plan, Precondition
from batuta_sync.core.state import World
from batuta_sync.errors import LockOutOfDateError, OfflineError, PlanError

__all__ = ["Plan", "PlanOptions", "Precondition", "apply_moves", "build_plan"]


def _raise_problems(result: DiffResult, opts: PlanOptions) -> None:
    if not result.problems:
        return
    listing = "\n".join(f"  - {p}" for p in result.problems)
    if any("--frozen" in p for p in result.problems):
        raise LockOutOfDateError(f"hf.lock does not cover the manifest:\n{listing}")
    if opts.offline:
        raise OfflineError(
            f"Cannot plan offline:\n{listing}",
            hint="Run `batuta lock` once online (or drop --offline); a locked resource plans offline from hf.lock alone.",
        )
    err = PlanError(f"Cannot plan:\n{listing}", hint="Fix the listed resources in hf.yaml or check the Hub, then plan again.")
    causes = set(result.problem_exits)
    if len(causes) == 1 and len(result.problem_exits) == len(result.problems):
        err.exit_name = causes.pop()  # every problem has the same cause: keep its exit code (e.g. 8, 9)
    raise err


def _endpoint_moved(locked: str, now: str) -> bool:
    from batuta_sync.settings import endpoint_key

    return bool(locked and now) and endpoint_key(locked) != endpoint_key(now)


def build_plan(
    manifest: Manifest,
    lock: Lock | None,
    world: World,
    opts: PlanOptions,
    select: Selector,
    *,
    plan_id: str,
    tool_version: str = "",
    endpoint: str = "",
    endpoint_in_manifest: bool = False,
) -> Plan:
    """Pure: the plan for ``manifest`` against ``lock`` and the observed ``world``."""
    current = lock or Lock()
    if opts.locked:  # uv/cargo: hf.lock must cover hf.yaml; checked first, without the Hub
        moved_lock = apply_moves(manifest, current)[0]  # a pending `moved:` block is a rename, not a disagreement
        why = lock_disagreements(manifest, moved_lock)
        if endpoint_in_manifest and _endpoint_moved(current.endpoint, endpoint):
            # hf.yaml names another Hub than the one hf.lock was resolved on: they disagree.  An
            # endpoint chosen outside the repository (flag, HF_ENDPOINT: a mirror) is no disagreement;
            # the plan still shows it as a change.
            why.insert(0, f"endpoint: hf.lock was resolved on {current.endpoint}, this plan talks to {endpoint}")
        if why:
            listing = "\n".join(f"  - {w}" for w in why)
            raise LockOutOfDateError(
                f"--locked: hf.lock does not match hf.yaml:\n{listing}",
                hint="Run `batuta lock` to resolve hf.yaml into hf.lock, then commit hf.lock.",
            )
    result = diff(manifest, current, world, opts, select)
    _raise_problems(result, opts)
    if opts.gate:
        err = unchecked_error(world)
        if err is not None:
            raise err
    actions = [] if opts.refresh_only else select_actions(result.actions, opts.targets, opts.excludes)
    kept = {a.id for a in actions}
    actions = [replace(a, deps=tuple(d for d in a.deps if d in kept)) for a in actions]
    addresses = {a.address for a in actions}
    drift = tuple(d for d in result.drift if not opts.targets or d.address in addresses or d.address in opts.targets)
    return Plan(
        plan_id=plan_id,
        # the file's name only: apply reads hf.yaml from its own checkout (portable, no local path)
        manifest_path=PurePosixPath(manifest.path.replace("\\", "/")).name,
        manifest_digest=manifest.digest,
        lock_digest=lock_digest(lock),
        lock_serial=current.serial,
        lock_lineage=current.lineage,
        tool_version=tool_version,
        converter_version=opts.converter_version,
        endpoint=endpoint,
        locked_endpoint=current.endpoint,
        actions=tuple(actions),
        unchanged=tuple(sorted(result.unchanged)),
        drift=drift,
        preconditions=tuple(p for p in result.preconditions if p.address in addresses),
        options=opts.to_dict(),
        free_bytes=world.free_bytes,
        warnings=tuple(f"{address}: {why}" for address, why, _exit in unchecked(world)),
    )
