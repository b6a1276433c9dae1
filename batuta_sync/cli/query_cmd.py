"""CLI commands: (not yet implemented).  See batuta_sync/cli/__init__.py for the contract."""

from __future__ import annotations

from typing import Any


def register(root: Any, hf: Any) -> None:
    """Add this module's sub-commands to the root and `hf` sub-parsers."""
