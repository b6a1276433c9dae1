"""Shared fixtures.  Every test runs against our own Hub server on 127.0.0.1.

Environment is scrubbed per test (no real HF_TOKEN / HF_HOME leaks in): HF_HOME
points into the test's tmp dir, and Xet is disabled so the real huggingface_hub
client uploads through classic LFS, which our server speaks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Read by huggingface_hub at import time: set before anything imports it.
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ.pop("HF_TOKEN", None)
os.environ.pop("HF_HUB_OFFLINE", None)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HF_HOME/HF_HUB_CACHE/HOME inside tmp_path; no token, not offline."""
    home = tmp_path / "home"
    hf_home = home / ".cache" / "huggingface"
    hf_home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_home / "hub"))
    for var in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT", "TRANSFORMERS_OFFLINE", "BATUTA_DEBUG", "BATUTA_RETRY_BACKOFF"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def hub_server(tmp_path: Path) -> Iterator[object]:
    """An open (no auth) local Hub on 127.0.0.1:<random port>, storing under tmp_path/'hub-root'.

    See batuta_sync/server/__init__.py for the API: ``.url``, ``.store`` (seeding),
    ``.faults`` (fault knobs), ``.log`` (request log).
    """
    from batuta_sync.server import HubServer

    srv = HubServer(root=tmp_path / "hub-root")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def hub_env(hub_server: object, monkeypatch: pytest.MonkeyPatch) -> object:
    """``hub_server`` with HF_ENDPOINT pointing at it (for CLI tests)."""
    monkeypatch.setenv("HF_ENDPOINT", hub_server.url)  # type: ignore[attr-defined]
    return hub_server
