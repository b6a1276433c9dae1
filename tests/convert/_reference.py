"""A numpy reference forward pass of a HF LLaMA checkpoint (float64), to check llama.cpp's logits."""

from __future__ import annotations

from typing import Any

import numpy as np


def _rms(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def _rope(x: np.ndarray, theta: float) -> np.ndarray:
    """HF rotate_half RoPE; x is (T, heads, head_dim)."""
    t, _, hd = x.shape
    inv = 1.0 / theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = np.arange(t, dtype=np.float64)[:, None] * inv[None, :]
    emb = np.concatenate([ang, ang], axis=-1)
    cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]
    half = hd // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rot * sin


def forward(w: dict[str, Any], cfg: dict[str, Any], tokens: list[int]) -> np.ndarray:
    """Logits (T, vocab) of a LlamaForCausalLM with weights ``w`` (HF names)."""
    w = {k: np.asarray(v, dtype=np.float64) for k, v in w.items()}
    n_head = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads", n_head)
    hd = cfg.get("head_dim") or cfg["hidden_size"] // n_head
    eps = cfg["rms_norm_eps"]
    theta = (cfg.get("rope_parameters") or {}).get("rope_theta") or cfg.get("rope_theta", 10000.0)
    x = w["model.embed_tokens.weight"][tokens]
    t = len(tokens)
    mask = np.triu(np.full((t, t), -np.inf), 1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = _rms(x, w[p + "input_layernorm.weight"], eps)
        q = h @ w[p + "self_attn.q_proj.weight"].T + w.get(p + "self_attn.q_proj.bias", 0.0)
        k = h @ w[p + "self_attn.k_proj.weight"].T + w.get(p + "self_attn.k_proj.bias", 0.0)
        v = h @ w[p + "self_attn.v_proj.weight"].T + w.get(p + "self_attn.v_proj.bias", 0.0)
        q, k, v = q.reshape(t, n_head, hd), k.reshape(t, n_kv, hd), v.reshape(t, n_kv, hd)
        q, k = _rope(q, theta), _rope(k, theta)
        rep = n_head // n_kv
        k = np.repeat(k, rep, axis=1)
        v = np.repeat(v, rep, axis=1)
        att = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd) + mask
        att = np.exp(att - att.max(axis=-1, keepdims=True))
        att /= att.sum(axis=-1, keepdims=True)
        o = np.einsum("hts,shd->thd", att, v).reshape(t, n_head * hd)
        x = x + o @ w[p + "self_attn.o_proj.weight"].T
        h = _rms(x, w[p + "post_attention_layernorm.weight"], eps)
        g = h @ w[p + "mlp.gate_proj.weight"].T
        u = h @ w[p + "mlp.up_proj.weight"].T
        x = x + ((g / (1 + np.exp(-g))) * u) @ w[p + "mlp.down_proj.weight"].T
    x = _rms(x, w["model.norm.weight"], eps)
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return x @ head.T


def _rope_partial(x: np.ndarray, inv: np.ndarray, mscale: float) -> np.ndarray:
    """NEOX (rotate_half) RoPE on the first ``2 * len(inv)`` dims of each head, cos/sin scaled by ``mscale``."""
    t = x.shape[0]
    rd = 2 * len(inv)
    ang = np.arange(t, dtype=np.float64)[:, None] * inv[None, :]
    emb = np.concatenate([ang, ang], axis=-1)
    cos, sin = (np.cos(emb) * mscale)[:, None, :], (np.sin(emb) * mscale)[:, None, :]
    xr, rest = x[..., :rd], x[..., rd:]
    rot = np.concatenate([-xr[..., rd // 2:], xr[..., : rd // 2]], axis=-1)
    return np.concatenate([xr * cos + rot * sin, rest], axis=-1)


def forward_phi3(w: dict[str, Any], cfg: dict[str, Any], tokens: list[int], *, long: bool) -> np.ndarray:
    """Logits (T, vocab) of a Phi3ForCausalLM (fused qkv / gate_up), with LongRoPE as transformers computes it:
    inverse frequencies divided by the long (or short) factors, cos/sin times the attention factor."""
    import math

    w = {k: np.asarray(v, dtype=np.float64) for k, v in w.items()}
    n_head = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads", n_head)
    hd = cfg["hidden_size"] // n_head
    rd = int(hd * cfg.get("partial_rotary_factor", 1.0))
    eps = cfg["rms_norm_eps"]
    theta = cfg.get("rope_theta", 10000.0)
    inv = 1.0 / theta ** (np.arange(0, rd, 2, dtype=np.float64) / rd)
    mscale = 1.0
    rs = cfg.get("rope_scaling") or {}
    if rs:
        inv = inv / np.asarray(rs["long_factor" if long else "short_factor"], dtype=np.float64)
        orig = cfg["original_max_position_embeddings"]
        scale = cfg["max_position_embeddings"] / orig
        mscale = rs.get("attention_factor") or (math.sqrt(1 + math.log(scale) / math.log(orig)) if scale > 1 else 1.0)
    x = w["model.embed_tokens.weight"][tokens]
    t = len(tokens)
    mask = np.triu(np.full((t, t), -np.inf), 1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = _rms(x, w[p + "input_layernorm.weight"], eps)
        qkv = h @ w[p + "self_attn.qkv_proj.weight"].T
        q = qkv[:, : n_head * hd].reshape(t, n_head, hd)
        k = qkv[:, n_head * hd : (n_head + n_kv) * hd].reshape(t, n_kv, hd)
        v = qkv[:, (n_head + n_kv) * hd :].reshape(t, n_kv, hd)
        q, k = _rope_partial(q, inv, mscale), _rope_partial(k, inv, mscale)
        k = np.repeat(k, n_head // n_kv, axis=1)
        v = np.repeat(v, n_head // n_kv, axis=1)
        att = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd) + mask
        att = np.exp(att - att.max(axis=-1, keepdims=True))
        att /= att.sum(axis=-1, keepdims=True)
        x = x + np.einsum("hts,shd->thd", att, v).reshape(t, n_head * hd) @ w[p + "self_attn.o_proj.weight"].T
        h = _rms(x, w[p + "post_attention_layernorm.weight"], eps)
        gu = h @ w[p + "mlp.gate_up_proj.weight"].T
        g, u = gu[:, : gu.shape[1] // 2], gu[:, gu.shape[1] // 2 :]
        x = x + ((g / (1 + np.exp(-g))) * u) @ w[p + "mlp.down_proj.weight"].T
    x = _rms(x, w["model.norm.weight"], eps)
    return x @ w.get("lm_head.weight", w["model.embed_tokens.weight"]).T
