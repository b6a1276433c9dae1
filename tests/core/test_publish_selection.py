"""``publish.from: models.X`` publishes exactly X's locked selection (issue 14, item 3).

Two workspaces share one HF cache: the first pulls the whole repo, the second pulls only
``*.json`` + ``*.safetensors`` of the same commit and republishes it.  The shared snapshot folder
then holds files the second project never selected; they must not be uploaded, and the plan's
size estimate must match what the push sends.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.tinymodel import write_tiny_llama
from tests._builders import run_cli as run

SELECTED = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}


def _ws(root: Path, name: str, body: str) -> str:
    ws = root / name
    ws.mkdir()
    (ws / "hf.yaml").write_text("version: 1\n" + body)
    return str(ws / "hf.yaml")


@pytest.mark.parametrize("output", [False, True], ids=["from-cache-snapshot", "from-output-folder"])
def test_publish_from_a_pulled_model_uploads_only_its_locked_selection(
    output: bool, tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_tiny_llama(tmp_path / "seed")
    files: dict[str, Any] = {p.relative_to(src).as_posix(): p for p in src.rglob("*") if p.is_file()}
    files["notes/other-project.txt"] = b"pulled by the other project only\n" * 50
    hub_env.store.commit("org/llama", files)

    other = _ws(tmp_path, "other", "models:\n  llama: {repo: org/llama}\n")
    assert run(capsys, "apply", "-f", other, "--auto-approve")[0] == 0  # the whole repo lands in the cache

    out_line = "    output: ./llama\n" if output else ""
    mine = _ws(tmp_path, "mine", (
        "models:\n  llama:\n    repo: org/llama\n    include: ['*.json', '*.safetensors']\n" + out_line
        + "publish:\n  copy:\n    from: models.llama\n    repo: me/llama-copy\n    card: {license: mit}\n"
    ))
    if output:  # a file the user keeps in the output folder is not part of the selection either
        (tmp_path / "mine" / "llama").mkdir()
        (tmp_path / "mine" / "llama" / "scratch.txt").write_text("mine, not the model's\n")
    code, out, err = run(capsys, "plan", "-f", mine, "--json", "-o", str(tmp_path / "mine" / "plan.json"))
    assert code == 0, err
    push = next(a for a in json.loads(out)["actions"] if a["kind"] == "push")
    estimate = push["upload_bytes"]
    assert estimate == sum(p.stat().st_size for rel, p in files.items() if rel in SELECTED)

    code, out, err = run(capsys, "apply", "-f", mine, str(tmp_path / "mine" / "plan.json"), "--auto-approve", "--json")
    assert code == 0, err
    published = hub_env.store.commit_of("me/llama-copy").files
    assert set(published) == SELECTED | {"README.md"}, sorted(published)
    assert sum(e.size for p, e in published.items() if p != "README.md") == estimate
    # The selection is what is locked: a second plan has nothing to push.
    assert run(capsys, "plan", "-f", mine, "--detailed-exitcode")[0] == 0


def test_a_selected_file_missing_from_the_source_is_refused_before_uploading(
    tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from batuta_sync.errors import ValidationError
    from batuta_sync.publish import PushRequest, prepare_push
    from batuta_sync.settings import resolve_settings

    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    req = PushRequest(path=folder, repo_id="me/x", files=("config.json", "model.safetensors"))
    with pytest.raises(ValidationError, match=r"missing from .*model.safetensors") as exc:
        prepare_push(resolve_settings(), req)
    assert "batuta apply" in exc.value.hint
    assert hub_env.log.count(method="POST") == 0
