"""Pickle sniffing and string constants, by walking opcodes with :mod:`pickletools` (never unpickles).

* :func:`pickle_bearing` -- why content is pickle-bearing whatever its name: a pickle stream, a
  torch zip (``data.pkl``), a zip of pickles, a legacy torch tar or a tar with pickle members,
  an object-dtype ``.npy``.  Archives are listed (member headers only), never extracted.
* :func:`looks_like_pickle` / :func:`is_pickle_stream` -- a pickle stream from its first bytes.
* :func:`string_constants` -- the string constants of a pickle stream (for secret scanning).

One archive member cap, :data:`MAX_ARCHIVE_MEMBERS`, for the sniffer here and for the secret
scanner's archive walk (``publish/secrets/files.py``).
"""

from __future__ import annotations

import io
import os
import pickletools
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tarfile

__all__ = [
    "MAX_ARCHIVE_MEMBERS",
    "SNIFF_BYTES",
    "Source",
    "is_pickle_stream",
    "looks_like_pickle",
    "pickle_bearing",
    "string_constants",
]

SNIFF_BYTES = 1 << 16
_PICKLE_CODE_OPS = frozenset(
    {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "BUILD"}
)


class Source:
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


def _zip_reason(src: Source) -> str | None:
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
MAX_ARCHIVE_MEMBERS = 100_000  # the one cap: WebDataset shards reach tens of thousands


def _tar_reason(src: Source, head: bytes) -> str | None:
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
                if i >= MAX_ARCHIVE_MEMBERS:
                    return f"tar archive with more than {MAX_ARCHIVE_MEMBERS} members (treated as unsafe)"
    except (tarfile.TarError, OSError, ValueError, EOFError):
        return "tar archive that cannot be listed (treated as unsafe)"
    return None


def pickle_bearing(src: Source, head: bytes) -> str | None:
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


def is_pickle_stream(head: bytes) -> bool:
    """A protocol 2-5 pickle stream (``\\x80`` and the protocol byte)."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


_PICKLE_STR_OPS = {
    "STRING",
    "BINSTRING",
    "SHORT_BINSTRING",
    "UNICODE",
    "BINUNICODE",
    "SHORT_BINUNICODE",
    "BINUNICODE8",
    "BINBYTES",
    "SHORT_BINBYTES",
    "BINBYTES8",
    "BYTEARRAY8",
    "GLOBAL",
    "INST",
}


def string_constants(data: bytes) -> list[str]:
    """String constants of a pickle stream, by walking opcodes (never unpickling)."""
    out: list[str] = []
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        try:
            for op, arg, _pos in pickletools.genops(stream):
                if op.name in _PICKLE_STR_OPS and arg is not None:
                    if isinstance(arg, (bytes, bytearray)):
                        if len(arg) <= 1 << 20:
                            out.append(bytes(arg).decode("latin-1"))
                    else:
                        out.append(str(arg))
        except Exception:  # malformed tail: keep what we have
            break
        # several pickles may be concatenated (torch legacy format); genops stops at STOP
        if stream.tell() < len(data) and data[stream.tell() : stream.tell() + 1] != b"\x80":
            break
    return out
