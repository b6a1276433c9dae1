"""CLI: ``batuta hf pull model|dataset|files`` and ``batuta cache ls|stats|prune|clear``.

Thin layer over :mod:`batuta_sync.pull` and :class:`batuta_sync.hub.cache.HfCache`.
Module level imports stdlib + light batuta modules only (rich, httpx, yaml load inside
the handlers).  stdout gets the result (the snapshot or ``--output`` folder, or JSON);
notes, the progress display and errors go to stderr.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batuta_sync.cli import _common
from batuta_sync.cli.query_cmd import add_wait_options, http_kwargs

if TYPE_CHECKING:
    from batuta_sync.pull import PullRequest, PullResult


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of jobs: {text!r}")
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError("must be between 1 and 64")
    return value


# --------------------------------------------------------------------------- progress


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


def _progress_for(args: argparse.Namespace) -> Any:
    if getattr(args, "quiet", False) or getattr(args, "json", False) or not _common.is_tty(sys.stderr):
        return None
    return RichProgress()


# --------------------------------------------------------------------------- pull


def _request(args: argparse.Namespace, repo_type: str, files: tuple[str, ...] = ()) -> PullRequest:
    from batuta_sync.pull import PullRequest
    from batuta_sync.types import HfAssetType, RepoRef, check_repo_id

    ref = RepoRef(check_repo_id(args.repo_id), HfAssetType.parse(repo_type), args.revision or "main")
    return PullRequest(
        ref=ref,
        include=tuple(getattr(args, "include", None) or ()),
        exclude=tuple(getattr(args, "exclude", None) or ()),
        format=getattr(args, "format", None),
        quantization=getattr(args, "quantization", None),
        split=getattr(args, "split", None),
        output=Path(args.output) if getattr(args, "output", None) else None,
        copy=bool(getattr(args, "copy", False)),
        allow_unsafe=bool(getattr(args, "allow_unsafe", False)),
        files=files,
    )


def _run_pull(args: argparse.Namespace, req: PullRequest) -> int:
    from batuta_sync.hub.cache import human_bytes
    from batuta_sync.pull import pull
    from batuta_sync.safety import unsafe_files_error

    settings = _common.settings_from_args(args)
    progress = _progress_for(args)
    result: PullResult = pull(
        settings,
        req,
        jobs=args.jobs,
        progress=progress,
        max_wait=getattr(args, "max_wait", None),
        no_wait=bool(getattr(args, "no_wait", False)),
        sleep=http_kwargs(args)["sleep"],
    )
    if getattr(args, "json", False):
        _common.emit_json(result.to_json())
    else:
        for note in result.notes:
            _common.info(args, f"note: {note}")
        speed = ""
        if result.transferred_bytes and result.seconds > 0:
            speed = f" at {human_bytes(result.transferred_bytes / result.seconds)}/s"
        from batuta_sync._fmt import plural

        _common.info(
            args,
            f"{req.ref} (commit {result.snapshot.commit[:12]}): {plural(len(result.selected), 'file')}, "
            f"{human_bytes(sum(f.size for f in result.selected))}; transferred {human_bytes(result.transferred_bytes)}"
            f"{speed}, {result.cache_hits} from cache" + (" (offline)" if result.offline else ""),
        )
        print(result.output or result.snapshot_dir)
    if result.blocked:
        raise unsafe_files_error(result.blocked)
    return 0


def _cmd_pull_model(args: argparse.Namespace) -> int:
    return _run_pull(args, _request(args, "model"))


def _cmd_pull_dataset(args: argparse.Namespace) -> int:
    return _run_pull(args, _request(args, "dataset"))


def _cmd_pull_files(args: argparse.Namespace) -> int:
    return _run_pull(args, _request(args, args.repo_type, tuple(args.files)))


# --------------------------------------------------------------------------- cache


def _cache(args: argparse.Namespace) -> Any:
    from batuta_sync.hub.cache import HfCache

    return HfCache.from_settings(_common.settings_from_args(args))


def _cmd_cache_ls(args: argparse.Namespace) -> int:
    import datetime as dt

    from batuta_sync.hub.cache import human_bytes

    snaps = sorted(_cache(args).snapshots(), key=lambda s: -s.last_access)
    if args.json:
        _common.emit_json(
            [
                {
                    "repo_type": s.repo_type.value,
                    "repo_id": s.repo_id,
                    "commit": s.commit,
                    "refs": list(s.refs),
                    "files": s.files,
                    "size_bytes": s.size,
                    "last_access": s.last_access,
                    "path": str(s.path),
                }
                for s in snaps
            ]
        )
        return 0
    rows = [
        (
            s.repo_type.value,
            s.repo_id,
            s.commit[:12],
            ",".join(s.refs),
            s.files,
            human_bytes(s.size),
            dt.datetime.fromtimestamp(s.last_access, dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        )
        for s in snaps
    ]
    _common.print_table(
        ("TYPE", "REPO", "COMMIT", "REFS", "FILES", "SIZE", "LAST USED (UTC)"), rows, title="Cache"
    )
    return 0


def _cmd_cache_stats(args: argparse.Namespace) -> int:
    from batuta_sync.hub.cache import human_bytes

    st = _cache(args).stats()
    if args.json:
        _common.emit_json(st.to_json())
        return 0

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.1f}%"

    lines = [
        f"cache      {st.root}",
        f"size       {human_bytes(st.size)} ({st.repos} repos, {st.snapshots} snapshots, {st.blobs} blobs)",
    ]
    if st.incomplete:
        lines.append(
            f"partial    {human_bytes(st.incomplete)} in unfinished downloads (resumed on the next pull)"
        )
    lines.append(
        f"hit rate   {pct(st.hit_rate)} of files, {pct(st.byte_hit_rate)} of bytes over the last {st.operations} pull(s) "
        f"({st.hits} hits, {st.misses} misses)"
    )
    print("\n".join(lines))
    return 0


def _cmd_cache_prune(args: argparse.Namespace) -> int:
    from batuta_sync.core import gcroots
    from batuta_sync.hub.cache import human_bytes, parse_size

    cache = _cache(args)
    report, note = gcroots.prune(cache, parse_size(args.max_size))
    if args.json:
        _common.emit_json(
            {
                "freed_bytes": report.freed,
                "size_before": report.size_before,
                "size_after": report.size_after,
                "over_limit": report.over_limit,
                "kept_for_workspaces": [f"{s.repo_id}@{s.commit}" for s in report.kept],
            }
        )
    else:
        print(
            f"freed {human_bytes(report.freed)}; cache is now {human_bytes(report.size_after)} (limit {args.max_size})"
        )
    if note:
        print(f"Warning: {note}", file=sys.stderr)
    return 0


def _cmd_cache_clear(args: argparse.Namespace) -> int:
    from batuta_sync.core import gcroots
    from batuta_sync.errors import UsageError
    from batuta_sync.hub.cache import human_bytes

    cache = _cache(args)
    broken = gcroots.breaks(cache)
    warning = ""
    if broken:
        warning = (
            f"This breaks {len(broken)} workspace output(s) that use the cache (the next `batuta apply` "
            "pulls them again):\n" + "\n".join(f"  - {b}" for b in broken) + "\n"
        )
    if not args.yes:
        if not (_common.is_tty(sys.stdin) and _common.is_tty(sys.stderr)):
            raise UsageError(
                f"Refusing to delete every cached repo under {cache.root} without confirmation.\n{warning}".rstrip(),
                hint="Pass --yes to confirm.",
            )
        sys.stderr.write(f"{warning}Delete every cached repo under {cache.root}? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in {"y", "yes"}:
            print("aborted", file=sys.stderr)
            return 0
    freed = cache.clear()
    print(f"cleared {human_bytes(freed)} from {cache.root}")
    if broken and args.yes:
        print(f"Warning: {warning.rstrip()}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- registration


def _add_pull_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("repo_id", help="Repo id, e.g. meta-llama/Llama-2-7b-hf.")
    p.add_argument("--revision", help="Branch, tag or commit sha (default: main).")
    p.add_argument(
        "--output", metavar="DIR", help="Also place the files in DIR (symlinks into the cache; see --copy)."
    )
    p.add_argument("--copy", action="store_true", help="With --output: real copies instead of symlinks.")
    p.add_argument(
        "--allow-unsafe",
        action="store_true",
        help="Download pickle-based files (.bin .pt .pkl …) too. They are never loaded by batuta.",
    )
    p.add_argument("--jobs", type=_jobs, default=8, metavar="N", help="Parallel downloads (default 8).")
    p.add_argument("--json", action="store_true", help="Print the result as JSON.")
    add_wait_options(p)


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--include", action="append", metavar="GLOB", help="Only files matching GLOB (repeatable)."
    )
    p.add_argument(
        "--exclude", action="append", metavar="GLOB", help="Skip files matching GLOB (repeatable)."
    )


def register(root: Any, hf: Any) -> None:
    """Add ``hf pull …`` to the ``hf`` sub-parsers and ``cache …`` to the root."""
    cp = _common.command_parser

    pull = cp(hf, "pull", "Download models, datasets or files into the cache (resumable, verified).")
    ps = pull.add_subparsers(dest="pull_type", metavar="WHAT", parser_class=type(pull))

    p = cp(
        ps,
        "model",
        "Pull a model. Auto-selects the best format: safetensors, then GGUF, never pickle.",
    )
    _add_pull_common(p)
    _add_filters(p)
    p.add_argument("--format", choices=("safetensors", "gguf"), help="Pull this weight format only.")
    p.add_argument(
        "--quantization", metavar="Q", help="GGUF quantization, e.g. Q4_K_M (implies --format gguf)."
    )
    p.set_defaults(handler=_cmd_pull_model)

    p = cp(ps, "dataset", "Pull a dataset (optionally one split).")
    _add_pull_common(p)
    _add_filters(p)
    p.add_argument("--split", help="Only this split's files, e.g. train.")
    p.set_defaults(handler=_cmd_pull_dataset)

    p = cp(ps, "files", "Pull specific files of a repo.")
    p.add_argument("repo_id", help="Repo id.")
    p.add_argument("files", nargs="+", metavar="FILE", help="File paths in the repo.")
    p.add_argument(
        "--repo-type",
        choices=("model", "dataset", "space"),
        default="model",
        help="Repo type (default model).",
    )
    p.add_argument("--revision", help="Branch, tag or commit sha (default: main).")
    p.add_argument("--output", metavar="DIR", help="Also place the files in DIR (symlinks; see --copy).")
    p.add_argument("--copy", action="store_true", help="With --output: real copies instead of symlinks.")
    p.add_argument("--allow-unsafe", action="store_true", help="Allow pickle-based files (never loaded).")
    p.add_argument("--jobs", type=_jobs, default=8, metavar="N", help="Parallel downloads (default 8).")
    p.add_argument("--json", action="store_true", help="Print the result as JSON.")
    add_wait_options(p)
    p.set_defaults(handler=_cmd_pull_files)

    cache = cp(root, "cache", "Inspect and manage the local model cache (huggingface_hub layout).")
    cs = cache.add_subparsers(dest="cache_command", metavar="ACTION", parser_class=type(cache))
    p = cp(cs, "ls", "List cached snapshots, most recently used first.")
    p.add_argument("--json", action="store_true", help="Print JSON.")
    p.set_defaults(handler=_cmd_cache_ls)
    p = cp(cs, "stats", "Cache size and the hit rate of recent pulls.")
    p.add_argument("--json", action="store_true", help="Print JSON.")
    p.set_defaults(handler=_cmd_cache_stats)
    p = cp(cs, "prune", "Evict least-recently-used snapshots until the cache fits a size.")
    p.add_argument("--max-size", required=True, metavar="SIZE", help="Target size, e.g. 50GB, 500MB.")
    p.add_argument("--json", action="store_true", help="Print JSON.")
    p.set_defaults(handler=_cmd_cache_prune)
    p = cp(cs, "clear", "Delete every cached repo.")
    p.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
    p.set_defaults(handler=_cmd_cache_clear)
