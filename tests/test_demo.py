"""`batuta demo` end to end: local Hub, tiny model, plan → apply (pull, convert, publish) → empty plan."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from batuta_sync.cli.demo import run_demo


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_demo(tmp_path / "demo", say=lines.append)
    text = "\n".join(lines)
    assert result.ok, text
    assert result.apply_exit == 0 and result.second_plan_exit == 0
    project = tmp_path / "demo" / "project"
    lock = yaml.safe_load((project / "hf.lock").read_text())
    resources = lock["resources"]
    assert {"models.llama", "datasets.tiny", "spaces.app", "conversions.llama-q4", "publish.llama-gguf"} <= set(resources)
    assert len(resources["publish.llama-gguf"]["commit"]) == 40
    # the converted model is a real GGUF with Q4_K tensors, readable by gguf-py
    from gguf import GGUFReader

    ggufs = list((project / "models" / "tiny-llama-gguf").rglob("*.gguf"))
    assert len(ggufs) == 1
    reader = GGUFReader(str(ggufs[0]))
    types = {t.tensor_type.name for t in reader.tensors}
    assert "Q4_K" in types and "Q6_K" in types
    # pulled model materialised in the output directory
    assert (project / "models" / "tiny-llama" / "config.json").is_file()
    # the user's own cache was not touched: the demo used its own HF_HOME
    assert (tmp_path / "demo" / "hf-home" / "hub").is_dir()
    assert "in sync" in text
    # the published card carries the provenance of the conversion (read back through the real client)
    from huggingface_hub import hf_hub_download

    from batuta_sync.server import HubServer

    srv = HubServer(root=tmp_path / "demo" / "hub").start()
    try:
        card = Path(
            hf_hub_download("demo/tiny-llama-GGUF", "README.md", endpoint=srv.url, cache_dir=tmp_path / "c")
        ).read_text()
    finally:
        srv.stop()
    source_commit = resources["models.llama"]["commit"]
    assert "demo/tiny-llama" in card and "Q4_K_M" in card and source_commit in card


def test_demo_cli_quiet_subprocess(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    out = subprocess.run(
        [sys.executable, "-m", "batuta_sync", "demo", "--dir", str(tmp_path / "d"), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "d" / "project" / "hf.lock").is_file()
    # quiet: one line on success, no plan listing
    assert out.stdout.startswith("batuta demo: ok") and out.stdout.count("\n") == 1, out.stdout
