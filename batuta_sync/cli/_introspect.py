"""Walk the argparse tree: the source for shell completion and the generated CLI reference."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class CommandNode:
    path: tuple[str, ...]  # e.g. ("hf", "pull", "model")
    parser: argparse.ArgumentParser
    subcommands: tuple[str, ...]
    options: tuple[str, ...]  # every option string, e.g. ("--json", "-o", "--out")
    help: str


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[argparse.ArgumentParser] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = (), help: str = "") -> Iterator[CommandNode]:
    """Depth-first: every command with its sub-commands and options."""
    sub = _subparsers(parser)
    names = tuple(sub.choices) if sub else ()
    options = tuple(o for a in parser._actions for o in a.option_strings)
    yield CommandNode(path, parser, names, options, help or (parser.description or ""))
    if sub:
        helps = {a.dest: a.help or "" for a in sub._choices_actions}
        for name, child in sub.choices.items():
            yield from walk(child, (*path, name), helps.get(name, ""))
