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
import os
import struct
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from batuta_sync.errors import BatutaError, IntegrityError, UnsafeFileError
from batuta_sync.fileformats import FormatError
from batuta_sync.fileformats import pickle as _pickle
from batuta_sync.fileformats import safetensors as _st

if TYPE_CHECKING:
    pass

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

SNIFF_BYTES = _pickle.SNIFF_BYTES
_Source = _pickle.Source
looks_like_pickle = _pickle.looks_like_pickle
_content_reason = _pickle.pickle_bearing


def check_safetensors_header(data: bytes | bytearray | memoryview | str | os.PathLike[str]) -> str | None:
    """Validate a safetensors file's header; return the problem or None when it is valid.

    The one strict parser, :func:`batuta_sync.fileformats.safetensors.parse_header` (security.md
    PAR-1), the same rules as push: 8-byte little-endian header length <= 100,000,000 that fits
    the file; a UTF-8 JSON object starting with ``{`` without duplicate keys; every tensor with a
    known dtype, a non-negative integer shape and ``data_offsets`` contiguous from 0 matching
    ``prod(shape) * dtype size``; ``__metadata__`` maps str to str; the data ends exactly at the
    end of the file (no polyglots).  Reads only ``8 + N`` bytes.
    """
    src = _Source(data)
    head = src.read(0, 8)
    n = _st.header_length(head)
    if n is not None and n <= min(_st.MAX_HEADER, max(src.size - 8, 0)):
        head += src.read(8, n)
    try:
        _st.parse_header(head, src.size, strict=True)
    except FormatError as exc:
        return exc.detail
    return None


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
