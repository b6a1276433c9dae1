"""HfClient against the local Hub: search, info, snapshot, metadata cache, offline, auth."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from batuta_sync import HfClient
from batuta_sync._redact import Secret
from batuta_sync.errors import AuthError, NotFoundError, OfflineError, UsageError
from batuta_sync.hub.models import DatasetQuery, ModelQuery, SortKey, SpaceQuery, SpaceSdk, SpaceStatus
from batuta_sync.server import HubServer
from batuta_sync.settings import HfAuth, Settings, resolve_settings
from batuta_sync.types import HfAssetType, RepoRef

from .conftest import ALICE, BOB, settled


def _client(srv: HubServer, *, offline: bool = False, token: str | None = None, ttl: float = 600) -> HfClient:
    s = resolve_settings(
        flags={"endpoint": srv.url, "offline": offline or None, "token": token, "metadata_ttl": ttl}
    )
    return HfClient(s, sleep=lambda _s: None)


def test_search_models_filters_and_sorts(seeded: HubServer) -> None:
    hub = _client(seeded)
    ids = [m.id for m in hub.search_models(ModelQuery("llama"))]
    assert ids == ["acme/llama-gguf", "acme/tiny-llama"]  # by downloads, descending
    assert [
        m.id for m in hub.search_models(ModelQuery("", library="transformers", sort=SortKey.DOWNLOADS))
    ] == [
        "acme/tiny-llama",
        "zed/classifier",
    ]
    assert [m.id for m in hub.search_models(ModelQuery("", task="text-classification"))] == ["zed/classifier"]
    assert [m.id for m in hub.search_models(ModelQuery("", author="zed"))] == ["zed/classifier"]
    assert [m.id for m in hub.search_models(ModelQuery("llama", sort=SortKey.LIKES, limit=1))] == [
        "acme/tiny-llama"
    ]
    assert len(hub.search_models(ModelQuery("", sort=SortKey.UPDATED))) == 3
    assert len(hub.search_models(ModelQuery("", sort=SortKey.TRENDING, limit=2))) == 2
    top = hub.search_models(ModelQuery("tiny"))[0]
    assert top.downloads == 500 and top.likes == 7 and top.pipeline_tag == "text-generation"
    q = seeded.log.entries[0].query
    assert "sort=downloads" in q and "direction=-1" in q


def test_search_datasets_language_and_sizes(seeded: HubServer) -> None:
    hub = _client(seeded)
    assert {d.id for d in hub.search_datasets(DatasetQuery(""))} == {
        "acme/tiny-ds",
        "acme/big-ds",
        "acme/mid-ds",
    }
    assert [d.id for d in hub.search_datasets(DatasetQuery("", language="fr"))] == ["acme/big-ds"]
    assert [d.id for d in hub.search_datasets(DatasetQuery("", size=">1GB"))] == ["acme/big-ds"]
    assert [d.id for d in hub.search_datasets(DatasetQuery("", size="<100MB"))] == ["acme/tiny-ds"]
    assert [d.id for d in hub.search_datasets(DatasetQuery("", size="10K-100K"))] == ["acme/mid-ds"]
    seeded.log.clear()
    assert {d.id for d in hub.search_datasets(DatasetQuery("", size=">1K"))} == {"acme/mid-ds", "acme/big-ds"}
    assert settled(seeded) == 9  # one Hub filter per size category (10K<n<100K was cached above)
    assert [d.id for d in hub.search_datasets(DatasetQuery("", size="<1K", language="en"))] == [
        "acme/tiny-ds"
    ]
    with pytest.raises(UsageError):
        hub.search_datasets(DatasetQuery("", size="huge"))
    for key in SortKey:
        assert len(hub.search_datasets(DatasetQuery("", size=">1K", sort=key))) == 2


def test_search_spaces_by_sdk(seeded: HubServer) -> None:
    hub = _client(seeded)
    assert {s.id for s in hub.search_spaces(SpaceQuery(""))} == {"acme/demo", "acme/st-app"}
    found = hub.search_spaces(SpaceQuery("", sdk=SpaceSdk.GRADIO))
    assert [s.id for s in found] == ["acme/demo"] and found[0].sdk is SpaceSdk.GRADIO
    assert [s.id for s in hub.search_spaces(SpaceQuery("st", sdk=SpaceSdk.STREAMLIT))] == ["acme/st-app"]


def test_model_info_every_field_from_real_files(seeded: HubServer) -> None:
    hub = _client(seeded)
    m = hub.model_info("acme/tiny-llama", files=True)
    assert m.author == "acme" and len(m.sha) == 40 and m.library_name == "transformers"
    assert m.safetensors is not None and m.safetensors.total == sum(m.safetensors.parameters.values()) > 0
    assert m.gguf is not None and m.gguf.architecture == "llama" and m.gguf.context_length == 256
    assert m.gguf.bos_token == "<s>" and m.gguf.eos_token == "</s>" and m.gguf.chat_template
    assert m.model_index is not None and m.model_index[0].name == "tiny-llama"
    st = next(f for f in m.files if f.path == "model.safetensors")
    assert st.is_lfs and st.size > 1000 and len(st.blob_id) == 40
    tagged = hub.model_info("acme/tiny-llama", revision="v1.0")
    assert tagged.sha == m.sha and tagged.files[0].blob_id == ""  # no blobs asked
    with pytest.raises(NotFoundError) as ei:
        hub.model_info("acme/tiny-llama", revision="nope")
    assert ei.value.code == "revision-not-found"
    with pytest.raises(NotFoundError) as ei:
        hub.model_info("acme/missing")
    assert ei.value.code == "repo-not-found"
    with pytest.raises(UsageError):
        hub.model_info("bad--id")


def test_dataset_and_space_info(seeded: HubServer) -> None:
    hub = _client(seeded)
    d = hub.dataset_info("acme/tiny-ds", files=True)
    assert [(s.name, s.num_examples) for s in d.splits] == [("train", 40), ("test", 10)]
    assert {k: str(v) for k, v in d.features.items()} == {"id": "int64", "text": "string", "label": "int64"}
    assert d.size_bytes == d.download_size == sum(s.num_bytes for s in d.splits)
    assert d.languages == ("en",) and d.size_categories == ("n<1K",) and len(d.files) == 3
    s = hub.space_info("acme/demo")
    assert s.sdk is SpaceSdk.GRADIO and s.status is SpaceStatus.RUNNING and s.hardware == "cpu-basic"
    assert hub.space_info("acme/st-app").sdk is SpaceSdk.STREAMLIT


def test_snapshot_one_call_and_resolve_commit(seeded: HubServer) -> None:
    hub = _client(seeded)
    ref = RepoRef("acme/tiny-llama")
    snap = hub.snapshot(ref)
    assert settled(seeded) == 1
    assert snap.commit == hub.resolve_commit(ref) and snap.file("model.safetensors") is not None
    assert snap.file("model.safetensors").sha256 and all(f.blob_id for f in snap.files)  # type: ignore[union-attr]
    assert [f.path for f in snap.files] == sorted(f.path for f in snap.files)
    ds = hub.snapshot(RepoRef("acme/tiny-ds", HfAssetType.DATASET))
    assert {f.path for f in ds.files} == {
        "README.md",
        "data/train-00000-of-00001.jsonl",
        "data/test-00000-of-00001.jsonl",
    }
    # snapshots always ask the Hub when online (plans must see the head)
    seeded.log.clear()
    hub.snapshot(ref)
    hub.resolve_commit(ref)
    assert settled(seeded) == 2


def test_snapshot_falls_back_to_the_paginated_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Hub whose siblings lack blob ids: second call lists the tree, following pages."""
    from batuta_sync.hub import client as client_mod

    srv = HubServer(tmp_path / "r", page_size=2).start()
    try:
        files = {f"f{i}.txt": f"{i}".encode() for i in range(5)}
        sha = srv.store.commit("a/many", files)
        monkeypatch.setattr(client_mod, "files_from_siblings", lambda s: ())
        hub = _client(srv)
        srv.log.clear()
        snap = hub.snapshot(RepoRef("a/many"))
        assert snap.commit == sha and [f.path for f in snap.files] == sorted(files)
        assert settled(srv) == 1 + 3  # revision + 3 tree pages of 2
        offline = _client(srv, offline=True)
        assert offline.snapshot(RepoRef("a/many")).files == snap.files
        with pytest.raises(OfflineError, match="a/many@other"):
            offline.snapshot(RepoRef("a/many", revision="other"))
    finally:
        srv.stop()


def test_metadata_cache_ttl_and_offline(seeded: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = _client(seeded)
    hub.model_info("acme/tiny-llama")
    hub.search_models(ModelQuery("llama"))
    assert settled(seeded) == 2
    hub.model_info("acme/tiny-llama")
    hub.search_models(ModelQuery("llama"))
    _client(seeded).model_info("acme/tiny-llama")  # another process, same cache dir
    assert settled(seeded) == 2  # within the TTL: no request
    _client(seeded, ttl=0).model_info("acme/tiny-llama")
    assert settled(seeded) == 3  # expired: asks again
    # offline: answers from the cache at any age, zero requests, names what is missing
    import socket

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("network used while offline")

    monkeypatch.setattr(socket.socket, "connect", boom)
    off = _client(seeded, offline=True, ttl=0)
    assert off.model_info("acme/tiny-llama").id == "acme/tiny-llama"
    assert [m.id for m in off.search_models(ModelQuery("llama"))] == ["acme/llama-gguf", "acme/tiny-llama"]
    with pytest.raises(OfflineError, match="model info for 'acme/other' at revision 'v2'"):
        off.model_info("acme/other", revision="v2")
    with pytest.raises(OfflineError, match="the model search 'gpt'"):
        off.search_models(ModelQuery("gpt"))
    with pytest.raises(OfflineError, match="the commit of acme/x@main"):
        off.resolve_commit(RepoRef("acme/x"))
    with pytest.raises(OfflineError):
        off.whoami() if off.is_authenticated() else _client(seeded, offline=True, token=ALICE).whoami()
    assert settled(seeded) == 3
    assert off.cache.clear() >= 2 and off.cache.clear() == 0


def test_cache_is_per_identity_and_survives_garbage(seeded: HubServer) -> None:
    anon = _client(seeded)
    alice = _client(seeded, token=ALICE)
    assert anon.cache.key("/p") != alice.cache.key("/p")
    key = anon.cache.key("/api/models/acme/tiny-llama")
    anon.model_info("acme/tiny-llama")
    path = anon.cache._file(key)  # under the repo's folder (a push invalidates it at once)
    assert path.exists()
    path.write_text("{not json")
    assert anon.cache.get(key) is None
    anon.model_info("acme/tiny-llama")  # refetched and rewritten
    assert anon.cache.get(key) is not None
    assert ALICE not in "".join(p.read_text() for p in anon.cache.root.rglob("*.json"))


def test_private_repo_needs_the_right_token(auth_hub: HubServer) -> None:
    with pytest.raises(NotFoundError) as ei:
        _client(auth_hub).model_info("acme/secret")
    assert "log in first" in ei.value.hint
    assert _client(auth_hub, token=ALICE).model_info("acme/secret").private
    with pytest.raises(NotFoundError) as ei:
        _client(auth_hub, token=BOB).model_info("acme/secret")
    assert "your token cannot see it" in ei.value.hint
    assert _client(auth_hub).model_info("acme/public").id == "acme/public"


def test_whoami_login_logout(auth_hub: HubServer, tmp_path: Path) -> None:
    anon = _client(auth_hub)
    assert not anon.is_authenticated() and anon.auth is HfAuth.NONE
    with pytest.raises(AuthError, match="Not logged in"):
        anon.whoami()
    with pytest.raises(AuthError) as ei:
        anon.login("hf_wrongWRONGwrongWRONGwrongWRONGwrong99")
    assert "wrong" not in ei.value.render().lower().replace("wrong token", "")
    assert not anon.settings.token_path.exists()  # a rejected token is never stored
    user = anon.login(" " + ALICE + "\n")
    assert user.name == "alice" and user.orgs == ("acme",) and user.token_role == "write"
    path = anon.settings.token_path
    assert path.read_text() == ALICE and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = _client(auth_hub)
    assert again.is_authenticated() and again.auth is HfAuth.FILE_TOKEN and again.whoami().name == "alice"
    assert again.logout() and not path.exists() and not again.logout()
    with pytest.raises(UsageError):
        anon.login("   ")
    with pytest.raises(UsageError):
        anon.login("two words")


def test_client_defaults_and_context_manager(seeded: HubServer) -> None:
    with HfClient() as hub:  # settings from the environment (HF_ENDPOINT = the seeded server)
        assert hub.settings.endpoint == seeded.url
        assert hub.model_info("acme/tiny-llama").id == "acme/tiny-llama"
    s = Settings(endpoint=seeded.url, token=Secret(ALICE), auth=HfAuth.TOKEN)
    assert HfClient(s).is_authenticated()


def test_generate_model_card_delegates_to_the_publish_layer() -> None:
    card = HfClient(Settings()).generate_model_card(
        {"model_name": "tiny", "license": "mit", "library_name": "transformers", "tags": ["x"]}
    )
    assert card.startswith("---\n") and "license: mit" in card and "tiny" in card


def test_upload_then_download_model_round_trip(hub_env: HubServer, tmp_path: Path) -> None:
    from batuta_sync.tinymodel import write_tiny_llama

    src = write_tiny_llama(tmp_path / "src")
    hub = _client(hub_env)
    sha = hub.upload_model(src, "me/tiny", "first upload")
    assert len(sha) == 40 and hub.resolve_commit(RepoRef("me/tiny")) == sha
    assert hub.upload_model(src, "me/tiny", "again") == sha  # unchanged: no new commit
    out = hub.download_model("me/tiny", output=tmp_path / "out")
    assert (out / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()
    only = hub.download_model("me/tiny", files=["config.json"], revision=sha)
    assert (only / "config.json").read_bytes() == (src / "config.json").read_bytes()
