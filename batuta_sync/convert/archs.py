"""The architecture table: one small declarative entry per model family, used in both directions.

An :class:`Arch` says which Hugging Face ``architectures`` it covers, the GGUF architecture name,
how per-layer tensor names map (``model.layers.N.<hf>`` <-> ``blk.N.<gguf>``), which MoE expert
tensors are merged into one 3-D tensor (``model.layers.N.<hf with {e}>`` for every expert E <->
``blk.N.<gguf>`` of shape ``(n_expert, rows, cols)``, as llama.cpp stores them), the extra
hparams (config.json key <-> GGUF metadata key, both directions) and its quirks:

* ``permute_qk``: LLaMA-style rotary -- q/k rows are permuted from HF's halves to interleaved pairs;
* ``norm_offset``: Gemma's RMSNorm multiplies by ``1 + w``; llama.cpp stores ``w + 1`` for every
  ``*norm.weight`` (in float16 when the checkpoint is float16, else float32, as its converter does)
  and applies the ``sqrt(n_embd)`` embedding scale in its graph, so the weights are not scaled;
* ``f32``: GGUF tensors that always stay F32 (the MoE router ``ffn_gate_inp``, as in llama.cpp);
* ``skip``: HF tensors that are dropped on purpose (Gemma's ``lm_head`` duplicates the embeddings).

Adding an architecture is adding an entry here (plus a tiny checkpoint generator for its tests in
``batuta_sync/tinymodel.py``); see docs/conversion.md, "Adding an architecture".
"""

from __future__ import annotations

from dataclasses import dataclass, field

# config.json key(s) -> GGUF key suffix (after "{arch}."), value kind
LLAMA_LAYER = {
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
_ATTN = {k: v for k, v in LLAMA_LAYER.items() if k.startswith("self_attn.") or k == "input_layernorm"}
_QK_NORM = {"self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm"}
_GEMMA_LAYER = {
    **{k: v for k, v in LLAMA_LAYER.items() if k != "post_attention_layernorm"},
    "post_attention_layernorm": "post_attention_norm",
    "pre_feedforward_layernorm": "ffn_norm",
    "post_feedforward_layernorm": "post_ffw_norm",
}
TOP_NAMES = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}


@dataclass(frozen=True)
class HParam:
    """One metadata key: GGUF ``{arch}.<gguf>`` <-> config.json ``<config>`` (first spelling is written back).

    ``kind`` is "int" or "float"; ``default`` is used (and written) when config.json lacks the
    key -- None means the key is optional and then not written.
    """

    gguf: str
    config: tuple[str, ...]
    kind: str = "int"
    default: float | int | None = None
    unless: tuple[str, object] | None = None  # (config key, value): not written when config.json has it


@dataclass(frozen=True)
class Arch:
    gguf: str
    hf: tuple[str, ...]  # the first one is written back by GGUF -> safetensors
    model_type: str
    layer: dict[str, str]
    experts: dict[str, str] = field(default_factory=dict)
    permute_qk: bool = False
    norm_offset: bool = False
    f32: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    hparams: tuple[HParam, ...] = ()
    rope_dims: bool = False  # write rope.dimension_count (head_dim * partial_rotary_factor), as llama.cpp's
    vocab_size: bool = False  # LLaMA and Phi-3 converters do; the others leave {arch}.vocab_size out
    rope_freq_base: bool = True  # Gemma 2's converter leaves {arch}.rope.freq_base out
    add_space_prefix: bool | None = None  # SentencePiece: tokenizer.ggml.add_space_prefix (Gemma: False)
    head_dim_always: bool = False  # write key_length/value_length even when head_dim = n_embd / n_head
    hidden_act: str = "silu"
    attention_bias: bool | None = None  # written back into config.json when set
    defaults: dict[str, float | int] = field(default_factory=dict)  # config.json defaults llama.cpp assumes
    longrope: bool = False  # Phi-3 LongRoPE: rope_factors_long/short tensors + rope.scaling.attn_factor


_MOE_USED = HParam("expert_used_count", ("num_experts_per_tok",))

ARCHS: tuple[Arch, ...] = (
    Arch("llama", ("LlamaForCausalLM", "MistralForCausalLM"), "llama", LLAMA_LAYER, permute_qk=True, rope_dims=True,
         vocab_size=True, head_dim_always=True),  # LlamaConfig always carries head_dim
    Arch("qwen2", ("Qwen2ForCausalLM",), "qwen2", LLAMA_LAYER, attention_bias=True),
    Arch("qwen3", ("Qwen3ForCausalLM",), "qwen3", {**LLAMA_LAYER, **_QK_NORM}),
    Arch("gemma2", ("Gemma2ForCausalLM",), "gemma2", _GEMMA_LAYER, norm_offset=True, skip=("lm_head.weight",),
         head_dim_always=True, rope_freq_base=False, add_space_prefix=False, hidden_act="gelu_pytorch_tanh",
         hparams=(HParam("attn_logit_softcapping", ("attn_logit_softcapping",), "float"),
                  HParam("final_logit_softcapping", ("final_logit_softcapping",), "float"),
                  HParam("attention.sliding_window", ("sliding_window",)))),
    Arch("gemma3", ("Gemma3ForCausalLM",), "gemma3", {**_GEMMA_LAYER, **_QK_NORM}, norm_offset=True,
         skip=("lm_head.weight",), head_dim_always=True, hidden_act="gelu_pytorch_tanh", add_space_prefix=False,
         hparams=(HParam("final_logit_softcapping", ("final_logit_softcapping",), "float"),
                  HParam("rope.freq_base_swa", ("rope_local_base_freq",), "float"),
                  HParam("attention.sliding_window", ("sliding_window",), unless=("sliding_window_pattern", 1))),
         defaults={"max_position_embeddings": 131072, "rms_norm_eps": 1e-6, "rope_theta": 1_000_000.0,
                   "head_dim": 256, "num_attention_heads": 8, "num_key_value_heads": 4, "rope_local_base_freq": 10000.0}),
    Arch("phi3", ("Phi3ForCausalLM",), "phi3",
         {"input_layernorm": "attn_norm", "self_attn.qkv_proj": "attn_qkv", "self_attn.o_proj": "attn_output",
          "post_attention_layernorm": "ffn_norm", "mlp.gate_up_proj": "ffn_up", "mlp.down_proj": "ffn_down"},
         hparams=(HParam("rope.scaling.original_context_length", ("original_max_position_embeddings",)),
                  HParam("attention.sliding_window", ("sliding_window",), default=0)), rope_dims=True, longrope=True),
    Arch("llama", ("MixtralForCausalLM",), "mixtral",
         {**_ATTN, "post_attention_layernorm": "ffn_norm", "block_sparse_moe.gate": "ffn_gate_inp"},
         experts={"block_sparse_moe.experts.{e}.w1": "ffn_gate_exps", "block_sparse_moe.experts.{e}.w2": "ffn_down_exps",
                  "block_sparse_moe.experts.{e}.w3": "ffn_up_exps"},
         permute_qk=True, f32=("ffn_gate_inp",), hparams=(HParam("expert_count", ("num_local_experts",)), _MOE_USED), rope_dims=True, vocab_size=True),
    Arch("qwen3moe", ("Qwen3MoeForCausalLM",), "qwen3_moe",
         {**_ATTN, **_QK_NORM, "post_attention_layernorm": "ffn_norm", "mlp.gate": "ffn_gate_inp"},
         experts={"mlp.experts.{e}.gate_proj": "ffn_gate_exps", "mlp.experts.{e}.up_proj": "ffn_up_exps",
                  "mlp.experts.{e}.down_proj": "ffn_down_exps"},
         f32=("ffn_gate_inp",),
         hparams=(HParam("expert_count", ("num_experts",)), _MOE_USED,
                  HParam("expert_feed_forward_length", ("moe_intermediate_size",)))),
)

BY_HF = {name: a for a in ARCHS for name in a.hf}


def for_gguf(gguf_arch: str, metadata_has_experts: bool) -> Arch | None:
    """The entry that writes back a GGUF architecture (``llama`` with experts is Mixtral)."""
    for a in ARCHS:
        if a.gguf == gguf_arch and bool(a.experts) == metadata_has_experts:
            return a
    return None


def supported_hf() -> list[str]:
    return [n for a in ARCHS for n in a.hf]


def supported_gguf() -> list[str]:
    return list(dict.fromkeys(a.gguf for a in ARCHS))
