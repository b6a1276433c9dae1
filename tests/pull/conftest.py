"""Fixtures of the pull tests: settings pointing at the local Hub, a recording sleep."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from batuta_sync.settings import Settings, resolve_settings


@pytest.fixture(autouse=True)
def _default_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The retry schedule these tests assert is the default one (a chaos run's env must not leak in)."""
    monkeypatch.delenv("BATUTA_RETRY_BACKOFF", raising=False)


@pytest.fixture
def settings(hub_env: object) -> Settings:
    """Settings from the (isolated) environment, HF_ENDPOINT = the local Hub."""
    return resolve_settings()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def fake_sleep(sleeps: list[float]) -> Callable[[float], None]:
    """Records waits instead of sleeping (retry schedules without slow tests)."""
    return sleeps.append
