"""Fixtures for the converter tests: tiny generated LLaMA checkpoints and the llama.cpp peer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from batuta_sync.tinymodel import TinyLlamaSpec, write_tiny_llama

from . import _llamacpp

HAVE_LLAMACPP = _llamacpp.library_path() is not None


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    skip = pytest.mark.skip(reason="needs the xllamacpp wheel (a real llama.cpp build); see .ci/peers.txt")
    for item in items:
        if "llamacpp" in item.keywords and not HAVE_LLAMACPP:
            item.add_marker(skip)


# GQA, K-quant friendly (256-multiple rows); the default tiny model
SPEC_GQA = TinyLlamaSpec(dtype="float16", seed=1)
# tied embeddings, BF16 weights, three shards
SPEC_TIED_BF16 = TinyLlamaSpec(dtype="bfloat16", tie_word_embeddings=True, shards=3, seed=2)
# rows that are not multiples of 256 (fallback types) nor of 32 (F16 fallback), F32 input, 4 layers
SPEC_ODD = TinyLlamaSpec(dtype="float32", hidden_size=144, intermediate_size=288, num_attention_heads=4,
                         num_key_value_heads=1, num_hidden_layers=4, seed=3)


def make_model(root: Path, spec: TinyLlamaSpec, *, transformers5: bool = False) -> Path:
    d = write_tiny_llama(root, spec, card=False)
    if transformers5:  # transformers 5 moved rope_theta into rope_parameters
        cfg = json.loads((d / "config.json").read_text())
        theta = cfg.pop("rope_theta")
        cfg["rope_parameters"] = {"rope_theta": theta * 5, "rope_type": "default"}
        (d / "config.json").write_text(json.dumps(cfg))
    return d


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "gqa": make_model(root / "gqa", SPEC_GQA, transformers5=True),
        "tied_bf16": make_model(root / "tied_bf16", SPEC_TIED_BF16),
        "odd": make_model(root / "odd", SPEC_ODD),
    }


def hf_weights(model_dir: Path) -> dict[str, np.ndarray]:
    """All tensors of a model directory as float32 (BF16 widened), by HF name."""
    from batuta_sync.convert.hf_to_gguf import find_weights

    return {name: ref.rows_f32() for name, ref in find_weights(model_dir).items()}
