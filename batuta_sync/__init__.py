"""batuta_sync: keep Hugging Face Hub models, datasets and spaces in sync with your repo.

The public Python API is the names in ``__all__``; everything else is internal and may move.
Importing ``batuta_sync`` stays cheap: each name loads its module on first use (``_LAZY``),
while type checkers read the same names from the static imports under ``TYPE_CHECKING``
(the pattern of huggingface_hub's ``__init__``; ``tests/test_public_api.py`` keeps the three
lists in sync, and the package ships ``py.typed``).

Two engines are reached through their packages, not through a name here: ``batuta_sync.pull``
(``from batuta_sync.pull import pull``) and ``batuta_sync.convert`` (``from batuta_sync.convert
import convert``).  A top-level ``pull``/``convert`` function would be shadowed by the
subpackage of the same name as soon as it is imported; :func:`pull_or_convert` and
:class:`FormatConverter` are the top-level verbs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batuta_sync._version import __version__ as __version__
from batuta_sync.errors import BatutaError as BatutaError

if TYPE_CHECKING:
    from batuta_sync.client import HfClient as HfClient
    from batuta_sync.convert import FormatConverter as FormatConverter
    from batuta_sync.convert.on_pull import pull_or_convert as pull_or_convert
    from batuta_sync.core.actions import Action as Action
    from batuta_sync.core.api import LockUpdate as LockUpdate
    from batuta_sync.core.api import PlanAndApply as PlanAndApply
    from batuta_sync.core.api import PlanSession as PlanSession
    from batuta_sync.core.api import apply_plan as apply_plan
    from batuta_sync.core.api import make_plan as make_plan
    from batuta_sync.core.api import plan_and_apply as plan_and_apply
    from batuta_sync.core.api import plan_session as plan_session
    from batuta_sync.core.api import update_lock as update_lock
    from batuta_sync.core.executor import ApplyResult as ApplyResult
    from batuta_sync.core.manifest import load_manifest as load_manifest
    from batuta_sync.core.plankey import plan_key as plan_key
    from batuta_sync.core.planner.plan import Plan as Plan
    from batuta_sync.hub.cache import HfCache as HfCache
    from batuta_sync.hub.models import DatasetQuery as DatasetQuery
    from batuta_sync.hub.models import ModelQuery as ModelQuery
    from batuta_sync.hub.models import SortKey as SortKey
    from batuta_sync.hub.models import SpaceQuery as SpaceQuery
    from batuta_sync.hub.models import SpaceSdk as SpaceSdk
    from batuta_sync.publish import local_manifest as local_manifest
    from batuta_sync.publish.card import generate_model_card as generate_model_card
    from batuta_sync.publish.manifest import UploadManifest as UploadManifest
    from batuta_sync.publish.push import PushRequest as PushRequest
    from batuta_sync.publish.push import PushResult as PushResult
    from batuta_sync.publish.push import prepare_push as prepare_push
    from batuta_sync.publish.push import push as push
    from batuta_sync.pull import PullRequest as PullRequest
    from batuta_sync.pull import PullResult as PullResult
    from batuta_sync.safety import SafetyPolicy as SafetyPolicy
    from batuta_sync.safety import classify_file_safety as classify_file_safety
    from batuta_sync.settings import Settings as Settings
    from batuta_sync.settings import resolve_settings as resolve_settings
    from batuta_sync.types import HfAssetType as HfAssetType
    from batuta_sync.types import RepoRef as RepoRef

# name -> module that defines it (loaded on first use); the same pairs as the imports above.
_LAZY: dict[str, str] = {
    "Action": "batuta_sync.core.actions",
    "ApplyResult": "batuta_sync.core.executor",
    "DatasetQuery": "batuta_sync.hub.models",
    "FormatConverter": "batuta_sync.convert",
    "HfAssetType": "batuta_sync.types",
    "HfCache": "batuta_sync.hub.cache",
    "HfClient": "batuta_sync.client",
    "LockUpdate": "batuta_sync.core.api",
    "ModelQuery": "batuta_sync.hub.models",
    "Plan": "batuta_sync.core.planner.plan",
    "PlanAndApply": "batuta_sync.core.api",
    "PlanSession": "batuta_sync.core.api",
    "PullRequest": "batuta_sync.pull",
    "PullResult": "batuta_sync.pull",
    "PushRequest": "batuta_sync.publish.push",
    "PushResult": "batuta_sync.publish.push",
    "RepoRef": "batuta_sync.types",
    "SafetyPolicy": "batuta_sync.safety",
    "Settings": "batuta_sync.settings",
    "SortKey": "batuta_sync.hub.models",
    "SpaceQuery": "batuta_sync.hub.models",
    "SpaceSdk": "batuta_sync.hub.models",
    "UploadManifest": "batuta_sync.publish.manifest",
    "apply_plan": "batuta_sync.core.api",
    "classify_file_safety": "batuta_sync.safety",
    "generate_model_card": "batuta_sync.publish.card",
    "load_manifest": "batuta_sync.core.manifest",
    "local_manifest": "batuta_sync.publish",
    "make_plan": "batuta_sync.core.api",
    "plan_and_apply": "batuta_sync.core.api",
    "plan_key": "batuta_sync.core.plankey",
    "plan_session": "batuta_sync.core.api",
    "prepare_push": "batuta_sync.publish.push",
    "pull_or_convert": "batuta_sync.convert.on_pull",
    "push": "batuta_sync.publish.push",
    "resolve_settings": "batuta_sync.settings",
    "update_lock": "batuta_sync.core.api",
}

__all__ = [
    "Action",
    "ApplyResult",
    "BatutaError",
    "DatasetQuery",
    "FormatConverter",
    "HfAssetType",
    "HfCache",
    "HfClient",
    "LockUpdate",
    "ModelQuery",
    "Plan",
    "PlanAndApply",
    "PlanSession",
    "PullRequest",
    "PullResult",
    "PushRequest",
    "PushResult",
    "RepoRef",
    "SafetyPolicy",
    "Settings",
    "SortKey",
    "SpaceQuery",
    "SpaceSdk",
    "UploadManifest",
    "__version__",
    "apply_plan",
    "classify_file_safety",
    "generate_model_card",
    "load_manifest",
    "local_manifest",
    "make_plan",
    "plan_and_apply",
    "plan_key",
    "plan_session",
    "prepare_push",
    "pull_or_convert",
    "push",
    "resolve_settings",
    "update_lock",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'batuta_sync' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
