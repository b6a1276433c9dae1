"""Header parsers behind the Hub's safetensors/gguf summaries: malformed input never raises."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from batuta_sync.server import meta
from tests._builders import safetensors_blob


def _st(path: Path, header: object, raw: bytes | None = None) -> Path:
    path.write_bytes(safetensors_blob(header, raw=raw))
    return path


@pytest.mark.parametrize(
    "header",
    [
        [1, 2],
        {"t": {"dtype": 5, "shape": [1]}},
        {"t": {"dtype": "F32", "shape": [-1]}},
        {"t": {"dtype": "F32", "shape": ["a"]}},
    ],
)
def test_safetensors_malformed(tmp_path: Path, header: object) -> None:
    assert meta.safetensors_params(_st(tmp_path / "x", header)) is None


def test_safetensors_edge_cases(tmp_path: Path) -> None:
    ok = _st(tmp_path / "ok", {"__metadata__": {"format": "pt"}, "a": {"dtype": "BF16", "shape": []}, "b": 3})
    assert meta.safetensors_params(ok) == {"BF16": 1}
    assert meta.safetensors_params(_st(tmp_path / "bad", None, raw=b"\xff\xfe")) is None
    (tmp_path / "short").write_bytes(b"\x01")
    assert meta.safetensors_params(tmp_path / "short") is None
    (tmp_path / "huge").write_bytes(struct.pack("<Q", 1 << 60))
    assert meta.safetensors_params(tmp_path / "huge") is None
    assert meta.safetensors_params(tmp_path / "missing") is None


def _gguf_bytes(
    kvs: list[tuple[str, int, bytes]], tensors: list[tuple[str, list[int]]], version: int = 3
) -> bytes:
    def s(text: str) -> bytes:
        b = text.encode()
        return struct.pack("<Q", len(b)) + b

    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for key, vtype, payload in kvs:
        out += s(key) + struct.pack("<I", vtype) + payload
    for name, dims in tensors:
        out += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", 0, 0)
    return out


def test_gguf_all_value_types(tmp_path: Path) -> None:
    def st(text: str) -> bytes:
        return struct.pack("<Q", len(text)) + text.encode()

    kvs = [
        ("general.architecture", 8, st("qwen2")),
        ("qwen2.context_length", 4, struct.pack("<I", 4096)),
        ("u8", 0, b"\x01"),
        ("i8", 1, b"\x01"),
        ("u16", 2, b"\0\0"),
        ("i16", 3, b"\0\0"),
        ("i32", 5, b"\0" * 4),
        ("f32", 6, b"\0" * 4),
        ("bool", 7, b"\x01"),
        ("u64", 10, b"\0" * 8),
        ("i64", 11, b"\0" * 8),
        ("f64", 12, b"\0" * 8),
        ("scores", 9, struct.pack("<IQ", 6, 2) + b"\0" * 8),  # float array: skipped by seeking
        ("merges", 9, struct.pack("<IQ", 8, 1) + st("a b")),  # string array not kept
        ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 2) + st("<s>") + st("</s>")),
        ("tokenizer.ggml.bos_token_id", 4, struct.pack("<I", 0)),
        ("tokenizer.ggml.eos_token_id", 4, struct.pack("<I", 9)),  # out of range: omitted
    ]
    p = tmp_path / "m.gguf"
    p.write_bytes(_gguf_bytes(kvs, [("w", [4, 4]), ("b", [4])]))
    assert meta.gguf_summary(p) == {
        "total": 20,
        "architecture": "qwen2",
        "context_length": 4096,
        "bos_token": "<s>",
    }


@pytest.mark.parametrize(
    "data",
    [
        b"GGUF" + struct.pack("<I", 1) + b"\0" * 16,  # version 1 unsupported
        b"GGUF" + struct.pack("<IQQ", 3, 1 << 40, 0),  # absurd counts
        b"GGUF"
        + struct.pack("<IQQ", 3, 0, 1)
        + struct.pack("<Q", 1)
        + b"k"
        + struct.pack("<I", 99),  # bad type
        b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 40),  # absurd string
        b"GGUF"
        + struct.pack("<IQQ", 3, 1, 0)
        + struct.pack("<Q", 1)
        + b"t"
        + struct.pack("<I", 99),  # 99 dims
        b"GGUF"
        + struct.pack("<IQQ", 3, 0, 1)
        + struct.pack("<Q", 1)
        + b"k"
        + struct.pack("<IIQ", 9, 0, 1 << 40),
        b"GGUF" + struct.pack("<I", 3),  # truncated
    ],
)
def test_gguf_malformed(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "x.gguf"
    p.write_bytes(data)
    assert meta.gguf_summary(p) is None


def test_card_helpers() -> None:
    assert meta.front_matter("---\n- a list\n---\n") == {}
    assert meta.front_matter("---\ndate: 2024-01-01\n---\n") == {"date": "2024-01-01"}
    assert meta.front_matter("---x\n---\n") == {}
    assert meta.validate_card_yaml("no card") == ([], [])
    assert meta.validate_card_yaml("---\n- a\n---\n")[0]
    assert meta.validate_card_yaml("---\na: 1\n---\n") == ([], [])
    assert meta.as_str_list(5) == [] and meta.as_str_list(["a", None, 1]) == ["a", "1"]
    tags = meta.derive_tags("dataset", {"license": "mit", "language": "en"}, [], {})
    assert tags == ["language:en", "license:mit", "region:us"]
    assert "gradio" in meta.derive_tags("space", {"sdk": "gradio"}, [], {})
    model_tags = meta.derive_tags("model", {"datasets": ["d"], "base_model": "b/m"}, [], {})
    assert "dataset:d" in model_tags and "base_model:b/m" in model_tags


def test_gitignore_matcher() -> None:
    ig = meta.gitignore_matcher("# comment\n\n*.log\n/build/\ncache/\n!keep.log\ndocs/**/*.tmp\n/top.txt\n")
    assert ig("a.log") and ig("deep/x/a.log") and not ig("keep.log")
    assert ig("build/x.bin") and not ig("src/build")  # folders-only rule, anchored
    assert ig("a/cache/b.txt") and not ig("cache")
    assert ig("docs/a/b/c.tmp") and ig("top.txt") and not ig("sub/top.txt")
    assert not ig("model.safetensors")
