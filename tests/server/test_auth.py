"""Users, orgs, read/write tokens and private repos."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx  # the one HTTP client library (huggingface_hub installs it)
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from batuta_sync.server import HubServer, UserSpec


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[HubServer]:
    s = HubServer(
        tmp_path / "root",
        users=[UserSpec("alice", "tok-alice-1234", "write"), UserSpec("bob", "tok-bob-12345", "read")],
        orgs={"acme": ["alice", "bob"]},
    ).start()
    try:
        yield s
    finally:
        s.stop()


def test_whoami_with_users(srv: HubServer) -> None:
    me = HfApi(endpoint=srv.url, token="tok-alice-1234").whoami()
    assert me["name"] == "alice" and me["orgs"][0]["name"] == "acme"
    assert HfApi(endpoint=srv.url, token="tok-bob-12345").whoami()["auth"]["accessToken"]["role"] == "read"
    with pytest.raises(HfHubHTTPError) as exc:
        HfApi(endpoint=srv.url, token="wrong-token").whoami()
    assert exc.value.response.status_code == 401
    assert httpx.get(f"{srv.url}/api/whoami-v2").status_code == 401
    assert "tok-alice" not in repr(UserSpec("alice", "tok-alice-1234"))


def test_private_repo_visibility(srv: HubServer, tmp_path: Path) -> None:
    alice = HfApi(endpoint=srv.url, token="tok-alice-1234")
    alice.create_repo("alice/secret", private=True)
    alice.create_repo("acme/shared", private=True)
    alice.upload_file(path_or_fileobj=b"s", path_in_repo="s.txt", repo_id="alice/secret")
    assert alice.model_info("alice/secret").private is True
    anon = HfApi(endpoint=srv.url, token=False)
    with pytest.raises(RepositoryNotFoundError):
        anon.model_info("alice/secret")
    r = httpx.get(f"{srv.url}/api/models/alice/secret")
    assert r.status_code == 404 and r.headers["X-Error-Code"] == "RepoNotFound"
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("alice/secret", "s.txt", endpoint=srv.url, token=False, cache_dir=tmp_path / "c")
    bob = HfApi(endpoint=srv.url, token="tok-bob-12345")
    with pytest.raises(RepositoryNotFoundError):
        bob.model_info("alice/secret")  # not his namespace
    assert bob.model_info("acme/shared").private is True  # org member may read
    p = hf_hub_download(
        "alice/secret", "s.txt", endpoint=srv.url, token="tok-alice-1234", cache_dir=tmp_path / "c"
    )
    assert Path(p).read_bytes() == b"s"
    assert [m.id for m in anon.list_models()] == []
    assert {m.id for m in alice.list_models()} == {"alice/secret", "acme/shared"}
    alice.update_repo_settings("alice/secret", private=False)
    assert anon.model_info("alice/secret").private is False


def test_write_permissions(srv: HubServer) -> None:
    alice = HfApi(endpoint=srv.url, token="tok-alice-1234")
    bob = HfApi(endpoint=srv.url, token="tok-bob-12345")
    alice.create_repo("alice/pub")
    with pytest.raises(HfHubHTTPError) as exc:
        bob.create_repo("bob/mine")  # read-only token
    assert exc.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as exc:
        bob.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id="alice/pub")
    assert exc.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as exc:
        alice.create_repo("bob/not-yours")
    assert exc.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError):
        HfApi(endpoint=srv.url, token=False).create_repo("alice/anon")
    alice.create_repo("acme/team")  # org member with write token


def test_gated_repo_needs_login(srv: HubServer, tmp_path: Path) -> None:
    srv.store.commit("alice/gated", {"a.txt": b"a"})
    srv.store.update_settings("alice/gated", gated="auto")
    from huggingface_hub.errors import GatedRepoError

    with pytest.raises(GatedRepoError):
        hf_hub_download("alice/gated", "a.txt", endpoint=srv.url, token=False, cache_dir=tmp_path / "g")
    p = hf_hub_download(
        "alice/gated", "a.txt", endpoint=srv.url, token="tok-bob-12345", cache_dir=tmp_path / "g"
    )
    assert Path(p).read_bytes() == b"a"
