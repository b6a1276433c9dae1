"""``batuta hf ls REPO [PATH] [--revision]`` lists a repo's files, and the hints that send users
there name a command that exists (issue 14)."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from tests._builders import run_cli as run


def test_a_pull_hint_names_the_ls_command_and_it_works(hub_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    hub_env.store.commit("org/d", {"data/train.jsonl": b"{}\n"}, repo_type="dataset")
    code, _, err = run(capsys, "hf", "pull", "files", "--repo-type", "dataset", "org/d", "missing.txt")
    assert code == 8
    hint = err.split("`batuta ", 1)[1].split("`", 1)[0]
    assert hint == "hf ls org/d --repo-type dataset"
    code, out, _ = run(capsys, *shlex.split(hint), "--recursive")
    assert code == 0 and "data/train.jsonl" in out
