"""The shared cache never breaks a workspace's outputs (issue 14, item 2), end to end through the CLI.

Workspaces are GC roots: ``policies.max_cache_size`` (the prune after apply), ``cache prune`` and
``cache clear`` must not leave outputs as dangling symlinks.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests._builders import run_cli as run
from tests._builders import workspace

FILES_A = {"config.json": b'{"a": 1}', "weights.txt": b"a" * 20_000}
FILES_B = {"config.json": b'{"b": 1}', "weights.txt": b"b" * 20_000}
FILES_C = {"config.json": b'{"c": 1}', "weights.txt": b"c" * 20_000}


def _outputs_intact(ws: Path, files: dict[str, bytes]) -> bool:
    return all((ws / "models" / "a" / rel).read_bytes() == data for rel, data in files.items())


@pytest.fixture
def two_workspaces(tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    for repo, files in (("org/a", FILES_A), ("org/b", FILES_B), ("org/c", FILES_C)):
        hub_env.store.commit(repo, files)
    a = workspace(tmp_path, name="a", body="models:\n  a: {repo: org/a, output: ./models/a}\n")
    assert run(capsys, "apply", "-f", str(a / "hf.yaml"), "--auto-approve")[0] == 0
    b = workspace(tmp_path, name="b", body="models:\n  b: {repo: org/b}\n")
    assert run(capsys, "apply", "-f", str(b / "hf.yaml"), "--auto-approve")[0] == 0
    return a, b


def test_max_cache_size_never_evicts_what_a_workspace_uses_and_says_the_limit_is_too_small(
    tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    hub_env.store.commit("org/a", FILES_A)
    hub_env.store.commit("org/b", FILES_B)
    a = workspace(tmp_path, name="a", body="models:\n  a: {repo: org/a, output: ./models/a}\n")
    assert run(capsys, "apply", "-f", str(a / "hf.yaml"), "--auto-approve")[0] == 0
    # Another project with a tiny cache limit: its prune after apply used to evict models.a (LRU).
    b = workspace(tmp_path, name="b", body="policies: {max_cache_size: 1KB}\nmodels:\n  b: {repo: org/b, output: ./models/b}\n")
    code, _, err = run(capsys, "apply", "-f", str(b / "hf.yaml"), "--auto-approve", "--json")
    assert code == 0, err
    assert _outputs_intact(a, FILES_A)
    assert "over its limit of 1.0 kB" in err and str(a / "models" / "a") in err and str(b / "models" / "b") in err
    assert run(capsys, "plan", "-f", str(a / "hf.yaml"), "--detailed-exitcode")[0] == 0  # nothing to pull again
    assert run(capsys, "plan", "-f", str(b / "hf.yaml"), "--detailed-exitcode")[0] == 0


def test_cache_prune_evicts_only_unrooted_snapshots_and_drops_roots_of_deleted_workspaces(
    two_workspaces: tuple[Path, Path], tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = two_workspaces
    assert run(capsys, "hf", "pull", "model", "org/c")[0] == 0  # no workspace: not a root
    code, out, err = run(capsys, "cache", "prune", "--max-size", "1KB", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["freed_bytes"] > 0 and report["over_limit"] is True
    assert sorted(k.split("@")[0] for k in report["kept_for_workspaces"]) == ["org/a", "org/b"]
    assert "would break these outputs" in err and f"{b} (read from the cache)  [models.b]" in err
    listed = {(r["repo_id"]) for r in json.loads(run(capsys, "cache", "ls", "--json")[1])}
    assert listed == {"org/a", "org/b"}
    assert _outputs_intact(a, FILES_A)
    # Workspace b is deleted: its root goes, and its snapshot is no longer protected.
    shutil.rmtree(b)
    code, out, err = run(capsys, "cache", "prune", "--max-size", "1KB", "--json")
    assert code == 0 and [k.split("@")[0] for k in json.loads(out)["kept_for_workspaces"]] == ["org/a"]
    assert {r["repo_id"] for r in json.loads(run(capsys, "cache", "ls", "--json")[1])} == {"org/a"}
    roots = list((Path(hub_env.root).parent / "home").glob("**/gc-roots/*"))
    assert [Path(p.readlink()) for p in roots] == [a / "hf.lock"]
    assert _outputs_intact(a, FILES_A)


def test_the_materialized_commit_stays_rooted_after_the_lock_moves(
    two_workspaces: tuple[Path, Path], hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """After `lock --update` (or a git pull of hf.lock) the outputs still point at the old commit."""
    a, _b = two_workspaces
    hub_env.store.commit("org/a", {"config.json": b'{"a": 2}'})
    assert run(capsys, "lock", "-f", str(a / "hf.yaml"), "--update", "models.a")[0] == 0
    assert run(capsys, "cache", "prune", "--max-size", "1KB")[0] == 0
    assert _outputs_intact(a, FILES_A)


def test_cache_clear_names_the_outputs_it_would_break_and_asks(
    two_workspaces: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a, _b = two_workspaces
    code, _, err = run(capsys, "cache", "clear")  # not a terminal, no --yes: refused
    assert code == 64 and "breaks 2 workspace output(s)" in err and str(a / "models" / "a") in err
    assert _outputs_intact(a, FILES_A)
    # On a terminal it asks; anything but yes keeps everything.
    from batuta_sync.cli import _common

    monkeypatch.setattr(_common, "is_tty", lambda stream=None: True)
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    code, _, err = run(capsys, "cache", "clear")
    assert code == 0 and "aborted" in err and str(a / "models" / "a") in err
    assert _outputs_intact(a, FILES_A)
    # --yes proceeds and still says what it broke.
    code, out, err = run(capsys, "cache", "clear", "--yes")
    assert code == 0 and "cleared" in out and str(a / "models" / "a") in err
    assert not (a / "models" / "a" / "config.json").exists()  # dangling now, as announced
    code, out, _ = run(capsys, "plan", "-f", str(a / "hf.yaml"), "--detailed-exitcode")
    assert code == 2 and "models.a" in out


def test_roots_survive_odd_entries(tmp_path: Path) -> None:
    """A root whose hf.lock is unparsable roots nothing (until fixed) but is kept; a stray file in
    the roots folder is ignored; registering a workspace without hf.lock records nothing."""
    from batuta_sync.core import gcroots
    from batuta_sync.hub.cache import HfCache

    cache = HfCache(tmp_path / "hub", state_dir=tmp_path / "state")
    ws = tmp_path / "ws"
    ws.mkdir()
    gcroots.register(cache, ws / "hf.lock")
    assert not cache.roots_dir.exists()
    (ws / "hf.lock").write_text("{ not a lock")
    gcroots.register(cache, ws / "hf.lock")
    gcroots.register(cache, ws / "hf.lock")  # idempotent
    (cache.roots_dir / "README").write_text("not a root")
    assert cache.root_locks() == [ws / "hf.lock"]
    assert gcroots.uses(cache) == {} and gcroots.breaks(cache) == []
    (ws / "hf.lock").write_text("")
    assert gcroots.uses(cache) == {}


def test_only_repo_entries_root_snapshots(tmp_path: Path) -> None:
    """Publish and conversion entries use no cache snapshot; a lock deleted between listing the
    roots and reading it roots nothing."""
    from batuta_sync.core import gcroots
    from batuta_sync.core.lockfile import Lock, PublishLock, RepoLock, write_lock
    from batuta_sync.hub.cache import HfCache

    cache = HfCache(tmp_path / "hub", state_dir=tmp_path / "state")
    ws = tmp_path / "ws"
    ws.mkdir()
    c1 = "1" * 40
    lock = Lock(entries={
        "models.m": RepoLock("models.m", "org/m", "model", "main", c1, "sel", (), "./out"),
        "publish.p": PublishLock("publish.p", "me/p", "model", "main", "2" * 40, "h1:x"),
    })
    write_lock(ws / "hf.lock", lock)
    gcroots.register(cache, ws / "hf.lock")
    found = gcroots.uses(cache)
    assert list(found) == [("models--org--m", c1)]
    assert found[("models--org--m", c1)][0].describe() == f"{ws / 'out'}  [models.m]"
    cache.root_locks = lambda: [ws / "gone.lock"]  # type: ignore[method-assign]
    assert gcroots.uses(cache) == {}
