"""The one transfer display of the CLI: pulls, pushes and apply's per-action lines feed it through the
:class:`~batuta_sync.hub.download.ProgressSink` protocol.  It is used only on a terminal and never
with ``-q`` / ``--json``, so no cursor-control codes reach a pipe or a log file."""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any

from batuta_sync.cli import _common


class RichProgress:
    """One rich display: a line per file being downloaded + a total line (bytes, speed, ETA)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(bar_width=28),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
            refresh_per_second=8,
        )
        self._lock = threading.Lock()
        self._tasks: dict[str, Any] = {}
        self._total: Any = None
        self._started = False

    def start(self, files: int, total_bytes: int) -> None:
        with self._lock:
            if not self._started:
                self._progress.start()
                self._started = True
                self._total = self._progress.add_task(f"total ({files} files)", total=total_bytes)
            else:  # a second batch (e.g. README first for --split)
                self._progress.update(
                    self._total, total=total_bytes, completed=0, description=f"total ({files} files)"
                )

    def file_start(self, path: str, size: int, done: int) -> None:
        name = path if len(path) <= 40 else "…" + path[-39:]
        with self._lock:
            task = self._tasks.get(path)
            if task is None:
                self._tasks[path] = self._progress.add_task(f"  {name}", total=size, completed=done)
                self._progress.advance(self._total, done)
            else:  # restarted from zero
                self._progress.update(task, completed=done)

    def advance(self, path: str, nbytes: int) -> None:
        task = self._tasks.get(path)
        if task is not None:
            self._progress.advance(task, nbytes)
        self._progress.advance(self._total, nbytes)

    def file_done(self, path: str, *, cached: bool) -> None:
        with self._lock:
            task = self._tasks.pop(path, None)
            if task is not None:
                self._progress.remove_task(task)

    def close(self) -> None:
        with self._lock:
            if self._started:
                self._progress.stop()
                self._started = False


def progress_for(args: argparse.Namespace) -> Any:
    if getattr(args, "quiet", False) or getattr(args, "json", False) or not _common.is_tty(sys.stderr):
        return None
    return RichProgress()
