"""`batuta hf pull model X --format gguf --quantization Q4_K_M` converts when X has only safetensors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.cli import main
from batuta_sync.tinymodel import write_tiny_llama


def test_pull_gguf_from_a_safetensors_only_repo(
    hub_env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_tiny_llama(tmp_path / "seed")
    commit = hub_env.store.commit("org/tiny", {p.name: p for p in src.iterdir() if p.is_file()})
    out = tmp_path / "models"
    argv = ["hf", "pull", "model", "org/tiny", "--format", "gguf", "--quantization", "Q4_K_M", "--output", str(out)]
    assert main([*argv, "--json"]) == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out)
    gguf_path = out / "tiny-Q4_K_M.gguf"
    assert gguf_path.is_file()
    assert any("converted" in n and commit[:12] in n for n in result["notes"])
    from gguf import GGUFReader

    types = {t.tensor_type.name for t in GGUFReader(str(gguf_path)).tensors}
    assert {"Q4_K", "Q6_K"} <= types
    # Second pull: the source is cached and the conversion is reused (same bytes, no re-write).
    mtime = gguf_path.stat().st_mtime_ns
    hub_env.log.clear()
    assert main(argv) == 0
    assert gguf_path.stat().st_mtime_ns == mtime
    assert hub_env.log.count(path_contains="/resolve/") == 0
