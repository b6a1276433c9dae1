"""Q4_K, Q5_K and Q6_K quantization (compiled kernels, or vectorised numpy), byte-identical to ggml.

gguf-py can quantize F16/BF16/Q8_0/Q4_0/Q5_0/Q5_1 exactly like ggml but has no K-quant
quantizer, so these are ours.  They reproduce ``quantize_row_q{4,5,6}_K_ref`` (what
``llama-quantize`` runs when no importance matrix is given) bit for bit:

* everything is float32, every operation is rounded to float32 exactly as the C code
  (compiled without FMA) rounds it;
* sums are accumulated sequentially in element order: the data is laid out
  ``(elements, sub_blocks)`` so ``np.add.reduce(axis=0)`` adds row after row, the same
  order as the C loop (numpy's pairwise summation only applies along a contiguous axis);
* ``nearest_int`` is ggml's own bit trick (``_nint``: round-half-to-even like ``np.rint`` for
  |v| <= 2**22, and the same wrapped integers as C beyond that, for inf and NaN); fp16 conversion is IEEE
  round-to-nearest-even (``astype(float16)``), ties in max searches keep the first hit.

The search loops are vectorised across sub-blocks; work is done in chunks of a few
hundred blocks so the temporaries stay in the CPU cache.

When numba is importable, :mod:`batuta_sync.convert._kquants_numba` (a compiled port of the same
C loops, cached on disk) does the work instead: 3-4x ggml's single-thread speed where this numpy
path reaches 0.6-0.75x (``tests/bench/bench_kquants.py``), same bytes.  It is imported lazily
(never at CLI start-up): inside ``expected_work`` (a conversion announcing its whole K-quant work)
when that work is at least ``_JIT_MIN_TOTAL_BLOCKS`` super-blocks, otherwise on the first call of at
least ``_JIT_MIN_BLOCKS``; once loaded it serves every size.  ``BATUTA_KQUANTS_BACKEND=numpy|numba|auto``
forces a backend (``auto``: numba when available).  Any failure to import or compile it falls back to
numpy for the rest of the process.  Costs: the first compile takes ~5 s once per install (then numba's
import and the on-disk cache take ~0.4 s of CPU per process, SciPy hidden: ``_numba_env``), and numba +
LLVM add ~110 MB RSS per process, independent of the model.
The kernels release the GIL, so threads scale too.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

QK_K = 256
BLOCK_BYTES = {"Q2_K": 84, "Q3_K": 110, "Q4_K": 144, "Q5_K": 176, "Q6_K": 210}
_CHUNK_BLOCKS = 1024  # super-blocks per chunk (256K floats): big enough to amortise numpy call overhead

# numba's import + loading the cached kernels take ~0.4 s of CPU in a fresh process (SciPy hidden,
# see _numba_env).  A single call is worth it from about a thousand super-blocks; once loaded, the
# kernels serve any size.
_JIT_MIN_BLOCKS = 1024
# A conversion that announces its whole K-quant work (``expected_work``) stays on numpy below this
# many super-blocks: numpy costs ~25 us more per super-block than the kernels (Q4_K), so the kernels
# pay for their start-up from ~16K super-blocks (4M values).
_JIT_MIN_TOTAL_BLOCKS = 16384
_expected: int | None = None  # super-blocks the running conversion will quantize, when it said so
_BACKEND_ENV = "BATUTA_KQUANTS_BACKEND"

F32 = np.float32
NDArray = Any
_jit_module: Any = None  # None: not tried yet; False: unavailable in this process


def _jit() -> Any:
    """The numba kernels module, or None when numba is missing or broken here."""
    global _jit_module
    if _jit_module is None:
        try:
            import importlib

            mod = importlib.import_module("batuta_sync.convert._kquants_numba")
            _jit_module = mod if mod.COMPILED else False
        except Exception:  # ImportError, or numba/llvmlite failing to initialise
            _jit_module = False
    return _jit_module or None


@contextmanager
def expected_work(blocks: int) -> Iterator[None]:
    """Within this block a conversion will K-quantize about ``blocks`` super-blocks in all: the backend
    is chosen for that total (numpy below ``_JIT_MIN_TOTAL_BLOCKS``) instead of per call."""
    global _expected
    old, _expected = _expected, blocks
    try:
        yield
    finally:
        _expected = old


def k_blocks(tensors: Iterable[tuple[tuple[int, ...], str]]) -> int:
    """Super-blocks of K-quant output among (numpy shape, ggml type) pairs (for ``expected_work``)."""
    return sum(math.prod(shape) // QK_K for shape, qtype in tensors if qtype in BLOCK_BYTES)


def _use_jit(nb: int, backend: str | None) -> bool:
    choice = backend or os.environ.get(_BACKEND_ENV, "auto")
    if choice == "numpy":
        return False
    if choice == "numba":
        return _jit() is not None
    if _jit_module:
        return True  # loaded already: the kernels serve any size
    small = nb < _JIT_MIN_BLOCKS if _expected is None else _expected < _JIT_MIN_TOTAL_BLOCKS
    return not small and _jit() is not None


def backend_name(qtype: str, nblocks: int = _JIT_MIN_BLOCKS) -> str:
    """Which backend ``quantize_k`` would use for ``nblocks`` super-blocks of ``qtype`` ("numba"/"numpy")."""
    return "numba" if qtype in BLOCK_BYTES and _use_jit(nblocks, None) else "numpy"


def _quantize_jit(flat: NDArray, qtype: str, out: NDArray) -> bool:
    """Quantize with the compiled kernels; False (and numpy from now on) if they cannot run."""
    global _jit_module
    mod = _jit()
    flat = flat.view()
    flat.flags.writeable = False  # one compiled specialisation for writable and read-only (mmap) input
    try:
        if qtype == "Q6_K":
            mod.quantize_q6k(flat, out)
        elif qtype == "Q2_K":
            mod.quantize_q2k(flat, out)
        elif qtype == "Q3_K":
            mod.quantize_q3k(flat, out)
        else:
            mod.quantize_q45k(flat, out, 15 if qtype == "Q4_K" else 31)
    except Exception:  # a compilation failure (numba/LLVM problem): the numpy path gives the same bytes
        _jit_module = False
        return False
    return True


_MAGIC = np.float32(12582912.0)  # 1.5 * 2**23


def _nint(a: np.ndarray) -> np.ndarray:
    """ggml's ``nearest_int`` on a float32 array, in place, results as float32.

    C adds 1.5*2**23 and reads the low 23 mantissa bits minus 2**22.  Setting the exponent bits of
    2**23 on those mantissa bits and subtracting 1.5*2**23 gives that integer exactly as a float.
    """
    np.add(a, _MAGIC, out=a)
    bits = a.view(np.int32)
    np.bitwise_and(bits, 0x7FFFFF, out=bits)
    np.bitwise_or(bits, 0x4B000000, out=bits)
    np.subtract(a, _MAGIC, out=a)
    return a


def _reduce(a: NDArray) -> NDArray:
    """Sequential (C-order) sum over axis 0 of a (n, S) float32 array."""
    return np.add.reduce(a, axis=0, dtype=np.float32)


def _f16(a: NDArray) -> NDArray:
    """float32 -> nearest fp16 value (as float32) and its raw bits."""
    with np.errstate(over="ignore"):
        h = np.asarray(a, dtype=np.float32).astype(np.float16)
    return h.astype(np.float32), h.view(np.uint16)


def _qkx2(x: NDArray, w: NDArray, nmax: int, rmin: float, rdelta: float, nstep: int,
          use_mad: bool = False) -> tuple[NDArray, NDArray, NDArray]:
    """``make_qkx2_quants`` for every column of ``x`` (shape (n, S)); returns (L uint8, scale, the_min).

    ``use_mad``: the error is sum(w*|diff|) (Q2_K) instead of sum(w*diff^2) (Q4_K/Q5_K)."""
    s = x.shape[1]
    mn = x.min(axis=0)
    mx = x.max(axis=0)
    sum_w = _reduce(w)
    sum_x = _reduce(w * x)
    np.minimum(mn, F32(0), out=mn)
    flat = mx == mn
    valid = ~flat
    fnmax = F32(nmax)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rng = mx - mn
        iscale = fnmax / rng
        scale = F32(1) / iscale
        t = np.empty_like(x)
        lq = np.empty_like(x)
        np.subtract(x, mn, out=t)  # x - min (min is updated below, so recomputed then)
        np.multiply(t, iscale, out=lq)
        _nint(lq)
        np.clip(lq, 0, fnmax, out=lq)
        best_l = lq.copy()
        diff = scale * lq
        diff += mn
        diff -= x
        _err(diff, use_mad)
        diff *= w
        best_error = _reduce(diff)
        wl = np.empty_like(x)
        # Instead of copying L on every improvement, remember the winning (iscale, min) per column
        # and recompute L once at the end with the very same float operations.
        best_is = np.zeros(s, dtype=np.float32)
        best_mn = np.zeros(s, dtype=np.float32)
        won = np.zeros(s, dtype=bool)
        xm = x - mn  # x - min, kept up to date for the columns whose min changes
        for step in range(nstep + 1):
            iscale = (F32(rmin) + F32(rdelta) * F32(step) + fnmax) / (mx - mn)
            np.multiply(xm, iscale, out=lq)
            _nint(lq)
            np.clip(lq, 0, fnmax, out=lq)
            np.multiply(w, lq, out=wl)
            sum_l = _reduce(wl)
            np.multiply(wl, lq, out=t)
            sum_l2 = _reduce(t)
            np.multiply(wl, x, out=t)
            sum_xl = _reduce(t)
            d = sum_w * sum_l2 - sum_l * sum_l
            this_scale = (sum_w * sum_xl - sum_x * sum_l) / d
            this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d
            pos = this_min > 0
            if pos.any():
                this_min = np.where(pos, F32(0), this_min)
                this_scale = np.where(pos, sum_xl / sum_l2, this_scale)
            np.multiply(lq, this_scale, out=t)
            t += this_min
            t -= x
            _err(t, use_mad)
            t *= w
            cur_error = _reduce(t)
            upd = (d > 0) & (cur_error < best_error) & valid
            if upd.any():
                best_is[upd] = iscale[upd]
                best_mn[upd] = mn[upd]
                won |= upd
                best_error = np.where(upd, cur_error, best_error)
                scale = np.where(upd, this_scale, scale)
                mn = np.where(upd, this_min, mn)
                cols = np.nonzero(upd)[0]
                if 4 * cols.size > s:
                    np.subtract(x, mn, out=xm)
                else:
                    xm[:, cols] = x[:, cols] - mn[cols]
        if won.any():
            cols = np.nonzero(won)[0]
            sub = x[:, cols] - best_mn[cols]
            sub *= best_is[cols]
            _nint(sub)
            np.clip(sub, 0, fnmax, out=sub)
            best_l[:, cols] = sub
    if flat.any():
        best_l[:, flat] = 0
        scale = np.where(flat, F32(0), scale)
    return best_l.astype(np.uint8), scale.astype(np.float32), (-mn).astype(np.float32)


def _err(d: NDArray, use_mad: bool) -> None:
    """In place: |d| (mean absolute deviation) or d*d."""
    if use_mad:
        np.abs(d, out=d)
    else:
        d *= d


def _nearest_u8(v: NDArray) -> NDArray:
    """``(uint8_t) nearest_int(v)`` (wraps like the C assignment)."""
    return (_nint(np.asarray(v, dtype=np.float32)).astype(np.int64) & 0xFF).astype(np.uint8)


def _q45k_chunk(xb: NDArray, nmax: int) -> NDArray:
    """Quantize (B, 256) float32 blocks to Q4_K (nmax 15) or Q5_K (nmax 31) bytes."""
    nb = xb.shape[0]
    x = np.ascontiguousarray(xb.reshape(nb * 8, 32).T)  # (32, S) element-major
    sum_x2 = _reduce(x * x)
    av_x = np.sqrt(sum_x2 / F32(32))
    w = np.abs(x)
    w += av_x
    if nmax == 15:
        lq, scales, mins = _qkx2(x, w, 15, -1.0, 0.1, 20)
    else:
        lq, scales, mins = _qkx2(x, w, 31, -0.5, 0.1, 15)
    scales = scales.reshape(nb, 8)
    mins = mins.reshape(nb, 8)
    max_scale = np.fmax(np.fmax.reduce(scales, axis=1), F32(0))  # C's `if (v > max)` skips NaN
    max_min = np.fmax(np.fmax.reduce(mins, axis=1), F32(0))
    with np.errstate(divide="ignore"):
        inv_scale = np.where(max_scale > 0, F32(63) / max_scale, F32(0)).astype(np.float32)
        inv_min = np.where(max_min > 0, F32(63) / max_min, F32(0)).astype(np.float32)
    ls = np.minimum(_nearest_u8(inv_scale[:, None] * scales), 63).astype(np.uint8)
    lm = np.minimum(_nearest_u8(inv_min[:, None] * mins), 63).astype(np.uint8)
    d32, d16 = _f16(max_scale / F32(63))
    dm32, dm16 = _f16(max_min / F32(63))
    dsub = (d32[:, None] * ls.astype(np.float32)).reshape(-1)  # (S,)
    dmsub = (dm32[:, None] * lm.astype(np.float32)).reshape(-1)
    nz = dsub != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        requant = _nint((x + dmsub) / dsub)
    np.clip(requant, 0, nmax, out=requant)
    lq = np.where(nz, requant, lq).astype(np.uint8)
    lblk = np.ascontiguousarray(lq.T).reshape(nb, 4, 2, 32)  # per 64-chunk: [low 32 | high 32]

    sc = np.zeros((nb, 12), dtype=np.uint8)
    sc[:, 0:4] = ls[:, 0:4]
    sc[:, 4:8] = lm[:, 0:4]
    sc[:, 8:12] = (ls[:, 4:8] & 0xF) | ((lm[:, 4:8] & 0xF) << 4)
    sc[:, 0:4] |= (ls[:, 4:8] >> 4) << 6
    sc[:, 4:8] |= (lm[:, 4:8] >> 4) << 6

    lo, hi = lblk[:, :, 0, :], lblk[:, :, 1, :]
    qs = ((lo & 0xF) | ((hi & 0xF) << 4)).reshape(nb, 128)
    head = np.empty((nb, 4), dtype=np.uint8)
    head.view("<u2")[:, 0] = d16
    head.view("<u2")[:, 1] = dm16
    if nmax == 15:
        return np.concatenate([head, sc, qs], axis=1)
    shift = (2 * np.arange(4, dtype=np.uint8))[None, :, None]
    qh = (((lo >> 4) & 1) << shift) | (((hi >> 4) & 1) << (shift + 1))
    qh = np.bitwise_or.reduce(qh, axis=1).astype(np.uint8)  # (nb, 32)
    return np.concatenate([head, sc, qh, qs], axis=1)


def _qx(x: NDArray, nmax: int) -> tuple[NDArray, NDArray]:
    """``make_qx_quants(n, nmax, x, L, rmse_type=1, NULL)`` per column of x (n, S); L is int8 in [0, 2*nmax)."""
    s = x.shape[1]
    amax = np.zeros(s, dtype=np.float32)
    mx = np.zeros(s, dtype=np.float32)
    for i in range(x.shape[0]):  # C: first element with the largest |x| wins
        row = x[i]
        upd = np.abs(row) > amax
        np.copyto(amax, np.abs(row), where=upd)
        np.copyto(mx, row, where=upd)
    zero = amax < F32(1e-15)
    fn = F32(nmax)
    w = x * x
    wx = w * x
    lq = np.empty_like(x)
    t = np.empty_like(x)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        iscale = -fn / mx
        np.multiply(x, iscale, out=lq)
        _nint(lq)
        np.clip(lq, -fn, fn - 1, out=lq)
        best_l = lq.copy()
        np.multiply(wx, lq, out=t)
        sumlx = _reduce(t)
        np.multiply(w, lq, out=t)
        t *= lq
        suml2 = _reduce(t)
        scale = np.where(suml2 != 0, sumlx / suml2, F32(0)).astype(np.float32)
        best = scale * sumlx
        best_is = np.zeros(s, dtype=np.float32)
        won = np.zeros(s, dtype=bool)
        for step in range(-9, 10):
            if step == 0:
                continue
            iscale = -(fn + F32(0.1) * F32(step)) / mx
            np.multiply(x, iscale, out=lq)
            _nint(lq)
            np.clip(lq, -fn, fn - 1, out=lq)
            np.multiply(wx, lq, out=t)
            sumlx = _reduce(t)
            np.multiply(w, lq, out=t)
            t *= lq
            suml2 = _reduce(t)
            upd = (suml2 > 0) & (sumlx * sumlx > best * suml2) & ~zero
            if upd.any():
                best_is[upd] = iscale[upd]
                won |= upd
                new_scale = sumlx / suml2
                scale = np.where(upd, new_scale, scale)
                best = np.where(upd, new_scale * sumlx, best)
        if won.any():
            cols = np.nonzero(won)[0]
            sub = x[:, cols] * best_is[cols]
            _nint(sub)
            np.clip(sub, -fn, fn - 1, out=sub)
            best_l[:, cols] = sub
    best_l += fn
    if zero.any():
        best_l[:, zero] = 0
        scale = np.where(zero, F32(0), scale)
    return best_l.astype(np.int8), scale.astype(np.float32)


def _q6k_chunk(xb: NDArray) -> NDArray:
    nb = xb.shape[0]
    x = np.ascontiguousarray(xb.reshape(nb * 16, 16).T)  # (16, S)
    lq, scales = _qx(x, 32)
    scales = scales.reshape(nb, 16)
    abs_sc = np.abs(scales)
    abs_sc[np.isnan(abs_sc)] = 0  # C's `if (abs > max_abs)` never picks a NaN
    aidx = np.argmax(abs_sc, axis=1)  # first of the largest, like C
    max_abs = abs_sc[np.arange(nb), aidx]
    max_scale = np.where(max_abs > 0, scales[np.arange(nb), aidx], F32(0))
    zero_blk = max_abs < F32(1e-15)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        iscale = (F32(-128) / max_scale).astype(np.float32)
        d32, d16 = _f16(F32(1) / iscale)
        sc = np.minimum(_nint(iscale[:, None] * scales), 127).astype(np.int64)
    sc = np.where(zero_blk[:, None], 0, sc & 0xFF).astype(np.uint8).view(np.int8)  # C stores it in an int8
    dsub = (d32[:, None] * sc.astype(np.float32)).reshape(-1)
    nz = (dsub != 0) & np.repeat(~zero_blk, 16)
    with np.errstate(divide="ignore", invalid="ignore"):
        req = _nint(x / dsub)
    np.clip(req, -32, 31, out=req)
    req += 32
    lq = np.where(nz, req, lq).astype(np.uint8)
    lblk = np.ascontiguousarray(lq.T).reshape(nb, 2, 4, 32)
    q = [lblk[:, :, k, :] for k in range(4)]
    ql = np.concatenate([(q[0] & 0xF) | ((q[2] & 0xF) << 4), (q[1] & 0xF) | ((q[3] & 0xF) << 4)], axis=2)
    qh = (q[0] >> 4) | ((q[1] >> 4) << 2) | ((q[2] >> 4) << 4) | ((q[3] >> 4) << 6)
    d16 = np.where(zero_blk, np.uint16(0), d16).astype("<u2")
    out = np.concatenate(
        [ql.reshape(nb, 128).astype(np.uint8), qh.reshape(nb, 64).astype(np.uint8), sc.view(np.uint8), d16.view(np.uint8).reshape(nb, 2)],
        axis=1,
    )
    out[zero_blk] = 0
    return out


def _pack2(lq: NDArray, nb: int) -> NDArray:
    """2-bit values (nb*256, element order) -> ``qs[j/4 + l] = L[j+l] | L[j+l+32]<<2 | ...`` (nb, 64)."""
    q = lq.reshape(nb, 2, 4, 32).astype(np.uint8)
    return (q[:, :, 0] | (q[:, :, 1] << 2) | (q[:, :, 2] << 4) | (q[:, :, 3] << 6)).reshape(nb, 64)


def _q2k_chunk(xb: NDArray) -> NDArray:
    """Quantize (B, 256) float32 blocks to Q2_K bytes (``quantize_row_q2_K_ref``)."""
    nb = xb.shape[0]
    x = np.ascontiguousarray(xb.reshape(nb * 16, 16).T)  # (16, S) element-major
    lq, scales, mins = _qkx2(x, np.abs(x), 3, -0.5, 0.1, 15, use_mad=True)
    scales = scales.reshape(nb, 16)
    mins = mins.reshape(nb, 16)
    max_scale = np.fmax(np.fmax.reduce(scales, axis=1), F32(0))
    max_min = np.fmax(np.fmax.reduce(mins, axis=1), F32(0))
    has_s = max_scale > 0
    has_m = max_min > 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ls = np.where(has_s[:, None], _nint((F32(15) / max_scale)[:, None] * scales).astype(np.int64), 0)
        lm = np.where(has_m[:, None], _nint((F32(15) / max_min)[:, None] * mins).astype(np.int64), 0)
    sc = ((ls & 0xFF) | (lm << 4)) & 0xFF
    d32, d16 = _f16(np.where(has_s, max_scale / F32(15), F32(0)))
    dm32, dm16 = _f16(np.where(has_m, max_min / F32(15), F32(0)))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        dsub = (d32[:, None] * (sc & 0xF).astype(np.float32)).reshape(-1)
        dmsub = (dm32[:, None] * (sc >> 4).astype(np.float32)).reshape(-1)
        req = _nint((x + dmsub) / dsub)
    np.clip(req, 0, 3, out=req)
    lq = np.where(dsub != 0, req, lq)
    head = np.empty((nb, 4), dtype=np.uint8)
    head.view("<u2")[:, 0] = d16
    head.view("<u2")[:, 1] = dm16
    return np.concatenate([sc.astype(np.uint8), _pack2(np.ascontiguousarray(lq.T), nb), head], axis=1)


def _q3(x: NDArray) -> tuple[NDArray, NDArray]:
    """``make_q3_quants(n, 4, x, L, do_rmse=true)`` per column of x (n, S); L (float, 0..7) and the scales."""
    n, s = x.shape
    amax = np.zeros(s, dtype=np.float32)
    mx = np.zeros(s, dtype=np.float32)
    for i in range(n):  # C: first element with the largest |x| wins
        upd = np.abs(x[i]) > amax
        np.copyto(amax, np.abs(x[i]), where=upd)
        np.copyto(mx, x[i], where=upd)
    zero = amax < F32(1e-15)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        w = x * x
        wx = w * x
        iscale = F32(-4) / mx
        lq = _nint(x * iscale)
        np.clip(lq, -4, 3, out=lq)
        sumlx = _reduce(wx * lq)
        suml2 = _reduce(w * lq * lq)
        running = ~zero
        for _ in range(5):
            changed = np.zeros(s, dtype=bool)
            for i in range(n):
                li = lq[i]
                slx = sumlx - wx[i] * li
                sl2 = suml2 - w[i] * li * li
                new_l = _nint(x[i] * sl2 / slx)
                np.clip(new_l, -4, 3, out=new_l)
                slx_n = slx + wx[i] * new_l
                sl2_n = sl2 + w[i] * new_l * new_l
                acc = running & (slx > 0) & (new_l != li) & (sl2_n > 0) & (slx_n * slx_n * suml2 > sumlx * sumlx * sl2_n)
                if acc.any():
                    lq[i] = np.where(acc, new_l, li)
                    sumlx = np.where(acc, slx_n, sumlx)
                    suml2 = np.where(acc, sl2_n, suml2)
                    changed |= acc
            running &= changed
            if not running.any():
                break
        scale = np.where(suml2 > 0, sumlx / suml2, F32(0)).astype(np.float32)
    lq += 4
    lq[:, zero] = 0
    return lq, np.where(zero, F32(0), scale).astype(np.float32)


def _q3k_chunk(xb: NDArray) -> NDArray:
    """Quantize (B, 256) float32 blocks to Q3_K bytes (``quantize_row_q3_K_ref``)."""
    nb = xb.shape[0]
    x = np.ascontiguousarray(xb.reshape(nb * 16, 16).T)  # (16, S)
    lq, scales = _q3(x)
    scales = scales.reshape(nb, 16)
    abs_sc = np.abs(scales)
    abs_sc[np.isnan(abs_sc)] = 0
    aidx = np.argmax(abs_sc, axis=1)
    rows = np.arange(nb)
    max_scale = np.where(abs_sc[rows, aidx] > 0, scales[rows, aidx], F32(0))
    has = max_scale != 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        iscale = (F32(-32) / max_scale).astype(np.float32)
        l8 = ((_nint(iscale[:, None] * scales).astype(np.int64) + 128) & 0xFF) - 128  # C: int8_t l = nearest_int(...)
        d32, d16 = _f16(np.where(has, F32(1) / iscale, F32(0)))
    lsc = np.where(has[:, None], np.clip(l8, -32, 31) + 32, 0)  # (nb, 16), 0..63
    sc = np.zeros((nb, 12), dtype=np.int64)
    sc[:, 0:8] = (lsc[:, 0:8] & 0xF) | ((lsc[:, 8:16] & 0xF) << 4)
    hi = lsc >> 4
    for j in range(16):
        sc[:, 8 + j % 4] |= hi[:, j] << (2 * (j // 4))
    scd = np.where(has[:, None], lsc - 32, -32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        dsub = (d32[:, None] * scd.astype(np.float32)).reshape(-1)
        req = _nint(x / dsub)
    np.clip(req, -4, 3, out=req)
    req += 4
    lq = np.ascontiguousarray(np.where(dsub != 0, req, lq).T).reshape(nb, 256).astype(np.uint8)
    high = lq > 3
    hbits = high.reshape(nb, 8, 32).astype(np.uint8) << np.arange(8, dtype=np.uint8)[None, :, None]
    hmask = np.bitwise_or.reduce(hbits, axis=1).astype(np.uint8)
    lq = np.where(high, lq - 4, lq)
    head = np.empty((nb, 2), dtype=np.uint8)
    head.view("<u2")[:, 0] = d16
    return np.concatenate([hmask, _pack2(lq, nb), sc.astype(np.uint8), head], axis=1)


# the K-quant types each quantization compiles kernels for (llama-quantize's mixtures)
_FAMILIES = {"Q2_K": ("Q2_K", "Q3_K", "Q4_K", "Q6_K"), "Q3_K_S": ("Q3_K", "Q6_K"), "Q3_K_M": ("Q3_K", "Q4_K", "Q5_K", "Q6_K"),
             "Q3_K_L": ("Q3_K", "Q5_K", "Q6_K"), "Q4_K_S": ("Q4_K", "Q5_K", "Q6_K"), "Q4_K_M": ("Q4_K", "Q6_K"),
             "Q5_K_S": ("Q5_K", "Q6_K"), "Q5_K_M": ("Q5_K", "Q6_K"), "Q6_K": ("Q6_K",)}


def families(quantization: str | None) -> tuple[str, ...]:
    """The K-quant kernels a conversion to ``quantization`` uses (empty: none)."""
    return _FAMILIES.get((quantization or "").upper(), ())


def warm_up(qtypes: Iterable[str]) -> bool:
    """Compile (first run) or load (cached) the kernels of ``qtypes`` now, on one super-block each,
    so a conversion that follows finds them ready; apply runs this in the background while it pulls
    (``core/steps.prewarm``).  False when the kernels are not available here (numpy serves)."""
    if os.environ.get(_BACKEND_ENV, "auto") == "numpy" or _jit() is None:
        return False
    x = np.linspace(-1.0, 1.0, QK_K, dtype=np.float32).reshape(1, QK_K)
    for qtype in qtypes:
        if qtype in BLOCK_BYTES and not _quantize_jit(x, qtype, np.empty((1, BLOCK_BYTES[qtype]), dtype=np.uint8)):
            return False
    return True


def quantize_k(data: NDArray, qtype: str, *, backend: str | None = None) -> NDArray:
    """Quantize a float array whose last dimension is a multiple of 256.

    Returns uint8 of shape ``(*rows, row_bytes)`` (the layout gguf-py uses for quantized data).
    ``backend`` ("numpy" / "numba" / "auto") overrides ``$BATUTA_KQUANTS_BACKEND``.
    """
    if qtype not in BLOCK_BYTES:
        raise ValueError(f"not a K-quant type: {qtype}")
    arr = np.asarray(data, dtype=np.float32)
    if arr.ndim == 0 or arr.shape[-1] % QK_K:
        raise ValueError(f"row length {arr.shape[-1] if arr.ndim else 0} is not a multiple of {QK_K}")
    rows = arr.shape[:-1]
    flat = arr.reshape(-1, QK_K)
    nb = flat.shape[0]
    bb = BLOCK_BYTES[qtype]
    out = np.empty((nb, bb), dtype=np.uint8)
    if nb and _use_jit(nb, backend) and _quantize_jit(np.ascontiguousarray(flat), qtype, out):
        return out.reshape(*rows, (arr.shape[-1] // QK_K) * bb)
    for start in range(0, nb, _CHUNK_BLOCKS):
        xb = np.ascontiguousarray(flat[start : start + _CHUNK_BLOCKS])
        if qtype == "Q2_K":
            out[start : start + len(xb)] = _q2k_chunk(xb)
        elif qtype == "Q3_K":
            out[start : start + len(xb)] = _q3k_chunk(xb)
        elif qtype == "Q4_K":
            out[start : start + len(xb)] = _q45k_chunk(xb, 15)
        elif qtype == "Q5_K":
            out[start : start + len(xb)] = _q45k_chunk(xb, 31)
        else:
            out[start : start + len(xb)] = _q6k_chunk(xb)
    return out.reshape(*rows, (arr.shape[-1] // QK_K) * bb)
