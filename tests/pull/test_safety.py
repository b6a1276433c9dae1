"""SafetyPolicy, classify_file_safety, content sniffing and remote-name validation (pure)."""

from __future__ import annotations

import io
import json
import os
import pickle
import pickletools
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open

from batuta_sync.errors import IntegrityError, UnsafeFileError
from batuta_sync.safety import (
    FileSafety,
    SafetyPolicy,
    UnsafePathError,
    casefold_collisions,
    check_safetensors_header,
    classify_file_safety,
    is_safe_repo_path,
    path_problem,
    pickle_bearing_reason,
    sniff_file_safety,
    unsafe_files_error,
    validate_repo_path,
)
from tests._builders import safetensors_blob as _st

from ._repos import gguf_bytes, safetensors_bytes, torch_zip_bytes


@pytest.mark.parametrize(
    "name",
    [
        "pytorch_model.bin",
        "model.pt",
        "x.pth",
        "a/b.pkl",
        "w.pickle",
        "m.ckpt",
        "est.joblib",
        "training_args.bin",
        "X.BIN",
    ],
)
def test_pickle_extensions_are_unsafe(name: str) -> None:
    assert classify_file_safety(name) is FileSafety.UNSAFE


@pytest.mark.parametrize(
    "name",
    [
        "model.safetensors",
        "m.Q4_K_M.gguf",
        "config.json",
        "a.yaml",
        "b.yml",
        "README.md",
        "tokenizer.model",
        "data/train-00000-of-00001.parquet",
        "model.onnx",
        "merges.txt",
        ".gitattributes",
    ],
)
def test_data_formats_are_safe(name: str) -> None:
    assert classify_file_safety(name) is FileSafety.SAFE


def test_unknown_extension_and_policy_flag() -> None:
    assert classify_file_safety("modeling_custom.py") is FileSafety.UNKNOWN
    assert classify_file_safety("LICENSE") is FileSafety.UNKNOWN
    assert SafetyPolicy.from_flag(False) is SafetyPolicy.SafeOnly
    assert SafetyPolicy.from_flag(True) is SafetyPolicy.AllowUnsafe


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("name", ["model.safetensors", "weights.txt", "x.bin", "config.json"])
def test_renamed_pickle_is_caught_by_content(protocol: int, name: str) -> None:
    payload = pickle.dumps(os.getcwd, protocol=protocol)  # a GLOBAL import: code on load
    v = sniff_file_safety(payload, name)
    assert v.unsafe, (protocol, name)
    assert "pickle" in v.reason


def test_sniffing_never_executes(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    assert list(pickletools.genops(io.BytesIO(payload)))  # a valid protocol-0 pickle
    (tmp_path / "model.safetensors").write_bytes(payload)
    assert sniff_file_safety(tmp_path / "model.safetensors").unsafe
    assert not marker.exists()


def test_torch_zip_tar_and_object_npy_are_unsafe(tmp_path: Path) -> None:
    assert "data.pkl" in sniff_file_safety(torch_zip_bytes(), "model.safetensors").reason
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w") as tf:
        info = tarfile.TarInfo("storages")
        info.size = 4
        tf.addfile(info, io.BytesIO(b"abcd"))
    assert sniff_file_safety(tbuf.getvalue(), "model.ckpt").unsafe
    npy = tmp_path / "x.npy"
    np.save(npy, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert "object" in sniff_file_safety(npy).reason
    ok = tmp_path / "y.npy"
    np.save(ok, np.arange(4))
    assert not sniff_file_safety(ok).unsafe


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def test_webdataset_shard_is_safe_but_tars_carrying_pickles_are_not(tmp_path: Path) -> None:
    """UNS-1: only a legacy torch tar or a tar with pickle members is pickle-bearing; a
    WebDataset shard of images, labels and JSON is data and must not be blocked."""
    shard = _tar({"000001.jpg": b"\xff\xd8\xff", "000001.cls": b"3", "000001.json": b'{"a": 1}'})
    (tmp_path / "train-000.tar").write_bytes(shard)
    assert not sniff_file_safety(tmp_path / "train-000.tar").unsafe
    assert pickle_bearing_reason(shard) is None
    pyd = _tar({"000001.jpg": b"x", "000001.pyd": pickle.dumps({"a": 1})})
    assert "000001.pyd" in (pickle_bearing_reason(pyd) or "")
    legacy = _tar({"sys_info": b"{}", "pickle": b"\x80\x02N.", "storages": b"", "tensors": b""})
    assert "legacy PyTorch" in sniff_file_safety(legacy, "shard.tar").reason
    broken = shard[:600]  # a ustar header whose member data is cut off
    assert "cannot be listed" in (pickle_bearing_reason(broken) or "")


def test_valid_safetensors_and_gguf_pass(tmp_path: Path) -> None:
    p = tmp_path / "model.safetensors"
    p.write_bytes(safetensors_bytes())
    assert check_safetensors_header(p) is None
    assert sniff_file_safety(p).safety is FileSafety.SAFE
    with safe_open(str(p), "np") as f:  # the reference agrees
        assert set(f.keys()) == {"w", "b"}
    assert sniff_file_safety(gguf_bytes(), "m.Q4_K_M.gguf").safety is FileSafety.SAFE
    assert sniff_file_safety(b"GGML" + b"\0" * 20, "m.gguf").unsafe
    assert sniff_file_safety(b"GGUF" + struct.pack("<I", 99), "m.gguf").unsafe
    assert sniff_file_safety(b'{"a": 1}', "config.json").safety is FileSafety.SAFE


F32_2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\x01\x02\x03\x04",
        struct.pack("<Q", 1000) + b"{}",  # header longer than the file
        struct.pack("<Q", 200_000_000) + b"{}",  # > 100 MB
        struct.pack("<Q", 2**64 - 1),
        _st(None, raw=b"\xff\xfe{}"),  # not UTF-8 / not '{'
        _st(None, raw=b'{"a": '),  # truncated JSON
        _st([1, 2]),  # a list
        _st({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}}, b"\0" * 16),  # size mismatch
        _st({"t": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, b"\0" * 8),  # reversed
        _st({"a": F32_2, "b": F32_2}, b"\0" * 8),  # overlapping
        _st({"a": F32_2, "b": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]}}, b"\0" * 24),  # hole
        _st({"t": F32_2}, b"\0" * 9),  # trailing bytes (polyglot)
        _st({"t": {"dtype": "Q99", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8),
        _st({"t": {"dtype": "F32", "shape": [2**62, 8], "data_offsets": [0, 8]}}, b"\0" * 8),
        _st({"t": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8),
        _st({"__metadata__": {"k": 1}, "t": F32_2}, b"\0" * 8),
        _st({"t": {"dtype": "F32", "shape": [2]}}, b"\0" * 8),
        _st(
            None,
            raw=b'{"t": ' + json.dumps(F32_2).encode() + b', "t": ' + json.dumps(F32_2).encode() + b"}",
            data=b"\0" * 8,
        ),
        _st(None, raw=b' {"t": ' + json.dumps(F32_2).encode() + b"}", data=b"\0" * 8),  # leading space
        _st({"t": {**F32_2, "extra": 1}}, b"\0" * 8),
    ],
)
def test_malformed_safetensors_rejected(blob: bytes) -> None:
    assert check_safetensors_header(blob) is not None
    assert sniff_file_safety(blob, "model.safetensors").unsafe


def test_safetensors_with_metadata_and_padding_ok() -> None:
    assert (
        check_safetensors_header(_st({"__metadata__": {"format": "pt"}, "t": F32_2}, b"\0" * 8, pad=b"   "))
        is None
    )


HF_UNSAFE_NAMES = [
    "../../../etc/passwd",
    "folder/../../../etc/passwd",
    "..\\..\\Windows\\evil",
    "folder\\..\\..\\evil",
    "/etc/passwd",
    "C:\\Windows\\System32\\evil",
    "C:/Windows/System32/evil",
    "D:relative\\evil",
    "\\\\attacker\\share\\evil",
    "\\evil",
    "folder/C:\\Windows\\evil",
    "folder/\\\\attacker\\share\\evil",
    "folder/\\evil",
]
MORE_UNSAFE = [
    "a\x00b",
    "a\nb.json",
    "x\x1b[31m.txt",
    "CON",
    "nul.txt",
    "dir/LPT1.bin",
    "trailing.",
    "trailing ",
    "file.txt:stream",
    "a" * 256,
    ".git/config",
    "sub/.git/hooks/post-checkout",
    ".git",
    ".cache/huggingface/x",
    "a//b",
    "./a",
    "a/.",
    "",
]


@pytest.mark.parametrize("name", HF_UNSAFE_NAMES + MORE_UNSAFE)
def test_unsafe_remote_names_rejected(name: str) -> None:
    assert not is_safe_repo_path(name)
    with pytest.raises(UnsafePathError) as exc:
        validate_repo_path(name)
    assert isinstance(exc.value, IntegrityError)
    assert exc.value.exit_code == 11


@pytest.mark.parametrize(
    "name", ["weird but valid/name.txt", "a/b/c.safetensors", "ünïcode.json", ".gitattributes", "x..y"]
)
def test_safe_names_accepted(name: str) -> None:
    assert path_problem(name) is None


def test_symlinked_folder_cannot_lead_outside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(UnsafePathError):
        validate_repo_path("link/x.json", root=root)
    assert validate_repo_path("ok/x.json", root=root) == "ok/x.json"


def test_blocked_listing_names_reason_and_flag() -> None:
    err = unsafe_files_error([("pytorch_model.bin", "PyTorch pickle checkpoint (.bin)")])
    assert isinstance(err, UnsafeFileError) and err.exit_code == 12
    text = err.render()
    assert "pytorch_model.bin" in text and "--allow-unsafe" in text


def test_casefold_collisions() -> None:
    assert casefold_collisions(["README.md", "readme.md", "x"]) == [("README.md", "readme.md")]


_SEED_FILE = safetensors_bytes(16)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pos=st.integers(min_value=0, max_value=len(_SEED_FILE) - 1),
    value=st.integers(min_value=0, max_value=255),
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=len(_SEED_FILE))),
)
def test_differential_with_the_reference_parser(pos: int, value: int, cut: int | None) -> None:
    """Mutated safetensors: whenever the reference implementation rejects, we reject too."""
    from safetensors.numpy import load

    blob = bytearray(_SEED_FILE)
    blob[pos] = value
    data = bytes(blob if cut is None else blob[:cut])
    try:
        load(data)
        reference_ok = True
    except Exception:
        reference_ok = False
    ours = check_safetensors_header(data)
    if not reference_ok:
        assert ours is not None
