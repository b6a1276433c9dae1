"""Pulling repos into the cache: what to fetch (pure) and fetching it (I/O).

* :mod:`batuta_sync.pull.select` - PURE: :func:`plan_pull` decides which files of a snapshot
  to fetch (formats, quantization, shards, dataset splits, safety by name).
* :mod:`batuta_sync.pull.engine` - I/O: :func:`pull` resolves, downloads, content-checks,
  links the snapshot and materializes ``--output``; :func:`cached_snapshot` reads the cache.
  It never converts: a format the repo lacks raises :class:`ConversionNeededError`, and
  :func:`batuta_sync.convert.on_pull.pull_or_convert` is the explicit opt-in to convert.

Example::

    from batuta_sync.pull import PullRequest, pull
    from batuta_sync.settings import resolve_settings
    from batuta_sync.types import RepoRef

    res = pull(resolve_settings(), PullRequest(RepoRef("TheBloke/Llama-2-7B-GGUF"), format="gguf",
                                               quantization="Q4_K_M"))
    print(res.snapshot_dir, [f.path for f in res.selected])
"""

from __future__ import annotations

from batuta_sync.pull.engine import ConversionNeededError, PullResult, cached_snapshot, pull
from batuta_sync.pull.select import (
    FORMATS,
    QUANT_PREFERENCE,
    ConversionNeeded,
    PullRequest,
    PullSelection,
    card_splits,
    dataset_splits,
    gguf_quantizations,
    plan_pull,
    weight_family,
)

__all__ = [
    "FORMATS",
    "QUANT_PREFERENCE",
    "ConversionNeeded",
    "ConversionNeededError",
    "PullRequest",
    "PullResult",
    "PullSelection",
    "cached_snapshot",
    "card_splits",
    "dataset_splits",
    "gguf_quantizations",
    "plan_pull",
    "pull",
    "weight_family",
]
