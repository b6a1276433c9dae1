"""Load: the local server and the pull engine with 64 concurrent downloads, several rounds:
no errors, every blob verified, memory flat after the first round."""

from __future__ import annotations

from pathlib import Path

from tests.reliability import scenarios


def test_64_concurrent_downloads_no_errors_memory_flat(tmp_path: Path) -> None:
    fig = scenarios.load(tmp_path)
    assert fig["errors"] == [], fig["errors"]
    assert fig["errors_5xx"] == 0
    assert fig["max_active_connections"] >= 16, fig
    # flat: later rounds do not keep growing past the warmed-up second round (generous margin)
    assert fig["rss_growth_after_warmup_mib"] < 64, fig
