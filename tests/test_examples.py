"""Every example validates, and plans against a local Hub seeded with the repos it names."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from batuta_sync.cli import main
from batuta_sync.tinymodel import write_tiny_dataset, write_tiny_llama

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*/hf.yaml"))


def _files(d: Path) -> dict[str, Path]:
    return {p.relative_to(d).as_posix(): p for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_example_validates(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert path.read_text().startswith("# yaml-language-server: $schema=")
    assert main(["validate", "-f", str(path)]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_example_plans_against_local_hub(
    path: Path, hub_server: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = yaml.safe_load(path.read_text())
    seed = tmp_path / "seed"
    model = _files(write_tiny_llama(seed / "model"))
    data = _files(write_tiny_dataset(seed / "data"))
    store = hub_server.store  # type: ignore[attr-defined]
    for kind, files in (("models", model), ("datasets", data), ("spaces", data)):
        for entry in (doc.get(kind) or {}).values():
            repo_type = kind[:-1]
            store.commit(entry["repo"], files, repo_type=repo_type)
            rev = entry.get("revision", "main")
            if rev != "main":
                store.create_tag(entry["repo"], rev, repo_type=repo_type)
    project = tmp_path / "project"
    shutil.copytree(path.parent, project)
    for entry in (doc.get("publish") or {}).values():
        src = entry["from"]
        if src.startswith("./"):
            write_tiny_llama(project / src)
    monkeypatch.chdir(project)
    code = main(["plan", "--endpoint", hub_server.url, "--detailed-exitcode"])  # type: ignore[attr-defined]
    out = capsys.readouterr()
    assert code == 2, out.err  # a fresh project has work to do
    for kind in ("models", "datasets", "spaces", "conversions", "publish"):
        for name in doc.get(kind) or {}:
            assert f"{kind}.{name}" in out.out
