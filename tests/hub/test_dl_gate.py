"""One rate-limit gate for API calls and downloads (security.md RL-4), and BATUTA_RETRY_BACKOFF.

A 429 seen by the download engine pauses API calls made through HubHttp, and the reverse.
Waits are recorded through injected sleeps; the server's fault knobs make the 429s.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.client import HfClient
from batuta_sync.errors import ConfigError, RateLimitedError
from batuta_sync.hub import ratelimit as rl
from batuta_sync.hub._http import HubHttp
from batuta_sync.hub.cache import CacheLayout
from batuta_sync.hub.download import Downloader, DownloadJob
from batuta_sync.server import HubServer
from batuta_sync.settings import Settings
from batuta_sync.types import RepoRef

INFO = "/api/models/acme/tiny-llama"


@pytest.fixture(autouse=True)
def _default_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(rl.RETRY_BACKOFF_ENV, raising=False)


def _settings(srv: HubServer, tmp_path: Path) -> Settings:
    return Settings(endpoint=srv.url, hf_home=tmp_path / "hf", hub_cache=tmp_path / "hf" / "hub")


def _job(settings: Settings, path: str = "model.safetensors") -> DownloadJob:
    ref = RepoRef("acme/tiny-llama")
    snap = HfClient(settings).snapshot(ref)
    f = next(f for f in snap.files if f.path == path)
    return DownloadJob(ref, snap.commit, f, CacheLayout.of(settings.hub_cache, ref))


def _api(srv: HubServer) -> int:
    return sum(1 for e in srv.log.entries if e.path.startswith("/api/"))


def _content(srv: HubServer) -> int:
    return sum(1 for e in srv.log.entries if "/resolve/" in e.path or "/cdn-lfs/" in e.path)


# --------------------------------------------------------------------------- one gate


def test_api_client_and_downloader_share_one_gate_per_endpoint(seeded: HubServer, tmp_path: Path) -> None:
    s = _settings(seeded, tmp_path)
    gate = rl.shared_gate(seeded.url + "/")
    assert HubHttp(s).gate is gate and Downloader(s).gate is gate and HfClient(s).http.gate is gate
    assert rl.shared_gate("http://127.0.0.1:1") is not gate
    assert rl.shared_gate("https://huggingface.co") is rl.shared_gate("https://HuggingFace.co:443/")
    private = HubHttp(s, clock=lambda: 0.0).gate  # an injected clock gets its own pause
    assert private is not gate and HubHttp(s, gate=private).gate is private


def test_a_429_on_a_download_pauses_api_calls(seeded: HubServer, tmp_path: Path) -> None:
    s = _settings(seeded, tmp_path)
    job = _job(s)
    seeded.faults.configure(rate_limit=1, retry_after="5", path_filter="/resolve/")
    api_waits: list[float] = []
    notices: list[str] = []
    seen: dict[str, Any] = {}

    def download_sleep(seconds: float) -> None:
        # while the download sits out its 429, an API call starts on another "worker"
        seen["dl_wait"] = seconds
        seen["api_before"] = _api(seeded)
        api = HubHttp(s, sleep=api_waits.append, on_wait=lambda sec, why: notices.append(why))
        seen["id"] = api.get_json(INFO)["id"]

    out = Downloader(s, sleep=download_sleep).fetch(job)
    assert not out.cached and job.layout.blob_path(job.file.etag).stat().st_size == job.file.size
    assert seen["dl_wait"] == 5 and seen["id"] == "acme/tiny-llama"
    assert len(api_waits) == 1 and 4 <= api_waits[0] <= 5  # the API call waited out the same pause
    assert notices == ["rate limited (shared pause)"]


def test_a_429_on_an_api_call_pauses_downloads(seeded: HubServer, tmp_path: Path) -> None:
    s = _settings(seeded, tmp_path)
    job = _job(s)
    seeded.faults.configure(rate_limit=1, retry_after="5", path_filter="/api/")
    dl_waits: list[tuple[float, int]] = []
    api_waits: list[float] = []

    def api_sleep(seconds: float) -> None:
        api_waits.append(seconds)
        # while the API call sits out its 429, a download starts
        d = Downloader(s, sleep=lambda sec: dl_waits.append((sec, _content(seeded))))
        d.fetch(job)

    assert HubHttp(s, sleep=api_sleep).get_json(INFO)["id"] == "acme/tiny-llama"
    assert api_waits == [5]
    # the download waited the pause out before its first content request
    assert len(dl_waits) == 1 and 4 <= dl_waits[0][0] <= 5 and dl_waits[0][1] == 0
    assert job.layout.blob_path(job.file.etag).exists()


def test_a_pause_longer_than_the_download_may_wait_fails_before_any_request(
    seeded: HubServer, tmp_path: Path
) -> None:
    s = _settings(seeded, tmp_path)
    job = _job(s)
    gate = rl.Gate()
    gate.close(30)  # as if another worker had been told to come back in 30 s
    mark = _content(seeded)
    for kw in ({"no_wait": True}, {"max_wait": 10.0}):
        with pytest.raises(RateLimitedError, match="rate limiting") as ei:
            Downloader(s, gate=gate, **kw).fetch(job)  # type: ignore[arg-type]
        assert ei.value.exit_code == 10
    assert _content(seeded) == mark
    waits: list[float] = []
    Downloader(s, gate=gate, sleep=waits.append, max_wait=60.0).fetch(job)
    assert len(waits) == 1 and 25 <= waits[0] <= 30 and gate.remaining() == 0


def test_gate_reached_moves_a_simulated_clock_forward_only() -> None:
    t = [100.0]
    g = rl.Gate(lambda: t[0])
    until = g.close(10)
    assert until == 110 and g.remaining() == 10
    g.reached(until)  # a simulated sleep of 10 s
    assert g.remaining() == 0
    t[0] += 50  # the gate's clock is now 160 (50 real + 10 simulated): reaching 110 changes nothing
    g.reached(until)
    assert g.remaining() == 0 and g.close(5) == 165


# --------------------------------------------------------------------------- BATUTA_RETRY_BACKOFF


def test_retry_backoff_from_env() -> None:
    assert rl.RateLimitConfig.from_env({}) == rl.RateLimitConfig()
    assert rl.RateLimitConfig.from_env({"BATUTA_RETRY_BACKOFF": " "}) == rl.RateLimitConfig()
    fast = rl.RateLimitConfig.from_env({"BATUTA_RETRY_BACKOFF": "0.05"})
    assert [round(fast.backoff(i), 4) for i in range(1, 6)] == [0.05, 0.1, 0.2, 0.4, 0.8]
    assert rl.RateLimitConfig.from_env({"BATUTA_RETRY_BACKOFF": "0"}).backoff(3) == 0
    assert [rl.RateLimitConfig.from_env({}).backoff(i) for i in range(1, 6)] == [1, 2, 4, 8, 16]


@pytest.mark.parametrize("bad", ["abc", "-1", "nan", "inf", "61", "1s"])
def test_an_invalid_retry_backoff_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError) as ei:
        rl.RateLimitConfig.from_env({"BATUTA_RETRY_BACKOFF": bad})
    assert ei.value.exit_code == 3
    assert "BATUTA_RETRY_BACKOFF" in ei.value.message and repr(bad) in ei.value.message
    assert math.isfinite(rl.RateLimitConfig().initial_backoff)


def test_api_client_and_downloader_follow_the_env_backoff(
    seeded: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _settings(seeded, tmp_path)
    job = _job(s)
    monkeypatch.setenv("BATUTA_RETRY_BACKOFF", "0.25")
    waits: list[float] = []
    seeded.faults.configure(server_errors=3, path_filter="/api/")
    HubHttp(s, sleep=waits.append).get_json(INFO)
    assert waits == [0.25, 0.5, 1.0]
    waits.clear()
    seeded.faults.configure(server_errors=2, path_filter="/resolve/")
    Downloader(s, sleep=waits.append).fetch(job)
    assert waits == [0.25, 0.5]
    # an explicit config wins over the environment
    assert HubHttp(s, config=rl.RateLimitConfig()).config.initial_backoff == 1
    assert Downloader(s, config=rl.RateLimitConfig()).config.initial_backoff == 1


def test_an_invalid_env_backoff_stops_the_cli_with_a_clear_error(
    seeded: HubServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from batuta_sync.cli import main

    monkeypatch.setenv("BATUTA_RETRY_BACKOFF", "fast")
    code = main(["hf", "pull", "model", "acme/tiny-llama", "--quiet"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "BATUTA_RETRY_BACKOFF='fast'" in err and "Traceback" not in err
    assert seeded.log.count() == 0  # stopped before any request


def test_an_invalid_env_backoff_is_refused_before_plan_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not reported as "Cannot plan … fix hf.yaml": the variable is checked before any command."""
    from batuta_sync.cli import main

    (tmp_path / "hf.yaml").write_text("version: 1\nmodels:\n  a:\n    repo: org/a\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BATUTA_RETRY_BACKOFF", "-1")
    code = main(["plan"])
    err = capsys.readouterr().err
    assert code == 3 and "BATUTA_RETRY_BACKOFF='-1'" in err and "hf.yaml" not in err, err
