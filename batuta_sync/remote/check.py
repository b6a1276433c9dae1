"""``batuta remote check``: prove a store's conditional writes before trusting it with locks.

Some S3-compatible servers get ``If-None-Match`` / ``If-Match`` wrong, and the lease lock
and create-only CAS depend on them.  On a scratch prefix (``_check/<random>/``, removed
afterwards) this runs:

1. an N-way **create race** on one key: exactly one ``put_if_absent`` wins;
2. a **stale If-Match**: an update with a previous version's ETag is refused and the
   object is unchanged;
3. a **conditional delete** with a stale ETag is refused;
4. **read-after-write**: the winner's bytes read back exactly.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from dataclasses import dataclass, field

from batuta_sync.remote.store import PreconditionFailed, RemoteError, RemoteStore


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str


@dataclass
class CheckReport:
    url: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def locks_safe(self) -> bool:
        """Checks 1 and 2 are what the lease lock needs."""
        return all(r.ok for r in self.results if r.name in ("create-race", "stale-if-match"))

    def to_json(self) -> dict[str, object]:
        return {"url": self.url, "ok": self.ok, "locks_safe": self.locks_safe,
                "checks": [r.__dict__ for r in self.results]}


def run_check(store: RemoteStore, *, writers: int = 8) -> CheckReport:
    report = CheckReport(store.url)
    base = f"_check/{uuid.uuid4().hex}"
    key = f"{base}/race"
    wins: list[bool] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(writers)

    def racer(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            wins.append(store.put_if_absent(key, f"writer-{i}".encode()))
        except BaseException as exc:  # reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=racer, args=(i,)) for i in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        if errors:
            raise errors[0] if isinstance(errors[0], RemoteError) else RemoteError(
                f"The remote {store.url} failed during the create race: {type(errors[0]).__name__}."
            )
        n = sum(wins)
        report.results.append(CheckResult("create-race", n == 1, f"{writers} writers, {n} winner(s) (want 1)"))

        got = store.get(key)
        winner = got[0] if got else b""
        raw_ok = got is not None and winner.startswith(b"writer-")
        report.results.append(CheckResult("read-after-write", raw_ok, "the winner's bytes read back" if raw_ok
                                          else "the object did not read back"))
        old_etag = got[1] if got else ""
        try:
            store.put_if_match(key, b"second", old_etag)
            updated = True
        except PreconditionFailed:
            updated = False
        try:
            store.put_if_match(key, b"stale", old_etag)
            stale_refused = False
        except PreconditionFailed:
            stale_refused = True
        now = store.get(key)
        unchanged = now is not None and now[0] == b"second"
        report.results.append(CheckResult(
            "stale-if-match", updated and stale_refused and unchanged,
            "a current If-Match updated, a stale one was refused, the object kept the current bytes"
            if updated and stale_refused and unchanged else
            f"current update {'ok' if updated else 'refused'}, stale update {'refused' if stale_refused else 'ACCEPTED'}"))
        try:
            store.delete_if_match(key, old_etag)
            del_refused = False
        except PreconditionFailed:
            del_refused = True
        report.results.append(CheckResult(
            "stale-delete", del_refused and store.head(key) is not None,
            "a delete with a stale ETag was refused" if del_refused else "a delete with a stale ETag went through"))
    finally:
        with contextlib.suppress(Exception):
            for info in list(store.list(base + "/")):
                store.delete(info.key)
    return report
