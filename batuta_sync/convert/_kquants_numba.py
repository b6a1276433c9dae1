"""Q4_K / Q5_K / Q6_K kernels compiled with numba: the same algorithm as ggml's ``*_ref`` quantizers.

Imported lazily by :mod:`batuta_sync.convert.kquants` (never at CLI start-up); when numba is missing
or a kernel fails to compile, kquants falls back to its numpy path, which gives the same bytes.

Byte-exactness with ggml (compiled without FMA, no fast-math) rests on:

* float32 everywhere: every constant and every int operand is converted to float32 explicitly
  (numba would otherwise promote ``float32 * int`` to float64); ``fastmath`` is off, so LLVM
  neither contracts ``a*b + c`` into an FMA nor reassociates sums;
* the sums are accumulated in element order, like the C loops.  The search loops are written
  "element outer, sub-block inner": the (independent) sub-blocks of several super-blocks are the
  SIMD lanes, each lane still sums its own elements sequentially.  The hot loops touch only a
  few arrays (data, per-lane parameters, accumulators): with more, LLVM gives up on the runtime
  alias checks and leaves them scalar (measured: 1.7x instead of 3.5x ggml's speed);
* ``nearest_int`` is ggml's own bit trick (``(bits(f + 12582912.f) & 0x7fffff) - 0x400000``),
  fp16 conversion is round-to-nearest-even (exactly ``GGML_FP32_TO_FP16``);
* per-lane branches of the C code become per-lane conditions with the same tests (strict
  ``<`` / ``>``, first hit wins), so ties resolve as in C.

``error_model="numpy"`` makes a float division by zero give inf/nan as in C instead of raising.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from batuta_sync.convert import _numba_env  # noqa: F401  (first: numba without SciPy's BLAS probe)

# isort: split
from llvmlite import ir  # type: ignore[import-untyped]
from numba import config, njit, types
from numba.extending import intrinsic as _intrinsic
from numba.extending import overload


def intrinsic(func: Callable[..., Any]) -> Callable[..., Any]:
    """numba's ``@intrinsic`` with a type: the result is called from compiled code with the
    arguments after ``typingctx`` (numba declares the decorator without annotations)."""
    return _intrinsic(func)


# NUMBA_DISABLE_JIT=1 turns every kernel below into (very slow) plain Python: kquants then uses numpy.
COMPILED = not getattr(config, "DISABLE_JIT", False)

_F0 = np.float32(0.0)
_F1 = np.float32(1.0)
_MAGIC = np.float32(12582912.0)  # 1.5 * 2**23
_F2P24 = np.float32(16777216.0)  # 2**24
_EPS = np.float32(1e-15)  # GROUP_MAX_EPS
_F63 = np.float32(63.0)
_F32V = np.float32(32.0)
_FM128 = np.float32(-128.0)
_F01 = np.float32(0.1)
_LANES6 = 64  # Q6_K sub-blocks processed side by side (4 super-blocks)
_LANES45 = 64  # Q4_K/Q5_K sub-blocks processed side by side (8 super-blocks)


# --- bit casts (pure-Python versions for the interpreter, LLVM bitcasts inside compiled code) ---

def f32_bits(x: Any) -> Any:
    """The IEEE bits of a float32 as int32."""
    return np.float32(x).view(np.int32)


def bits_f32(i: Any) -> Any:
    """The float32 whose IEEE bits are the int32 ``i``."""
    return np.int32(i).view(np.float32)


@intrinsic
def _bitcast_f32_i32(typingctx: Any, x: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(x), codegen


@intrinsic
def _bitcast_i32_f32(typingctx: Any, i: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(i), codegen


@overload(f32_bits)
def _ol_f32_bits(x: Any) -> Any:
    if isinstance(x, types.Float) and x.bitwidth == 32:
        def impl(x: Any) -> Any:
            return _bitcast_f32_i32(x)

        return impl
    return None


@overload(bits_f32)
def _ol_bits_f32(i: Any) -> Any:
    if isinstance(i, types.Integer):
        def impl(i: Any) -> Any:
            return _bitcast_i32_f32(np.int32(i))

        return impl
    return None


def _jit(fn: Any) -> Any:
    """njit with an on-disk cache when a cache location is writable, without one otherwise."""
    opts: dict[str, Any] = {"nogil": True, "fastmath": False, "error_model": "numpy"}
    try:
        return njit(cache=True, **opts)(fn)
    except RuntimeError:  # read-only install and no usable NUMBA_CACHE_DIR or user cache directory
        return njit(cache=False, **opts)(fn)


@_jit
def nearest_int(f: Any) -> Any:
    """ggml's ``nearest_int``: round half to even via the 1.5*2**23 trick (exact for |f| <= 2**22)."""
    return (f32_bits(np.float32(f + _MAGIC)) & 0x7FFFFF) - 0x400000


@_jit
def fp32_to_fp16(f: Any) -> Any:
    """IEEE binary16 bits of float32 ``f``, round to nearest even (``GGML_FP32_TO_FP16``)."""
    b = np.int64(f32_bits(f)) & 0xFFFFFFFF
    sign = (b >> 16) & 0x8000
    a = b & 0x7FFFFFFF
    if a > 0x7F800000:  # NaN
        return sign | 0x7E00
    if a >= 0x38800000:  # fp16 normal range (or overflow)
        r = a + 0xFFF + ((a >> 13) & 1)
        if r >= 0x47800000:
            return sign | 0x7C00
        return sign | ((r - 0x38000000) >> 13)
    # fp16 subnormal or zero: |f| * 2**24 is exact; round it to an integer, half to even
    v = np.float32(np.float32(abs(f)) * _F2P24)
    return sign | ((f32_bits(np.float32(v + _MAGIC)) & 0x7FFFFF) - 0x400000)


@_jit
def fp16_to_fp32(h: Any) -> Any:
    """The float32 value of IEEE binary16 bits ``h`` (exact)."""
    e = (h >> 10) & 0x1F
    m = h & 0x3FF
    if e == 0:
        v = np.float32(np.float32(m) / _F2P24)
    elif e == 31:
        v = bits_f32(0x7F800000 | (m << 13))
    else:
        v = bits_f32(((e + 112) << 23) | (m << 13))
    return -v if h & 0x8000 else v


# --- Q4_K / Q5_K --------------------------------------------------------------------------------

@_jit
def _qkx2_lanes(dat: Any, nmax: int, rmin: Any, rdelta: Any, nstep: int, lq: Any, scales: Any, mins: Any,
                mad: bool) -> None:
    """``make_qkx2_quants(n, nmax, x, w, L, &min, Laux, rmin, rdelta, nstep, use_mad=mad)`` for every lane.

    ``dat`` is (2, 32, lanes): x and the weights, element i of lane (sub-block) j at [., i, j].
    Writes L (as float32, shape (32, lanes)) into ``lq``, the scales and ``the_min`` values.
    Instead of copying Laux into L on every improvement (as C does), the winning (iscale, min)
    of each lane is kept and L recomputed once at the end with the very same operations.  The
    hot loops touch few distinct arrays so that LLVM can vectorise them across lanes.
    """
    n = dat.shape[1]
    g = dat.shape[2]
    fnmax = np.float32(nmax)
    # per-lane parameters: 0 iscale, 1 min, 2 max, 3 sum_w, 4 sum_x, 5 scale, 6 best error,
    # 7 best iscale, 8 best min, 9 this_scale, 10 this_min, 11 min as first clamped
    par = np.empty((12, g), np.float32)
    acc = np.empty((4, g), np.float32)  # sum_l, sum_l2, sum_xl, error
    laux = np.empty((n, g), np.float32)
    flat = np.empty(g, np.bool_)
    ok = np.empty(g, np.bool_)
    for j in range(g):
        par[1, j] = dat[0, 0, j]
        par[2, j] = dat[0, 0, j]
        par[3, j] = dat[1, 0, j]
        par[4, j] = np.float32(dat[1, 0, j] * dat[0, 0, j])
    for i in range(1, n):
        for j in range(g):
            v = dat[0, i, j]
            wv = dat[1, i, j]
            par[1, j] = v if v < par[1, j] else par[1, j]
            par[2, j] = v if v > par[2, j] else par[2, j]
            par[3, j] = np.float32(par[3, j] + wv)
            par[4, j] = np.float32(par[4, j] + np.float32(wv * v))
    for j in range(g):
        if par[1, j] > _F0:
            par[1, j] = _F0
        flat[j] = par[2, j] == par[1, j]
        par[11, j] = par[1, j]
        par[0, j] = np.float32(fnmax / np.float32(par[2, j] - par[1, j]))
        par[5, j] = np.float32(_F1 / par[0, j])
        par[7, j] = par[0, j]
        par[8, j] = par[1, j]
        acc[3, j] = _F0
    for i in range(n):
        for j in range(g):
            v = dat[0, i, j]
            q = nearest_int(np.float32(par[0, j] * np.float32(v - par[1, j])))
            fq = np.float32(min(nmax, max(0, q)))
            d = np.float32(np.float32(np.float32(par[5, j] * fq) + par[1, j]) - v)
            e = abs(d) if mad else np.float32(d * d)
            acc[3, j] = np.float32(acc[3, j] + np.float32(dat[1, i, j] * e))
    for j in range(g):
        par[6, j] = acc[3, j]
    for step in range(nstep + 1):
        num = np.float32(np.float32(rmin + np.float32(rdelta * np.float32(step))) + fnmax)
        for j in range(g):
            par[0, j] = np.float32(num / np.float32(par[2, j] - par[1, j]))
            acc[0, j] = _F0
            acc[1, j] = _F0
            acc[2, j] = _F0
            acc[3, j] = _F0
        for i in range(n):
            for j in range(g):
                v = dat[0, i, j]
                q = nearest_int(np.float32(par[0, j] * np.float32(v - par[1, j])))
                fq = np.float32(min(nmax, max(0, q)))
                laux[i, j] = fq
                wl = np.float32(dat[1, i, j] * fq)
                acc[0, j] = np.float32(acc[0, j] + wl)
                acc[1, j] = np.float32(acc[1, j] + np.float32(wl * fq))
                acc[2, j] = np.float32(acc[2, j] + np.float32(wl * v))
        anyok = False
        for j in range(g):
            s_l = acc[0, j]
            s_l2 = acc[1, j]
            s_xl = acc[2, j]
            dd = np.float32(np.float32(par[3, j] * s_l2) - np.float32(s_l * s_l))
            ok[j] = dd > _F0 and not flat[j]
            anyok = anyok or ok[j]
            ts = np.float32(np.float32(np.float32(par[3, j] * s_xl) - np.float32(par[4, j] * s_l)) / dd)
            tm = np.float32(np.float32(np.float32(s_l2 * par[4, j]) - np.float32(s_l * s_xl)) / dd)
            if tm > _F0:
                tm = _F0
                ts = np.float32(s_xl / s_l2)
            par[9, j] = ts
            par[10, j] = tm
        if not anyok:
            continue
        for i in range(n):
            for j in range(g):
                d = np.float32(np.float32(np.float32(par[9, j] * laux[i, j]) + par[10, j]) - dat[0, i, j])
                e = abs(d) if mad else np.float32(d * d)
                acc[3, j] = np.float32(acc[3, j] + np.float32(dat[1, i, j] * e))
        for j in range(g):
            if ok[j] and acc[3, j] < par[6, j]:
                par[6, j] = acc[3, j]
                par[5, j] = par[9, j]
                par[7, j] = par[0, j]  # L of this step: iscale and the min it was computed with
                par[8, j] = par[1, j]
                par[1, j] = par[10, j]
    for i in range(n):
        for j in range(g):
            q = nearest_int(np.float32(par[7, j] * np.float32(dat[0, i, j] - par[8, j])))
            lq[i, j] = np.float32(min(nmax, max(0, q)))
    for j in range(g):
        if flat[j]:  # C returns early: L = 0, scale 0, the_min = -min
            mins[j] = -par[11, j]
            scales[j] = _F0
            for i in range(n):
                lq[i, j] = _F0
        else:
            mins[j] = -par[1, j]
            scales[j] = par[5, j]


@_jit
def _finish_q45k(xt: Any, lq: Any, scales: Any, mins: Any, j0: int, nmax: int, o: Any) -> None:
    """The super-block part of ``quantize_row_q{4,5}_K_ref`` for the 8 lanes ``j0..j0+7``, written to ``o``."""
    ls = np.empty(8, np.int64)
    lm = np.empty(8, np.int64)
    max_scale = _F0
    max_min = _F0
    for j in range(8):
        if scales[j0 + j] > max_scale:
            max_scale = scales[j0 + j]
        if mins[j0 + j] > max_min:
            max_min = mins[j0 + j]
    inv_scale = np.float32(_F63 / max_scale) if max_scale > _F0 else _F0
    inv_min = np.float32(_F63 / max_min) if max_min > _F0 else _F0
    for j in range(8):
        ls[j] = min(63, nearest_int(np.float32(inv_scale * scales[j0 + j])) & 0xFF)
        lm[j] = min(63, nearest_int(np.float32(inv_min * mins[j0 + j])) & 0xFF)
    d16 = fp32_to_fp16(np.float32(max_scale / _F63))
    dm16 = fp32_to_fp16(np.float32(max_min / _F63))
    d32 = fp16_to_fp32(d16)
    dm32 = fp16_to_fp32(dm16)
    for j in range(8):
        d = np.float32(d32 * np.float32(ls[j]))
        if d == _F0:
            continue
        dm = np.float32(dm32 * np.float32(lm[j]))
        for i in range(32):
            q = nearest_int(np.float32(np.float32(xt[i, j0 + j] + dm) / d))
            lq[i, j0 + j] = np.float32(min(nmax, max(0, q)))
    o[0] = d16 & 0xFF
    o[1] = d16 >> 8
    o[2] = dm16 & 0xFF
    o[3] = dm16 >> 8
    for j in range(4):
        o[4 + j] = ls[j] | ((ls[j + 4] >> 4) << 6)
        o[8 + j] = lm[j] | ((lm[j + 4] >> 4) << 6)
        o[12 + j] = (ls[j + 4] & 0xF) | ((lm[j + 4] & 0xF) << 4)
    qs = 16 if nmax == 15 else 48
    if nmax == 31:
        for i in range(32):
            h = 0
            for c in range(4):
                h |= (int(lq[i, j0 + 2 * c]) >> 4) << (2 * c)
                h |= (int(lq[i, j0 + 2 * c + 1]) >> 4) << (2 * c + 1)
            o[16 + i] = h
    for c in range(4):
        for i in range(32):
            o[qs + 32 * c + i] = (int(lq[i, j0 + 2 * c]) & 0xF) | ((int(lq[i, j0 + 2 * c + 1]) & 0xF) << 4)


@_jit
def quantize_q45k(x: Any, out: Any, nmax: int) -> None:
    """Quantize (nb, 256) float32 ``x`` into (nb, 144|176) uint8 ``out`` (Q4_K for nmax 15, Q5_K for 31).

    A few super-blocks at a time: their sub-blocks are the lanes (an incomplete last group repeats
    the last block and drops the copies).
    """
    nb = x.shape[0]
    if nmax == 15:
        rmin, rdelta, nstep = np.float32(-1.0), _F01, 20
    else:
        rmin, rdelta, nstep = np.float32(-0.5), _F01, 15
    g = _LANES45
    dat = np.empty((2, 32, g), np.float32)  # x, weights
    lq = np.empty((32, g), np.float32)
    scales = np.empty(g, np.float32)
    mins = np.empty(g, np.float32)
    sx2 = np.empty(g, np.float32)
    for b0 in range(0, nb, g // 8):
        for j in range(g):
            sx2[j] = _F0
        for k in range(g // 8):
            b = min(b0 + k, nb - 1)
            for i in range(32):
                for jj in range(8):
                    j = 8 * k + jj
                    v = x[b, 32 * jj + i]
                    dat[0, i, j] = v
                    sx2[j] = np.float32(sx2[j] + np.float32(v * v))
        for j in range(g):
            sx2[j] = np.float32(np.sqrt(np.float32(sx2[j] / _F32V)))  # av_x
        for i in range(32):
            for j in range(g):
                dat[1, i, j] = np.float32(sx2[j] + abs(dat[0, i, j]))
        _qkx2_lanes(dat, nmax, rmin, rdelta, nstep, lq, scales, mins, False)
        for k in range(g // 8):
            if b0 + k < nb:
                _finish_q45k(dat[0], lq, scales, mins, 8 * k, nmax, out[b0 + k])


# --- Q6_K ---------------------------------------------------------------------------------------

@_jit
def _finish_q6k(xb: Any, lq: Any, scale: Any, j0: int, o: Any) -> None:
    """The super-block part of ``quantize_row_q6_K_ref`` for block ``xb`` (lanes ``j0..j0+15``), written to ``o``."""
    sc = np.empty(16, np.int64)
    lfin = np.empty(256, np.int32)
    max_scale = _F0
    max_abs = _F0
    for j in range(16):
        a = abs(scale[j0 + j])
        if a > max_abs:
            max_abs = a
            max_scale = scale[j0 + j]
    if max_abs < _EPS:
        for k in range(210):
            o[k] = 0
        return
    isc = np.float32(_FM128 / max_scale)
    d16 = fp32_to_fp16(np.float32(_F1 / isc))
    d32 = fp16_to_fp32(d16)
    for j in range(16):
        q = min(127, nearest_int(np.float32(isc * scale[j0 + j]))) & 0xFF
        sc[j] = q - 256 if q > 127 else q  # stored as int8
    for j in range(16):
        d = np.float32(d32 * np.float32(sc[j]))
        if d == _F0:
            for i in range(16):
                lfin[16 * j + i] = np.int32(lq[i, j0 + j]) + 32
        else:
            for i in range(16):
                q = nearest_int(np.float32(xb[16 * j + i] / d))
                lfin[16 * j + i] = max(-32, min(31, q)) + 32
    for h in range(2):
        base = 128 * h
        for i in range(32):
            q1 = lfin[base + i]
            q2 = lfin[base + i + 32]
            q3 = lfin[base + i + 64]
            q4 = lfin[base + i + 96]
            o[64 * h + i] = (q1 & 0xF) | ((q3 & 0xF) << 4)
            o[64 * h + 32 + i] = (q2 & 0xF) | ((q4 & 0xF) << 4)
            o[128 + 32 * h + i] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6)
    for j in range(16):
        o[192 + j] = sc[j] & 0xFF
    o[208] = d16 & 0xFF
    o[209] = d16 >> 8


@_jit
def quantize_q6k(x: Any, out: Any) -> None:
    """Quantize (nb, 256) float32 ``x`` into (nb, 210) uint8 ``out`` (``quantize_row_q6_K_ref``).

    ``make_qx_quants(16, 32, x, L, 1, NULL)`` runs for the 16-element sub-blocks of a few super-blocks
    side by side (the lanes); an incomplete last group repeats the last block and drops the copies.
    As in the Q4_K/Q5_K search, the winning iscale of each lane is kept and L computed once at the
    end, and the hot loops touch only three arrays, so LLVM vectorises them across lanes.
    """
    nb = x.shape[0]
    g = _LANES6
    dat = np.empty((3, 16, g), np.float32)  # x, w*x, w  (w = x*x)
    par = np.empty((6, g), np.float32)  # iscale, best iscale, amax, max, scale, best
    acc = np.empty((2, g), np.float32)  # sum w*x*l, sum w*l*l
    lq = np.empty((16, g), np.float32)
    for b0 in range(0, nb, g // 16):
        for j in range(g):
            par[2, j] = _F0
            par[3, j] = _F0
        for k in range(g // 16):
            b = min(b0 + k, nb - 1)
            for i in range(16):
                for jj in range(16):
                    j = 16 * k + jj
                    v = x[b, 16 * jj + i]
                    dat[0, i, j] = v
                    av = abs(v)
                    m = av > par[2, j]
                    par[3, j] = v if m else par[3, j]
                    par[2, j] = av if m else par[2, j]
                    w = np.float32(v * v)
                    dat[2, i, j] = w
                    dat[1, i, j] = np.float32(w * v)
        for j in range(g):
            par[0, j] = np.float32(np.float32(-32.0) / par[3, j])
            par[1, j] = par[0, j]
            acc[0, j] = _F0
            acc[1, j] = _F0
        for i in range(16):
            for j in range(g):
                q = nearest_int(np.float32(par[0, j] * dat[0, i, j]))
                fq = np.float32(max(-32, min(31, q)))
                acc[0, j] = np.float32(acc[0, j] + np.float32(dat[1, i, j] * fq))
                acc[1, j] = np.float32(acc[1, j] + np.float32(np.float32(dat[2, i, j] * fq) * fq))
        for j in range(g):
            par[4, j] = np.float32(acc[0, j] / acc[1, j]) if acc[1, j] != _F0 else _F0
            par[5, j] = np.float32(par[4, j] * acc[0, j])
        for step in range(-9, 10):
            if step == 0:
                continue
            num = -np.float32(_F32V + np.float32(_F01 * np.float32(step)))
            for j in range(g):
                par[0, j] = np.float32(num / par[3, j])
                acc[0, j] = _F0
                acc[1, j] = _F0
            for i in range(16):
                for j in range(g):
                    q = nearest_int(np.float32(par[0, j] * dat[0, i, j]))
                    fq = np.float32(max(-32, min(31, q)))
                    acc[0, j] = np.float32(acc[0, j] + np.float32(dat[1, i, j] * fq))
                    acc[1, j] = np.float32(acc[1, j] + np.float32(np.float32(dat[2, i, j] * fq) * fq))
            for j in range(g):
                slx = acc[0, j]
                sl2 = acc[1, j]
                if sl2 > _F0 and np.float32(slx * slx) > np.float32(par[5, j] * sl2):
                    par[1, j] = par[0, j]
                    par[4, j] = np.float32(slx / sl2)
                    par[5, j] = np.float32(par[4, j] * slx)
        for i in range(16):
            for j in range(g):
                q = nearest_int(np.float32(par[1, j] * dat[0, i, j]))
                lq[i, j] = np.float32(max(-32, min(31, q)))
        scale = par[4]
        for j in range(g):
            if par[2, j] < _EPS:  # all-zero sub-block: L = 0 (not 32), scale 0
                scale[j] = _F0
                for i in range(16):
                    lq[i, j] = np.float32(-32.0)
        for k in range(g // 16):
            if b0 + k < nb:
                _finish_q6k(x[b0 + k], lq, scale, 16 * k, out[b0 + k])


# --- Q2_K (the lanes kernel above with use_mad) / Q3_K (a scalar port of the C loops) --------------

@_jit
def _pack2(lq: Any, o: Any, base: int) -> None:
    """``qs[j/4 + l] = L[j+l] | L[j+l+32] << 2 | L[j+l+64] << 4 | L[j+l+96] << 6`` at ``o[base:base+64]``."""
    for h in range(2):
        for i in range(32):
            j = 128 * h + i
            o[base + 32 * h + i] = lq[j] | (lq[j + 32] << 2) | (lq[j + 64] << 4) | (lq[j + 96] << 6)


@_jit
def _finish_q2k(xt: Any, lq: Any, scales: Any, mins: Any, j0: int, o: Any) -> None:
    """The super-block part of ``quantize_row_q2_K_ref`` for the 16 lanes ``j0..j0+15``, written to ``o``."""
    sc = np.empty(16, np.int64)
    lfin = np.empty(256, np.int64)
    f15 = np.float32(15.0)
    max_scale = _F0
    max_min = _F0
    for j in range(16):
        if scales[j0 + j] > max_scale:
            max_scale = scales[j0 + j]
        if mins[j0 + j] > max_min:
            max_min = mins[j0 + j]
    d16 = 0
    dm16 = 0
    for j in range(16):
        sc[j] = 0
    if max_scale > _F0:
        isc = np.float32(f15 / max_scale)
        for j in range(16):
            sc[j] = nearest_int(np.float32(isc * scales[j0 + j])) & 0xFF
        d16 = fp32_to_fp16(np.float32(max_scale / f15))
    if max_min > _F0:
        isc = np.float32(f15 / max_min)
        for j in range(16):
            sc[j] = (sc[j] | (nearest_int(np.float32(isc * mins[j0 + j])) << 4)) & 0xFF
        dm16 = fp32_to_fp16(np.float32(max_min / f15))
    d32 = fp16_to_fp32(d16)
    dm32 = fp16_to_fp32(dm16)
    for j in range(16):
        d = np.float32(d32 * np.float32(sc[j] & 0xF))
        if d == _F0:
            for i in range(16):
                lfin[16 * j + i] = int(lq[i, j0 + j])
            continue
        dm = np.float32(dm32 * np.float32(sc[j] >> 4))
        for i in range(16):
            q = nearest_int(np.float32(np.float32(xt[i, j0 + j] + dm) / d))
            lfin[16 * j + i] = max(0, min(3, q))
    for j in range(16):
        o[j] = sc[j]
    _pack2(lfin, o, 16)
    o[80] = d16 & 0xFF
    o[81] = d16 >> 8
    o[82] = dm16 & 0xFF
    o[83] = dm16 >> 8


@_jit
def quantize_q2k(x: Any, out: Any) -> None:
    """Quantize (nb, 256) float32 ``x`` into (nb, 84) uint8 ``out`` (``quantize_row_q2_K_ref``).

    ``make_qkx2_quants(16, 3, x, |x|, ..., -0.5, 0.1, 15, use_mad=true)`` runs for the 16-element
    sub-blocks of a few super-blocks side by side (the Q4_K/Q5_K lanes kernel); an incomplete last
    group repeats the last block and drops the copies.
    """
    nb = x.shape[0]
    g = _LANES6
    dat = np.empty((2, 16, g), np.float32)  # x, weights |x|
    lq = np.empty((16, g), np.float32)
    scales = np.empty(g, np.float32)
    mins = np.empty(g, np.float32)
    for b0 in range(0, nb, g // 16):
        for k in range(g // 16):
            b = min(b0 + k, nb - 1)
            for i in range(16):
                for jj in range(16):
                    v = x[b, 16 * jj + i]
                    dat[0, i, 16 * k + jj] = v
                    dat[1, i, 16 * k + jj] = abs(v)
        _qkx2_lanes(dat, 3, np.float32(-0.5), _F01, 15, lq, scales, mins, True)
        for k in range(g // 16):
            if b0 + k < nb:
                _finish_q2k(dat[0], lq, scales, mins, 16 * k, out[b0 + k])


@_jit
def _q3_quants(x: Any, off: int, lq: Any) -> Any:
    """``make_q3_quants(16, 4, x+off, L, do_rmse=true)``: L (0..7) into ``lq[off:off+16]``, returns the scale."""
    n = 16
    mx = _F0
    amax = _F0
    for i in range(n):
        a = abs(x[off + i])
        if a > amax:
            amax = a
            mx = x[off + i]
    if amax < _EPS:
        for i in range(n):
            lq[off + i] = 0
        return _F0
    iscale = np.float32(np.float32(-4.0) / mx)
    sumlx = _F0
    suml2 = _F0
    for i in range(n):
        v = x[off + i]
        q = max(-4, min(3, nearest_int(np.float32(iscale * v))))
        lq[off + i] = q
        w = np.float32(v * v)
        fq = np.float32(q)
        sumlx = np.float32(sumlx + np.float32(np.float32(w * v) * fq))
        suml2 = np.float32(suml2 + np.float32(np.float32(w * fq) * fq))
    for _ in range(5):
        changed = 0
        for i in range(n):
            v = x[off + i]
            w = np.float32(v * v)
            fl = np.float32(lq[off + i])
            slx = np.float32(sumlx - np.float32(np.float32(w * v) * fl))
            if slx > _F0:
                sl2 = np.float32(suml2 - np.float32(np.float32(w * fl) * fl))
                nl = max(-4, min(3, nearest_int(np.float32(np.float32(v * sl2) / slx))))
                if nl != lq[off + i]:
                    fn = np.float32(nl)
                    slx = np.float32(slx + np.float32(np.float32(w * v) * fn))
                    sl2 = np.float32(sl2 + np.float32(np.float32(w * fn) * fn))
                    if sl2 > _F0 and np.float32(np.float32(slx * slx) * suml2) > np.float32(np.float32(sumlx * sumlx) * sl2):
                        lq[off + i] = nl
                        sumlx = slx
                        suml2 = sl2
                        changed += 1
        if changed == 0:
            break
    for i in range(n):
        lq[off + i] += 4
    return np.float32(sumlx / suml2) if suml2 > _F0 else _F0


@_jit
def quantize_q3k(x: Any, out: Any) -> None:
    """Quantize (nb, 256) float32 ``x`` into (nb, 110) uint8 ``out`` (``quantize_row_q3_K_ref``)."""
    nb = x.shape[0]
    lq = np.empty(256, np.int64)
    scales = np.empty(16, np.float32)
    sc = np.empty(12, np.int64)
    for b in range(nb):
        xb = x[b]
        o = out[b]
        max_scale = _F0
        amax = _F0
        for j in range(16):
            s = _q3_quants(xb, 16 * j, lq)
            scales[j] = s
            if abs(s) > amax:
                amax = abs(s)
                max_scale = s
        for k in range(12):
            sc[k] = 0
        if max_scale != _F0:
            isc = np.float32(np.float32(-32.0) / max_scale)
            for j in range(16):
                l8 = ((nearest_int(np.float32(isc * scales[j])) + 128) & 0xFF) - 128  # int8_t l = nearest_int(...)
                q = max(-32, min(31, l8)) + 32
                if j < 8:
                    sc[j] = q & 0xF
                else:
                    sc[j - 8] |= (q & 0xF) << 4
                sc[8 + j % 4] |= (q >> 4) << (2 * (j // 4))
            d16 = fp32_to_fp16(np.float32(_F1 / isc))
        else:
            d16 = 0
        d32 = fp16_to_fp32(d16)
        for j in range(16):
            lo = sc[j] & 0xF if j < 8 else sc[j - 8] >> 4
            s8 = (lo | (((sc[8 + j % 4] >> (2 * (j // 4))) & 3) << 4)) - 32
            d = np.float32(d32 * np.float32(s8))
            if d == _F0:
                continue
            for i in range(16):
                q = nearest_int(np.float32(xb[16 * j + i] / d))
                lq[16 * j + i] = max(-4, min(3, q)) + 4
        for m in range(32):
            o[m] = 0
        for j in range(256):
            if lq[j] > 3:
                o[j % 32] |= 1 << (j // 32)
                lq[j] -= 4
        _pack2(lq, o, 32)
        for k in range(12):
            o[96 + k] = sc[k]
        o[108] = d16 & 0xFF
        o[109] = d16 >> 8
