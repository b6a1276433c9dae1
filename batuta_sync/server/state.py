"""Users, fault-injection knobs, the request log and counters of a running local Hub."""

from __future__ import annotations

import threading
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


class RequestLog:
    """Every request (except ``/_batuta/`` control calls), in completion order."""

    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: list[LogEntry] = []
        self._offset = 0

    def add(self, entry: LogEntry) -> int:
        with self._lock:
            self._entries.append(entry)
            if len(self._entries) > self.max_entries:  # long-running servers: keep the newest half
                drop = len(self._entries) - self.max_entries // 2
                del self._entries[:drop]
                self._offset += drop
            return self._offset + len(self._entries) - 1

    def replace(self, index: int, entry: LogEntry) -> None:
        """Fix up an entry added earlier (no-op if the log was cleared since)."""
        with self._lock:
            i = index - self._offset
            if 0 <= i < len(self._entries):
                self._entries[i] = entry

    @property
    def entries(self) -> list[LogEntry]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._offset = self._offset + len(self._entries)
            self._entries.clear()

    def count(self, method: str | None = None, path_contains: str | None = None) -> int:
        return sum(
            1
            for e in self.entries
            if (method is None or e.method == method.upper())
            and (path_contains is None or path_contains in e.path)
        )

    def as_json(self) -> list[dict[str, Any]]:
        return [asdict(e) for e in self.entries]


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
}


class Faults:
    """Switchable fault injection.  Counters (``rate_limit``, ``server_errors``, ``drop_count``,
    ``corrupt``) are consumed one per affected request/body."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._k: dict[str, Any] = dict(_KNOBS)
        self.injected = 0

    def configure(self, **knobs: Any) -> None:
        unknown = set(knobs) - set(_KNOBS)
        if unknown:
            raise ValueError(f"unknown fault knob(s): {', '.join(sorted(unknown))}")
        with self._lock:
            for k, v in knobs.items():
                self._k[k] = _coerce(k, v)

    def reset(self) -> None:
        with self._lock:
            self._k = dict(_KNOBS)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._k)

    def applies(self, path: str) -> bool:
        pf = self._k["path_filter"]
        return not pf or pf in path

    @property
    def latency_ms(self) -> float:
        return float(self._k["latency_ms"] or 0.0)

    @property
    def ignore_range(self) -> bool:
        return bool(self._k["ignore_range"])

    def take_request_fault(self) -> tuple[str, Mapping[str, Any]] | None:
        """Consume a 429 or 5xx if one is pending: ("429"|"5xx", details)."""
        with self._lock:
            if self._k["rate_limit"] > 0:
                self._k["rate_limit"] -= 1
                self.injected += 1
                return "429", {"retry_after": self._k["retry_after"], "reset": self._k["ratelimit_reset"]}
            if self._k["server_errors"] > 0:
                self._k["server_errors"] -= 1
                self.injected += 1
                return "5xx", {"status": int(self._k["server_error_status"])}
        return None

    def take_body_fault(self) -> tuple[int | None, bool]:
        """For one file body: (drop after K bytes or None, corrupt a byte?)."""
        with self._lock:
            drop: int | None = None
            if self._k["drop_after_bytes"] is not None and self._k["drop_count"] > 0:
                self._k["drop_count"] -= 1
                drop = int(self._k["drop_after_bytes"])
                self.injected += 1
            corrupt = False
            if self._k["corrupt"] > 0:
                self._k["corrupt"] -= 1
                corrupt = True
                self.injected += 1
            return drop, corrupt

    def note_injected(self) -> None:
        with self._lock:
            self.injected += 1


def _coerce(key: str, value: Any) -> Any:
    if value is None:
        return None if _KNOBS[key] is None or key in ("retry_after", "path_filter") else _KNOBS[key]
    if key == "latency_ms":
        return float(value)
    if key in ("rate_limit", "server_errors", "corrupt", "drop_count", "server_error_status"):
        return int(value)
    if key in ("drop_after_bytes", "ratelimit_reset"):
        return int(value)
    if key == "ignore_range":
        return bool(value)
    return str(value)
