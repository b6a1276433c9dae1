"""A SIGKILLed conversion must not leave its pool workers behind as orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

PARENT = textwrap.dedent(
    """
    import os, sys, time
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing as mp
    from batuta_sync.convert.hf_to_gguf import die_with_parent

    def pid_then_block(_):
        return os.getpid()

    pool = ProcessPoolExecutor(2, mp_context=mp.get_context("fork"), initializer=die_with_parent,
                               initargs=(os.getpid(),))
    pids = set(pool.map(pid_then_block, range(8)))
    pool.submit(time.sleep, 600)  # one worker busy, one idle on the queue: both must die
    print(" ".join(map(str, sorted(pids))), flush=True)
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
def test_workers_die_with_a_sigkilled_parent() -> None:
    proc = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    workers = [int(p) for p in proc.stdout.readline().split()]
    assert workers and all(_alive(p) for p in workers)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers), "pool workers outlived their SIGKILLed parent"


def test_temps_of_dead_converters_are_swept_live_ones_kept(tmp_path: Path) -> None:
    """A conversion killed mid-write leaves .NAME.tmp-<pid>-<rand>; the next write removes it."""
    from batuta_sync.convert.st_io import temp_path_for

    dst = tmp_path / "model.gguf"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".model.gguf.tmp-{int(dead.stdout)}-abcd1234"
    live = tmp_path / f".model.gguf.tmp-{os.getppid()}-abcd1234"  # our parent is alive
    other = tmp_path / ".other.gguf.tmp-1-abcd1234"
    for f in (stale, live, other):
        f.write_bytes(b"partial")
    tmp = temp_path_for(dst)
    assert not stale.exists() and live.exists() and other.exists()
    assert tmp.name.startswith(f".model.gguf.tmp-{os.getpid()}-") and not tmp.exists()
