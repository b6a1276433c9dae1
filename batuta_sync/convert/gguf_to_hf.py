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

from batuta_sync.convert.archs import TOP_NAMES, Arch, for_gguf, supported_gguf
from batuta_sync.convert.gguf_meta import Meta
from batuta_sync.convert.hf_to_gguf import qk_permutation
from batuta_sync.convert.st_io import OutTensor, write_safetensors
from batuta_sync.convert.tokenizer import SPECIAL_ID_KEYS
from batuta_sync.errors import ConversionError

_GG_LAYER = re.compile(r"^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$")
_REV_TOP = {v: k for k, v in TOP_NAMES.items()}
DEFAULT_SHARD_BYTES = 5 * 1000**3
_CHUNK = 1 << 22

# {arch}.* metadata keys every entry maps back (config.json) or derives from the tensors
_GENERIC_KEYS = {
    "block_count", "context_length", "embedding_length", "feed_forward_length", "attention.head_count",
    "attention.head_count_kv", "attention.layer_norm_rms_epsilon", "rope.freq_base", "attention.key_length",
    "attention.value_length", "vocab_size", "rope.dimension_count", "rope.scaling.type", "rope.scaling.factor",
    "rope.scaling.original_context_length", "rope.scaling.yarn_ext_factor", "rope.scaling.yarn_attn_factor",
    "rope.scaling.yarn_beta_fast", "rope.scaling.yarn_beta_slow",
}
# tokenizer.* keys the tokenizer writer maps back
_TOKENIZER_KEYS = {
    "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
    "tokenizer.ggml.scores", "tokenizer.ggml.merges", "tokenizer.ggml.add_space_prefix", "tokenizer.chat_template",
    *(f"tokenizer.ggml.{t}_token_id" for t in SPECIAL_ID_KEYS),
    *(f"tokenizer.ggml.add_{t}_token" for t in ("bos", "eos", "sep")),
}


def gguf_to_hf_name(name: str, arch: Arch) -> tuple[str, bool] | None:
    """(HF name or pattern with ``{e}``, is an expert tensor) for a GGUF tensor name; None if unknown."""
    base, _, suffix = name.rpartition(".")
    if base in _REV_TOP:
        return f"{_REV_TOP[base]}.{suffix}", False
    m = _GG_LAYER.match(name)
    if not m:
        return None
    layer, kind, suffix = m.groups()
    for hf, gg in arch.layer.items():
        if gg == kind:
            return f"model.layers.{layer}.{hf}.{suffix}", False
    for hf, gg in arch.experts.items():
        if gg == kind:
            return f"model.layers.{layer}.{hf}.{suffix}", True
    return None


def _open(src: Path) -> Any:
    from batuta_sync.convert.split import open_gguf

    return open_gguf(src)  # one file, or a whole split set (-0000i-of-0000N.gguf) read as one model


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
    entry = for_gguf(arch, f"{arch}.expert_count" in reader.fields)
    if entry is None:
        raise ConversionError(
            f"{src} has architecture {arch!r}; GGUF -> safetensors supports " + ", ".join(supported_gguf()) + ".",
            hint="Nothing is converted partially: an architecture is supported with all its tensors or not at all.",
        )
    _check_metadata_keys(meta, reader, entry)
    hf_arch = entry.hf[0]
    n_head = meta.get_int(f"{arch}.attention.head_count", minimum=1, maximum=1 << 16)
    n_head_kv = meta.get_int(f"{arch}.attention.head_count_kv", n_head, minimum=1, maximum=n_head)
    n_expert = meta.get_int(f"{arch}.expert_count", 0, maximum=1 << 12)
    permute = entry.permute_qk

    # (HF name, reader tensor, safetensors dtype, HF shape, heads, expert index or -1, add -1 (Gemma norms))
    entries: list[tuple[str, Any, str, tuple[int, ...], int, int, bool]] = []
    unmapped = []
    rope_freqs = None
    longrope: dict[str, Any] = {}
    dtype_count: dict[str, int] = {}
    for t in reader.tensors:
        if t.name == "rope_freqs.weight" and arch == "llama":
            rope_freqs = t  # Llama 3.x rope scaling: config.json's rope_scaling, rebuilt from the factors
            continue
        if t.name in ("rope_factors_long.weight", "rope_factors_short.weight") and entry.longrope:
            longrope[t.name] = t  # Phi-3 LongRoPE: config.json's rope_scaling
            continue
        mapped = gguf_to_hf_name(t.name, entry)
        if mapped is None:
            unmapped.append(t.name)
            continue
        hf, is_expert = mapped
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
        minus_one = entry.norm_offset and hf.endswith("norm.weight")
        if minus_one:
            st_dtype = "F32"
        if is_expert:
            if len(shape) != 3 or shape[0] != n_expert:
                raise ConversionError(f"{src}: expert tensor {t.name} has shape {list(shape)}; "
                                      f"[{n_expert}, rows, cols] expected ({arch}.expert_count).",
                                      hint="The file is corrupt; re-create it.")
            for ex in range(n_expert):
                entries.append((hf.replace("{e}", str(ex)), t, st_dtype, shape[1:], 0, ex, False))
        else:
            entries.append((hf, t, st_dtype, shape, heads, -1, minus_one))
        if len(shape) >= 2:
            dtype_count[st_dtype] = dtype_count.get(st_dtype, 0) + 1
    if unmapped:
        shown = ", ".join(unmapped[:5]) + (" …" if len(unmapped) > 5 else "")
        raise ConversionError(
            f"{src}: {len(unmapped)} tensor(s) have no safetensors name for {hf_arch}: {shown}.",
            hint="Nothing is dropped silently; this GGUF holds tensors the converter cannot map back.",
        )
    if not entries:
        raise ConversionError(f"{src} contains no tensors.", hint="Check the file.")

    def producer(t: Any, qt_name: str, shape: tuple[int, ...], heads: int, expert: int,
                 minus_one: bool) -> Callable[[], Iterator[bytes]]:
        def gen() -> Iterator[bytes]:
            qt = gguf.GGMLQuantizationType[qt_name]
            data = t.data
            if len(shape) < 2:
                arr = data if qt_name in ("F32", "F16", "BF16") else gguf.quants.dequantize(data, qt)
                if minus_one:  # Gemma: llama.cpp stores w + 1; undone in float32 (written as F32)
                    raw = np.asarray(arr)
                    f32 = (raw.astype(np.uint32) << 16).view(np.float32) if qt_name == "BF16" else raw.astype(np.float32)
                    arr = f32 - np.float32(1)
                yield np.ascontiguousarray(arr).tobytes()
                return
            rows = int(np.prod(shape[:-1]))
            first = 0 if expert < 0 else expert * rows
            data = data.reshape(-1, data.shape[-1])[first:first + rows]
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
    for hf, t, st_dtype, shape, heads, expert, minus_one in entries:
        qt_name = gguf.GGMLQuantizationType(int(t.tensor_type)).name
        ot = OutTensor(hf, st_dtype, shape, producer(t, qt_name, shape, heads, expert, minus_one))
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
        tied = not any(e[0] == "lm_head.weight" for e in entries)
        embd = next((e[3] for e in entries if e[0] == "model.embed_tokens.weight"), None)
        dominant = max(dtype_count, key=lambda k: dtype_count[k]) if dtype_count else "F32"
        cfg = _config(meta, entry, embd, tied, dominant)
        if rope_freqs is not None:
            cfg["rope_scaling"] = _llama3_scaling(src, np.asarray(rope_freqs.data, dtype=np.float32), cfg)
        if longrope or meta.get_float(f"{arch}.rope.scaling.attn_factor", None) is not None:
            cfg["rope_scaling"] = _longrope_scaling(meta, longrope, cfg)
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
    return [dst / n for n in written], len(entries), params


def _f7(v: Any) -> float:
    """A float32 metadata value as the short decimal it was written from (1e-05, not 9.99e-06)."""
    return float(f"{float(v):.7g}")


def _config(meta: Meta, entry: Arch, embd: tuple[int, ...] | None, tied: bool, dominant: str) -> dict[str, Any]:
    arch = entry.gguf
    p = arch + "."
    n_embd = meta.get_int(p + "embedding_length", minimum=1)
    n_head = meta.get_int(p + "attention.head_count", minimum=1)
    tokens = meta.get_array("tokenizer.ggml.tokens", "str", [])
    vocab = meta.get_int(p + "vocab_size", 0) or (embd[0] if embd else len(tokens))
    cfg: dict[str, Any] = {
        "architectures": [entry.hf[0]],
        "model_type": entry.model_type,
        "vocab_size": vocab,
        "hidden_size": n_embd,
        "intermediate_size": meta.get_int(p + "feed_forward_length", minimum=1),
        "num_hidden_layers": meta.get_int(p + "block_count", minimum=1),
        "num_attention_heads": n_head,
        "num_key_value_heads": meta.get_int(p + "attention.head_count_kv", n_head, minimum=1),
        "max_position_embeddings": meta.get_int(p + "context_length", 4096, minimum=1),
        "rms_norm_eps": _f7(meta.get_float(p + "attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": _f7(meta.get_float(p + "rope.freq_base", 10000.0)),
        "hidden_act": entry.hidden_act,
        "tie_word_embeddings": tied,
        "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dominant],
    }
    key_len = meta.get_int(p + "attention.key_length", None, minimum=1)
    if key_len is not None:  # written only when config.json had head_dim (or the arch always has it)
        cfg["head_dim"] = key_len
    head_dim = key_len or n_embd // n_head
    rope_dim = meta.get_int(p + "rope.dimension_count", None, minimum=1)
    if rope_dim is not None and rope_dim != head_dim:
        cfg["partial_rotary_factor"] = rope_dim / head_dim
    stype = meta.get_str(p + "rope.scaling.type", None)
    if stype in ("linear", "yarn"):
        rs: dict[str, Any] = {"rope_type": stype, "factor": meta.get_float(p + "rope.scaling.factor", 1.0)}
        orig = meta.get_int(p + "rope.scaling.original_context_length", None)
        if orig:
            rs["original_max_position_embeddings"] = orig
        for key, suffix in (("extrapolation_factor", "ext_factor"), ("attention_factor", "attn_factor"),
                            ("beta_fast", "beta_fast"), ("beta_slow", "beta_slow")):
            v = meta.get_float(f"{p}rope.scaling.yarn_{suffix}", None)
            if v is not None:
                rs[key] = _f7(v)
        cfg["rope_scaling"] = rs
    elif stype not in (None, "none") and not (stype == "longrope" and entry.longrope):
        raise ConversionError(f"{meta.src}: rope scaling type {stype!r} cannot be mapped back to config.json.",
                              hint="Supported: linear, yarn, and Llama 3's rope_freqs tensor.")
    for hp in entry.hparams:
        v = meta.get_int(p + hp.gguf, None) if hp.kind == "int" else meta.get_float(p + hp.gguf, None)
        if v is not None:
            cfg[hp.config[0]] = _f7(v) if hp.kind == "float" else v
    if entry.attention_bias is not None:
        cfg["attention_bias"] = entry.attention_bias
    for key, name in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("padding", "pad_token_id")):
        v = meta.token_id(f"tokenizer.ggml.{key}_token_id", max(vocab, len(tokens)))
        if v is not None:
            cfg[name] = v
    return cfg


def _check_metadata_keys(meta: Meta, reader: Any, entry: Arch) -> None:
    """Every metadata key must be one the converter maps back (or informational ``general.*``)."""
    arch_keys = _GENERIC_KEYS | {hp.gguf for hp in entry.hparams} | ({"rope.scaling.attn_factor"} if entry.longrope else set())
    unknown = []
    for key in reader.fields:
        if key.startswith(("GGUF.", "general.")):
            continue
        if key.startswith(entry.gguf + "."):
            if key[len(entry.gguf) + 1:] not in arch_keys:
                unknown.append(key)
        elif key not in _TOKENIZER_KEYS:
            unknown.append(key)
    if unknown:
        shown = ", ".join(unknown[:5]) + (" …" if len(unknown) > 5 else "")
        raise ConversionError(f"{meta.src}: {len(unknown)} metadata key(s) cannot be mapped back to a {entry.hf[0]} "
                              f"checkpoint: {shown}.",
                              hint="Nothing is dropped silently; the GGUF carries settings config.json cannot express.")


def _f32_short(v: Any) -> float:
    """A float32 value as the shortest decimal that reads back as the same float32 (1.08, not 1.0800000429)."""
    return float(str(np.float32(v)))


def _longrope_scaling(meta: Meta, tensors: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    """config.json's Phi-3 LongRoPE ``rope_scaling`` from the two factor tensors and the attention factor."""
    from batuta_sync.convert.hf_to_gguf import longrope_attn_factor

    arch = meta.get_str("general.architecture")
    orig = meta.get_int(f"{arch}.rope.scaling.original_context_length", None, minimum=1)
    rope_dim = int(cfg.get("partial_rotary_factor", 1.0) * int(cfg.get("head_dim") or cfg["hidden_size"]
                                                                // cfg["num_attention_heads"]))
    got = {k: np.asarray(t.data, dtype=np.float32).reshape(-1) for k, t in tensors.items()
           if int(t.tensor_type) == 0}  # F32, as llama.cpp writes them
    if orig is None or len(got) != 2 or len(tensors) != 2 or any(a.shape != (rope_dim // 2,) for a in got.values()):
        raise ConversionError(f"{meta.src}: LongRoPE needs rope_factors_long.weight and rope_factors_short.weight "
                              f"(F32, {rope_dim // 2} values each) and {arch}.rope.scaling.original_context_length; "
                              f"this file has {sorted(tensors) or 'no factor tensors'}.",
                              hint="Nothing is dropped silently; re-create the GGUF from the original checkpoint.")
    rs: dict[str, Any] = {"type": "longrope",
                          "long_factor": [_f32_short(x) for x in got["rope_factors_long.weight"]],
                          "short_factor": [_f32_short(x) for x in got["rope_factors_short.weight"]]}
    stored = np.float32(meta.get_float(f"{arch}.rope.scaling.attn_factor", 1.0))  # llama.cpp's default: 1
    if stored != np.float32(longrope_attn_factor(int(cfg["max_position_embeddings"]), orig)):
        rs["attention_factor"] = _f32_short(stored)
    return rs


def _snap(v: float) -> float:
    """A fitted value as the short number it was written as (1.0, not 0.99999994), when that close."""
    nice = round(v * 8) / 8
    return nice if abs(nice - v) <= 1e-4 * max(1.0, abs(v)) else round(v, 6)


def _llama3_scaling(src: Path, factors: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    """config.json's Llama 3 ``rope_scaling`` from the ``rope_freqs`` factors llama.cpp stores.

    The factors are 1 for short wavelengths, ``factor`` for long ones and ``1 / ((1-s)/factor + s)`` in
    between, with ``s`` linear in 1/wavelength; the parameters are fitted (original context 8192 unless
    the smooth part says otherwise) and accepted only if they reproduce every stored factor."""
    from batuta_sync.convert.hf_to_gguf import ModelSpec, _llama3_rope_factors

    head_dim = int(cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"])
    theta = float(cfg["rope_theta"])
    factor = float(factors.max())
    freqs = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    inv_wl = freqs / (2 * np.pi)
    smooth = (factors > 1.0) & (factors < factor)
    candidates = [(1.0, 4.0, 8192)]
    if smooth.sum() >= 2 and factor > 1:
        s = (1.0 / factors[smooth] - 1.0 / factor) / (1.0 - 1.0 / factor)
        a, b = np.polyfit(inv_wl[smooth], s, 1)  # s = old/(high-low) / wl - low/(high-low)
        fitted = []
        for old in (8192, 4096, 2048, 16384, 32768, 131072):  # only old/low and old/high are identifiable
            span = old / a
            fitted.append((_snap(-b * span), _snap(-b * span + span), old))
        candidates = fitted + candidates
    for low, high, old in candidates:
        rs = {"rope_type": "llama3", "factor": _f7(factor), "low_freq_factor": low, "high_freq_factor": high,
              "original_max_position_embeddings": old}
        if factors.shape != (head_dim // 2,) or high <= low:
            continue
        spec = ModelSpec("", "llama", True, 1, head_dim, 1, 1, 1, head_dim, True, 1, 1e-5, theta, 1, False, rs)
        if np.allclose(_llama3_rope_factors(spec), factors, rtol=1e-6, atol=0):
            return rs
    raise ConversionError(f"{src}: the rope_freqs tensor does not match Llama 3 rope scaling with any parameters "
                          "tried, so it cannot be mapped back to config.json.",
                          hint="Nothing is dropped silently; this GGUF's rope factors have no config.json form.")
