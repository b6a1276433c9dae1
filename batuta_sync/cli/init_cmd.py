"""CLI: ``batuta init [REPO …]`` (placeholder, filled below)."""

from __future__ import annotations

from typing import Any


def register(root: Any, hf: Any) -> None:
    """Add ``init``."""
