"""ctypes access to a real llama.cpp build installed from PyPI (the prebuilt ``xllamacpp`` wheel).

Two things are used: ``ggml_quantize_chunk`` (ggml's own quantizer, the byte-equality oracle) and
model load + decode + logits (to check that converted GGUFs load and compute the right thing).
Everything returns ``None`` / skips when the wheel is absent.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

GGML_TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8, "Q2_K": 10, "Q3_K": 11, "Q4_K": 12, "Q5_K": 13, "Q6_K": 14, "BF16": 30}
_LIB: Any = None


def library_path() -> Path | None:
    spec = importlib.util.find_spec("xllamacpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    for d in spec.submodule_search_locations:
        for f in sorted(Path(d).glob("xllamacpp*.so")):
            return f
    return None


def lib() -> Any:
    """The loaded llama.cpp shared library, or None."""
    global _LIB
    if _LIB is None:
        path = library_path()
        if path is None:
            return None
        so = ctypes.CDLL(str(path), mode=os.RTLD_LOCAL)
        so.ggml_quantize_chunk.restype = ctypes.c_size_t
        so.ggml_quantize_chunk.argtypes = [
            ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
        ]
        _LIB = so
    return _LIB


def ggml_quantize(data: np.ndarray, qtype: str) -> np.ndarray:
    """Quantize 2-D float32 rows with ggml's own ``ggml_quantize_chunk`` (no imatrix)."""
    import gguf

    so = lib()
    assert so is not None
    x = np.ascontiguousarray(data, dtype=np.float32)
    x2 = x.reshape(-1, x.shape[-1])
    gtype = gguf.GGMLQuantizationType[qtype]
    bs, ts = gguf.GGML_QUANT_SIZES[gtype]
    row_bytes = x2.shape[1] // bs * ts
    out = np.zeros((x2.shape[0], row_bytes), dtype=np.uint8)
    n = so.ggml_quantize_chunk(GGML_TYPES[qtype], x2.ctypes.data, out.ctypes.data, 0, x2.shape[0], x2.shape[1], None)
    assert n == out.size, (n, out.size)
    return out.reshape(*x.shape[:-1], row_bytes)


class _Batch(ctypes.Structure):
    _fields_ = [
        ("n_tokens", ctypes.c_int32),
        ("token", ctypes.POINTER(ctypes.c_int32)),
        ("embd", ctypes.POINTER(ctypes.c_float)),
        ("pos", ctypes.POINTER(ctypes.c_int32)),
        ("n_seq_id", ctypes.POINTER(ctypes.c_int32)),
        ("seq_id", ctypes.POINTER(ctypes.POINTER(ctypes.c_int32))),
        ("logits", ctypes.POINTER(ctypes.c_int8)),
    ]


class _Opaque(ctypes.Structure):
    # Params structs are passed/returned by value; a larger buffer is ABI-safe here
    # (returned through a caller buffer, passed on the stack as the last argument), and
    # the library's own defaults are used unchanged, so no field offsets are needed.
    _fields_ = [("raw", ctypes.c_uint8 * 1024)]


_LOG_CB = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)(lambda level, text, user: None)
_BACKEND_READY = False


def last_logits(model_path: Path, tokens: list[int]) -> np.ndarray:
    """Load a GGUF in llama.cpp, decode ``tokens`` and return the last position's logits."""
    global _BACKEND_READY
    so = lib()
    assert so is not None
    if not _BACKEND_READY:
        so.llama_log_set(_LOG_CB, None)
        so.llama_backend_init()
        if hasattr(so, "ggml_backend_load_all"):
            so.ggml_backend_load_all()
        _BACKEND_READY = True
    so.llama_model_default_params.restype = _Opaque
    so.llama_context_default_params.restype = _Opaque
    so.llama_model_load_from_file.restype = ctypes.c_void_p
    so.llama_model_load_from_file.argtypes = [ctypes.c_char_p, _Opaque]
    so.llama_init_from_model.restype = ctypes.c_void_p
    so.llama_init_from_model.argtypes = [ctypes.c_void_p, _Opaque]
    so.llama_batch_get_one.restype = _Batch
    so.llama_batch_get_one.argtypes = [ctypes.POINTER(ctypes.c_int32), ctypes.c_int32]
    so.llama_decode.restype = ctypes.c_int32
    so.llama_decode.argtypes = [ctypes.c_void_p, _Batch]
    so.llama_get_logits.restype = ctypes.POINTER(ctypes.c_float)
    so.llama_get_logits.argtypes = [ctypes.c_void_p]
    so.llama_model_free.argtypes = [ctypes.c_void_p]
    so.llama_free.argtypes = [ctypes.c_void_p]
    so.llama_model_get_vocab.restype = ctypes.c_void_p
    so.llama_model_get_vocab.argtypes = [ctypes.c_void_p]
    so.llama_vocab_n_tokens.restype = ctypes.c_int32
    so.llama_vocab_n_tokens.argtypes = [ctypes.c_void_p]

    model = so.llama_model_load_from_file(str(model_path).encode(), so.llama_model_default_params())
    if not model:
        raise RuntimeError(f"llama.cpp could not load {model_path}")
    try:
        ctx = so.llama_init_from_model(model, so.llama_context_default_params())
        if not ctx:
            raise RuntimeError("llama.cpp could not create a context")
        try:
            n_vocab = so.llama_vocab_n_tokens(so.llama_model_get_vocab(model))
            arr = (ctypes.c_int32 * len(tokens))(*tokens)
            batch = so.llama_batch_get_one(arr, len(tokens))
            rc = so.llama_decode(ctx, batch)
            if rc != 0:
                raise RuntimeError(f"llama_decode returned {rc}")
            ptr = so.llama_get_logits(ctx)
            return np.ctypeslib.as_array(ptr, shape=(n_vocab,)).copy()
        finally:
            so.llama_free(ctx)
    finally:
        so.llama_model_free(model)
