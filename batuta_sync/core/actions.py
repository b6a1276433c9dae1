"""What a plan can do, and why: ActionKind (with its symbol), Reason, Action, Drift.

Values only (frozen, hashable, JSON round-trippable); no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class ActionKind(str, enum.Enum):
    """The kinds of work apply can do.  ``symbol`` is what the plan rendering shows."""

    PULL = "pull"
    CONVERT = "convert"
    PUSH = "push"
    RELOCK = "relock"
    DELETE_LOCAL = "delete-local"
    NOOP = "noop"

    @property
    def symbol(self) -> str:
        return {
            "pull": "↓",
            "convert": "⇄",
            "push": "↑",
            "relock": "~",
            "delete-local": "-",
            "noop": " ",
        }[self.value]


class Reason(str, enum.Enum):
    """Why an action is planned (one per action; the rendering and JSON show it)."""

    NOT_LOCKED = "not_locked"
    """The manifest has the resource and hf.lock has no entry for it."""
    LOCK_STALE = "lock_stale"
    """The lock entry no longer matches the manifest (repo, type or file selection changed)."""
    REVISION_CHANGED = "revision_changed"
    """The manifest asks for another revision than the one locked."""
    REVISION_MOVED = "revision_moved"
    """The lock pins another commit than the one last materialized here (after `lock --update` or a git pull)."""
    NOT_IN_CACHE = "not_in_cache"
    """Locked files are missing from the local cache."""
    OUTPUT_MISSING = "output_missing"
    """The files are cached but the output directory lacks some of them."""
    DIGEST_MISMATCH = "digest_mismatch"
    """A local file's size (or, with --verify, hash) differs from the lock."""
    PARAMS_CHANGED = "params_changed"
    """A conversion's parameters (target format, quantization) changed."""
    INPUT_CHANGED = "input_changed"
    """A conversion's input files changed (its source was re-resolved)."""
    CONVERTER_CHANGED = "converter_changed"
    """The converter version differs from the one that produced the locked outputs."""
    SOURCE_CHANGED = "source_changed"
    """The files to publish differ from what batuta last pushed."""
    NOT_PUBLISHED = "not_published"
    """A publish that batuta never pushed."""
    REMOTE_CHANGED = "remote_changed"
    """The published branch moved away from the commit batuta pushed (changed outside batuta)."""
    REMOVED_FROM_MANIFEST = "removed_from_manifest"
    """hf.lock has an entry the manifest no longer has."""
    MOVED = "moved"
    """hf.yaml ``moved:`` renamed the resource: only its hf.lock address changes (files stay)."""
    REPLACE_REQUESTED = "replace_requested"
    """`--replace ADDR` forces the action even though everything matches."""
    UP_TO_DATE = "up_to_date"
    """Nothing to do (noop)."""


# Reasons whose action changes the *resolution* recorded in hf.lock (what `--locked` refuses).
LOCK_CHANGING = frozenset(
    {
        Reason.NOT_LOCKED,
        Reason.LOCK_STALE,
        Reason.REVISION_CHANGED,
        Reason.PARAMS_CHANGED,
        Reason.INPUT_CHANGED,
        Reason.CONVERTER_CHANGED,
        Reason.REMOVED_FROM_MANIFEST,
    }
)


class DriftKind(str, enum.Enum):
    """Differences between the lock and the world that no action fixes by itself."""

    UPSTREAM_MOVED = "upstream_moved"
    """The branch/tag now points to another commit than the locked one (`batuta lock --update ADDR`)."""
    LOCAL_MODIFIED = "local_modified"
    """A cached or materialized file differs from the lock."""
    LOCAL_MISSING = "local_missing"
    """A locked file is not present locally."""
    PUBLISHED_DRIFT = "published_drift"
    """A published repo changed outside batuta."""


@dataclass(frozen=True, slots=True)
class Drift:
    address: str
    kind: DriftKind
    detail: str
    locked: str | None = None
    observed: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "kind": self.kind.value,
            "detail": self.detail,
            "locked": self.locked,
            "observed": self.observed,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Drift:
        return cls(d["address"], DriftKind(d["kind"]), d["detail"], d.get("locked"), d.get("observed"))


@dataclass(frozen=True)
class Action:
    """One node of the plan DAG.

    ``id`` is ``"<kind>:<address>"`` and stable across runs.  ``params`` holds
    everything the step function needs (JSON-able), ``lock_entry`` the new hf.lock
    block when it is known at plan time (pulls, relocks), ``deps`` the ids that
    must complete first.
    """

    kind: ActionKind
    address: str
    reason: Reason
    detail: str = ""
    deps: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    lock_entry: dict[str, Any] | None = field(default=None, hash=False, compare=False)
    download_bytes: int = 0
    upload_bytes: int = 0
    disk_bytes: int = 0

    @property
    def id(self) -> str:
        return f"{self.kind.value}:{self.address}"

    @property
    def changes_lock(self) -> bool:
        return self.reason in LOCK_CHANGING

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "address": self.address,
            "reason": self.reason.value,
            "detail": self.detail,
            "deps": list(self.deps),
            "params": self.params,
            "lock_entry": self.lock_entry,
            "download_bytes": self.download_bytes,
            "upload_bytes": self.upload_bytes,
            "disk_bytes": self.disk_bytes,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Action:
        return cls(
            kind=ActionKind(d["kind"]),
            address=d["address"],
            reason=Reason(d["reason"]),
            detail=d.get("detail", ""),
            deps=tuple(d.get("deps", ())),
            params=dict(d.get("params") or {}),
            lock_entry=d.get("lock_entry"),
            download_bytes=int(d.get("download_bytes", 0)),
            upload_bytes=int(d.get("upload_bytes", 0)),
            disk_bytes=int(d.get("disk_bytes", 0)),
        )
