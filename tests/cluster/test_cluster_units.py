"""The Dask executor's driver without a shared cluster: what a task carries (never the token),
how a lost worker maps to an error, and what ``dask-local:N`` configures."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.core.actions import Action, ActionKind, Reason
from batuta_sync.core.executor import StepContext
from batuta_sync.core.lockfile import Lock
from batuta_sync.errors import BatutaError

pytest.importorskip("distributed")

TOKEN = "hf_DaskDriverSecretToken0123456789"


class _Capture:
    """A Cluster stand-in: records what would be sent and answers with a worker error."""

    topic = "t"

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.sinks: dict[str, Any] = {}

    def submit(self, action: Any, fn: Any, task: Any, *, resources: Any, ctx: Any) -> dict[str, Any]:
        self.sent.append((fn, task, resources))
        return {"error": {"message": "stop here", "hint": "", "code": "not-found", "exit_name": "not-found"},
                "worker": "tcp://w:1"}

    def memory_limit(self) -> None:
        return None


def test_a_task_never_carries_the_drivers_token(hub_env: Any, tmp_path: Path) -> None:
    from batuta_sync.core.api import make_plan, settings_for
    from batuta_sync.core.manifest import load_manifest
    from batuta_sync.distributed.driver import RemoteSteps
    from batuta_sync.remote import open_remote
    from batuta_sync.remote.cas import SharedStore

    hub_env.store.commit("org/a", {"a.txt": b"a", "config.json": b"{}"})
    (tmp_path / "hf.yaml").write_text("version: 1\nmodels:\n  a: {repo: org/a}\n")
    man = load_manifest(tmp_path / "hf.yaml")
    settings = settings_for(man, {"token": TOKEN, "remote": f"file://{tmp_path / 'r'}"})
    assert settings.token_value() == TOKEN
    plan = make_plan(man, settings=settings)
    (pull,) = [a for a in plan.actions if a.kind is ActionKind.PULL]
    capture = _Capture()
    steps = RemoteSteps(capture, SharedStore(open_remote(str(settings.remote))), settings, man, {})  # type: ignore[arg-type]
    with pytest.raises(BatutaError) as info:
        steps.pull(pull, StepContext(lock=Lock()))
    assert info.value.code == "not-found" and info.value.exit_code == 8  # the worker's error, its exit code
    assert "models.a (on worker tcp://w:1): stop here" in info.value.message
    (_fn, task, resources), = capture.sent
    assert resources is None
    blob = pickle.dumps(task)
    assert TOKEN.encode() not in blob and b"DaskDriverSecret" not in blob
    assert task.endpoint == hub_env.url and task.commit == pull.lock_entry["commit"]  # type: ignore[index]


class _LostFuture:
    def add_done_callback(self, fn: Any) -> None:
        fn(self)

    def result(self) -> Any:
        from distributed import KilledWorker

        raise KilledWorker("batuta-convert-x", "tcp://w:1", 3)

    def cancel(self) -> None: ...


class _LostClient:
    def submit(self, *a: Any, **k: Any) -> _LostFuture:
        return _LostFuture()


def test_a_worker_lost_too_often_is_a_worker_lost_error() -> None:
    from batuta_sync.distributed.driver import Cluster

    runner = Cluster(_LostClient(), retries=2)
    action = Action(kind=ActionKind.CONVERT, address="conversions.big", reason=Reason.NOT_LOCKED)
    with pytest.raises(BatutaError) as info:
        runner.submit(action, abs, 1, resources=None, ctx=StepContext(lock=Lock()))
    assert info.value.code == "worker-lost"
    assert "conversions.big: the workers running it died 4 times" in info.value.message
    assert runner.outstanding == {}


@pytest.mark.slow
def test_dask_local_bounds_worker_loss_and_listens_on_loopback_only() -> None:
    from batuta_sync.core.manifest import parse_executor
    from batuta_sync.distributed.driver import connect

    with connect(parse_executor("dask-local:1"), retries=2) as cluster:
        client = cluster.client
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")

        def allowed(dask_scheduler: Any) -> int:
            return int(dask_scheduler.allowed_failures)

        assert client.run_on_scheduler(allowed) == 2
        hosts = {w.split("://")[1].rsplit(":", 1)[0] for w in client.scheduler_info()["workers"]}
        assert hosts == {"127.0.0.1"}


def test_a_plan_without_pulls_or_conversions_never_reaches_the_cluster(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from batuta_sync.core.manifest import parse_executor
    from batuta_sync.distributed.driver import DaskHook
    from batuta_sync.settings import resolve_settings

    hook = DaskHook(parse_executor("dask://127.0.0.1:9"))  # nothing listens there
    steps: dict[Any, Any] = {ActionKind.PUSH: abs}
    plan = SimpleNamespace(actions=[Action(kind=ActionKind.PUSH, address="publish.p", reason=Reason.NOT_LOCKED)])
    settings = resolve_settings(flags={"remote": f"file://{tmp_path / 'r'}"})
    with hook(steps, settings, None, plan) as got:  # type: ignore[arg-type]
        assert got is steps
