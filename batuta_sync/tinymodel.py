"""Generate tiny, real Hugging Face repos: a LLaMA model, a dataset, a Space.

Used by ``batuta demo`` (no network: everything is made here) and by the tests.
The model is a genuine ``LlamaForCausalLM`` checkpoint — config.json, safetensors
weights, a byte-level BPE ``tokenizer.json`` — small enough to write in
milliseconds, but with dimensions that are multiples of 256 so K-quants apply.
Deterministic: the same ``seed`` gives the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TinyLlamaSpec:
    vocab_size: int = 320
    hidden_size: int = 256
    intermediate_size: int = 512
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 256
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    tie_word_embeddings: bool = False
    dtype: str = "float16"  # float32 | float16 | bfloat16
    shards: int = 1
    seed: int = 0

    def config(self) -> dict[str, Any]:
        return {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "max_position_embeddings": self.max_position_embeddings,
            "rope_theta": self.rope_theta,
            "rms_norm_eps": self.rms_norm_eps,
            "hidden_act": "silu",
            "tie_word_embeddings": self.tie_word_embeddings,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "torch_dtype": self.dtype,
            "transformers_version": "4.46.0",
        }


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable-unicode map (byte-level BPE alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


SPECIAL_TOKENS = ("<unk>", "<s>", "</s>")
_MERGE_WORDS = ("the", "and", "ing", "hello", "world", "model", "batuta", "sync", "tion", "er", "in", "on")


def tokenizer_json(vocab_size: int = 320) -> dict[str, Any]:
    """A valid byte-level BPE tokenizer.json: 3 specials, 256 byte tokens, merges up to ``vocab_size``."""
    byte_map = _bytes_to_unicode()
    vocab: dict[str, int] = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for b in range(256):
        vocab[byte_map[b]] = len(vocab)
    merges: list[list[str]] = []
    space = byte_map[ord(" ")]
    words = [w for base in _MERGE_WORDS for w in (base, space + base)]
    for word in words:
        parts = list(word)
        while len(parts) > 1 and len(vocab) < vocab_size:
            merged = parts[0] + parts[1]
            if merged not in vocab:
                vocab[merged] = len(vocab)
                merges.append([parts[0], parts[1]])
            parts = [merged, *parts[2:]]
    filler = 0
    while len(vocab) < vocab_size:  # pad with unused tokens so the vocab matches config
        vocab[f"<extra_{filler}>"] = len(vocab)
        filler += 1
    added = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
        for i, t in enumerate(SPECIAL_TOKENS)
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": merges,
        },
    }


CHAT_TEMPLATE = (
    "{% for message in messages %}<s>{{ message['role'] }}: {{ message['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant: {% endif %}"
)


def tiny_llama_tensors(spec: TinyLlamaSpec) -> dict[str, Any]:
    """HF-named weights (numpy arrays) of a tiny LLaMA, deterministic in ``spec.seed``."""
    import numpy as np

    rng = np.random.default_rng(spec.seed)
    h, inter, v = spec.hidden_size, spec.intermediate_size, spec.vocab_size
    head_dim = h // spec.num_attention_heads
    kv = spec.num_key_value_heads * head_dim

    def w(rows: int, cols: int) -> Any:
        return (rng.standard_normal((rows, cols), dtype=np.float32) / np.sqrt(cols)).astype(np.float32)

    t: dict[str, Any] = {"model.embed_tokens.weight": w(v, h)}
    for i in range(spec.num_hidden_layers):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = (1.0 + 0.1 * rng.standard_normal(h)).astype(np.float32)
        t[p + "self_attn.q_proj.weight"] = w(h, h)
        t[p + "self_attn.k_proj.weight"] = w(kv, h)
        t[p + "self_attn.v_proj.weight"] = w(kv, h)
        t[p + "self_attn.o_proj.weight"] = w(h, h)
        t[p + "post_attention_layernorm.weight"] = (1.0 + 0.1 * rng.standard_normal(h)).astype(np.float32)
        t[p + "mlp.gate_proj.weight"] = w(inter, h)
        t[p + "mlp.up_proj.weight"] = w(inter, h)
        t[p + "mlp.down_proj.weight"] = w(h, inter)
    t["model.norm.weight"] = (1.0 + 0.1 * rng.standard_normal(h)).astype(np.float32)
    if not spec.tie_word_embeddings:
        t["lm_head.weight"] = w(v, h)
    return t


def _save(tensors: dict[str, Any], path: Path, dtype: str) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    if dtype == "bfloat16":
        _save_bf16(tensors, path)  # safetensors.numpy cannot write bf16
        return
    np_dtype = {"float32": np.float32, "float16": np.float16}[dtype]
    save_file({k: np.ascontiguousarray(a.astype(np_dtype)) for k, a in tensors.items()}, str(path), metadata={"format": "pt"})


def _save_bf16(tensors: dict[str, Any], path: Path) -> None:
    """Write BF16 safetensors by hand: the top halves of float32 (truncation is fine for fixtures)."""
    import numpy as np

    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype=np.float32)
        raw = (a.view(np.uint32) >> 16).astype("<u2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(len(hb).to_bytes(8, "little"))
        f.write(hb)
        for raw in blobs:
            f.write(raw)


def write_tiny_llama(dest: Path, spec: TinyLlamaSpec | None = None, *, card: bool = True) -> Path:
    """Write a complete tiny LLaMA repo (config, weights, tokenizer, card) into ``dest``."""
    spec = spec or TinyLlamaSpec()
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.json").write_text(json.dumps(spec.config(), indent=2) + "\n")
    (dest / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}, indent=2) + "\n")
    (dest / "tokenizer.json").write_text(json.dumps(tokenizer_json(spec.vocab_size)))
    (dest / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "chat_template": CHAT_TEMPLATE,
                "model_max_length": spec.max_position_embeddings,
                "tokenizer_class": "PreTrainedTokenizerFast",
            },
            indent=2,
        )
        + "\n"
    )
    tensors = tiny_llama_tensors(spec)
    names = sorted(tensors)
    if spec.shards <= 1:
        _save(tensors, dest / "model.safetensors", spec.dtype)
    else:
        per = -(-len(names) // spec.shards)
        weight_map: dict[str, str] = {}
        for s in range(spec.shards):
            chunk = names[s * per : (s + 1) * per]
            fname = f"model-{s + 1:05d}-of-{spec.shards:05d}.safetensors"
            _save({n: tensors[n] for n in chunk}, dest / fname, spec.dtype)
            weight_map.update(dict.fromkeys(chunk, fname))
        itemsize = 4 if spec.dtype == "float32" else 2
        total = sum(int(a.size) * itemsize for a in tensors.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (dest / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    if card:
        (dest / "README.md").write_text(
            "---\nlicense: apache-2.0\nlibrary_name: transformers\npipeline_tag: text-generation\n"
            "tags:\n- llama\n- tiny\n---\n\n# tiny-llama\n\nA tiny randomly initialised LLaMA for demos and tests.\n"
        )
    return dest


def write_tiny_dataset(dest: Path, *, rows: int = 40) -> Path:
    """A tiny text dataset with train/test splits (JSON Lines) and a card with ``dataset_info``."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "data").mkdir(exist_ok=True)
    sizes = {"train": rows, "test": max(1, rows // 4)}
    split_bytes = {}
    for split, n in sizes.items():
        lines = [json.dumps({"id": i, "text": f"{split} example {i}: hello world", "label": i % 2}) for i in range(n)]
        data = ("\n".join(lines) + "\n").encode()
        (dest / "data" / f"{split}-00000-of-00001.jsonl").write_bytes(data)
        split_bytes[split] = len(data)
    splits_yaml = "".join(
        f"  - name: {s}\n    num_bytes: {split_bytes[s]}\n    num_examples: {n}\n" for s, n in sizes.items()
    )
    total = sum(split_bytes.values())
    (dest / "README.md").write_text(
        "---\nlicense: cc-by-4.0\nlanguage:\n- en\nsize_categories:\n- n<1K\ntask_categories:\n- text-classification\n"
        "dataset_info:\n  features:\n  - name: id\n    dtype: int64\n  - name: text\n    dtype: string\n"
        "  - name: label\n    dtype: int64\n  splits:\n" + splits_yaml + f"  download_size: {total}\n  dataset_size: {total}\n"
        "configs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n"
        "  - split: test\n    path: data/test-*\n---\n\n# tiny-dataset\n\nA tiny text dataset for demos and tests.\n"
    )
    return dest


def write_tiny_space(dest: Path, *, sdk: str = "gradio") -> Path:
    """A tiny Space: app.py, requirements.txt and a README with ``sdk`` front matter."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "app.py").write_text(
        "import gradio as gr\n\n\ndef greet(name: str) -> str:\n    return f'Hello {name}!'\n\n\n"
        "gr.Interface(fn=greet, inputs='text', outputs='text').launch()\n"
    )
    (dest / "requirements.txt").write_text("gradio\n")
    (dest / "README.md").write_text(
        f"---\ntitle: Tiny demo\nsdk: {sdk}\napp_file: app.py\nlicense: mit\n---\n\n# Tiny demo space\n"
    )
    return dest


# --------------------------------------------------------------------------- other architectures

# HF architecture -> (model_type, config.json keys beyond the LLaMA ones, SentencePiece specials or None for BPE)
_ARCH_CONFIG: dict[str, tuple[str, dict[str, Any], tuple[str, ...] | None]] = {
    "Qwen3ForCausalLM": ("qwen3", {"head_dim": 64, "attention_bias": False, "rope_theta": 1000000.0}, None),
    "Qwen3MoeForCausalLM": ("qwen3_moe", {"head_dim": 64, "attention_bias": False, "num_experts": 4,
                                          "num_experts_per_tok": 2, "moe_intermediate_size": 256,
                                          "decoder_sparse_step": 1, "mlp_only_layers": [], "norm_topk_prob": True}, None),
    "Gemma2ForCausalLM": ("gemma2", {"head_dim": 64, "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0,
                                     "sliding_window": 128, "query_pre_attn_scalar": 64, "tie_word_embeddings": True,
                                     "hidden_activation": "gelu_pytorch_tanh", "rms_norm_eps": 1e-6},
                          ("<pad>", "<eos>", "<bos>", "<unk>")),
    "Gemma3ForCausalLM": ("gemma3_text", {"head_dim": 64, "sliding_window": 128, "query_pre_attn_scalar": 64,
                                          "tie_word_embeddings": True, "hidden_activation": "gelu_pytorch_tanh",
                                          "rope_local_base_freq": 10000.0, "rope_theta": 1000000.0,
                                          "rms_norm_eps": 1e-6, "final_logit_softcapping": None},
                          ("<pad>", "<eos>", "<bos>", "<unk>")),
    "Phi3ForCausalLM": ("phi3", {"original_max_position_embeddings": 256, "sliding_window": 255, "rope_scaling": None,
                                 "pad_token_id": 3},
                        ("<unk>", "<s>", "</s>", "<|endoftext|>", "<|assistant|>", "<|end|>", "<|user|>", "<|system|>")),
    "MixtralForCausalLM": ("mixtral", {"num_local_experts": 4, "num_experts_per_tok": 2, "rope_theta": 1000000.0},
                           ("<unk>", "<s>", "</s>")),
}
TINY_ARCHS = tuple(_ARCH_CONFIG)


def _spm_pieces(specials: tuple[str, ...], vocab_size: int) -> list[tuple[str, float, int]]:
    """SentencePiece pieces: the specials (control; unk type 2), 256 byte pieces, then scored words."""
    pieces = [(t, 0.0, 2 if t == "<unk>" else 3) for t in specials]
    pieces += [(f"<0x{b:02X}>", 0.0, 6) for b in range(256)]
    words = [w for base in _MERGE_WORDS for w in ("▁" + base, base)] + list("abcdefghijklmnopqrstuvwxyz")
    for i, w in enumerate(dict.fromkeys(words)):
        if len(pieces) >= vocab_size:
            break
        pieces.append((w, -float(i), 1))
    filler = 0
    while len(pieces) < vocab_size:
        pieces.append((f"▁x{filler}", -1000.0 - filler, 1))
        filler += 1
    return pieces


def write_tiny_arch(dest: Path, hf_arch: str, *, dtype: str = "float32", seed: int = 0) -> Path:
    """A tiny checkpoint of ``hf_arch`` (any entry of ``TINY_ARCHS``): the real config keys and the
    tokenizer files those models ship (SentencePiece ``tokenizer.model`` or byte-level BPE), random
    weights named and shaped from the converter's architecture table."""
    import numpy as np

    from batuta_sync.convert.archs import BY_HF
    from batuta_sync.convert.tokenizer import write_sentencepiece

    model_type, extra, specials = _ARCH_CONFIG[hf_arch]
    base = TinyLlamaSpec(dtype=dtype, seed=seed)
    write_tiny_llama(dest, base, card=False)
    (dest / "model.safetensors").unlink()
    cfg = {**base.config(), "architectures": [hf_arch], "model_type": model_type, **extra}
    cfg = {k: v for k, v in cfg.items() if v is not None or k == "rope_scaling"}
    if specials is not None:
        (dest / "tokenizer.json").unlink()
        pieces = _spm_pieces(specials, base.vocab_size)
        ids = {t: i for i, (t, _, _) in enumerate(pieces)}
        bos, eos = ("<bos>", "<eos>") if "<bos>" in ids else ("<s>", "</s>")
        write_sentencepiece(dest / "tokenizer.model", [p for p, _, _ in pieces], [s for _, s, _ in pieces],
                            [t for _, _, t in pieces], {"unk": ids["<unk>"], "bos": ids[bos], "eos": ids[eos]})
        cfg.update(bos_token_id=ids[bos], eos_token_id=ids[eos])
        if "<pad>" in ids:
            cfg["pad_token_id"] = ids["<pad>"]
        tok_cfg = json.loads((dest / "tokenizer_config.json").read_text())
        tok_cfg.update(bos_token=bos, eos_token=eos, tokenizer_class="GemmaTokenizer" if "<pad>" in ids else
                       "LlamaTokenizer", add_bos_token=True, add_eos_token=False)
        (dest / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2) + "\n")
    (dest / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")

    entry = BY_HF[hf_arch]
    rng = np.random.default_rng(seed)
    h, inter, v = base.hidden_size, base.intermediate_size, base.vocab_size
    n_head, n_kv = base.num_attention_heads, base.num_key_value_heads
    hd = int(cfg.get("head_dim") or h // n_head)
    n_exp = int(cfg.get("num_local_experts") or cfg.get("num_experts") or 0)
    moe_ff = int(cfg.get("moe_intermediate_size") or inter)
    shapes = {
        "attn_q": (n_head * hd, h), "attn_k": (n_kv * hd, h), "attn_v": (n_kv * hd, h), "attn_output": (h, n_head * hd),
        "attn_qkv": (n_head * hd + 2 * n_kv * hd, h), "attn_q_norm": (hd,), "attn_k_norm": (hd,),
        "ffn_gate": (inter, h), "ffn_up": (2 * inter if entry.gguf == "phi3" else inter, h), "ffn_down": (h, inter),
        "ffn_gate_inp": (n_exp, h), "ffn_gate_exps": (moe_ff, h), "ffn_up_exps": (moe_ff, h),
        "ffn_down_exps": (h, moe_ff),
    }

    def weight(kind: str) -> Any:
        shape = shapes.get(kind, (h,))
        if len(shape) == 1:  # norms: around 1 (Gemma: around 0, it stores w + 1); multiples of 2^-8, so exact
            centre = 0.0 if entry.norm_offset else 1.0
            return (centre + np.round(0.1 * rng.standard_normal(shape) * 256) / 256).astype(np.float32)
        return (rng.standard_normal(shape, dtype=np.float32) / np.sqrt(shape[1])).astype(np.float32)

    t: dict[str, Any] = {"model.embed_tokens.weight": (rng.standard_normal((v, h), dtype=np.float32) / np.sqrt(h))}
    for i in range(base.num_hidden_layers):
        for hf, kind in entry.layer.items():
            t[f"model.layers.{i}.{hf}.weight"] = weight(kind)
        for hf, kind in entry.experts.items():
            for e in range(n_exp):
                t[f"model.layers.{i}.{hf.format(e=e)}.weight"] = weight(kind)
    t["model.norm.weight"] = weight("output_norm")
    if not cfg.get("tie_word_embeddings"):
        t["lm_head.weight"] = (rng.standard_normal((v, h), dtype=np.float32) / np.sqrt(h)).astype(np.float32)
    _save(t, dest / "model.safetensors", dtype)
    return dest
