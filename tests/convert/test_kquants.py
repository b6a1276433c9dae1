"""K-quants (ours, numpy) and gguf-py's types against ggml's own quantizer from a real llama.cpp build."""

from __future__ import annotations

import numpy as np
import pytest

from batuta_sync.convert.kquants import quantize_k
from batuta_sync.convert.quantize import quantize_rows

from ._llamacpp import ggml_quantize


def _families() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shape = (24, 512)
    return {
        "normal": rng.standard_normal(shape).astype(np.float32),
        "scaled": (0.02 * rng.standard_normal(shape)).astype(np.float32),
        "uniform_pos": rng.uniform(0, 1, shape).astype(np.float32),
        "heavy_tail": rng.standard_t(2, shape).astype(np.float32),
        "zeros": np.zeros((4, 512), np.float32),
        "const_pos": np.full((4, 512), 0.5, np.float32),
        "const_neg": np.full((4, 512), -0.25, np.float32),
        "sparse": (rng.standard_normal(shape) * (rng.random(shape) < 0.05)).astype(np.float32),
        "tiny": (1e-8 * rng.standard_normal(shape)).astype(np.float32),
        "mixed_blocks": np.concatenate(
            [np.zeros((2, 256)), rng.standard_normal((2, 256)) * 1e3, np.full((2, 256), 7.0)], axis=1
        ).astype(np.float32),
    }


FAMILIES = _families()


@pytest.mark.llamacpp
@pytest.mark.parametrize("qtype", ["Q4_K", "Q5_K", "Q6_K"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_k_quants_are_byte_identical_to_ggml(qtype: str, family: str) -> None:
    x = FAMILIES[family]
    ours = quantize_k(x, qtype)
    theirs = ggml_quantize(x, qtype)
    assert ours.shape == theirs.shape
    assert ours.tobytes() == theirs.tobytes()


@pytest.mark.llamacpp
@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_0", "Q5_0", "Q5_1", "F16", "BF16"])
def test_gguf_py_types_we_use_are_byte_identical_to_ggml(qtype: str) -> None:
    for x in FAMILIES.values():
        assert quantize_rows(x, qtype) == ggml_quantize(x, qtype).tobytes()


def test_k_quants_dequantize_close_to_input() -> None:
    import gguf

    x = FAMILIES["normal"]
    for qtype, tol in (("Q4_K", 0.2), ("Q5_K", 0.1), ("Q6_K", 0.05)):
        q = quantize_k(x, qtype)
        back = gguf.quants.dequantize(q, gguf.GGMLQuantizationType[qtype])
        assert back.shape == x.shape
        rel = np.sqrt(np.mean((back - x) ** 2)) / np.sqrt(np.mean(x * x))
        assert rel < tol, (qtype, rel)


def test_k_quants_reject_rows_that_are_not_256_multiples() -> None:
    with pytest.raises(ValueError, match="multiple of 256"):
        quantize_k(np.zeros((2, 96), np.float32), "Q4_K")
    with pytest.raises(ValueError, match="not a K-quant"):
        quantize_k(np.zeros((2, 256), np.float32), "Q8_0")


def test_k_quants_handle_more_blocks_than_one_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    import batuta_sync.convert.kquants as kq

    x = FAMILIES["normal"]
    whole = kq.quantize_k(x, "Q4_K")
    monkeypatch.setattr(kq, "_CHUNK_BLOCKS", 5)  # chunk edges inside rows must not matter
    assert kq.quantize_k(x, "Q4_K").tobytes() == whole.tobytes()
    assert kq.quantize_k(x[0], "Q6_K").shape == (2 * 210,)
