"""Pure rate-limit policy: schedule, header parsing, hints as minimum, shared gate."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from batuta_sync.hub import ratelimit as rl

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def test_default_schedule_is_1_2_4_8_16_capped_at_60() -> None:
    cfg = rl.RateLimitConfig()
    assert [cfg.backoff(i) for i in range(1, 6)] == [1, 2, 4, 8, 16]
    assert cfg.backoff(7) == 60 and cfg.max_retries == 5 and cfg.multiplier == 2


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (409, False),
        (412, False),
        (413, False),
        (422, False),
        (408, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
    ],
)
def test_retryable_statuses(status: int, retry: bool) -> None:
    assert rl.is_retryable_status(status) is retry


def test_parse_ratelimit_headers() -> None:
    assert rl.parse_ratelimit('"api";r=0;t=55') == ("api", 0, 55)
    assert rl.parse_ratelimit("api;r=3;t=x") == ("api", 3, None)
    assert rl.parse_ratelimit(None) == (None, None, None)
    assert rl.parse_policy('"fixed window";"api";q=500;w=300') == (500, 300)
    assert rl.parse_policy("q=x;w=5") == (None, 5)


def test_retry_after_delta_and_http_date() -> None:
    assert rl.parse_retry_after("3") == 3.0
    assert rl.parse_retry_after(format_datetime(NOW + timedelta(seconds=7), usegmt=True), now=NOW) == 7.0
    assert rl.parse_retry_after(format_datetime(NOW - timedelta(seconds=7), usegmt=True), now=NOW) == 0.0
    assert rl.parse_retry_after("Wed, 01 Jan 2026 12:00:05", now=NOW) == 5.0  # no zone: UTC
    assert (
        rl.parse_retry_after("soon") is None
        and rl.parse_retry_after("") is None
        and rl.parse_retry_after(None) is None
    )


def test_hints_are_a_minimum_never_shortened() -> None:
    cfg = rl.RateLimitConfig()
    h = rl.server_hint({"ratelimit": '"api";r=0;t=55', "ratelimit-policy": "q=500;w=300"})
    assert (
        h is not None and h.seconds == 56 and h.source == "RateLimit" and h.bucket == "api" and h.quota == 500
    )
    assert rl.compute_wait(cfg, 1, h) == 56
    assert rl.compute_wait(cfg, 5, rl.server_hint({"retry-after": "3"})) == 16  # schedule not undercut
    assert rl.compute_wait(cfg, 1, rl.server_hint({"retry-after": "3"})) == 3
    both = rl.server_hint({"retry-after": "90", "ratelimit": '"api";r=0;t=55'})
    assert both is not None and both.seconds == 90
    assert rl.server_hint({"ratelimit": '"api";r=5;t=55'}) is None  # quota left: no hint
    assert rl.server_hint({"retry-after": "garbage"}) is None
    assert rl.compute_wait(cfg, 2, None) == 2


def test_gate_only_moves_forward() -> None:
    t = [100.0]
    g = rl.Gate(lambda: t[0])
    assert g.remaining() == 0 and g.until == 0
    g.close(10)
    g.close(3)
    assert g.remaining() == 10 and g.until == 110
    t[0] = 108
    assert g.remaining() == 2
    t[0] = 120
    assert g.remaining() == 0


def test_retry_at_text_names_a_time() -> None:
    assert rl.retry_at_text(55.2, now=NOW) == "in 56 s (at 2026-01-01 12:00:56 UTC)"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_countdown_sleep_draws_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    clock = [0.0]

    def fake_sleep(s: float) -> None:
        slept.append(s)
        clock[0] += s

    monkeypatch.setattr(rl.time, "sleep", fake_sleep)
    monkeypatch.setattr(rl.time, "monotonic", lambda: clock[0])
    tty = _Tty()
    rl.countdown_sleep(tty)(3)
    assert slept == [1.0, 1.0, 1.0] and "3 s left" in tty.getvalue() and "1 s left" in tty.getvalue()
    plain = io.StringIO()
    slept.clear()
    rl.countdown_sleep(plain)(3)
    assert slept == [3] and plain.getvalue() == ""
