"""Environments as overlays (issue 20): ``hf.prod.yaml`` with ``extends: hf.yaml`` holds only what
differs, has its own lock, and plans/applies against the local Hub like any manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batuta_sync.cli import main
from batuta_sync.core.lockfile import read_lock
from batuta_sync.core.manifest import load_manifest
from batuta_sync.core.manifest.overlay import lock_file_for, merge, merge_chain
from batuta_sync.errors import ManifestError, exit_code

BASE = "version: 1\nmodels:\n  a: {repo: org/a}\n  b: {repo: org/b}\n"
PROD = "extends: hf.yaml\nmodels:\n  a: {revision: v1}\n  b: null\n"


def test_merge_rules() -> None:
    base = {"version": 1, "models": {"a": {"repo": "org/a", "include": ["*.json"]}, "b": {"repo": "org/b"}}}
    over = {"models": {"a": {"include": ["*.gguf"], "revision": "v1"}, "b": None}, "defaults": {"private": True}}
    assert merge(base, over) == {
        "version": 1,
        "models": {"a": {"repo": "org/a", "include": ["*.gguf"], "revision": "v1"}},  # lists replace, maps merge
        "defaults": {"private": True},
    }
    assert base["models"]["b"] == {"repo": "org/b"}  # inputs untouched
    assert merge_chain([{"version": 1}, {"extends": "hf.yaml", "version": 2}]) == {"version": 2}
    assert lock_file_for("hf.prod.yaml") == "hf.prod.lock" and lock_file_for("dev.yml") == "dev.lock"


@pytest.fixture
def ws(tmp_path: Path, hub_env: Any) -> Path:
    for repo in ("org/a", "org/b"):
        hub_env.store.commit(repo, {"config.json": b'{"v": 1}'})
    hub_env.store.create_tag("org/a", "v1")
    hub_env.store.commit("org/a", {"config.json": b'{"v": 2}'})  # main moves past v1
    w = tmp_path / "ws"
    w.mkdir()
    (w / "hf.yaml").write_text(BASE)
    (w / "hf.prod.yaml").write_text(PROD)
    return w


def test_each_environment_plans_and_locks_its_own_pins(ws: Path, hub_env: Any,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    prod, dev = str(ws / "hf.prod.yaml"), str(ws / "hf.yaml")
    man = load_manifest(prod)
    assert man.lock_file == "hf.prod.lock" and man.extends == (str(ws / "hf.yaml"),)
    assert [r.address for r in man.repos] == ["models.a"] and man.repos[0].revision == "v1"
    assert main(["apply", "-f", prod, "--auto-approve"]) == 0
    assert not (ws / "hf.lock").exists()  # the base's lock is not touched
    lock = read_lock(ws / "hf.prod.lock")
    assert lock is not None and set(lock.entries) == {"models.a"}
    assert lock.entries["models.a"].commit == hub_env.store.resolve("org/a", "v1")
    assert main(["apply", "-f", dev, "--auto-approve"]) == 0
    dev_lock = read_lock(ws / "hf.lock")
    assert dev_lock is not None and set(dev_lock.entries) == {"models.a", "models.b"}
    assert dev_lock.entries["models.a"].commit == hub_env.store.resolve("org/a", "main")
    capsys.readouterr()
    assert main(["plan", "-f", prod, "--detailed-exitcode"]) == 0  # both in sync, each with its lock
    assert main(["plan", "-f", dev, "--detailed-exitcode"]) == 0
    assert main(["plan", "-f", prod, "--locked", "--detailed-exitcode"]) == 0


def test_a_change_to_the_base_makes_a_saved_overlay_plan_stale(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prod = str(ws / "hf.prod.yaml")
    assert main(["plan", "-f", prod, "-o", str(ws / "p.json")]) == 0
    (ws / "hf.yaml").write_text(BASE.replace("a: {repo: org/a}", "a: {repo: org/a, include: ['*.json']}"))
    capsys.readouterr()
    assert main(["apply", "-f", prod, str(ws / "p.json")]) == exit_code("stale-plan")


def test_problems_are_placed_in_the_file_that_has_them(tmp_path: Path) -> None:
    (tmp_path / "hf.yaml").write_text("version: 1\nmodels:\n  a: {repo: org/a}\n  c: {repo: 'not a repo id'}\n")
    (tmp_path / "o.yaml").write_text("extends: hf.yaml\nmodels:\n  a:\n    revision: 7\n")
    with pytest.raises(ManifestError) as err:
        load_manifest(tmp_path / "o.yaml")
    where = {(Path(d.file).name, d.line) for d in err.value.diagnostics}
    assert ("o.yaml", 4) in where and ("hf.yaml", 4) in where
    for text, said in (
        ("extends: o2.yaml\nversion: 1\n", "makes a cycle"),
        ("extends: ../elsewhere/hf.yaml\n", "leaves the folder"),
        ("extends: 3\n", "must name a manifest file"),
        ("extends: https://example.com/hf.yaml\n", "must name a manifest file"),
    ):
        (tmp_path / "o2.yaml").write_text(text)
        with pytest.raises(ManifestError, match=said):
            load_manifest(tmp_path / "o2.yaml")
