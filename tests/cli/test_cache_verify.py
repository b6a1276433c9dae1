"""`batuta cache verify|rm` and the stale-partials part of `cache prune` (issue #20), through the CLI
against the local Hub; the real ``huggingface_hub`` client reads the repaired cache offline."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.hub.cache import git_blob_sha1
from tests._builders import run_cli as run

CONFIG = b'{"model_type": "x"}'


def _safetensors() -> bytes:
    import numpy as np
    from safetensors.numpy import save

    return save({"w": np.arange(512, dtype=np.float32)})


WEIGHTS = _safetensors()  # LFS on the Hub: its blob is named by sha256


def _repo(name: str = "org/m") -> Path:
    return Path(os.environ["HF_HUB_CACHE"]) / ("models--" + name.replace("/", "--"))


def _blob(repo: str, data: bytes, *, lfs: bool) -> Path:
    etag = hashlib.sha256(data).hexdigest() if lfs else git_blob_sha1(data)
    return _repo(repo) / "blobs" / etag


def _overwrite(path: Path, data: bytes) -> None:
    os.chmod(path, 0o644)
    path.write_bytes(data)


@pytest.fixture
def pulled(hub_env: Any, capsys: pytest.CaptureFixture[str]) -> str:
    sha: str = hub_env.store.commit("org/m", {"config.json": CONFIG, "model.safetensors": WEIGHTS})
    code, _, err = run(capsys, "hf", "pull", "model", "org/m")
    assert code == 0, err
    return sha


def _read_offline(sha: str, name: str) -> bytes:
    from huggingface_hub import hf_hub_download

    return Path(
        hf_hub_download(
            "org/m", name, revision=sha, local_files_only=True, cache_dir=os.environ["HF_HUB_CACHE"]
        )
    ).read_bytes()


def test_clean_cache_verifies(pulled: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "cache", "verify", "--json")
    assert code == 0, err
    assert json.loads(out) == {"snapshots": 1, "files": 2, "problems": [], "repaired": []}
    code, _, err = run(capsys, "cache", "verify", "org/m@main")
    assert code == 0 and "checked 2 files in 1 snapshot: 0 problems" in err


def test_corrupt_lfs_and_git_blobs_exit_11_then_repair_restores_them(
    pulled: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Same size, other bytes: only re-hashing can tell (a size check or a stamp would not).
    _overwrite(_blob("org/m", WEIGHTS, lfs=True), b"\x00" * len(WEIGHTS))
    _overwrite(_blob("org/m", CONFIG, lfs=False), CONFIG.upper())
    code, out, err = run(capsys, "cache", "verify", "--json")
    assert code == 11
    problems = {(p["path"], p["problem"]) for p in json.loads(out)["problems"]}
    assert problems == {("model.safetensors", "corrupt"), ("config.json", "corrupt")}
    assert "--repair" in err and "Traceback" not in err
    code, out, err = run(capsys, "cache", "verify", "org/m", "--repair")
    assert code == 0, err
    assert "repaired" in out and "2 repaired" in err
    assert _read_offline(pulled, "model.safetensors") == WEIGHTS
    assert _read_offline(pulled, "config.json") == CONFIG
    assert run(capsys, "cache", "verify")[0] == 0


def test_missing_blob_and_missing_link_are_reported_and_repaired(
    pulled: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _blob("org/m", WEIGHTS, lfs=True).unlink()
    (_repo() / "snapshots" / pulled / "config.json").unlink()
    code, out, _ = run(capsys, "cache", "verify", "--json")
    assert code == 11
    assert {(p["path"], p["problem"]) for p in json.loads(out)["problems"]} == {
        ("model.safetensors", "missing"),
        ("config.json", "missing"),
    }
    code, out, err = run(capsys, "cache", "verify", "--repair", "--json")
    assert code == 0, err
    assert len(json.loads(out)["repaired"]) == 2 and json.loads(out)["problems"] == []
    assert _read_offline(pulled, "config.json") == CONFIG


def test_snapshot_without_a_listing_is_checked_against_blob_names(
    pulled: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # huggingface_hub writes no trees/<commit>.json: the blob's name is its digest.
    (_repo() / "trees" / f"{pulled}.json").unlink()
    assert run(capsys, "cache", "verify")[0] == 0
    _overwrite(_blob("org/m", CONFIG, lfs=False), b"x" * len(CONFIG))
    code, out, _ = run(capsys, "cache", "verify", "--json")
    assert code == 11 and [p["path"] for p in json.loads(out)["problems"]] == ["config.json"]


def test_repair_from_a_hub_serving_bad_bytes_stays_exit_11_and_caches_nothing_bad(
    pulled: str, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    blob = _blob("org/m", CONFIG, lfs=False)
    _overwrite(blob, CONFIG.upper())
    hub_env.faults.configure(corrupt=100, path_filter="/resolve/")  # every download corrupted
    code, _, err = run(capsys, "cache", "verify", "--repair")
    assert code == 11 and "Traceback" not in err
    assert not blob.exists() or blob.read_bytes() == CONFIG  # the bad copy was discarded, no other kept
    hub_env.faults.reset()
    code, _, err = run(capsys, "cache", "verify", "--repair")
    assert code == 0, err
    code, _, err = run(capsys, "hf", "repo", "delete", "org/m", "--yes")
    _overwrite(blob, CONFIG.upper())
    code, _, err = run(capsys, "cache", "verify", "--repair")
    assert code == 8 and "not found" in err  # the Hub lost it: said, not hidden


def test_verify_selects_repo_and_revision(
    pulled: str, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    hub_env.store.commit("org/other", {"config.json": b"{}"})
    assert run(capsys, "hf", "pull", "model", "org/other")[0] == 0
    _overwrite(_blob("org/m", CONFIG, lfs=False), CONFIG.upper())
    assert run(capsys, "cache", "verify", "org/other")[0] == 0
    assert run(capsys, "cache", "verify", f"org/m@{pulled}")[0] == 11
    assert run(capsys, "cache", "verify", "--repo-type", "dataset")[0] == 0  # nothing of that type
    code, _, err = run(capsys, "cache", "verify", "org/m@v9")
    assert code == 8 and "cache ls" in err
    assert run(capsys, "cache", "verify", "org/m@bad..rev")[0] == 11


def _workspace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "hf.yaml").write_text("version: 1\nmodels:\n  m: {repo: org/m, output: ./models/m}\n")
    assert run(capsys, "apply", "-f", str(ws / "hf.yaml"), "--auto-approve")[0] == 0
    return ws


def test_rm_refuses_what_a_workspace_pins_unless_forced(
    pulled: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = _workspace(tmp_path, capsys)
    code, _, err = run(capsys, "cache", "rm", "org/m")
    assert code == 64 and str(ws / "models" / "m") in err and "--force" in err
    assert (_repo() / "snapshots" / pulled).is_dir()
    code, out, err = run(capsys, "cache", "rm", "org/m", "--force", "--json")
    assert code == 0, err
    assert json.loads(out)["removed"] == [f"model:org/m@{pulled}"] and json.loads(out)["freed_bytes"] > 0
    assert "now point to nothing" in err and not _repo().exists()


def test_rm_one_revision_keeps_the_others(hub_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    old = hub_env.store.commit("org/m", {"config.json": CONFIG})
    assert run(capsys, "hf", "pull", "model", "org/m", "--revision", old)[0] == 0
    new = hub_env.store.commit("org/m", {"config.json": b'{"v": 2}'})
    assert run(capsys, "hf", "pull", "model", "org/m")[0] == 0
    code, out, err = run(capsys, "cache", "rm", f"org/m@{old}")
    assert code == 0, err
    assert f"removed model org/m@{old[:12]}" in out
    left = json.loads(run(capsys, "cache", "ls", "--json")[1])
    assert [s["commit"] for s in left] == [new]
    assert run(capsys, "cache", "rm", "org/nope")[0] == 8


def test_prune_drops_only_stale_partial_downloads(pulled: str, capsys: pytest.CaptureFixture[str]) -> None:
    blobs = _repo() / "blobs"
    stale, fresh = blobs / ("a" * 64 + ".incomplete"), blobs / ("b" * 64 + ".incomplete")
    stale.write_bytes(b"x" * 100)
    fresh.write_bytes(b"y" * 10)
    eight_days_ago = time.time() - 8 * 86400
    os.utime(stale, (eight_days_ago, eight_days_ago))
    code, out, err = run(capsys, "cache", "prune", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["stale_incomplete_files"], report["stale_incomplete_bytes"], report["freed_bytes"]) == (
        1,
        100,
        0,
    )
    assert not stale.exists() and fresh.exists()
    code, out, _ = run(capsys, "cache", "prune", "--incomplete-days", "0")
    assert code == 0 and "removed 1 unfinished download(s)" in out and not fresh.exists()
    assert run(capsys, "cache", "verify")[0] == 0  # the snapshot itself untouched
    assert run(capsys, "cache", "prune", "--incomplete-days", "-1")[0] == 64


def test_hostile_cache_planted_links_are_reported_not_followed(
    pulled: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(CONFIG)  # the right bytes, but outside the cache
    blob = _blob("org/m", CONFIG, lfs=False)
    blob.unlink()
    blob.symlink_to(secret)  # a symlink under a blob name is never a blob
    link = _repo() / "snapshots" / pulled / "model.safetensors"
    link.unlink()
    link.symlink_to(f"../../blobs/{blob.name}")  # points at another file's blob
    code, out, _ = run(capsys, "cache", "verify", "--json")
    assert code == 11
    assert {(p["path"], p["problem"]) for p in json.loads(out)["problems"]} == {
        ("config.json", "missing"),
        ("model.safetensors", "mislinked"),
    }
    code, _, err = run(capsys, "cache", "verify", "--repair")
    assert code == 0, err
    assert not blob.is_symlink() and secret.read_bytes() == CONFIG
    assert _read_offline(pulled, "model.safetensors") == WEIGHTS
    # Without a listing, a dangling link is reported as missing.
    (_repo() / "trees" / f"{pulled}.json").unlink()
    _blob("org/m", WEIGHTS, lfs=True).unlink()
    code, out, _ = run(capsys, "cache", "verify", "--json")
    assert code == 11 and [(p["path"], p["problem"]) for p in json.loads(out)["problems"]] == [
        ("model.safetensors", "missing")
    ]


def test_prune_never_follows_a_symlinked_blobs_folder(
    pulled: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / ("c" * 64 + ".incomplete")
    victim.write_bytes(b"keep me")
    os.utime(victim, (0, 0))
    planted = Path(os.environ["HF_HUB_CACHE"]) / "models--org--planted"
    planted.mkdir()
    (planted / "blobs").symlink_to(elsewhere)
    assert run(capsys, "cache", "prune", "--incomplete-days", "0")[0] == 0
    assert victim.read_bytes() == b"keep me"
