"""Conformance of the pure Xet modules: chunk boundaries and hashes agree with the reference
implementation (``hf_xet.hash_files``, the Rust xet-core) on pinned inputs and on random data."""

from __future__ import annotations

import os
import random
from pathlib import Path

import hf_xet
import pytest

from batuta_sync.server.xet import chunking, hashing
from batuta_sync.server.xet.errors import XetError

# file hashes printed by hf_xet 1.8 for these inputs (pinned: they must never change)
VECTORS = {
    "empty": (b"", "0" * 64),
    "hello": (b"hello world", "f15edd43b7e85cfd25e2758ffe13b99fdd09dfa817e8d9f6548722a7a126db7f"),
    "zeros": (bytes(300_000), "3d7bd4178bc2851ba07d59c24c3a88ae0c7220e9920d6c5c6a06b01556d46404"),
    "seeded": (
        random.Random(1).randbytes(1_000_000),
        "a884beadb56048184e8b0a0ba0106b8739b50a866212b0a0dda5d59d0ec03a4a",
    ),
}


def our_file_hash(data: bytes) -> str:
    return hashing.hash_to_hex(
        hashing.file_hash([(hashing.chunk_hash(c), len(c)) for c in chunking.chunks(data)])
    )


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_file_hash_vectors(name: str) -> None:
    data, want = VECTORS[name]
    assert our_file_hash(data) == want


def test_random_data_matches_the_reference_implementation(tmp_path: Path) -> None:
    for i, size in enumerate((1, 8191, 8192, 70_000, 131_072, 131_073, 700_001)):
        data = os.urandom(size) if i % 2 else random.Random(i).randbytes(size)
        p = tmp_path / f"f{i}"
        p.write_bytes(data)
        assert our_file_hash(data) == hf_xet.hash_files([str(p)])[0].hash, size


def test_chunk_sizes_respect_the_spec_bounds() -> None:
    data = random.Random(7).randbytes(2_000_000) + bytes(400_000)
    ends = chunking.chunk_boundaries(data)
    sizes = [b - a for a, b in zip([0, *ends], ends, strict=False)]
    assert ends[-1] == len(data) and all(s <= chunking.MAX_CHUNK_SIZE for s in sizes)
    assert all(s >= chunking.MIN_CHUNK_SIZE for s in sizes[:-1])
    assert sizes[-2] == chunking.MAX_CHUNK_SIZE  # the zero run never triggers a cut: forced at 128 KiB
    assert chunking.chunk_boundaries(b"") == []


def test_hash_string_conversion() -> None:
    raw = bytes(range(32))
    # each 8-byte group is read as a little-endian u64 and printed big-endian
    assert hashing.hash_to_hex(raw) == (
        "0706050403020100" "0f0e0d0c0b0a0908" "1716151413121110" "1f1e1d1c1b1a1918"
    )
    assert hashing.hex_to_hash(hashing.hash_to_hex(raw)) == raw
    for bad in ("", "0" * 63, "G" * 64, "A" * 64, 5):
        with pytest.raises(XetError):
            hashing.hex_to_hash(bad)  # type: ignore[arg-type]
    with pytest.raises(XetError):
        hashing.hash_to_hex(b"short")


def test_merkle_tree_shapes() -> None:
    leaves = [(hashing.chunk_hash(bytes([i])), 1) for i in range(40)]
    assert hashing.merkle_root([]) == hashing.ZERO_HASH and hashing.file_hash([]) == hashing.ZERO_HASH
    assert hashing.merkle_root(leaves[:1]) == leaves[0][0]  # a single leaf is the root
    assert hashing.merkle_root(leaves) != hashing.merkle_root(leaves[:-1])
    assert hashing.merkle_root(leaves) != hashing.merkle_root([(h, 2) for h, _ in leaves])  # sizes count
    assert hashing.xorb_hash(leaves) == hashing.merkle_root(leaves) != hashing.file_hash(leaves)
    assert len(hashing.range_hash([h for h, _ in leaves])) == 32
