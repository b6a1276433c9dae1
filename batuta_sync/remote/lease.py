"""A lease lock on a remote: one ``apply`` per lineage at a time across runners.

Protocol (``docs/remote.md``; learnt from Terraform's S3 lockfile, plus an expiry so a
killed runner never needs a manual unlock):

1. **Acquire** -- ``put_if_absent(locks/<lineage>.json, record)``.
2. **Busy** -- read the record; if its ``expires`` has passed, take over with
   ``put_if_match(<etag read>)`` (a lost race is a 412: someone else took it); otherwise wait
   (bounded, with a message) or fail fast with the holder's host, pid and lock id.
3. **Renew** -- every ``ttl/3`` with ``put_if_match(<current etag>)``; a 412 means the lease
   was lost: :attr:`Lease.lost` turns true and the caller must start no new action.
4. **Release** -- overwrite the record with ``expires = 0`` under ``put_if_match``, then a
   delete conditioned on that ETag (some S3-compatible servers ignore conditions on DELETE;
   the overwrite alone is already safe).
5. ``batuta force-unlock ID`` deletes a record whose ``id`` is ID.

TTLs are minutes, so clock skew between runners does not matter.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batuta_sync import ids
from batuta_sync.errors import UsageError, WorkspaceBusyError
from batuta_sync.remote.store import PreconditionFailed, RemoteStore

DEFAULT_TTL = 300.0


def lock_key(lineage: str) -> str:
    """``locks/<lineage>.json``; the lineage is hf.lock's uuid-like id (letters, digits, '-')."""
    if not lineage or len(lineage) > 100 or not all(c.isalnum() or c in "-_" for c in lineage):
        raise ids.InvalidIdentifierError(f"Refusing the lineage {lineage!r} as a remote lock name.")
    return f"locks/{lineage}.json"


@dataclass
class LockRecord:
    id: str
    host: str
    pid: int
    plan_id: str
    expires: float

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode()

    @classmethod
    def parse(cls, data: bytes) -> LockRecord | None:
        try:
            d: Any = json.loads(data)
            return cls(str(d["id"]), str(d["host"]), int(d["pid"]), str(d.get("plan_id", "")), float(d["expires"]))
        except (ValueError, KeyError, TypeError):
            return None


class Lease:
    """A held lease; renews itself in a daemon thread until :meth:`release`."""

    def __init__(self, store: RemoteStore, key: str, record: LockRecord, etag: str, ttl: float,
                 clock: Callable[[], float]) -> None:
        self.store, self.key, self.record, self.etag, self.ttl = store, key, record, etag, ttl
        self._clock = clock
        self.lost = False
        self._stop = threading.Event()
        self._mu = threading.Lock()
        self._thread = threading.Thread(target=self._renew_loop, name="batuta-lease", daemon=True)
        self._thread.start()

    @property
    def id(self) -> str:
        return self.record.id

    def renew(self) -> bool:
        with self._mu:
            if self.lost:
                return False
            self.record.expires = self._clock() + self.ttl
            try:
                self.etag = self.store.put_if_match(self.key, self.record.to_json(), self.etag)
                return True
            except PreconditionFailed:
                self.lost = True
                return False

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            with contextlib.suppress(Exception):  # a transient failure retries on the next tick
                if not self.renew():
                    return

    def release(self) -> None:
        self._stop.set()
        with self._mu:
            if self.lost:
                return
            self.record.expires = 0
            try:
                etag = self.store.put_if_match(self.key, self.record.to_json(), self.etag)
                self.store.delete_if_match(self.key, etag)
            except PreconditionFailed:
                pass
            self.lost = True

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire(
    store: RemoteStore,
    lineage: str,
    *,
    plan_id: str = "",
    ttl: float = DEFAULT_TTL,
    wait: float = 0.0,
    poll: float = 2.0,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    on_wait: Callable[[LockRecord], None] | None = None,
) -> Lease:
    """Take the lease of ``lineage`` (waiting up to ``wait`` seconds) or raise WorkspaceBusyError."""
    key = lock_key(lineage)
    record = LockRecord(uuid.uuid4().hex, socket.gethostname(), os.getpid(), plan_id, 0.0)
    deadline = clock() + wait
    told = False
    while True:
        record.expires = clock() + ttl
        if store.put_if_absent(key, record.to_json()):
            info = store.head(key)
            return Lease(store, key, record, info.etag if info else "", ttl, clock)
        got = store.get(key)
        if got is None:
            continue  # released between our put and our get: try again at once
        held, etag = LockRecord.parse(got[0]), got[1]
        if held is None or held.expires <= clock():
            try:
                new_etag = store.put_if_match(key, record.to_json(), etag)
                return Lease(store, key, record, new_etag, ttl, clock)
            except PreconditionFailed:
                continue  # another runner took it over first; look again
        if clock() >= deadline:
            raise WorkspaceBusyError(
                f"Another apply holds the remote lock {key} on {store.url}: host {held.host}, pid {held.pid}, "
                f"lock id {held.id}, expires in {max(0, int(held.expires - clock()))} s.",
                hint="Wait for it (--lock-timeout SECONDS), or if that runner is gone for good: "
                f"batuta force-unlock {held.id}.",
            )
        if on_wait is not None and not told:
            on_wait(held)
            told = True
        sleep(min(poll, max(0.0, deadline - clock())))


def force_unlock(store: RemoteStore, lock_id: str, *, prefix: str = "locks/") -> str:
    """Delete the lock record whose id is ``lock_id``; returns its key (UsageError if none)."""
    for info in store.list(prefix):
        got = store.get(info.key)
        if got is None:
            continue
        rec = LockRecord.parse(got[0])
        if rec is not None and rec.id == lock_id:
            store.delete_if_match(info.key, got[1])
            return info.key
    raise UsageError(f"No remote lock with id {lock_id!r} on {store.url}.", hint="`batuta remote ls locks/` lists them.")
