"""A parked partial that already holds every byte (an abort landed after the last chunk) is
finished from the partial by ``hf pull`` and ``apply``: verified, published, nothing downloaded
again (issue 14)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.cli import main
from batuta_sync.hub.cache import git_blob_sha1


def _park(data: bytes, repo: str) -> Path:
    blobs = Path(os.environ["HF_HUB_CACHE"]) / f"models--{repo.replace('/', '--')}" / "blobs"
    blobs.mkdir(parents=True)
    part = blobs / f"{git_blob_sha1(data)}.incomplete"
    part.write_bytes(data)
    return part


@pytest.mark.parametrize("via", ["pull", "apply"])
def test_a_complete_partial_is_finished_without_downloading_again(
    via: str, tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytes(range(256)) * 400
    hub_env.store.commit("org/x", {"notes.txt": data})
    part = _park(data, "org/x")
    mark = len(hub_env.log.entries)
    if via == "pull":
        assert main(["hf", "pull", "model", "org/x"]) == 0
    else:
        (tmp_path / "hf.yaml").write_text("version: 1\nmodels:\n  x: {repo: org/x}\n")
        assert main(["apply", "-f", str(tmp_path / "hf.yaml"), "--auto-approve"]) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert not part.exists() and (part.parent / part.name.removesuffix(".incomplete")).read_bytes() == data
    bodies = [e for e in hub_env.log.entries[mark:] if "/resolve/" in e.path and e.status == 200]
    assert bodies == [], [(e.method, e.path, e.status) for e in hub_env.log.entries[mark:]]
    if via == "pull":
        assert "transferred 0 B" in err, err


def test_a_complete_partial_with_wrong_bytes_is_downloaded_again(
    hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytes(range(256)) * 400
    hub_env.store.commit("org/y", {"notes.txt": data})
    part = _park(data, "org/y")
    part.write_bytes(b"\0" * len(data))  # every byte there, but not the right ones
    assert main(["hf", "pull", "model", "org/y"]) == 0
    assert (part.parent / part.name.removesuffix(".incomplete")).read_bytes() == data
    assert "transferred 102.4 kB" in capsys.readouterr().err
