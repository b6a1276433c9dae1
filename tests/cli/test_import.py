"""``batuta import ADDRESS DIR`` (issue 20): adopt a folder that ``hf download --local-dir`` (the real
huggingface_hub client) wrote, verified against the Hub, without downloading a byte."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import snapshot_download

from batuta_sync.cli import main
from batuta_sync.core.lockfile import read_lock
from batuta_sync.errors import exit_code
from tests.publish.fixtures import safetensors_bytes, tiny_model_tensors


@pytest.fixture
def ws(tmp_path: Path, hub_env: Any) -> Path:
    hub_env.store.commit("org/m", {
        "config.json": b'{"model_type": "llama"}',
        "model.safetensors": safetensors_bytes(tiny_model_tensors(300, 16), {"format": "pt"}),
        "README.md": b"# m\n",
    })
    snapshot_download("org/m", endpoint=hub_env.url, local_dir=str(tmp_path / "dl"),
                      cache_dir=str(tmp_path / "elsewhere"))
    w = tmp_path / "ws"
    w.mkdir()
    (w / "hf.yaml").write_text("version: 1\nmodels:\n  m: {repo: org/m}\n")
    return w


def _downloads(hub: Any) -> int:
    return int(hub.log.count("GET", path_contains="/resolve/"))


def test_import_adopts_the_folder_without_downloading(ws: Path, hub_env: Any, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    before = _downloads(hub_env)
    f = str(ws / "hf.yaml")
    assert main(["import", "models.m", str(tmp_path / "dl"), "-f", f]) == 0
    out = capsys.readouterr().out
    assert "Imported models.m" in out and "3 files verified" in out
    assert _downloads(hub_env) == before  # not one byte from the Hub
    lock = read_lock(ws / "hf.lock")
    assert lock is not None and lock.entries["models.m"].commit == hub_env.store.resolve("org/m")
    assert main(["plan", "-f", f, "--detailed-exitcode"]) == 0  # in sync: cache and lock agree
    assert main(["import", "models.m", str(tmp_path / "dl"), "-f", f]) == 0
    assert "already locked and in the cache" in capsys.readouterr().out


@pytest.mark.parametrize("damage", ["flipped byte", "missing file", "symlink outside"])
def test_a_folder_that_is_not_the_hubs_is_refused_and_the_lock_unchanged(
        damage: str, ws: Path, hub_env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dl = tmp_path / "dl"
    if damage == "flipped byte":
        data = bytearray((dl / "model.safetensors").read_bytes())
        data[-1] ^= 1  # same size: only the digest can tell
        (dl / "model.safetensors").write_bytes(bytes(data))
        said = "model.safetensors: differs from the Hub's file"
    elif damage == "missing file":
        (dl / "config.json").unlink()
        said = "config.json: not in the folder"
    else:
        secret = tmp_path / "secret.json"
        secret.write_bytes((dl / "config.json").read_bytes())  # even the right bytes, outside the folder
        (dl / "config.json").unlink()
        os.symlink(secret, dl / "config.json")
        said = "config.json: leads outside the folder"
    before = _downloads(hub_env)
    code = main(["import", "models.m", str(dl), "-f", str(ws / "hf.yaml")])
    err = capsys.readouterr().err
    assert code == exit_code("integrity"), err
    assert said in err and "hf.lock is unchanged" in err and "--target models.m" in err
    assert not (ws / "hf.lock").exists()
    assert _downloads(hub_env) == before


def test_import_usage_errors(ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = str(ws / "hf.yaml")
    assert main(["import", "models.nope", str(tmp_path / "dl"), "-f", f]) == exit_code("usage")
    assert "Declare it in hf.yaml" in capsys.readouterr().err
    assert main(["import", "models.m", str(tmp_path / "no-such-dir"), "-f", f]) == exit_code("usage")
