"""The one retry / backoff / rate-limit loop of every Hub request (pure, stdlib only).

Metadata calls (:mod:`batuta_sync.hub._http`), downloads (:mod:`batuta_sync.hub.download`)
and uploads (:mod:`batuta_sync.hub.upload`) each bring an ``attempt()`` (one try: a request
on their own client) and a ``classify(exc)`` (what a failed try means, decided by exception
type and HTTP status, never by names); :class:`Retry` does the rest, in the spirit of
huggingface_hub's ``_http_backoff_base`` behind ``http_backoff`` / ``http_stream_backoff``:

* :meth:`Retry.request` returns ``attempt()``'s result; :meth:`Retry.stream` opens a
  streamed answer the same way and yields it (only opening is retried, the body is the
  caller's), closing it afterwards;
* before every try the endpoint's shared pause (:class:`~batuta_sync.hub.ratelimit.Gate`)
  is waited out; a 429 closes it for every worker, API calls and downloads alike;
* the waits (:mod:`batuta_sync.hub.ratelimit`, :mod:`batuta_sync.hub.limits`): 408/5xx and
  dropped connections follow the 1, 2, 4, 8, 16 s schedule (server hints a minimum, each
  wait capped by ``--timeout``); a 429 waits ``max(schedule, hint)`` unless that exceeds
  ``max_wait`` (or ``no_wait``): :class:`~batuta_sync.errors.RateLimitedError` naming when
  to retry; a refused connection gets ``connect_retries`` quick retries (0.25 s, 0.5 s), a
  silent server ``timeout_retries``; ``no_wait`` makes no retry at all;
* the last failure becomes the BatutaError its :class:`Failure` builds.

The order per failed try is the one tenacity had here before: the wait is computed first
(so a too-long 429 fails at once, naming the flag), then the retry count is checked.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from batuta_sync.errors import RateLimitedError
from batuta_sync.hub import ratelimit
from batuta_sync.hub.limits import NetLimits

T = TypeVar("T")


class Kind(enum.Enum):
    """What one failed try means for the next."""

    RATE_LIMITED = "rate limited (429)"  # wait max(schedule, hint), close the shared gate
    STATUS = "retryable status"  # 408 / 5xx: the schedule, hints a minimum
    REFUSED = "connection refused"  # never connected (refused, DNS, connect timeout): quick retries
    SILENT = "silent server"  # connected, then no answer within the read timeout
    DROPPED = "connection dropped"  # reset / broken / protocol error: the schedule
    FINAL = "final"  # not retried


@dataclass(frozen=True)
class Failure:
    """``classify``'s verdict on one exception: its kind and the error to raise when it is the last."""

    kind: Kind
    error: Callable[[int], BaseException]  # attempts made -> the BatutaError to raise
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""  # shown by ``on_wait`` (default: derived from the kind and status)

    def why(self) -> str:
        if self.reason:
            return self.reason
        if self.kind is Kind.RATE_LIMITED:
            return "rate limited (429)"
        if self.kind is Kind.STATUS:
            return f"Hub answered {self.status}"
        return str(self.kind.value)


Classify = Callable[[BaseException], Failure | None]  # None: not a failure of ours, re-raised as is


class Retry:
    """The wait policy of one client: schedule, limits, shared gate, ``max_wait`` / ``no_wait``.

    Args:
        endpoint: the Hub endpoint (for messages).
        config: the backoff schedule (default ``RateLimitConfig.from_env()``).
        limits: client limits (quick retries, ``--timeout`` cap on every wait).
        gate: the shared pause (default the endpoint's process-wide gate).
        sleep: how to wait (tests inject a recorder).
        max_wait: longest rate-limit wait accepted (``None``: no limit); ``limits.max_sleep``
            (``--timeout``) lowers it.
        no_wait: fail at the first failure instead of waiting or retrying.
        on_wait: ``on_wait(seconds, reason)`` before every wait.
        drop_retries / drop_wait: retries and wait (by retry number) of dropped connections and
            (wait only) silent servers, when a client keeps its own (the download engine: 8 quick
            reconnects, its partial file is resumed anyway); default: the schedule.
        rate_hint: the hint of a :class:`RateLimitedError`.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        config: ratelimit.RateLimitConfig | None = None,
        limits: NetLimits | None = None,
        gate: ratelimit.Gate | None = None,
        sleep: Callable[[float], None] | None = None,
        max_wait: float | None = ratelimit.DEFAULT_MAX_WAIT,
        no_wait: bool = False,
        on_wait: Callable[[float, str], None] | None = None,
        drop_retries: int | None = None,
        drop_wait: Callable[[int], float] | None = None,
        rate_hint: str = "Retry after that time, raise --max-wait, or log in (`batuta hf login`) for a larger quota.",
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.config = config or ratelimit.RateLimitConfig.from_env()
        self.limits = limits or NetLimits()
        self.gate = gate if gate is not None else ratelimit.shared_gate(self.endpoint)
        self._sleep = sleep or time.sleep
        self.wait_flag = "--max-wait"
        cap = self.limits.max_sleep
        if cap is not None and (max_wait is None or cap < max_wait):  # --timeout: a longer wait fails
            max_wait, self.wait_flag = cap, "--timeout"
        self.max_wait = max_wait
        self.no_wait = no_wait
        self.on_wait = on_wait
        self.drop_retries = drop_retries
        self.drop_wait = drop_wait
        self.rate_hint = rate_hint

    # ------------------------------------------------------------------ waits
    def may_wait(self, seconds: float) -> bool:
        if self.no_wait:
            return seconds <= 0
        return self.max_wait is None or seconds <= self.max_wait

    def rate_limited(self, seconds: float, hint: ratelimit.ServerHint | None, why: str) -> RateLimitedError:
        bucket = f" (bucket '{hint.bucket}')" if hint and hint.bucket else ""
        quota = ""
        if hint and hint.quota is not None and hint.window is not None:
            quota = f" Quota: {hint.quota} requests per {hint.window} s window."
        limit = "--no-wait" if self.no_wait else f"{self.wait_flag} {self.max_wait:g}"
        return RateLimitedError(
            f"The Hub is rate limiting {self.endpoint}{bucket}: {why} asks to wait {round(seconds)} s, "
            f"and {limit} does not allow it.{quota} Retry {ratelimit.retry_at_text(seconds)}.",
            hint=self.rate_hint,
        )

    def _notify(self, seconds: float, reason: str) -> None:
        if self.on_wait is not None:
            self.on_wait(seconds, reason)

    def pass_gate(self) -> None:
        """Before a request: wait out a pause another worker's 429 started."""
        until = self.gate.until
        left = self.gate.remaining()
        if left <= 0:
            return
        if not self.may_wait(left):
            raise self.rate_limited(left, None, "another request was rate limited; the Hub")
        self._notify(left, "rate limited (shared pause)")
        self._sleep(left)
        self.gate.reached(until)

    def _wait_for(self, f: Failure, n: int) -> tuple[float, float]:
        """(seconds to wait before retry ``n``, gate reopening time to record after it or 0)."""
        if f.kind is Kind.REFUSED:
            return self.limits.connect_wait(n), 0.0
        if f.kind in (Kind.DROPPED, Kind.SILENT) and self.drop_wait is not None:
            return self.limits.sleep_cap(self.drop_wait(n)), 0.0
        hint = ratelimit.server_hint(f.headers) if f.kind in (Kind.RATE_LIMITED, Kind.STATUS) else None
        seconds = ratelimit.compute_wait(self.config, n, hint)
        if f.kind is Kind.RATE_LIMITED:
            if not self.may_wait(seconds):
                raise self.rate_limited(seconds, hint, f"its {hint.source} header" if hint else "the backoff schedule")
            return seconds, self.gate.close(seconds)
        return self.limits.sleep_cap(seconds), 0.0

    def _retries(self, f: Failure) -> int:
        if f.kind is Kind.REFUSED:
            return self.limits.connect_retries
        if f.kind is Kind.SILENT:
            return self.limits.timeout_retries
        if f.kind is Kind.DROPPED and self.drop_retries is not None:
            return self.drop_retries
        return self.config.max_retries

    # ------------------------------------------------------------------ the loop
    def request(self, attempt: Callable[[], T], classify: Classify, *, retry: bool = True) -> T:
        """``attempt()`` under the policy: its result, or the last failure's BatutaError.

        ``retry=False`` tries once (a non-idempotent write); exceptions ``classify`` does not
        recognise (returns None) propagate unchanged.
        """
        n = 0
        while True:
            self.pass_gate()
            n += 1
            try:
                return attempt()
            except Exception as exc:
                f = classify(exc)
                if f is None:
                    raise
                if f.kind is Kind.FINAL:
                    raise f.error(n) from None
                seconds, reopen = self._wait_for(f, n)
                if not retry or self.no_wait or n > self._retries(f):
                    raise f.error(n) from None
            self._notify(seconds, f.why())
            self._sleep(seconds)
            if reopen:  # after waiting out our own 429 the pause is over for everyone
                self.gate.reached(reopen)

    @contextmanager
    def stream(
        self,
        open_: Callable[[], T],
        classify: Classify,
        *,
        close: Callable[[T], object],
        retry: bool = True,
    ) -> Iterator[T]:
        """Open a streamed answer under the policy (only opening is retried) and yield it;
        ``close(answer)`` runs when the block ends, however it ends."""
        answer = self.request(open_, classify, retry=retry)
        try:
            yield answer
        finally:
            close(answer)

