"""Every architecture of the table (Qwen3, Qwen3-MoE, Gemma 2, Gemma 3, Phi-3, Mixtral), on a tiny
generated checkpoint with the real config keys and tokenizer files:

* safetensors -> GGUF -> safetensors gives back every tensor exactly (experts split again, Gemma's
  ``w + 1`` undone) and the same config values;
* llama.cpp (the xllamacpp wheel) loads each GGUF and decodes;
* with the peers of docs/conversion.md installed (``~/.cache/batuta-bench/peers``: torch, transformers,
  and llama.cpp's ``convert_hf_to_gguf.py`` from the llama-cpp-python sdist), our F16 GGUF is
  byte-identical to the peer's tensor by tensor and key by key, and llama.cpp's logits on our F32 GGUF
  are within 1e-2 of transformers' float32 forward pass.  Those tests skip cleanly without the peers.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from batuta_sync.convert import convert
from batuta_sync.tinymodel import TINY_ARCHS, TinyLlamaSpec, write_tiny_arch, write_tiny_llama

from . import _llamacpp

PEER_CACHE = Path.home() / ".cache" / "batuta-bench"
TOKENS = [2, 40, 50, 60, 70, 80]
LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 8192}
# the table's new architectures, plus LLaMA and Llama 3.x rope scaling for the peer comparisons
YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64, "beta_fast": 32.0, "beta_slow": 1.0,
        "attention_factor": 1.125}
# transformers 5 writes Gemma 3's rope per attention type
GEMMA3_ROPE = {"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
               "sliding_attention": {"rope_type": "default", "rope_theta": 20000.0}}
ALL = (*TINY_ARCHS, "LlamaForCausalLM", "Llama3RopeScaling", "Qwen3Yarn", "Gemma3RopeParameters", "Phi4",
       "Gemma3NoSlidingWindow", "Phi3LongRope")
# Phi-3 LongRoPE: 32 long / short factors, 256 positions over an original 64
LONGROPE = {"type": "longrope", "long_factor": [round(1.0 + 0.25 * i, 2) for i in range(32)],
            "short_factor": [round(1.0 + 0.01 * i, 2) for i in range(32)]}
# YaRN: our GGUF is the peer's byte for byte, but llama.cpp's YaRN and transformers' differ by ~2 % here.
# LongRoPE: transformers takes the short factors for 6 tokens, llama.cpp the long ones for its 512-token
# context (tests/convert/test_longrope.py checks llama.cpp against a reference with the long factors)
LOGIT_CASES = tuple(a for a in ALL if a not in ("Qwen3Yarn", "Phi3LongRope"))


def peer_python() -> str | None:
    py = os.environ.get("BATUTA_BENCH_PEER_PYTHON") or str(PEER_CACHE / "peers" / "bin" / "python")
    return py if Path(py).is_file() else None


def peer_has(*modules: str) -> bool:
    py = peer_python()
    if py is None:
        return False
    code = "import importlib.util, sys; sys.exit(0 if all(importlib.util.find_spec(m) for m in sys.argv[1:]) else 1)"
    return subprocess.run([py, "-c", code, *modules], capture_output=True, timeout=60).returncode == 0


def convert_script() -> Path | None:
    found = sorted(PEER_CACHE.glob("llama_cpp_python-*/vendor/llama.cpp/convert_hf_to_gguf.py"))
    return found[-1] if found else None


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("archs")
    out = {a: write_tiny_arch(root / a, a, seed=i) for i, a in enumerate(TINY_ARCHS)}
    out["LlamaForCausalLM"] = write_tiny_llama(root / "llama", TinyLlamaSpec(seed=11), card=False)
    d = write_tiny_llama(root / "llama3", TinyLlamaSpec(seed=12), card=False)
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "rope_theta": 500000.0, "rope_scaling": LLAMA3}))
    out["Llama3RopeScaling"] = d
    for name, arch, edit in (("Qwen3Yarn", "Qwen3ForCausalLM", {"rope_scaling": YARN}),
                             ("Gemma3RopeParameters", "Gemma3ForCausalLM", {"rope_parameters": GEMMA3_ROPE}),
                             ("Gemma3NoSlidingWindow", "Gemma3ForCausalLM", {"sliding_window_pattern": 1,
                                                                             "rope_theta": 1000000.0}),
                             ("Phi3LongRope", "Phi3ForCausalLM", {"rope_scaling": LONGROPE, "rope_theta": 10000.0,
                                                                  "max_position_embeddings": 256,
                                                                  "original_max_position_embeddings": 64})):
        d = write_tiny_arch(root / name, arch, seed=13)
        cfg = json.loads((d / "config.json").read_text())
        cfg = {k: v for k, v in cfg.items() if k not in ("rope_theta", "rope_local_base_freq")}
        (d / "config.json").write_text(json.dumps({**cfg, **edit}))
        out[name] = d
    # Phi-4: Phi3ForCausalLM with a GPT-2 BPE tokenizer and no sliding window
    from batuta_sync.tinymodel import tokenizer_json

    d = write_tiny_arch(root / "Phi4", "Phi3ForCausalLM", seed=14)
    (d / "tokenizer.model").unlink()
    (d / "tokenizer.json").write_text(json.dumps(tokenizer_json(320)))
    tok_cfg = json.loads((d / "tokenizer_config.json").read_text())
    tok_cfg.update(tokenizer_class="GPT2Tokenizer", bos_token="<s>", eos_token="</s>")
    tok_cfg.pop("add_bos_token", None)
    (d / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "sliding_window": None, "bos_token_id": 1, "eos_token_id": 2,
                                               "pad_token_id": 0}))
    out["Phi4"] = d
    return out


def test_yarn_and_per_attention_rope_parameters(tiny: dict[str, Path], tmp_path: Path) -> None:
    import gguf

    f = gguf.GGUFReader(convert(tiny["Qwen3Yarn"], tmp_path / "y.gguf", to="gguf", quantization="F16").output).fields
    assert f["qwen3.rope.scaling.type"].contents() == "yarn" and f["qwen3.rope.scaling.factor"].contents() == 4.0
    assert f["qwen3.rope.scaling.original_context_length"].contents() == 64
    assert f["qwen3.rope.scaling.yarn_attn_factor"].contents() == 1.125
    assert f["qwen3.rope.scaling.yarn_beta_fast"].contents() == 32.0
    convert(tmp_path / "y.gguf", tmp_path / "y", to="safetensors")
    assert json.loads((tmp_path / "y" / "config.json").read_text())["rope_scaling"] == YARN
    f = gguf.GGUFReader(convert(tiny["Gemma3RopeParameters"], tmp_path / "g.gguf", to="gguf",
                                quantization="F16").output).fields
    assert f["gemma3.rope.freq_base"].contents() == 1000000.0 and f["gemma3.rope.freq_base_swa"].contents() == 20000.0
    assert f["gemma3.rope.scaling.type"].contents() == "linear" and f["gemma3.rope.scaling.factor"].contents() == 8.0
    assert "gemma3.attention.sliding_window" in f
    f = gguf.GGUFReader(convert(tiny["Gemma3NoSlidingWindow"], tmp_path / "n.gguf", to="gguf",
                                quantization="F16").output).fields
    assert "gemma3.attention.sliding_window" not in f  # sliding_window_pattern 1: every layer is global


def st_tensors(d: Path) -> dict[str, np.ndarray]:
    from batuta_sync.convert.hf_to_gguf import find_weights

    return {n: r.rows_f32() for n, r in find_weights(d).items()}


def gguf_dump(path: Path) -> tuple[dict[str, Any], dict[str, tuple[str, list[int], bytes]]]:
    import gguf

    r = gguf.GGUFReader(path)
    kv = {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.") and k != "general.name"}
    tensors = {t.name: (t.tensor_type.name, [int(x) for x in t.shape], np.asarray(t.data).tobytes()) for t in r.tensors}
    return kv, tensors


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_round_trip_is_exact(tiny: dict[str, Path], tmp_path: Path, arch: str) -> None:
    src = tiny[arch]
    res = convert(src, tmp_path / "m.gguf", to="gguf", quantization="F32")
    back = convert(res.output, tmp_path / "hf", to="safetensors")
    a, b = st_tensors(src), st_tensors(tmp_path / "hf")
    assert sorted(a) == sorted(b), set(a) ^ set(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    cfg_in = json.loads((src / "config.json").read_text())
    cfg_out = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert cfg_out["architectures"] == cfg_in["architectures"]
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "vocab_size", "head_dim", "num_local_experts", "num_experts", "num_experts_per_tok",
                "moe_intermediate_size", "sliding_window", "attn_logit_softcapping", "final_logit_softcapping",
                "original_max_position_embeddings", "rope_local_base_freq"):
        if key in cfg_in and cfg_in[key] is not None:
            assert cfg_out.get(key) == cfg_in[key], key
    assert back.tensor_count == len(a)


def test_gemma_norms_are_stored_plus_one_in_the_checkpoint_dtype(tmp_path: Path) -> None:
    """llama.cpp adds 1 to Gemma's norms in float16 for a float16 checkpoint (float32 otherwise)."""
    import gguf

    src = write_tiny_arch(tmp_path / "g", "Gemma2ForCausalLM", dtype="float16", seed=5)
    out = convert(src, tmp_path / "g.gguf", to="gguf", quantization="F16").output
    w = st_tensors(src)["model.layers.0.input_layernorm.weight"].astype(np.float16)
    t = next(t for t in gguf.GGUFReader(out).tensors if t.name == "blk.0.attn_norm.weight")
    assert t.tensor_type.name == "F32"
    np.testing.assert_array_equal(np.asarray(t.data), (w + np.float16(1)).astype(np.float32))
    emb = next(t for t in gguf.GGUFReader(out).tensors if t.name == "token_embd.weight")
    np.testing.assert_array_equal(np.asarray(emb.data), st_tensors(src)["model.embed_tokens.weight"].astype(np.float16))


def test_moe_experts_are_merged_as_llama_cpp_stores_them(tiny: dict[str, Path], tmp_path: Path) -> None:
    import gguf

    src = tiny["MixtralForCausalLM"]
    out = convert(src, tmp_path / "m.gguf", to="gguf", quantization="F16").output
    r = gguf.GGUFReader(out)
    by = {t.name: t for t in r.tensors}
    w = st_tensors(src)
    gate = by["blk.1.ffn_gate_exps.weight"]
    assert [int(x) for x in gate.shape] == [256, 512, 4]  # ggml order: {n_embd, n_ff, n_expert}
    stacked = np.stack([w[f"model.layers.1.block_sparse_moe.experts.{e}.w1.weight"] for e in range(4)])
    np.testing.assert_array_equal(np.asarray(gate.data), stacked.astype(np.float16))
    assert by["blk.0.ffn_gate_inp.weight"].tensor_type.name == "F32"  # the router stays F32
    assert r.fields["llama.expert_count"].contents() == 4 and r.fields["llama.expert_used_count"].contents() == 2


@pytest.mark.llamacpp
@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_llama_cpp_loads_and_decodes(tiny: dict[str, Path], tmp_path: Path, arch: str) -> None:
    for quant in ("F16", "Q8_0"):
        out = convert(tiny[arch], tmp_path / f"m-{quant}.gguf", to="gguf", quantization=quant).output
        logits = _llamacpp.last_logits(out, TOKENS)
        assert logits.shape == (320,) and np.isfinite(logits).all() and np.abs(logits).max() > 0.1


# --------------------------------------------------------------------------- peers (skip when absent)


@pytest.mark.skipif(convert_script() is None or not peer_has("torch"),
                    reason="needs convert_hf_to_gguf.py and torch in ~/.cache/batuta-bench/peers (docs/conversion.md)")
@pytest.mark.parametrize("arch", ALL)
def test_identical_to_convert_hf_to_gguf(tiny: dict[str, Path], tmp_path: Path, arch: str) -> None:
    from tests.bench._convert_peers import convert_hf_to_gguf_body

    script = convert_script()
    py = peer_python()
    assert script is not None and py is not None
    peer_out = tmp_path / "peer.gguf"
    body = textwrap.dedent(convert_hf_to_gguf_body(script, tiny[arch], peer_out, "f16"))
    proc = subprocess.run([py, "-c", body], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ours = convert(tiny[arch], tmp_path / "ours.gguf", to="gguf", quantization="F16").output
    kv_ours, t_ours = gguf_dump(ours)
    kv_peer, t_peer = gguf_dump(peer_out)
    assert sorted(t_ours) == sorted(t_peer)
    for name in t_peer:
        assert t_ours[name] == t_peer[name], name
    assert sorted(kv_ours) == sorted(kv_peer)
    for key in kv_peer:
        assert kv_ours[key] == kv_peer[key], key


@pytest.mark.llamacpp
@pytest.mark.skipif(not peer_has("torch", "transformers"),
                    reason="needs torch and transformers in ~/.cache/batuta-bench/peers (docs/conversion.md)")
@pytest.mark.parametrize("arch", LOGIT_CASES)
def test_logits_match_transformers(tiny: dict[str, Path], tmp_path: Path, arch: str) -> None:
    py = peer_python()
    assert py is not None
    code = textwrap.dedent("""
        import json, sys, torch
        from transformers import AutoModelForCausalLM
        m = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32, attn_implementation="eager").eval()
        with torch.no_grad():
            print(json.dumps(m(torch.tensor([json.loads(sys.argv[2])])).logits[0, -1].tolist()))
    """)
    proc = subprocess.run([py, "-c", code, str(tiny[arch]), json.dumps(TOKENS)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ref = np.array(json.loads(proc.stdout.strip().splitlines()[-1]))
    out = convert(tiny[arch], tmp_path / "m.gguf", to="gguf", quantization="F32").output
    logits = _llamacpp.last_logits(out, TOKENS)
    assert np.abs(logits - ref).max() < 1e-2 * max(1.0, np.abs(ref).max())
    assert int(logits.argmax()) == int(ref.argmax())


def test_partial_rotary_factor_round_trips(tmp_path: Path) -> None:
    import gguf

    src = write_tiny_arch(tmp_path / "p", "Phi3ForCausalLM", seed=21)
    cfg = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**cfg, "partial_rotary_factor": 0.75}))
    out = convert(src, tmp_path / "p.gguf", to="gguf", quantization="F16").output
    assert gguf.GGUFReader(out).fields["phi3.rope.dimension_count"].contents() == 48
    convert(out, tmp_path / "hf", to="safetensors")
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["partial_rotary_factor"] == 0.75


def test_gemma_norms_in_a_bf16_gguf_come_back_as_float32(tmp_path: Path) -> None:
    from batuta_sync.convert.st_io import read_header

    src = write_tiny_arch(tmp_path / "g", "Gemma2ForCausalLM", dtype="bfloat16", seed=22)
    out = convert(src, tmp_path / "g.gguf", to="gguf", quantization="BF16").output
    convert(out, tmp_path / "hf", to="safetensors")
    back = read_header(tmp_path / "hf" / "model.safetensors")["model.layers.0.input_layernorm.weight"]
    assert back.dtype == "F32"
    np.testing.assert_array_equal(back.rows_f32(), st_tensors(src)["model.layers.0.input_layernorm.weight"])
