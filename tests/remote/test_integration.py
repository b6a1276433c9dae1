"""The shared remote wired into pull and apply: runners with separate caches share one remote.

Every test runs the real CLI against our Hub server on loopback and a real remote (moto S3 on
loopback, or file://, via the ``remote_url`` fixture); Hub downloads are counted in the
server's request log.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.cli import main
from batuta_sync.core.api import lease_lineage
from batuta_sync.core.manifest import load_manifest
from batuta_sync.remote import open_remote
from batuta_sync.remote.cas import blob_key
from batuta_sync.remote.lease import LockRecord, lock_key
from batuta_sync.settings import resolve_settings

FILES = {
    "config.json": b'{"a": 1}',
    "notes.txt": b"hello " * 300,
    "model.safetensors": (lambda h: struct.pack("<Q", len(h)) + h + b"w" * 4096)(
        b'{"w":{"dtype":"U8","shape":[4096],"data_offsets":[0,4096]}}'
    ),
}


def _hf_yaml(root: Path, remote: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "hf.yaml"
    path.write_text(f"version: 1\ndefaults:\n  remote: {remote}\nmodels:\n  a:\n    repo: org/a\n")
    return path


def _runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, remote: str) -> Path:
    """A workspace with its own HF cache (its own HF_HOME), as on another CI runner."""
    hf_home = tmp_path / f"{name}-home"
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_home / "hub"))
    return _hf_yaml(tmp_path / name, remote)


def _apply(capsys: pytest.CaptureFixture[str], hf_yaml: Path, *extra: str) -> tuple[int, str]:
    code = main(["apply", "-f", str(hf_yaml), "--auto-approve", *extra])
    return code, capsys.readouterr().err


def _downloads(hub: Any) -> int:
    """File downloads the Hub served (GET /resolve/ answered 200/206; redirects not counted)."""
    return sum(1 for e in hub.log.entries if e.method == "GET" and "/resolve/" in e.path and e.status in (200, 206))


@pytest.fixture
def repo(hub_env: Any) -> str:
    hub_env.store.commit("org/a", FILES)
    return str(hub_env.store.resolve("org/a"))


def test_three_runners_download_each_blob_from_the_hub_once(
    repo: str, hub_env: Any, remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    locks = []
    for i, name in enumerate(("r1", "r2", "r3")):
        hf_yaml = _runner(tmp_path, monkeypatch, name, remote_url)
        code, err = _apply(capsys, hf_yaml)
        assert code == 0, err
        assert _downloads(hub_env) == len(FILES), f"runner {i + 1} went to the Hub"
        for path, data in FILES.items():
            got = next((tmp_path / f"{name}-home" / "hub").glob(f"models--org--a/snapshots/*/{path}"))
            assert got.read_bytes() == data
        locks.append((tmp_path / name / "hf.lock").read_text())
    store = open_remote(remote_url)
    assert sum(1 for _ in store.list("cas/")) == len(FILES)  # every blob was written through once
    assert not list(store.list("locks/"))  # every lease was released
    strip = [[ln for ln in text.splitlines() if not ln.startswith(("lineage:", "last_applied_plan"))] for text in locks]
    assert strip[0] == strip[1] == strip[2]
    assert repo in locks[0]


def test_a_corrupt_remote_object_is_a_miss_and_the_hub_serves_it(
    repo: str, hub_env: Any, remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = _apply(capsys, _runner(tmp_path, monkeypatch, "r1", remote_url))
    assert code == 0, err
    store = open_remote(remote_url)
    notes_key = next(
        k for k in (blob_key(e) for e in _etags(tmp_path / "r1-home" / "hub"))
        if store.get(k) and store.get(k)[0] == FILES["notes.txt"]  # type: ignore[index]
    )
    store.delete(notes_key)
    assert store.put_if_absent(notes_key, b"evil " * 360)  # same size as the real blob: only the hash tells
    before = _downloads(hub_env)
    code, err = _apply(capsys, _runner(tmp_path, monkeypatch, "r2", remote_url))
    assert code == 0, err
    assert _downloads(hub_env) == before + 1  # the corrupt one only, from the Hub
    got = next((tmp_path / "r2-home" / "hub").glob("models--org--a/snapshots/*/notes.txt"))
    assert got.read_bytes() == FILES["notes.txt"]


def _etags(hub_cache: Path) -> list[str]:
    return [p.name for p in hub_cache.glob("models--org--a/blobs/*")]


def test_a_remote_that_is_down_degrades_pull_to_the_hub(
    repo: str, hub_env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the remote's folder should be")
    code = main(["hf", "pull", "model", "org/a", "--remote", f"file://{blocker}/remote"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Warning: the shared remote cannot be used" in err and "from the Hub" in err
    assert _downloads(hub_env) == len(FILES)


def test_remote_errors_during_lookup_and_write_through_only_warn(
    repo: str, hub_env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from batuta_sync.remote._file import FileStore
    from batuta_sync.remote.store import RemoteError

    def down(*_a: object, **_k: object) -> None:
        raise RemoteError("The remote is down (test).")

    monkeypatch.setattr(FileStore, "get_to_file", down)
    monkeypatch.setattr(FileStore, "put_if_absent", down)
    code = main(["hf", "pull", "model", "org/a", "--remote", f"file://{tmp_path / 'remote'}"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "failed (The remote is down (test).); downloading from the Hub instead" in err
    assert "could not share blobs with the remote" in err
    assert _downloads(hub_env) == len(FILES)


def _plant_lock(remote_url: str, hf_yaml: Path, *, expires: float) -> LockRecord:
    store = open_remote(remote_url)
    rec = LockRecord("feedface" * 4, "runner-7", 4242, "", expires)
    assert store.put_if_absent(lock_key(lease_lineage(load_manifest(hf_yaml), None)), rec.to_json())
    return rec


def test_a_held_lease_makes_the_second_apply_fail_fast_with_17(
    repo: str, hub_env: Any, remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hf_yaml = _runner(tmp_path, monkeypatch, "r1", remote_url)
    rec = _plant_lock(remote_url, hf_yaml, expires=time.time() + 3600)
    code, err = _apply(capsys, hf_yaml)
    assert code == 17, err
    assert f"lock id {rec.id}" in err and f"batuta force-unlock {rec.id}" in err and "runner-7" in err
    assert _downloads(hub_env) == 0 and not (tmp_path / "r1" / "hf.lock").exists()
    # bounded wait: the message names the holder, then the same refusal
    code, err = _apply(capsys, hf_yaml, "--lock-timeout", "0.3")
    assert code == 17 and "Waiting up to 0.3 s for the remote lock" in err and "runner-7" in err
    # force-unlock frees it; the next apply runs
    assert main(["force-unlock", rec.id, "--remote", remote_url]) == 0
    capsys.readouterr()
    code, err = _apply(capsys, hf_yaml)
    assert code == 0, err


def test_an_expired_lease_is_taken_over(
    repo: str, hub_env: Any, remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hf_yaml = _runner(tmp_path, monkeypatch, "r1", remote_url)
    _plant_lock(remote_url, hf_yaml, expires=time.time() - 1)  # its runner died
    code, err = _apply(capsys, hf_yaml)
    assert code == 0, err
    assert not list(open_remote(remote_url).list("locks/"))  # taken over, then released


def test_a_down_remote_fails_apply_before_any_action(
    repo: str, hub_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No lease, no apply: running without the lock would let two runners act at once."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    hf_yaml = _runner(tmp_path, monkeypatch, "r1", f"file://{blocker}/remote")
    code, err = _apply(capsys, hf_yaml)
    assert code == 23, err
    assert _downloads(hub_env) == 0 and not (tmp_path / "r1" / "hf.lock").exists()


def test_a_lost_lease_starts_no_new_action(
    repo: str, hub_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batuta_sync.core.api import plan_and_apply, remote_lease

    remote = f"file://{tmp_path / 'remote'}"
    hf_yaml = _runner(tmp_path, monkeypatch, "r1", remote)
    import batuta_sync.core.api as api

    real = remote_lease

    def lost_lease(*a: Any, **k: Any) -> Any:
        lease = real(*a, **k)
        lease.lost = True  # as after a renewal refused with 412
        return lease

    monkeypatch.setattr(api, "remote_lease", lost_lease)
    outcome = plan_and_apply(hf_yaml)
    assert outcome.result is not None and not outcome.result.ok
    assert "was lost" in json.dumps(outcome.result.to_dict())
    assert _downloads(hub_env) == 0


def test_remote_setting_precedence_flag_env_hf_yaml() -> None:
    man = {"remote": "file:///from/hf.yaml"}
    assert resolve_settings(env={}, manifest=man).remote == "file:///from/hf.yaml"
    env = {"BATUTA_REMOTE": "s3://env-bucket/p"}
    assert resolve_settings(env=env, manifest=man).remote == "s3://env-bucket/p"
    assert resolve_settings(flags={"remote": "file:///flag"}, env=env, manifest=man).remote == "file:///flag"
    assert resolve_settings(env={}).remote is None
