"""Malformed inputs to ``batuta convert`` (issue 13, point 8): every one is a ConversionError (exit 15)
with a clear message, never an internal error or a traceback, and never a large allocation.

Three families, each driven through the CLI: GGUF files (truncated and garbled headers, metadata of
the wrong type, lying tensor infos), model directories (config.json / tokenizer files with wrong
types and missing keys), and PyTorch zip checkpoints (lying sizes, memo bombs, unknown persistent
ids, decompression bombs).  The allocation cases also run in a child process whose address space is
capped, and must fail for the stated reason (not a MemoryError turned into an error).
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from batuta_sync.cli import main

# --------------------------------------------------------------------------- helpers


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(["convert", *args])
    err = capsys.readouterr().err
    return rc, err


def assert_conversion_error(rc: int, err: str, match: str) -> None:
    assert rc == 15, err
    assert "Error [conversion]" in err and "Traceback" not in err and "Internal error" not in err, err
    assert match.lower() in err.lower(), err


@pytest.fixture(scope="module")
def base_gguf(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from batuta_sync.convert import convert

    out = tmp_path_factory.mktemp("malformed") / "base.gguf"
    convert(models["gqa"], out, to="gguf", quantization="F16")
    return out


def rewrite_gguf(src: Path, dst: Path, *, kv: dict[str, Any] | None = None,
                 tensor: Callable[[str, Any], tuple[str, Any] | None] | None = None) -> Path:
    """Copy GGUF ``src`` to ``dst`` with metadata replaced (``key: (value, type, subtype)`` or None to
    drop it) and tensors passed through ``tensor(name, data) -> (name, data) | None``."""
    import gguf

    r = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(dst, r.fields["general.architecture"].contents())
    w.kv_data = [{}]
    kv = kv or {}
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        if k in kv:
            if kv[k] is not None:
                w.add_key_value(k, *kv[k])
            continue
        sub = f.types[-1] if f.types[0] == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(k, f.contents(), f.types[0], sub_type=sub)
    for k, v in kv.items():
        if k not in r.fields and v is not None:
            w.add_key_value(k, *v)
    for t in r.tensors:
        item: tuple[str, Any] | None = (t.name, np.array(t.data))
        if tensor is not None:
            item = tensor(t.name, item[1])
        if item is not None:
            w.add_tensor(item[0], item[1])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst


def _header_end(path: Path) -> tuple[int, int, int]:
    """(end of the fixed header, end of the KV section, start of tensor data)."""
    import gguf

    r = gguf.GGUFReader(path)
    first_ti = min(int(t.field.offset) for t in r.tensors)
    return 24, first_ti, r.data_offset


# --------------------------------------------------------------------------- GGUF headers


def test_truncated_gguf_headers(base_gguf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = base_gguf.read_bytes()
    fixed, kv_end, data = _header_end(base_gguf)
    for cut in (4, 12, fixed + 5, (fixed + kv_end) // 2, kv_end + 7, data - 3, data + 100):
        bad = tmp_path / f"cut{cut}.gguf"
        bad.write_bytes(raw[:cut])
        rc, err = run_cli([str(bad), str(tmp_path / "out"), "--to", "safetensors"], capsys)
        assert_conversion_error(rc, err, "not a readable GGUF file")
        assert not (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.parametrize("offset,value,what", [
    (4, struct.pack("<I", 99), "version"),  # unknown GGUF version
    (8, struct.pack("<Q", 1 << 62), "tensor count"),  # absurd tensor count
    (16, struct.pack("<Q", 1 << 62), "kv count"),  # absurd metadata count
    (24, struct.pack("<Q", 1 << 60), "key length"),  # first key's length beyond the file
])
def test_garbled_gguf_header_fields(base_gguf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], offset: int,
                                    value: bytes, what: str) -> None:
    raw = bytearray(base_gguf.read_bytes())
    raw[offset:offset + len(value)] = value
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(bytes(raw))
    rc, err = run_cli([str(bad), str(tmp_path / "out"), "--to", "safetensors"], capsys)
    assert_conversion_error(rc, err, "not a readable GGUF file")


# --------------------------------------------------------------------------- GGUF metadata types


def _vt() -> Any:
    import gguf

    return gguf.GGUFValueType


@pytest.mark.parametrize("key,value,match", [
    ("general.architecture", lambda VT: ([1, 2], VT.ARRAY, VT.INT32), "ARRAY of INT32, a string was expected"),
    ("general.architecture", None, "'general.architecture' is missing"),
    ("llama.attention.head_count", lambda VT: ("eight", VT.STRING), "an integer was expected"),
    ("llama.attention.head_count", None, "'llama.attention.head_count' is missing"),
    ("llama.attention.head_count_kv", lambda VT: (0, VT.INT32), "outside"),
    ("llama.embedding_length", None, "'llama.embedding_length' is missing"),
    ("llama.feed_forward_length", lambda VT: (1.5, VT.FLOAT32), "an integer was expected"),
    ("llama.block_count", lambda VT: (-3, VT.INT32), "outside"),
    ("llama.rope.freq_base", lambda VT: (float("nan"), VT.FLOAT32), "not a finite number"),
    ("llama.rope.freq_base", lambda VT: ("1e4", VT.STRING), "a number was expected"),
    ("llama.context_length", lambda VT: ([1], VT.ARRAY, VT.INT32), "an integer was expected"),
    ("tokenizer.ggml.tokens", lambda VT: (7, VT.INT32), "an array of str was expected"),
    ("tokenizer.ggml.token_type", lambda VT: ([1, 2], VT.ARRAY, VT.INT32), "token_type has 2 entries"),
    ("tokenizer.ggml.merges", lambda VT: ([1.0], VT.ARRAY, VT.FLOAT32), "an array of str was expected"),
    ("tokenizer.ggml.eos_token_id", lambda VT: (1 << 20, VT.UINT32), "beyond the"),
    ("tokenizer.ggml.add_bos_token", lambda VT: ("yes", VT.STRING), "a boolean was expected"),
    ("tokenizer.chat_template", lambda VT: (3, VT.INT32), "a string was expected"),
])
def test_gguf_metadata_of_the_wrong_type(base_gguf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str,
                                         value: Any, match: str) -> None:
    bad = rewrite_gguf(base_gguf, tmp_path / "bad.gguf", kv={key: None if value is None else value(_vt())})
    rc, err = run_cli([str(bad), str(tmp_path / "out"), "--to", "safetensors"], capsys)
    assert_conversion_error(rc, err, match)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_gguf_string_that_is_not_utf8(base_gguf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = bytearray(base_gguf.read_bytes())
    at = raw.index(b"general.architecture") + len(b"general.architecture") + 4 + 8  # type, length, value
    assert raw[at:at + 5] == b"llama"
    raw[at:at + 2] = b"\xff\xfe"
    (tmp_path / "bad.gguf").write_bytes(bytes(raw))
    rc, err = run_cli([str(tmp_path / "bad.gguf"), str(tmp_path / "out"), "--to", "safetensors"], capsys)
    assert_conversion_error(rc, err, "cannot be decoded")


# --------------------------------------------------------------------------- GGUF tensor infos


def test_gguf_tensor_infos_that_lie(base_gguf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import gguf

    r = gguf.GGUFReader(base_gguf)
    q = next(t for t in r.tensors if t.name == "blk.0.attn_q.weight")
    raw = bytearray(base_gguf.read_bytes())
    # tensor info: name (u64 len + bytes), n_dims u32, dims u64 each, type u32, offset u64
    pos = int(q.field.offset) + 8 + len(q.name)
    n_dims = struct.unpack_from("<I", raw, pos)[0]
    dims_at, type_at = pos + 4, pos + 4 + 8 * n_dims
    cases = {
        "unknown type": (type_at, struct.pack("<I", 250)),
        "offset beyond the file": (type_at + 4, struct.pack("<Q", 1 << 40)),
        "zero dimension": (dims_at, struct.pack("<Q", 0)),
        "five dimensions": (pos, struct.pack("<I", 5)),
    }
    for label, (at, value) in cases.items():
        bad = bytearray(raw)
        bad[at:at + len(value)] = value
        (tmp_path / "bad.gguf").write_bytes(bytes(bad))
        rc, err = run_cli([str(tmp_path / "bad.gguf"), str(tmp_path / "out"), "--to", "safetensors"], capsys)
        assert rc == 15 and "Traceback" not in err and "Internal error" not in err, (label, err)


def test_gguf_heads_that_do_not_divide_the_rows(base_gguf: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    vt = _vt()
    bad = rewrite_gguf(base_gguf, tmp_path / "bad.gguf", kv={"llama.attention.head_count": (7, vt.UINT32),
                                                              "llama.attention.head_count_kv": (7, vt.UINT32)})
    rc, err = run_cli([str(bad), str(tmp_path / "out"), "--to", "safetensors"], capsys)
    assert_conversion_error(rc, err, "does not split into 7 attention heads")


# --------------------------------------------------------------------------- config.json and tokenizer files


@pytest.mark.parametrize("file,edit,match", [
    ("config.json", {"text_config": "abc"}, "'text_config' must be a JSON object"),
    ("config.json", {"num_hidden_layers": 1 << 40}, "'num_hidden_layers' is 1099511627776, outside"),
    ("config.json", {"hidden_size": "256"}, "'hidden_size' is '256', an integer was expected"),
    ("config.json", {"vocab_size": None}, "lacks required keys: vocab_size"),
    ("config.json", {"architectures": [{"x": 1}]}, "Unsupported architecture"),
    ("config.json", {"rms_norm_eps": float("nan")}, "'rms_norm_eps' is nan"),
    ("config.json", {"tie_word_embeddings": "yes"}, "true or false was expected"),
    ("config.json", {"num_hidden_layers": 2.0, "rope_scaling": {"rope_type": 8}}, "'rope_type' is 8, a string"),
    ("config.json", {"rope_scaling": [1]}, "'rope_scaling' is [1], a JSON object was expected"),
    ("config.json", {"rope_scaling": {"rope_type": "llama3", "factor": "x"}}, "'factor' is 'x'"),
    ("config.json", {"rope_scaling": {"rope_type": "llama3", "low_freq_factor": 4, "high_freq_factor": 4}},
     "high_freq_factor 4.0 <= low_freq_factor"),
    ("config.json", {"num_key_value_heads": 3}, "inconsistent sizes"),
    ("tokenizer.json", {"added_tokens": [{"id": 1}]}, "lacks an integer id or a string content"),
    ("tokenizer.json", {"added_tokens": {"a": 1}}, "added_tokens must be a list"),
    ("tokenizer.json", {"post_processor": "x"}, "tokenizer files"),
    ("tokenizer_config.json", {"chat_template": [1]}, "tokenizer files"),
])
def test_model_directories_with_malformed_json(models: dict[str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str], file: str, edit: dict[str, Any],
                                               match: str) -> None:
    d = tmp_path / "model"
    shutil.copytree(models["gqa"], d)
    doc = json.loads((d / file).read_text())
    for k, v in edit.items():
        if v is None:
            doc.pop(k, None)
        else:
            doc[k] = v
    (d / file).write_text(json.dumps(doc))
    rc, err = run_cli([str(d), str(tmp_path / "out.gguf"), "--to", "gguf", "--quantization", "F16"], capsys)
    assert_conversion_error(rc, err, match)
    assert not (tmp_path / "out.gguf").exists()


def test_tokenizer_vocab_with_non_integer_ids(models: dict[str, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "model"
    shutil.copytree(models["gqa"], d)
    doc = json.loads((d / "tokenizer.json").read_text())
    doc["model"]["vocab"]["hello"] = "7"
    (d / "tokenizer.json").write_text(json.dumps(doc))
    rc, err = run_cli([str(d), str(tmp_path / "out.gguf"), "--to", "gguf", "--quantization", "F16"], capsys)
    assert_conversion_error(rc, err, "non-negative integer ids")


# --------------------------------------------------------------------------- PyTorch zip checkpoints


def _int(n: int) -> bytes:
    if 0 <= n < 1 << 31:
        return b"J" + struct.pack("<i", n)  # BININT
    body = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(body)]) + body  # LONG1


def _str(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b  # BINUNICODE


def _tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def tensor_pickle(*, key: str = "0", numel: int = 6, size: tuple[int, ...] = (2, 3), stride: tuple[int, ...] = (3, 1),
                  pid: bytes | None = None, tail: bytes = b"") -> bytes:
    """A protocol-2 ``data.pkl`` holding ``{"w": tensor}`` exactly as torch writes it."""
    if pid is None:
        pid = _tuple(_str("storage"), b"ctorch\nFloatStorage\n", _str(key), _str("cpu"), _int(numel))
    args = _tuple(pid + b"Q", _int(0), _tuple(*map(_int, size)), _tuple(*map(_int, stride)), b"\x89",
                  b"ccollections\nOrderedDict\n)R")
    return b"\x80\x02}" + _str("w") + b"ctorch._utils\n_rebuild_tensor_v2\n" + args + b"R" + tail + b"s."


def checkpoint(path: Path, pkl: bytes, storages: dict[str, bytes] | None = None,
               compress: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/byteorder", "little")
        for key, data in (storages if storages is not None else {"0": np.arange(6, dtype="<f4").tobytes()}).items():
            zf.writestr(f"archive/data/{key}", data, compress_type=compress)
    return path


def test_a_valid_hand_built_checkpoint_converts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The builder itself is right: its unmodified output converts (so the cases below fail for their reason)."""
    src = checkpoint(tmp_path / "ok.bin", tensor_pickle())
    rc, err = run_cli([str(src), str(tmp_path / "out"), "--to", "safetensors", "--allow-unsafe"], capsys)
    assert rc == 0, err
    from batuta_sync.convert.st_io import read_header

    assert read_header(tmp_path / "out" / "model.safetensors")["w"].raw().tolist() == [[0, 1, 2], [3, 4, 5]]


@pytest.mark.parametrize("label,make,match", [
    ("storage smaller than declared", lambda p: checkpoint(p, tensor_pickle(numel=1 << 40)), "declares 1099511627776"),
    ("storage larger than declared", lambda p: checkpoint(p, tensor_pickle(numel=2, size=(2,), stride=(1,))),
     "holds 24 bytes"),
    ("negative numel", lambda p: checkpoint(p, tensor_pickle(numel=-4)), "declares -4"),
    ("stride-0 expansion", lambda p: checkpoint(p, tensor_pickle(size=(1 << 20, 1 << 20), stride=(0, 0))),
     "over a storage of 6 elements"),
    ("tensor past the storage", lambda p: checkpoint(p, tensor_pickle(size=(3, 3), stride=(3, 1))),
     "over a storage of 6 elements"),
    ("missing storage", lambda p: checkpoint(p, tensor_pickle(key="9")), "not in the archive"),
    ("storage key escaping", lambda p: checkpoint(p, tensor_pickle(key="../../data.pkl")), "not in the archive"),
    ("persistent id not a tuple", lambda p: checkpoint(p, tensor_pickle(pid=_str("storage"))),
     "Unsupported persistent id"),
    ("persistent id of another kind", lambda p: checkpoint(p, tensor_pickle(pid=_tuple(_str("module"), _int(1)))),
     "Unsupported persistent id"),
    ("persistent id with a string numel", lambda p: checkpoint(p, tensor_pickle(
        pid=_tuple(_str("storage"), b"ctorch\nFloatStorage\n", _str("0"), _str("cpu"), _str("six")))),
     "not a valid tensor state dict"),
    ("memo bomb", lambda p: checkpoint(p, b"\x80\x02Nr\xff\xff\xff\x0f."), "memo entry 268435455"),
    ("memoized, then a state that is no dict", lambda p: checkpoint(p, b"\x80\x04N\x94r\x01\x00\x00\x00."),
     "does not contain a state dict"),
    ("memo get of nothing", lambda p: checkpoint(p, b"\x80\x02h\x05."), "not a valid tensor state dict"),
    ("BUILD on a tensor", lambda p: checkpoint(p, tensor_pickle(tail=b"}" + _str("dtype") + _str("F64") + b"sb")),
     "modifies a tensor"),
    ("extension code", lambda p: checkpoint(p, b"\x80\x02\x82\x07."), "not a valid tensor state dict"),
    ("decompression bomb", lambda p: checkpoint(p, tensor_pickle(numel=1 << 26, size=(1,), stride=(1,)),
                                                 {"0": bytes(4 << 26)}, compress=zipfile.ZIP_DEFLATED),
     "decompression bomb"),
])
def test_checkpoints_that_lie(tmp_path: Path, capsys: pytest.CaptureFixture[str], label: str,
                              make: Callable[[Path], Path], match: str) -> None:
    src = make(tmp_path / "bad.bin")
    rc, err = run_cli([str(src), str(tmp_path / "out"), "--to", "safetensors", "--allow-unsafe"], capsys)
    assert_conversion_error(rc, err, match)
    assert not (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.parametrize("pkl,storages,match", [
    (b"\x80\x02Nr\xff\xff\xff\x0f.", None, "memo entry"),
    (tensor_pickle(size=(1 << 15, 1 << 15), stride=(0, 0)), None, "over a storage"),
])
def test_allocation_bombs_stay_small_in_a_capped_process(tmp_path: Path, pkl: bytes, storages: Any,
                                                         match: str) -> None:
    """The real CLI in a child whose address space is 1.5 GiB: each bomb (4 GiB if honoured) is refused
    for its stated reason -- not by running out of memory."""
    src = checkpoint(tmp_path / "bomb.bin", pkl, storages)
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29)); "
            "from batuta_sync.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "convert", str(src), str(tmp_path / "out"), "--to",
                           "safetensors", "--allow-unsafe"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 15, proc.stderr
    assert match in proc.stderr and "MemoryError" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
