"""The metadata cache tells its age, ``--refresh`` bypasses it, and batuta's own push invalidates
what it cached about the repo (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.tinymodel import write_tiny_llama
from tests._builders import run_cli as run


def _info(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[str, str]:
    code, out, err = run(capsys, "hf", "info", "model", "me/tiny", "--json", *extra)
    assert code == 0, err
    return str(json.loads(out)["sha"]), err


def test_cached_answers_say_their_age_refresh_asks_the_hub_and_a_push_invalidates(
    tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    model = write_tiny_llama(tmp_path / "tiny")
    assert run(capsys, "hf", "push", "model", str(model), "--repo", "me/tiny")[0] == 0
    first = hub_env.store.resolve("me/tiny")
    sha, err = _info(capsys)
    assert sha == first and "metadata cache" not in err
    hub_env.log.clear()
    sha, err = _info(capsys)
    assert sha == first and hub_env.log.count() == 0  # within the TTL: no request
    assert "(answered from batuta's metadata cache, fetched 0 s ago; --refresh asks the Hub)" in err
    sha, err = _info(capsys, "--refresh")
    assert hub_env.log.count() >= 1 and "metadata cache" not in err
    code, _, err = run(capsys, "hf", "search", "models", "tiny", "--json")
    code, _, err = run(capsys, "hf", "search", "models", "tiny", "--json")
    assert code == 0 and "metadata cache" in err
    code, _, err = run(capsys, "hf", "search", "models", "tiny", "--json", "--refresh")
    assert code == 0 and "metadata cache" not in err

    # batuta's own push to the repo: the next info shows the new commit without --refresh.
    (model / "config.json").write_text((model / "config.json").read_text().replace("}", ', "x": 1}', 1))
    assert run(capsys, "hf", "push", "model", str(model), "--repo", "me/tiny")[0] == 0
    second = hub_env.store.resolve("me/tiny")
    assert second != first
    sha, err = _info(capsys)
    assert sha == second and "metadata cache" not in err


def test_plan_accepts_refresh(tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    hub_env.store.commit("org/a", {"config.json": b"{}"})
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "hf.yaml").write_text("version: 1\nmodels:\n  a: {repo: org/a}\n")
    code, out, _ = run(capsys, "plan", "-f", str(ws / "hf.yaml"), "--refresh", "--detailed-exitcode")
    assert code == 2 and "models.a" in out


def test_repo_scoped_keys() -> None:
    from batuta_sync.hub.metacache import MetadataCache, repo_of_path
    from batuta_sync.settings import resolve_settings

    assert repo_of_path("/api/models/org/x/revision/main") == ("models", "org/x")
    assert repo_of_path("/api/datasets/gpt2") == ("datasets", "gpt2")
    assert repo_of_path("/api/models") is None and repo_of_path("/api/whoami-v2") is None
    cache = MetadataCache(resolve_settings())
    a, b = cache.key("/api/models/org/x"), cache.key("/api/models/org/x/tree/abc")
    assert a.split("/")[0] == b.split("/")[0] != cache.key("/api/models/org/y").split("/")[0]
    assert cache.key("/api/models", [("search", "x")]).startswith("any/")
