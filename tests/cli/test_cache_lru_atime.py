"""LRU by the blobs' last access (issue #20): a snapshot that transformers / huggingface_hub read
recently is kept by `cache prune` even though batuta's own record says it is old; `cache verify`
re-hashing does not count as a use."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.hub.cache import HfCache
from tests._builders import run_cli as run

NOW = time.time()


def _cache() -> HfCache:
    return HfCache(Path(os.environ["HF_HUB_CACHE"]), state_dir=Path(os.environ["HF_HOME"]) / "batuta")


def _blobs(repo: str) -> list[Path]:
    return sorted((Path(os.environ["HF_HUB_CACHE"]) / f"models--org--{repo}" / "blobs").iterdir())


def _set_atime(repo: str, when: float) -> None:
    for b in _blobs(repo):
        os.utime(b, (when, b.stat().st_mtime), follow_symlinks=False)


@pytest.fixture
def two(hub_env: Any, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """org/a and org/b, the same size; batuta's record: a used before b; every blob last read long ago."""
    commits = {}
    for name, byte in (("a", b"a"), ("b", b"b")):
        commits[name] = hub_env.store.commit(f"org/{name}", {"w.txt": byte * 20_000, "config.json": b"{}"})
        code, _, err = run(capsys, "hf", "pull", "model", f"org/{name}")
        assert code == 0, err
    idx = _cache().index
    idx.touch("models--org--a", commits["a"], when=NOW - 2000)
    idx.touch("models--org--b", commits["b"], when=NOW - 1000)
    for name in ("a", "b"):
        _set_atime(name, NOW - 50_000)
    return commits


def _order(capsys: pytest.CaptureFixture[str]) -> list[str]:
    code, out, err = run(capsys, "cache", "ls", "--json")
    assert code == 0, err
    return [s["repo_id"] for s in json.loads(out)]


def test_a_recent_read_of_the_blobs_outranks_batutas_record(
    two: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _order(capsys) == ["org/b", "org/a"]  # only batuta's record: b is the more recent
    _set_atime("a", NOW - 10)  # transformers just loaded org/a from the cache
    assert _order(capsys) == ["org/a", "org/b"]
    snaps = {s.repo_id: s for s in _cache().snapshots()}
    assert snaps["org/a"].last_access == pytest.approx(NOW - 10, abs=1)
    assert snaps["org/b"].last_access == pytest.approx(NOW - 1000, abs=1)  # the record, newer than its atime
    total = _cache().total_size()
    code, out, err = run(capsys, "cache", "prune", "--max-size", str(total // 2 + 100), "--json")
    assert code == 0, err
    left = {s.repo_id for s in _cache().snapshots()}
    assert left == {"org/a"}, out  # b evicted: least recently used once reads count


def test_without_a_read_the_record_decides(two: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """Control for the test above: the same prune evicts org/a when nobody read it."""
    total = _cache().total_size()
    code, _, err = run(capsys, "cache", "prune", "--max-size", str(total // 2 + 100))
    assert code == 0, err
    assert {s.repo_id for s in _cache().snapshots()} == {"org/b"}


def test_cache_verify_does_not_count_as_a_use(two: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.write_bytes(b"x" * 100)
    os.utime(probe, (NOW - 50_000, probe.stat().st_mtime))
    probe.read_bytes()
    if probe.stat().st_atime < NOW - 40_000:
        pytest.skip("this filesystem does not record reads in atime (noatime): nothing to protect")
    code, _, err = run(capsys, "cache", "verify")
    assert code == 0, err
    assert all(b.stat().st_atime < NOW - 40_000 for b in _blobs("a") + _blobs("b"))  # O_NOATIME reads
    assert _order(capsys) == ["org/b", "org/a"]


def test_reading_through_huggingface_hub_updates_the_order(two: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The real thing where the filesystem records reads (relatime: a read after the last write):
    hf_hub_download + reading the file, as transformers does, makes org/a the most recent."""
    probe = tmp_path / "probe"
    probe.write_bytes(b"x")
    os.utime(probe, (NOW - 50_000, probe.stat().st_mtime))
    probe.read_bytes()
    if probe.stat().st_atime < NOW - 40_000:
        pytest.skip("this filesystem does not record reads in atime (noatime)")
    from huggingface_hub import hf_hub_download

    path = hf_hub_download("org/a", "w.txt", local_files_only=True, cache_dir=os.environ["HF_HUB_CACHE"])
    assert Path(path).read_bytes() == b"a" * 20_000
    assert _order(capsys) == ["org/a", "org/b"]
