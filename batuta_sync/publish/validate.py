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
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from batuta_sync.errors import UnsafeFileError, ValidationError
from batuta_sync.safety import FileSafety, classify_file_safety, path_problem, pickle_bearing_reason

MAX_SAFETENSORS_HEADER = 100_000_000
MAX_SAFETENSORS_RANK = 8  # chosen & documented (docs/security.md): real models use ≤ 5

# bits per element; sub-byte types must end on a byte boundary (MisalignedSlice otherwise)
SAFETENSORS_DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16,
    "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64, "U64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "C64": 64,
}
_TENSOR_FIELDS = {"dtype", "shape", "data_offsets"}


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


def parse_safetensors_header(head: bytes, file_size: int, path: str = "<bytes>", *, lenient: bool = False) -> SafetensorsHeader:
    """Validate a safetensors header.  ``head`` holds at least the first ``8 + N`` bytes."""

    def bad(reason: str, detail: str) -> SafetensorsFormatError:
        return SafetensorsFormatError(path, reason, detail)

    if file_size < 8 or len(head) < 8:
        raise bad("header-too-small", f"the file has {file_size} bytes, fewer than the 8-byte length prefix")
    (n,) = struct.unpack("<Q", head[:8])
    if n > MAX_SAFETENSORS_HEADER:
        raise bad("header-too-large", f"the header claims {n} bytes (limit {MAX_SAFETENSORS_HEADER})")
    if n + 8 > file_size or len(head) < 8 + n:
        raise bad("invalid-header-length", f"the header claims {n} bytes but the file has {file_size}")
    raw = head[8 : 8 + n]
    if n == 0 or raw[:1] != b"{":
        raise bad("invalid-header-start", "the header must begin with '{'")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad("invalid-header-utf8", f"the header is not UTF-8 (byte {exc.start})")
    try:
        doc = json.loads(text, object_pairs_hook=_no_dupes)
    except _DuplicateKey as exc:
        raise bad("duplicate-key", f"key {str(exc)[:80]!r} appears twice in the header")
    except (ValueError, RecursionError) as exc:
        raise bad("invalid-header-deserialization", f"the header is not valid JSON ({str(exc)[:80]})")
    if not isinstance(doc, dict):
        raise bad("invalid-header-deserialization", "the header is not a JSON object")
    if text.rstrip(" ") != text.rstrip():
        raise bad("invalid-header-deserialization", "the header padding must be spaces (0x20)")

    metadata: dict[str, str] = {}
    tensors: list[TensorInfo] = []
    for name, entry in doc.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise bad("invalid-metadata", "__metadata__ must map strings to strings")
            metadata = dict(entry)
            continue
        if not name or "\x00" in name:
            raise bad("invalid-tensor-name", "tensor names must be non-empty and contain no NUL")
        if not isinstance(entry, dict):
            raise bad("invalid-header-deserialization", f"tensor {name!r} is not an object")
        missing = _TENSOR_FIELDS - entry.keys()
        if missing:
            raise bad("invalid-header-deserialization", f"tensor {name!r} lacks {sorted(missing)}")
        extra = entry.keys() - _TENSOR_FIELDS
        if extra and not lenient:
            raise bad("unknown-field", f"tensor {name!r} has unknown field(s) {sorted(extra)}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in SAFETENSORS_DTYPE_BITS:
            raise bad("invalid-dtype", f"tensor {name!r} has unknown dtype {str(dtype)[:20]!r}")
        if not isinstance(shape, list) or not all(_is_int(d) for d in shape):
            raise bad("invalid-shape", f"tensor {name!r} has a non-integer shape")
        if any(d < 0 for d in shape):
            raise bad("invalid-shape", f"tensor {name!r} has a negative dimension")
        if len(shape) > MAX_SAFETENSORS_RANK:
            raise bad("invalid-shape", f"tensor {name!r} has {len(shape)} dimensions (limit {MAX_SAFETENSORS_RANK})")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) and o >= 0 for o in offsets)):
            raise bad("invalid-header-deserialization", f"tensor {name!r} needs data_offsets [begin, end]")
        nel = 1
        for d in shape:
            nel *= d
            if nel >= 1 << 64:
                raise bad("validation-overflow", f"tensor {name!r}: element count overflows")
        bits = nel * SAFETENSORS_DTYPE_BITS[dtype]
        if bits >= 1 << 64:
            raise bad("validation-overflow", f"tensor {name!r}: byte size overflows")
        if bits % 8:
            raise bad("misaligned-slice", f"tensor {name!r}: {dtype} data does not end on a byte boundary")
        s, e = offsets
        if e < s:
            raise bad("invalid-offset", f"tensor {name!r}: data_offsets are reversed")
        if e - s != bits // 8:
            raise bad(
                "tensor-invalid-info",
                f"tensor {name!r}: {dtype}{shape} needs {bits // 8} bytes but data_offsets span {e - s}",
            )
        tensors.append(TensorInfo(name, dtype, tuple(shape), s, e))

    data_size = file_size - 8 - n
    expected = 0
    for t in sorted(tensors, key=lambda t: (t.start, t.end)):
        if t.start != expected:
            kind = "overlaps the previous tensor" if t.start < expected else "leaves a hole before it"
            raise bad("invalid-offset", f"tensor {t.name!r} at {t.start} {kind} (expected {expected})")
        expected = t.end
    if expected > data_size:
        raise bad("invalid-offset", f"tensor data ends at {expected} but the data section has {data_size} bytes")
    if expected != data_size:
        raise bad(
            "metadata-incomplete-buffer",
            f"{data_size - expected} trailing bytes after the last tensor (polyglot or truncated file)",
        )
    return SafetensorsHeader(8 + n, data_size, tuple(tensors), metadata)


def validate_safetensors(file: Path, rel: str | None = None, *, lenient: bool = False) -> SafetensorsHeader:
    """Validate a ``.safetensors`` file on disk (reads at most 8 + header bytes)."""
    size = file.stat().st_size
    with open(file, "rb") as fh:
        head = fh.read(8)
        if len(head) == 8:
            (n,) = struct.unpack("<Q", head)
            if n <= min(MAX_SAFETENSORS_HEADER, max(size - 8, 0)):
                head += fh.read(n)
    return parse_safetensors_header(head, size, rel or file.name, lenient=lenient)


# --------------------------------------------------------------------------------------------------
# GGUF
# --------------------------------------------------------------------------------------------------

GGUF_MAGIC = b"GGUF"
MAX_GGUF_STRING = 64 * 1024 * 1024
MAX_GGUF_ALIGNMENT = 1024 * 1024
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
class GgufInfo:
    version: int
    metadata: Mapping[str, Any]  # scalars and strings; arrays as lists (strings) or their length
    tensors: tuple[GgufTensor, ...]
    alignment: int
    data_start: int


def _ggml_sizes() -> dict[int, tuple[int, int]]:
    """ggml type id -> (block size, bytes per block), from the gguf package (lazy import)."""
    from gguf.constants import GGML_QUANT_SIZES

    return {int(k): (int(v[0]), int(v[1])) for k, v in GGML_QUANT_SIZES.items()}


class _Reader:
    def __init__(self, fh: BinaryIO, size: int, path: str) -> None:
        self.fh = fh
        self.size = size
        self.pos = 0
        self.path = path

    def bad(self, reason: str, detail: str) -> GgufFormatError:
        return GgufFormatError(self.path, reason, detail)

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

    def string(self, what: str) -> str:
        n = self.u64(what)
        if n > self.remaining or n > MAX_GGUF_STRING:
            raise self.bad("string-length", f"{what}: length {n} exceeds the file or the {MAX_GGUF_STRING}-byte cap")
        return self.read(n, what).decode("utf-8", errors="replace")


def _read_value(r: _Reader, vtype: int, key: str, *, in_array: bool = False) -> Any:
    if vtype in _SCALAR:
        fmt = _SCALAR[vtype]
        return struct.unpack(fmt, r.read(struct.calcsize(fmt), key))[0]
    if vtype == _T_STRING:
        return r.string(key)
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
            return [r.string(key) for _ in range(count)]
        fmt = _SCALAR[etype]
        width = struct.calcsize(fmt)
        if count > 4096:  # large numeric arrays (scores, token types): skip, keep the length
            r.read(count * width, key)
            return count
        data = r.read(count * width, key)
        return list(struct.unpack("<" + fmt[1] * count, data))
    raise r.bad("value-type", f"{key}: unknown value type {vtype}")


def _parse_gguf(fh: BinaryIO, size: int, path: str, *, tensors: bool = True) -> GgufInfo:
    r = _Reader(fh, size, path)
    if r.remaining < 4 or r.read(4, "magic") != GGUF_MAGIC:
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
    meta: dict[str, Any] = {}
    alignment = 32
    for _ in range(n_kv):
        key = r.string("key")
        if not key:
            raise r.bad("empty-key", f"empty key at offset {r.pos}")
        if key in meta:
            raise r.bad("duplicate-key", f"key {key[:80]!r} appears twice")
        vtype = r.u32(key)
        if vtype in (_T_ARRAY, _T_STRING) or vtype in _SCALAR:
            meta[key] = _read_value(r, vtype, key)
        else:
            raise r.bad("value-type", f"{key[:80]}: unknown value type {vtype}")
        if key == "general.alignment":
            a = meta[key]
            if vtype != _T_UINT32 or not _is_int(a) or a <= 0 or a & (a - 1) or a > MAX_GGUF_ALIGNMENT:
                raise r.bad("alignment", f"general.alignment must be a UINT32 power of two ≤ 1 MiB, got {a!r}")
            alignment = a
    infos: list[GgufTensor] = []
    if not tensors:
        return GgufInfo(version, meta, (), alignment, 0)
    sizes = _ggml_sizes()
    names: set[str] = set()
    for _ in range(n_tensors):
        name = r.string("tensor name")
        if name in names:
            raise r.bad("duplicate-tensor", f"tensor {name[:80]!r} appears twice")
        names.add(name)
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
        infos.append(GgufTensor(name, dims, gtype, offset, nbytes))
    data_start = (r.pos + alignment - 1) // alignment * alignment
    data_size = size - data_start
    prev_end = 0
    for t in sorted(infos, key=lambda t: t.offset):
        if t.offset % alignment:
            raise r.bad("offset", f"tensor {t.name[:80]!r} offset {t.offset} is not a multiple of {alignment}")
        if t.offset + t.nbytes > data_size:
            raise r.bad("offset", f"tensor {t.name[:80]!r} data lies outside the file")
        if t.offset < prev_end:
            raise r.bad("overlap", f"tensor {t.name[:80]!r} overlaps the previous tensor's data")
        prev_end = t.offset + t.nbytes
    return GgufInfo(version, meta, tuple(infos), alignment, data_start)


def validate_gguf(file: Path, rel: str | None = None) -> GgufInfo:
    size = file.stat().st_size
    with open(file, "rb") as fh:
        return _parse_gguf(io.BufferedReader(fh, 1 << 16) if not isinstance(fh, io.BufferedReader) else fh,
                           size, rel or file.name)


def parse_gguf_bytes(data: bytes, path: str = "<bytes>") -> GgufInfo:
    return _parse_gguf(io.BytesIO(data), len(data), path)


def read_gguf_strings(fh: BinaryIO, size: int, path: str = "<gguf>") -> list[tuple[str, str]]:
    """(key, text) for every string (or string array, newline-joined) KV of a GGUF header."""
    info = _parse_gguf(fh, size, path, tensors=False)
    out: list[tuple[str, str]] = []
    for k, v in info.metadata.items():
        if isinstance(v, str):
            out.append((k, v))
        elif isinstance(v, list) and v and isinstance(v[0], str):
            out.append((k, "\n".join(v)))
    return out


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
