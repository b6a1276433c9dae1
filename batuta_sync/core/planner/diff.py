"""The pure diff: desired (hf.yaml) × locked (hf.lock) × observed (World) → actions with reasons.

No I/O, no clock, no randomness: everything arrives as frozen values, so each
reason is a unit test.  Per resource::

    repo        lock missing/stale/revision changed ─▶ resolve from the Hub snapshot
                  └ files all present locally?  relock : pull
                locked: cache missing → pull (not_in_cache | revision_moved),
                        size/hash differs → pull (digest_mismatch), output → pull (output_missing)
                        upstream branch moved → drift only (the lock changes through `lock --update`)
    conversion  key = sha256(input tree, converter version, params) ≠ locked key → convert (why)
                outputs missing/different → convert (output_missing | digest_mismatch)
    publish     source tree ≠ last pushed tree → push (source_changed); remote head ≠ pushed → push
                (remote_changed) + drift; never pushed → push (not_published)
    lock only   entry whose resource left the manifest → delete-local | relock (removed_from_manifest)
    moved       hf.yaml ``moved: [{from, to}]`` → the lock entry is read under its new address first;
                nothing else changed → relock (moved: only hf.lock's address is rewritten); other
                changes → their action, carrying ``moved_from`` (apply drops the old address)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any

from batuta_sync._fmt import plural
from batuta_sync.core.actions import Action, ActionKind, Drift, DriftKind, Reason
from batuta_sync.core.lockfile import (
    ConversionLock,
    FileDigest,
    Lock,
    LockEntry,
    PublishLock,
    RepoLock,
    tree_digest,
)
from batuta_sync.core.manifest import ConversionSpec, Manifest, PublishSpec, RepoSpec, digest_of
from batuta_sync.core.planner.plan import Precondition
from batuta_sync.core.state import LocalDirState, LocalFile, LocalRepoState, World
from batuta_sync.errors import BatutaError, HubError
from batuta_sync.types import SHA1_RE, RepoFile, RepoSnapshot, repo_folder_name

Selector = Callable[[RepoSnapshot, RepoSpec], Sequence[RepoFile]]


@dataclass(frozen=True)
class PlanOptions:
    """Knobs of one plan (all plain values; the caller supplies ids and paths)."""

    refresh_only: bool = False
    targets: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()
    verify: bool = False
    frozen: bool = False
    locked: bool = False
    offline: bool = False
    cache_dir: str = ""
    root: str = "."
    converter_version: str = ""
    materialize: str = "symlink"
    jobs: int = 8
    # The caller gates on the result (``plan --detailed-exitcode``, ``status --exit-code``): a
    # resource the Hub could not be asked about fails the plan with its cause's exit code.
    gate: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "refresh_only": self.refresh_only,
            "targets": list(self.targets),
            "excludes": list(self.excludes),
            "replace": list(self.replace),
            "verify": self.verify,
            "frozen": self.frozen,
            "locked": self.locked,
            "offline": self.offline,
            "materialize": self.materialize,
        }


@dataclass
class DiffResult:
    actions: list[Action] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)
    preconditions: list[Precondition] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # exit-code names of the Hub errors behind problems (so "cannot plan" keeps e.g. not-found = 8)
    problem_exits: list[str] = field(default_factory=list)
    # address -> planned lock entry (None when only known after apply)
    planned: dict[str, LockEntry | None] = field(default_factory=dict)
    # address -> id of the action that (re)creates its files, if any
    producers: dict[str, str] = field(default_factory=dict)
    # address -> id of the relock action that writes its hf.lock entry (no files change); a
    # conversion or publish of it must run after it, since its step reads that entry
    relocks: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


def snapshot_dir(cache_dir: str, repo_type: str, repo_id: str, commit: str) -> str:
    """``<cache>/<models|datasets|spaces>--org--name/snapshots/<commit>`` (huggingface_hub layout)."""
    return str(PurePosixPath(cache_dir) / repo_folder_name(repo_type, repo_id) / "snapshots" / commit)


def to_digest(f: RepoFile) -> FileDigest:
    return FileDigest(f.path, f.size, f.blob_id or None, f.sha256)


def check_files(
    expected: Sequence[FileDigest], present: Mapping[str, LocalFile] | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(missing, mismatched) paths of ``expected`` against what is on disk.

    Size always; content digests only where the observation computed them (``--verify``).
    """
    present = present or {}
    missing: list[str] = []
    bad: list[str] = []
    for f in expected:
        got = present.get(f.path)
        if got is None:
            missing.append(f.path)
        elif got.size != f.size or (f.sha256 and got.sha256 and got.sha256 != f.sha256) or (not f.sha256 and f.gitsha1 and got.gitsha1 and got.gitsha1 != f.gitsha1):
            bad.append(f.path)
    return tuple(missing), tuple(bad)


def _matches(address: str, selectors: Sequence[str]) -> bool:
    return any(address == s or address.startswith(s + ".") or address.split(".", 1)[0] == s for s in selectors)


def _join(root: str, path: str) -> str:
    p = PurePosixPath(path)
    return str(p if p.is_absolute() else PurePosixPath(root) / p)


def _proj(path: str) -> str:
    """A project path as plan.json records it: relative to hf.yaml's folder (as written in
    hf.yaml), so a plan made in one checkout applies in another and leaks no local path."""
    return str(PurePosixPath(path or "."))


def _sum_sizes(files: Sequence[FileDigest], paths: Sequence[str], cached: frozenset[str] = frozenset()) -> int:
    """Bytes to fetch for ``paths`` (a file whose blob is already cached costs nothing)."""
    wanted = set(paths)
    return sum(f.size for f in files if f.path in wanted and (f.sha256 or f.gitsha1) not in cached)


# --------------------------------------------------------------------------- repos


def resolve_reason(spec: RepoSpec, locked: RepoLock | None) -> Reason | None:
    if locked is None:
        return Reason.NOT_LOCKED
    if locked.repo != spec.repo or locked.repo_type != spec.repo_type.value:
        return Reason.LOCK_STALE
    if locked.revision != spec.revision:
        return Reason.REVISION_CHANGED
    if locked.selection != spec.selection_digest():
        return Reason.LOCK_STALE
    return None


def diff_repo(
    spec: RepoSpec, lock: Lock, world: World, opts: PlanOptions, select: Selector, out: DiffResult
) -> None:
    """Plan one ``models|datasets|spaces`` entry (see the module docstring)."""
    entry = lock.get(spec.address)
    locked = entry if isinstance(entry, RepoLock) else None
    remote = world.remote.get(spec.address)
    local = world.local.get(spec.address)
    local = local if isinstance(local, LocalRepoState) else LocalRepoState(spec.address)
    replace_req = _matches(spec.address, opts.replace)
    why = None if opts.frozen else resolve_reason(spec, locked)

    if why is not None:
        if remote is None or remote.snapshot is None:
            hint = remote.error if remote and remote.error else "the Hub was not consulted (offline)"
            out.problems.append(f"{spec.address}: must be resolved ({why.value}) but {hint}")
            if remote and remote.error_exit:
                out.problem_exits.append(remote.error_exit)
            return
        try:
            files = tuple(to_digest(f) for f in select(remote.snapshot, spec))
        except Exception as exc:  # a BatutaError from the selector: report with the address
            out.problems.append(f"{spec.address}: {getattr(exc, 'message', exc)}")
            return
        new = RepoLock(
            address=spec.address,
            repo=spec.repo,
            repo_type=spec.repo_type.value,
            revision=spec.revision,
            commit=remote.snapshot.commit,
            selection=spec.selection_digest(),
            files=files,
            output=spec.output,
        )
        out.preconditions.append(
            Precondition(spec.address, spec.repo, spec.repo_type.value, spec.revision, remote.snapshot.commit)
        )
    elif locked is None:
        out.problems.append(f"{spec.address}: --frozen but hf.lock has no entry for it")
        return
    else:
        new = replace(locked, output=spec.output)
        if remote is not None and remote.commit and remote.commit != locked.commit and not SHA1_RE.match(spec.revision):
            out.drift.append(
                Drift(
                    spec.address,
                    DriftKind.UPSTREAM_MOVED,
                    f"{spec.repo}@{spec.revision} moved {locked.commit[:7]} → {remote.commit[:7]}; "
                    f"run `batuta lock --update {spec.address}` to take it",
                    locked.commit,
                    remote.commit,
                )
            )
    out.planned[spec.address] = new

    cached = local.snapshots.get(new.commit, {})
    missing, bad = check_files(new.files, cached)
    out_missing: tuple[str, ...] = ()
    out_bad: tuple[str, ...] = ()
    if spec.output:
        out_missing, out_bad = check_files(new.files, local.output)
    same_commit = local.applied_commit in (None, new.commit)
    for path in bad + (out_bad if same_commit else ()):
        out.drift.append(Drift(spec.address, DriftKind.LOCAL_MODIFIED, f"{path} differs from hf.lock"))
    if why is None and local.applied_commit == new.commit:
        for path in missing:
            out.drift.append(Drift(spec.address, DriftKind.LOCAL_MISSING, f"{path} is no longer in the cache"))

    download = _sum_sizes(new.files, missing, local.blobs) + _sum_sizes(new.files, bad)
    reason: Reason | None
    kind = ActionKind.PULL
    if why is not None:
        reason = why
        if not (missing or bad or out_missing or out_bad):
            kind = ActionKind.RELOCK
    elif replace_req:
        reason = Reason.REPLACE_REQUESTED
        download = sum(f.size for f in new.files)
    elif bad:
        reason = Reason.DIGEST_MISMATCH
    elif missing or (out_bad and not same_commit):
        reason = Reason.NOT_IN_CACHE if same_commit else Reason.REVISION_MOVED
    elif out_bad:
        reason = Reason.DIGEST_MISMATCH
    elif out_missing:
        reason = Reason.OUTPUT_MISSING
    elif new != locked:
        reason, kind = Reason.LOCK_STALE, ActionKind.RELOCK
    else:
        reason = None

    if reason is None:
        out.unchanged.append(spec.address)
        return
    purge: list[str] = list(bad)
    purge_output: list[str] = list(out_bad)
    if reason is Reason.REPLACE_REQUESTED:
        purge = [f.path for f in new.files]
        purge_output = list(purge) if spec.output else []
    disk = download + (sum(f.size for f in new.files) if spec.output and opts.materialize == "copy" and kind is ActionKind.PULL else 0)
    detail = f"{spec.repo}@{new.commit[:7]}"
    if kind is ActionKind.PULL:
        detail += f", {plural(len(new.files), 'file')}" + (f", {len(missing) + len(bad)} to download" if missing or bad else "")
    params = {
        "repo": spec.repo,
        "type": spec.repo_type.value,
        "revision": spec.revision,
        "commit": new.commit,
        "include": list(spec.include),
        "exclude": list(spec.exclude),
        "format": spec.format,
        "quantization": spec.quantization,
        "split": spec.split,
        "output": _proj(spec.output) if spec.output else None,
        "copy": opts.materialize == "copy",
        "allow_unsafe": spec.allow_unsafe,
        # Removed before pulling, so they are fetched (and verified) again.
        "purge": purge,
        "purge_output": purge_output,
    }
    action = Action(
        kind=kind,
        address=spec.address,
        reason=reason,
        detail=detail,
        params=params,
        lock_entry=new.to_dict(),
        download_bytes=download if kind is ActionKind.PULL else 0,
        disk_bytes=disk if kind is ActionKind.PULL else 0,
    )
    out.actions.append(action)
    if kind is ActionKind.PULL:
        out.producers[spec.address] = action.id
    else:
        out.relocks[spec.address] = action.id


def _deps(*ids: str | None) -> tuple[str, ...]:
    return tuple(i for i in ids if i)


def repo_source_dir(new: RepoLock, spec: RepoSpec, opts: PlanOptions) -> str:
    """Where a repo's files are on disk after apply: its output dir, else the cache snapshot."""
    if spec.output:
        return _proj(spec.output)
    return snapshot_dir(opts.cache_dir, spec.repo_type.value, spec.repo, new.commit)


# --------------------------------------------------------------------------- conversions


def _input_tree(address: str, out: DiffResult) -> str | None:
    entry = out.planned.get(address)
    if isinstance(entry, RepoLock):
        return entry.tree
    if isinstance(entry, ConversionLock) and address not in out.producers:
        return tree_digest(entry.outputs)
    return None  # produced during this apply: known only afterwards


def conversion_key(input_tree: str, converter: str, params: Mapping[str, Any]) -> str:
    """The memo key: same inputs + converter + parameters ⇒ same outputs."""
    return digest_of({"input": input_tree, "converter": converter, "params": dict(params)})


def _source_dir(address: str, manifest: Manifest, out: DiffResult, opts: PlanOptions) -> str:
    spec = manifest.get(address)
    entry = out.planned.get(address)
    if isinstance(spec, RepoSpec) and isinstance(entry, RepoLock):
        return repo_source_dir(entry, spec, opts)
    if isinstance(spec, ConversionSpec):
        return _proj(spec.output_path)
    return ""


HUB_MAX_FILE_BYTES = 50 * 1000**3
"""The Hub's per-file limit: a published GGUF larger than this is written as a split set."""
HUB_SPLIT_BYTES = 48 * 1000**3
"""Tensor bytes per shard of that split set (below the limit: the header and padding fit)."""
_BITS = {"F32": 32.0, "F16": 16.0, "BF16": 16.0, "Q8_0": 8.5, "Q6_K": 6.56, "Q5_K_M": 5.69, "Q5_K_S": 5.54,
         "Q5_1": 6.0, "Q5_0": 5.5, "Q4_K_M": 4.89, "Q4_K_S": 4.58, "Q4_1": 5.0, "Q4_0": 4.5, "IQ4_NL": 4.5,
         "IQ4_XS": 4.25, "Q3_K_L": 4.27, "Q3_K_M": 3.91, "Q3_K_S": 3.5, "Q2_K": 2.96}


def splits_for_hub(spec: ConversionSpec, manifest: Manifest) -> bool:
    """A GGUF conversion that is published and sets no split option itself: it is written split
    when its output would pass the Hub's per-file limit (``HUB_SPLIT_BYTES`` per shard)."""
    opts = dict(spec.gguf_options)
    return (spec.to == "gguf" and "split_max_size" not in opts and "split_max_tensors" not in opts
            and any(p.source == spec.address for p in manifest.publishes))


def gguf_size_estimate(source: RepoLock | None, quantization: str | None) -> int:
    """Bytes of a GGUF made from ``source``'s safetensors (16-bit weights assumed) at ``quantization``."""
    if source is None:
        return 0
    weights = sum(f.size for f in source.files if f.path.endswith(".safetensors"))
    return int(weights * _BITS.get((quantization or "F16").upper(), 16.0) / 16.0)


def _hub_split_note(spec: ConversionSpec, manifest: Manifest, out: DiffResult) -> str:
    if not splits_for_hub(spec, manifest):
        return ""
    source = out.planned.get(spec.source)
    estimate = gguf_size_estimate(source if isinstance(source, RepoLock) else None, spec.quantization)
    if estimate <= HUB_MAX_FILE_BYTES:
        return ""
    shards = -(-estimate // HUB_SPLIT_BYTES)
    return (f"; ~{estimate / 1e9:.0f} GB: written as {shards} split files (the Hub's "
            f"{HUB_MAX_FILE_BYTES // 1000**3} GB per-file limit)")


def diff_conversion(spec: ConversionSpec, manifest: Manifest, lock: Lock, world: World, opts: PlanOptions, out: DiffResult) -> None:
    entry = lock.get(spec.address)
    locked = entry if isinstance(entry, ConversionLock) else None
    local = world.local.get(spec.address)
    local = local if isinstance(local, LocalDirState) else None
    params = spec.params()
    if spec.source not in out.planned:
        out.problems.append(f"{spec.address}: its input {spec.source} could not be planned")
        return
    input_tree = _input_tree(spec.source, out)
    upstream = out.producers.get(spec.source)
    reason: Reason | None = None
    if _matches(spec.address, opts.replace):
        reason = Reason.REPLACE_REQUESTED
    elif locked is None:
        reason = Reason.NOT_LOCKED
    elif opts.frozen:
        reason = None
    elif input_tree is None or locked.input_tree != input_tree or locked.source != spec.source:
        reason = Reason.INPUT_CHANGED
    elif locked.converter != opts.converter_version:
        reason = Reason.CONVERTER_CHANGED
    elif dict(locked.params) != params:
        reason = Reason.PARAMS_CHANGED
    elif locked.output != spec.output_path:
        reason = Reason.OUTPUT_MISSING
    if reason is None and locked is not None:
        missing, bad = check_files(locked.outputs, local.files if local else None)
        if bad:
            reason = Reason.DIGEST_MISMATCH
            for p in bad:
                out.drift.append(Drift(spec.address, DriftKind.LOCAL_MODIFIED, f"{p} differs from hf.lock"))
        elif missing:
            reason = Reason.OUTPUT_MISSING
    if reason is None:
        out.planned[spec.address] = locked
        out.unchanged.append(spec.address)
        return
    out.planned[spec.address] = None
    key = conversion_key(input_tree, opts.converter_version, params) if input_tree else None
    detail = f"{spec.source} → {spec.to}" + (f" {spec.quantization}" if spec.quantization else "")
    detail += _hub_split_note(spec, manifest, out)
    action = Action(
        kind=ActionKind.CONVERT,
        address=spec.address,
        reason=reason,
        detail=detail,
        deps=_deps(upstream, out.relocks.get(spec.source)),
        params={
            "from": spec.source,
            "src": _source_dir(spec.source, manifest, out, opts),
            "dst": _proj(spec.output_path),
            "output": spec.output_path,
            "to": spec.to,
            "quantization": spec.quantization,
            "params": params,
            "converter": opts.converter_version,
            "input_tree": input_tree,
            "key": key,
        },
    )
    out.actions.append(action)
    out.producers[spec.address] = action.id


def settle_on_demand(manifest: Manifest, out: DiffResult) -> None:
    """A ``fetch: on-demand`` repo (cache-only, used only by conversions) missing from the cache
    needs no pull while every conversion of it is unchanged: its files are wanted only to convert.
    (An apply that converts pulls it -- unless the remote run-cache has the outputs, see steps.)"""
    for spec in manifest.repos:
        if not spec.on_demand or spec.output:
            continue
        users = [c for c in manifest.conversions if c.source == spec.address]
        action = next((a for a in out.actions if a.address == spec.address), None)
        if (action is None or action.kind is not ActionKind.PULL
                or action.reason not in (Reason.NOT_IN_CACHE, Reason.REVISION_MOVED)
                or not users or any(c.address not in out.unchanged for c in users)):
            continue
        out.actions.remove(action)
        out.producers.pop(spec.address, None)
        out.unchanged.append(spec.address)
        out.drift = [d for d in out.drift if not (d.address == spec.address and d.kind is DriftKind.LOCAL_MISSING)]


# --------------------------------------------------------------------------- publishes


def _publish_source(spec: PublishSpec, manifest: Manifest, world: World, opts: PlanOptions, out: DiffResult) -> tuple[str, str | None, int]:
    """(local dir, tree digest or None if produced by this apply, size)."""
    if spec.source_is_address:
        entry = out.planned.get(spec.source)
        src_dir = _source_dir(spec.source, manifest, out, opts)
        if isinstance(entry, RepoLock):
            return src_dir, entry.tree, sum(f.size for f in entry.files)
        if isinstance(entry, ConversionLock) and spec.source not in out.producers:
            return src_dir, tree_digest(entry.outputs), sum(f.size for f in entry.outputs)
        return src_dir, None, 0
    local = world.local.get(spec.address)
    path = _proj(spec.source)
    if not isinstance(local, LocalDirState) or not local.exists:
        out.problems.append(f"{spec.address}: the source directory {spec.source!r} does not exist")
        return path, None, 0
    files = [FileDigest(p, f.size, f.gitsha1, f.sha256) for p, f in local.files.items()]
    return path, tree_digest(files), sum(f.size for f in files)


def diff_publish(spec: PublishSpec, manifest: Manifest, lock: Lock, world: World, opts: PlanOptions, out: DiffResult) -> None:
    entry = lock.get(spec.address)
    locked = entry if isinstance(entry, PublishLock) else None
    remote = world.remote.get(spec.address)
    src_dir, tree, size = _publish_source(spec, manifest, world, opts, out)
    upstream = out.producers.get(spec.source) if spec.source_is_address else None
    head = remote.commit if remote else None
    reason: Reason | None = None
    if _matches(spec.address, opts.replace):
        reason = Reason.REPLACE_REQUESTED
    elif locked is None or (locked.repo, locked.repo_type, locked.revision) != (spec.repo, spec.repo_type.value, spec.revision):
        reason = Reason.NOT_PUBLISHED
    elif tree is None or tree != locked.source_tree:
        reason = Reason.SOURCE_CHANGED
    elif remote is not None and remote.error is None and head != locked.commit:
        reason = Reason.REMOTE_CHANGED
    if locked is not None and remote is not None and remote.error is None and head != locked.commit:
        out.drift.append(
            Drift(
                spec.address,
                DriftKind.PUBLISHED_DRIFT,
                f"{spec.repo}@{spec.revision} is at {(head or 'nothing')[:7]}, batuta pushed {locked.commit[:7]}",
                locked.commit,
                head,
            )
        )
    if reason is None:
        out.planned[spec.address] = locked
        out.unchanged.append(spec.address)
        return
    out.planned[spec.address] = None
    if remote is not None and remote.error is None:
        out.preconditions.append(Precondition(spec.address, spec.repo, spec.repo_type.value, spec.revision, head))
    action = Action(
        kind=ActionKind.PUSH,
        address=spec.address,
        reason=reason,
        detail=f"{spec.source} → {spec.repo}@{spec.revision}",
        deps=_deps(upstream, out.relocks.get(spec.source) if spec.source_is_address else None),
        params={
            "path": src_dir,
            "from": spec.source,
            "repo": spec.repo,
            "type": spec.repo_type.value,
            "revision": spec.revision,
            "parent_commit": head,
            "source_tree": tree,
            **spec.params(),
            "allow_unsafe": spec.allow_unsafe,
        },
        upload_bytes=size,
    )
    out.actions.append(action)


# --------------------------------------------------------------------------- removed


def diff_removed(manifest: Manifest, lock: Lock, opts: PlanOptions, out: DiffResult) -> None:
    wanted = set(manifest.addresses)
    for address in sorted(lock.entries):
        if address in wanted:
            continue
        entry = lock.entries[address]
        paths: list[str] = []
        kind = ActionKind.RELOCK
        if isinstance(entry, RepoLock) and entry.output:
            kind = ActionKind.DELETE_LOCAL
            paths = [_join(_proj(entry.output), f.path) for f in entry.files]
        elif isinstance(entry, ConversionLock):
            kind = ActionKind.DELETE_LOCAL
            paths = [_join(_proj(entry.output), f.path) for f in entry.outputs]
        out.actions.append(
            Action(
                kind=kind,
                address=address,
                reason=Reason.REMOVED_FROM_MANIFEST,
                detail=f"{plural(len(paths), 'local file')}" if paths else "drop from hf.lock",
                params={"paths": paths, "dirs": [_proj(getattr(entry, "output", "") or "")] if paths else []},
            )
        )


# --------------------------------------------------------------------------- selection


def select_actions(actions: Sequence[Action], targets: Sequence[str], excludes: Sequence[str]) -> list[Action]:
    """Keep ``--target`` actions and what they depend on; drop ``--exclude`` ones and what depends on them."""
    by_id = {a.id: a for a in actions}
    keep = set(by_id)
    if targets:
        keep = set()
        stack = [a.id for a in actions if _matches(a.address, targets)]
        while stack:
            aid = stack.pop()
            if aid in keep or aid not in by_id:
                continue
            keep.add(aid)
            stack.extend(by_id[aid].deps)
    if excludes:
        dropped = {a.id for a in actions if _matches(a.address, excludes)}
        changed = True
        while changed:
            changed = False
            for a in actions:
                if a.id not in dropped and any(d in dropped for d in a.deps):
                    dropped.add(a.id)
                    changed = True
        keep -= dropped
    return [a for a in actions if a.id in keep]


def apply_moves(manifest: Manifest, lock: Lock) -> tuple[Lock, dict[str, str]]:
    """``lock`` with every pending ``moved:`` block applied (entry at ``from``, none at ``to``)
    and {to: from} of those applied.  Idempotent: a lock already moved has nothing at ``from``."""
    moved: dict[str, str] = {}
    for src, dst in manifest.moves:
        if lock.get(src) is not None and lock.get(dst) is None:
            lock = lock.renamed(src, dst)
            moved[dst] = src
            entry, outputs = lock.get(dst), manifest.moved_output(dst)
            if isinstance(entry, ConversionLock) and outputs and entry.output == outputs[0]:
                lock = lock.with_entry(replace(entry, output=outputs[1]))  # apply renames the directory
    return lock, moved


def move_problems(manifest: Manifest, lock: Lock) -> list[tuple[str, tuple[str | int, ...]]]:
    """(message, path into hf.yaml) of each ``moved:`` block hf.lock contradicts: neither address
    locked (a misspelt ``from``), or both (the rename cannot be told from two resources).  An
    empty hf.lock (a fresh checkout, a deleted lock) contradicts nothing."""
    if not lock.entries:
        return []
    out: list[tuple[str, tuple[str | int, ...]]] = []
    for i, (src, dst) in enumerate(manifest.moves):
        has_src, has_dst = lock.get(src) is not None, lock.get(dst) is not None
        if not has_src and not has_dst:
            out.append((f"moved from {src!r}, which hf.lock does not have (nor {dst!r}): a misspelt address?", ("moved", i, "from")))
        elif has_src and has_dst:
            out.append((f"cannot move {src!r} to {dst!r}: hf.lock already has both; drop this move "
                        f"(the plan then deletes what {src} left)", ("moved", i)))
    return out


def _record_move(address: str, moved: Mapping[str, str], manifest: Manifest, lock: Lock, out: DiffResult) -> None:
    """Right after ``address`` is diffed (so what reads it waits for it): when hf.yaml ``moved:``
    renamed it, one ``moved`` relock if it has nothing else to do, else the action planned for it
    carries ``moved_from`` (apply drops the old address)."""
    src = moved.get(address)
    if src is None:
        return
    at = next((i for i, a in enumerate(out.actions) if a.address == address), None)
    if at is not None:
        a = out.actions[at]
        out.actions[at] = replace(a, params={**a.params, "moved_from": src}, detail=f"{a.detail}; moved from {src}")
        return
    if address in out.unchanged:
        out.unchanged.remove(address)
    entry = lock.get(address)
    params: dict[str, Any] = {"moved_from": src}
    outputs = manifest.moved_output(address)
    if outputs:  # a default output directory is named after the address: it is renamed
        params["output_from"], params["output_to"] = outputs
    action = Action(
        kind=ActionKind.RELOCK,
        address=address,
        reason=Reason.MOVED,
        detail=f"moved from {src} (hf.lock address only; files, cache and outputs stay)",
        params=params,
        lock_entry=entry.to_dict() if entry is not None else None,
    )
    out.actions.append(action)
    out.relocks[address] = action.id


def diff(manifest: Manifest, lock: Lock, world: World, opts: PlanOptions, select: Selector) -> DiffResult:
    """Run every per-resource diff in dependency order (repos, then conversions, then publishes)."""
    out = DiffResult()
    lock, moved = apply_moves(manifest, lock)
    for r in manifest.repos:
        diff_repo(r, lock, world, opts, select, out)
        _record_move(r.address, moved, manifest, lock, out)
    pending = list(manifest.conversions)
    # Conversions may chain: plan each once its source is planned (the manifest has no cycles).
    while pending:
        progressed = False
        for c in list(pending):
            if c.source in out.planned or manifest.get(c.source) is None:
                diff_conversion(c, manifest, lock, world, opts, out)
                _record_move(c.address, moved, manifest, lock, out)
                pending.remove(c)
                progressed = True
        if not progressed:  # sources failed to plan
            for c in pending:
                out.problems.append(f"{c.address}: its input {c.source} could not be planned")
            break
    settle_on_demand(manifest, out)
    for p in manifest.publishes:
        diff_publish(p, manifest, lock, world, opts, out)
        _record_move(p.address, moved, manifest, lock, out)
    diff_removed(manifest, lock, opts, out)
    return out


# --------------------------------------------------------------------------- --locked and gates

# The exit code a gate reports when resources failed for different reasons: the one the user must
# fix first (a rejected token hides everything else; a missing repo is not fixed by retrying).
_CAUSE_ORDER = ("auth", "not-found", "rate-limited", "network")


def lock_disagreements(manifest: Manifest, lock: Lock) -> list[str]:
    """Why hf.lock does not cover hf.yaml (``--locked``), one line per resource; [] if it does.

    Pure and local: only the resolution matters (each repo's entry must exist and be for the same
    repo, type, revision and file selection), never what the Hub says now.  An upstream branch that
    moved is drift (``status --exit-code``), not a lock that disagrees.  Conversion and publish
    entries record results of apply and entries of removed resources are cleaned up by apply, so
    neither makes ``--locked`` fail.
    """
    out: list[str] = []
    for spec in manifest.repos:
        entry = lock.get(spec.address)
        why = resolve_reason(spec, entry if isinstance(entry, RepoLock) else None)
        if why is not None:
            out.append(f"{spec.address}: {_LOCKED_WHY[why]}")
    return out


_LOCKED_WHY = {
    Reason.NOT_LOCKED: "in hf.yaml but not in hf.lock",
    Reason.LOCK_STALE: "hf.yaml changed its repo, type or file selection since hf.lock was written",
    Reason.REVISION_CHANGED: "hf.yaml asks for another revision than hf.lock records",
}


def unchecked(world: World) -> list[tuple[str, str, str]]:
    """(address, why, exit-code name) of every resource whose Hub check failed, sorted."""
    return [
        (r.address, f"could not check {r.ref}: {r.error}", r.error_exit or "network")
        for r in sorted(world.remote.values(), key=lambda r: r.address)
        if r.error
    ]


def unchecked_error(world: World) -> BatutaError | None:
    """The error a gate raises when some resources could not be checked (None when all were).

    Its exit code is the cause's (auth 7, not found 8, network 9, …); with several causes the one
    to fix first (``_CAUSE_ORDER``).
    """
    rows = unchecked(world)
    if not rows:
        return None
    causes = {exit_name for _a, _w, exit_name in rows}
    cause = next((c for c in _CAUSE_ORDER if c in causes), sorted(causes)[0])
    listing = "\n".join(f"  - {a}: {why}" for a, why, _e in rows)
    n = len(rows)
    err = HubError(
        f"{n} resource{'s' if n != 1 else ''} could not be checked against the Hub, so this gate "
        f"cannot say whether anything changed:\n{listing}",
        hint={
            "auth": "The token was rejected or lacks access: log in with `batuta hf login` or set HF_TOKEN.",
            "not-found": "A repo or revision is gone (or private): fix hf.yaml, or check the token's access.",
        }.get(cause, "Check HF_ENDPOINT and the connection and retry; to plan from hf.lock and the disk "
                     "alone, pass --offline."),
        code="not-checked",
    )
    err.exit_name = cause
    return err
