"""The Plan value: actions + drift + preconditions + the fingerprint of its inputs.

A plan is data you can save (``to_json``), show, diff and refuse.  ``apply``
re-checks the fingerprint (manifest digest, lock digest, endpoint) and the
preconditions (the commit each touched repo pointed to) and refuses a stale plan.

A saved plan is signed: ``plan_mac`` is an HMAC-SHA256 over the canonical JSON under
the plan key (:mod:`batuta_sync.core.plankey`).  :meth:`Plan.from_dict` refuses a plan
whose MAC is missing or wrong, then checks the shape of every field (identifiers with
:mod:`batuta_sync.ids`); paths are never taken from a plan at apply time (see
:mod:`batuta_sync.core.steps`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from batuta_sync.core.actions import Action, ActionKind, Drift, DriftKind, Reason
from batuta_sync.errors import ConfigError, ManifestError

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
    endpoint: str = ""  # the Hub every resource of this plan was observed on (and apply must use)
    locked_endpoint: str = ""  # the Hub hf.lock was resolved on ("" = not recorded)
    actions: tuple[Action, ...] = ()
    unchanged: tuple[str, ...] = ()
    drift: tuple[Drift, ...] = ()
    preconditions: tuple[Precondition, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    free_bytes: int | None = None
    warnings: tuple[str, ...] = ()
    format_version: str = FORMAT_VERSION
    # The shared remote (URL, no credentials) and, per pull, where its blobs come from:
    # {address: {"files": to fetch, "remote": of those on the remote, "from": cache|remote|hub|partly}}.
    # Computed by the I/O edge after planning (``core.api``), never by the planner.
    remote: str = ""
    sources: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    # ---- summary
    @property
    def refresh_only(self) -> bool:
        return bool(self.options.get("refresh_only"))

    @property
    def endpoint_changed(self) -> bool:
        """hf.lock was resolved on another Hub than this plan talks to (a visible plan change)."""
        from batuta_sync.settings import endpoint_key

        return bool(self.endpoint and self.locked_endpoint) and endpoint_key(self.endpoint) != endpoint_key(
            self.locked_endpoint
        )

    @property
    def has_changes(self) -> bool:
        """True when apply would do something (or, for --refresh-only, when anything drifted);
        a changed endpoint is a change too."""
        if self.refresh_only:
            return bool(self.drift) or self.endpoint_changed
        return bool(self.actions) or self.endpoint_changed

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

    def resources(self) -> dict[str, dict[str, str]]:
        """address -> {"endpoint": ...} for every resource the plan covers (acted on or unchanged)."""
        addresses = sorted({a.address for a in self.actions} | set(self.unchanged))
        return {a: {"endpoint": self.endpoint} for a in addresses}

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
            "endpoint": self.endpoint,
            "locked_endpoint": self.locked_endpoint,
            "endpoint_changed": self.endpoint_changed,
            "resources": self.resources(),
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
            **({"remote": self.remote, "sources": {a: dict(v) for a, v in sorted(self.sources.items())}}
               if self.remote else {}),
        }

    def to_dict(self, key: bytes | None = None) -> dict[str, Any]:
        """The plan as JSON data; with ``key``, signed (``plan_mac``) so apply can trust it."""
        body = self.body()
        if key is not None:
            body[MAC_FIELD] = plan_mac(body, key)
        return body

    def to_json(self, key: bytes) -> str:
        """The signed plan file (``batuta plan -o``)."""
        return json.dumps(self.to_dict(key), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, key: bytes, source: str = "plan.json") -> Plan:
        """The plan in ``d`` once its MAC checks out under ``key`` and every field has its shape.

        A missing or wrong ``plan_mac`` raises :class:`PlanIntegrityError`; any other problem
        (wrong types, identifiers that are not ids, huge values) a :class:`ManifestError`
        naming ``source`` -- both exit 3, nothing applied.
        """
        from batuta_sync.ids import InvalidIdentifierError

        if not isinstance(d, Mapping):
            raise ManifestError(f"{source} is not a batuta plan (expected a JSON object).", hint=_HINT)
        verify_mac(d, key, source=source)
        try:
            return _parse(d)
        except InvalidIdentifierError as exc:
            raise ManifestError(f"{source} is not a valid batuta plan: {exc.message}", hint=_HINT)
        except KeyError as exc:
            raise ManifestError(f"{source} is not a valid batuta plan: missing field {exc}.", hint=_HINT)
        except (ValueError, TypeError, AttributeError) as exc:
            raise ManifestError(f"{source} is not a valid batuta plan: {exc}.", hint=_HINT)

    @classmethod
    def from_json(cls, text: str, *, key: bytes, source: str = "plan.json") -> Plan:
        if len(text) > MAX_PLAN_CHARS:
            raise ManifestError(f"{source} is larger than {MAX_PLAN_CHARS} characters; not a plan batuta wrote.", hint=_HINT)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{source} is not JSON: {exc}.", hint=_HINT)
        except RecursionError:
            raise ManifestError(f"{source} is nested too deeply to be a plan.", hint=_HINT)
        if not isinstance(data, dict):
            raise ManifestError(f"{source} is not a batuta plan (expected a JSON object).", hint=_HINT)
        return cls.from_dict(data, key=key, source=source)


_HINT = "Create it with `batuta plan -o plan.json`; do not edit it by hand."
MAX_PLAN_CHARS = 256 * 1024 * 1024
MAX_INT = 2**53  # JSON-safe; no byte count or serial is larger
MAC_FIELD = "plan_mac"
MAC_PREFIX = "hmac-sha256:"
_DIGEST_RE = re.compile(r"\Asha256:[0-9a-f]{64}\Z")
_LOCK_DIGEST_RE = re.compile(r"\A(none|sha256:[0-9a-f]{64})\Z")
_MAC_RE = re.compile(r"\Ahmac-sha256:[0-9a-f]{64}\Z")


class PlanIntegrityError(ConfigError):
    """A saved plan without a valid MAC under this user's (or this CI's) plan key."""

    code = "plan-integrity"
    default_hint = (
        "Re-create the plan with `batuta plan -o plan.json` where it will be applied, or give both "
        "jobs the same BATUTA_PLAN_KEY (see docs/plan-apply.md, 'Plan integrity')."
    )


def canonical(body: Mapping[str, Any]) -> bytes:
    """The bytes the MAC covers: sorted keys, no spaces, UTF-8 (the MAC field itself excluded)."""
    data = json.dumps({k: v for k, v in body.items() if k != MAC_FIELD}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return data.encode("utf-8")


def plan_mac(body: Mapping[str, Any], key: bytes) -> str:
    """HMAC-SHA256 of the canonical plan under ``key`` (see :mod:`batuta_sync.core.plankey`)."""
    return MAC_PREFIX + hmac.new(key, canonical(body), hashlib.sha256).hexdigest()


def verify_mac(d: Mapping[str, Any], key: bytes, *, source: str = "plan.json") -> None:
    """Raise :class:`PlanIntegrityError` unless ``d`` carries the right MAC for its content."""
    mac = d.get(MAC_FIELD)
    if mac is None:
        old = " (it has only an unkeyed `plan_digest`, which anyone can recompute)" if "plan_digest" in d else ""
        raise PlanIntegrityError(f"{source} has no `{MAC_FIELD}`{old}; refusing to use an unsigned plan.")
    if not isinstance(mac, str) or not _MAC_RE.match(mac):
        raise PlanIntegrityError(f"{source}: `{MAC_FIELD}` is not an HMAC-SHA256 value; refusing the plan.")
    if not hmac.compare_digest(mac, plan_mac(d, key)):
        raise PlanIntegrityError(
            f"{source}: `{MAC_FIELD}` does not match the content under this plan key: the file was "
            "edited, or it was made with another key (another user, or a different BATUTA_PLAN_KEY)."
        )


def _int(value: Any, what: str, *, lo: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= MAX_INT:
        raise ValueError(f"{what} must be an integer between {lo} and {MAX_INT}, got {_show(value)}")
    return value


def _str(value: Any, what: str, *, limit: int = 4096) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise ValueError(f"{what} must be a string of at most {limit} characters, got {_show(value)}")
    return value


def _opt_str(value: Any, what: str, *, limit: int = 4096) -> str | None:
    return None if value is None else _str(value, what, limit=limit)


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a list, got {_show(value)}")
    return value


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object, got {_show(value)}")
    return value


def _match(rx: re.Pattern[str], value: Any, what: str) -> str:
    if not isinstance(value, str) or not rx.match(value):
        raise ValueError(f"{what} has an invalid value {_show(value)}")
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _address(value: Any, what: str) -> str:
    from batuta_sync.core.manifest import ADDRESS_RE

    return _match(ADDRESS_RE, value, what)


def _action(raw: Any, i: int) -> Action:
    from batuta_sync import ids
    from batuta_sync.core.lockfile import entry_from_dict

    where = f"actions[{i}]"
    a = _dict(raw, where)
    address = _address(a["address"], f"{where}.address")
    kind = ActionKind(a["kind"])
    if a.get("id", f"{kind.value}:{address}") != f"{kind.value}:{address}":
        raise ValueError(f"{where}.id {_show(a.get('id'))} is not {kind.value}:{address}")
    params = _dict(a.get("params") or {}, f"{where}.params")
    for name in ("purge", "purge_output"):
        for j, rel in enumerate(_list(params.get(name) or [], f"{where}.params.{name}")):
            ids.repo_path(rel, where=f"{where}.params.{name}[{j}]")
    if params.get("parent_commit") is not None:
        ids.commit_sha(params["parent_commit"], where=f"{where}.params.parent_commit")
    _opt_str(params.get("source_tree"), f"{where}.params.source_tree", limit=200)
    lock_entry = a.get("lock_entry")
    if lock_entry is not None:
        entry_from_dict(address, _dict(lock_entry, f"{where}.lock_entry"))  # validates every field
    deps = tuple(_str(x, f"{where}.deps[]", limit=200) for x in _list(a.get("deps", []), f"{where}.deps"))
    return Action(
        kind=kind,
        address=address,
        reason=Reason(a["reason"]),
        detail=_str(a.get("detail", ""), f"{where}.detail"),
        deps=deps,
        params=params,
        lock_entry=lock_entry,
        download_bytes=_int(a.get("download_bytes", 0), f"{where}.download_bytes"),
        upload_bytes=_int(a.get("upload_bytes", 0), f"{where}.upload_bytes"),
        disk_bytes=_int(a.get("disk_bytes", 0), f"{where}.disk_bytes"),
    )


def _precondition(raw: Any, i: int) -> Precondition:
    from batuta_sync import ids

    where = f"preconditions[{i}]"
    p = _dict(raw, where)
    if p["type"] not in ("model", "dataset", "space"):
        raise ValueError(f"{where}.type must be model, dataset or space, got {_show(p['type'])}")
    expected = p.get("expected_commit")
    return Precondition(
        _address(p["address"], f"{where}.address"),
        ids.repo_id(p["repo"], where=f"{where}.repo"),
        p["type"],
        ids.revision(p["revision"], where=f"{where}.revision"),
        None if expected is None else ids.commit_sha(expected, where=f"{where}.expected_commit"),
    )


def _drift(raw: Any, i: int) -> Drift:
    where = f"drift[{i}]"
    d = _dict(raw, where)
    return Drift(
        _address(d["address"], f"{where}.address"),
        DriftKind(d["kind"]),
        _str(d["detail"], f"{where}.detail"),
        _opt_str(d.get("locked"), f"{where}.locked", limit=200),
        _opt_str(d.get("observed"), f"{where}.observed", limit=200),
    )


def _parse(d: Mapping[str, Any]) -> Plan:
    if d.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"format_version {_show(d.get('format_version'))} is not {FORMAT_VERSION!r}")
    manifest_path = _str(d["manifest_path"], "manifest_path", limit=255)
    if "/" in manifest_path or "\\" in manifest_path or manifest_path in ("", ".", ".."):
        raise ValueError(f"manifest_path must be a file name, got {_show(manifest_path)}")
    actions = tuple(_action(a, i) for i, a in enumerate(_list(d.get("actions", []), "actions")))
    known = {a.id for a in actions}
    for a in actions:
        for dep in a.deps:
            if dep not in known:
                raise ValueError(f"{a.id} depends on {_show(dep)}, which is not an action of the plan")
    from batuta_sync.core.workspace import check_plan_id

    free = d.get("free_bytes")
    return Plan(
        plan_id=check_plan_id(d["plan_id"]),
        manifest_path=manifest_path,
        manifest_digest=_match(_DIGEST_RE, d["manifest_digest"], "manifest_digest"),
        lock_digest=_match(_LOCK_DIGEST_RE, d["lock_digest"], "lock_digest"),
        lock_serial=_int(d.get("lock_serial", 0), "lock_serial"),
        lock_lineage=_str(d.get("lock_lineage", ""), "lock_lineage", limit=200),
        tool_version=_str(d.get("tool_version", ""), "tool_version", limit=200),
        converter_version=_str(d.get("converter_version", ""), "converter_version", limit=200),
        endpoint=_str(d.get("endpoint", ""), "endpoint", limit=2048),
        locked_endpoint=_str(d.get("locked_endpoint", ""), "locked_endpoint", limit=2048),
        actions=actions,
        unchanged=tuple(_address(x, "unchanged[]") for x in _list(d.get("unchanged", []), "unchanged")),
        drift=tuple(_drift(x, i) for i, x in enumerate(_list(d.get("drift", []), "drift"))),
        preconditions=tuple(_precondition(p, i) for i, p in enumerate(_list(d.get("preconditions", []), "preconditions"))),
        options=_dict(d.get("options") or {}, "options"),
        free_bytes=None if free is None else _int(free, "free_bytes"),
        warnings=tuple(_str(w, "warnings[]") for w in _list(d.get("warnings", []), "warnings")),
        remote=_str(d.get("remote", ""), "remote", limit=2048),
        sources=_sources(d.get("sources") or {}),
    )


_SOURCE_FROM = ("cache", "remote", "hub", "partly")


def _sources(raw: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for address, v in _dict(raw, "sources").items():
        where = f"sources.{_show(address)}"
        e = _dict(v, where)
        if e.get("from") not in _SOURCE_FROM:
            raise ValueError(f"{where}.from must be one of {', '.join(_SOURCE_FROM)}")
        out[_address(address, where)] = {
            "files": _int(e["files"], f"{where}.files"), "remote": _int(e["remote"], f"{where}.remote"), "from": e["from"],
        }
    return out
