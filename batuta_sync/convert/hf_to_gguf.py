"""Hugging Face LLaMA-family checkpoint (config.json + safetensors + tokenizer) -> GGUF.

Streaming: the safetensors files are memory-mapped; the GGUF header, metadata and tensor
infos are written first (every output size is known from shapes and types), then tensor data
is produced row-chunk by row-chunk -- by ``jobs`` workers when ``jobs > 1`` (threads for the
compiled K-quant kernels, processes otherwise) -- and written at its offset.  Peak memory is a few chunks, not the model.  The file appears atomically.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from batuta_sync.convert.archs import ARCHS, BY_HF, TOP_NAMES, Arch, HParam, supported_hf
from batuta_sync.convert.formats import GGUFQuantization, read_json
from batuta_sync.convert.hf_config import MAX_LAYERS, Config
from batuta_sync.convert.quantize import QuantOptions, choose_type, model_info, quantize_rows, row_bytes
from batuta_sync.convert.st_io import FLOAT_DTYPES, TensorRef, read_header, temp_path_for
from batuta_sync.errors import ConversionError

_HF_LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)\.(weight|bias)$")
_SKIP = re.compile(r"(rotary_emb\.inv_freq|\.attention\.masked_bias|\.attention\.bias)$")
_EXPERT = re.compile(r"\.experts\.(\d+)\.")
# yarn rope_scaling keys -> {arch}.rope.scaling.<suffix> (config.json spelling first; attn_factor is an alias)
_YARN = {"extrapolation_factor": "yarn_ext_factor", "attention_factor": "yarn_attn_factor",
         "attn_factor": "yarn_attn_factor", "beta_fast": "yarn_beta_fast", "beta_slow": "yarn_beta_slow"}

CHUNK_ELEMENTS = 1 << 21  # 2M values (8 MB as float32) per work item
# K-quant items are an eighth of that: the compiled kernels run as fast on 256K values, and the
# chunks in flight cost ~15 MB less (numpy quantizers lose ~10 % on smaller items)
_KQUANT_CHUNK_DIVISOR = 8


def hf_to_gguf_name(name: str, arch: Arch) -> tuple[str, int] | None:
    """(GGUF tensor name, expert index or -1) for an HF name; None for tensors dropped on purpose
    (rotary caches, the arch's ``skip`` list); ("", -1) for a name this architecture does not know."""
    if _SKIP.search(name) or name in arch.skip:
        return None
    for hf, gg in TOP_NAMES.items():
        for suffix in (".weight", ".bias"):
            if name == hf + suffix:
                return gg + suffix, -1
    m = _HF_LAYER.match(name)
    if not m:
        return "", -1
    layer, inner, suffix = m.groups()
    if inner in arch.layer:
        return f"blk.{layer}.{arch.layer[inner]}.{suffix}", -1
    e = _EXPERT.search("." + inner + ".")
    if e:
        pattern = ("." + inner + ".").replace(e.group(0), ".experts.{e}.", 1)[1:-1]
        if pattern in arch.experts:
            return f"blk.{layer}.{arch.experts[pattern]}.{suffix}", int(e.group(1))
    return "", -1


def qk_permutation(rows: int, n_head: int) -> Any:
    """Row order llama.cpp wants for q_proj/k_proj: HF's rotary halves -> interleaved pairs."""
    return np.arange(rows).reshape(n_head, 2, rows // n_head // 2).swapaxes(1, 2).reshape(-1)


@dataclass(frozen=True)
class ModelSpec:
    hf_arch: str
    arch: str
    permute: bool
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    explicit_head_dim: bool
    context_length: int
    rms_eps: float
    rope_theta: float
    vocab_size: int
    tied: bool
    rope_scaling: dict[str, Any] = field(default_factory=dict)
    entry: Arch = ARCHS[0]
    n_expert: int = 0
    extra: tuple[tuple[HParam, Any], ...] = ()  # the arch's extra hparams and their values
    rope_dim: int = 0  # rotary dimensions (head_dim * partial_rotary_factor)
    longrope: LongRope | None = None  # Phi-3 LongRoPE: rope_factors_long/short tensors + rope.scaling.attn_factor


@dataclass(frozen=True)
class LongRope:
    """Phi-3's LongRoPE, as llama.cpp's converter stores it (``Phi3MiniModel.generate_extra_tensors``)."""

    long_factor: tuple[float, ...]
    short_factor: tuple[float, ...]
    attn_factor: float


def longrope_attn_factor(context_length: int, original: int) -> float:
    """The attention factor llama.cpp's converter (and transformers' default) derive for LongRoPE."""
    scale = context_length / original
    return math.sqrt(1 + math.log(scale) / math.log(original)) if scale > 1.0 else 1.0


def _factor_list(rcfg: Config, key: str, n: int) -> tuple[float, ...]:
    v: Any = rcfg.data.get(key)
    ok = isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                                     for x in v)
    if not ok or len(v) != n:
        got = f"{len(v)} values" if isinstance(v, list) else ("nothing" if v is None else type(v).__name__)
        raise ConversionError(f"{rcfg.path}: rope scaling type 'longrope' needs {key} as a list of {n} finite numbers "
                              f"(rope.dimension_count / 2), got {got}.", hint="Fix rope_scaling in config.json.")
    return tuple(float(x) for x in v)


def _longrope(rcfg: Config, cfg: Config, ctx: int, rope_dim: int) -> LongRope:
    """LongRoPE's factors and attention factor; every key llama.cpp needs must be there and well-formed."""
    orig = rcfg.get_int("original_max_position_embeddings", default=None) or cfg.get_int(
        "original_max_position_embeddings")
    if not cfg.has("original_max_position_embeddings"):  # transformers 5 keeps it in rope_parameters
        cfg.data["original_max_position_embeddings"] = orig  # -> rope.scaling.original_context_length
    if rope_dim % 2:
        raise ConversionError(f"{rcfg.path}: LongRoPE needs an even rope dimension count, not {rope_dim}.",
                              hint="Fix partial_rotary_factor in config.json.")
    long_f, short_f = _factor_list(rcfg, "long_factor", rope_dim // 2), _factor_list(rcfg, "short_factor", rope_dim // 2)
    attn = longrope_attn_factor(ctx, orig)
    given = rcfg.get_float("attention_factor", default=None, positive=True)
    # llama.cpp's converter always derives the factor; an explicit one (transformers honours it) is kept
    return LongRope(long_f, short_f, attn if given is None else given)


def read_spec(raw_cfg: dict[str, Any], path: Path) -> ModelSpec:
    """Validate config.json and extract what GGUF needs; ConversionError names the bad or missing key."""
    cfg = Config(raw_cfg, path)
    archs = raw_cfg.get("architectures")
    hf_arch = archs[0] if isinstance(archs, list) and archs else raw_cfg.get("model_type", "")
    if not isinstance(hf_arch, str) or hf_arch not in BY_HF:
        raise ConversionError(
            f"Unsupported architecture {str(hf_arch or '(none)')[:80]!r} in {path}.",
            hint="GGUF conversion supports: " + ", ".join(supported_hf()) + ".",
        )
    entry = BY_HF[hf_arch]
    arch, permute = entry.gguf, entry.permute_qk
    if cfg.has("quantization_config"):
        raise ConversionError(f"{path} describes a pre-quantized checkpoint (quantization_config); its weights "
                              "cannot be mapped to GGUF types.", hint="Convert the original float checkpoint.")
    for k, v in entry.defaults.items():
        if not cfg.has(k):
            cfg.data[k] = v
    wanted = {
        "num_hidden_layers": ("num_hidden_layers", "n_layers", "n_layer", "num_layers"),
        "hidden_size": ("hidden_size", "n_embd", "dim"),
        "intermediate_size": ("intermediate_size", "n_inner", "hidden_dim"),
        "num_attention_heads": ("num_attention_heads", "n_head", "n_heads"),
        "vocab_size": ("vocab_size",),
    }
    cfg.require(wanted)
    n_layer = cfg.get_int(*wanted["num_hidden_layers"], maximum=MAX_LAYERS)
    n_embd = cfg.get_int(*wanted["hidden_size"])
    n_ff = cfg.get_int(*wanted["intermediate_size"])
    n_head = cfg.get_int(*wanted["num_attention_heads"], maximum=1 << 16)
    vocab = cfg.get_int("vocab_size")
    n_head_kv = cfg.get_int("num_key_value_heads", "n_kv_heads", default=n_head, maximum=n_head)
    head_dim = cfg.get_int("head_dim", default=0, minimum=0) or n_embd // n_head
    ctx = cfg.get_int("max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length",
                      "model_max_length", default=4096)
    eps = cfg.get_float("rms_norm_eps", "norm_eps", default=1e-5, positive=True)
    rope: dict[str, Any] = {}
    for key in ("rope_parameters", "rope_scaling"):  # transformers 5 / 4 spelling
        sub = cfg.get_dict(key)
        if "full_attention" in sub.data:  # transformers 5, per attention type (Gemma 3)
            swa = sub.get_dict("sliding_attention").data.get("rope_theta")
            if swa is not None and raw_cfg.get("rope_local_base_freq") is None:  # over the arch's default
                cfg.data["rope_local_base_freq"] = swa
            sub = sub.get_dict("full_attention")
        rope.update(sub.data)
    rcfg = Config({}, path)
    rcfg.data = rope
    theta = rcfg.get_float("rope_theta", default=None, positive=True) or cfg.get_float(
        "rope_theta", "rotary_emb_base", default=10000.0, positive=True)
    rtype = rcfg.get_str("rope_type", "type", default="")
    is_longrope = rtype in ("longrope", "su") and entry.longrope
    if rtype not in ("", "default", "linear", "yarn") and not (rtype == "llama3" and arch == "llama") and not is_longrope:
        raise ConversionError(f"{path}: rope scaling type {rtype!r} is not supported for {hf_arch}.",
                              hint="Supported: linear, yarn, llama3 (Llama 3.x) and longrope (Phi-3); "
                              "nothing is dropped silently.")
    if rtype in ("linear", "yarn", "llama3"):
        rope["factor"] = rcfg.get_float("factor", default=8.0 if rtype == "llama3" else None, positive=True)
        for k in ("low_freq_factor", "high_freq_factor"):
            rope[k] = rcfg.get_float(k, default=None, positive=True)
        rope["original_max_position_embeddings"] = rcfg.get_int("original_max_position_embeddings", default=None)
        for k in _YARN:
            rope[k] = rcfg.get_float(k, default=None)
        if rtype == "yarn" and rope["original_max_position_embeddings"] is None:
            raise ConversionError(f"{path}: yarn rope scaling needs original_max_position_embeddings.",
                                  hint="Fix rope_scaling in config.json.")
    if n_head % n_head_kv or head_dim % 2:
        raise ConversionError(f"{path} has inconsistent sizes (heads {n_head}/{n_head_kv}, head_dim {head_dim}).",
                              hint="Fix config.json.")
    tied = cfg.get_bool("tie_word_embeddings", default=entry.norm_offset)  # Gemma ties by default
    n_expert = 0
    if entry.experts:
        n_expert = cfg.get_int("num_local_experts", "num_experts", maximum=1 << 12)
    partial = cfg.get_float("partial_rotary_factor", default=1.0, positive=True)
    rope_dim = int(partial * head_dim) if cfg.has("head_dim") else int(partial * n_embd) // n_head
    longrope = _longrope(rcfg, cfg, ctx, rope_dim) if is_longrope else None
    extra = []
    for hp in entry.hparams:
        if hp.unless is not None and cfg.data.get(hp.unless[0]) == hp.unless[1]:
            continue
        if hp.kind == "int":
            value = cfg.get_int(*hp.config, default=hp.default, minimum=0)
        else:
            value = cfg.get_float(*hp.config, default=hp.default)
        if value is not None:
            extra.append((hp, value))
    return ModelSpec(hf_arch, arch, permute, n_layer, n_embd, n_ff, n_head, n_head_kv, head_dim,
                     cfg.has("head_dim"), ctx, eps, theta, vocab, tied, rope, entry, n_expert, tuple(extra), rope_dim,
                     longrope)


def find_weights(model_dir: Path) -> dict[str, TensorRef]:
    """All tensors of a model directory (sharded via the index, or every *.safetensors)."""
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        wm = read_json(index, "Safetensors index").get("weight_map")
        if not isinstance(wm, dict) or not wm:
            raise ConversionError(f"{index} has no weight_map.", hint="Re-download the index file.")
        files = sorted({model_dir / str(f) for f in wm.values()})
    else:
        files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ConversionError(f"{model_dir} contains no .safetensors weights.",
                              hint="Conversion to GGUF reads safetensors; convert .bin files first (--allow-unsafe).")
    out: dict[str, TensorRef] = {}
    for f in files:
        if not f.is_file():
            raise ConversionError(f"{f.name} is listed in the safetensors index but missing.", hint="Download all shards.")
        for name, ref in read_header(f).items():
            out[name] = ref
    return out


def _llama3_rope_factors(spec: ModelSpec) -> Any:
    r = spec.rope_scaling
    factor = float(r.get("factor") or 8.0)
    low = float(r.get("low_freq_factor") or 1.0)
    high = float(r.get("high_freq_factor") or 4.0)
    old_ctx = int(r.get("original_max_position_embeddings") or 8192)
    if high <= low:
        raise ConversionError(f"rope_scaling has high_freq_factor {high} <= low_freq_factor {low}.",
                              hint="Fix rope_scaling in config.json.")
    freqs = 1.0 / (spec.rope_theta ** (np.arange(0, spec.head_dim, 2, dtype=np.float32) / spec.head_dim))
    low_wl, high_wl = old_ctx / low, old_ctx / high
    out = []
    for f in freqs:
        wl = 2 * math.pi / f
        if wl < high_wl:
            out.append(1.0)
        elif wl > low_wl:
            out.append(factor)
        else:
            smooth = (old_ctx / wl - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


@dataclass(frozen=True)
class PlannedTensor:
    name: str  # GGUF name
    shape: tuple[int, ...]  # numpy order
    qtype: str
    ref: TensorRef | None  # None: ``data`` holds a synthesized tensor
    perm_heads: int = 0  # >0: apply the Q/K permutation with this many heads
    data: Any = None
    experts: tuple[TensorRef, ...] = ()  # MoE: one HF tensor per expert, stacked on a new first axis
    norm_offset: bool = False  # Gemma: store w + 1

    @property
    def nbytes(self) -> int:
        rows = 1
        for d in self.shape[:-1]:
            rows *= d
        return rows * row_bytes(self.qtype, self.shape[-1])


def plan(spec: ModelSpec, weights: dict[str, TensorRef], quant: GGUFQuantization,
         options: QuantOptions | None = None) -> list[PlannedTensor]:
    """Which tensors go into the GGUF, under which names, in which order and type.

    Every tensor of the checkpoint is accounted for: mapped, merged into an expert tensor, or on the
    architecture's short list of tensors dropped on purpose; anything else is an error."""
    arch = spec.entry
    mapped: dict[str, tuple[TensorRef, str]] = {}
    experts: dict[str, dict[int, TensorRef]] = {}
    unknown = []
    for hf_name, ref in weights.items():
        got = hf_to_gguf_name(hf_name, arch)
        if got is None:
            continue
        gg, expert = got
        if gg == "":
            unknown.append(hf_name)
            continue
        if gg == "output.weight" and spec.tied:
            continue  # llama.cpp reuses token_embd for tied embeddings
        if ref.dtype not in FLOAT_DTYPES:
            raise ConversionError(f"Tensor {hf_name} has dtype {ref.dtype}; only float weights convert to GGUF.")
        if expert >= 0:
            experts.setdefault(gg, {})[expert] = ref
        else:
            mapped[gg] = (ref, hf_name)
    if unknown:
        shown = ", ".join(sorted(unknown)[:5]) + (" …" if len(unknown) > 5 else "")
        raise ConversionError(
            f"{len(unknown)} tensor(s) have no GGUF name for {spec.hf_arch}: {shown}.",
            hint=f"The checkpoint does not look like a plain {spec.hf_arch}; nothing is dropped silently. "
            "Supported: " + ", ".join(supported_hf()) + ".",
        )
    layer_kinds = [k for k in arch.layer.values()]
    required = ["token_embd.weight", "output_norm.weight"] + [
        f"blk.{i}.{t}.weight" for i in range(spec.n_layer) for t in layer_kinds
    ]
    expert_names = [f"blk.{i}.{t}.weight" for i in range(spec.n_layer) for t in arch.experts.values()]
    missing = [n for n in required if n not in mapped]
    missing += [n for n in expert_names if set(range(spec.n_expert)) - set(experts.get(n, {}))]
    if missing:
        raise ConversionError(
            f"The checkpoint is missing {len(missing)} tensor(s), e.g. {missing[0]} "
            f"(config.json says {spec.n_layer} layers" + (f", {spec.n_expert} experts)." if arch.experts else ")."),
            hint="Download every shard, and check that config.json belongs to these weights.",
        )
    extra = sorted(set(experts) - set(expert_names)) + [
        n for n, per in experts.items() if n in expert_names and max(per) >= spec.n_expert]
    if extra:
        raise ConversionError(f"Expert tensors do not match config.json's {spec.n_expert} experts: {extra[0]}.",
                              hint="config.json does not belong to these weights.")
    order = [*layer_kinds, *arch.experts.values()]

    def key(gg: str) -> tuple[int, int, int, str]:
        if gg.startswith("blk."):
            _, layer, kind, suffix = gg.split(".", 3)
            return (1, int(layer), order.index(kind) if kind in order else 99, suffix)
        top = {"token_embd": 0, "output_norm": 2, "output": 3}
        return (0 if gg.startswith("token_embd") else top.get(gg.split(".")[0], 4), 0, 0, gg)

    tied = spec.tied or "output.weight" not in mapped
    minfo = model_info(spec.arch, spec.n_layer, spec.n_head, spec.n_head_kv,
                       n_expert=spec.n_expert, tied=tied)
    out: list[PlannedTensor] = []
    rtype = str(spec.rope_scaling.get("rope_type") or spec.rope_scaling.get("type") or "")
    if spec.arch == "llama" and rtype == "llama3":
        factors = _llama3_rope_factors(spec)
        out.append(PlannedTensor("rope_freqs.weight", factors.shape, "F32", None, data=factors))
    if spec.longrope is not None:  # llama.cpp writes them first, long then short
        for name, values in (("rope_factors_long.weight", spec.longrope.long_factor),
                             ("rope_factors_short.weight", spec.longrope.short_factor)):
            arr = np.array(values, dtype=np.float32)
            out.append(PlannedTensor(name, arr.shape, "F32", None, data=arr))
    for gg in sorted([*mapped, *experts], key=key):
        if gg in experts:
            refs = tuple(experts[gg][e] for e in range(spec.n_expert))
            if len({(r.shape, r.dtype) for r in refs}) != 1 or len(refs[0].shape) != 2:
                raise ConversionError(f"The experts merged into {gg} differ in shape or dtype.",
                                      hint="The checkpoint is inconsistent.")
            shape3 = (spec.n_expert, *refs[0].shape)
            qtype = choose_type(gg, shape3, quant, n_layer=spec.n_layer, tied=tied)
            out.append(PlannedTensor(gg, shape3, qtype, refs[0], experts=refs))
            continue
        ref, hf_name = mapped[gg]
        shape = ref.shape
        expect = {
            "token_embd.weight": (spec.vocab_size, spec.n_embd),
            "output.weight": (spec.vocab_size, spec.n_embd),
        }.get(gg)
        if expect and shape != expect:
            raise ConversionError(f"{hf_name} has shape {list(shape)}, config.json implies {list(expect)}.",
                                  hint="config.json does not match the weights.")
        heads = 0
        if spec.permute and (gg.startswith("blk.") and (".attn_q." in gg or ".attn_k." in gg)):
            heads = spec.n_head if ".attn_q." in gg else spec.n_head_kv
            if shape[0] % (2 * heads):
                raise ConversionError(f"{hf_name} has {shape[0]} rows, not divisible into {heads} heads.",
                                      hint="config.json does not match the weights.")
        kind = gg.split(".")[2] if gg.startswith("blk.") else ""
        qtype = "F32" if kind in arch.f32 else choose_type(gg, shape, quant, n_layer=spec.n_layer, tied=tied,
                                                          model=minfo, options=options)
        offset = arch.norm_offset and hf_name.endswith("norm.weight")
        out.append(PlannedTensor(gg, shape, qtype, ref, heads, norm_offset=offset))
    return out


# --------------------------------------------------------------------------- work items

# (source, synthesized data, permutation heads, first row, end row, ggml type, numpy shape, byte offset in the
# file, add-one (Gemma norms)); source is a TensorRef, the experts' TensorRefs (stacked), or None
Source = TensorRef | tuple[TensorRef, ...] | None
# + the importance-matrix weights (n_mat, ncols) of the tensor, or None
WorkItem = tuple[Source, Any, int, int, int, str, tuple[int, ...], int, bool, Any]


def _work_items(t: PlannedTensor, offset: int, weights: Any = None) -> Iterator[WorkItem]:
    src: Source = t.experts or t.ref
    if len(t.shape) < 2:
        yield (src, t.data, 0, 0, 0, t.qtype, t.shape, offset, t.norm_offset, None)
        return
    rows = 1
    for d in t.shape[:-1]:
        rows *= d
    rb = row_bytes(t.qtype, t.shape[-1])
    chunk = CHUNK_ELEMENTS // _KQUANT_CHUNK_DIVISOR if t.qtype.endswith("_K") else CHUNK_ELEMENTS
    step = max(1, chunk // max(1, t.shape[-1]))
    for r0 in range(0, rows, step):
        yield (src, t.data, t.perm_heads, r0, min(rows, r0 + step), t.qtype, t.shape, offset + r0 * rb, False,
               weights)


def _rows(src: TensorRef | tuple[TensorRef, ...], ncols: int, r0: int, r1: int, heads: int) -> tuple[Any, str]:
    """Stored rows [r0, r1) of a tensor (of the experts stacked, for a tuple), and their dtype."""
    if isinstance(src, tuple):
        per = src[0].n_elements // ncols
        parts = []
        for e in range(r0 // per, (r1 - 1) // per + 1):
            a, b = max(r0, e * per) - e * per, min(r1, (e + 1) * per) - e * per
            parts.append(src[e].raw().reshape(-1, ncols)[a:b])
        return np.concatenate(parts) if len(parts) > 1 else parts[0], src[0].dtype
    raw = src.raw().reshape(-1, ncols)
    if heads:
        return raw[qk_permutation(raw.shape[0], heads)[r0:r1]], src.dtype
    return raw[r0:r1], src.dtype


def item_bytes(item: WorkItem) -> bytes:
    """The output bytes of one work item."""
    from batuta_sync.convert.st_io import to_f32

    src, data, heads, r0, r1, qtype, shape, _, add_one, weights = item
    if src is None:
        arr = np.asarray(data, dtype=np.float32)
        return quantize_rows(arr if len(shape) < 2 else arr.reshape(-1, shape[-1])[r0:r1], qtype)
    if len(shape) < 2:
        assert isinstance(src, TensorRef)
        if add_one:  # llama.cpp adds in float16 for float16 checkpoints, else in float32
            if src.dtype == "F16":
                return quantize_rows((np.asarray(src.raw()) + np.float16(1)).astype(np.float32), qtype)
            return quantize_rows(src.rows_f32() + np.float32(1), qtype)
        return quantize_rows(src.rows_f32(), qtype)
    sub, dtype = _rows(src, shape[-1], r0, r1, heads)
    if qtype == dtype and qtype in ("F32", "F16", "BF16"):
        out = np.ascontiguousarray(sub).tobytes()  # same type: an exact copy, no float round trip
    else:
        x = to_f32(sub, dtype)
        out = quantize_rows(x, qtype) if weights is None else quantize_rows(
            x, qtype, weights, first_row=r0, rows_per_matrix=shape[-2] if len(shape) == 3 else 0)
    del sub
    return out


def run_item(item: WorkItem, path: str) -> int:
    """Compute one work item and write it at its offset in ``path`` (in a worker process when jobs > 1)."""
    data = item_bytes(item)
    fd = os.open(path, os.O_WRONLY)
    try:
        view = memoryview(data)
        pos = item[7]
        while view:
            n = os.pwrite(fd, view, pos)
            view, pos = view[n:], pos + n
    finally:
        os.close(fd)
    return len(data)


def _is_copy(item: WorkItem) -> bool:
    src, qtype = item[0], item[5]
    dtype = src[0].dtype if isinstance(src, tuple) else src.dtype if src is not None else ""
    return dtype == qtype and qtype in ("F32", "F16", "BF16")


def _run_all(items: list[WorkItem], path: str, jobs: int, done: Callable[[int], None]) -> None:
    """Run every item (writing into ``path``); ``done(i)`` after item i, in completion order.

    Items are independent (each writes its own byte range), so order does not matter.  Plain
    copies run in this process; quantization goes to ``jobs`` workers (threads for the compiled
    K-quant kernels, processes otherwise: :func:`pool_kind`).
    """
    heavy = [i for i, it in enumerate(items) if not _is_copy(it)]
    light = [i for i, it in enumerate(items) if _is_copy(it)]
    if jobs <= 1 or len(heavy) <= 1:
        for i in range(len(items)):
            run_item(items[i], path)
            done(i)
        return
    from concurrent.futures import FIRST_COMPLETED, wait

    with _pool(jobs, {items[i][5] for i in heavy}) as pool:
        pending: dict[Any, int] = {}
        heavy.reverse()
        light.reverse()
        while heavy or light or pending:
            while heavy and len(pending) < 2 * jobs:  # bounded: a few chunks in flight
                i = heavy.pop()
                pending[pool.submit(run_item, items[i], path)] = i
            if light:  # copy while the workers quantize
                i = light.pop()
                run_item(items[i], path)
                done(i)
                continue
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                fut.result()
                done(pending.pop(fut))


def pool_kind(qtypes: set[str]) -> str:
    """``"threads"`` when every quantized type runs in the compiled K-quant kernels (they release
    the GIL, and one process pays numba/LLVM's ~130 MB once instead of per worker), else
    ``"processes"`` (numpy quantizers hold the GIL for much of their work)."""
    from batuta_sync.convert.kquants import BLOCK_BYTES, backend_name

    quantized = qtypes - {"F32", "F16", "BF16"}  # float casts (norms) are cheap numpy work
    if quantized and all(q in BLOCK_BYTES and backend_name(q) == "numba" for q in quantized):
        return "threads"
    return "processes"


def _pool(jobs: int, qtypes: set[str]) -> Any:
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    if pool_kind(qtypes) == "threads":
        return ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="batuta-quantize")
    import multiprocessing as mp

    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else "spawn")
    return ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=die_with_parent, initargs=(os.getpid(),))


def die_with_parent(parent_pid: int) -> None:
    """Pool-worker initializer: exit when the parent dies, even by SIGKILL.

    Without it, the workers of a killed ``batuta apply`` wait forever on their task queue as
    orphans.  Linux: the kernel delivers SIGKILL on parent death (``PR_SET_PDEATHSIG``); elsewhere
    a daemon thread notices the re-parenting within a second.
    """
    import signal
    import sys
    import threading
    import time

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="batuta-parent-watch", daemon=True).start()


# --------------------------------------------------------------------------- writing


def size_label(tensors: list[PlannedTensor]) -> str:
    """``general.size_label`` as llama.cpp writes it ("1.3M", "8x7B"): parameters counted over the
    written tensors, expert tensors (``*_exps``) counted per expert."""
    import gguf

    total = shared = expert = expert_sum = n_expert_tensors = 0
    for t in tensors:
        size = math.prod(t.shape)
        total += size
        if "_exps." in t.name and len(t.shape) >= 3:
            expert += size // t.shape[0]
            expert_sum += t.shape[0]
            n_expert_tensors += 1
        else:
            shared += size
    count = expert_sum // n_expert_tensors if n_expert_tensors else 0
    return str(gguf.size_label(total, shared, expert, count))


def _add_metadata(w: Any, spec: ModelSpec, quant: GGUFQuantization, name: str, label: str) -> None:
    import gguf

    w.add_type("model")
    w.add_name(name)
    w.add_size_label(label)
    w.add_block_count(spec.n_layer)
    w.add_context_length(spec.context_length)
    w.add_embedding_length(spec.n_embd)
    w.add_feed_forward_length(spec.n_ff)
    w.add_head_count(spec.n_head)
    w.add_head_count_kv(spec.n_head_kv)
    if spec.entry.rope_freq_base:
        w.add_rope_freq_base(spec.rope_theta)
    w.add_layer_norm_rms_eps(spec.rms_eps)
    if spec.explicit_head_dim or spec.entry.head_dim_always:
        w.add_key_length(spec.head_dim)
        w.add_value_length(spec.head_dim)
    w.add_file_type(quant.file_type)
    if spec.entry.vocab_size:
        w.add_vocab_size(spec.vocab_size)
    if spec.entry.rope_dims:
        w.add_rope_dimension_count(spec.rope_dim)
    for hp, value in spec.extra:
        key = f"{spec.arch}.{hp.gguf}"
        if hp.kind == "float":
            w.add_float32(key, float(value))
        else:
            w.add_uint32(key, int(value))
    r = spec.rope_scaling
    rtype = str(r.get("rope_type") or r.get("type") or "")
    if rtype == "linear" and r.get("factor"):
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(float(r["factor"]))
    elif rtype == "yarn" and r.get("factor"):
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(float(r["factor"]))
        w.add_rope_scaling_orig_ctx_len(int(r["original_max_position_embeddings"]))
        done: set[str] = set()
        for k, suffix in _YARN.items():
            if r.get(k) is not None and suffix not in done:
                w.add_float32(f"{spec.arch}.rope.scaling.{suffix}", float(r[k]))
                done.add(suffix)
    if spec.longrope is not None:
        w.add_rope_scaling_attn_factors(spec.longrope.attn_factor)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)


def write_gguf(
    model_dir: Path,
    dst: Path,
    quant: GGUFQuantization,
    *,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
    options: QuantOptions | None = None,
) -> tuple[int, dict[str, str]]:
    """Convert ``model_dir`` into the GGUF file ``dst``; returns (tensor count, parameters)."""
    import gguf

    from batuta_sync.convert.tokenizer import add_vocab, load_vocab

    cfg_path = model_dir / "config.json"
    spec = read_spec(read_json(cfg_path, "Model config"), cfg_path)
    weights = find_weights(model_dir)
    tensors = plan(spec, weights, quant, options)
    vocab = load_vocab(model_dir, spec.vocab_size, spec.arch)
    tokenizer_model, tokenizer_pre = vocab.model, vocab.pre

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(dst)
    w = gguf.GGUFWriter(tmp, spec.arch)
    try:
        _add_metadata(w, spec, quant, model_dir.resolve().name, size_label(tensors))
        if options is not None and options.imatrix is not None:
            for key, value in options.imatrix.metadata():
                if isinstance(value, str):
                    w.add_string(key, value)
                else:
                    w.add_uint32(key, value)
        add_vocab(w, model_dir, vocab)
        if vocab.model == "llama" and spec.entry.add_space_prefix is not None:
            w.add_add_space_prefix(spec.entry.add_space_prefix)
        for t in tensors:
            if t.qtype in ("F32", "F16"):
                w.add_tensor_info(t.name, t.shape, np.dtype(np.float32 if t.qtype == "F32" else np.float16), t.nbytes)
            elif t.qtype == "BF16":
                w.add_tensor_info(t.name, t.shape, np.dtype(np.uint16), t.nbytes, raw_dtype=gguf.GGMLQuantizationType.BF16)
            else:
                byte_shape = (*t.shape[:-1], row_bytes(t.qtype, t.shape[-1]))
                w.add_tensor_info(t.name, byte_shape, np.dtype(np.uint8), t.nbytes,
                                  raw_dtype=gguf.GGMLQuantizationType[t.qtype])
        w.write_header_to_file(tmp)
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        assert w.fout is not None
        fout = w.fout[0]
        align = w.data_alignment
        pos = -(-fout.tell() // align) * align
        items: list[WorkItem] = []
        owner: list[int] = []
        for i, t in enumerate(tensors):
            before = len(items)
            items.extend(_work_items(t, pos, options.weights(t.name, t.shape, t.qtype) if options else None))
            owner.extend([i] * (len(items) - before))
            pos += -(-t.nbytes // align) * align
        fout.truncate(pos)  # every tensor's place (and padding) exists; workers fill them in
        w.close()
        # The header is on disk: drop the vocabulary and the writer's copies of it before the
        # tensors stream, so the quantizers' buffers reuse that memory (a few MB for a 32K vocab).
        del vocab
        w.kv_data, w.tensors = [{}], [{}]
        left = [0] * len(tensors)
        for i in owner:
            left[i] += 1
        finished = [0]

        def done(k: int) -> None:
            left[owner[k]] -= 1
            if left[owner[k]] == 0:
                finished[0] += 1
                if progress is not None:
                    progress(finished[0], len(tensors))

        from batuta_sync.convert.kquants import expected_work, k_blocks

        with expected_work(k_blocks((t.shape, t.qtype) for t in tensors)):
            _run_all(items, str(tmp), jobs, done)
        os.replace(tmp, dst)
    finally:
        w.close()
        if tmp.exists():
            tmp.unlink()
    counts: dict[str, int] = {}
    for t in tensors:
        counts[t.qtype] = counts.get(t.qtype, 0) + 1
    params = {
        "architecture": spec.arch,
        "quantization": quant.value,
        "tensor_types": ",".join(f"{k}:{v}" for k, v in sorted(counts.items())),
        "tokenizer": tokenizer_model,
        "tokenizer_pre": tokenizer_pre,
    }
    return len(tensors), params
