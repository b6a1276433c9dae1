"""GGUF files opened for conversion: :mod:`batuta_sync.fileformats.gguf` parses and checks the header
(the one GGUF reader), this module presents it as the subset of gguf-py's ``GGUFReader`` the
converters use -- ``fields`` (``types``, ``parts``, ``contents()``) and ``tensors`` (``name``,
``tensor_type``, ``shape``, ``n_elements``, ``n_bytes``, ``data_offset``, ``data``) over one read-only
memory map.

Why not gguf-py's reader: it builds a numpy view per metadata element, so a 32K-token vocabulary
costs ~2.5 s before any tensor is touched (a 150K one ~10 s); here the header is read once with
``struct`` and strings stay bytes until asked for.  ``contents()`` decodes strictly, as gguf-py does,
so undecodable metadata is still reported where it is used.
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any

import numpy as np

_NP_TYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I8": np.int8, "I16": np.int16,
             "I32": np.int32, "I64": np.int64}


class Field:
    """One metadata record (gguf-py ``ReaderField`` subset)."""

    __slots__ = ("_value", "name", "parts", "types")

    def __init__(self, name: str, types: list[Any], value: Any, raw: bytes) -> None:
        self.name = name
        self.types = types
        self.parts = [raw]  # the record's bytes, as stored (``split.field_bytes`` copies them)
        self._value = value

    def contents(self) -> Any:
        v = self._value
        if isinstance(v, bytes):
            return v.decode("utf-8")
        if isinstance(v, list) and v and isinstance(v[0], bytes):
            return [b.decode("utf-8") for b in v]
        return v


class Tensor:
    """One tensor (gguf-py ``ReaderTensor`` subset): ``shape`` in ggml order, ``data`` a typed view."""

    __slots__ = ("data", "data_offset", "n_bytes", "n_elements", "name", "shape", "tensor_type")

    def __init__(self, name: str, tensor_type: Any, dims: tuple[int, ...], n_bytes: int, offset: int,
                 data: Any) -> None:
        self.name = name
        self.tensor_type = tensor_type
        self.shape = np.array(dims, dtype=np.uint64)
        self.n_elements = int(np.prod(dims))
        self.n_bytes = n_bytes
        self.data_offset = offset
        self.data = data


class Reader:
    """A GGUF file: ``fields``, ``tensors`` and ``data`` (the whole file, read-only uint8)."""

    def __init__(self, path: str | Path) -> None:
        import gguf

        from batuta_sync.fileformats import gguf as fmt

        path = Path(path)
        sizes = {int(t): v for t, v in gguf.GGML_QUANT_SIZES.items()}
        with open(path, "rb", buffering=1 << 20) as fh:
            size = fh.seek(0, 2)
            fh.seek(0)
            info = fmt.parse(fh, size, type_sizes=sizes, full=True)  # FormatError: the caller's to word
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        self.data = np.frombuffer(mm, dtype=np.uint8)
        vt = gguf.GGUFValueType
        self.fields: dict[str, Field] = {}
        for key, f in (info.fields or {}).items():
            types = [vt(f.vtype)] + ([vt(f.etype)] if f.etype is not None else [])
            self.fields[key] = Field(key, types, f.value, bytes(mm[f.start:f.end]))
        self.tensors: list[Tensor] = []
        for t in info.tensors:
            qt = gguf.GGMLQuantizationType(t.ggml_type)
            off = info.data_start + t.offset
            np_dims = tuple(reversed(t.dims))
            dtype = _NP_TYPES.get(qt.name)
            if dtype is not None:
                data = self.data[off:off + t.nbytes].view(dtype).reshape(np_dims)
            else:
                data = self.data[off:off + t.nbytes].reshape(gguf.quant_shape_to_byte_shape(np_dims, qt))
            self.tensors.append(Tensor(t.name, qt, t.dims, t.nbytes, off, data))
