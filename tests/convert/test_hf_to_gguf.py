"""safetensors model directory -> GGUF: tensor bytes against ggml, metadata, mixtures, llama.cpp logits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from batuta_sync.convert import CONVERTER_VERSION, GGUFQuantization, convert
from batuta_sync.convert.quantize import use_more_bits

from . import _llamacpp
from ._reference import forward
from .conftest import hf_weights

ALL_QUANTS = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K_M", "Q5_K_M", "Q6_K"]
HF_OF = {
    "token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head",
    "attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}


def hf_name(gg: str) -> str:
    parts = gg.split(".")
    if parts[0] == "blk":
        return f"model.layers.{parts[1]}.{HF_OF[parts[2]]}.{parts[3]}"
    return f"{HF_OF[parts[0]]}.{parts[1]}"


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf's LlamaModel.permute (written out independently of the converter)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def fields(path: Path) -> dict[str, Any]:
    r = gguf.GGUFReader(path)
    return {k: f.contents() for k, f in r.fields.items()}


def expected_input(gg: str, weights: dict[str, np.ndarray], cfg: dict[str, Any]) -> np.ndarray:
    w = weights[hf_name(gg)]
    if ".attn_q." in gg:
        w = permute(w, cfg["num_attention_heads"])
    elif ".attn_k." in gg:
        w = permute(w, cfg["num_key_value_heads"])
    return w


def convert_all(models: dict[str, Path], tmp: Path, name: str, quant: str, **kw: Any) -> Path:
    out = tmp / f"{name}-{quant}.gguf"
    if not out.exists():
        convert(models[name], out, to="gguf", quantization=quant, **kw)
    return out


@pytest.fixture(scope="module")
def outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gguf")


@pytest.mark.llamacpp
@pytest.mark.parametrize("quant", ALL_QUANTS)
@pytest.mark.parametrize("model", ["gqa", "tied_bf16", "odd"])
def test_every_tensor_is_byte_identical_to_ggml(models: dict[str, Path], outdir: Path, model: str, quant: str) -> None:
    path = convert_all(models, outdir, model, quant)
    cfg = json.loads((models[model] / "config.json").read_text())
    weights = hf_weights(models[model])
    reader = gguf.GGUFReader(path)
    names = {t.name for t in reader.tensors}
    expected_names = {"token_embd.weight", "output_norm.weight"} | {
        f"blk.{i}.{k}.weight" for i in range(cfg["num_hidden_layers"]) for k in
        ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")
    }
    if not cfg["tie_word_embeddings"]:
        expected_names.add("output.weight")
    assert names == expected_names
    for t in reader.tensors:
        qt = gguf.GGMLQuantizationType(int(t.tensor_type)).name
        x = expected_input(t.name, weights, cfg)
        assert tuple(int(d) for d in reversed(list(t.shape))) == x.shape, t.name
        got = np.asarray(t.data).tobytes()
        if qt == "F32":
            assert got == x.astype(np.float32).tobytes(), t.name
        elif qt == "BF16" and cfg["torch_dtype"] == "bfloat16":
            raw = (x.view(np.uint32) >> 16).astype(np.uint16)  # the stored bf16 bits, copied exactly
            assert got == raw.tobytes(), t.name
        else:
            assert got == _llamacpp.ggml_quantize(x, qt).tobytes(), (t.name, qt)


def _types(path: Path) -> dict[str, str]:
    return {t.name: gguf.GGMLQuantizationType(int(t.tensor_type)).name for t in gguf.GGUFReader(path).tensors}


def test_q4_k_m_mixture_follows_llama_quantize(models: dict[str, Path], outdir: Path) -> None:
    types = _types(convert_all(models, outdir, "gqa", "Q4_K_M"))
    n = 2
    assert types["output.weight"] == "Q6_K"
    assert types["token_embd.weight"] == "Q4_K"  # untied: the default type
    assert types["output_norm.weight"] == "F32" and types["blk.0.attn_norm.weight"] == "F32"
    for i in range(n):
        more = "Q6_K" if use_more_bits(i, n) else "Q4_K"
        assert types[f"blk.{i}.attn_v.weight"] == more
        assert types[f"blk.{i}.ffn_down.weight"] == more
        assert types[f"blk.{i}.attn_q.weight"] == types[f"blk.{i}.ffn_up.weight"] == "Q4_K"
    assert [use_more_bits(i, 32) for i in range(32)].count(True) == 16  # Llama-2-7B: 16 of 32 layers
    assert [i for i in range(8) if use_more_bits(i, 8)] == [0, 3, 6, 7]


def test_tied_embeddings_get_the_output_type(models: dict[str, Path], outdir: Path) -> None:
    for quant, emb in (("Q4_K_M", "Q6_K"), ("Q5_K_M", "Q6_K"), ("Q4_0", "Q6_K"), ("Q8_0", "Q8_0"), ("BF16", "BF16")):
        types = _types(convert_all(models, outdir, "tied_bf16", quant))
        assert "output.weight" not in types
        assert types["token_embd.weight"] == emb, quant


def test_fallbacks_when_rows_are_not_block_multiples(models: dict[str, Path], outdir: Path) -> None:
    # odd: hidden 144 (not a multiple of 32 -> F16), intermediate 288 (not of 256 -> 32-blocks)
    q4 = _types(convert_all(models, outdir, "odd", "Q4_K_M"))
    assert q4["blk.0.attn_q.weight"] == "F16" and q4["output.weight"] == "F16"
    assert q4["blk.0.ffn_down.weight"] == "Q5_0"  # Q4_K -> Q5_0
    assert q4["blk.3.ffn_down.weight"] == "Q8_0"  # use_more_bits(3, 4): Q6_K -> Q8_0
    q5 = _types(convert_all(models, outdir, "odd", "Q5_K_M"))
    assert q5["blk.0.ffn_down.weight"] == "Q5_1"  # Q5_K -> Q5_1
    q8 = _types(convert_all(models, outdir, "odd", "Q8_0"))
    assert q8["blk.0.ffn_down.weight"] == "Q8_0" and q8["blk.0.ffn_up.weight"] == "F16"


def test_metadata_llama_cpp_expects(models: dict[str, Path], outdir: Path) -> None:
    f = fields(convert_all(models, outdir, "gqa", "Q4_K_M"))
    cfg = json.loads((models["gqa"] / "config.json").read_text())
    assert f["general.architecture"] == "llama"
    assert f["llama.block_count"] == 2
    assert f["llama.embedding_length"] == 256 and f["llama.feed_forward_length"] == 512
    assert f["llama.attention.head_count"] == 4 and f["llama.attention.head_count_kv"] == 2
    assert f["llama.context_length"] == 256 and f["llama.vocab_size"] == 320
    assert f["llama.rope.dimension_count"] == 64
    assert f["llama.rope.freq_base"] == pytest.approx(cfg["rope_parameters"]["rope_theta"])  # transformers 5 key
    assert f["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-5)
    assert f["general.file_type"] == GGUFQuantization.Q4_K_M.file_type == 15
    assert f["general.quantization_version"] == 2
    assert f["tokenizer.ggml.model"] == "gpt2" and f["tokenizer.ggml.pre"] == "gpt-2"
    tok = json.loads((models["gqa"] / "tokenizer.json").read_text())
    tokens = f["tokenizer.ggml.tokens"]
    assert len(tokens) == 320
    assert all(tokens[i] == t for t, i in tok["model"]["vocab"].items())
    assert f["tokenizer.ggml.token_type"][:4] == [3, 3, 3, 1]  # specials are CONTROL
    assert f["tokenizer.ggml.merges"][0] == " ".join(tok["model"]["merges"][0])
    assert len(f["tokenizer.ggml.merges"]) == len(tok["model"]["merges"])
    assert f["tokenizer.ggml.bos_token_id"] == 1 and f["tokenizer.ggml.eos_token_id"] == 2
    assert "assistant" in f["tokenizer.chat_template"]
    assert "tokenizer.ggml.scores" not in f
    assert {"F32": 0, "F16": 1, "BF16": 32, "Q8_0": 7, "Q4_0": 2, "Q5_K_M": 17, "Q6_K": 18}["Q6_K"] == \
        GGUFQuantization.Q6_K.file_type


@pytest.mark.llamacpp
@pytest.mark.parametrize(("model", "quant", "tol"), [
    ("gqa", "F32", 0.02), ("gqa", "F16", 0.02), ("tied_bf16", "F32", 0.02), ("tied_bf16", "BF16", 0.06),
    ("odd", "F32", 0.02), ("gqa", "Q8_0", 0.5), ("gqa", "Q4_K_M", 2.0), ("odd", "Q4_K_M", 2.0),
])
def test_llama_cpp_loads_it_and_logits_match_reference(models: dict[str, Path], outdir: Path, model: str,
                                                       quant: str, tol: float) -> None:
    path = convert_all(models, outdir, model, quant)
    cfg = json.loads((models[model] / "config.json").read_text())
    tokens = [1, 40, 77, 5, 260, 13, 99]
    ref = forward(hf_weights(models[model]), cfg, tokens)[-1]
    got = _llamacpp.last_logits(path, tokens)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < tol
    if tol < 0.1:
        assert int(np.argmax(got)) == int(np.argmax(ref))
    assert np.corrcoef(got, ref)[0, 1] > 0.9


def test_jobs_give_identical_bytes(models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import batuta_sync.convert.hf_to_gguf as h

    monkeypatch.setattr(h, "CHUNK_ELEMENTS", 20_000)  # several work items per tensor
    seen: list[tuple[int, int]] = []
    one = convert(models["gqa"], tmp_path / "one.gguf", to="gguf", quantization="q4_k_m", jobs=1)
    two = convert(models["gqa"], tmp_path / "two.gguf", to="gguf", quantization="Q4_K_M", jobs=2,
                  progress=lambda d, t: seen.append((d, t)))
    assert one.output.read_bytes() == two.output.read_bytes()
    # K-quants run in the compiled kernels (GIL released): threads, one process, one numba runtime
    from batuta_sync.convert.kquants import backend_name

    if backend_name("Q4_K") == "numba":
        assert h.pool_kind({"Q4_K", "Q6_K"}) == h.pool_kind({"Q4_K", "Q6_K", "F32"}) == "threads"
    assert h.pool_kind({"Q4_K", "Q8_0"}) == h.pool_kind({"Q8_0"}) == h.pool_kind({"F32"}) == "processes"
    monkeypatch.setenv("BATUTA_KQUANTS_BACKEND", "numpy")
    assert h.pool_kind({"Q4_K", "Q6_K"}) == "processes"
    monkeypatch.delenv("BATUTA_KQUANTS_BACKEND")
    assert seen[-1] == (two.tensor_count, two.tensor_count) and len(seen) == two.tensor_count
    assert two.params["converter_version"] == CONVERTER_VERSION
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left behind
    # F32 input: norms are plain copies done in the parent while workers quantize the rest
    a = convert(models["odd"], tmp_path / "a.gguf", to="gguf", quantization="Q8_0", jobs=1).output
    b = convert(models["odd"], tmp_path / "b.gguf", to="gguf", quantization="Q8_0", jobs=2).output
    assert a.read_bytes() == b.read_bytes()


def test_output_directory_and_default_quantization(models: dict[str, Path], tmp_path: Path) -> None:
    res = convert(models["gqa"], tmp_path, to="gguf")
    assert res.output == tmp_path / "gqa-Q4_K_M.gguf"
    assert res.params["quantization"] == "Q4_K_M"
    assert res.files == (res.output,) and res.tensor_count == 21


def test_sentencepiece_tokenizer(models: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    from batuta_sync.convert.tokenizer import read_sentencepiece, write_sentencepiece

    d = tmp_path / "spm"
    shutil.copytree(models["odd"], d)
    (d / "tokenizer.json").unlink()
    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["▁hello", "▁world"]
    types = [2, 3, 3] + [6] * 256 + [1, 1]
    scores = [0.0] * 259 + [-1.0, -2.0]
    write_sentencepiece(d / "tokenizer.model", pieces, scores, types, {"unk": 0, "bos": 1, "eos": 2})
    assert read_sentencepiece(d / "tokenizer.model") == list(zip(pieces, scores, types, strict=True))
    out = convert(d, tmp_path / "spm.gguf", to="gguf", quantization="F16").output
    f = fields(out)
    assert f["tokenizer.ggml.model"] == "llama" and f["tokenizer.ggml.pre"] == "default"
    assert f["tokenizer.ggml.tokens"][:261] == pieces and len(f["tokenizer.ggml.tokens"]) == 320
    assert f["tokenizer.ggml.scores"][260] == -2.0 and f["tokenizer.ggml.token_type"][300] == 5
    assert f["tokenizer.ggml.bos_token_id"] == 1
    assert "tokenizer.ggml.merges" not in f
    if _llamacpp.library_path() is not None:  # llama.cpp accepts the SentencePiece vocabulary too
        cfg = json.loads((d / "config.json").read_text())
        ref = forward(hf_weights(d), cfg, [1, 300, 259, 5])[-1]
        assert np.abs(_llamacpp.last_logits(out, [1, 300, 259, 5]) - ref).max() < 0.05


def test_llama3_rope_scaling_adds_rope_freqs(models: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    d = tmp_path / "l3"
    shutil.copytree(models["gqa"], d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                           "original_max_position_embeddings": 64}
    cfg["head_dim"] = 64
    (d / "config.json").write_text(json.dumps(cfg))
    r = gguf.GGUFReader(convert(d, tmp_path / "l3.gguf", to="gguf", quantization="F32").output)
    rf = next(t for t in r.tensors if t.name == "rope_freqs.weight")
    assert rf.data.shape == (32,) and rf.data[0] == 1.0 and rf.data[-1] == 8.0
    assert r.fields["llama.attention.key_length"].contents() == 64


def test_linear_and_yarn_rope_scaling(models: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    for kind in ("linear", "yarn"):
        d = tmp_path / kind
        shutil.copytree(models["gqa"], d)
        cfg = json.loads((d / "config.json").read_text())
        cfg["rope_parameters"] = {"rope_theta": 1e6, "rope_type": kind, "factor": 4.0,
                                  "original_max_position_embeddings": 64}
        (d / "config.json").write_text(json.dumps(cfg))
        f = fields(convert(d, tmp_path / f"{kind}.gguf", to="gguf", quantization="F16").output)
        assert f["llama.rope.scaling.type"] == kind and f["llama.rope.scaling.factor"] == 4.0
        assert f["llama.rope.freq_base"] == 1e6


@pytest.mark.llamacpp
def test_qwen2_with_biases_and_no_permutation(models: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    from safetensors.numpy import save_file

    d = tmp_path / "qwen2"
    shutil.copytree(models["gqa"], d)
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(architectures=["Qwen2ForCausalLM"], model_type="qwen2")
    (d / "config.json").write_text(json.dumps(cfg))
    rng = np.random.default_rng(5)
    kv = cfg["num_key_value_heads"] * cfg["hidden_size"] // cfg["num_attention_heads"]
    biases = {}
    for i in range(cfg["num_hidden_layers"]):
        for proj, n in (("q", cfg["hidden_size"]), ("k", kv), ("v", kv)):
            biases[f"model.layers.{i}.self_attn.{proj}_proj.bias"] = (0.1 * rng.standard_normal(n)).astype(np.float16)
    save_file(biases, str(d / "biases.safetensors"))
    out = convert(d, tmp_path / "q.gguf", to="gguf", quantization="F32").output
    f = fields(out)
    assert f["general.architecture"] == "qwen2" and f["qwen2.block_count"] == 2
    weights = hf_weights(d)
    reader = gguf.GGUFReader(out)
    by_name = {t.name: t for t in reader.tensors}
    assert np.asarray(by_name["blk.0.attn_q.weight"].data).tobytes() == \
        weights["model.layers.0.self_attn.q_proj.weight"].tobytes()  # NEOX rope: no permutation
    assert by_name["blk.1.attn_k.bias"].data.shape == (kv,)
    tokens = [1, 40, 77, 5, 260, 13, 99]
    ref = forward(weights, cfg, tokens)[-1]
    got = _llamacpp.last_logits(out, tokens)
    assert np.abs(got - ref).max() < 0.02
    back = convert(out, tmp_path / "back", to="safetensors")
    assert json.loads((back.output / "config.json").read_text())["architectures"] == ["Qwen2ForCausalLM"]
    np.testing.assert_array_equal(hf_weights(back.output)["model.layers.1.self_attn.v_proj.bias"],
                                  weights["model.layers.1.self_attn.v_proj.bias"])


def test_mistral_is_llama_in_gguf(models: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    d = tmp_path / "mistral"
    shutil.copytree(models["gqa"], d)
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(architectures=["MistralForCausalLM"], model_type="mistral", sliding_window=None, head_dim=64)
    (d / "config.json").write_text(json.dumps(cfg))
    out = convert(d, tmp_path / "m.gguf", to="gguf", quantization="Q8_0").output
    f = fields(out)
    assert f["general.architecture"] == "llama" and f["general.file_type"] == 7
    assert f["llama.attention.key_length"] == 64
    ref = convert(models["gqa"], tmp_path / "l.gguf", to="gguf", quantization="Q8_0").output
    a, b = gguf.GGUFReader(out).tensors, gguf.GGUFReader(ref).tensors
    assert all(np.asarray(x.data).tobytes() == np.asarray(y.data).tobytes() for x, y in zip(a, b, strict=True))
