"""The Python API of the declarative core: ``load_manifest``, ``make_plan``, ``apply_plan``.

Example::

    from batuta_sync import load_manifest, make_plan, apply_plan

    plan = make_plan("hf.yaml")                   # observes the Hub + disk, pure diff
    for action in plan.actions:
        print(action.kind.symbol, action.address, action.reason.value)
    result = apply_plan(plan, manifest="hf.yaml")  # refuses a stale plan; updates hf.lock per action

    # or plan and apply in one go, under ONE workspace lock (nobody moves hf.lock in between):
    outcome = plan_and_apply("hf.yaml", approve=lambda plan: bool(plan.actions))

    with plan_session("hf.yaml") as session:     # the same, when the caller shows the plan first
        print(len(session.plan.actions))
        session.apply(keep_going=True)

``make_plan`` = observe (I/O) + :func:`batuta_sync.core.planner.build_plan` (pure).  The
library owns the plan-and-apply lock (:func:`plan_session`); ``batuta apply`` without a plan
file is a thin layer over it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from batuta_sync.core.lockfile import Lock, read_lock
from batuta_sync.core.manifest import Manifest, load_manifest
from batuta_sync.core.observe import WorkspaceState, observe
from batuta_sync.core.planner import apply_moves, build_plan
from batuta_sync.core.planner.diff import PlanOptions, Selector
from batuta_sync.core.planner.plan import Plan, Precondition
from batuta_sync.core.workspace import Workspace, confine_manifest
from batuta_sync.errors import NotFoundError
from batuta_sync.settings import Settings, endpoint_display, resolve_settings
from batuta_sync.types import HfAssetType, RepoRef

if TYPE_CHECKING:  # the executor (threads, futures) loads only when applying
    from batuta_sync.core.actions import ActionKind
    from batuta_sync.core.executor import ApplyResult, Reporter, StepFn

__all__ = [
    "ExecutorHook",
    "LockUpdate",
    "PlanAndApply",
    "PlanSession",
    "apply_plan",
    "load_manifest",
    "make_plan",
    "plan_and_apply",
    "plan_session",
    "settings_for",
    "update_lock",
]


class ExecutorHook(Protocol):
    """Where the actions run (``apply --executor``): called once the plan is found fresh, with the
    default step functions; the context it returns yields the step functions to walk the DAG with
    and is left when the walk ends (a cluster connection, say).  The walk itself, hf.lock, the
    journal and the workspace/remote locks stay the driver's (:func:`apply_plan`).  The Dask one
    is :func:`batuta_sync.distributed.executor_hook`."""

    def __call__(
        self, steps: Mapping[ActionKind, StepFn], settings: Settings, manifest: Manifest, plan: Plan
    ) -> AbstractContextManager[Mapping[ActionKind, StepFn]]: ...


def settings_for(manifest: Manifest, flags: Mapping[str, Any] | None = None) -> Settings:
    """Settings with the hf.yaml layer (flag > env > hf.yaml > default)."""
    return resolve_settings(flags=flags, manifest=manifest.settings_layer())


def converter_version(manifest: Manifest) -> str:
    """``CONVERTER_VERSION`` of the converter (only imported when the manifest converts)."""
    if not manifest.conversions:
        return ""
    try:
        from batuta_sync.convert import CONVERTER_VERSION
    except ImportError:  # pragma: no cover - the converter ships with batuta
        return "unknown"
    return str(CONVERTER_VERSION)


def default_client_factory(settings: Settings) -> Callable[[], Any]:
    def factory() -> Any:
        from batuta_sync.hub.client import HubApi

        client = HubApi(settings)
        if settings.remote and not settings.offline:  # commit listings shared through the remote
            from batuta_sync.pull.engine import open_shared
            from batuta_sync.pull.listings import ListingClient

            shared = open_shared(settings)
            if shared is not None:
                return ListingClient(client, shared)
        return client

    return factory


def _manifest(manifest: Manifest | str | Path) -> Manifest:
    return manifest if isinstance(manifest, Manifest) else load_manifest(manifest)


def make_plan(
    manifest: Manifest | str | Path = "hf.yaml",
    *,
    lock: Lock | None = None,
    settings: Settings | None = None,
    refresh_only: bool = False,
    targets: Sequence[str] = (),
    excludes: Sequence[str] = (),
    replace: Sequence[str] = (),
    verify: bool = False,
    frozen: bool = False,
    locked: bool = False,
    offline: bool | None = None,
    client_factory: Callable[[], Any] | None = None,
    select: Selector | None = None,
    gate: bool = False,
) -> Plan:
    """Observe the Hub and the disk, then diff: the plan that brings the workspace to hf.yaml.

    ``gate``: the caller decides on the result (an exit code): a resource the Hub could not be
    asked about raises (with its cause's exit code) instead of becoming a warning."""
    from batuta_sync._version import __version__

    man = _manifest(manifest)
    ws = Workspace.of(man)
    if lock is None:
        lock = read_lock(ws.lock_path)
    settings = settings or settings_for(man)
    confine_manifest(man, allow_outside=settings.allow_outside_workspace)
    is_offline = settings.offline if offline is None else offline
    check_addresses(man, lock, [*targets, *excludes, *replace])
    _check_moves(man, lock or Lock())
    opts = PlanOptions(
        refresh_only=refresh_only,
        targets=tuple(targets),
        excludes=tuple(excludes),
        replace=tuple(replace),
        verify=verify,
        frozen=frozen,
        locked=locked,
        offline=is_offline,
        cache_dir=str(settings.hub_cache),
        root=str(ws.root),
        converter_version=converter_version(man),
        materialize=man.materialize,
        jobs=man.jobs,
        gate=gate,
    )
    state = WorkspaceState(ws.dir)
    factory = client_factory or default_client_factory(settings)
    # hf.yaml `moved:`: observe a renamed resource under its new address (its cache and outputs)
    world = observe(man, apply_moves(man, lock or Lock())[0], opts, ws=state, client_factory=factory)
    state.save()
    if select is None:
        from batuta_sync.core.select import select_files

        select = select_files
    import uuid

    plan = build_plan(
        man, lock, world, opts, select, plan_id=uuid.uuid4().hex, tool_version=__version__,
        endpoint=endpoint_display(settings.endpoint), endpoint_in_manifest=settings.endpoint_source == "hf.yaml",
    )
    return with_sources(plan, settings) if settings.remote and not is_offline else plan


def with_sources(plan: Plan, settings: Settings) -> Plan:
    """``plan`` annotated with where each pull's blobs come from (the shared remote or the Hub):
    one HEAD per blob not in the local cache, asked at this edge -- the planner does no I/O."""
    from batuta_sync.core.actions import ActionKind
    from batuta_sync.core.lockfile import RepoLock, entry_from_dict
    from batuta_sync.pull.availability import remote_availability
    from batuta_sync.types import RepoFile

    pulls: dict[str, tuple[RepoRef, tuple[RepoFile, ...]]] = {}
    for a in plan.actions:
        if a.kind is not ActionKind.PULL or a.lock_entry is None:
            continue
        entry = entry_from_dict(a.address, a.lock_entry)
        if isinstance(entry, RepoLock):
            ref = RepoRef(entry.repo, HfAssetType(entry.repo_type), entry.revision)
            pulls[a.address] = (ref, tuple(RepoFile(f.path, f.size, f.gitsha1 or "", f.sha256) for f in entry.files))
    got = remote_availability(settings, pulls) or {}
    return replace(plan, remote=str(settings.remote), sources={addr: av.to_dict() for addr, av in got.items()})


def _check_moves(manifest: Manifest, lock: Lock) -> None:
    """hf.yaml ``moved:`` blocks that hf.lock contradicts: a ManifestError pointing at each."""
    from batuta_sync.core.planner.diff import move_problems

    problems = move_problems(manifest, lock)
    if problems:
        from batuta_sync.core.manifest import located_error, read_manifest_text

        text = read_manifest_text(manifest.path) if Path(manifest.path).is_file() else ""  # library-built: no lines
        raise located_error(text, manifest.path, problems)


def check_addresses(manifest: Manifest, lock: Lock | None, selectors: Sequence[str]) -> None:
    from batuta_sync.errors import UsageError

    known = set(manifest.addresses) | set(lock.entries if lock else ())
    sections = {"models", "datasets", "spaces", "conversions", "publish"}
    unknown = [s for s in selectors if s not in known and s not in sections]
    if unknown:
        raise UsageError(
            f"Unknown address{'es' if len(unknown) > 1 else ''}: {', '.join(unknown)}.",
            hint="Use an address from hf.yaml such as models.<name> (see `batuta graph`), or a section name.",
        )


def precondition_resolver(client: Any) -> Callable[[Precondition], str | None]:
    def resolve(pre: Precondition) -> str | None:
        try:
            commit: str = client.resolve_commit(RepoRef(pre.repo, HfAssetType(pre.repo_type), pre.revision))
            return commit
        except NotFoundError:
            return None

    return resolve


def apply_plan(
    plan: Plan,
    *,
    manifest: Manifest | str | Path | None = None,
    settings: Settings | None = None,
    steps: Mapping[ActionKind, StepFn] | None = None,
    jobs: int | None = None,
    keep_going: bool = False,
    reporter: Reporter | None = None,
    check_remote: bool = True,
    client_factory: Callable[[], Any] | None = None,
    lock_timeout: float = 0.0,
    progress_for: Callable[[Any], Any] | None = None,
    workspace_locked: bool = False,
    lease_ttl: float | None = None,
    executor_hook: ExecutorHook | None = None,
) -> ApplyResult:
    """Apply exactly ``plan``: lock the workspace, refuse if stale, run the DAG, update hf.lock per action.

    ``progress_for(action)`` may return a download progress sink (``hub.download.ProgressSink``)
    for a pull action; ``reporter`` receives started/finished/failed/skipped events.
    ``workspace_locked``: the caller already holds the workspace lock (plan-and-apply in one go).
    With a shared remote (``settings.remote``) the actions also run under its lease
    (:func:`remote_lease`): ``lock_timeout`` bounds the wait for both locks (0 = fail fast,
    exit 17); ``lease_ttl`` overrides the lease's time to live (else ``BATUTA_LEASE_TTL``, else 300 s).
    ``executor_hook``: run the actions elsewhere (:class:`ExecutorHook`; default: here, in threads).
    """
    from contextlib import nullcontext

    from batuta_sync.core.executor import check_fresh, execute, raise_if_stale
    from batuta_sync.core.workspace import Journal, WorkspaceLock

    man_path = Path(manifest.path if isinstance(manifest, Manifest) else (manifest or plan.manifest_path))
    ws = Workspace(man_path)
    held = nullcontext() if workspace_locked else WorkspaceLock(ws.apply_lock, timeout=lock_timeout)
    with held:
        man = load_manifest(man_path)  # re-read under the lock: its digest is a precondition
        ws = Workspace.of(man)  # (an overlay's lock file is known once it is read)
        lock = read_lock(ws.lock_path)
        journal = Journal(ws.journal(plan.plan_id))
        settings = settings or settings_for(man)
        confine_manifest(man, allow_outside=settings.allow_outside_workspace)
        _check_endpoint(plan, settings)
        resolve = None
        client = None
        if check_remote and plan.preconditions and not settings.offline:
            client = (client_factory or default_client_factory(settings))()
            resolve = precondition_resolver(client)
        try:
            raise_if_stale(check_fresh(plan, manifest_digest=man.digest, lock=lock, journal=journal, resolve=resolve))
        finally:
            if client is not None and hasattr(client, "close"):
                client.close()
        from batuta_sync.core.lockfile import lock_digest

        _check_disk(plan, journal, settings, lock_digest(lock))
        state = WorkspaceState(ws.dir)
        if steps is None:
            from batuta_sync.core.steps import default_steps

            steps = default_steps(settings, man, state)
        lease = remote_lease(settings, man, lock, plan.plan_id, wait=lock_timeout, ttl=lease_ttl)
        if executor_hook is None:  # conversions run here: their kernels compile while the pulls run
            from batuta_sync.core.steps import prewarm

            prewarm(plan, lock, man)
        try:
            where = executor_hook(steps, settings, man, plan) if executor_hook is not None else nullcontext(steps)
            with where as walk_steps:
                result = execute(
                    plan,
                    _guarded(walk_steps, lease) if lease is not None else walk_steps,
                    lock=lock,
                    lock_path=ws.lock_path,
                    journal=journal,
                    jobs=jobs or man.jobs,
                    keep_going=keep_going,
                    reporter=reporter,
                    extra={"settings": settings, "manifest": man, "state": state, "progress_for": progress_for, "plan": plan},
                )
        finally:
            state.save()
            if lease is not None:
                lease.release()
        from batuta_sync.core import gcroots
        from batuta_sync.hub.cache import HfCache, parse_size

        cache = HfCache.from_settings(settings)
        gcroots.register(cache, ws.lock_path)  # before pruning: this workspace's snapshots are roots
        if result.ok and man.policies.get("max_cache_size") and any(a.kind.value == "pull" for a in plan.actions):
            _report, note = gcroots.prune(cache, parse_size(str(man.policies["max_cache_size"])))
            if note:
                result.notes.append(note)
        return result


def lease_lineage(man: Manifest, lock: Lock | None) -> str:
    """The remote lock name: hf.lock's lineage, or (before the first apply wrote one) the
    hf.yaml digest, so runners applying the same hf.yaml share one lease either way."""
    if lock is not None and lock.lineage:
        return lock.lineage
    return "m-" + man.digest.split(":", 1)[-1][:40]


def remote_lease(
    settings: Settings, man: Manifest, lock: Lock | None, plan_id: str, *, wait: float = 0.0,
    ttl: float | None = None,
) -> Any:
    """The remote lease (``remote.lease.Lease``) for this apply, or None without a remote.

    Busy: waits up to ``wait`` seconds (with one message naming the holder), then
    :class:`~batuta_sync.errors.WorkspaceBusyError` (exit 17) naming ``batuta force-unlock ID``."""
    if not settings.remote:
        return None
    import sys

    from batuta_sync.remote import open_remote
    from batuta_sync.remote.lease import DEFAULT_TTL, LockRecord, acquire

    def told(held: LockRecord) -> None:
        print(
            f"Waiting up to {wait:g} s for the remote lock on {settings.remote} (held by host {held.host}, "
            f"pid {held.pid}, lock id {held.id})...",
            file=sys.stderr,
        )

    return acquire(
        open_remote(settings.remote), lease_lineage(man, lock), plan_id=plan_id,
        ttl=ttl or settings.lease_ttl or DEFAULT_TTL, wait=wait, poll=min(2.0, max(0.05, wait / 10)), on_wait=told,
    )


def _guarded(steps: Mapping[ActionKind, StepFn], lease: Any) -> dict[ActionKind, StepFn]:
    """``steps`` that refuse to start once the remote lease is lost (another runner took it over)."""
    from batuta_sync.errors import WorkspaceBusyError

    def wrap(fn: StepFn) -> StepFn:
        def step(action: Any, ctx: Any) -> Any:
            if lease.lost:
                raise WorkspaceBusyError(
                    f"The remote lock (id {lease.id}) was lost: another runner took it over, so "
                    f"{action.address} was not started.",
                    hint="Apply again; a lease is lost only when its renewals stop for a whole TTL.",
                )
            return fn(action, ctx)

        return step

    return {kind: wrap(fn) for kind, fn in steps.items()}


class PlanSession:
    """A plan made under the workspace lock, applied under the same lock (see :func:`plan_session`).

    ``apply()`` only works while the session's ``with`` block holds the lock: outside it another
    apply could have moved hf.lock since the plan, which is what the session exists to prevent.
    """

    def __init__(self, plan: Plan, manifest: Manifest, settings: Settings) -> None:
        self.plan = plan
        self.manifest = manifest
        self.settings = settings
        self._held = True

    def apply(self, **kwargs: Any) -> ApplyResult:
        """:func:`apply_plan` of :attr:`plan` under the session's lock (``kwargs``: its options)."""
        if not self._held:
            from batuta_sync.errors import UsageError

            raise UsageError(
                "This plan session has ended: its workspace lock is released, so the plan may be stale.",
                hint="Apply inside the `with plan_session(...)` block, or make a new plan.",
            )
        kwargs.setdefault("check_remote", False)  # observed just now, under the lock
        return apply_plan(
            self.plan, manifest=self.manifest, settings=self.settings, workspace_locked=True, **kwargs
        )


@contextmanager
def plan_session(
    manifest: Manifest | str | Path = "hf.yaml",
    *,
    settings: Settings | None = None,
    lock_timeout: float = 0.0,
    **plan_kwargs: Any,
) -> Iterator[PlanSession]:
    """Take the workspace lock, make the plan (``plan_kwargs``: :func:`make_plan`'s options) and
    yield a :class:`PlanSession` to show, approve and apply it before the lock is released."""
    from batuta_sync.core.workspace import WorkspaceLock

    man = _manifest(manifest)
    settings = settings or settings_for(man)
    with WorkspaceLock(Workspace.of(man).apply_lock, timeout=lock_timeout):
        session = PlanSession(make_plan(man, settings=settings, **plan_kwargs), man, settings)
        try:
            yield session
        finally:
            session._held = False


@dataclass(frozen=True)
class PlanAndApply:
    """What :func:`plan_and_apply` did: the plan, and the apply result (None: nothing to do or not approved)."""

    plan: Plan
    result: ApplyResult | None

    @property
    def ok(self) -> bool:
        return self.result is None or self.result.ok


def plan_and_apply(
    manifest: Manifest | str | Path = "hf.yaml",
    *,
    settings: Settings | None = None,
    approve: Callable[[Plan], bool] | None = None,
    lock_timeout: float = 0.0,
    plan_options: Mapping[str, Any] | None = None,
    **apply_kwargs: Any,
) -> PlanAndApply:
    """Plan and apply in one go under one workspace lock (``batuta apply`` without a plan file).

    ``approve(plan)`` decides after the plan is made (default: apply); ``plan_options`` go to
    :func:`make_plan`, ``apply_kwargs`` to :func:`apply_plan` (``jobs``, ``keep_going``, ``reporter`` …).
    """
    with plan_session(manifest, settings=settings, lock_timeout=lock_timeout, **dict(plan_options or {})) as s:
        if not s.plan.actions or (approve is not None and not approve(s.plan)):
            return PlanAndApply(s.plan, None)
        return PlanAndApply(s.plan, s.apply(**{"lock_timeout": lock_timeout, **apply_kwargs}))


def _check_endpoint(plan: Plan, settings: Settings) -> None:
    """A plan observed one Hub; applying it against another would push/pull elsewhere than shown."""
    from batuta_sync.errors import StalePlanError
    from batuta_sync.settings import endpoint_key

    if plan.endpoint and endpoint_key(plan.endpoint) != endpoint_key(endpoint_display(settings.endpoint)):
        raise StalePlanError(
            f"The plan was made against the Hub {plan.endpoint}, but apply would talk to "
            f"{endpoint_display(settings.endpoint)}; refusing to apply it.",
            hint="Apply with the same endpoint (--endpoint / HF_ENDPOINT / hf.yaml), or plan again.",
        )


def _check_disk(plan: Plan, journal: Any, settings: Settings, plan_lock_digest: str) -> None:
    """Refuse before the first byte when the actions still to run need more disk than is free."""
    from batuta_sync._fmt import human_bytes
    from batuta_sync.core.observe import free_bytes
    from batuta_sync.errors import DiskFullError

    done = set(journal.done_at(plan_lock_digest))
    needed = sum(a.disk_bytes for a in plan.actions if a.id not in done)
    free = free_bytes(settings.hub_cache)
    if free is not None and needed > free:
        raise DiskFullError(
            f"The plan needs {human_bytes(needed)} of disk under {settings.hub_cache}, "
            f"but only {human_bytes(free)} is free. Nothing was changed."
        )


@dataclass(frozen=True)
class LockUpdate:
    """What :func:`update_lock` did: the lock now, one line per moved entry, whether it wrote."""

    lock: Lock
    changes: tuple[str, ...]
    written: bool


def update_lock(
    manifest: Manifest | str | Path = "hf.yaml",
    *,
    updates: Sequence[str] = (),
    settings: Settings | None = None,
    client_factory: Callable[[], Any] | None = None,
) -> LockUpdate:
    """``batuta lock``: resolve new/changed resources (and ``updates``, to their revision's current
    commit) into hf.lock without downloading; pinned entries stay where they are."""
    from batuta_sync.core.lockfile import entry_from_dict, next_version, write_lock
    from batuta_sync.core.workspace import WorkspaceLock
    from batuta_sync.errors import StalePlanError

    man = _manifest(manifest)
    ws = Workspace.of(man)
    old = read_lock(ws.lock_path)
    check_addresses(man, old, updates)
    base = old
    moved: dict[str, str] = {}
    if base is not None:
        base, moved = apply_moves(man, base)  # hf.yaml `moved:`: the entry is locked under its new address
        for addr in updates:
            entry = base.get(addr)
            if entry is not None and entry.kind == "repo":
                base = base.without(addr)  # forget the pin: resolve like a new resource
    plan = make_plan(man, lock=base, settings=settings, client_factory=client_factory)
    new = base or Lock()
    changes: list[str] = []
    for a in plan.actions:
        if a.lock_entry is None or a.lock_entry.get("kind") != "repo":
            continue
        entry = entry_from_dict(a.address, a.lock_entry)
        before = old.get(a.address) if old else None
        if before != entry:
            was = getattr(before, "commit", "")[:7] or "new"
            changes.append(f"{a.address}: {was} → {getattr(entry, 'commit', '')[:7]}")
        new = new.with_entry(entry)
    changes += [f"{src}: moved to {dst}" for dst, src in sorted(moved.items())]
    for addr, entry in (old.entries if old else {}).items():
        if addr not in new.entries and addr not in moved.values():  # untouched entries keep their value
            new = new.with_entry(entry)
    new = replace(new, endpoint=plan.endpoint)
    final = next_version(old, new)
    if old is not None and final.content() == old.content() and final.endpoint == old.endpoint:
        return LockUpdate(old, (), False)
    with WorkspaceLock(ws.apply_lock):  # never race an apply that is writing hf.lock
        if read_lock(ws.lock_path) != old:
            raise StalePlanError(
                "hf.lock changed while `batuta lock` was resolving; nothing was written.",
                hint="Run `batuta lock` again.",
            )
        write_lock(ws.lock_path, final)
    return LockUpdate(final, tuple(changes), True)


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_directory` did: the files adopted from the folder (or already cached),
    and the apply that locked the entry (None: it was already locked and cached)."""

    address: str
    adopted: tuple[str, ...]
    cached: tuple[str, ...]
    plan: Plan
    result: ApplyResult | None

    @property
    def ok(self) -> bool:
        return self.result is None or self.result.ok


def import_directory(
    manifest: Manifest | str | Path,
    address: str,
    folder: str | Path,
    *,
    settings: Settings | None = None,
    lock_timeout: float = 0.0,
    **apply_kwargs: Any,
) -> ImportResult:
    """Adopt ``folder`` (e.g. from ``hf download --local-dir``) as the files of ``address`` (a
    ``models.``/``datasets.``/``spaces.`` entry of hf.yaml): plan that entry alone, verify every
    file it locks against the Hub's digests while copying it into the cache, then apply — which
    finds every blob verified and downloads nothing.  A file missing from the folder or different
    from the Hub's raises :class:`~batuta_sync.errors.IntegrityError` (exit 11) before hf.lock changes.
    """
    from batuta_sync.core.actions import ActionKind
    from batuta_sync.core.lockfile import RepoLock, entry_from_dict
    from batuta_sync.errors import IntegrityError, UsageError
    from batuta_sync.pull.adopt import adopt_files
    from batuta_sync.types import RepoFile

    src = Path(folder)
    if not src.is_dir():
        raise UsageError(f"{src} is not a folder.", hint="Give the folder that holds the repo's files.")
    found: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}

    def adopt(plan: Plan) -> bool:
        pulls = [a for a in plan.actions if a.kind is ActionKind.PULL and a.address == address]
        if not pulls:
            return False
        entry = entry_from_dict(address, pulls[0].lock_entry)
        if not isinstance(entry, RepoLock):
            raise UsageError(f"{address} is not a repo entry; only models, datasets and spaces can be imported.")
        files = [RepoFile(f.path, f.size, f.gitsha1 or "", f.sha256) for f in entry.files]
        done = adopt_files(settings or settings_for(_manifest(manifest)), RepoRef(entry.repo, HfAssetType(entry.repo_type), entry.revision), files, src)
        if done.problems:
            shown = "; ".join(str(p) for p in done.problems[:10])
            more = f" (and {len(done.problems) - 10} more)" if len(done.problems) > 10 else ""
            raise IntegrityError(
                f"{src} does not hold {address} ({entry.repo}@{entry.commit[:12]}): {shown}{more}. "
                "hf.lock is unchanged.",
                hint=f"Fix those files, or let `batuta apply --target {address}` download them.",
            )
        found["files"] = (done.adopted, done.cached)
        return True

    check = _manifest(manifest)
    if address.split(".", 1)[0] not in ("models", "datasets", "spaces") or check.get(address) is None:
        raise UsageError(f"{address} is not a model, dataset or space of {check.path}.",
                         hint="Declare it in hf.yaml first (e.g. models.NAME: {repo: org/name}).")
    out = plan_and_apply(check, settings=settings, approve=adopt, lock_timeout=lock_timeout,
                         plan_options={"targets": [address]}, **apply_kwargs)
    adopted, cached = found.get("files", ((), ()))
    return ImportResult(address, adopted, cached, out.plan, out.result)
