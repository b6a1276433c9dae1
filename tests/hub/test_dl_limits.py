"""The download engine's client limits (issue 13 point 6, issue 14) against hostile raw-socket
peers: a trickling body, a server that never answers, a refused connection."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.errors import NetworkError
from batuta_sync.hub.cache import CacheLayout
from batuta_sync.hub.download import Downloader, DownloadJob
from batuta_sync.hub.limits import NetLimits
from batuta_sync.settings import Settings
from batuta_sync.types import RepoFile, RepoRef
from tests.hostile import transport as t

DATA = b" " * 4096
SHA = hashlib.sha256(DATA).hexdigest()
COMMIT = "c" * 40


def _job(tmp_path: Path) -> DownloadJob:
    ref = RepoRef("acme/model")
    return DownloadJob(ref, COMMIT, RepoFile("w.safetensors", len(DATA), "0" * 40, SHA), CacheLayout.of(tmp_path / "hub", ref))


def _dl(url: str, tmp_path: Path, waits: list[float], **kw: object) -> Downloader:
    settings = Settings(endpoint=url, hf_home=tmp_path / "hf", hub_cache=tmp_path / "hub", timeout=kw.pop("timeout", None))  # type: ignore[arg-type]
    return Downloader(settings, sleep=waits.append, jobs=1, **kw)  # type: ignore[arg-type]


def test_trickling_download_is_cut_off_and_the_partial_kept(tmp_path: Path) -> None:
    waits: list[float] = []
    slow = NetLimits(rate_window=0.3, min_rate=1000)
    job = _job(tmp_path)
    with (
        t.Peer(t.trickle(0.02, length=len(DATA), content_type="application/octet-stream")) as peer,
        pytest.raises(NetworkError) as ei,
    ):
        _dl(peer.url, tmp_path, waits, limits=slow).fetch_all([job])
    assert ei.value.code == "too-slow" and "below the minimum of 1000 bytes/s" in ei.value.message
    assert len(peer.requests) == 1  # cut off, not reconnected over and over
    parked = job.layout.incomplete_path(SHA)
    assert parked.exists() and 0 < parked.stat().st_size < len(DATA)  # kept to resume from
    assert not job.layout.blob_path(SHA).exists()


def test_silent_server_ends_in_a_network_error(tmp_path: Path) -> None:
    waits: list[float] = []
    with (
        t.Peer(t.silent) as peer,
        pytest.raises(NetworkError, match=r"Could not download w\.safetensors"),
    ):
        _dl(peer.url, tmp_path, waits, limits=NetLimits(read=0.1)).fetch_all([_job(tmp_path)])
    assert len(peer.requests) == 2 and waits == [0.1]  # one retry of a silent server, like API calls


def test_refused_connection_fails_after_two_quick_retries(tmp_path: Path) -> None:
    waits: list[float] = []
    url = f"http://127.0.0.1:{t.closed_port()}"
    with pytest.raises(NetworkError) as ei:
        _dl(url, tmp_path, waits).fetch_all([_job(tmp_path)])
    assert waits == [0.25, 0.5] and "(3 attempts)" in ei.value.message
    assert "cannot connect to 127.0.0.1" in ei.value.message and "HF_ENDPOINT" in ei.value.hint


def test_no_wait_download_does_not_retry_a_refused_connection(tmp_path: Path) -> None:
    waits: list[float] = []
    url = f"http://127.0.0.1:{t.closed_port()}"
    with pytest.raises(NetworkError, match=r"\(1 attempts\)"):
        _dl(url, tmp_path, waits, no_wait=True).fetch_all([_job(tmp_path)])
    assert waits == []


def test_timeout_sets_the_socket_timeouts_and_caps_rate_limit_waits(tmp_path: Path) -> None:
    waits: list[float] = []
    dl = _dl("http://127.0.0.1:1", tmp_path, waits, timeout=2.0, max_wait=300)
    assert (dl.limits.connect, dl.limits.read, dl.max_wait) == (2.0, 2.0, 2.0)
    plain = Settings(endpoint="http://127.0.0.1:1", hf_home=tmp_path)
    assert Downloader(plain, timeout=5.0).limits.read == 5.0  # the old knob still works


def test_paced_reader_returns_the_bytes_in_hand_then_raises() -> None:
    import io

    from batuta_sync.hub.download import _PacedReader
    from batuta_sync.hub.limits import Pace

    now = [0.0]

    def clock() -> float:
        now[0] += 1.0  # every recv "takes" one second
        return now[0]

    class Recv(io.RawIOBase):  # a socket: at most 7 bytes per recv
        def __init__(self, data: bytes) -> None:
            self.data = data

        def readable(self) -> bool:
            return True

        def readinto(self, b: Any) -> int:
            n = min(7, len(b), len(self.data))
            b[:n], self.data = self.data[:n], self.data[n:]
            return n

    def sock(data: bytes) -> io.BufferedReader:
        return io.BufferedReader(Recv(data), buffer_size=4)

    lim = NetLimits(rate_window=2, min_rate=1 << 20)
    r = _PacedReader(sock(b"x" * 100), Pace(lim, "t", clock=clock))
    buf = bytearray(100)
    got = r.readinto(buf)
    assert 0 < got < 100  # cut short: the bytes received so far are handed over
    with pytest.raises(NetworkError, match="too slow"):
        r.readinto(buf)
    with pytest.raises(NetworkError, match="too slow"):
        r.read()
    ok = _PacedReader(sock(b"abc" * 10), Pace(NetLimits(), "t"))
    assert ok.read(5) == b"abcab" and ok.read() == b"c" + b"abc" * 8 and ok.read(3) == b""
    assert ok.closed is False  # everything else is the socket file's
    slow = _PacedReader(sock(b"y" * 50), Pace(lim, "t", clock=clock))
    assert 0 < len(slow.read()) < 50
