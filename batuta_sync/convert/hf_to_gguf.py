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

from batuta_sync.convert.formats import GGUFQuantization, read_json
from batuta_sync.convert.hf_config import MAX_LAYERS, Config
from batuta_sync.convert.quantize import choose_type, quantize_rows, row_bytes
from batuta_sync.convert.st_io import FLOAT_DTYPES, TensorRef, read_header, temp_path_for
from batuta_sync.errors import ConversionError

# HF architecture -> (gguf arch, Q/K permutation needed)
ARCHITECTURES: dict[str, tuple[str, bool]] = {
    "LlamaForCausalLM": ("llama", True),
    "MistralForCausalLM": ("llama", True),
    "Qwen2ForCausalLM": ("qwen2", False),
}
GGUF_TO_HF_ARCH = {"llama": ("LlamaForCausalLM", "llama"), "qwen2": ("Qwen2ForCausalLM", "qwen2")}

TOP_NAMES = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}
LAYER_NAMES = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_HF_LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)\.(weight|bias)$")
_SKIP = re.compile(r"(rotary_emb\.inv_freq|\.attention\.masked_bias|\.attention\.bias)$")
_LAYER_ORDER = list(LAYER_NAMES.values())

CHUNK_ELEMENTS = 1 << 21  # 2M values (8 MB as float32) per work item
# K-quant items are an eighth of that: the compiled kernels run as fast on 256K values, and the
# chunks in flight cost ~15 MB less (numpy quantizers lose ~10 % on smaller items)
_KQUANT_CHUNK_DIVISOR = 8


def hf_to_gguf_name(name: str) -> str | None:
    """GGUF tensor name for an HF name; None for tensors that are dropped (rotary caches)."""
    if _SKIP.search(name):
        return None
    for hf, gg in TOP_NAMES.items():
        for suffix in (".weight", ".bias"):
            if name == hf + suffix:
                return gg + suffix
    m = _HF_LAYER.match(name)
    if m and m.group(2) in LAYER_NAMES:
        return f"blk.{m.group(1)}.{LAYER_NAMES[m.group(2)]}.{m.group(3)}"
    return ""


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


def read_spec(raw_cfg: dict[str, Any], path: Path) -> ModelSpec:
    """Validate config.json and extract what GGUF needs; ConversionError names the bad or missing key."""
    cfg = Config(raw_cfg, path)
    archs = raw_cfg.get("architectures")
    hf_arch = archs[0] if isinstance(archs, list) and archs else raw_cfg.get("model_type", "")
    if not isinstance(hf_arch, str) or hf_arch not in ARCHITECTURES:
        raise ConversionError(
            f"Unsupported architecture {str(hf_arch or '(none)')[:80]!r} in {path}.",
            hint="GGUF conversion supports: " + ", ".join(ARCHITECTURES) + ".",
        )
    arch, permute = ARCHITECTURES[hf_arch]
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
        rope.update(cfg.get_dict(key).data)
    rcfg = Config({}, path)
    rcfg.data = rope
    theta = rcfg.get_float("rope_theta", default=None, positive=True) or cfg.get_float(
        "rope_theta", "rotary_emb_base", default=10000.0, positive=True)
    rtype = rcfg.get_str("rope_type", "type", default="")
    if rtype in ("linear", "yarn", "llama3"):
        rope["factor"] = rcfg.get_float("factor", default=8.0 if rtype == "llama3" else None, positive=True)
        for k in ("low_freq_factor", "high_freq_factor"):
            rope[k] = rcfg.get_float(k, default=None, positive=True)
        rope["original_max_position_embeddings"] = rcfg.get_int("original_max_position_embeddings", default=None)
    if n_head % n_head_kv or head_dim % 2:
        raise ConversionError(f"{path} has inconsistent sizes (heads {n_head}/{n_head_kv}, head_dim {head_dim}).",
                              hint="Fix config.json.")
    tied = cfg.get_bool("tie_word_embeddings", default=False)
    return ModelSpec(hf_arch, arch, permute, n_layer, n_embd, n_ff, n_head, n_head_kv, head_dim,
                     cfg.has("head_dim"), ctx, eps, theta, vocab, tied, rope)


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

    @property
    def nbytes(self) -> int:
        rows = 1
        for d in self.shape[:-1]:
            rows *= d
        return rows * row_bytes(self.qtype, self.shape[-1])


def plan(spec: ModelSpec, weights: dict[str, TensorRef], quant: GGUFQuantization) -> list[PlannedTensor]:
    """Which tensors go into the GGUF, under which names, in which order and type."""
    mapped: dict[str, tuple[TensorRef, str]] = {}
    unknown = []
    for hf_name, ref in weights.items():
        gg = hf_to_gguf_name(hf_name)
        if gg is None:
            continue
        if gg == "":
            unknown.append(hf_name)
            continue
        if gg == "output.weight" and spec.tied:
            continue  # llama.cpp reuses token_embd for tied embeddings
        if ref.dtype not in FLOAT_DTYPES:
            raise ConversionError(f"Tensor {hf_name} has dtype {ref.dtype}; only float weights convert to GGUF.")
        mapped[gg] = (ref, hf_name)
    if unknown:
        shown = ", ".join(sorted(unknown)[:5]) + (" …" if len(unknown) > 5 else "")
        raise ConversionError(
            f"{len(unknown)} tensor(s) have no GGUF name for {spec.hf_arch}: {shown}.",
            hint="The checkpoint does not look like a plain " + spec.hf_arch + "; only LLaMA-family models convert.",
        )
    required = ["token_embd.weight", "output_norm.weight"] + [
        f"blk.{i}.{t}.weight" for i in range(spec.n_layer) for t in _LAYER_ORDER
    ]
    missing = [n for n in required if n not in mapped]
    if missing:
        raise ConversionError(
            f"The checkpoint is missing {len(missing)} tensor(s), e.g. {missing[0]} "
            f"(config.json says {spec.n_layer} layers).",
            hint="Download every shard, and check that config.json belongs to these weights.",
        )

    def key(gg: str) -> tuple[int, int, int, str]:
        if gg.startswith("blk."):
            _, layer, kind, suffix = gg.split(".", 3)
            return (1, int(layer), _LAYER_ORDER.index(kind) if kind in _LAYER_ORDER else 99, suffix)
        top = {"token_embd": 0, "output_norm": 2, "output": 3}
        return (0 if gg.startswith("token_embd") else top.get(gg.split(".")[0], 4), 0, 0, gg)

    tied = spec.tied or "output.weight" not in mapped
    out: list[PlannedTensor] = []
    rtype = str(spec.rope_scaling.get("rope_type") or spec.rope_scaling.get("type") or "")
    if spec.arch == "llama" and rtype == "llama3":
        factors = _llama3_rope_factors(spec)
        out.append(PlannedTensor("rope_freqs.weight", factors.shape, "F32", None, data=factors))
    for gg in sorted(mapped, key=key):
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
        qtype = choose_type(gg, shape, quant, n_layer=spec.n_layer, tied=tied)
        out.append(PlannedTensor(gg, shape, qtype, ref, heads))
    return out


# --------------------------------------------------------------------------- work items

# (ref, synthesized data, permutation heads, first row, end row, ggml type, numpy shape, byte offset in the file)
WorkItem = tuple[TensorRef | None, Any, int, int, int, str, tuple[int, ...], int]


def _work_items(t: PlannedTensor, offset: int) -> Iterator[WorkItem]:
    if len(t.shape) < 2:
        yield (t.ref, t.data, 0, 0, 0, t.qtype, t.shape, offset)
        return
    rows = 1
    for d in t.shape[:-1]:
        rows *= d
    rb = row_bytes(t.qtype, t.shape[-1])
    chunk = CHUNK_ELEMENTS // _KQUANT_CHUNK_DIVISOR if t.qtype in ("Q4_K", "Q5_K", "Q6_K") else CHUNK_ELEMENTS
    step = max(1, chunk // max(1, t.shape[-1]))
    for r0 in range(0, rows, step):
        yield (t.ref, t.data, t.perm_heads, r0, min(rows, r0 + step), t.qtype, t.shape, offset + r0 * rb)


def item_bytes(item: WorkItem) -> bytes:
    """The output bytes of one work item."""
    ref, data, heads, r0, r1, qtype, shape, _ = item
    if ref is None:
        arr = np.asarray(data, dtype=np.float32)
        return quantize_rows(arr if len(shape) < 2 else arr.reshape(-1, shape[-1])[r0:r1], qtype)
    if len(shape) < 2:
        return quantize_rows(ref.rows_f32(), qtype)
    raw = ref.raw().reshape(-1, shape[-1])
    if heads:
        idx = qk_permutation(raw.shape[0], heads)[r0:r1]
        sub = raw[idx]
    else:
        sub = raw[r0:r1]
    if qtype == ref.dtype and qtype in ("F32", "F16", "BF16"):
        out = np.ascontiguousarray(sub).tobytes()  # same type: an exact copy, no float round trip
    else:
        from batuta_sync.convert.st_io import to_f32

        out = quantize_rows(to_f32(sub, ref.dtype), qtype)
    del raw, sub
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
    ref, qtype = item[0], item[5]
    return ref is not None and ref.dtype == qtype and qtype in ("F32", "F16", "BF16")


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


def _add_metadata(w: Any, spec: ModelSpec, quant: GGUFQuantization, name: str) -> None:
    import gguf

    w.add_type("model")
    w.add_name(name)
    w.add_block_count(spec.n_layer)
    w.add_context_length(spec.context_length)
    w.add_embedding_length(spec.n_embd)
    w.add_feed_forward_length(spec.n_ff)
    w.add_head_count(spec.n_head)
    w.add_head_count_kv(spec.n_head_kv)
    w.add_rope_freq_base(spec.rope_theta)
    w.add_layer_norm_rms_eps(spec.rms_eps)
    if spec.explicit_head_dim:
        w.add_key_length(spec.head_dim)
        w.add_value_length(spec.head_dim)
    w.add_file_type(quant.file_type)
    w.add_vocab_size(spec.vocab_size)
    w.add_rope_dimension_count(spec.head_dim)
    r = spec.rope_scaling
    rtype = str(r.get("rope_type") or r.get("type") or "")
    if rtype == "linear" and r.get("factor"):
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(float(r["factor"]))
    elif rtype == "yarn" and r.get("factor"):
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(float(r["factor"]))
        if r.get("original_max_position_embeddings"):
            w.add_rope_scaling_orig_ctx_len(int(r["original_max_position_embeddings"]))
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)


def write_gguf(
    model_dir: Path,
    dst: Path,
    quant: GGUFQuantization,
    *,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, dict[str, str]]:
    """Convert ``model_dir`` into the GGUF file ``dst``; returns (tensor count, parameters)."""
    import gguf

    from batuta_sync.convert.tokenizer import add_vocab, load_vocab

    cfg_path = model_dir / "config.json"
    spec = read_spec(read_json(cfg_path, "Model config"), cfg_path)
    weights = find_weights(model_dir)
    tensors = plan(spec, weights, quant)
    vocab = load_vocab(model_dir, spec.vocab_size, spec.arch)
    tokenizer_model, tokenizer_pre = vocab.model, vocab.pre

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(dst)
    w = gguf.GGUFWriter(tmp, spec.arch)
    try:
        _add_metadata(w, spec, quant, model_dir.resolve().name)
        add_vocab(w, model_dir, vocab)
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
            items.extend(_work_items(t, pos))
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
