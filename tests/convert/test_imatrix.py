"""Importance matrices (issue 19 point 3): the weighted kernels against ggml's own ``ggml_quantize_chunk``
with its imatrix argument (xllamacpp), whole conversions with ``--imatrix`` tensor by tensor, both file
formats, hostile files, the mixture rule that depends on an imatrix, and the memo key."""

from __future__ import annotations

import importlib.util
import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from batuta_sync.convert import convert
from batuta_sync.convert.imatrix import load
from batuta_sync.convert.quantize import QuantOptions, quantize_rows
from batuta_sync.errors import ConversionError

from . import _llamacpp
from .conftest import hf_weights
from .test_hf_to_gguf import expected_input
from .test_kquants import FAMILIES

K_TYPES = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
LEGACY = ["Q4_0", "Q4_1", "Q5_0", "Q5_1"]
IQ4 = ["IQ4_NL", "IQ4_XS"]
GGML_IDS = {**_llamacpp.GGML_TYPES, "IQ4_NL": 20, "IQ4_XS": 23}
needs_ggml = pytest.mark.skipif(_llamacpp.library_path() is None, reason="needs the xllamacpp wheel")


def ggml_weighted(x: np.ndarray, qtype: str, qw: np.ndarray | None) -> bytes:
    """ggml_quantize_chunk(type, x, ..., imatrix=qw): what llama-quantize --imatrix calls per chunk."""
    so = _llamacpp.lib()
    x = np.ascontiguousarray(x, dtype=np.float32)
    bs, ts = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[qtype]]
    out = np.zeros((x.shape[0], x.shape[1] // bs * ts), dtype=np.uint8)
    w = None if qw is None else np.ascontiguousarray(qw, dtype=np.float32)
    so.ggml_quantize_chunk(GGML_IDS[qtype], x.ctypes.data, out.ctypes.data, 0, x.shape[0], x.shape[1],
                           None if w is None else w.ctypes.data)
    return out.tobytes()


def _weights(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = (rng.random(n) ** 3 * 20).astype(np.float32)
    w[:7] = 0  # columns the calibration never activated
    w[7] = 1e30  # one huge column
    return w


@needs_ggml
@pytest.mark.parametrize("qtype", K_TYPES + LEGACY + IQ4)
@pytest.mark.parametrize("family", ["normal", "uniform_pos", "heavy_tail", "sparse", "const_neg", "zeros", "tiny", "mixed_blocks"])
def test_weighted_rows_are_byte_identical_to_ggml(qtype: str, family: str) -> None:
    x = FAMILIES[family].astype(np.float32)
    qw = _weights(x.shape[1], 1)
    with np.errstate(all="ignore"):
        ours = quantize_rows(x, qtype, qw[None, :])
    assert ours == ggml_weighted(x, qtype, qw)
    assert ours != ggml_weighted(x, qtype, None) or family in ("zeros", "const_neg")  # the imatrix does change the result


@needs_ggml
def test_generated_rows_and_weights() -> None:
    rng = np.random.default_rng(7)
    for i in range(12):
        x = (rng.standard_normal((8, 256 * (1 + i % 3))) * 10.0 ** rng.integers(-6, 4)).astype(np.float32)
        x[rng.random(x.shape) < 0.1] = 0
        qw = rng.exponential(1.0, x.shape[1]).astype(np.float32) * np.float32(10.0 ** rng.integers(-8, 8))
        for qtype in K_TYPES + LEGACY + IQ4:
            assert quantize_rows(x, qtype, qw[None, :]) == ggml_weighted(x, qtype, qw), (i, qtype)
        for qtype in IQ4:  # IQ4 without an imatrix is not a *_ref quantizer either: also ours
            assert quantize_rows(x, qtype) == ggml_weighted(x, qtype, None), (i, qtype)


@needs_ggml
def test_moe_rows_take_their_own_experts_weights() -> None:
    """Rows of a 3-D tensor use ``imatrix + (row / rows_per_expert) * n_per_row``, also when a chunk
    starts inside an expert and spans the next."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3 * 8, 256)).astype(np.float32)
    qw = rng.random((3, 256)).astype(np.float32) * 4
    want = b"".join(ggml_weighted(x[e * 8:(e + 1) * 8], "Q4_K", qw[e]) for e in range(3))
    got = quantize_rows(x[5:19], "Q4_K", qw, first_row=5, rows_per_matrix=8)
    assert got == want[5 * 144:19 * 144]
    assert quantize_rows(x, "Q4_K", qw, rows_per_matrix=8) == want


def test_unweighted_types_ignore_the_imatrix() -> None:
    x = FAMILIES["normal"].reshape(-1, 256)[:4].astype(np.float32)
    for qtype in ("F32", "F16", "Q8_0"):
        assert quantize_rows(x, qtype, np.ones((1, 256), np.float32)) == quantize_rows(x, qtype)


def _load_uncompiled() -> Any:
    import numba

    path = Path(__file__).parents[2] / "batuta_sync" / "convert" / "iquants.py"
    old = numba.config.DISABLE_JIT
    numba.config.DISABLE_JIT = True
    try:
        spec = importlib.util.spec_from_file_location("batuta_sync.convert._iquants_interpreted", path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        numba.config.DISABLE_JIT = old
    return mod


def test_kernel_source_run_as_python_gives_the_same_bytes() -> None:
    """The weighted kernels' source interpreted (what coverage sees) agrees with the compiled kernels."""
    py = _load_uncompiled()
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 256)).astype(np.float32)
    x[0, :32] = 0  # a zero sub-block
    x[1] = np.abs(x[1])  # no negative values: min clamps to 0
    x[2, 64:96] *= 1e-7  # a sub-block whose scale rounds to 0
    qw = rng.random(256).astype(np.float32)
    qw[:16] = 0
    zero = np.zeros((1, 256), np.float32)
    with np.errstate(all="ignore"):
        for qtype in K_TYPES:
            assert py.quantize_k_weighted(x, qtype, qw) == quantize_rows(x, qtype, qw[None, :]), qtype
            assert py.quantize_k_weighted(zero, qtype, qw) == quantize_rows(zero, qtype, qw[None, :]), qtype
        for qtype in LEGACY:
            assert py.quantize_legacy_weighted(x[:, :64], qtype, qw[:64]) == \
                quantize_rows(x[:, :64], qtype, qw[None, :64]), qtype
        for qtype in IQ4:
            for w in (None, qw):
                assert py.quantize_iq4(np.concatenate([x, zero]), qtype, w) == \
                    quantize_rows(np.concatenate([x, zero]), qtype, None if w is None else w[None, :]), qtype


# --------------------------------------------------------------------------- files

def write_imatrix_gguf(path: Path, entries: dict[str, np.ndarray], counts: dict[str, np.ndarray], *,
                       datasets: tuple[str, ...] = ("calib.txt",), chunks: int = 4, meta: bool = True) -> Path:
    """A GGUF imatrix exactly as llama-imatrix writes it (``<name>.in_sum2`` (n_mat, n_per_row) and
    ``<name>.counts`` (n_mat, 1), F32; ``imatrix.*`` metadata)."""
    w = gguf.GGUFWriter(str(path), arch=None)  # type: ignore[arg-type]
    w.add_type("imatrix")
    if meta:
        w.add_array("imatrix.datasets", list(datasets))
        w.add_uint32("imatrix.chunk_count", chunks)
        w.add_uint32("imatrix.chunk_size", 512)
    for name in sorted(entries):
        w.add_tensor(name + ".in_sum2", np.ascontiguousarray(entries[name], dtype=np.float32))
        w.add_tensor(name + ".counts", np.ascontiguousarray(counts[name], dtype=np.float32).reshape(-1, 1))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_imatrix_dat(path: Path, entries: dict[str, np.ndarray], ncall: dict[str, int], *,
                      trailer: tuple[int, str] | None = (4, "calib.txt")) -> Path:
    """The legacy ``.dat`` format: values stored as mean * ncall."""
    out = bytearray(struct.pack("<i", len(entries)))
    for name, vals in entries.items():
        nb = name.encode()
        v = np.asarray(vals, dtype="<f4").reshape(-1)
        out += struct.pack("<i", len(nb)) + nb + struct.pack("<ii", ncall[name], v.size) + v.tobytes()
    if trailer is not None:
        ds = trailer[1].encode()
        out += struct.pack("<ii", trailer[0], len(ds)) + ds
    path.write_bytes(bytes(out))
    return path


def model_entries(f16_gguf: Path, seed: int = 5) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Sums of squared activations and token counts for every matrix llama-imatrix records (matmul
    weights: not the token embedding, not norms)."""
    rng = np.random.default_rng(seed)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    for t in gguf.GGUFReader(f16_gguf).tensors:
        if len(t.shape) < 2 or "norm" in t.name or t.name == "token_embd.weight":
            continue
        ncols, n_mat = int(t.shape[0]), int(t.shape[2]) if len(t.shape) == 3 else 1
        c = rng.integers(200, 2048, n_mat).astype(np.float32)
        sums[t.name] = (rng.gamma(0.5, 2.0, (n_mat, ncols)) * c[:, None]).astype(np.float32)
        counts[t.name] = c
    return sums, counts


@pytest.fixture(scope="module")
def imx(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("imx")
    out: dict[str, Path] = {}
    for m in ("gqa", "odd"):
        f16 = d / f"{m}-f16.gguf"
        convert(models[m], f16, to="gguf", quantization="F16")
        sums, counts = model_entries(f16)
        out[m] = write_imatrix_gguf(d / f"{m}.imatrix.gguf", sums, counts)
        means = _expected_weights(out[m])
        # ncall 8: mean * 8 / 8 is exact in float32, so both files carry the very same weights
        out[m + ".dat"] = write_imatrix_dat(d / f"{m}.imatrix.dat", {k: v * np.float32(8) for k, v in means.items()},
                                            {k: 8 for k in means})
    return out


def _expected_weights(path: Path) -> dict[str, np.ndarray]:
    """llama-quantize's normalisation, written out independently: in_sum2 / lround(count), 1 where 0."""
    r = gguf.GGUFReader(path)
    ts = {t.name: np.asarray(t.data, dtype=np.float32) for t in r.tensors}
    out = {}
    for name in ts:
        if name.endswith(".in_sum2"):
            base = name[:-8]
            s, c = ts[name], ts[base + ".counts"].reshape(-1)
            out[base] = np.where(c[:, None] > 0, s / np.round(c)[:, None].astype(np.float32), np.float32(1))
    return out


def test_both_formats_normalise_like_llama_quantize(imx: dict[str, Path]) -> None:
    g, d = load(imx["gqa"]), load(imx["gqa.dat"])
    want = _expected_weights(imx["gqa"])
    assert set(g.entries) == set(d.entries) == set(want)
    for k, v in want.items():
        assert np.array_equal(g.entries[k], v.reshape(-1)), k
        assert np.array_equal(d.entries[k], v.reshape(-1)), k
    assert g.datasets == d.datasets == ("calib.txt",) and g.chunk_count == d.chunk_count == 4


@needs_ggml
@pytest.mark.parametrize("quant", ["Q4_K_M", "Q2_K", "Q3_K_M", "Q5_K_M", "Q6_K", "Q4_0", "Q5_1", "IQ4_NL", "IQ4_XS"])
@pytest.mark.parametrize("model", ["gqa", "odd"])
def test_every_tensor_with_imatrix_is_byte_identical_to_ggml(
    models: dict[str, Path], imx: dict[str, Path], tmp_path: Path, model: str, quant: str
) -> None:
    out = tmp_path / "m.gguf"
    res = convert(models[model], out, to="gguf", quantization=quant, imatrix=imx[model])
    assert res.params["imatrix"] == "sha256:" + load(imx[model]).sha256
    cfg = json.loads((models[model] / "config.json").read_text())
    weights = hf_weights(models[model])
    want_w = _expected_weights(imx[model])
    reader = gguf.GGUFReader(out)
    assert str(bytes(reader.fields["quantize.imatrix.file"].parts[-1]), "utf-8") == imx[model].name
    assert int(reader.fields["quantize.imatrix.entries_count"].parts[-1][0]) == len(want_w)
    weighted = 0
    for t in reader.tensors:
        qt = gguf.GGMLQuantizationType(int(t.tensor_type)).name
        x = expected_input(t.name, weights, cfg)
        got = np.asarray(t.data).tobytes()
        if qt == "F32":
            assert got == x.astype(np.float32).tobytes(), t.name
            continue
        qw = want_w.get(t.name)
        x2 = x.reshape(-1, x.shape[-1])
        assert got == ggml_weighted(x2, qt, None if qw is None else qw[0]), (t.name, qt)
        weighted += qw is not None and qt not in ("F16", "Q8_0")
    assert weighted >= 7 or model == "odd"  # odd widths: mostly fallback types, weighted where they are K/legacy


def test_legacy_dat_gives_the_same_file_as_gguf(models: dict[str, Path], imx: dict[str, Path], tmp_path: Path) -> None:
    a = convert(models["gqa"], tmp_path / "a.gguf", to="gguf", quantization="Q4_K_M", imatrix=imx["gqa"])
    b = convert(models["gqa"], tmp_path / "b.gguf", to="gguf", quantization="Q4_K_M", imatrix=imx["gqa.dat"])
    plain = convert(models["gqa"], tmp_path / "c.gguf", to="gguf", quantization="Q4_K_M")
    ra, rb, rc = (gguf.GGUFReader(r.output) for r in (a, b, plain))
    data = [{t.name: np.asarray(t.data).tobytes() for t in r.tensors} for r in (ra, rb, rc)]
    assert data[0] == data[1]
    assert any(data[0][k] != data[2][k] for k in data[0])  # with an imatrix the file differs


def test_ffn_down_guard_of_q4_0_needs_an_imatrix(models: dict[str, Path], imx: dict[str, Path], tmp_path: Path) -> None:
    """llama.cpp: Q4_0/Q5_0 with an imatrix give the first n_layer/8 ffn_down tensors Q4_1/Q5_1."""
    cfg = json.loads((models["gqa"] / "config.json").read_text())
    n = cfg["num_hidden_layers"]
    for quant, guarded in (("Q4_0", "Q4_1"), ("Q5_0", "Q5_1")):
        with_i = gguf.GGUFReader(convert(models["gqa"], tmp_path / f"{quant}i.gguf", to="gguf", quantization=quant,
                                         imatrix=imx["gqa"]).output)
        without = gguf.GGUFReader(convert(models["gqa"], tmp_path / f"{quant}.gguf", to="gguf",
                                          quantization=quant).output)
        for r, want_first in ((with_i, guarded), (without, quant)):
            types = {t.name: gguf.GGMLQuantizationType(int(t.tensor_type)).name for t in r.tensors}
            assert types["blk.0.ffn_down.weight"] == (want_first if n >= 8 else quant)
            assert types[f"blk.{n - 1}.ffn_down.weight"] == quant


def test_imatrix_is_in_the_memo_key(imx: dict[str, Path], tmp_path: Path) -> None:
    a = QuantOptions.parse(imatrix=str(imx["gqa"])).memo_params()
    copy = tmp_path / "renamed.gguf"
    copy.write_bytes(imx["gqa"].read_bytes())
    assert QuantOptions.parse(imatrix=str(copy)).memo_params() == a  # content, not name
    assert QuantOptions.parse(imatrix=str(imx["odd"])).memo_params() != a
    assert "imatrix" not in QuantOptions.parse().memo_params()


def test_manifest_imatrix_is_resolved_digested_and_confined(imx: dict[str, Path], tmp_path: Path) -> None:
    from batuta_sync.core.manifest import load_manifest
    from batuta_sync.errors import BatutaError

    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "calib.imatrix").write_bytes(imx["gqa"].read_bytes())
    base = ("version: 1\nmodels:\n  m:\n    repo: o/m\nconversions:\n  q:\n    from: models.m\n    to: gguf\n"
            "    quantization: Q4_K_M\n")
    (proj / "hf.yaml").write_text(base + "    imatrix: calib.imatrix\n")
    spec = load_manifest(proj / "hf.yaml").conversions[0]
    assert spec.params()["imatrix"] == "sha256:" + load(imx["gqa"]).sha256
    assert spec.convert_kwargs()["imatrix"] == str((proj / "calib.imatrix").resolve())
    plain = base
    (proj / "hf.yaml").write_text(plain)
    assert "imatrix" not in load_manifest(proj / "hf.yaml").conversions[0].params()
    (proj / "hf.yaml").write_text(base + "    imatrix: missing.dat\n")
    with pytest.raises(BatutaError) as e:
        load_manifest(proj / "hf.yaml")
    assert e.value.exit_code == 3
    (proj / "hf.yaml").write_text(base + f"    imatrix: ../{imx['gqa'].name}\n")
    (tmp_path / imx["gqa"].name).write_bytes(b"x")
    with pytest.raises(BatutaError) as e:
        load_manifest(proj / "hf.yaml")
    assert e.value.exit_code == 20


# --------------------------------------------------------------------------- hostile files

def _gguf_bytes(tmp: Path, **kw: Any) -> bytes:
    entries = kw.pop("entries", {"blk.0.attn_q.weight": np.ones((1, 256), np.float32)})
    counts = kw.pop("counts", {k: np.full(v.shape[0], 10, np.float32) for k, v in entries.items()})
    return write_imatrix_gguf(tmp / "x.gguf", entries, counts, **kw).read_bytes()


def _dat(entries: list[tuple[bytes, int, int, bytes]], n: int | None = None, tail: bytes = b"") -> bytes:
    out = struct.pack("<i", len(entries) if n is None else n)
    for name, ncall, nval, vals in entries:
        out += struct.pack("<i", len(name)) + name + struct.pack("<ii", ncall, nval) + vals
    return out + tail


_ONE = np.ones(256, "<f4").tobytes()
HOSTILE: dict[str, Any] = {
    "empty file": lambda t: b"",
    "zero entries": lambda t: _dat([]),
    "entry count 2**30": lambda t: _dat([], n=2**30),
    "negative name length": lambda t: struct.pack("<ii", 1, -5),
    "name longer than the file": lambda t: struct.pack("<ii", 1, 10**6) + b"abc",
    "name not utf-8": lambda t: _dat([(b"\xff\xfe", 1, 256, _ONE)]),
    "duplicate name": lambda t: _dat([(b"a.weight", 1, 256, _ONE)] * 2),
    "value count lies (2**30)": lambda t: _dat([(b"a.weight", 1, 2**30, _ONE)]),
    "value count 0": lambda t: _dat([(b"a.weight", 1, 0, b"")]),
    "negative ncall": lambda t: _dat([(b"a.weight", -3, 256, _ONE)]),
    "NaN value": lambda t: _dat([(b"a.weight", 1, 1, np.array([np.nan], "<f4").tobytes())]),
    "negative value": lambda t: _dat([(b"a.weight", 1, 1, np.array([-1], "<f4").tobytes())]),
    "truncated values": lambda t: _dat([(b"a.weight", 1, 256, _ONE[:100])]),
    "truncated trailer": lambda t: _dat([(b"a.weight", 1, 256, _ONE)], tail=b"\x01\x00"),
    "gguf truncated": lambda t: _gguf_bytes(t)[:200],
    "gguf without imatrix metadata": lambda t: _gguf_bytes(t, meta=False),
    "gguf counts missing": lambda t: _gguf_bytes(t).replace(b"attn_q.weight.counts", b"attn_q.weight.countz"),
    "gguf infinite sum": lambda t: _gguf_bytes(t, entries={"a.weight": np.full((1, 256), np.inf, np.float32)}),
    "gguf sums not a multiple of counts": lambda t: _gguf_bytes(
        t, entries={"a.weight": np.ones((1, 255), np.float32)}, counts={"a.weight": np.ones(2, np.float32)}),
    "gguf negative count": lambda t: _gguf_bytes(t, counts={"blk.0.attn_q.weight": np.full(1, -4, np.float32)}),
    "gguf huge count": lambda t: _gguf_bytes(t, counts={"blk.0.attn_q.weight": np.full(1, 1e30, np.float32)}),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_imatrix_files_are_conversion_errors(case: str, tmp_path: Path) -> None:
    p = tmp_path / "bad.imatrix"
    p.write_bytes(HOSTILE[case](tmp_path))
    with pytest.raises(ConversionError):
        load(p)


def test_hostile_imatrix_through_the_cli(models: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.dat"
    bad.write_bytes(_dat([(b"a.weight", 1, 2**30, _ONE)]))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "batuta_sync", "convert", str(models["gqa"]), str(out), "--to", "gguf",
                        "--imatrix", str(bad)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 15, r.stderr
    assert "Traceback" not in r.stderr and "not a valid importance matrix" in r.stderr
    assert not out.exists() or not any(out.iterdir())
    r = subprocess.run([sys.executable, "-m", "batuta_sync", "convert", str(models["gqa"]), str(out), "--to", "gguf",
                        "--imatrix", str(tmp_path / "nope.dat")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 15 and "Cannot read the importance matrix" in r.stderr


def test_imatrix_for_another_model(models: dict[str, Path], imx: dict[str, Path], tmp_path: Path) -> None:
    """The wrong model's imatrix (sizes differ) is an error, not a silent imatrix-free quantization."""
    with pytest.raises(ConversionError, match="values for"):
        convert(models["odd"], tmp_path / "x.gguf", to="gguf", quantization="Q4_K_M", imatrix=imx["gqa"])
    assert not list(tmp_path.glob("*.gguf"))


def test_token_embedding_of_the_wrong_size_is_skipped(tmp_path: Path) -> None:
    p = write_imatrix_gguf(tmp_path / "i.gguf", {"token_embd.weight": np.ones((1, 3), np.float32)},
                           {"token_embd.weight": np.ones(1, np.float32)})
    assert load(p).weights("token_embd.weight", 256, 1) is None
    assert load(p).weights("blk.0.attn_q.weight", 256, 1) is None


def test_zero_count_means_weight_one(tmp_path: Path) -> None:
    p = write_imatrix_gguf(tmp_path / "i.gguf", {"a.weight": np.full((2, 4), 6, np.float32)},
                           {"a.weight": np.array([0, 2.6], np.float32)})
    w = load(p).weights("a.weight", 4, 2)
    assert w is not None and w.tolist() == [[1, 1, 1, 1], [2, 2, 2, 2]]  # lround(2.6) = 3


def _gguf_with(tmp: Path, kv: list[tuple[str, Any, str]], tensors: dict[str, np.ndarray]) -> bytes:
    w = gguf.GGUFWriter(str(tmp / "k.gguf"), arch=None)  # type: ignore[arg-type]
    for key, value, kind in kv:
        getattr(w, f"add_{kind}")(key, value)
    for name, a in tensors.items():
        w.add_tensor(name, a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return (tmp / "k.gguf").read_bytes()


_META = [("imatrix.datasets", ["d"], "array"), ("imatrix.chunk_count", 1, "uint32"), ("imatrix.chunk_size", 512, "uint32")]
_PAIR = {"a.weight.in_sum2": np.ones((1, 32), np.float32), "a.weight.counts": np.ones((1, 1), np.float32)}
HOSTILE_GGUF_META: dict[str, Any] = {
    "gguf chunk_count of the wrong type": lambda t: _gguf_with(
        t, [_META[0], ("imatrix.chunk_count", "one", "string"), _META[2]], _PAIR),
    "gguf datasets not strings": lambda t: _gguf_with(t, [("imatrix.datasets", [1, 2], "array"), *_META[1:]], _PAIR),
    "gguf without tensors": lambda t: _gguf_with(t, _META, {}),
    "gguf without imatrix tensors": lambda t: _gguf_with(t, _META, {"a.weight": np.ones(4, np.float32)}),
    "gguf F16 sums": lambda t: _gguf_with(t, _META, {"a.weight.in_sum2": np.ones((1, 32), np.float16),
                                                     "a.weight.counts": np.ones((1, 1), np.float32)}),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_GGUF_META))
def test_hostile_gguf_metadata_and_tensors(case: str, tmp_path: Path) -> None:
    p = tmp_path / "bad.imatrix"
    p.write_bytes(HOSTILE_GGUF_META[case](tmp_path))
    with pytest.raises(ConversionError, match="not a valid importance matrix"):
        load(p)


def test_a_directory_or_an_oversized_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from batuta_sync.convert import imatrix as mod

    with pytest.raises(ConversionError, match="not a regular file"):
        load(tmp_path)
    p = tmp_path / "big.dat"
    p.write_bytes(_dat([(b"a.weight", 1, 256, _ONE)]))
    monkeypatch.setattr(mod, "MAX_FILE_BYTES", 100)
    with pytest.raises(ConversionError, match="more than the 100 allowed"):
        load(p)


def test_legacy_trailer_variants(tmp_path: Path) -> None:
    base = _dat([(b"a.weight", 0, 256, _ONE)])
    for tail, chunks, datasets in ((b"", 0, ()), (struct.pack("<i", 5), 5, ()),
                                   (struct.pack("<ii", 5, 0), 5, ()), (struct.pack("<ii", 3, 2) + b"ds", 3, ("ds",))):
        p = tmp_path / "t.dat"
        p.write_bytes(base + tail)
        m = load(p)
        assert (m.chunk_count, m.datasets) == (chunks, datasets)
        assert m.entries["a.weight"].tolist() == [1.0] * 256  # ncall 0: values as stored
    meta = dict(load(p).metadata())
    assert meta == {"quantize.imatrix.file": "t.dat", "quantize.imatrix.dataset": "ds",
                    "quantize.imatrix.entries_count": 1, "quantize.imatrix.chunks_count": 3}


def test_requantizing_with_an_imatrix_equals_converting_with_it(
    models: dict[str, Path], imx: dict[str, Path], tmp_path: Path
) -> None:
    """GGUF -> GGUF with --imatrix gives the direct conversion's tensors; the input's own
    quantize.imatrix.* keys (an F16 made with an imatrix) are replaced, not duplicated."""
    f16 = convert(models["gqa"], tmp_path / "f16.gguf", to="gguf", quantization="F16", imatrix=imx["odd"]).output
    direct = convert(models["gqa"], tmp_path / "d.gguf", to="gguf", quantization="Q4_K_M", imatrix=imx["gqa"]).output
    re = convert(f16, tmp_path / "r.gguf", to="gguf", quantization="Q4_K_M", imatrix=imx["gqa"]).output
    a, b = gguf.GGUFReader(direct), gguf.GGUFReader(re)
    assert {t.name: np.asarray(t.data).tobytes() for t in a.tensors} == \
        {t.name: np.asarray(t.data).tobytes() for t in b.tensors}
    keys = [k for k in b.fields if k.startswith("quantize.imatrix.")]
    assert sorted(keys) == sorted(set(keys)) and "quantize.imatrix.file" in keys
    assert str(bytes(b.fields["quantize.imatrix.file"].parts[-1]), "utf-8") == imx["gqa"].name
