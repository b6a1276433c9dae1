"""Micro-benchmark: our K-quant quantizers against ggml's own reference quantizer, single thread.

    python tests/bench/bench_kquants.py [--mvalues 8] [--rounds 5] [--types Q4_K,Q5_K,Q6_K] [--backend auto|numpy|numba]

Peer: ``ggml_quantize_chunk`` from the xllamacpp wheel (a real llama.cpp build; the routine
``llama_model_quantize`` runs per row chunk, here on one thread), called through ctypes in this
same process.  For each type the two quantizers run alternately on the same data (normal
weights scaled like an LLM's, a few large outliers, some all-zero rows), ``--rounds`` times; the
script prints best-of and median wall times and the ratio peer_time / our_time (>= 1 means we are
faster) and checks that the bytes are identical every round.  The cold first call of our
quantizer (JIT compile or cache load, if the numba backend is used) is reported separately and
not counted in the rounds.  Issue 6 target: ratio >= 0.8 at the same thread count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def make_data(mvalues: float, seed: int = 0):  # type: ignore[no-untyped-def]
    import numpy as np

    rng = np.random.default_rng(seed)
    cols = 4096
    rows = max(1, int(mvalues * 1e6) // cols)
    x = (0.02 * rng.standard_normal((rows, cols))).astype(np.float32)
    n_out = max(1, x.size // 5000)  # ~0.02 % outliers, as in real checkpoints
    idx = rng.integers(0, x.size, n_out)
    x.reshape(-1)[idx] = (rng.standard_normal(n_out) * 2.0).astype(np.float32)
    x[: max(1, rows // 200)] *= 0  # a few dead rows
    return x


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mvalues", type=float, default=8.0, help="million float32 values per type (default 8)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--types", default="Q4_K,Q5_K,Q6_K")
    ap.add_argument("--backend", default="auto", choices=["auto", "numpy", "numba"],
                    help="force our backend (sets BATUTA_KQUANTS_BACKEND)")
    args = ap.parse_args()
    os.environ["BATUTA_KQUANTS_BACKEND"] = args.backend

    from tests.convert._llamacpp import ggml_quantize, lib

    if lib() is None:
        print("xllamacpp is not installed: no peer to compare with (pip install xllamacpp)")
        return 2
    import batuta_sync.convert.kquants as kq

    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    x = make_data(args.mvalues)
    print(f"data: {x.shape[0]}x{x.shape[1]} float32 ({x.nbytes / 1e6:.0f} MB); load average {' '.join(load)}")
    print(f"{'type':5} {'backend':7} {'cold s':>7} {'ours best':>10} {'ggml best':>10} {'ratio best':>10} "
          f"{'ours med':>9} {'ggml med':>9} {'ratio med':>9}  equal")
    worst = float("inf")
    for qtype in args.types.split(","):
        t0 = time.perf_counter()
        kq.quantize_k(x[:4], qtype)  # cold: import/JIT/cache load on a tiny input
        cold = time.perf_counter() - t0
        ours: list[float] = []
        peer: list[float] = []
        equal = True
        for r in range(args.rounds):
            order = (0, 1) if r % 2 == 0 else (1, 0)
            for who in order:
                t0 = time.perf_counter()
                out = kq.quantize_k(x, qtype) if who == 0 else ggml_quantize(x, qtype)
                dt = time.perf_counter() - t0
                (ours if who == 0 else peer).append(dt)
                if who == 0:
                    mine = out
                else:
                    ref = out
            equal = equal and mine.tobytes() == ref.tobytes()
        backend = getattr(kq, "backend_name", lambda q: "numpy")(qtype)
        rb = min(peer) / min(ours)
        rm = statistics.median(peer) / statistics.median(ours)
        worst = min(worst, rb, rm)
        print(f"{qtype:5} {backend:7} {cold:7.2f} {min(ours):10.3f} {min(peer):10.3f} {rb:10.2f} "
              f"{statistics.median(ours):9.3f} {statistics.median(peer):9.3f} {rm:9.2f}  {equal}")
        if not equal:
            print(f"!! {qtype}: output differs from ggml")
            return 1
    with open("/proc/loadavg") as f:
        print(f"load average after: {' '.join(f.read().split()[:3])}; worst ratio {worst:.2f} (target >= 0.8)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
