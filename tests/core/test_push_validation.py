"""Push validation (issue 14): a "model" with neither weights nor config.json is refused unless
``--force``; the commit URL (on the configured endpoint) is printed after every push."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batuta_sync.tinymodel import write_tiny_llama
from tests._builders import run_cli as run


def test_a_model_push_without_weights_or_config_needs_force(
    tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("not a model\n")
    code, _, err = run(capsys, "hf", "push", "model", str(notes), "--repo", "me/notes")
    assert code == 14 and "nothing here is a model" in err and "--force" in err
    assert hub_env.log.count(method="POST") == 0
    code, out, err = run(capsys, "hf", "push", "model", str(notes), "--repo", "me/notes", "--force")
    assert code == 0, err
    sha = hub_env.store.resolve("me/notes")
    assert f"{hub_env.url}/me/notes/commit/{sha}" in out
    # A dataset or space is not a model: no such check.
    assert run(capsys, "hf", "push", "dataset", str(notes), "--repo", "me/notes-ds")[0] == 0


def test_apply_prints_the_commit_url_of_each_push(tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    write_tiny_llama(ws / "model")
    (ws / "hf.yaml").write_text("version: 1\npublish:\n  m: {from: ./model, repo: me/tiny, card: {license: mit}}\n")
    code, _, err = run(capsys, "apply", "-f", str(ws / "hf.yaml"), "--auto-approve")
    assert code == 0, err
    assert "✓ push publish.m done" in err and f"{hub_env.url}/me/tiny/commit/{hub_env.store.resolve('me/tiny')}" in err
