"""Memory-mapped safetensors reading and streaming safetensors writing (incl. BF16, which
``safetensors.numpy`` cannot handle), with clear errors for malformed files."""

from __future__ import annotations

import json
import os
import secrets
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from batuta_sync._proc import pid_alive
from batuta_sync.errors import ConversionError
from batuta_sync.fileformats import safetensors as st_format

# safetensors dtype -> (numpy storage dtype, bytes per element)
ST_DTYPES: dict[str, np.dtype[Any]] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # stored as raw uint16, widened on read
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")


@dataclass(frozen=True)
class TensorRef:
    """Where one tensor lives in a safetensors file (nothing is read yet)."""

    name: str
    file: Path
    dtype: str
    shape: tuple[int, ...]
    offset: int  # absolute byte offset of the data in the file
    nbytes: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def raw(self) -> Any:
        """A read-only memory map of the stored data, numpy-shaped (BF16 as uint16)."""
        dt = ST_DTYPES[self.dtype]
        if self.nbytes == 0:
            return np.zeros(self.shape, dtype=dt)
        return np.memmap(self.file, dtype=dt, mode="r", offset=self.offset, shape=self.shape)

    def rows_f32(self, rows: Any = None) -> Any:
        """The tensor (or the given rows of it) as a float32 array."""
        a = self.raw()
        if rows is not None:
            a = a[rows] if a.ndim > 1 else a
        return to_f32(a, self.dtype)


def to_f32(a: Any, dtype: str) -> Any:
    if dtype == "BF16":
        return (np.asarray(a, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
    return np.asarray(a).astype(np.float32)


def read_header(path: Path) -> dict[str, TensorRef]:
    """Parse a safetensors header; raise ConversionError saying exactly what is wrong."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ConversionError(f"{path} is not a safetensors file: it is only {size} bytes long.",
                                      hint="Re-download the file; it is truncated or empty.")
            n = st_format.header_length(head) or 0
            if n > min(size - 8, st_format.MAX_HEADER):
                raise ConversionError(
                    f"{path} has a bad safetensors header: it declares a {n}-byte header in a {size}-byte file.",
                    hint="The file is corrupt or not safetensors; re-download it.",
                )
            raw = f.read(n)
    except OSError as e:
        raise ConversionError(f"Cannot read {path}: {e.strerror}.") from None
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
    except (UnicodeDecodeError, ValueError) as e:
        raise ConversionError(f"{path} has a bad safetensors header: {e}.",
                              hint="The file is corrupt or not safetensors; re-download it.") from None
    base = 8 + n
    out: dict[str, TensorRef] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = str(info["dtype"])
            shape = tuple(int(d) for d in info["shape"])
            start, end = (int(v) for v in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ConversionError(f"{path}: the header entry for tensor {name!r} is malformed.",
                                  hint="The file is corrupt; re-download it.") from None
        if dtype not in ST_DTYPES:
            raise ConversionError(f"{path}: tensor {name!r} has unsupported dtype {dtype}.",
                                  hint="Supported: " + ", ".join(ST_DTYPES) + ".")
        count = 1
        for d in shape:
            count *= d
        if end - start != count * ST_DTYPES[dtype].itemsize or start < 0 or base + end > size:
            raise ConversionError(
                f"{path}: tensor {name!r} ({dtype} {list(shape)}) has data offsets [{start}, {end}] that do not "
                f"match its size or lie beyond the end of the file ({size} bytes).",
                hint="The file is truncated or corrupt; re-download it.",
            )
        out[name] = TensorRef(name, path, dtype, shape, base + start, end - start)
    return out


@dataclass(frozen=True)
class OutTensor:
    """A tensor to write: its name, safetensors dtype, shape and a producer of its bytes in chunks."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    produce: Callable[[], Iterable[bytes]]

    @property
    def nbytes(self) -> int:
        n = ST_DTYPES[self.dtype].itemsize
        for d in self.shape:
            n *= d
        return n


def temp_path_for(path: Path) -> Path:
    """A unique temp name beside ``path`` (``.NAME.tmp-<pid>-<rand>``), after sweeping the temps that
    converters killed earlier left behind (their pid is gone), so a crash never leaves litter for good."""
    prefix = f".{path.name}.tmp-"
    try:
        for old in path.parent.glob(f"{prefix}*"):
            pid_text = old.name[len(prefix) :].split("-", 1)[0]
            if pid_text.isdigit() and int(pid_text) != os.getpid() and not pid_alive(int(pid_text)):
                old.unlink(missing_ok=True)
    except OSError:
        pass
    return path.with_name(f"{prefix}{os.getpid()}-{secrets.token_hex(4)}")


def write_safetensors(path: Path, tensors: Sequence[OutTensor], metadata: dict[str, str] | None = None) -> None:
    """Stream ``tensors`` into ``path`` atomically (temp file + os.replace); memory is one chunk."""
    header: dict[str, Any] = {"__metadata__": dict(metadata or {"format": "pt"})}
    offset = 0
    for t in tensors:
        header[t.name] = {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    tmp = temp_path_for(path)
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(hb)))
            f.write(hb)
            for t in tensors:
                written = 0
                for chunk in t.produce():
                    f.write(chunk)
                    written += len(chunk)
                if written != t.nbytes:
                    raise ConversionError(f"internal error: tensor {t.name} produced {written} bytes, expected {t.nbytes}")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
