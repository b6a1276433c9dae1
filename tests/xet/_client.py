"""Run the real ``huggingface_hub`` client (or the ``hf`` CLI) in a subprocess with its default
install — Xet enabled — unlike the rest of the suite (tests/conftest.py disables Xet at import)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any


def client_env(endpoint: str, *, xet: bool = True, token: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_DISABLE_XET", "HF_TOKEN")}
    env["HF_ENDPOINT"] = endpoint
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if not xet:
        env["HF_HUB_DISABLE_XET"] = "1"
    if token:
        env["HF_TOKEN"] = token
    return env


def run_py(endpoint: str, code: str, *, xet: bool = True, token: str | None = None, timeout: float = 600) -> Any:
    """Run ``code`` (which may ``emit(obj)`` one JSON result) in a fresh interpreter; return it."""
    prelude = (
        "import json, os, sys, hashlib\n"
        "from huggingface_hub import HfApi\n"
        "api = HfApi(endpoint=os.environ['HF_ENDPOINT'])\n"
        "def emit(obj):\n    print('RESULT=' + json.dumps(obj))\n"
        "def sha(p):\n    return hashlib.sha256(open(p, 'rb').read()).hexdigest()\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        env=client_env(endpoint, xet=xet, token=token),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if r.returncode != 0:
        raise AssertionError(f"client failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    for line in r.stdout.splitlines():
        if line.startswith("RESULT="):
            return json.loads(line[len("RESULT=") :])
    return None


def run_hf(endpoint: str, args: list[str], cwd: Path, *, timeout: float = 600) -> str:
    """The ``hf`` CLI of huggingface_hub, default install (Xet on)."""
    code = "import sys; from huggingface_hub.cli.hf import main; sys.argv = ['hf', *sys.argv[1:]]; main()"
    r = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=client_env(endpoint),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
    if r.returncode != 0:
        raise AssertionError(f"hf {args} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    return r.stdout
