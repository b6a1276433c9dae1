"""Pulling repos into the cache (the package that was ``batuta_sync/pull.py``)."""

from batuta_sync.pull.select import *  # noqa: F403  (move step: the split follows)
from batuta_sync.pull.select import __all__ as __all__
