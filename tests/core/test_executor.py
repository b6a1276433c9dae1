"""The executor with injected fake steps: ordering, parallelism, failure isolation, resume, staleness, locks."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.core.actions import Action, ActionKind
from batuta_sync.core.api import apply_plan, make_plan
from batuta_sync.core.executor import StepContext, StepResult, check_fresh
from batuta_sync.core.lockfile import ConversionLock, FileDigest, PublishLock, read_lock
from batuta_sync.core.workspace import Journal, Workspace, WorkspaceLock
from batuta_sync.errors import NotFoundError, StalePlanError, WorkspaceBusyError
from batuta_sync.settings import resolve_settings
from batuta_sync.types import RepoRef, RepoSnapshot
from tests.core.fakes import C1, C2, FILES

MANIFEST = """\
version: 1
models:
  a: {repo: org/a}
  b: {repo: org/b}
conversions:
  qa: {from: models.a, to: gguf}
publish:
  pa: {from: conversions.qa, repo: me/a-gguf}
"""


class FakeHub:
    """resolve_commit/snapshot over a dict; counts calls."""

    def __init__(self, heads: dict[str, str | None]) -> None:
        self.heads = heads
        self.calls = 0
        self.lock = threading.Lock()

    def _head(self, ref: RepoRef) -> str:
        with self.lock:
            self.calls += 1
        head = self.heads.get(ref.repo_id)
        if head is None:
            raise NotFoundError(f"{ref.repo_id} not found")
        return head

    def resolve_commit(self, ref: RepoRef) -> str:
        return self._head(ref)

    def snapshot(self, ref: RepoRef) -> RepoSnapshot:
        return RepoSnapshot(ref, self._head(ref), FILES)


class FakeSteps:
    """Step functions that record what ran; ``fail`` makes an address raise."""

    def __init__(self, fail: set[str] | None = None, barrier: threading.Barrier | None = None) -> None:
        self.fail = fail or set()
        self.ran: list[str] = []
        self.barrier = barrier
        self.guard = threading.Lock()

    def _run(self, action: Action) -> None:
        with self.guard:
            self.ran.append(action.id)
        if self.barrier is not None and action.kind is ActionKind.PULL:
            self.barrier.wait(timeout=10)
        if action.address in self.fail:
            from batuta_sync.errors import NetworkError

            raise NetworkError(f"boom in {action.address}")

    def pull(self, action: Action, ctx: StepContext) -> StepResult:
        self._run(action)
        return StepResult(bytes=10)

    def convert(self, action: Action, ctx: StepContext) -> StepResult:
        self._run(action)
        src = ctx.lock.get(action.params["from"])
        assert src is not None, "convert ran before its pull was recorded"
        return StepResult(
            lock_entry=ConversionLock(action.address, action.params["from"], "sha256:" + "0" * 64, "c", "h1:x",
                                      (("to", "gguf"),), action.params["output"], (FileDigest("o.gguf", 1, None, "e" * 64),))
        )

    def push(self, action: Action, ctx: StepContext) -> StepResult:
        self._run(action)
        return StepResult(lock_entry=PublishLock(action.address, action.params["repo"], "model", "main", C2, "h1:y"))

    def mapping(self) -> dict[ActionKind, Any]:
        return {ActionKind.PULL: self.pull, ActionKind.CONVERT: self.convert, ActionKind.PUSH: self.push}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    (tmp_path / "hf.yaml").write_text(MANIFEST)
    return tmp_path


def _plan(ws: Path, hub: FakeHub, **kw: Any):  # type: ignore[no-untyped-def]
    settings = resolve_settings(env={"HF_HOME": str(ws / "hfhome")}, home=ws)
    return make_plan(ws / "hf.yaml", settings=settings, client_factory=lambda: hub, **kw), settings


def _apply(ws: Path, plan: Any, steps: FakeSteps, hub: FakeHub, **kw: Any):  # type: ignore[no-untyped-def]
    settings = resolve_settings(env={"HF_HOME": str(ws / "hfhome")}, home=ws)
    return apply_plan(plan, manifest=ws / "hf.yaml", settings=settings, steps=steps.mapping(),
                      client_factory=lambda: hub, **kw)


def test_apply_runs_the_dag_and_records_every_action_in_the_lock(ws: Path) -> None:
    hub = FakeHub({"org/a": C1, "org/b": C1, "me/a-gguf": None})
    plan, _ = _plan(ws, hub)
    assert [a.id for a in plan.actions] == ["pull:models.a", "pull:models.b", "convert:conversions.qa", "push:publish.pa"]
    assert hub.calls == 3  # one snapshot per unlocked repo + one head of the publish target
    steps = FakeSteps()
    result = _apply(ws, plan, steps, hub, jobs=2)
    assert result.ok and sorted(result.completed) == sorted(a.id for a in plan.actions)
    assert steps.ran.index("pull:models.a") < steps.ran.index("convert:conversions.qa") < steps.ran.index("push:publish.pa")
    lock = read_lock(ws / "hf.lock")
    assert lock is not None and set(lock.entries) == {"models.a", "models.b", "conversions.qa", "publish.pa"}
    assert lock.last_applied_plan == plan.plan_id and lock.serial == 4
    assert not Workspace(ws / "hf.yaml").journal(plan.plan_id).exists()
    # the plan is single-use
    with pytest.raises(StalePlanError, match="single-use"):
        _apply(ws, plan, FakeSteps(), hub)


def test_independent_actions_run_in_parallel(ws: Path) -> None:
    hub = FakeHub({"org/a": C1, "org/b": C1, "me/a-gguf": None})
    plan, _ = _plan(ws, hub, targets=["models"])
    # Both pulls must be inside their step at the same time to pass the barrier.
    steps = FakeSteps(barrier=threading.Barrier(2))
    result = _apply(ws, plan, steps, hub, jobs=2)
    assert result.ok, result.failed


def test_a_failure_skips_only_its_dependants_with_keep_going(ws: Path) -> None:
    hub = FakeHub({"org/a": C1, "org/b": C1, "me/a-gguf": None})
    plan, _ = _plan(ws, hub)
    steps = FakeSteps(fail={"models.a"})
    result = _apply(ws, plan, steps, hub, jobs=1, keep_going=True)
    assert list(result.failed) == ["pull:models.a"]
    assert result.skipped == {"convert:conversions.qa": "pull:models.a failed", "push:publish.pa": "pull:models.a failed"}
    assert result.completed == ["pull:models.b"] and not result.ok
    lock = read_lock(ws / "hf.lock")
    assert lock is not None and set(lock.entries) == {"models.b"} and lock.last_applied_plan is None


def test_without_keep_going_nothing_new_starts_after_a_failure(ws: Path) -> None:
    hub = FakeHub({"org/a": C1, "org/b": C1, "me/a-gguf": None})
    plan, _ = _plan(ws, hub)
    result = _apply(ws, plan, FakeSteps(fail={"models.a"}), hub, jobs=1)
    assert list(result.failed) == ["pull:models.a"] and result.not_run == ["pull:models.b"]


def test_an_interrupted_apply_resumes_from_the_journal(ws: Path) -> None:
    hub = FakeHub({"org/a": C1, "org/b": C1, "me/a-gguf": None})
    plan, _ = _plan(ws, hub)
    first = _apply(ws, plan, FakeSteps(fail={"conversions.qa"}), hub, jobs=1, keep_going=True)
    assert sorted(first.completed) == ["pull:models.a", "pull:models.b"]
    journal = Journal(Workspace(ws / "hf.yaml").journal(plan.plan_id))
    from batuta_sync.core.lockfile import lock_digest

    assert sorted(journal.done_at(lock_digest(read_lock(ws / "hf.lock")))) == ["pull:models.a", "pull:models.b"]
    assert journal.done_at(plan.lock_digest) == []
    # hf.lock moved, but only by this plan's own actions: the same plan resumes.
    steps = FakeSteps()
    second = _apply(ws, plan, steps, hub, jobs=1)
    assert second.ok and sorted(second.resumed) == ["pull:models.a", "pull:models.b"]
    assert steps.ran == ["convert:conversions.qa", "push:publish.pa"]


def test_a_resume_after_every_change_was_recorded_still_records_the_plan(ws: Path) -> None:
    """A driver killed after the last action was recorded but before ``last_applied_plan`` was
    written: the resumed apply runs nothing, and hf.lock ends as an uninterrupted apply's would."""
    import dataclasses

    from batuta_sync.core.lockfile import write_lock

    hub = FakeHub({"org/a": C1, "org/b": C1, "me/a-gguf": None})
    plan, _ = _plan(ws, hub)
    assert _apply(ws, plan, FakeSteps(), hub, jobs=1).ok
    done = read_lock(ws / "hf.lock")
    assert done is not None and done.last_applied_plan == plan.plan_id
    # the crash: every entry recorded, the journal still there, no plan id yet
    write_lock(ws / "hf.lock", dataclasses.replace(done, last_applied_plan=None))
    journal = Journal(Workspace(ws / "hf.yaml").journal(plan.plan_id))
    from batuta_sync.core.lockfile import lock_digest

    for a in plan.actions:
        journal.record(a.id, lock_digest(read_lock(ws / "hf.lock")))
    steps = FakeSteps()
    again = _apply(ws, plan, steps, hub, jobs=1)
    assert again.ok and steps.ran == [] and sorted(again.resumed) == sorted(a.id for a in plan.actions)
    final = read_lock(ws / "hf.lock")
    assert final is not None and final.last_applied_plan == plan.plan_id


def test_stale_plans_are_refused_listing_each_precondition(ws: Path) -> None:
    hub = FakeHub({"org/a": C1, "org/b": C1, "me/a-gguf": None})
    plan, _ = _plan(ws, hub)
    hub.heads["org/a"] = C2
    (ws / "hf.yaml").write_text(MANIFEST.replace("b: {repo: org/b}", "b: {repo: org/b, include: ['*.json']}"))
    (ws / "hf.lock").write_text("version: 1\nlineage: x\nserial: 1\nresources: {}\n")
    with pytest.raises(StalePlanError) as info:
        _apply(ws, plan, FakeSteps(), hub)
    text = info.value.message
    assert "hf.yaml changed since the plan" in text
    assert "hf.lock changed since the plan" in text
    assert f"models.a: org/a@main moved from {C1[:7]} to {C2[:7]}" in text
    assert info.value.exit_code == 4


def test_check_fresh_is_pure_given_a_resolver(ws: Path) -> None:
    hub = FakeHub({"org/a": C1, "org/b": C1, "me/a-gguf": None})
    plan, _ = _plan(ws, hub)
    journal = Journal(ws / "j.json")
    assert check_fresh(plan, manifest_digest=plan.manifest_digest, lock=None, journal=journal, resolve=None) == []
    problems = check_fresh(plan, manifest_digest=plan.manifest_digest, lock=None, journal=journal,
                           resolve=lambda pre: (_ for _ in ()).throw(NotFoundError("gone")))
    assert any("cannot check" in p for p in problems)
    refresh, _ = _plan(ws, hub, refresh_only=True)
    assert any("refresh-only" in p for p in check_fresh(refresh, manifest_digest=refresh.manifest_digest, lock=None,
                                                         journal=journal, resolve=None))


def test_a_second_apply_is_refused_naming_the_holder(ws: Path) -> None:
    import os

    hub = FakeHub({"org/a": C1, "org/b": C1, "me/a-gguf": None})
    plan, _ = _plan(ws, hub)
    with WorkspaceLock(Workspace(ws / "hf.yaml").apply_lock):
        with pytest.raises(WorkspaceBusyError, match=f"pid {os.getpid()}") as info:
            _apply(ws, plan, FakeSteps(), hub)
        assert info.value.exit_code == 17
    assert _apply(ws, plan, FakeSteps(), hub).ok  # released


def test_no_op_plan_makes_one_call_per_locked_branch_and_none_when_frozen(ws: Path) -> None:
    hub = FakeHub({"org/a": C1, "org/b": C1, "me/a-gguf": None})
    plan, _ = _plan(ws, hub)
    _apply(ws, plan, FakeSteps(), hub)
    hub.calls = 0
    _again, _ = _plan(ws, hub, targets=["models"])
    assert hub.calls == 3  # resolve_commit for a, b and the publish target
    hub.calls = 0
    _plan(ws, hub, frozen=True)
    assert hub.calls == 1  # only the publish target


def test_missing_step_function_fails_the_action(ws: Path) -> None:
    hub = FakeHub({"org/a": C1, "org/b": C1, "me/a-gguf": None})
    plan, _ = _plan(ws, hub, targets=["models.a"])
    settings = resolve_settings(env={"HF_HOME": str(ws / "hfhome")}, home=ws)
    result = apply_plan(plan, manifest=ws / "hf.yaml", settings=settings, steps={}, client_factory=lambda: hub)
    assert "No step function" in str(result.failed["pull:models.a"])


def test_apply_refuses_before_starting_when_the_disk_is_too_small(ws: Path) -> None:
    from dataclasses import replace

    from batuta_sync.errors import DiskFullError

    hub = FakeHub({"org/a": C1, "org/b": C1, "me/a-gguf": None})
    plan, _ = _plan(ws, hub, targets=["models.a"])
    huge = replace(plan, actions=tuple(replace(a, disk_bytes=10**18) for a in plan.actions))
    steps = FakeSteps()
    with pytest.raises(DiskFullError, match=r"needs 1000000\.0 TB") as info:
        _apply(ws, huge, steps, hub)
    assert info.value.exit_code == 16 and steps.ran == [] and not (ws / "hf.lock").exists()


def test_public_api_is_exported_lazily() -> None:
    import batuta_sync

    for name in ("load_manifest", "make_plan", "apply_plan", "Plan", "Action"):
        assert name in batuta_sync.__all__
        assert getattr(batuta_sync, name).__name__ == name


def test_journal_prefix_matches_the_lock_that_was_actually_written(tmp_path: Path) -> None:
    D0, D1, D2 = ("sha256:" + c * 64 for c in "012")
    j = Journal(tmp_path / "j" / "p.json")
    j.record("pull:models.a", D1)
    j.record("pull:models.b", D2)  # killed before hf.lock reached sha256:2
    again = Journal(tmp_path / "j" / "p.json")
    assert again.done_at(D1) == ["pull:models.a"]  # models.b is redone
    assert again.done_at(D2) == ["pull:models.a", "pull:models.b"]
    assert again.done_at(D0) == [] and again.digests() == {D1, D2}
    again.remove()
    assert not Journal(tmp_path / "j" / "p.json").exists


def test_a_forked_child_does_not_keep_the_workspace_lock(tmp_path: Path) -> None:
    import os

    lock_path = tmp_path / "w" / "apply.lock"
    held = WorkspaceLock(lock_path).acquire()
    r, w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: outlives the parent, like an orphaned worker would
        os.close(w)
        os.write(ready_w, b"r")  # the at-fork hooks have run by now
        os.read(r, 1)
        os._exit(0)
    os.close(r)
    os.read(ready_r, 1)
    os.close(ready_r)
    os.close(ready_w)
    try:
        fh = held._fh  # die like SIGKILL would: the fd closes, no explicit unlock
        assert fh is not None
        fh.close()
        WorkspaceLock(lock_path).acquire().release()  # free although the child still runs
    finally:
        os.write(w, b"x")
        os.close(w)
        os.waitpid(pid, 0)


def test_taking_the_workspace_lock_sweeps_temp_files_of_killed_lock_writes(tmp_path: Path) -> None:
    """Reliability finding #14: a SIGKILL inside write_lock left `.hf.lock.<rand>.tmp` for good.
    Every writer of hf.lock and the journal holds the workspace lock, so the next holder removes
    what a dead writer left; nothing else is touched."""
    ws = Workspace(tmp_path / "hf.yaml")
    (tmp_path / ".hf.lock.k1l2.tmp").write_text("half a lock")
    journal_dir = tmp_path / ".batuta" / "journal"
    journal_dir.mkdir(parents=True)
    (journal_dir / ".journal.x9").write_text("{")
    (tmp_path / "notes.tmp").write_text("mine")
    (journal_dir / "p1.json").write_text("{}")
    lock = WorkspaceLock(ws.apply_lock).acquire()
    try:
        assert not (tmp_path / ".hf.lock.k1l2.tmp").exists()
        assert not (journal_dir / ".journal.x9").exists()
        assert (tmp_path / "notes.tmp").read_text() == "mine" and (journal_dir / "p1.json").exists()
    finally:
        lock.release()
