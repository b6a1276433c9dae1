"""End to end against the real llama-quantize (libllama's ``llama_model_quantize`` from npm's
``@node-llama-cpp/linux-x64@3.22.1``, see test_quant_mixtures) with an importance matrix passed through
its C API (``llama_model_quantize_params.imatrix``: a NULL-terminated array of {name, data, size}),
exactly as tools/quantize hands over what it loaded.  Skips when that library is absent."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest

from batuta_sync.convert import convert
from batuta_sync.convert.imatrix import load

from .test_imatrix import model_entries, write_imatrix_dat, write_imatrix_gguf
from .test_quant_mixtures import LLAMA_FTYPE, _libllama, _moe_gguf, _tensors

FTYPES = {**LLAMA_FTYPE, "IQ4_NL": 25, "IQ4_XS": 30}
_IMATRIX_OFFSET = 24  # after nthread, ftype, output/embedding types (4 x int32) and 6 bools, pointer-aligned


class _Entry(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("data", ctypes.POINTER(ctypes.c_float)), ("size", ctypes.c_size_t)]


def llama_quantize_imatrix(src: Path, dst: Path, ftype: str, weights: dict[str, np.ndarray] | None) -> None:
    class Params(ctypes.Structure):
        _fields_ = [("raw", ctypes.c_uint8 * 1024)]

    so = _libllama()
    so.llama_model_quantize_default_params.restype = Params
    p = so.llama_model_quantize_default_params()
    assert ctypes.c_void_p.from_buffer(p, _IMATRIX_OFFSET).value is None  # the field is where we think
    ctypes.c_int32.from_buffer(p, 0).value = 1
    ctypes.c_int32.from_buffer(p, 4).value = FTYPES[ftype]
    if weights is None:
        assert so.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(p)) == 0, ftype
        return
    keep = {k: np.ascontiguousarray(v, dtype=np.float32).reshape(-1) for k, v in weights.items()}
    arr = (_Entry * (len(keep) + 1))()
    for i, (k, v) in enumerate(sorted(keep.items())):
        arr[i] = _Entry(k.encode(), v.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), v.size)
    arr[len(keep)] = _Entry(None, None, 0)
    ctypes.c_void_p.from_buffer(p, _IMATRIX_OFFSET).value = ctypes.addressof(arr)
    assert so.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(p)) == 0, ftype


@pytest.mark.parametrize("layers", [2, 9])
def test_whole_files_match_llama_quantize_with_imatrix(tmp_path: Path, layers: int) -> None:
    from batuta_sync.tinymodel import TinyLlamaSpec, write_tiny_llama

    _libllama()
    model = write_tiny_llama(tmp_path / "m", TinyLlamaSpec(dtype="float16", seed=9, num_hidden_layers=layers), card=False)
    f16 = convert(model, tmp_path / "f16.gguf", to="gguf", quantization="F16").output
    sums, counts = model_entries(f16)
    imx_path = write_imatrix_gguf(tmp_path / "imatrix.gguf", sums, counts)
    weights = load(imx_path).entries
    for ftype in FTYPES:
        theirs = tmp_path / f"theirs-{ftype}.gguf"
        llama_quantize_imatrix(f16, theirs, ftype, weights)
        ours = convert(model, tmp_path / f"ours-{ftype}.gguf", to="gguf", quantization=ftype, imatrix=imx_path).output
        plain = convert(model, tmp_path / f"plain-{ftype}.gguf", to="gguf", quantization=ftype).output
        assert _tensors(ours) == _tensors(theirs), ftype
        assert _tensors(plain) != _tensors(theirs), ftype  # the imatrix was really used on both sides
        # GGUF -> GGUF with the legacy .dat of the same weights: the same file again
        dat = write_imatrix_dat(tmp_path / "imatrix.dat", dict(weights), {k: 1 for k in weights})
        re = convert(f16, tmp_path / f"re-{ftype}.gguf", to="gguf", quantization=ftype, imatrix=dat).output
        assert _tensors(re) == _tensors(theirs), ftype


def test_moe_file_matches_llama_quantize_with_imatrix(tmp_path: Path) -> None:
    """Expert tensors: one imatrix slice per expert (imatrix + expert * n_per_row)."""
    from batuta_sync.tinymodel import TinyLlamaSpec, write_tiny_llama

    _libllama()
    base = write_tiny_llama(tmp_path / "b", TinyLlamaSpec(dtype="float16", seed=4, num_hidden_layers=2), card=False)
    f16 = _moe_gguf(convert(base, tmp_path / "base.gguf", to="gguf", quantization="F16").output,
                    tmp_path / "moe.gguf", 4)
    sums, counts = model_entries(f16, seed=8)
    assert any(v.shape[0] == 4 for v in sums.values())
    imx_path = write_imatrix_gguf(tmp_path / "imatrix.gguf", sums, counts)
    for ftype in ("Q4_K_M", "Q2_K", "Q5_0", "IQ4_XS"):
        theirs = tmp_path / f"theirs-{ftype}.gguf"
        llama_quantize_imatrix(f16, theirs, ftype, load(imx_path).entries)
        ours = convert(f16, tmp_path / f"ours-{ftype}.gguf", to="gguf", quantization=ftype, imatrix=imx_path).output
        assert _tensors(ours) == _tensors(theirs), ftype


@pytest.mark.parametrize("ftype", ["IQ4_NL", "IQ4_XS"])
def test_iq4_without_imatrix_matches_llama_quantize(tmp_path: Path, ftype: str) -> None:
    """IQ4_NL / IQ4_XS mixtures without an imatrix (first n_layer/8 ffn_down Q5_K, GQA attn_v Q5_K)."""
    from batuta_sync.tinymodel import TinyLlamaSpec, write_tiny_llama

    _libllama()
    model = write_tiny_llama(tmp_path / "m", TinyLlamaSpec(dtype="float16", seed=2, num_hidden_layers=9,
                                                           num_key_value_heads=1), card=False)
    f16 = convert(model, tmp_path / "f16.gguf", to="gguf", quantization="F16").output
    llama_quantize_imatrix(f16, tmp_path / "theirs.gguf", ftype, None)
    ours = convert(model, tmp_path / "ours.gguf", to="gguf", quantization=ftype).output
    theirs = _tensors(tmp_path / "theirs.gguf")
    assert _tensors(ours) == theirs
    assert theirs["blk.0.ffn_down.weight"][0] == "Q5_K" and theirs["blk.1.ffn_down.weight"][0] == ftype
