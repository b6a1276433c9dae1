"""Push at scale (issue 20): a series of bounded commits that resumes after an interruption, pull
requests (``--create-pr``), ``--delete PATTERN``; each result read back with the real
huggingface_hub client from our local Hub."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import HfApi

from batuta_sync.cli import main
from batuta_sync.errors import UsageError
from batuta_sync.publish import PushRequest, prepare_push, push
from batuta_sync.publish.push import commit_batches
from batuta_sync.settings import resolve_settings
from batuta_sync.types import HfAssetType
from tests.publish.test_push_progress import Recorder, _dataset

DS = HfAssetType.DATASET


def _files(hub: Any, repo: str, revision: str = "main") -> set[str]:
    return set(HfApi(endpoint=hub.url).list_repo_files(repo, repo_type="dataset", revision=revision))


def _commits(hub: Any, repo: str, revision: str = "main") -> list[Any]:
    return list(HfApi(endpoint=hub.url).list_repo_commits(repo, repo_type="dataset", revision=revision))


def test_commit_batches_bound_files_and_bytes_and_keep_the_card_last() -> None:
    paths = [f"f{i}" for i in range(7)] + ["README.md"]
    sizes = {p: 10 for p in paths} | {"f3": 1000}
    assert commit_batches(paths, sizes, max_files=3, max_bytes=10**6, last=["README.md"]) == [
        ("f0", "f1", "f2"), ("f3", "f4", "f5"), ("f6", "README.md")]
    # f3 alone is bigger than the byte bound: a commit of its own, never split or refused
    assert commit_batches(paths, sizes, max_files=100, max_bytes=25, last=["README.md"]) == [
        ("f0", "f1"), ("f2",), ("f3",), ("f4", "f5"), ("f6", "README.md")]
    assert commit_batches([], {}, max_files=1, max_bytes=1) == [()]  # a deletes-only push is one commit
    with pytest.raises(UsageError):
        commit_batches(paths, sizes, max_files=0, max_bytes=1)


def test_a_large_push_is_a_series_of_commits_that_resumes_after_an_interruption(
        hub_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = resolve_settings(flags={"endpoint": hub_server.url})
    root = _dataset(tmp_path / "d", 12)
    req = PushRequest(root, "org/big", repo_type=DS, max_files_per_commit=5)
    abort = threading.Event()
    from batuta_sync.hub import upload

    real, calls = upload.commit_files, []

    def second_press_during_commit_2(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["uploads"])
        if len(calls) == 2:
            abort.set()
        return real(*args, **kwargs)

    monkeypatch.setattr(upload, "commit_files", second_press_during_commit_2)
    with pytest.raises(KeyboardInterrupt):
        push(s, req, plan=prepare_push(s, req), sink=Recorder(), abort=abort)
    monkeypatch.undo()
    first = _files(hub_server, "org/big")
    assert len([f for f in first if f.endswith(".parquet")]) == 5  # one whole commit landed, nothing half

    puts = hub_server.log.count("PUT", path_contains="/lfs-upload/")
    plan = prepare_push(s, req)
    assert len([p for p in plan.adds if p.endswith(".parquet")]) == 7  # only what the Hub lacks
    res = push(s, req, plan=plan)
    assert hub_server.log.count("PUT", path_contains="/lfs-upload/") - puts == 7
    assert len(res.commits) == 2 and res.commit == res.commits[-1]
    assert _files(hub_server, "org/big") == {p.name for p in root.iterdir()}
    titles = [c.title for c in _commits(hub_server, "org/big")]
    assert sum("(part 1/2)" in t or "(part 2/2)" in t for t in titles) == 2
    assert sum("(part 1/3)" in t for t in titles) == 1  # the interrupted series' first commit
    assert prepare_push(s, req).is_noop


def test_create_pr_opens_a_pull_request_with_the_whole_series(hub_env: Any, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    hub_env.store.commit("org/pr", {"old.txt": b"x"}, repo_type="dataset")
    main_before = hub_env.store.resolve("org/pr", "main", repo_type="dataset")
    root = _dataset(tmp_path / "d", 7)
    code = main(["hf", "push", "dataset", str(root), "--repo", "org/pr", "--create-pr", "--max-files-per-commit", "3"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "in 3 commits" in out and "Opened pull request refs/pr/1: " in out and "/discussions/1" in out
    assert hub_env.store.resolve("org/pr", "main", repo_type="dataset") == main_before  # main untouched
    assert _files(hub_env, "org/pr", "refs/pr/1") == {p.name for p in root.iterdir()} | {"old.txt"}
    refs = HfApi(endpoint=hub_env.url).list_repo_refs("org/pr", repo_type="dataset", include_pull_requests=True)
    assert [r.ref for r in refs.pull_requests] == ["refs/pr/1"]


def test_delete_pattern_removes_only_matching_remote_files(hub_env: Any, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    hub_env.store.commit("org/del", {"old/a.txt": b"a", "old/b.txt": b"b", "keep.txt": b"k", "logs/x.log": b"l"},
                         repo_type="dataset")
    root = _dataset(tmp_path / "d", 1)
    argv = ["hf", "push", "dataset", str(root), "--repo", "org/del", "--delete", "old/*", "--delete", "*.log"]
    assert main([*argv, "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "- old/a.txt" in dry and "- logs/x.log" in dry and "- keep.txt" not in dry
    assert main(argv) == 0
    capsys.readouterr()
    files = _files(hub_env, "org/del")
    assert "keep.txt" in files and not {"old/a.txt", "old/b.txt", "logs/x.log"} & files
    assert main(["hf", "push", "dataset", str(root), "--repo", "org/del", "--delete"]) == 0  # alone: all absent
    assert "keep.txt" not in _files(hub_env, "org/del")
