"""Micro-benchmark: our K-quant quantizers against ggml's own reference quantizer, single thread.

    python tests/bench/bench_kquants.py [--mvalues 8] [--rounds 5] [--types Q4_K,Q5_K,Q6_K]
                                        [--backend auto|numpy|numba] [--no-numpy] [--baseline GIT_REV]

Peer: ``ggml_quantize_chunk`` from the xllamacpp wheel (a real llama.cpp build; the routine
``llama_model_quantize`` runs per row chunk, here on one thread), called through ctypes in this
same process.  For each type the two quantizers run alternately on the same data (normal
weights scaled like an LLM's, a few large outliers, some all-zero rows), ``--rounds`` times; the
script prints best-of and median wall times and the ratio peer_time / our_time (>= 1 means we are
faster) and checks that the bytes are identical every round.  The numpy fallback (and, with
``--baseline REV``, kquants.py as of an older commit) run in the same rotation, so before/after
figures come from the same run under the same load.  The cold first call of our
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
                    help="our backend under test (sets BATUTA_KQUANTS_BACKEND; auto = numba when installed)")
    ap.add_argument("--no-numpy", action="store_true", help="do not also time the numpy path (the fallback)")
    ap.add_argument("--baseline", metavar="REV", help="also time kquants.py as of git revision REV (before/after)")
    args = ap.parse_args()
    os.environ["BATUTA_KQUANTS_BACKEND"] = args.backend

    from tests.convert._llamacpp import ggml_quantize, lib

    if lib() is None:
        print("xllamacpp is not installed: no peer to compare with (pip install xllamacpp)")
        return 2
    import batuta_sync.convert.kquants as kq

    x = make_data(args.mvalues)
    print(f"data: {x.shape[0]}x{x.shape[1]} float32 ({x.nbytes / 1e6:.0f} MB), {args.rounds} alternating rounds, "
          f"1 thread each; load average {_load()}")
    runners = {
        "ours": lambda q: kq.quantize_k(x, q),
        "ggml": lambda q: ggml_quantize(x, q),
    }
    if not args.no_numpy and args.backend != "numpy":
        runners["numpy"] = lambda q: kq.quantize_k(x, q, backend="numpy")
    if args.baseline:
        old = _module_at(args.baseline)
        runners[args.baseline[:6]] = lambda q: old.quantize_k(x, q)
    width = 8 * len(runners) - 2
    print(f"{'type':5} {'backend':7} {'cold s':>6} | {'best s':>{width}} | {'median s':>{width}} | "
          "ratio ggml/ours best, median  [same for the other runs]")
    print(f"{'':20} | {'  '.join(f'{n:>6}' for n in runners)} | {'  '.join(f'{n:>6}' for n in runners)} |")
    worst = float("inf")
    for qtype in args.types.split(","):
        t0 = time.perf_counter()
        kq.quantize_k(x[:64], qtype)  # cold: 1024 blocks load numba + compile or cache (not counted below)
        cold = time.perf_counter() - t0
        times: dict[str, list[float]] = {n: [] for n in runners}
        outs: dict[str, bytes] = {}
        names = list(runners)
        for r in range(args.rounds):
            for n in names[r % len(names):] + names[: r % len(names)]:  # rotate who goes first
                t0 = time.perf_counter()
                out = runners[n](qtype)
                times[n].append(time.perf_counter() - t0)
                outs[n] = out.tobytes()
            if len(set(outs.values())) != 1:
                print(f"!! {qtype}: outputs differ from ggml: " + ", ".join(n for n in outs if outs[n] != outs["ggml"]))
                return 1
        best = {n: min(t) for n, t in times.items()}
        med = {n: statistics.median(t) for n, t in times.items()}
        rb, rm = best["ggml"] / best["ours"], med["ggml"] / med["ours"]
        worst = min(worst, rb, rm)
        extra = "".join(f"  [{n}: {best['ggml'] / best[n]:.2f}, {med['ggml'] / med[n]:.2f}]"
                        for n in runners if n not in ("ours", "ggml"))
        print(f"{qtype:5} {kq.backend_name(qtype, x.size // 256):7} {cold:6.2f} | "
              f"{'  '.join(f'{best[n]:6.3f}' for n in runners)} | {'  '.join(f'{med[n]:6.3f}' for n in runners)} | "
              f"{rb:.2f}, {rm:.2f}{extra}  bytes equal")
    print(f"load average after: {_load()}; worst ratio {worst:.2f} (target >= 0.8 at the same thread count)")
    return 0


def _module_at(rev: str):  # type: ignore[no-untyped-def]
    """kquants.py as of git revision ``rev``, imported as a separate module."""
    import importlib.util
    import subprocess
    import tempfile

    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:batuta_sync/convert/kquants.py"],
                         check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="kq_baseline_")) / "kquants_baseline.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("kquants_baseline", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


if __name__ == "__main__":
    raise SystemExit(main())
