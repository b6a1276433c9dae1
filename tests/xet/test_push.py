"""batuta's own push picks Xet or classic LFS by what the server offers (not by its host name), with
BATUTA_UPLOAD_PROTOCOL as an override; both paths run against our server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from batuta_sync.hub.upload import commit_files, ensure_repo, server_offers_xet, upload_protocol
from batuta_sync.server import HubServer, UserSpec
from batuta_sync.settings import Settings, resolve_settings
from batuta_sync.types import HfAssetType

MODEL = HfAssetType.MODEL


@pytest.fixture(autouse=True)
def _xet_not_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_DISABLE_XET")  # the suite disables it (tests/conftest.py); auto honours that


def _push(settings: Settings, root: Path, repo: str = "local/p") -> bytes:
    data = os.urandom(1_500_000)
    (root / "w.bin").write_bytes(data)
    ensure_repo(settings, repo, MODEL)
    commit_files(settings, repo, MODEL, "main", root=root, uploads=["w.bin"], message="push")
    return data


def _sent(srv: HubServer) -> tuple[int, int]:
    return srv.log.count("POST", "/xet-cas/v1/xorbs/"), srv.log.count("PUT", "/lfs-upload/")


def test_auto_uses_xet_when_the_server_offers_it(hub_server: HubServer, tmp_path: Path) -> None:
    settings = resolve_settings(flags={"endpoint": hub_server.url})
    data = _push(settings, tmp_path)
    assert _sent(hub_server) == (1, 0)
    got = httpx.get(f"{hub_server.url}/local/p/resolve/main/w.bin", follow_redirects=True).content
    assert got == data and hub_server.xet.file_for_sha256(hub_server.store.commit_of("local/p").files["w.bin"].sha256)


def test_override_forces_classic_lfs(hub_server: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATUTA_UPLOAD_PROTOCOL", "lfs")
    _push(resolve_settings(flags={"endpoint": hub_server.url}), tmp_path)
    assert _sent(hub_server) == (0, 1)


@pytest.fixture
def no_xet(tmp_path: Path) -> Iterator[HubServer]:
    s = HubServer(tmp_path / "root2", xet=False).start()
    try:
        yield s
    finally:
        s.stop()


def test_auto_uses_lfs_when_the_server_does_not_offer_xet(
    no_xet: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = resolve_settings(flags={"endpoint": no_xet.url})
    _push(settings, tmp_path)
    assert _sent(no_xet) == (0, 1)
    assert no_xet.log.count("GET", "/xet-write-token/") == 1  # asked once, then LFS
    monkeypatch.setenv("BATUTA_UPLOAD_PROTOCOL", "xet")  # forced: no probe
    assert upload_protocol(settings, offers_xet=lambda: False) == "xet"


def test_server_offers_xet_probe(tmp_path: Path) -> None:
    srv = HubServer(tmp_path / "r", users=[UserSpec("ro", "tok-read-only-1", "read")]).start()
    try:
        srv.store.create_repo("ro/m")
        ro = resolve_settings(flags={"endpoint": srv.url, "token": "tok-read-only-1"})
        assert not server_offers_xet(ro, "ro/m", MODEL, "main")  # 403: no write token for a reader
        anon = resolve_settings(flags={"endpoint": srv.url})
        assert not server_offers_xet(anon, "nobody/none", MODEL, "main")  # 404
    finally:
        srv.stop()
    closed = resolve_settings(flags={"endpoint": "http://127.0.0.1:9"})
    assert not server_offers_xet(closed, "a/b", MODEL, "main")  # unreachable
    assert upload_protocol(closed, {}, offers_xet=lambda: True) == "xet"
    assert upload_protocol(closed, {}, offers_xet=lambda: False) == "lfs"
    assert upload_protocol(closed, {}) == "lfs"  # nobody to ask
    assert upload_protocol(closed, {"HF_HUB_DISABLE_XET": "1"}, offers_xet=lambda: True) == "lfs"
