"""Each concern has one home (issue #15): greps that keep the old copies from coming back.

The test server (``batuta_sync/server``) keeps its own parsers on purpose: it is an
independent peer for the tests (said in ``server/__init__.py``)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import batuta_sync

PKG = Path(batuta_sync.__file__).parent


def _sources() -> list[tuple[str, str]]:
    out = []
    for f in sorted(PKG.rglob("*.py")):
        rel = f.relative_to(PKG).as_posix()
        if rel.startswith("server/"):
            continue
        out.append((rel, f.read_text(encoding="utf-8")))
    return out


@pytest.mark.parametrize(
    ("pattern", "homes", "why"),
    [
        (r"mkstemp", ("_fs.py",), "atomic writes and temp files: batuta_sync._fs"),
        (r"\bfcntl\b", ("_fs.py",), "file locks: batuta_sync._fs.file_lock"),
        (r'struct\.unpack\("<Q"', ("fileformats/",), "binary headers: batuta_sync.fileformats"),
        (r'startswith\("---"\)|\\A---', ("fileformats/",), "front matter: batuta_sync.fileformats.card"),
    ],
)
def test_one_home(pattern: str, homes: tuple[str, ...], why: str) -> None:
    pending: tuple[str, ...] = ()  # no exemption left (pull/ uses fileformats.card now)
    rx = re.compile(pattern)
    strays = [
        rel
        for rel, text in _sources()
        if rx.search(text) and not rel.startswith(homes) and not (pending and rel.startswith(pending))
    ]
    assert strays == [], f"{why}; found a copy in {strays}"


def test_fileformats_imports_nothing_of_batuta_but_errors() -> None:
    for f in sorted((PKG / "fileformats").glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("batuta_sync"):
                assert node.module.startswith(("batuta_sync.fileformats", "batuta_sync.errors")), (f.name, node.module)
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("batuta_sync") for a in node.names), f.name
