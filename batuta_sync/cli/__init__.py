"""The ``batuta`` command line: a thin shell over the library.

``main`` builds the argparse tree from the command modules (each registers its
own sub-commands and keeps heavy imports inside its handlers, so start-up stays
well under 100 ms), runs the handler, and is the ONE place where exceptions
become exit codes (table: :data:`batuta_sync.errors.EXIT_CODES`).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence

from batuta_sync._version import __version__
from batuta_sync.cli import _common
from batuta_sync.errors import BatutaError, DiskFullError, UsageError, exit_code

# Command modules, in help order.  Each exposes ``register(root, hf)``.
_COMMAND_MODULES = (
    "core_cmd",  # validate, plan, apply, show, graph, lock, status
    "query_cmd",  # hf search | info | tree | login | logout | whoami
    "pull_cmd",  # hf pull …, cache …
    "push_cmd",  # hf push …
    "repo_cmd",  # hf repo create | delete | branch | tag | ls, hf ls
    "init_cmd",  # init
    "convert_cmd",  # convert
    "hub_cmd",  # hub serve
    "remote_cmd",  # remote check | ls | stats | gc, force-unlock
    "demo_cmd",  # demo, completion
)


# Which module defines each command, so a run builds only the parser it needs (start-up budget).
# tests/test_foundation.py checks this map against what the modules really register.
_ROOT_COMMANDS = {
    **dict.fromkeys(("validate", "plan", "apply", "show", "graph", "lock", "import", "status"), "core_cmd"),
    "cache": "pull_cmd",
    "convert": "convert_cmd",
    "hub": "hub_cmd",
    "remote": "remote_cmd",
    "force-unlock": "remote_cmd",
    "demo": "demo_cmd",
    "completion": "demo_cmd",
    "init": "init_cmd",
}
_HF_COMMANDS = {
    **dict.fromkeys(("search", "info", "tree", "login", "logout", "whoami"), "query_cmd"),
    "pull": "pull_cmd",
    "push": "push_cmd",
    "repo": "repo_cmd",
    "ls": "repo_cmd",
}
_OPTIONS_WITH_VALUE = {"--endpoint", "--token"}


def _positionals(argv: Sequence[str]) -> list[str]:
    words: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in _OPTIONS_WITH_VALUE:
            skip = True
        elif not word.startswith("-"):
            words.append(word)
            if len(words) == 2:
                break
    return words


def _modules_for(argv: Sequence[str] | None) -> tuple[str, ...]:
    """The command modules needed to parse ``argv`` (all of them for help, errors and completion)."""
    if argv is None or any(w in ("-h", "--help") for w in argv[:1]):
        return _COMMAND_MODULES
    words = _positionals(argv)
    if not words:
        return _COMMAND_MODULES
    if words[0] == "hf":
        module = _HF_COMMANDS.get(words[1]) if len(words) > 1 else None
    else:
        module = _ROOT_COMMANDS.get(words[0])
    return (module,) if module else _COMMAND_MODULES


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (exit 64) instead of exiting with 2.

    Exit code 2 is reserved for ``plan --detailed-exitcode`` (changes pending).
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}", hint=f"Run `{self.prog} --help` for usage.")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argparse tree; with ``argv``, only the part that parses that command line."""
    import importlib

    root = _Parser(
        prog="batuta",
        description="Keep HuggingFace Hub models, datasets and spaces in sync with your repo.",
        epilog="Exit codes: docs/exit-codes.md. Settings precedence: flag > environment > hf.yaml > default.",
    )
    root.add_argument("--version", action="version", version=f"batuta {__version__}")
    _common.add_common_options(root, top_level=True)
    sub = root.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    hf_parser = sub.add_parser("hf", help="Query, pull and push Hugging Face Hub repos (imperative commands).")
    hf = hf_parser.add_subparsers(dest="hf_command", metavar="HF_COMMAND", parser_class=_Parser)
    hf_parser.set_defaults(_parser=hf_parser)
    for name in _modules_for(argv):
        module = importlib.import_module(f"batuta_sync.cli.{name}")
        module.register(sub, hf)
    root.set_defaults(_parser=root)
    return root


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if os.environ.get("BATUTA_RETRY_BACKOFF"):  # validate at start, before any command runs
        from batuta_sync.hub.ratelimit import RateLimitConfig

        RateLimitConfig.from_env()
    handler = getattr(args, "handler", None)
    if handler is None:
        args._parser.print_help()
        return exit_code("usage") if argv else 0
    result: int = handler(args)
    return result


def _flag_value(argv: Sequence[str], flag: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _setting_error(exc: OSError, argv: Sequence[str]) -> BatutaError | None:
    """A file-system failure under a place a setting chooses, as a config error naming that setting
    (exit 3): the Hub cache, batuta's state, the server's ``--root``; None when the path is elsewhere."""
    from pathlib import Path

    if not exc.filename:
        return None
    path = Path(os.path.abspath(os.fsdecode(exc.filename)))
    places: list[tuple[Path, str, str]] = []
    root = _flag_value(argv, "--root")
    if root is not None:
        places.append((Path(os.path.abspath(root)), "the server root", "--root"))
    try:
        from batuta_sync.settings import resolve_settings

        s = resolve_settings()
        places += [
            (s.hub_cache.absolute(), "the Hub cache", "HF_HUB_CACHE (or HF_HOME)"),
            (s.batuta_dir.absolute(), "batuta's state folder", "HF_HOME"),
            (s.hf_home.absolute(), "the Hugging Face home", "HF_HOME"),
        ]
    except Exception:  # broken settings are reported by the command itself
        pass
    for base, what, setting in places:
        if path == base or base in path.parents:
            err = _common.fs_error(exc, f"{what} {base} ({path})", setting)
            return err if isinstance(err, BatutaError) else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``batuta``: run the command, map errors to exit codes."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get("BATUTA_DEBUG") == "1"
    try:
        return _run(argv)
    except BatutaError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        _common.print_error(exc.render())
        return exc.exit_code
    except KeyboardInterrupt:
        _common.print_error("Interrupted. Completed work is kept; partial files are resumed next time.")
        return exit_code("interrupted")
    except BrokenPipeError:
        # Output piped into e.g. `head`: not an error.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
        return 0
    except OSError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        if exc.errno == errno.ENOSPC:
            err = DiskFullError(f"No space left on device while writing {exc.filename or 'a file'}.")
            _common.print_error(err.render())
            return err.exit_code
        named = _setting_error(exc, argv)
        if named is not None:
            _common.print_error(named.render())
            return named.exit_code
        from batuta_sync._redact import redact

        _common.print_error(
            f"Error [os-error]: {redact(str(exc))}\nHint: check the path and permissions; rerun with --debug for details."
        )
        return exit_code("error")
    except Exception as exc:  # the bug path: still one paragraph unless --debug
        if debug:
            import traceback

            traceback.print_exc()
        from batuta_sync._redact import redact

        _common.print_error(
            f"Internal error: {type(exc).__name__}: {redact(str(exc))}\n"
            "Hint: this is a bug in batuta; rerun with --debug and report the traceback."
        )
        return exit_code("error")
