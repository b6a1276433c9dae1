"""Q2_K, Q3_K (numpy path and numba kernels) and Q4_1 against ggml's own quantizer, and the new
quantizations end to end (every tensor of a converted model byte-identical to ggml_quantize_chunk)."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import gguf
import numpy as np
import pytest

from batuta_sync.convert.kquants import quantize_k
from batuta_sync.convert.quantize import quantize_rows

from ._llamacpp import ggml_quantize
from .conftest import hf_weights
from .test_hf_to_gguf import convert_all, expected_input
from .test_kquants import FAMILIES, _backend
from .test_kquants_numba import EXTREME

NEW_K = ("Q2_K", "Q3_K")
GOLDEN = {  # sha256[:16] of ggml_quantize_chunk's output for FAMILIES (xllamacpp 2026.10.11549)
    "Q2_K/const_neg": "e23976c0f9bfe7d3",
    "Q2_K/const_pos": "e77edbe828e8f123",
    "Q2_K/heavy_tail": "51814e162a32e235",
    "Q2_K/mixed_blocks": "87d6b6b37a26a883",
    "Q2_K/normal": "eceec24a3122f2c9",
    "Q2_K/scaled": "05e64fcd5ed94d0a",
    "Q2_K/sparse": "98bf976fd52bcb9e",
    "Q2_K/tiny": "6dd35d4c8205cb0b",
    "Q2_K/uniform_pos": "994d5d2ced7d193e",
    "Q2_K/zeros": "f792b7f860bb94e5",
    "Q3_K/const_neg": "c0ef12b84c707d37",
    "Q3_K/const_pos": "1395f0e0a4f4764e",
    "Q3_K/heavy_tail": "90e182cac8fdf3fe",
    "Q3_K/mixed_blocks": "ec1521b1fcf35e6b",
    "Q3_K/normal": "382381880fb670a4",
    "Q3_K/scaled": "b8c39c42853ba52e",
    "Q3_K/sparse": "cbe5d9459a49d378",
    "Q3_K/tiny": "a541776b201556f1",
    "Q3_K/uniform_pos": "ccaf2c0d66082aa0",
    "Q3_K/zeros": "c23a5cc2d7277749",
    "Q4_1/const_neg": "9fe5009fe96ce3a9",
    "Q4_1/const_pos": "3d05041fdf8cd3ab",
    "Q4_1/heavy_tail": "a6ad3b143081f52e",
    "Q4_1/mixed_blocks": "0e5e5a535eccedbc",
    "Q4_1/normal": "11503d1f04639006",
    "Q4_1/scaled": "cbd4bfcc1913fd43",
    "Q4_1/sparse": "4bce2517b48f0623",
    "Q4_1/tiny": "a32324db09ee4888",
    "Q4_1/uniform_pos": "3703d7cb75f0456b",
    "Q4_1/zeros": "bfe492baf731a0db",
}
NEW_QUANTS = ["Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q5_K_S", "Q4_1", "Q5_0", "Q5_1"]


def _ours(x: np.ndarray, qtype: str, backend: str = "numpy") -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # inf/NaN inputs overflow exactly as in C
        if qtype in NEW_K:
            return quantize_k(x, qtype, backend=_backend(backend)).tobytes()
        return quantize_rows(x, qtype)


@pytest.mark.llamacpp
@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("qtype", NEW_K)
@pytest.mark.parametrize("family", sorted(FAMILIES) + sorted(EXTREME))
def test_q2_q3_k_are_byte_identical_to_ggml(qtype: str, family: str, backend: str) -> None:
    x = FAMILIES.get(family, EXTREME.get(family))
    assert x is not None
    assert _ours(x, qtype, backend) == ggml_quantize(x, qtype).tobytes()


@pytest.mark.llamacpp
@pytest.mark.parametrize("family", sorted(FAMILIES) + sorted(EXTREME))
def test_q4_1_is_byte_identical_to_ggml(family: str) -> None:
    x = FAMILIES.get(family, EXTREME.get(family))
    assert x is not None
    assert _ours(x, "Q4_1") == ggml_quantize(x, "Q4_1").tobytes()


@pytest.mark.llamacpp
def test_new_types_match_ggml_on_generated_rows() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=20, deadline=None, derandomize=True)
    @given(
        rows=st.integers(1, 3),
        scale=st.sampled_from([1e-30, 1e-6, 0.02, 1.0, 300.0, 6e4]),
        seed=st.integers(0, 2**32 - 1),
        zero_frac=st.sampled_from([0.0, 0.3, 0.97]),
        offset=st.sampled_from([0.0, 0.5, -2.0]),
    )
    def check(rows: int, scale: float, seed: int, zero_frac: float, offset: float) -> None:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((rows, 512)) * scale + offset * scale
        x[rng.random(x.shape) < zero_frac] = 0.0
        x = x.astype(np.float32)
        for qtype in (*NEW_K, "Q4_1"):
            want = ggml_quantize(x, qtype).tobytes()
            assert _ours(x, qtype) == want, qtype
            if qtype in NEW_K:
                assert _ours(x, qtype, "numba") == want, qtype

    check()


@pytest.mark.parametrize(("key", "backend"), [(k, b) for k in sorted(GOLDEN) for b in ("numpy", "numba")
                                               if b == "numpy" or k.split("/")[0] in NEW_K])
def test_new_types_match_recorded_ggml_digests(key: str, backend: str) -> None:
    """Byte-equality with ggml even where the llama.cpp wheel is absent (digests recorded from it)."""
    qtype, family = key.split("/")
    assert hashlib.sha256(_ours(FAMILIES[family], qtype, backend)).hexdigest()[:16] == GOLDEN[key]


@pytest.mark.llamacpp
def test_recorded_digests_are_ggml_s() -> None:
    for key, digest in GOLDEN.items():
        qtype, family = key.split("/")
        assert hashlib.sha256(ggml_quantize(FAMILIES[family], qtype).tobytes()).hexdigest()[:16] == digest, key


def test_new_k_types_dequantize_close_to_input() -> None:
    x = FAMILIES["normal"]
    for qtype, tol in (("Q2_K", 0.5), ("Q3_K", 0.3)):
        back = gguf.quants.dequantize(quantize_k(x, qtype), gguf.GGMLQuantizationType[qtype])
        rel = np.sqrt(np.mean((back - x) ** 2)) / np.sqrt(np.mean(x * x))
        assert rel < tol, (qtype, rel)


def test_numpy_chunking_does_not_change_q2_q3_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    import batuta_sync.convert.kquants as kq

    x = FAMILIES["heavy_tail"]
    whole = {q: kq.quantize_k(x, q, backend="numpy").tobytes() for q in NEW_K}
    monkeypatch.setattr(kq, "_CHUNK_BLOCKS", 3)
    for q in NEW_K:
        assert kq.quantize_k(x, q, backend="numpy").tobytes() == whole[q]


@pytest.fixture(scope="module")
def outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gguf-new")


@pytest.mark.llamacpp
@pytest.mark.parametrize("quant", NEW_QUANTS)
@pytest.mark.parametrize("model", ["gqa", "odd"])
def test_every_tensor_of_new_quantizations_is_byte_identical_to_ggml(
    models: dict[str, Path], outdir: Path, model: str, quant: str
) -> None:
    path = convert_all(models, outdir, model, quant)
    cfg = json.loads((models[model] / "config.json").read_text())
    weights = hf_weights(models[model])
    reader = gguf.GGUFReader(path)
    assert int(reader.fields["general.file_type"].contents()) == {
        "Q2_K": 10, "Q3_K_S": 11, "Q3_K_M": 12, "Q3_K_L": 13, "Q4_K_S": 14, "Q5_K_S": 16, "Q4_1": 3, "Q5_0": 8,
        "Q5_1": 9}[quant]
    for t in reader.tensors:
        qt = gguf.GGMLQuantizationType(int(t.tensor_type)).name
        x = expected_input(t.name, weights, cfg)
        got = np.asarray(t.data).tobytes()
        if qt == "F32":
            assert got == x.astype(np.float32).tobytes(), t.name
        else:
            assert got == ggml_quantize(x, qt).tobytes(), (t.name, qt)


def test_q2_q3_kernel_source_run_as_python_gives_the_same_bytes() -> None:
    """The Q2_K/Q3_K kernels' source interpreted (what coverage can see) agrees with the numpy path."""
    from .test_kquants_numba import _load_uncompiled

    py = _load_uncompiled()
    part = FAMILIES["normal"][:1, :256].copy()
    part[0, :16] = 0.0  # a zero sub-block inside a non-zero block
    part[0, 16:32] *= 1e-6  # and one whose 4-bit scale rounds to 0
    neg = -np.abs(FAMILIES["normal"][:1, :256])  # all negative: Q2_K mins only
    x = np.concatenate([
        FAMILIES["zeros"].reshape(-1, 256)[:1], part, neg,
        FAMILIES["const_pos"].reshape(-1, 256)[:1], FAMILIES["mixed_blocks"].reshape(-1, 256)[:3],
        EXTREME["float_max_alternating"].reshape(-1, 256)[:1], EXTREME["denormal_steps"].reshape(-1, 256)[:1],
    ]).astype(np.float32)
    with np.errstate(all="ignore"):
        for qtype, fn in (("Q2_K", py.quantize_q2k), ("Q3_K", py.quantize_q3k)):
            out = np.zeros((x.shape[0], {"Q2_K": 84, "Q3_K": 110}[qtype]), np.uint8)
            fn(x, out)
            assert out.tobytes() == _ours(x, qtype, "numpy"), qtype


def test_new_quantizations_give_the_same_bytes_with_jobs(models: dict[str, Path], tmp_path: Path) -> None:
    from .test_quant_requantize import _tensors

    for model in ("gqa", "odd"):  # all-K-quant (threads) and with Q4_0/Q5_1 fallbacks (processes)
        for quant in ("Q2_K", "Q3_K_M", "Q5_1"):
            one = convert_all(models, tmp_path / "1", model, quant)
            two = convert_all(models, tmp_path / "2", model, quant, jobs=2)
            assert _tensors(one) == _tensors(two), (model, quant)
