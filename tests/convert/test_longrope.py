"""Phi-3 LongRoPE (``rope_scaling.type`` "longrope" / "su"), as llama.cpp's converter writes it
(``Phi3MiniModel``): the factors as ``rope_factors_long.weight`` / ``rope_factors_short.weight`` (F32, the
first two tensors), ``phi3.rope.scaling.attn_factor = sqrt(1 + ln(s) / ln(orig))`` with
``s = max_position_embeddings / original_max_position_embeddings``, and no ``rope.scaling.type`` key."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from batuta_sync.convert import convert
from batuta_sync.errors import ConversionError
from batuta_sync.tinymodel import write_tiny_arch

from . import _llamacpp
from ._reference import forward_phi3

N = 32  # rope dimensions / 2 (head_dim 64)
LONG = [round(1.0 + 0.25 * i, 2) for i in range(N)]  # 1.0 .. 8.75
SHORT = [round(1.0 + 0.01 * i, 2) for i in range(N)]
SCALING = {"type": "longrope", "long_factor": LONG, "short_factor": SHORT}
TOKENS = [2, 40, 50, 60, 70, 80]


def _make(root: Path, **edit: Any) -> Path:
    d = write_tiny_arch(root, "Phi3ForCausalLM", seed=31)
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(max_position_embeddings=256, original_max_position_embeddings=64, rope_scaling=SCALING)
    cfg.update(edit)
    (d / "config.json").write_text(json.dumps({k: v for k, v in cfg.items() if v is not ...}))
    return d


@pytest.fixture(scope="module")
def phi3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make(tmp_path_factory.mktemp("longrope") / "m")


def _read(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    r = gguf.GGUFReader(path)
    return {k: f.contents() for k, f in r.fields.items()}, {t.name: t for t in r.tensors}


def test_factors_and_attn_factor_as_llama_cpp_writes_them(phi3: Path, tmp_path: Path) -> None:
    kv, tensors = _read(convert(phi3, tmp_path / "m.gguf", to="gguf", quantization="F16").output)
    names = list(tensors)
    assert names[:2] == ["rope_factors_long.weight", "rope_factors_short.weight"]
    for name, values in (("rope_factors_long.weight", LONG), ("rope_factors_short.weight", SHORT)):
        t = tensors[name]
        assert t.tensor_type.name == "F32" and [int(x) for x in t.shape] == [N]
        np.testing.assert_array_equal(np.asarray(t.data), np.array(values, dtype=np.float32))
    expect = math.sqrt(1 + math.log(256 / 64) / math.log(64))
    assert kv["phi3.rope.scaling.attn_factor"] == float(np.float32(expect))
    assert kv["phi3.rope.scaling.original_context_length"] == 64 and kv["phi3.context_length"] == 256
    assert "phi3.rope.scaling.type" not in kv  # Phi3MiniModel does not write it


def test_factors_stay_f32_in_k_quants_and_requantization(phi3: Path, tmp_path: Path) -> None:
    q = convert(phi3, tmp_path / "q.gguf", to="gguf", quantization="Q4_K_M").output
    _, tq = _read(q)
    assert tq["rope_factors_long.weight"].tensor_type.name == "F32"
    f32 = convert(phi3, tmp_path / "f.gguf", to="gguf", quantization="F32").output  # a float32 checkpoint
    rq = convert(f32, tmp_path / "rq.gguf", to="gguf", quantization="Q4_K_M").output
    assert _same_tensors(rq, q) and _read(rq)[0]["phi3.rope.scaling.attn_factor"] == _read(q)[0][
        "phi3.rope.scaling.attn_factor"]


def _same_tensors(a: Path, b: Path) -> bool:
    _, ta = _read(a)
    _, tb = _read(b)
    return sorted(ta) == sorted(tb) and all(np.asarray(ta[n].data).tobytes() == np.asarray(tb[n].data).tobytes()
                                            for n in ta)


def test_round_trip_keeps_the_scaling(phi3: Path, tmp_path: Path) -> None:
    g = convert(phi3, tmp_path / "m.gguf", to="gguf", quantization="F32").output
    convert(g, tmp_path / "hf", to="safetensors")
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert cfg["rope_scaling"] == SCALING and cfg["original_max_position_embeddings"] == 64
    again = convert(tmp_path / "hf", tmp_path / "again.gguf", to="gguf", quantization="F32").output
    kv1, t1 = _read(g)
    kv2, t2 = _read(again)
    assert {k: v for k, v in kv1.items() if k != "general.name"} == {k: v for k, v in kv2.items() if k != "general.name"}
    assert list(t1) == list(t2)
    for n in t1:
        assert np.asarray(t1[n].data).tobytes() == np.asarray(t2[n].data).tobytes(), n


def test_su_alias_transformers5_spelling_and_explicit_attention_factor(phi3: Path, tmp_path: Path) -> None:
    ref = convert(phi3, tmp_path / "ref.gguf", to="gguf", quantization="F16").output
    su = _make(tmp_path / "su", rope_scaling={**SCALING, "type": "su"})
    assert _same_tensors(convert(su, tmp_path / "su.gguf", to="gguf", quantization="F16").output, ref)
    t5 = _make(tmp_path / "t5", rope_scaling=..., original_max_position_embeddings=...,
               rope_parameters={"rope_type": "longrope", "long_factor": LONG, "short_factor": SHORT,
                                "rope_theta": 10000.0, "original_max_position_embeddings": 64})
    kv, _ = _read(convert(t5, tmp_path / "t5.gguf", to="gguf", quantization="F16").output)
    assert kv["phi3.rope.scaling.original_context_length"] == 64
    assert _same_tensors(tmp_path / "t5.gguf", ref)
    # transformers honours an explicit attention_factor (llama.cpp's converter recomputes it): kept, and back
    ex = _make(tmp_path / "ex", rope_scaling={**SCALING, "attention_factor": 1.5})
    g = convert(ex, tmp_path / "ex.gguf", to="gguf", quantization="F32").output
    assert _read(g)[0]["phi3.rope.scaling.attn_factor"] == 1.5
    convert(g, tmp_path / "ex_hf", to="safetensors")
    assert json.loads((tmp_path / "ex_hf" / "config.json").read_text())["rope_scaling"]["attention_factor"] == 1.5


@pytest.mark.parametrize("edit,match", [
    ({"rope_scaling": {**SCALING, "long_factor": LONG[:-1]}}, r"long_factor as a list of 32 .* got 31 values"),
    ({"rope_scaling": {"type": "longrope", "long_factor": LONG}}, r"short_factor as a list of 32 .* got nothing"),
    ({"rope_scaling": {**SCALING, "short_factor": ["1"] * N}}, "short_factor as a list of 32 finite numbers"),
    ({"original_max_position_embeddings": ...}, "original_max_position_embeddings"),
    ({"partial_rotary_factor": 0.515625}, "even rope dimension count, not 33"),
])
def test_malformed_longrope_is_an_error(tmp_path: Path, edit: dict[str, Any], match: str) -> None:
    src = _make(tmp_path / "m", **edit)
    with pytest.raises(ConversionError, match=match):
        convert(src, tmp_path / "o.gguf", to="gguf", quantization="F16")
    assert not (tmp_path / "o.gguf").exists()


def test_longrope_outside_phi3_is_refused(tmp_path: Path) -> None:
    src = write_tiny_arch(tmp_path / "q", "Qwen3ForCausalLM")
    cfg = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**cfg, "rope_scaling": SCALING}))
    with pytest.raises(ConversionError, match="rope scaling type 'longrope' is not supported for Qwen3ForCausalLM"):
        convert(src, tmp_path / "o.gguf", to="gguf", quantization="F16")


def _rewrite(src: Path, dst: Path, drop: str = "", drop_key: str = "") -> Path:
    r = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(dst, "phi3")
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k in ("general.architecture", drop_key):
            continue
        vt = f.types[0]
        if vt == gguf.GGUFValueType.ARRAY:
            w.add_key_value(k, f.contents(), vt, sub_type=f.types[-1])
        else:
            w.add_key_value(k, f.contents(), vt)
    for t in r.tensors:
        if t.name != drop:
            w.add_tensor(t.name, np.asarray(t.data), raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst


def test_gguf_with_half_of_longrope_is_refused(phi3: Path, tmp_path: Path) -> None:
    g = convert(phi3, tmp_path / "m.gguf", to="gguf", quantization="F32").output
    for i, kw in enumerate(({"drop": "rope_factors_short.weight"}, {"drop": "rope_factors_long.weight"})):
        bad = _rewrite(g, tmp_path / f"bad{i}.gguf", **kw)
        with pytest.raises(ConversionError, match=r"LongRoPE needs rope_factors_long\.weight and rope_factors_short"):
            convert(bad, tmp_path / f"out{i}", to="safetensors")
        assert not (tmp_path / f"out{i}").exists() or not any((tmp_path / f"out{i}").iterdir())
    # without the attn_factor key llama.cpp uses 1.0: that is an explicit attention_factor in config.json
    nokey = _rewrite(g, tmp_path / "nokey.gguf", drop_key="phi3.rope.scaling.attn_factor")
    convert(nokey, tmp_path / "nokey", to="safetensors")
    assert json.loads((tmp_path / "nokey" / "config.json").read_text())["rope_scaling"]["attention_factor"] == 1.0


@pytest.mark.llamacpp
def test_llama_cpp_runs_longrope_like_the_reference(phi3: Path, tmp_path: Path) -> None:
    """llama.cpp picks the long factors when its context (512 by default) exceeds the original 64, and
    scales cos/sin by the attention factor: its logits match the numpy reference with the long factors,
    and differ clearly from the short-factor and no-scaling variants."""
    from .conftest import hf_weights

    out = convert(phi3, tmp_path / "m.gguf", to="gguf", quantization="F32").output
    logits = _llamacpp.last_logits(out, TOKENS)
    cfg = json.loads((phi3 / "config.json").read_text())
    w = hf_weights(phi3)
    ref = forward_phi3(w, cfg, TOKENS, long=True)[-1]
    short = forward_phi3(w, cfg, TOKENS, long=False)[-1]
    plain = forward_phi3(w, {**cfg, "rope_scaling": None}, TOKENS, long=True)[-1]
    no_attn = forward_phi3(w, {**cfg, "rope_scaling": {**SCALING, "attention_factor": 1.0}}, TOKENS, long=True)[-1]
    # 1 % of the largest logit, as the architecture tests (llama.cpp keeps its KV cache in F16): measured 2.6e-3
    # of 2.8 here, against 0.54 (short factors), 0.68 (no attention factor) and 1.0 (no scaling)
    tol = 1e-2 * max(1.0, float(np.abs(ref).max()))
    assert np.abs(logits - ref).max() < tol, np.abs(logits - ref).max()
    for other in (short, plain, no_attn):
        assert np.abs(other - ref).max() > 10 * tol


@pytest.mark.llamacpp
def test_reference_is_the_plain_phi3_without_scaling(tmp_path: Path) -> None:
    """The numpy Phi-3 reference itself, checked against llama.cpp on a model without rope scaling."""
    from .conftest import hf_weights

    src = write_tiny_arch(tmp_path / "p", "Phi3ForCausalLM", seed=32)
    out = convert(src, tmp_path / "p.gguf", to="gguf", quantization="F32").output
    cfg = json.loads((src / "config.json").read_text())
    ref = forward_phi3(hf_weights(src), cfg, TOKENS, long=True)[-1]
    assert np.abs(_llamacpp.last_logits(out, TOKENS) - ref).max() < 1e-2 * max(1.0, float(np.abs(ref).max()))
