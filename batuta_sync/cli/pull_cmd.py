"""CLI: ``batuta hf pull model|dataset|files`` and ``batuta cache ls|stats|prune|clear|verify|rm``.

Thin layer over :mod:`batuta_sync.pull` (through :func:`batuta_sync.convert.on_pull.pull_or_convert`:
a format the repo lacks is converted) and :class:`batuta_sync.hub.cache.HfCache`.
Module level imports stdlib + light batuta modules only (rich, httpx, yaml load inside
the handlers).  stdout gets the result (the snapshot or ``--output`` folder, or JSON);
notes, the progress display and errors go to stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batuta_sync.cli import _common
from batuta_sync.cli._progress import progress_for as _progress_for
from batuta_sync.cli.query_cmd import add_wait_options, http_kwargs

if TYPE_CHECKING:
    from batuta_sync.pull import PullRequest, PullResult


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of days: {text!r}")
    if not 0 <= value <= 36500:
        raise argparse.ArgumentTypeError(f"days must be between 0 and 36500, not {text}")
    return value


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of jobs: {text!r}")
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError("must be between 1 and 64")
    return value


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
    from batuta_sync.convert.on_pull import pull_or_convert
    from batuta_sync.hub.cache import human_bytes
    from batuta_sync.safety import unsafe_files_error

    settings = _common.settings_from_args(args)
    progress = _progress_for(args)
    result: PullResult = pull_or_convert(
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

    from batuta_sync.hub.cache import human_bytes, parse_size, select_snapshots
    from batuta_sync.types import HfAssetType

    snaps = select_snapshots(
        _cache(args).snapshots(),
        repo_type=HfAssetType(args.repo_type) if args.repo_type else None,
        repo=args.repo,
        detached=args.detached,
        min_size=parse_size(args.min_size) if args.min_size else 0,
        sort=args.sort,
        reverse=args.reverse,
    )
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
    from batuta_sync.hub.cache import PruneResult, human_bytes, parse_size, prune_incomplete

    cache = _cache(args)
    stale, stale_bytes = prune_incomplete(cache.root, args.incomplete_days * 86400.0)
    detached, detached_bytes = gcroots.prune_detached(cache) if args.detached else ([], 0)
    if args.max_size is not None:
        report, note = gcroots.prune(cache, parse_size(args.max_size))
    else:
        size = cache.total_size()
        report, note = PruneResult(0, size, size, size), None
    if args.json:
        _common.emit_json(
            {
                "freed_bytes": report.freed,
                "size_before": report.size_before,
                "size_after": report.size_after,
                "over_limit": report.over_limit,
                "kept_for_workspaces": [f"{s.repo_id}@{s.commit}" for s in report.kept],
                "stale_incomplete_files": stale,
                "stale_incomplete_bytes": stale_bytes,
                "detached_removed": [f"{s.repo_id}@{s.commit}" for s in detached],
                "detached_bytes": detached_bytes,
            }
        )
    else:
        limit = f" (limit {args.max_size})" if args.max_size is not None else ""
        print(f"freed {human_bytes(report.freed)}; cache is now {human_bytes(report.size_after)}{limit}")
        if stale:
            print(
                f"removed {stale} unfinished download(s) untouched for {args.incomplete_days:g}+ days "
                f"({human_bytes(stale_bytes)})"
            )
        if args.detached:
            print(f"removed {len(detached)} detached snapshot(s) ({human_bytes(detached_bytes)})")
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


def _select(args: argparse.Namespace, cache: Any, spec: str | None) -> list[Any]:
    """The cached snapshots ``REPO[@REV]`` names (every snapshot without ``spec``); REV is a
    ref the cache knows (``refs/<REV>``) or a commit sha; ``--repo-type`` narrows the type."""
    from batuta_sync import ids
    from batuta_sync.errors import NotFoundError
    from batuta_sync.types import check_repo_id

    snaps = [s for s in cache.snapshots() if ids.is_git_sha1(s.commit)]
    if getattr(args, "repo_type", None):
        snaps = [s for s in snaps if s.repo_type.value == args.repo_type]
    if spec is None:
        return sorted(snaps, key=lambda s: (s.repo_type.value, s.repo_id, s.commit))
    repo, _, rev = spec.partition("@")
    check_repo_id(repo)
    if rev:
        ids.revision(rev, where="the command line")
    chosen = [s for s in snaps if s.repo_id == repo and (not rev or rev == s.commit or rev in s.refs)]
    if not chosen:
        raise NotFoundError(
            f"{spec} is not in the cache {cache.root}.",
            hint="`batuta cache ls` lists what is cached (REV is a cached branch/tag or a full commit sha).",
        )
    return sorted(chosen, key=lambda s: (s.repo_type.value, s.repo_id, s.commit))


def _verify_all(cache: Any, snaps: list[Any]) -> tuple[int, list[Any]]:
    from batuta_sync.hub.cache import verify_snapshot

    checked, problems = 0, []
    for snap in snaps:
        n, found = verify_snapshot(cache.index.path.parent, snap, cache.root)
        checked += n
        problems.extend(found)
    return checked, problems


def _repair(args: argparse.Namespace, cache: Any, snaps: list[Any], problems: list[Any]) -> None:
    """Discard what is corrupt and pull the damaged files again at their commit (the pull
    engine verifies every byte against the listing)."""
    from batuta_sync.hub.cache import discard_blob
    from batuta_sync.pull import PullRequest, pull
    from batuta_sync.types import RepoRef

    settings = _common.settings_from_args(args)
    by_snap: dict[tuple[Any, str, str], set[str]] = {}
    for p in problems:
        if p.kind == "corrupt":
            discard_blob(cache.index.path.parent, cache.root, p)
        by_snap.setdefault((p.repo_type, p.repo_id, p.commit), set()).add(p.path)
    for (repo_type, repo_id, commit), paths in sorted(by_snap.items(), key=lambda kv: (kv[0][1], kv[0][2])):
        # The files were in the cache already (pulled before, pickle ones with --allow-unsafe):
        # restoring them is no new exposure, and nothing here loads them.
        req = PullRequest(
            ref=RepoRef(repo_id, repo_type, commit), files=tuple(sorted(paths)), allow_unsafe=True
        )
        pull(
            settings,
            req,
            jobs=args.jobs,
            max_wait=getattr(args, "max_wait", None),
            no_wait=bool(getattr(args, "no_wait", False)),
            sleep=http_kwargs(args)["sleep"],
        )


def _cmd_cache_verify(args: argparse.Namespace) -> int:
    from batuta_sync._fmt import plural
    from batuta_sync.errors import IntegrityError

    cache = _cache(args)
    snaps = _select(args, cache, args.repo)
    checked, problems = _verify_all(cache, snaps)
    found = list(problems)
    if problems and args.repair:
        _repair(args, cache, snaps, problems)
        checked, problems = _verify_all(cache, _select(args, cache, args.repo))
    repaired = [
        p
        for p in found
        if (p.repo_id, p.commit, p.path) not in {(q.repo_id, q.commit, q.path) for q in problems}
    ]
    if args.json:
        _common.emit_json(
            {
                "snapshots": len(snaps),
                "files": checked,
                "problems": [p.to_json() for p in problems],
                "repaired": [p.to_json() for p in repaired] if args.repair else [],
            }
        )
    else:
        for p in found:
            state = "repaired" if args.repair and p in repaired else p.kind
            print(f"{state:<9} {p.repo_type.value} {p.repo_id}@{p.commit[:12]}  {p.path}")
        _common.info(
            args,
            f"checked {plural(checked, 'file')} in {plural(len(snaps), 'snapshot')}: "
            f"{plural(len(found), 'problem')}" + (f", {len(repaired)} repaired" if args.repair else ""),
        )
    if problems:
        names = ", ".join(f"{p.repo_id}@{p.commit[:12]}:{p.path} ({p.kind})" for p in problems[:10])
        raise IntegrityError(
            f"{plural(len(problems), 'cached file')} failed verification: {names}"
            + (" …" if len(problems) > 10 else "")
            + ".",
            hint="`batuta cache verify --repair` downloads them again"
            if not args.repair
            else "The Hub no longer serves the same content; `batuta cache rm` the snapshot.",
        )
    return 0


def _cmd_cache_rm(args: argparse.Namespace) -> int:
    from batuta_sync.core import gcroots
    from batuta_sync.errors import UsageError
    from batuta_sync.hub.cache import human_bytes, remove_snapshots

    cache = _cache(args)
    snaps = _select(args, cache, args.repo)
    rooted = gcroots.uses(cache)
    users = sorted({u.describe() for s in snaps for u in rooted.get(s.key, [])})
    if users and not args.force:
        raise UsageError(
            f"Refusing to remove {args.repo} from the cache: workspaces' hf.lock pin it, and their "
            "outputs would break:\n" + "\n".join(f"  - {u}" for u in users),
            hint="Remove the resource from those hf.yaml files first, or pass --force "
            "(the next `batuta apply` there pulls it again).",
        )
    freed = remove_snapshots(cache, snaps)
    if args.json:
        _common.emit_json(
            {
                "removed": [f"{s.repo_type.value}:{s.repo_id}@{s.commit}" for s in snaps],
                "freed_bytes": freed,
                "broken_outputs": users,
            }
        )
    else:
        for s in snaps:
            print(f"removed {s.repo_type.value} {s.repo_id}@{s.commit[:12]}")
        _common.info(args, f"freed {human_bytes(freed)}")
    if users:
        print(
            "Warning: these outputs now point to nothing until the next apply:\n"
            + "\n".join(f"  - {u}" for u in users),
            file=sys.stderr,
        )
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
    p = cp(cs, "ls", "List cached snapshots (most recently used first), filtered and sorted.")
    p.add_argument(
        "--repo-type", "--type", dest="repo_type", choices=("model", "dataset", "space"), help="Only repos of this type."
    )
    p.add_argument("--repo", metavar="GLOB", help="Only repo ids matching GLOB, e.g. 'org/*' or '*llama*'.")
    p.add_argument("--detached", action="store_true", help="Only snapshots no branch or tag points to.")
    p.add_argument("--min-size", metavar="SIZE", help="Only snapshots of at least SIZE, e.g. 1GB.")
    p.add_argument(
        "--sort",
        choices=("accessed", "size", "name", "files"),
        default="accessed",
        help="Order: accessed (most recent first, the default), size or files (largest first), name (A-Z).",
    )
    p.add_argument("--reverse", action="store_true", help="Reverse the order.")
    p.add_argument("--json", action="store_true", help="Print JSON.")
    p.set_defaults(handler=_cmd_cache_ls)
    p = cp(cs, "stats", "Cache size and the hit rate of recent pulls.")
    p.add_argument("--json", action="store_true", help="Print JSON.")
    p.set_defaults(handler=_cmd_cache_stats)
    p = cp(
        cs,
        "prune",
        "Evict least-recently-used snapshots until the cache fits a size; drop stale partial downloads.",
    )
    p.add_argument("--max-size", metavar="SIZE", help="Target size, e.g. 50GB, 500MB (default: no eviction).")
    p.add_argument(
        "--incomplete-days",
        type=_days,
        default=7.0,
        metavar="N",
        help="Also delete unfinished downloads (*.incomplete) untouched for N days (default 7).",
    )
    p.add_argument(
        "--detached",
        action="store_true",
        help="Also remove snapshots no branch or tag points to (except what workspaces' hf.lock pin).",
    )
    p.add_argument("--json", action="store_true", help="Print JSON.")
    p.set_defaults(handler=_cmd_cache_prune)
    p = cp(cs, "clear", "Delete every cached repo.")
    p.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
    p.set_defaults(handler=_cmd_cache_clear)
    p = cp(
        cs,
        "verify",
        "Re-hash cached files against their names and listings; --repair downloads bad ones again.",
    )
    p.add_argument(
        "repo", nargs="?", metavar="REPO[@REV]", help="Only this repo (at a cached ref or commit)."
    )
    p.add_argument("--repo-type", choices=("model", "dataset", "space"), help="Only repos of this type.")
    p.add_argument(
        "--repair", action="store_true", help="Discard corrupt files and pull the damaged ones again."
    )
    p.add_argument(
        "--jobs", type=_jobs, default=8, metavar="N", help="Parallel downloads for --repair (default 8)."
    )
    p.add_argument("--json", action="store_true", help="Print JSON.")
    add_wait_options(p)
    p.set_defaults(handler=_cmd_cache_verify)
    p = cp(cs, "rm", "Remove a repo, or one revision of it, from the cache (not what workspaces pin).")
    p.add_argument("repo", metavar="REPO[@REV]", help="Repo id, optionally @ a cached ref or commit sha.")
    p.add_argument("--repo-type", choices=("model", "dataset", "space"), help="Only the repo of this type.")
    p.add_argument("--force", action="store_true", help="Remove it even if workspaces' hf.lock pin it.")
    p.add_argument("--json", action="store_true", help="Print JSON.")
    p.set_defaults(handler=_cmd_cache_rm)
