"""Nothing is dropped silently, in either direction (issue 19, point 1): a tensor or a metadata key the
converter cannot map is a ConversionError (exit 15) that names it, and nothing is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from batuta_sync.cli import main
from batuta_sync.convert import convert
from batuta_sync.errors import ConversionError
from batuta_sync.tinymodel import TinyLlamaSpec, write_tiny_arch, write_tiny_llama

from .test_malformed_inputs import rewrite_gguf


@pytest.fixture(scope="module")
def mixtral(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("moe")
    src = write_tiny_arch(root / "mixtral", "MixtralForCausalLM", seed=3)
    return src, convert(src, root / "mixtral.gguf", to="gguf", quantization="F16").output


def test_a_mixtral_gguf_keeps_every_expert_and_router_tensor(mixtral: tuple[Path, Path], tmp_path: Path) -> None:
    """The issue's case: llama.cpp's Mixtral layout (our F16 output is byte-identical to
    convert_hf_to_gguf's, see test_architectures) used to come back with the experts and routers lost."""
    from batuta_sync.convert.hf_to_gguf import find_weights

    src, gg = mixtral
    res = convert(gg, tmp_path / "hf", to="safetensors")
    back = find_weights(tmp_path / "hf")
    want = find_weights(src)
    assert sorted(back) == sorted(want) and res.tensor_count == len(want) == 41
    for name, ref in want.items():  # F16 weights come back rounded to F16; the F32 ones (norms, routers) exactly
        expect = ref.rows_f32() if back[name].dtype == "F32" else ref.rows_f32().astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(back[name].rows_f32(), expect, err_msg=name)
    assert back["model.layers.0.block_sparse_moe.gate.weight"].dtype == "F32"
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert cfg["architectures"] == ["MixtralForCausalLM"] and cfg["num_local_experts"] == 4


def _refused(capsys: pytest.CaptureFixture[str], src: Path, out: Path, match: str, *extra: str) -> None:
    rc = main(["convert", str(src), str(out), *extra])
    err = capsys.readouterr().err
    assert rc == 15 and match in err and "Traceback" not in err, err
    assert not out.exists() or not any(out.iterdir())


def test_expert_tensors_without_an_expert_count_are_refused(mixtral: tuple[Path, Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    bad = rewrite_gguf(mixtral[1], tmp_path / "bad.gguf", kv={"llama.expert_count": None, "llama.expert_used_count": None})
    _refused(capsys, bad, tmp_path / "out", "have no safetensors name for LlamaForCausalLM: blk.0.ffn_gate_inp.weight",
             "--to", "safetensors")


@pytest.mark.parametrize("extra_tensor", ["blk.0.ffn_gate_shexp.weight", "blk.1.attn_sinks.weight", "mystery.weight"])
def test_an_unknown_gguf_tensor_is_an_error(mixtral: tuple[Path, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str], extra_tensor: str) -> None:
    import gguf

    first = gguf.GGUFReader(mixtral[1]).tensors[0].name

    def add(name: str, data: np.ndarray) -> tuple[str, np.ndarray] | None:
        return (extra_tensor, data) if name == first else (name, data)

    bad = rewrite_gguf(mixtral[1], tmp_path / "bad.gguf", tensor=add)
    _refused(capsys, bad, tmp_path / "out", f"1 tensor(s) have no safetensors name for MixtralForCausalLM: {extra_tensor}",
             "--to", "safetensors")


@pytest.mark.parametrize("key,value", [
    ("llama.attention.sliding_window", 128),  # a setting config.json of this arch would lose
    ("tokenizer.ggml.prefix_token_id", 3),  # FIM tokens are not mapped back
    ("llama.rope.scaling.type", "longrope"),
])
def test_an_unknown_metadata_key_is_an_error(mixtral: tuple[Path, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str], key: str, value: object) -> None:
    import gguf

    vt = gguf.GGUFValueType.STRING if isinstance(value, str) else gguf.GGUFValueType.UINT32
    bad = rewrite_gguf(mixtral[1], tmp_path / "bad.gguf", kv={key: (value, vt)})
    match = "rope scaling type 'longrope'" if key.endswith("scaling.type") else "cannot be mapped back to a Mixtral"
    _refused(capsys, bad, tmp_path / "out", match, "--to", "safetensors")


def test_mismatched_expert_tensor_shape_is_refused(mixtral: tuple[Path, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    bad = rewrite_gguf(mixtral[1], tmp_path / "bad.gguf",
                       tensor=lambda n, d: (n, d[:3]) if n == "blk.0.ffn_up_exps.weight" else (n, d))
    _refused(capsys, bad, tmp_path / "out", "[4, rows, cols] expected", "--to", "safetensors")


# --------------------------------------------------------------------------- safetensors -> GGUF


def _edit_weights(src: Path, dst: Path, add: dict[str, np.ndarray] | None = None, drop: tuple[str, ...] = ()) -> Path:
    from safetensors.numpy import load_file, save_file

    shutil.copytree(src, dst)
    w = {k: v for k, v in load_file(str(dst / "model.safetensors")).items() if k not in drop}
    w.update(add or {})
    save_file(w, str(dst / "model.safetensors"))
    return dst


@pytest.mark.parametrize("arch,name", [
    ("Qwen3MoeForCausalLM", "model.layers.0.mlp.shared_expert.gate_proj.weight"),  # Qwen2-MoE's shared expert
    ("Gemma3ForCausalLM", "model.layers.0.self_attn.sinks.weight"),
    ("Phi3ForCausalLM", "model.layers.0.mlp.gate_proj.weight"),  # an unfused MLP in a fused-MLP architecture
])
def test_an_unknown_checkpoint_tensor_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], arch: str,
                                                  name: str) -> None:
    src = write_tiny_arch(tmp_path / "m", arch)
    bad = _edit_weights(src, tmp_path / "bad", add={name: np.zeros((4, 256), np.float32)})
    rc = main(["convert", str(bad), str(tmp_path / "o.gguf"), "--to", "gguf", "--quantization", "F16"])
    err = capsys.readouterr().err
    assert rc == 15 and f"have no GGUF name for {arch}: {name}" in err and not (tmp_path / "o.gguf").exists(), err


def test_a_missing_or_extra_expert_is_an_error(tmp_path: Path) -> None:
    src = write_tiny_arch(tmp_path / "m", "Qwen3MoeForCausalLM")
    missing = _edit_weights(src, tmp_path / "missing", drop=("model.layers.1.mlp.experts.3.up_proj.weight",))
    with pytest.raises(ConversionError, match=r"missing 1 tensor\(s\), e.g. blk.1.ffn_up_exps.weight .*4 experts"):
        convert(missing, tmp_path / "o.gguf", to="gguf", quantization="F16")
    extra = _edit_weights(src, tmp_path / "extra",
                          add={"model.layers.0.mlp.experts.4.up_proj.weight": np.zeros((256, 256), np.float32)})
    with pytest.raises(ConversionError, match=r"do not match config\.json's 4 experts: blk\.0\.ffn_up_exps\.weight"):
        convert(extra, tmp_path / "o.gguf", to="gguf", quantization="F16")
    odd = _edit_weights(src, tmp_path / "odd",
                        add={"model.layers.0.mlp.experts.2.up_proj.weight": np.zeros((128, 256), np.float32)})
    with pytest.raises(ConversionError, match="differ in shape or dtype"):
        convert(odd, tmp_path / "o.gguf", to="gguf", quantization="F16")


@pytest.mark.parametrize("edit,match", [
    ({"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, "rope scaling type 'dynamic' is not supported"),
    ({"rope_scaling": {"rope_type": "longrope", "long_factor": [1.0], "short_factor": [1.0]}}, "'longrope'"),
    ({"quantization_config": {"quant_method": "gptq"}}, "pre-quantized checkpoint"),
    ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "yarn rope scaling needs original_max_position_embeddings"),
])
def test_config_settings_without_a_gguf_form_are_errors(tmp_path: Path, edit: dict[str, object], match: str) -> None:
    src = write_tiny_arch(tmp_path / "m", "Phi3ForCausalLM")
    cfg = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**cfg, **edit}))
    with pytest.raises(ConversionError, match=match):
        convert(src, tmp_path / "o.gguf", to="gguf", quantization="F16")


# --------------------------------------------------------------------------- Llama 3.x rope scaling


@pytest.mark.parametrize("scaling", [
    {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    {"factor": 4.0, "low_freq_factor": 2.0, "high_freq_factor": 8.0, "original_max_position_embeddings": 4096},
])
def test_llama3_rope_scaling_round_trips(tmp_path: Path, scaling: dict[str, float]) -> None:
    src = write_tiny_llama(tmp_path / "l", TinyLlamaSpec(num_attention_heads=2, num_key_value_heads=1), card=False)
    cfg = json.loads((src / "config.json").read_text())
    cfg.update(rope_theta=500000.0, max_position_embeddings=131072, rope_scaling={"rope_type": "llama3", **scaling})
    (src / "config.json").write_text(json.dumps(cfg))
    out = convert(src, tmp_path / "l.gguf", to="gguf", quantization="F32").output
    convert(out, tmp_path / "hf", to="safetensors")
    back = json.loads((tmp_path / "hf" / "config.json").read_text())["rope_scaling"]
    # GGUF keeps only the factors: the wavelength bounds old/low and old/high are what can come back,
    # written with Llama 3's original context of 8192 (the exact dict when the checkpoint used 8192)
    old, got_old = scaling["original_max_position_embeddings"], back["original_max_position_embeddings"]
    assert back["rope_type"] == "llama3" and back["factor"] == scaling["factor"] and got_old == 8192
    assert got_old / back["low_freq_factor"] == old / scaling["low_freq_factor"]
    assert got_old / back["high_freq_factor"] == old / scaling["high_freq_factor"]
    if old == 8192:
        assert back == {"rope_type": "llama3", **scaling}


def test_rope_freqs_without_a_llama3_form_is_an_error(tmp_path: Path) -> None:
    src = write_tiny_llama(tmp_path / "l", TinyLlamaSpec(), card=False)
    out = convert(src, tmp_path / "l.gguf", to="gguf", quantization="F16").output
    rng = np.random.default_rng(0)

    def add(name: str, data: np.ndarray) -> tuple[str, np.ndarray] | None:
        return ("rope_freqs.weight", (1 + rng.random(32)).astype(np.float32)) if name == "output_norm.weight" else (
            name, data)

    bad = rewrite_gguf(out, tmp_path / "bad.gguf", tensor=add)
    with pytest.raises(ConversionError, match="rope_freqs tensor does not match Llama 3 rope scaling"):
        convert(bad, tmp_path / "hf", to="safetensors")


@pytest.mark.parametrize("quant,tol", [("Q8_0", 0.02), ("Q4_K_M", 0.2)])
def test_quantized_expert_tensors_dequantize_per_expert(tmp_path: Path, quant: str, tol: float) -> None:
    from batuta_sync.convert.hf_to_gguf import find_weights

    src = write_tiny_arch(tmp_path / "q", "Qwen3MoeForCausalLM", seed=8)
    out = convert(src, tmp_path / "q.gguf", to="gguf", quantization=quant).output
    convert(out, tmp_path / "hf", to="safetensors")
    back, want = find_weights(tmp_path / "hf"), find_weights(src)
    assert sorted(back) == sorted(want)
    for e in range(4):  # each expert comes back from its own slice of the 3-D tensor
        name = f"model.layers.1.mlp.experts.{e}.down_proj.weight"
        a, b = back[name].rows_f32(), want[name].rows_f32()
        assert np.abs(a - b).max() < tol * np.abs(b).max(), name
