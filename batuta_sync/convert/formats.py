"""Model formats, GGUF quantizations and target runtimes (stdlib only: cheap to import)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any

from batuta_sync.errors import ConversionError
from batuta_sync.fileformats import safetensors as st_format
from batuta_sync.fileformats import weights as weights_format


class ModelFormat(str, Enum):
    """On-disk format of a model (a file or a model directory)."""

    SAFETENSORS = "safetensors"
    GGUF = "gguf"
    PYTORCH = "pytorch"  # pickle-based .bin / .pt / .pth
    ONNX = "onnx"
    UNKNOWN = "unknown"


class Runtime(str, Enum):
    """Where a model is going to run; ``FormatConverter.auto_convert`` picks the format for it."""

    TRANSFORMERS = "transformers"
    LLAMA_CPP = "llama.cpp"
    OLLAMA = "ollama"
    ONNXRUNTIME = "onnxruntime"

    @classmethod
    def parse(cls, value: str | Runtime) -> Runtime:
        if isinstance(value, Runtime):
            return value
        v = str(value).strip().lower().replace("_", ".").replace("-", ".")
        aliases = {"llamacpp": "llama.cpp", "llama.cpp": "llama.cpp", "hf": "transformers", "onnx": "onnxruntime"}
        v = aliases.get(v.replace(".", ""), aliases.get(v, v))
        for r in cls:
            if r.value == v:
                return r
        raise ConversionError(
            f"Unknown runtime {value!r}.",
            hint="Valid runtimes: " + ", ".join(r.value for r in cls) + ".",
        )

    @property
    def preferred_format(self) -> ModelFormat:
        return {
            Runtime.TRANSFORMERS: ModelFormat.SAFETENSORS,
            Runtime.LLAMA_CPP: ModelFormat.GGUF,
            Runtime.OLLAMA: ModelFormat.GGUF,
            Runtime.ONNXRUNTIME: ModelFormat.ONNX,
        }[self]


class GGUFQuantization(str, Enum):
    """GGUF output types: plain float types and llama-quantize style mixtures."""

    F32 = "F32"
    F16 = "F16"
    BF16 = "BF16"
    Q8_0 = "Q8_0"
    Q4_0 = "Q4_0"
    Q4_1 = "Q4_1"
    Q5_0 = "Q5_0"
    Q5_1 = "Q5_1"
    Q2_K = "Q2_K"
    Q3_K_S = "Q3_K_S"
    Q3_K_M = "Q3_K_M"
    Q3_K_L = "Q3_K_L"
    Q4_K_S = "Q4_K_S"
    Q4_K_M = "Q4_K_M"
    Q5_K_S = "Q5_K_S"
    Q5_K_M = "Q5_K_M"
    Q6_K = "Q6_K"
    IQ4_NL = "IQ4_NL"
    IQ4_XS = "IQ4_XS"

    @classmethod
    def parse(cls, value: str | GGUFQuantization | None) -> GGUFQuantization:
        """Case-insensitive name (``q4_k_m``, ``Q4_K_M``, ``q4-k-m``); None means the default, Q4_K_M."""
        if value is None:
            return cls.Q4_K_M
        if isinstance(value, GGUFQuantization):
            return value
        key = str(value).strip().upper().replace("-", "_")
        for q in cls:
            if q.value == key:
                return q
        raise ConversionError(
            f"Unknown GGUF quantization {value!r}.",
            hint="Valid quantizations: " + ", ".join(q.value for q in cls) + " (default Q4_K_M).",
        )

    @property
    def file_type(self) -> int:
        """``general.file_type`` (llama.cpp's ``llama_ftype``)."""
        return {"F32": 0, "F16": 1, "BF16": 32, "Q8_0": 7, "Q4_0": 2, "Q4_1": 3, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10,
                "Q3_K_S": 11, "Q3_K_M": 12, "Q3_K_L": 13, "Q4_K_S": 14, "Q4_K_M": 15, "Q5_K_S": 16, "Q5_K_M": 17,
                "Q6_K": 18, "IQ4_NL": 25, "IQ4_XS": 30}[self.value]

    @property
    def base_type(self) -> str:
        """The ggml type most weight matrices get."""
        v = self.value
        return v[:4] if v[:2] in ("Q3", "Q4", "Q5") and v[3] == "K" else v  # Q3_K_S -> Q3_K, Q4_K_M -> Q4_K


SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = tuple(ext for ext, fam in weights_format.FAMILY.items() if fam == "pytorch")  # .bin .pt .pth .ckpt
GGUF_MAGIC = b"GGUF"


def _looks_like_safetensors(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return st_format.looks_like(head)


def detect_format(path: Path) -> ModelFormat:
    """Which model format ``path`` (a file or a model directory) is in; UNKNOWN if none applies.

    Files are recognised by magic bytes first (GGUF, safetensors header, zip/pickle), then by
    suffix; a directory by the weight files it contains (safetensors preferred over pickle).
    """
    path = Path(path)
    if path.is_dir():
        names = [p for p in path.iterdir() if p.is_file()]
        if any(p.suffix == ".safetensors" for p in names):
            return ModelFormat.SAFETENSORS
        if any(p.suffix == ".gguf" for p in names):
            return ModelFormat.GGUF
        if any(p.suffix == ".onnx" for p in names) or (path / "onnx").is_dir():
            return ModelFormat.ONNX
        if any(p.suffix in PICKLE_SUFFIXES for p in names):
            return ModelFormat.PYTORCH
        return ModelFormat.UNKNOWN
    if not path.exists():
        raise ConversionError(f"{path} does not exist.", hint="Check the path of the model file or directory.")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise ConversionError(f"Cannot read {path}: {e.strerror}.") from None
    if head[:4] == GGUF_MAGIC:
        return ModelFormat.GGUF
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return ModelFormat.ONNX
    if suffix == ".safetensors" or _looks_like_safetensors(path):
        return ModelFormat.SAFETENSORS
    if suffix in PICKLE_SUFFIXES or head[:2] == b"PK" or head[:1] == b"\x80":
        return ModelFormat.PYTORCH
    if suffix == ".gguf":
        return ModelFormat.GGUF
    return ModelFormat.UNKNOWN


def read_json(path: Path, what: str) -> dict[str, Any]:
    """Load a JSON object or raise a ConversionError naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConversionError(f"{what} {path} is missing.", hint="A model directory needs config.json next to its weights.")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConversionError(f"{what} {path} is not valid JSON: {e}.", hint="Fix or re-download the file.") from None
    if not isinstance(data, dict):
        raise ConversionError(f"{what} {path} must contain a JSON object.")
    return data
