"""`batuta plan` / `apply` / `status` / `lock` through the CLI against the hostile Hub, and a
hand-edited ``hf.lock`` whose identifiers are path tricks: a documented exit code, no traceback,
and nothing outside the cache, the workspace or the output is read, written, linked or deleted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hostile.conftest import World, batuta
from tests.hostile.hub import HostileHub
from tests.hostile.test_pull_hostile import CASES, COMMIT, REPO

MANIFEST = "version: 1\nmodels:\n  m:\n    repo: org/m\n    output: ./models/m\n"
WORKSPACE_CMDS = (("plan",), ("apply", "--auto-approve"), ("status",), ("lock",))


def _manifest(w: World) -> None:
    (w.ws / "hf.yaml").write_text(MANIFEST)


# every hostile answer of the pull tests, driven through the workspace commands
@pytest.mark.parametrize("case", sorted(CASES))
def test_workspace_commands_against_hostile_answers(
    case: str, hub: HostileHub, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = CASES[case](hub, world)
    _manifest(world)
    codes = {}
    for argv in WORKSPACE_CMDS:
        code, _out, _err = batuta(capsys, *argv)
        codes[argv[0]] = code
        world.assert_untouched()
    if expected == 0:
        assert codes["apply"] == 0 and (world.ws / "models/m/config.json").is_file()
    else:
        # plan reads listings only (lying bodies and clashes meet apply); a refusal at planning
        # time is reported by the planner as plan-error (exit 1) naming the refused value
        assert codes["apply"] in (expected, 1), codes
    for argv in (("cache", "ls"), ("cache", "stats")):
        assert batuta(capsys, *argv)[0] == 0
    world.assert_untouched()


def _sub(pattern: str, repl: Callable[[World], str]) -> Callable[[World, str], str]:
    return lambda w, text: re.sub(pattern, lambda _m: repl(w), text, count=1)


def _rel(w: World, target: Path, frm: Path) -> str:
    return os.path.relpath(target, frm)


LOCK_TAMPER: dict[str, Callable[[World, str], str]] = {
    "commit = ../ path into the sentinel": _sub(
        r'commit: "[0-9a-f]{40}"',
        lambda w: f'commit: "{_rel(w, w.sentinel, w.cache / "models--org--m" / "snapshots")}"',
    ),
    "commit = absolute path": _sub(r'commit: "[0-9a-f]{40}"', lambda w: f'commit: "{w.sentinel}"'),
    "gitsha1 = ../ path to the canary": _sub(
        r'"gitsha1": "[0-9a-f]{40}"',
        lambda w: f'"gitsha1": "{_rel(w, w.canary, w.cache / "models--org--m" / "blobs")}"',
    ),
    "sha256 = absolute canary": _sub(
        r'"gitsha1": "[0-9a-f]{40}"', lambda w: f'"gitsha1": "{"a" * 40}", "sha256": "{w.canary}"'
    ),
    "file path = ../ path to the canary": _sub(
        r'"config\.json":', lambda w: f'"{_rel(w, w.canary, w.ws / "models" / "m")}":'
    ),
    "file path absolute": _sub(r'"config\.json":', lambda w: f'"{w.canary}":'),
    "output = ../outside": _sub(r'output: "\./models/m"', lambda w: f'output: "{_rel(w, w.sentinel, w.ws)}"'),
}


@pytest.mark.parametrize("tamper", sorted(LOCK_TAMPER))
def test_a_hand_edited_lock_never_leads_out(
    tamper: str, hub: HostileHub, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.repo(REPO, {"config.json": b'{"a": 1}', "notes.txt": b"hello"}, sha=COMMIT)
    _manifest(world)
    assert batuta(capsys, "apply", "--auto-approve")[0] == 0
    lock = world.ws / "hf.lock"
    text = lock.read_text()
    edited = LOCK_TAMPER[tamper](world, text)
    assert edited != text
    lock.write_text(edited)
    for argv in (("status",), ("plan",), ("apply", "--auto-approve"), ("status",)):
        batuta(capsys, *argv)
        world.assert_untouched()
    for argv in (("cache", "ls"), ("cache", "prune", "--max-size", "1"), ("cache", "clear", "--yes")):
        batuta(capsys, *argv)
        world.assert_untouched()
