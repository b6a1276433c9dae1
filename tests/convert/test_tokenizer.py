"""Tokenizer plumbing: pre-tokenizer ids, SentencePiece protobuf, added tokens, GGUF -> tokenizer.json."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest

from batuta_sync.convert import convert
from batuta_sync.convert.tokenizer import (
    LLAMA3_REGEX,
    QWEN2_REGEX,
    detect_pre,
    load_vocab,
    read_sentencepiece,
    write_sentencepiece,
)
from batuta_sync.errors import ConversionError


def _split(regex: str) -> dict:
    return {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}}


def test_detect_pre() -> None:
    assert detect_pre(_split(LLAMA3_REGEX), "llama") == "llama-bpe"
    assert detect_pre(_split(QWEN2_REGEX), "qwen2") == "qwen2"
    assert detect_pre({"pre_tokenizer": {"type": "ByteLevel", "use_regex": True}}, "llama") == "gpt-2"
    assert detect_pre({"pre_tokenizer": None}, "llama") == "default"
    assert detect_pre({"pre_tokenizer": {"type": "Metaspace"}}, "qwen2") == "qwen2"


def test_llama3_style_tokenizer_round_trips_through_gguf(models: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    from tokenizers import Tokenizer

    d = tmp_path / "l3"
    shutil.copytree(models["gqa"], d)
    tok = json.loads((d / "tokenizer.json").read_text())
    tok.update(_split(LLAMA3_REGEX))
    vocab = tok["model"]["vocab"]
    gone = {t for t, i in vocab.items() if i >= 318}  # free ids 318/319 for added tokens
    tok["model"]["vocab"] = {t: i for t, i in vocab.items() if t not in gone}
    tok["model"]["merges"] = [m for m in tok["model"]["merges"] if not ({*m, "".join(m)} & gone)]
    tok["model"]["ignore_merges"] = True  # as Llama-3's tokenizer.json (llama.cpp does the same for llama-bpe)
    tok["post_processor"] = {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                             {"Sequence": {"id": "A", "type_id": 0}}], "pair": [],
                             "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    tok["added_tokens"].append({"id": 319, "content": "<|eot_id|>", "single_word": False, "lstrip": False,
                                "rstrip": False, "normalized": False, "special": False})
    tok["added_tokens"].append({"id": 318, "content": "▁plain", "single_word": False, "lstrip": False,
                                "rstrip": False, "normalized": True, "special": False})
    (d / "tokenizer.json").write_text(json.dumps(tok))
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg["add_bos_token"] = True
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    g = convert(d, tmp_path / "l3.gguf", to="gguf", quantization="F16").output
    f = {k: v.contents() for k, v in gguf.GGUFReader(g).fields.items()}
    assert f["tokenizer.ggml.pre"] == "llama-bpe"
    assert f["tokenizer.ggml.token_type"][319] == 3 and f["tokenizer.ggml.token_type"][318] == 4  # <|..|> is CONTROL
    assert f["tokenizer.ggml.tokens"][318] == " plain"
    assert f["tokenizer.ggml.add_bos_token"] is True
    convert(g, tmp_path / "back", to="safetensors")
    back = Tokenizer.from_file(str(tmp_path / "back" / "tokenizer.json"))
    assert back.encode("hello world").ids[0] == 1  # BOS added by the rebuilt post-processor
    assert back.encode("hello world").ids[1:] == Tokenizer.from_file(str(d / "tokenizer.json")).encode(
        "hello world").ids[1:]


def test_sentencepiece_with_added_tokens_and_tiktoken_detection(tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    write_sentencepiece(d / "tokenizer.model", ["<unk>", "<s>", "</s>", "a"], [0.0, 0.0, 0.0, -1.0], [2, 3, 3, 1],
                        {"unk": 0, "bos": 1, "eos": 2, "pad": -1}, add_space_prefix=False)
    (d / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": {
        "3": {"content": "<tool>", "special": True}, "6": {"content": "<extra>", "special": False}}}))
    v = load_vocab(d, 8, "llama")
    assert v.model == "llama" and v.tokens[:7] == ("<unk>", "<s>", "</s>", "<tool>", "[PAD4]", "[PAD5]", "<extra>")
    assert v.types[3] == 3 and v.types[6] == 4 and v.types[7] == 5 and v.scores is not None and v.scores[3] == -1000.0
    with pytest.raises(ConversionError, match="vocab_size = 2"):
        load_vocab(d, 2, "llama")
    (d / "tokenizer.model").write_bytes(b"IQ== 0\nIg== 1\n")  # tiktoken (Llama-3 original) is not SentencePiece
    with pytest.raises(ConversionError, match="no tokenizer"):
        load_vocab(d, 8, "llama")
    (d / "tokenizer.model").write_bytes(b"\x0a\x05\x0a\x03")  # truncated protobuf
    with pytest.raises(ConversionError, match="not a valid SentencePiece"):
        read_sentencepiece(d / "tokenizer.model")
    (d / "tokenizer.model").write_bytes(b"\x12\x00")  # valid protobuf, no pieces
    with pytest.raises(ConversionError, match="no SentencePiece pieces"):
        read_sentencepiece(d / "tokenizer.model")


def test_bad_tokenizer_json(models: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    d = tmp_path / "m"
    shutil.copytree(models["gqa"], d)
    (d / "tokenizer.json").write_text("{")
    with pytest.raises(ConversionError, match=r"not a readable tokenizer\.json"):
        convert(d, tmp_path / "o.gguf", to="gguf")
    tok = json.loads((models["gqa"] / "tokenizer.json").read_text())
    tok["model"]["merges"] = []
    (d / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(ConversionError, match="no BPE merges"):
        convert(d, tmp_path / "o.gguf", to="gguf")
    assert not (tmp_path / "o.gguf").exists()


def test_gguf_without_tokenizer_still_converts(tmp_path: Path) -> None:
    w = gguf.GGUFWriter(tmp_path / "bare.gguf", "llama")
    for add, v in (("add_block_count", 1), ("add_context_length", 32), ("add_embedding_length", 8),
                   ("add_feed_forward_length", 16), ("add_head_count", 2)):
        getattr(w, add)(v)
    w.add_tensor("token_embd.weight", np.ones((5, 8), np.float16))
    w.add_tensor("blk.0.attn_q.weight", np.arange(64, dtype=np.float32).reshape(8, 8))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    res = convert(tmp_path / "bare.gguf", tmp_path / "out", to="safetensors")
    assert sorted(p.name for p in res.files) == ["config.json", "model.safetensors"]
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["vocab_size"] == 5 and cfg["torch_dtype"] in ("float16", "float32")
