"""Typed, validated access to a GGUF file's metadata (one home for "this key has the wrong type").

gguf-py's ``ReaderField.contents()`` returns whatever the file says -- a string where a count is
expected, a list where a name is, bytes that are not UTF-8.  Every read of GGUF metadata in the
converter goes through :class:`Meta`, which checks the stored GGUF value type and the value
(finite, in range) and raises a ``ConversionError`` naming the key and what was wrong.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from batuta_sync.errors import ConversionError

_MISSING: Any = object()
_INT_TYPES = {"UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "UINT64", "INT64"}
_FLOAT_TYPES = {"FLOAT32", "FLOAT64"}


class Meta:
    """The metadata of an opened GGUF (``convert.gguf_read.Reader``, gguf-py's reader interface); ``src`` is only used in messages."""

    def __init__(self, reader: Any, src: Path) -> None:
        self.fields = reader.fields
        self.src = src

    def _bad(self, key: str, what: str) -> ConversionError:
        return ConversionError(f"{self.src}: GGUF metadata key {key!r} {what}.",
                               hint="The file is corrupt or was not written by a GGUF converter; re-create it.")

    def _raw(self, key: str, default: Any, want: str) -> tuple[Any, Any]:
        f = self.fields.get(key)
        if f is None or not f.types:
            if default is _MISSING:
                raise self._bad(key, f"is missing (a {want} is required)")
            return None, default
        try:
            return f, f.contents()
        except (UnicodeDecodeError, IndexError, ValueError) as e:
            raise self._bad(key, f"cannot be decoded ({e})") from None

    def _type(self, f: Any) -> str:
        names = [t.name for t in f.types]
        return names[0] if names[0] != "ARRAY" else f"ARRAY of {names[-1] if len(names) > 1 else '?'}"

    def get_int(self, key: str, default: Any = _MISSING, *, minimum: int = 0, maximum: int = 1 << 40) -> Any:
        f, v = self._raw(key, default, "integer")
        if f is None:
            return v
        if f.types[0].name not in _INT_TYPES:
            raise self._bad(key, f"has type {self._type(f)}, an integer was expected")
        if not minimum <= int(v) <= maximum:
            raise self._bad(key, f"is {v}, outside [{minimum}, {maximum}]")
        return int(v)

    def get_float(self, key: str, default: Any = _MISSING) -> Any:
        f, v = self._raw(key, default, "number")
        if f is None:
            return v
        if f.types[0].name not in _FLOAT_TYPES | _INT_TYPES:
            raise self._bad(key, f"has type {self._type(f)}, a number was expected")
        if not math.isfinite(float(v)):
            raise self._bad(key, f"is {v}, not a finite number")
        return float(v)

    def get_str(self, key: str, default: Any = _MISSING) -> Any:
        f, v = self._raw(key, default, "string")
        if f is None:
            return v
        if f.types[0].name != "STRING":
            raise self._bad(key, f"has type {self._type(f)}, a string was expected")
        return str(v)

    def get_bool(self, key: str, default: Any = _MISSING) -> Any:
        f, v = self._raw(key, default, "boolean")
        if f is None:
            return v
        if f.types[0].name != "BOOL":
            raise self._bad(key, f"has type {self._type(f)}, a boolean was expected")
        return bool(v)

    def get_array(self, key: str, of: str, default: Any = _MISSING) -> Any:
        """An array whose elements are ``of`` = "str" | "int" | "float" (ints accepted as floats)."""
        f, v = self._raw(key, default, f"array of {of}")
        if f is None:
            return v
        sub = f.types[-1].name if len(f.types) > 1 else ""
        ok = {"str": {"STRING"}, "int": _INT_TYPES, "float": _FLOAT_TYPES | _INT_TYPES}[of]
        if f.types[0].name != "ARRAY" or sub not in ok:
            raise self._bad(key, f"has type {self._type(f)}, an array of {of} was expected")
        return list(v)

    def token_id(self, key: str, n_tokens: int) -> Any:
        """A token id key (None when absent); it must index the vocabulary."""
        v = self.get_int(key, None, maximum=(1 << 32) - 1)
        if v is not None and v >= n_tokens:
            raise self._bad(key, f"is {v}, beyond the {n_tokens}-token vocabulary")
        return v
