"""``batuta apply --json`` prints exactly one JSON object on stdout, whatever happens (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.cli import main


def _json_run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(["apply", *argv, "--json"])
    out = capsys.readouterr()
    doc = json.loads(out.out)  # the whole of stdout is one JSON document
    assert isinstance(doc, dict)
    return code, doc, out.err


def test_apply_json_is_one_object_on_success_no_op_refusal_and_error(
    tmp_path: Path, hub_env: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hub_env.store.commit("org/a", {"config.json": b"{}"})
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "hf.yaml").write_text("version: 1\nmodels:\n  a: {repo: org/a}\n")
    monkeypatch.chdir(ws)
    assert main(["plan", "-o", "plan.json"]) == 0
    capsys.readouterr()

    code, doc, err = _json_run(capsys, "plan.json")  # stdin is not a terminal and no --auto-approve
    assert code == 64 and doc["ok"] is False and doc["error"]["code"] == "usage" and "--auto-approve" in err

    code, doc, _ = _json_run(capsys, "plan.json", "--auto-approve")
    assert code == 0 and doc["ok"] is True and doc["completed"] == ["pull:models.a"]

    code, doc, _ = _json_run(capsys, "plan.json", "--auto-approve")  # single-use
    assert code == 4 and doc["error"]["code"] == "stale-plan" and doc["error"]["exit_code"] == 4

    code, doc, _ = _json_run(capsys, "--auto-approve")  # nothing to do
    assert code == 0 and doc["ok"] is True and doc["completed"] == [] and doc["plan_id"]

    monkeypatch.setattr("batuta_sync.cli._common.is_tty", lambda stream=None: True)
    monkeypatch.setattr("builtins.input", lambda prompt="": "no")
    hub_env.store.commit("org/a", {"config.json": b"{}", "extra.json": b"[]"})
    (ws / "hf.yaml").write_text("version: 1\nmodels:\n  a: {repo: org/a}\n  b: {repo: org/a, include: ['extra.json']}\n")
    code, doc, _ = _json_run(capsys)
    assert code == 0 and doc["cancelled"] is True and doc["ok"] is False
