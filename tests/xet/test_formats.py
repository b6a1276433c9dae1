"""Xorb and shard parsing: round trips, and every malformed or lying object refused with XetError."""

from __future__ import annotations

import io
import os
import struct

import pytest

from batuta_sync.server.xet import shard, xorb
from batuta_sync.server.xet.errors import XetError
from batuta_sync.server.xet.hashing import BOOKEND_HASH


def _chunks() -> list[bytes]:
    return [os.urandom(40_000), bytes(60_000), (b"abcd" * 9000)[:35_999], os.urandom(10)]


def _parse(data: bytes, expected: bytes | None = None) -> xorb.XorbIndex:
    return xorb.parse_xorb(io.BytesIO(data).read, len(data), expected)


@pytest.mark.parametrize("scheme", [xorb.NONE, xorb.LZ4, xorb.BG4_LZ4])
@pytest.mark.parametrize("footer", [True, False])
def test_xorb_round_trip(scheme: int, footer: bool) -> None:
    chunks = _chunks()
    h, data = xorb.serialize_xorb(chunks, scheme, footer)
    sink = bytearray()
    index = xorb.parse_xorb(io.BytesIO(data).read, len(data), h, sink.extend)
    assert index.hash == h and bytes(sink) == data
    assert [c.unpacked_len for c in index.chunks] == [len(c) for c in chunks]
    assert index.unpacked_starts() == [0, 40_000, 100_000, 135_999]
    for c, want in zip(index.chunks, chunks, strict=True):
        raw = data[c.offset : c.offset + c.packed_len]
        assert xorb.decode_chunk(raw[4], raw[8:], c.unpacked_len) == want
    if scheme != xorb.NONE:
        assert index.data_len < sum(len(c) for c in chunks)  # the zeros compressed


def _set(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new) :]


def test_hostile_xorbs_are_refused() -> None:
    chunks = _chunks()
    h, data = xorb.serialize_xorb(chunks, xorb.LZ4)
    n_chunk_bytes = _parse(data).data_len
    other, _ = xorb.serialize_xorb(chunks[:2], xorb.LZ4)
    bad = {
        "hash does not match its chunks": (data, other),
        "flipped payload byte": (_set(data, 20, bytes([data[20] ^ 1])), h),
        "header version": (_set(data, 0, b"\x07"), None),
        "unknown scheme": (_set(data, 4, b"\x09"), None),
        "truncated": (data[: n_chunk_bytes - 5], None),
        "unpacked size lie": (_set(data, 5, (39_999).to_bytes(3, "little")), None),
        "oversize chunk": (_set(data, 5, (200_000).to_bytes(3, "little")), None),
        "footer lies about a chunk hash": (_set(data, n_chunk_bytes + 60, b"\x00" * 4), None),
        "footer truncated": (data[:-4], None),
        "trailing garbage": (data[:n_chunk_bytes] + b"\x00\x01\x02", None),
        "empty": (b"", None),
    }
    for what, (blob, expect) in bad.items():
        with pytest.raises(XetError):
            _parse(blob, expect)
            pytest.fail(what)
    raw = bytes((0,)) + (5).to_bytes(3, "little") + bytes((0,)) + (6).to_bytes(3, "little") + b"12345"
    with pytest.raises(XetError, match="different packed"):
        _parse(raw)
    lz = bytes((0,)) + (9).to_bytes(3, "little") + bytes((1,)) + (6).to_bytes(3, "little") + b"notlz4!!!"
    with pytest.raises(XetError, match="decompress"):
        _parse(lz)
    with pytest.raises(XetError):
        xorb.parse_xorb(io.BytesIO(data).read, xorb.MAX_XORB_BYTES + 1)


def _files_and_xorbs() -> tuple[list[shard.FileInfo], list[shard.XorbInfo]]:
    seg = shard.Segment(b"x" * 32, 100, 0, 2)
    files = [shard.FileInfo(b"f" * 32, (seg,), (b"v" * 32,), b"s" * 32), shard.FileInfo(b"g" * 32, (seg,), None, None)]
    xorbs = [shard.XorbInfo(b"x" * 32, (shard.XorbChunk(b"c" * 32, 0, 60), shard.XorbChunk(b"d" * 32, 60, 40)), 100, 120)]
    return files, xorbs


@pytest.mark.parametrize("footer", [True, False])
def test_shard_round_trip(footer: bool) -> None:
    files, xorbs = _files_and_xorbs()
    parsed = shard.parse_shard(shard.serialize_shard(files, xorbs, footer=footer))
    assert parsed == shard.Shard(tuple(files), tuple(xorbs))


def test_hostile_shards_are_refused() -> None:
    files, xorbs = _files_and_xorbs()
    good = shard.serialize_shard(files, xorbs)
    first_file = shard.ENTRY
    bad = {
        "tag": _set(good, 0, b"X"),
        "version": _set(good, 32, struct.pack("<Q", 3)),
        "footer size": _set(good, 40, struct.pack("<Q", 7)),
        "unknown file flag": _set(good, first_file + 32, struct.pack("<I", 1)),
        "zero segments": _set(good, first_file + 36, struct.pack("<I", 0)),
        "too many segments": _set(good, first_file + 36, struct.pack("<I", shard.MAX_SEGMENTS + 1)),
        "missing bookend": good[: -shard.ENTRY],
        "trailing bytes": good + b"\x00" * 5,
        "short": good[:20],
    }
    for what, blob in bad.items():
        with pytest.raises(XetError):
            shard.parse_shard(blob)
            pytest.fail(what)
    no_xorb_entries = bytearray(shard.serialize_shard([], xorbs))
    struct.pack_into("<I", no_xorb_entries, shard.ENTRY * 2 + 36, 0)
    with pytest.raises(XetError, match="chunks"):
        shard.parse_shard(bytes(no_xorb_entries))
    with pytest.raises(XetError):
        shard.parse_shard(b"\x00" * (shard.MAX_SHARD_BYTES + 1))
    with pytest.raises(XetError):
        shard.serialize_shard([shard.FileInfo(b"f" * 32, (shard.Segment(b"x" * 32, -1, 0, 1),), None, None)], [])
    assert BOOKEND_HASH in good
