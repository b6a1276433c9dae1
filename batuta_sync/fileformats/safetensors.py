"""The one safetensors header parser (reference PAR-1).

* :func:`parse_header` -- strict by default: rejects the 19 malformed cases the Rust library
  rejects **and** the 3 it accepts (duplicate keys, leading whitespace before ``{``, unknown
  fields in a tensor entry); ``strict=False`` accepts unknown tensor fields (``--lenient``).
  Pull (``safety``) and push (``publish/validate``) use the same rules, so a file that passes
  on pull passes on push.
* :func:`read_head` -- the ``8 + N`` bytes the parser needs, from an open file.
* :func:`header_json` -- the JSON object only, no structural checks (secret scanning reads
  ``__metadata__`` of files that need not be valid).

One header size limit, :data:`MAX_HEADER` = 100,000,000 bytes (the Rust library's
``MAX_HEADER_SIZE``), and one dtype table, :data:`DTYPE_BITS`.  Reads headers only, never data.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from batuta_sync.fileformats._base import FormatError

__all__ = [
    "DTYPE_BITS",
    "MAX_HEADER",
    "MAX_RANK",
    "SafetensorsHeader",
    "TensorInfo",
    "header_json",
    "header_length",
    "looks_like",
    "parse_header",
    "read_head",
]

MAX_HEADER = 100_000_000
MAX_RANK = 8  # chosen & documented (docs/security.md): real models use <= 5

#: bits per element; sub-byte types must end on a byte boundary (MisalignedSlice otherwise)
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16,
    "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64, "U64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "C64": 64,
}  # fmt: skip
_TENSOR_FIELDS = {"dtype", "shape", "data_offsets"}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int


@dataclass(frozen=True)
class SafetensorsHeader:
    header_size: int
    data_size: int
    tensors: tuple[TensorInfo, ...]
    metadata: Mapping[str, str] = field(default_factory=dict)

    def tensor(self, name: str) -> TensorInfo | None:
        return next((t for t in self.tensors if t.name == name), None)


def header_length(head: bytes) -> int | None:
    """The 8-byte little-endian header length at the start of ``head`` (None if too short)."""
    if len(head) < 8:
        return None
    return int(struct.unpack("<Q", head[:8])[0])


def looks_like(head: bytes) -> bool:
    """Cheap detection from the first 9 bytes: a sane length followed by ``{``."""
    n = header_length(head)
    return n is not None and 2 <= n < MAX_HEADER and head[8:9] == b"{"


def read_head(fh: BinaryIO, size: int) -> bytes:
    """The first ``8 + N`` bytes of an open file when ``N`` is within the limit and the file,
    else only the first (up to 8) bytes -- enough for :func:`parse_header` to say why."""
    head = fh.read(8)
    n = header_length(head)
    if n is not None and n <= min(MAX_HEADER, max(size - 8, 0)):
        head += fh.read(n)
    return head


class _DuplicateKey(Exception):
    pass


def _no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def header_json(data: bytes) -> dict[str, Any] | None:
    """The JSON header object of ``data`` (which starts with the file), or None if unreadable.
    No structural checks: for reading ``__metadata__`` of any file that claims the format."""
    n = header_length(data)
    if n is None or n > len(data) - 8:
        return None
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return header if isinstance(header, dict) else None


def _read_doc(head: bytes, file_size: int) -> tuple[int, dict[str, Any]]:
    if file_size < 8 or len(head) < 8:
        raise FormatError("header-too-small", f"the file has {file_size} bytes, fewer than the 8-byte length prefix")
    n = int(struct.unpack("<Q", head[:8])[0])
    if n > MAX_HEADER:
        raise FormatError("header-too-large", f"the header claims {n} bytes (limit {MAX_HEADER})")
    if n + 8 > file_size or len(head) < 8 + n:
        raise FormatError("invalid-header-length", f"the header claims {n} bytes but the file has {file_size}")
    raw = head[8 : 8 + n]
    if n == 0 or raw[:1] != b"{":
        raise FormatError("invalid-header-start", "the header must begin with '{'")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError("invalid-header-utf8", f"the header is not UTF-8 (byte {exc.start})") from None
    try:
        doc = json.loads(text, object_pairs_hook=_no_dupes)
    except _DuplicateKey as exc:
        raise FormatError("duplicate-key", f"key {str(exc)[:80]!r} appears twice in the header") from None
    except (ValueError, RecursionError) as exc:
        raise FormatError("invalid-header-deserialization", f"the header is not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(doc, dict):
        raise FormatError("invalid-header-deserialization", "the header is not a JSON object")
    if text.rstrip(" ") != text.rstrip():
        raise FormatError("invalid-header-deserialization", "the header padding must be spaces (0x20)")
    return n, doc


def _check_shape(name: str, shape: object) -> None:
    if not isinstance(shape, list) or not all(_is_int(d) for d in shape):
        raise FormatError("invalid-shape", f"tensor {name!r} has a non-integer shape")
    if any(d < 0 for d in shape):
        raise FormatError("invalid-shape", f"tensor {name!r} has a negative dimension")
    if len(shape) > MAX_RANK:
        raise FormatError("invalid-shape", f"tensor {name!r} has {len(shape)} dimensions (limit {MAX_RANK})")


def _tensor(name: str, entry: object, *, strict: bool) -> TensorInfo:
    if not name or "\x00" in name:
        raise FormatError("invalid-tensor-name", "tensor names must be non-empty and contain no NUL")
    if not isinstance(entry, dict):
        raise FormatError("invalid-header-deserialization", f"tensor {name!r} is not an object")
    missing = _TENSOR_FIELDS - entry.keys()
    if missing:
        raise FormatError("invalid-header-deserialization", f"tensor {name!r} lacks {sorted(missing)}")
    extra = entry.keys() - _TENSOR_FIELDS
    if extra and strict:
        raise FormatError("unknown-field", f"tensor {name!r} has unknown field(s) {sorted(extra)}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise FormatError("invalid-dtype", f"tensor {name!r} has unknown dtype {str(dtype)[:20]!r}")
    _check_shape(name, shape)
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) and o >= 0 for o in offsets)):
        raise FormatError("invalid-header-deserialization", f"tensor {name!r} needs data_offsets [begin, end]")
    nel = 1
    for d in shape:
        nel *= d
        if nel >= 1 << 64:
            raise FormatError("validation-overflow", f"tensor {name!r}: element count overflows")
    bits = nel * DTYPE_BITS[dtype]
    if bits >= 1 << 64:
        raise FormatError("validation-overflow", f"tensor {name!r}: byte size overflows")
    if bits % 8:
        raise FormatError("misaligned-slice", f"tensor {name!r}: {dtype} data does not end on a byte boundary")
    s, e = offsets
    if e < s:
        raise FormatError("invalid-offset", f"tensor {name!r}: data_offsets are reversed")
    if e - s != bits // 8:
        raise FormatError(
            "tensor-invalid-info",
            f"tensor {name!r}: {dtype}{shape} needs {bits // 8} bytes but data_offsets span {e - s}",
        )
    return TensorInfo(name, dtype, tuple(shape), s, e)


def parse_header(head: bytes, file_size: int, *, strict: bool = True) -> SafetensorsHeader:
    """Validate a safetensors header; ``head`` holds at least the first ``8 + N`` bytes.

    Raises :class:`FormatError` whose ``reason`` mirrors the Rust ``SafeTensorError`` variants.
    """
    n, doc = _read_doc(head, file_size)
    metadata: dict[str, str] = {}
    tensors: list[TensorInfo] = []
    for name, entry in doc.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise FormatError("invalid-metadata", "__metadata__ must map strings to strings")
            metadata = dict(entry)
            continue
        tensors.append(_tensor(name, entry, strict=strict))
    data_size = file_size - 8 - n
    expected = 0
    for t in sorted(tensors, key=lambda t: (t.start, t.end)):
        if t.start != expected:
            kind = "overlaps the previous tensor" if t.start < expected else "leaves a hole before it"
            raise FormatError("invalid-offset", f"tensor {t.name!r} at {t.start} {kind} (expected {expected})")
        expected = t.end
    if expected > data_size:
        raise FormatError("invalid-offset", f"tensor data ends at {expected} but the data section has {data_size} bytes")
    if expected != data_size:
        raise FormatError(
            "metadata-incomplete-buffer",
            f"{data_size - expected} trailing bytes after the last tensor (polyglot or truncated file)",
        )
    return SafetensorsHeader(8 + n, data_size, tuple(tensors), metadata)
