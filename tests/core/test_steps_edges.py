"""Executor steps at their edges: path confinement, removed conversions, pulls into the cache only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batuta_sync.cli import main
from batuta_sync.tinymodel import write_tiny_llama
from tests._builders import workspace as _ws


def test_removing_a_conversion_deletes_only_its_outputs(
    tmp_path: Path, hub_env: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_tiny_llama(tmp_path / "seed")
    hub_env.store.commit("org/tiny", {p.name: p for p in src.iterdir() if p.is_file()})
    body = "models:\n  tiny: {repo: org/tiny}\nconversions:\n  q8: {from: models.tiny, to: gguf, quantization: Q8_0, output: ./out}\n"
    ws = _ws(tmp_path, body)
    monkeypatch.chdir(ws)
    (ws / "out").mkdir()
    keep = ws / "out" / "notes.txt"  # a file batuta did not write stays
    keep.write_text("mine")
    assert main(["apply", "--auto-approve"]) == 0, capsys.readouterr().err
    outputs = sorted(p.name for p in (ws / "out").iterdir())
    assert any(n.endswith(".gguf") for n in outputs) and "provenance.json" in outputs
    # the model stays in the cache only (no output:) — the conversion read it from the snapshot
    (ws / "hf.yaml").write_text("version: 1\nmodels:\n  tiny: {repo: org/tiny}\n")
    capsys.readouterr()
    assert main(["plan", "--detailed-exitcode"]) == 2
    assert "delete-local  conversions.q8  (removed from manifest)" in capsys.readouterr().out
    assert main(["apply", "--auto-approve"]) == 0
    assert sorted(p.name for p in (ws / "out").iterdir()) == ["notes.txt"]
    assert main(["plan", "--detailed-exitcode"]) == 0


def test_publish_a_pulled_model_materialized_with_symlinks(
    tmp_path: Path, hub_env: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reliability finding #10: `publish: from: models.x` failed under the default symlink materialization."""
    src = write_tiny_llama(tmp_path / "seed")
    hub_env.store.commit("org/tiny", {p.name: p for p in src.iterdir() if p.is_file()})
    body = "models:\n  tiny: {repo: org/tiny, output: ./tiny}\npublish:\n  mirror: {from: models.tiny, repo: me/tiny-mirror}\n"
    ws = _ws(tmp_path, body)
    monkeypatch.chdir(ws)
    assert main(["apply", "--auto-approve"]) == 0, capsys.readouterr().err
    assert (ws / "tiny" / "model.safetensors").is_symlink()
    pushed = hub_env.store.resolve("me/tiny-mirror")
    assert len(pushed) == 40
    assert main(["plan", "--detailed-exitcode"]) == 0
    # a symlink that points anywhere else is still refused
    from batuta_sync.errors import ValidationError
    from batuta_sync.publish.manifest import iter_files

    (ws / "tiny" / "evil.txt").symlink_to(tmp_path / "seed" / "config.json")
    with pytest.raises(ValidationError, match="outside"):
        list(iter_files(ws / "tiny", (tmp_path / "home",)))


def test_plan_says_when_upload_size_is_known_only_after_conversion(
    tmp_path: Path, hub_env: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_tiny_llama(tmp_path / "seed")
    hub_env.store.commit("org/tiny", {p.name: p for p in src.iterdir() if p.is_file()})
    body = (
        "models:\n  tiny: {repo: org/tiny}\n"
        "conversions:\n  q8: {from: models.tiny, to: gguf, quantization: Q8_0}\n"
        "publish:\n  out: {from: conversions.q8, repo: me/tiny-gguf}\n  raw: {from: ./raw, repo: me/raw}\n"
    )
    ws = _ws(tmp_path, body)
    (ws / "raw").mkdir()
    (ws / "raw" / "notes.txt").write_text("hello\n")
    monkeypatch.chdir(ws)
    assert main(["plan"]) == 0
    out = capsys.readouterr().out
    assert "upload ≤6 B + conversion outputs" in out and "≤0 B" not in out
    (ws / "hf.yaml").write_text("version: 1\n" + body.split("  raw:")[0])
    assert main(["plan"]) == 0
    assert "upload known after conversion" in capsys.readouterr().out
