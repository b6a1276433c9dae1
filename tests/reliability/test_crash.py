"""Crashes: SIGKILL ``batuta apply`` at each kill point (download, conversion, upload, lock write:
killed as soon as that activity is seen) and at random times.

After every kill: ``hf.lock`` parses, no partial file sits under a final name (every blob matches
its digest, every output file equals the reference run's), and the next apply converges to an
empty plan.  Reduced size in CI; ``BATUTA_RELIABILITY=full`` runs more trials.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.reliability import scenarios
from tests.reliability._harness import (
    batuta_cmd,
    cache_env,
    communicate,
    seed_hub,
    spawn,
    start_server,
    write_project,
)


def test_sigkill_at_random_points_then_apply_converges(tmp_path: Path) -> None:
    fig = scenarios.crashes(tmp_path)
    assert fig["findings"] == [], "\n".join(fig["findings"])
    assert fig["lock_parse_failures"] == 0
    assert fig["partial_files_under_final_name"] == 0
    assert fig["resumed_ok"] == fig["trials"]
    assert fig["killed"] >= 1
    # every kill point was tried (download, conversion, upload when the publisher is wired, lock write)
    assert {"download", "convert", "lock-write"} <= set(fig["points"]), fig["points"]
    for point, pp in fig["points"].items():
        assert pp["lock_parses"] == pp["trials"] and pp["partial_files"] == 0, (point, pp)
        assert pp["resumed_ok"] == pp["plan_empty_after"] == pp["trials"], (point, pp)
    assert fig["plan_empty_after_resume"] == fig["trials"]  # findings #13/#14 (fixed in c14f8d7) broke this
    assert fig["temp_files_left_after_resume"] == 0, fig["temp_file_examples"]


def _children(pid: int) -> set[int]:
    kids = set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                kids.add(int(d))
        except (OSError, IndexError, ValueError):
            continue
    return kids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_sigkill_during_conversion_leaves_no_orphan_holding_the_workspace_lock(tmp_path: Path) -> None:
    """Regression: conversion workers (fork) outlived a SIGKILLed apply, kept the inherited
    workspace flock, and the next ``batuta apply`` was refused with exit 17 naming a dead pid."""
    server = start_server(tmp_path / "hub")
    kids: set[int] = set()
    try:
        seed_hub(server, tmp_path, extra_files=0)
        proj = tmp_path / "proj"
        manifest = write_project(proj, server.url, push=False)
        # numpy K-quants run in worker processes (the compiled kernels use threads: no orphans)
        env = {**cache_env(tmp_path / "home", server.url), "BATUTA_KQUANTS_BACKEND": "numpy"}
        p = spawn(batuta_cmd("apply", "--auto-approve", "-q", "-f", str(manifest)), env, proj)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and p.poll() is None:
            kids = _children(p.pid)
            if kids:
                break
            time.sleep(0.005)
        if not kids:
            p.wait(timeout=60)
            pytest.skip("the conversion ran without worker processes on this machine")
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        communicate(p)
        time.sleep(0.3)
        survivors = {k for k in kids if _alive(k)}
        r = spawn(batuta_cmd("apply", "--auto-approve", "-q", "-f", str(manifest)), env, proj)
        _out, err = communicate(r)
        assert survivors == set(), f"conversion workers outlived the killed apply: {sorted(survivors)}"
        assert r.returncode == 0, err
    finally:
        for k in kids:  # only the processes this test started
            if _alive(k):
                os.kill(k, signal.SIGKILL)
        server.stop()
