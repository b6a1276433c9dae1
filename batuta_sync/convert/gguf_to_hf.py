"""GGUF -> Hugging Face safetensors directory (config.json, weights, tokenizer).

Every tensor type gguf-py can read is dequantized (``gguf.quants.dequantize``), row-chunk by
row-chunk; F32/F16/BF16 are copied exactly.  Names and the Q/K permutation are reversed.
Large models are written as shards plus ``model.safetensors.index.json``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from batuta_sync.convert.gguf_meta import Meta
from batuta_sync.convert.hf_to_gguf import GGUF_TO_HF_ARCH, LAYER_NAMES, TOP_NAMES, qk_permutation
from batuta_sync.convert.st_io import OutTensor, write_safetensors
from batuta_sync.errors import ConversionError

_GG_LAYER = re.compile(r"^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$")
_REV_TOP = {v: k for k, v in TOP_NAMES.items()}
_REV_LAYER = {v: k for k, v in LAYER_NAMES.items()}
DEFAULT_SHARD_BYTES = 5 * 1000**3
_CHUNK = 1 << 22


def gguf_to_hf_name(name: str) -> str | None:
    base, _, suffix = name.rpartition(".")
    if base in _REV_TOP:
        return f"{_REV_TOP[base]}.{suffix}"
    m = _GG_LAYER.match(name)
    if m and m.group(2) in _REV_LAYER:
        return f"model.layers.{m.group(1)}.{_REV_LAYER[m.group(2)]}.{m.group(3)}"
    return None


def _open(src: Path) -> Any:
    import gguf

    try:
        return gguf.GGUFReader(src, "r")
    except Exception as e:  # gguf-py raises ValueError/struct.error/... on corrupt files
        raise ConversionError(f"{src} is not a readable GGUF file: {e}.", hint="Re-download or re-create the file.") from None


def write_hf(
    src: Path,
    dst: Path,
    *,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Path], int, dict[str, str]]:
    """Convert GGUF ``src`` into the directory ``dst``; returns (files, tensor count, parameters)."""
    import gguf

    reader = _open(src)
    meta = Meta(reader, src)
    arch = meta.get_str("general.architecture")
    if arch not in GGUF_TO_HF_ARCH:
        raise ConversionError(
            f"{src} has architecture {arch!r}; GGUF -> safetensors supports " + ", ".join(GGUF_TO_HF_ARCH) + ".",
            hint="Only LLaMA-family GGUF files can be turned back into transformers checkpoints.",
        )
    hf_arch, model_type = GGUF_TO_HF_ARCH[arch]
    n_head = meta.get_int(f"{arch}.attention.head_count", minimum=1, maximum=1 << 16)
    n_head_kv = meta.get_int(f"{arch}.attention.head_count_kv", n_head, minimum=1, maximum=n_head)
    permute = arch == "llama"

    entries: list[tuple[str, Any, str, tuple[int, ...], int]] = []
    dropped = []
    dtype_count: dict[str, int] = {}
    for t in reader.tensors:
        hf = gguf_to_hf_name(t.name)
        if hf is None:
            dropped.append(t.name)
            continue
        shape = tuple(int(d) for d in reversed([int(x) for x in t.shape]))
        if not shape or min(shape) <= 0:
            raise ConversionError(f"{src}: tensor {t.name} has shape {list(shape)}; every dimension must be positive.",
                                  hint="The file is corrupt; re-create it.")
        qt = gguf.GGMLQuantizationType(int(t.tensor_type))
        st_dtype = {"F32": "F32", "F16": "F16", "BF16": "BF16"}.get(qt.name, "F32")
        if qt.name not in ("F32", "F16", "BF16"):
            try:
                gguf.quants.dequantize(np.zeros((1, gguf.GGML_QUANT_SIZES[qt][1]), dtype=np.uint8), qt)
            except (NotImplementedError, KeyError, ValueError) as e:
                raise ConversionError(f"Tensor {t.name} has type {qt.name}, which cannot be dequantized ({e}).",
                                      hint="Convert from a file with a supported tensor type.") from None
        heads = 0
        if permute and ".attn_q." in t.name:
            heads = n_head
        elif permute and ".attn_k." in t.name:
            heads = n_head_kv
        if heads and (len(shape) != 2 or shape[0] % (2 * heads)):
            raise ConversionError(f"{src}: tensor {t.name} has shape {list(shape)}, which does not split into {heads} "
                                  "attention heads.", hint="The head counts in the metadata do not match the tensors.")
        entries.append((hf, t, st_dtype, shape, heads))
        if len(shape) >= 2:
            dtype_count[st_dtype] = dtype_count.get(st_dtype, 0) + 1
    if not entries:
        raise ConversionError(f"{src} contains no LLaMA tensors.", hint="Check the file.")

    def producer(t: Any, qt_name: str, shape: tuple[int, ...], heads: int) -> Callable[[], Iterator[bytes]]:
        def gen() -> Iterator[bytes]:
            qt = gguf.GGMLQuantizationType[qt_name]
            data = t.data
            if len(shape) < 2:
                arr = data if qt_name in ("F32", "F16") else gguf.quants.dequantize(data, qt)
                yield np.ascontiguousarray(arr).tobytes()
                return
            rows = int(np.prod(shape[:-1]))
            data = data.reshape(rows, -1)
            inv = np.argsort(qk_permutation(rows, heads)) if heads else None
            step = max(1, _CHUNK // max(1, shape[-1]))
            for r0 in range(0, rows, step):
                r1 = min(rows, r0 + step)
                sub = data[inv[r0:r1]] if inv is not None else data[r0:r1]
                if qt_name in ("F32", "F16"):
                    out = np.ascontiguousarray(sub)
                elif qt_name == "BF16":
                    out = np.ascontiguousarray(sub).view(np.uint16)
                else:
                    out = gguf.quants.dequantize(np.ascontiguousarray(sub), qt).astype(np.float32)
                yield out.tobytes()

        return gen

    # split into shards by size, keeping order
    shards: list[list[OutTensor]] = [[]]
    size = 0
    for hf, t, st_dtype, shape, heads in entries:
        ot = OutTensor(hf, st_dtype, shape, producer(t, gguf.GGMLQuantizationType(int(t.tensor_type)).name, shape, heads))
        if shards[-1] and size + ot.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(ot)
        size += ot.nbytes

    dst.mkdir(parents=True, exist_ok=True)
    stage = dst / f".batuta-convert-{os.getpid()}-{secrets.token_hex(4)}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    try:
        written: list[str] = []
        total = len(entries)
        done = 0
        weight_map: dict[str, str] = {}
        for i, shard in enumerate(shards):
            fname = "model.safetensors" if len(shards) == 1 else f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            write_safetensors(stage / fname, shard, {"format": "pt"})
            written.append(fname)
            for ot in shard:
                weight_map[ot.name] = fname
            done += len(shard)
            if progress is not None:
                progress(done, total)
        if len(shards) > 1:
            index = {"metadata": {"total_size": sum(ot.nbytes for s in shards for ot in s)}, "weight_map": weight_map}
            (stage / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
            written.append("model.safetensors.index.json")
        tied = not any(hf == "lm_head.weight" for hf, *_ in entries)
        embd = next((shape for hf, _, _, shape, _ in entries if hf == "model.embed_tokens.weight"), None)
        dominant = max(dtype_count, key=lambda k: dtype_count[k]) if dtype_count else "F32"
        cfg = _config(meta, arch, hf_arch, model_type, embd, tied, dominant)
        (stage / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        written.append("config.json")
        from batuta_sync.convert.tokenizer import write_hf_tokenizer

        tok_files = write_hf_tokenizer(meta, stage, cfg.get("max_position_embeddings"))
        written.extend(p.name for p in tok_files)
        for old in dst.glob("model*.safetensors*"):
            if old.name not in written:
                old.unlink()  # stale shards of an earlier conversion into the same directory
        for name in written:
            os.replace(stage / name, dst / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    params = {
        "architecture": arch,
        "dtype": dominant.lower(),
        "shards": str(len(shards)),
        "source_file_type": str(meta.get_int("general.file_type", "")),
    }
    if dropped:
        params["dropped"] = ",".join(dropped)
    return [dst / n for n in written], len(entries), params


def _f7(v: Any) -> float:
    """A float32 metadata value as the short decimal it was written from (1e-05, not 9.99e-06)."""
    return float(f"{float(v):.7g}")


def _config(meta: Meta, arch: str, hf_arch: str, model_type: str, embd: tuple[int, ...] | None, tied: bool,
            dominant: str) -> dict[str, Any]:
    p = arch + "."
    n_embd = meta.get_int(p + "embedding_length", minimum=1)
    n_head = meta.get_int(p + "attention.head_count", minimum=1)
    tokens = meta.get_array("tokenizer.ggml.tokens", "str", [])
    vocab = meta.get_int(p + "vocab_size", 0) or (embd[0] if embd else len(tokens))
    cfg: dict[str, Any] = {
        "architectures": [hf_arch],
        "model_type": model_type,
        "vocab_size": vocab,
        "hidden_size": n_embd,
        "intermediate_size": meta.get_int(p + "feed_forward_length", minimum=1),
        "num_hidden_layers": meta.get_int(p + "block_count", minimum=1),
        "num_attention_heads": n_head,
        "num_key_value_heads": meta.get_int(p + "attention.head_count_kv", n_head, minimum=1),
        "max_position_embeddings": meta.get_int(p + "context_length", 4096, minimum=1),
        "rms_norm_eps": _f7(meta.get_float(p + "attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": _f7(meta.get_float(p + "rope.freq_base", 10000.0)),
        "hidden_act": "silu",
        "tie_word_embeddings": tied,
        "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dominant],
    }
    key_len = meta.get_int(p + "attention.key_length", None, minimum=1)
    if key_len is not None and key_len != n_embd // n_head:
        cfg["head_dim"] = key_len
    stype = meta.get_str(p + "rope.scaling.type", None)
    if stype in ("linear", "yarn"):
        rs: dict[str, Any] = {"rope_type": stype, "factor": meta.get_float(p + "rope.scaling.factor", 1.0)}
        orig = meta.get_int(p + "rope.scaling.original_context_length", None)
        if orig:
            rs["original_max_position_embeddings"] = orig
        cfg["rope_scaling"] = rs
    if arch == "qwen2":
        cfg["attention_bias"] = True
    for key, name in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("padding", "pad_token_id")):
        v = meta.token_id(f"tokenizer.ggml.{key}_token_id", max(vocab, len(tokens)))
        if v is not None:
            cfg[name] = v
    return cfg
