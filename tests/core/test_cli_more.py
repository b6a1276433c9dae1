"""CLI edges of plan/apply/status: flag validation, JSON output, a lone failure keeps its own exit code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.cli import main
from tests._builders import workspace as _ws


@pytest.mark.parametrize("jobs", ["0", "abc", "999"])
def test_apply_jobs_must_be_a_sane_positive_integer(jobs: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", "--jobs", jobs, "--auto-approve"]) == 64
    assert "--jobs" in capsys.readouterr().err


def test_apply_json_and_a_lone_failure_keeps_its_exit_code(
    tmp_path: Path, hub_env: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hub_env.store.commit("org/a", {"config.json": b"{}", "README.md": b"# a\n"})
    ws = _ws(tmp_path, "models:\n  a: {repo: org/a, output: ./a}\n")
    monkeypatch.chdir(ws)
    assert main(["apply", "--auto-approve", "--json"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{") :])
    assert any("models.a" in str(v) for v in summary.values())
    # status, in sync, as JSON and as text
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)
    assert main(["status", "--exit-code"]) == 0
    assert "In sync" in capsys.readouterr().out
    # the upstream repo disappears: status warns, and an apply that needs it fails with exit 8
    (ws / "hf.yaml").write_text("version: 1\nmodels:\n  a: {repo: org/a, output: ./a}\n  b: {repo: org/gone}\n")
    code = main(["apply", "--auto-approve"])
    err = capsys.readouterr().err
    assert code == 8 and "org/gone" in err and "Traceback" not in err
