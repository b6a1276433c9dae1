"""Format validation before upload (pure Python; reads headers only, never tensor data).

* :func:`validate_safetensors` — the safetensors header (reference PAR-1): rejects the 19 malformed
  cases the Rust library rejects **and** the 3 it accepts (duplicate keys, leading whitespace before
  ``{``, unknown fields in a tensor entry).  Errors are :class:`SafetensorsFormatError` with a
  ``reason`` mirroring the Rust error variants.
* :func:`validate_gguf` / :func:`read_gguf_strings` — GGUF structure (reference PAR-2, 16 cases):
  magic, version, sane counts, string/array bounds, key types, tensor dims/types, alignment, offsets.
* pickle-bearing files — by name and by content, with the pull side's one sniffer
  (:func:`batuta_sync.safety.pickle_bearing_reason`; renamed files are caught).
* :func:`validate_folder` — the push-time checks: every weight file, ``config.json`` for models,
  the declared ``--format``, pickles refused unless ``allow_unsafe``, and upload path rules.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from batuta_sync.errors import UnsafeFileError, ValidationError
from batuta_sync.fileformats import FormatError
from batuta_sync.fileformats import gguf as _gguf
from batuta_sync.fileformats import safetensors as _st
from batuta_sync.fileformats.gguf import GgufInfo
from batuta_sync.fileformats.gguf import GgufTensor as GgufTensor  # re-export (old import path)
from batuta_sync.fileformats.safetensors import SafetensorsHeader
from batuta_sync.fileformats.safetensors import TensorInfo as TensorInfo  # re-export (old import path)
from batuta_sync.safety import FileSafety, classify_file_safety, path_problem, pickle_bearing_reason

MAX_SAFETENSORS_HEADER = _st.MAX_HEADER
MAX_SAFETENSORS_RANK = _st.MAX_RANK
SAFETENSORS_DTYPE_BITS = _st.DTYPE_BITS


class SafetensorsFormatError(ValidationError):
    """A malformed safetensors file.  ``reason`` mirrors the Rust ``SafeTensorError`` variants."""

    def __init__(self, path: str, reason: str, detail: str) -> None:
        self.reason = reason
        self.path = path
        super().__init__(
            f"{path} is not a valid safetensors file ({reason}): {detail}.",
            hint="Re-export the weights with safetensors.torch.save_file / save_model; the file was not uploaded.",
        )


class GgufFormatError(ValidationError):
    """A malformed GGUF file.  ``reason`` names the failed check."""

    def __init__(self, path: str, reason: str, detail: str) -> None:
        self.reason = reason
        self.path = path
        super().__init__(
            f"{path} is not a valid GGUF file ({reason}): {detail}.",
            hint="Re-create the file with a current llama.cpp / gguf writer; the file was not uploaded.",
        )


# --------------------------------------------------------------------------------------------------
# safetensors
# --------------------------------------------------------------------------------------------------


def parse_safetensors_header(head: bytes, file_size: int, path: str = "<bytes>", *, lenient: bool = False) -> SafetensorsHeader:
    """Validate a safetensors header (:func:`batuta_sync.fileformats.safetensors.parse_header`).
    ``head`` holds at least the first ``8 + N`` bytes."""
    try:
        return _st.parse_header(head, file_size, strict=not lenient)
    except FormatError as exc:
        raise SafetensorsFormatError(path, exc.reason, exc.detail) from None


def validate_safetensors(file: Path, rel: str | None = None, *, lenient: bool = False) -> SafetensorsHeader:
    """Validate a ``.safetensors`` file on disk (reads at most 8 + header bytes)."""
    size = file.stat().st_size
    with open(file, "rb") as fh:
        head = _st.read_head(fh, size)
    return parse_safetensors_header(head, size, rel or file.name, lenient=lenient)


# --------------------------------------------------------------------------------------------------
# GGUF
# --------------------------------------------------------------------------------------------------

GGUF_MAGIC = _gguf.MAGIC
MAX_GGUF_STRING = _gguf.MAX_STRING
MAX_GGUF_ALIGNMENT = _gguf.MAX_ALIGNMENT
GGML_MAX_DIMS = _gguf.GGML_MAX_DIMS


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _ggml_sizes() -> dict[int, tuple[int, int]]:
    """ggml type id -> (block size, bytes per block), from the gguf package (lazy import)."""
    from gguf.constants import GGML_QUANT_SIZES

    return {int(k): (int(v[0]), int(v[1])) for k, v in GGML_QUANT_SIZES.items()}


def _parse_gguf(fh: BinaryIO, size: int, path: str, *, tensors: bool = True) -> GgufInfo:
    """:func:`batuta_sync.fileformats.gguf.parse` with this module's error type."""
    try:
        return _gguf.parse(fh, size, type_sizes=_ggml_sizes() if tensors else None)
    except FormatError as exc:
        raise GgufFormatError(path, exc.reason, exc.detail) from None


def validate_gguf(file: Path, rel: str | None = None) -> GgufInfo:
    size = file.stat().st_size
    with open(file, "rb") as fh:
        return _parse_gguf(io.BufferedReader(fh, 1 << 16) if not isinstance(fh, io.BufferedReader) else fh,
                           size, rel or file.name)


def parse_gguf_bytes(data: bytes, path: str = "<bytes>") -> GgufInfo:
    return _parse_gguf(io.BytesIO(data), len(data), path)


def read_gguf_strings(fh: BinaryIO, size: int, path: str = "<gguf>") -> list[tuple[str, str]]:
    """(key, text) for every string (or string array, newline-joined) KV of a GGUF header."""
    return _gguf.string_values(_parse_gguf(fh, size, path, tensors=False))


# --------------------------------------------------------------------------------------------------
# Folder validation
# --------------------------------------------------------------------------------------------------

FORMATS = ("safetensors", "gguf")
_EMBED_SUFFIXES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "tok_embeddings.weight",
                   "token_embd.weight")


@dataclass(frozen=True)
class FolderReport:
    format: str | None  # detected/declared weight format
    safetensors: Mapping[str, SafetensorsHeader]
    gguf: Mapping[str, GgufInfo]
    unsafe: tuple[str, ...]  # pickle-bearing files (allowed only with allow_unsafe)
    config: Mapping[str, Any] | None


def _load_json(file: Path, rel: str, problems: list[str]) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        problems.append(f"{rel}: not valid JSON ({str(exc)[:100]})")
        return None


_OTHER_WEIGHTS = (".onnx", ".h5", ".msgpack", ".tflite", ".npz", ".mlmodel", ".pte")


def validate_folder(
    root: Path,
    files: Iterable[str],
    *,
    repo_type: str = "model",
    fmt: str | None = None,
    allow_unsafe: bool = False,
    force: bool = False,
) -> FolderReport:
    """Validate the files about to be pushed.  Collects every problem, then raises once.

    Raises :class:`UnsafeFileError` for pickle-bearing files without ``allow_unsafe`` and
    :class:`ValidationError` (one finding per line) for everything else.  A model folder with
    neither weights nor a config.json is refused unless ``force`` (it is almost always the wrong
    folder: a push would replace a model's card and files with, say, a notes directory).
    """
    files = sorted(files)
    if fmt is not None and fmt not in FORMATS:
        from batuta_sync.errors import UsageError

        raise UsageError(f"Unknown --format {fmt!r}.", hint="Use --format safetensors or --format gguf.")
    problems: list[str] = []
    st: dict[str, SafetensorsHeader] = {}
    gg: dict[str, GgufInfo] = {}
    unsafe: list[str] = []
    for rel in files:
        why = path_problem(rel)
        if why:
            problems.append(f"{rel!r}: unsafe path in repo ({why})")
            continue
        file = root / rel
        low = rel.lower()
        try:
            if low.endswith(".safetensors"):
                st[rel] = validate_safetensors(file, rel)
            elif low.endswith(".gguf"):
                gg[rel] = validate_gguf(file, rel)
            elif classify_file_safety(rel) is FileSafety.UNSAFE or pickle_bearing_reason(file):
                unsafe.append(rel)
        except (SafetensorsFormatError, GgufFormatError) as exc:
            problems.append(exc.message)
    # A renamed pickle (e.g. weights.safetensors that is really a pickle) already failed above.
    if fmt == "safetensors" and not st:
        problems.append("--format safetensors was given but the folder has no .safetensors file")
    if fmt == "gguf" and not gg:
        problems.append("--format gguf was given but the folder has no .gguf file")
    detected = fmt or ("safetensors" if st else "gguf" if gg else None)

    config: Mapping[str, Any] | None = None
    if repo_type == "model":
        cfg_path = root / "config.json"
        needs_config = bool(st) or detected == "safetensors" or any(
            u.lower().endswith((".bin", ".pt", ".pth")) for u in unsafe
        )
        if "config.json" in files:
            raw = _load_json(cfg_path, "config.json", problems)
            if raw is not None and not isinstance(raw, dict):
                problems.append("config.json: must be a JSON object")
            elif isinstance(raw, dict):
                config = raw
        elif needs_config:
            problems.append("config.json is missing (a model with safetensors/PyTorch weights needs it)")
        if config is not None:
            problems.extend(_config_consistency(config, st))
        problems.extend(_index_consistency(root, files, st))
        weights = st or gg or unsafe or any(f.lower().endswith(_OTHER_WEIGHTS) for f in files)
        if not weights and "config.json" not in files and not force:
            problems.append(
                "nothing here is a model: no weights (.safetensors, .gguf, .bin, .onnx, …) and no config.json "
                "(pass --force to push it as a model anyway, or push it as a dataset or space)"
            )

    if problems:
        raise ValidationError(
            "Validation failed before upload; nothing was sent:\n" + "\n".join(f"  - {p}" for p in problems),
            hint="Fix the listed files (or the --format flag) and push again.",
        )
    if unsafe and not allow_unsafe:
        raise UnsafeFileError(
            "Refusing to push pickle-based file(s) that can run code when loaded: "
            + ", ".join(unsafe[:10])
            + (" …" if len(unsafe) > 10 else "")
            + ".",
            hint="Convert them to safetensors (`batuta convert`), remove them, or pass --allow-unsafe if you trust them.",
        )
    return FolderReport(detected, st, gg, tuple(unsafe), config)


def _config_consistency(config: Mapping[str, Any], st: Mapping[str, SafetensorsHeader]) -> list[str]:
    problems: list[str] = []
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads"):
        v = config.get(key)
        if v is not None and (not _is_int(v) or v <= 0):
            problems.append(f"config.json: {key} must be a positive integer, got {v!r}")
    vocab, hidden = config.get("vocab_size"), config.get("hidden_size") or config.get("n_embd") or config.get("d_model")
    for rel, header in st.items():
        for t in header.tensors:
            if t.name.endswith(_EMBED_SUFFIXES) and len(t.shape) == 2:
                if _is_int(vocab) and t.shape[0] != vocab:
                    problems.append(
                        f"config.json: vocab_size is {vocab} but {rel}:{t.name} has {t.shape[0]} rows"
                    )
                if _is_int(hidden) and t.shape[1] != hidden:
                    problems.append(
                        f"config.json: hidden size is {hidden} but {rel}:{t.name} has {t.shape[1]} columns"
                    )
    return problems


def _index_consistency(root: Path, files: Sequence[str], st: Mapping[str, SafetensorsHeader]) -> list[str]:
    problems: list[str] = []
    for idx in (f for f in files if f.endswith(".safetensors.index.json")):
        doc = _load_json(root / idx, idx, problems)
        if doc is None:
            continue
        wm = doc.get("weight_map") if isinstance(doc, dict) else None
        if not isinstance(wm, dict):
            problems.append(f"{idx}: has no weight_map object")
            continue
        base = idx.rsplit("/", 1)[0] + "/" if "/" in idx else ""
        listed: dict[str, set[str]] = {}
        for tensor, shard in wm.items():
            listed.setdefault(base + str(shard), set()).add(tensor)
        prefix = idx[: -len(".safetensors.index.json")]
        shard_re = re.compile(re.escape(prefix) + r"-\d+-of-\d+\.safetensors")
        for f in files:
            if shard_re.fullmatch(f) and f not in listed:
                problems.append(f"{idx}: shard {f} is not referenced in the weight_map")
        for shard, names in sorted(listed.items()):
            header = st.get(shard)
            if header is None:
                problems.append(f"{idx}: shard {shard} is listed but not in the folder")
                continue
            have = {t.name for t in header.tensors}
            if names - have:
                problems.append(f"{idx}: {len(names - have)} tensor(s) mapped to {shard} are not in it")
            if have - names:
                problems.append(f"{idx}: {shard} has {len(have - names)} tensor(s) missing from the weight_map")
    return problems
