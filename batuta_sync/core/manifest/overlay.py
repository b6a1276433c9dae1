"""Overlays: ``hf.prod.yaml`` with ``extends: hf.yaml`` holds only what differs (issue 20).

One folder can hold several environments (dev and prod pins of the same models) without copying
the manifest: an overlay names its base with ``extends:`` and is merged onto it (pure, here).

Rules (``docs/manifest.md`` "Environments"):

* mappings merge key by key, recursively; any other value (a list, a string, a number) replaces the
  base's; ``null`` removes the key from the result (``models: {big: null}`` drops an entry);
* the merged document is what is validated and planned, and its digest is the plan's manifest
  digest (so a change to the base makes a saved overlay plan stale);
* an overlay has its own lock, ``<overlay stem>.lock`` (``hf.prod.yaml`` -> ``hf.prod.lock``), beside it;
  the workspace folder, its ``.batuta`` state and its apply lock are shared (one apply at a time);
* the base must be inside the overlay's folder (a path, not a URL), chains are at most
  ``MAX_DEPTH`` deep, and a cycle is an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MAX_DEPTH = 4
KEY = "extends"


def merge(base: Any, over: Any) -> Any:
    """``over`` merged onto ``base`` (neither is modified)."""
    if not (isinstance(base, dict) and isinstance(over, dict)):
        return over
    out = dict(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif key in out:
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def merge_chain(documents: Sequence[Any]) -> Any:
    """The documents of a chain merged in order (base first), without their ``extends`` keys."""
    result: Any = {}
    for doc in documents:
        result = merge(result, {k: v for k, v in doc.items() if k != KEY} if isinstance(doc, dict) else doc)
    return result


def lock_file_for(overlay_name: str) -> str:
    """``hf.prod.yaml`` -> ``hf.prod.lock``."""
    stem = overlay_name.rsplit(".", 1)[0] if overlay_name.endswith((".yaml", ".yml")) else overlay_name
    return f"{stem}.lock"
