"""Client limits (issue 13 point 6, issue 14 "fail fast") against hostile raw-socket peers.

Each test drives the real transport (HubHttp for the API, Downloader for content) at a peer of
tests/hostile/transport.py and asserts the clear BatutaError, its exit code and the number of
attempts / recorded waits, never wall time."""

from __future__ import annotations

from pathlib import Path

import pytest

from batuta_sync._redact import Secret
from batuta_sync.errors import HubError, NetworkError
from batuta_sync.hub._http import HubHttp
from batuta_sync.hub.limits import BodyDecoder, NetLimits, Pace
from batuta_sync.settings import HfAuth, Settings
from tests.hostile import transport as t

TOKEN = "hf_limitsLIMITSlimitsLIMITSlimits42"


def _settings(url: str, tmp_path: Path, **kw: object) -> Settings:
    return Settings(endpoint=url, hf_home=tmp_path / "hf", hub_cache=tmp_path / "hf" / "hub", **kw)  # type: ignore[arg-type]


def _http(url: str, tmp_path: Path, waits: list[float] | None = None, **kw: object) -> HubHttp:
    sleep = waits.append if waits is not None else (lambda s: None)
    return HubHttp(_settings(url, tmp_path), sleep=sleep, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- sizes


def test_endless_json_is_refused_at_the_cap_not_memory_error(tmp_path: Path) -> None:
    with (
        t.Peer(t.endless_json) as peer, _http(peer.url, tmp_path) as http,
        pytest.raises(HubError) as ei,
    ):
        http.get_json("/api/models")
    assert ei.value.code == "response-too-large" and ei.value.exit_code == 9
    assert "larger than 64 MiB" in ei.value.message and len(peer.requests) == 1  # not retried


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate"])
def test_compression_bomb_is_refused_while_inflating(tmp_path: Path, coding: str) -> None:
    body = t.bomb_body(coding)
    assert len(body) < 1 << 20  # < 1 MiB on the wire, 256 MiB inflated
    with (
        t.Peer(t.bomb(coding)) as peer, _http(peer.url, tmp_path) as http,
        pytest.raises(HubError, match="larger than 64 MiB once decompressed") as ei,
    ):
        http.get_json("/api/models")
    assert ei.value.exit_code == 9


def test_decoder_output_never_exceeds_the_cap_in_one_step() -> None:
    """The bound holds inside one network chunk: the whole bomb fed at once stops at cap + 1 byte."""
    d = BodyDecoder("gzip", 1 << 20, "x")
    with pytest.raises(HubError):
        d.feed(t.bomb_body("gzip"))
    assert d.size == (1 << 20) + 1


def test_truncated_deflate_is_a_hub_error() -> None:
    d = BodyDecoder("deflate", 100, "x")
    d.feed(b"\x78")
    with pytest.raises(HubError, match="corrupt deflate body"):
        d.finish()


def test_small_gzip_and_deflate_answers_still_decode(tmp_path: Path) -> None:
    import gzip
    import zlib

    for coding, data in (("gzip", gzip.compress(b'{"a": 1}')), ("deflate", zlib.compress(b'{"a": 1}'))):
        d = BodyDecoder(f"{coding}, identity", 100, "x")
        for i in range(len(data)):
            d.feed(data[i : i + 1])
        assert d.finish() == b'{"a": 1}'


@pytest.mark.parametrize("coding", ["br", "zstd", "gzip, gzip"])
def test_unrequested_content_encoding_is_refused(tmp_path: Path, coding: str) -> None:
    with (
        t.Peer(t.encoded(coding)) as peer, _http(peer.url, tmp_path) as http,
        pytest.raises(HubError, match="did not ask for"),
    ):
        http.get_json("/api/models")
    assert peer.requests[0].headers["accept-encoding"] == "gzip, deflate"


def test_corrupt_gzip_is_a_hub_error(tmp_path: Path) -> None:
    with (
        t.Peer(t.encoded("gzip", b"\x1f\x8bnot gzip at all")) as peer, _http(peer.url, tmp_path) as http,
        pytest.raises(HubError, match="corrupt gzip body"),
    ):
        http.get_json("/api/models")


def test_endless_error_body_is_read_only_in_part(tmp_path: Path) -> None:
    """A 5xx with an endless body: the message keeps 64 KiB of it; retries happen as usual."""

    def endless_503(conn: object, req: t.Request, peer: t.Peer) -> None:
        import socket

        assert isinstance(conn, socket.socket)
        conn.sendall(b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n")
        block = b"%x\r\n" % 65536 + b"e" * 65536 + b"\r\n"
        for _ in range(1 << 14):
            conn.sendall(block)

    waits: list[float] = []
    with (
        t.Peer(endless_503) as peer, _http(peer.url, tmp_path, waits) as http,
        pytest.raises(NetworkError, match="503"),
    ):
        http.get_json("/api/models")
    assert waits == [1, 2, 4, 8, 16] and len(peer.requests) == 6


def test_error_answer_in_an_unrequested_encoding_still_maps_to_its_status(tmp_path: Path) -> None:
    def br_404(conn: object, req: t.Request, peer: t.Peer) -> None:
        import socket

        assert isinstance(conn, socket.socket)
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Encoding: br\r\nContent-Length: 3\r\n\r\n\x1b\x00\x00")

    with t.Peer(br_404) as peer, _http(peer.url, tmp_path) as http, pytest.raises(HubError) as ei:
        http.get_json("/api/models/acme/nope")
    assert ei.value.code == "repo-not-found"


def test_deeply_nested_json_is_a_hub_error_not_recursion_error(tmp_path: Path) -> None:
    deep = t.record_ok(b"[" * 200_000)
    with t.Peer(deep) as peer, _http(peer.url, tmp_path) as http, pytest.raises(HubError) as ei:
        http.get_json("/api/models")
    assert ei.value.code == "response-too-deep" and ei.value.exit_code == 9


def test_endless_headers_end_in_a_network_error(tmp_path: Path) -> None:
    waits: list[float] = []
    with t.Peer(t.endless_headers) as peer, _http(peer.url, tmp_path, waits) as http, pytest.raises(NetworkError):
        http.get_json("/api/models")
    assert len(peer.requests) == 6 and waits == [1, 2, 4, 8, 16]  # a protocol error: the usual schedule


def test_endless_headers_on_a_download_end_in_a_network_error(tmp_path: Path) -> None:
    from batuta_sync.hub.cache import CacheLayout
    from batuta_sync.hub.download import Downloader, DownloadJob
    from batuta_sync.types import RepoFile, RepoRef

    ref = RepoRef("acme/model")
    job = DownloadJob(ref, "c" * 40, RepoFile("w.bin", 10, "0" * 40, "a" * 64), CacheLayout.of(tmp_path / "hub", ref))
    waits: list[float] = []
    with t.Peer(t.endless_headers) as peer, pytest.raises(NetworkError):
        Downloader(_settings(peer.url, tmp_path), sleep=waits.append, jobs=1).fetch_all([job])
    assert len(peer.requests) == 9  # MAX_DROPS + 1, each cut off by http.client's header limits


# --------------------------------------------------------------------------- time


def test_trickling_json_is_cut_off_by_the_minimum_rate(tmp_path: Path) -> None:
    fast = NetLimits(rate_window=0.3, min_rate=1000)
    with (
        t.Peer(t.trickle(0.02)) as peer, _http(peer.url, tmp_path, limits=fast) as http,
        pytest.raises(NetworkError) as ei,
    ):
        http.get_json("/api/models")
    assert ei.value.code == "too-slow" and ei.value.exit_code == 9
    assert "below the minimum of 1000 bytes/s" in ei.value.message and len(peer.requests) == 1


def test_pace_window_and_total_deadline() -> None:
    now = [0.0]
    lim = NetLimits(rate_window=10, min_rate=100)
    p = Pace(lim, "x", clock=lambda: now[0])
    for _ in range(5):  # 2000 bytes per 10 s window: at the rate, passes
        now[0] += 10
        p.add(2000)
    now[0] += 10
    with pytest.raises(NetworkError, match="too slow: 999 bytes in 10 s"):
        p.add(999)
    q = Pace(lim, "y", total=30, clock=lambda: now[0])
    now[0] += 31
    with pytest.raises(NetworkError, match="took more than 30 s"):
        q.add(1 << 30)  # fast, but past the deadline


def test_silent_server_gets_one_retry_then_a_clear_error(tmp_path: Path) -> None:
    waits: list[float] = []
    quick = NetLimits(read=0.2)
    with (
        t.Peer(t.silent) as peer, _http(peer.url, tmp_path, waits, limits=quick) as http,
        pytest.raises(NetworkError) as ei,
    ):
        http.get_json("/api/models")
    assert "did not answer GET /api/models within 0.2 s (2 attempts)" in ei.value.message
    assert waits == [1] and len(peer.requests) == 2


def test_refused_connection_fails_after_two_quick_retries(tmp_path: Path) -> None:
    waits: list[float] = []
    url = f"http://127.0.0.1:{t.closed_port()}"
    with _http(url, tmp_path, waits) as http, pytest.raises(NetworkError) as ei:
        http.get_json("/api/models/x/y")
    assert waits == [0.25, 0.5] and "after 3 attempts: ConnectError" in ei.value.message
    assert "HF_ENDPOINT" in ei.value.hint


def test_dns_failure_fails_fast(tmp_path: Path) -> None:
    waits: list[float] = []
    with _http("http://no-such-host.invalid", tmp_path, waits) as http, pytest.raises(NetworkError):
        http.get_json("/api/models")
    assert waits == [0.25, 0.5]


def test_no_wait_makes_no_retry_at_all(tmp_path: Path) -> None:
    waits: list[float] = []
    url = f"http://127.0.0.1:{t.closed_port()}"
    with _http(url, tmp_path, waits, no_wait=True) as http, pytest.raises(NetworkError, match=r"1 attempt \(--no-wait\)"):
        http.get_json("/api/models")
    assert waits == []


def test_timeout_caps_every_wait_and_the_socket_timeouts(tmp_path: Path) -> None:
    lim = NetLimits().with_timeout(0.5)
    assert (lim.connect, lim.read, lim.write, lim.max_sleep) == (0.5, 0.5, 0.5, 0.5)
    assert NetLimits().with_timeout(None) == NetLimits()
    waits: list[float] = []
    with t.Peer(t.silent) as peer:
        http = HubHttp(_settings(peer.url, tmp_path, timeout=0.3), sleep=waits.append)
        with pytest.raises(NetworkError, match=r"within 0\.3 s"):
            http.get_json("/api/models")
        http.close()
    assert waits == [0.3]  # the 1 s backoff, capped by --timeout
    assert http.max_wait == 0.3


# --------------------------------------------------------------------------- pagination


def test_self_referencing_pagination_is_detected(tmp_path: Path) -> None:
    with (
        t.Peer(t.self_link) as peer, _http(peer.url, tmp_path) as http,
        pytest.raises(HubError) as ei,
    ):
        http.get_json_pages("/api/models", params={"limit": 1})
    assert ei.value.code == "pagination-loop" and len(peer.requests) == 1


def test_pagination_cycle_is_detected(tmp_path: Path) -> None:
    with (
        t.Peer(t.link_chain(cycle=3)) as peer, _http(peer.url, tmp_path) as http,
        pytest.raises(HubError, match="loops: page 3 links back"),
    ):
        http.get_json_pages("/api/models?page=0")
    assert len(peer.requests) == 3


def test_endless_pagination_stops_at_max_pages(tmp_path: Path) -> None:
    with (
        t.Peer(t.link_chain()) as peer, _http(peer.url, tmp_path, limits=NetLimits(max_pages=5)) as http,
        pytest.raises(HubError) as ei,
    ):
        http.get_json_pages("/api/models")
    assert ei.value.code == "pagination-too-long" and len(peer.requests) == 5


# --------------------------------------------------------------------------- token origin


def test_redirect_to_another_host_never_carries_the_token(tmp_path: Path) -> None:
    with t.Peer(t.record_ok()) as cdn, t.Peer(t.redirect(cdn.url)) as hub:
        http = HubHttp(_settings(hub.url, tmp_path, token=Secret(TOKEN), auth=HfAuth.TOKEN), sleep=lambda s: None)
        assert http.get_json("/api/models/acme/model")["id"] == "acme/model"
        http.close()
    assert hub.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert cdn.requests[0].target == "/api/models/acme/model"
    assert "authorization" not in cdn.requests[0].headers


def test_303_after_a_post_is_followed_with_a_get(tmp_path: Path) -> None:
    def see_other(conn: object, req: t.Request, peer: t.Peer) -> None:
        import socket

        assert isinstance(conn, socket.socket)
        if req.method == "POST":  # (its small body came with the head; answer and hang up)
            conn.sendall(
                b"HTTP/1.1 303 See Other\r\nLocation: /done\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            raise OSError("close")
        else:
            t.record_ok()(conn, req, peer)

    with t.Peer(see_other) as peer, _http(peer.url, tmp_path) as http:
        resp = http.request("POST", "/api/x", json={"a": 1})
    assert resp.json()["id"] == "acme/model"
    assert [(r.method, r.target) for r in peer.requests] == [("POST", "/api/x"), ("GET", "/done")]


def test_redirect_loop_is_bounded(tmp_path: Path) -> None:
    def to_self(conn: object, req: t.Request, peer: t.Peer) -> None:
        t.redirect(peer.url)(conn, req, peer)  # type: ignore[arg-type]

    with (
        t.Peer(to_self) as peer, _http(peer.url, tmp_path) as http,
        pytest.raises(HubError, match="Too many redirects"),
    ):
        http.get_json("/api/models")
    assert len(peer.requests) == 11
