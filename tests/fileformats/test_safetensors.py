"""fileformats/safetensors.py: the one header parser, and pull and push agreeing on it."""

from __future__ import annotations

import io
import json
import struct

import pytest

from batuta_sync.fileformats import FormatError
from batuta_sync.fileformats import safetensors as st
from batuta_sync.publish.validate import SafetensorsFormatError, parse_safetensors_header
from batuta_sync.safety import check_safetensors_header, sniff_file_safety
from tests._builders import safetensors_blob as _st

F32_2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


def test_a_valid_header_parses_with_tensors_and_metadata() -> None:
    blob = _st({"__metadata__": {"format": "pt"}, "t": F32_2}, b"\0" * 8)
    h = st.parse_header(blob, len(blob))
    assert h.metadata == {"format": "pt"} and h.data_size == 8
    assert h.tensor("t") == st.TensorInfo("t", "F32", (2,), 0, 8) and h.tensor("x") is None


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (b"\x01", "header-too-small"),
        (struct.pack("<Q", st.MAX_HEADER + 1) + b"{}", "header-too-large"),
        (struct.pack("<Q", 99) + b"{}", "invalid-header-length"),
        (_st(None, raw=b" {}"), "invalid-header-start"),
        (_st(None, raw=b"{\xff}"), "invalid-header-utf8"),
        (_st(None, raw=b'{"a": 1, "a": 2}'), "duplicate-key"),
        (_st(None, raw=b"{"), "invalid-header-deserialization"),
        (_st(None, raw=b"{}\t"), "invalid-header-deserialization"),
        (_st({"__metadata__": {"k": 1}}), "invalid-metadata"),
        (_st({"": F32_2}, b"\0" * 8), "invalid-tensor-name"),
        (_st({"t": 1}), "invalid-header-deserialization"),
        (_st({"t": {"dtype": "F32"}}), "invalid-header-deserialization"),
        (_st({"t": {**F32_2, "x": 1}}, b"\0" * 8), "unknown-field"),
        (_st({"t": {**F32_2, "dtype": "Q9"}}, b"\0" * 8), "invalid-dtype"),
        (_st({"t": {**F32_2, "shape": ["2"]}}, b"\0" * 8), "invalid-shape"),
        (_st({"t": {**F32_2, "shape": [-2]}}, b"\0" * 8), "invalid-shape"),
        (_st({"t": {**F32_2, "shape": [1] * 9}}, b"\0" * 8), "invalid-shape"),
        (_st({"t": {**F32_2, "data_offsets": [0]}}, b"\0" * 8), "invalid-header-deserialization"),
        (_st({"t": {**F32_2, "shape": [2**40, 2**40]}}, b"\0" * 8), "validation-overflow"),
        (_st({"t": {**F32_2, "shape": [2**62]}}, b"\0" * 8), "validation-overflow"),
        (_st({"t": {"dtype": "F4", "shape": [1], "data_offsets": [0, 1]}}, b"\0"), "misaligned-slice"),
        (_st({"t": {**F32_2, "data_offsets": [8, 0]}}, b"\0" * 8), "invalid-offset"),
        (_st({"t": {**F32_2, "data_offsets": [0, 4]}}, b"\0" * 8), "tensor-invalid-info"),
        (_st({"a": F32_2, "b": F32_2}, b"\0" * 8), "invalid-offset"),
        (_st({"t": F32_2}, b"\0" * 4), "invalid-offset"),
        (_st({"t": F32_2}, b"\0" * 9), "metadata-incomplete-buffer"),
    ],
)
def test_each_malformed_header_has_its_reason(blob: bytes, reason: str) -> None:
    with pytest.raises(FormatError) as exc:
        st.parse_header(blob, len(blob))
    assert exc.value.reason == reason and exc.value.detail in str(exc.value)


def test_lenient_accepts_unknown_tensor_fields_only() -> None:
    blob = _st({"t": {**F32_2, "extra": 1}}, b"\0" * 8)
    assert st.parse_header(blob, len(blob), strict=False).tensors
    with pytest.raises(FormatError):
        st.parse_header(blob + b"\0", len(blob) + 1, strict=False)


@pytest.mark.parametrize(
    "blob",
    [
        _st({"t": {"dtype": "F32", "shape": [1] * 9, "data_offsets": [0, 4]}}, b"\0" * 4),  # rank 9
        _st(None, raw=b'{"t": ' + json.dumps(F32_2).encode() + b"}\n", data=b"\0" * 8),  # newline padding
    ],
)
def test_pull_and_push_reject_the_same_files(blob: bytes) -> None:
    """Before fileformats, these passed the pull check (safety) and failed push (validate)."""
    with pytest.raises(SafetensorsFormatError):
        parse_safetensors_header(blob, len(blob))
    assert check_safetensors_header(blob) is not None
    assert sniff_file_safety(blob, "model.safetensors").unsafe


def test_pull_and_push_accept_the_same_dtypes() -> None:
    """C64 was accepted on push and refused on pull; one table now."""
    blob = _st({"z": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8)
    assert parse_safetensors_header(blob, len(blob)).tensors
    assert check_safetensors_header(blob) is None


def test_read_head_reads_the_header_only_when_its_length_is_sane() -> None:
    blob = _st({"t": F32_2}, b"\0" * 8)
    assert st.read_head(io.BytesIO(blob), len(blob)) == blob[:-8]
    huge = struct.pack("<Q", st.MAX_HEADER + 1) + b"{}"
    assert st.read_head(io.BytesIO(huge), len(huge)) == huge[:8]
    assert st.read_head(io.BytesIO(b"\1\2"), 2) == b"\1\2"


def test_header_json_and_detection() -> None:
    blob = _st({"__metadata__": {"k": "v"}})
    assert st.header_json(blob) == {"__metadata__": {"k": "v"}}
    assert st.header_json(b"\1") is None and st.header_json(struct.pack("<Q", 50) + b"{}") is None
    assert st.header_json(_st(None, raw=b"{\xff")) is None and st.header_json(_st([1])) is None
    assert st.looks_like(blob) and not st.looks_like(b"\1" * 9) and not st.looks_like(b"")
    assert st.header_length(b"\1") is None
