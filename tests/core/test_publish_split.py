"""A published GGUF larger than the Hub's per-file limit (50 GB) is written as a split set, and the
plan says so (issue 19 point 5). The limits are lowered here so a tiny model crosses them; the
split set is llama.cpp's format (tests/convert/test_split.py proves llama.cpp loads it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batuta_sync.cli import main
from batuta_sync.tinymodel import write_tiny_llama

YAML = ("version: 1\nmodels:\n  tiny: {repo: org/tiny}\n"
        "conversions:\n  q8: {from: models.tiny, to: gguf, quantization: Q8_0, output: ./gguf}\n")


def _seed(tmp_path: Path, hub: Any, publish: bool) -> Path:
    src = write_tiny_llama(tmp_path / "seed")
    hub.store.commit("org/tiny", {p.relative_to(src).as_posix(): p for p in src.rglob("*") if p.is_file()})
    ws = tmp_path / "ws"
    ws.mkdir()
    extra = "publish:\n  gguf: {from: conversions.q8, repo: me/tiny-gguf}\n" if publish else ""
    (ws / "hf.yaml").write_text(YAML + extra)
    return ws


@pytest.fixture
def small_hub_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    mod = importlib.import_module("batuta_sync.core.planner.diff")  # (the package re-exports a diff())
    monkeypatch.setattr(mod, "HUB_MAX_FILE_BYTES", 1)
    monkeypatch.setattr(mod, "HUB_SPLIT_BYTES", 20_000)


def test_a_published_conversion_over_the_limit_is_split_and_the_plan_says_so(
        tmp_path: Path, hub_env: Any, small_hub_limit: None, capsys: pytest.CaptureFixture[str]) -> None:
    ws = _seed(tmp_path, hub_env, publish=True)
    f = str(ws / "hf.yaml")
    assert main(["plan", "-f", f]) == 0
    out = capsys.readouterr().out
    assert "written as" in out and "split files (the Hub's 0 GB per-file limit)" in out
    assert main(["apply", "-f", f, "--auto-approve"]) == 0
    shards = sorted(p.name for p in (ws / "gguf").glob("*.gguf"))
    assert len(shards) > 1 and all("-of-" in s for s in shards), shards
    published = set(hub_env.store.commit_of("me/tiny-gguf").files)
    assert set(shards) <= published  # every shard on the Hub, no single oversized file
    capsys.readouterr()
    assert main(["plan", "-f", f, "--detailed-exitcode"]) == 0  # converged


def test_an_unpublished_conversion_is_never_split_implicitly(tmp_path: Path, hub_env: Any, small_hub_limit: None,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    ws = _seed(tmp_path, hub_env, publish=False)
    f = str(ws / "hf.yaml")
    assert main(["apply", "-f", f, "--auto-approve"]) == 0
    assert "split" not in capsys.readouterr().out
    assert [p.name for p in (ws / "gguf").glob("*.gguf")] and not list((ws / "gguf").glob("*-of-*.gguf"))


def test_the_size_estimate() -> None:
    from batuta_sync.core.lockfile import FileDigest, RepoLock
    from batuta_sync.core.planner.diff import gguf_size_estimate

    entry = RepoLock(address="models.x", repo="o/x", repo_type="model", revision="main", commit="a" * 40,
                     selection="s", files=(FileDigest("model-1.safetensors", 140 * 10**9, None, "b" * 64),
                                           FileDigest("config.json", 900, "c" * 40, None)))
    assert gguf_size_estimate(entry, "F16") == 140 * 10**9  # a 70 B model in 16 bits
    assert 40 * 10**9 < gguf_size_estimate(entry, "Q4_K_M") < 45 * 10**9  # under the limit: one file
    assert gguf_size_estimate(entry, "Q8_0") > 50 * 10**9  # over it: split
