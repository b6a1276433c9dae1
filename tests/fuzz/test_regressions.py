"""Regression tests for the failures the fuzzers found (each was a crash or a resource blow-up)."""

from __future__ import annotations

import pytest

from tests.fuzz import strategies as S
from tests.fuzz._targets import run_bounded


def test_yaml_alias_bomb_in_hf_yaml_is_refused_quickly() -> None:
    """Was: 9 nested anchors of 9 aliases each ("billion laughs") expanded to ~10^9 nodes:
    minutes of CPU and gigabytes of memory (the OOM killer), from a 400-byte hf.yaml."""
    run_bounded("manifest", S.YAML_BOMB.encode())


@pytest.mark.parametrize(
    "text",
    [S.deep(5000), "- " * 3000 + "x", "a:\n" + "".join("  " * i + "b:\n" for i in range(1, 3000))],
    ids=["flow", "block-seq", "block-map"],
)
def test_deeply_nested_hf_yaml_is_a_manifest_error(text: str) -> None:
    """Was: RecursionError (a traceback) escaped parse_manifest."""
    run_bounded("manifest", text.encode())


@pytest.mark.parametrize("text", [S.deep(100_000), S.deep(100_000, '{"a":', "}")], ids=["array", "object"])
def test_deeply_nested_plan_json_is_a_manifest_error(text: str) -> None:
    """Was: RecursionError escaped Plan.from_json."""
    run_bounded("plan", text.encode())


def test_pickle_frame_with_huge_length_is_a_conversion_error() -> None:
    """Was: OverflowError ("FRAME length exceeds system's maximum") escaped load_state_dict."""
    run_bounded("unpickler", b"\x80\x05\x95" + b"\xff" * 8)


@pytest.mark.parametrize("value", ["true", "3", "[a, b]", "'x'"])
def test_a_section_of_the_wrong_type_is_a_manifest_error(value: str) -> None:
    """Was (found by hypothesis): ``conversions: true`` let AttributeError escape parse_manifest."""
    for section in ("models", "conversions", "publish"):
        run_bounded("manifest", f"version: 1\n{section}: {value}\n".encode())


@pytest.mark.parametrize(
    "pkl",
    [b"\x80\x04B\xff\xff\xff\x7f", b"\x80\x04\x8e\xff\xff\xff\xff\xff\x00\x00\x00", b"\x80\x05\x96\xff\xff\xff\x7f\x00\x00\x00\x00"],
    ids=["binbytes", "binbytes8", "bytearray8"],
)
def test_pickle_length_claims_do_not_allocate(pkl: bytes) -> None:
    """Was (found by hypothesis, full size): a 7-byte data.pkl claiming a 2 GiB BINBYTES made the
    allow-listed torch unpickler allocate 2 GiB (MemoryError or the OOM killer)."""
    run_bounded("unpickler", pkl)
