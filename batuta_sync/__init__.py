"""batuta_sync: keep Hugging Face Hub models, datasets and spaces in sync with your repo.

Public API (lazy: importing ``batuta_sync`` stays cheap; names load on first use).
"""

from __future__ import annotations

from typing import Any

from batuta_sync._version import __version__ as __version__
from batuta_sync.errors import BatutaError as BatutaError

# name -> module that defines it; filled in as the packages land.
_LAZY: dict[str, str] = {
    "HfClient": "batuta_sync.client",
    "Action": "batuta_sync.core.actions",
    "Plan": "batuta_sync.core.planner.plan",
    "apply_plan": "batuta_sync.core.api",
    "load_manifest": "batuta_sync.core.manifest",
    "make_plan": "batuta_sync.core.api",
    "FormatConverter": "batuta_sync.convert",
    "HfCache": "batuta_sync.hub.cache",
    "PullRequest": "batuta_sync.pull",
    "SafetyPolicy": "batuta_sync.safety",
    "classify_file_safety": "batuta_sync.safety",
    "PushRequest": "batuta_sync.publish.push",
    "prepare_push": "batuta_sync.publish.push",
    "generate_model_card": "batuta_sync.publish.card",
    "UploadManifest": "batuta_sync.publish.manifest",
}

__all__ = sorted(["BatutaError", "__version__", *_LAZY])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'batuta_sync' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
