"""A local Hugging Face Hub-compatible server (``batuta hub serve``; the test peer of every suite).

Usage::

    from batuta_sync.server import HubServer, UserSpec
    srv = HubServer(root, users=[UserSpec("alice", "tok-a", "write")], orgs={"acme": ["alice"]}).start()
    srv.store.commit("alice/tiny", {"config.json": b"{}"})       # seed directly
    srv.faults.configure(rate_limit=1, retry_after="1")          # inject faults
    srv.log.count("GET", "/resolve/")                            # read the request log
    srv.stop()

With no users the server is open: every request acts as user ``local`` with write access.
See docs/hub-server.md.
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
