"""Apply a plan: preconditions, then the DAG walk with injected step functions.

The executor is generic: each :class:`ActionKind` maps to a *step function*
``step(action, ctx) -> StepResult`` (the real ones live in :mod:`.steps`; tests
inject fakes).  Walk rules (DVC ``_reproduce`` / Terraform ``dag/walk``):

* an action starts once every dependency completed; up to ``jobs`` run at once;
* a failure skips only its descendants (reported once, as "skipped: <root cause>");
  without ``keep_going`` nothing new starts after the first failure;
* after each completed action hf.lock is rewritten atomically and the journal
  records it, so an interrupted apply resumes where it stopped;
* when everything completed and hf.lock changed, ``last_applied_plan`` is recorded (plans are
  single-use); an apply that changed no lock content leaves hf.lock byte-identical;
* Ctrl-C (SIGINT, when run in the main thread): the first press starts nothing new and lets the
  in-flight actions finish (``Reporter.interrupted`` says so at once); the second sets
  ``StepContext.abort``, which pulls check at every chunk, so transfers stop within a second and
  leave resumable partials.  Either way the result is ``interrupted`` (the CLI exits 130).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from batuta_sync.core.actions import Action, ActionKind
from batuta_sync.core.lockfile import (
    Lock,
    LockEntry,
    dumps,
    entry_from_dict,
    lock_digest,
    next_version,
    write_lock,
)
from batuta_sync.core.planner.plan import Plan, Precondition
from batuta_sync.core.workspace import Journal
from batuta_sync.errors import BatutaError, StalePlanError


@dataclass(frozen=True)
class StepResult:
    """What a step did: the lock entry to record (or ``drop`` it), bytes moved, a note."""

    lock_entry: LockEntry | None = None
    drop: bool = False
    applied_commit: str | None = None
    bytes: int = 0
    message: str = ""


@dataclass
class StepContext:
    """Read-only view for a step: the lock as it is now (dependencies already recorded).

    ``abort`` is set on a second Ctrl-C: a long step (a pull) stops at its next chunk by raising
    KeyboardInterrupt, keeping what it transferred resumable."""

    lock: Lock
    jobs: int = 1
    extra: Mapping[str, Any] = field(default_factory=dict)
    abort: threading.Event = field(default_factory=threading.Event)


StepFn = Callable[[Action, StepContext], StepResult]


class Reporter:
    """No-op progress hooks (resolvelib ``BaseReporter`` style); the CLI prints through one."""

    def started(self, action: Action) -> None: ...
    def finished(self, action: Action, result: StepResult) -> None: ...
    def failed(self, action: Action, error: BaseException) -> None: ...
    def skipped(self, action: Action, cause: str) -> None: ...
    def interrupted(self, in_flight: Sequence[Action], *, abort: bool) -> None: ...


@dataclass
class ApplyResult:
    plan_id: str
    completed: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    failed: dict[str, BaseException] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    not_run: list[str] = field(default_factory=list)
    lock: Lock | None = None
    bytes: int = 0
    notes: list[str] = field(default_factory=list)  # things apply did after the actions (cache pruning)
    interrupted: bool = False  # Ctrl-C: nothing new was started
    aborted: list[str] = field(default_factory=list)  # stopped by a second Ctrl-C (partials kept)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.skipped or self.not_run or self.aborted or self.interrupted)

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "completed": self.completed,
            "resumed": self.resumed,
            "failed": {k: str(getattr(v, "message", v)) for k, v in self.failed.items()},
            "skipped": self.skipped,
            "not_run": self.not_run,
            "aborted": self.aborted,
            "interrupted": self.interrupted,
            "ok": self.ok,
            "notes": self.notes,
        }


def relock_step(action: Action, ctx: StepContext) -> StepResult:
    """Relock needs no I/O: the planned entry (or the drop) is the whole action."""
    return StepResult()


# --------------------------------------------------------------------------- freshness


def check_fresh(
    plan: Plan,
    *,
    manifest_digest: str,
    lock: Lock | None,
    journal: Journal,
    resolve: Callable[[Precondition], str | None] | None,
) -> list[str]:
    """Every reason ``plan`` may not be applied now (empty list = fresh).  Pure except ``resolve``."""
    problems: list[str] = []
    if plan.refresh_only:
        problems.append("a --refresh-only plan only reports drift; it has nothing to apply")
    if lock is not None and lock.last_applied_plan == plan.plan_id:
        problems.append(f"plan {plan.plan_id} was already applied (a plan is single-use)")
    if lock is not None and plan.lock_lineage and lock.lineage and plan.lock_lineage != lock.lineage:
        problems.append(
            f"the plan was made for another workspace (its hf.lock lineage {plan.lock_lineage[:12]} "
            f"is not this hf.lock's {lock.lineage[:12]})"
        )
    elif manifest_digest != plan.manifest_digest:
        problems.append("hf.yaml changed since the plan was made")
    current = lock_digest(lock)
    resuming = current in journal.digests()
    if current != plan.lock_digest and not resuming:
        problems.append("hf.lock changed since the plan was made")
    if resolve is not None:
        done_addresses = {d.split(":", 1)[1] for d in journal.done_at(current)}
        for pre in plan.preconditions:
            if pre.address in done_addresses:
                continue
            try:
                now = resolve(pre)
            except BatutaError as exc:
                problems.append(f"{pre.address}: cannot check {pre.repo}@{pre.revision}: {exc.message}")
                continue
            if now != pre.expected_commit:
                problems.append(
                    f"{pre.address}: {pre.repo}@{pre.revision} moved from {(pre.expected_commit or 'nothing')[:7]} "
                    f"to {(now or 'nothing')[:7]} since the plan"
                )
    return problems


def raise_if_stale(problems: Sequence[str], *, source: str = "The saved plan", hint: str | None = None) -> None:
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise StalePlanError(f"{source} is stale; refusing to apply it:\n{listing}", hint=hint)


# --------------------------------------------------------------------------- Ctrl-C


class Interrupts:
    """SIGINT during a walk: count presses instead of raising KeyboardInterrupt at a random spot.

    Installed only in the main thread (where Python runs signal handlers); elsewhere (an API
    caller's thread) the default behaviour stays.  ``on_press(n)`` runs in the main thread.
    """

    def __init__(self, on_press: Callable[[int], None]) -> None:
        self.presses = 0
        self.abort = threading.Event()
        self._on_press = on_press
        self._previous: Any = None
        self._installed = False

    def _handler(self, signum: int, frame: Any) -> None:
        self.presses += 1
        if self.presses >= 2:
            self.abort.set()
        self._on_press(self.presses)

    def __enter__(self) -> Interrupts:
        import signal

        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        if self._installed:
            signal.signal(signal.SIGINT, self._previous)


# --------------------------------------------------------------------------- walk


def _lock_update(lock: Lock, action: Action, result: StepResult) -> Lock:
    moved_from = action.params.get("moved_from")  # hf.yaml `moved:`: the old address goes
    if isinstance(moved_from, str) and moved_from != action.address:
        lock = lock.renamed(moved_from, action.address)  # and what read it reads the new one
    if result.drop or action.kind is ActionKind.DELETE_LOCAL or (
        action.kind is ActionKind.RELOCK and action.lock_entry is None
    ):
        return lock.without(action.address)
    entry = result.lock_entry
    if entry is None and action.lock_entry is not None:
        entry = entry_from_dict(action.address, action.lock_entry)
    return lock.with_entry(entry) if entry is not None else lock


def execute(
    plan: Plan,
    steps: Mapping[ActionKind, StepFn],
    *,
    lock: Lock | None,
    lock_path: Path,
    journal: Journal,
    jobs: int = 4,
    keep_going: bool = False,
    reporter: Reporter | None = None,
    extra: Mapping[str, Any] | None = None,
) -> ApplyResult:
    """Run ``plan``'s actions (skipping those the journal has done), recording each in hf.lock."""
    from batuta_sync.core.planner.graph import build_graph, descendants

    reporter = reporter or Reporter()
    result = ApplyResult(plan.plan_id, lock=lock)
    if not plan.actions:
        return result
    base = lock or Lock()
    if plan.endpoint and base.endpoint != plan.endpoint:  # hf.lock records the Hub it was resolved on
        base = replace(base, endpoint=plan.endpoint)
    state = {"lock": base}
    guard = threading.Lock()
    graph = build_graph(plan.actions)
    by_id = {a.id: a for a in plan.actions}
    done: set[str] = set()
    for aid in journal.done_at(lock_digest(lock)):
        if aid in by_id:
            done.add(aid)
            result.resumed.append(aid)
    blocked: set[str] = set()
    stop = False
    prev = lock

    def record(action: Action, res: StepResult) -> None:
        nonlocal prev
        with guard:
            new = next_version(prev, _lock_update(state["lock"], action, res))
            journal.record(action.id, lock_digest(new))  # first: see Journal
            if prev is None or dumps(new) != dumps(prev):  # a pure re-pull leaves hf.lock's bytes alone
                write_lock(lock_path, new)
            state["lock"] = new
            prev = new

    def run(action: Action) -> StepResult:
        step = steps.get(action.kind, relock_step if action.kind is ActionKind.RELOCK else None)
        if step is None:
            raise BatutaError(f"No step function for {action.kind.value} actions.")
        with guard:
            ctx = StepContext(lock=state["lock"], jobs=jobs, extra=extra or {}, abort=interrupts.abort)
            active.add(action.id)
        try:
            reporter.started(action)
            res = step(action, ctx)
            record(action, res)
        finally:
            with guard:
                active.discard(action.id)
        return res

    running: dict[Future[StepResult], str] = {}
    active: set[str] = set()  # started and not finished (what a Ctrl-C lets finish or aborts)

    def on_press(presses: int) -> None:
        nonlocal stop
        stop = True
        result.interrupted = True
        reporter.interrupted([by_id[a] for a in sorted(set(active))], abort=presses >= 2)

    interrupts = Interrupts(on_press)
    with interrupts, ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        while True:
            if not stop:
                for aid in sorted(by_id):
                    if aid in done or aid in blocked or aid in running.values() or aid in result.failed:
                        continue
                    if all(d in done for d in graph.predecessors(aid)) and len(running) < max(1, jobs):
                        running[pool.submit(run, by_id[aid])] = aid
            if not running:
                break
            # short waits: the main thread runs the Ctrl-C handler promptly
            finished, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
            for fut in finished:
                aid = running.pop(fut)
                action = by_id[aid]
                exc = fut.exception()
                if isinstance(exc, KeyboardInterrupt) and interrupts.abort.is_set():
                    result.aborted.append(aid)
                    reporter.skipped(action, "aborted by Ctrl-C; what it transferred resumes next time")
                    continue
                if exc is None:
                    done.add(aid)
                    result.completed.append(aid)
                    res = fut.result()
                    result.bytes += res.bytes
                    reporter.finished(action, res)
                    continue
                result.failed[aid] = exc
                reporter.failed(action, exc)
                for dep in sorted(descendants(graph, aid)):
                    if dep not in blocked and dep not in done:
                        blocked.add(dep)
                        result.skipped[dep] = f"{aid} failed"
                        reporter.skipped(by_id[dep], f"{aid} failed")
                if not keep_going:
                    stop = True
    result.not_run = sorted(set(by_id) - done - blocked - set(result.failed) - set(result.aborted))
    final = state["lock"]
    if result.ok:
        # the plan id is recorded only when the apply changed hf.lock: an apply that only re-pulled
        # or re-materialized (a fresh CI runner) leaves it byte-identical; such a plan stays fresh,
        # and applying it again is the same no-op on the lock
        # (a resumed apply whose earlier run recorded every change but died before this line
        # changed hf.lock too: the journal says which of its actions did)
        resumed_changes = any(by_id[a].changes_lock for a in result.resumed)
        if lock is None or dumps(final) != dumps(lock) or resumed_changes:
            final = replace(final, last_applied_plan=plan.plan_id)
            write_lock(lock_path, final)
        journal.remove()
    result.lock = final
    return result
