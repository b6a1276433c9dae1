"""CLI: ``batuta demo`` (the newcomer path) and ``batuta completion bash|zsh|fish``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from batuta_sync.cli._common import command_parser


def register(root: Any, hf: Any) -> None:
    d = command_parser(
        root,
        "demo",
        "Run the whole product offline: local Hub, tiny model, hf.yaml, plan → apply.",
        description="Start an embedded local Hub in a temporary directory, seed it with a tiny LLaMA model, a "
        "dataset and a Space, write an example hf.yaml and run plan → apply (pull, convert to GGUF Q4_K_M, "
        "publish), then show hf.lock and a second, empty plan. No network needed.",
    )
    d.add_argument("--dir", metavar="DIR", help="Work in DIR instead of a new temporary directory.")
    d.set_defaults(handler=run_demo)
    p = command_parser(root, "completion", "Print a shell completion script (bash, zsh or fish).")
    p.add_argument("shell", choices=("bash", "zsh", "fish"))
    p.set_defaults(handler=run_completion)


def run_demo(args: argparse.Namespace) -> int:
    from batuta_sync.cli.demo import main_demo

    return main_demo(args.dir, bool(getattr(args, "quiet", False)))


def run_completion(args: argparse.Namespace) -> int:
    from batuta_sync.cli import build_parser
    from batuta_sync.cli._completion import render

    sys.stdout.write(render(args.shell, build_parser()))
    return 0
