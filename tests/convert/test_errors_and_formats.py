"""Format detection, the enums, and malformed / unsupported inputs -> clear ConversionErrors, no debris."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from batuta_sync.convert import (
    ConversionError,
    FormatConverter,
    GGUFQuantization,
    ModelFormat,
    Runtime,
    convert,
    detect_format,
)
from batuta_sync.errors import BatutaError


def _copy(models: dict[str, Path], tmp_path: Path, name: str = "gqa") -> Path:
    d = tmp_path / "m"
    shutil.copytree(models[name], d)
    return d


def _no_debris(d: Path) -> None:
    assert not [p for p in d.rglob(".*") if (p.name.startswith(".") and "tmp" in p.name) or "batuta-" in p.name]


def test_detect_format(models: dict[str, Path], tmp_path: Path) -> None:
    assert detect_format(models["gqa"]) is ModelFormat.SAFETENSORS
    g = convert(models["gqa"], tmp_path / "x.gguf", to="gguf", quantization="F16").output
    assert detect_format(g) is ModelFormat.GGUF
    assert detect_format(models["gqa"] / "model.safetensors") is ModelFormat.SAFETENSORS
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07")
    assert detect_format(tmp_path / "m.onnx") is ModelFormat.ONNX
    (tmp_path / "w.bin").write_bytes(b"PK\x03\x04")
    assert detect_format(tmp_path / "w.bin") is ModelFormat.PYTORCH
    (tmp_path / "notes.txt").write_text("hi")
    assert detect_format(tmp_path / "notes.txt") is ModelFormat.UNKNOWN
    for sub, fname, fmt in (("o", "model.onnx", ModelFormat.ONNX), ("p", "pytorch_model.bin", ModelFormat.PYTORCH),
                            ("g", "a.gguf", ModelFormat.GGUF), ("e", "README.md", ModelFormat.UNKNOWN)):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / fname).write_bytes(b"GGUF" if fmt is ModelFormat.GGUF else b"x")
        assert detect_format(tmp_path / sub) is fmt
    with pytest.raises(ConversionError, match="does not exist"):
        detect_format(tmp_path / "nope")


def test_quantization_and_runtime_parsing() -> None:
    assert GGUFQuantization.parse("q4_k_m") is GGUFQuantization.Q4_K_M
    assert GGUFQuantization.parse("Q8-0") is GGUFQuantization.Q8_0
    assert GGUFQuantization.parse(None) is GGUFQuantization.Q4_K_M
    assert GGUFQuantization.parse(GGUFQuantization.BF16) is GGUFQuantization.BF16
    with pytest.raises(ConversionError) as e:
        GGUFQuantization.parse("iq3_xs")  # not one we write (iq4_xs is, since issue 19)
    assert "Q4_K_M" in e.value.hint and "Q6_K" in e.value.hint
    assert Runtime.parse("llamacpp") is Runtime.LLAMA_CPP and Runtime.parse("llama.cpp") is Runtime.LLAMA_CPP
    assert Runtime.parse("HF") is Runtime.TRANSFORMERS and Runtime.parse(Runtime.OLLAMA) is Runtime.OLLAMA
    assert Runtime.parse("onnx").preferred_format is ModelFormat.ONNX
    with pytest.raises(ConversionError, match="Unknown runtime"):
        Runtime.parse("tensorrt")


def test_bad_safetensors_header(models: dict[str, Path], tmp_path: Path) -> None:
    d = _copy(models, tmp_path)
    st = d / "model.safetensors"
    data = st.read_bytes()
    st.write_bytes(struct.pack("<Q", 10**9) + data[8:])
    with pytest.raises(ConversionError, match="bad safetensors header"):
        convert(d, tmp_path / "o.gguf", to="gguf")
    st.write_bytes(struct.pack("<Q", 12) + b"{not json!!}" + data[20:])
    with pytest.raises(ConversionError, match="bad safetensors header"):
        convert(d, tmp_path / "o.gguf", to="gguf")
    st.write_bytes(data[: len(data) // 2])  # truncated data
    with pytest.raises(ConversionError, match=r"beyond the end|truncated"):
        convert(d, tmp_path / "o.gguf", to="gguf")
    st.write_bytes(b"abc")
    with pytest.raises(ConversionError, match="only 3 bytes"):
        convert(d, tmp_path / "o.gguf", to="gguf")
    assert not (tmp_path / "o.gguf").exists()
    _no_debris(tmp_path)


def test_missing_config_keys_and_unsupported_architecture(models: dict[str, Path], tmp_path: Path) -> None:
    d = _copy(models, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    broken = {k: v for k, v in cfg.items() if k not in ("hidden_size", "num_attention_heads")}
    (d / "config.json").write_text(json.dumps(broken))
    with pytest.raises(ConversionError, match="lacks required keys: hidden_size, num_attention_heads"):
        convert(d, tmp_path / "o.gguf", to="gguf")
    (d / "config.json").write_text(json.dumps({**cfg, "architectures": ["BertForMaskedLM"]}))
    with pytest.raises(ConversionError, match="Unsupported architecture 'BertForMaskedLM'") as e:
        convert(d, tmp_path / "o.gguf", to="gguf")
    assert "LlamaForCausalLM" in e.value.hint and e.value.exit_code == 15
    (d / "config.json").write_text("{oops")
    with pytest.raises(ConversionError, match="not valid JSON"):
        convert(d, tmp_path / "o.gguf", to="gguf")
    (d / "config.json").unlink()
    with pytest.raises(ConversionError, match="missing"):
        convert(d, tmp_path / "o.gguf", to="gguf")
    (d / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 3}))
    with pytest.raises(ConversionError, match="missing 9 tensor"):
        convert(d, tmp_path / "o.gguf", to="gguf")
    (d / "config.json").write_text(json.dumps({**cfg, "vocab_size": 100}))
    with pytest.raises(ConversionError, match=r"shape \[320, 256\], config.json implies \[100, 256\]"):
        convert(d, tmp_path / "o.gguf", to="gguf")
    (d / "config.json").write_text(json.dumps({**cfg, "num_key_value_heads": 3}))
    with pytest.raises(ConversionError, match="inconsistent"):
        convert(d, tmp_path / "o.gguf", to="gguf")
    assert not (tmp_path / "o.gguf").exists()


def test_weight_and_tokenizer_problems(models: dict[str, Path], tmp_path: Path) -> None:
    d = _copy(models, tmp_path, "tied_bf16")
    (d / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(ConversionError, match="listed in the safetensors index but missing"):
        convert(d, tmp_path / "o.gguf", to="gguf")
    e = _copy(models, tmp_path / "e", "gqa")
    (e / "tokenizer.json").unlink()
    with pytest.raises(ConversionError, match="no tokenizer"):
        convert(e, tmp_path / "o.gguf", to="gguf")
    (e / "tokenizer.json").write_text(json.dumps({"model": {"type": "WordPiece", "vocab": {}}}))
    with pytest.raises(ConversionError, match="WordPiece"):
        convert(e, tmp_path / "o.gguf", to="gguf")
    (e / "model.safetensors").unlink()
    from batuta_sync.convert.hf_to_gguf import find_weights
    from batuta_sync.convert.st_io import OutTensor, write_safetensors

    with pytest.raises(ConversionError, match=r"no \.safetensors"):
        find_weights(e)
    (e / "pytorch_model.bin").write_bytes(b"PK")
    with pytest.raises(BatutaError, match="--allow-unsafe") as u:
        FormatConverter().to_gguf(e, tmp_path / "o.gguf")
    assert u.value.exit_code == 12

    f = _copy(models, tmp_path / "f", "gqa")
    write_safetensors(f / "extra.safetensors", [OutTensor("vision_tower.proj.weight", "F32", (2,),
                                                          lambda: iter([b"\0" * 8]))])
    with pytest.raises(ConversionError, match=r"vision_tower\.proj\.weight"):
        convert(f, tmp_path / "o.gguf", to="gguf")


def test_unsupported_conversions_list_what_is(models: dict[str, Path], tmp_path: Path) -> None:
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"\x08\x07")
    for src, to in ((onnx, "gguf"), (onnx, "safetensors"), (models["gqa"], "onnx")):
        with pytest.raises(ConversionError, match="not supported") as e:
            convert(src, tmp_path / "out", to=to)
        assert "safetensors model directory" in e.value.hint and "gguf (llama, qwen2, qwen3, gemma2, gemma3, phi3, qwen3moe)" in e.value.hint
    g = convert(models["gqa"], tmp_path / "x.gguf", to="gguf", quantization="Q8_0").output
    with pytest.raises(ConversionError, match="already quantized") as e:  # GGUF -> GGUF: Q8_0 needs the opt-in
        convert(g, tmp_path / "y.gguf", to="gguf")
    assert "--allow-requantize" in e.value.hint
    with pytest.raises(ConversionError, match="already safetensors"):
        convert(models["gqa"], tmp_path / "y", to="safetensors")
    with pytest.raises(ConversionError, match="applies to --to gguf"):
        convert(g, tmp_path / "y", to="safetensors", quantization="Q8_0")
    with pytest.raises(ConversionError, match="Unknown target"):
        convert(g, tmp_path / "y", to="pickle")
    (tmp_path / "junk.txt").write_text("x")
    with pytest.raises(ConversionError, match="not a recognised model"):
        convert(tmp_path / "junk.txt", tmp_path / "y", to="gguf")
    two = tmp_path / "two"
    two.mkdir()
    for n in ("a.gguf", "b.gguf"):
        shutil.copy(g, two / n)
    with pytest.raises(ConversionError, match=r"holds 2 \.gguf files"):
        convert(two, tmp_path / "y", to="safetensors")
    with pytest.raises(ConversionError, match=r"not a \.gguf path"):
        convert(models["gqa"], tmp_path / "junk.txt", to="gguf")
    assert isinstance(ConversionError("x"), BatutaError)


def test_format_converter_auto_convert(models: dict[str, Path], tmp_path: Path) -> None:
    fc = FormatConverter(jobs=1)
    same = fc.auto_convert(models["gqa"], tmp_path / "x", "transformers")
    assert same.files == () and same.params["skipped"] == "already safetensors"
    g = fc.auto_convert(models["gqa"], tmp_path / "m.gguf", "llama.cpp", quantization="q8_0")
    assert g.output == tmp_path / "m.gguf" and g.params["quantization"] == "Q8_0"
    back = fc.auto_convert(g.output, tmp_path / "back", Runtime.TRANSFORMERS)
    assert (tmp_path / "back" / "config.json").is_file() and back.tensor_count == 21
    assert fc.auto_convert(g.output, tmp_path / "z", "ollama").params["skipped"] == "already gguf"
    with pytest.raises(ConversionError, match="not supported"):
        fc.auto_convert(models["gqa"], tmp_path / "z", "onnxruntime")
    assert FormatConverter.detect_format(g.output) is ModelFormat.GGUF
    assert back.to_dict()["tensor_count"] == 21


def test_lazy_top_level_name() -> None:
    import batuta_sync

    assert batuta_sync.FormatConverter is FormatConverter
