"""The worker's task functions, run in this process (no cluster: ``BATUTA_WORKER_CACHE`` names
the worker cache, and no progress topic): against our Hub on loopback and a file:// remote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batuta_sync.core.lockfile import RepoLock, entry_from_dict
from batuta_sync.distributed.worker import ConvertTask, PullTask, convert_task, pull_task
from batuta_sync.remote import open_remote
from batuta_sync.remote.cas import SharedStore
from batuta_sync.tinymodel import write_tiny_llama


@pytest.fixture
def planned(hub_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[RepoLock, str]:
    """The planned lock entry of org/tiny and a fresh file:// remote; the worker cache in tmp."""
    from batuta_sync.core.api import make_plan, settings_for
    from batuta_sync.core.manifest import load_manifest

    monkeypatch.setenv("BATUTA_WORKER_CACHE", str(tmp_path / "worker"))
    src = write_tiny_llama(tmp_path / "seed")
    hub_env.store.commit("org/tiny", {p.name: p for p in src.iterdir() if p.is_file()})
    (tmp_path / "hf.yaml").write_text("version: 1\nmodels:\n  tiny: {repo: org/tiny}\n")
    man = load_manifest(tmp_path / "hf.yaml")
    plan = make_plan(man, settings=settings_for(man))
    entry = entry_from_dict("models.tiny", plan.actions[0].lock_entry)
    assert isinstance(entry, RepoLock)
    return entry, f"file://{tmp_path / 'remote'}"


def _pull_task(entry: RepoLock, remote: str, endpoint: str) -> PullTask:
    return PullTask(action_id="pull:models.tiny", endpoint=endpoint, remote=remote, repo=entry.repo,
                    repo_type=entry.repo_type, revision=entry.revision, commit=entry.commit,
                    files=tuple((f.path, f.size, f.gitsha1 or "", f.sha256) for f in entry.files))


def _inputs(entry: RepoLock) -> tuple[tuple[str, str, int], ...]:
    return tuple((f.path, str(f.sha256 or f.gitsha1), f.size) for f in entry.files)


def test_pull_then_convert_through_the_remote(planned: tuple[RepoLock, str], hub_env: Any, tmp_path: Path) -> None:
    entry, remote = planned
    out = pull_task(_pull_task(entry, remote, hub_env.url))
    assert "error" not in out, out
    assert out["digests"] == {f.path: [f.sha256 or f.gitsha1, f.size] for f in entry.files}
    assert out["bytes"] == sum(f.size for f in entry.files)
    shared = SharedStore(open_remote(remote))
    assert all(shared.has_blob(str(f.sha256 or f.gitsha1)) for f in entry.files)
    assert (tmp_path / "worker" / "hub").is_dir()  # the worker's own cache, not the driver's

    again = pull_task(_pull_task(entry, remote, hub_env.url))  # served by the worker's cache
    assert again["digests"] == out["digests"] and again["bytes"] == 0

    task = ConvertTask(action_id="convert:conversions.q", remote=remote, key="sha256:" + "ab" * 32,
                       source_name="src", inputs=_inputs(entry), to="gguf", quantization="Q8_0")
    conv = convert_task(task)
    assert "error" not in conv, conv
    (name,) = conv["digests"]
    assert name == "src-Q8_0.gguf"  # named after the driver's source folder, as locally
    record = shared.get_run(task.key)
    assert record == {name: {"sha256": conv["digests"][name][0], "size": conv["digests"][name][1]}}
    assert convert_task(task)["cached"] is True  # the run record is reused, not converted again


def test_expected_failures_come_back_as_payloads(planned: tuple[RepoLock, str], hub_env: Any) -> None:
    entry, remote = planned
    missing = ConvertTask(action_id="convert:conversions.q", remote=remote, key="sha256:" + "cd" * 32,
                          source_name="src", inputs=_inputs(entry), to="gguf", quantization="Q8_0")
    out = convert_task(missing)  # nothing was pulled into this remote
    assert out["error"]["code"] == "integrity" and out["error"]["exit_name"] == "integrity"
    assert "is not in the remote" in out["error"]["message"]

    gone = PullTask(action_id="pull:models.x", endpoint=hub_env.url, remote=remote, repo="org/none",
                    repo_type="model", revision="main", commit="0" * 40, files=(("a.txt", 1, "1" * 40, None),))
    out = pull_task(gone)
    assert "error" in out and out["error"]["exit_name"] in ("not-found", "integrity", "network")
