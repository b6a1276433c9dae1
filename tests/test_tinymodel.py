"""The generated fixtures are real: safetensors loads them, tokenizers parses the BPE, cards parse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from batuta_sync.tinymodel import (
    TinyLlamaSpec,
    tiny_llama_tensors,
    write_tiny_dataset,
    write_tiny_llama,
    write_tiny_space,
)


def test_single_file_model_round_trips(tmp_path: Path) -> None:
    write_tiny_llama(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    tensors = load_file(str(tmp_path / "m" / "model.safetensors"))
    assert tensors["model.embed_tokens.weight"].shape == (cfg["vocab_size"], cfg["hidden_size"])
    assert tensors["model.layers.0.self_attn.k_proj.weight"].shape == (128, 256)  # GQA: 2 kv heads of 64
    assert all(t.dtype == np.float16 for t in tensors.values())
    assert "lm_head.weight" in tensors


def test_sharded_bf16_and_tied(tmp_path: Path) -> None:
    spec = TinyLlamaSpec(shards=3, dtype="bfloat16", tie_word_embeddings=True, seed=3)
    write_tiny_llama(tmp_path / "m", spec)
    index = json.loads((tmp_path / "m" / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert shards == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    from safetensors import safe_open

    names = set()
    for s in shards:
        with safe_open(str(tmp_path / "m" / s), "numpy") as f:
            names |= set(f.keys())
    assert names == set(index["weight_map"]) and "lm_head.weight" not in names
    ref = tiny_llama_tensors(spec)["model.norm.weight"]
    raw = (tmp_path / "m" / index["weight_map"]["model.norm.weight"]).read_bytes()
    hlen = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + hlen])
    start, end = header["model.norm.weight"]["data_offsets"]
    bf16 = np.frombuffer(raw[8 + hlen + start : 8 + hlen + end], dtype="<u2").astype(np.uint32) << 16
    assert np.allclose(bf16.view(np.float32), ref, rtol=1e-2)


def test_deterministic(tmp_path: Path) -> None:
    write_tiny_llama(tmp_path / "a")
    write_tiny_llama(tmp_path / "b")
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_tokenizer_is_a_valid_byte_level_bpe(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    write_tiny_llama(tmp_path / "m")
    tok = tokenizers.Tokenizer.from_file(str(tmp_path / "m" / "tokenizer.json"))
    assert tok.get_vocab_size() == 320
    enc = tok.encode("hello world and the model")
    assert tok.decode(enc.ids) == "hello world and the model"
    assert len(enc.ids) < len("hello world and the model")  # merges apply


def test_dataset_and_space_cards(tmp_path: Path) -> None:
    import yaml

    write_tiny_dataset(tmp_path / "d")
    front = yaml.safe_load((tmp_path / "d" / "README.md").read_text().split("---")[1])
    assert [s["name"] for s in front["dataset_info"]["splits"]] == ["train", "test"]
    assert (tmp_path / "d" / "data" / "train-00000-of-00001.jsonl").stat().st_size == front["dataset_info"]["splits"][0]["num_bytes"]
    write_tiny_space(tmp_path / "s", sdk="streamlit")
    assert yaml.safe_load((tmp_path / "s" / "README.md").read_text().split("---")[1])["sdk"] == "streamlit"
