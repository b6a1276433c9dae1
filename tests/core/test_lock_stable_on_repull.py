"""A fresh CI runner that only re-pulls what hf.lock pins leaves hf.lock byte-identical (issue 14):
``last_applied_plan`` (and the file) change only when an apply changes the lock's content."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.cli import main

YAML = "version: 1\nmodels:\n  a: {repo: org/a, output: ./out/a}\n"


def test_a_pure_repull_leaves_hf_lock_byte_identical(
    tmp_path: Path, hub_env: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hub_env.store.commit("org/a", {"config.json": b'{"a": 1}', "notes.txt": b"hello\n"})
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "hf.yaml").write_text(YAML)
    monkeypatch.chdir(dev)
    assert main(["apply", "--auto-approve"]) == 0, capsys.readouterr().err
    locked = (dev / "hf.lock").read_bytes()
    assert b"last_applied_plan" in locked  # the first apply changed the lock: its plan is recorded

    # a fresh runner: the committed hf.yaml + hf.lock, an empty cache, no outputs
    ci = tmp_path / "ci"
    ci.mkdir()
    shutil.copy(dev / "hf.yaml", ci / "hf.yaml")
    shutil.copy(dev / "hf.lock", ci / "hf.lock")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "ci-cache"))
    monkeypatch.chdir(ci)
    assert main(["plan", "--locked", "-o", "plan.json"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["apply", "plan.json", "--auto-approve"]) == 0, capsys.readouterr().err
    assert (ci / "out" / "a" / "notes.txt").read_bytes() == b"hello\n"
    assert (ci / "hf.lock").read_bytes() == locked
    assert main(["plan", "--detailed-exitcode"]) == 0, capsys.readouterr().err

