"""`batuta hf pull …` and `batuta cache …` end to end against the local Hub."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests._builders import run_cli as run

from ._repos import CONFIG, gguf_bytes, pickle_bytes, safetensors_bytes

ST = safetensors_bytes(64)


def test_pull_model_prints_the_snapshot_and_json(
    hub_env: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sha = hub_env.store.commit(
        "org/m", {"config.json": CONFIG, "model.safetensors": ST, "pytorch_model.bin": pickle_bytes()}
    )
    code, out, err = run(capsys, "hf", "pull", "model", "org/m")
    assert code == 0, err
    assert out.strip().endswith(f"models--org--m/snapshots/{sha}")
    assert "left out 1 pytorch file" in err and "2 files" in err
    code, out, err = run(
        capsys, "hf", "pull", "model", "org/m", "--json", "--output", str(tmp_path / "o"), "--copy"
    )
    data = json.loads(out)
    assert code == 0 and data["commit"] == sha and data["cache_hits"] == 2 and data["downloaded_bytes"] == 0
    assert data["format"] == "safetensors" and (tmp_path / "o" / "model.safetensors").read_bytes() == ST
    code, out, err = run(capsys, "hf", "pull", "model", "org/m", "--quiet", "--revision", sha)
    assert code == 0 and err == ""


def test_blocked_pickles_exit_12_naming_the_flag(hub_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    hub_env.store.commit("org/pt", {"config.json": CONFIG, "pytorch_model.bin": pickle_bytes()})
    code, out, err = run(capsys, "hf", "pull", "model", "org/pt")
    assert code == 12
    assert "pytorch_model.bin" in err and "--allow-unsafe" in err and "Traceback" not in err
    assert "models--org--pt" in out  # the safe files were pulled
    code, out, err = run(capsys, "hf", "pull", "files", "org/pt", "pytorch_model.bin", "--allow-unsafe")
    assert code == 0, err
    code, _, err = run(capsys, "hf", "pull", "files", "org/pt", "nope.bin")
    assert code == 8 and "nope.bin" in err


def test_gguf_quantization_and_conversion_needed(hub_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    hub_env.store.commit(
        "org/gguf",
        {
            "README.md": b"# q\n",
            "m.Q8_0.gguf": gguf_bytes("a"),
            "m-Q4_K_M-00001-of-00002.gguf": gguf_bytes("b"),
            "m-Q4_K_M-00002-of-00002.gguf": gguf_bytes("c"),
        },
    )
    code, out, err = run(
        capsys, "hf", "pull", "model", "org/gguf", "--format", "gguf", "--quantization", "Q4_K_M", "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert [f["path"] for f in data["files"]] == [
        "README.md",
        "m-Q4_K_M-00001-of-00002.gguf",
        "m-Q4_K_M-00002-of-00002.gguf",
    ]
    assert any("2 shards" in n for n in data["notes"])
    hub_env.store.commit("org/st", {"config.json": CONFIG, "model.safetensors": ST})
    code, _, err = run(
        capsys, "hf", "pull", "model", "org/st", "--format", "gguf", "--quantization", "Q4_K_M"
    )
    # batuta converts it, but this config.json lacks the architecture keys: a clear conversion error.
    assert code == 15 and "Error [conversion]" in err and "config.json" in err and "Traceback" not in err
    code, _, err = run(capsys, "hf", "pull", "model", "org/gguf", "--quantization", "Q2_K")
    assert code == 8 and "Q4_K_M" in err and "Q8_0" in err


def test_pull_dataset_split_errors_list_the_splits(
    hub_env: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    hub_env.store.commit(
        "org/ds",
        {"data/train-00000-of-00001.parquet": b"PAR1a", "data/test-00000-of-00001.parquet": b"PAR1b"},
        repo_type="dataset",
    )
    code, out, err = run(
        capsys, "hf", "pull", "dataset", "org/ds", "--split", "train", "--output", str(tmp_path / "d")
    )
    assert code == 0, err
    assert out.strip() == str(tmp_path / "d")
    assert [p.name for p in (tmp_path / "d" / "data").iterdir()] == ["train-00000-of-00001.parquet"]
    code, _, err = run(capsys, "hf", "pull", "dataset", "org/ds", "--split", "dev")
    assert code == 8 and "test, train" in err


def test_offline_flag_and_unknown_repo(hub_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    hub_env.store.commit("org/m", {"config.json": CONFIG})
    assert run(capsys, "hf", "pull", "model", "org/m")[0] == 0
    mark = len(hub_env.log.entries)
    code, _, err = run(capsys, "hf", "pull", "model", "org/m", "--offline")
    assert code == 0 and "(offline)" in err and hub_env.log.entries[mark:] == []
    code, _, err = run(capsys, "hf", "pull", "model", "org/other", "--offline")
    assert code == 18
    code, _, err = run(capsys, "hf", "pull", "model", "org/missing")
    assert code == 8
    assert run(capsys, "hf", "pull", "model", "bad//id")[0] == 64


def test_cache_commands(hub_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    hub_env.store.commit("org/a", {"config.json": CONFIG, "model.safetensors": safetensors_bytes(20_000, 1)})
    hub_env.store.commit("org/b", {"config.json": CONFIG, "model.safetensors": safetensors_bytes(20_000, 2)})
    for repo in ("org/a", "org/b", "org/a"):
        assert run(capsys, "hf", "pull", "model", repo, "--quiet")[0] == 0
    code, out, _ = run(capsys, "cache", "ls")
    assert code == 0 and "org/a" in out and "org/b" in out
    code, out, _ = run(capsys, "cache", "ls", "--json")
    assert {e["repo_id"] for e in json.loads(out)} == {"org/a", "org/b"}
    code, out, _ = run(capsys, "cache", "stats")
    assert code == 0 and "hit rate   33.3% of files" in out
    code, out, _ = run(capsys, "cache", "stats", "--json")
    stats = json.loads(out)
    assert stats["hits"] == 2 and stats["misses"] == 4 and stats["repos"] == 2
    code, out, _ = run(capsys, "cache", "prune", "--max-size", "100kB", "--json")
    assert code == 0 and json.loads(out)["freed_bytes"] > 0
    code, out, _ = run(capsys, "cache", "ls", "--json")
    assert [e["repo_id"] for e in json.loads(out)] == ["org/a"]  # b was least recently used
    code, _, err = run(capsys, "cache", "clear")
    assert code == 64 and "--yes" in err
    code, out, _ = run(capsys, "cache", "clear", "--yes")
    assert code == 0 and "cleared" in out
    assert json.loads(run(capsys, "cache", "ls", "--json")[1]) == []
    assert run(capsys, "cache", "prune", "--max-size", "lots")[0] == 64


def test_rich_progress_display_drives_a_real_pull(hub_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from batuta_sync.cli._progress import RichProgress
    from batuta_sync.pull import PullRequest, pull
    from batuta_sync.settings import resolve_settings
    from batuta_sync.types import RepoRef

    hub_env.store.commit("org/p", {"config.json": CONFIG, "model.safetensors": safetensors_bytes(50_000, 3)})
    progress = RichProgress()
    res = pull(resolve_settings(), PullRequest(RepoRef("org/p")), progress=progress)
    assert res.downloaded_bytes > 200_000
    task = progress._progress.tasks[0]
    assert task.completed == task.total == res.downloaded_bytes
    progress.start(1, 10)  # a second batch reuses the display
    progress.file_start("x", 10, 4)
    progress.file_start("x", 10, 0)  # restarted
    progress.advance("x", 10)
    progress.file_done("x", cached=False)
    progress.close()
    assert "total" in capsys.readouterr().err
