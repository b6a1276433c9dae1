"""The converters' GGUF reader (``convert/gguf_read.py`` over ``fileformats.gguf``) agrees with
gguf-py's ``GGUFReader`` field by field and tensor by tensor, and refuses damaged headers."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from batuta_sync.convert import convert
from batuta_sync.convert.gguf_read import Reader
from batuta_sync.errors import ConversionError
from batuta_sync.tinymodel import write_tiny_llama


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("gr")
    src = write_tiny_llama(root / "src")
    return [convert(src, root / f"{q}.gguf", to="gguf", quantization=q).output for q in ("F16", "Q8_0", "Q4_K_M")]


def test_fields_and_tensors_match_gguf_py(ggufs: list[Path]) -> None:
    for path in ggufs:
        ours, theirs = Reader(path), gguf.GGUFReader(path, "r")
        want = {k: f for k, f in theirs.fields.items() if not k.startswith("GGUF.")}
        assert list(ours.fields) == list(want)  # same keys, same order
        for key, f in want.items():
            mine = ours.fields[key]
            assert [t.name for t in mine.types] == [t.name for t in f.types], key
            assert mine.contents() == f.contents(), key
            assert mine.parts[0] == b"".join(bytes(memoryview(p)) for p in f.parts), key
        assert [t.name for t in ours.tensors] == [t.name for t in theirs.tensors]
        for a, b in zip(ours.tensors, theirs.tensors, strict=True):
            assert a.tensor_type == b.tensor_type and list(a.shape) == list(b.shape)
            assert (a.n_elements, a.n_bytes, a.data_offset) == (b.n_elements, b.n_bytes, b.data_offset)
            assert a.data.dtype == b.data.dtype and a.data.shape == b.data.shape
            assert np.array_equal(a.data, b.data), a.name


@pytest.mark.parametrize("cut", [3, 24, 200, -1])
def test_a_damaged_header_is_a_conversion_error(ggufs: list[Path], tmp_path: Path, cut: int) -> None:
    from batuta_sync.convert.split import open_gguf

    data = ggufs[1].read_bytes()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(data[:cut] if cut > 0 else data[:4] + b"\xff\xff\xff\xff" + data[8:])  # cut / bad version
    with pytest.raises(ConversionError, match="not a readable GGUF file"):
        open_gguf(bad)


def test_undecodable_metadata_is_reported_where_it_is_read(ggufs: list[Path], tmp_path: Path) -> None:
    data = bytearray(ggufs[1].read_bytes())
    i = data.find(b"llama")  # the architecture's value: make it invalid UTF-8, same length
    data[i] = 0xFF
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(bytes(data))
    r = Reader(bad)  # the header itself is sound
    key = next(k for k, f in r.fields.items() if f.types[0].name == "STRING" and b"\xff" in f.parts[0])
    with pytest.raises(UnicodeDecodeError):
        r.fields[key].contents()
