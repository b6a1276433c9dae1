"""Benchmark: batuta's converter against llama.cpp's tools on one generated ~168M-parameter F16 LLaMA.

    python tests/bench/bench_convert.py [--threads 1,2] [--keep]

Every job runs in its own subprocess so its wall time and peak RSS (self + worker processes,
``resource.getrusage``) are measured alone.  Peers, in the same run on the same model:

* F16 / Q8_0 conversion: llama.cpp's ``convert_hf_to_gguf.py`` when it can run here (it is in the
  llama-cpp-python sdist, and needs torch); otherwise gguf-py's own writer path -- what
  convert_hf_to_gguf does with lazy tensors: memory-mapped safetensors, float32, Q/K permutation,
  ``gguf.quants.quantize``, GGUFWriter tensor by tensor.
* Q4_K_M: ggml's own quantizer (``ggml_quantize_chunk`` from the xllamacpp wheel -- the routine
  ``llama_model_quantize`` runs per row chunk) over the same F16 GGUF, the same tensor types and
  the same number of threads; its output must be byte-identical to ours.

Targets (issue 6): >= 1.5x on conversion, >= 0.8x on K-quants at the same thread count, peak RSS
below half the model size.  The generated model is deleted afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SPEC = dict(vocab_size=32000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=9,
            num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=2048, dtype="float16", seed=7)

MEASURE = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
t0 = time.perf_counter()
{body}
dt = time.perf_counter() - t0
me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print("@@" + json.dumps({{"seconds": dt, "rss_mb": me, "child_rss_mb": kids, "extra": globals().get("extra")}}))
"""


def run(body: str, env: dict[str, str] | None = None) -> dict:
    code = MEASURE.format(root=str(ROOT), body=textwrap.dedent(body))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **(env or {})})
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("@@")), None)
    if p.returncode != 0 or line is None:
        return {"error": (p.stderr.strip().splitlines() or ["failed"])[-1][:160]}
    return json.loads(line[2:])


def generate(dest: Path) -> None:
    body = f"""
    from pathlib import Path
    from batuta_sync.tinymodel import TinyLlamaSpec, write_tiny_llama
    write_tiny_llama(Path({str(dest)!r}), TinyLlamaSpec(**{SPEC!r}), card=False)
    """
    r = run(body)
    if "error" in r:
        raise SystemExit(f"could not generate the model: {r['error']}")


def ours(src: Path, out: Path, quant: str, jobs: int) -> dict:
    return run(f"""
    from pathlib import Path
    from batuta_sync.convert import convert
    convert(Path({str(src)!r}), Path({str(out)!r}), to="gguf", quantization={quant!r}, jobs={jobs})
    """)


def gguf_py_path(src: Path, out: Path, quant: str) -> dict:
    """What convert_hf_to_gguf does (lazy tensors -> GGUFWriter), written with gguf-py directly."""
    return run(f"""
    import json
    from pathlib import Path
    import gguf, numpy as np
    from safetensors import safe_open
    src, out, quant = Path({str(src)!r}), Path({str(out)!r}), {quant!r}
    cfg = json.loads((src / "config.json").read_text())
    nmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg["num_hidden_layers"])
    w = gguf.GGUFWriter(out, "llama")
    w.add_block_count(cfg["num_hidden_layers"]); w.add_embedding_length(cfg["hidden_size"])
    def permute(x, n):
        return x.reshape(n, 2, x.shape[0] // n // 2, *x.shape[1:]).swapaxes(1, 2).reshape(x.shape)
    qt = gguf.GGMLQuantizationType[quant]
    items = []
    with safe_open(str(src / "model.safetensors"), "np") as f:
        names = list(f.keys())
        for name in names:
            shape = f.get_slice(name).get_shape()
            new = nmap.get_name(name, try_suffixes=(".weight", ".bias"))
            t = qt if len(shape) == 2 else gguf.GGMLQuantizationType.F32
            nbytes = int(np.prod(gguf.quant_shape_to_byte_shape(shape, t))) if t != gguf.GGMLQuantizationType.F32 else int(np.prod(shape)) * 4
            bshape = gguf.quant_shape_to_byte_shape(shape, t) if t not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16) else shape
            dt = np.uint8 if t not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16) else (np.float32 if t == gguf.GGMLQuantizationType.F32 else np.float16)
            w.add_tensor_info(new, bshape, np.dtype(dt), nbytes, raw_dtype=t if dt == np.uint8 else None)
            items.append((name, t))
        w.write_header_to_file(); w.write_kv_data_to_file(); w.write_ti_data_to_file()
        for name, t in items:
            x = f.get_tensor(name).astype(np.float32)
            if name.endswith("q_proj.weight"):
                x = permute(x, cfg["num_attention_heads"])
            elif name.endswith("k_proj.weight"):
                x = permute(x, cfg["num_key_value_heads"])
            w.write_tensor_data(gguf.quants.quantize(x, t) if t != gguf.GGMLQuantizationType.F32 else x)
    w.close()
    """)


def convert_hf_to_gguf(src: Path, out: Path, quant: str, script: Path | None) -> dict:
    if script is None:
        return {"error": "convert_hf_to_gguf.py not found (llama-cpp-python sdist not downloadable)"}
    r = run(f"""
    import runpy, sys
    sys.argv = ["convert_hf_to_gguf.py", {str(src)!r}, "--outfile", {str(out)!r}, "--outtype", {quant.lower()!r}]
    sys.path.insert(0, {str(script.parent)!r}); sys.path.insert(0, {str(script.parent / 'gguf-py')!r})
    runpy.run_path({str(script)!r}, run_name="__main__")
    """)
    return r


def find_convert_script(cache: Path) -> Path | None:
    found = sorted(cache.glob("llama_cpp_python-*/vendor/llama.cpp/convert_hf_to_gguf.py"))
    if found:
        return found[-1]
    cache.mkdir(parents=True, exist_ok=True)
    p = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        "llama-cpp-python", "-d", str(cache)], capture_output=True, text=True)
    tars = sorted(cache.glob("llama_cpp_python-*.tar.gz"))
    if p.returncode != 0 or not tars:
        return None
    import tarfile

    with tarfile.open(tars[-1]) as tf:
        members = [m for m in tf.getmembers() if "/vendor/llama.cpp/" in m.name and
                   (m.name.endswith(".py") or "/gguf-py/" in m.name or "/conversion/" in m.name)]
        tf.extractall(cache, members=members, filter="data")
    found = sorted(cache.glob("llama_cpp_python-*/vendor/llama.cpp/convert_hf_to_gguf.py"))
    return found[-1] if found else None


def ggml_q4_k_m(f16_gguf: Path, ours_q4: Path, out: Path, threads: int) -> dict:
    """ggml_quantize_chunk over the F16 GGUF with our file's per-tensor types, in ``threads`` threads."""
    return run(f"""
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path
    import ctypes, gguf, numpy as np
    from tests.convert._llamacpp import lib, GGML_TYPES
    so = lib()
    src = gguf.GGUFReader(Path({str(f16_gguf)!r}))
    types = {{t.name: gguf.GGMLQuantizationType(int(t.tensor_type)) for t in gguf.GGUFReader(Path({str(ours_q4)!r})).tensors}}
    w = gguf.GGUFWriter(Path({str(out)!r}), "llama")
    plan = []
    for t in src.tensors:
        qt = types[t.name]
        shape = [int(d) for d in reversed(list(t.shape))]
        if qt == gguf.GGMLQuantizationType.F32:
            w.add_tensor_info(t.name, shape, np.dtype(np.float32), int(np.prod(shape)) * 4)
        else:
            bshape = gguf.quant_shape_to_byte_shape(shape, qt)
            w.add_tensor_info(t.name, bshape, np.dtype(np.uint8), int(np.prod(bshape)), raw_dtype=qt)
        plan.append((t, qt, shape))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_ti_data_to_file()
    pool = ThreadPoolExecutor({threads})
    for t, qt, shape in plan:
        x = np.ascontiguousarray(np.asarray(t.data), dtype=np.float32).reshape(-1, shape[-1])
        if qt == gguf.GGMLQuantizationType.F32:
            w.write_tensor_data(x.reshape(shape)); continue
        rows, cols = x.shape
        bs, ts = gguf.GGML_QUANT_SIZES[qt]
        outb = np.empty((rows, cols // bs * ts), np.uint8)
        step = max(1, -(-rows // {threads}))
        def job(r0, x=x, outb=outb, qt=qt, cols=cols):
            n = min(step, rows - r0)
            so.ggml_quantize_chunk(GGML_TYPES[qt.name], x.ctypes.data, outb.ctypes.data, r0 * cols, n, cols, None)
        list(pool.map(job, range(0, rows, step)))
        w.write_tensor_data(outb)
    w.close()
    """)


def interleaved(f16_gguf: Path, ours_q4: Path) -> dict:
    """Load-robust check: per tensor, our quantizer and ggml's (1 thread) alternately on the same rows."""
    return run(f"""
    import time
    from pathlib import Path
    import gguf, numpy as np
    from tests.convert._llamacpp import ggml_quantize
    from batuta_sync.convert.quantize import quantize_rows
    types = {{t.name: gguf.GGMLQuantizationType(int(t.tensor_type)).name for t in gguf.GGUFReader(Path({str(ours_q4)!r})).tensors}}
    mine = theirs = 0.0
    for t in gguf.GGUFReader(Path({str(f16_gguf)!r})).tensors:
        qt = types[t.name]
        if qt == "F32":
            continue
        x = np.asarray(t.data).astype(np.float32).reshape(-1, int(t.shape[0]))
        for r0 in range(0, x.shape[0], 2048):
            rows = np.ascontiguousarray(x[r0:r0 + 2048])
            a = time.perf_counter(); ours = quantize_rows(rows, qt); b = time.perf_counter()
            ref = ggml_quantize(rows, qt).tobytes(); c = time.perf_counter()
            assert ours == ref, t.name
            mine += b - a; theirs += c - b
    extra = {{"ours": mine, "ggml": theirs}}
    """)


def tensors_equal(a: Path, b: Path) -> bool:
    import gguf
    import numpy as np

    ta, tb = gguf.GGUFReader(a).tensors, gguf.GGUFReader(b).tensors
    return [t.name for t in ta] == [t.name for t in tb] and all(
        np.asarray(x.data).tobytes() == np.asarray(y.data).tobytes() for x, y in zip(ta, tb, strict=True))


def fmt(r: dict) -> str:
    if "error" in r:
        return f"n/a ({r['error']})"
    return f"{r['seconds']:7.2f} s  peak RSS {r['rss_mb']:6.0f} MB (workers {r['child_rss_mb']:5.0f} MB)"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="run each job N times (interleaved), keep the fastest")
    ap.add_argument("--only", choices=("all", "convert", "kquant"), default="all")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-convert-"))
    try:
        src = work / "model"
        generate(src)
        size_mb = sum(f.stat().st_size for f in src.glob("*.safetensors")) / 1e6
        n_params = size_mb * 1e6 / 2
        print(f"model: {n_params / 1e6:.0f} M parameters, F16 safetensors {size_mb:.0f} MB (half: {size_mb / 2:.0f} MB); "
              f"{os.cpu_count()} CPUs")
        script = find_convert_script(Path.home() / ".cache" / "batuta-bench")
        jobs: list[tuple[str, object]] = []
        for quant in ("F16", "Q8_0") if args.only != "kquant" else ():
            jobs += [
                (f"ours {quant} j1", lambda q=quant: ours(src, work / f"ours-{q}.gguf", q, 1)),
                (f"ours {quant} j2", lambda q=quant: ours(src, work / f"ours2-{q}.gguf", q, 2)),
                (f"convert_hf_to_gguf {quant}", lambda q=quant: convert_hf_to_gguf(src, work / f"chg-{q}.gguf", q, script)),
                (f"gguf-py path {quant}", lambda q=quant: gguf_py_path(src, work / f"gp-{q}.gguf", q)),
            ]
        if args.only == "kquant":  # the ggml peer reads our F16 file
            ours(src, work / "ours-F16.gguf", "F16", 1)
        for t in threads if args.only != "convert" else ():
            jobs += [
                (f"ours Q4_K_M j{t}", lambda t=t: ours(src, work / f"ours-q4km-{t}.gguf", "Q4_K_M", t)),
                (f"ggml Q4_K_M t{t}", lambda t=t: ggml_q4_k_m(work / "ours-F16.gguf", work / f"ours-q4km-{t}.gguf",
                                                           work / f"ggml-q4km-{t}.gguf", t)),
            ]
        results: dict[str, dict] = {}
        for _ in range(max(1, args.repeat)):
            for name, fn in jobs:
                r = fn()  # type: ignore[operator]
                best = results.get(name)
                if best is None or "error" in best or ("error" not in r and r["seconds"] < best["seconds"]):
                    if best is not None and "error" not in best and "error" not in r:
                        r["rss_mb"] = max(r["rss_mb"], best["rss_mb"])
                        r["child_rss_mb"] = max(r["child_rss_mb"], best["child_rss_mb"])
                    results[name] = r
                if name.startswith("convert_hf_to_gguf") and "error" in r:
                    jobs = [j for j in jobs if j[0] != name]
        print(f"(best of {max(1, args.repeat)}; load average at the end: {os.getloadavg()[0]:.1f})")
        for k, r in results.items():
            print(f"  {k:28s} {fmt(r)}")
        print("ratios (peer time / our time; > 1 means we are faster):")
        for quant in ("F16", "Q8_0"):
            peer_name = f"convert_hf_to_gguf {quant}"
            if peer_name not in results:
                continue
            peer = results[peer_name]
            if "error" in peer:
                peer_name = f"gguf-py path {quant}"
                peer = results[peer_name]
            for j in (1, 2):
                me = results[f"ours {quant} j{j}"]
                if "error" not in me and "error" not in peer:
                    print(f"  {quant} conversion, ours jobs={j} vs {peer_name}: {peer['seconds'] / me['seconds']:.2f}x "
                          f"(target >= 1.5x)")
        for t in threads if args.only != "convert" else ():
            me, peer = results[f"ours Q4_K_M j{t}"], results[f"ggml Q4_K_M t{t}"]
            if "error" not in me and "error" not in peer:
                same = tensors_equal(work / f"ours-q4km-{t}.gguf", work / f"ggml-q4km-{t}.gguf")
                print(f"  Q4_K_M, {t} thread(s): {peer['seconds'] / me['seconds']:.2f}x (target >= 0.8x); "
                      f"byte-identical to ggml: {same}")
        if args.only != "convert":
            r = interleaved(work / "ours-F16.gguf", work / f"ours-q4km-{threads[0]}.gguf")
            if "error" not in r:
                e = r["extra"]
                print(f"  Q4_K_M quantization only, 1 thread, interleaved per 2048 rows (load-robust): ours "
                      f"{e['ours']:.1f} s, ggml {e['ggml']:.1f} s -> {e['ggml'] / e['ours']:.2f}x; all bytes equal")
        worst = max((r["rss_mb"] + r["child_rss_mb"]) for k, r in results.items() if k.startswith("ours") and "error" not in r)
        print(f"  our worst peak RSS (process + largest worker): {worst:.0f} MB = {worst / size_mb:.2f} of the model size "
              f"(target < 0.5)")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
