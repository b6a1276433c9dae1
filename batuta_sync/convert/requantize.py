"""GGUF -> GGUF (re)quantization, like ``llama-quantize IN OUT TYPE``.

The input is one GGUF file or a split set (:func:`batuta_sync.convert.split.open_gguf`).  Every
tensor gets the type :func:`batuta_sync.convert.quantize.choose_types` picks (the same mixture
rules and per-tensor options as safetensors -> GGUF, with the model facts read from the metadata);
tensors llama-quantize never quantizes (norms, routers, 1-D) and tensors already in their target
type are copied byte for byte.  Converting a tensor that is already quantized to another type loses
precision twice, so, as in llama-quantize, it needs ``allow_requantize``.  Metadata is copied, with
``general.file_type`` and ``general.quantization_version`` set anew.  The output appears atomically.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from batuta_sync.convert.formats import GGUFQuantization
from batuta_sync.convert.quantize import (
    BLOCK,
    QuantOptions,
    choose_types,
    model_info,
    quantizable,
    quantize_rows,
)
from batuta_sync.convert.split import (
    TensorInfo,
    field_bytes,
    kv_bytes,
    open_gguf,
    pwrite_all,
    write_gguf_file,
)
from batuta_sync.convert.st_io import temp_path_for
from batuta_sync.errors import ConversionError

_CHUNK_ELEMENTS = 1 << 20
_U32 = 4
_FLOATS = ("F32", "F16", "BF16")


def _scalar(model: Any, key: str, default: int = 0) -> int:
    f = model.fields.get(key)
    if f is None:
        return default
    v = f.contents()
    if isinstance(v, list):  # per-layer arrays (e.g. head counts): llama.cpp's rules use layer 0
        v = v[0] if v else default
    try:
        return int(v)
    except (TypeError, ValueError):
        raise ConversionError(f"GGUF key {key} is not an integer ({v!r}).", hint="The GGUF file is damaged.") from None


def _to_f32(raw: Any, qtype: str, ncols: int) -> Any:
    """Raw rows (uint8, shape (rows, row bytes)) of ``qtype`` -> float32 (rows, ncols)."""
    import gguf

    if qtype == "F32":
        return raw.view(np.float32)
    if qtype == "F16":
        return raw.view(np.float16).astype(np.float32)
    if qtype == "BF16":
        return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    return gguf.quants.dequantize(raw, gguf.GGMLQuantizationType[qtype]).reshape(-1, ncols).astype(np.float32)


def _imatrix_kv(key: str, value: str | int) -> bytes:
    if isinstance(value, int):
        return kv_bytes(key, _U32, value)
    k, v = key.encode(), value.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<IQ", 8, len(v)) + v  # GGUF_TYPE_STRING


def requantize_gguf(
    src: Path,
    dst: Path,
    quant: GGUFQuantization,
    options: QuantOptions,
    *,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, dict[str, str]]:
    """Re-quantize the GGUF model at ``src`` into the file ``dst``; returns (tensor count, parameters)."""
    import gguf

    model = open_gguf(src)
    arch = str(model.fields["general.architecture"].contents()) if "general.architecture" in model.fields else ""
    if not arch:
        raise ConversionError(f"{src} has no general.architecture.", hint="Not a llama.cpp model GGUF.")
    tensors = model.tensors
    names = [t.name for t in tensors]
    shapes = [tuple(int(d) for d in reversed([int(x) for x in t.shape])) for t in tensors]  # numpy order
    in_types = [gguf.GGMLQuantizationType(int(t.tensor_type)).name for t in tensors]  # the reader checked them
    n_head = _scalar(model, f"{arch}.attention.head_count", 1)
    minfo = model_info(arch, _scalar(model, f"{arch}.block_count"), n_head,
                       _scalar(model, f"{arch}.attention.head_count_kv", n_head) or n_head,
                       n_expert=_scalar(model, f"{arch}.expert_count"), tied="output.weight" not in names)
    wanted = choose_types(list(zip(names, shapes, strict=True)), quant, minfo, options)
    out_types = []
    for name, shape, have in zip(names, shapes, in_types, strict=True):
        new = wanted[name] if quantizable(name, shape) else have
        if new != have:
            if have not in _FLOATS and not options.allow_requantize:
                raise ConversionError(f"Tensor {name} is already quantized ({have}); re-quantizing it to {new} "
                                      "loses precision twice.",
                                      hint="Pass --allow-requantize (allow_requantize: true) to do it anyway, "
                                      "or convert from the F16/BF16/F32 GGUF or the safetensors checkpoint.")
            if have not in BLOCK:
                try:
                    gguf.quants.dequantize(np.zeros((1, gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[have]][1]),
                                                    dtype=np.uint8), gguf.GGMLQuantizationType[have])
                except (NotImplementedError, KeyError, ValueError):
                    raise ConversionError(f"Tensor {name} has type {have}, which cannot be dequantized.",
                                          hint="Convert from a file with a supported tensor type.") from None
        out_types.append(new)

    kvs = []
    for key, field in model.metadata.items():
        if key == "general.file_type":
            kvs.append(kv_bytes(key, _U32, quant.file_type))
        elif key == "general.quantization_version":
            kvs.append(kv_bytes(key, _U32, gguf.GGML_QUANT_VERSION))
        elif options.imatrix is not None and key.startswith("quantize.imatrix."):
            continue  # replaced by this imatrix's keys below
        else:
            kvs.append(field_bytes(field))
    if "general.file_type" not in model.fields:
        kvs.append(kv_bytes("general.file_type", _U32, quant.file_type))
    if "general.quantization_version" not in model.fields:
        kvs.append(kv_bytes("general.quantization_version", _U32, gguf.GGML_QUANT_VERSION))
    if options.imatrix is not None:
        kvs += [_imatrix_kv(k, v) for k, v in options.imatrix.metadata()]
    weights = [options.weights(n, s, q) if q != h else None
               for n, s, q, h in zip(names, shapes, out_types, in_types, strict=True)]

    def nbytes(shape: tuple[int, ...], qtype: str) -> int:
        bs, ts = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[qtype]]
        return int(np.prod(shape[:-1], dtype=np.int64)) * (shape[-1] // bs * ts)

    infos = [TensorInfo(n, tuple(reversed(s)), int(gguf.GGMLQuantizationType[q]), nbytes(s, q))
             for n, s, q in zip(names, shapes, out_types, strict=True)]
    pool = _pool(jobs)
    done = [0]

    def fill(fd: int, i: int, off: int) -> None:
        raw = model.tensor_bytes(tensors[i])
        have, new, shape = in_types[i], out_types[i], shapes[i]
        if have == new:
            for a in range(0, len(raw), 1 << 24):
                pwrite_all(fd, raw[a: a + (1 << 24)].tobytes(), off + a)
        else:
            ncols = shape[-1]
            rows = raw.reshape(-1, nbytes((ncols,), have))
            out_row = nbytes((ncols,), new)
            step = max(1, _CHUNK_ELEMENTS // max(1, ncols))

            def chunk(r0: int) -> None:
                sub = np.ascontiguousarray(rows[r0: r0 + step])
                x = _to_f32(sub, have, ncols)
                q = quantize_rows(x, new) if weights[i] is None else quantize_rows(
                    x, new, weights[i], first_row=r0, rows_per_matrix=shape[-2] if len(shape) == 3 else 0)
                pwrite_all(fd, q, off + r0 * out_row)

            starts = range(0, rows.shape[0], step)
            if pool is None:
                for r0 in starts:
                    chunk(r0)
            else:
                for _ in pool.map(chunk, starts):
                    pass
        done[0] += 1
        if progress is not None:
            progress(done[0], len(tensors))

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(dst)
    from batuta_sync.convert.kquants import expected_work, k_blocks

    try:
        with expected_work(k_blocks((s, q) for s, q, h in zip(shapes, out_types, in_types, strict=True) if q != h)):
            write_gguf_file(tmp, kvs, infos, model.alignment, fill)
        os.replace(tmp, dst)
    finally:
        if pool is not None:
            pool.shutdown()
        if tmp.exists():
            tmp.unlink()
    counts: dict[str, int] = {}
    for q in out_types:
        counts[q] = counts.get(q, 0) + 1
    return len(tensors), {
        "architecture": arch,
        "quantization": quant.value,
        "tensor_types": ",".join(f"{k}:{v}" for k, v in sorted(counts.items())),
        "source": "gguf",
    }


def _pool(jobs: int) -> Any:
    """Threads for row chunks (the compiled kernels and numpy's big loops release the GIL)."""
    if jobs <= 1:
        return None
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="batuta-requantize")
