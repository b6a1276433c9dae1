"""CLI: ``batuta hf search | info | ls | tree | login | logout | whoami`` (thin layer over HfClient).

Module level imports stdlib + light batuta modules only; the Hub client (httpx) is
imported inside the handlers.  Other command modules reuse :func:`add_wait_options`
and :func:`http_kwargs` for ``--max-wait`` / ``--no-wait`` and the countdown.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from batuta_sync.cli import _common

if TYPE_CHECKING:
    from batuta_sync.hub.client import HfClient
    from batuta_sync.hub.models import HfDatasetInfo, HfModelInfo, HfSpaceInfo
    from batuta_sync.types import RepoFile

SORTS = ("downloads", "likes", "updated", "trending")
SDKS = ("gradio", "streamlit", "docker", "static")
KEY_WIDTH = 16  # "download_size: " fits


# --------------------------------------------------------------------------- shared helpers


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid positive integer: {text!r}")
    if value < 1 or value > 10_000:
        raise argparse.ArgumentTypeError(f"must be between 1 and 10000, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds: {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def add_wait_options(p: argparse.ArgumentParser) -> None:
    """``--max-wait SECONDS`` / ``--no-wait``: how long to wait out Hub rate limits."""
    g = p.add_argument_group("rate limits")
    x = g.add_mutually_exclusive_group()
    x.add_argument(
        "--max-wait",
        type=_seconds,
        metavar="SECONDS",
        default=None,
        help="Wait at most this long for a Hub rate limit (default 300 = one Hub window; 'inf' = no limit), "
        "else fail (exit 10) naming when to retry.",
    )
    x.add_argument(
        "--no-wait", action="store_true", help="Never wait for a rate limit: fail at once (exit 10)."
    )


def http_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """HubHttp keyword arguments from the parsed flags: waits, countdown, notices."""
    from batuta_sync.hub.ratelimit import DEFAULT_MAX_WAIT, countdown_sleep

    quiet = bool(getattr(args, "quiet", False))

    def on_wait(seconds: float, reason: str) -> None:
        if not quiet and seconds >= 1:
            print(f"Hub: {reason}; retrying in {seconds:.0f} s…", file=sys.stderr)

    return {
        "max_wait": getattr(args, "max_wait", None) or DEFAULT_MAX_WAIT,
        "no_wait": bool(getattr(args, "no_wait", False)),
        "on_wait": on_wait,
        "sleep": countdown_sleep(sys.stderr) if not quiet else __import__("time").sleep,
    }


def client_from_args(args: argparse.Namespace) -> HfClient:
    """The HfClient for a command line (settings: flag > env > hf.yaml > default); ``--refresh``
    ignores cached metadata (every answer comes from the Hub, and refreshes the cache)."""
    from batuta_sync.hub.client import HfClient

    return HfClient(refreshed(args, _common.settings_from_args(args)), **http_kwargs(args))


def refreshed(args: argparse.Namespace, settings: Any) -> Any:
    """``settings`` with a zero metadata TTL when the command line says ``--refresh``."""
    import dataclasses

    return dataclasses.replace(settings, metadata_ttl=0.0) if getattr(args, "refresh", False) else settings


def note_cached(args: argparse.Namespace, hub: HfClient) -> None:
    """Say on stderr when what was shown came from the metadata cache, and how old it is."""
    from batuta_sync._fmt import human_age

    if hub.cached_age is not None:
        _common.info(
            args,
            f"(answered from batuta's metadata cache, fetched {human_age(hub.cached_age)} ago; "
            "--refresh asks the Hub)",
        )


def add_refresh_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--refresh", action="store_true", help="Ignore cached metadata: ask the Hub now.")


def _num(n: int) -> str:
    return f"{n:,}"


def _size(n: int) -> str:
    from batuta_sync._fmt import human_bytes

    return human_bytes(n) if n else ""


def _write(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


# --------------------------------------------------------------------------- search


def _cmd_search_models(args: argparse.Namespace) -> int:
    from batuta_sync.hub.models import ModelQuery, SortKey

    q = ModelQuery(args.query, args.task, args.library, args.author, SortKey(args.sort), args.limit)
    with client_from_args(args) as hub:
        found = hub.search_models(q)
    note_cached(args, hub)
    if args.json:
        _common.emit_json([m.to_json() for m in found])
        return 0
    if not found:
        _common.info(args, f"No models match {args.query!r}.")
    rows = [
        [m.id, m.pipeline_tag, m.library_name, _num(m.downloads), _num(m.likes), _date(m.last_modified)]
        for m in found
    ]
    _common.print_table(["ID", "TASK", "LIBRARY", "DOWNLOADS", "LIKES", "UPDATED"], rows, title="Models", no_truncate=args.no_truncate)
    return 0


def _cmd_search_datasets(args: argparse.Namespace) -> int:
    from batuta_sync.hub.models import DatasetQuery, SortKey, parse_size_expr

    if args.size:
        parse_size_expr(args.size)  # a malformed expression fails before any request
    q = DatasetQuery(args.query, args.language, args.size, args.author, SortKey(args.sort), args.limit)
    with client_from_args(args) as hub:
        found = hub.search_datasets(q)
    note_cached(args, hub)
    if args.json:
        _common.emit_json([d.to_json() for d in found])
        return 0
    if not found:
        _common.info(args, f"No datasets match {args.query!r}.")
    rows = [
        [
            d.id,
            _num(d.downloads),
            _num(d.likes),
            _size(d.size_bytes or d.download_size),
            ", ".join(d.size_categories),
            ", ".join(d.languages),
        ]
        for d in found
    ]
    _common.print_table(["ID", "DOWNLOADS", "LIKES", "SIZE", "ROWS", "LANGUAGES"], rows, title="Datasets", no_truncate=args.no_truncate)
    return 0


def _cmd_search_spaces(args: argparse.Namespace) -> int:
    from batuta_sync.hub.models import SortKey, SpaceQuery, SpaceSdk

    q = SpaceQuery(
        args.query, SpaceSdk(args.sdk) if args.sdk else None, args.author, SortKey(args.sort), args.limit
    )
    with client_from_args(args) as hub:
        found = hub.search_spaces(q)
    note_cached(args, hub)
    if args.json:
        _common.emit_json([s.to_json() for s in found])
        return 0
    if not found:
        _common.info(args, f"No spaces match {args.query!r}.")
    rows = [[s.id, s.sdk.value, _num(s.likes), s.hardware, s.status.value] for s in found]
    _common.print_table(["ID", "SDK", "LIKES", "HARDWARE", "STATUS"], rows, title="Spaces", no_truncate=args.no_truncate)
    return 0


def _date(iso: str | None) -> str:
    return (iso or "")[:10]


# --------------------------------------------------------------------------- info


def _kv(lines: list[str], key: str, value: Any) -> None:
    if value is None or value == "":
        value = "-"
    text = str(value)
    pad = " " * (2 + KEY_WIDTH)
    first, *rest = text.splitlines() or [""]
    lines.append(f"  {key + ':':<{KEY_WIDTH}}{first}")
    lines.extend(pad + r for r in rest)


def _files_block(lines: list[str], files: tuple[RepoFile, ...]) -> None:
    from batuta_sync.hub.models import weight_sizes

    total = sum(f.size for f in files)
    _kv(lines, "files", f"{len(files)} ({_size(total) or '0 B'})")
    weights = weight_sizes(files)
    _kv(lines, "weights", ", ".join(f"{fmt} {_size(n) or '0 B'}" for fmt, n in weights.items()) or "-")


def _model_lines(m: HfModelInfo) -> list[str]:
    lines = [f"model {m.id}"]
    _kv(lines, "author", m.author)
    _kv(lines, "sha", m.sha)
    _kv(lines, "pipeline_tag", m.pipeline_tag)
    _kv(lines, "library_name", m.library_name)
    _kv(lines, "tags", ", ".join(m.tags))
    _kv(lines, "downloads", _num(m.downloads))
    _kv(lines, "likes", _num(m.likes))
    _kv(lines, "private", "yes" if m.private else "no")
    _kv(lines, "gated", m.gated or "no")
    _kv(lines, "last_modified", m.last_modified)
    if m.model_index:
        _kv(lines, "model_index", "\n".join(f"{e.name} ({len(e.results)} results)" for e in m.model_index))
    else:
        _kv(lines, "model_index", None)
    if m.safetensors:
        per = ", ".join(f"{k} {_num(v)}" for k, v in sorted(m.safetensors.parameters.items()))
        _kv(lines, "safetensors", f"{_num(m.safetensors.total)} parameters" + (f" ({per})" if per else ""))
    else:
        _kv(lines, "safetensors", None)
    if m.gguf:
        g = m.gguf
        parts = [f"{_num(g.total)} parameters"]
        if g.architecture:
            parts.append(f"architecture {g.architecture}")
        if g.context_length:
            parts.append(f"context_length {_num(g.context_length)}")
        if g.bos_token:
            parts.append(f"bos_token {g.bos_token}")
        if g.eos_token:
            parts.append(f"eos_token {g.eos_token}")
        parts.append(f"chat_template {'yes' if g.chat_template else 'no'}")
        _kv(lines, "gguf", ", ".join(parts))
    else:
        _kv(lines, "gguf", None)
    _files_block(lines, m.files)
    return lines


def _dataset_lines(d: HfDatasetInfo) -> list[str]:
    lines = [f"dataset {d.id}"]
    _kv(lines, "author", d.author)
    _kv(lines, "sha", d.sha)
    _kv(lines, "description", (d.description or "").strip())
    _kv(lines, "citation", (d.citation or "").strip())
    _kv(
        lines,
        "splits",
        "\n".join(f"{s.name}: {_num(s.num_examples)} rows, {_size(s.num_bytes) or '0 B'}" for s in d.splits),
    )
    _kv(lines, "features", "\n".join(f"{name}: {ft}" for name, ft in d.features.items()))
    _kv(lines, "size", _size(d.size_bytes))
    _kv(lines, "download_size", _size(d.download_size))
    _kv(lines, "rows", ", ".join(d.size_categories))
    _kv(lines, "languages", ", ".join(d.languages))
    _kv(lines, "tags", ", ".join(d.tags))
    _kv(lines, "downloads", _num(d.downloads))
    _kv(lines, "likes", _num(d.likes))
    _kv(lines, "private", "yes" if d.private else "no")
    _kv(lines, "gated", d.gated or "no")
    _kv(lines, "last_modified", d.last_modified)
    _files_block(lines, d.files)
    return lines


def _space_lines(s: HfSpaceInfo) -> list[str]:
    lines = [f"space {s.id}"]
    _kv(lines, "author", s.author)
    _kv(lines, "sha", s.sha)
    _kv(lines, "sdk", s.sdk.value)
    _kv(lines, "hardware", s.hardware)
    _kv(lines, "status", s.status.value)
    _kv(lines, "tags", ", ".join(s.tags))
    _kv(lines, "likes", _num(s.likes))
    _kv(lines, "private", "yes" if s.private else "no")
    _kv(lines, "last_modified", s.last_modified)
    _files_block(lines, s.files)
    return lines


def _cmd_ls(args: argparse.Namespace) -> int:
    """``batuta hf ls REPO [PATH] [--revision R]``: the files of a repo (under PATH), with sizes."""
    from batuta_sync._fmt import human_bytes, plural
    from batuta_sync.errors import NotFoundError
    from batuta_sync.types import HfAssetType, RepoRef, check_repo_id

    check_repo_id(args.repo_id)
    ref = RepoRef(args.repo_id, HfAssetType.parse(args.repo_type), args.revision or "main")
    with client_from_args(args) as hub:
        snap = hub.snapshot(ref)
    note_cached(args, hub)
    prefix = (args.path or "").strip("/")
    files = [f for f in snap.files if not prefix or f.path == prefix or f.path.startswith(prefix + "/")]
    if prefix and not files:
        raise NotFoundError(
            f"{ref} (commit {snap.commit[:12]}) has no file or folder {prefix!r}.",
            hint=f"List the whole repo with `batuta hf ls {args.repo_id}`" + (f" --revision {args.revision}" if args.revision else "") + ".",
            code="entry-not-found",
        )
    if args.json:
        _common.emit_json(
            {
                "repo": ref.repo_id,
                "type": ref.repo_type.value,
                "revision": ref.revision,
                "commit": snap.commit,
                "files": [{"path": f.path, "size": f.size, "blob_id": f.blob_id, "sha256": f.sha256} for f in files],
            }
        )
        return 0
    width = max((len(human_bytes(f.size)) for f in files), default=0)
    for f in files:
        _write(f"{human_bytes(f.size):>{width}}  {f.path}")
    _common.info(
        args, f"{plural(len(files), 'file')}, {human_bytes(sum(f.size for f in files))} at {ref}, commit {snap.commit[:12]}"
    )
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from batuta_sync.hub.models import HfDatasetInfo, HfModelInfo, HfSpaceInfo
    from batuta_sync.types import HfAssetType, check_repo_id

    repo_type = HfAssetType.parse(args.repo_type)
    check_repo_id(args.repo_id)
    with client_from_args(args) as hub:
        info = hub.repo_info(repo_type, args.repo_id, args.revision, files=True)
    note_cached(args, hub)
    if args.json:
        doc = info.to_json()
        if not args.files:
            doc["num_files"] = len(doc.pop("files"))
        from batuta_sync.hub.models import weight_sizes

        doc["weight_sizes"] = weight_sizes(info.files)
        _common.emit_json(doc)
        return 0
    if isinstance(info, HfModelInfo):
        lines = _model_lines(info)
    elif isinstance(info, HfDatasetInfo):
        lines = _dataset_lines(info)
    else:
        assert isinstance(info, HfSpaceInfo)
        lines = _space_lines(info)
    _write("\n".join(lines))
    if args.files:
        rows = [
            [f.path, _size(f.size) or "0 B", f.size, "lfs" if f.is_lfs else "", f.sha256 or f.blob_id]
            for f in info.files
        ]
        _common.print_table(["PATH", "SIZE", "BYTES", "STORAGE", "HASH"], rows, title="Files")
    return 0


# --------------------------------------------------------------------------- tree


def _cmd_tree(args: argparse.Namespace) -> int:
    from batuta_sync import tree

    if args.json:
        _common.emit_json(tree.tree_json(args.integration))
        return 0
    sys.stdout.write(tree.render_integration() if args.integration else tree.render_ecosystem())
    return 0


# --------------------------------------------------------------------------- auth


def _read_token_from_stdin() -> str:
    from batuta_sync.errors import UsageError

    if sys.stdin is None:
        raise UsageError(
            "No token given and no stdin to read it from.", hint="Pass --token or pipe the token in."
        )
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass("Hub token (input hidden): ")
    line = sys.stdin.readline()
    if not line.strip():
        raise UsageError(
            "No token given: --token is absent and stdin is empty.", hint="Pipe the token in or pass --token."
        )
    return line


def _cmd_login(args: argparse.Namespace) -> int:
    import os

    token = args.token if getattr(args, "token", None) else _read_token_from_stdin()
    with client_from_args(args) as hub:
        user = hub.login(token)
        where = hub.settings.token_path
    _common.info(
        args, f"Logged in as {user.name}" + (f" ({user.token_role} token)" if user.token_role else "") + "."
    )
    _common.info(args, f"Token stored at {where} (mode 0600).")
    if os.environ.get("HF_TOKEN"):
        _common.info(
            args, "Note: HF_TOKEN is set in your environment and takes precedence over the stored token."
        )
    return 0


def _cmd_logout(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from batuta_sync.hub.auth import delete_token

    settings = _common.settings_from_args(args)
    if delete_token(settings):
        _common.info(args, f"Logged out: removed {settings.token_path}.")
    else:
        _common.info(args, f"Not logged in: no stored token at {settings.token_path}.")
    if os.environ.get("HF_TOKEN"):
        _common.info(
            args, "Note: HF_TOKEN is still set in your environment; unset it to stop using that token."
        )
    legacy = Path.home() / ".huggingface" / "token"
    if legacy.exists():
        _common.info(
            args, f"Note: the legacy token file {legacy} still exists and is still used; delete it too."
        )
    return 0


def _cmd_whoami(args: argparse.Namespace) -> int:
    from batuta_sync.hub.auth import describe_source

    with client_from_args(args) as hub:
        user = hub.whoami()
        source = describe_source(hub.settings)
    if args.json:
        doc = user.to_json()
        doc["token_source"] = hub.settings.auth.value
        doc["endpoint"] = hub.settings.endpoint
        _common.emit_json(doc)
        return 0
    lines = [user.name + (f" ({user.fullname})" if user.fullname else "")]
    _kv(lines, "type", user.type)
    _kv(lines, "orgs", ", ".join(user.orgs))
    _kv(
        lines,
        "token",
        (f"{user.token_name} " if user.token_name else "")
        + (f"role {user.token_role}" if user.token_role else ""),
    )
    _kv(lines, "token from", source)
    _kv(lines, "endpoint", hub.settings.endpoint)
    _write("\n".join(lines))
    return 0


# --------------------------------------------------------------------------- registration


def register(root: Any, hf: Any) -> None:
    """Add ``hf search|info|ls|tree|login|logout|whoami`` to the ``hf`` sub-parsers."""
    cp = _common.command_parser

    search = cp(hf, "search", "Search models, datasets or spaces on the Hub.")
    ss = search.add_subparsers(dest="search_type", metavar="TYPE", parser_class=type(search))

    def search_parser(name: str, help: str, default_sort: str) -> argparse.ArgumentParser:
        p = cp(ss, name, help)
        p.add_argument("query", nargs="?", default="", help="Words to search for in repo ids.")
        p.add_argument("--author", help="Only repos of this user or organization.")
        p.add_argument(
            "--sort", choices=SORTS, default=default_sort, help=f"Sort order (default {default_sort})."
        )
        p.add_argument("--limit", type=_positive_int, default=20, help="Number of results (default 20).")
        p.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
        p.add_argument("--no-truncate", action="store_true", help="Never fold or shorten a column of the table.")
        add_refresh_option(p)
        add_wait_options(p)
        return p

    p = search_parser("models", "Search models (e.g. `llama 7b --task text-generation`).", "downloads")
    p.add_argument("--task", help="Pipeline tag, e.g. text-generation.")
    p.add_argument("--library", help="Library, e.g. transformers, gguf, diffusers.")
    p.set_defaults(handler=_cmd_search_models)

    p = search_parser(
        "datasets", "Search datasets (e.g. `common voice --language en --size '>1GB'`).", "downloads"
    )
    p.add_argument("--language", help="Language code, e.g. en.")
    p.add_argument(
        "--size",
        help="Size: bytes like '>1GB', '<100MB', '1GB-10GB', or rows like '10K-100K', '>1M' (Hub size_categories).",
    )
    p.set_defaults(handler=_cmd_search_datasets)

    p = search_parser("spaces", "Search spaces (e.g. `gradio --sdk gradio`).", "likes")
    p.add_argument("--sdk", choices=SDKS, help="Only spaces built with this SDK.")
    p.set_defaults(handler=_cmd_search_spaces)

    p = cp(hf, "info", "Show everything the Hub knows about a model, dataset or space.")
    p.add_argument("repo_type", choices=("model", "dataset", "space"), help="Repo type.")
    p.add_argument("repo_id", help="Repo id, e.g. meta-llama/Llama-2-7b-hf.")
    p.add_argument("--revision", help="Branch, tag or commit sha (default: main).")
    p.add_argument("--files", action="store_true", help="List every file with size and hash.")
    p.add_argument("--json", action="store_true", help="Print JSON.")
    add_refresh_option(p)
    add_wait_options(p)
    p.set_defaults(handler=_cmd_info)

    p = cp(hf, "ls", "List a repo's files (under PATH) with their sizes.")
    p.add_argument("repo_id", help="Repo id, e.g. meta-llama/Llama-2-7b-hf.")
    p.add_argument("path", nargs="?", default="", help="Only this file or folder.")
    p.add_argument("--repo-type", choices=("model", "dataset", "space"), default="model", help="Repo type (default model).")
    p.add_argument("--revision", help="Branch, tag or commit sha (default: main).")
    p.add_argument("--json", action="store_true", help="Print JSON.")
    add_refresh_option(p)
    add_wait_options(p)
    p.set_defaults(handler=_cmd_ls)

    p = cp(hf, "tree", "Show the HuggingFace ecosystem tree (or the PAIML integration map).")
    p.add_argument("--integration", action="store_true", help="Show the PAIML ↔ HuggingFace integration map.")
    p.add_argument("--json", action="store_true", help="Print the tree's data as JSON.")
    p.set_defaults(handler=_cmd_tree)

    p = cp(
        hf,
        "login",
        "Check a token with the Hub and store it at $HF_HOME/token (token from --token or stdin).",
    )
    add_wait_options(p)
    p.set_defaults(handler=_cmd_login)

    p = cp(hf, "logout", "Remove the stored token ($HF_HOME/token).")
    p.set_defaults(handler=_cmd_logout)

    p = cp(hf, "whoami", "Show who the active token belongs to.")
    p.add_argument("--json", action="store_true", help="Print JSON.")
    add_wait_options(p)
    p.set_defaults(handler=_cmd_whoami)
