"""GGUF -> safetensors: exact round trips, dequantization, names, permutation, config, tokenizer, shards."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest

from batuta_sync.convert import convert
from batuta_sync.convert.gguf_to_hf import write_hf
from batuta_sync.convert.st_io import read_header
from batuta_sync.errors import ConversionError

from .conftest import hf_weights


def raw_tensors(model_dir: Path) -> dict[str, tuple[str, bytes]]:
    from batuta_sync.convert.hf_to_gguf import find_weights

    return {n: (r.dtype, np.asarray(r.raw()).tobytes()) for n, r in find_weights(model_dir).items()}


@pytest.mark.parametrize(("model", "quant"), [("odd", "F32"), ("gqa", "F16"), ("tied_bf16", "BF16")])
def test_round_trip_is_exact(models: dict[str, Path], tmp_path: Path, model: str, quant: str) -> None:
    g = convert(models[model], tmp_path / "m.gguf", to="gguf", quantization=quant).output
    res = convert(g, tmp_path / "back", to="safetensors")
    src_cfg = json.loads((models[model] / "config.json").read_text())
    cfg = json.loads((tmp_path / "back" / "config.json").read_text())
    for key in ("architectures", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads", "num_key_value_heads", "max_position_embeddings", "rms_norm_eps",
                "tie_word_embeddings", "bos_token_id", "eos_token_id"):
        assert cfg[key] == src_cfg[key], key
    theta = (src_cfg.get("rope_parameters") or {}).get("rope_theta") or src_cfg["rope_theta"]
    assert cfg["rope_theta"] == theta
    src = raw_tensors(models[model])
    back = raw_tensors(tmp_path / "back")
    assert set(back) == set(src)
    for name, (dtype, data) in src.items():
        bdtype, bdata = back[name]
        if dtype == bdtype:
            assert bdata == data, name  # same dtype: byte-exact (names and Q/K permutation reversed)
        else:  # norms are F32 in GGUF: exact widening
            assert bdtype == "F32" and len(src[name][1]) < len(bdata)
            np.testing.assert_array_equal(hf_weights(tmp_path / "back")[name], hf_weights(models[model])[name])
    assert res.tensor_count == len(src) and res.params["to"] == "safetensors"
    assert cfg["torch_dtype"] == {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[quant]


def test_tokenizer_comes_back_loadable(models: dict[str, Path], tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    g = convert(models["gqa"], tmp_path / "m.gguf", to="gguf", quantization="Q8_0").output
    convert(g, tmp_path / "back", to="safetensors")
    orig = Tokenizer.from_file(str(models["gqa"] / "tokenizer.json"))
    back = Tokenizer.from_file(str(tmp_path / "back" / "tokenizer.json"))
    text = "hello world, the batuta model is syncing"
    assert back.encode(text).ids == orig.encode(text).ids
    assert back.token_to_id("</s>") == 2
    tc = json.loads((tmp_path / "back" / "tokenizer_config.json").read_text())
    assert tc["bos_token"] == "<s>" and tc["eos_token"] == "</s>" and "assistant" in tc["chat_template"]


def test_quantized_gguf_dequantizes_with_unpermuted_rows(models: dict[str, Path], tmp_path: Path) -> None:
    g = convert(models["gqa"], tmp_path / "m.gguf", to="gguf", quantization="Q4_K_M").output
    convert(g, tmp_path / "back", to="safetensors")
    back = hf_weights(tmp_path / "back")
    src = hf_weights(models["gqa"])
    reader = gguf.GGUFReader(g)
    t = next(t for t in reader.tensors if t.name == "blk.1.attn_v.weight")
    deq = gguf.quants.dequantize(t.data, t.tensor_type)
    np.testing.assert_array_equal(back["model.layers.1.self_attn.v_proj.weight"], deq)
    for name, w in src.items():  # close to the original, including permuted q/k
        err = np.sqrt(np.mean((back[name] - w) ** 2)) / np.sqrt(np.mean(w * w))
        assert err < 0.15, name
    assert read_header(tmp_path / "back" / "model.safetensors")["model.embed_tokens.weight"].dtype == "F32"


def test_shards_and_index_for_large_models(models: dict[str, Path], tmp_path: Path) -> None:
    g = convert(models["gqa"], tmp_path / "m.gguf", to="gguf", quantization="F16").output
    _, _, params = write_hf(g, tmp_path / "sharded", max_shard_bytes=300_000)
    shards = sorted((tmp_path / "sharded").glob("model-*.safetensors"))
    assert len(shards) > 2 and params["shards"] == str(len(shards))
    index = json.loads((tmp_path / "sharded" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(raw_tensors(models["gqa"]))
    assert {tmp_path / "sharded" / f for f in index["weight_map"].values()} == set(shards)
    # and the sharded directory converts again, to the very same GGUF tensors
    g2 = convert(tmp_path / "sharded", tmp_path / "again.gguf", to="gguf", quantization="F16").output
    a, b = gguf.GGUFReader(g), gguf.GGUFReader(g2)
    assert [t.name for t in a.tensors] == [t.name for t in b.tensors]
    for ta, tb in zip(a.tensors, b.tensors, strict=True):
        assert np.asarray(ta.data).tobytes() == np.asarray(tb.data).tobytes()


def test_sentencepiece_vocab_is_written_back(models: dict[str, Path], tmp_path: Path) -> None:
    from batuta_sync.convert.tokenizer import read_sentencepiece

    w = gguf.GGUFWriter(tmp_path / "spm.gguf", "llama")
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(64)
    w.add_feed_forward_length(128)
    w.add_head_count(2)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_tokenizer_model("llama")
    w.add_token_list(["<unk>", "<s>", "</s>", "▁a"])
    w.add_token_scores([0.0, 0.0, 0.0, -1.5])
    w.add_token_types([2, 3, 3, 1])
    w.add_bos_token_id(1)
    w.add_tensor("token_embd.weight", np.ones((4, 64), np.float32))
    w.add_tensor("output_norm.weight", np.ones(64, np.float32))
    w.add_tensor("rope_freqs.weight", np.ones(16, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    _, count, params = write_hf(tmp_path / "spm.gguf", tmp_path / "out")
    assert count == 2 and "dropped" not in params  # rope_freqs is mapped back into rope_scaling, never dropped
    assert read_sentencepiece(tmp_path / "out" / "tokenizer.model") == [
        ("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3), ("▁a", -1.5, 1)]
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["tie_word_embeddings"] is True and cfg["vocab_size"] == 4
    assert cfg["rope_scaling"]["rope_type"] == "llama3" and cfg["rope_scaling"]["factor"] == 1.0
    assert json.loads((tmp_path / "out" / "tokenizer_config.json").read_text())["bos_token"] == "<s>"


def test_unsupported_gguf_architecture_and_corrupt_file(tmp_path: Path) -> None:
    w = gguf.GGUFWriter(tmp_path / "bert.gguf", "bert")
    w.add_tensor("token_embd.weight", np.ones((4, 8), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ConversionError, match="architecture 'bert'"):
        convert(tmp_path / "bert.gguf", tmp_path / "out", to="safetensors")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 40)
    with pytest.raises(ConversionError, match="not a readable GGUF"):
        convert(bad, tmp_path / "out", to="safetensors")
    assert not (tmp_path / "out" / "config.json").exists()
