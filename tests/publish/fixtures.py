"""Builders for small, realistic local repos (generated in code; nothing binary is committed)."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path
from typing import Any

_WORDS = ["the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "by", "at", "from", "his", "her", "token", "tokenizer", "key", "keys", "secret", "password", "model", "layer", "attention", "embedding", "hidden", "state", "vocab", "merge", "special", "unk", "pad", "bos", "eos", "mask", "cls", "sep", "transformer", "python", "import", "return", "def", "class", "self", "config", "weight", "bias", "norm", "dropout"]


def vocab(n: int = 3000, seed: int = 7) -> dict[str, int]:
    rng = random.Random(seed)
    out: dict[str, int] = {"<unk>": 0, "<s>": 1, "</s>": 2, "<pad>": 3}
    letters = "abcdefghijklmnopqrstuvwxyz"
    while len(out) < n:
        r = rng.random()
        if r < 0.3:
            tok = rng.choice(_WORDS)
        elif r < 0.6:
            tok = "".join(rng.choice(letters) for _ in range(rng.randint(1, 9)))
        else:
            tok = "Ġ" + "".join(rng.choice(letters) for _ in range(rng.randint(1, 12)))
        if rng.random() < 0.1:
            tok = tok.capitalize()
        out.setdefault(tok, len(out))
    return out


def tokenizer_json(n: int = 3000) -> dict[str, Any]:
    v = vocab(n)
    toks = list(v)
    rng = random.Random(3)
    merges = [f"{rng.choice(toks[4:])} {rng.choice(toks[4:])}" for _ in range(n // 2)]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
             "special": True}
            for i, t in enumerate(["<unk>", "<s>", "</s>", "<pad>"])
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                                                   {"Sequence": {"id": "A", "type_id": 0}}]},
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "vocab": v,
                  "merges": merges},
    }


def safetensors_bytes(tensors: dict[str, tuple[str, list[int]]], metadata: dict[str, str] | None = None,
                      *, seed: int = 0) -> bytes:
    """A valid safetensors file built by hand (dtype, shape) -> random bytes."""
    sizes = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "U8": 1}
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = metadata
    off = 0
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    rng = random.Random(seed)
    return struct.pack("<Q", len(raw)) + raw + rng.randbytes(off)


def tiny_model_tensors(vocab_size: int = 3000, hidden: int = 16) -> dict[str, tuple[str, list[int]]]:
    return {
        "model.embed_tokens.weight": ("F32", [vocab_size, hidden]),
        "model.layers.0.self_attn.q_proj.weight": ("F32", [hidden, hidden]),
        "model.layers.0.mlp.up_proj.weight": ("F32", [hidden * 2, hidden]),
        "model.norm.weight": ("F32", [hidden]),
    }


def make_clean_model(root: Path, *, vocab_size: int = 3000, hidden: int = 16, readme: str | None = None) -> Path:
    """A clean model folder: configs, a real-looking tokenizer.json with a vocab, a tiny safetensors model."""
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab_size,
        "hidden_size": hidden, "intermediate_size": hidden * 2, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 128,
        "rms_norm_eps": 1e-6, "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2,
        "pad_token_id": 3, "tie_word_embeddings": True, "transformers_version": "4.46.0",
    }
    (root / "config.json").write_text(json.dumps(config, indent=2))
    (root / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2,
                                                             "max_new_tokens": 64, "do_sample": False}))
    (root / "tokenizer.json").write_text(json.dumps(tokenizer_json(vocab_size), ensure_ascii=False, indent=2))
    (root / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 128, "bos_token": "<s>",
        "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "clean_up_tokenization_spaces": False,
        "add_bos_token": True, "chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}",
    }, indent=2))
    (root / "special_tokens_map.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>",
                                                              "unk_token": "<unk>", "pad_token": "<pad>"}))
    (root / "vocab.json").write_text(json.dumps(vocab(vocab_size)))
    (root / "model.safetensors").write_bytes(
        safetensors_bytes(tiny_model_tensors(vocab_size, hidden), {"format": "pt"})
    )
    weight_map = {name: "model.safetensors" for name in tiny_model_tensors(vocab_size, hidden)}
    (root / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}, indent=2)
    )
    (root / "metrics.json").write_text(json.dumps({"eval_loss": 2.3456, "eval_accuracy": 0.61,
                                                   "dataset": "wikitext"}))
    if readme is not None:
        (root / "README.md").write_text(readme)
    return root
