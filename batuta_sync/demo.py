"""Deprecated: ``batuta demo`` lives in :mod:`batuta_sync.cli.demo` (it drives the CLI commands).

This re-export keeps ``from batuta_sync.demo import run_demo`` working for one release.
"""

from __future__ import annotations

import warnings

from batuta_sync.cli.demo import DEMO_YAML, DemoResult, main_demo, run_demo, seed_hub

__all__ = ["DEMO_YAML", "DemoResult", "main_demo", "run_demo", "seed_hub"]

warnings.warn(
    "batuta_sync.demo moved to batuta_sync.cli.demo; the old path goes in the next release.",
    DeprecationWarning,
    stacklevel=2,
)
