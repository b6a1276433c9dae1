"""CLI: ``batuta demo`` (the newcomer path) and ``batuta completion bash|zsh|fish``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from batuta_sync.cli._common import command_parser


def register(root: Any, hf: Any) -> None:
    p = command_parser(root, "completion", "Print a shell completion script (bash, zsh or fish).")
    p.add_argument("shell", choices=("bash", "zsh", "fish"))
    p.set_defaults(handler=run_completion)


def run_completion(args: argparse.Namespace) -> int:
    from batuta_sync.cli import build_parser
    from batuta_sync.cli._completion import render

    sys.stdout.write(render(args.shell, build_parser()))
    return 0
