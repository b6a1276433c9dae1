"""Workspace files next to hf.yaml: hf.lock, ``.batuta/`` (apply lock, journal, state).

The apply lock is an ``fcntl.flock`` on ``.batuta/apply.lock``; the holder writes
``pid host time`` into it so a second apply can name who holds it.  The kernel
drops the lock when the holder dies (even by SIGKILL): no stale lock files.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from batuta_sync.errors import WorkspaceBusyError


@dataclass(frozen=True)
class Workspace:
    """Paths derived from the manifest path."""

    manifest: Path

    @property
    def root(self) -> Path:
        return self.manifest.resolve().parent

    @property
    def lock_path(self) -> Path:
        return self.root / "hf.lock"

    @property
    def dir(self) -> Path:
        return self.root / ".batuta"

    @property
    def apply_lock(self) -> Path:
        return self.dir / "apply.lock"

    def journal(self, plan_id: str) -> Path:
        return self.dir / "journal" / f"{plan_id}.json"


# A flock belongs to the open file description, which fork() shares with the child: a forked
# worker (e.g. a conversion process pool) that outlives a SIGKILLed apply would keep the
# workspace locked.  Children close their copy right after fork, so the lock dies with us.
_HELD: set[IO[str]] = set()


def _close_held_in_child() -> None:
    for fh in list(_HELD):
        try:
            os.close(fh.fileno())
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_held_in_child)


def _sweep_dead_temps(root: Path) -> None:
    """Remove temp files of hf.lock and journal writes killed mid-write (SIGKILL, power loss).

    Only called with the workspace lock held: every writer of these files holds it, so any
    such temp file belongs to a dead process."""
    for pattern in (".hf.lock.*.tmp", ".batuta/journal/.journal.*"):
        for tmp in root.glob(pattern):
            try:
                tmp.unlink()
            except OSError:
                pass


class WorkspaceLock:
    """Exclusive, non-blocking (or ``timeout`` seconds) lock of a workspace for one apply."""

    def __init__(self, path: Path, *, timeout: float = 0.0) -> None:
        self.path = path
        self.timeout = timeout
        self._fh: IO[str] | None = None

    def acquire(self) -> WorkspaceLock:
        import fcntl
        import socket

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = self.holder()
                    fh.close()
                    who = (
                        f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
                        if holder
                        else "another process"
                    )
                    raise WorkspaceBusyError(
                        f"Another `batuta apply` holds the workspace lock {self.path} ({who}).",
                    )
                time.sleep(0.05)
        fh.seek(0)
        fh.truncate()
        fh.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            )
            + "\n"
        )
        fh.flush()
        self._fh = fh
        _HELD.add(fh)
        _sweep_dead_temps(self.path.parent.parent)
        return self

    def holder(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def release(self) -> None:
        import fcntl

        if self._fh is None:
            return
        _HELD.discard(self._fh)
        try:
            self._fh.seek(0)
            self._fh.truncate()
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
        finally:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> WorkspaceLock:
        return self.acquire()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


class Journal:
    """``.batuta/journal/<plan_id>.json``: the actions of a plan applied so far, each with the
    digest hf.lock has once that action is recorded.

    An entry is written *before* the lock, so after a crash the current lock digest tells
    which prefix of the entries really reached hf.lock (an entry whose lock write never
    happened is simply redone).  Lets ``batuta apply plan.json`` resume although hf.lock moved.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        self.entries: list[tuple[str, str]] = [(str(a), str(d)) for a, d in data.get("entries") or []]

    @property
    def exists(self) -> bool:
        return bool(self.entries)

    def digests(self) -> set[str]:
        return {d for _, d in self.entries}

    def done_at(self, lock_digest: str) -> list[str]:
        """The action ids applied when hf.lock has ``lock_digest``."""
        last = max((i for i, (_, d) in enumerate(self.entries) if d == lock_digest), default=-1)
        return [a for a, _ in self.entries[: last + 1]]

    def record(self, action_id: str, lock_digest: str) -> None:
        self.entries.append((action_id, lock_digest))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".journal.", dir=str(self.path.parent))
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"entries": self.entries}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def remove(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass
