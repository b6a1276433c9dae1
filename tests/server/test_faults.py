"""Every fault knob, observed through the real huggingface_hub client (kept short: 1 fault each)."""

from __future__ import annotations

import hashlib
import time
from email.utils import formatdate
from pathlib import Path

import httpx2 as httpx  # the one HTTP client library (huggingface_hub installs it)
import pytest
from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError

from batuta_sync.server import HubServer

DATA = bytes(range(256)) * 64  # 16 KiB


@pytest.fixture
def seeded(hub_server: HubServer) -> HubServer:
    hub_server.control_api = True  # these tests drive /_batuta/ over HTTP (off by default)
    hub_server.store.commit("local/f", {"w.bin": DATA, "c.txt": b"config"})
    hub_server.log.clear()
    return hub_server


def _dl(srv: HubServer, tmp_path: Path, name: str = "w.bin", cache: str = "c") -> bytes:
    return Path(hf_hub_download("local/f", name, endpoint=srv.url, cache_dir=tmp_path / cache)).read_bytes()


def test_429_retried_by_download(seeded: HubServer, tmp_path: Path) -> None:
    seeded.faults.configure(rate_limit=1, retry_after="0", path_filter="/cdn-lfs/")
    assert _dl(seeded, tmp_path) == DATA
    statuses = [e.status for e in seeded.log.entries if "/cdn-lfs/" in e.path]
    assert statuses.count(429) == 1 and statuses[-1] == 200
    assert seeded.counters["faults_injected"] == 1


def test_429_surfaces_on_metadata_call_with_headers(seeded: HubServer) -> None:
    seeded.faults.configure(rate_limit=1, retry_after="3", ratelimit_reset=7)
    with pytest.raises(HfHubHTTPError) as exc:
        HfApi(endpoint=seeded.url).model_info("local/f")
    r = exc.value.response
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "3"
    assert r.headers["RateLimit"] == '"api";r=0;t=7'
    assert "RateLimit-Policy" in r.headers
    assert HfApi(endpoint=seeded.url).model_info("local/f").sha  # next request is fine


def test_retry_after_http_date(seeded: HubServer) -> None:
    when = formatdate(time.time() + 1, usegmt=True)
    seeded.faults.configure(rate_limit=1, retry_after=when)
    r = httpx.get(f"{seeded.url}/api/models/local/f")
    assert r.status_code == 429 and r.headers["Retry-After"] == when


def test_5xx_retried(seeded: HubServer, tmp_path: Path) -> None:
    seeded.faults.configure(server_errors=1, path_filter="/resolve/main/c.txt")
    assert _dl(seeded, tmp_path, "c.txt") == b"config"
    assert [e.status for e in seeded.log.entries][:1] == [503]
    seeded.faults.reset()
    seeded.faults.configure(server_errors=1, server_error_status=500)
    r = httpx.get(f"{seeded.url}/api/models/local/f")
    assert r.status_code == 500 and r.json()["error"]


def test_dropped_connection_is_resumed(seeded: HubServer, tmp_path: Path) -> None:
    # The client writes in 10 MiB chunks, so a resume (Range) only happens past the first chunk.
    chunk = constants.DOWNLOAD_CHUNK_SIZE
    big = DATA * ((chunk + chunk // 2) // len(DATA))
    seeded.store.commit("local/f", {"big.bin": big})
    cut = chunk + 4096
    seeded.faults.configure(drop_after_bytes=cut, drop_count=1, path_filter="/cdn-lfs/")
    assert _dl(seeded, tmp_path, "big.bin") == big
    gets = [e for e in seeded.log.entries if e.method == "GET"]
    assert gets[0].bytes_out == cut
    assert gets[-1].status == 206 and gets[-1].bytes_out == len(big) - chunk


def test_dropped_connection_surfaces_to_raw_client(seeded: HubServer) -> None:
    seeded.faults.configure(drop_after_bytes=3, drop_count=1)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{seeded.url}/local/f/resolve/main/c.txt")
    assert httpx.get(f"{seeded.url}/local/f/resolve/main/c.txt").content == b"config"


def test_ignore_range_forces_full_restart(seeded: HubServer, tmp_path: Path) -> None:
    seeded.faults.configure(drop_after_bytes=5000, drop_count=1, ignore_range=True, path_filter="/cdn-lfs/")
    assert _dl(seeded, tmp_path) == DATA
    gets = [e for e in seeded.log.entries if e.method == "GET"]
    assert [g.status for g in gets] == [200, 200]  # the Range resume was answered with the full body
    seeded.faults.configure(path_filter=None)
    r = httpx.get(f"{seeded.url}/local/f/resolve/main/c.txt", headers={"Range": "bytes=0-1"})
    assert r.status_code == 200 and r.content == b"config"


def test_corrupt_body_detected_by_hash(seeded: HubServer, tmp_path: Path) -> None:
    seeded.faults.configure(corrupt=1)
    got = _dl(seeded, tmp_path)
    assert len(got) == len(DATA) and got != DATA  # size check passes; content differs by one byte
    entry = next(e for e in HfApi(endpoint=seeded.url).list_repo_tree("local/f") if e.path == "w.bin")
    assert hashlib.sha256(got).hexdigest() != entry.lfs.sha256  # type: ignore[union-attr]
    assert sum(a != b for a, b in zip(got, DATA, strict=True)) == 1
    assert _dl(seeded, tmp_path, cache="fresh") == DATA  # one-shot


def test_latency_and_path_filter(seeded: HubServer) -> None:
    seeded.faults.configure(latency_ms=300, path_filter="/api/models/local/f")
    t0 = time.monotonic()
    HfApi(endpoint=seeded.url).model_info("local/f")
    assert time.monotonic() - t0 >= 0.3  # a lower bound, not a timing race
    seeded.faults.reset()
    seeded.faults.configure(server_errors=1, path_filter="/tree/")
    assert HfApi(endpoint=seeded.url).model_info("local/f").sha  # not filtered -> no fault
    assert httpx.get(f"{seeded.url}/api/models/local/f/tree/main").status_code == 503
    seeded.faults.reset()
    assert seeded.faults.snapshot()["server_errors"] == 0


def test_control_endpoints(seeded: HubServer) -> None:
    base = seeded.url
    r = httpx.post(f"{base}/_batuta/faults", json={"server_errors": 1, "path_filter": "/api/"})
    assert r.status_code == 200 and r.json()["faults"]["server_errors"] == 1
    assert httpx.get(f"{base}/api/models/local/f").status_code == 503
    assert httpx.post(f"{base}/_batuta/faults", json={"nope": 1}).status_code == 400
    httpx.post(f"{base}/_batuta/faults", json={"server_errors": 3})
    assert httpx.post(f"{base}/_batuta/faults", json={}).json()["faults"]["server_errors"] == 0
    log = httpx.get(f"{base}/_batuta/log").json()
    assert log[-1]["status"] == 503 and log[-1]["path"] == "/api/models/local/f"
    counters = httpx.get(f"{base}/_batuta/counters").json()
    assert counters["requests"] >= 1 and counters["faults_injected"] >= 1 and "bytes_out" in counters
    assert httpx.delete(f"{base}/_batuta/log").status_code == 200
    assert seeded.log.entries == []
    assert httpx.get(f"{base}/_batuta/faults").json()["faults"]["latency_ms"] == 0.0
    assert httpx.get(f"{base}/_batuta/nothing").status_code == 404
    with pytest.raises(ValueError):
        seeded.faults.configure(bogus=1)
