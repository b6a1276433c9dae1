"""CLI: ``batuta hf repo create | delete | branch | tag | ls`` and ``batuta hf ls`` (over hub/repos.py).

Module level imports stdlib + light batuta modules only; the Hub transport is imported in handlers.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from batuta_sync.cli import _common
from batuta_sync.cli.query_cmd import _positive_int, _size, add_wait_options, client_from_args

TYPES = ("model", "dataset", "space")


def _type(args: argparse.Namespace) -> Any:
    from batuta_sync.types import HfAssetType

    return HfAssetType(args.repo_type)


def _done(args: argparse.Namespace, changed: bool, did: str, already: str) -> int:
    if args.json:
        _common.emit_json({"changed": changed, "message": did if changed else already})
    else:
        _common.info(args, did if changed else already)
    return 0


# --------------------------------------------------------------------------- repo create / delete


def _cmd_create(args: argparse.Namespace) -> int:
    from batuta_sync.hub.repos import create_repo

    kind = _type(args)
    with client_from_args(args) as hub:
        made = create_repo(
            hub.http, args.repo_id, kind, private=args.private, exist_ok=args.exist_ok, sdk=args.space_sdk
        )
    if args.json:
        _common.emit_json(
            {"repo_id": made.repo_id, "type": kind.value, "url": made.url, "created": made.created}
        )
        return 0
    state = "Created" if made.created else "Already exists:"
    _common.info(
        args,
        f"{state} {kind.value} repo {made.repo_id}{' (private)' if args.private and made.created else ''}",
    )
    sys.stdout.write(made.url + "\n")
    return 0


def _confirm_delete(args: argparse.Namespace) -> None:
    from batuta_sync.errors import UsageError

    if args.yes:
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise UsageError(
            f"Deleting {args.repo_type} repo {args.repo_id} removes every branch, tag and file on the Hub "
            "and cannot be undone; batuta asks for confirmation, and there is no terminal to ask on.",
            hint="Pass --yes to delete without asking.",
        )
    print(f"Type the repo id ({args.repo_id}) to delete it for good: ", end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip() != args.repo_id:
        raise UsageError(
            "The repo id typed did not match; nothing was deleted.", hint="Run the command again."
        )


def _cmd_delete(args: argparse.Namespace) -> int:
    from batuta_sync.hub.repos import delete_repo

    _confirm_delete(args)
    with client_from_args(args) as hub:
        gone = delete_repo(hub.http, args.repo_id, _type(args), missing_ok=args.missing_ok)
    return _done(
        args,
        gone,
        f"Deleted {args.repo_type} repo {args.repo_id}.",
        f"{args.repo_id} does not exist (--missing-ok).",
    )


# --------------------------------------------------------------------------- branches and tags


def _cmd_branch_create(args: argparse.Namespace) -> int:
    from batuta_sync.hub.repos import create_branch

    with client_from_args(args) as hub:
        made = create_branch(
            hub.http, args.repo_id, _type(args), args.name, start=args.revision, exist_ok=args.exist_ok
        )
    at = f" at {args.revision}" if args.revision else ""
    return _done(
        args,
        made,
        f"Created branch {args.name} of {args.repo_id}{at}.",
        f"Branch {args.name} already exists.",
    )


def _cmd_branch_delete(args: argparse.Namespace) -> int:
    from batuta_sync.hub.repos import delete_branch

    with client_from_args(args) as hub:
        gone = delete_branch(hub.http, args.repo_id, _type(args), args.name, missing_ok=args.missing_ok)
    return _done(
        args, gone, f"Deleted branch {args.name} of {args.repo_id}.", f"Branch {args.name} does not exist."
    )


def _cmd_tag_create(args: argparse.Namespace) -> int:
    from batuta_sync.hub.repos import create_tag

    with client_from_args(args) as hub:
        made = create_tag(
            hub.http,
            args.repo_id,
            _type(args),
            args.name,
            target=args.revision or "main",
            message=args.message,
            exist_ok=args.exist_ok,
        )
    return _done(
        args,
        made,
        f"Created tag {args.name} of {args.repo_id} at {args.revision or 'main'}.",
        f"Tag {args.name} already exists.",
    )


def _cmd_tag_delete(args: argparse.Namespace) -> int:
    from batuta_sync.hub.repos import delete_tag

    with client_from_args(args) as hub:
        gone = delete_tag(hub.http, args.repo_id, _type(args), args.name, missing_ok=args.missing_ok)
    return _done(
        args, gone, f"Deleted tag {args.name} of {args.repo_id}.", f"Tag {args.name} does not exist."
    )


# --------------------------------------------------------------------------- listings


def _cmd_tag_list(args: argparse.Namespace) -> int:
    from batuta_sync.hub.repos import list_refs

    with client_from_args(args) as hub:
        refs = [r for r in list_refs(hub.http, args.repo_id, _type(args)) if r.kind == "tag"]
    if args.json:
        _common.emit_json([{"name": r.name, "commit": r.commit} for r in refs])
        return 0
    if not refs:
        _common.info(args, f"{args.repo_id} has no tags.")
    _common.print_table(["TAG", "COMMIT"], [[r.name, r.commit] for r in refs])
    return 0


def _cmd_repo_ls(args: argparse.Namespace) -> int:
    from batuta_sync.hub.repos import list_repos

    kind = _type(args)
    with client_from_args(args) as hub:
        found = list_repos(hub.http, args.author, kind, limit=args.limit)
    if args.json:
        _common.emit_json([r.to_json() for r in found])
        return 0
    if not found:
        _common.info(args, f"{args.author} has no {kind.value} repos you can see.")
    rows = [[r.id, "private" if r.private else "public", (r.last_modified or "")[:10]] for r in found]
    _common.print_table(
        ["ID", "VISIBILITY", "UPDATED"], rows, title=f"{kind.value.capitalize()}s of {args.author}"
    )
    return 0


def _cmd_ls(args: argparse.Namespace) -> int:
    from batuta_sync.hub.repos import list_files

    with client_from_args(args) as hub:
        entries = list_files(
            hub.http, args.repo_id, _type(args), args.path or "", rev=args.revision, recursive=args.recursive
        )
    if args.json:
        _common.emit_json([e.to_json() for e in entries])
        return 0
    rows = [
        [e.path + "/", "", "", ""]
        if e.kind == "directory"
        else [e.path, str(e.size), _size(e.size), e.sha256 or ""]
        for e in entries
    ]
    _common.print_table(["PATH", "BYTES", "SIZE", "LFS SHA256"], rows)
    return 0


# --------------------------------------------------------------------------- registration


def _type_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--type",
        "--repo-type",
        dest="repo_type",
        choices=TYPES,
        default="model",
        help="Repo type (default model).",
    )


def register(root: Any, hf: Any) -> None:
    """Add ``hf repo create|delete|branch|tag|ls`` and ``hf ls`` to the ``hf`` sub-parsers."""
    cp = _common.command_parser

    repo = cp(hf, "repo", "Create, delete and list repos; create and delete their branches and tags.")
    rs = repo.add_subparsers(dest="repo_command", metavar="REPO_COMMAND", parser_class=type(repo))

    def sub(parent: Any, name: str, help: str, handler: Any) -> argparse.ArgumentParser:
        p = cp(parent, name, help)
        p.add_argument("--json", action="store_true", help="Print JSON.")
        add_wait_options(p)
        p.set_defaults(handler=handler)
        return p

    p = sub(rs, "create", "Create a repo (e.g. `myorg/my-model --private`).", _cmd_create)
    p.add_argument("repo_id", help="Repo id 'namespace/name' (a bare name: under your user).")
    _type_option(p)
    p.add_argument("--private", action="store_true", help="Make the new repo private.")
    p.add_argument(
        "--exist-ok", action="store_true", help="Succeed when the repo already exists (else exit 19)."
    )
    p.add_argument(
        "--space-sdk", choices=("gradio", "streamlit", "docker", "static"), help="SDK of a new space."
    )

    p = sub(
        rs, "delete", "Delete a repo and everything in it (asks for confirmation unless --yes).", _cmd_delete
    )
    p.add_argument("repo_id", help="Repo id 'namespace/name'.")
    _type_option(p)
    p.add_argument(
        "--missing-ok", action="store_true", help="Succeed when the repo does not exist (else exit 8)."
    )
    p.add_argument("-y", "--yes", action="store_true", help="Do not ask for confirmation.")

    p = sub(rs, "ls", "List the repos of a user or organization.", _cmd_repo_ls)
    p.add_argument("author", help="User or organization name.")
    _type_option(p)
    p.add_argument("--limit", type=_positive_int, default=None, help="At most this many repos.")

    for ref_kind in ("branch", "tag"):
        ref = cp(rs, ref_kind, f"Create or delete a {ref_kind} of a repo.")
        refs = ref.add_subparsers(dest=f"{ref_kind}_command", metavar="ACTION", parser_class=type(ref))
        create = _cmd_branch_create if ref_kind == "branch" else _cmd_tag_create
        delete = _cmd_branch_delete if ref_kind == "branch" else _cmd_tag_delete
        p = sub(refs, "create", f"Create a {ref_kind}.", create)
        p.add_argument("repo_id", help="Repo id 'namespace/name'.")
        p.add_argument("name", help=f"The {ref_kind} name.")
        _type_option(p)
        p.add_argument(
            "--revision",
            help="Branch, tag or commit sha to start from (default: the default branch head)"
            if ref_kind == "branch"
            else "Branch, tag or commit sha to tag (default main).",
        )
        if ref_kind == "tag":
            p.add_argument("-m", "--message", help="The tag's message (an annotated tag).")
        p.add_argument(
            "--exist-ok", action="store_true", help=f"Succeed when the {ref_kind} exists (else exit 19)."
        )
        p = sub(refs, "delete", f"Delete a {ref_kind}.", delete)
        p.add_argument("repo_id", help="Repo id 'namespace/name'.")
        p.add_argument("name", help=f"The {ref_kind} name.")
        _type_option(p)
        p.add_argument(
            "--missing-ok", action="store_true", help=f"Succeed when the {ref_kind} does not exist."
        )
        if ref_kind == "tag":
            p = sub(refs, "list", "List the tags of a repo and their commits.", _cmd_tag_list)
            p.add_argument("repo_id", help="Repo id 'namespace/name'.")
            _type_option(p)

    p = cp(hf, "ls", "List a repo's files with sizes and LFS sha256 (a folder with PATH).")
    p.add_argument("repo_id", help="Repo id 'namespace/name'.")
    p.add_argument("path", nargs="?", default="", help="Folder inside the repo (default: the top).")
    _type_option(p)
    p.add_argument("--revision", default="main", help="Branch, tag or commit sha (default main).")
    p.add_argument("-R", "--recursive", action="store_true", help="List every file below PATH.")
    p.add_argument("--json", action="store_true", help="Print JSON.")
    add_wait_options(p)
    p.set_defaults(handler=_cmd_ls)
