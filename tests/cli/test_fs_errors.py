"""File-system errors name the setting involved and exit with a documented code (issue 14).

Tests run as root, which ignores permission bits, so an unusable place is made the portable way: a
regular file where the folder should be (ENOTDIR for everyone, root included)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from batuta_sync.errors import exit_code


def _run(tmp_path: Path, *argv: str, **env: str) -> tuple[int, str]:
    full = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", ""), **env)
    p = subprocess.run([sys.executable, "-m", "batuta_sync", *argv], cwd=tmp_path, env=full,
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stderr


def _blocker(tmp_path: Path) -> Path:
    f = tmp_path / "not-a-folder"
    f.write_text("x")
    return f


def test_an_unusable_hub_cache_names_hf_hub_cache(hub_env: Any, tmp_path: Path) -> None:
    hub_env.store.commit("org/m", {"config.json": b"{}", "w.txt": b"hello"})
    bad = _blocker(tmp_path) / "hub"
    code, err = _run(tmp_path, "hf", "pull", "model", "org/m", HF_HUB_CACHE=str(bad))
    assert code == exit_code("config"), err
    assert "the Hub cache" in err and "HF_HUB_CACHE" in err and str(bad) in err
    assert "Traceback" not in err and err.count("Error") == 1


def test_an_unusable_server_root_names_root(tmp_path: Path) -> None:
    bad = _blocker(tmp_path) / "root"
    code, err = _run(tmp_path, "hub", "serve", "--root", str(bad), "--port", "0")
    assert code == exit_code("config"), err
    assert "the server root" in err and "--root" in err and str(bad) in err
    assert "Traceback" not in err


def test_a_path_no_setting_chooses_keeps_the_generic_error(tmp_path: Path) -> None:
    from batuta_sync.cli import _setting_error

    exc = NotADirectoryError(20, "Not a directory", str(tmp_path / "elsewhere" / "x"))
    assert _setting_error(exc, []) is None
    inside = NotADirectoryError(20, "Not a directory", os.path.join(os.environ["HF_HUB_CACHE"], "models--a--b"))
    err = _setting_error(inside, [])
    assert err is not None and err.exit_code == exit_code("config") and "HF_HUB_CACHE" in (err.hint or "")
