"""Safety policy for downloaded files (spec "SafeTensors Enforcement", security.md §2-3).

Three questions, all pure (no network; content checks read at most a header):

* :func:`classify_file_safety` - by name: is this a pickle-bearing format (``.bin``,
  ``.pt``, ``.pkl`` …), a safe one (``.safetensors``, ``.gguf``, ``.json`` …) or unknown?
* :func:`sniff_file_safety` - by content: a pickle stream, a torch zip (``data.pkl``), a
  legacy torch tar, an object ``.npy`` is unsafe whatever its name; a ``.safetensors``
  must have a valid header (8-byte LE length, JSON object, contiguous offsets, no
  trailing bytes) and a ``.gguf`` its magic.  Nothing is ever unpickled.
* :func:`validate_repo_path` - a remote file name is safe to create under a directory
  (no ``..``, absolute paths, drive letters, backslashes, control characters, ``.git/``).

The policy (:class:`SafetyPolicy`) decides what a "unsafe" verdict means: blocked with
:class:`~batuta_sync.errors.UnsafeFileError` (exit 12) by default, downloaded (never
loaded) with ``--allow-unsafe``.
"""

from __future__ import annotations

import enum
import io
import json
import os
import pickletools
import re
import struct
import unicodedata
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from batuta_sync.errors import BatutaError, IntegrityError, UnsafeFileError

if TYPE_CHECKING:
    import tarfile

__all__ = [
    "FileSafety",
    "SafetyPolicy",
    "SafetyVerdict",
    "UnsafePathError",
    "check_safetensors_header",
    "classify_file_safety",
    "is_safe_repo_path",
    "path_problem",
    "pickle_bearing_reason",
    "sniff_file_safety",
    "unsafe_files_error",
    "validate_repo_path",
]


class SafetyPolicy(str, enum.Enum):
    """Spec ``SafetyPolicy``: ``SafeOnly`` (default) blocks pickle; ``AllowUnsafe`` is explicit consent."""

    SafeOnly = "safe-only"
    AllowUnsafe = "allow-unsafe"

    @classmethod
    def from_flag(cls, allow_unsafe: bool) -> SafetyPolicy:
        return cls.AllowUnsafe if allow_unsafe else cls.SafeOnly


class FileSafety(str, enum.Enum):
    """Verdict on one file: ``SAFE`` (known data-only format), ``UNSAFE`` (can run code when
    loaded), ``UNKNOWN`` (not a known weight format; checked by content after download)."""

    SAFE = "safe"
    UNSAFE = "unsafe"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class SafetyVerdict:
    safety: FileSafety
    reason: str = ""

    @property
    def unsafe(self) -> bool:
        return self.safety is FileSafety.UNSAFE


# --------------------------------------------------------------------------- by name

#: Pickle-bearing (or code-bearing) formats and why.
UNSAFE_EXTENSIONS: dict[str, str] = {
    ".bin": "PyTorch pickle checkpoint (.bin)",
    ".pt": "PyTorch pickle checkpoint (.pt)",
    ".pth": "PyTorch pickle checkpoint (.pth)",
    ".ckpt": "pickle checkpoint (.ckpt)",
    ".pkl": "Python pickle (.pkl)",
    ".pickle": "Python pickle (.pickle)",
    ".joblib": "joblib pickle (.joblib)",
    ".dill": "dill pickle (.dill)",
    ".dat": "pickle data file (.dat)",
    ".data": "pickle data file (.data)",
    ".npz": "NumPy archive that may hold pickled objects (.npz)",
    ".mar": "TorchServe archive with pickled model (.mar)",
    ".keras": "Keras archive that may hold Lambda layers (code)",
    ".h5": "Keras/HDF5 model that may hold Lambda layers (code)",
    ".hdf5": "Keras/HDF5 model that may hold Lambda layers (code)",
    ".pb": "TensorFlow graph that may hold file-system ops",
}

#: Data-only formats.
SAFE_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".safetensors",
        ".gguf",
        ".json",
        ".jsonl",
        ".yaml",
        ".yml",
        ".txt",
        ".md",
        ".model",  # sentencepiece protobuf
        ".spm",
        ".tiktoken",
        ".parquet",
        ".arrow",
        ".csv",
        ".tsv",
        ".onnx",
        ".msgpack",
        ".tflite",
        ".png",
        ".jpg",
        ".jpeg",
        ".gif",
        ".webp",
        ".wav",
        ".mp3",
        ".flac",
        ".ogg",
        ".gitattributes",
        ".gitignore",
        ".toml",
        ".cfg",
        ".ini",
        ".vocab",
        ".merges",
        ".bpe",
        ".tokenizer",
    }
)

# training_args.bin etc. are pickles too: the extension rule covers them.


def _suffix(filename: str) -> str:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].lower()
    if name in {".gitattributes", ".gitignore"}:
        return name
    dot = name.rfind(".")
    return name[dot:] if dot > 0 else ""


def classify_file_safety(filename: str) -> FileSafety:
    """Spec ``classify_file_safety``: SAFE / UNSAFE / UNKNOWN from the file name alone."""
    ext = _suffix(filename)
    if ext in UNSAFE_EXTENSIONS:
        return FileSafety.UNSAFE
    if ext in SAFE_EXTENSIONS:
        return FileSafety.SAFE
    if ext == ".npy":
        return FileSafety.UNKNOWN  # safe unless its dtype is object (checked by content)
    return FileSafety.UNKNOWN


def unsafe_reason(filename: str) -> str | None:
    """Why a file name is unsafe, or None."""
    return UNSAFE_EXTENSIONS.get(_suffix(filename))


# --------------------------------------------------------------------------- by content

SNIFF_BYTES = 1 << 16
_SAFETENSORS_MAX_HEADER = 100_000_000
_ST_DTYPES: dict[str, int] = {  # bits per element
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "F64": 64,
    "I64": 64,
    "U64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}
_PICKLE_CODE_OPS = frozenset(
    {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "BUILD"}
)


class _Source:
    """Random access to a path or a bytes object (reads only what it is asked for)."""

    def __init__(self, data: bytes | bytearray | memoryview | str | os.PathLike[str]) -> None:
        if isinstance(data, bytes | bytearray | memoryview):
            self._bytes: bytes | None = bytes(data)
            self._path: Path | None = None
            self.size = len(self._bytes)
        else:
            self._bytes = None
            self._path = Path(data)
            self.size = self._path.stat().st_size

    def read(self, offset: int, n: int) -> bytes:
        if self._bytes is not None:
            return self._bytes[offset : offset + n]
        assert self._path is not None
        with open(self._path, "rb") as f:
            f.seek(offset)
            return f.read(n)

    def open_tar(self) -> tarfile.TarFile:
        import tarfile

        if self._bytes is not None:
            return tarfile.open(fileobj=io.BytesIO(self._bytes), mode="r:")
        assert self._path is not None
        return tarfile.open(self._path, mode="r:")

    def open_zip(self) -> zipfile.ZipFile:
        if self._bytes is not None:
            return zipfile.ZipFile(io.BytesIO(self._bytes))
        assert self._path is not None
        return zipfile.ZipFile(self._path)


def looks_like_pickle(head: bytes) -> str | None:
    """Reason string if ``head`` (the first bytes of a file) is a pickle stream."""
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return f"pickle stream (protocol {head[1]})"
    if not head or head[:1] in (b"{", b"[", b'"', b"#", b"<") or head[:1].isspace():
        # JSON / text / markup: never start a protocol 0/1 pickle that matters (GLOBAL is 'c').
        return None
    # Protocol 0/1: parse opcodes to STOP; only a stream that imports or calls counts.
    try:
        ops = set()
        for op, _arg, _pos in pickletools.genops(io.BytesIO(head)):
            ops.add(op.name)
            if op.name == "STOP":
                break
        else:
            return None
    except Exception:
        return None
    if "STOP" in ops and ops & _PICKLE_CODE_OPS:
        return "pickle stream (protocol 0/1)"
    return None


def _zip_reason(src: _Source) -> str | None:
    try:
        with src.open_zip() as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return "ZIP archive that cannot be listed (treated as unsafe)"
    pickles = [n for n in names if n.endswith((".pkl", ".pickle")) or n.rsplit("/", 1)[-1] == "data.pkl"]
    if pickles:
        if any(n.rsplit("/", 1)[-1] == "data.pkl" for n in pickles):
            return "PyTorch zip checkpoint (contains data.pkl)"
        return f"ZIP archive containing pickles ({pickles[0]})"
    npys = [n for n in names if n.endswith(".npy")]
    for n in npys[:16]:
        try:
            with src.open_zip() as zf, zf.open(n) as member:
                if _npy_object_reason(member.read(SNIFF_BYTES)):
                    return f"NumPy archive with an object array ({n})"
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
            return "ZIP archive with an unreadable member (treated as unsafe)"
    return None


def _npy_object_reason(head: bytes) -> str | None:
    if not head.startswith(b"\x93NUMPY"):
        return None
    text = head[8:4096].decode("latin-1", "replace")
    if re.search(r"'descr'\s*:\s*'\|?O", text) or ("'descr': [" in text and "'O'" in text):
        return "NumPy array of Python objects (pickled)"
    return None


#: Member names of the legacy (pre-zip) PyTorch tar checkpoint.
_TORCH_TAR_MEMBERS = frozenset({"pickle", "storages", "tensors", "sys_info"})
#: Tar members that loaders unpickle (``.pyd`` is WebDataset's pickle extension).
_PICKLE_MEMBER_SUFFIXES = (".pkl", ".pickle", ".pyd", ".pt", ".pth", ".bin", ".ckpt", ".joblib", ".dill")
_TAR_MAX_MEMBERS = 100_000


def _tar_reason(src: _Source, head: bytes) -> str | None:
    """Why a tar archive is pickle-bearing, or None.

    A tar is unsafe when it is a legacy PyTorch checkpoint (members ``pickle``, ``storages``,
    ``tensors``, ``sys_info``) or carries members that loaders unpickle (``*.pkl``, WebDataset's
    ``*.pyd``, torch checkpoints).  Plain data shards (WebDataset ``.jpg``/``.json``/``.cls``)
    are not.  Only member headers are read, never member data.
    """
    if len(head) < 262 or head[257:262] != b"ustar":
        return None
    import tarfile

    try:
        with src.open_tar() as tf:
            for i, member in enumerate(tf):
                name = member.name.removeprefix("./")
                if name in _TORCH_TAR_MEMBERS:
                    return "tar archive (legacy PyTorch checkpoint format)"
                if name.lower().endswith(_PICKLE_MEMBER_SUFFIXES):
                    return f"tar archive containing a pickle-bearing member ({name})"
                if i >= _TAR_MAX_MEMBERS:
                    return f"tar archive with more than {_TAR_MAX_MEMBERS} members (treated as unsafe)"
    except (tarfile.TarError, OSError, ValueError, EOFError):
        return "tar archive that cannot be listed (treated as unsafe)"
    return None


def check_safetensors_header(data: bytes | bytearray | memoryview | str | os.PathLike[str]) -> str | None:
    """Validate a safetensors file's header; return the problem or None when it is valid.

    Checks (security.md PAR-1): 8-byte little-endian header length ≤ 100 MB that fits the
    file; header starts with ``{`` and is a UTF-8 JSON object without duplicate keys;
    every tensor has a known dtype, a non-negative integer shape and ``data_offsets``
    contiguous from 0 whose size matches ``prod(shape) * dtype size``; ``__metadata__``
    maps str to str; the data ends exactly at the end of the file (no polyglots).
    Reads only ``8 + N`` bytes.
    """
    src = _Source(data)
    if src.size < 8:
        return "file shorter than the 8-byte safetensors header length"
    (n,) = struct.unpack("<Q", src.read(0, 8))
    if n > _SAFETENSORS_MAX_HEADER:
        return f"header length {n} exceeds the 100 MB limit"
    if 8 + n > src.size:
        return f"header length {n} is larger than the file"
    raw = src.read(8, n)
    if not raw.startswith(b"{"):
        return "header does not start with '{'"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "header is not UTF-8"

    def no_dupes(pairs: list[tuple[str, object]]) -> dict[str, object]:
        out: dict[str, object] = {}
        for k, v in pairs:
            if k in out:
                raise ValueError(f"duplicate key {k!r}")
            out[k] = v
        return out

    try:
        header = json.loads(text, object_pairs_hook=no_dupes)
    except ValueError as exc:
        return f"header is not valid JSON ({exc})"
    if not isinstance(header, dict):
        return "header is not a JSON object"
    meta = header.pop("__metadata__", None)
    if meta is not None and (
        not isinstance(meta, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
    ):
        return "__metadata__ must map strings to strings"
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if not name or "\x00" in name:
            return "empty or NUL tensor name"
        if not isinstance(info, dict):
            return f"tensor {name!r}: entry is not an object"
        extra = set(info) - {"dtype", "shape", "data_offsets"}
        if extra:
            return f"tensor {name!r}: unknown field(s) {sorted(extra)}"
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in _ST_DTYPES:
            return f"tensor {name!r}: unknown dtype {dtype!r}"
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            return f"tensor {name!r}: shape must be a list of non-negative integers"
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        ):
            return f"tensor {name!r}: data_offsets must be two integers"
        start, end = offsets
        if start < 0 or end < start:
            return f"tensor {name!r}: invalid data_offsets {offsets}"
        count = 1
        for d in shape:
            count *= d
            if count > 1 << 62:
                return f"tensor {name!r}: shape product overflows"
        bits = count * _ST_DTYPES[dtype]
        if bits % 8:
            return f"tensor {name!r}: size is not a whole number of bytes"
        if end - start != bits // 8:
            return f"tensor {name!r}: data_offsets span {end - start} bytes, shape×dtype needs {bits // 8}"
        spans.append((start, end, name))
    spans.sort()
    pos = 0
    for start, end, name in spans:
        if start != pos:
            return f"tensor {name!r}: data is not contiguous (starts at {start}, expected {pos})"
        pos = end
    if 8 + n + pos != src.size:
        return f"data ends at byte {8 + n + pos} but the file has {src.size} bytes (trailing or missing data)"
    return None


def _content_reason(src: _Source, head: bytes) -> str | None:
    """Pickle-bearing by content alone (UNS-1): a pickle stream, a zip with pickles, a legacy
    torch tar or a tar with pickle members, an object-dtype ``.npy``."""
    reason = looks_like_pickle(head)
    if reason:
        return reason
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        reason = _zip_reason(src)
        if reason:
            return reason
    return _tar_reason(src, head) or _npy_object_reason(head)


def pickle_bearing_reason(data: bytes | bytearray | memoryview | str | os.PathLike[str]) -> str | None:
    """Why the content is pickle-bearing whatever its name (the one content sniffer shared by
    pull and push), or None.  Reads a header, lists archives, never unpickles."""
    src = _Source(data)
    return _content_reason(src, src.read(0, SNIFF_BYTES))


def sniff_file_safety(
    data: bytes | bytearray | memoryview | str | os.PathLike[str], filename: str | None = None
) -> SafetyVerdict:
    """Classify by content (never unpickles).  ``filename`` (default: the path's name) selects
    the format checks for ``.safetensors`` / ``.gguf`` / ``.npy``."""
    src = _Source(data)
    if filename is None:
        filename = "" if isinstance(data, bytes | bytearray | memoryview) else Path(data).name
    head = src.read(0, SNIFF_BYTES)
    ext = _suffix(filename)
    reason = _content_reason(src, head)
    if reason:
        return SafetyVerdict(FileSafety.UNSAFE, f"content is a {reason}" + (f", named {ext}" if ext else ""))
    if ext == ".safetensors":
        problem = check_safetensors_header(data)
        if problem:
            return SafetyVerdict(FileSafety.UNSAFE, f"not a valid safetensors file: {problem}")
        return SafetyVerdict(FileSafety.SAFE)
    if ext == ".gguf":
        if not head.startswith(b"GGUF") or len(head) < 8:
            return SafetyVerdict(FileSafety.UNSAFE, "not a GGUF file (bad magic)")
        (version,) = struct.unpack("<I", head[4:8])
        if version not in (1, 2, 3):
            return SafetyVerdict(FileSafety.UNSAFE, f"not a supported GGUF file (version {version})")
        return SafetyVerdict(FileSafety.SAFE)
    by_name = classify_file_safety(filename) if filename else FileSafety.UNKNOWN
    if by_name is FileSafety.UNSAFE:
        return SafetyVerdict(FileSafety.UNSAFE, unsafe_reason(filename) or "unsafe format")
    return SafetyVerdict(by_name)


def unsafe_files_error(blocked: Iterable[tuple[str, str]]) -> UnsafeFileError:
    """The one UnsafeFileError listing each blocked file, its reason and the flag that allows it."""
    items = list(blocked)
    lines = "\n".join(f"  - {path}: {reason}" for path, reason in items)
    return UnsafeFileError(
        f"Blocked {len(items)} file(s) by the SafeOnly policy (they can run code when loaded):\n{lines}",
        hint="Prefer a safetensors/GGUF variant. To download them anyway (they are never loaded), pass "
        "--allow-unsafe.",
    )


# --------------------------------------------------------------------------- file names


class UnsafePathError(IntegrityError):
    """A remote file name that could write outside its directory (exit 11, integrity)."""

    code = "unsafe-path"
    default_hint = "The repo lists a file name that is not a safe relative path; nothing was written. Report it to the repo owner."




def path_problem(path: str) -> str | None:
    """Why ``path`` is not a safe relative repo path, or None (PAR-4; the rule lives in ``ids``)."""
    from batuta_sync.ids import repo_path_problem

    problem = repo_path_problem(path)
    return problem[3:] if problem and problem.startswith("is an empty") else problem


def is_safe_repo_path(path: str) -> bool:
    return path_problem(path) is None


def validate_repo_path(path: str, *, root: Path | None = None) -> str:
    """Return ``path`` if it is a safe relative file name (and, with ``root``, stays inside it).

    Raises :class:`UnsafePathError` otherwise.
    """
    problem = path_problem(path)
    if problem:
        raise UnsafePathError(f"Refusing the remote file name {path!r}: it {problem}.")
    if root is not None:
        base = os.path.realpath(root)
        joined = os.path.join(base, path)
        # resolve the folder (a symlinked folder must not lead out); the file itself may be a
        # symlink we placed (it is replaced, never followed, when written)
        dest = os.path.join(os.path.realpath(os.path.dirname(joined)), os.path.basename(joined))
        if not dest.startswith(base + os.sep):
            raise UnsafePathError(f"Refusing the remote file name {path!r}: it resolves outside {root}.")
    return path


class NameCollisionError(BatutaError):
    """Two file names that land on the same place (exit 21, ``name-collision``)."""

    code = "name-collision"
    exit_name = "name-collision"
    default_hint = (
        "Nothing was linked or written. The repo lists names that are the same after Unicode "
        "normalization or case folding, or a file where a folder must be; ask the repo owner to "
        "rename one (or pull into an empty --output when the clash is with files already there)."
    )


def _fold(path: str) -> str:
    return unicodedata.normalize("NFC", path).casefold()


def name_collisions(paths: Iterable[str]) -> list[tuple[str, str, str]]:
    """Clashing pairs among repo paths: ``(first, second, why)``.

    Two kinds, both checked on every OS (a lock made on Linux is used on macOS/Windows too):
    names equal after NFC normalization + case folding, and a file that is also a folder of
    another path (``a`` and ``a/b``, compared folded as well).
    """
    files: dict[str, str] = {}
    out: list[tuple[str, str, str]] = []
    ordered = list(dict.fromkeys(paths))
    for p in ordered:
        key = _fold(p)
        if key in files:
            out.append((files[key], p, "the same name after Unicode normalization and case folding"))
        else:
            files[key] = p
    for p in ordered:
        parts = p.split("/")
        for i in range(1, len(parts)):
            folder = files.get(_fold("/".join(parts[:i])))
            if folder is not None:
                out.append((folder, p, f"{folder!r} is a file but {p!r} needs it to be a folder"))
                break
    return out


def check_name_collisions(paths: Iterable[str], where: str) -> None:
    """Raise :class:`NameCollisionError` naming the clashing paths of ``where`` (if any)."""
    clashes = name_collisions(paths)
    if clashes:
        lines = "\n".join(f"  {a!r} and {b!r}: {why}" for a, b, why in clashes[:10])
        more = f"\n  … and {len(clashes) - 10} more" if len(clashes) > 10 else ""
        raise NameCollisionError(f"File names of {where} clash:\n{lines}{more}")


def casefold_collisions(paths: Iterable[str]) -> list[tuple[str, str]]:
    """Pairs of paths that collide after Unicode NFC + casefold (would clash on macOS/Windows)."""
    seen: dict[str, str] = {}
    out: list[tuple[str, str]] = []
    for p in paths:
        key = unicodedata.normalize("NFC", p).casefold()
        if key in seen and seen[key] != p:
            out.append((seen[key], p))
        else:
            seen[key] = p
    return out
