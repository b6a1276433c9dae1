"""Search tables never truncate repo ids on a terminal (other columns fold); ``--no-truncate``
shortens nothing (issue 14)."""

from __future__ import annotations

from typing import Any

import pytest

from batuta_sync.cli import _common, main

LONG = "some-organization/an-unusually-long-model-name-Q4_K_M-GGUF-v2"


def test_repo_ids_are_never_cut_on_a_narrow_terminal(
    hub_env: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hub_env.store.commit(LONG, {"config.json": b"{}"})
    hub_env.store.set_downloads(LONG, 123_456_789)
    monkeypatch.setattr(_common, "is_tty", lambda stream=None: True)
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["hf", "search", "models", "unusually"]) == 0
    out = capsys.readouterr().out
    assert LONG in out and "…" not in out  # the id is whole; the other columns fold
    monkeypatch.setenv("COLUMNS", "50")  # narrower than the id itself: it folds, never an ellipsis
    assert main(["hf", "search", "models", "unusually"]) == 0
    out = capsys.readouterr().out
    assert "…" not in out and "some-organ" in out and "GUF-v2" in out
    assert main(["hf", "search", "models", "unusually", "--no-truncate", "--refresh"]) == 0
    out = capsys.readouterr().out
    assert LONG in out and "123,456,789" in out and "…" not in out
