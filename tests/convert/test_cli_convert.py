"""``batuta convert``: exit codes, JSON output, progress bar only on a terminal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.cli import main


def test_convert_to_gguf_json(models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["convert", str(models["gqa"]), str(tmp_path / "out.gguf"), "--to", "gguf",
               "--quantization", "q8_0", "--jobs", "2", "--json"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["output"] == str(tmp_path / "out.gguf") and doc["tensor_count"] == 21
    assert doc["params"]["quantization"] == "Q8_0" and doc["params"]["converter_version"]


def test_convert_round_trip_plain_output(models: dict[str, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", str(models["odd"]), str(tmp_path), "--to", "gguf", "--jobs", "0"]) == 0
    out = capsys.readouterr()
    gguf_path = Path(out.out.strip())
    assert gguf_path == tmp_path / "odd-Q4_K_M.gguf" and gguf_path.is_file()
    assert "Converted 39 tensors" in out.err and "Q5_0:2" in out.err
    assert main(["convert", str(gguf_path), str(tmp_path / "hf"), "--to", "safetensors", "-q"]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == str(tmp_path / "hf") and out.err == ""
    assert (tmp_path / "hf" / "model.safetensors").is_file()


def test_convert_errors_map_to_exit_codes(models: dict[str, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", str(models["gqa"]), str(tmp_path / "x"), "--to", "onnx"]) == 15
    err = capsys.readouterr().err
    assert "Error [conversion]" in err and "Supported conversions" in err and "Traceback" not in err
    (tmp_path / "w.bin").write_bytes(b"PK\x03\x04")
    assert main(["convert", str(tmp_path / "w.bin"), str(tmp_path / "x"), "--to", "safetensors"]) == 12
    assert "--allow-unsafe" in capsys.readouterr().err
    assert main(["convert", str(models["gqa"]), str(tmp_path / "x.gguf"), "--to", "gguf", "--quantization", "IQ4_XS"]) == 64
    assert main(["convert", str(models["gqa"]), str(tmp_path / "x.gguf"), "--to", "gguf", "--jobs", "-3"]) == 64
    assert main(["convert", str(models["gqa"]), str(tmp_path / "x.gguf"), "--to", "gguf", "--jobs", "many"]) == 64
    capsys.readouterr()


def test_progress_bar_only_on_a_terminal(models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from batuta_sync.cli import _common, convert_cmd

    args = argparse.Namespace(quiet=False, json=False)
    update, stop = convert_cmd._progress(args)
    assert update is None  # stderr is not a terminal under pytest
    stop()
    monkeypatch.setattr(_common, "is_tty", lambda stream=None: True)
    seen: list[Any] = []
    update, stop = convert_cmd._progress(args)
    assert update is not None
    update(1, 3)
    update(3, 3)
    stop()
    seen.append(True)
    assert main(["convert", str(models["gqa"]), str(tmp_path / "p.gguf"), "--to", "gguf", "--quantization", "F16"]) == 0
    assert (tmp_path / "p.gguf").is_file() and seen


def test_help_is_fast_and_light() -> None:
    code = ("import sys, batuta_sync.cli.convert_cmd, batuta_sync.convert; "
            "print(sorted(m for m in ('numpy', 'gguf', 'rich', 'safetensors') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    helptext = subprocess.run([sys.executable, "-m", "batuta_sync", "convert", "--help"], capture_output=True,
                              text=True, check=False).stdout
    assert "--quantization" in helptext and "--allow-unsafe" in helptext
