"""CLI: ``batuta remote check | ls | stats | gc`` and ``batuta force-unlock ID``.

The remote is ``--remote URL`` or ``BATUTA_REMOTE`` (``s3://bucket/prefix`` or
``file:///path``; docs/remote.md).  Module level imports stdlib + _common only.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batuta_sync.cli import _common
from batuta_sync.errors import UsageError

if TYPE_CHECKING:
    from batuta_sync.remote.store import RemoteStore


def _remote_option(p: argparse.ArgumentParser) -> None:
    # --remote URL is a common option (cli/_common.py)
    p.add_argument("--json", action="store_true", help="Machine-readable output.")


def register(root: Any, hf: Any) -> None:
    rp = root.add_parser("remote", help="Check and manage the shared remote (S3 or a shared folder).")
    rsub = rp.add_subparsers(dest="remote_command", metavar="REMOTE_COMMAND", parser_class=type(rp))
    rp.set_defaults(_parser=rp)

    p = _common.command_parser(
        rsub, "check", help="Self-test the store's conditional writes before trusting it with locks.",
        description="Run an N-way create race, a stale If-Match update, a stale conditional delete and a "
        "read-after-write on a scratch prefix (removed afterwards). Exit 0 only when every check passes.",
    )
    _remote_option(p)
    p.add_argument("--writers", type=int, default=8, help="Writers in the create race (default 8).")
    p.set_defaults(handler=cmd_check)

    p = _common.command_parser(rsub, "ls", help="List the remote's objects under a prefix.")
    _remote_option(p)
    p.add_argument("prefix", nargs="?", default="", help="e.g. cas/, trees/, runs/, locks/")
    p.set_defaults(handler=cmd_ls)

    p = _common.command_parser(rsub, "stats", help="Objects and bytes per area (cas, trees, runs, locks).")
    _remote_option(p)
    p.set_defaults(handler=cmd_stats)

    p = _common.command_parser(
        rsub, "gc", help="Delete shared blobs and run records that none of the given hf.lock files use.",
        description="Keeps every blob and conversion record referenced by any of the given lockfiles "
        "(pass every hf.lock that uses this remote); deletes the rest. --dry-run lists what would go.",
    )
    _remote_option(p)
    p.add_argument("--lock", action="append", type=Path, required=True, metavar="HF_LOCK",
                   help="An hf.lock whose content must be kept (repeatable).")
    p.add_argument("--dry-run", action="store_true", help="Only list what would be deleted.")
    p.set_defaults(handler=cmd_gc)

    p = _common.command_parser(
        root, "force-unlock",
        help="Remove a remote apply lock by its id (when its runner is gone and you cannot wait for expiry).",
    )
    _remote_option(p)
    p.add_argument("lock_id", metavar="ID", help="The lock id printed by the apply that is waiting.")
    p.set_defaults(handler=cmd_force_unlock)


def _open(args: argparse.Namespace) -> RemoteStore:
    url = getattr(args, "remote", None) or os.environ.get("BATUTA_REMOTE")
    if not url:
        raise UsageError("No remote given.", hint="Pass --remote s3://bucket/prefix (or set BATUTA_REMOTE).")
    from batuta_sync.remote import open_remote

    return open_remote(url)


def cmd_check(args: argparse.Namespace) -> int:
    from batuta_sync.errors import exit_code
    from batuta_sync.remote.check import run_check

    if args.writers < 2 or args.writers > 64:
        raise UsageError("--writers must be between 2 and 64.")
    report = run_check(_open(args), writers=args.writers)
    if args.json:
        _common.emit_json(report.to_json())
    else:
        for r in report.results:
            print(f"{'ok  ' if r.ok else 'FAIL'} {r.name}: {r.detail}")
        verdict = "every check passed" if report.ok else (
            "conditional writes are NOT reliable: do not use this store for locks" if not report.locks_safe
            else "some checks failed"
        )
        print(f"{report.url}: {verdict}")
    return 0 if report.ok else exit_code("remote")


def cmd_ls(args: argparse.Namespace) -> int:
    store = _open(args)
    rows = [(i.key, i.size) for i in store.list(args.prefix)]
    if args.json:
        _common.emit_json({"url": store.url, "objects": [{"key": k, "size": s} for k, s in rows]})
    else:
        from batuta_sync._fmt import human_bytes

        _common.print_table(["key", "size"], [(k, human_bytes(s)) for k, s in rows])
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    store = _open(args)
    areas: dict[str, list[int]] = {a: [0, 0] for a in ("cas", "trees", "runs", "locks")}
    for info in store.list(""):
        area = info.key.split("/", 1)[0]
        if area in areas:
            areas[area][0] += 1
            areas[area][1] += info.size
    if args.json:
        _common.emit_json({"url": store.url, "areas": {a: {"objects": n, "bytes": b} for a, (n, b) in areas.items()}})
    else:
        from batuta_sync._fmt import human_bytes

        _common.print_table(["area", "objects", "size"], [(a, n, human_bytes(b)) for a, (n, b) in areas.items()],
                            title=store.url)
    return 0


def _referenced(locks: list[Path]) -> tuple[set[str], set[str]]:
    """(blob digests, conversion memo keys) the given lockfiles reference."""
    from batuta_sync.core.lockfile import ConversionLock, RepoLock, read_lock

    blobs: set[str] = set()
    runs: set[str] = set()
    for path in locks:
        lock = read_lock(path)
        if lock is None:
            raise UsageError(f"{path} does not exist.", hint="Pass the hf.lock files that use this remote.")
        for entry in lock.entries.values():
            files = entry.files if isinstance(entry, RepoLock) else entry.outputs if isinstance(entry, ConversionLock) else ()
            for f in files:
                blobs.update(d for d in (f.sha256, f.gitsha1) if d)
            if isinstance(entry, ConversionLock):
                runs.add(entry.key.split(":", 1)[-1])
    return blobs, runs


def cmd_gc(args: argparse.Namespace) -> int:
    store = _open(args)
    keep_blobs, keep_runs = _referenced(args.lock)
    doomed: list[tuple[str, int]] = []
    for info in store.list("cas/"):
        if info.key.rsplit("/", 1)[-1] not in keep_blobs:
            doomed.append((info.key, info.size))
    for info in store.list("runs/"):
        if info.key.rsplit("/", 1)[-1].removesuffix(".json") not in keep_runs:
            doomed.append((info.key, info.size))
    if not args.dry_run:
        for key, _ in doomed:
            store.delete(key)
    total = sum(s for _, s in doomed)
    if args.json:
        _common.emit_json({"url": store.url, "dry_run": args.dry_run, "deleted": [k for k, _ in doomed], "bytes": total})
    else:
        from batuta_sync._fmt import human_bytes

        for key, _ in doomed:
            print(("would delete " if args.dry_run else "deleted ") + key)
        print(f"{len(doomed)} object(s), {human_bytes(total)} {'would be ' if args.dry_run else ''}freed on {store.url}.")
    return 0


def cmd_force_unlock(args: argparse.Namespace) -> int:
    from batuta_sync.remote.lease import force_unlock

    store = _open(args)
    key = force_unlock(store, args.lock_id)
    if args.json:
        _common.emit_json({"url": store.url, "removed": key})
    else:
        print(f"Removed the lock {key} on {store.url}.")
    return 0
