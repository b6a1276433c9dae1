"""Pushes under the client limits (issue 13 point 6, issue 14): huggingface_hub's shared client
gets batuta's timeouts (its default has none: a silent Hub hung a push forever) and a refused
connection gets the quick retries, not the 1-16 s schedule."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from batuta_sync.errors import NetworkError
from batuta_sync.hub import upload
from batuta_sync.settings import Settings
from batuta_sync.types import HfAssetType
from tests.hostile import transport as t


@pytest.fixture(autouse=True)
def _default_hf_hub_timeouts() -> Iterator[None]:
    """Later tests of this process share huggingface_hub's client: give it back the defaults."""
    yield
    from batuta_sync.hub._http import limit_huggingface_hub
    from batuta_sync.hub.limits import NetLimits

    limit_huggingface_hub(NetLimits())


def _settings(url: str, tmp_path: Path, **kw: object) -> Settings:
    return Settings(endpoint=url, hf_home=tmp_path / "hf", hub_cache=tmp_path / "hf" / "hub", **kw)  # type: ignore[arg-type]


def test_push_to_a_silent_hub_ends_at_the_read_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    with t.Peer(t.silent) as peer, pytest.raises(NetworkError, match="Timeout") as ei:
        upload.ensure_repo(_settings(peer.url, tmp_path, timeout=0.3), "acme/model", HfAssetType.MODEL)
    assert ei.value.exit_code == 9 and len(peer.requests) == 1 and sleeps == []


def test_push_to_a_refused_endpoint_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    url = f"http://127.0.0.1:{t.closed_port()}"
    with pytest.raises(NetworkError, match="Could not reach"):
        upload.ensure_repo(_settings(url, tmp_path), "acme/model", HfAssetType.MODEL)
    assert sleeps == [0.25, 0.5]


def test_huggingface_hub_client_is_rebuilt_only_when_the_timeouts_change(tmp_path: Path) -> None:
    from huggingface_hub import get_session

    from batuta_sync.hub._http import limit_huggingface_hub
    from batuta_sync.hub.limits import NetLimits

    limit_huggingface_hub(NetLimits().with_timeout(4.0))
    first = get_session()
    assert (first.timeout.connect, first.timeout.read, first.timeout.write) == (4.0, 4.0, 4.0)
    limit_huggingface_hub(NetLimits().with_timeout(4.0))
    assert get_session() is first
    limit_huggingface_hub(NetLimits())
    assert get_session().timeout.read == 60.0
