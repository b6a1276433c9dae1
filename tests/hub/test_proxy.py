"""Downloads and metadata behind a proxy (issue 15 point 1): HTTPS_PROXY / HTTP_PROXY / NO_PROXY,
upper and lower case, through a small proxy of ours on loopback (tests/hub/_proxy.py).

The Hub is addressed as ``hub.test``, a name only the proxy can resolve: a request that works
went through the proxy; one that NO_PROXY sends direct fails to look the name up and the proxy
sees nothing.  Before this, the download engine ignored the variables (metadata went through
the proxy, downloads failed).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from batuta_sync.errors import ConfigError, NetworkError
from batuta_sync.hub import proxy as hp
from batuta_sync.hub._http import HubHttp
from batuta_sync.hub.auth import USER_AGENT
from batuta_sync.hub.cache import CacheLayout
from batuta_sync.hub.client import HfClient
from batuta_sync.hub.download import Downloader, DownloadJob
from batuta_sync.server import HubServer
from batuta_sync.settings import Settings
from batuta_sync.types import RepoRef

from ._proxy import HttpProxy, TLSFront, self_signed

PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "no_proxy", "all_proxy")
REF = RepoRef("acme/tiny-llama")


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (*PROXY_VARS, "REQUEST_METHOD"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def proxy() -> Iterator[HttpProxy]:
    with HttpProxy({"hub.test": "127.0.0.1"}) as p:
        yield p


def _settings(url: str, tmp_path: Path) -> Settings:
    return Settings(endpoint=url, hf_home=tmp_path / "hf", hub_cache=tmp_path / "hf" / "hub")


def _via_name(srv: HubServer) -> str:
    return srv.url.replace("127.0.0.1", "hub.test")


def _job(direct: Settings, via: Settings, path: str) -> DownloadJob:
    """The job for ``path`` (listed directly on loopback), to be fetched through ``via``."""
    snap = HfClient(direct).snapshot(REF)
    f = next(f for f in snap.files if f.path == path)
    return DownloadJob(REF, snap.commit, f, CacheLayout.of(via.hub_cache, REF))


def _content_through(p: HttpProxy) -> list[str]:
    return [s.target for s in p.seen if "/resolve/" in s.target or "/cdn-lfs/" in s.target]


@pytest.mark.parametrize("var", ["HTTP_PROXY", "http_proxy"])
def test_a_download_goes_through_an_http_proxy(
    seeded: HubServer, proxy: HttpProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, var: str
) -> None:
    """Plain http: absolute-URI requests to the proxy, redirect hops (the LFS file) included."""
    via = _settings(_via_name(seeded), tmp_path)
    job = _job(_settings(seeded.url, tmp_path), via, "model.safetensors")
    monkeypatch.setenv(var, proxy.url)
    Downloader(via, sleep=lambda s: None).fetch(job)
    assert job.layout.blob_path(job.file.etag).exists()
    targets = _content_through(proxy)
    assert targets and all(t.startswith(f"{_via_name(seeded)}/") for t in targets)  # absolute URIs
    assert any("/cdn-lfs/" in t for t in targets)  # the redirect hop went through the proxy too
    assert all(s.headers["user-agent"] == USER_AGENT for s in proxy.seen)


def test_no_proxy_bypasses_the_proxy(seeded: HubServer, proxy: HttpProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    via = _settings(_via_name(seeded), tmp_path)
    job = _job(_settings(seeded.url, tmp_path), via, "config.json")
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("no_proxy", "example.org,hub.test")
    with pytest.raises(NetworkError, match=r"cannot connect to hub\.test"):  # direct: the name does not resolve
        Downloader(via, sleep=lambda s: None).fetch(job)
    assert proxy.seen == []
    monkeypatch.setenv("no_proxy", "example.org")  # not listed: through the proxy again
    Downloader(via, sleep=lambda s: None).fetch(job)
    assert len(_content_through(proxy)) == 1


def test_loopback_hubs_are_never_proxied(seeded: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    s = _settings(seeded.url, tmp_path)
    job = _job(s, s, "config.json")
    Downloader(s, sleep=lambda s: None).fetch(job)
    assert job.layout.blob_path(job.file.etag).exists()
    assert hp.proxy_for("http://localhost:8000/x") is None and hp.proxy_for("http://[::1]:8000/x") is None
    assert hp.proxy_for("https://hub.example/x") is None  # HTTP_PROXY is for http:// URLs only
    assert hp.proxy_for("http://hub.example/x") == hp.Proxy("127.0.0.1", 9)


def test_an_https_download_goes_through_a_connect_tunnel(
    seeded: HubServer, proxy: HttpProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """https: CONNECT hub.test:<port>, then TLS to the Hub end to end (verified against its certificate)."""
    pytest.importorskip("cryptography")
    cert, key = self_signed(tmp_path, "hub.test")
    host, port = seeded.url.removeprefix("http://").split(":")
    with TLSFront((host, int(port)), cert, key) as tls:
        via = _settings(f"https://hub.test:{tls.port}", tmp_path)
        job = _job(_settings(seeded.url, tmp_path), via, "config.json")
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        monkeypatch.setenv("https_proxy", proxy.url)
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # the http one must not be used for https
        Downloader(via, sleep=lambda s: None).fetch(job)
    assert job.layout.blob_path(job.file.etag).exists()
    assert [(s.method, s.target) for s in proxy.seen] == [("CONNECT", f"hub.test:{tls.port}")]
    assert "user-agent" not in proxy.seen[0].headers  # the request itself is inside the tunnel


def test_proxy_credentials_are_sent_to_the_proxy(seeded: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = "Basic " + base64.b64encode(b"me:p@ss").decode()
    with HttpProxy({"hub.test": "127.0.0.1"}, require_auth=expected) as p:
        via = _settings(_via_name(seeded), tmp_path)
        job = _job(_settings(seeded.url, tmp_path), via, "config.json")
        monkeypatch.setenv("HTTP_PROXY", f"http://me:p%40ss@127.0.0.1:{p.port}")
        Downloader(via, sleep=lambda s: None).fetch(job)
        assert job.layout.blob_path(job.file.etag).exists()
        assert all(s.headers.get("proxy-authorization") == expected for s in p.seen)
        monkeypatch.setenv("HTTP_PROXY", f"127.0.0.1:{p.port}")  # no scheme (curl accepts it), no credentials
        assert hp.proxy_for(via.endpoint + "/x") == hp.Proxy("127.0.0.1", p.port)


def test_a_non_http_proxy_scheme_is_a_config_error_naming_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "socks5://user:hunter2@proxy.example:1080")
    with pytest.raises(ConfigError) as ei:
        hp.proxy_for("https://huggingface.co/x")
    assert "HTTPS_PROXY" in ei.value.message and "hunter2" not in ei.value.render()


def test_metadata_calls_honour_the_same_variables(
    seeded: HubServer, proxy: HttpProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx2's trust_env: HTTP_PROXY is used and NO_PROXY bypasses it (for a non-loopback Hub)."""
    via = _settings(_via_name(seeded), tmp_path)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    with HubHttp(via, sleep=lambda s: None) as http:
        assert http.get_json("/api/models/acme/tiny-llama")["id"] == "acme/tiny-llama"
    assert [s.target for s in proxy.seen] == [f"{_via_name(seeded)}/api/models/acme/tiny-llama"]
    assert proxy.seen[0].headers["user-agent"] == USER_AGENT
    monkeypatch.setenv("NO_PROXY", "hub.test")
    with HubHttp(via, sleep=lambda s: None) as http, pytest.raises(NetworkError, match="Could not reach"):
        http.get_json("/api/models/acme/tiny-llama")
    assert len(proxy.seen) == 1


def test_a_proxy_that_wants_credentials_is_named_not_blamed_on_the_hub(
    seeded: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """http: the proxy's 407 is a ConfigError about the proxy (before: 'The Hub refused … 407');
    https: the refused CONNECT names the proxy and its variable; neither is retried on the 5xx schedule."""
    waits: list[float] = []
    with HttpProxy({"hub.test": "127.0.0.1"}, require_auth="Basic nobody-has-this") as p:
        via = _settings(_via_name(seeded), tmp_path)
        job = _job(_settings(seeded.url, tmp_path), via, "config.json")
        monkeypatch.setenv("HTTP_PROXY", p.url)
        with pytest.raises(ConfigError, match="407 Proxy Authentication Required") as ei:
            Downloader(via, sleep=waits.append).fetch(job)
        assert "NO_PROXY" in (ei.value.hint or "") and len(p.seen) == 1
        monkeypatch.setenv("HTTPS_PROXY", p.url)
        tunnelled = _settings("https://hub.test:1", tmp_path)
        with pytest.raises(NetworkError, match=r"\(the proxy from HTTPS_PROXY\): Tunnel connection failed: 407"):
            Downloader(tunnelled, sleep=waits.append).fetch(DownloadJob(job.ref, job.commit, job.file, job.layout))
    assert waits == [0.25, 0.5]  # the quick retries of a connection that never got through
    assert not job.layout.blob_path(job.file.etag).exists()
