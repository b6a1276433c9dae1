"""Format validation: safetensors (22 malformed headers, differential vs the library), GGUF (16 cases),
pickle sniffing, folder checks (config.json, --format, index), hypothesis fuzzing."""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batuta_sync.errors import UnsafeFileError, UsageError, ValidationError
from batuta_sync.publish.validate import (
    GgufFormatError,
    SafetensorsFormatError,
    parse_gguf_bytes,
    parse_safetensors_header,
    read_gguf_strings,
    validate_folder,
    validate_gguf,
    validate_safetensors,
)
from batuta_sync.safety import path_problem as check_repo_path
from batuta_sync.safety import pickle_bearing_reason
from tests._builders import safetensors_blob
from tests.publish.fixtures import make_clean_model, safetensors_bytes


def _st(header: bytes | str | dict | list, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else header.encode() if isinstance(header, str) else None
    return safetensors_blob(header, data, raw=raw)


def _t(dtype: str, shape: list[int], offsets: list[int]) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": offsets}


# name -> (bytes, expected reason, does the reference library (safetensors 0.8) reject it?)
MALFORMED: dict[str, tuple[bytes, str, bool]] = {
    "empty-file": (b"", "header-too-small", True),
    "four-bytes": (b"\x01\x02\x03\x04", "header-too-small", True),
    "header-longer-than-file": (struct.pack("<Q", 1000) + b"{}", "invalid-header-length", True),
    "header-over-100MB": (struct.pack("<Q", 100_000_001) + b"{}", "header-too-large", True),
    "header-len-2**64-1": (struct.pack("<Q", 2**64 - 1) + b"{}", "header-too-large", True),
    "non-utf8": (_st(b'{"a\xff": 1}'), "invalid-header-utf8", True),
    "truncated-json": (_st(b'{"w": {"dtype": "F32"'), "invalid-header-deserialization", True),
    "json-list": (_st(b"[1, 2]"), "invalid-header-start", True),
    "end-beyond-data": (_st({"w": _t("F32", [2], [0, 8])}, b"\x00" * 4), "invalid-offset", True),
    "reversed-offsets": (_st({"w": _t("F32", [1], [4, 0])}, b"\x00" * 4), "invalid-offset", True),
    "overlapping": (
        _st({"a": _t("F32", [2], [0, 8]), "b": _t("F32", [2], [4, 12])}, b"\x00" * 12),
        "invalid-offset",
        True,
    ),
    "hole": (_st({"a": _t("F32", [1], [0, 4]), "b": _t("F32", [1], [8, 12])}, b"\x00" * 12), "invalid-offset", True),
    "trailing-bytes": (_st({"w": _t("F32", [1], [0, 4])}, b"\x00" * 4 + b"PK\x03\x04zip"), "metadata-incomplete-buffer", True),
    "f64-with-f32-size": (_st({"w": _t("F64", [2], [0, 8])}, b"\x00" * 8), "tensor-invalid-info", True),
    "unknown-dtype": (_st({"w": _t("Q99", [1], [0, 4])}, b"\x00" * 4), "invalid-dtype", True),
    "shape-overflow": (_st({"w": _t("F32", [2**62, 8], [0, 4])}, b"\x00" * 4), "validation-overflow", True),
    "negative-dim": (_st({"w": _t("F32", [-1, 4], [0, 4])}, b"\x00" * 4), "invalid-shape", True),
    "metadata-non-string": (_st({"__metadata__": {"a": 1}}), "invalid-metadata", True),
    "missing-offsets": (_st({"w": {"dtype": "F32", "shape": [1]}}, b"\x00" * 4), "invalid-header-deserialization", True),
    # accepted by the reference, rejected by us
    "duplicate-key": (
        _st('{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
            '"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', b"\x00" * 4),
        "duplicate-key",
        False,
    ),
    "leading-whitespace": (_st(' {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', b"\x00" * 4),
                           "invalid-header-start", False),
    "unknown-field": (_st({"w": {**_t("F32", [1], [0, 4]), "extra": 1}}, b"\x00" * 4), "unknown-field", False),
}


def test_twenty_two_malformed_cases() -> None:
    assert len(MALFORMED) == 22


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_safetensors_rejected(name: str, tmp_path: Path) -> None:
    data, reason, _ = MALFORMED[name]
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    with pytest.raises(SafetensorsFormatError) as exc:
        validate_safetensors(path)
    assert exc.value.reason == reason
    assert exc.value.exit_code == 14


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_differential_against_safetensors_library(name: str, tmp_path: Path) -> None:
    from safetensors import safe_open

    data, _, lib_rejects = MALFORMED[name]
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    try:
        with safe_open(str(path), "np") as f:
            list(f.keys())
        rejected = False
    except Exception:
        rejected = True
    assert rejected == lib_rejects  # documents the reference behaviour (3 accepted)
    with pytest.raises(SafetensorsFormatError):  # and we always reject
        validate_safetensors(path)


def test_valid_safetensors_from_the_library(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    path = tmp_path / "m.safetensors"
    save_file({"a": np.zeros((3, 4), np.float32), "b": np.ones(5, np.int64), "e": np.zeros((0, 2), np.float16)},
              str(path), metadata={"format": "np"})
    h = validate_safetensors(path)
    assert {t.name for t in h.tensors} == {"a", "b", "e"}
    assert h.metadata == {"format": "np"}
    assert h.tensor("a") is not None and h.tensor("a").shape == (3, 4)  # type: ignore[union-attr]
    assert h.tensor("zzz") is None


def test_more_safetensors_checks() -> None:
    ok = safetensors_bytes({"w": ("F32", [2])})
    assert parse_safetensors_header(ok, len(ok)).data_size == 8
    for header, reason in (
        ({"w": _t("F32", [1] * 9, [0, 4])}, "invalid-shape"),
        ({"": _t("F32", [1], [0, 4])}, "invalid-tensor-name"),
        ({"w": _t("F4", [3], [0, 2])}, "misaligned-slice"),
        ({"w": "nope"}, "invalid-header-deserialization"),
        ({"w": _t("F32", ["1"], [0, 4])}, "invalid-shape"),
    ):
        data = _st(header, b"\x00" * 4)
        with pytest.raises(SafetensorsFormatError) as exc:
            parse_safetensors_header(data, len(data))
        assert exc.value.reason == reason
    lenient = _st({"w": {**_t("F32", [1], [0, 4]), "extra": 1}}, b"\x00" * 4)
    assert parse_safetensors_header(lenient, len(lenient), lenient=True).tensors


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_safetensors_only_format_errors(data: st.DataObject) -> None:
    seed = safetensors_bytes({"a": ("F32", [2, 3]), "b": ("U8", [5])}, {"k": "v"})
    mutated = bytearray(seed)
    for _ in range(data.draw(st.integers(0, 4))):
        i = data.draw(st.integers(0, len(mutated) - 1))
        mutated[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    blob = bytes(mutated[:cut])
    try:
        parse_safetensors_header(blob, len(blob))
    except SafetensorsFormatError:
        pass


# ------------------------------------------------------------------------------------------------ GGUF


def _s(text: str | bytes) -> bytes:
    b = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(b)) + b


def _kv(key: str, vtype: int, payload: bytes) -> bytes:
    return _s(key) + struct.pack("<I", vtype) + payload


def _tinfo(name: str, dims: list[int], gtype: int, offset: int) -> bytes:
    return _s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + struct.pack(
        "<IQ", gtype, offset
    )


def _gguf(kvs: list[bytes], tinfos: list[bytes], data: bytes = b"", *, version: int = 3, n_kv: int | None = None,
          n_t: int | None = None, magic: bytes = b"GGUF", align: int = 32) -> bytes:
    head = magic + struct.pack("<IQQ", version, len(tinfos) if n_t is None else n_t, len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(tinfos)
    pad = (-len(body)) % align
    return body + b"\x00" * pad + data


NAME_KV = _kv("general.name", 8, _s("tiny"))
F32 = 0
ONE_TENSOR = [_tinfo("w", [4], F32, 0)]
GGUF_MALFORMED: dict[str, tuple[bytes, str]] = {
    "bad-magic": (_gguf([NAME_KV], [], magic=b"GGML"), "bad-magic"),
    "bad-version": (_gguf([NAME_KV], [], version=7), "version"),
    "kv-count-too-big": (_gguf([NAME_KV], [], n_kv=10**12), "kv-count"),
    "tensor-count-too-big": (_gguf([NAME_KV], [], n_t=10**12), "tensor-count"),
    "string-too-long": (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2**40) + b"x" * 64, "string-length"),
    "empty-key": (_gguf([_kv("", 4, struct.pack("<I", 1))], []), "empty-key"),
    "array-too-long": (_gguf([_kv("a", 9, struct.pack("<IQ", 6, 2**40))], []), "array-length"),
    "nested-array": (_gguf([_kv("a", 9, struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 4, 0))], []), "nested-array"),
    "bad-array-type": (_gguf([_kv("a", 9, struct.pack("<IQ", 99, 1) + b"\x00" * 8)], []), "array-type"),
    "unknown-value-type": (_gguf([_kv("a", 42, b"\x00" * 8)], []), "value-type"),
    "duplicate-key": (_gguf([NAME_KV, NAME_KV], []), "duplicate-key"),
    "zero-dims": (_gguf([NAME_KV], [_tinfo("w", [], F32, 0)], b"\x00" * 32), "n-dims"),
    "five-dims": (_gguf([NAME_KV], [_tinfo("w", [1, 1, 1, 1, 1], F32, 0)], b"\x00" * 32), "n-dims"),
    "zero-dimension": (_gguf([NAME_KV], [_tinfo("w", [4, 0], F32, 0)], b"\x00" * 32), "dimension"),
    "size-overflow": (_gguf([NAME_KV], [_tinfo("w", [2**42 + 1, 2**22], F32, 0)], b"\x00" * 32), "overflow"),
    "unknown-ggml-type": (_gguf([NAME_KV], [_tinfo("w", [4], 200, 0)], b"\x00" * 32), "ggml-type"),
    "alignment-not-u32": (_gguf([_kv("general.alignment", 10, struct.pack("<Q", 32))], []), "alignment"),
    "alignment-not-pow2": (_gguf([_kv("general.alignment", 4, struct.pack("<I", 48))], []), "alignment"),
    "alignment-too-big": (_gguf([_kv("general.alignment", 4, struct.pack("<I", 1 << 21))], []), "alignment"),
    "misaligned-offset": (_gguf([NAME_KV], [_tinfo("w", [4], F32, 8)], b"\x00" * 64), "offset"),
    "data-outside-file": (_gguf([NAME_KV], [_tinfo("w", [1024], F32, 0)], b"\x00" * 32), "offset"),
    "overlapping-tensors": (
        _gguf([NAME_KV], [_tinfo("a", [16], F32, 0), _tinfo("b", [16], F32, 32)], b"\x00" * 128),
        "overlap",
    ),
    "duplicate-tensor": (_gguf([NAME_KV], [_tinfo("a", [8], F32, 0), _tinfo("a", [8], F32, 32)], b"\x00" * 64),
                         "duplicate-tensor"),
    "truncated": (_gguf([NAME_KV], [])[:20], "truncated"),
}


@pytest.mark.parametrize("name", sorted(GGUF_MALFORMED))
def test_malformed_gguf_rejected(name: str, tmp_path: Path) -> None:
    data, reason = GGUF_MALFORMED[name]
    with pytest.raises(GgufFormatError) as exc:
        parse_gguf_bytes(data)
    assert exc.value.reason == reason
    (tmp_path / "m.gguf").write_bytes(data)
    with pytest.raises(GgufFormatError):
        validate_gguf(tmp_path / "m.gguf")


def test_handmade_valid_gguf() -> None:
    data = _gguf([NAME_KV, _kv("general.alignment", 4, struct.pack("<I", 32)),
                  _kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 2) + _s("a") + _s("b")),
                  _kv("scores", 9, struct.pack("<IQ", 6, 2) + struct.pack("<ff", 1.0, 2.0))],
                 [_tinfo("a", [8], F32, 0), _tinfo("b", [8], F32, 32)], b"\x00" * 64)
    info = parse_gguf_bytes(data)
    assert [t.name for t in info.tensors] == ["a", "b"]
    assert info.metadata["tokenizer.ggml.tokens"] == ["a", "b"]
    assert dict(read_gguf_strings(io.BytesIO(data), len(data)))["tokenizer.ggml.tokens"] == "a\nb"


def test_gguf_written_by_gguf_library_cross_check(tmp_path: Path) -> None:
    import gguf

    path = tmp_path / "tiny.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_context_length(128)
    w.add_token_list(["<s>", "</s>", "hello"])
    w.add_tensor("token_embd.weight", np.zeros((3, 8), np.float32))
    w.add_tensor("output_norm.weight", np.ones(8, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    ours = validate_gguf(path)
    ref = gguf.GGUFReader(str(path))
    assert sorted(t.name for t in ours.tensors) == sorted(t.name for t in ref.tensors)
    assert {t.name: t.dims for t in ours.tensors}["token_embd.weight"] == (8, 3)
    assert ours.metadata["general.name"] == "tiny"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_gguf_only_format_errors(data: st.DataObject) -> None:
    seed = _gguf([NAME_KV, _kv("a.arr", 9, struct.pack("<IQ", 8, 1) + _s("z"))], [_tinfo("w", [8], F32, 0)],
                 b"\x00" * 32)
    mutated = bytearray(seed)
    for _ in range(data.draw(st.integers(0, 4))):
        i = data.draw(st.integers(0, len(mutated) - 1))
        mutated[i] = data.draw(st.integers(0, 255))
    blob = bytes(mutated[: data.draw(st.integers(0, len(mutated)))])
    try:
        parse_gguf_bytes(blob)
    except GgufFormatError:
        pass


# ------------------------------------------------------------------------------------------------ pickles


def test_pickle_sniffing_catches_renamed_files(tmp_path: Path) -> None:
    payload = pickle.dumps({"a": 1}, protocol=4)
    for name in ("weights.txt", "x.bin", "model.data"):
        (tmp_path / name).write_bytes(payload)
        assert pickle_bearing_reason(tmp_path / name)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
    (tmp_path / "ckpt.zip").write_bytes(buf.getvalue())
    assert pickle_bearing_reason(tmp_path / "ckpt.zip")
    assert pickle_bearing_reason(b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (2,), }")
    assert pickle_bearing_reason(pickle.dumps(Path("x"), protocol=0))
    assert not pickle_bearing_reason(b"I123\n.")  # a bare int pickle imports nothing
    assert not pickle_bearing_reason(b'{"json": true}')
    (tmp_path / "notes.txt").write_text("(just text)")
    assert not pickle_bearing_reason(tmp_path / "notes.txt")


def test_push_allows_a_webdataset_shard_and_blocks_a_tar_with_pickles(tmp_path: Path) -> None:
    import tarfile

    def tar(path: Path, members: dict[str, bytes]) -> None:
        with tarfile.open(path, "w") as tf:
            for name, payload in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))

    root = tmp_path / "ds"
    root.mkdir()
    tar(root / "train-000.tar", {"0.jpg": b"\xff\xd8", "0.cls": b"1"})
    rep = validate_folder(root, ["train-000.tar"], repo_type="dataset")
    assert rep.unsafe == ()
    tar(root / "train-001.tar", {"0.jpg": b"\xff\xd8", "0.pyd": pickle.dumps([1])})
    with pytest.raises(UnsafeFileError, match=r"train-001\.tar"):
        validate_folder(root, ["train-000.tar", "train-001.tar"], repo_type="dataset")


# ------------------------------------------------------------------------------------------------ folder


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_clean_folder_validates(tmp_path: Path) -> None:
    root = make_clean_model(tmp_path / "m")
    rep = validate_folder(root, _files(root), fmt="safetensors")
    assert rep.format == "safetensors" and "model.safetensors" in rep.safetensors and rep.config


def test_folder_problems_collected(tmp_path: Path) -> None:
    root = make_clean_model(tmp_path / "m", vocab_size=100)
    cfg = json.loads((root / "config.json").read_text())
    cfg["vocab_size"] = 99
    cfg["num_hidden_layers"] = 0
    (root / "config.json").write_text(json.dumps(cfg))
    (root / "broken.safetensors").write_bytes(MALFORMED["hole"][0])
    with pytest.raises(ValidationError) as exc:
        validate_folder(root, _files(root), fmt="gguf")
    msg = exc.value.message
    assert "vocab_size is 99" in msg and "num_hidden_layers" in msg and "broken.safetensors" in msg
    assert "--format gguf" in msg


def test_config_required_for_models_only(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (root / "model.safetensors").write_bytes(safetensors_bytes({"w": ("F32", [2])}))
    with pytest.raises(ValidationError, match=r"config\.json is missing"):
        validate_folder(root, ["model.safetensors"])
    assert validate_folder(root, ["model.safetensors"], repo_type="dataset").format == "safetensors"
    (root / "config.json").write_text("[1]")
    with pytest.raises(ValidationError, match="JSON object"):
        validate_folder(root, ["config.json", "model.safetensors"])
    (root / "config.json").write_text("{nope")
    with pytest.raises(ValidationError, match="not valid JSON"):
        validate_folder(root, ["config.json", "model.safetensors"])


def test_sharded_index_consistency(tmp_path: Path) -> None:
    root = make_clean_model(tmp_path / "m", vocab_size=100)
    (root / "model.safetensors").unlink()
    (root / "model-00001-of-00002.safetensors").write_bytes(safetensors_bytes({"a": ("F32", [2])}))
    (root / "model-00002-of-00002.safetensors").write_bytes(safetensors_bytes({"b": ("F32", [2])}))
    index = {"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                                            "b": "model-00002-of-00002.safetensors"}}
    (root / "model.safetensors.index.json").write_text(json.dumps(index))
    validate_folder(root, _files(root))
    index["weight_map"]["c"] = "model-00003-of-00002.safetensors"
    index["weight_map"]["b"] = "model-00001-of-00002.safetensors"
    (root / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValidationError) as exc:
        validate_folder(root, _files(root))
    msg = exc.value.message
    assert "not in the folder" in msg and "not in it" in msg and "not referenced" in msg


def test_pickles_refused_unless_allowed(tmp_path: Path) -> None:
    root = make_clean_model(tmp_path / "m")
    (root / "training_args.bin").write_bytes(pickle.dumps({"lr": 1}, protocol=2))
    (root / "weights.txt").write_bytes(pickle.dumps({"lr": 1}, protocol=4))
    with pytest.raises(UnsafeFileError) as exc:
        validate_folder(root, _files(root))
    assert "training_args.bin" in exc.value.message and "weights.txt" in exc.value.message
    assert exc.value.exit_code == 12
    rep = validate_folder(root, _files(root), allow_unsafe=True)
    assert set(rep.unsafe) == {"training_args.bin", "weights.txt"}


def test_unknown_format_flag(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        validate_folder(tmp_path, [], fmt="onnx")


@pytest.mark.parametrize(
    "bad",
    ["../etc/passwd", "/etc/passwd", "a//b", "folder\\evil", "CON.txt", "a/aux", "trail. ", "x:y", ".git/config",
     "a/.cache/x", "nul\x00byte", "a/./b", "x" * 256],
)
def test_unsafe_repo_paths(bad: str) -> None:
    assert check_repo_path(bad) is not None


def test_safe_repo_paths() -> None:
    assert check_repo_path("weird but valid/name.txt") is None
    assert check_repo_path("a/b/c.safetensors") is None
