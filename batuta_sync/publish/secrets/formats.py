"""Pure readers for the structured places secrets hide in (no file I/O): safetensors ``__metadata__``,
pickle string constants (opcodes walked, never unpickled) and ``strings(1)``-style printable runs."""

from __future__ import annotations

import io
import json
import pickletools
import re
import struct
from typing import Any


def safetensors_header(data: bytes) -> dict[str, Any] | None:
    """The JSON header of a safetensors file (``data`` starts with it), or None if it is not one."""
    if len(data) < 8:
        return None
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        return None
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return header if isinstance(header, dict) else None


def safetensors_metadata(data: bytes) -> dict[str, str] | None:
    """The ``__metadata__`` map of a safetensors header (header bytes only), or None if unreadable."""
    header = safetensors_header(data)
    meta = header.get("__metadata__") if header is not None else None
    if not isinstance(meta, dict):
        return None
    return {str(k): str(v) for k, v in meta.items()}


_PICKLE_STR_OPS = {
    "STRING",
    "BINSTRING",
    "SHORT_BINSTRING",
    "UNICODE",
    "BINUNICODE",
    "SHORT_BINUNICODE",
    "BINUNICODE8",
    "BINBYTES",
    "SHORT_BINBYTES",
    "BINBYTES8",
    "BYTEARRAY8",
    "GLOBAL",
    "INST",
}


def pickle_strings(data: bytes) -> list[str]:
    """String constants of a pickle stream, by walking opcodes (never unpickling)."""
    out: list[str] = []
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        try:
            for op, arg, _pos in pickletools.genops(stream):
                if op.name in _PICKLE_STR_OPS and arg is not None:
                    if isinstance(arg, (bytes, bytearray)):
                        if len(arg) <= 1 << 20:
                            out.append(bytes(arg).decode("latin-1"))
                    else:
                        out.append(str(arg))
        except Exception:  # malformed tail: keep what we have
            break
        # several pickles may be concatenated (torch legacy format); genops stops at STOP
        if stream.tell() < len(data) and data[stream.tell() : stream.tell() + 1] != b"\x80":
            break
    return out


_ASCII_RUN_RE = re.compile(rb"[\x20-\x7e\t\n\r]{16,}")


def binary_strings(data: bytes) -> bytes:
    """``strings(1)``: printable ASCII runs of 16+ bytes, one per line."""
    return b"\n".join(_ASCII_RUN_RE.findall(data))


def is_pickle_bytes(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5
