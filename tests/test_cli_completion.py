"""Shell completion and the CLI reference are generated from the real argparse tree."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from batuta_sync.cli import build_parser, main
from batuta_sync.cli._introspect import walk

ROOT = Path(__file__).resolve().parents[1]


def _complete(script: str, words: list[str]) -> set[str]:
    """Run the bash completion function for ``words`` (last one being typed) in a real bash."""
    arr = " ".join(f"'{w}'" for w in words)
    prog = f"{script}\nCOMP_WORDS=({arr}); COMP_CWORD={len(words) - 1}; _batuta_complete; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    out = subprocess.run(["bash", "-c", prog], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_bash_completion_completes_commands_and_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    top = _complete(script, ["batuta", ""])
    assert {"hf", "completion", "--offline"} <= top
    assert _complete(script, ["batuta", "comp"]) == {"completion"}
    assert "--debug" in _complete(script, ["batuta", "completion", "--de"])


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_other_shells_cover_every_command(shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    for node in walk(build_parser()):
        if node.path:
            assert node.path[-1] in script


def test_cli_reference_lists_every_command_and_option() -> None:
    doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for node in walk(build_parser()):
        assert f"## `{' '.join(('batuta', *node.path))}`" in doc
        for opt in node.options:
            assert opt in doc
