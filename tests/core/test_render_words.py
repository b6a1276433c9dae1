"""The plan as a person reads it: reasons as words, right plurals, colour on a terminal only
(and never with NO_COLOR) (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.cli import _common, main


def _ws(tmp_path: Path, hub: Any) -> Path:
    hub.store.commit("org/one", {"config.json": b"{}"})
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "hf.yaml").write_text("version: 1\nmodels:\n  one: {repo: org/one}\n")
    return ws


def test_words_plurals_and_colour(
    tmp_path: Path, hub_env: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = _ws(tmp_path, hub_env)
    f = str(ws / "hf.yaml")
    assert main(["plan", "-f", f]) == 0
    out = capsys.readouterr().out
    assert "(not locked)" in out and "not_locked" not in out and "1 file, 1 to download" in out
    assert "\x1b[" not in out  # not a terminal: no escape codes
    assert main(["plan", "-f", f, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["actions"][0]["reason"] == "not_locked"  # JSON keeps tokens

    monkeypatch.setattr(_common, "is_tty", lambda stream=None: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert main(["plan", "-f", f]) == 0
    out = capsys.readouterr().out
    assert "\x1b[32m+ ↓ pull\x1b[0m" in out and "\x1b[1mPlan: 1 to pull" in out
    monkeypatch.setenv("NO_COLOR", "1")
    assert main(["plan", "-f", f]) == 0
    assert "\x1b[" not in capsys.readouterr().out
    monkeypatch.delenv("NO_COLOR")
    assert main(["plan", "-f", f, "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert "\x1b[" not in md and "| not locked |" in md

    assert main(["apply", "-f", f, "--auto-approve"]) == 0
    capsys.readouterr()
    assert main(["plan", "-f", f]) == 0
    assert "agree (1 resource)." in capsys.readouterr().out
    assert main(["status", "-f", f]) == 0
    assert "In sync: 1 resource matches hf.lock" in capsys.readouterr().out


def test_colour_marks_deletions_red_and_drift() -> None:
    from batuta_sync.core.actions import Action, ActionKind, Drift, DriftKind, Reason
    from batuta_sync.core.planner.plan import Plan
    from batuta_sync.core.render import render_text

    plan = Plan(
        "p", "hf.yaml", "sha256:m", "none",
        actions=(Action(ActionKind.DELETE_LOCAL, "models.old", Reason.REMOVED_FROM_MANIFEST, "2 local files"),),
        drift=(Drift("models.x", DriftKind.UPSTREAM_MOVED, "moved"),),
        warnings=("models.y: could not check org/y@main: refused",),
    )
    text = render_text(plan, color=True)
    assert "\x1b[31m  - delete-local\x1b[0m" in text and "(removed from manifest)" in text
    assert "\x1b[35m!\x1b[0m models.x  upstream moved: moved" in text
    assert "\x1b[1;31mNOT CHECKED: 1 resource could not be checked against the Hub and is treated as unchanged:" in text


def test_human_age_and_plural() -> None:
    from batuta_sync._fmt import human_age, plural, words

    assert [human_age(s) for s in (-1, 59, 150, 7300, 200_000)] == ["0 s", "59 s", "2 min", "2 h", "2 days"]
    assert plural(1, "file") == "1 file" and plural(2, "file") == "2 files" and plural(0, "entry", "entries") == "0 entries"
    assert words("removed_from_manifest") == "removed from manifest"
