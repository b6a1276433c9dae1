"""CLI: ``batuta hf push model|dataset|space PATH --repo ORG/NAME`` (thin layer over batuta_sync.publish).

Module level imports stdlib + light batuta modules only; publishing code is imported in the handler.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from batuta_sync._fmt import human_bytes, plural
from batuta_sync.cli import _common

if TYPE_CHECKING:
    from batuta_sync.publish.push import PushPlan, PushRequest

SDKS = ("gradio", "streamlit", "docker", "static")
FORMATS = ("safetensors", "gguf")


def register(root: Any, hf: Any) -> None:
    """Add ``hf push`` with its model / dataset / space sub-commands."""
    push_parser = hf.add_parser("push", help="Publish a local folder to the Hub (validated, scanned, differential).")
    push_parser.set_defaults(_parser=push_parser)
    kinds = push_parser.add_subparsers(dest="push_kind", metavar="KIND", parser_class=type(push_parser))
    for kind, help_text in (
        ("model", "Push a model folder (safetensors / GGUF; config.json checked, card generated)."),
        ("dataset", "Push a dataset folder (dataset card generated)."),
        ("space", "Push a Space folder (README front matter with sdk / app_file)."),
    ):
        p = _common.command_parser(kinds, kind, help_text)
        p.add_argument("path", metavar="PATH", help="Local folder to publish.")
        p.add_argument("--repo", required=True, metavar="ORG/NAME", help="Target repo id (created when missing).")
        if kind == "model":
            p.add_argument("--format", choices=FORMATS, default=None, help="Declared weight format (checked).")
            p.add_argument("--force", action="store_true",
                           help="Push even though the folder has neither weights nor config.json.")
        if kind == "space":
            p.add_argument("--sdk", choices=SDKS, required=True, help="Space SDK.")
        p.add_argument("--private", action="store_true", help="Create the repo as private (when it is created).")
        p.add_argument("--revision", default="main", metavar="BRANCH", help="Branch to commit to (default main).")
        p.add_argument("--message", "-m", default=None, metavar="M", help="Commit message.")
        p.add_argument("--delete", action="append", nargs="?", const="*", default=[], metavar="PATTERN",
                       help="Delete remote files absent from PATH that match PATTERN (repeatable; alone: every "
                       "remote file absent from PATH).")
        p.add_argument("--create-pr", action="store_true",
                       help="Open a pull request (refs/pr/N) with the changes instead of committing to --revision.")
        p.add_argument("--max-files-per-commit", type=_positive, default=100, metavar="N",
                       help="Split the push into commits of at most N files (default 100, as the Hub recommends).")
        p.add_argument("--max-bytes-per-commit", type=_size, default=16 << 30, metavar="SIZE",
                       help="... and at most SIZE bytes each, e.g. 5GB (default 16GiB). An interrupted series "
                       "resumes: pushing again sends only what the Hub lacks.")
        p.add_argument("--interactive", "-i", action="store_true",
                       help="Show the file diff, card and scan result, and ask (y/N) before committing.")
        p.add_argument("--dry-run", action="store_true", help="Show what would be pushed; send nothing.")
        p.add_argument("--allow-unsafe", action="store_true",
                       help="Allow pickle-based files (.bin/.pt/.pkl…) — they can run code when loaded.")
        p.add_argument("--allow-secret", action="append", default=[], metavar="FINGERPRINT",
                       help="Suppress one secret finding by its fingerprint (repeatable); see also "
                       ".batuta-secrets-allow.")
        p.add_argument("--rehash", action="store_true", help="Ignore the hash cache and re-hash every file.")
        p.add_argument("--json", action="store_true", help="Machine-readable plan / result on stdout.")
        p.set_defaults(handler=_handler, push_kind=kind)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _size(text: str) -> int:
    from batuta_sync.errors import UsageError
    from batuta_sync.hub.cache import parse_size

    try:
        value = parse_size(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1 byte")
    return value


def render_plan(plan: PushPlan, req: PushRequest) -> str:
    """The human view of a push plan (files, card diff, scan result)."""
    from batuta_sync.types import RepoRef

    ref = RepoRef(req.repo_id, req.repo_type, req.revision)
    lines = [f"Push {req.path} -> {ref}"]
    if not plan.repo_exists:
        lines.append(f"  repo will be created ({'private' if req.private else 'public'})")
    elif not plan.branch_exists:
        lines.append(f"  branch {req.revision} will be created")
    else:
        lines.append(f"  remote commit {plan.remote_commit}")
    for sign, paths in (("+", plan.adds), ("~", plan.changes), ("-", plan.deletes)):
        for p in paths:
            size = plan.sizes.get(p)
            lines.append(f"  {sign} {p}" + (f"  ({human_bytes(size)})" if size is not None and sign != "-" else ""))
    lines.append(
        f"  {len(plan.adds)} to add, {len(plan.changes)} to change, {len(plan.deletes)} to delete, "
        f"{len(plan.unchanged)} unchanged; {human_bytes(plan.upload_bytes)} to upload"
    )
    if card_note(plan):
        lines.append(card_note(plan))
    if plan.card_diff:
        lines.append("README.md (card) changes:")
        lines.extend("  " + ln.rstrip("\n") for ln in plan.card_diff.splitlines())
    else:
        lines.append("README.md (card): unchanged")
    if plan.unsafe:
        lines.append(f"Pickle-based files allowed by --allow-unsafe (they can run code when loaded): "
                     f"{', '.join(plan.unsafe)}")
    if plan.findings:
        lines.append(f"Secret scan: {len(plan.findings)} finding(s) — the push is blocked:")
        lines.extend(f"  - {f}" for f in plan.findings)
    else:
        extra = f" ({plan.suppressed} suppressed by fingerprint)" if plan.suppressed else ""
        lines.append(f"Secret scan: clean{extra}")
    return "\n".join(lines)


def card_note(plan: PushPlan) -> str:
    """What the push does to README.md, in one line ("" when it leaves the user's card alone)."""
    if plan.card_generated:
        return "README.md: a card is generated (there is no local README.md)"
    if plan.card_keys_added:
        return f"README.md: front matter gains {', '.join(plan.card_keys_added)} (the rest is left as is)"
    return ""


def _confirm(question: str) -> bool:
    sys.stderr.write(question + " [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def _handler(args: argparse.Namespace) -> int:
    from pathlib import Path

    from batuta_sync.errors import UsageError, exit_code
    from batuta_sync.publish.push import PushRequest, prepare_push, push, secrets_error
    from batuta_sync.types import HfAssetType

    if args.interactive and args.dry_run:
        raise UsageError("--interactive and --dry-run cannot be combined.", hint="Use one of them.")
    if args.interactive and args.json:
        raise UsageError("--interactive cannot be combined with --json.", hint="Drop --json to answer the prompt.")
    if args.interactive and not (sys.stdin.isatty() and _common.is_tty(sys.stderr)):
        raise UsageError(
            "--interactive needs a terminal to ask for confirmation.",
            hint="Run it in a terminal, or review with --dry-run and then push without --interactive.",
        )
    settings = _common.settings_from_args(args)
    req = PushRequest(
        path=Path(args.path),
        repo_id=args.repo,
        repo_type=HfAssetType.parse(args.push_kind),
        revision=args.revision,
        format=getattr(args, "format", None),
        private=args.private,
        message=args.message,
        delete="*" in args.delete,
        delete_patterns=tuple(p for p in args.delete if p != "*"),
        create_pr=args.create_pr,
        max_files_per_commit=args.max_files_per_commit,
        max_bytes_per_commit=args.max_bytes_per_commit,
        sdk=getattr(args, "sdk", None),
        allow_unsafe=args.allow_unsafe,
        allow_secrets=tuple(args.allow_secret),
        rehash=args.rehash,
        force=bool(getattr(args, "force", False)),
    )
    quiet = bool(args.quiet or args.json)

    def say(msg: str) -> None:
        if not quiet:
            print(f"… {msg}", file=sys.stderr)

    plan = prepare_push(settings, req, progress=say)
    if args.dry_run or args.interactive:
        if args.json:
            _common.emit_json({"dry_run": True, "plan": plan.to_json()})
        else:
            print(render_plan(plan, req))
        if plan.findings:
            raise secrets_error(plan.findings)
        if args.dry_run:
            return 0
        if plan.is_noop:
            print("Nothing to push: the remote already matches.")
            return 0
        if not _confirm(f"Commit these changes to {req.repo_id}@{req.revision}?"):
            print("Aborted; nothing was sent.", file=sys.stderr)
            return exit_code("ok")
    elif plan.findings:
        raise secrets_error(plan.findings)
    from batuta_sync.cli._progress import progress_for

    sink = progress_for(args)
    result = push(settings, req, plan=plan, progress=say, sink=sink)
    url = result.commit_url(settings, req)
    if args.json:
        _common.emit_json({"plan": plan.to_json(), "result": {**result.to_json(), "url": url}})
    elif result.noop:
        print(f"Nothing to push: {req.repo_id}@{req.revision} already matches ({result.commit}).")
    else:
        series = f" in {len(result.commits)} commits" if len(result.commits) > 1 else ""
        print(
            f"Pushed {plural(len(result.uploaded), 'file')}, {human_bytes(result.bytes_sent)}"
            + (f", deleted {len(result.deleted)}" if result.deleted else "")
            + f"{series} -> commit {result.commit}"
        )
        if result.pr_url:
            print(f"Opened pull request {result.pr_revision}: {result.pr_url}")
        if card_note(plan):
            print(card_note(plan))
    if url and not args.json:
        print(url)
    return 0
