"""llama.cpp's split GGUF format (``gguf-split``): writing, reading, and the raw GGUF writer both use.

A split model is ``PREFIX-00001-of-0000N.gguf`` ... ``PREFIX-0000N-of-0000N.gguf``.  Every shard is a
complete GGUF file carrying ``split.no`` (u16, 0-based), ``split.count`` (u16) and
``split.tensors.count`` (i32, the tensors of all shards); the first shard also holds every other
metadata key, the others only the split keys (as ``gguf-split --split`` writes them).  A new shard
starts before a tensor that would take the current one past ``--split-max-size`` bytes of tensor
data, or past ``--split-max-tensors`` tensors; a shard always has at least one tensor.

llama.cpp loads the set from the first shard's path.  :func:`open_gguf` reads a set back as one
model (validated: every shard present, numbered, the same count, no tensor twice).
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from batuta_sync._fs import confine
from batuta_sync.errors import ConversionError

SPLIT_NO, SPLIT_COUNT, SPLIT_TENSORS = "split.no", "split.count", "split.tensors.count"
SPLIT_KEYS = (SPLIT_NO, SPLIT_COUNT, SPLIT_TENSORS)
SHARD_RE = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")
MAX_SHARDS = 99999
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(I?B?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4}
_COPY_CHUNK = 1 << 24

# GGUF value types (gguf.GGUFValueType) of the keys we write ourselves
_U16, _U32, _I32 = 2, 4, 5
_PACK = {_U16: "<H", _U32: "<I", _I32: "<i"}
T = TypeVar("T")


def parse_size(value: int | str) -> int:
    """``--split-max-size``: bytes, or a number with K/M/G/T (powers of 1000, as gguf-split) or KiB/MiB/GiB/TiB."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        m = _SIZE_RE.match(str(value))
        if not m:
            raise ConversionError(f"--split-max-size {value!r} is not a size.", hint="Use e.g. 2G, 500M or 49GB.")
        unit = m.group(2).upper()
        base = 1024 ** "KMGT".index(unit) * 1024 if unit and m.group(3).upper().startswith("I") else _UNITS[unit]
        n = int(float(m.group(1)) * base)
    if n <= 0:
        raise ConversionError(f"--split-max-size must be positive (got {value!r}).", hint="Use e.g. 2G.")
    return n


@dataclass(frozen=True)
class SplitOptions:
    max_size: int | None = None  # bytes of tensor data per shard
    max_tensors: int | None = None
    # the publish rule (a GGUF past the Hub's per-file limit): one plain file when the whole GGUF
    # is at most ``max_size`` bytes, a split set only beyond (not part of the memo parameters)
    single_if_fits: bool = False

    @classmethod
    def parse(cls, max_size: int | str | None = None, max_tensors: int | None = None) -> SplitOptions:
        size = parse_size(max_size) if max_size not in (None, "") else None
        if max_tensors is not None and (isinstance(max_tensors, bool) or not isinstance(max_tensors, int)
                                        or max_tensors <= 0):
            raise ConversionError(f"--split-max-tensors must be a positive integer (got {max_tensors!r}).",
                                  hint="Use e.g. --split-max-tensors 128.")
        return cls(size, max_tensors)

    @property
    def active(self) -> bool:
        return self.max_size is not None or self.max_tensors is not None

    def memo_params(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.single_if_fits:
            return out
        if self.max_size is not None:
            out["split_max_size"] = str(self.max_size)
        if self.max_tensors is not None:
            out["split_max_tensors"] = str(self.max_tensors)
        return out


def shard_path(prefix: Path, index: int, count: int) -> Path:
    """``llama_split_path``: ``PREFIX-%05d-of-%05d.gguf`` (``index`` 0-based)."""
    return prefix.with_name(f"{prefix.name}-{index + 1:05d}-of-{count:05d}.gguf")


def model_stem(path: Path) -> str:
    """The model's name: ``PREFIX`` for a shard ``PREFIX-0000i-of-0000N.gguf``, else the file's stem."""
    m = SHARD_RE.match(path.name)
    return m.group("prefix") if m else path.name.removesuffix(".gguf")


def first_shards(paths: Iterable[Path]) -> list[Path]:
    """GGUF paths with every split set reduced to its first shard (one entry per model)."""
    out = []
    for p in paths:
        m = SHARD_RE.match(p.name)
        if m is None or int(m.group("no")) == 1:
            out.append(p)
    return out


def plan_shards(sizes: Sequence[int], opts: SplitOptions) -> list[list[int]]:
    """Tensor indices per shard: a new shard before the tensor that would exceed either limit."""
    shards: list[list[int]] = [[]]
    used = 0
    for i, n in enumerate(sizes):
        cur = shards[-1]
        if cur and ((opts.max_tensors is not None and len(cur) >= opts.max_tensors)
                    or (opts.max_size is not None and used + n > opts.max_size)):
            shards.append([])
            used = 0
        shards[-1].append(i)
        used += n
    if len(shards) > MAX_SHARDS:
        raise ConversionError(f"The split would have {len(shards)} shards (at most {MAX_SHARDS}).",
                              hint="Raise --split-max-size or --split-max-tensors.")
    return shards


# --------------------------------------------------------------------------- raw GGUF writing


def kv_bytes(key: str, vtype: int, value: int) -> bytes:
    """One serialized scalar metadata pair (u16 / u32 / i32)."""
    k = key.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<I", vtype) + struct.pack(_PACK[vtype], value)


def field_bytes(field: Any) -> bytes:
    """A metadata pair exactly as a GGUFReader field holds it (key, type, value)."""
    return b"".join(bytes(memoryview(p)) for p in field.parts)


@dataclass(frozen=True)
class TensorInfo:
    name: str
    ne: tuple[int, ...]  # ggml order (ne0 = row length first)
    ggml_type: int
    nbytes: int


def _pad(n: int, align: int) -> int:
    return -(-n // align) * align


def gguf_header(kvs: Sequence[bytes], tensors: Sequence[TensorInfo], align: int) -> tuple[bytes, list[int]]:
    """GGUF v3 header + metadata + tensor infos, padded to ``align``; and each tensor's absolute offset."""
    rel, pos = [], 0
    for t in tensors:
        rel.append(pos)
        pos += _pad(t.nbytes, align)
    parts = [b"GGUF", struct.pack("<IQQ", 3, len(tensors), len(kvs)), *kvs]
    for t, off in zip(tensors, rel, strict=True):
        name = t.name.encode()
        parts.append(struct.pack("<Q", len(name)) + name + struct.pack("<I", len(t.ne)))
        parts.append(struct.pack(f"<{len(t.ne)}Q", *t.ne) + struct.pack("<IQ", t.ggml_type, off))
    head = b"".join(parts)
    head += b"\0" * (_pad(len(head), align) - len(head))
    return head, [len(head) + r for r in rel]


def write_gguf_file(path: Path, kvs: Sequence[bytes], tensors: Sequence[TensorInfo], align: int,
                    fill: Callable[[int, int, int], None]) -> None:
    """Write a GGUF at ``path``: header, then ``fill(fd, tensor index, absolute offset)`` for every tensor.

    The file is sized first (padding included), so ``fill`` may write tensors in any order.
    """
    head, offsets = gguf_header(kvs, tensors, align)
    end = offsets[-1] + _pad(tensors[-1].nbytes, align) if tensors else len(head)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, end)
        pwrite_all(fd, head, 0)
        for i, off in enumerate(offsets):
            fill(fd, i, off)
    finally:
        os.close(fd)


def pwrite_all(fd: int, data: bytes | memoryview, pos: int) -> None:
    view = memoryview(data).cast("B")
    while view:
        n = os.pwrite(fd, view, pos)
        view, pos = view[n:], pos + n


# --------------------------------------------------------------------------- reading (one file or a split set)


class GGUFModel:
    """A GGUF file or a split set read as one model: ``fields`` (the first shard's, without the split
    keys), ``tensors`` (every shard's, in order; gguf-py ``ReaderTensor`` objects), ``files``."""

    def __init__(self, readers: list[Any], files: list[Path]) -> None:
        self.readers = readers
        self.files = files
        self.fields = {k: f for k, f in readers[0].fields.items() if k not in SPLIT_KEYS}
        self.tensors = [t for r in readers for t in r.tensors]
        self._reader_of = {id(t): r for r in readers for t in r.tensors}
        self.alignment = alignment_of(readers[0])

    @property
    def metadata(self) -> dict[str, Any]:
        """The real key-value pairs (gguf-py adds pseudo-fields ``GGUF.version`` etc. to ``fields``)."""
        return {k: f for k, f in self.fields.items() if not k.startswith("GGUF.")}

    def tensor_bytes(self, t: Any) -> Any:
        """The raw bytes of tensor ``t`` (a read-only memory-mapped uint8 view)."""
        return self._reader_of[id(t)].data[t.data_offset: t.data_offset + t.n_bytes]


def alignment_of(reader: Any) -> int:
    f = reader.fields.get("general.alignment")
    return int(f.contents()) if f is not None else 32


def _read(path: Path) -> Any:
    from batuta_sync.convert.gguf_read import Reader

    try:
        return Reader(path)
    except Exception as e:  # FormatError (the header checks), OSError, ValueError on a damaged file
        raise ConversionError(f"{path} is not a readable GGUF file: {e}.", hint="Re-download or re-create the file.") from None


def _int_field(reader: Any, key: str) -> int | None:
    f = reader.fields.get(key)
    if f is None:
        return None
    try:
        return int(f.contents())
    except (TypeError, ValueError):
        raise ConversionError(f"GGUF key {key} is not an integer.", hint="The split file is damaged.") from None


def open_gguf(path: Path) -> GGUFModel:
    """Open a GGUF, or the whole split set when ``path`` is one of its shards (any shard names the set)."""
    path = Path(path)
    first = _read(path)
    count = _int_field(first, SPLIT_COUNT)
    if count is None or (count <= 1 and SHARD_RE.match(path.name) is None):
        return GGUFModel([first], [path])
    m = SHARD_RE.match(path.name)
    if m is None or int(m.group("count")) != count:
        raise ConversionError(f"{path.name} is shard {_int_field(first, SPLIT_NO)} of a {count}-file split set, "
                              "but its name is not PREFIX-0000i-of-0000N.gguf.",
                              hint="Keep the names gguf-split gave the shards.")
    prefix = path.with_name(m.group("prefix"))
    files = [confine(path.parent, shard_path(prefix, i, count), what="GGUF shard") for i in range(count)]
    readers = []
    for i, f in enumerate(files):
        if not f.is_file():
            raise ConversionError(f"Shard {f.name} of the split model {prefix.name} is missing.",
                                  hint=f"Download all {count} shards into {path.parent}.")
        r = first if os.path.normpath(f) == os.path.normpath(path) else _read(f)
        no, n = _int_field(r, SPLIT_NO), _int_field(r, SPLIT_COUNT)
        if no != i or n != count:
            raise ConversionError(f"{f.name} says it is shard {no} of {n}; its name says {i} of {count}.",
                                  hint="The split set is mixed up or damaged.")
        readers.append(r)
    model = GGUFModel(readers, files)
    want = _int_field(readers[0], SPLIT_TENSORS)
    names = [t.name for t in model.tensors]
    if want is not None and want != len(names):
        raise ConversionError(f"The split model {prefix.name} has {len(names)} tensors; its metadata says {want}.",
                              hint="A shard is truncated or from another model.")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[0]
        raise ConversionError(f"Tensor {dup} appears in more than one shard of {prefix.name}.",
                              hint="The split set is mixed up or damaged.")
    return model


# --------------------------------------------------------------------------- splitting


def split_gguf(src: Path, out: Path, opts: SplitOptions) -> list[Path]:
    """Split the GGUF file ``src`` into shards named after ``out`` (``x.gguf`` -> ``x-0000i-of-0000N.gguf``).

    Shards are written to temporary names and renamed at the end: a failure leaves none behind.
    """
    model = open_gguf(src)
    align = model.alignment
    tensors = model.tensors
    infos = [TensorInfo(t.name, tuple(int(d) for d in t.shape), int(t.tensor_type), int(t.n_bytes)) for t in tensors]
    shards = plan_shards([_pad(i.nbytes, align) for i in infos], opts)
    n = len(shards)
    prefix = out.with_name(out.name.removesuffix(".gguf"))
    final = [shard_path(prefix, i, n) for i in range(n)]
    temps = [p.with_name(f".{p.name}.tmp-{os.getpid()}") for p in final]
    meta = [field_bytes(f) for f in model.metadata.values()]
    try:
        for i, idx in enumerate(shards):
            split_kvs = [kv_bytes(SPLIT_NO, _U16, i), kv_bytes(SPLIT_COUNT, _U16, n), kv_bytes(SPLIT_TENSORS, _I32, len(infos))]
            kvs = meta + split_kvs if i == 0 else split_kvs  # the first shard carries all metadata

            def fill(fd: int, k: int, off: int, idx: list[int] = idx) -> None:
                data = model.tensor_bytes(tensors[idx[k]])
                for a in range(0, len(data), _COPY_CHUNK):
                    pwrite_all(fd, data[a: a + _COPY_CHUNK].tobytes(), off + a)

            write_gguf_file(temps[i], kvs, [infos[k] for k in idx], align, fill)
        for t, f in zip(temps, final, strict=True):
            os.replace(t, f)
    finally:
        for t in temps:
            if t.exists():
                t.unlink()
    return final


def write_maybe_split(out: Path, opts: SplitOptions, produce: Callable[[Path], tuple[int, T]]) -> tuple[list[Path], int, T]:
    """Run ``produce(path) -> (tensor count, params)`` writing one GGUF; split it when ``opts`` ask for it.

    Without split options ``produce`` writes ``out`` itself.  With them it writes a hidden file next
    to ``out``, which is split into ``out``'s shard names and removed (the disk briefly holds both).
    """
    if not opts.active:
        count, params = produce(out)
        return [out], count, params
    out.parent.mkdir(parents=True, exist_ok=True)
    # one name per output (no pid): a run killed mid-way leaves it, or its temp, under a name the next
    # run writes again (``temp_path_for`` sweeps the dead run's temps), so no litter survives for good
    whole = out.with_name(f".{out.name}.unsplit.gguf")
    try:
        count, params = produce(whole)
        if opts.single_if_fits and opts.max_size is not None and whole.stat().st_size <= opts.max_size:
            os.replace(whole, out)
            return [out], count, params
        files = split_gguf(whole, out, opts)
    finally:
        whole.unlink(missing_ok=True)
    return files, count, params
