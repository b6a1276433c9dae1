"""``batuta apply --executor dask://…``: pulls and conversions on a real Dask cluster (2 worker
processes on 127.0.0.1), our Hub on loopback, a real S3 remote (moto on loopback).

The cluster's workers have their own caches (under their Dask local directory); what the
driver's workspace ends up with came through the remote, and must equal a local apply's.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.cli import main
from batuta_sync.core.lockfile import ConversionLock, read_lock
from batuta_sync.remote import open_remote
from batuta_sync.remote.cas import SharedStore
from batuta_sync.tinymodel import write_tiny_llama

pytestmark = pytest.mark.slow

SMALL = {
    "config.json": b'{"a": 1}',
    "notes.txt": b"hello " * 300,
    "model.safetensors": (lambda h: struct.pack("<Q", len(h)) + h + b"w" * 4096)(
        b'{"w":{"dtype":"U8","shape":[4096],"data_offsets":[0,4096]}}'
    ),
}

MANIFEST = """version: 1
{defaults}models:
  tiny: {{repo: org/tiny}}
  small: {{repo: org/small, output: ./small}}
  other: {{repo: org/other, output: ./other}}
conversions:
  q8: {{from: models.tiny, to: gguf, quantization: Q8_0, output: ./q8}}
  q4: {{from: models.tiny, to: gguf, quantization: Q4_0, output: ./q4}}
{extra}"""


@pytest.fixture
def hub(hub_env: Any, tmp_path: Path) -> Any:
    src = write_tiny_llama(tmp_path / "seed")
    hub_env.store.commit("org/tiny", {p.name: p for p in src.iterdir() if p.is_file()})
    hub_env.store.commit("org/small", SMALL)
    hub_env.store.commit("org/other", {"a.txt": b"other " * 100, "config.json": b'{"b": 2}'})
    return hub_env


def _workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, remote: str | None, extra: str = "") -> Path:
    monkeypatch.setenv("HF_HOME", str(tmp_path / f"{name}-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / f"{name}-home" / "hub"))
    ws = tmp_path / name
    ws.mkdir()
    defaults = f"defaults:\n  remote: {remote}\n" if remote else ""
    (ws / "hf.yaml").write_text(MANIFEST.format(defaults=defaults, extra=extra))
    return ws / "hf.yaml"


def _tree(ws: Path) -> dict[str, bytes]:
    """Every file the apply put in the workspace (hf.lock aside, and batuta's state folder)."""
    return {
        p.relative_to(ws).as_posix(): p.read_bytes()
        for p in sorted(ws.rglob("*"))
        if p.is_file() and p.name not in ("hf.lock", "hf.yaml") and ".batuta/state" not in p.as_posix()
        and not p.relative_to(ws).as_posix().startswith(".batuta/")
    }


def _lock_text(ws: Path) -> str:
    """hf.lock with the two values that are random per workspace (lineage, plan id) blanked."""
    text = (ws / "hf.lock").read_text()
    return re.sub(r'("?(lineage|last_applied_plan)"?\s*[:=]\s*)"?[0-9a-f-]+"?', r"\1X", text)


def _downloads(hub: Any) -> int:
    return sum(1 for e in hub.log.entries if e.method == "GET" and "/resolve/" in e.path and e.status in (200, 206))


def test_cluster_apply_equals_a_local_apply(
    hub: Any, executor: str, s3_remote: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    local = _workspace(tmp_path, monkeypatch, "local", None)
    assert main(["apply", "-f", str(local), "--auto-approve"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    before = _downloads(hub)

    dist = _workspace(tmp_path, monkeypatch, "dist", s3_remote)
    code = main(["apply", "-f", str(dist), "--auto-approve", "--executor", executor])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "on worker tcp://127.0.0.1:" in err  # the actions ran on the cluster's workers
    assert _lock_text(dist.parent) == _lock_text(local.parent)
    assert _tree(dist.parent) == _tree(local.parent)  # outputs and provenance, byte for byte
    # the workers downloaded each Hub file once; the driver materialized from the remote
    files = len(SMALL) + 2 + sum(1 for p in (tmp_path / "seed").iterdir() if p.is_file())
    assert _downloads(hub) - before == files
    shared = SharedStore(open_remote(s3_remote))
    for addr in ("conversions.q8", "conversions.q4"):
        entry = read_lock(dist.parent / "hf.lock").get(addr)
        assert isinstance(entry, ConversionLock)
        assert shared.get_run(entry.key) is not None  # the worker's run record
    assert main(["plan", "-f", str(dist), "--detailed-exitcode"]) == 0


def test_a_failed_action_on_the_cluster_skips_only_its_dependents(
    hub: Any, executor: str, s3_remote: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # org/small is no model: its conversion fails on the worker (ConversionError), the conversion
    # of that conversion is skipped, and everything else is applied
    extra = ("  bad: {from: models.small, to: gguf, quantization: Q8_0, output: ./bad}\n"
             "  worse: {from: conversions.bad, to: gguf, quantization: Q4_0, output: ./worse}\n")
    dist = _workspace(tmp_path, monkeypatch, "dist", s3_remote, extra=extra)
    code = main(["apply", "-f", str(dist), "--auto-approve", "--keep-going", "--executor", executor, "--json"])
    out = capsys.readouterr()
    assert out.out.strip(), out.err[-3000:]
    doc = json.loads(out.out)
    assert code == 6, doc
    assert set(doc["failed"]) == {"convert:conversions.bad"}
    assert "on worker tcp://127.0.0.1:" in doc["failed"]["convert:conversions.bad"]
    assert doc["skipped"] == {"convert:conversions.worse": "convert:conversions.bad failed"}
    assert sorted(doc["completed"]) == sorted(
        ["pull:models.tiny", "pull:models.small", "pull:models.other", "convert:conversions.q8", "convert:conversions.q4"])
    lock = read_lock(dist.parent / "hf.lock")
    assert lock is not None and "conversions.bad" not in lock.entries and "conversions.q8" in lock.entries


def _die_once_plugin(marker: str) -> Any:
    """A worker plugin: the first worker to start a conversion task exits at once (os._exit), as
    an OOM kill would; the nanny restarts it and the scheduler reschedules the task."""
    from distributed import WorkerPlugin

    class DieOnceInAConversion(WorkerPlugin):  # type: ignore[misc]
        name = "batuta-test-die-once"

        def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
            import os

            if finish == "executing" and str(key).startswith("batuta-convert"):
                try:
                    fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    return
                os.write(fd, str(key).encode())
                os.close(fd)
                os._exit(1)

    return DieOnceInAConversion()


def test_a_worker_killed_during_a_conversion_is_retried_and_the_result_is_identical(
    hub: Any, cluster: Any, executor: str, s3_remote: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from distributed import Client

    local = _workspace(tmp_path, monkeypatch, "local", None)
    assert main(["apply", "-f", str(local), "--auto-approve"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    marker = tmp_path / "killed"
    with Client(cluster, set_as_default=False) as client:
        client.register_plugin(_die_once_plugin(str(marker)))
        try:
            dist = _workspace(tmp_path, monkeypatch, "dist", s3_remote)
            code = main(["apply", "-f", str(dist), "--auto-approve", "--executor", executor])
            err = capsys.readouterr().err
        finally:
            client.unregister_worker_plugin("batuta-test-die-once")
        client.wait_for_workers(2, timeout=60)  # the nanny's restart, for the next test
    assert marker.read_text().startswith("batuta-convert")  # a worker did die mid-conversion
    assert code == 0, err
    assert _lock_text(dist.parent) == _lock_text(local.parent)
    assert _tree(dist.parent) == _tree(local.parent)


class _DriverDies:
    """A reporter that 'kills' the driver (KeyboardInterrupt out of the walk) once ``after``
    actions finished: what the journal recorded by then is all the next apply knows."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.done = 0

    def started(self, action: Any) -> None: ...
    def failed(self, action: Any, error: BaseException) -> None: ...
    def skipped(self, action: Any, cause: str) -> None: ...
    def interrupted(self, in_flight: Any, *, abort: bool) -> None: ...

    def finished(self, action: Any, result: Any) -> None:
        self.done += 1
        if self.done >= self.after:
            raise KeyboardInterrupt


def test_a_driver_killed_mid_apply_resumes_from_the_journal_locally(
    hub: Any, executor: str, s3_remote: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from batuta_sync.core.api import apply_plan, make_plan, settings_for
    from batuta_sync.core.manifest import load_manifest
    from batuta_sync.distributed import executor_hook, resolve_executor

    local = _workspace(tmp_path, monkeypatch, "local", None)
    assert main(["apply", "-f", str(local), "--auto-approve"]) == 0, capsys.readouterr().err
    dist = _workspace(tmp_path, monkeypatch, "dist", s3_remote)
    man = load_manifest(dist)
    settings = settings_for(man)
    plan = make_plan(man, settings=settings)
    with pytest.raises(KeyboardInterrupt):
        apply_plan(plan, manifest=dist, settings=settings, reporter=_DriverDies(after=2), jobs=1,  # type: ignore[arg-type]
                   executor_hook=executor_hook(resolve_executor(executor, None), settings))
    # the same saved plan, now with the local executor: the journal's actions are not redone
    result = apply_plan(plan, manifest=dist, settings=settings)
    assert result.ok, result.to_dict()
    assert len(result.resumed) == 2 and set(result.resumed).isdisjoint(result.completed)  # one action in flight
    assert len(result.resumed) + len(result.completed) == len(plan.actions)
    assert _lock_text(dist.parent) == _lock_text(local.parent)
    assert _tree(dist.parent) == _tree(local.parent)


def test_policies_executor_sends_the_apply_to_the_cluster_and_the_flag_overrides_it(
    hub: Any, executor: str, s3_remote: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "hf.yaml").write_text(
        f"version: 1\ndefaults:\n  remote: {s3_remote}\npolicies:\n  executor: {executor}\n"
        "models:\n  small: {repo: org/small, output: ./small}\n")
    assert main(["apply", "-f", str(ws / "hf.yaml"), "--auto-approve"]) == 0
    assert "pull models.small done" in (err := capsys.readouterr().err) and "on worker tcp://127.0.0.1:" in err
    (ws / "hf.yaml").write_text((ws / "hf.yaml").read_text().replace("output: ./small", "output: ./small2"))
    assert main(["apply", "-f", str(ws / "hf.yaml"), "--auto-approve", "--executor", "local"]) == 0
    err = capsys.readouterr().err
    assert "on worker" not in err and "pull models.small done" in err
    assert (ws / "small2" / "notes.txt").read_bytes() == SMALL["notes.txt"]
