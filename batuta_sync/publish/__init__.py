"""Publishing: validation, secret scanning, cards and differential uploads (``batuta hf push``).

Public interface (stable; the declarative core calls it)::

    from batuta_sync.publish import PushRequest, prepare_push, push, local_manifest
    plan = prepare_push(settings, PushRequest(Path("out/tiny"), "org/tiny"))   # no network writes
    result = push(settings, req, plan=plan)                                    # one commit, or none

Heavy modules load lazily (``batuta --help`` stays fast).
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "PushRequest": "batuta_sync.publish.push",
    "PushPlan": "batuta_sync.publish.push",
    "PushResult": "batuta_sync.publish.push",
    "prepare_push": "batuta_sync.publish.push",
    "push": "batuta_sync.publish.push",
    "local_manifest": "batuta_sync.publish.push",
    "UploadManifest": "batuta_sync.publish.manifest",
    "FileHash": "batuta_sync.publish.manifest",
    "Finding": "batuta_sync.publish.secrets",
    "generate_model_card": "batuta_sync.publish.card",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'batuta_sync.publish' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
