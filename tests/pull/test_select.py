"""plan_pull: format auto-selection, GGUF quantization + shards, dataset splits, filters, names (pure)."""

from __future__ import annotations

import hashlib

import pytest

from batuta_sync.errors import NotFoundError, UsageError
from batuta_sync.pull import PullRequest, dataset_splits, gguf_quantizations, plan_pull, weight_family
from batuta_sync.safety import UnsafePathError
from batuta_sync.types import HfAssetType, RepoFile, RepoRef, RepoSnapshot

from .test_safety import HF_UNSAFE_NAMES


def snap(*paths: str, repo_type: HfAssetType = HfAssetType.MODEL) -> RepoSnapshot:
    files = tuple(
        RepoFile(
            p,
            100 + i,
            hashlib.sha1(p.encode()).hexdigest(),
            hashlib.sha256(p.encode()).hexdigest()
            if "." in p and p.rsplit(".", 1)[1] in {"safetensors", "gguf", "bin", "parquet"}
            else None,
        )
        for i, p in enumerate(paths)
    )
    return RepoSnapshot(RepoRef("org/repo", repo_type), "a" * 40, files)


def req(s: RepoSnapshot, **kw: object) -> PullRequest:
    return PullRequest(ref=s.ref, **kw)  # type: ignore[arg-type]


def paths(sel: object) -> list[str]:
    return [f.path for f in sel.selected]  # type: ignore[attr-defined]


MIXED = (
    "config.json",
    "tokenizer.json",
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "training_args.bin",
    "onnx/model.onnx",
    "llama.Q4_K_M.gguf",
    "README.md",
)


def test_auto_prefers_safetensors_and_never_pickle() -> None:
    s = snap(*MIXED)
    sel = plan_pull(s, req(s))
    assert sel.format == "safetensors"
    assert paths(sel) == [
        "README.md",
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
    ]
    assert not sel.blocked
    assert {p for p, _ in sel.skipped} == {
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
        "training_args.bin",
        "onnx/model.onnx",
        "llama.Q4_K_M.gguf",
    }
    assert any("left out" in n for n in sel.notes)


def test_auto_falls_back_to_gguf_and_picks_a_quant() -> None:
    s = snap("config.json", "m.Q2_K.gguf", "m.Q4_K_M.gguf", "m.Q8_0.gguf", "pytorch_model.bin")
    sel = plan_pull(s, req(s))
    assert sel.format == "gguf"
    assert paths(sel) == ["config.json", "m.Q4_K_M.gguf"]
    assert any("picked Q4_K_M" in n and "Q8_0" in n for n in sel.notes)


def test_quantization_with_split_shards() -> None:
    s = snap(
        "README.md",
        "Q4_K_M/m-Q4_K_M-00001-of-00003.gguf",
        "Q4_K_M/m-Q4_K_M-00002-of-00003.gguf",
        "Q4_K_M/m-Q4_K_M-00003-of-00003.gguf",
        "m.Q5_K_M.gguf",
        "model.safetensors",
    )
    sel = plan_pull(s, req(s, format="gguf", quantization="q4_k_m"))
    assert paths(sel) == [
        "Q4_K_M/m-Q4_K_M-00001-of-00003.gguf",
        "Q4_K_M/m-Q4_K_M-00002-of-00003.gguf",
        "Q4_K_M/m-Q4_K_M-00003-of-00003.gguf",
        "README.md",
    ]
    assert any("3 shards" in n for n in sel.notes)
    sel = plan_pull(s, req(s, quantization="Q5_K_M"))  # implies --format gguf
    assert paths(sel) == ["README.md", "m.Q5_K_M.gguf"]


def test_incomplete_shards_and_unknown_quant() -> None:
    s = snap("m-Q4_K_M-00001-of-00003.gguf", "m-Q4_K_M-00003-of-00003.gguf", "m.Q8_0.gguf")
    with pytest.raises(NotFoundError, match="00002"):
        plan_pull(s, req(s, quantization="Q4_K_M"))
    with pytest.raises(NotFoundError, match="Q8_0") as exc:
        plan_pull(s, req(s, quantization="Q6_K"))
    assert exc.value.code == "quant-not-found"


def test_gguf_asked_but_only_safetensors_needs_conversion() -> None:
    s = snap("config.json", "model.safetensors")
    sel = plan_pull(s, req(s, format="gguf", quantization="Q4_K_M"))
    assert sel.conversion is not None
    assert (sel.conversion.source_format, sel.conversion.target_format, sel.conversion.quantization) == (
        "safetensors",
        "gguf",
        "Q4_K_M",
    )
    assert [f.path for f in sel.conversion.source_files] == ["model.safetensors"]
    s2 = snap("config.json", "m.Q8_0.gguf")
    sel2 = plan_pull(s2, req(s2, format="safetensors"))
    assert sel2.conversion is not None and sel2.conversion.source_format == "gguf"


def test_only_pickle_weights_are_blocked_with_reason() -> None:
    s = snap("config.json", "pytorch_model.bin", "tokenizer.json")
    sel = plan_pull(s, req(s))
    assert paths(sel) == ["config.json", "tokenizer.json"]
    assert sel.blocked == (
        ("pytorch_model.bin", "PyTorch pickle checkpoint (.bin); allow with --allow-unsafe"),
    )
    sel = plan_pull(s, req(s, allow_unsafe=True))
    assert "pytorch_model.bin" in paths(sel) and not sel.blocked
    assert any("never loaded" in n for n in sel.notes)


def test_include_exclude_and_explicit_files() -> None:
    s = snap(*MIXED)
    assert paths(plan_pull(s, req(s, include=("*.json",)))) == [
        "config.json",
        "model.safetensors.index.json",
        "pytorch_model.bin.index.json",
        "tokenizer.json",
    ]
    assert paths(plan_pull(s, req(s, include=("onnx/",)))) == ["onnx/model.onnx"]
    assert "README.md" not in paths(plan_pull(s, req(s, exclude=("*.md",))))
    sel = plan_pull(s, req(s, include=("*.bin",)))
    assert not sel.selected and len(sel.blocked) == 2
    assert paths(plan_pull(s, req(s, files=("config.json", "llama.Q4_K_M.gguf")))) == [
        "config.json",
        "llama.Q4_K_M.gguf",
    ]
    with pytest.raises(NotFoundError, match=r"nope\.json"):
        plan_pull(s, req(s, files=("config.json", "nope.json")))
    with pytest.raises(NotFoundError, match="no file matches"):
        plan_pull(s, req(s, include=("*.xyz",)))


def test_bad_arguments() -> None:
    s = snap("a.json")
    with pytest.raises(UsageError):
        plan_pull(s, req(s, format="pickle"))
    with pytest.raises(UsageError):
        plan_pull(s, req(s, format="safetensors", quantization="Q4_K_M"))
    with pytest.raises(UsageError):
        plan_pull(s, req(s, split="train"))


@pytest.mark.parametrize("bad", [*HF_UNSAFE_NAMES, ".git/config", "a\x07b.json"])
def test_each_malicious_remote_name_is_rejected(bad: str) -> None:
    s = snap("config.json", bad)
    with pytest.raises(UnsafePathError) as exc:
        plan_pull(s, req(s, include=("*",)))
    assert exc.value.exit_code == 11
    # a name the filters leave out does not stop the pull
    assert paths(plan_pull(s, req(s, files=("config.json",)))) == ["config.json"]


def test_quant_and_family_parsing() -> None:
    assert gguf_quantizations("TheBloke/llama-2-7b.Q4_K_M.gguf") == ("Q4_K_M",)
    assert gguf_quantizations("m-IQ2_XXS-00001-of-00002.gguf") == ("IQ2_XXS",)
    assert gguf_quantizations("model-fp16.gguf") == ("F16",)
    assert gguf_quantizations("q8_0/model.gguf") == ("Q8_0",)
    assert gguf_quantizations("model.gguf") == ()
    assert weight_family("model.safetensors.index.json") == "safetensors"
    assert weight_family("pytorch_model.bin.index.json") == "pytorch"
    assert weight_family("config.json") is None


def ds(*p: str) -> RepoSnapshot:
    return snap(*p, repo_type=HfAssetType.DATASET)


def test_dataset_split_layouts() -> None:
    s = ds(
        "README.md",
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
        "data/test-00000-of-00001.parquet",
        "data/validation-00000-of-00001.parquet",
    )
    assert paths(plan_pull(s, req(s, split="train"))) == [
        "README.md",
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
    ]
    assert dataset_splits(s.files) == ["train", "test", "validation"]
    s2 = ds("README.md", "train/a.jsonl", "train/b.jsonl", "test/a.jsonl", "squad-dev.json")
    assert paths(plan_pull(s2, req(s2, split="train"))) == ["README.md", "train/a.jsonl", "train/b.jsonl"]
    assert paths(plan_pull(s2, req(s2, split="dev"))) == ["README.md", "squad-dev.json"]
    with pytest.raises(NotFoundError, match=r"no split 'extra'.*train, test, dev") as exc:
        plan_pull(s2, req(s2, split="extra"))
    assert exc.value.code == "split-not-found"
    # a whole dataset without --split: everything
    assert len(plan_pull(s2, req(s2)).selected) == 5


def test_dataset_card_splits() -> None:
    card = {
        "configs": [
            {
                "config_name": "default",
                "data_files": [
                    {"split": "holdout", "path": "shards/ho_*.parquet"},
                    {"split": "main", "path": ["shards/m_*.parquet"]},
                ],
            }
        ],
        "dataset_info": {"splits": [{"name": "holdout", "num_examples": 3}, {"name": "main"}]},
    }
    s = ds("README.md", "shards/ho_0.parquet", "shards/m_0.parquet", "shards/m_1.parquet")
    assert paths(plan_pull(s, req(s, split="main"), card=card)) == [
        "README.md",
        "shards/m_0.parquet",
        "shards/m_1.parquet",
    ]
    with pytest.raises(NotFoundError, match="holdout, main"):
        plan_pull(s, req(s, split="train"), card=card)
    card2 = {"configs": [{"config_name": "x", "data_files": {"eval": "e/*.csv"}}]}
    s2 = ds("e/1.csv", "t/1.csv")
    assert paths(plan_pull(s2, req(s2, split="eval"), card=card2)) == ["e/1.csv"]
