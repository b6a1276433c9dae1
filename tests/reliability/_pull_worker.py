"""Pull one file of a dataset repo at a given instant (a thread of the test, or a process).

``python tests/reliability/_pull_worker.py --start-at EPOCH --repo R --file F [--no-flock]`` prints
``ok`` or ``<ExceptionType>: message``.  ``--no-flock`` replaces ``fcntl.flock`` by a no-op first,
like a filesystem where locks silently do nothing (NFS without lockd, some FUSE mounts).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def disable_flock() -> None:
    import fcntl

    fcntl.flock = lambda *a, **k: None  # type: ignore[assignment]


def pull_once(env: Mapping[str, str | None], repo: str, file: str, start_at: float, no_flock: bool = False) -> str:
    from batuta_sync.pull import PullRequest, pull
    from batuta_sync.settings import resolve_settings
    from batuta_sync.types import HfAssetType, RepoRef

    if no_flock:
        disable_flock()
    settings = resolve_settings(env={k: v for k, v in env.items() if v is not None})
    time.sleep(max(0.0, start_at - time.time()))
    try:
        res = pull(settings, PullRequest(RepoRef(repo, HfAssetType.DATASET), files=(file,)), jobs=1)
        p = res.snapshot_dir / file
        if not p.is_file():
            return "missing snapshot file"
        return "ok"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--start-at", type=float, required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--no-flock", action="store_true")
    a = ap.parse_args()
    print(pull_once(dict(os.environ), a.repo, a.file, a.start_at, a.no_flock))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
