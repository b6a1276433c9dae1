"""Users, fault injection (deterministic knobs and a seeded random mode), the request log and counters
of a running local Hub."""

from __future__ import annotations

import random
import re
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class UserSpec:
    """A user of the local Hub: name, bearer token and role (``read`` or ``write``)."""

    name: str
    token: str
    role: str = "write"

    def __post_init__(self) -> None:
        if self.role not in ("read", "write"):
            raise ValueError(f"role must be 'read' or 'write', not {self.role!r}")

    def __repr__(self) -> str:  # never show the token
        return f"UserSpec(name={self.name!r}, token='***', role={self.role!r})"


@dataclass(frozen=True)
class LogEntry:
    method: str
    path: str
    query: str
    status: int
    bytes_in: int
    bytes_out: int


_ENTRY_OVERHEAD = 96  # bytes charged per log entry besides its strings (object, ints, tuple)


def _entry_cost(entry: LogEntry) -> int:
    return _ENTRY_OVERHEAD + len(entry.method) + len(entry.path) + len(entry.query)


class RequestLog:
    """Every request (except ``/_batuta/`` control calls), in completion order.

    A ring buffer bounded both in entries and in bytes (``max_bytes`` counts the path and query
    strings plus a fixed overhead per entry): on a long-running server the oldest entries go first,
    so a flood of requests with long URLs cannot grow the log without bound.
    """

    def __init__(self, max_entries: int = 200_000, max_bytes: int = 32 << 20) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: deque[LogEntry] = deque()
        self._bytes = 0
        self._offset = 0  # how many entries were dropped or cleared before _entries[0]

    @property
    def bytes_used(self) -> int:
        with self._lock:
            return self._bytes

    def add(self, entry: LogEntry) -> int:
        with self._lock:
            self._entries.append(entry)
            self._bytes += _entry_cost(entry)
            while self._entries and (len(self._entries) > self.max_entries or self._bytes > self.max_bytes):
                self._bytes -= _entry_cost(self._entries.popleft())
                self._offset += 1
            return self._offset + len(self._entries) - 1

    def replace(self, index: int, entry: LogEntry) -> None:
        """Fix up an entry added earlier (no-op if it was dropped or the log was cleared since)."""
        with self._lock:
            i = index - self._offset
            if 0 <= i < len(self._entries):
                self._bytes += _entry_cost(entry) - _entry_cost(self._entries[i])
                self._entries[i] = entry

    @property
    def entries(self) -> list[LogEntry]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._offset = self._offset + len(self._entries)
            self._entries.clear()
            self._bytes = 0

    def count(self, method: str | None = None, path_contains: str | None = None) -> int:
        return sum(
            1
            for e in self.entries
            if (method is None or e.method == method.upper())
            and (path_contains is None or path_contains in e.path)
        )

    def as_json(self) -> list[dict[str, Any]]:
        return [asdict(e) for e in self.entries]


@dataclass(frozen=True)
class Limits:
    """Size bounds of what a client may send; a request over one is answered 413 with the limit."""

    max_json_body: int = 16 << 20
    """JSON request bodies (preupload, LFS batch, paths-info, repo create / settings, …)."""
    max_commit_body: int = 4 << 30
    """A whole NDJSON commit payload (inline files included)."""
    max_commit_line: int = 64 << 20
    """One NDJSON line of a commit (one operation; an inline file's base64 content)."""
    max_commit_ops: int = 100_000
    """Operations in one commit."""
    max_lfs_objects: int = 1_000
    """Objects in one LFS batch request."""
    max_expand_paths: int = 1_000
    """Paths in one ``paths-info`` request with ``expand`` (each one walks the commit history)."""
    max_pending_uploads: int = 20_000
    """LFS upload tickets handed out and not yet used or expired."""
    upload_ticket_ttl: float = 6 * 3600.0
    """Seconds an LFS upload ticket stays valid."""


FAULT_KINDS: tuple[str, ...] = ("drop", "truncate", "corrupt", "429", "5xx")
"""Kinds of random fault.  ``drop``, ``truncate`` and ``corrupt`` only hit file bodies."""
BODY_KINDS = frozenset({"drop", "truncate", "corrupt"})
DEFAULT_FAULT_WEIGHTS: dict[str, float] = {
    "drop": 0.30,
    "truncate": 0.15,
    "corrupt": 0.15,
    "429": 0.20,
    "5xx": 0.20,
}
SERVER_ERROR_STATUSES = (500, 502, 503, 504)
COUNTED_KINDS: tuple[str, ...] = (*FAULT_KINDS, "ignore_range")
_TRUNCATE_MAX = 64
_MAX_SEEN = 200_000
_COMMIT_SHA = re.compile(r"/[0-9a-f]{40}(?=/|$)")  # draws do not depend on commit ids (they hold a date)

_KNOBS: dict[str, Any] = {
    "latency_ms": 0.0,
    "rate_limit": 0,
    "retry_after": "1",
    "ratelimit_reset": None,
    "server_errors": 0,
    "server_error_status": 503,
    "drop_after_bytes": None,
    "drop_count": 1,
    "ignore_range": False,
    "corrupt": 0,
    "path_filter": None,
    "fault_rate": 0.0,
    "fault_seed": 0,
    "fault_kinds": DEFAULT_FAULT_WEIGHTS,
    "only": None,
}


@dataclass(frozen=True)
class FaultDraw:
    """The random fault drawn for one request: its kind and a uniform number in [0, 1) that places it
    (the byte offset of a drop / flip, the truncation length, the 5xx status)."""

    kind: str
    u: float

    @property
    def status(self) -> int:
        return SERVER_ERROR_STATUSES[int(self.u * len(SERVER_ERROR_STATUSES))]


@dataclass(frozen=True)
class BodyFault:
    """What to do to one file body of ``length`` bytes: send only ``send`` bytes (then close the
    connection) and/or flip the byte at offset ``flip_at``."""

    send: int
    flip_at: int | None = None


class Faults:
    """Fault injection, deterministic and random.

    Deterministic knobs (``rate_limit``, ``server_errors``, ``drop_count``, ``corrupt``) are counters
    consumed one per affected request/body.  Random mode (``fault_rate > 0``) gives about
    ``fault_rate`` of the requests matching ``only`` (a path regex) a fault whose kind is drawn with
    the ``fault_kinds`` weights: body kinds (``drop``, ``truncate``, ``corrupt``) only for GETs of
    file bodies, ``429``/``5xx`` for every request.  Each draw is a function of
    ``(fault_seed, method, path with commit ids blanked, how many times that method+path was seen)``,
    so a seed gives the same faults whatever the interleaving of concurrent clients, run after run.  ``counts`` has what was really
    injected, by kind (deterministic knobs included).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._k: dict[str, Any] = dict(_KNOBS)
        self._counts: dict[str, int] = dict.fromkeys(COUNTED_KINDS, 0)
        self._seen: dict[tuple[str, str], int] = {}
        self._only: re.Pattern[str] | None = None

    def configure(self, **knobs: Any) -> None:
        unknown = set(knobs) - set(_KNOBS)
        if unknown:
            raise ValueError(f"unknown fault knob(s): {', '.join(sorted(unknown))}")
        values = {k: _coerce(k, v) for k, v in knobs.items()}
        only = re.compile(values["only"]) if values.get("only") else None
        with self._lock:
            self._k.update(values)
            if "only" in values:
                self._only = only
            if {"fault_rate", "fault_seed"} & set(values):
                self._seen.clear()  # a (re)seeded random mode starts its sequence afresh

    def reset(self) -> None:
        """Back to no faults (the counts are kept; see ``clear_counts``)."""
        with self._lock:
            self._k = dict(_KNOBS)
            self._only = None
            self._seen.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            out = dict(self._k)
        out["fault_kinds"] = dict(out["fault_kinds"])
        return out

    # ------------------------------------------------------------------ counts
    @property
    def counts(self) -> dict[str, int]:
        """Faults really injected so far, by kind (``drop``, ``truncate``, ``corrupt``, ``429``,
        ``5xx``, ``ignore_range``)."""
        with self._lock:
            return dict(self._counts)

    @property
    def injected(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def clear_counts(self) -> None:
        with self._lock:
            self._counts = dict.fromkeys(COUNTED_KINDS, 0)

    def count(self, kind: str) -> None:
        with self._lock:
            self._counts[kind] = self._counts.get(kind, 0) + 1

    # ------------------------------------------------------------------ knobs read by the handler
    def applies(self, path: str) -> bool:
        pf = self._k["path_filter"]
        return not pf or pf in path

    @property
    def latency_ms(self) -> float:
        return float(self._k["latency_ms"] or 0.0)

    @property
    def ignore_range(self) -> bool:
        return bool(self._k["ignore_range"])

    @property
    def retry_after(self) -> str | None:
        value = self._k["retry_after"]
        return None if value is None else str(value)

    def take_request_fault(self) -> tuple[str, Mapping[str, Any]] | None:
        """Consume a deterministic 429 or 5xx if one is pending: ("429"|"5xx", details)."""
        with self._lock:
            if self._k["rate_limit"] > 0:
                self._k["rate_limit"] -= 1
                self._counts["429"] += 1
                return "429", {"retry_after": self._k["retry_after"], "reset": self._k["ratelimit_reset"]}
            if self._k["server_errors"] > 0:
                self._k["server_errors"] -= 1
                self._counts["5xx"] += 1
                return "5xx", {"status": int(self._k["server_error_status"])}
        return None

    def draw(self, method: str, path: str, *, body: bool) -> FaultDraw | None:
        """Random mode: the fault for this request, or None.  ``body``: the answer is a file body
        (GET of a resolve/LFS download), so body kinds may be drawn.  A drawn 429/5xx is counted
        here (the caller must inject it); a body kind is counted by ``take_body_fault``."""
        with self._lock:
            rate = float(self._k["fault_rate"])
            if rate <= 0 or (self._only is not None and not self._only.search(path)):
                return None
            key = (method, path)
            n = self._seen.get(key, 0)
            if len(self._seen) >= _MAX_SEEN:  # a long-running server: forget, keep serving
                self._seen.clear()
            self._seen[key] = n + 1
            seed = self._k["fault_seed"]
            weights = {
                k: w for k, w in self._k["fault_kinds"].items() if w > 0 and (body or k not in BODY_KINDS)
            }
        rng = random.Random(f"{seed}|{method}|{_COMMIT_SHA.sub('/@', path)}|{n}")
        if rng.random() >= rate or not weights:
            return None
        kind = rng.choices(list(weights), weights=list(weights.values()))[0]
        drawn = FaultDraw(kind, rng.random())
        if kind not in BODY_KINDS:
            self.count(kind)
        return drawn

    def take_body_fault(self, length: int, drawn: FaultDraw | None = None) -> BodyFault | None:
        """For one file body of ``length`` bytes: a deterministic drop/corrupt if one is pending,
        else the random ``drawn`` body fault (if it can apply to that length), else None."""
        with self._lock:
            send, flip_at = length, None
            if self._k["drop_after_bytes"] is not None and self._k["drop_count"] > 0:
                self._k["drop_count"] -= 1
                send = max(0, min(int(self._k["drop_after_bytes"]), length))
                if send < length:
                    self._counts["drop"] += 1
            if self._k["corrupt"] > 0:
                self._k["corrupt"] -= 1
                if length > 0:
                    flip_at = length // 2
                    self._counts["corrupt"] += 1
            if send < length or flip_at is not None:
                return BodyFault(send, flip_at)
            if drawn is None or drawn.kind not in BODY_KINDS:
                return None
            if drawn.kind == "truncate":
                if length < 2:
                    return None
                fault = BodyFault(length - 1 - int(drawn.u * min(_TRUNCATE_MAX, length - 1)))
            elif length < 1:
                return None
            elif drawn.kind == "drop":
                fault = BodyFault(int(drawn.u * length))
            else:
                fault = BodyFault(length, int(drawn.u * length))
            self._counts[drawn.kind] += 1
            return fault


def _coerce(key: str, value: Any) -> Any:
    if value is None:
        return None if _KNOBS[key] is None or key in ("retry_after", "path_filter") else _KNOBS[key]
    if key == "latency_ms":
        return float(value)
    if key in ("rate_limit", "server_errors", "corrupt", "drop_count", "server_error_status"):
        return int(value)
    if key in ("drop_after_bytes", "ratelimit_reset", "fault_seed"):
        return int(value)
    if key == "ignore_range":
        return bool(value)
    if key == "fault_rate":
        rate = float(value)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault_rate must be between 0 and 1, not {value!r}")
        return rate
    if key == "fault_kinds":
        return _fault_weights(value)
    if key == "only":
        try:
            re.compile(str(value))
        except re.error as exc:
            raise ValueError(f"only must be a path regular expression: {exc}") from None
    return str(value)


def _fault_weights(value: Any) -> dict[str, float]:
    """``{"drop": 3, "429": 1}`` (weights), or a list / comma-separated string of kinds (equal weights)."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, Mapping):
        pairs = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, (list, tuple, set, frozenset)):
        pairs = [(str(k), 1.0) for k in value]
    else:
        raise ValueError("fault_kinds must map kinds to weights or list kinds")
    out: dict[str, float] = {}
    for k, w in pairs:
        if k not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {k!r} (known: {', '.join(FAULT_KINDS)})")
        if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
            raise ValueError(f"the weight of fault kind {k!r} must be a number >= 0, not {w!r}")
        out[k] = float(w)
    if not any(out.values()):
        raise ValueError("fault_kinds needs at least one kind with a weight > 0")
    return out
