"""Published Xet reference vectors (issue 21 point 5), independent of hf_xet.

The spec's own reference files live in the ``xet-team/xet-spec-reference-files`` dataset on
huggingface.co, which this machine cannot reach. These vectors are the ones the Hugging Face
reference implementations publish with their tests: the Rust xet-core values that huggingface.js's
``xetchunk-wasm`` tests pin (chunk boundaries and chunk hashes of 1 MB of splitmix64 data, of
constant data, and of xorshift data that triggers a gear-hash boundary before the minimum chunk
size), and the raw digest / hash string of one chunk (the spec's "converting hashes to strings":
each 8-byte group reversed). Our chunker, hashes and hash-string conversion must reproduce them.
"""

from __future__ import annotations

import hashlib
import struct

from batuta_sync.server.xet import chunking, hashing

_M = (1 << 64) - 1


def splitmix64_bytes(n: int, seed: int) -> bytes:
    """The reference generator: successive splitmix64 outputs, little-endian."""
    out = bytearray()
    s = seed
    while len(out) < n:
        s = (s + 0x9E3779B97F4A7C15) & _M
        z = s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M
        out += struct.pack("<Q", z ^ (z >> 31))
    return bytes(out[:n])


SPLITMIX_BOUNDARIES = [84493, 134421, 144853, 243318, 271793, 336457, 467529, 494581, 582000, 596735, 616815,
                       653164, 678202, 724510, 815591, 827760, 958832, 991092, 1000000]
SPLITMIX_CHUNK_HASHES = [
    "6eca1e7dadaf08cca5d82d318c800f07c2ddcec115a7e8627e5edd9605b94b8d",
    "624ea34d72a06e5d43a1b8dd10763f0d22f165992c397ed97563899b27fdd88a",
    "4411d2ec847c6e3f451a7451ff3933adb4f1c31587421b9f730b698a78313b47",
    "6342bde97433e29e0779ad33eb8040d986679040361b3cc3a06230fe60dd6c9b",
    "405253fcf15bba751adc4f507d3453273daff81ed4d8acd71c521aa1cbddc0b5",
    "4482374af7f8bebfdb5c5df0299f80128d6c58886ad7b218c562b1d74064e4cb",
    "80acc8d39c853b4b8a8c6ad7b63bf2ea68f62c2226b92f06349f92cc84d213cc",
    "a7076d7d343f711fb20fe6cd023248d8d051e8fe7d44172596cd5c7ea7edaf65",
    "44755217bbb4dadc81ea7695765230a34a2e6cb3b55f373f1de35aeba79ae92c",
    "001adc1d302d5f039278325dcbd5ec3b194f4794f1629d6f962f9f4bb78a7bff",
    "f8460a337c186f07c2e225bb287a1d3d3d686dc69d0828e99640f7d8852c5b90",
    "c9bc3da29025dc1ba562d303d815151d9a937367abb766ae842a165e8493d9fe",
    "5044339dfd65e8163bdfe642614a6be604b04d6aeacf222cf219ad287bfc5cf1",
    "163622db0fe0da93f2ef964eed4c485f3c7a9c312f8e8e8a312ab4bb8141f13e",
    "e1730534a858aa0258ad8904ef12b829b8a123a1c611250275c9ca9471e4c650",
    "1fbc6854f9185caba1e1f55393f41f83b895b18f9c99245c029025ca48f1e14b",
    "8a27b66ccf05b864b6bef6fb5c970fe894f73d2330e8e98fe7841dcdbd9e9576",
    "bc70a33e7a9ec820cac24b87023469a57bdae1bf91cc3961b95806c64a525221",
    "03e5b5f5a088269ec4b329f1e04debfac4cb54b9c0facf038f7e8e0f054be7e2",
]


def test_splitmix_data_chunks_and_hashes_match_the_reference() -> None:
    data = splitmix64_bytes(1_000_000, 0)
    assert (data[0], data[127], data[111111]) == (175, 132, 118)  # the generator itself
    assert hashlib.sha256(data).hexdigest() == "b3d0a1f7938cd4d8413a4dcffd4313e2e8ac0cb61cb1090eb140ea8e9154befb"
    assert chunking.chunk_boundaries(data) == SPLITMIX_BOUNDARIES
    got = [hashing.hash_to_hex(hashing.chunk_hash(c)) for c in chunking.chunks(data)]
    assert got == SPLITMIX_CHUNK_HASHES


def test_constant_data_cuts_at_the_maximum_chunk_size() -> None:
    assert chunking.chunk_boundaries(bytes([59]) * 1_000_000) == [
        131072, 262144, 393216, 524288, 655360, 786432, 917504, 1000000]


def test_a_trigger_before_the_minimum_size_is_ignored_as_the_reference_does() -> None:
    data = bytearray(3 * 1024 * 1024)
    state = 0x9E3779B9
    for i in range(len(data)):  # 32-bit xorshift, as the reference test generates it
        state ^= (state << 13) & 0xFFFFFFFF
        state ^= state >> 17
        state ^= (state << 5) & 0xFFFFFFFF
        data[i] = state & 0xFF
    chunks = list(chunking.chunks(bytes(data)))
    assert len(chunks) == 52 and all(len(c) >= 8192 for c in chunks[:-1])
    assert len(chunks[44]) == 131072
    assert hashing.hash_to_hex(hashing.chunk_hash(chunks[44])) == (
        "8ee1833ff616a01e187888865c8e22f403c860b7a6c347ba28c4511995875086")


def test_hash_string_conversion_reverses_each_8_byte_group() -> None:
    raw = hashing.chunk_hash(b"Hello World!")
    assert raw.hex() == "a29cfb08e608d4d8726dd8659a90b9134b3240d5d8e42d5fcb28e2a6e763a3e8"
    text = hashing.hash_to_hex(raw)
    assert text == "d8d408e608fb9ca213b9909a65d86d725f2de4d8d540324be8a363e7a6e228cb"
    assert hashing.hex_to_hash(text) == raw
