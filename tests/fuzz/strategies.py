"""Hypothesis strategies for hostile inputs: structured (close to valid, so parsers go deep) and raw."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

SEEDS = Path(__file__).with_name("seeds")

BIG_INTS = st.sampled_from([0, 1, -1, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), 10**30])
INTS = st.one_of(st.integers(-5, 5000), BIG_INTS)
NASTY_STR = st.sampled_from(
    ["", ".", "..", "../../etc/passwd", "/etc/passwd", "C:\\x", "a\\..\\b", ".git/config", "a/./b", "\x00", "a\nb",
     "\u202e", "é" * 3, "x" * 300, "%2e%2e/x", "~/x", "models.llama", "${HOME}", "{{x}}", "*", "**/*", "[", "hf_" + "A" * 34]
)
TEXT = st.one_of(st.text(max_size=40), NASTY_STR)

JSON_SCALARS = st.one_of(st.none(), st.booleans(), INTS, st.floats(allow_nan=True, allow_infinity=True), TEXT)
JSON = st.recursive(
    JSON_SCALARS,
    lambda kids: st.one_of(st.lists(kids, max_size=6), st.dictionaries(TEXT, kids, max_size=6)),
    max_leaves=40,
)


def deep(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


# --------------------------------------------------------------------------- mutation of a valid document


@st.composite
def mutated_json(draw: st.DrawFn, base: Any) -> Any:
    """``base`` with a few values replaced by hostile ones (keys kept, so parsers go deep)."""
    doc = json.loads(json.dumps(base))
    paths: list[list[Any]] = []

    def walk(node: Any, path: list[Any]) -> None:
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, [*path, k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, [*path, i])

    walk(doc, [])
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(paths))
        value = draw(JSON)
        if not path:
            return value
        node = doc
        try:
            for k in path[:-1]:
                node = node[k]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    return doc


def _byte_mutations(data: bytes) -> st.SearchStrategy[bytes]:
    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        b = bytearray(data)
        for _ in range(draw(st.integers(1, 6))):
            op = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
            if not b:
                break
            i = draw(st.integers(0, len(b) - 1))
            if op == "flip":
                b[i] = draw(st.integers(0, 255))
            elif op == "cut":
                del b[i : i + draw(st.integers(1, 64))]
            elif op == "insert":
                b[i:i] = draw(st.binary(max_size=16))
            else:
                b[i:i] = b[i : i + draw(st.integers(1, 256))]
        return bytes(b)

    return mutate()


# --------------------------------------------------------------------------- per target

MANIFEST_OK = {
    "version": 1,
    "defaults": {"endpoint": "http://127.0.0.1:9"},
    "models": {"llama": {"repo": "org/tiny", "revision": "main", "include": ["*.json"], "output": "./m"}},
    "datasets": {"d": {"repo": "org/data", "split": "train"}},
    "conversions": {"q": {"from": "models.llama", "to": "gguf", "quantization": "Q4_K_M", "output": "./g"}},
    "publish": {"p": {"from": "conversions.q", "repo": "org/out", "type": "model", "card": {"license": "mit"}}},
    "policies": {"jobs": 4, "max_cache_size": "50GB", "materialize": "copy"},
}

YAML_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


def manifests() -> st.SearchStrategy[bytes]:
    import yaml

    structured = mutated_json(MANIFEST_OK).map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode())
    return st.one_of(
        structured,
        st.just(json.dumps(MANIFEST_OK).encode()).flatmap(_byte_mutations),
        st.binary(max_size=512),
        st.sampled_from([YAML_BOMB.encode(), deep(5000).encode(), ("- " * 3000 + "x").encode(),
                         b"!!python/object/apply:os.system ['true']", b"a: !!binary AAAA\n", b"\xff\xfe\x00"]),
    )


def lockfiles() -> st.SearchStrategy[bytes]:
    seed = (SEEDS / "hf.lock").read_bytes()
    return st.one_of(
        _byte_mutations(seed),
        st.binary(max_size=512),
        st.sampled_from([seed.replace(b"831936", b"-1"), seed.replace(b"831936", str(2**70).encode()),
                         seed.replace(b'"README.md"', b'"../../etc/passwd"'), YAML_BOMB.encode(),
                         b"version: 1\nresources:\n" + deep(3000, "{", "}").encode()]),
    )


def plans() -> st.SearchStrategy[bytes]:
    from batuta_sync.core.planner.plan import MAC_FIELD, plan_mac
    from tests.fuzz._targets import FUZZ_PLAN_KEY

    base = json.loads((SEEDS / "plan.json").read_text())

    def sign(d: Any) -> bytes:
        if isinstance(d, dict):
            try:
                d = {**d, MAC_FIELD: plan_mac(d, FUZZ_PLAN_KEY)}
            except (TypeError, ValueError):
                pass
        return _dumps(d)

    return st.one_of(
        mutated_json(base).map(sign),
        st.just(sign(base)).flatmap(_byte_mutations),
        JSON.map(_dumps),
        st.sampled_from([deep(100_000).encode(), deep(100_000, '{"a":', "}").encode(), b"[" * 10**6, b"1e999999"]),
    )


DTYPES = st.one_of(st.sampled_from(["F32", "F16", "BF16", "I8", "U8", "I64", "BOOL", "F8_E4M3", "F64"]), TEXT)


@st.composite
def safetensors_files(draw: st.DrawFn) -> bytes:
    header: dict[str, Any] = {}
    if draw(st.booleans()):
        header["__metadata__"] = draw(st.one_of(st.dictionaries(TEXT, TEXT, max_size=3), JSON))
    offset = 0
    for _ in range(draw(st.integers(0, 4))):
        name = draw(TEXT)
        shape = draw(st.lists(INTS, max_size=4))
        n = draw(st.one_of(st.integers(0, 64), INTS))
        start = draw(st.one_of(st.just(offset), INTS))
        header[name] = {"dtype": draw(DTYPES), "shape": shape, "data_offsets": draw(st.one_of(st.just([start, start + n if isinstance(n, int) else n]), JSON))}
        if draw(st.booleans()):
            header[name][draw(TEXT)] = draw(JSON)
        offset = start + n if isinstance(n, int) and isinstance(start, int) else offset
    raw = json.dumps(header, allow_nan=True).encode()
    if draw(st.booleans()):
        raw = raw + b" " * draw(st.integers(0, 7))
    length = draw(st.one_of(st.just(len(raw)), INTS.map(lambda x: x % 2**64)))
    body = draw(st.binary(max_size=256))
    return struct.pack("<Q", length) + raw + body


GGUF_TYPES = st.one_of(st.integers(0, 13), st.integers(14, 2**32 - 1))


@st.composite
def gguf_files(draw: st.DrawFn) -> bytes:
    out = bytearray(b"GGUF" if draw(st.integers(0, 9)) else draw(st.binary(min_size=4, max_size=4)))
    out += struct.pack("<I", draw(st.sampled_from([1, 2, 3, 4, 0, 2**31])))
    n_tensors = draw(st.one_of(st.integers(0, 4), BIG_INTS.map(lambda x: x % 2**64)))
    n_kv = draw(st.one_of(st.integers(0, 6), BIG_INTS.map(lambda x: x % 2**64)))
    out += struct.pack("<QQ", n_tensors, n_kv)

    def string(s: bytes) -> bytes:
        ln = draw(st.one_of(st.just(len(s)), BIG_INTS.map(lambda x: x % 2**64)))
        return struct.pack("<Q", ln) + s

    for _ in range(min(n_kv, 6)):
        out += string(draw(st.binary(max_size=24)))
        vtype = draw(GGUF_TYPES)
        out += struct.pack("<I", vtype % 2**32)
        if vtype == 8:
            out += string(draw(st.binary(max_size=24)))
        elif vtype == 9:
            out += struct.pack("<I", draw(GGUF_TYPES) % 2**32)
            out += struct.pack("<Q", draw(st.one_of(st.integers(0, 8), BIG_INTS.map(lambda x: x % 2**64))))
            out += draw(st.binary(max_size=64))
        else:
            out += draw(st.binary(min_size=0, max_size=8))
    for _ in range(min(n_tensors, 4)):
        out += string(draw(st.binary(max_size=16)))
        n_dims = draw(st.one_of(st.integers(0, 4), st.integers(5, 2**32 - 1)))
        out += struct.pack("<I", n_dims)
        for _ in range(min(n_dims, 4)):
            out += struct.pack("<Q", draw(st.one_of(st.integers(0, 64), BIG_INTS.map(lambda x: x % 2**64))))
        out += struct.pack("<IQ", draw(GGUF_TYPES) % 2**32, draw(BIG_INTS.map(lambda x: x % 2**64)))
    out += draw(st.binary(max_size=128))
    return bytes(out)


PICKLE_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20), st.binary(max_size=20)),
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8), kids, max_size=4),
                           st.tuples(kids, kids)),
    max_leaves=20,
)
EVIL = [
    b"cos\nsystem\n(S'touch /tmp/batuta-fuzz-pwned'\ntR.",
    b"cbuiltins\nexec\n(S'open(\"/tmp/batuta-fuzz-pwned\",\"w\")'\ntR.",
    b"\x80\x04\x95\x1a\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94\x8c\x04true\x94\x85\x94R\x94.",
    b"ctorch._utils\n_rebuild_tensor_v2\n(I1\nI2\ntR.",
    b"(" * 100_000 + b".",
    b"]" + b"q\x00" * 20_000 + b".",
    b"\x80\x05\x95" + b"\xff" * 8,
]


def pickles() -> st.SearchStrategy[bytes]:
    valid = st.tuples(PICKLE_VALUES, st.integers(0, 5)).map(lambda t: pickle.dumps(t[0], protocol=t[1]))
    return st.one_of(valid, valid.flatmap(_byte_mutations), st.sampled_from(EVIL), st.binary(max_size=512))


NOTEBOOK = {
    "cells": [
        {"cell_type": "code", "source": ["import os\n", "print(1)\n"], "outputs": [{"output_type": "stream", "text": ["1\n"]}]},
        {"cell_type": "markdown", "source": "# title"},
    ],
    "metadata": {"kernelspec": {"name": "python3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def notebooks() -> st.SearchStrategy[bytes]:
    return st.one_of(
        mutated_json(NOTEBOOK).map(_dumps),
        JSON.map(_dumps),
        st.sampled_from([deep(100_000).encode(), ('{"cells":' + deep(50_000) + "}").encode(), b'{"cells": "' + b"A" * 100_000 + b'"}']),
        st.binary(max_size=256),
    )


HUB_INFO = {
    "id": "evil/repo",
    "sha": "a" * 40,
    "private": False,
    "siblings": [{"rfilename": "config.json"}, {"rfilename": "model.safetensors", "size": 10, "lfs": {"sha256": "b" * 64, "size": 10}}],
    "cardData": {"license": "mit", "dataset_info": {"splits": [{"name": "train", "num_examples": 3}]}},
    "safetensors": {"parameters": {"F32": 10}, "total": 10},
    "gguf": {"total": 5, "architecture": "llama"},
    "tags": ["x"],
    "downloads": 1,
}
HUB_TREE = [
    {"type": "file", "path": "config.json", "size": 10, "oid": "c" * 40},
    {"type": "file", "path": "model.safetensors", "size": 10, "oid": "d" * 40, "lfs": {"oid": "e" * 64, "size": 10}},
    {"type": "directory", "path": "sub", "oid": "f" * 40},
]


def hub_json() -> st.SearchStrategy[bytes]:
    return st.one_of(
        mutated_json(HUB_INFO).map(_dumps),
        mutated_json(HUB_TREE).map(_dumps),
        JSON.map(_dumps),
    )
