"""The driver's pieces against the module's real cluster: progress events from the workers reach
the local progress sink, a second Ctrl-C cancels the outstanding future on the cluster, and
conversions ask for ``memory`` only when a worker declares it."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.core.actions import Action, ActionKind, Reason
from batuta_sync.core.executor import StepContext
from batuta_sync.core.lockfile import Lock
from batuta_sync.distributed.driver import Cluster, memory_request

pytestmark = pytest.mark.slow


class _Recorder:
    def __init__(self) -> None:
        self.started: list[tuple[int, int]] = []
        self.bytes = 0

    def start(self, files: int, total_bytes: int) -> None:
        self.started.append((files, total_bytes))

    def file_start(self, path: str, size: int, done: int) -> None: ...

    def advance(self, path: str, nbytes: int) -> None:
        self.bytes += nbytes

    def file_done(self, path: str, *, cached: bool) -> None: ...

    def close(self) -> None: ...


def test_worker_progress_reaches_the_drivers_sink(
    hub_env: Any, executor: str, s3_remote: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from batuta_sync.core.api import plan_and_apply, settings_for
    from batuta_sync.core.manifest import load_manifest
    from batuta_sync.distributed import executor_hook, resolve_executor

    body = b"x" * 300_000
    hub_env.store.commit("org/big", {"big.txt": body, "config.json": b"{}"})
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "hf.yaml").write_text(f"version: 1\ndefaults:\n  remote: {s3_remote}\nmodels:\n  big: {{repo: org/big}}\n")
    man = load_manifest(ws / "hf.yaml")
    settings = settings_for(man)
    sinks: dict[str, _Recorder] = {}

    def progress_for(action: Any) -> _Recorder:
        return sinks.setdefault(action.address, _Recorder())

    out = plan_and_apply(man, settings=settings, executor_hook=executor_hook(resolve_executor(executor, None), settings),
                         progress_for=progress_for)
    assert out.ok
    rec = sinks["models.big"]
    assert rec.started == [(2, len(body) + 2)]  # the worker's download, announced on the driver
    assert rec.bytes == len(body) + 2  # every byte the worker downloaded, counted once


def _action() -> Action:
    return Action(kind=ActionKind.PULL, address="models.slow", reason=Reason.NOT_LOCKED)


def test_a_second_ctrl_c_cancels_the_future_on_the_cluster(cluster: Any) -> None:
    from distributed import Client

    with Client(cluster, set_as_default=False) as client:
        runner = Cluster(client, retries=0)
        ctx = StepContext(lock=Lock())
        threading.Timer(0.5, ctx.abort.set).start()  # the second Ctrl-C, while the task sleeps
        with pytest.raises(KeyboardInterrupt):
            runner.submit(_action(), time.sleep, 60, resources=None, ctx=ctx)
        assert runner.outstanding == {}

        def tasks(dask_scheduler: Any) -> list[str]:
            return [str(k) for k in dask_scheduler.tasks if str(k).startswith("batuta-")]

        for _ in range(100):  # the scheduler forgets the cancelled task (asynchronously)
            if not client.run_on_scheduler(tasks):
                break
            time.sleep(0.05)
        assert client.run_on_scheduler(tasks) == []


def test_memory_is_requested_only_when_a_worker_declares_it(cluster: Any) -> None:
    from distributed import Client

    with Client(cluster, set_as_default=False) as client:
        assert Cluster(client, retries=0).memory_limit() is None  # the module's workers declare none
    assert memory_request(None, 10**9) is None
    assert memory_request(8 * 10**9, 3 * 10**9) == {"memory": 3e9}
    assert memory_request(2 * 10**9, 3 * 10**9) == {"memory": 2e9}  # capped: always placeable


def test_declared_memory_is_seen_and_the_task_still_runs() -> None:
    distributed = pytest.importorskip("distributed")
    import logging

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address="127.0.0.1:0", silence_logs=logging.WARNING,
                                  resources={"memory": 4e9}) as lc, distributed.Client(lc, set_as_default=False) as client:
        runner = Cluster(client, retries=0)
        assert runner.memory_limit() == 4 * 10**9
        # asking for more than the input's worth is capped at what the worker has: it runs
        out = runner.submit(_action(), str.upper, "placed", resources=memory_request(runner.memory_limit(), 10**10),
                            ctx=StepContext(lock=Lock()))
        assert out == "PLACED"


def test_dask_local_starts_its_own_cluster_for_the_apply(
    hub_env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """``dask-local:N``: a LocalCluster of N processes on 127.0.0.1 for this apply (here with a
    file:// remote, which every local worker reaches)."""
    pytest.importorskip("distributed")
    from batuta_sync.cli import main
    from batuta_sync.core.lockfile import RepoLock, read_lock

    hub_env.store.commit("org/a", {"a.txt": b"a" * 1000, "config.json": b"{}"})
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "hf.yaml").write_text("version: 1\nmodels:\n  a: {repo: org/a, output: ./a}\n")
    code = main(["apply", "-f", str(ws / "hf.yaml"), "--auto-approve", "--remote", f"file://{tmp_path / 'remote'}",
                 "--executor", "dask-local:1"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "on worker tcp://127.0.0.1:" in err
    assert (ws / "a" / "a.txt").read_bytes() == b"a" * 1000
    assert isinstance(read_lock(ws / "hf.lock").get("models.a"), RepoLock)  # type: ignore[union-attr]
