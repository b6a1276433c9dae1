"""The per-tensor type choice against llama-quantize's rules (``llama_tensor_get_type`` in llama.cpp's
src/llama-quant.cpp, no imatrix).  Two oracles: tables derived by hand from that source, written out
literally (a 16-layer Llama shape, MHA and GQA 4, 70B, 8- and 4-expert MoE shapes, Falcon), which run
everywhere; and, where a llama.cpp library exporting ``llama_model_quantize`` is installed by hand
(the xllamacpp wheel does not export it), llama-quantize itself on whole files, Llama and MoE, every
ftype.  Then the per-tensor controls (--tensor-type, --output/--token-embedding-type, --pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import pytest

from batuta_sync.convert import convert
from batuta_sync.convert.formats import GGUFQuantization
from batuta_sync.convert.quantize import ModelInfo, QuantOptions, choose_types, model_info
from batuta_sync.errors import ConversionError

N = 16
EMBD, FF, VOCAB = 4096, 11008, 32000
MORE_BITS_16 = {0, 1, 4, 7, 10, 13, 14, 15}  # use_more_bits(i, 16): i < 2, i >= 14, (i - 2) % 3 == 2


def llama_tensors(n: int = N, kv_rows: int = EMBD) -> list[tuple[str, tuple[int, ...]]]:
    out: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (VOCAB, EMBD)), ("output_norm.weight", (EMBD,)),
                                              ("output.weight", (VOCAB, EMBD))]
    for i in range(n):
        out += [(f"blk.{i}.attn_norm.weight", (EMBD,)), (f"blk.{i}.attn_q.weight", (EMBD, EMBD)),
                (f"blk.{i}.attn_k.weight", (kv_rows, EMBD)), (f"blk.{i}.attn_v.weight", (kv_rows, EMBD)),
                (f"blk.{i}.attn_output.weight", (EMBD, EMBD)), (f"blk.{i}.ffn_norm.weight", (EMBD,)),
                (f"blk.{i}.ffn_gate.weight", (FF, EMBD)), (f"blk.{i}.ffn_up.weight", (FF, EMBD)),
                (f"blk.{i}.ffn_down.weight", (EMBD, FF))]
    return out


def per_layer(types: dict[str, str], kind: str, n: int = N) -> list[str]:
    return [types[f"blk.{i}.{kind}.weight"] for i in range(n)]


def layers(rule: dict[str, set[int]], default: str, n: int = N) -> list[str]:
    """A per-layer column from {type: layers} (the rest get ``default``)."""
    out = [default] * n
    for t, which in rule.items():
        for i in which:
            out[i] = t
    return out


# ftype -> (token_embd, output, attn_q, attn_k, attn_v column, attn_output, ffn_gate/up, ffn_down column)
# for the 16-layer MHA Llama (n_gqa 1), untied.  Derived from llama_tensor_get_type_impl:
LLAMA_MHA = {
    # attn_v: Q3_K (n_gqa < 4); attn_output: Q3_K; ffn_down: Q3_K
    "Q2_K": ("Q2_K", "Q6_K", "Q2_K", "Q2_K", ["Q3_K"] * N, "Q3_K", "Q2_K", ["Q3_K"] * N),
    "Q3_K_S": ("Q3_K", "Q6_K", "Q3_K", "Q3_K", ["Q3_K"] * N, "Q3_K", "Q3_K", ["Q3_K"] * N),
    # attn_v: Q5_K for the first two, then Q4_K; ffn_down: Q5_K below n/16 = 1, else Q4_K (not Falcon)
    "Q3_K_M": ("Q3_K", "Q6_K", "Q3_K", "Q3_K", layers({"Q5_K": {0, 1}}, "Q4_K"), "Q4_K", "Q3_K",
               layers({"Q5_K": {0}}, "Q4_K")),
    "Q3_K_L": ("Q3_K", "Q6_K", "Q3_K", "Q3_K", ["Q5_K"] * N, "Q5_K", "Q3_K", ["Q5_K"] * N),
    # attn_v: Q5_K for the first four; ffn_down: Q5_K below n/8 = 2
    "Q4_K_S": ("Q4_K", "Q6_K", "Q4_K", "Q4_K", layers({"Q5_K": {0, 1, 2, 3}}, "Q4_K"), "Q4_K", "Q4_K",
               layers({"Q5_K": {0, 1}}, "Q4_K")),
    "Q4_K_M": ("Q4_K", "Q6_K", "Q4_K", "Q4_K", layers({"Q6_K": MORE_BITS_16}, "Q4_K"), "Q4_K", "Q4_K",
               layers({"Q6_K": MORE_BITS_16}, "Q4_K")),
    "Q5_K_S": ("Q5_K", "Q6_K", "Q5_K", "Q5_K", ["Q5_K"] * N, "Q5_K", "Q5_K", ["Q5_K"] * N),
    "Q5_K_M": ("Q5_K", "Q6_K", "Q5_K", "Q5_K", layers({"Q6_K": MORE_BITS_16}, "Q5_K"), "Q5_K", "Q5_K",
               layers({"Q6_K": MORE_BITS_16}, "Q5_K")),
    "Q6_K": ("Q6_K", "Q6_K", "Q6_K", "Q6_K", ["Q6_K"] * N, "Q6_K", "Q6_K", ["Q6_K"] * N),
    "Q4_0": ("Q4_0", "Q6_K", "Q4_0", "Q4_0", ["Q4_0"] * N, "Q4_0", "Q4_0", ["Q4_0"] * N),
    "Q4_1": ("Q4_1", "Q6_K", "Q4_1", "Q4_1", ["Q4_1"] * N, "Q4_1", "Q4_1", ["Q4_1"] * N),
    "Q5_0": ("Q5_0", "Q6_K", "Q5_0", "Q5_0", ["Q5_0"] * N, "Q5_0", "Q5_0", ["Q5_0"] * N),
    "Q5_1": ("Q5_1", "Q6_K", "Q5_1", "Q5_1", ["Q5_1"] * N, "Q5_1", "Q5_1", ["Q5_1"] * N),
}


@pytest.mark.parametrize("ftype", sorted(LLAMA_MHA))
def test_llama_shaped_mixture_table(ftype: str) -> None:
    types = choose_types(llama_tensors(), GGUFQuantization(ftype), ModelInfo(n_layer=N))
    emb, out, q, k, v, o, gate_up, down = LLAMA_MHA[ftype]
    assert types["token_embd.weight"] == emb
    assert types["output.weight"] == out
    assert types["output_norm.weight"] == "F32" and set(per_layer(types, "attn_norm")) == {"F32"}
    assert set(per_layer(types, "attn_q")) == {q} and set(per_layer(types, "attn_k")) == {k}
    assert per_layer(types, "attn_v") == v
    assert set(per_layer(types, "attn_output")) == {o}
    assert set(per_layer(types, "ffn_gate")) == set(per_layer(types, "ffn_up")) == {gate_up}
    assert per_layer(types, "ffn_down") == down


def test_gqa_and_70b_rules() -> None:
    # n_gqa >= 4: Q2_K's attn_v gets Q4_K (Q3_K below 4)
    gqa = model_info("llama", N, 32, 8)
    assert gqa.n_gqa == 4 and not gqa.is_70b
    t = choose_types(llama_tensors(kv_rows=1024), GGUFQuantization.Q2_K, gqa)
    assert set(per_layer(t, "attn_v")) == {"Q4_K"}
    # an 80-layer GQA llama is llama.cpp's 70B type: Q3_K / Q4_K attn_v become Q5_K
    big = model_info("llama", 80, 64, 8)
    assert big.is_70b and not model_info("llama", 80, 64, 64).is_70b and model_info("qwen2", 80, 64, 64).is_70b
    t = choose_types(llama_tensors(80, 1024), GGUFQuantization.Q3_K_M, big)
    assert set(per_layer(t, "attn_v", 80)) == {"Q5_K"}
    t = choose_types(llama_tensors(80, 1024), GGUFQuantization.Q4_K_M, big)
    assert {v for v in per_layer(t, "attn_v", 80)} == {"Q5_K", "Q6_K"}  # Q6_K (more bits) stays


def test_tied_embeddings_take_the_output_rule() -> None:
    tensors = [t for t in llama_tensors(2) if t[0] != "output.weight"]
    for ftype, want in (("Q2_K", "Q6_K"), ("Q3_K_M", "Q6_K"), ("Q5_1", "Q6_K"), ("Q8_0", "Q8_0")):
        assert choose_types(tensors, GGUFQuantization(ftype), ModelInfo(2, tied=True))["token_embd.weight"] == want
    # an output whose rows are not a multiple of the default type's block: Q8_0
    odd = [("output.weight", (VOCAB, 4000)), ("blk.0.attn_v.weight", (4000, 4000))]
    t = choose_types(odd, GGUFQuantization.Q3_K_L, ModelInfo(1))
    assert t["output.weight"] == "Q8_0"
    assert t["blk.0.attn_v.weight"] == "Q5_1"  # Q5_K -> Q5_1 (4000 = 125 x 32)


MOE_LAYERS = 4
MORE_BITS_4 = {2, 3}  # use_more_bits(i, 4): n/8 = 0, 7n/8 = 3, i % 3 == 2


def moe_tensors(n_expert: int = 8) -> list[tuple[str, tuple[int, ...]]]:
    e, d, f = n_expert, 1024, 2048
    out: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (VOCAB, d)), ("output.weight", (VOCAB, d))]
    for i in range(MOE_LAYERS):
        out += [(f"blk.{i}.attn_q.weight", (d, d)), (f"blk.{i}.attn_k.weight", (256, d)),
                (f"blk.{i}.attn_v.weight", (256, d)), (f"blk.{i}.attn_output.weight", (d, d)),
                (f"blk.{i}.ffn_gate_inp.weight", (e, d)), (f"blk.{i}.ffn_norm.weight", (d,)),
                (f"blk.{i}.ffn_gate_exps.weight", (e, f, d)), (f"blk.{i}.ffn_up_exps.weight", (e, f, d)),
                (f"blk.{i}.ffn_down_exps.weight", (e, d, f))]
    return out


# ftype -> (attn_q, attn_k, attn_v, attn_output, gate/up exps, ffn_down_exps column) for 8 experts, GQA 4
MOE_8 = {
    # n_expert == 8: attn_v and attn_k Q8_0; attn_output Q5_K for the listed ftypes
    "Q2_K": ("Q2_K", "Q8_0", "Q8_0", "Q5_K", "Q2_K", ["Q3_K"] * 4),
    "Q3_K_S": ("Q3_K", "Q8_0", "Q8_0", "Q5_K", "Q3_K", ["Q3_K"] * 4),
    "Q3_K_M": ("Q3_K", "Q8_0", "Q8_0", "Q5_K", "Q3_K", ["Q4_K"] * 4),  # n/16 = 0: never Q5_K
    "Q3_K_L": ("Q3_K", "Q8_0", "Q8_0", "Q3_K", "Q3_K", ["Q5_K"] * 4),  # Q3_K_L is not in the MoE list
    "Q4_K_S": ("Q4_K", "Q8_0", "Q8_0", "Q5_K", "Q4_K", ["Q4_K"] * 4),  # n/8 = 0
    "Q4_K_M": ("Q4_K", "Q8_0", "Q8_0", "Q5_K", "Q4_K", layers({"Q6_K": MORE_BITS_4}, "Q4_K", 4)),
    "Q5_K_M": ("Q5_K", "Q8_0", "Q8_0", "Q5_K", "Q5_K", layers({"Q6_K": MORE_BITS_4}, "Q5_K", 4)),
    "Q5_0": ("Q5_0", "Q8_0", "Q8_0", "Q5_0", "Q5_0", ["Q5_0"] * 4),
}


@pytest.mark.parametrize("ftype", sorted(MOE_8))
def test_moe_shaped_mixture_table(ftype: str) -> None:
    m = model_info("llama", MOE_LAYERS, 32, 8, n_expert=8)
    types = choose_types(moe_tensors(), GGUFQuantization(ftype), m)
    q, k, v, o, gate_up, down = MOE_8[ftype]
    assert types["output.weight"] == "Q6_K" and types["token_embd.weight"] == GGUFQuantization(ftype).base_type
    assert set(per_layer(types, "attn_q", 4)) == {q} and set(per_layer(types, "attn_k", 4)) == {k}
    assert set(per_layer(types, "attn_v", 4)) == {v} and set(per_layer(types, "attn_output", 4)) == {o}
    assert set(per_layer(types, "ffn_gate_inp", 4)) == {"F32"}  # the router is never quantized
    assert set(per_layer(types, "ffn_norm", 4)) == {"F32"}
    assert set(per_layer(types, "ffn_gate_exps", 4)) == set(per_layer(types, "ffn_up_exps", 4)) == {gate_up}
    assert per_layer(types, "ffn_down_exps", 4) == down


def test_moe_with_four_experts_gets_no_8_expert_bumps() -> None:
    m = model_info("llama", MOE_LAYERS, 32, 8, n_expert=4)
    t = choose_types(moe_tensors(4), GGUFQuantization.Q4_K_M, m)
    assert per_layer(t, "attn_v", 4) == layers({"Q6_K": MORE_BITS_4}, "Q4_K", 4)
    assert set(per_layer(t, "attn_k", 4)) == {"Q4_K"} and set(per_layer(t, "attn_output", 4)) == {"Q4_K"}
    assert per_layer(t, "ffn_down_exps", 4) == layers({"Q6_K": MORE_BITS_4}, "Q4_K", 4)


def test_attn_v_counter_follows_llama_order_not_input_order() -> None:
    # fused qkv counts as attn_v; llama.cpp walks tensors by layer number, so the first two of
    # Q3_K_M's Q5_K attn_v are layers 0 and 1 even when the list is shuffled
    tensors = [(f"blk.{i}.attn_qkv.weight", (768, 256)) for i in (3, 0, 2, 1)]
    t = choose_types(tensors, GGUFQuantization.Q3_K_M, ModelInfo(4))
    assert [t[f"blk.{i}.attn_qkv.weight"] for i in range(4)] == ["Q5_K", "Q5_K", "Q4_K", "Q4_K"]


# --------------------------------------------------------------------------- per-tensor control


def test_tensor_type_overrides_first_match_wins_then_fallback() -> None:
    opts = QuantOptions.parse(tensor_types=["attn_v=Q8_0", r"blk\.0\..*=F16", "ffn_down=q2_k", "attn=Q5_1"])
    t = choose_types([*llama_tensors(2), ("blk.1.ffn_down_odd.weight", (EMBD, 100 * 32))],
                     GGUFQuantization.Q4_K_M, ModelInfo(2), opts)
    assert t["blk.0.attn_v.weight"] == t["blk.1.attn_v.weight"] == "Q8_0"  # first pattern wins
    assert t["blk.0.attn_q.weight"] == "F16" and t["blk.0.ffn_down.weight"] == "F16"
    assert t["blk.1.ffn_down.weight"] == "Q2_K"
    assert t["blk.1.ffn_down_odd.weight"] == "Q4_0"  # Q2_K's shape fallback still applies
    assert t["blk.1.attn_q.weight"] == "Q5_1"
    assert t["blk.1.ffn_up.weight"] == "Q4_K"  # no pattern: the mixture
    assert t["blk.0.attn_norm.weight"] == "F32"  # never quantized, whatever the patterns say
    assert t["output.weight"] == "Q6_K"


def test_output_and_token_embedding_types_and_pure() -> None:
    opts = QuantOptions.parse(output_tensor_type="q8_0", token_embedding_type="Q3_K")
    t = choose_types(llama_tensors(2), GGUFQuantization.Q4_K_M, ModelInfo(2), opts)
    assert t["output.weight"] == "Q8_0" and t["token_embd.weight"] == "Q3_K"
    pure = choose_types(llama_tensors(N), GGUFQuantization.Q4_K_M, ModelInfo(N), QuantOptions(pure=True))
    assert {v for k, v in pure.items() if not k.endswith("norm.weight")} == {"Q4_K"}  # output too
    tied = [t for t in llama_tensors(2) if t[0] != "output.weight"]
    t = choose_types(tied, GGUFQuantization.Q4_K_M, ModelInfo(2, tied=True), QuantOptions.parse(output_tensor_type="F16"))
    assert t["token_embd.weight"] == "F16"  # tied: token_embd is the output


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"tensor_types": ["attn_v"]}, "REGEX=TYPE"),
    ({"tensor_types": ["=Q8_0"]}, "REGEX=TYPE"),
    ({"tensor_types": ["attn(=Q8_0"]}, "not a valid regular expression"),
    ({"tensor_types": ["attn_v=Q9_9"]}, "Unknown --tensor-type type"),
    ({"output_tensor_type": "IQ1_S"}, "Unknown --output-tensor-type"),
    ({"token_embedding_type": "int8"}, "Unknown --token-embedding-type"),
])
def test_bad_per_tensor_options_are_conversion_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConversionError, match=message):
        QuantOptions.parse(**kwargs)  # type: ignore[arg-type]


def test_options_are_memo_params_only_when_set() -> None:
    assert QuantOptions().memo_params() == {}
    p = QuantOptions.parse(tensor_types=["a=Q8_0", ("b", "q6_k")], output_tensor_type="Q8_0",
                           token_embedding_type="Q6_K", pure=True, allow_requantize=True).memo_params()
    assert p == {"tensor_types": "a=Q8_0;b=Q6_K", "output_tensor_type": "Q8_0", "token_embedding_type": "Q6_K",
                 "pure": "true", "allow_requantize": "true"}


def _types(path: Path) -> dict[str, str]:
    return {t.name: gguf.GGMLQuantizationType(int(t.tensor_type)).name for t in gguf.GGUFReader(path).tensors}


def test_conversion_applies_the_mixture_and_options(models: dict[str, Path], tmp_path: Path) -> None:
    # the tiny GQA model: 2 layers, n_gqa 2, hidden 256
    t = _types(convert(models["gqa"], tmp_path / "a.gguf", to="gguf", quantization="q3_k_m").output)
    assert [t["blk.0.attn_v.weight"], t["blk.1.attn_v.weight"]] == ["Q5_K", "Q5_K"]
    assert t["blk.0.ffn_down.weight"] == t["blk.1.ffn_down.weight"] == "Q4_K"  # n/16 = 0
    assert t["blk.0.attn_output.weight"] == "Q4_K" and t["blk.0.attn_q.weight"] == "Q3_K"
    res = convert(models["gqa"], tmp_path / "b.gguf", to="gguf", quantization="Q2_K",
                  tensor_types=["ffn_(up|gate)=Q8_0"], output_tensor_type="Q4_K", token_embedding_type="Q5_0", pure=True)
    t = _types(res.output)
    assert t["blk.0.ffn_up.weight"] == t["blk.1.ffn_gate.weight"] == "Q8_0"
    assert t["output.weight"] == "Q4_K" and t["token_embd.weight"] == "Q5_0"
    assert t["blk.0.attn_v.weight"] == t["blk.1.ffn_down.weight"] == "Q2_K"  # pure: no mixture
    assert res.params["tensor_types"] == "ffn_(up|gate)=Q8_0" and res.params["pure"] == "true"


def test_falcon_rules() -> None:
    """Falcon (never converted from safetensors here, but a GGUF input may be one)."""
    m = ModelInfo(n_layer=N, arch="falcon")
    t = choose_types(llama_tensors(), GGUFQuantization.Q4_K_M, m)
    assert t["output.weight"] == "Q8_0"
    # ffn_down: Q6_K below n/16, Q5_K where use_more_bits, else Q4_K
    assert per_layer(t, "ffn_down") == layers({"Q6_K": {0}, "Q5_K": MORE_BITS_16 - {0}}, "Q4_K")
    t = choose_types(llama_tensors(), GGUFQuantization.Q3_K_L, m)
    assert set(per_layer(t, "attn_output")) == {"Q4_K"} and set(per_layer(t, "ffn_down")) == {"Q4_K"}
    t = choose_types(llama_tensors(), GGUFQuantization.Q3_K_M, m)
    assert per_layer(t, "ffn_down") == layers({"Q5_K": {0}, "Q4_K": MORE_BITS_16 - {0}}, "Q3_K")
    assert set(per_layer(t, "attn_output")) == {"Q3_K"}  # Falcon: only Q3_K_L bumps attn_output
    t = choose_types(llama_tensors(), GGUFQuantization.Q4_K_S, m)
    assert set(per_layer(t, "ffn_down")) == {"Q4_K"}  # Q4_K_S's early-layer Q5_K is not for Falcon


LLAMA_FTYPE = {"Q4_0": 2, "Q4_1": 3, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10, "Q3_K_S": 11, "Q3_K_M": 12, "Q3_K_L": 13,
               "Q4_K_S": 14, "Q4_K_M": 15, "Q5_K_S": 16, "Q5_K_M": 17, "Q6_K": 18}
# A prebuilt llama.cpp with ``llama_model_quantize``, installed by hand (never in CI): $BATUTA_LIBLLAMA, or
# npm's @node-llama-cpp/linux-x64 unpacked here (``npm pack @node-llama-cpp/linux-x64@3.22.1`` + tar xzf)
NODE_LLAMA = Path.home() / ".cache" / "batuta-bench" / "node-llama-cpp" / "package" / "bins" / "linux-x64"


def _libllama() -> Any:
    import ctypes
    import os

    path = os.environ.get("BATUTA_LIBLLAMA") or next(iter(sorted(NODE_LLAMA.glob("libllama*.so"))), None)
    if not path:
        pytest.skip("no llama.cpp library with llama_model_quantize: set BATUTA_LIBLLAMA or unpack "
                    f"@node-llama-cpp/linux-x64 into {NODE_LLAMA.parents[2]}")
    so = ctypes.CDLL(str(path), mode=os.RTLD_LOCAL)  # its ggml must not clash with xllamacpp's
    so.llama_model_quantize.restype = ctypes.c_uint32
    so.llama_model_quantize.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
    so.llama_backend_init()
    return so


def llama_quantize(src: Path, dst: Path, ftype: str, *, output_type: int = -1, embd_type: int = -1,
                   pure: bool = False, allow_requantize: bool = False) -> None:
    """llama-quantize SRC DST FTYPE (one thread, no imatrix) through the C API; ``*_type`` are ggml type ids."""
    import ctypes

    class Params(ctypes.Structure):  # returned in a caller buffer: a larger one is ABI-safe
        _fields_ = [("raw", ctypes.c_uint8 * 1024)]

    so = _libllama()
    so.llama_model_quantize_default_params.restype = Params
    p = so.llama_model_quantize_default_params()
    ctypes.c_int32.from_buffer(p, 0).value = 1  # nthread
    ctypes.c_int32.from_buffer(p, 4).value = LLAMA_FTYPE[ftype]  # ftype
    if output_type >= 0:  # output_tensor_type, token_embedding_type, then the bools (llama.h's field order)
        ctypes.c_int32.from_buffer(p, 8).value = output_type
    if embd_type >= 0:
        ctypes.c_int32.from_buffer(p, 12).value = embd_type
    p.raw[16] = int(allow_requantize)
    p.raw[19] = int(pure)
    assert so.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(p)) == 0, ftype


def _tensors(path: Path) -> dict[str, tuple[str, bytes]]:
    import numpy as np

    return {t.name: (gguf.GGMLQuantizationType(int(t.tensor_type)).name, np.asarray(t.data).tobytes())
            for t in gguf.GGUFReader(path).tensors}


@pytest.mark.parametrize("layers", [2, 16])
def test_whole_files_match_llama_quantize(tmp_path: Path, layers: int) -> None:
    """Real llama-quantize on our F16 GGUF gives, for every ftype, the types and bytes of our direct conversion."""
    from batuta_sync.tinymodel import TinyLlamaSpec, write_tiny_llama

    _libllama()
    model = write_tiny_llama(tmp_path / "m", TinyLlamaSpec(dtype="float16", seed=5, num_hidden_layers=layers), card=False)
    f16 = convert(model, tmp_path / "f16.gguf", to="gguf", quantization="F16").output
    for ftype in LLAMA_FTYPE:
        llama_quantize(f16, tmp_path / f"theirs-{ftype}.gguf", ftype)
        ours = convert(model, tmp_path / f"ours-{ftype}.gguf", to="gguf", quantization=ftype).output
        assert _tensors(ours) == _tensors(tmp_path / f"theirs-{ftype}.gguf"), ftype


def _moe_gguf(base: Path, out: Path, n_expert: int) -> Path:
    """An F16 llama-MoE GGUF: the metadata of ``base`` (a 2-layer tiny llama) plus expert keys, 4 layers of
    attention + router + merged expert tensors (ggml shapes [n_embd, n_ff, n_expert] ...)."""
    import os

    import numpy as np

    from batuta_sync.convert.split import TensorInfo, field_bytes, kv_bytes, open_gguf, write_gguf_file

    src = open_gguf(base)
    kvs = [field_bytes(f) for k, f in src.metadata.items() if k != "llama.block_count"]
    kvs += [kv_bytes("llama.block_count", 4, 4), kv_bytes("llama.expert_count", 4, n_expert),
            kv_bytes("llama.expert_used_count", 4, 2)]
    rng = np.random.default_rng(9)
    d, f, e = 256, 512, n_expert
    arrays: list[tuple[str, Any]] = [("token_embd.weight", rng.standard_normal((320, d))), ("output_norm.weight", np.ones(d)),
                                     ("output.weight", rng.standard_normal((320, d)))]
    for i in range(4):
        arrays += [(f"blk.{i}.attn_norm.weight", np.ones(d)), (f"blk.{i}.attn_q.weight", rng.standard_normal((d, d))),
                   (f"blk.{i}.attn_k.weight", rng.standard_normal((128, d))),
                   (f"blk.{i}.attn_v.weight", rng.standard_normal((128, d))),
                   (f"blk.{i}.attn_output.weight", rng.standard_normal((d, d))), (f"blk.{i}.ffn_norm.weight", np.ones(d)),
                   (f"blk.{i}.ffn_gate_inp.weight", rng.standard_normal((e, d))),
                   (f"blk.{i}.ffn_gate_exps.weight", rng.standard_normal((e, f, d))),
                   (f"blk.{i}.ffn_down_exps.weight", rng.standard_normal((e, d, f))),
                   (f"blk.{i}.ffn_up_exps.weight", rng.standard_normal((e, f, d)))]
    data = []
    for name, a in arrays:
        f32 = a.ndim == 1 or "gate_inp" in name
        data.append(np.ascontiguousarray(a * 0.05, dtype=np.float32 if f32 else np.float16))
    infos = [TensorInfo(n, tuple(reversed(a.shape)), 0 if a.dtype == np.float32 else 1, a.nbytes)
             for (n, _), a in zip(arrays, data, strict=True)]
    write_gguf_file(out, kvs, infos, 32, lambda fd, i, off: os.pwrite(fd, data[i].tobytes(), off))
    return out


@pytest.mark.parametrize("n_expert", [8, 4])
def test_moe_files_match_llama_quantize(models: dict[str, Path], tmp_path: Path, n_expert: int) -> None:
    """An 8-expert (and a 4-expert) MoE GGUF re-quantized by us (GGUF -> GGUF) and by llama-quantize:
    the same types (the MoE rules: attn_v/attn_k Q8_0, attn_output Q5_K, expert ffn_down by layer) and bytes."""
    _libllama()
    base = convert(models["gqa"], tmp_path / "base.gguf", to="gguf", quantization="F16").output
    moe = _moe_gguf(base, tmp_path / "moe.gguf", n_expert)
    for ftype in LLAMA_FTYPE:
        llama_quantize(moe, tmp_path / f"theirs-{ftype}.gguf", ftype)
        ours = convert(moe, tmp_path / f"ours-{ftype}.gguf", to="gguf", quantization=ftype).output
        assert _tensors(ours) == _tensors(tmp_path / f"theirs-{ftype}.gguf"), ftype


def test_per_tensor_options_match_llama_quantize(models: dict[str, Path], tmp_path: Path) -> None:
    """--output-tensor-type, --token-embedding-type, --pure and --allow-requantize as llama-quantize has them."""
    _libllama()
    f16 = convert(models["gqa"], tmp_path / "f16.gguf", to="gguf", quantization="F16").output
    llama_quantize(f16, tmp_path / "t1.gguf", "Q3_K_M", output_type=8, embd_type=6, pure=True)  # Q8_0, Q5_0
    ours = convert(f16, tmp_path / "o1.gguf", to="gguf", quantization="Q3_K_M", output_tensor_type="Q8_0",
                   token_embedding_type="Q5_0", pure=True).output
    assert _tensors(ours) == _tensors(tmp_path / "t1.gguf")
    q8 = convert(f16, tmp_path / "q8.gguf", to="gguf", quantization="Q8_0").output
    llama_quantize(q8, tmp_path / "t2.gguf", "Q4_K_M", allow_requantize=True)
    ours = convert(q8, tmp_path / "o2.gguf", to="gguf", quantization="Q4_K_M", allow_requantize=True).output
    assert _tensors(ours) == _tensors(tmp_path / "t2.gguf")


def test_70b_rule_matches_llama_quantize(tmp_path: Path) -> None:
    """An 80-layer GQA llama is llama.cpp's LLM_TYPE_70B: its attn_v bump (Q3_K/Q4_K -> Q5_K) as llama-quantize has it."""
    from batuta_sync.tinymodel import TinyLlamaSpec, write_tiny_llama

    _libllama()
    spec = TinyLlamaSpec(dtype="float16", seed=6, num_hidden_layers=80, hidden_size=256, intermediate_size=256)
    model = write_tiny_llama(tmp_path / "m", spec, card=False)
    f16 = convert(model, tmp_path / "f16.gguf", to="gguf", quantization="F16").output
    for ftype in ("Q3_K_M", "Q4_K_M"):
        llama_quantize(f16, tmp_path / f"theirs-{ftype}.gguf", ftype)
        ours = _tensors(convert(model, tmp_path / f"ours-{ftype}.gguf", to="gguf", quantization=ftype).output)
        assert ours == _tensors(tmp_path / f"theirs-{ftype}.gguf"), ftype
        assert {ours[f"blk.{i}.attn_v.weight"][0] for i in range(80)} >= {"Q5_K"}, ftype
