"""Push shows the same byte display as pull and apply (issue 14), and stops when apply aborts.

Against our local Hub, with the real huggingface_hub client doing the LFS uploads: the display is
fed exactly the bytes the plan announced; setting ``abort`` mid-upload stops the push with
KeyboardInterrupt and no commit; on a terminal the CLI draws the rich display, in a pipe it writes
no cursor-control codes, with ``-q`` nothing at all.  The README line says which front-matter keys
batuta adds to the user's card.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from batuta_sync.publish import PushRequest, prepare_push, push
from batuta_sync.settings import resolve_settings
from batuta_sync.types import HfAssetType

N_FILES = 24


def _dataset(root: Path, n: int = N_FILES) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):  # LFS by extension on our Hub (and on huggingface.co)
        (root / f"part-{i:03d}.parquet").write_bytes(b"PAR1" + bytes([i % 251]) * (40_000 + i) + b"PAR1")
    (root / "README.md").write_text("---\nlicense: mit\n---\n# my data\n")
    return root


class Recorder:
    """A ProgressSink that records what it is told (optionally setting ``abort`` after N files)."""

    def __init__(self, abort: threading.Event | None = None, after: int = 0) -> None:
        self.started: list[tuple[int, int]] = []
        self.bytes: dict[str, int] = {}
        self.done: list[str] = []
        self.closed = 0
        self.abort, self.after = abort, after

    def start(self, files: int, total_bytes: int) -> None:
        self.started.append((files, total_bytes))

    def file_start(self, path: str, size: int, done: int) -> None:
        assert path not in self.bytes, f"{path} started twice"
        self.bytes[path] = done

    def advance(self, path: str, nbytes: int) -> None:
        self.bytes[path] += nbytes

    def file_done(self, path: str, *, cached: bool) -> None:
        self.done.append(path)
        if self.abort is not None and len(self.done) >= self.after:
            self.abort.set()

    def close(self) -> None:
        self.closed += 1


def test_push_feeds_the_display_exactly_the_bytes_it_sends(hub_server: Any, tmp_path: Path) -> None:
    s = resolve_settings(flags={"endpoint": hub_server.url})
    req = PushRequest(_dataset(tmp_path / "d"), "org/data", repo_type=HfAssetType.DATASET)
    plan = prepare_push(s, req)
    sink = Recorder()
    res = push(s, req, plan=plan, sink=sink)
    assert sink.started == [(len(plan.adds), plan.upload_bytes)]
    assert sum(sink.bytes.values()) == plan.upload_bytes == res.bytes_sent
    assert sorted(sink.done) == sorted(plan.adds)  # each file once, a re-read part not counted twice
    assert sink.closed == 1
    assert hub_server.store.resolve("org/data", "main", repo_type="dataset") == res.commit


def test_abort_mid_upload_stops_the_push_and_makes_no_commit(hub_server: Any, tmp_path: Path) -> None:
    s = resolve_settings(flags={"endpoint": hub_server.url})
    hub_server.store.commit("org/data", {"old.txt": b"x"}, repo_type="dataset")
    before = hub_server.store.resolve("org/data", "main", repo_type="dataset")
    req = PushRequest(_dataset(tmp_path / "d"), "org/data", repo_type=HfAssetType.DATASET)
    plan = prepare_push(s, req)
    hub_server.faults.configure(latency_ms=150, path_filter="/lfs-upload/")
    abort = threading.Event()
    sink = Recorder(abort, after=2)
    try:
        push(s, req, plan=plan, sink=sink, abort=abort)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the push ran to the end although abort was set")
    uploads = hub_server.log.count("PUT", path_contains="/lfs-upload/")
    assert uploads < N_FILES  # stopped, not run to the end
    assert hub_server.store.resolve("org/data", "main", repo_type="dataset") == before  # no commit
    assert sink.closed == 1


def _cli(hub: Any, tmp_path: Path, *argv: str, tty: bool) -> tuple[int, str]:
    env = dict(os.environ, HF_ENDPOINT=hub.url, PYTHONPATH=os.environ.get("PYTHONPATH", ""), TERM="xterm")
    env.pop("NO_COLOR", None)
    cmd = [sys.executable, "-m", "batuta_sync", *argv]
    if not tty:
        p = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        return p.returncode, p.stdout + p.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            proc.kill()
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return proc.wait(timeout=60), out.decode("utf-8", "replace")


def test_cli_push_draws_the_display_on_a_terminal_only(hub_env: Any, tmp_path: Path) -> None:
    hub_env.faults.configure(latency_ms=60, path_filter="/lfs-upload/")  # long enough to be drawn
    code, out = _cli(hub_env, tmp_path, "hf", "push", "dataset", str(_dataset(tmp_path / "a")), "--repo", "org/a",
                     tty=True)
    assert code == 0, out
    assert f"total ({N_FILES + 1} files)" in out and "\x1b[" in out  # rich's live display
    assert f"Pushed {N_FILES + 1} files" in out

    code, out = _cli(hub_env, tmp_path, "hf", "push", "dataset", str(_dataset(tmp_path / "b")), "--repo", "org/b",
                     tty=False)
    assert code == 0, out
    assert "\x1b" not in out and "total (" not in out  # a pipe or a log file: plain lines only
    assert f"Pushed {N_FILES + 1} files" in out and "uploading" in out
    assert "README.md: front matter gains" in out  # the user's card gets keys, and says which

    code, out = _cli(hub_env, tmp_path, "-q", "hf", "push", "dataset", str(_dataset(tmp_path / "c")), "--repo",
                     "org/c", tty=True)
    assert code == 0, out
    assert "\x1b[" not in out and "total (" not in out and "uploading" not in out


def test_card_keys_added_are_listed_in_the_plan(hub_server: Any, tmp_path: Path) -> None:
    s = resolve_settings(flags={"endpoint": hub_server.url})
    req = PushRequest(_dataset(tmp_path / "d", 1), "org/data", repo_type=HfAssetType.DATASET)
    plan = prepare_push(s, req)
    assert plan.card_keys_added and "license" not in plan.card_keys_added and not plan.card_generated
    assert plan.to_json()["card_keys_added"] == list(plan.card_keys_added)
    for key in plan.card_keys_added:
        assert f"+{key}:" in plan.card_diff  # exactly what the diff shows is added
    (tmp_path / "d" / "README.md").unlink()
    plan = prepare_push(s, req)
    assert plan.card_generated and plan.card_keys_added == ()
