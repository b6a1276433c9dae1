"""File-system errors name the setting involved and use a documented exit code (issue 14)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests._builders import run_cli as run


def test_an_unwritable_plan_file_and_output_folder_name_their_setting(
    tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    hub_env.store.commit("org/a", {"config.json": b"{}"})
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "blocker").write_text("a file where a folder must be\n")
    (ws / "hf.yaml").write_text("version: 1\nmodels:\n  a: {repo: org/a, output: ./blocker/out}\n")
    f = str(ws / "hf.yaml")
    code, _, err = run(capsys, "plan", "-f", f, "-o", str(ws / "blocker" / "plan.json"))
    assert code == 3 and "Cannot write the plan file" in err and "-o/--out" in err and "Traceback" not in err
    code, _, err = run(capsys, "apply", "-f", f, "--auto-approve")
    assert code == 3, err
    assert "models.a: cannot write its output folder ./blocker/out" in err and "`output:` of models.a" in err


def test_fs_error_maps_a_full_disk() -> None:
    import errno

    from batuta_sync.cli._common import fs_error
    from batuta_sync.errors import DiskFullError

    err = fs_error(OSError(errno.ENOSPC, "No space left on device"), "the plan file p.json", "-o")
    assert isinstance(err, DiskFullError) and err.exit_code == 16
