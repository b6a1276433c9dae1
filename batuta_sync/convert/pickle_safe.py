"""PyTorch ``.bin`` / ``.pt`` checkpoints -> safetensors, without torch and without running pickle code.

Only the zip format (``torch.save`` since 1.6) is read.  ``data.pkl`` is unpickled by an
allow-listed unpickler: ``find_class`` returns our own tensor/storage rebuild functions for
the handful of names a state dict needs (``torch._utils._rebuild_tensor_v2``, the
``torch.*Storage`` types, ``collections.OrderedDict``) and refuses everything else, so no
callable from the file is ever looked up or executed.  Storages are read from the archive
into numpy; the tensors written are verified against the file tensor by tensor.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from batuta_sync.errors import ConversionError

PICKLE_NAMES = (".bin", ".pt", ".pth", ".ckpt")

# torch storage class -> (numpy dtype, safetensors dtype)
STORAGES: dict[str, tuple[str, str]] = {
    "FloatStorage": ("<f4", "F32"),
    "HalfStorage": ("<f2", "F16"),
    "BFloat16Storage": ("<u2", "BF16"),
    "DoubleStorage": ("<f8", "F64"),
    "LongStorage": ("<i8", "I64"),
    "IntStorage": ("<i4", "I32"),
    "ShortStorage": ("<i2", "I16"),
    "CharStorage": ("i1", "I8"),
    "ByteStorage": ("u1", "U8"),
    "BoolStorage": ("?", "BOOL"),
}


def _no_setstate(self: Any, state: Any) -> None:
    """BUILD on one of our objects would rewrite its fields (a tensor's dtype or data): refused."""
    raise ConversionError("data.pkl modifies a tensor or storage object after building it.",
                          hint="Only plain state dicts of tensors convert; the file is corrupt or hostile.")


@dataclass(frozen=True)
class _StorageType:
    name: str
    __setstate__ = _no_setstate


@dataclass(frozen=True)
class Tensor:
    """A tensor rebuilt from a checkpoint: numpy data plus its safetensors dtype (BF16 as uint16)."""

    array: Any
    dtype: str
    __setstate__ = _no_setstate


_MAX_RATIO = 1000  # a compressed storage member may expand at most this much (torch stores them uncompressed)


class _Storage:
    __setstate__ = _no_setstate

    def __init__(self, zf: zipfile.ZipFile, member: str, stype: _StorageType, numel: int) -> None:
        self.np_dtype, self.dtype = STORAGES[stype.name]
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise ConversionError(f"The checkpoint references storage {member!r}, which is not in the archive.",
                                  hint="The file is truncated or corrupt.") from None
        want = numel * np.dtype(self.np_dtype).itemsize
        # sizes are checked against what the archive really holds before anything is allocated
        if numel < 0 or info.file_size != want:
            raise ConversionError(f"Storage {member!r} holds {info.file_size} bytes, but the checkpoint declares "
                                  f"{numel} elements ({want} bytes).", hint="The file is truncated or corrupt.")
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > _MAX_RATIO * max(1, info.compress_size):
            raise ConversionError(f"Storage {member!r} expands {info.compress_size} compressed bytes into "
                                  f"{info.file_size}; refused as a decompression bomb.", hint="The file is corrupt.")
        with zf.open(info) as fp:
            raw = fp.read(want)
        if len(raw) != want:
            raise ConversionError(f"Storage {member!r} holds {len(raw)} bytes, {want} expected.",
                                  hint="The file is truncated or corrupt.")
        self.data = np.frombuffer(raw, dtype=self.np_dtype, count=numel)


def _rebuild_tensor(storage: Any, offset: int, size: Any, stride: Any, *_: Any) -> Tensor:
    if not isinstance(storage, _Storage):
        raise ConversionError("The checkpoint builds a tensor from something that is not a storage.",
                              hint="Only plain tensor state dicts can be converted.")
    size = tuple(int(s) for s in size)
    stride = tuple(int(s) for s in stride)
    base = storage.data
    count = 1
    for s in size:
        count *= s
    if any(s < 0 for s in size) or len(size) != len(stride) or count > base.size:
        # a tensor is a view of its storage: never more elements than the storage holds (stride 0
        # would otherwise let one stored value expand into gigabytes)
        raise ConversionError(f"A tensor in the checkpoint declares shape {list(size)[:8]} over a storage of "
                              f"{base.size} elements.", hint="The file is corrupt.")
    if count:
        last = int(offset) + sum((s - 1) * st for s, st in zip(size, stride, strict=True))
        if int(offset) < 0 or last >= base.size or any(st < 0 for st in stride):
            raise ConversionError("A tensor in the checkpoint points outside its storage.", hint="The file is corrupt.")
        item = base.itemsize
        arr = np.lib.stride_tricks.as_strided(
            base[int(offset):], shape=size, strides=tuple(st * item for st in stride), writeable=False
        )
        arr = np.ascontiguousarray(arr)
    else:
        arr = np.zeros(size, dtype=base.dtype)
    return Tensor(arr, storage.dtype)


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data


def _ordered_dict(*args: Any) -> OrderedDict[Any, Any]:
    return OrderedDict(*args)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): _ordered_dict,
    **{("torch", name): _StorageType(name) for name in STORAGES},
}


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, fp: Any, zf: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(fp)
        self._zf = zf
        self._prefix = prefix
        self._storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise ConversionError(
                f"The checkpoint refers to {module}.{name}, which is not on the allow-list of tensor types; "
                "it was not loaded (it could run code).",
                hint="Only plain state dicts of tensors convert; re-save the model with safetensors.",
                code="unsafe-pickle",
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage" or not isinstance(pid[1], _StorageType):
            raise ConversionError(f"Unsupported persistent id in the checkpoint: {str(pid)[:80]}.",
                                  hint="Only plain state dicts of tensors convert.")
        _, stype, key, _location, numel = pid[:5]
        if str(key) not in self._storages:  # tied weights share one storage
            self._storages[str(key)] = _Storage(self._zf, f"{self._prefix}data/{key}", stype, int(numel))
        return self._storages[str(key)]


_MAX_PKL = 256 << 20


def load_state_dict(path: Path) -> dict[str, Tensor]:
    """Tensors of a torch zip checkpoint, rebuilt into numpy without executing anything from the file."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise ConversionError(
            f"{path} is not a zip-format PyTorch checkpoint (the legacy pre-1.6 format is not supported).",
            hint="Re-save it with a recent torch, or convert it where torch is installed.",
        )
    try:
        with zipfile.ZipFile(path) as zf:
            pkl = [n for n in zf.namelist() if n.endswith("data.pkl")]
            if len(pkl) != 1:
                raise ConversionError(f"{path} has {len(pkl)} data.pkl entries, expected one.", hint="The file is corrupt.")
            prefix = pkl[0][: -len("data.pkl")]
            order = "little"
            if prefix + "byteorder" in zf.namelist():
                with zf.open(prefix + "byteorder") as fp:
                    order = fp.read(16).decode("ascii", "replace").strip()
            if order != "little":
                raise ConversionError(f"{path} is a big-endian checkpoint; not supported.")
            with zf.open(pkl[0]) as fp:
                # pickle pre-allocates whatever length an opcode claims (7 bytes of data.pkl asked
                # for 2 GiB): read it (capped; it holds only the structure, tensors are separate
                # entries) and walk the opcodes, which checks every claim, before unpickling.
                raw = fp.read(_MAX_PKL + 1)
            if len(raw) > _MAX_PKL:
                raise ConversionError(f"{path}: data.pkl is larger than {_MAX_PKL >> 20} MiB.", hint="The file is corrupt.")
            _check_opcodes(raw)
            try:
                obj = _SafeUnpickler(io.BytesIO(raw), zf, prefix).load()
            except ConversionError:
                raise
            except Exception as e:  # a parser of untrusted bytes: any failure means a corrupt file
                raise ConversionError(f"{path}: data.pkl is not a valid tensor state dict ({type(e).__name__}: "
                                      f"{str(e)[:120]}).", hint="The file is corrupt.") from None
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, ValueError, TypeError, OverflowError, RecursionError,
            MemoryError, KeyError, NotImplementedError) as e:
        raise ConversionError(f"{path} could not be read as a PyTorch checkpoint: {e}.", hint="The file is corrupt.") from None
    return _flatten(obj, path)


_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}


def _check_opcodes(raw: bytes) -> None:
    """Walk data.pkl's opcodes before unpickling: every length claim is checked against the data
    (``genops``), and every memo index must be one the pickle could have produced -- the C
    unpickler grows its memo table to the largest index it sees, so ``LONG_BINPUT 2**32-1`` in
    10 bytes would allocate 32 GiB.  A pickler numbers memo entries 0, 1, 2, ...: an index above
    the number of memo writes so far is refused."""
    puts = 0
    for op, arg, _pos in pickletools.genops(raw):
        if op.name in _MEMO_PUT:
            if not isinstance(arg, int) or arg > puts:
                raise ConversionError(f"data.pkl stores memo entry {arg} after {puts} entries; refused (a memo "
                                      "index that large only serves to allocate memory).", hint="The file is corrupt.")
            puts += 1
        elif op.name == "MEMOIZE":
            puts += 1


def _flatten(obj: Any, path: Path) -> dict[str, Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "module"):
            inner = obj.get(key)
            if isinstance(inner, dict) and any(isinstance(v, Tensor) for v in inner.values()):
                obj = inner
                break
        out = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
        if out:
            return out
    raise ConversionError(f"{path} does not contain a state dict of tensors.",
                          hint="Only checkpoints saved as a dict of tensors convert to safetensors.")


def convert_checkpoint(src: Path, dst: Path) -> int:
    """Write ``src``'s tensors to safetensors file ``dst`` and verify them; returns the tensor count."""
    from batuta_sync.convert.st_io import OutTensor, read_header, write_safetensors

    tensors = load_state_dict(src)
    def chunks(a: Any) -> Callable[[], Iterator[bytes]]:
        return lambda: iter([np.ascontiguousarray(a).tobytes()])

    outs = [OutTensor(name, t.dtype, tuple(t.array.shape), chunks(t.array)) for name, t in tensors.items()]
    write_safetensors(dst, outs, {"format": "pt"})
    back = read_header(dst)
    for name, t in tensors.items():
        ref = back.get(name)
        if ref is None or ref.dtype != t.dtype or not np.array_equal(np.asarray(ref.raw()).view(np.uint8).reshape(-1),
                                                                     np.ascontiguousarray(t.array).view(np.uint8).reshape(-1)):
            dst.unlink(missing_ok=True)
            raise ConversionError(f"Verification failed for tensor {name} in {dst}.", hint="Retry; check disk space.")
    return len(tensors)
