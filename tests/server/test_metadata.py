"""Derived metadata (safetensors/GGUF summaries, cardData, tags) and search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import HfApi

from batuta_sync.server import HubServer, meta


def _safetensors(path: Path) -> Path:
    from safetensors.numpy import save_file

    save_file({"a": np.zeros((3, 4), np.float32), "b": np.zeros((5,), np.float16)}, str(path))
    return path


def _gguf(path: Path) -> Path:
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(2048)
    w.add_chat_template("{{ messages }}")
    w.add_token_list(["<unk>", "<s>", "</s>", "hi"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_tensor("t1", np.zeros((2, 8), np.float32))
    w.add_tensor("t2", np.zeros((3,), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_model_summaries(hub_server: HubServer, tmp_path: Path) -> None:
    st = _safetensors(tmp_path / "m.safetensors")
    gg = _gguf(tmp_path / "m.gguf")
    readme = b"---\nlibrary_name: transformers\npipeline_tag: text-generation\nlanguage: [en]\ntags: [x]\n---\nhi\n"
    hub_server.store.commit("local/m", {"model.safetensors": st, "model-q4.gguf": gg, "README.md": readme})
    info = HfApi(endpoint=hub_server.url).model_info("local/m")
    assert info.safetensors is not None
    assert info.safetensors.parameters == {"F32": 12, "F16": 5} and info.safetensors.total == 17
    assert info.gguf == {
        "total": 19,
        "architecture": "llama",
        "context_length": 2048,
        "chat_template": "{{ messages }}",
        "bos_token": "<s>",
        "eos_token": "</s>",
    }
    assert info.pipeline_tag == "text-generation" and info.library_name == "transformers"
    assert {"x", "transformers", "safetensors", "gguf", "text-generation", "en"} <= set(info.tags or [])


def test_header_parsers_reject_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"\xff" * 16)
    assert meta.safetensors_params(bad) is None
    assert meta.gguf_summary(bad) is None
    assert meta.gguf_summary(tmp_path / "missing") is None
    assert meta.front_matter("no front matter") == {}
    assert meta.front_matter("---\n[unclosed\n") == {}
    assert meta.front_matter("---\n: : bad: [\n---\n") == {}
    assert meta.validate_card_yaml("---\nok: 1\n") == (["YAML front matter is not closed with '---'."], [])


def test_dataset_and_space_info(hub_server: HubServer) -> None:
    card = b"""---
license: cc-by-4.0
size_categories: [n<1K]
task_categories: [text-classification]
dataset_info:
  features:
  - name: text
    dtype: string
  splits:
  - name: train
    num_bytes: 100
    num_examples: 10
  download_size: 50
  dataset_size: 100
---
"""
    hub_server.store.commit(
        "local/ds", {"README.md": card, "data/train.parquet": b"PAR1"}, repo_type="dataset"
    )
    api = HfApi(endpoint=hub_server.url)
    ds = api.dataset_info("local/ds", files_metadata=True)
    assert ds.card_data is not None
    di = ds.card_data.get("dataset_info")
    assert di["splits"][0]["num_examples"] == 10 and di["features"][0]["name"] == "text"
    assert "size_categories:n<1K" in (ds.tags or [])
    sib = {s.rfilename: s for s in ds.siblings or []}
    assert sib["data/train.parquet"].lfs is not None
    hub_server.store.commit(
        "local/sp", {"README.md": b"---\nsdk: gradio\n---\n", "app.py": b"print(1)"}, repo_type="space"
    )
    sp = api.space_info("local/sp")
    assert sp.sdk == "gradio"
    assert sp.runtime is not None and sp.runtime.stage == "RUNNING"
    assert api.get_space_runtime("local/sp").stage == "RUNNING"
    hub_server.store.commit("local/sp2", {"README.md": b"---\nsdk: docker\n---\n"}, repo_type="space")
    sp2 = api.space_info("local/sp2")
    assert sp2.sdk == "docker" and sp2.runtime is not None and sp2.runtime.stage == "NO_APP_FILE"


def test_search_filters_sort_limit(hub_server: HubServer) -> None:
    s = hub_server.store
    s.commit("alice/tiny-llama", {"README.md": b"---\nlibrary_name: transformers\ntags: [gguf]\n---\n"})
    s.commit(
        "alice/tiny-bert", {"README.md": b"---\nlibrary_name: transformers\npipeline_tag: fill-mask\n---\n"}
    )
    s.commit("bob/other", {"README.md": b"---\nlibrary_name: diffusers\n---\n"})
    s.set_downloads("alice/tiny-bert", 50)
    s.set_downloads("bob/other", 10)
    s.set_likes("alice/tiny-llama", 7)
    api = HfApi(endpoint=hub_server.url)
    assert [m.id for m in api.list_models(search="tiny")] == ["alice/tiny-bert", "alice/tiny-llama"]
    assert [m.id for m in api.list_models(author="bob")] == ["bob/other"]
    assert [m.id for m in api.list_models(filter="diffusers")] == ["bob/other"]
    assert [m.id for m in api.list_models(filter=["transformers", "gguf"])] == ["alice/tiny-llama"]
    assert [m.id for m in api.list_models(pipeline_tag="fill-mask")] == ["alice/tiny-bert"]
    assert [m.id for m in api.list_models(sort="downloads")] == [
        "alice/tiny-bert",
        "bob/other",
        "alice/tiny-llama",
    ]
    assert [m.id for m in api.list_models(sort="likes", limit=1)] == ["alice/tiny-llama"]
    full = list(api.list_models(search="other", full=True, cardData=True))
    assert full[0].siblings is not None and full[0].card_data is not None
    # direction=1 ascending and pagination via Link
    import httpx2 as httpx

    r = httpx.get(f"{hub_server.url}/api/models", params={"sort": "downloads", "direction": "1", "limit": 2})
    assert [m["id"] for m in r.json()] == ["alice/tiny-llama", "bob/other"]
    assert 'rel="next"' in r.headers["Link"]
    nxt = httpx.get(r.links["next"]["url"])
    assert [m["id"] for m in nxt.json()] == ["alice/tiny-bert"] and "Link" not in nxt.headers
    assert httpx.get(f"{hub_server.url}/api/models", params={"sort": "bogus"}).status_code == 400
    s.commit(
        "alice/data1",
        {"README.md": b"---\nlanguage: [fr]\nsize_categories: [1K<n<10K]\n---\n"},
        repo_type="dataset",
    )
    s.commit("alice/sp", {"README.md": b"---\nsdk: streamlit\n---\n"}, repo_type="space")
    assert [d.id for d in api.list_datasets(language="fr")] == ["alice/data1"]
    assert [d.id for d in api.list_datasets(size_categories="1K<n<10K")] == ["alice/data1"]
    assert list(api.list_datasets(language="de")) == []
    assert [x.id for x in api.list_spaces(filter="streamlit")] == ["alice/sp"]


def test_downloads_counted_and_likes(hub_server: HubServer, tmp_path: Path) -> None:
    from huggingface_hub import hf_hub_download

    hub_server.store.commit("local/c", {"a.txt": b"a", "w.bin": b"w" * 10})
    for name in ("a.txt", "w.bin"):
        hf_hub_download("local/c", name, endpoint=hub_server.url, cache_dir=tmp_path / "c")
    api = HfApi(endpoint=hub_server.url, token="t")
    assert api.model_info("local/c").downloads == 2
    api.unlike("local/c")
    assert api.model_info("local/c").likes == 0


@pytest.mark.parametrize("sdk", ["static"])
def test_create_space_with_sdk(hub_server: HubServer, sdk: str) -> None:
    api = HfApi(endpoint=hub_server.url, token="t")
    api.create_repo("local/s1", repo_type="space", space_sdk=sdk)
    assert api.space_info("local/s1").sdk == sdk
