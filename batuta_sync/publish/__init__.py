"""Publishing: validation, secret scanning, cards and differential uploads (``batuta hf push``).

Public interface (stable; the declarative core calls it)::

    from batuta_sync.publish import PushRequest, prepare_push, push, local_manifest
    plan = prepare_push(settings, PushRequest(Path("out/tiny"), "org/tiny"))   # no network writes
    result = push(settings, req, plan=plan)                                    # one commit, or none

Only stdlib-level modules are imported here (yaml, gguf and huggingface_hub load on use).
"""

from __future__ import annotations

from batuta_sync.publish.card import generate_model_card
from batuta_sync.publish.manifest import FileHash, UploadManifest
from batuta_sync.publish.push import PushPlan, PushRequest, PushResult, local_manifest, prepare_push, push
from batuta_sync.publish.secrets import Finding

__all__ = [
    "FileHash",
    "Finding",
    "PushPlan",
    "PushRequest",
    "PushResult",
    "UploadManifest",
    "generate_model_card",
    "local_manifest",
    "prepare_push",
    "push",
]
