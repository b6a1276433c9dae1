"""K-quants (ours: the numpy path, and the numba kernels where noted) and gguf-py's types against ggml's
own quantizer from a real llama.cpp build.  More on the numba kernels in test_kquants_numba.py."""

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
GOLDEN = {  # sha256[:16] of ggml_quantize_chunk's output for FAMILIES (recorded with xllamacpp 2026.10.11549)
    "Q4_K/const_neg": "87fe35e9236bf0e0",
    "Q4_K/const_pos": "63de0295c3a754ed",
    "Q4_K/heavy_tail": "592d54d3363175fd",
    "Q4_K/mixed_blocks": "46e1a0b39b7247fe",
    "Q4_K/normal": "c2a14623536f8301",
    "Q4_K/scaled": "8395d31c88a4f579",
    "Q4_K/sparse": "5aa81a9f5df38b78",
    "Q4_K/tiny": "30641092ffdc2d4a",
    "Q4_K/uniform_pos": "48bb10c18d37ecf1",
    "Q4_K/zeros": "4cf9816ed1062189",
    "Q5_K/const_neg": "1f82a791b07b4fef",
    "Q5_K/const_pos": "1f827c5734e6c4a4",
    "Q5_K/heavy_tail": "91a2fc9d5a46b71a",
    "Q5_K/mixed_blocks": "d4375712285908b5",
    "Q5_K/normal": "65d9464bdf1a93a8",
    "Q5_K/scaled": "9c1afc97c2349963",
    "Q5_K/sparse": "697070b0c2853a52",
    "Q5_K/tiny": "046bf3748f66aee2",
    "Q5_K/uniform_pos": "040ab93e00b04fc1",
    "Q5_K/zeros": "bffeeb2d12ba6108",
    "Q6_K/const_neg": "3d157d8253b6df2b",
    "Q6_K/const_pos": "598d3cd98b7b4c5e",
    "Q6_K/heavy_tail": "37758957e65d9e8d",
    "Q6_K/mixed_blocks": "67f462e30f32dda0",
    "Q6_K/normal": "339bcd4b805cc410",
    "Q6_K/scaled": "4f2f5a9671479a04",
    "Q6_K/sparse": "1966357acd8de9fd",
    "Q6_K/tiny": "7846413fa062438b",
    "Q6_K/uniform_pos": "73a44c1456276764",
    "Q6_K/zeros": "065cc6b2b996ca72",
    "Q8_0/const_neg": "c96cd61d67d5e1c2",
    "Q8_0/const_pos": "337c3973bd46952b",
    "Q8_0/heavy_tail": "c9e6b10cf3ab2015",
    "Q8_0/mixed_blocks": "9d4c64e7842c3ef7",
    "Q8_0/normal": "5bdbca33a4a0e0aa",
    "Q8_0/scaled": "737bbe637dcea5a3",
    "Q8_0/sparse": "9e2826e95f9e7193",
    "Q8_0/tiny": "2c4566f2c000a606",
    "Q8_0/uniform_pos": "94d843b79ee5a12c",
    "Q8_0/zeros": "5626d9a8f1d7364b",
    "Q4_0/const_neg": "3e17b75d285c0527",
    "Q4_0/const_pos": "853e070ace446b92",
    "Q4_0/heavy_tail": "1208675fe6502c15",
    "Q4_0/mixed_blocks": "1b4078b758f89190",
    "Q4_0/normal": "f3f82b1178cfe034",
    "Q4_0/scaled": "50cca3427e1b605a",
    "Q4_0/sparse": "81eeedebd2646573",
    "Q4_0/tiny": "50e803df2226ce34",
    "Q4_0/uniform_pos": "b73d471babceae02",
    "Q4_0/zeros": "0573daf816aed7c2",
    "Q5_0/const_neg": "770dba6837cb4a07",
    "Q5_0/const_pos": "73cd00159d8b4630",
    "Q5_0/heavy_tail": "f82797bbc4fb9771",
    "Q5_0/mixed_blocks": "d11653e033b78085",
    "Q5_0/normal": "40326a4e8586b483",
    "Q5_0/scaled": "f18f452343493692",
    "Q5_0/sparse": "49bc448be967b8b8",
    "Q5_0/tiny": "d7d90a1a1f6ced32",
    "Q5_0/uniform_pos": "4fcd3d43e3bcd95b",
    "Q5_0/zeros": "3e9508d9a894ab73",
    "Q5_1/const_neg": "e10b98f9b067d926",
    "Q5_1/const_pos": "ad58bd4e4206e810",
    "Q5_1/heavy_tail": "cf97fb27d87d074b",
    "Q5_1/mixed_blocks": "eff158410e08d905",
    "Q5_1/normal": "5edcbee97e304a5d",
    "Q5_1/scaled": "33ade618899ffab8",
    "Q5_1/sparse": "905aa30c80d5f8a2",
    "Q5_1/tiny": "4e5fc704a1c53b54",
    "Q5_1/uniform_pos": "550d7088b925ee3c",
    "Q5_1/zeros": "80422bc3d307b4a2",
}


def _backend(name: str) -> str:
    if name == "numba":
        from batuta_sync.convert.kquants import _jit

        if _jit() is None:
            pytest.skip("numba is not installed")
    return name


@pytest.mark.llamacpp
@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("qtype", ["Q4_K", "Q5_K", "Q6_K"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_k_quants_are_byte_identical_to_ggml(qtype: str, family: str, backend: str) -> None:
    x = FAMILIES[family]
    ours = quantize_k(x, qtype, backend=_backend(backend))
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
    whole = kq.quantize_k(x, "Q4_K", backend="numpy")
    monkeypatch.setattr(kq, "_CHUNK_BLOCKS", 5)  # chunk edges inside rows must not matter
    assert kq.quantize_k(x, "Q4_K", backend="numpy").tobytes() == whole.tobytes()
    assert kq.quantize_k(x[0], "Q6_K", backend="numpy").shape == (2 * 210,)


@pytest.mark.llamacpp
def test_k_quants_match_ggml_on_generated_rows() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=25, deadline=None, derandomize=True)
    @given(
        rows=st.integers(1, 3),
        blocks=st.integers(1, 2),
        scale=st.sampled_from([1e-30, 1e-6, 0.02, 1.0, 300.0, 6e4]),
        seed=st.integers(0, 2**32 - 1),
        zero_frac=st.sampled_from([0.0, 0.3, 0.97]),
        offset=st.sampled_from([0.0, 0.5, -2.0]),
    )
    def check(rows: int, blocks: int, scale: float, seed: int, zero_frac: float, offset: float) -> None:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((rows, 256 * blocks)) * scale + offset * scale
        x[rng.random(x.shape) < zero_frac] = 0.0
        x = x.astype(np.float32)
        for qtype in ("Q4_K", "Q5_K", "Q6_K"):
            assert quantize_k(x, qtype, backend="numpy").tobytes() == ggml_quantize(x, qtype).tobytes(), qtype
        for qtype in ("Q8_0", "Q4_0", "Q5_0", "Q5_1"):
            assert quantize_rows(x, qtype) == ggml_quantize(x, qtype).tobytes(), qtype

    check()


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_outputs_match_recorded_ggml_digests(key: str) -> None:
    """Byte-equality with ggml even where the llama.cpp wheel is absent (digests recorded from it)."""
    import hashlib

    qtype, family = key.split("/")
    x = FAMILIES[family]
    data = quantize_k(x, qtype, backend="numpy").tobytes() if qtype.endswith("_K") else quantize_rows(x, qtype)
    assert hashlib.sha256(data).hexdigest()[:16] == GOLDEN[key]


@pytest.mark.llamacpp
def test_recorded_digests_are_ggml_s() -> None:
    import hashlib

    for key, digest in GOLDEN.items():
        qtype, family = key.split("/")
        assert hashlib.sha256(ggml_quantize(FAMILIES[family], qtype).tobytes()).hexdigest()[:16] == digest, key
