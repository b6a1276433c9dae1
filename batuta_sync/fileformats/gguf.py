"""The one GGUF header / key-value reader (reference PAR-2, 16 cases).

Magic, version, sane counts, string/array bounds, key types, tensor dims/types, alignment,
offsets.  Stdlib only: the ggml block sizes come from the caller (``type_sizes``), so this
module needs no ``gguf`` package.  ``parse(..., full=True)`` keeps every record as stored (types,
undecoded strings, complete arrays, byte spans): ``convert/gguf_read.py`` presents that to the
converters as gguf-py's reader interface (only imatrix files are still read with gguf-py).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from batuta_sync.fileformats._base import FormatError

__all__ = [
    "GGML_MAX_DIMS", "MAGIC", "MAX_ALIGNMENT", "MAX_STRING", "GgufField", "GgufInfo", "GgufTensor", "parse", "string_values",
]

MAGIC = b"GGUF"
MAX_STRING = 64 * 1024 * 1024
MAX_ALIGNMENT = 1024 * 1024
GGML_MAX_DIMS = 4
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_T_STRING, _T_ARRAY, _T_UINT32 = 8, 9, 4


@dataclass(frozen=True)
class GgufTensor:
    name: str
    dims: tuple[int, ...]
    ggml_type: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class GgufField:
    """One key/value record as stored (``parse(..., full=True)``): its value type (and array element
    type), the value with strings as undecoded bytes and arrays complete, and the record's byte span
    (key included) so a writer can copy it verbatim."""

    key: str
    vtype: int
    etype: int | None
    value: Any
    start: int
    end: int


@dataclass(frozen=True)
class GgufInfo:
    version: int
    metadata: Mapping[str, Any]  # scalars and strings; arrays as lists (strings) or their length
    tensors: tuple[GgufTensor, ...]
    alignment: int
    data_start: int
    fields: Mapping[str, GgufField] | None = None  # with ``full=True`` only


class _Reader:
    def __init__(self, fh: BinaryIO, size: int) -> None:
        self.fh = fh
        self.size = size
        self.pos = 0

    @staticmethod
    def bad(reason: str, detail: str) -> FormatError:
        return FormatError(reason, detail)

    @property
    def remaining(self) -> int:
        return self.size - self.pos

    def read(self, n: int, what: str) -> bytes:
        if n > self.remaining:
            raise self.bad("truncated", f"{what} needs {n} bytes at offset {self.pos}, only {self.remaining} left")
        b = self.fh.read(n)
        if len(b) != n:
            raise self.bad("truncated", f"{what}: short read at offset {self.pos}")
        self.pos += n
        return b

    def u32(self, what: str) -> int:
        return int(struct.unpack("<I", self.read(4, what))[0])

    def u64(self, what: str) -> int:
        return int(struct.unpack("<Q", self.read(8, what))[0])

    def raw_string(self, what: str) -> bytes:
        n = self.u64(what)
        if n > self.remaining or n > MAX_STRING:
            raise self.bad("string-length", f"{what}: length {n} exceeds the file or the {MAX_STRING}-byte cap")
        return self.read(n, what)

    def string(self, what: str) -> str:
        return self.raw_string(what).decode("utf-8", errors="replace")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _read_value(r: _Reader, vtype: int, key: str, *, in_array: bool = False, full: bool = False) -> Any:
    if vtype in _SCALAR:
        fmt = _SCALAR[vtype]
        return struct.unpack(fmt, r.read(struct.calcsize(fmt), key))[0]
    if vtype == _T_STRING:
        return r.raw_string(key) if full else r.string(key)
    if vtype == _T_ARRAY:
        if in_array:
            raise r.bad("nested-array", f"{key}: arrays of arrays are not allowed")
        etype = r.u32(key)
        count = r.u64(key)
        if etype == _T_ARRAY:
            raise r.bad("nested-array", f"{key}: arrays of arrays are not allowed")
        if etype not in _SCALAR and etype != _T_STRING:
            raise r.bad("array-type", f"{key}: unknown array element type {etype}")
        min_size = 8 if etype == _T_STRING else struct.calcsize(_SCALAR[etype])
        if count * min_size > r.remaining:
            raise r.bad("array-length", f"{key}: {count} elements cannot fit in the {r.remaining} remaining bytes")
        if etype == _T_STRING:
            return [r.raw_string(key) if full else r.string(key) for _ in range(count)]
        fmt = _SCALAR[etype]
        width = struct.calcsize(fmt)
        if count > 4096 and not full:  # large numeric arrays (scores, token types): skip, keep the length
            r.read(count * width, key)
            return count
        data = r.read(count * width, key)
        return list(struct.unpack(f"<{count}{fmt[1]}", data))
    raise r.bad("value-type", f"{key}: unknown value type {vtype}")


def _lenient(value: Any) -> Any:
    """A full record's value as ``metadata`` shows it (strings decoded leniently, big numeric arrays
    as their length)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):
        if value and isinstance(value[0], bytes):
            return [v.decode("utf-8", errors="replace") for v in value]
        return len(value) if len(value) > 4096 else value
    return value


def _read_kvs(r: _Reader, n_kv: int, fields: dict[str, GgufField] | None = None) -> tuple[dict[str, Any], int]:
    """The key/value metadata and the alignment it declares (default 32); ``fields`` (when given)
    receives every record as stored."""
    meta: dict[str, Any] = {}
    alignment = 32
    for _ in range(n_kv):
        start = r.pos
        key = r.string("key")
        if not key:
            raise r.bad("empty-key", f"empty key at offset {r.pos}")
        if key in meta:
            raise r.bad("duplicate-key", f"key {key[:80]!r} appears twice")
        vtype = r.u32(key)
        if not (vtype in (_T_ARRAY, _T_STRING) or vtype in _SCALAR):
            raise r.bad("value-type", f"{key[:80]}: unknown value type {vtype}")
        if fields is None:
            meta[key] = _read_value(r, vtype, key)
        else:
            etype = None
            if vtype == _T_ARRAY:  # peek the element type (the value reader reads it again)
                here = r.pos
                etype = r.u32(key)
                r.fh.seek(here)
                r.pos = here
            value = _read_value(r, vtype, key, full=True)
            fields[key] = GgufField(key, vtype, etype, value, start, r.pos)
            meta[key] = _lenient(value)
        if key == "general.alignment":
            a = meta[key]
            if vtype != _T_UINT32 or not _is_int(a) or a <= 0 or a & (a - 1) or a > MAX_ALIGNMENT:
                raise r.bad("alignment", f"general.alignment must be a UINT32 power of two ≤ 1 MiB, got {a!r}")
            alignment = a
    return meta, alignment


def _read_tensor(r: _Reader, sizes: Mapping[int, tuple[int, int]]) -> GgufTensor:
    name = r.string("tensor name")
    n_dims = r.u32(name)
    if n_dims == 0 or n_dims > GGML_MAX_DIMS:
        raise r.bad("n-dims", f"tensor {name[:80]!r} has {n_dims} dimensions (1..{GGML_MAX_DIMS})")
    dims = tuple(r.u64(name) for _ in range(n_dims))
    if any(d == 0 or d >= 1 << 63 for d in dims):
        raise r.bad("dimension", f"tensor {name[:80]!r} has a dimension ≤ 0")
    gtype = r.u32(name)
    if gtype not in sizes:
        raise r.bad("ggml-type", f"tensor {name[:80]!r} has unknown ggml type {gtype}")
    offset = r.u64(name)
    nel = 1
    for d in dims:
        nel *= d
        if nel >= 1 << 63:
            raise r.bad("overflow", f"tensor {name[:80]!r}: element count overflows")
    block, tsize = sizes[gtype]
    if dims[0] % block:
        raise r.bad("dimension", f"tensor {name[:80]!r}: first dimension not a multiple of the block size {block}")
    nbytes = nel // block * tsize
    if nbytes >= 1 << 63:
        raise r.bad("overflow", f"tensor {name[:80]!r}: byte size overflows")
    return GgufTensor(name, dims, gtype, offset, nbytes)


def _check_layout(r: _Reader, infos: list[GgufTensor], alignment: int, data_size: int) -> None:
    prev_end = 0
    for t in sorted(infos, key=lambda t: t.offset):
        if t.offset % alignment:
            raise r.bad("offset", f"tensor {t.name[:80]!r} offset {t.offset} is not a multiple of {alignment}")
        if t.offset + t.nbytes > data_size:
            raise r.bad("offset", f"tensor {t.name[:80]!r} data lies outside the file")
        if t.offset < prev_end:
            raise r.bad("overlap", f"tensor {t.name[:80]!r} overlaps the previous tensor's data")
        prev_end = t.offset + t.nbytes


def parse(
    fh: BinaryIO, size: int, *, type_sizes: Mapping[int, tuple[int, int]] | None = None, full: bool = False
) -> GgufInfo:
    """Parse and check a GGUF header from an open file of ``size`` bytes; raise :class:`FormatError`.

    ``type_sizes`` (ggml type id -> (block size, bytes per block), e.g. from the ``gguf``
    package's ``GGML_QUANT_SIZES``) enables the tensor-info checks; without it only the
    key/value metadata is read (``tensors`` is empty, ``data_start`` 0).  ``full`` also keeps
    every record as stored (``fields``: types, undecoded strings, complete arrays, byte spans),
    what a converter needs; ``fh`` must then be seekable.
    """
    r = _Reader(fh, size)
    if r.remaining < 4 or r.read(4, "magic") != MAGIC:
        raise r.bad("bad-magic", "the file does not start with 'GGUF'")
    version = r.u32("version")
    if version not in (2, 3):
        raise r.bad("version", f"version {version} is not supported (2 or 3)")
    n_tensors = r.u64("tensor count")
    n_kv = r.u64("kv count")
    if n_kv * (8 + 1 + 4) > r.remaining:
        raise r.bad("kv-count", f"{n_kv} key/values cannot fit in {r.remaining} bytes")
    if n_tensors * (8 + 1 + 4 + 8 + 4 + 8) > r.remaining:
        raise r.bad("tensor-count", f"{n_tensors} tensors cannot fit in {r.remaining} bytes")
    fields: dict[str, GgufField] | None = {} if full else None
    meta, alignment = _read_kvs(r, n_kv, fields)
    if type_sizes is None:
        return GgufInfo(version, meta, (), alignment, 0, fields)
    infos: list[GgufTensor] = []
    names: set[str] = set()
    for _ in range(n_tensors):
        t = _read_tensor(r, type_sizes)
        if t.name in names:
            raise r.bad("duplicate-tensor", f"tensor {t.name[:80]!r} appears twice")
        names.add(t.name)
        infos.append(t)
    data_start = (r.pos + alignment - 1) // alignment * alignment
    _check_layout(r, infos, alignment, size - data_start)
    return GgufInfo(version, meta, tuple(infos), alignment, data_start, fields)


def string_values(info: GgufInfo) -> list[tuple[str, str]]:
    """(key, text) for every string (or string array, newline-joined) KV of a parsed header."""
    out: list[tuple[str, str]] = []
    for k, v in info.metadata.items():
        if isinstance(v, str):
            out.append((k, v))
        elif isinstance(v, list) and v and isinstance(v[0], str):
            out.append((k, "\n".join(v)))
    return out
