"""The one retry loop (hub/retry.py) on its own: attempt + classify + wait policy, no sockets.

Waits are recorded through an injected sleep; the gate runs on a fake clock.  The clients'
own tests (test_http.py, test_dl_limits.py, test_upload_limits.py, test_proxy.py) show the
same loop behind HubHttp, the download engine and pushes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from batuta_sync.errors import NetworkError, RateLimitedError
from batuta_sync.hub import ratelimit as rl
from batuta_sync.hub.limits import NetLimits
from batuta_sync.hub.retry import Failure, Kind, Retry


class Boom(Exception):
    def __init__(self, kind: Kind, status: int | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(kind.value)
        self.kind, self.status, self.headers = kind, status, headers or {}


def classify(exc: BaseException) -> Failure | None:
    if not isinstance(exc, Boom):
        return None
    return Failure(exc.kind, lambda n: NetworkError(f"gave up after {n} attempts ({exc.kind.name})"), exc.status, exc.headers)


def script(*outcomes: BaseException | str) -> Callable[[], str]:
    """An attempt() that raises / returns the given outcomes in order."""
    it: Iterator[BaseException | str] = iter(outcomes)

    def attempt() -> str:
        nxt = next(it)
        if isinstance(nxt, BaseException):
            raise nxt
        return nxt

    return attempt


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _retry(waits: list[float], **kw: object) -> Retry:
    kw.setdefault("gate", rl.Gate(Clock()))
    return Retry("http://hub.example/", config=rl.RateLimitConfig(), sleep=waits.append, **kw)  # type: ignore[arg-type]


def test_statuses_follow_the_schedule_then_succeed() -> None:
    waits: list[float] = []
    notes: list[str] = []
    r = _retry(waits, on_wait=lambda s, why: notes.append(why))
    assert r.request(script(Boom(Kind.STATUS, 503), Boom(Kind.STATUS, 500), "ok"), classify) == "ok"
    assert waits == [1, 2] and notes == ["Hub answered 503", "Hub answered 500"]


def test_statuses_give_up_after_five_retries_with_the_last_error() -> None:
    waits: list[float] = []
    with pytest.raises(NetworkError, match="after 6 attempts"):
        _retry(waits).request(script(*[Boom(Kind.STATUS, 502)] * 6), classify)
    assert waits == [1, 2, 4, 8, 16]


def test_a_server_hint_is_a_minimum() -> None:
    waits: list[float] = []
    _retry(waits).request(script(Boom(Kind.STATUS, 503, {"retry-after": "7"}), Boom(Kind.STATUS, 503), "ok"), classify)
    assert waits == [7, 2]


def test_refused_connections_get_two_quick_retries() -> None:
    waits: list[float] = []
    with pytest.raises(NetworkError, match="after 3 attempts"):
        _retry(waits).request(script(*[Boom(Kind.REFUSED)] * 3), classify)
    assert waits == [0.25, 0.5]


def test_a_silent_server_gets_one_retry_and_dropped_connections_the_schedule() -> None:
    waits: list[float] = []
    with pytest.raises(NetworkError, match="after 2 attempts"):
        _retry(waits).request(script(Boom(Kind.SILENT), Boom(Kind.SILENT)), classify)
    assert waits == [1]
    waits.clear()
    notes: list[str] = []
    assert _retry(waits, on_wait=lambda s, why: notes.append(why)).request(script(Boom(Kind.DROPPED), "ok"), classify) == "ok"
    assert waits == [1] and notes == ["connection dropped"]


def test_a_client_may_keep_its_own_reconnect_schedule() -> None:
    """The download engine: 8 quick reconnects (its partial resumes), silent servers still retried once."""
    waits: list[float] = []
    r = _retry(waits, drop_retries=8, drop_wait=lambda n: min(0.1 * n, 1.0))
    with pytest.raises(NetworkError, match="after 9 attempts"):
        r.request(script(*[Boom(Kind.DROPPED)] * 9), classify)
    assert waits == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    waits.clear()
    with pytest.raises(NetworkError, match="after 2 attempts"):
        r.request(script(Boom(Kind.SILENT), Boom(Kind.SILENT)), classify)
    assert waits == [0.1]


def test_final_failures_and_unknown_exceptions_are_not_retried() -> None:
    waits: list[float] = []
    r = _retry(waits)
    with pytest.raises(NetworkError, match="after 1 attempts"):
        r.request(script(Boom(Kind.FINAL, 404)), classify)
    with pytest.raises(KeyError):  # classify says "not mine": propagates unchanged
        r.request(script(KeyError("x")), classify)
    with pytest.raises(NetworkError, match="after 1 attempts"):  # a non-idempotent write: one try
        r.request(script(Boom(Kind.STATUS, 500), "ok"), classify, retry=False)
    assert waits == []


def test_a_429_closes_the_gate_for_everyone_and_our_wait_reopens_it() -> None:
    waits: list[float] = []
    clock = Clock()
    gate = rl.Gate(clock)
    r = _retry(waits, gate=gate)
    seen: list[float] = []

    def attempt() -> str:
        if not seen:
            seen.append(gate.remaining())
            raise Boom(Kind.RATE_LIMITED, 429, {"retry-after": "30"})
        seen.append(gate.remaining())
        return "ok"

    assert r.request(attempt, classify) == "ok"
    assert waits == [30] and seen == [0.0, 0.0]  # slept 30 s (simulated): the pause is over
    gate.close(5)
    other = _retry(waits, gate=gate)
    notes: list[str] = []
    other.on_wait = lambda s, why: notes.append(why)
    assert other.request(script("ok"), classify) == "ok"
    assert waits[-1] == 5 and notes == ["rate limited (shared pause)"]


def test_rate_limit_waits_beyond_the_limits_fail_at_once_naming_the_flag() -> None:
    waits: list[float] = []
    hint = {"ratelimit": '"api";r=0;t=120', "ratelimit-policy": '"fixed window";"api";q=500;w=300'}
    with pytest.raises(RateLimitedError) as ei:
        _retry(waits, max_wait=60).request(script(Boom(Kind.RATE_LIMITED, 429, hint)), classify)
    text = ei.value.render()
    assert "--max-wait 60" in text and "121 s" in text and "bucket 'api'" in text and "500 requests per 300 s" in text
    with pytest.raises(RateLimitedError, match="--no-wait"):
        _retry(waits, no_wait=True).request(script(Boom(Kind.RATE_LIMITED, 429)), classify)
    with pytest.raises(RateLimitedError, match="--timeout 10"):  # --timeout lowers max_wait
        _retry(waits, limits=NetLimits().with_timeout(10)).request(script(Boom(Kind.RATE_LIMITED, 429, hint)), classify)
    with pytest.raises(NetworkError, match="after 1 attempts"):  # no_wait: no retry of anything
        _retry(waits, no_wait=True).request(script(Boom(Kind.STATUS, 503), "ok"), classify)
    gate = rl.Gate(Clock())
    gate.close(400)
    with pytest.raises(RateLimitedError, match="another request was rate limited"):
        _retry(waits, gate=gate).request(script("ok"), classify)
    assert waits == []


def test_timeout_caps_every_backoff_wait() -> None:
    waits: list[float] = []
    r = _retry(waits, limits=NetLimits().with_timeout(3))
    assert r.request(script(*[Boom(Kind.STATUS, 503)] * 4, "ok"), classify) == "ok"
    assert waits == [1, 2, 3, 3]


def test_stream_retries_opening_only_and_always_closes() -> None:
    waits: list[float] = []
    closed: list[str] = []
    r = _retry(waits)
    with r.stream(script(Boom(Kind.STATUS, 503), "answer"), classify, close=closed.append) as got:
        assert got == "answer" and closed == []
    assert closed == ["answer"] and waits == [1]
    with pytest.raises(ValueError), r.stream(script("again"), classify, close=closed.append):
        raise ValueError("the body failed")  # not retried, but closed
    assert closed == ["answer", "again"]
    with pytest.raises(NetworkError), r.stream(script(Boom(Kind.FINAL)), classify, close=closed.append):
        pass  # pragma: no cover - never opened
    assert closed == ["answer", "again"]


def test_a_reason_given_by_the_classifier_is_shown() -> None:
    f = Failure(Kind.DROPPED, lambda n: NetworkError("x"), reason="connection problem (ReadError)")
    assert f.why() == "connection problem (ReadError)"
    assert Failure(Kind.RATE_LIMITED, lambda n: NetworkError("x")).why() == "rate limited (429)"
