"""Importance-weighted K-quants (``llama-quantize --imatrix``), compiled with numba, byte-identical to ggml.

With an importance matrix ggml does not run the ``*_ref`` quantizers but ``quantize_row_q{2..6}_K_impl``
(``make_qkx3_quants`` / ``make_qp_quants`` / the weighted ``make_qx_quants``): a different search, so a
different file.  These are ports of those C loops, one row at a time (a row's weights are the imatrix
entry of its matrix, ``n_per_row`` floats), with the same float32 rounding rules as
:mod:`batuta_sync.convert._kquants_numba` (every int operand converted to float32 explicitly, no FMA,
sums in element order, ggml's ``nearest_int``, C's uint8/int8 wrap-around where C stores into one).

Scalar code: it runs as plain Python too (``NUMBA_DISABLE_JIT=1``, what coverage sees), at a few
hundred rows a second; compiled it is several times faster than the imatrix-free kernels need to be.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from batuta_sync.convert._kquants_numba import _jit, fp16_to_fp32, fp32_to_fp16, nearest_int

F = np.float32
_F0 = np.float32(0.0)
_F1 = np.float32(1.0)
_F2 = np.float32(2.0)
_F256 = np.float32(256.0)
_F01 = np.float32(0.1)
_EPS = np.float32(1e-15)  # GROUP_MAX_EPS
_RMIN = np.float32(-0.9)
_RDELTA = np.float32(0.05)
_FM128 = np.float32(-128.0)

BLOCK_BYTES = {"Q2_K": 84, "Q3_K": 110, "Q4_K": 144, "Q5_K": 176, "Q6_K": 210}


@_jit
def _qkx3(x: Any, off: int, n: int, nmax: int, w: Any, lq: Any, loff: int, laux: Any) -> Any:
    """``make_qkx3_quants(n, nmax, x+off, w, L+loff, &the_min, Laux, -0.9f, 0.05f, 36, false)``: (scale, the_min)."""
    mn = x[off]
    mx = x[off]
    sum_w = w[0]
    sum_x = F(sum_w * x[off])
    for i in range(1, n):
        v = x[off + i]
        if v < mn:
            mn = v
        if v > mx:
            mx = v
        sum_w = F(sum_w + w[i])
        sum_x = F(sum_x + F(w[i] * v))
    if mn > _F0:
        mn = _F0
    if mx <= mn:
        for i in range(n):
            lq[loff + i] = 0
        return _F0, F(-mn)
    fnmax = F(nmax)
    iscale = F(fnmax / F(mx - mn))
    scale = F(_F1 / iscale)
    best = _F0
    for i in range(n):
        q = max(0, min(nmax, nearest_int(F(iscale * F(x[off + i] - mn)))))
        lq[loff + i] = q
        diff = F(F(F(scale * F(q)) + mn) - x[off + i])
        best = F(best + F(w[i] * F(diff * diff)))
    for step in range(37):
        iscale = F(F(F(_RMIN + F(_RDELTA * F(step))) + fnmax) / F(mx - mn))
        sl = _F0
        sl2 = _F0
        sxl = _F0
        for i in range(n):
            q = max(0, min(nmax, nearest_int(F(iscale * F(x[off + i] - mn)))))
            laux[i] = q
            wl = F(w[i] * F(q))
            sl = F(sl + wl)
            sl2 = F(sl2 + F(wl * F(q)))
            sxl = F(sxl + F(wl * x[off + i]))
        d = F(F(sum_w * sl2) - F(sl * sl))
        if d > _F0:
            this_scale = F(F(F(sum_w * sxl) - F(sum_x * sl)) / d)
            this_min = F(F(F(sl2 * sum_x) - F(sl * sxl)) / d)
            if this_min > _F0:
                this_min = _F0
                this_scale = F(sxl / sl2)
            mad = _F0
            for i in range(n):
                diff = F(F(F(this_scale * F(laux[i])) + this_min) - x[off + i])
                mad = F(mad + F(w[i] * F(diff * diff)))
            if mad < best:
                for i in range(n):
                    lq[loff + i] = laux[i]
                best = mad
                scale = this_scale
                mn = this_min
    return scale, F(-mn)


@_jit
def _qp(x: Any, n: int, nmax: int, lq: Any, qw: Any) -> Any:
    """``make_qp_quants(n, nmax, x, L, quant_weights)``; L is uint8 (C's wrap-around kept)."""
    mx = _F0
    for i in range(n):
        mx = mx if mx > x[i] else x[i]
    if mx < _EPS:
        for i in range(n):
            lq[i] = 0
        return _F0
    fn = F(nmax)
    iscale = F(fn / mx)
    for i in range(n):
        lq[i] = nearest_int(F(iscale * x[i])) & 0xFF
    scale = F(_F1 / iscale)
    best = _F0
    for i in range(n):
        diff = F(x[i] - F(scale * F(lq[i])))
        best = F(best + F(F(qw[i] * diff) * diff))
    for s in range(-4, 5):
        if s == 0:
            continue
        iscale_is = F(F(F(_F01 * F(s)) + fn) / mx)
        scale_is = F(_F1 / iscale_is)
        mse = _F0
        for i in range(n):
            q = min(nmax, nearest_int(F(iscale_is * x[i])))
            diff = F(x[i] - F(scale_is * F(q)))
            mse = F(mse + F(F(qw[i] * diff) * diff))
        if mse < best:
            best = mse
            iscale = iscale_is
    sumlx = _F0
    suml2 = _F0
    for i in range(n):
        q = min(nmax, nearest_int(F(iscale * x[i])))
        lq[i] = q & 0xFF
        sumlx = F(sumlx + F(F(qw[i] * x[i]) * F(q)))
        suml2 = F(suml2 + F(F(qw[i] * F(q)) * F(q)))
    for _ in range(5):
        changed = 0
        for i in range(n):
            w = qw[i]
            li = F(lq[i])
            slx = F(sumlx - F(F(w * x[i]) * li))
            sl2 = F(suml2 - F(F(w * li) * li))
            if slx > _F0 and sl2 > _F0:
                new_l = min(nmax, nearest_int(F(F(x[i] * sl2) / slx)))
                if new_l != lq[i]:
                    slx = F(slx + F(F(w * x[i]) * F(new_l)))
                    sl2 = F(sl2 + F(F(w * F(new_l)) * F(new_l)))
                    if F(F(slx * slx) * suml2) > F(F(sumlx * sumlx) * sl2):
                        lq[i] = new_l & 0xFF
                        sumlx = slx
                        suml2 = sl2
                        changed += 1
        if changed == 0:
            break
    return F(sumlx / suml2) if suml2 > _F0 else _F0


@_jit
def _qxw(x: Any, off: int, n: int, nmax: int, lq: Any, loff: int, qw: Any, qoff: int) -> Any:
    """``make_qx_quants(n, nmax, x+off, L+loff, 1, qw+qoff)`` (weighted); L in [0, 2*nmax)."""
    mx = _F0
    amax = _F0
    for i in range(n):
        ax = abs(x[off + i])
        if ax > amax:
            amax = ax
            mx = x[off + i]
    if amax < _EPS:
        for i in range(n):
            lq[loff + i] = 0
        return _F0
    iscale = F(F(-nmax) / mx)
    sumlx = _F0
    suml2 = _F0
    for i in range(n):
        q = max(-nmax, min(nmax - 1, nearest_int(F(iscale * x[off + i]))))
        lq[loff + i] = q + nmax
        w = qw[qoff + i]
        sumlx = F(sumlx + F(F(w * x[off + i]) * F(q)))
        suml2 = F(suml2 + F(F(w * F(q)) * F(q)))
    scale = F(sumlx / suml2) if suml2 != _F0 else _F0
    best = F(scale * sumlx)
    fn = F(nmax)
    for s in range(-9, 10):
        if s == 0:
            continue
        iscale = F(-F(fn + F(_F01 * F(s))) / mx)
        sumlx = _F0
        suml2 = _F0
        for i in range(n):
            q = max(-nmax, min(nmax - 1, nearest_int(F(iscale * x[off + i]))))
            w = qw[qoff + i]
            sumlx = F(sumlx + F(F(w * x[off + i]) * F(q)))
            suml2 = F(suml2 + F(F(w * F(q)) * F(q)))
        if suml2 > _F0 and F(sumlx * sumlx) > F(best * suml2):
            for i in range(n):
                lq[loff + i] = nmax + max(-nmax, min(nmax - 1, nearest_int(F(iscale * x[off + i]))))
            scale = F(sumlx / suml2)
            best = F(scale * sumlx)
    return scale


@_jit
def _pack2(lq: Any, o: Any, base: int) -> None:
    """``qs[j/4 + l] = L[j+l] | L[j+l+32] << 2 | L[j+l+64] << 4 | L[j+l+96] << 6`` at ``o[base:]``."""
    for j in range(0, 256, 128):
        for i in range(32):
            o[base + j // 4 + i] = (lq[j + i] | (lq[j + i + 32] << 2) | (lq[j + i + 64] << 4) | (lq[j + i + 96] << 6)) & 0xFF


@_jit
def _sum_x2(x: Any, base: int) -> Any:
    s = _F0
    for i in range(256):
        s = F(s + F(x[base + i] * x[base + i]))
    return s


@_jit
def _q45k_row(x: Any, qw: Any, o: Any, nmax: int) -> None:
    """``quantize_row_q4_K_impl`` (nmax 15) / ``quantize_row_q5_K_impl`` (nmax 31) of one row."""
    nb = x.shape[0] // 256
    bb = 144 if nmax == 15 else 176
    lq = np.zeros(256, np.int64)
    laux = np.zeros(32, np.int64)
    ls = np.zeros(8, np.int64)
    lm = np.zeros(8, np.int64)
    w = np.zeros(32, np.float32)
    sw = np.zeros(8, np.float32)
    scales = np.zeros(8, np.float32)
    mins = np.zeros(8, np.float32)
    for i in range(nb):
        base = i * 256
        ob = i * bb
        sigma2 = F(F(_F2 * _sum_x2(x, base)) / _F256)
        for j in range(8):
            sumw = _F0
            for k in range(32):
                v = x[base + 32 * j + k]
                w[k] = F(qw[base + 32 * j + k] * np.sqrt(F(sigma2 + F(v * v))))
                sumw = F(sumw + w[k])
            sw[j] = sumw
            sj, mj = _qkx3(x, base + 32 * j, 32, nmax, w, lq, 32 * j, laux)
            scales[j] = sj
            mins[j] = mj
        d_block = _qp(scales, 8, 63, ls, sw)
        m_block = _qp(mins, 8, 63, lm, sw)
        sc = o[ob + 4: ob + 16]
        for j in range(8):
            a = ls[j] if nmax == 15 else min(63, ls[j])
            b = lm[j] if nmax == 15 else min(63, lm[j])
            if j < 4:
                sc[j] = a & 0xFF
                sc[j + 4] = b & 0xFF
            else:
                sc[j + 4] = ((a & 0xF) | ((b & 0xF) << 4)) & 0xFF
                sc[j - 4] |= ((a >> 4) << 6) & 0xFF
                sc[j] |= ((b >> 4) << 6) & 0xFF
        d16 = fp32_to_fp16(d_block)
        m16 = fp32_to_fp16(m_block)
        o[ob] = d16 & 0xFF
        o[ob + 1] = d16 >> 8
        o[ob + 2] = m16 & 0xFF
        o[ob + 3] = m16 >> 8
        dd = fp16_to_fp32(d16)
        dm = fp16_to_fp32(m16)
        for j in range(8):
            if j < 4:
                s = int(sc[j]) & 63
                m = int(sc[j + 4]) & 63
            else:
                s = (int(sc[j + 4]) & 0xF) | ((int(sc[j - 4]) >> 6) << 4)
                m = (int(sc[j + 4]) >> 4) | ((int(sc[j]) >> 6) << 4)
            d = F(dd * F(s))
            if d == _F0:
                continue
            dmj = F(dm * F(m))
            for k in range(32):
                lq[32 * j + k] = max(0, min(nmax, nearest_int(F(F(x[base + 32 * j + k] + dmj) / d))))
        if nmax == 15:
            for j in range(0, 256, 64):
                for k in range(32):
                    o[ob + 16 + j // 2 + k] = (lq[j + k] | (lq[j + k + 32] << 4)) & 0xFF
        else:
            for k in range(32):
                o[ob + 16 + k] = 0
            m1 = 1
            m2 = 2
            for n in range(0, 256, 64):
                for k in range(32):
                    l1 = lq[n + k]
                    if l1 > 15:
                        l1 -= 16
                        o[ob + 16 + k] |= m1
                    l2 = lq[n + k + 32]
                    if l2 > 15:
                        l2 -= 16
                        o[ob + 16 + k] |= m2
                    o[ob + 48 + n // 2 + k] = (l1 | (l2 << 4)) & 0xFF
                m1 <<= 2
                m2 <<= 2


@_jit
def _q6k_row(x: Any, qw: Any, o: Any) -> None:
    """``quantize_row_q6_K_impl`` of one row."""
    nb = x.shape[0] // 256
    lq = np.zeros(256, np.int64)
    scales = np.zeros(16, np.float32)
    for i in range(nb):
        base = i * 256
        ob = i * 210
        max_scale = _F0
        max_abs = _F0
        for ib in range(16):
            scale = _qxw(x, base + 16 * ib, 16, 32, lq, 16 * ib, qw, base + 16 * ib)
            scales[ib] = scale
            a = abs(scale)
            if a > max_abs:
                max_abs = a
                max_scale = scale
        if max_abs < _EPS:
            for k in range(210):
                o[ob + k] = 0
            continue
        iscale = F(_FM128 / max_scale)
        d16 = fp32_to_fp16(F(_F1 / iscale))
        o[ob + 208] = d16 & 0xFF
        o[ob + 209] = d16 >> 8
        dd = fp16_to_fp32(d16)
        for ib in range(16):
            o[ob + 192 + ib] = min(127, nearest_int(F(iscale * scales[ib]))) & 0xFF
        for j in range(16):
            s = int(o[ob + 192 + j])
            sv = s - 256 if s > 127 else s  # int8_t
            d = F(dd * F(sv))
            if d == _F0:
                continue
            for k in range(16):
                lq[16 * j + k] = max(-32, min(31, nearest_int(F(x[base + 16 * j + k] / d)))) + 32
        for j in range(0, 256, 128):
            qlo = ob + j // 2
            qho = ob + 128 + j // 4
            for k in range(32):
                q1 = lq[j + k] & 0xF
                q2 = lq[j + k + 32] & 0xF
                q3 = lq[j + k + 64] & 0xF
                q4 = lq[j + k + 96] & 0xF
                o[qlo + k] = (q1 | (q3 << 4)) & 0xFF
                o[qlo + k + 32] = (q2 | (q4 << 4)) & 0xFF
                o[qho + k] = ((lq[j + k] >> 4) | ((lq[j + k + 32] >> 4) << 2) | ((lq[j + k + 64] >> 4) << 4)
                              | ((lq[j + k + 96] >> 4) << 6)) & 0xFF


@_jit
def _q2k_row(x: Any, qw: Any, o: Any) -> None:
    """``quantize_row_q2_K_impl`` of one row."""
    nb = x.shape[0] // 256
    lq = np.zeros(256, np.int64)
    laux = np.zeros(16, np.int64)
    ls = np.zeros(16, np.int64)
    lm = np.zeros(16, np.int64)
    w = np.zeros(16, np.float32)
    sw = np.zeros(16, np.float32)
    scales = np.zeros(16, np.float32)
    mins = np.zeros(16, np.float32)
    for i in range(nb):
        base = i * 256
        ob = i * 84
        sigma2 = F(_sum_x2(x, base) / _F256)
        for j in range(16):
            sumw = _F0
            for k in range(16):
                v = x[base + 16 * j + k]
                w[k] = F(qw[base + 16 * j + k] * np.sqrt(F(sigma2 + F(v * v))))
                sumw = F(sumw + w[k])
            sw[j] = sumw
            sj, mj = _qkx3(x, base + 16 * j, 16, 3, w, lq, 16 * j, laux)
            scales[j] = sj
            mins[j] = mj
        d16 = fp32_to_fp16(_qp(scales, 16, 15, ls, sw))
        m16 = fp32_to_fp16(_qp(mins, 16, 15, lm, sw))
        o[ob + 80] = d16 & 0xFF
        o[ob + 81] = d16 >> 8
        o[ob + 82] = m16 & 0xFF
        o[ob + 83] = m16 >> 8
        dm = fp16_to_fp32(d16)
        mm = fp16_to_fp32(m16)
        for j in range(16):
            s = (ls[j] | (lm[j] << 4)) & 0xFF
            o[ob + j] = s
            d = F(dm * F(s & 0xF))
            if d == _F0:
                continue
            m = F(mm * F(s >> 4))
            for k in range(16):
                lq[16 * j + k] = max(0, min(3, nearest_int(F(F(x[base + 16 * j + k] + m) / d))))
        _pack2(lq, o, ob + 16)


@_jit
def _q3k_row(x: Any, qw: Any, o: Any) -> None:
    """``quantize_row_q3_K_impl`` of one row."""
    nb = x.shape[0] // 256
    lq = np.zeros(256, np.int64)
    ls = np.zeros(16, np.int64)
    w = np.zeros(16, np.float32)
    sw = np.zeros(16, np.float32)
    scales = np.zeros(16, np.float32)
    for i in range(nb):
        base = i * 256
        ob = i * 110
        sigma2 = F(F(_F2 * _sum_x2(x, base)) / _F256)
        for j in range(16):
            sumw = _F0
            for k in range(16):
                v = x[base + 16 * j + k]
                w[k] = F(qw[base + 16 * j + k] * np.sqrt(F(sigma2 + F(v * v))))
                sumw = F(sumw + w[k])
            sw[j] = sumw
            scales[j] = _qxw(x, base + 16 * j, 16, 4, lq, 16 * j, w, 0)
        d_block = _qxw(scales, 0, 16, 32, ls, 0, sw, 0)
        sc = o[ob + 96: ob + 108]
        for k in range(12):
            sc[k] = 0
        for j in range(16):
            lv = ls[j]
            if j < 8:
                sc[j] = lv & 0xF
            else:
                sc[j - 8] |= (lv & 0xF) << 4
            lv >>= 4
            sc[j % 4 + 8] |= (lv << (2 * (j // 4))) & 0xFF
        d16 = fp32_to_fp16(d_block)
        o[ob + 108] = d16 & 0xFF
        o[ob + 109] = d16 >> 8
        dd = fp16_to_fp32(d16)
        for j in range(16):
            if j < 8:  # noqa: SIM108 (numba mistypes the conditional expression here)
                lo = np.int64(sc[j]) & 0xF
            else:
                lo = np.int64(sc[j - 8]) >> 4
            hv = (np.int64(sc[8 + j % 4]) >> (2 * (j // 4))) & 3
            d = F(dd * F((lo | (hv << 4)) - 32))
            if d == _F0:
                continue
            for k in range(16):
                lq[16 * j + k] = max(-4, min(3, nearest_int(F(x[base + 16 * j + k] / d)))) + 4
        for k in range(32):
            o[ob + k] = 0
        m = 0
        hm = 1
        for j in range(256):
            if lq[j] > 3:
                o[ob + m] |= hm
                lq[j] -= 4
            m += 1
            if m == 32:
                m = 0
                hm <<= 1
        _pack2(lq, o, ob + 32)


# One compiled entry point per type family, so a conversion compiles only the kernels it uses
# (a Q4_K_M file: Q4_K and Q6_K) on a fresh install.

@_jit
def _rows_q45k(x: Any, qw: Any, out: Any, nmax: int) -> None:
    for r in range(x.shape[0]):
        _q45k_row(x[r], qw, out[r], nmax)


@_jit
def _rows_q6k(x: Any, qw: Any, out: Any) -> None:
    for r in range(x.shape[0]):
        _q6k_row(x[r], qw, out[r])


@_jit
def _rows_q2k(x: Any, qw: Any, out: Any) -> None:
    for r in range(x.shape[0]):
        _q2k_row(x[r], qw, out[r])


@_jit
def _rows_q3k(x: Any, qw: Any, out: Any) -> None:
    for r in range(x.shape[0]):
        _q3k_row(x[r], qw, out[r])


def quantize_weighted(x: Any, qw: Any, out: Any, kind: int) -> None:
    """Rows ``x`` (nrows, ncols) float32 with imatrix weights ``qw`` (ncols,) into ``out`` (nrows, row bytes).

    ``kind``: 2..6 for Q2_K..Q6_K."""
    if kind in (4, 5):
        _rows_q45k(x, qw, out, 15 if kind == 4 else 31)
    elif kind == 6:
        _rows_q6k(x, qw, out)
    elif kind == 2:
        _rows_q2k(x, qw, out)
    else:
        _rows_q3k(x, qw, out)


@_jit
def quantize_legacy_rows(x: Any, qw: Any, out: Any, nmax: int, with_min: bool) -> None:
    """``quantize_row_q{4,5}_{0,1}_impl`` for every row: nmax 8/16 (Q4_0/Q5_0, ``make_qx_quants``) or
    15/31 with a min (Q4_1/Q5_1, ``make_qkx3_quants``); 32-element blocks."""
    n = x.shape[1]
    nb = n // 32
    five = nmax == 16 or nmax == 31
    bb = (20 if with_min else 18) + (4 if five else 0)
    lq = np.zeros(32, np.int64)
    laux = np.zeros(32, np.int64)
    w = np.zeros(32, np.float32)
    for r in range(x.shape[0]):
        row = x[r]
        o = out[r]
        sum_x2 = _F0
        for j in range(n):
            sum_x2 = F(sum_x2 + F(row[j] * row[j]))
        sigma2 = F(sum_x2 / F(n))
        for ib in range(nb):
            base = 32 * ib
            ob = bb * ib
            for j in range(32):
                v = row[base + j]
                w[j] = F(qw[base + j] * np.sqrt(F(sigma2 + F(v * v))))
            if with_min:
                d, the_min = _qkx3(row, base, 32, nmax, w, lq, 0, laux)
                m16 = fp32_to_fp16(F(-the_min))
                o[ob + 2] = m16 & 0xFF
                o[ob + 3] = m16 >> 8
            else:
                d = _qxw(row, base, 32, nmax, lq, 0, w, 0)
            d16 = fp32_to_fp16(d)
            o[ob] = d16 & 0xFF
            o[ob + 1] = d16 >> 8
            qs = ob + (4 if with_min else 2)
            if five:
                qh = 0
                for j in range(16):
                    qh |= ((lq[j] & 0x10) >> 4) << j
                    qh |= ((lq[j + 16] & 0x10) >> 4) << (j + 16)
                for k in range(4):
                    o[qs + k] = (qh >> (8 * k)) & 0xFF
                qs += 4
            for j in range(16):
                o[qs + j] = ((lq[j] & 0xF) | ((lq[j + 16] & 0xF) << 4)) & 0xFF


_LEGACY = {"Q4_0": (8, False, 18), "Q4_1": (15, True, 20), "Q5_0": (16, False, 22), "Q5_1": (31, True, 24)}


def quantize_legacy_weighted(rows: Any, qtype: str, weights: Any) -> bytes:
    """float32 rows (2-D, row length a multiple of 32) quantized to Q4_0/Q4_1/Q5_0/Q5_1 with imatrix ``weights``."""
    nmax, with_min, bb = _LEGACY[qtype]
    x = np.ascontiguousarray(rows, dtype=np.float32)
    qw = np.ascontiguousarray(weights, dtype=np.float32)
    out = np.zeros((x.shape[0], x.shape[1] // 32 * bb), dtype=np.uint8)
    if x.shape[0]:
        with np.errstate(all="ignore"):
            quantize_legacy_rows(x, qw, out, nmax, with_min)
    return out.tobytes()


KVALUES_IQ4NL = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], dtype=np.int64)


@_jit
def _best_index(vals: Any, x: Any) -> int:
    """``best_index_int8(16, values, x)``: the nearest of the 16 non-linear levels (ties to the upper one)."""
    if x <= F(vals[0]):
        return 0
    if x >= F(vals[15]):
        return 15
    ml = 0
    mu = 15
    while mu - ml > 1:
        mav = (ml + mu) // 2
        if x < F(vals[mav]):
            mu = mav
        else:
            ml = mav
    return mu - 1 if F(x - F(vals[mu - 1])) < F(F(vals[mu]) - x) else mu


@_jit
def quantize_iq4_rows(x: Any, qw: Any, out: Any, sbs: int, weighted: bool) -> None:
    """``quantize_iq4_nl`` (super-block 32) / ``quantize_iq4_xs`` (256) of every row, ``ntry`` 7, with
    imatrix weights ``qw`` when ``weighted`` (else ``x*x``, as ggml without one)."""
    vals = KVALUES_IQ4NL
    n = x.shape[1]
    nsb = n // sbs
    nb = sbs // 32
    bb = 18 if sbs == 32 else 136
    lq = np.zeros(256, np.int64)
    w = np.zeros(32, np.float32)
    scales = np.zeros(8, np.float32)
    f2 = F(F(2.0) / F(sbs))
    for r in range(x.shape[0]):
        row = x[r]
        o = out[r]
        for ibl in range(nsb):
            base = ibl * sbs
            ob = ibl * bb
            sigma2 = _F0
            for j in range(sbs):
                sigma2 = F(sigma2 + F(row[base + j] * row[base + j]))
            sigma2 = F(sigma2 * f2)
            for k in range(bb):
                o[ob + k] = 0
            max_scale = _F0
            amax_scale = _F0
            for ib in range(nb):
                xo = base + 32 * ib
                for j in range(32):
                    v = row[xo + j]
                    w[j] = F(qw[xo + j] * np.sqrt(F(sigma2 + F(v * v)))) if weighted else F(v * v)
                amax = _F0
                mx = _F0
                for j in range(32):
                    ax = abs(row[xo + j])
                    if ax > amax:
                        amax = ax
                        mx = row[xo + j]
                if amax < _EPS:
                    scales[ib] = _F0
                    continue
                d = F(-mx / F(vals[0]))
                idd = F(_F1 / d)
                sumqx = _F0
                sumq2 = _F0
                for j in range(32):
                    li = _best_index(vals, F(idd * row[xo + j]))
                    lq[32 * ib + j] = li
                    q = F(vals[li])
                    sumqx = F(sumqx + F(F(w[j] * q) * row[xo + j]))
                    sumq2 = F(sumq2 + F(F(w[j] * q) * q))
                d = F(sumqx / sumq2) if sumq2 > _F0 else _F0
                best = F(d * sumqx)
                for itry in range(-7, 8):
                    idd = F(F(itry + vals[0]) / mx)
                    sumqx = _F0
                    sumq2 = _F0
                    for j in range(32):
                        q = F(vals[_best_index(vals, F(idd * row[xo + j]))])
                        sumqx = F(sumqx + F(F(w[j] * q) * row[xo + j]))
                        sumq2 = F(sumq2 + F(F(w[j] * q) * q))
                    if sumq2 > _F0 and F(sumqx * sumqx) > F(best * sumq2):
                        d = F(sumqx / sumq2)
                        best = F(d * sumqx)
                scales[ib] = d
                if abs(d) > amax_scale:
                    amax_scale = abs(d)
                    max_scale = d
            if nb > 1:
                d = F(-max_scale / F(32.0))
                d16 = fp32_to_fp16(d)
                o[ob] = d16 & 0xFF
                o[ob + 1] = d16 >> 8
                idd = F(_F1 / d) if d != _F0 else _F0
                sh = 0
                for ib in range(nb):
                    lv = max(-32, min(31, nearest_int(F(idd * scales[ib]))))
                    dl = F(d * F(lv))
                    idl = F(_F1 / dl) if dl != _F0 else _F0
                    for j in range(32):
                        lq[32 * ib + j] = _best_index(vals, F(idl * row[base + 32 * ib + j]))
                    lv += 32
                    if ib % 2 == 0:
                        o[ob + 4 + ib // 2] = lv & 0xF
                    else:
                        o[ob + 4 + ib // 2] |= (lv & 0xF) << 4
                    sh |= (lv >> 4) << (2 * (ib % 8))
                o[ob + 2] = sh & 0xFF
                o[ob + 3] = (sh >> 8) & 0xFF
                qs = ob + 8
            else:
                d16 = fp32_to_fp16(scales[0])
                o[ob] = d16 & 0xFF
                o[ob + 1] = d16 >> 8
                idd = F(_F1 / scales[0]) if scales[0] != _F0 else _F0
                for j in range(32):
                    lq[j] = _best_index(vals, F(idd * row[base + j]))
                qs = ob + 2
            for i in range(sbs // 32):
                for j in range(16):
                    o[qs + 16 * i + j] = (lq[32 * i + j] | (lq[32 * i + 16 + j] << 4)) & 0xFF


def quantize_iq4(rows: Any, qtype: str, weights: Any = None) -> bytes:
    """float32 rows quantized to IQ4_NL (row length a multiple of 32) or IQ4_XS (of 256), with imatrix
    ``weights`` or without (what ggml_quantize_chunk does in both cases)."""
    sbs, bb = (32, 18) if qtype == "IQ4_NL" else (256, 136)
    x = np.ascontiguousarray(rows, dtype=np.float32).reshape(-1, np.shape(rows)[-1])
    qw = np.ascontiguousarray(weights if weights is not None else np.zeros(x.shape[1]), dtype=np.float32)
    out = np.zeros((x.shape[0], x.shape[1] // sbs * bb), dtype=np.uint8)
    if x.shape[0]:
        with np.errstate(all="ignore"):
            quantize_iq4_rows(x, qw, out, sbs, weights is not None)
    return out.tobytes()


def quantize_k_weighted(rows: Any, qtype: str, weights: Any) -> bytes:
    """float32 rows (2-D, row length a multiple of 256) quantized to ``qtype`` with imatrix ``weights``."""
    x = np.ascontiguousarray(rows, dtype=np.float32)
    qw = np.ascontiguousarray(weights, dtype=np.float32)
    out = np.zeros((x.shape[0], x.shape[1] // 256 * BLOCK_BYTES[qtype]), dtype=np.uint8)
    if x.shape[0]:
        with np.errstate(all="ignore"):
            quantize_weighted(x, qw, out, int(qtype[1]))
    return out.tobytes()
