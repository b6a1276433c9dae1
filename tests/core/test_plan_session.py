"""The library owns the plan-and-apply lock: ``core.api.plan_session`` / ``plan_and_apply``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batuta_sync.core.actions import Action
from batuta_sync.core.api import plan_and_apply, plan_session
from batuta_sync.core.executor import StepContext, StepResult
from batuta_sync.core.lockfile import read_lock
from batuta_sync.core.workspace import Workspace, WorkspaceLock
from batuta_sync.errors import UsageError, WorkspaceBusyError
from batuta_sync.settings import Settings, resolve_settings
from batuta_sync.types import RepoRef, RepoSnapshot
from tests.core.fakes import C1
from tests.core.test_executor import MANIFEST, FakeHub, FakeSteps


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    (tmp_path / "hf.yaml").write_text(MANIFEST)
    return tmp_path


def _settings(ws: Path) -> Settings:
    return resolve_settings(env={"HF_HOME": str(ws / "hfhome")}, home=ws)


def _busy(ws: Path) -> bool:
    """True when someone (this process included) holds the workspace lock right now."""
    try:
        with WorkspaceLock(Workspace(ws / "hf.yaml").apply_lock):
            return False
    except WorkspaceBusyError:
        return True


class LockProbingHub(FakeHub):
    """Records whether the workspace lock was held while the plan observed the Hub."""

    def __init__(self, ws: Path) -> None:
        super().__init__({"org/a": C1, "org/b": C1, "me/a-gguf": None})
        self.ws = ws
        self.held: list[bool] = []

    def snapshot(self, ref: RepoRef) -> RepoSnapshot:
        self.held.append(_busy(self.ws))
        return super().snapshot(ref)


class LockProbingSteps(FakeSteps):
    def __init__(self, ws: Path) -> None:
        super().__init__()
        self.ws = ws
        self.held: list[bool] = []

    def pull(self, action: Action, ctx: StepContext) -> StepResult:
        self.held.append(_busy(self.ws))
        return super().pull(action, ctx)


def test_plan_and_apply_holds_one_lock_from_the_plan_to_the_last_action(ws: Path) -> None:
    hub, steps = LockProbingHub(ws), LockProbingSteps(ws)
    shown: list[int] = []

    def approve(plan: Any) -> bool:
        shown.append(len(plan.actions))
        return _busy(ws)  # approval happens under the lock too

    out = plan_and_apply(
        ws / "hf.yaml",
        settings=_settings(ws),
        approve=approve,
        plan_options={"client_factory": lambda: hub},
        steps=steps.mapping(),
    )
    assert out.ok and out.result is not None and out.result.ok
    assert shown == [4]
    assert hub.held == [True, True]  # both snapshots observed under the lock
    assert steps.held == [True, True]  # both pulls applied under the same lock
    assert not _busy(ws)  # released at the end
    lock = read_lock(ws / "hf.lock")
    assert lock is not None and lock.last_applied_plan == out.plan.plan_id


def test_not_approved_changes_nothing(ws: Path) -> None:
    hub, steps = FakeHub({"org/a": C1, "org/b": C1, "me/a-gguf": None}), FakeSteps()
    out = plan_and_apply(
        ws / "hf.yaml", settings=_settings(ws), approve=lambda plan: False,
        plan_options={"client_factory": lambda: hub}, steps=steps.mapping(),
    )
    assert out.result is None and out.ok and len(out.plan.actions) == 4
    assert steps.ran == [] and not (ws / "hf.lock").exists()


def test_a_busy_workspace_is_refused_before_the_hub_is_asked(ws: Path) -> None:
    hub = FakeHub({"org/a": C1, "org/b": C1, "me/a-gguf": None})
    with WorkspaceLock(Workspace(ws / "hf.yaml").apply_lock), pytest.raises(WorkspaceBusyError) as info:
        plan_and_apply(ws / "hf.yaml", settings=_settings(ws), plan_options={"client_factory": lambda: hub})
    assert info.value.exit_code == 17 and hub.calls == 0


def test_a_session_cannot_apply_after_its_lock_is_released(ws: Path) -> None:
    hub, steps = FakeHub({"org/a": C1, "org/b": C1, "me/a-gguf": None}), FakeSteps()
    with plan_session(ws / "hf.yaml", settings=_settings(ws), client_factory=lambda: hub) as session:
        plan = session.plan
    with pytest.raises(UsageError, match="session has ended"):
        session.apply(steps=steps.mapping())
    assert steps.ran == [] and not (ws / "hf.lock").exists()
    # inside the block it applies that very plan
    with plan_session(ws / "hf.yaml", settings=_settings(ws), client_factory=lambda: hub) as again:
        assert [a.id for a in again.plan.actions] == [a.id for a in plan.actions]
        assert again.apply(steps=steps.mapping(), jobs=1).ok
    assert len(steps.ran) == 4
