"""GGUF -> GGUF re-quantization (llama-quantize IN OUT TYPE), the CLI flags, and the hf.yaml options
(parsed, part of the memo key, applied by ``batuta apply`` against our Hub on loopback)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from batuta_sync.cli import main
from batuta_sync.convert import convert
from batuta_sync.core.manifest import parse_manifest
from batuta_sync.core.planner.diff import conversion_key
from batuta_sync.errors import ConversionError
from batuta_sync.tinymodel import write_tiny_llama

from . import _llamacpp
from .test_hf_to_gguf import fields


def _tensors(path: Path) -> dict[str, tuple[str, bytes]]:
    return {t.name: (gguf.GGMLQuantizationType(int(t.tensor_type)).name, np.asarray(t.data).tobytes())
            for t in gguf.GGUFReader(path).tensors}


@pytest.fixture(scope="module")
def f16(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert(models["gqa"], tmp_path_factory.mktemp("rq") / "f16.gguf", to="gguf", quantization="F16").output


@pytest.mark.parametrize("quant", ["Q4_K_M", "Q3_K_M", "Q2_K", "Q5_1"])
def test_requantizing_the_f16_gguf_equals_converting_the_checkpoint(
    models: dict[str, Path], f16: Path, tmp_path: Path, quant: str
) -> None:
    """F16 safetensors -> F16 GGUF -> QUANT gives the very bytes of safetensors -> QUANT (types too)."""
    direct = convert(models["gqa"], tmp_path / "direct.gguf", to="gguf", quantization=quant).output
    res = convert(f16, tmp_path / "rq.gguf", to="gguf", quantization=quant, jobs=2)
    assert res.params["source"] == "gguf" and res.params["quantization"] == quant
    assert _tensors(res.output) == _tensors(direct)
    a, b = fields(direct), fields(res.output)
    assert b["general.file_type"] == a["general.file_type"]
    assert {k: v for k, v in b.items() if not k.startswith("GGUF.")}.keys() == {
        k for k in a if not k.startswith("GGUF.")}
    assert b["tokenizer.ggml.tokens"] == a["tokenizer.ggml.tokens"]


def test_quantized_input_needs_allow_requantize(f16: Path, tmp_path: Path) -> None:
    q8 = convert(f16, tmp_path / "q8.gguf", to="gguf", quantization="Q8_0").output
    with pytest.raises(ConversionError, match=r"already quantized \(Q8_0\)") as e:
        convert(q8, tmp_path / "q4.gguf", to="gguf", quantization="Q4_K_M")
    assert "--allow-requantize" in e.value.hint and e.value.exit_code == 15
    assert not (tmp_path / "q4.gguf").exists() and not list(tmp_path.glob(".q4*"))
    out = convert(q8, tmp_path / "q4.gguf", to="gguf", quantization="Q4_K_M", allow_requantize=True).output
    src = {t.name: t for t in gguf.GGUFReader(q8).tensors}
    for name, (qt, data) in _tensors(out).items():
        t = src[name]
        if qt == "F32":
            assert data == np.asarray(t.data).tobytes()  # norms are copied
            continue
        x = gguf.quants.dequantize(np.asarray(t.data), gguf.GGMLQuantizationType.Q8_0)
        if _llamacpp.library_path() is not None:
            assert data == _llamacpp.ggml_quantize(x, qt).tobytes(), name
    # the same type is a byte copy, and needs no opt-in
    same = convert(q8, tmp_path / "same.gguf", to="gguf", quantization="Q8_0").output
    assert _tensors(same) == _tensors(q8)


def test_per_tensor_options_apply_to_gguf_input(f16: Path, tmp_path: Path) -> None:
    res = convert(f16, tmp_path / "o.gguf", to="gguf", quantization="Q4_K_M", tensor_types=[r"blk\.1\.=Q8_0"],
                  output_tensor_type="Q5_0", token_embedding_type="F16")
    t = {k: v[0] for k, v in _tensors(res.output).items()}
    assert t["blk.1.attn_q.weight"] == t["blk.1.ffn_down.weight"] == "Q8_0"
    assert t["blk.0.attn_q.weight"] == "Q4_K" and t["output.weight"] == "Q5_0" and t["token_embd.weight"] == "F16"
    assert t["blk.1.attn_norm.weight"] == "F32"


@pytest.mark.llamacpp
def test_llama_cpp_loads_the_requantized_file(models: dict[str, Path], f16: Path, tmp_path: Path) -> None:
    direct = convert(models["gqa"], tmp_path / "d.gguf", to="gguf", quantization="Q3_K_L").output
    rq = convert(f16, tmp_path / "r.gguf", to="gguf", quantization="Q3_K_L").output
    tokens = [1, 5, 9, 2]
    assert np.array_equal(_llamacpp.last_logits(rq, tokens), _llamacpp.last_logits(direct, tokens))


def test_requantize_errors(f16: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 20)
    with pytest.raises(ConversionError, match="not a readable GGUF"):
        convert(bad, tmp_path / "x.gguf", to="gguf")
    # a GGUF without general.architecture
    w = gguf.GGUFWriter(tmp_path / "noarch.gguf", arch="llama")
    w.kv_data[0].pop("general.architecture")
    w.add_tensor("a.weight", np.zeros((2, 32), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ConversionError, match=r"no general\.architecture"):
        convert(tmp_path / "noarch.gguf", tmp_path / "y.gguf", to="gguf")


# --------------------------------------------------------------------------- CLI


def test_cli_flags_reach_the_converter(models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c.gguf"
    rc = main(["convert", str(models["gqa"]), str(out), "--to", "gguf", "--quantization", "q4_k_s", "--json",
               "--tensor-type", "attn_v=Q8_0", "--tensor-type", "ffn_up=Q2_K", "--output-tensor-type", "Q4_0",
               "--token-embedding-type", "q5_1", "--pure"])
    assert rc == 0, capsys.readouterr().err
    res = json.loads(capsys.readouterr().out)
    assert res["params"]["tensor_types"] == "attn_v=Q8_0;ffn_up=Q2_K" and res["params"]["pure"] == "true"
    t = {k: v[0] for k, v in _tensors(out).items()}
    assert t["blk.0.attn_v.weight"] == "Q8_0" and t["blk.0.ffn_up.weight"] == "Q2_K"
    assert t["output.weight"] == "Q4_0" and t["token_embd.weight"] == "Q5_1"
    assert t["blk.0.ffn_down.weight"] == "Q4_K"  # --pure: Q4_K_S's Q5_K for early ffn_down is off
    assert main(["convert", str(out), str(tmp_path / "d.gguf"), "--to", "gguf", "--quantization", "Q6_K"]) == 15
    assert "--allow-requantize" in capsys.readouterr().err
    assert main(["convert", str(out), str(tmp_path / "d.gguf"), "--to", "gguf", "--quantization", "Q6_K",
                 "--allow-requantize"]) == 0
    capsys.readouterr()
    assert main(["convert", str(models["gqa"]), str(tmp_path / "e.gguf"), "--to", "gguf", "--tensor-type", "x"]) == 15
    assert "REGEX=TYPE" in capsys.readouterr().err


# --------------------------------------------------------------------------- hf.yaml


YAML = """version: 1
models: {a: {repo: o/a}}
conversions:
  plain: {from: models.a, to: gguf}
  tuned:
    from: models.a
    to: gguf
    quantization: Q3_K_M
    tensor_types: ["attn_v=Q8_0", "ffn_down=Q6_K"]
    output_tensor_type: Q8_0
    token_embedding_type: Q6_K
    pure: true
    allow_requantize: true
    split_max_size: 2G
    split_max_tensors: 100
"""


def test_manifest_options_are_parsed_and_in_the_memo_key() -> None:
    m = parse_manifest(YAML)
    plain, tuned = m.get("conversions.plain"), m.get("conversions.tuned")
    assert plain.params() == {"to": "gguf", "quantization": "Q4_K_M"}  # type: ignore[union-attr]  # unchanged keys
    assert tuned.convert_kwargs() == {  # type: ignore[union-attr]
        "tensor_types": ("attn_v=Q8_0", "ffn_down=Q6_K"), "output_tensor_type": "Q8_0",
        "token_embedding_type": "Q6_K", "pure": True, "allow_requantize": True, "split_max_size": "2G",
        "split_max_tensors": 100}
    p = tuned.params()  # type: ignore[union-attr]
    assert p["tensor_types"] == "attn_v=Q8_0;ffn_down=Q6_K" and p["pure"] == "true" and p["split_max_tensors"] == "100"
    keys = set()
    for change in ({}, {"pure": "false"}, {"tensor_types": "attn_v=Q6_K"}, {"split_max_size": "3G"},
                   {"output_tensor_type": "Q6_K"}):
        keys.add(conversion_key("tree", "1", {**p, **change}))
    assert len(keys) == 5
    # accepted by the manifest's checks; wrong ones are precise errors
    from batuta_sync.errors import ManifestError

    for bad, where in (("    pure: 'yes'\n", "pure"), ("    output_tensor_type: IQ1_S\n", "output_tensor_type"),
                       ("    tensor_types: ['attn_v']\n", "tensor_types"), ("    split_max_tensors: 0\n", "split_max_tensors"),
                       ("    split_max_size: lots\n", "split_max_size")):
        text = "version: 1\nmodels: {a: {repo: o/a}}\nconversions:\n  t:\n    from: models.a\n    to: gguf\n" + bad
        with pytest.raises(ManifestError, match=where):
            parse_manifest(text)
    with pytest.raises(ManifestError, match="'pure' applies to GGUF output only"):
        parse_manifest("version: 1\nmodels: {a: {repo: o/a}}\nconversions:\n  t: {from: models.a, to: safetensors, pure: true}\n")


def test_apply_runs_a_tuned_split_conversion(
    tmp_path: Path, hub_env: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_tiny_llama(tmp_path / "seed")
    hub_env.store.commit("org/tiny", {p.name: p for p in src.iterdir() if p.is_file()})
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "hf.yaml").write_text(
        "version: 1\nmodels:\n  tiny: {repo: org/tiny}\nconversions:\n"
        "  q: {from: models.tiny, to: gguf, quantization: Q2_K, output: ./out, tensor_types: ['attn_v=Q8_0'],"
        " split_max_tensors: 8}\n")
    monkeypatch.chdir(ws)
    assert main(["apply", "--auto-approve"]) == 0, capsys.readouterr().err
    shards = sorted((ws / "out").glob("*.gguf"))
    assert [p.name[-19:] for p in shards] == ["00001-of-00003.gguf", "00002-of-00003.gguf", "00003-of-00003.gguf"]
    text = (ws / "hf.lock").read_text()
    assert "attn_v=Q8_0" in text and "split_max_tensors" in text
    assert all(p.name in text for p in shards)  # every shard is a recorded output
    types = {t.name: gguf.GGMLQuantizationType(int(t.tensor_type)).name
             for p in shards for t in gguf.GGUFReader(p).tensors}
    assert types["blk.0.attn_v.weight"] == "Q8_0" and types["blk.0.attn_q.weight"] == "Q2_K"
    capsys.readouterr()
    assert main(["plan", "--detailed-exitcode"]) == 0  # memo key unchanged: nothing to do


def _handmade(path: Path, *, head_count: Any = 8, tensors: dict[str, np.ndarray] | None = None,
              raw: dict[str, tuple[np.ndarray, Any]] | None = None) -> Path:
    """A small llama GGUF built with gguf-py's writer (no file_type / quantization_version keys)."""
    w = gguf.GGUFWriter(path, arch="llama")
    w.add_block_count(1)
    if isinstance(head_count, list):
        w.add_array("llama.attention.head_count", head_count)
    elif isinstance(head_count, str):
        w.add_string("llama.attention.head_count", head_count)
    else:
        w.add_head_count(head_count)
    for name, arr in (tensors or {}).items():
        w.add_tensor(name, arr)
    for name, (arr, qtype) in (raw or {}).items():
        w.add_tensor(name, arr, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_requantize_reads_every_float_type_and_adds_missing_keys(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 256)).astype(np.float32)
    bf16 = (x.view(np.uint32) >> 16).astype(np.uint16)
    src = _handmade(tmp_path / "h.gguf", head_count=[8, 8], tensors={
        "blk.0.attn_q.weight": x, "blk.0.attn_k.weight": x.astype(np.float16), "blk.0.attn_norm.weight": x[0]},
        raw={"blk.0.attn_v.weight": (bf16, gguf.GGMLQuantizationType.BF16)})
    seen = []
    res = convert(src, tmp_path / "q.gguf", to="gguf", quantization="Q6_K",
                  progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (4, 4)
    f = fields(res.output)
    assert f["general.file_type"] == 18 and f["general.quantization_version"] == 2
    got = _tensors(res.output)
    assert got["blk.0.attn_norm.weight"][0] == "F32"
    widened = (bf16.astype(np.uint32) << 16).view(np.float32)
    for name, want in (("blk.0.attn_q.weight", x), ("blk.0.attn_k.weight", x.astype(np.float16).astype(np.float32)),
                       ("blk.0.attn_v.weight", widened)):
        from batuta_sync.convert.kquants import quantize_k

        assert got[name] == ("Q6_K", quantize_k(want, "Q6_K").tobytes()), name


def test_requantize_rejects_damaged_metadata(tmp_path: Path) -> None:
    src = _handmade(tmp_path / "s.gguf", head_count="eight", tensors={"blk.0.attn_q.weight": np.zeros((2, 32), np.float32)})
    with pytest.raises(ConversionError, match=r"llama\.attention\.head_count is not an integer"):
        convert(src, tmp_path / "o.gguf", to="gguf", quantization="Q8_0")
    # a tensor type gguf-py does not know: the type field patched to 250
    ok = _handmade(tmp_path / "t.gguf", tensors={"blk.0.attn_q.weight": np.zeros((2, 32), np.float32)})
    data = bytearray(ok.read_bytes())
    name = b"blk.0.attn_q.weight"
    at = data.index(name) + len(name) + 4 + 2 * 8  # n_dims, two dims, then the type
    data[at:at + 4] = (250).to_bytes(4, "little")
    (tmp_path / "u.gguf").write_bytes(bytes(data))
    with pytest.raises(ConversionError):
        convert(tmp_path / "u.gguf", tmp_path / "o.gguf", to="gguf", quantization="Q8_0")
    assert not (tmp_path / "o.gguf").exists()


def test_quantized_input_is_dequantized_with_allow_requantize(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 256)).astype(np.float32)
    q = gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q4_0)
    src = _handmade(tmp_path / "q.gguf", raw={"blk.0.ffn_up.weight": (q, gguf.GGMLQuantizationType.Q4_0)})
    out = convert(src, tmp_path / "o.gguf", to="gguf", quantization="Q8_0", allow_requantize=True).output
    back = gguf.quants.dequantize(q, gguf.GGMLQuantizationType.Q4_0)
    from batuta_sync.convert.quantize import quantize_rows

    assert _tensors(out)["blk.0.ffn_up.weight"] == ("Q8_0", quantize_rows(back, "Q8_0"))


def test_types_gguf_py_cannot_read_back_are_refused_before_writing(tmp_path: Path) -> None:
    src = _handmade(tmp_path / "f64.gguf", tensors={"blk.0.attn_q.weight": np.ones((2, 32), np.float64)})
    with pytest.raises(ConversionError, match="has type F64, which cannot be dequantized"):
        convert(src, tmp_path / "o" / "o.gguf", to="gguf", quantization="Q8_0", allow_requantize=True)
    assert not (tmp_path / "o").exists()


def test_a_failure_while_writing_leaves_nothing(f16: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import batuta_sync.convert.requantize as rq

    def boom(rows: Any, qtype: str) -> bytes:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rq, "quantize_rows", boom)
    from batuta_sync.errors import DiskFullError

    with pytest.raises(DiskFullError):
        convert(f16, tmp_path / "o" / "q.gguf", to="gguf", quantization="Q4_K_M", jobs=2)
    assert list((tmp_path / "o").iterdir()) == []


def test_gguf_options_are_refused_for_safetensors_output(f16: Path, tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="--pure applies to --to gguf only"):
        convert(f16, tmp_path / "st", to="safetensors", pure=True)
    with pytest.raises(ConversionError, match="--tensor-type, --split-max-tensors apply to --to gguf only"):
        convert(f16, tmp_path / "st", to="safetensors", tensor_types=["a=Q8_0"], split_max_tensors=3)
    assert not (tmp_path / "st").exists()
