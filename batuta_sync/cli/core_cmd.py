"""CLI: ``batuta validate | plan | apply | show | graph | lock | status`` (the declarative core).

A thin shell over :mod:`batuta_sync.core.api`: parse, call, render.  Only stdlib
and light batuta modules at import time; the core is imported inside handlers.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batuta_sync.cli import _common

if TYPE_CHECKING:
    from batuta_sync.core.actions import Action
    from batuta_sync.core.executor import ApplyResult, StepResult
    from batuta_sync.core.manifest import Manifest
    from batuta_sync.core.planner.plan import Plan


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid positive integer: {text!r}")
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"must be between 1 and 256, got {value}")
    return value


def _add_file(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--file", default="hf.yaml", metavar="HF_YAML", help="The manifest (default: ./hf.yaml).")


def _add_trust(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trust-endpoint",
        action="append",
        default=[],
        metavar="URL",
        help="Let the token go to this endpoint although only hf.yaml names it (repeatable; env BATUTA_TRUSTED_ENDPOINTS).",
    )
    p.add_argument(
        "--allow-outside-workspace",
        action="store_true",
        help="Let hf.yaml paths (outputs, publish sources, cache_dir) point outside the folder of hf.yaml.",
    )


def register(root: Any, hf: Any) -> None:
    """Add validate, plan, apply, show, graph, lock, import and status to the root parser."""
    p = _common.command_parser(root, "validate", "Check hf.yaml against its schema and semantic rules (exit 3 if invalid).")
    _add_file(p)
    _add_trust(p)
    p.add_argument("--json", action="store_true", help="Print the result as JSON.")
    p.set_defaults(handler=cmd_validate)

    p = _common.command_parser(root, "plan", "Show what `batuta apply` would do to reach hf.yaml (Terraform-style).")
    _add_file(p)
    _add_trust(p)
    p.add_argument("-o", "--out", metavar="PLAN_JSON", help="Save the plan to apply exactly it later (with --format html: write the HTML page there).")
    p.add_argument("--json", action="store_true", help="Print the plan as JSON on stdout.")
    p.add_argument("--format", choices=("text", "markdown", "html"), default="text", help="Rendering (markdown for PR comments, html: one self-contained page for CI artifacts).")
    p.add_argument("--detailed-exitcode", action="store_true", help="Exit 0 with no changes, 2 with changes.")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--locked", action="store_true", help="Fail (exit 5) if hf.lock would change (CI gate).")
    mode.add_argument("--frozen", action="store_true", help="Use hf.lock as is, without checking it against hf.yaml.")
    p.add_argument("--refresh-only", action="store_true", help="Only report drift (upstream moved, local changes).")
    p.add_argument("--target", action="append", default=[], metavar="ADDR", help="Plan only ADDR and what it needs.")
    p.add_argument("--exclude", action="append", default=[], metavar="ADDR", help="Leave ADDR (and its dependants) out.")
    p.add_argument("--replace", action="append", default=[], metavar="ADDR", help="Redo ADDR even if up to date.")
    p.add_argument("--verify", action="store_true", help="Hash local files fully instead of trusting size.")
    p.add_argument("--refresh", action="store_true", help="Ignore cached Hub metadata: ask the Hub now.")
    p.set_defaults(handler=cmd_plan)

    p = _common.command_parser(root, "apply", "Apply a saved plan (or plan and apply) and update hf.lock.")
    _add_file(p)
    _add_trust(p)
    p.add_argument("plan", nargs="?", metavar="PLAN_JSON", help="A plan saved by `batuta plan -o`.")
    p.add_argument("--auto-approve", action="store_true", help="Do not ask (required when stdin is not a terminal).")
    p.add_argument("--jobs", type=_positive_int, default=None, help="Actions run in parallel (default: policies.jobs).")
    p.add_argument("--keep-going", action="store_true", help="After a failure, run every action that does not need it.")
    p.add_argument("--json", action="store_true", help="Print the apply summary as JSON.")
    p.add_argument(
        "--executor", default=None, metavar="SPEC",
        help="Where pull and convert actions run: local (default), dask://HOST:PORT (a Dask scheduler) or "
        "dask-local:N (a local Dask cluster of N workers); default policies.executor. A Dask executor needs "
        "--remote and `pip install 'batuta_sync[dask]'` (docs/distributed.md).",
    )
    p.add_argument(
        "--lock-timeout", type=float, default=0.0, metavar="SECONDS",
        help="Wait up to SECONDS for another apply's lock (workspace, and the --remote lease) "
        "instead of failing at once with exit 17 (default 0).",
    )
    p.set_defaults(handler=cmd_apply)

    p = _common.command_parser(root, "show", "Render a saved plan.")
    p.add_argument("plan", metavar="PLAN_JSON")
    p.add_argument("--json", action="store_true", help="Print the plan JSON.")
    p.add_argument("--format", choices=("text", "markdown", "html"), default="text")
    p.set_defaults(handler=cmd_show)

    p = _common.command_parser(root, "graph", "Draw the resource graph (or a saved plan's action DAG).")
    _add_file(p)
    p.add_argument("plan", nargs="?", metavar="PLAN_JSON", help="Draw this plan's actions instead of hf.yaml.")
    p.add_argument("--format", choices=("dot", "mermaid"), default="dot")
    p.set_defaults(handler=cmd_graph)

    p = _common.command_parser(root, "lock", "Resolve hf.yaml into hf.lock without downloading anything.")
    _add_file(p)
    _add_trust(p)
    p.add_argument("--update", action="append", default=[], metavar="ADDR", help="Move ADDR to its revision's current commit.")
    p.add_argument("--update-all", action="store_true", help="Move every resource to its revision's current commit.")
    p.set_defaults(handler=cmd_lock)

    p = _common.command_parser(
        root, "import", "Adopt a local folder (e.g. from `hf download --local-dir`) as an entry's files: verified, not downloaded."
    )
    _add_file(p)
    _add_trust(p)
    p.add_argument("address", metavar="ADDRESS", help="The hf.yaml entry, e.g. models.llama.")
    p.add_argument("folder", metavar="DIR", help="The folder holding that repo's files.")
    p.add_argument("--json", action="store_true", help="Print the result as JSON.")
    p.set_defaults(handler=cmd_import)

    p = _common.command_parser(root, "status", "Report drift: upstream moved, local files changed, published repos changed.")
    _add_file(p)
    _add_trust(p)
    p.add_argument("--verify", action="store_true", help="Hash local files fully.")
    p.add_argument("--json", action="store_true")
    p.add_argument("--exit-code", action="store_true", help="Exit 2 when anything drifted or is pending.")
    p.set_defaults(handler=cmd_status)


# --------------------------------------------------------------------------- helpers


def _load(args: argparse.Namespace) -> tuple[Manifest, Any]:
    from batuta_sync.core.manifest import load_manifest

    man = load_manifest(args.file)
    return man, _common.settings_from_args(args, manifest=man.settings_layer())


def _plan_key(settings: Any) -> bytes:
    from batuta_sync.core.plankey import plan_key

    return plan_key(settings.hf_home)


def _read_plan(path: str, settings: Any) -> Plan:
    """A saved plan, refused unless its MAC verifies under the plan key (exit 3)."""
    from batuta_sync.core.planner.plan import Plan
    from batuta_sync.errors import ConfigError

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise ConfigError(f"Cannot read the plan {path}: {why}.", hint="Create it with `batuta plan -o`.")
    return Plan.from_json(text, key=_plan_key(settings), source=path)


def use_color(stream: Any = None) -> bool:
    """Colour on a terminal unless NO_COLOR is set to anything (https://no-color.org)."""
    return _common.is_tty(stream or sys.stdout) and not os.environ.get("NO_COLOR")


def _render(plan: Plan, fmt: str) -> str:
    from batuta_sync.core.render import render_html, render_markdown, render_text

    if fmt == "markdown":
        return render_markdown(plan)
    if fmt == "html":
        return render_html(plan)
    return render_text(plan, color=use_color())



def _warn_unchecked(plan: Plan) -> None:
    """Say on stderr (even with --json / -o) which resources the plan could not check."""
    if plan.warnings:
        n = len(plan.warnings)
        _common.print_error(
            f"Warning: {n} resource{'s were' if n != 1 else ' was'} not checked against the Hub; the plan treats "
            f"{'them' if n != 1 else 'it'} as unchanged: "
            + ", ".join(w.split(":", 1)[0] for w in plan.warnings)
            + ". Gates (--detailed-exitcode, status --exit-code) fail on this.",
        )


# --------------------------------------------------------------------------- validate


def cmd_validate(args: argparse.Namespace) -> int:
    from batuta_sync.core.manifest import load_manifest
    from batuta_sync.core.workspace import confine_manifest

    man = load_manifest(args.file)
    confine_manifest(man, allow_outside=args.allow_outside_workspace)
    if args.json:
        _common.emit_json({"valid": True, "file": args.file, "addresses": list(man.addresses), "digest": man.digest})
    else:
        print(f"{args.file} is valid: {len(man.addresses)} resources ({', '.join(man.addresses) or 'none'}).")
    return 0


# --------------------------------------------------------------------------- plan


def cmd_plan(args: argparse.Namespace) -> int:
    from batuta_sync.cli.query_cmd import refreshed
    from batuta_sync.core.api import make_plan

    man, settings = _load(args)
    settings = refreshed(args, settings)
    plan = make_plan(
        man,
        settings=settings,
        refresh_only=args.refresh_only,
        targets=args.target,
        excludes=args.exclude,
        replace=args.replace,
        verify=args.verify,
        frozen=args.frozen,
        locked=args.locked,
        offline=settings.offline,
        gate=args.detailed_exitcode,
    )
    _warn_unchecked(plan)
    html_out = args.out if args.format == "html" and not args.json else None  # -o names the page
    key = _plan_key(settings) if ((args.out and not html_out) or args.json) else None
    from batuta_sync._fs import atomic_write

    if args.out and key is not None and not html_out:
        try:
            atomic_write(Path(args.out), plan.to_json(key))
        except OSError as exc:
            raise _common.fs_error(exc, f"the plan file {args.out}", "-o/--out") from None
    if args.json:
        _common.emit_json(plan.to_dict(key))
    elif html_out:
        try:
            atomic_write(Path(html_out), _render(plan, "html"))
        except OSError as exc:
            raise _common.fs_error(exc, f"the HTML plan {html_out}", "-o/--out") from None
        _common.info(args, f"Wrote the HTML plan to {html_out} (view it in a browser; apply needs `batuta plan -o plan.json`).")
    else:
        sys.stdout.write(_render(plan, args.format))
    if args.out and not args.json and not html_out:
        _common.info(args, f"Saved the plan to {args.out}. Apply exactly it with `batuta apply {args.out}`.")
    if args.detailed_exitcode and plan.has_changes:
        return 2
    return 0


# --------------------------------------------------------------------------- apply


class _CliReporter:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def started(self, action: Action) -> None:
        _common.info(self.args, f"  {action.kind.symbol} {action.kind.value} {action.address} ...")

    def finished(self, action: Action, result: StepResult) -> None:
        from batuta_sync._fmt import human_bytes

        extra = (f" ({human_bytes(result.bytes)})" if result.bytes else "") + (f": {result.message}" if result.message else "")
        _common.info(self.args, f"  ✓ {action.kind.value} {action.address} done{extra}")

    def failed(self, action: Action, error: BaseException) -> None:
        msg = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
        _common.info(self.args, f"  ✗ {action.kind.value} {action.address} failed: {msg}")

    def skipped(self, action: Action, cause: str) -> None:
        _common.info(self.args, f"  ↷ {action.kind.value} {action.address} skipped ({cause})")

    def interrupted(self, in_flight: Sequence[Action], *, abort: bool) -> None:
        # Shown even with --quiet: the user pressed a key and must see that it was heard.
        self._say(interrupt_message(in_flight, abort=abort))

    def _say(self, text: str) -> None:
        _common.print_error(text)


def interrupt_message(in_flight: Sequence[Action], *, abort: bool) -> str:
    names = ", ".join(f"{a.kind.value} {a.address}" for a in in_flight)
    if abort:
        return (
            f"Ctrl-C again: aborting {names or 'the running actions'}; partial downloads are kept "
            "and resume on the next apply."
        )
    if not in_flight:
        return "Ctrl-C: stopping; nothing new starts."
    n = len(in_flight)
    return (
        f"Ctrl-C: finishing {n} in-flight action{'s' if n != 1 else ''} ({names}); nothing new starts. "
        "Press Ctrl-C again to abort (partial downloads are kept and resume on the next apply)."
    )


class _RichApplyProgress(_CliReporter):
    """On a terminal: one rich display, a bar per running action (bytes for pulls) and a total."""

    def __init__(self, args: argparse.Namespace, plan: Plan) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        super().__init__(args)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.total = self.progress.add_task(f"apply {len(plan.actions)} actions", total=len(plan.actions) or 1)
        self.tasks: dict[str, Any] = {}
        self.progress.start()

    def _log(self, text: str) -> None:
        self.progress.console.print(text)

    def _say(self, text: str) -> None:
        self.progress.console.print(text)

    def started(self, action: Action) -> None:
        self.tasks[action.id] = self.progress.add_task(
            f"{action.kind.symbol} {action.address}", total=action.download_bytes or None
        )

    def _end(self, action: Action, text: str) -> None:
        task = self.tasks.pop(action.id, None)
        if task is not None:
            self.progress.remove_task(task)
        self.progress.advance(self.total)
        self._log(text)

    def finished(self, action: Action, result: StepResult) -> None:
        from batuta_sync._fmt import human_bytes

        extra = (f" ({human_bytes(result.bytes)})" if result.bytes else "") + (f": {result.message}" if result.message else "")
        self._end(action, f"  ✓ {action.kind.value} {action.address} done{extra}")

    def failed(self, action: Action, error: BaseException) -> None:
        msg = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
        self._end(action, f"  ✗ {action.kind.value} {action.address} failed: {msg}")

    def skipped(self, action: Action, cause: str) -> None:
        self._log(f"  ↷ {action.kind.value} {action.address} skipped ({cause})")

    def sink_for(self, action: Action) -> Any:
        reporter = self

        class Sink:
            def start(self, files: int, total_bytes: int) -> None:
                task = reporter.tasks.get(action.id)
                if task is not None:
                    reporter.progress.update(task, total=total_bytes or None)

            def file_start(self, path: str, size: int, done: int) -> None:
                pass

            def advance(self, path: str, nbytes: int) -> None:
                task = reporter.tasks.get(action.id)
                if task is not None:
                    reporter.progress.advance(task, nbytes)

            def file_done(self, path: str, *, cached: bool) -> None:
                pass

            def close(self) -> None:
                pass

        return Sink()

    def close(self) -> None:
        self.progress.stop()


def _approve(args: argparse.Namespace) -> bool:
    from batuta_sync.errors import UsageError

    if args.auto_approve:
        return True
    if not _common.is_tty(sys.stdin):
        raise UsageError(
            "Refusing to apply without confirmation: stdin is not a terminal.",
            hint="Review the plan and pass --auto-approve (e.g. `batuta apply plan.json --auto-approve`).",
        )
    answer = input("Apply these actions? Only 'yes' is accepted: ")
    return answer.strip().lower() == "yes"


def _finish(args: argparse.Namespace, result: ApplyResult) -> int:
    from batuta_sync.errors import BatutaError, DiskFullError, PartialApplyError, exit_code

    _emit_apply_json(args, result.to_dict())
    if result.interrupted:
        again = f"batuta apply {args.plan}" if args.plan else "batuta apply"
        _common.print_error(
            f"Apply interrupted: {len(result.completed)} done, {len(result.aborted)} aborted, "
            f"{len(result.not_run)} not run. Completed actions are in hf.lock; run `{again}` again to resume."
        )
        return exit_code("interrupted")
    done = len(result.completed) + len(result.resumed)
    text = (
        f"Apply {'complete' if result.ok else 'incomplete'}: {len(result.completed)} done"
        + (f" ({len(result.resumed)} already done before)" if result.resumed else "")
        + f", {len(result.failed)} failed, {len(result.skipped)} skipped, {len(result.not_run)} not run."
    )
    _common.info(args, text)
    for note in result.notes:
        _common.print_error(f"Warning: {note}")
    if result.ok:
        return 0
    if done == 0 and len(result.failed) == 1:
        err = next(iter(result.failed.values()))
        if isinstance(err, BatutaError):
            raise err
    lines = [f"  - {aid}: {getattr(e, 'message', None) or f'{type(e).__name__}: {e}'}" for aid, e in result.failed.items()]
    lines += [f"  - {aid}: skipped ({why})" for aid, why in result.skipped.items()]
    lines += [f"  - {aid}: not run (apply stopped at the first failure; --keep-going runs it)" for aid in result.not_run]
    # a full disk is the cause to report (16): retrying or --keep-going cannot help until space is freed
    full = any(isinstance(e, DiskFullError) for e in result.failed.values())
    raise (DiskFullError if full else PartialApplyError)(f"{text}\n" + "\n".join(lines))


def _emit_apply_json(args: argparse.Namespace, doc: dict[str, Any]) -> None:
    """``apply --json`` prints exactly one JSON object, whatever happens."""
    if args.json and not getattr(args, "_json_done", False):
        args._json_done = True
        _common.emit_json(doc)


def cmd_apply(args: argparse.Namespace) -> int:
    from batuta_sync.errors import BatutaError

    try:
        return _cmd_apply(args)
    except BatutaError as exc:
        _emit_apply_json(
            args,
            {
                "ok": False,
                "error": {"code": exc.code, "message": exc.message, "hint": exc.hint, "exit_code": exc.exit_code},
            },
        )
        raise


def _new_plan_hint(args: argparse.Namespace) -> str:
    return f"Make a new plan for this hf.yaml with `batuta plan -f {args.file} -o {args.plan}`, review it, and apply that."


def _refuse_stale_before_rendering(args: argparse.Namespace, man: Manifest, plan: Plan) -> None:
    """The local freshness checks (hf.yaml, hf.lock, workspace, single use) before the plan is shown:
    a stale or foreign plan is never rendered as if it could be applied.  The Hub preconditions
    follow under the workspace lock, still before the first action."""
    from batuta_sync.core.executor import check_fresh, raise_if_stale
    from batuta_sync.core.lockfile import read_lock
    from batuta_sync.core.workspace import Journal, Workspace

    ws = Workspace.of(man)
    problems = check_fresh(
        plan, manifest_digest=man.digest, lock=read_lock(ws.lock_path), journal=Journal(ws.journal(plan.plan_id)),
        resolve=None,
    )
    raise_if_stale(problems, source=f"The plan {args.plan}", hint=_new_plan_hint(args))


def _cmd_apply(args: argparse.Namespace) -> int:
    from batuta_sync.core.api import plan_session
    from batuta_sync.errors import StalePlanError

    man, settings = _load(args)
    hook = _executor_hook(args, man, settings)  # before the plan: a missing extra or remote fails at once
    if args.plan:
        plan = _read_plan(args.plan, settings)
        _refuse_stale_before_rendering(args, man, plan)
        try:
            return _apply(args, settings, plan, check_remote=True, locked=False, hook=hook)
        except StalePlanError as exc:  # a Hub precondition (checked under the workspace lock)
            exc.hint = _new_plan_hint(args)
            raise
    # Plan and apply in one go: the library holds the workspace lock from the plan on, so
    # another apply cannot move hf.lock between our plan and our apply.
    with plan_session(man, settings=settings, offline=settings.offline, lock_timeout=getattr(args, "lock_timeout", 0.0)) as session:
        return _apply(args, settings, session.plan, check_remote=False, locked=True, hook=hook)


def _executor_hook(args: argparse.Namespace, man: Manifest, settings: Any) -> Any:
    """``--executor`` (over ``policies.executor``): None for local, else the Dask executor's hook."""
    flag = getattr(args, "executor", None)
    if flag in (None, "local") and man.policies.executor in (None, "local"):
        return None  # the default path imports nothing of the distributed executor
    from batuta_sync.distributed import executor_hook, resolve_executor

    return executor_hook(resolve_executor(flag, man.policies.executor), settings)


def _apply(
    args: argparse.Namespace, settings: Any, plan: Plan, *, check_remote: bool, locked: bool, hook: Any = None
) -> int:
    from batuta_sync.core.api import apply_plan
    from batuta_sync.core.executor import ApplyResult

    if not args.json:
        sys.stdout.write(_render(plan, "text"))
    if not plan.actions:
        _emit_apply_json(args, ApplyResult(plan.plan_id).to_dict())
        return 0
    if not _approve(args):
        _common.info(args, "Apply cancelled; nothing was changed.")
        _emit_apply_json(args, {**ApplyResult(plan.plan_id).to_dict(), "ok": False, "cancelled": True})
        return 0
    rich = _common.is_tty(sys.stderr) and not args.quiet and not args.json
    reporter = _RichApplyProgress(args, plan) if rich else _CliReporter(args)
    try:
        result = apply_plan(
            plan,
            manifest=args.file,
            settings=settings,
            jobs=args.jobs,
            keep_going=args.keep_going,
            reporter=reporter,  # type: ignore[arg-type]
            check_remote=check_remote,
            progress_for=reporter.sink_for if isinstance(reporter, _RichApplyProgress) else None,
            workspace_locked=locked,
            lock_timeout=getattr(args, "lock_timeout", 0.0),
            executor_hook=hook,
        )
    finally:
        if isinstance(reporter, _RichApplyProgress):
            reporter.close()
    return _finish(args, result)


# --------------------------------------------------------------------------- show / graph


def cmd_show(args: argparse.Namespace) -> int:
    plan = _read_plan(args.plan, _common.settings_from_args(args))
    if args.json:
        _common.emit_json(plan.to_dict())
    else:
        sys.stdout.write(_render(plan, args.format))
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    from batuta_sync.core.planner.graph import to_dot, to_mermaid

    nodes: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    if args.plan:
        plan = _read_plan(args.plan, _common.settings_from_args(args))
        for a in plan.actions:
            nodes[a.id] = f"{a.kind.symbol} {a.kind.value} {a.address} ({a.reason.value.replace('_', ' ')})"
            edges += [(d, a.id) for d in a.deps]
    else:
        from batuta_sync.core.manifest import dependencies, iter_specs, load_manifest

        man = load_manifest(args.file)
        for spec in iter_specs(man):
            repo = getattr(spec, "repo", None)
            nodes[spec.address] = f"{spec.address}" + (f" ({repo})" if repo else "")
        for node, deps in dependencies(man).items():
            edges += [(d, node) for d in deps]
    text = to_mermaid(nodes, edges) if args.format == "mermaid" else to_dot(nodes, edges)
    sys.stdout.write(text)
    return 0


# --------------------------------------------------------------------------- lock


def cmd_lock(args: argparse.Namespace) -> int:
    from batuta_sync.core.api import update_lock

    man, settings = _load(args)
    updates = list(man.addresses) if args.update_all else list(args.update)
    result = update_lock(man, updates=updates, settings=settings)
    if result.written:
        _common.info(args, f"Updated hf.lock (serial {result.lock.serial}):")
        for line in result.changes or ["(entries normalised)"]:
            _common.info(args, f"  ~ {line}")
    else:
        _common.info(args, "hf.lock is up to date.")
    return 0


# --------------------------------------------------------------------------- import


def cmd_import(args: argparse.Namespace) -> int:
    from batuta_sync._fmt import plural
    from batuta_sync.core.api import import_directory

    man, settings = _load(args)
    res = import_directory(man, args.address, args.folder, settings=settings)
    if res.result is not None and not res.ok:  # the apply after the adoption failed: its own report
        args.plan = None
        return _finish(args, res.result)
    if args.json:
        _common.emit_json({
            "address": res.address, "adopted": list(res.adopted), "already_cached": list(res.cached),
            "applied": res.result.to_dict() if res.result is not None else None, "ok": res.ok,
        })
    elif res.result is None:
        print(f"{args.address} is already locked and in the cache; nothing to import.")
    elif res.ok:
        extra = f" ({len(res.cached)} already in the cache)" if res.cached else ""
        print(f"Imported {args.address} from {args.folder}: {plural(len(res.adopted), 'file')} verified against "
              f"the Hub and adopted{extra}; nothing downloaded. hf.lock updated.")
    return 0


# --------------------------------------------------------------------------- status


def cmd_status(args: argparse.Namespace) -> int:
    from batuta_sync._fmt import plural, words
    from batuta_sync.core.api import make_plan

    man, settings = _load(args)
    plan = make_plan(man, settings=settings, verify=args.verify, offline=settings.offline, gate=args.exit_code)
    pending = list(plan.actions)
    from batuta_sync.pull.availability import remote_status

    remote = remote_status(settings)
    if args.json:
        _common.emit_json(
            {
                "drift": [d.to_dict() for d in plan.drift],
                "pending": [{"id": a.id, "reason": a.reason.value} for a in pending],
                "unchanged": list(plan.unchanged),
                "warnings": list(plan.warnings),
                "remote": remote,
            }
        )
    else:
        if remote is not None:
            state = "reachable" if remote["reachable"] else f"NOT reachable: {remote['error']}"
            print(f"Shared remote: {remote['url']} ({state})")
        if not plan.drift and not pending and not plan.warnings:
            n = len(plan.unchanged)
            print(f"In sync: {plural(n, 'resource')} {'matches' if n == 1 else 'match'} hf.lock, the Hub and the local files.")
        for d in plan.drift:
            print(f"! {d.address}  {words(d.kind.value)}: {d.detail}")
        from batuta_sync.core.render import source_text

        for a in pending:
            src = source_text(plan.sources[a.address]) if a.address in plan.sources else ""
            print(f"{a.kind.symbol} {a.address}  pending {a.kind.value} ({words(a.reason.value)}){src}")
        for w in plan.warnings:
            print(f"? {w} (not checked)")
    if args.exit_code and (plan.drift or pending):
        return 2
    return 0
