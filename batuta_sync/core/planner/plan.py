"""The Plan value: actions + drift + preconditions + the fingerprint of its inputs.

A plan is data you can save (``to_json``), show, diff and refuse.  ``apply``
re-checks the fingerprint (manifest digest, lock digest) and the preconditions
(the commit each touched repo pointed to) and refuses a stale plan.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from batuta_sync.core.actions import Action, ActionKind, Drift
from batuta_sync.errors import ManifestError

FORMAT_VERSION = "1.0"


@dataclass(frozen=True, slots=True)
class Precondition:
    """``repo@revision`` must still point at ``expected_commit`` (None: must not exist) when applying."""

    address: str
    repo: str
    repo_type: str
    revision: str
    expected_commit: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "repo": self.repo,
            "type": self.repo_type,
            "revision": self.revision,
            "expected_commit": self.expected_commit,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Precondition:
        return cls(d["address"], d["repo"], d["type"], d["revision"], d.get("expected_commit"))


@dataclass(frozen=True)
class Plan:
    """What ``apply`` will do, and the state of the world it was computed against."""

    plan_id: str
    manifest_path: str
    manifest_digest: str
    lock_digest: str
    lock_serial: int = 0
    lock_lineage: str = ""
    tool_version: str = ""
    converter_version: str = ""
    actions: tuple[Action, ...] = ()
    unchanged: tuple[str, ...] = ()
    drift: tuple[Drift, ...] = ()
    preconditions: tuple[Precondition, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    free_bytes: int | None = None
    warnings: tuple[str, ...] = ()
    format_version: str = FORMAT_VERSION

    # ---- summary
    @property
    def refresh_only(self) -> bool:
        return bool(self.options.get("refresh_only"))

    @property
    def has_changes(self) -> bool:
        """True when apply would do something (or, for --refresh-only, when anything drifted)."""
        if self.refresh_only:
            return bool(self.drift)
        return bool(self.actions)

    @property
    def download_bytes(self) -> int:
        return sum(a.download_bytes for a in self.actions)

    @property
    def upload_bytes(self) -> int:
        return sum(a.upload_bytes for a in self.actions)

    @property
    def disk_bytes(self) -> int:
        return sum(a.disk_bytes for a in self.actions)

    @property
    def changes_lock(self) -> bool:
        return any(a.changes_lock for a in self.actions)

    def action(self, action_id: str) -> Action:
        for a in self.actions:
            if a.id == action_id:
                return a
        raise KeyError(action_id)

    def summary(self) -> dict[str, int]:
        counts = {k.value: 0 for k in ActionKind if k is not ActionKind.NOOP}
        for a in self.actions:
            counts[a.kind.value] += 1
        counts["unchanged"] = len(self.unchanged)
        counts["drift"] = len(self.drift)
        counts["download_bytes"] = self.download_bytes
        counts["upload_bytes"] = self.upload_bytes
        counts["disk_bytes"] = self.disk_bytes
        return counts

    # ---- JSON
    def body(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "plan_id": self.plan_id,
            "tool_version": self.tool_version,
            "converter_version": self.converter_version,
            "manifest_path": self.manifest_path,
            "manifest_digest": self.manifest_digest,
            "lock_digest": self.lock_digest,
            "lock_serial": self.lock_serial,
            "lock_lineage": self.lock_lineage,
            "options": dict(self.options),
            "preconditions": [p.to_dict() for p in self.preconditions],
            "actions": [a.to_dict() for a in self.actions],
            "unchanged": list(self.unchanged),
            "drift": [d.to_dict() for d in self.drift],
            "warnings": list(self.warnings),
            "summary": self.summary(),
            "free_bytes": self.free_bytes,
            "has_changes": self.has_changes,
            "applyable": bool(self.actions) and not self.refresh_only,
            "changes_lock": self.changes_lock,
        }

    def to_dict(self) -> dict[str, Any]:
        body = self.body()
        body["plan_digest"] = plan_digest(body)
        return body

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "plan.json") -> Plan:
        try:
            if d.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"format_version {d.get('format_version')!r} is not {FORMAT_VERSION!r}")
            expected = d.get("plan_digest")
            body = {k: v for k, v in d.items() if k != "plan_digest"}
            if expected is not None and plan_digest(body) != expected:
                raise ValueError("plan_digest does not match the content (the file was edited)")
            return cls(
                plan_id=str(d["plan_id"]),
                manifest_path=str(d["manifest_path"]),
                manifest_digest=str(d["manifest_digest"]),
                lock_digest=str(d["lock_digest"]),
                lock_serial=int(d.get("lock_serial", 0)),
                lock_lineage=str(d.get("lock_lineage", "")),
                tool_version=str(d.get("tool_version", "")),
                converter_version=str(d.get("converter_version", "")),
                actions=tuple(Action.from_dict(a) for a in d.get("actions", ())),
                unchanged=tuple(d.get("unchanged", ())),
                drift=tuple(Drift.from_dict(x) for x in d.get("drift", ())),
                preconditions=tuple(Precondition.from_dict(p) for p in d.get("preconditions", ())),
                options=dict(d.get("options") or {}),
                free_bytes=d.get("free_bytes"),
                warnings=tuple(d.get("warnings", ())),
            )
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise ManifestError(
                f"{source} is not a valid batuta plan: {exc}.",
                hint="Create it with `batuta plan -o plan.json`; do not edit it by hand.",
            )

    @classmethod
    def from_json(cls, text: str, *, source: str = "plan.json") -> Plan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{source} is not JSON: {exc}.", hint="Create it with `batuta plan -o plan.json`.")
        except RecursionError:
            raise ManifestError(f"{source} is nested too deeply to be a plan.", hint="Create it with `batuta plan -o plan.json`.")
        if not isinstance(data, dict):
            raise ManifestError(f"{source} is not a batuta plan (expected a JSON object).")
        return cls.from_dict(data, source=source)


def plan_digest(body: Mapping[str, Any]) -> str:
    """sha256 of the canonical plan JSON (without the digest itself)."""
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(data.encode("utf-8")).hexdigest()
