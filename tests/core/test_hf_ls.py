"""``batuta hf ls REPO [PATH] [--revision]`` lists a repo's files, and the hints that send users
there name a command that exists (issue 14)."""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest

from batuta_sync.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_hf_ls_lists_files_under_a_path_at_a_revision(hub_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    first = hub_env.store.commit("org/x", {"config.json": b"{}", "sub/a.txt": b"a" * 1500, "sub/b.txt": b"b"})
    hub_env.store.commit("org/x", {"sub/c.txt": b"c"})
    code, out, err = run(capsys, "hf", "ls", "org/x")
    assert code == 0 and [line.split()[-1] for line in out.splitlines()] == ["config.json", "sub/a.txt", "sub/b.txt", "sub/c.txt"]
    assert "1.5 kB  sub/a.txt" in out and "4 files" in err
    code, out, _ = run(capsys, "hf", "ls", "org/x", "sub", "--revision", first, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["commit"] == first and [f["path"] for f in doc["files"]] == ["sub/a.txt", "sub/b.txt"]
    code, _, err = run(capsys, "hf", "ls", "org/x", "nope")
    assert code == 8 and "no file or folder 'nope'" in err and "`batuta hf ls org/x`" in err
    hub_env.store.commit("org/d", {"data/train.jsonl": b"{}\n"}, repo_type="dataset")
    code, out, _ = run(capsys, "hf", "ls", "org/d", "--repo-type", "dataset")
    assert code == 0 and "data/train.jsonl" in out


def test_a_pull_hint_names_the_ls_command_and_it_works(hub_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    hub_env.store.commit("org/d", {"data/train.jsonl": b"{}\n"}, repo_type="dataset")
    code, _, err = run(capsys, "hf", "pull", "files", "--repo-type", "dataset", "org/d", "missing.txt")
    assert code == 8
    hint = err.split("`batuta ", 1)[1].split("`", 1)[0]
    assert hint == "hf ls org/d --repo-type dataset"
    code, out, _ = run(capsys, *shlex.split(hint))
    assert code == 0 and "data/train.jsonl" in out
