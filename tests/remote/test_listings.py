"""Commit listings shared through the remote: with a warm remote, a repo pinned to a commit
costs a new runner (fresh cache) no Hub API call at all -- counted in our Hub's request log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.cli import main
from batuta_sync.remote import open_remote
from batuta_sync.remote.cas import SharedStore, tree_key
from batuta_sync.types import HfAssetType, RepoRef

FILES = {"config.json": b'{"a": 1}', "notes.txt": b"hello " * 300, "extra.txt": b"w" * 5000}


def _api_calls(hub: Any) -> int:
    return sum(1 for e in hub.log.entries if e.path.startswith("/api/"))


def _downloads(hub: Any) -> int:
    return sum(1 for e in hub.log.entries if e.method == "GET" and "/resolve/" in e.path and e.status in (200, 206))


def _runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, remote: str, commit: str) -> Path:
    monkeypatch.setenv("HF_HOME", str(tmp_path / f"{name}-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / f"{name}-home" / "hub"))
    ws = tmp_path / name
    ws.mkdir()
    (ws / "hf.yaml").write_text(
        f"version: 1\ndefaults:\n  remote: {remote}\nmodels:\n  a: {{repo: org/a, revision: {commit}}}\n")
    return ws / "hf.yaml"


@pytest.fixture
def commit(hub_env: Any) -> str:
    hub_env.store.commit("org/a", FILES)
    return str(hub_env.store.resolve("org/a"))


def test_a_warm_remote_answers_plan_and_apply_of_a_pinned_repo_without_the_hub(
    commit: str, hub_env: Any, remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = _runner(tmp_path, monkeypatch, "r1", remote_url, commit)
    assert main(["apply", "-f", str(first), "--auto-approve"]) == 0, capsys.readouterr().err
    assert _api_calls(hub_env) >= 1 and _downloads(hub_env) == len(FILES)
    listing = SharedStore(open_remote(remote_url)).get_listing("model", "org/a", commit)
    assert listing is not None and sorted(listing["files"]) == sorted(FILES)
    before_api, before_dl = _api_calls(hub_env), _downloads(hub_env)

    second = _runner(tmp_path, monkeypatch, "r2", remote_url, commit)  # fresh cache, no hf.lock
    assert main(["plan", "-f", str(second)]) == 0, capsys.readouterr().err
    assert main(["apply", "-f", str(second), "--auto-approve"]) == 0, capsys.readouterr().err
    assert _api_calls(hub_env) == before_api  # no Hub API call: listing and blobs from the remote
    assert _downloads(hub_env) == before_dl
    snap = next((tmp_path / "r2-home" / "hub").glob("models--org--a/snapshots/*"))
    assert {p.name: p.read_bytes() for p in snap.iterdir()} == FILES
    assert (tmp_path / "r1" / "hf.lock").read_text().split("files:")[1] == (
        tmp_path / "r2" / "hf.lock").read_text().split("files:")[1]


def test_hf_pull_of_a_commit_reads_the_shared_listing(
    commit: str, hub_env: Any, remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c1"))
    assert main(["hf", "pull", "model", "org/a", "--revision", commit, "--remote", remote_url]) == 0
    before = _api_calls(hub_env), _downloads(hub_env)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c2"))
    assert main(["hf", "pull", "model", "org/a", "--revision", commit, "--remote", remote_url]) == 0, (
        capsys.readouterr().err)
    assert (_api_calls(hub_env), _downloads(hub_env)) == before
    # the complete listing landed in the local cache too (huggingface_hub reads it offline)
    assert any((tmp_path / "c2").glob(f"models--org--a/snapshots/{commit}/notes.txt"))
    assert any((tmp_path / "c2").glob(f"models--org--a/trees/{commit}.json"))


def test_a_malformed_shared_listing_is_a_miss(
    commit: str, hub_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    remote = f"file://{tmp_path / 'remote'}"
    store = open_remote(remote)
    bad = {"format_version": 1, "files": {"../../etc/passwd": {"size": 1, "blob_id": "0" * 40}}}
    assert store.put_if_absent(tree_key("model", "org/a", commit), json.dumps(bad).encode())
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c1"))
    assert main(["hf", "pull", "model", "org/a", "--revision", commit, "--remote", remote]) == 0, (
        capsys.readouterr().err)
    assert _api_calls(hub_env) >= 1  # the Hub answered instead
    got = next((tmp_path / "c1").glob("models--org--a/snapshots/*"))
    assert sorted(p.name for p in got.iterdir()) == sorted(FILES)


def test_a_branch_still_goes_to_the_hub_and_remote_errors_only_warn(
    commit: str, hub_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from batuta_sync.pull.listings import shared_snapshot
    from batuta_sync.remote.store import RemoteError

    shared = SharedStore(open_remote(f"file://{tmp_path / 'remote'}"))
    assert shared_snapshot(shared, RepoRef("org/a", HfAssetType.MODEL, "main")) is None  # only the Hub knows

    def down(*_a: object, **_k: object) -> None:
        raise RemoteError("The remote is down (test).")

    monkeypatch.setattr(SharedStore, "get_listing", down)
    monkeypatch.setattr(SharedStore, "put_listing", down)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c1"))
    assert main(["hf", "pull", "model", "org/a", "--revision", commit, "--remote", f"file://{tmp_path / 'r'}"]) == 0
    err = capsys.readouterr().err
    assert "failed (The remote is down (test).); asking the Hub" in err
    assert "could not share the listing of" in err
