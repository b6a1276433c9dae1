"""Ctrl-C in ``batuta apply`` (issue 14): the first press says at once that in-flight actions are
finishing and starts nothing new; the second aborts the transfers, leaving resumable partials.

A real ``python -m batuta_sync apply`` process gets real SIGINTs while it pulls from the local Hub
(slowed with injected latency so the pull is still running when the signals arrive).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.cli import main
from batuta_sync.core.lockfile import read_lock

N_FILES = 60


def _wait_for(pred: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


class Apply:
    """``batuta apply`` in a subprocess; stderr collected line by line as it comes."""

    def __init__(self, ws: Path, hub: Any, *argv: str) -> None:
        env = dict(os.environ, HF_ENDPOINT=hub.url, PYTHONPATH=os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "batuta_sync", "apply", *argv, "--auto-approve", "--jobs", "1"],
            cwd=ws, env=env, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def finish(self) -> int:
        try:
            code = self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=10)
        return code


@pytest.fixture
def slow_ws(tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]) -> Path:
    hub_env.store.commit("org/slow", {f"shard-{i:03d}.txt": bytes([65 + i % 26]) * (2000 + i) for i in range(N_FILES)})
    hub_env.store.commit("org/next", {"config.json": b"{}"})
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "hf.yaml").write_text("version: 1\nmodels:\n  a: {repo: org/slow}\n  b: {repo: org/next}\n")
    assert main(["plan", "-f", str(ws / "hf.yaml"), "-o", str(ws / "plan.json")]) == 0
    capsys.readouterr()
    hub_env.faults.configure(latency_ms=200, path_filter="org/slow/resolve")
    return ws


def _downloads(hub: Any) -> int:
    return int(hub.log.count("GET", path_contains="org/slow/resolve"))


def test_first_ctrl_c_finishes_in_flight_actions_and_starts_nothing_new(slow_ws: Path, hub_env: Any) -> None:
    run = Apply(slow_ws, hub_env, "plan.json")
    _wait_for(lambda: _downloads(hub_env) >= 2)
    run.proc.send_signal(signal.SIGINT)
    _wait_for(lambda: run.said("Ctrl-C: finishing 1 in-flight action (pull models.a)"))
    assert run.said("Press Ctrl-C again to abort")
    assert _downloads(hub_env) < N_FILES  # said while the pull was still running
    assert run.finish() == 130, "".join(run.lines)
    assert run.said("Apply interrupted: 1 done, 0 aborted, 1 not run")
    lock = read_lock(slow_ws / "hf.lock")
    assert lock is not None and set(lock.entries) == {"models.a"}  # a finished, b never started
    assert hub_env.log.count(path_contains="org/next/resolve") == 0
    hub_env.faults.reset()
    rest = Apply(slow_ws, hub_env, "plan.json")
    assert rest.finish() == 0, "".join(rest.lines)
    assert rest.said("1 done (1 already done before)")


def test_second_ctrl_c_aborts_transfers_and_the_next_apply_resumes(slow_ws: Path, hub_env: Any) -> None:
    run = Apply(slow_ws, hub_env, "plan.json")
    _wait_for(lambda: _downloads(hub_env) >= 2)
    run.proc.send_signal(signal.SIGINT)
    _wait_for(lambda: run.said("Ctrl-C: finishing"))
    run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 130, "".join(run.lines)
    assert run.said("Ctrl-C again: aborting pull models.a")
    assert run.said("Apply interrupted: 0 done, 1 aborted, 1 not run")
    fetched = _downloads(hub_env)
    assert fetched < N_FILES  # the pull stopped instead of running to the end
    lock = read_lock(slow_ws / "hf.lock")
    assert lock is None or "models.a" not in lock.entries
    blobs = [p for p in (Path(os.environ["HF_HUB_CACHE"]) / "models--org--slow" / "blobs").iterdir()
             if not p.name.endswith(".incomplete")]
    assert 0 < len(blobs) < N_FILES
    hub_env.faults.reset()
    hub_env.log.clear()
    rest = Apply(slow_ws, hub_env, "plan.json")
    assert rest.finish() == 0, "".join(rest.lines)
    fetched_again = {e.path for e in hub_env.log.entries if "org/slow/resolve" in e.path}
    assert len(fetched_again) == N_FILES - len(blobs)  # completed files are not fetched again


# --------------------------------------------------------------------------- in process (fake steps)


class _Seen:
    def __init__(self) -> None:
        self.events: list[tuple[list[str], bool]] = []
        self.heard = threading.Event()

    def started(self, action: Any) -> None: ...
    def finished(self, action: Any, result: Any) -> None: ...
    def failed(self, action: Any, error: BaseException) -> None: ...
    def skipped(self, action: Any, cause: str) -> None: ...

    def interrupted(self, in_flight: Any, *, abort: bool) -> None:
        self.events.append(([a.id for a in in_flight], abort))
        self.heard.set()


def _walk(tmp_path: Path, step: Any, reporter: Any) -> Any:
    from batuta_sync.core.actions import Action, ActionKind, Reason
    from batuta_sync.core.executor import execute
    from batuta_sync.core.planner.plan import Plan
    from batuta_sync.core.workspace import Journal

    actions = tuple(Action(ActionKind.PULL, f"models.{n}", Reason.NOT_IN_CACHE) for n in "ab")
    plan = Plan("p1", "hf.yaml", "sha256:m", "none", actions=actions)
    return execute(plan, {ActionKind.PULL: step}, lock=None, lock_path=tmp_path / "hf.lock",
                   journal=Journal(tmp_path / "journal.json"), jobs=1, reporter=reporter)


def test_executor_one_press_lets_the_running_step_finish(tmp_path: Path) -> None:
    from batuta_sync.core.executor import StepResult

    seen = _Seen()
    ran: list[str] = []

    def step(action: Any, ctx: Any) -> Any:
        ran.append(action.address)
        os.kill(os.getpid(), signal.SIGINT)
        assert seen.heard.wait(30)
        return StepResult()

    result = _walk(tmp_path, step, seen)
    assert ran == ["models.a"] and seen.events == [(["pull:models.a"], False)]
    assert result.interrupted and not result.ok and result.completed == ["pull:models.a"]
    assert result.not_run == ["pull:models.b"] and result.to_dict()["interrupted"] is True
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_executor_second_press_sets_abort_and_the_step_counts_as_aborted(tmp_path: Path) -> None:
    from batuta_sync.core.steps import AbortableProgress

    seen = _Seen()

    def step(action: Any, ctx: Any) -> Any:
        sink = AbortableProgress(None, ctx.abort)
        sink.start(1, 10)
        sink.file_start("f", 10, 0)
        os.kill(os.getpid(), signal.SIGINT)
        assert seen.heard.wait(30)
        os.kill(os.getpid(), signal.SIGINT)
        assert ctx.abort.wait(30)
        sink.file_done("f", cached=False)
        sink.close()
        sink.advance("f", 5)  # raises KeyboardInterrupt: the download engine parks its partial
        raise AssertionError("not reached")

    result = _walk(tmp_path, step, seen)
    assert [abort for _ids, abort in seen.events] == [False, True]
    assert result.aborted == ["pull:models.a"] and result.not_run == ["pull:models.b"] and not result.failed


def test_interrupt_messages() -> None:
    from batuta_sync.cli.core_cmd import interrupt_message
    from batuta_sync.core.actions import Action, ActionKind, Reason

    a = Action(ActionKind.PULL, "models.a", Reason.NOT_IN_CACHE)
    b = Action(ActionKind.CONVERT, "conversions.b", Reason.NOT_LOCKED)
    assert interrupt_message([], abort=False) == "Ctrl-C: stopping; nothing new starts."
    assert interrupt_message([a, b], abort=False).startswith(
        "Ctrl-C: finishing 2 in-flight actions (pull models.a, convert conversions.b)"
    )
    assert "aborting the running actions" in interrupt_message([], abort=True)


def test_cli_summary_of_an_interrupted_apply(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from batuta_sync.cli.core_cmd import _finish
    from batuta_sync.core.executor import ApplyResult

    result = ApplyResult("p", completed=["pull:models.a"], not_run=["pull:models.b"], interrupted=True)
    for plan_file, again in (("ci/p.json", "batuta apply ci/p.json"), (None, "batuta apply")):
        args = argparse.Namespace(json=False, quiet=False, plan=plan_file)
        assert _finish(args, result) == 130
        err = capsys.readouterr().err
        assert "Apply interrupted: 1 done, 0 aborted, 1 not run" in err and f"`{again}` again" in err


# --------------------------------------------------------------------------- push and convert


def test_second_ctrl_c_aborts_a_push_without_a_commit(tmp_path: Path, hub_env: Any,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The same two presses during a publish: the LFS uploads stop, nothing is committed, and the
    next apply pushes (only what the Hub still lacks is sent: LFS objects already uploaded are kept)."""
    ws = tmp_path / "ws"
    data = ws / "data"
    data.mkdir(parents=True)
    for i in range(N_FILES):
        (data / f"part-{i:03d}.parquet").write_bytes(b"PAR1" + bytes([i % 251]) * (30_000 + i) + b"PAR1")
    (ws / "hf.yaml").write_text("version: 1\npublish:\n  d: {from: ./data, repo: org/d, type: dataset}\n")
    assert main(["plan", "-f", str(ws / "hf.yaml"), "-o", str(ws / "plan.json")]) == 0
    capsys.readouterr()
    hub_env.faults.configure(latency_ms=200, path_filter="/lfs-upload/")
    uploads = lambda: int(hub_env.log.count("PUT", path_contains="/lfs-upload/"))  # noqa: E731
    run = Apply(ws, hub_env, "plan.json")
    _wait_for(lambda: uploads() >= 1)
    run.proc.send_signal(signal.SIGINT)
    _wait_for(lambda: run.said("Ctrl-C: finishing 1 in-flight action (push publish.d)"))
    run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 130, "".join(run.lines)
    assert run.said("Ctrl-C again: aborting push publish.d")
    assert run.said("Apply interrupted: 0 done, 1 aborted")
    assert uploads() < N_FILES
    assert hub_env.log.count("POST", path_contains="/commit/") == 0  # no commit was made
    lock = read_lock(ws / "hf.lock")
    assert lock is None or "publish.d" not in lock.entries
    hub_env.faults.reset()
    rest = Apply(ws, hub_env)  # the aborted push had created the repo: the saved plan is stale, re-plan
    assert rest.finish() == 0, "".join(rest.lines)
    assert hub_env.log.count("POST", path_contains="/commit/") == 1


def test_an_abort_stops_a_conversion_and_leaves_no_partial_output(tmp_path: Path) -> None:
    """apply's convert step hands the converter a per-tensor check of ``abort`` (a second Ctrl-C)."""
    from batuta_sync.convert import convert
    from batuta_sync.core.steps import _abort_check
    from batuta_sync.tinymodel import write_tiny_llama

    src = write_tiny_llama(tmp_path / "src")
    abort = threading.Event()
    seen: list[int] = []
    check = _abort_check(abort)

    def progress(done: int, total: int) -> None:
        seen.append(done)
        abort.set()  # pressed during the first tensor
        check(done, total)

    with pytest.raises(KeyboardInterrupt):
        convert(src, tmp_path / "out", to="gguf", quantization="Q8_0", progress=progress)
    assert seen == [1]  # stopped at the next tensor, not at the end
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == []  # no half-written GGUF, no temp file
    never = threading.Event()
    res = convert(src, tmp_path / "out", to="gguf", quantization="Q8_0", progress=_abort_check(never))
    assert res.files and all(p.exists() for p in res.files)
