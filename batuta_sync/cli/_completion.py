"""Shell completion scripts generated from the argparse tree (bash, zsh via bashcompinit, fish)."""

from __future__ import annotations

import argparse

from batuta_sync.cli._introspect import walk


def _bash(parser: argparse.ArgumentParser) -> str:
    cases = []
    for node in walk(parser):
        key = " ".join(node.path)
        words = " ".join((*node.subcommands, *node.options))
        cases.append(f'        "{key}") opts="{words}" ;;')
    body = "\n".join(cases)
    return f"""# bash completion for batuta (generated: `batuta completion bash`)
_batuta_complete() {{
    local cur path w i
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    path=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${{COMP_WORDS[i]}}"
        [[ "$w" == -* ]] && continue
        case "$(_batuta_opts "${{path:+$path }}$w")" in
            __none__) ;;
            *) path="${{path:+$path }}$w" ;;
        esac
    done
    COMPREPLY=( $(compgen -W "$(_batuta_opts "$path")" -- "$cur") )
}}
_batuta_opts() {{
    local opts="__none__"
    case "$1" in
{body}
    esac
    echo "$opts"
}}
complete -o default -F _batuta_complete batuta
"""


def _zsh(parser: argparse.ArgumentParser) -> str:
    return "#compdef batuta\n# zsh completion for batuta (generated: `batuta completion zsh`)\n" + (
        "autoload -U +X bashcompinit && bashcompinit\n" + _bash(parser)
    )


def _fish(parser: argparse.ArgumentParser) -> str:
    lines = ["# fish completion for batuta (generated: `batuta completion fish`)", "complete -c batuta -f"]
    for node in walk(parser):
        if node.path:
            parent = node.path[:-1]
            cond = (
                "__fish_use_subcommand"
                if not parent
                else " and ".join(f"__fish_seen_subcommand_from {p}" for p in parent)
            )
            desc = (node.help or "").replace("'", "\\'")
            lines.append(f"complete -c batuta -n '{cond}' -a '{node.path[-1]}' -d '{desc}'")
        seen = " and ".join(f"__fish_seen_subcommand_from {p}" for p in node.path) or "true"
        for opt in node.options:
            if opt.startswith("--"):
                lines.append(f"complete -c batuta -n '{seen}' -l {opt[2:]}")
            elif len(opt) == 2:
                lines.append(f"complete -c batuta -n '{seen}' -s {opt[1]}")
    return "\n".join(lines) + "\n"


def render(shell: str, parser: argparse.ArgumentParser) -> str:
    return {"bash": _bash, "zsh": _zsh, "fish": _fish}[shell](parser)
