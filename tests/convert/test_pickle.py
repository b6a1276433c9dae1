"""PyTorch zip checkpoints -> safetensors without torch, never running pickle code.

The fixtures are real ``torch.save`` zip archives built by hand: ``data.pkl`` is pickled with
stand-in ``torch`` objects (same module and qualified names, so the same GLOBAL opcodes) and the
persistent-id protocol torch uses for storages; storages are the ``data/<key>`` members.
"""

from __future__ import annotations

import io
import json
import pickle
import sys
import types
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from batuta_sync.convert import convert
from batuta_sync.convert.pickle_safe import load_state_dict
from batuta_sync.errors import ConversionError, UnsafeFileError

DTYPE_STORAGE = {"float32": "FloatStorage", "float16": "HalfStorage", "int64": "LongStorage", "bfloat16": "BFloat16Storage"}


@pytest.fixture
def fake_torch() -> Iterator[types.ModuleType]:
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    for name in set(DTYPE_STORAGE.values()):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))

    def _rebuild_tensor_v2(*args: Any) -> None: ...

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    torch._utils = utils  # type: ignore[attr-defined]
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    try:
        yield torch
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class _FakeTensor:
    def __init__(self, torch: Any, key: str, storage_cls: Any, numel: int, offset: int, shape: tuple[int, ...],
                 stride: tuple[int, ...]) -> None:
        self.torch, self.key, self.storage_cls, self.numel = torch, key, storage_cls, numel
        self.offset, self.shape, self.stride = offset, shape, stride

    def __reduce__(self) -> Any:
        storage = _StorageRef(self.key, self.storage_cls, self.numel)
        return (self.torch._utils._rebuild_tensor_v2, (storage, self.offset, self.shape, self.stride, False, OrderedDict()))


class _StorageRef:
    def __init__(self, key: str, cls: Any, numel: int) -> None:
        self.key, self.cls, self.numel = key, cls, numel


class _TorchPickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, _StorageRef):
            return ("storage", obj.cls, obj.key, "cpu", obj.numel)
        return None


def torch_save(path: Path, torch: Any, tensors: dict[str, Any], *, extra: Any = None, wrap: str | None = None) -> None:
    """Write a torch-format zip checkpoint of numpy arrays (dtype name 'bfloat16' = uint16 bits)."""
    storages: dict[str, bytes] = {}
    state: OrderedDict[str, Any] = OrderedDict()
    for i, (name, spec) in enumerate(tensors.items()):
        arr, dtype_name = spec if isinstance(spec, tuple) else (spec, str(spec.dtype))
        key = str(i)
        if isinstance(arr, _Shared):
            state[name] = _FakeTensor(torch, arr.key, getattr(torch, DTYPE_STORAGE[dtype_name]), arr.numel, 0,
                                      arr.shape, arr.stride)
            continue
        base = np.ascontiguousarray(arr)
        flat = np.concatenate([np.zeros(3, base.dtype), base.reshape(-1)])  # storage offset 3
        storages[key] = flat.tobytes()
        st = tuple(s // base.itemsize for s in base.strides)
        state[name] = _FakeTensor(torch, key, getattr(torch, DTYPE_STORAGE[dtype_name]), flat.size, 3, base.shape, st)
    if extra is not None:
        state["extra"] = extra
    obj: Any = {wrap: state, "epoch": 3} if wrap else state
    buf = io.BytesIO()
    _TorchPickler(buf, protocol=2).dump(obj)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", buf.getvalue())
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/version", "3\n")
        for key, data in storages.items():
            zf.writestr(f"archive/data/{key}", data)


class _Shared:
    """A tensor that reuses storage ``key`` (tied weights) with a transposed (non-contiguous) view."""

    def __init__(self, key: str, numel: int, shape: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.key, self.numel, self.shape, self.stride = key, numel, shape, stride


def test_checkpoint_converts_exactly(fake_torch: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 4)).astype(np.float32)
    h = rng.standard_normal((3, 5)).astype(np.float16)
    bf = (rng.standard_normal(7).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    ids = np.arange(5, dtype=np.int64)
    torch_save(tmp_path / "model.bin", fake_torch, {
        "a": a, "h": h, "bf": (bf, "bfloat16"), "ids": ids,
        "a_t": (_Shared("0", a.size + 3, (4, 6), (1, 4)), "float32"),  # a.T sharing a's storage (offset 0 -> zeros)
    }, extra=7)
    with pytest.raises(UnsafeFileError):
        convert(tmp_path / "model.bin", tmp_path / "out", to="safetensors")
    res = convert(tmp_path / "model.bin", tmp_path / "out", to="safetensors", allow_unsafe=True)
    assert res.tensor_count == 5
    from safetensors import safe_open

    from batuta_sync.convert.st_io import read_header

    with safe_open(str(tmp_path / "out" / "model.safetensors"), "np") as f:  # the real reader agrees
        assert f.get_tensor("ids").tolist() == list(range(5))
        np.testing.assert_array_equal(f.get_tensor("a"), a)
    hdr = read_header(tmp_path / "out" / "model.safetensors")
    np.testing.assert_array_equal(hdr["a"].raw(), a)
    np.testing.assert_array_equal(hdr["h"].raw(), h)
    assert hdr["bf"].dtype == "BF16" and np.asarray(hdr["bf"].raw()).tobytes() == bf.tobytes()
    np.testing.assert_array_equal(hdr["ids"].raw(), ids)
    flat = np.concatenate([np.zeros(3, np.float32), a.reshape(-1)])
    np.testing.assert_array_equal(hdr["a_t"].raw(), np.lib.stride_tricks.as_strided(flat, (4, 6), (4, 16)))
    assert "extra" not in hdr


def test_malicious_pickle_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> Any:
            import os

            return (os.system, (f"touch {marker}",))

    buf = io.BytesIO()
    pickle.dump({"w": Evil()}, buf, protocol=2)
    with zipfile.ZipFile(tmp_path / "evil.pt", "w") as zf:
        zf.writestr("archive/data.pkl", buf.getvalue())
    with pytest.raises(ConversionError, match="allow-list") as e:
        convert(tmp_path / "evil.pt", tmp_path / "out", to="safetensors", allow_unsafe=True)
    assert e.value.code == "unsafe-pickle"
    assert not marker.exists()
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_legacy_and_non_state_dict_files(fake_torch: Any, tmp_path: Path) -> None:
    legacy = tmp_path / "old.bin"
    legacy.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(ConversionError, match="legacy"):
        load_state_dict(legacy)
    buf = io.BytesIO()
    pickle.dump([1, 2, 3], buf, protocol=2)
    with zipfile.ZipFile(tmp_path / "list.pt", "w") as zf:
        zf.writestr("archive/data.pkl", buf.getvalue())
    with pytest.raises(ConversionError, match="state dict"):
        load_state_dict(tmp_path / "list.pt")
    torch_save(tmp_path / "missing.pt", fake_torch, {"a": np.ones(3, np.float32)})
    with zipfile.ZipFile(tmp_path / "missing.pt") as zf, zipfile.ZipFile(tmp_path / "cut.pt", "w") as out:
        for n in zf.namelist():
            if not n.startswith("archive/data/"):
                out.writestr(n, zf.read(n))
    with pytest.raises(ConversionError, match="not in the archive"):
        load_state_dict(tmp_path / "cut.pt")


def test_nested_state_dict(fake_torch: Any, tmp_path: Path) -> None:
    torch_save(tmp_path / "ckpt.pt", fake_torch, {"w": np.ones((2, 2), np.float32)}, wrap="state_dict")
    assert list(load_state_dict(tmp_path / "ckpt.pt")) == ["w"]


def test_sharded_pytorch_model_to_safetensors_and_gguf(fake_torch: Any, models: dict[str, Path], tmp_path: Path) -> None:
    """pytorch_model-0000N.bin shards -> safetensors dir (and straight to GGUF): same bytes as from safetensors."""
    import shutil

    from .conftest import hf_weights

    src = models["gqa"]
    weights = {k: v.astype(np.float16) for k, v in hf_weights(src).items()}
    pt = tmp_path / "pt"
    pt.mkdir()
    names = sorted(weights)
    half = len(names) // 2
    wm = {}
    for i, chunk in enumerate((names[:half], names[half:])):
        fname = f"pytorch_model-{i + 1:05d}-of-00002.bin"
        torch_save(pt / fname, fake_torch, {n: weights[n] for n in chunk})
        wm.update(dict.fromkeys(chunk, fname))
    (pt / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": wm}))
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(src / f, pt / f)
    res = convert(pt, tmp_path / "st", to="safetensors", allow_unsafe=True)
    assert res.tensor_count == len(names)
    index = json.loads((tmp_path / "st" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
    a = convert(src, tmp_path / "a.gguf", to="gguf", quantization="Q6_K").output
    b = convert(pt, tmp_path / "b.gguf", to="gguf", quantization="Q6_K", allow_unsafe=True)
    assert b.params["source"] == "pytorch"
    assert _tensor_bytes(a) == _tensor_bytes(b.output)


def _tensor_bytes(path: Path) -> list[bytes]:
    import gguf

    return [np.asarray(t.data).tobytes() for t in gguf.GGUFReader(path).tensors]
