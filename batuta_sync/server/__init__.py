"""A local Hugging Face Hub-compatible server (``batuta hub serve``; the test peer of every suite).

It is an independent peer of the batuta client: it imports only ``batuta_sync.ids`` (the same
identifier and repo-path rules as the client) and ``batuta_sync._fmt`` (git digests), nothing else
of batuta, so a bug in the client cannot hide behind the same bug in its test server. For the
same reason it keeps its own safetensors, GGUF and README front-matter parsers (``server/meta.py``,
``server/web/card.py``) instead of ``batuta_sync.fileformats``: on purpose, not a copy to merge.

Usage::

    from batuta_sync.server import HubServer, UserSpec
    srv = HubServer(root, users=[UserSpec("alice", "tok-a", "write")], orgs={"acme": ["alice"]}).start()
    srv.store.commit("alice/tiny", {"config.json": b"{}"})       # seed directly
    srv.faults.configure(rate_limit=1, retry_after="1")          # inject faults (deterministic)
    srv.faults.configure(fault_rate=0.3, fault_seed=7)           # or ~30 % random faults, seeded
    # over HTTP too (/_batuta/, off by default): HubServer(..., control_api=True, admin_token="…")
    srv.faults.counts                                            # what was injected, by kind
    srv.log.count("GET", "/resolve/")                            # read the request log
    srv.stop()

With no users the server is open: every request acts as user ``local`` with write access (only on a
loopback address unless ``insecure_open_write=True``).  Multi-user safety (LFS object ownership,
the admin-token control API, body / card / log bounds, path rules, URL building) is described in
docs/hub-server.md ("Security"); ``Limits`` holds the size bounds.  The random fault mode (drop /
truncate / corrupt on file bodies, 429 / 5xx everywhere; also ``POST /_batuta/faults`` and ``batuta hub serve --fault-rate R --fault-seed N``) is
described in :class:`batuta_sync.server.state.Faults` and docs/reliability.md.
"""

from __future__ import annotations

from batuta_sync.server.app import HubServer
from batuta_sync.server.state import Faults, Limits, LogEntry, RequestLog, UserSpec
from batuta_sync.server.store import LFS_EXTENSIONS, LFS_SIZE_THRESHOLD, Store, StoreError, is_lfs_policy

__all__ = [
    "LFS_EXTENSIONS",
    "LFS_SIZE_THRESHOLD",
    "Faults",
    "HubServer",
    "Limits",
    "LogEntry",
    "RequestLog",
    "Store",
    "StoreError",
    "UserSpec",
    "is_lfs_policy",
]
