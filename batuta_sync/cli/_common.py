"""Options and output helpers shared by every command module (stdlib only at import)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batuta_sync.settings import Settings


def add_common_options(parser: argparse.ArgumentParser, *, top_level: bool = False) -> None:
    """Options every command accepts, before or after the sub-command name."""
    default = None if top_level else argparse.SUPPRESS
    if top_level:
        # argparse matches every option string of a command line against the root's options first,
        # sub-command options included: with abbreviations on, `convert --to gguf` would be an
        # "ambiguous option" (--token, --token-file).  Root options are spelled out in full.
        parser.allow_abbrev = False
    g = parser.add_argument_group("common options")
    g.add_argument("--endpoint", default=default, help="Hub URL (env HF_ENDPOINT; default https://huggingface.co).")
    g.add_argument(
        "--token",
        default=default,
        help="Hub token; visible to other users in `ps`, prefer --token-file, HF_TOKEN or `batuta hf login`. "
        '--token "" = anonymous.',
    )
    g.add_argument(
        "--token-file",
        metavar="FILE",
        default=default,
        help="Read the Hub token from FILE (default: HF_TOKEN, else the stored login token).",
    )
    g.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_timeout,
        default=default,
        help="Longest network wait: connect and read timeouts, and every retry or rate-limit wait "
        "(env BATUTA_TIMEOUT; default: 10 s connect, 60 s read, retries 1-16 s, rate limits up to 300 s).",
    )
    g.add_argument(
        "--remote",
        metavar="URL",
        default=default,
        help="Shared remote for blobs, conversions and the apply lock: s3://bucket/prefix or file:///path "
        "(env BATUTA_REMOTE; hf.yaml defaults.remote; docs/remote.md).",
    )
    g.add_argument(
        "--offline",
        action="store_true",
        default=False if top_level else argparse.SUPPRESS,
        help="Never touch the network; answer from the cache (env HF_HUB_OFFLINE=1).",
    )
    g.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=False if top_level else argparse.SUPPRESS,
        help="No progress bars or informational output.",
    )
    g.add_argument(
        "--debug",
        action="store_true",
        default=False if top_level else argparse.SUPPRESS,
        help="Show tracebacks for errors.",
    )


def _timeout(text: str) -> float:
    from batuta_sync.errors import ConfigError
    from batuta_sync.settings import parse_timeout

    try:
        return parse_timeout(text, "--timeout")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def command_parser(sub: Any, name: str, help: str, **kw: Any) -> argparse.ArgumentParser:
    """Create a sub-command parser that also accepts the common options."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=kw.pop("description", help), **kw)
    add_common_options(p)
    p.set_defaults(_parser=p)
    return p


def settings_from_args(args: argparse.Namespace, manifest: dict[str, Any] | None = None) -> Settings:
    """The one settings resolution (flag > env > hf.yaml > default) for a parsed command line."""
    from batuta_sync.settings import resolve_settings

    token = getattr(args, "token", None)
    if token and not getattr(args, "_token_warned", False):
        args._token_warned = True
        print(
            "Warning: --token on the command line is visible to other users of this machine (`ps`, shell "
            "history). Prefer --token-file FILE, the HF_TOKEN environment variable or `batuta hf login`.",
            file=sys.stderr,
        )
    flags = {
        "token_file": getattr(args, "token_file", None),
        "timeout": getattr(args, "timeout", None),
        "endpoint": getattr(args, "endpoint", None),
        "token": getattr(args, "token", None),
        "offline": True if getattr(args, "offline", False) else None,
        "trust_endpoint": getattr(args, "trust_endpoint", None) or None,
        "allow_outside_workspace": True if getattr(args, "allow_outside_workspace", False) else None,
        "remote": getattr(args, "remote", None),
    }
    return resolve_settings(flags=flags, manifest=manifest)


def is_tty(stream: Any = None) -> bool:
    stream = stream or sys.stdout
    try:
        return bool(stream.isatty()) and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


def print_error(text: str) -> None:
    print(text, file=sys.stderr)


def info(args: argparse.Namespace, text: str) -> None:
    """Informational message to stderr unless --quiet (through the redactor: tokens, URL userinfo)."""
    if not getattr(args, "quiet", False):
        from batuta_sync._redact import redact

        print(redact(text), file=sys.stderr)


def emit_json(obj: Any) -> None:
    """Machine output: stable, sorted, one document on stdout."""
    from batuta_sync._redact import redact

    sys.stdout.write(redact(json.dumps(obj, indent=2, sort_keys=True, default=str)) + "\n")


def _fit(widths: Sequence[int], total: int) -> list[int]:
    """Column widths for a terminal ``total`` wide: the first column (an id) whole if it can be
    with ~4 characters left for each other column; the others share the rest by their size."""
    avail = total - (3 * len(widths) + 1)  # borders and padding
    others = list(widths[1:])
    first = min(widths[0], max(8, avail - sum(min(w, 4) for w in others)))
    rest = avail - first
    if sum(others) <= rest:
        return [first, *others]
    scale = rest / max(1, sum(others))
    return [first, *(max(2, min(w, int(w * scale))) for w in others)]


def print_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None, no_truncate: bool = False
) -> None:
    """A rich table on a terminal; tab-separated columns (with a header) when piped.

    The first column (a repo id, a path) is never shortened: on a narrow terminal the other
    columns fold onto more lines instead.  ``no_truncate``: nothing is folded or shortened (the
    table is as wide as it needs, like the piped output)."""
    if is_tty():
        from rich.console import Console
        from rich.table import Table

        cells = [["" if v is None else str(v) for v in r] for r in rows]
        widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
        console = Console(width=max(sum(w + 3 for w in widths) + 1, 80)) if no_truncate else Console()
        table = Table(title=title)
        for c, w in zip(columns, _fit(widths, console.width), strict=True):
            table.add_column(c, overflow="fold", width=w)  # fold: wrap onto more lines, never "…"
        for r in cells:
            table.add_row(*r)
        console.print(table)
        return
    out = sys.stdout
    out.write("\t".join(columns) + "\n")
    for row in rows:
        out.write("\t".join("" if v is None else str(v) for v in row) + "\n")


def fs_error(exc: OSError, what: str, setting: str) -> Exception:
    """A file-system failure as a documented error naming the setting to change (disk full: 16)."""
    import errno

    from batuta_sync.errors import ConfigError, DiskFullError

    reason = exc.strerror or type(exc).__name__
    if exc.errno == errno.ENOSPC:
        return DiskFullError(f"No space left on the device while writing {what}.")
    return ConfigError(f"Cannot write {what}: {reason}.", hint=f"Make it writable or change {setting}.")
