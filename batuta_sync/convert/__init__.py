"""Format conversion: safetensors -> GGUF (with K-quants), GGUF -> safetensors, PyTorch -> safetensors.

Stable API (used by the declarative core's ``conversions:`` actions and by ``batuta convert``)::

    convert(src, dst, *, to="gguf"|"safetensors", quantization=None, jobs=1, progress=None) -> ConversionResult
    detect_format(path) -> ModelFormat
    GGUFQuantization.parse("q4_k_m"), CONVERTER_VERSION, FormatConverter

Importing this package is cheap (numpy/gguf load when a conversion runs).
"""

from __future__ import annotations

from batuta_sync.convert.converter import CONVERTER_VERSION, ConversionResult, FormatConverter, convert
from batuta_sync.convert.formats import GGUFQuantization, ModelFormat, Runtime, detect_format
from batuta_sync.errors import ConversionError

__all__ = [
    "CONVERTER_VERSION",
    "ConversionError",
    "ConversionResult",
    "FormatConverter",
    "GGUFQuantization",
    "ModelFormat",
    "Runtime",
    "convert",
    "detect_format",
]
