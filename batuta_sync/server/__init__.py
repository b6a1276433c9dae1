"""A local Hugging Face Hub-compatible server (``batuta hub serve``; the test peer of every suite).

Usage::

    from batuta_sync.server import HubServer, UserSpec
    srv = HubServer(root, users=[UserSpec("alice", "tok-a", "write")], orgs={"acme": ["alice"]}).start()
    srv.store.commit("alice/tiny", {"config.json": b"{}"})       # seed directly
    srv.faults.configure(rate_limit=1, retry_after="1")          # inject faults (deterministic)
    srv.faults.configure(fault_rate=0.3, fault_seed=7)           # or ~30 % random faults, seeded
    srv.faults.counts                                            # what was injected, by kind
    srv.log.count("GET", "/resolve/")                            # read the request log
    srv.stop()

With no users the server is open: every request acts as user ``local`` with write access.
See docs/hub-server.md; the random fault mode (drop / truncate / corrupt on file bodies, 429 / 5xx
everywhere; also ``POST /_batuta/faults`` and ``batuta hub serve --fault-rate R --fault-seed N``) is
described in :class:`batuta_sync.server.state.Faults` and docs/reliability.md.
"""

from __future__ import annotations

from batuta_sync.server.app import HubServer
from batuta_sync.server.state import Faults, LogEntry, RequestLog, UserSpec
from batuta_sync.server.store import LFS_EXTENSIONS, LFS_SIZE_THRESHOLD, Store, StoreError, is_lfs_policy

__all__ = [
    "LFS_EXTENSIONS",
    "LFS_SIZE_THRESHOLD",
    "Faults",
    "HubServer",
    "LogEntry",
    "RequestLog",
    "Store",
    "StoreError",
    "UserSpec",
    "is_lfs_policy",
]
