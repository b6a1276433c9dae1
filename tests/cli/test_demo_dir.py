"""``batuta demo --dir D`` on a used directory (issue 14): a directory that is not a previous
demo's is refused and left untouched; a previous demo's starts clean (its old hf.lock, Hub and
cache are gone, so the second run is not polluted by the first)."""

from __future__ import annotations

from pathlib import Path

import pytest

from batuta_sync.cli import main
from batuta_sync.cli.demo import MARKER, prepare_dir


def test_demo_refuses_a_used_directory_and_touches_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    used = tmp_path / "mine"
    (used / "src").mkdir(parents=True)
    (used / "hf.yaml").write_text("version: 1\n")
    before = sorted(p.relative_to(used).as_posix() for p in used.rglob("*"))
    assert main(["demo", "--dir", str(used)]) == 64
    err = capsys.readouterr().err
    assert "is not empty and is not a previous demo directory" in err and "hf.yaml" in err
    assert "Traceback" not in err
    assert sorted(p.relative_to(used).as_posix() for p in used.rglob("*")) == before
    afile = tmp_path / "f"
    afile.write_text("x")
    assert main(["demo", "--dir", str(afile)]) == 64
    assert "is a file, not a directory" in capsys.readouterr().err


def test_a_previous_demo_directory_starts_clean(tmp_path: Path) -> None:
    old = tmp_path / "demo"
    prepare_dir(old)  # a new directory becomes a demo directory
    assert (old / MARKER).is_file()
    (old / "project").mkdir()
    (old / "project" / "hf.lock").write_text("stale\n")
    (old / "hub").mkdir()
    (old / "hub" / "x").write_text("old hub\n")
    (old / "seed").write_text("a file where the demo had a folder\n")
    (old / "notes.txt").write_text("not the demo's: kept\n")
    prepare_dir(old)
    assert sorted(p.name for p in old.iterdir()) == sorted([MARKER, "notes.txt"])


def test_an_empty_directory_is_used(tmp_path: Path) -> None:
    empty = tmp_path / "e"
    empty.mkdir()
    prepare_dir(empty)
    assert [p.name for p in empty.iterdir()] == [MARKER]
