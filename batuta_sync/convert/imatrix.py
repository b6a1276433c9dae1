"""Importance matrices (``llama-imatrix`` output) for ``--imatrix FILE``: read, validated, normalised.

Two formats, as llama.cpp's ``common_imatrix_load`` reads them:

* GGUF (what ``llama-imatrix`` writes today): per matrix ``<name>.in_sum2`` (F32, ``n_per_row`` x
  ``n_mat``) and ``<name>.counts`` (F32, ``n_mat``), plus ``imatrix.datasets`` / ``imatrix.chunk_count`` /
  ``imatrix.chunk_size``; the weights are ``in_sum2 / lround(counts)`` per matrix (1 where a count is 0).
* legacy ``.dat``: ``int32 n_entries``, then per entry ``int32 len, name, int32 ncall, int32 nval,
  float32[nval]``, then optionally ``int32 chunks, int32 len, dataset``; the weights are
  ``values / ncall`` (the values as stored when ``ncall`` is 0).

The file is hostile input: its size is capped, every count and length is checked against the bytes that
are really there before anything is allocated, names must be UTF-8, values finite and non-negative
(llama-quantize refuses non-finite ones; negative ones cannot come from a sum of squares). Every
problem is a :class:`~batuta_sync.errors.ConversionError` naming the file.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from batuta_sync.errors import ConversionError

MAX_FILE_BYTES = 8 << 30  # a 70B-class imatrix is ~100-200 MB; a 400B MoE one a few GB
MAX_ENTRIES = 1 << 20
MAX_NAME = 1 << 12
_HINT = "Produce it again with llama.cpp's llama-imatrix, or drop --imatrix."


@dataclass(frozen=True)
class Imatrix:
    """The normalised weights of every matrix (name -> float32 (n_mat * n_per_row,)), and provenance."""

    path: str
    sha256: str
    entries: dict[str, np.ndarray] = field(repr=False)
    datasets: tuple[str, ...] = ()
    chunk_count: int = 0

    def weights(self, name: str, ncols: int, n_mat: int) -> np.ndarray | None:
        """Weights for tensor ``name`` as (n_mat, ncols), or None when the file has no entry for it.

        A size that does not match is an error, except for the token embedding (llama-quantize then
        quantizes it without weights, and so do we)."""
        e = self.entries.get(name)
        if e is None:
            return None
        if e.size != ncols * n_mat:
            if name == "token_embd.weight":
                return None
            raise ConversionError(
                f"The importance matrix {self.path} has {e.size} values for {name}, the tensor needs "
                f"{ncols * n_mat} ({n_mat} x {ncols}).", hint="The imatrix was computed for another model.")
        return e.reshape(n_mat, ncols)

    def memo(self) -> str:
        return "sha256:" + self.sha256

    def metadata(self) -> list[tuple[str, str | int]]:
        """The ``quantize.imatrix.*`` keys llama-quantize writes (strings, or UINT32 for counts).

        ``file`` is the file's name, not the path given (llama-quantize writes the path as typed,
        which would make the output depend on the working directory)."""
        out: list[tuple[str, str | int]] = [("quantize.imatrix.file", Path(self.path).name[:127])]
        if self.datasets:
            out.append(("quantize.imatrix.dataset", self.datasets[0][:127]))
        out.append(("quantize.imatrix.entries_count", len(self.entries)))
        if self.chunk_count > 0:
            out.append(("quantize.imatrix.chunks_count", self.chunk_count))
        return out


def _bad(path: Path, why: str) -> ConversionError:
    return ConversionError(f"{path} is not a valid importance matrix: {why}.", hint=_HINT)


def _check_values(path: Path, name: str, a: np.ndarray) -> None:
    if not np.all(np.isfinite(a)):
        raise _bad(path, f"entry {name!r} contains a non-finite value")
    if np.any(a < 0):
        raise _bad(path, f"entry {name!r} contains a negative value")


def _read_legacy(path: Path, data: bytes) -> tuple[dict[str, np.ndarray], tuple[str, ...], int]:
    pos = 0

    def i32(what: str) -> int:
        nonlocal pos
        if pos + 4 > len(data):
            raise _bad(path, f"truncated ({what} missing at byte {pos})")
        (v,) = struct.unpack_from("<i", data, pos)
        pos += 4
        return int(v)

    def take(n: int, what: str) -> bytes:
        nonlocal pos
        if n < 0 or pos + n > len(data):
            raise _bad(path, f"truncated ({what}: {n} bytes claimed, {len(data) - pos} left)")
        b = data[pos: pos + n]
        pos += n
        return b

    n = i32("entry count")
    if n < 1 or n > MAX_ENTRIES:
        raise _bad(path, f"entry count {n} is not in 1..{MAX_ENTRIES}")
    entries: dict[str, np.ndarray] = {}
    for k in range(n):
        ln = i32("name length")
        if not 0 < ln <= MAX_NAME:
            raise _bad(path, f"entry {k + 1} has a name length of {ln}")
        try:
            name = take(ln, "name").decode("utf-8")
        except UnicodeDecodeError:
            raise _bad(path, f"entry {k + 1} has a name that is not UTF-8") from None
        if "\0" in name or name in entries:
            raise _bad(path, f"entry {k + 1} ({name!r}) is duplicated or contains NUL")
        ncall = i32("call count")
        nval = i32("value count")
        if nval < 1 or ncall < 0:
            raise _bad(path, f"entry {name!r} has {nval} values and {ncall} calls")
        vals = np.frombuffer(take(nval * 4, f"values of {name!r}"), dtype="<f4").astype(np.float32)
        _check_values(path, name, vals)
        if ncall > 0:
            vals = vals / np.float32(ncall)  # C: float / int64 -> float
        entries[name] = vals
    datasets: tuple[str, ...] = ()
    chunks = 0
    if pos < len(data):  # optional trailer: chunk count, dataset name
        chunks = i32("chunk count")
        if pos < len(data):
            ln = i32("dataset name length")
            if ln > 0:
                raw = take(min(ln, MAX_NAME), "dataset name")
                datasets = (raw.split(b"\0", 1)[0].decode("utf-8", "replace"),)
    return entries, datasets, max(0, chunks)


def _read_gguf(path: Path) -> tuple[dict[str, np.ndarray], tuple[str, ...], int]:  # noqa: C901 (each check of a hostile file)
    from gguf import GGUFValueType

    from batuta_sync.convert.gguf_read import Reader

    try:
        reader: Any = Reader(path)
    except Exception as e:  # fileformats.gguf checks every length and offset against the file
        raise _bad(path, f"unreadable GGUF ({type(e).__name__}: {e})") from None
    fields = reader.fields

    def field_value(key: str, vtype: Any) -> Any:
        f = fields.get(key)
        if f is None:
            return None
        if not f.types or f.types[0] != vtype:
            raise _bad(path, f"{key} has the wrong type")
        return f

    ds = field_value("imatrix.datasets", GGUFValueType.ARRAY)
    cc = field_value("imatrix.chunk_count", GGUFValueType.UINT32)
    cs = field_value("imatrix.chunk_size", GGUFValueType.UINT32)
    if ds is None or cc is None or cs is None:  # llama-quantize: "missing imatrix metadata"
        raise _bad(path, "imatrix.datasets, imatrix.chunk_count or imatrix.chunk_size is missing")
    if len(ds.types) < 2 or ds.types[1] != GGUFValueType.STRING:
        raise _bad(path, "imatrix.datasets is not an array of strings")
    try:
        datasets = tuple(ds.contents())
    except UnicodeDecodeError:
        raise _bad(path, "a dataset name is not UTF-8") from None
    chunks = int(cc.contents())
    pairs: dict[str, dict[str, Any]] = {}
    for t in reader.tensors:
        for suffix in (".in_sum2", ".counts"):
            if t.name.endswith(suffix) and len(t.name) > len(suffix):
                pairs.setdefault(t.name[: -len(suffix)], {})[suffix] = t
    if not reader.tensors:
        raise _bad(path, "it has no tensors")
    entries: dict[str, np.ndarray] = {}
    for name, pair in sorted(pairs.items()):
        if len(pair) != 2:
            raise _bad(path, f"mismatched sums and counts for {name!r}")
        sums, counts = pair[".in_sum2"], pair[".counts"]
        if int(sums.tensor_type) != 0 or int(counts.tensor_type) != 0:
            raise _bad(path, f"sums and counts for {name!r} must be F32")
        s = np.asarray(sums.data, dtype=np.float32).reshape(-1)
        c = np.asarray(counts.data, dtype=np.float32).reshape(-1)
        if c.size < 1 or s.size % c.size:
            raise _bad(path, f"{name!r} has {s.size} sums for {c.size} counts")
        _check_values(path, name, s)
        _check_values(path, name + ".counts", c)
        if np.any(c >= 2.0**62):
            raise _bad(path, f"{name!r} has an impossibly large count")
        cnt = np.floor(c.astype(np.float64) + 0.5).astype(np.float32)  # std::lround, then (float) int64
        per = s.size // c.size
        w = np.ones((c.size, per), dtype=np.float32)
        pos = cnt > 0
        w[pos] = s.reshape(c.size, per)[pos] / cnt[pos, None]
        entries[name] = w.reshape(-1)
    return entries, datasets, chunks


def load(path: str | Path) -> Imatrix:
    """Read and validate an importance matrix file (GGUF or legacy ``.dat``)."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if not p.is_file():
            raise _bad(p, "not a regular file")
        if size > MAX_FILE_BYTES:
            raise _bad(p, f"{size} bytes, more than the {MAX_FILE_BYTES} allowed")
        with p.open("rb") as f:
            head = f.read(4)
            digest = hashlib.sha256(head)
            legacy = head != b"GGUF"
            chunks = [head]
            for block in iter(lambda: f.read(1 << 24), b""):
                digest.update(block)
                if legacy:
                    chunks.append(block)
    except OSError as e:
        raise ConversionError(f"Cannot read the importance matrix {p}: {e.strerror or e}.",
                              hint="Check the path given to --imatrix.") from None
    if legacy:
        entries, datasets, count = _read_legacy(p, b"".join(chunks))
    else:
        entries, datasets, count = _read_gguf(p)
    if not entries:
        raise _bad(p, "it has no entries")
    return Imatrix(str(p), digest.hexdigest(), entries, datasets, count)
