"""Per-tensor type choice (llama-quantize's mixtures) and row quantization to any ggml type we write."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from batuta_sync.convert.formats import GGUFQuantization

BLOCK = {"F32": 1, "F16": 1, "BF16": 1, "Q8_0": 32, "Q4_0": 32, "Q5_0": 32, "Q5_1": 32, "Q4_K": 256, "Q5_K": 256, "Q6_K": 256}
TYPE_SIZE = {"F32": 4, "F16": 2, "BF16": 2, "Q8_0": 34, "Q4_0": 18, "Q5_0": 22, "Q5_1": 24, "Q4_K": 144, "Q5_K": 176, "Q6_K": 210}
_FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}
_LAYER = re.compile(r"^blk\.(\d+)\.")


def row_bytes(qtype: str, ncols: int) -> int:
    return ncols // BLOCK[qtype] * TYPE_SIZE[qtype]


def use_more_bits(i_layer: int, n_layers: int) -> bool:
    """llama.cpp's layer selection for the extra-precision tensors of the *_M mixtures."""
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


def _fallback(qtype: str, ncols: int) -> str:
    """``tensor_type_fallback``: a compatible type when the row length is not a block multiple."""
    if ncols % BLOCK[qtype] == 0:
        return qtype
    new = _FALLBACK.get(qtype, qtype)
    return new if ncols % BLOCK[new] == 0 else "F16"


def choose_type(name: str, shape: tuple[int, ...], quant: GGUFQuantization, *, n_layer: int, tied: bool) -> str:
    """The ggml type of tensor ``name`` (GGUF name, numpy ``shape``) in a ``quant`` file.

    Plain types (F32/F16/BF16/Q8_0) follow convert_hf_to_gguf; Q4_0 and the K mixtures follow
    llama-quantize (``llama_tensor_get_type_impl`` without imatrix, non-Falcon, non-MoE).
    1-D tensors, norms and non-``weight`` tensors stay F32.
    """
    if len(shape) < 2 or not name.endswith(".weight") or name.endswith("_norm.weight") or name == "rope_freqs.weight":
        return "F32"
    ncols = shape[-1]
    q = quant.value
    if q in ("F32", "F16", "BF16"):
        return q
    if q == "Q8_0":
        return _fallback("Q8_0", ncols)
    default = quant.base_type
    new = default
    is_output = name == "output.weight" or (tied and name == "token_embd.weight")
    m = _LAYER.match(name)
    if is_output:
        if ncols % BLOCK[default] != 0:
            new = "Q8_0"
        elif default != "Q8_0":
            new = "Q6_K"
    elif m and q in ("Q4_K_M", "Q5_K_M"):
        layer = int(m.group(1))
        if (name.endswith(".attn_v.weight") or name.endswith(".ffn_down.weight")) and use_more_bits(layer, n_layer):
            new = "Q6_K"
    return _fallback(new, ncols)


def quantize_rows(rows: Any, qtype: str) -> bytes:
    """float32 rows (2-D, or 1-D for a vector) -> the bytes of ``qtype`` (ggml block layout)."""
    a = np.ascontiguousarray(rows, dtype=np.float32)
    if qtype == "F32":
        return a.tobytes()
    if qtype == "F16":
        with np.errstate(over="ignore"):
            return a.astype(np.float16).tobytes()
    if qtype in ("Q4_K", "Q5_K", "Q6_K"):
        from batuta_sync.convert.kquants import quantize_k

        return bytes(quantize_k(a, qtype).data)
    import gguf

    with np.errstate(over="ignore"):  # |x| beyond fp16 range becomes inf, as in ggml
        out = gguf.quants.quantize(a, gguf.GGMLQuantizationType[qtype])
        if qtype in ("Q4_0", "Q5_0", "Q5_1"):
            _zero_signs_like_ggml(a, out, qtype)
    return out.tobytes()


def _zero_signs_like_ggml(a: Any, out: Any, qtype: str) -> None:
    """Make the fp16 header fields' zero signs match ggml's C loops (gguf-py differs only there).

    Q4_0/Q5_0: an all-zero block gets ``d = 0.0f / -8 = -0.0`` in C.  Q5_1: C keeps the *first*
    min/max element (``v < min`` / ``v > max``), so ``-0.0`` vs ``0.0`` follows element order.
    """
    blocks = a.reshape(-1, 32)
    hdr = out.reshape(blocks.shape[0], -1)
    if qtype in ("Q4_0", "Q5_0"):
        zero = ~np.any(blocks != 0, axis=1)
        if zero.any():
            hdr[zero, 0] = 0x00
            hdr[zero, 1] = 0x80
        return
    idx = np.arange(blocks.shape[0])
    mn = blocks[idx, np.argmin(blocks, axis=1)]
    mx = blocks[idx, np.argmax(blocks, axis=1)]
    d = ((mx - mn) / np.float32(31)).astype(np.float16)
    hdr[:, 0:2] = d.view(np.uint8).reshape(-1, 2)
    hdr[:, 2:4] = mn.astype(np.float16).view(np.uint8).reshape(-1, 2)
