"""`batuta remote check | ls | stats | gc` and `batuta force-unlock` through the CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from batuta_sync.cli import main
from batuta_sync.core.lockfile import ConversionLock, FileDigest, Lock, RepoLock, write_lock
from batuta_sync.remote import open_remote
from batuta_sync.remote.cas import SharedStore, run_key
from batuta_sync.remote.lease import acquire


def _blob(tmp: Path, data: bytes) -> tuple[str, Path]:
    p = tmp / hashlib.sha256(data).hexdigest()[:8]
    p.write_bytes(data)
    return hashlib.sha256(data).hexdigest(), p


def test_check_json(remote_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["remote", "check", "--remote", remote_url, "--json", "--writers", "4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["locks_safe"] and len(out["checks"]) == 4


def test_check_text_and_env(remote_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATUTA_REMOTE", remote_url)
    assert main(["remote", "check"]) == 0
    assert "every check passed" in capsys.readouterr().out


def test_no_remote_is_a_usage_error(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BATUTA_REMOTE", raising=False)
    assert main(["remote", "ls"]) == 64
    assert "--remote" in capsys.readouterr().err
    assert main(["remote", "check", "--remote", "file:///tmp/x", "--writers", "1"]) == 64


def test_ls_stats_gc_keep_what_locks_use(remote_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shared = SharedStore(open_remote(remote_url))
    kept, kp = _blob(tmp_path, b"kept weights")
    conv, cp = _blob(tmp_path, b"converted gguf")
    gone, gp = _blob(tmp_path, b"nobody uses me")
    for d, p in ((kept, kp), (conv, cp), (gone, gp)):
        shared.put_blob(d, p)
    memo_keep, memo_gone = "a" * 64, "b" * 64
    shared.put_run("sha256:" + memo_keep, {"m.gguf": {"sha256": conv, "size": 14}})
    shared.put_run("sha256:" + memo_gone, {"m.gguf": {"sha256": gone, "size": 14}})
    lock = Lock(lineage="l1", serial=1, entries={
        "models.m": RepoLock(address="models.m", repo="org/m", repo_type="model", revision="main", commit="c" * 40,
                             selection="s", files=(FileDigest("model.safetensors", 12, "d" * 40, kept),)),
        "conversions.g": ConversionLock(address="conversions.g", source="models.m", key="sha256:" + memo_keep,
                                        converter="batuta", input_tree="t", params=(), output="out",
                                        outputs=(FileDigest("m.gguf", 14, None, conv),)),
    })
    write_lock(tmp_path / "hf.lock", lock)

    assert main(["remote", "stats", "--remote", remote_url, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["areas"]["cas"]["objects"] == 3 and stats["areas"]["runs"]["objects"] == 2

    assert main(["remote", "gc", "--remote", remote_url, "--lock", str(tmp_path / "hf.lock"), "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert sorted(k.rsplit("/", 1)[-1] for k in dry["deleted"]) == sorted([gone, memo_gone + ".json"])
    assert shared.has_blob(gone)  # dry run deletes nothing

    assert main(["remote", "gc", "--remote", remote_url, "--lock", str(tmp_path / "hf.lock")]) == 0
    assert "2 object(s)" in capsys.readouterr().out
    assert shared.has_blob(kept) and shared.has_blob(conv) and not shared.has_blob(gone)
    assert shared.get_run(memo_keep) is not None and shared.get_run(memo_gone) is None

    assert main(["remote", "ls", "cas/", "--remote", remote_url, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["objects"]) == 2
    assert main(["remote", "gc", "--remote", remote_url, "--lock", str(tmp_path / "nope.lock")]) == 64
    assert run_key(memo_keep).startswith("runs/")


def test_force_unlock_cli(remote_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_remote(remote_url)
    lease = acquire(store, "lineage-x", ttl=600)
    lease._stop.set()
    assert main(["force-unlock", lease.id, "--remote", remote_url]) == 0
    assert "locks/lineage-x.json" in capsys.readouterr().out
    assert store.head("locks/lineage-x.json") is None
    assert main(["force-unlock", "nope", "--remote", remote_url, "--json"]) == 64


def test_check_fails_on_unreachable_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("obstore")
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "super-secret-value", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    import os

    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-m", "batuta_sync", "remote", "ls", "--remote", "s3://bucket-x/p"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 23, r.stderr
    assert "s3://bucket-x/p" in r.stderr and "super-secret-value" not in r.stderr + r.stdout
    assert "Traceback" not in r.stderr


def test_missing_extra_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "obstore", None)
    monkeypatch.setitem(sys.modules, "obstore.store", None)
    assert main(["remote", "ls", "--remote", "s3://bucket-y/p"]) == 23
    assert "batuta_sync[s3]" in capsys.readouterr().err
