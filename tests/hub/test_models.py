"""Pure translation of Hub JSON into the spec's data model, size expressions, formatting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batuta_sync._fmt import human_bytes as human_size
from batuta_sync.errors import UsageError
from batuta_sync.hub.models import (
    FeatureType,
    GgufInfo,
    HfDatasetInfo,
    HfModelInfo,
    HfSpaceInfo,
    SafetensorsInfo,
    SortKey,
    SpaceSdk,
    SpaceStatus,
    UserInfo,
    files_from_siblings,
    files_from_tree,
    info_from_json,
    parse_size_expr,
    weight_sizes,
)
from batuta_sync.types import HfAssetType, RepoFile

MODEL = {
    "id": "meta-llama/Llama-2-7b-hf",
    "sha": "a" * 40,
    "pipeline_tag": "text-generation",
    "tags": ["transformers", "safetensors", 3],
    "downloads": 1234,
    "likes": "56",
    "library_name": "transformers",
    "model-index": [{"name": "llama", "results": [{"task": {"type": "text-generation"}}, "junk"]}],
    "safetensors": {"parameters": {"F16": 6_738_415_616, "F32": 10}, "total": 6_738_415_626},
    "gguf": {
        "total": 7,
        "architecture": "llama",
        "context_length": 4096,
        "chat_template": "t",
        "bos_token": "<s>",
        "eos_token": "</s>",
    },
    "siblings": [
        {
            "rfilename": "model.safetensors",
            "size": 10,
            "blobId": "b" * 40,
            "lfs": {"sha256": "c" * 64, "size": 10},
        },
        {"rfilename": "config.json", "size": 2, "blobId": "d" * 40},
    ],
    "private": True,
    "gated": "manual",
    "lastModified": "2024-01-01T00:00:00.000Z",
}


def test_model_info_every_field() -> None:
    m = HfModelInfo.from_json(MODEL)
    assert m.id == "meta-llama/Llama-2-7b-hf" and m.author == "meta-llama"
    assert m.sha == "a" * 40 and m.pipeline_tag == "text-generation"
    assert m.tags == ("transformers", "safetensors") and m.downloads == 1234 and m.likes == 56
    assert m.library_name == "transformers"
    assert m.model_index and m.model_index[0].name == "llama" and len(m.model_index[0].results) == 1
    assert m.safetensors == SafetensorsInfo({"F16": 6_738_415_616, "F32": 10}, 6_738_415_626)
    assert m.gguf == GgufInfo(7, "llama", 4096, "t", "<s>", "</s>")
    assert [f.path for f in m.files] == ["config.json", "model.safetensors"]
    assert m.files[1].sha256 == "c" * 64 and m.files[1].is_lfs and not m.files[0].is_lfs
    assert m.private and m.gated == "manual"
    doc = m.to_json()
    assert doc["type"] == "model" and doc["safetensors"]["total"] == 6_738_415_626
    assert doc["files"][0] == {"path": "config.json", "size": 2, "blob_id": "d" * 40, "sha256": None}


def test_model_info_tolerates_missing_and_wrong_fields() -> None:
    m = HfModelInfo.from_json(
        {"modelId": "x/y", "downloads": None, "likes": 2.7, "tags": "one", "siblings": "no", "gated": True}
    )
    assert m.id == "x/y" and m.author == "x" and m.downloads == 0 and m.likes == 2 and m.tags == ("one",)
    assert (
        m.safetensors is None
        and m.gguf is None
        and m.model_index is None
        and m.files == ()
        and m.gated == "auto"
    )
    assert HfModelInfo.from_json(None).id == ""
    assert HfModelInfo.from_json(
        {"id": "solo", "safetensors": {"parameters": {"BF16": "5"}}}
    ).safetensors == SafetensorsInfo({"BF16": 5}, 5)


def test_dataset_info_from_card() -> None:
    data = {
        "id": "mozilla/cv",
        "tags": ["language:en", "size_categories:1M<n<10M"],
        "description": "Speech.",
        "cardData": {
            "citation": "@misc{cv}",
            "language": ["en", "de"],
            "dataset_info": [
                {
                    "config_name": "default",
                    "features": [
                        {"name": "text", "dtype": "string"},
                        {"name": "label", "class_label": {"names": {"1": "pos", "0": "neg"}}},
                        {"name": "tokens", "sequence": "int32"},
                        {"name": "items", "list": {"dtype": "string"}},
                        {"name": "meta", "struct": [{"name": "a", "dtype": "int8"}]},
                        {"name": "img", "image": {}},
                        {"name": "custom", "_type": "Audio"},
                        {"name": "odd"},
                    ],
                    "splits": [{"name": "train", "num_examples": 10, "num_bytes": 100}, "junk"],
                    "download_size": 50,
                    "dataset_size": 100,
                },
                {"config_name": "other", "download_size": 5, "dataset_size": 7},
            ],
        },
    }
    d = HfDatasetInfo.from_json(data)
    assert d.author == "mozilla" and d.description == "Speech." and d.citation == "@misc{cv}"
    assert [(s.name, s.num_examples, s.num_bytes) for s in d.splits] == [("train", 10, 100)]
    assert {k: str(v) for k, v in d.features.items()} == {
        "text": "string",
        "label": "ClassLabel(neg, pos)",
        "tokens": "Sequence(int32)",
        "items": "List(string)",
        "meta": "struct",
        "img": "Image",
        "custom": "Audio",
        "odd": "unknown",
    }
    assert d.size_bytes == 107 and d.download_size == 55
    assert d.size_categories == ("1M<n<10M",) and d.languages == ("en", "de")
    assert d.to_json()["features"]["label"] == "ClassLabel(neg, pos)"


def test_dataset_info_dict_features_and_top_level_block() -> None:
    d = HfDatasetInfo.from_json(
        {
            "id": "a/b",
            "dataset_info": {
                "features": {"x": {"dtype": "float32"}},
                "splits": [{"name": "t", "num_bytes": 9}],
            },
        }
    )
    assert str(d.features["x"]) == "float32" and d.size_bytes == 9 and d.download_size == 0
    assert FeatureType("Value").__str__() == "Value"


def test_space_info_and_enums() -> None:
    s = HfSpaceInfo.from_json(
        {
            "id": "a/s",
            "sdk": "Gradio",
            "runtime": {"stage": "running", "hardware": {"current": None, "requested": "t4"}},
        }
    )
    assert s.sdk is SpaceSdk.GRADIO and s.status is SpaceStatus.RUNNING and s.hardware == "t4"
    s2 = HfSpaceInfo.from_json({"id": "a/t", "cardData": {"sdk": "docker"}, "runtime": {"hardware": "cpu"}})
    assert s2.sdk is SpaceSdk.DOCKER and s2.hardware == "cpu" and s2.status is SpaceStatus.UNKNOWN
    assert SpaceSdk.parse("weird") is SpaceSdk.UNKNOWN
    assert s.to_json()["sdk"] == "gradio" and s.to_json()["status"] == "RUNNING"
    assert isinstance(info_from_json(HfAssetType.SPACE, {}), HfSpaceInfo)
    assert isinstance(info_from_json(HfAssetType.DATASET, {}), HfDatasetInfo)
    assert isinstance(info_from_json(HfAssetType.MODEL, {}), HfModelInfo)


def test_user_info() -> None:
    u = UserInfo.from_json(
        {
            "name": "alice",
            "fullname": "Alice",
            "orgs": [{"name": "acme"}, {}],
            "auth": {"accessToken": {"displayName": "ci", "role": "write"}},
        }
    )
    assert u == UserInfo("alice", "Alice", "user", None, ("acme",), "ci", "write")
    assert u.to_json()["orgs"] == ["acme"]


def test_tree_and_sibling_translation() -> None:
    entries = [
        {"type": "directory", "path": "a", "oid": "0" * 40, "size": 0},
        {"type": "file", "path": "a/w.bin", "oid": "1" * 40, "size": 5, "lfs": {"oid": "2" * 64, "size": 5}},
        {"type": "file", "path": "b.txt", "oid": "3" * 40, "size": 1},
    ]
    assert files_from_tree(entries) == [
        RepoFile("a/w.bin", 5, "1" * 40, "2" * 64),
        RepoFile("b.txt", 1, "3" * 40),
    ]
    assert files_from_tree("bad") == []
    assert files_from_siblings([{"rfilename": ""}, {"rfilename": "x", "lfs": {"size": 3}}]) == (
        RepoFile("x", 3, ""),
    )


@pytest.mark.parametrize(
    ("expr", "kind", "cats"),
    [
        (">1GB", "bytes", ()),
        ("<100MB", "bytes", ()),
        (">=2GiB", "bytes", ()),
        ("1GB-10GB", "bytes", ()),
        ("500 bytes-1KB", "bytes", ()),
        ("10K-100K", "rows", ("10K<n<100K",)),
        ("<1K", "rows", ("n<1K",)),
        (">100B", "rows", ("100B<n<1T", "n>1T")),
        ("1K-1M", "rows", ("1K<n<10K", "10K<n<100K", "100K<n<1M")),
        ("1M<n<10M", "rows", ("1M<n<10M",)),
        ("> 1 GB", "bytes", ()),
    ],
)
def test_size_expressions(expr: str, kind: str, cats: tuple[str, ...]) -> None:
    f = parse_size_expr(expr)
    assert f.kind == kind and f.categories == cats


def test_size_expression_bounds() -> None:
    f = parse_size_expr(">1GB")
    assert f.matches_bytes(1_500_000_000) and not f.matches_bytes(999_999_999) and not f.matches_bytes(0)
    assert parse_size_expr("<100MB").high == 100e6 and parse_size_expr(">=2GiB").low == 2**31


@pytest.mark.parametrize(
    "expr", ["", "big", ">", ">>1GB", "1GB-", "10K-1GB", "5GB-1GB", "1XB", "<0", "1b", "~1GB", "10K"]
)
def test_malformed_size_expressions_are_usage_errors(expr: str) -> None:
    with pytest.raises(UsageError, match="size expression"):
        parse_size_expr(expr)


def test_human_size_and_weight_sizes() -> None:
    assert (
        human_size(999) == "999 B"
        and human_size(1536) == "1.5 kB"
        and human_size(13_476_839_424) == "13.5 GB"
    )
    assert human_size(5e15) == "5000.0 TB"
    files = [
        RepoFile("a.safetensors", 10, "1" * 40),
        RepoFile("b/c.SAFETENSORS", 5, "2" * 40),
        RepoFile("q.gguf", 3, "3" * 40),
        RepoFile("pytorch_model.bin", 4, "4" * 40),
        RepoFile("README", 1, "5" * 40),
        RepoFile("x.onnx", 2, "6" * 40),
    ]
    assert weight_sizes(files) == {"gguf": 3, "onnx": 2, "pytorch": 4, "safetensors": 15}


def test_sort_key_hub_params() -> None:
    assert [k.hub_param for k in SortKey] == ["downloads", "likes", "lastModified", "trendingScore"]


@given(st.text(max_size=20))
def test_size_expressions_never_crash(expr: str) -> None:
    try:
        f = parse_size_expr(expr)
    except UsageError:
        return
    assert f.kind in ("bytes", "rows") and f.low <= f.high
    assert f.kind == "bytes" or f.categories


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda c: st.lists(c) | st.dictionaries(st.text(max_size=8), c),
        max_leaves=20,
    )
)
def test_from_json_never_crashes_on_garbage(data: object) -> None:
    for t in HfAssetType:
        info_from_json(t, data)
    if isinstance(data, dict):
        for t in HfAssetType:
            info_from_json(t, {"id": "a/b", "cardData": data, "siblings": [data], "runtime": data, **data})
    UserInfo.from_json(data)
