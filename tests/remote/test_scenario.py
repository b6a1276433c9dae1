"""Issue #16's scenario: runners in separate processes (``python -m batuta_sync apply``, each
with its own HF cache) apply the same hf.yaml and hf.lock against one shared remote.

- three concurrent runners: each Hub blob is downloaded once (our Hub's request log), the
  conversion runs once, the three hf.lock files are byte-identical, and no two runners ever run
  actions at the same time (the step log below);
- a runner SIGKILLed while it holds the lease is taken over once the lease expires
  (``BATUTA_LEASE_TTL=6``), with no manual unlock.

The subprocesses load ``tests/remote/_steplog/sitecustomize.py``, which appends one JSON line per
apply step (pid, start, end) and per real conversion to ``BATUTA_TEST_STEP_LOG``.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.cli import main
from batuta_sync.remote import open_remote
from batuta_sync.remote.lease import LockRecord
from batuta_sync.tinymodel import write_tiny_llama

ROOT = Path(__file__).resolve().parents[2]
STEPLOG_DIR = Path(__file__).resolve().parent / "_steplog"


@pytest.fixture
def team(hub_env: Any, remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """A Hub repo, an hf.yaml with one conversion, and the hf.lock a developer committed
    (``batuta lock``: resolved, nothing downloaded)."""
    src = write_tiny_llama(tmp_path / "seed")
    hub_env.store.commit("org/tiny", {p.name: p for p in src.iterdir() if p.is_file()})
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "hf.yaml").write_text(
        f"version: 1\ndefaults:\n  remote: {remote_url}\nmodels:\n  tiny: {{repo: org/tiny}}\n"
        "conversions:\n  q: {from: models.tiny, to: gguf, quantization: Q8_0, output: ./out}\n")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "dev-cache"))
    assert main(["lock", "-f", str(dev / "hf.yaml")]) == 0, capsys.readouterr().err
    assert _blob_gets(hub_env) == collections.Counter()
    return {"dev": dev, "hub": hub_env, "remote": remote_url, "tmp": tmp_path, "log": tmp_path / "steps.jsonl"}


def _blob_gets(hub: Any) -> collections.Counter[str]:
    return collections.Counter(
        e.path for e in hub.log.entries if e.method == "GET" and "/resolve/" in e.path and e.status in (200, 206))


def _workspace(team: dict[str, Any], name: str) -> Path:
    ws = team["tmp"] / name
    ws.mkdir()
    for f in ("hf.yaml", "hf.lock"):
        (ws / f).write_bytes((team["dev"] / f).read_bytes())
    return ws


def _start(team: dict[str, Any], ws: Path, *extra: str, ttl: str = "300") -> subprocess.Popen[str]:
    home = ws.parent / f"{ws.name}-home"
    env = dict(os.environ)
    env.update({
        "HOME": str(home), "HF_HOME": str(home / "hf"), "HF_HUB_CACHE": str(home / "hf" / "hub"),
        "PYTHONPATH": os.pathsep.join([str(STEPLOG_DIR), str(ROOT)]),
        "BATUTA_TEST_STEP_LOG": str(team["log"]), "BATUTA_LEASE_TTL": ttl,
    })
    return subprocess.Popen(
        [sys.executable, "-m", "batuta_sync", "apply", "-f", str(ws / "hf.yaml"), "--auto-approve", *extra],
        env=env, cwd=ws, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _log(team: dict[str, Any]) -> list[dict[str, Any]]:
    path: Path = team["log"]
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _without_plan_id(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("last_applied_plan:"))


def _outputs(ws: Path) -> dict[str, bytes]:
    return {p.relative_to(ws / "out").as_posix(): p.read_bytes() for p in (ws / "out").rglob("*") if p.is_file()}


def test_three_runners_download_each_blob_once_convert_once_and_never_overlap(team: dict[str, Any]) -> None:
    spaces = [_workspace(team, f"runner{i}") for i in range(3)]
    procs = [_start(team, ws, "--lock-timeout", "240") for ws in spaces]
    results = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, out + err

    gets = _blob_gets(team["hub"])
    assert gets and set(gets.values()) == {1}, gets  # every blob from the Hub exactly once
    log = _log(team)
    assert sum(1 for r in log if r["event"] == "converted") == 1  # one conversion for the three
    # the three hf.lock files are byte-identical but for last_applied_plan (each runner's own plan id)
    locks = {_without_plan_id((ws / "hf.lock").read_text()) for ws in spaces}
    assert len(locks) == 1 and "conversions.q" in next(iter(locks))
    assert len({json.dumps(sorted(_outputs(ws).items()), default=repr) for ws in spaces}) == 1

    steps = sorted((r for r in log if r["event"] == "step"), key=lambda r: r["start"])
    assert {r["pid"] for r in steps} == {p.pid for p in procs}  # each runner applied something
    by_pid: dict[int, tuple[float, float]] = {}
    for r in steps:
        lo, hi = by_pid.get(r["pid"], (r["start"], r["end"]))
        by_pid[r["pid"]] = (min(lo, r["start"]), max(hi, r["end"]))
    spans = sorted(by_pid.values())
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start, spans  # one runner's actions all end before the next runner's begin


def test_a_runner_killed_while_holding_the_lease_is_taken_over_after_it_expires(team: dict[str, Any]) -> None:
    hub = team["hub"]
    hub.faults.configure(latency_ms=60_000, path_filter="/resolve/")  # the victim hangs inside its pull
    victim = _start(team, _workspace(team, "victim"), ttl="6")
    store = open_remote(team["remote"])
    deadline = time.monotonic() + 120
    while not any(r["event"] == "start" for r in _log(team)):  # it holds the lease and runs an action
        assert victim.poll() is None and time.monotonic() < deadline, victim.communicate()
        time.sleep(0.1)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=60)
    (key,) = [info.key for info in store.list("locks/")]  # the dead runner's lease is still there
    got = store.get(key)
    assert got is not None
    held = LockRecord.parse(got[0])
    assert held is not None and held.pid == victim.pid and held.expires > 0
    hub.faults.reset()

    ws = _workspace(team, "next")
    nxt = _start(team, ws, "--lock-timeout", "120", ttl="2")
    out, err = nxt.communicate(timeout=600)
    assert nxt.returncode == 0, out + err
    assert "Waiting up to" in err and f"pid {victim.pid}" in err  # it waited for the dead holder
    starts = [r["t"] for r in _log(team) if r["event"] == "start" and r["pid"] == nxt.pid]
    assert starts and min(starts) >= held.expires  # ... and started only once the lease had expired
    assert _outputs(ws) and list(store.list("locks/")) == []  # applied, then released its own lease


def test_batuta_lease_ttl_sets_the_lease_time_to_live(tmp_path: Path) -> None:
    from batuta_sync.errors import ConfigError
    from batuta_sync.settings import resolve_settings

    assert resolve_settings(env={}, home=tmp_path).lease_ttl is None  # 300 s (remote.lease.DEFAULT_TTL)
    assert resolve_settings(env={"BATUTA_LEASE_TTL": "2.5"}, home=tmp_path).lease_ttl == 2.5
    with pytest.raises(ConfigError, match="BATUTA_LEASE_TTL"):
        resolve_settings(env={"BATUTA_LEASE_TTL": "0"}, home=tmp_path)
