"""The pull engine against the local Hub and its fault knobs (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.errors import DiskFullError, IntegrityError, NetworkError, OfflineError
from batuta_sync.hub.cache import CacheLayout
from batuta_sync.hub.download import CountingProgress
from batuta_sync.pull import PullRequest, cached_snapshot, pull
from batuta_sync.settings import Settings, resolve_settings
from batuta_sync.types import RepoRef

from ._repos import CONFIG, TOKENIZER, pickle_bytes, safetensors_bytes, torch_zip_bytes

REPO = "org/tiny"
BIG = safetensors_bytes(750_000, seed=3)  # ~3 MB, LFS


def seed(srv: Any, repo: str = REPO, **extra: bytes) -> str:
    files = {
        "config.json": CONFIG,
        "tokenizer.json": TOKENIZER,
        "model.safetensors": BIG,
        "README.md": b"# tiny\n",
    }
    files.update({k.replace("__", "/"): v for k, v in extra.items()})
    return str(srv.store.commit(repo, files))


def layout(settings: Settings, repo: str = REPO) -> CacheLayout:
    return CacheLayout.of(settings.hub_cache, RepoRef(repo))


def content_gets(srv: Any, start: int = 0) -> list[Any]:
    return [e for e in srv.log.entries[start:] if e.method == "GET" and "/resolve/" in e.path]


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.fixture(params=["inline-hash", "pipelined-hash", "inline-direct", "pipelined-direct"])
def hash_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with hashing in the worker thread or the helper-thread pipeline, writing
    through the page cache or around it (O_DIRECT, normally only for files >= 64 MiB)."""
    from batuta_sync.hub import download

    mode = str(request.param)
    monkeypatch.setattr(download, "PIPELINE_MIN", 1 if mode.startswith("pipelined") else 1 << 62)
    monkeypatch.setattr(download, "DIRECT_MIN", 1 if mode.endswith("direct") else 1 << 62)
    monkeypatch.setattr(download, "DIRECT_IO", True)
    return mode


# --------------------------------------------------------------------------- layout & cache hits


def test_pull_writes_hf_layout_and_second_pull_makes_no_content_request(
    hub_env: Any, settings: Settings
) -> None:
    commit = seed(hub_env)
    progress = CountingProgress()
    res = pull(settings, PullRequest(RepoRef(REPO)), progress=progress)
    assert res.snapshot.commit == commit
    assert [f.path for f in res.selected] == [
        "README.md",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    assert res.downloaded_bytes == sum(f.size for f in res.selected) and res.cache_hits == 0
    assert progress.done_bytes == res.downloaded_bytes
    lay = layout(settings)
    assert (lay.repo_dir / "refs" / "main").read_text() == commit
    tree = json.loads(lay.tree_path(commit).read_text())
    assert tree["format_version"] == 1 and tree["files"]["model.safetensors"]["lfs_sha256"] == sha256(BIG)
    link = lay.snapshot_dir(commit) / "model.safetensors"
    assert os.readlink(link) == f"../../blobs/{sha256(BIG)}"
    assert link.read_bytes() == BIG
    assert (lay.snapshot_dir(commit) / "config.json").read_bytes() == CONFIG
    assert (settings.hub_cache / "CACHEDIR.TAG").exists()
    assert not list(lay.blobs_dir.glob("*.incomplete"))

    mark = len(hub_env.log.entries)
    again = pull(settings, PullRequest(RepoRef(REPO)))
    assert content_gets(hub_env, mark) == []  # no content request at all
    assert hub_env.log.count("GET", "/cdn-lfs/") == 1
    assert again.cache_hits == 4 and again.downloaded_bytes == 0

    # a pinned commit whose listing is cached needs no request whatsoever
    mark = len(hub_env.log.entries)
    pinned = pull(settings, PullRequest(RepoRef(REPO, revision=commit)))
    assert hub_env.log.entries[mark:] == [] and pinned.cache_hits == 4


def test_huggingface_hub_reads_our_cache_offline(hub_env: Any, settings: Settings) -> None:
    import huggingface_hub

    commit = seed(hub_env)
    res = pull(settings, PullRequest(RepoRef(REPO)))
    mark = len(hub_env.log.entries)
    path = huggingface_hub.snapshot_download(
        REPO, revision="main", cache_dir=settings.hub_cache, local_files_only=True
    )
    assert Path(path) == res.snapshot_dir and Path(path).name == commit
    cfg = huggingface_hub.hf_hub_download(
        REPO, "config.json", cache_dir=settings.hub_cache, local_files_only=True
    )
    assert Path(cfg).read_bytes() == CONFIG
    cached = huggingface_hub.try_to_load_from_cache(REPO, "model.safetensors", cache_dir=settings.hub_cache)
    assert isinstance(cached, str) and Path(cached).read_bytes() == BIG
    info = huggingface_hub.scan_cache_dir(settings.hub_cache)
    assert not info.warnings and [r.repo_id for r in info.repos] == [REPO]
    assert hub_env.log.entries[mark:] == []


# --------------------------------------------------------------------------- faults


def test_dropped_connections_resume_where_they_stopped(
    hub_env: Any, settings: Settings, hash_mode: str
) -> None:
    seed(hub_env)
    hub_env.faults.configure(drop_after_bytes=1_000_000, drop_count=2, path_filter="/cdn-lfs/")
    res = pull(settings, PullRequest(RepoRef(REPO)))
    assert (res.snapshot_dir / "model.safetensors").read_bytes() == BIG
    gets = [e for e in content_gets(hub_env) if "/cdn-lfs/" in e.path]
    assert len(gets) == 3  # 1 MB, 1 MB, the rest
    assert sum(e.bytes_out for e in gets) == len(BIG)  # nothing fetched twice
    assert [e.status for e in gets] == [200, 206, 206]


def test_rate_limit_and_server_error_bursts_are_retried(
    hub_env: Any, settings: Settings, fake_sleep: Callable[[float], None], sleeps: list[float]
) -> None:
    seed(hub_env)
    hub_env.faults.configure(rate_limit=2, retry_after="3", path_filter="/resolve/")
    res = pull(settings, PullRequest(RepoRef(REPO)), sleep=fake_sleep, jobs=1)
    assert (res.snapshot_dir / "config.json").read_bytes() == CONFIG
    assert sleeps[:2] == [3.0, 3.0]  # the server's Retry-After is a minimum
    sleeps.clear()
    seed(hub_env, "org/r5xx")
    hub_env.faults.configure(rate_limit=0, server_errors=3)
    res = pull(settings, PullRequest(RepoRef("org/r5xx"), files=("tokenizer.json",)), sleep=fake_sleep)
    assert sleeps == [1.0, 2.0, 4.0]
    assert (res.snapshot_dir / "tokenizer.json").read_bytes() == TOKENIZER
    seed(hub_env, "org/rdead")
    hub_env.faults.configure(server_errors=50)
    sleeps.clear()
    with pytest.raises(NetworkError) as exc:
        pull(settings, PullRequest(RepoRef("org/rdead"), files=("README.md",)), sleep=fake_sleep)
    assert exc.value.exit_code == 9
    assert sleeps == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert not list(layout(settings, "org/rdead").blobs_dir.iterdir())


def test_corrupt_byte_is_detected_and_never_cached(hub_env: Any, settings: Settings, hash_mode: str) -> None:
    commit = seed(hub_env)
    hub_env.faults.configure(corrupt=1, path_filter="/cdn-lfs/")
    res = pull(settings, PullRequest(RepoRef(REPO)))
    assert (res.snapshot_dir / "model.safetensors").read_bytes() == BIG
    assert len([e for e in content_gets(hub_env) if "/cdn-lfs/" in e.path]) == 2  # corrupt, then good

    other = "org/corrupt"
    seed(hub_env, other)
    hub_env.faults.configure(corrupt=100)
    with pytest.raises(IntegrityError) as exc:
        pull(settings, PullRequest(RepoRef(other)))
    assert exc.value.exit_code == 11 and "model.safetensors" in exc.value.message
    lay = layout(settings, other)
    assert not lay.blob_path(sha256(BIG)).exists()
    assert not lay.incomplete_path(sha256(BIG)).exists()
    assert not (lay.snapshot_dir(commit) / "model.safetensors").exists()


def test_partial_file_is_resumed_and_a_server_ignoring_range_restarts_cleanly(
    hub_env: Any, settings: Settings, hash_mode: str
) -> None:
    seed(hub_env)
    lay = layout(settings)
    inc = lay.incomplete_path(sha256(BIG))
    inc.parent.mkdir(parents=True)
    half = len(BIG) // 2
    inc.write_bytes(BIG[:half])
    res = pull(settings, PullRequest(RepoRef(REPO), files=("model.safetensors",)))
    gets = [e for e in content_gets(hub_env) if "/cdn-lfs/" in e.path]
    assert [e.status for e in gets] == [206] and gets[0].bytes_out == len(BIG) - half
    assert res.transferred_bytes == len(BIG) - half

    other = "org/norange"
    seed(hub_env, other)
    lay2 = layout(settings, other)
    lay2.blobs_dir.mkdir(parents=True)
    lay2.incomplete_path(sha256(BIG)).write_bytes(BIG[:half])
    hub_env.faults.configure(ignore_range=True)
    mark = len(hub_env.log.entries)
    res = pull(settings, PullRequest(RepoRef(other), files=("model.safetensors",)))
    gets = [e for e in content_gets(hub_env, mark) if "/cdn-lfs/" in e.path]
    assert [e.status for e in gets] == [200] and gets[0].bytes_out == len(BIG)
    assert (res.snapshot_dir / "model.safetensors").read_bytes() == BIG


def test_a_partial_file_with_wrong_bytes_restarts(hub_env: Any, settings: Settings, hash_mode: str) -> None:
    seed(hub_env)
    lay = layout(settings)
    lay.blobs_dir.mkdir(parents=True)
    lay.incomplete_path(sha256(BIG)).write_bytes(b"\xff" * 1000)  # e.g. left by another version
    res = pull(settings, PullRequest(RepoRef(REPO), files=("model.safetensors",)))
    assert (res.snapshot_dir / "model.safetensors").read_bytes() == BIG
    assert [e.status for e in content_gets(hub_env) if "/cdn-lfs/" in e.path] == [206, 200]


def _cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2]) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_sigkill_mid_file_then_resume_transfers_less_than_1_6x(hub_env: Any, settings: Settings) -> None:
    big = safetensors_bytes(1_000_000, seed=5)  # 4 MB
    hub_env.store.commit("org/killme", {"model.safetensors": big, "config.json": CONFIG})
    chunk = len(big) // 16
    # every content request delivers 1/16 of the file, then the connection drops; each request waits 100 ms
    hub_env.faults.configure(drop_after_bytes=chunk, drop_count=1000, latency_ms=100, path_filter="/resolve/")
    blobs = layout(settings, "org/killme").blobs_dir

    def partial_size() -> int:  # the fetcher writes its own <etag>.<host>-<pid>-<tid>-<rand>.incomplete
        sizes = [p.stat().st_size for p in blobs.glob(f"{sha256(big)}.*.incomplete")] if blobs.is_dir() else []
        return max(sizes, default=0)

    proc = subprocess.Popen(
        [sys.executable, "-m", "batuta_sync", "hf", "pull", "model", "org/killme", "--quiet"],
        env=_cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if partial_size() >= 2 * chunk:
                break
            if proc.poll() is not None:
                pytest.fail("the pull finished before it could be killed")
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_before = partial_size()
    assert 0 < done_before < len(big)
    hub_env.faults.reset()
    res = pull(settings, PullRequest(RepoRef("org/killme")))  # the dead process's partial is taken over
    assert (res.snapshot_dir / "model.safetensors").read_bytes() == big
    assert res.transferred_bytes <= len(big) - done_before
    assert not list(blobs.glob("*.incomplete"))
    total = sum(e.bytes_out for e in content_gets(hub_env) if "/cdn-lfs/" in e.path)
    assert total < 1.6 * len(big), (total, len(big))


def test_two_processes_fetching_the_same_blob_end_with_one_valid_blob(
    hub_env: Any, settings: Settings
) -> None:
    seed(hub_env)
    hub_env.faults.configure(
        latency_ms=50, drop_after_bytes=500_000, drop_count=1000, path_filter="/cdn-lfs/"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "batuta_sync", "hf", "pull", "model", REPO, "--quiet"],
            env=_cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    lay = layout(settings)
    assert lay.blob_path(sha256(BIG)).read_bytes() == BIG
    assert not list(lay.blobs_dir.glob("*.incomplete"))
    total = sum(e.bytes_out for e in content_gets(hub_env) if "/cdn-lfs/" in e.path)
    assert total == len(BIG)  # the second waited on the lock and found the blob


def test_threads_fetching_the_same_repo_concurrently(
    hub_env: Any, settings: Settings, hash_mode: str
) -> None:
    seed(hub_env)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            pull(settings, PullRequest(RepoRef(REPO)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert layout(settings).blob_path(sha256(BIG)).read_bytes() == BIG
    assert hub_env.log.count("GET", "/cdn-lfs/") == 1


def test_disk_full_is_reported_before_any_content_request(
    hub_env: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(hub_env)
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1_000_000))
    with pytest.raises(DiskFullError) as exc:
        pull(settings, PullRequest(RepoRef(REPO)))
    assert exc.value.exit_code == 16 and "free" in exc.value.message
    assert content_gets(hub_env) == []


# --------------------------------------------------------------------------- safety


@pytest.mark.parametrize(
    "payload", [pickle_bytes(4), pickle_bytes(2), torch_zip_bytes()], ids=["p4", "p2", "torchzip"]
)
def test_pickle_renamed_safetensors_is_blocked_and_not_cached(
    hub_env: Any, settings: Settings, payload: bytes
) -> None:
    hub_env.store.commit("org/evil", {"config.json": CONFIG, "model.safetensors": payload})
    res = pull(settings, PullRequest(RepoRef("org/evil")))
    assert [p for p, _ in res.blocked] == ["model.safetensors"]
    assert "--allow-unsafe" in res.blocked[0][1]
    assert [f.path for f in res.selected] == ["config.json"]
    lay = layout(settings, "org/evil")
    assert not lay.blob_path(sha256(payload)).exists()
    assert not (res.snapshot_dir / "model.safetensors").exists()
    allowed = pull(settings, PullRequest(RepoRef("org/evil"), allow_unsafe=True))
    assert not allowed.blocked and (allowed.snapshot_dir / "model.safetensors").read_bytes() == payload


def test_pickle_by_name_needs_allow_unsafe(hub_env: Any, settings: Settings) -> None:
    from batuta_sync.errors import UnsafeFileError

    hub_env.store.commit("org/pt", {"config.json": CONFIG, "pytorch_model.bin": pickle_bytes()})
    res = pull(settings, PullRequest(RepoRef("org/pt")))
    assert [p for p, _ in res.blocked] == ["pytorch_model.bin"] and [f.path for f in res.selected] == [
        "config.json"
    ]
    assert hub_env.log.count("GET", "pytorch_model.bin") == 0  # never requested
    with pytest.raises(UnsafeFileError):
        pull(settings, PullRequest(RepoRef("org/pt"), files=("pytorch_model.bin",)))
    res = pull(settings, PullRequest(RepoRef("org/pt"), files=("pytorch_model.bin",), allow_unsafe=True))
    assert (res.snapshot_dir / "pytorch_model.bin").read_bytes() == pickle_bytes()


# --------------------------------------------------------------------------- offline & output


def test_offline_pull_is_served_from_cache_with_zero_connections(
    hub_env: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = seed(hub_env)
    pull(settings, PullRequest(RepoRef(REPO), exclude=("README.md",)))
    mark = len(hub_env.log.entries)

    def no_network(*a: object, **k: object) -> None:
        raise AssertionError("network used while offline")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    off = resolve_settings()
    assert off.offline
    res = pull(off, PullRequest(RepoRef(REPO), exclude=("README.md",)))
    assert res.offline and res.snapshot.commit == commit and res.cache_hits == 3
    assert cached_snapshot(off, RepoRef(REPO)) is not None
    with pytest.raises(OfflineError) as exc:
        pull(off, PullRequest(RepoRef(REPO)))
    assert (
        exc.value.exit_code == 18
        and "README.md" in exc.value.message
        and "config.json" not in exc.value.message
    )
    with pytest.raises(OfflineError, match="org/never"):
        pull(off, PullRequest(RepoRef("org/never")))
    assert hub_env.log.entries[mark:] == []


def test_output_symlinks_copies_and_a_planted_symlink(
    hub_env: Any, settings: Settings, tmp_path: Path
) -> None:
    seed(hub_env)
    out = tmp_path / "out"
    res = pull(settings, PullRequest(RepoRef(REPO), output=out))
    assert res.output == out and (out / "model.safetensors").is_symlink()
    assert (out / "model.safetensors").read_bytes() == BIG
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (out / "config.json").unlink()
    (out / "config.json").symlink_to(victim)
    copied = tmp_path / "copied"
    copied.mkdir()
    (copied / "config.json").symlink_to(victim)
    pull(settings, PullRequest(RepoRef(REPO), output=copied, copy=True))
    assert victim.read_text() == "keep me"
    assert not (copied / "config.json").is_symlink() and (copied / "config.json").read_bytes() == CONFIG
    assert (
        not (copied / "model.safetensors").is_symlink() and (copied / "model.safetensors").read_bytes() == BIG
    )
    pull(settings, PullRequest(RepoRef(REPO), output=out))
    assert (out / "config.json").read_bytes() == CONFIG and victim.read_text() == "keep me"


def test_dataset_split_pull(hub_env: Any, settings: Settings) -> None:
    card = b"---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n---\n# ds\n"
    hub_env.store.commit(
        "org/ds",
        {
            "README.md": card,
            "data/train-00000-of-00002.parquet": b"PAR1train0",
            "data/train-00001-of-00002.parquet": b"PAR1train1",
            "data/test-00000-of-00001.parquet": b"PAR1test",
        },
        repo_type="dataset",
    )
    from batuta_sync.errors import NotFoundError
    from batuta_sync.types import HfAssetType

    ref = RepoRef("org/ds", HfAssetType.DATASET)
    res = pull(settings, PullRequest(ref, split="train"))
    assert [f.path for f in res.selected] == [
        "README.md",
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
    ]
    assert (settings.hub_cache / "datasets--org--ds" / "snapshots" / res.snapshot.commit / "data").is_dir()
    with pytest.raises(NotFoundError, match="train, test"):
        pull(settings, PullRequest(ref, split="validation"))


def test_a_cache_filled_by_huggingface_hub_is_reused(hub_env: Any, settings: Settings) -> None:
    import huggingface_hub

    seed(hub_env, empty__txt=b"")
    huggingface_hub.snapshot_download(REPO, endpoint=hub_env.url, cache_dir=settings.hub_cache)
    mark = len(hub_env.log.entries)
    res = pull(settings, PullRequest(RepoRef(REPO), include=("*",)))
    assert content_gets(hub_env, mark) == [] and res.cache_hits == 5
    assert (res.snapshot_dir / "empty/txt").read_bytes() == b""


def test_empty_file_and_private_repo_with_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from batuta_sync.errors import HubError
    from batuta_sync.server import HubServer, UserSpec

    srv = HubServer(tmp_path / "auth-root", users=[UserSpec("alice", "tok-alice-123456")]).start()
    try:
        srv.store.create_repo("alice/secret", private=True)
        srv.store.commit("alice/secret", {"config.json": CONFIG, "empty.txt": b"", "model.safetensors": BIG})
        monkeypatch.setenv("HF_ENDPOINT", srv.url)
        with pytest.raises(HubError) as exc:
            pull(resolve_settings(), PullRequest(RepoRef("alice/secret")))
        assert exc.value.exit_code in (7, 8)
        monkeypatch.setenv("HF_TOKEN", "tok-alice-123456")
        res = pull(resolve_settings(), PullRequest(RepoRef("alice/secret"), include=("*",)))
        assert (res.snapshot_dir / "empty.txt").read_bytes() == b""
        assert (res.snapshot_dir / "model.safetensors").read_bytes() == BIG
    finally:
        srv.stop()


def test_a_caller_given_subset_listing_never_becomes_the_tree(hub_env: Any, settings: Settings) -> None:
    import huggingface_hub

    from batuta_sync.client import HfClient
    from batuta_sync.errors import IntegrityError
    from batuta_sync.types import RepoSnapshot

    commit = seed(hub_env)
    full = HfClient(settings).snapshot(RepoRef(REPO))
    subset = RepoSnapshot(full.ref, full.commit, tuple(f for f in full.files if f.path == "config.json"))
    res = pull(settings, PullRequest(RepoRef(REPO), files=("config.json",)), snapshot=subset)
    assert [f.path for f in res.selected] == ["config.json"]
    assert not layout(settings).tree_path(commit).exists()  # huggingface_hub trusts trees/ even online
    # offline, batuta still knows what it pulled
    off = resolve_settings(env={**os.environ, "HF_HUB_OFFLINE": "1"})
    again = pull(off, PullRequest(RepoRef(REPO), files=("config.json",)))
    assert again.offline and again.cache_hits == 1
    # huggingface_hub online sees the whole repo
    path = huggingface_hub.snapshot_download(REPO, endpoint=hub_env.url, cache_dir=settings.hub_cache)
    assert (Path(path) / "model.safetensors").read_bytes() == BIG
    nameless = RepoSnapshot(full.ref, full.commit, (subset.files[0].__class__("x.txt", 3, ""),))
    with pytest.raises(IntegrityError):
        pull(settings, PullRequest(RepoRef(REPO), files=("x.txt",)), snapshot=nameless)


def test_copy_output_checks_free_space(
    hub_env: Any, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(hub_env)
    real = shutil.disk_usage
    out = tmp_path / "copies"
    monkeypatch.setattr(
        shutil,
        "disk_usage",
        lambda p: (
            real(p)._replace(free=10) if str(p).startswith(str(out)) or str(p) == str(tmp_path) else real(p)
        ),
    )
    with pytest.raises(DiskFullError, match="copies"):
        pull(settings, PullRequest(RepoRef(REPO), output=out, copy=True))
    assert content_gets(hub_env) == []


def test_conversion_on_pull_is_an_explicit_step(hub_env: Any, settings: Settings) -> None:
    # (was test_conversion_hook_answers_pulls_that_need_a_conversion: the global hook is gone,
    # issue #15 point 4 - callers opt in with convert.on_pull.pull_or_convert)
    from batuta_sync.convert.on_pull import pull_or_convert
    from batuta_sync.errors import ConversionError
    from batuta_sync.pull import ConversionNeededError

    seed(hub_env)
    req = PullRequest(RepoRef(REPO), format="gguf", quantization="Q4_K_M")
    # The pull engine never converts: it says what is needed, with what a converter goes on.
    with pytest.raises(ConversionNeededError) as need:
        pull(settings, req)
    assert need.value.conversion.source_format == "safetensors"
    assert not need.value.offline
    assert need.value.snapshot is not None and need.value.selection is not None
    # pull_or_convert converts; this repo has weights but no config.json, so it cannot.
    with pytest.raises(ConversionError, match=r"config\.json") as exc:
        pull_or_convert(settings, req)
    assert exc.value.exit_code == 15
    # Offline there is no conversion: the pull says what is needed.
    offline = dataclasses.replace(settings, offline=True)
    with pytest.raises(ConversionNeededError) as off:
        pull_or_convert(offline, req)
    assert off.value.offline
    assert off.value.conversion.source_format == "safetensors"
    # A caller's own conversion goes on from the error (no second resolve of the repo).
    conv = need.value.conversion
    assert [f.path for f in conv.source_files] == ["model.safetensors"]
    res = pull(settings, PullRequest(req.ref, format=conv.source_format), snapshot=need.value.snapshot)
    assert (res.snapshot_dir / "model.safetensors").read_bytes() == BIG


def test_ctrl_c_stops_every_worker_and_keeps_partials(
    hub_env: Any, settings: Settings, hash_mode: str
) -> None:
    other = safetensors_bytes(750_000, seed=9)
    hub_env.store.commit(REPO, {"a.safetensors": BIG, "b.safetensors": other, "config.json": CONFIG})
    # ~30 requests of 100 kB, 80 ms apart, per file: seconds of work left when Ctrl-C comes
    hub_env.faults.configure(
        drop_after_bytes=100_000, drop_count=1000, latency_ms=80, path_filter="/cdn-lfs/"
    )

    class CtrlC(CountingProgress):
        def advance(self, path: str, nbytes: int) -> None:
            super().advance(path, nbytes)
            if self.done_bytes > 300_000 and not getattr(self, "sent", False):
                self.sent = True
                os.kill(os.getpid(), signal.SIGINT)  # delivered to the main thread, like a real Ctrl-C

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        pull(settings, PullRequest(RepoRef(REPO)), progress=CtrlC())
    assert time.monotonic() - t0 < 10
    partials = list(layout(settings).blobs_dir.glob("*.incomplete"))
    assert partials and all(p.stat().st_size > 0 for p in partials)
    lay = layout(settings)
    assert not (lay.blob_path(sha256(BIG)).exists() and lay.blob_path(sha256(other)).exists())
    hub_env.faults.reset()
    res = pull(settings, PullRequest(RepoRef(REPO)))
    assert (res.snapshot_dir / "b.safetensors").read_bytes() == other
    assert res.transferred_bytes < len(BIG) + len(other)


@pytest.mark.parametrize("bad", ["C:/Windows/evil", "a\x01b.json", "x/CON", "sub/trailing."])
def test_malicious_names_listed_by_the_server_are_rejected_before_any_write(
    hub_env: Any, settings: Settings, bad: str
) -> None:
    from batuta_sync.safety import UnsafePathError

    hub_env.store.commit("org/hostile", {"config.json": CONFIG, bad: b"payload"})
    with pytest.raises(UnsafePathError) as exc:
        pull(settings, PullRequest(RepoRef("org/hostile")))
    assert exc.value.exit_code == 11 and repr(bad) in exc.value.message
    assert content_gets(hub_env) == []
    assert not (settings.hub_cache / "models--org--hostile").exists()
    res = pull(settings, PullRequest(RepoRef("org/hostile"), files=("config.json",)))
    assert [f.path for f in res.selected] == ["config.json"]
