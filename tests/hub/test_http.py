"""HubHttp against the local Hub: retry set, backoff schedule, server hints, shared pause,
--max-wait/--no-wait, error mapping, offline, token hygiene.  Waits are recorded, not slept."""

from __future__ import annotations

import socket
import threading
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest

from batuta_sync._redact import Secret
from batuta_sync.errors import AuthError, NetworkError, NotFoundError, OfflineError, RateLimitedError
from batuta_sync.hub._http import HubHttp
from batuta_sync.server import HubServer
from batuta_sync.settings import HfAuth, Settings

from .conftest import ALICE, settled


def _settings(srv: HubServer, tmp_path: Path, **kw: object) -> Settings:
    return Settings(endpoint=srv.url, hf_home=tmp_path / "hf", hub_cache=tmp_path / "hf" / "hub", **kw)  # type: ignore[arg-type]


@pytest.fixture
def http_rec(seeded: HubServer, tmp_path: Path) -> tuple[HubHttp, list[float], HubServer]:
    waits: list[float] = []
    return HubHttp(_settings(seeded, tmp_path), sleep=waits.append), waits, seeded


INFO = "/api/models/acme/tiny-llama"


def test_success_sends_one_request(http_rec: tuple[HubHttp, list[float], HubServer]) -> None:
    http, waits, srv = http_rec
    assert http.get_json(INFO)["id"] == "acme/tiny-llama"
    assert waits == [] and settled(srv) == 1 and http.sent == 1
    assert srv.log.entries[0].path.startswith(INFO)


def test_5xx_backoff_is_exactly_1_2_4_8_16_then_network_error(
    http_rec: tuple[HubHttp, list[float], HubServer],
) -> None:
    http, waits, srv = http_rec
    srv.faults.configure(server_errors=6)
    with pytest.raises(NetworkError, match=r"503 .*after 6 attempts") as ei:
        http.get_json(INFO)
    assert waits == [1, 2, 4, 8, 16]
    assert settled(srv) == 6 and ei.value.exit_code == 9


def test_5xx_then_success(http_rec: tuple[HubHttp, list[float], HubServer]) -> None:
    http, waits, srv = http_rec
    srv.faults.configure(server_errors=2)
    assert http.get_json(INFO)["id"] == "acme/tiny-llama"
    assert waits == [1, 2] and settled(srv) == 3


def test_429_without_hints_uses_the_schedule(http_rec: tuple[HubHttp, list[float], HubServer]) -> None:
    http, waits, srv = http_rec
    srv.faults.configure(rate_limit=6, retry_after=None)
    with pytest.raises(RateLimitedError) as ei:
        http.get_json(INFO)
    assert waits == [1, 2, 4, 8, 16] and settled(srv) == 6 and ei.value.exit_code == 10


def test_retry_after_3_waits_3(http_rec: tuple[HubHttp, list[float], HubServer]) -> None:
    http, waits, srv = http_rec
    srv.faults.configure(rate_limit=1, retry_after="3")
    assert http.get_json(INFO)["id"] == "acme/tiny-llama"
    assert waits == [3] and settled(srv) == 2


def test_retry_after_http_date_waits_its_delta(http_rec: tuple[HubHttp, list[float], HubServer]) -> None:
    http, waits, srv = http_rec
    when = datetime.now(timezone.utc) + timedelta(seconds=7)
    srv.faults.configure(rate_limit=1, retry_after=format_datetime(when, usegmt=True))
    http.get_json(INFO)
    assert len(waits) == 1 and 6 <= waits[0] <= 7


def test_ratelimit_header_t55_waits_56(http_rec: tuple[HubHttp, list[float], HubServer]) -> None:
    http, waits, srv = http_rec
    srv.faults.configure(rate_limit=1, retry_after=None, ratelimit_reset=55)
    http.get_json(INFO)
    assert waits == [56]


def test_hint_never_shortens_a_later_backoff(http_rec: tuple[HubHttp, list[float], HubServer]) -> None:
    http, waits, srv = http_rec
    srv.faults.configure(rate_limit=4, retry_after="3")
    http.get_json(INFO)
    assert waits == [3, 3, 4, 8]


def test_max_wait_fails_fast_naming_when_to_retry(seeded: HubServer, tmp_path: Path) -> None:
    waits: list[float] = []
    http = HubHttp(_settings(seeded, tmp_path), sleep=waits.append, max_wait=10)
    seeded.faults.configure(rate_limit=1, retry_after=None, ratelimit_reset=55)
    with pytest.raises(RateLimitedError) as ei:
        http.get_json(INFO)
    text = ei.value.render()
    assert "56 s" in text and "--max-wait 10" in text and "UTC" in text and "bucket 'api'" in text
    assert "500 requests per 300 s" in text
    assert waits == [] and settled(seeded) == 1
    # a short hint within --max-wait is waited out
    seeded.faults.configure(rate_limit=1, retry_after="3", ratelimit_reset=None)
    http2 = HubHttp(_settings(seeded, tmp_path), sleep=waits.append, max_wait=10)
    http2.get_json(INFO)
    assert waits == [3]


def test_default_cap_is_one_hub_window(seeded: HubServer, tmp_path: Path) -> None:
    """RL-3: without a flag, waits up to 300 s are accepted; t=900 fails fast instead of hanging 15 min."""
    waits: list[float] = []
    http = HubHttp(_settings(seeded, tmp_path), sleep=waits.append)
    seeded.faults.configure(rate_limit=1, retry_after=None, ratelimit_reset=900)
    with pytest.raises(RateLimitedError, match="--max-wait 300"):
        http.get_json(INFO)
    assert waits == []
    seeded.faults.configure(rate_limit=1, retry_after=None, ratelimit_reset=250)
    http.get_json(INFO)
    assert waits == [251]


def test_no_wait_fails_on_the_first_429(seeded: HubServer, tmp_path: Path) -> None:
    waits: list[float] = []
    http = HubHttp(_settings(seeded, tmp_path), sleep=waits.append, no_wait=True)
    seeded.faults.configure(rate_limit=1, retry_after="3")
    with pytest.raises(RateLimitedError, match="--no-wait"):
        http.get_json(INFO)
    assert waits == [] and settled(seeded) == 1


def test_a_429_pauses_every_worker(seeded: HubServer, tmp_path: Path) -> None:
    """Worker A gets the 429 and sits in its wait; 7 others must wait out the same pause
    before sending anything: while all 8 wait, the server has seen only the 429."""
    import time

    seeded.faults.configure(rate_limit=1, retry_after="5")
    release = threading.Event()
    recorded: list[float] = []
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            recorded.append(seconds)
        release.wait(20)

    notices: list[str] = []
    http = HubHttp(_settings(seeded, tmp_path), sleep=sleep, on_wait=lambda s, why: notices.append(why))
    results: list[object] = []

    def worker() -> None:
        results.append(http.get_json(INFO)["id"])

    def wait_for(cond: object) -> None:
        deadline = time.monotonic() + 20
        while not cond() and time.monotonic() < deadline:  # type: ignore[operator]
            time.sleep(0.005)

    a = threading.Thread(target=worker)
    a.start()
    wait_for(lambda: len(recorded) == 1)
    others = [threading.Thread(target=worker) for _ in range(7)]
    for t in others:
        t.start()
    wait_for(lambda: len(recorded) == 8)
    seen_while_paused = settled(seeded)
    release.set()
    for t in [a, *others]:
        t.join(20)
    assert seen_while_paused == 1  # only the 429 reached the server during the pause
    assert recorded[0] == 5 and all(4 <= s <= 5 for s in recorded[1:])
    assert len(results) == 8 and settled(seeded) == 9
    assert "rate limited (429)" in notices and notices.count("rate limited (shared pause)") == 7


def test_never_retries_other_4xx(http_rec: tuple[HubHttp, list[float], HubServer]) -> None:
    http, waits, srv = http_rec
    with pytest.raises(NotFoundError) as ei:
        http.get_json("/api/models/acme/nope")
    assert ei.value.code == "repo-not-found" and "model 'acme/nope' was not found" in ei.value.message
    with pytest.raises(NotFoundError) as ei:
        http.get_json("/api/models/acme/tiny-llama/revision/nobranch")
    assert ei.value.code == "revision-not-found" and "'nobranch'" in ei.value.message
    assert waits == [] and settled(srv) == 2
    r = http.request("GET", "/api/models/acme/nope", allow=(404,))
    assert r.status_code == 404


def test_connection_errors_are_retried_quickly(tmp_path: Path) -> None:
    """#14 fail fast: a refused connection gets 2 quick retries (0.25 s, 0.5 s), not the 31 s
    5xx/rate-limit schedule (this test asserted 6 attempts and [1, 2, 4, 8, 16] before)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    waits: list[float] = []
    settings = Settings(endpoint=f"http://127.0.0.1:{port}", hf_home=tmp_path)
    with (
        HubHttp(settings, sleep=waits.append) as http,
        pytest.raises(NetworkError, match=r"Could not reach .* after 3 attempts: ConnectError"),
    ):
        http.get_json("/api/models")
    assert waits == [0.25, 0.5]


def test_stream_retries_opening_and_maps_missing_files(
    http_rec: tuple[HubHttp, list[float], HubServer],
) -> None:
    http, waits, srv = http_rec
    srv.faults.configure(server_errors=1)
    with http.stream("GET", "/acme/tiny-llama/resolve/main/config.json") as r:
        body = r.read()
    assert b"hidden_size" in body and waits == [1]
    with pytest.raises(NotFoundError) as ei, http.stream("GET", "/acme/tiny-llama/resolve/main/nope.txt"):
        pass
    assert ei.value.code == "entry-not-found" and "'nope.txt'" in ei.value.message
    with http.stream("GET", "/acme/tiny-llama/resolve/main/nope.txt", allow=(404,)) as r:
        assert r.status_code == 404


def test_offline_touches_no_socket(
    seeded: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*a: object, **k: object) -> None:
        raise AssertionError("network used while offline")

    monkeypatch.setattr(socket.socket, "connect", boom)
    monkeypatch.setattr(socket, "getaddrinfo", boom)
    http = HubHttp(_settings(seeded, tmp_path, offline=True))
    assert http.offline
    with pytest.raises(OfflineError, match="did not contact the Hub for GET /api/models/acme/tiny-llama"):
        http.get_json(INFO)
    with pytest.raises(OfflineError), http.stream("GET", "/x/resolve/main/y"):
        pass
    assert settled(seeded) == 0


def test_token_only_to_the_endpoint_origin_and_never_in_errors(auth_hub: HubServer, tmp_path: Path) -> None:
    bad = "hf_wrongWRONGwrongWRONGwrongWRONGwrong99"
    http = HubHttp(_settings(auth_hub, tmp_path, token=Secret(bad), auth=HfAuth.TOKEN))
    assert http.headers_for(auth_hub.url + "/api/x")["authorization"] == f"Bearer {bad}"
    assert "authorization" not in http.headers_for("http://127.0.0.1:1/lfs/x")
    assert "authorization" not in http.headers_for("https://cdn.example/x")
    with pytest.raises(AuthError) as ei:
        http.get_json("/api/whoami-v2")
    assert bad not in ei.value.render() and "rejected your token" in ei.value.message
    good = HubHttp(_settings(auth_hub, tmp_path, token=Secret(ALICE), auth=HfAuth.TOKEN))
    assert good.get_json("/api/whoami-v2")["name"] == "alice"
    good.close()
    good.close()


def test_non_json_answer_is_a_hub_error(http_rec: tuple[HubHttp, list[float], HubServer]) -> None:
    from batuta_sync.errors import HubError

    http, _, _ = http_rec
    with pytest.raises(HubError, match="non-JSON"):
        http.get_json("/acme/tiny-llama/resolve/main/README.md")
    with pytest.raises(HubError, match="Expected a JSON list"):
        http.get_json_pages(INFO)


def test_env_proxies_apply_to_remote_hubs_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens: a proxy would fail
    remote = HubHttp(Settings(endpoint="http://hub.example", hf_home=tmp_path))
    assert remote._get_client()._trust_env
    local = HubHttp(Settings(endpoint="http://127.0.0.1:1", hf_home=tmp_path))
    assert not local._get_client()._trust_env
    remote.close()
    local.close()
