"""The plan names where each pull's blobs come from (the shared remote or the Hub), and
``batuta status`` shows the remote.  Real CLI, our Hub on loopback, a real remote (moto S3 or file://)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.cli import main
from batuta_sync.remote import open_remote
from batuta_sync.remote.cas import blob_key

FILES = {"config.json": b'{"a": 1}', "notes.txt": b"hello " * 300, "extra.txt": b"w" * 5000}


def _runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, remote: str) -> Path:
    monkeypatch.setenv("HF_HOME", str(tmp_path / f"{name}-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / f"{name}-home" / "hub"))
    ws = tmp_path / name
    ws.mkdir()
    (ws / "hf.yaml").write_text(f"version: 1\ndefaults:\n  remote: {remote}\nmodels:\n  a: {{repo: org/a}}\n")
    return ws / "hf.yaml"


def _plan_json(manifest: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["plan", "-f", str(manifest), "--json"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def _plan_text(manifest: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["plan", "-f", str(manifest)]) == 0
    return capsys.readouterr().out


@pytest.fixture
def repo(hub_env: Any) -> None:
    hub_env.store.commit("org/a", FILES)


def test_the_plan_says_which_pulls_come_from_the_remote_and_which_from_the_hub(
    repo: None, hub_env: Any, remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = _runner(tmp_path, monkeypatch, "r1", remote_url)
    text = _plan_text(first, capsys)  # cold remote: everything from the Hub
    pull_row = next(line for line in text.splitlines() if "models.a" in line)
    assert pull_row.endswith("from Hub"), text
    assert f"Shared remote: {remote_url}  (none of the 3 blobs to fetch is on it: they come from the Hub)" in text
    data = _plan_json(first, capsys)
    assert data["remote"] == remote_url
    assert data["sources"] == {"models.a": {"files": 3, "remote": 0, "from": "hub"}}
    assert main(["apply", "-f", str(first), "--auto-approve"]) == 0, capsys.readouterr().err

    second = _runner(tmp_path, monkeypatch, "r2", remote_url)  # fresh cache, warm remote
    text = _plan_text(second, capsys)
    assert next(line for line in text.splitlines() if "models.a" in line).endswith("from remote"), text
    assert f"Shared remote: {remote_url}  (all 3 blobs to fetch are on it)" in text
    capsys.readouterr()
    main(["status", "-f", str(second)])
    assert "models.a  pending pull (not locked)  from remote" in capsys.readouterr().out
    assert _plan_json(second, capsys)["sources"]["models.a"] == {"files": 3, "remote": 3, "from": "remote"}

    store = open_remote(remote_url)  # one blob gone from the remote: partly
    store.delete(blob_key(next(iter(_lfs_free_etags(tmp_path / "r1" / "hf.lock")))))
    text = _plan_text(second, capsys)
    assert next(line for line in text.splitlines() if "models.a" in line).endswith(
        "partly: 2 of 3 files from remote"), text
    assert "(2 of 3 blobs to fetch are on it; the rest come from the Hub)" in text

    # a saved plan carries the sources under its MAC, is schema-valid, and applies
    plan_file = tmp_path / "r2" / "plan.json"
    assert main(["plan", "-f", str(second), "-o", str(plan_file)]) == 0
    saved = json.loads(plan_file.read_text())
    assert saved["sources"]["models.a"]["from"] == "partly"
    jsonschema = pytest.importorskip("jsonschema")
    from batuta_sync.core.manifest import load_schema

    jsonschema.Draft202012Validator(load_schema("plan.schema.json")).validate(saved)
    assert main(["apply", str(plan_file), "--auto-approve", "-f", str(second)]) == 0, capsys.readouterr().err
    assert _plan_json(second, capsys)["sources"] == {}  # nothing to pull any more


def _lfs_free_etags(lock: Path) -> list[str]:
    from batuta_sync.core.lockfile import RepoLock, read_lock

    entry = read_lock(lock).get("models.a")
    assert isinstance(entry, RepoLock)
    return [f.sha256 or f.gitsha1 or "" for f in entry.files]


def test_a_plan_without_remote_names_no_sources(
    repo: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c"))
    (tmp_path / "hf.yaml").write_text("version: 1\nmodels:\n  a: {repo: org/a}\n")
    data = _plan_json(tmp_path / "hf.yaml", capsys)
    assert "sources" not in data and "remote" not in data
    assert "Shared remote" not in _plan_text(tmp_path / "hf.yaml", capsys)


def test_status_shows_the_remote_and_whether_it_is_reachable(
    repo: None, remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = _runner(tmp_path, monkeypatch, "r1", remote_url)
    capsys.readouterr()
    main(["status", "-f", str(manifest)])
    out = capsys.readouterr().out
    assert f"Shared remote: {remote_url} (reachable)" in out
    assert "testing-secret" not in out
    main(["status", "-f", str(manifest), "--json"])
    assert json.loads(capsys.readouterr().out)["remote"] == {"url": remote_url, "reachable": True, "error": None}

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    bad = _runner(tmp_path, monkeypatch, "r2", f"file://{blocker}/remote")
    main(["status", "-f", str(bad), "--json"])
    got = json.loads(capsys.readouterr().out)["remote"]
    assert got["reachable"] is False and str(blocker) in got["error"]
    main(["status", "-f", str(bad)])
    assert "NOT reachable" in capsys.readouterr().out
