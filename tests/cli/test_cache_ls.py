"""`batuta cache ls` filters, sorting and --json (issue #20), against a cache the local Hub filled."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.hub.cache import HfCache
from tests._builders import run_cli as run


def _cache() -> HfCache:
    hf_home = Path(os.environ["HF_HOME"])
    return HfCache(Path(os.environ["HF_HUB_CACHE"]), state_dir=hf_home / "batuta")


@pytest.fixture
def cache(hub_env: Any, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """org/small (1 small file), org/big (two snapshots: the old one detached), other/data (a dataset).
    Last use recorded (future times, so no later read can reorder them): big-old < data < small < big."""
    store = hub_env.store
    commits = {
        "small": store.commit("org/small", {"a.txt": b"s" * 10}),
        "big-old": store.commit("org/big", {"w.txt": b"o" * 3000}),
    }
    assert run(capsys, "hf", "pull", "model", "org/small")[0] == 0
    code, _, err = run(capsys, "hf", "pull", "model", "org/big")
    assert code == 0, err
    commits["big"] = store.commit("org/big", {"w.txt": b"n" * 5000, "x.txt": b"x"})
    code, _, err = run(capsys, "hf", "pull", "model", "org/big")
    assert code == 0, err
    commits["data"] = store.commit("other/data", {"d.csv": b"1,2\n" * 100}, repo_type="dataset")
    assert run(capsys, "hf", "pull", "dataset", "other/data")[0] == 0
    base = time.time() + 10_000
    idx = _cache().index
    for i, (repo, key) in enumerate([("models--org--big", "big-old"), ("datasets--other--data", "data"),
                                     ("models--org--small", "small"), ("models--org--big", "big")]):
        idx.touch(repo, commits[key], when=base + 100 * i)
    return commits


def ls(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    code, out, err = run(capsys, "cache", "ls", "--json", *argv)
    assert code == 0, err
    data: list[dict[str, Any]] = json.loads(out)
    return data


def test_default_order_is_most_recently_used_first(cache: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    got = [s["commit"] for s in ls(capsys)]
    assert got == [cache["big"], cache["small"], cache["data"], cache["big-old"]]
    assert [s["commit"] for s in ls(capsys, "--reverse")] == got[::-1]
    first = ls(capsys)[0]
    assert set(first) == {"repo_type", "repo_id", "commit", "refs", "files", "size_bytes", "last_access", "path"}
    assert (first["repo_id"], first["refs"], first["files"], first["size_bytes"]) == ("org/big", ["main"], 2, 5001)


def test_sort_by_size_name_and_files(cache: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert [s["size_bytes"] for s in ls(capsys, "--sort", "size")] == [5001, 3000, 400, 10]
    assert [s["size_bytes"] for s in ls(capsys, "--sort", "size", "--reverse")] == [10, 400, 3000, 5001]
    assert [s["repo_id"] for s in ls(capsys, "--sort", "name")] == ["org/big", "org/big", "org/small", "other/data"]
    assert ls(capsys, "--sort", "files")[0]["commit"] == cache["big"]


def test_filters_type_repo_glob_detached_min_size(cache: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert [s["repo_id"] for s in ls(capsys, "--type", "dataset")] == ["other/data"]
    assert {s["repo_id"] for s in ls(capsys, "--repo-type", "model")} == {"org/big", "org/small"}
    assert {s["repo_id"] for s in ls(capsys, "--repo", "org/*")} == {"org/big", "org/small"}
    assert [s["repo_id"] for s in ls(capsys, "--repo", "*data")] == ["other/data"]
    assert ls(capsys, "--repo", "ORG/*") == []  # case-sensitive, like repo ids on the Hub
    detached = ls(capsys, "--detached")
    assert [(s["commit"], s["refs"]) for s in detached] == [(cache["big-old"], [])]
    assert [s["commit"] for s in ls(capsys, "--min-size", "1KB")] == [cache["big"], cache["big-old"]]
    assert ls(capsys, "--repo", "org/*", "--type", "dataset") == []


def test_table_output_follows_the_same_order(cache: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "cache", "ls", "--sort", "name", "--reverse")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split("\t")[:2] == ["TYPE", "REPO"]
    assert [ln.split("\t")[1] for ln in lines[1:]] == ["other/data", "org/small", "org/big", "org/big"]


def test_bad_options_are_usage_errors(cache: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "cache", "ls", "--min-size", "lots")
    assert code == 64 and "is not a size" in err and "Traceback" not in err
    code, _, err = run(capsys, "cache", "ls", "--sort", "colour")
    assert code == 64 and "invalid choice" in err


def test_prune_detached_removes_unreferenced_snapshots_except_gc_roots(
    cache: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cache prune --detached` (hf's detached revisions): the old org/big snapshot goes, blobs the
    current one still uses stay; a commit a workspace's hf.lock pins is kept though no ref names it."""
    hub = Path(os.environ["HF_HUB_CACHE"])
    small_dir = hub / "models--org--small" / "snapshots" / cache["small"]
    (hub / "models--org--small" / "refs" / "main").unlink()  # org/small is now detached too
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "hf.yaml").write_text(f"version: 1\nmodels:\n  s:\n    repo: org/small\n    revision: {cache['small']}\n")
    code, _, err = run(capsys, "apply", "-f", str(ws / "hf.yaml"), "--auto-approve")
    assert code == 0, err
    assert [s["commit"] for s in ls(capsys, "--detached", "--sort", "name")] == [cache["big-old"], cache["small"]]
    code, out, err = run(capsys, "cache", "prune", "--detached", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["detached_removed"] == [f"org/big@{cache['big-old']}"] and report["detached_bytes"] >= 3000
    assert small_dir.is_dir()  # rooted: the workspace's hf.lock pins it
    assert {s["commit"] for s in ls(capsys)} == {cache["big"], cache["small"], cache["data"]}
    code, out, err = run(capsys, "cache", "prune", "--detached")
    assert code == 0 and "removed 0 detached snapshot(s)" in out, err
    from huggingface_hub import hf_hub_download

    got = hf_hub_download("org/big", "w.txt", local_files_only=True, cache_dir=str(hub))
    assert Path(got).read_bytes() == b"n" * 5000
