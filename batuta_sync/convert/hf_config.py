"""Typed, validated access to a Hugging Face ``config.json`` (one home for "this key has the wrong type").

Every hparam the converter reads goes through :class:`Config`: a value of the wrong JSON type, a
non-finite number or a count outside a sane range is a ``ConversionError`` naming the key, never a
``TypeError`` deep inside the converter, and never a loop over a count of 2**40 layers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from batuta_sync.errors import ConversionError

_MISSING: Any = object()
MAX_COUNT = 1 << 31  # sizes, vocabularies, contexts
MAX_LAYERS = 4096


class Config:
    """A config.json object; nested ``text_config`` (multimodal wrappers) is merged over the top level."""

    def __init__(self, data: dict[str, Any], path: Path) -> None:
        self.path = path
        text = data.get("text_config")
        if text is not None and not isinstance(text, dict):
            raise self._bad("text_config", "must be a JSON object")
        self.data = {**data, **(text or {})}

    def _bad(self, key: str, what: str) -> ConversionError:
        return ConversionError(f"{self.path}: {key!r} {what}.",
                               hint="Use the model's original config.json; GGUF metadata is built from its keys.")

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def _find(self, keys: tuple[str, ...], default: Any, what: str) -> tuple[str, Any]:
        for k in keys:
            if self.data.get(k) is not None:
                return k, self.data[k]
        if default is _MISSING:
            raise ConversionError(f"{self.path} lacks the required key {keys[0]!r} ({what}).",
                                  hint="Use the model's original config.json; GGUF metadata is built from its keys.")
        return "", default

    def require(self, wanted: dict[str, tuple[str, ...]]) -> None:
        """Every key group present (any spelling); else one error listing all that are missing."""
        missing = [name for name, alts in wanted.items() if not any(self.has(k) for k in alts)]
        if missing:
            raise ConversionError(f"{self.path} lacks required keys: {', '.join(missing)}.",
                                  hint="Use the model's original config.json; GGUF metadata is built from these keys.")

    def get_int(self, *keys: str, default: Any = _MISSING, minimum: int = 1, maximum: int = MAX_COUNT) -> Any:
        k, v = self._find(keys, default, "an integer")
        if not k:
            return v
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self._bad(k, f"is {v!r}, an integer was expected")
        if not minimum <= v <= maximum:
            raise self._bad(k, f"is {v}, outside [{minimum}, {maximum}]")
        return v

    def get_float(self, *keys: str, default: Any = _MISSING, positive: bool = False) -> Any:
        k, v = self._find(keys, default, "a number")
        if not k:
            return v
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or (positive and v <= 0):
            raise self._bad(k, f"is {v!r}, a finite{' positive' if positive else ''} number was expected")
        return float(v)

    def get_bool(self, *keys: str, default: Any = _MISSING) -> Any:
        k, v = self._find(keys, default, "a boolean")
        if not k:
            return v
        if not isinstance(v, bool):
            raise self._bad(k, f"is {v!r}, true or false was expected")
        return v

    def get_str(self, *keys: str, default: Any = _MISSING) -> Any:
        k, v = self._find(keys, default, "a string")
        if not k:
            return v
        if not isinstance(v, str):
            raise self._bad(k, f"is {v!r}, a string was expected")
        return v

    def get_dict(self, key: str) -> Config:
        """A nested object (``rope_scaling``, ``rope_parameters``) as a Config; empty when absent."""
        v = self.data.get(key)
        if v is None:
            return Config({}, self.path)
        if not isinstance(v, dict):
            raise self._bad(key, f"is {v!r}, a JSON object was expected")
        sub = Config({}, self.path)
        sub.data = dict(v)
        return sub
