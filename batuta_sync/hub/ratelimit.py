"""Rate-limit and retry policy (spec "Rate Limit Handling"), pure and stdlib only.

Rules (docs/query.md "Rate limits"):

* Retry only HTTP 408, 429 and 5xx, timeouts and connection errors; never another 4xx.
* Blind exponential backoff ``1 → 2 → 4 → 8 → 16 s`` (initial 1 s, multiplier 2, each wait
  capped at 60 s, 5 retries).
* Server hints are a *minimum*, never shortened: ``RateLimit: "api";r=0;t=N`` means
  wait ``N + 1`` s; ``Retry-After`` is delta-seconds or an HTTP-date.  The wait is
  ``max(backoff, hint)``.
* A 429 pauses every worker on the same endpoint (:class:`Gate`): one process-wide gate
  per Hub endpoint (:func:`shared_gate`), used by the API transport (``hub._http``) and the
  download engine (``hub.download``) alike, so a 429 on a download pauses API calls too.
* ``BATUTA_RETRY_BACKOFF`` (seconds) sets the initial blind backoff, read in one place
  (:meth:`RateLimitConfig.from_env`); chaos runs use e.g. ``0.05``.
* ``max_wait`` / ``no_wait`` turn a long rate-limit wait into
  :class:`~batuta_sync.errors.RateLimitedError` naming when to retry.

The one retry loop (:mod:`batuta_sync.hub.retry`, used by metadata calls, downloads and pushes)
only asks this module what to do.
"""

from __future__ import annotations

import math
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TextIO
from urllib.parse import urlsplit

from batuta_sync.errors import ConfigError

# Longest rate-limit wait accepted without a flag: one Hub window (security.md RL-3).
DEFAULT_MAX_WAIT = 300.0

RETRY_STATUSES = frozenset({408, 429})

#: Environment variable: initial blind backoff in seconds (default 1 → 1, 2, 4, 8, 16 s).
RETRY_BACKOFF_ENV = "BATUTA_RETRY_BACKOFF"


def is_retryable_status(status: int) -> bool:
    """408, 429 and every 5xx are retried; nothing else (no other 4xx, ever)."""
    return status in RETRY_STATUSES or 500 <= status <= 599


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """Spec ``RateLimitConfig``."""

    initial_backoff: float = 1.0
    max_backoff: float = 60.0
    max_retries: int = 5
    multiplier: float = 2.0

    def backoff(self, retry_number: int) -> float:
        """Blind wait before retry ``retry_number`` (1-based): 1, 2, 4, 8, 16 … capped."""
        return float(min(self.initial_backoff * self.multiplier ** (retry_number - 1), self.max_backoff))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RateLimitConfig:
        """The default config, with ``BATUTA_RETRY_BACKOFF`` (initial backoff, seconds) applied.

        The one place this variable is read; an invalid value is a :class:`ConfigError`.
        """
        env = os.environ if env is None else env
        raw = env.get(RETRY_BACKOFF_ENV)
        if raw is None or not raw.strip():
            return cls()
        try:
            value = float(raw.strip())
        except ValueError:
            value = math.nan
        top = cls().max_backoff
        if not (0 <= value <= top):  # also rejects nan and inf
            raise ConfigError(
                f"{RETRY_BACKOFF_ENV}={raw!r} is not a valid initial retry backoff: "
                f"expected a number of seconds between 0 and {top:g} (e.g. 1, the default, or 0.05).",
                hint=f"Fix or unset {RETRY_BACKOFF_ENV}.",
            )
        return cls(initial_backoff=value)


@dataclass(frozen=True, slots=True)
class ServerHint:
    """What the server told us about when to come back."""

    seconds: float
    source: str  # "RateLimit" | "Retry-After"
    bucket: str | None = None
    remaining: int | None = None
    quota: int | None = None
    window: int | None = None


def parse_ratelimit(value: str | None) -> tuple[str | None, int | None, int | None]:
    """``"api";r=0;t=55`` -> ``("api", 0, 55)`` (IETF draft RateLimit header); Nones if malformed."""
    if not value:
        return None, None, None
    name: str | None = None
    r: int | None = None
    t: int | None = None
    for i, part in enumerate(value.split(";")):
        part = part.strip()
        if i == 0 and "=" not in part:
            name = part.strip('"') or None
            continue
        key, _, val = part.partition("=")
        try:
            num = int(val.strip())
        except ValueError:
            continue
        if key.strip() == "r":
            r = num
        elif key.strip() == "t":
            t = num
    return name, r, t


def parse_policy(value: str | None) -> tuple[int | None, int | None]:
    """``"fixed window";"api";q=500;w=300`` -> ``(500, 300)``."""
    q = w = None
    for part in (value or "").split(";"):
        key, _, val = part.strip().partition("=")
        if key in {"q", "w"}:
            try:
                num = int(val)
            except ValueError:
                continue
            if key == "q":
                q = num
            else:
                w = num
    return q, w


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP-date (clamped at 0, rounded up)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return float(max(0, math.ceil((when - now).total_seconds())))


def server_hint(headers: Mapping[str, str], *, now: datetime | None = None) -> ServerHint | None:
    """The longest wait the response asks for, or None when it asks for nothing parseable."""
    bucket, remaining, reset = parse_ratelimit(headers.get("ratelimit"))
    quota, window = parse_policy(headers.get("ratelimit-policy"))
    hints: list[ServerHint] = []
    if reset is not None and (remaining is None or remaining == 0):
        hints.append(ServerHint(float(reset + 1), "RateLimit", bucket, remaining, quota, window))
    ra = parse_retry_after(headers.get("retry-after"), now=now)
    if ra is not None:
        hints.append(ServerHint(ra, "Retry-After", bucket, remaining, quota, window))
    if not hints:
        return None
    return max(hints, key=lambda h: h.seconds)


def compute_wait(config: RateLimitConfig, retry_number: int, hint: ServerHint | None) -> float:
    """``max(backoff_i, server_hint)``: a hint never shortens, the schedule never undercuts."""
    base = config.backoff(retry_number)
    return max(base, hint.seconds) if hint else base


def retry_at_text(seconds: float, *, now: datetime | None = None) -> str:
    """``in 56 s (at 2026-11-26 05:31:12 UTC)`` for messages."""
    from datetime import timedelta

    now = now or datetime.now(timezone.utc)
    at = now + timedelta(seconds=math.ceil(seconds))
    return f"in {math.ceil(seconds)} s (at {at.strftime('%Y-%m-%d %H:%M:%S')} UTC)"


class Gate:
    """A pause shared by every worker on one endpoint.

    ``close(seconds)`` (after a 429) moves the reopening time forward (never back);
    ``remaining()`` is how long a worker must still wait before its next request.
    ``reached(until)`` records that a worker has slept until ``until``: with a real sleep the
    clock is there already; with a simulated one (tests inject ``sleep``) the gate's clock is
    moved forward to it, so the pause is over for every worker, as it would be in real time.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._until = 0.0
        self._skew = 0.0

    def _now(self) -> float:
        return self._clock() + self._skew

    def close(self, seconds: float) -> float:
        """Pause every worker for ``seconds`` from now (never shortens a pause); returns the reopening time."""
        with self._lock:
            self._until = max(self._until, self._now() + seconds)
            return self._until

    @property
    def until(self) -> float:
        """Clock time at which the gate reopens (0 when never closed)."""
        with self._lock:
            return self._until

    def remaining(self) -> float:
        with self._lock:
            return max(0.0, self._until - self._now())

    def reached(self, until: float) -> None:
        """A worker has slept until ``until`` (see the class docstring); moves the clock forward only."""
        with self._lock:
            now = self._now()
            if now < until:
                self._skew += until - now


_GATES: dict[tuple[str, str, int | None], Gate] = {}
_GATES_LOCK = threading.Lock()


def shared_gate(endpoint: str) -> Gate:
    """The process-wide :class:`Gate` of a Hub endpoint: API calls and downloads share it.

    Keyed by origin (scheme, host, port), so ``https://huggingface.co`` and
    ``https://huggingface.co/`` are one gate and two local test servers are two.
    """
    parts = urlsplit(endpoint)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    key = (parts.scheme.lower(), (parts.hostname or "").lower(), port)
    with _GATES_LOCK:
        gate = _GATES.get(key)
        if gate is None:
            gate = _GATES[key] = Gate()
        return gate


def countdown_sleep(stream: TextIO | None = None) -> Callable[[float], None]:
    """A ``sleep`` that shows a one-line countdown on a terminal (plain sleep otherwise)."""
    out = stream or sys.stderr

    def sleep(seconds: float) -> None:
        tty = False
        try:
            tty = out.isatty()
        except (AttributeError, ValueError):
            pass
        if not tty or seconds < 1.5:
            time.sleep(seconds)
            return
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            out.write(f"\r  waiting for the Hub: {math.ceil(left):4d} s left ")
            out.flush()
            time.sleep(min(1.0, left))
        out.write("\r" + " " * 40 + "\r")
        out.flush()

    return sleep
