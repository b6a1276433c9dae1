"""Shared test builders: the few ways tests seed a workspace, a file or a served Hub.

Import them as ``from tests._builders import …`` (like ``tests.publish.fixtures``).  Before adding a
per-folder copy of one of these, extend the builder here instead.

* :func:`workspace` — a workspace folder with an ``hf.yaml`` (``version: 1`` + the body given);
* :func:`safetensors_blob` — the bytes of a safetensors file from a header (or raw header bytes)
  and a data section, valid or deliberately not;
* :func:`run_cli` — ``batuta ARGV`` in process: ``(exit code, stdout, stderr)``;
* :func:`hub_on_env` — a started local Hub as ``HF_ENDPOINT`` for the test, stopped afterwards
  (the body of the ``seeded`` / ``auth_hub`` style fixtures).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from batuta_sync.server import HubServer


def workspace(root: Path, body: str, *, name: str = "ws") -> Path:
    """``root/name`` holding ``hf.yaml`` = ``version: 1`` + ``body``; returns the folder."""
    ws = root / name
    ws.mkdir(exist_ok=True)
    (ws / "hf.yaml").write_text("version: 1\n" + body)
    return ws


def safetensors_blob(
    header: object, data: bytes = b"", *, raw: bytes | None = None, pad: bytes = b""
) -> bytes:
    """``<u64 header length><header><data>``: the header is ``json.dumps(header)`` unless ``raw``
    gives its bytes; ``pad`` is appended to the header (inside its announced length)."""
    h = (raw if raw is not None else json.dumps(header).encode()) + pad
    return struct.pack("<Q", len(h)) + h + data


@contextmanager
def hub_on_env(srv: HubServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """``srv`` (started) as the test's ``HF_ENDPOINT``; stopped when the block ends."""
    monkeypatch.setenv("HF_ENDPOINT", srv.url)
    try:
        yield srv
    finally:
        srv.stop()


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``batuta *argv`` in this process (``cli.main``): its exit code, stdout and stderr."""
    from batuta_sync.cli import main

    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err
