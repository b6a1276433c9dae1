"""Per-tensor type choice (llama-quantize's mixtures) and row quantization to any ggml type we write."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from batuta_sync.convert.formats import GGUFQuantization

if TYPE_CHECKING:
    from batuta_sync.convert.imatrix import Imatrix

BLOCK = {"F32": 1, "F16": 1, "BF16": 1, "Q8_0": 32, "Q4_0": 32, "Q4_1": 32, "Q5_0": 32, "Q5_1": 32,
         "Q2_K": 256, "Q3_K": 256, "Q4_K": 256, "Q5_K": 256, "Q6_K": 256, "IQ4_NL": 32, "IQ4_XS": 256}
TYPE_SIZE = {"F32": 4, "F16": 2, "BF16": 2, "Q8_0": 34, "Q4_0": 18, "Q4_1": 20, "Q5_0": 22, "Q5_1": 24,
             "Q2_K": 84, "Q3_K": 110, "Q4_K": 144, "Q5_K": 176, "Q6_K": 210, "IQ4_NL": 18, "IQ4_XS": 136}
# types whose ggml quantizer uses an importance matrix (F16/BF16/F32/Q8_0 ignore it)
WEIGHTED_TYPES = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS")
GGML_TYPES = tuple(BLOCK)  # every ggml type we write (and accept in per-tensor overrides)
# ``tensor_type_fallback``: a compatible type when the row length is not a block multiple
_FALLBACK = {"Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0", "IQ4_XS": "IQ4_NL"}
_LAYER = re.compile(r"^blk\.(\d+)\.")
# substrings of tensors llama-quantize never quantizes (of those our architectures can have)
_NEVER_QUANTIZED = ("_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
                    "per_layer_model_proj", "ssm_conv1d", "attn_rel_b.weight", ".position_embd", "rope_freqs.weight")


def row_bytes(qtype: str, ncols: int) -> int:
    return ncols // BLOCK[qtype] * TYPE_SIZE[qtype]


def use_more_bits(i_layer: int, n_layers: int) -> bool:
    """llama.cpp's layer selection for the extra-precision tensors of the *_M mixtures."""
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


def _fallback(qtype: str, ncols: int) -> str:
    """``tensor_type_fallback``: a compatible type when the row length is not a block multiple.

    Where llama-quantize has no fallback (or the fallback does not fit either) this is F16.
    """
    if ncols % BLOCK[qtype] == 0:
        return qtype
    new = _FALLBACK.get(qtype, qtype)
    return new if ncols % BLOCK[new] == 0 else "F16"


def parse_ggml_type(text: str, what: str = "type") -> str:
    """A ggml type name (case-insensitive) we can write; ConversionError otherwise."""
    from batuta_sync.errors import ConversionError

    t = str(text).strip().upper()
    if t not in BLOCK:
        raise ConversionError(f"Unknown {what} {text!r}.", hint="Valid ggml types: " + ", ".join(GGML_TYPES) + ".")
    return t


@dataclass(frozen=True)
class QuantOptions:
    """llama-quantize's per-tensor controls (``--tensor-type``, ``--output-tensor-type``, ...).

    ``tensor_types``: (regex, ggml type) pairs, the first whose regex is found in a tensor's GGUF name
    wins (``std::regex_search``); they replace the mixture rule for that tensor, not the shape
    fallback.  ``pure``: no mixture rules, every quantizable tensor gets the base type.
    ``allow_requantize``: a GGUF whose tensors are already quantized may be re-quantized.
    ``imatrix``: an importance matrix (``--imatrix FILE``); in the memo key by its file digest.
    """

    tensor_types: tuple[tuple[str, str], ...] = ()
    output_tensor_type: str | None = None
    token_embedding_type: str | None = None
    pure: bool = False
    allow_requantize: bool = False
    imatrix: Imatrix | None = field(default=None, compare=False)

    @classmethod
    def parse(cls, *, tensor_types: Any = (), output_tensor_type: str | None = None,
              token_embedding_type: str | None = None, pure: bool = False,
              allow_requantize: bool = False, imatrix: str | None = None) -> QuantOptions:
        """Validate user input: ``tensor_types`` as ``"REGEX=TYPE"`` strings or (regex, type) pairs."""
        from batuta_sync.errors import ConversionError

        pairs: list[tuple[str, str]] = []
        for item in tensor_types or ():
            if isinstance(item, str):
                pat, sep, typ = item.rpartition("=")
                if not sep or not pat:
                    raise ConversionError(f"--tensor-type {item!r} is not REGEX=TYPE.",
                                          hint="For example --tensor-type 'attn_v=Q8_0'.")
            else:
                pat, typ = item
            try:
                re.compile(pat)
            except re.error as e:
                raise ConversionError(f"--tensor-type pattern {pat!r} is not a valid regular expression: {e}.",
                                      hint="Fix the pattern.") from None
            pairs.append((pat, parse_ggml_type(typ, "--tensor-type type")))
        return cls(
            tuple(pairs),
            parse_ggml_type(output_tensor_type, "--output-tensor-type") if output_tensor_type else None,
            parse_ggml_type(token_embedding_type, "--token-embedding-type") if token_embedding_type else None,
            bool(pure),
            bool(allow_requantize),
            _load_imatrix(imatrix) if imatrix else None,
        )

    def memo_params(self) -> dict[str, str]:
        """The options as conversion parameters (part of the memo key); empty when all are defaults."""
        out: dict[str, str] = {}
        if self.tensor_types:
            out["tensor_types"] = ";".join(f"{p}={t}" for p, t in self.tensor_types)
        if self.output_tensor_type:
            out["output_tensor_type"] = self.output_tensor_type
        if self.token_embedding_type:
            out["token_embedding_type"] = self.token_embedding_type
        if self.pure:
            out["pure"] = "true"
        if self.allow_requantize:
            out["allow_requantize"] = "true"
        if self.imatrix is not None:
            out["imatrix"] = self.imatrix.memo()
        return out

    def weights(self, name: str, shape: tuple[int, ...], qtype: str) -> Any:
        """The imatrix weights (n_mat, ncols) for tensor ``name`` quantized to ``qtype``, or None."""
        if self.imatrix is None or qtype not in WEIGHTED_TYPES:
            return None
        return self.imatrix.weights(name, shape[-1], shape[0] if len(shape) == 3 else 1)


def _load_imatrix(path: str) -> Imatrix:
    from batuta_sync.convert.imatrix import load

    return load(path)


DEFAULT_OPTIONS = QuantOptions()


@dataclass(frozen=True)
class ModelInfo:
    """What llama-quantize's rules look at besides the tensor: layers, experts, GQA, arch."""

    n_layer: int
    tied: bool = False
    arch: str = "llama"
    n_expert: int = 0
    n_gqa: int = 1  # n_head / n_head_kv
    is_70b: bool = False  # llama.cpp's LLM_TYPE_70B (80-layer GQA llama / qwen2)


def model_info(arch: str, n_layer: int, n_head: int, n_head_kv: int, *, n_expert: int = 0, tied: bool = False) -> ModelInfo:
    """A :class:`ModelInfo` from hparams; ``is_70b`` as llama.cpp's model-type table has it (80 layers:
    llama with GQA, qwen2)."""
    is_70b = n_layer == 80 and ((arch == "llama" and n_head != n_head_kv) or arch == "qwen2")
    return ModelInfo(n_layer, tied, arch, n_expert, n_head // max(1, n_head_kv), is_70b)


def _category(name: str) -> str:
    """``tensor_get_category``: broad roles by substring (first match wins, in llama.cpp's order)."""
    if name == "output.weight":
        return "output"
    if name in ("token_embd.weight", "per_layer_token_embd.weight"):
        return "token_embd"
    for key, cat in (("attn_qkv.weight", "attn_v"), ("attn_kv_b.weight", "attn_v"), ("attn_v.weight", "attn_v"),
                     ("attn_k.weight", "attn_k"), ("attn_q.weight", "attn_q"), ("attn_output.weight", "attn_output"),
                     ("ffn_up", "ffn_up"), ("ffn_gate", "ffn_gate"), ("ffn_down", "ffn_down")):
        if key in name:  # attn_qkv / attn_kv_b are "attn_v-like" in every rule that follows
            return cat
    return "other"


def quantizable(name: str, shape: tuple[int, ...]) -> bool:
    """``tensor_allows_quantization``: 2-D/3-D ``*weight`` tensors that are not norms, routers, ..."""
    return len(shape) >= 2 and name.endswith("weight") and not any(k in name for k in _NEVER_QUANTIZED)


def _mixture(name: str, cat: str, ncols: int, ftype: str, default: str, m: ModelInfo, i_wv: int, n_wv: int,
             output_type: str | None = None, has_imatrix: bool = False) -> str:
    """``llama_tensor_get_type_impl`` without imatrix for the K/legacy ftypes we write.

    ``i_wv`` / ``n_wv``: this attn_v-like tensor's index among them, and their count; FFN
    layer indices come from the tensor name (equal to llama.cpp's counters for one FFN per layer).
    """
    new = default
    layer_m = _LAYER.match(name)
    i_layer = int(layer_m.group(1)) if layer_m else 0
    n_layer = m.n_layer
    falcon = m.arch == "falcon"
    if cat == "output" or (m.tied and cat == "token_embd"):
        if output_type:  # --output-tensor-type also covers tied embeddings
            return output_type
        if falcon or ncols % BLOCK[default] != 0:
            return "Q8_0"
        return default if default == "Q8_0" else "Q6_K"
    if cat == "token_embd":
        return new
    iq4 = ftype in ("IQ4_NL", "IQ4_XS")
    if cat == "attn_v":
        if iq4:
            if m.n_gqa >= 4:
                new = "Q5_K"
        elif ftype == "Q2_K":
            new = "Q4_K" if m.n_gqa >= 4 else "Q3_K"
        elif ftype == "Q3_K_M":
            new = "Q5_K" if i_wv < 2 else "Q4_K"
        elif ftype == "Q3_K_L":
            new = "Q5_K"
        elif ftype in ("Q4_K_M", "Q5_K_M") and use_more_bits(i_wv, n_wv):
            new = "Q6_K"
        elif ftype == "Q4_K_S" and i_wv < 4:
            new = "Q5_K"
        if m.is_70b and new in ("Q3_K", "Q4_K"):
            new = "Q5_K"
        if m.n_expert == 8:
            new = "Q8_0"
    elif cat == "attn_k":
        if m.n_expert == 8:
            new = "Q8_0"
    elif cat == "ffn_down":
        if iq4:
            if i_layer < n_layer // 8 and not has_imatrix:
                new = "Q5_K"
        elif ftype == "Q2_K":
            new = "Q3_K"
        elif ftype == "Q3_K_M":
            new = "Q5_K" if i_layer < n_layer // 16 else "Q4_K" if not falcon or use_more_bits(i_layer, n_layer) else "Q3_K"
        elif ftype == "Q3_K_L":
            new = "Q4_K" if falcon else "Q5_K"
        elif ftype == "Q4_K_M":
            if falcon:
                new = "Q6_K" if i_layer < n_layer // 16 else "Q5_K" if use_more_bits(i_layer, n_layer) else "Q4_K"
            elif use_more_bits(i_layer, n_layer):
                new = "Q6_K"
        elif ftype == "Q5_K_M" and use_more_bits(i_layer, n_layer):
            new = "Q6_K"
        elif ftype == "Q4_K_S" and not falcon and i_layer < n_layer // 8:
            new = "Q5_K"
        elif ftype in ("Q4_0", "Q5_0") and has_imatrix and i_layer < n_layer // 8:
            new = "Q4_1" if ftype == "Q4_0" else "Q5_1"  # llama.cpp's guard, only with an imatrix
    elif cat == "attn_output":
        if falcon:
            if ftype == "Q3_K_L":
                new = "Q4_K"
        elif m.n_expert == 8:
            if ftype in ("Q2_K", "Q3_K_S", "Q3_K_M", "Q4_K_S", "Q4_K_M", "IQ4_NL", "IQ4_XS"):
                new = "Q5_K"
        else:
            new = {"Q2_K": "Q3_K", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K"}.get(ftype, new)
    return new


def _tensor_type(name: str, shape: tuple[int, ...], ftype: str, m: ModelInfo, opts: QuantOptions,
                 i_wv: int, n_wv: int) -> str:
    """``llama_tensor_get_type``: overrides, then the mixture rule, then the shape fallback."""
    if not quantizable(name, shape):
        return "F32"
    cat = _category(name)
    if opts.token_embedding_type and cat == "token_embd":
        return opts.token_embedding_type
    if opts.output_tensor_type and cat == "output":
        return opts.output_tensor_type
    ncols = shape[-1]
    if ftype in ("F32", "F16", "BF16"):  # convert_hf_to_gguf's float types: not quantized
        return ftype
    default = GGUFQuantization(ftype).base_type
    new = default
    manual = False
    for pat, qtype in opts.tensor_types:
        if re.search(pat, name):
            new, manual = qtype, True
            break
    if not manual and not opts.pure and ftype != "Q8_0":  # Q8_0 follows convert_hf_to_gguf (no mixture)
        new = _mixture(name, cat, ncols, ftype, default, m, i_wv, n_wv, opts.output_tensor_type,
                       opts.imatrix is not None)
    return _fallback(new, ncols)


def choose_type(name: str, shape: tuple[int, ...], quant: GGUFQuantization, *, n_layer: int, tied: bool,
                model: ModelInfo | None = None, options: QuantOptions | None = None) -> str:
    """The ggml type of tensor ``name`` (GGUF name, numpy ``shape``) in a ``quant`` file.

    Plain types (F32/F16/BF16/Q8_0) follow convert_hf_to_gguf; Q4_0 and the K mixtures follow
    llama-quantize (``llama_tensor_get_type`` without imatrix).  1-D tensors, norms, routers and
    non-``weight`` tensors stay F32.  The attn_v-like index is the layer number (one per layer in every
    architecture we convert); :func:`choose_types` counts them as llama.cpp does for a whole tensor list.
    """
    m = model or ModelInfo(n_layer=n_layer, tied=tied)
    layer = _LAYER.match(name)
    return _tensor_type(name, shape, quant.value, m, options or DEFAULT_OPTIONS,
                        int(layer.group(1)) if layer else 0, m.n_layer)


def _llama_order(name: str) -> tuple[int, str]:
    """``weight_name_comparer``: by layer number (non-layer tensors first), then by name."""
    layer = _LAYER.match(name)
    return (int(layer.group(1)) if layer else -1, name)


def choose_types(tensors: list[tuple[str, tuple[int, ...]]], quant: GGUFQuantization, model: ModelInfo,
                 options: QuantOptions | None = None) -> dict[str, str]:
    """The ggml type of every tensor of a model (name -> type), with llama.cpp's attn_v counters."""
    opts = options or DEFAULT_OPTIONS
    wv = [n for n, _ in sorted(tensors, key=lambda t: _llama_order(t[0])) if _category(n) == "attn_v"]
    index = {n: i for i, n in enumerate(wv)}
    return {n: _tensor_type(n, s, quant.value, model, opts, index.get(n, 0), len(wv)) for n, s in tensors}


def quantize_rows(rows: Any, qtype: str, weights: Any = None, *, first_row: int = 0, rows_per_matrix: int = 0) -> bytes:
    """float32 rows (2-D, or 1-D for a vector) -> the bytes of ``qtype`` (ggml block layout).

    ``weights``: importance-matrix weights (n_mat, ncols), one row per matrix of a 3-D (MoE) tensor;
    ``rows`` are the tensor's rows from ``first_row`` on and a matrix has ``rows_per_matrix`` rows
    (llama.cpp: ``imatrix + (row / nrows_per_expert) * n_per_row``).
    """
    if qtype in ("IQ4_NL", "IQ4_XS") and weights is None:
        from batuta_sync.convert.iquants import quantize_iq4

        return quantize_iq4(rows, qtype)
    if weights is not None and qtype in WEIGHTED_TYPES:
        return _quantize_weighted(np.ascontiguousarray(rows, dtype=np.float32), qtype, weights, first_row,
                                  rows_per_matrix)
    a = np.ascontiguousarray(rows, dtype=np.float32)
    if qtype == "F32":
        return a.tobytes()
    if qtype == "F16":
        with np.errstate(over="ignore"):
            return a.astype(np.float16).tobytes()
    if qtype in ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"):
        from batuta_sync.convert.kquants import quantize_k

        return bytes(quantize_k(a, qtype).data)
    import gguf

    with np.errstate(over="ignore"):  # |x| beyond fp16 range becomes inf, as in ggml
        out = gguf.quants.quantize(a, gguf.GGMLQuantizationType[qtype])
        if qtype in ("Q4_0", "Q4_1", "Q5_0", "Q5_1"):
            _zero_signs_like_ggml(a, out, qtype)
    return out.tobytes()


def _zero_signs_like_ggml(a: Any, out: Any, qtype: str) -> None:
    """Make the fp16 header fields' zero signs match ggml's C loops (gguf-py differs only there).

    Q4_0/Q5_0: an all-zero block gets ``d = 0.0f / -8 = -0.0`` in C.  Q4_1/Q5_1: C keeps the *first*
    min/max element (``v < min`` / ``v > max``), so ``-0.0`` vs ``0.0`` follows element order.
    """
    blocks = a.reshape(-1, 32)
    hdr = out.reshape(blocks.shape[0], -1)
    if qtype in ("Q4_0", "Q5_0"):
        zero = ~np.any(blocks != 0, axis=1)
        if zero.any():
            hdr[zero, 0] = 0x00
            hdr[zero, 1] = 0x80
        return
    idx = np.arange(blocks.shape[0])
    mn = blocks[idx, np.argmin(blocks, axis=1)]
    mx = blocks[idx, np.argmax(blocks, axis=1)]
    d = ((mx - mn) / np.float32(15 if qtype == "Q4_1" else 31)).astype(np.float16)
    hdr[:, 0:2] = d.view(np.uint8).reshape(-1, 2)
    hdr[:, 2:4] = mn.astype(np.float16).view(np.uint8).reshape(-1, 2)


def _quantize_weighted(a: Any, qtype: str, weights: Any, first_row: int, per: int) -> bytes:
    from batuta_sync.convert.iquants import quantize_iq4, quantize_k_weighted, quantize_legacy_weighted

    w = np.asarray(weights, dtype=np.float32).reshape(-1, a.shape[-1])
    per = per or max(1, a.shape[0] + first_row)
    fn = quantize_legacy_weighted if qtype in ("Q4_0", "Q4_1", "Q5_0", "Q5_1") else \
        quantize_iq4 if qtype.startswith("IQ4") else quantize_k_weighted
    parts = []
    r = 0
    while r < a.shape[0]:
        m = (first_row + r) // per
        end = min(a.shape[0], (m + 1) * per - first_row)
        parts.append(fn(a[r:end], qtype, w[min(m, w.shape[0] - 1)]))
        r = end
    return b"".join(parts)
