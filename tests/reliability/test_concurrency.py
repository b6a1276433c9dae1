"""Concurrency: two applies on one project, projects sharing a cache, one blob fetched by
8 threads and 2 processes at the same instant (with and without working file locks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability import scenarios


def test_second_apply_on_the_same_project_is_refused_clearly(tmp_path: Path) -> None:
    fig = scenarios.two_applies(tmp_path)
    assert fig["first_exit"] == 0
    # refused at once with the workspace-busy code and the holder named (or, if it ran after, a no-op)
    assert fig["second_exit"] in (0, 17), fig
    if fig["second_exit"] == 17:
        assert fig["second_seconds"] < 10  # python start-up + one lock attempt; no waiting
        assert any("pid" in line for line in fig["second_message"]), fig["second_message"]
    assert fig["plan_after_exit"] == 0
    assert fig["lock_ok"]


def test_two_projects_share_one_cache(tmp_path: Path) -> None:
    fig = scenarios.shared_cache(tmp_path)
    assert fig["exit_codes"] == [0] * fig["projects"], fig["problems"]
    assert fig["problems"] == []


@pytest.mark.parametrize("flock", [True, False], ids=["flock", "no-flock"])
def test_same_blob_from_8_threads_and_2_processes(tmp_path: Path, flock: bool) -> None:
    fig = scenarios.same_blob(tmp_path, flock=flock)
    assert fig["errors"] == [], fig
    assert fig["final_blobs"] == 1 and fig["final_blob_valid"], fig
    assert fig["corrupt_blobs"] == []
    assert fig["leftovers"] == [], fig
