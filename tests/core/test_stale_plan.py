"""A stale or foreign saved plan is refused before it is rendered, and the hint names the real
file (issue 14)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests._builders import run_cli as run


def _ws(tmp_path: Path, name: str, hub: Any) -> Path:
    ws = tmp_path / name
    ws.mkdir()
    (ws / "hf.yaml").write_text("version: 1\nmodels:\n  a: {repo: org/a}\n")
    return ws


def test_a_stale_plan_is_not_rendered_and_the_hint_names_the_plan_file(
    tmp_path: Path, hub_env: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hub_env.store.commit("org/a", {"config.json": b"{}"})
    ws = _ws(tmp_path, "ws", hub_env)
    monkeypatch.chdir(ws)
    (ws / "ci").mkdir()
    assert run(capsys, "plan", "-o", "ci/prod-plan.json")[0] == 0
    (ws / "hf.yaml").write_text((ws / "hf.yaml").read_text() + "  b: {repo: org/a}\n")
    code, out, err = run(capsys, "apply", "ci/prod-plan.json", "--auto-approve")
    assert code == 4 and out == ""  # nothing rendered as if it could be applied
    assert "The plan ci/prod-plan.json is stale" in err and "hf.yaml changed since the plan was made" in err
    assert "`batuta plan -f hf.yaml -o ci/prod-plan.json`" in err
    # A Hub precondition (checked under the workspace lock) names the file too.
    (ws / "hf.yaml").write_text("version: 1\nmodels:\n  a: {repo: org/a}\n")
    assert run(capsys, "plan", "-o", "ci/prod-plan.json")[0] == 0
    hub_env.store.commit("org/a", {"config.json": b"[]"})
    code, _, err = run(capsys, "apply", "ci/prod-plan.json", "--auto-approve")
    assert code == 4 and "moved from" in err and "-o ci/prod-plan.json" in err


def test_a_plan_from_another_workspace_is_refused_as_foreign(
    tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    hub_env.store.commit("org/a", {"config.json": b"{}"})
    one, two = _ws(tmp_path, "one", hub_env), _ws(tmp_path, "two", hub_env)
    for ws in (one, two):
        assert run(capsys, "lock", "-f", str(ws / "hf.yaml"))[0] == 0
    assert run(capsys, "plan", "-f", str(one / "hf.yaml"), "-o", str(one / "plan.json"))[0] == 0
    code, out, err = run(capsys, "apply", "-f", str(two / "hf.yaml"), str(one / "plan.json"), "--auto-approve")
    assert code == 4 and out == ""
    assert "the plan was made for another workspace" in err and f"-o {one / 'plan.json'}" in err
