"""The compiled (numba) K-quant kernels: byte-identical to ggml, and the numpy fallback around them."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import batuta_sync.convert.kquants as kq

from ._llamacpp import ggml_quantize
from .test_kquants import FAMILIES, GOLDEN

numba = pytest.importorskip("numba")

K_TYPES = ("Q4_K", "Q5_K", "Q6_K")


def _extreme_families() -> dict[str, np.ndarray]:
    """Inputs at the edges of float32 / fp16 range, where ggml's bit tricks matter."""
    rng = np.random.default_rng(7)
    fam: dict[str, np.ndarray] = {}
    for sc in (1e-45, 1e-40, 1e-30, 1e7, 1e12, 1e30, 1e38):
        fam[f"normal_{sc:g}"] = np.clip(rng.standard_normal((2, 512)) * sc, -3.4e38, 3.4e38).astype(np.float32)
        fam[f"shifted_{sc:g}"] = np.clip(rng.uniform(-1, 3, (2, 512)) * sc, -3.4e38, 3.4e38).astype(np.float32)
    x = rng.standard_normal((2, 512)).astype(np.float32)
    x[:, ::7] = 1e6
    fam["outliers"] = x
    x = np.zeros((2, 512), np.float32)
    x[:, 5] = 1.0
    x[:, 300] = -1e-20
    fam["single_values"] = x
    fam["negative_zero"] = np.full((2, 512), -0.0, np.float32)
    x = np.full((2, 512), 3.4e38, np.float32)
    x[:, ::2] *= -1
    fam["float_max_alternating"] = x
    x = rng.standard_normal((2, 512)).astype(np.float32)
    x[rng.random(x.shape) < 0.01] = np.inf
    fam["with_inf"] = x
    fam["denormal_steps"] = (rng.integers(-5, 5, (2, 512)) * np.float32(1e-45)).astype(np.float32)
    return fam


EXTREME = _extreme_families()


def _digest(x: np.ndarray, qtype: str, backend: str) -> str:
    return hashlib.sha256(kq.quantize_k(x, qtype, backend=backend).tobytes()).hexdigest()[:16]


@pytest.mark.parametrize("key", sorted(k for k in GOLDEN if k.split("/")[0] in K_TYPES))
def test_numba_matches_recorded_ggml_digests(key: str) -> None:
    qtype, family = key.split("/")
    assert _digest(FAMILIES[family], qtype, "numba") == GOLDEN[key]
    assert kq.backend_name(qtype) == "numba"


@pytest.mark.llamacpp
@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("qtype", K_TYPES)
def test_both_backends_are_byte_identical_to_ggml_on_extreme_inputs(qtype: str, backend: str) -> None:
    with np.errstate(all="ignore"):
        for name, x in EXTREME.items():
            assert kq.quantize_k(x, qtype, backend=backend).tobytes() == ggml_quantize(x, qtype).tobytes(), name


@pytest.mark.llamacpp
def test_numba_matches_ggml_on_many_random_seeds() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(
        blocks=st.integers(1, 70),
        scale=st.sampled_from([1e-38, 1e-6, 0.02, 1.0, 300.0, 6e4, 1e9]),
        seed=st.integers(0, 2**32 - 1),
        zero_frac=st.sampled_from([0.0, 0.3, 0.97]),
        offset=st.sampled_from([0.0, 0.5, -2.0]),
        tail=st.sampled_from(["normal", "t2", "uniform"]),
    )
    def check(blocks: int, scale: float, seed: int, zero_frac: float, offset: float, tail: str) -> None:
        rng = np.random.default_rng(seed)
        shape = (blocks, 256)
        base = {"normal": rng.standard_normal, "t2": lambda s: rng.standard_t(2, s), "uniform": rng.random}[tail](shape)
        x = base * scale + offset * scale
        x[rng.random(shape) < zero_frac] = 0.0
        x = x.astype(np.float32)
        for qtype in K_TYPES:
            assert kq.quantize_k(x, qtype, backend="numba").tobytes() == ggml_quantize(x, qtype).tobytes(), qtype

    check()


def test_numba_and_numpy_agree_on_a_realistic_tensor() -> None:
    """Both backends give the same bytes on a realistic weight tensor."""
    rng = np.random.default_rng(3)
    x = (0.02 * rng.standard_normal((96, 768))).astype(np.float32)
    x[rng.random(x.shape) < 1e-3] = 1.5
    x[5] = 0.0
    for qtype in K_TYPES:
        a = kq.quantize_k(x, qtype, backend="numba")
        b = kq.quantize_k(x, qtype, backend="numpy")
        assert a.shape == b.shape == (96, 3 * kq.BLOCK_BYTES[qtype])
        assert a.tobytes() == b.tobytes(), qtype
    ro = x.copy()
    ro.flags.writeable = False  # e.g. a memory-mapped F32 checkpoint
    assert kq.quantize_k(ro, "Q6_K", backend="numba").tobytes() == kq.quantize_k(x, "Q6_K").tobytes()
    mod = kq._jit()
    assert len(mod.quantize_q6k.signatures) == len(mod.quantize_q45k.signatures) == 1  # compiled once


def test_fp16_conversions_match_ieee() -> None:
    from batuta_sync.convert import _kquants_numba as m

    @numba.njit(cache=False)
    def to16(a: Any, out: Any) -> None:
        for i in range(a.size):
            out[i] = m.fp32_to_fp16(a[i])

    @numba.njit(cache=False)
    def to32(h: Any, out: Any) -> None:
        for i in range(h.size):
            out[i] = m.fp16_to_fp32(h[i])

    @numba.njit(cache=False)
    def roundtrip_bits(a: Any, out: Any) -> None:  # compiles the bit-cast intrinsics afresh
        for i in range(a.size):
            out[i] = m.f32_bits(m.bits_f32(m.f32_bits(a[i])))

    probe = np.array([0.0, -0.0, 1.5, -2.25, np.inf, 1e-45], np.float32)
    probe_bits = np.empty(probe.size, np.int32)
    roundtrip_bits(probe, probe_bits)
    assert np.array_equal(probe_bits, probe.view(np.int32))

    halves = np.arange(65536, dtype=np.int64)
    got32 = np.empty(65536, np.float32)
    to32(halves, got32)
    want = halves.astype(np.uint16).view(np.float16).astype(np.float32)
    finite = np.isfinite(want)
    assert np.array_equal(got32.view(np.uint32)[finite], want.view(np.uint32)[finite])
    assert np.array_equal(np.isnan(got32), np.isnan(want))
    assert np.array_equal(got32[np.isinf(want)], want[np.isinf(want)])

    rng = np.random.default_rng(0)
    bits = np.concatenate([
        rng.integers(0, 2**32, 2_000_000, dtype=np.uint64).astype(np.uint32),
        np.array([0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x38800000, 0x387FFFFF, 0x33000000,
                  0x33000001, 0x477FE000, 0x477FEFFF, 0x477FF000, 0x47800000, 0x00000001, 0x3F800000], np.uint32),
        (np.arange(-70000, 70000, dtype=np.int64) + 0x477FF000).astype(np.uint32),  # around the overflow edge
        (np.arange(0, 0x39000000 >> 12, dtype=np.uint32) << 12) | 0x800,  # every tie in the subnormal range
    ])
    f = bits.view(np.float32)
    got16 = np.empty(f.size, np.int64)
    to16(f, got16)
    with np.errstate(over="ignore"):
        want16 = f.astype(np.float16)
    nan = np.isnan(f)
    assert np.array_equal(got16[~nan].astype(np.uint16), want16[~nan].view(np.uint16))
    assert np.all((got16[nan] & 0x7E00) == 0x7E00)


def _load_uncompiled() -> Any:
    """A second copy of the kernels module with numba's JIT disabled: the same source runs as Python."""
    path = Path(kq.__file__).with_name("_kquants_numba.py")
    old = numba.config.DISABLE_JIT
    numba.config.DISABLE_JIT = True
    try:
        spec = importlib.util.spec_from_file_location("batuta_sync.convert._kquants_numba_interpreted", path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        numba.config.DISABLE_JIT = old
    return mod


def test_kernel_source_run_as_python_gives_the_same_bytes() -> None:
    """The kernels' source interpreted (what coverage can see) agrees with the compiled kernels."""
    py = _load_uncompiled()
    part = FAMILIES["normal"][:1, :256].copy()
    part[0, :16] = 0.0  # a zero sub-block inside a non-zero block
    part[0, 16:32] *= 1e-6  # and one whose 6-bit scale rounds to 0
    x = np.concatenate([
        FAMILIES["zeros"].reshape(-1, 256)[:4],
        part,
        FAMILIES["uniform_pos"].reshape(-1, 256)[:1],
        FAMILIES["mixed_blocks"].reshape(-1, 256)[:6],
        FAMILIES["heavy_tail"].reshape(-1, 256)[:1],
        EXTREME["float_max_alternating"].reshape(-1, 256)[:1],
        EXTREME["denormal_steps"].reshape(-1, 256)[:1],
        # 18 blocks: the last lane group is constant blocks plus padding, with nothing to search
        FAMILIES["const_neg"].reshape(-1, 256)[:2],
    ])
    with np.errstate(all="ignore"):
        for qtype, nmax in (("Q4_K", 15), ("Q5_K", 31), ("Q6_K", 0)):
            out = np.zeros((x.shape[0], kq.BLOCK_BYTES[qtype]), np.uint8)
            if nmax:
                py.quantize_q45k(x, out, nmax)
            else:
                py.quantize_q6k(x, out)
            assert out.tobytes() == kq.quantize_k(x, qtype, backend="numba").tobytes(), qtype
        assert py.fp16_to_fp32(0x7C00) == np.inf and py.fp16_to_fp32(0xFC00) == -np.inf
        assert py.fp32_to_fp16(np.float32(np.nan)) & 0x7E00 == 0x7E00


def test_backend_choice_and_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    x = FAMILIES["normal"]
    want = kq.quantize_k(x, "Q5_K", backend="numpy").tobytes()
    small = x[:1, :256]
    assert kq.backend_name("Q5_K") == "numba"
    assert kq.backend_name("Q5_K", nblocks=1) == "numba"  # loaded already: used for any size
    assert kq.backend_name("Q8_0") == "numpy"
    monkeypatch.setattr(kq, "_jit_module", None)
    assert kq.backend_name("Q5_K", nblocks=1) == "numpy"  # tiny inputs never pay numba's import
    assert kq._jit_module is None
    monkeypatch.setenv("BATUTA_KQUANTS_BACKEND", "numpy")
    assert kq.backend_name("Q5_K") == "numpy"
    monkeypatch.setenv("BATUTA_KQUANTS_BACKEND", "numba")
    assert kq.quantize_k(small, "Q5_K").tobytes() == kq.quantize_k(small, "Q5_K", backend="numpy").tobytes()
    monkeypatch.delenv("BATUTA_KQUANTS_BACKEND")

    class Broken:  # e.g. LLVM failing to compile on an odd platform
        def quantize_q45k(self, *a: Any) -> None:
            raise RuntimeError("compilation failed")

    monkeypatch.setattr(kq, "_jit_module", Broken())
    assert kq.quantize_k(x, "Q5_K", backend="numba").tobytes() == want
    assert kq._jit_module is False  # numpy for the rest of the process
    assert kq.backend_name("Q5_K") == "numpy"

    monkeypatch.setattr(kq, "_jit_module", None)
    monkeypatch.setitem(sys.modules, "batuta_sync.convert._kquants_numba", None)  # numba not installed
    assert kq.quantize_k(x, "Q5_K", backend="numba").tobytes() == want
    assert kq._jit() is None

    monkeypatch.setattr(kq, "_jit_module", None)  # NUMBA_DISABLE_JIT=1: the kernels would be plain Python
    monkeypatch.setitem(sys.modules, "batuta_sync.convert._kquants_numba", _load_uncompiled())
    assert kq._jit() is None
    assert kq.backend_name("Q5_K") == "numpy"


def test_a_conversion_announcing_little_work_stays_on_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """``expected_work``: the backend is chosen for the conversion's whole K-quant work, not per call."""
    monkeypatch.setattr(kq, "_jit_module", None)  # not loaded yet in this process
    monkeypatch.setattr(kq, "_expected", None)  # (a conversion another test left running must not count)
    monkeypatch.delenv("BATUTA_KQUANTS_BACKEND", raising=False)
    monkeypatch.setattr(kq, "_jit", lambda: pytest.fail("numba loaded for a small conversion"))
    with kq.expected_work(kq._JIT_MIN_TOTAL_BLOCKS - 1):
        assert kq.backend_name("Q4_K", nblocks=4096) == "numpy"  # a big call of a small conversion
        x = FAMILIES["normal"]
        assert kq.quantize_k(x, "Q4_K").tobytes() == kq.quantize_k(x, "Q4_K", backend="numpy").tobytes()
        with kq.expected_work(kq._JIT_MIN_TOTAL_BLOCKS):  # nested: the inner conversion's total counts
            monkeypatch.setattr(kq, "_jit", lambda: "kernels")
            assert kq.backend_name("Q4_K", nblocks=1) == "numba"
    monkeypatch.setattr(kq, "_jit", lambda: "kernels")
    assert kq.backend_name("Q4_K", nblocks=1) == "numpy" and kq.backend_name("Q4_K") == "numba"  # per call again
    assert kq.k_blocks([((4, 512, 256), "Q4_K"), ((256,), "F32"), ((10, 256), "Q8_0"), ((2, 512), "Q6_K")]) == 2052


def test_numba_is_imported_without_scipys_blas(tmp_path: Path) -> None:
    """SciPy is hidden while numba probes for its BLAS (~0.2 s CPU and ~20 MB per process), visible after."""
    pytest.importorskip("scipy")
    code = ("import sys, numpy as np; from batuta_sync.convert import kquants as kq; "
            "x = np.random.default_rng(0).standard_normal((1024, 256)).astype(np.float32); "
            "kq.quantize_k(x, 'Q4_K', backend='numba'); assert kq._jit_module, 'no kernels'; "
            "import numba.np.arraymath as am; print(int(am._HAVE_BLAS), int('scipy' in sys.modules)); "
            "import scipy.linalg; print('scipy ok')")
    env = {**os.environ, "PYTHONPATH": str(Path(kq.__file__).parents[2])}
    env.pop("BATUTA_NUMBA_BLAS", None)
    out = subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300, capture_output=True,
                         text=True).stdout.split()
    assert out == ["0", "0", "scipy", "ok"]
    out = subprocess.run([sys.executable, "-c", code], check=True, env={**env, "BATUTA_NUMBA_BLAS": "1"},
                         timeout=300, capture_output=True, text=True).stdout.split()
    assert out == ["1", "1", "scipy", "ok"]  # the opt-out: numba sees SciPy's BLAS


def test_cli_start_up_does_not_import_numba() -> None:
    code = ("import sys, batuta_sync.cli, batuta_sync.convert.kquants, batuta_sync.convert.quantize; "
            "assert 'numba' not in sys.modules and 'llvmlite' not in sys.modules, 'numba imported'")
    env = {**os.environ, "PYTHONPATH": str(Path(kq.__file__).parents[2])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_kernels_compile_without_a_writable_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only install with no usable cache directory still gets compiled kernels (just not cached)."""
    from batuta_sync.convert import _kquants_numba as m

    (tmp_path / "__pycache__").write_text("a file, so no cache directory can be made here")
    (tmp_path / "ro_kernel.py").write_text("def plus_one(x):\n    return x + 1\n")
    monkeypatch.setattr(numba.config, "CACHE_DIR", "/dev/null/numba")  # NUMBA_CACHE_DIR unusable
    monkeypatch.setenv("HOME", "/dev/null")
    monkeypatch.setenv("XDG_CACHE_HOME", "/dev/null/cache")  # user-wide cache unusable
    spec = importlib.util.spec_from_file_location("ro_kernel", tmp_path / "ro_kernel.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with pytest.raises(RuntimeError, match="cannot cache"):
        numba.njit(cache=True)(mod.plus_one)
    fn = m._jit(mod.plus_one)
    assert fn(41) == 42
    assert type(fn._cache).__name__ == "NullCache"
