"""The weight-file family by file name: one table for pull, ``hub/models`` and ``convert``."""

from __future__ import annotations

import re

__all__ = ["FAMILY", "PICKLE_FAMILIES", "family", "file_family"]

#: Weight file formats by extension.
FAMILY: dict[str, str] = {
    ".safetensors": "safetensors",
    ".gguf": "gguf",
    ".bin": "pytorch",
    ".pt": "pytorch",
    ".pth": "pytorch",
    ".ckpt": "pytorch",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".joblib": "pickle",
    ".h5": "tensorflow",
    ".keras": "tensorflow",
    ".msgpack": "flax",
    ".onnx": "onnx",
    ".onnx_data": "onnx",
    ".ot": "rust",
    ".tflite": "tflite",
    ".mlmodel": "coreml",
    ".npz": "numpy",
}
#: Families whose files are pickles (or may carry them).
PICKLE_FAMILIES = frozenset({"pytorch", "pickle"})
_INDEX_RE = re.compile(r"\.(safetensors|bin|msgpack|h5|pt|pth|ckpt)\.index\.json$", re.IGNORECASE)


def file_family(path: str) -> str | None:
    """The family of a weight file by its extension (index JSON files are not weight files)."""
    name = path.rsplit("/", 1)[-1].lower()
    dot = name.rfind(".")
    if dot <= 0:
        return None
    return FAMILY.get(name[dot:])  # training_args.bin & co count as pytorch (pickles)


def family(path: str) -> str | None:
    """``safetensors`` / ``gguf`` / ``pytorch`` / ... for weight files and their index JSON, else None."""
    m = _INDEX_RE.search(path.rsplit("/", 1)[-1])
    if m:
        return FAMILY.get("." + m.group(1).lower())
    return file_family(path)
