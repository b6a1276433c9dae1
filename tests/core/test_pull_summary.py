"""The pull summary (issue 14): no double ``@``, and the bytes it reports are the bytes that
really crossed the network (a resumed partial is not counted twice)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.cli import main
from batuta_sync.hub.cache import git_blob_sha1


def test_pull_summary_reports_bytes_transferred(hub_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    data = bytes(range(256)) * 400  # 102,400 bytes, a git-sha1 blob
    hub_env.store.commit("org/x", {"notes.txt": data})
    etag = git_blob_sha1(data)
    blobs = Path(os.environ["HF_HUB_CACHE"]) / "models--org--x" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / f"{etag}.incomplete").write_bytes(data[:60_000])  # a partial left by an interrupted pull
    assert main(["hf", "pull", "model", "org/x"]) == 0
    err = capsys.readouterr().err
    summary = next(line for line in err.splitlines() if line.startswith("org/x@main"))
    assert summary.startswith("org/x@main (commit ") and " @ " not in summary
    assert "1 file, 102.4 kB; transferred 42.4 kB" in summary, summary
    assert main(["hf", "pull", "model", "org/x"]) == 0
    assert "transferred 0 B" in capsys.readouterr().err
