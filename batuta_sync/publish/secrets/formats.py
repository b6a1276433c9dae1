"""Pure readers for the structured places secrets hide in (no file I/O): safetensors ``__metadata__``,
pickle string constants (opcodes walked, never unpickled) and ``strings(1)``-style printable runs.

The format parsing lives in :mod:`batuta_sync.fileformats`; this module adapts it to the scanner."""

from __future__ import annotations

import re
from typing import Any

from batuta_sync.fileformats import pickle as _pickle
from batuta_sync.fileformats import safetensors as _st


def safetensors_header(data: bytes) -> dict[str, Any] | None:
    """The JSON header of a safetensors file (``data`` starts with it), or None if it is not one."""
    return _st.header_json(data)


def safetensors_metadata(data: bytes) -> dict[str, str] | None:
    """The ``__metadata__`` map of a safetensors header (header bytes only), or None if unreadable."""
    header = safetensors_header(data)
    meta = header.get("__metadata__") if header is not None else None
    if not isinstance(meta, dict):
        return None
    return {str(k): str(v) for k, v in meta.items()}


def pickle_strings(data: bytes) -> list[str]:
    """String constants of a pickle stream, by walking opcodes (never unpickling)."""
    return _pickle.string_constants(data)


_ASCII_RUN_RE = re.compile(rb"[\x20-\x7e\t\n\r]{16,}")


def binary_strings(data: bytes) -> bytes:
    """``strings(1)``: printable ASCII runs of 16+ bytes, one per line."""
    return b"\n".join(_ASCII_RUN_RE.findall(data))


def is_pickle_bytes(head: bytes) -> bool:
    return _pickle.is_pickle_stream(head)
