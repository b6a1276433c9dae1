"""Benchmark: batuta's converter against llama.cpp's own tools, in one run on one generated F16 LLaMA.

    python tests/bench/bench_convert.py [--threads 1,2] [--repeat N]
                                        [--only all|convert|kquant|q4km|kernels|imatrix]
                                        [--json] [--keep] [--peer-python PATH]

The model is a ~168 M-parameter F16 LlamaForCausalLM (337 MB of safetensors) written by
``batuta_sync.tinymodel``.  Every job runs in its own process; wall time is measured around the
process and peak RSS is the larger of the process tree's summed RSS (sampled every 20 ms from /proc:
the converter and its worker processes together; shared pages counted once per process, so an upper
bound -- the tree's PSS is printed beside it) and ``getrusage``'s maxima.  Peers (section 1):

* F16 / Q8_0: llama.cpp's ``convert_hf_to_gguf.py --outtype f16|q8_0`` from the llama-cpp-python sdist
  (needs torch); the time is the whole process, torch import shown apart.  Ours: ``batuta convert
  --to gguf --quantization F16|Q8_0 --jobs 1`` (``--jobs 2`` printed too).
* Q4_K_M: ``llama_model_quantize`` (llama-cpp-python's binding, ftype Q4_K_M, ``nthread`` = N) of the F16
  GGUF our converter made from the same checkpoint; the time is the call alone.  Ours: ``batuta convert``
  safetensors -> Q4_K_M with ``--jobs N``.  Our tensors must be byte-identical to the peer's.

* Q4_K_M + imatrix and MoE Q4_K_M (``--only imatrix``, also in ``all``): the real llama-quantize of npm's
  ``@node-llama-cpp/linux-x64@3.22.1`` libllama (``llama_model_quantize``, nthread 1, the imatrix passed
  through its C API as in tests/convert/test_imatrix_llama_quantize.py) on our F16 GGUF with a
  generated imatrix (llama-imatrix's format), against ``batuta convert --imatrix`` (safetensors ->
  Q4_K_M, --jobs 1); and on a 4-expert llama-MoE F16 GGUF against our GGUF -> GGUF Q4_K_M.  Time of the
  call alone on the peer's side; bytes compared.

Section 2: the K-quant kernels alone, ours (``quantize_rows``) and ggml's ``ggml_quantize_chunk`` (the
xllamacpp wheel) on the same rows, alternately per 2048 rows (robust to load from other processes),
one thread, per type, bytes compared, after an untimed warm-up call (imports, JIT compilation).

When a peer is not installed, the bench says how to install it (``_convert_peers.INSTALL``), runs our
side anyway, and compares against a stand-in (gguf-py's writer path; ggml_quantize_chunk driven over
the same tensors) labelled as such.  Targets (issue 6): >= 1.5x on conversion, >= 0.8x on K-quants at
the same thread count, peak RSS below half the model size.  ``--json`` prints the figures as JSON on
stdout (the table then goes to stderr).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _convert_peers as peers  # noqa: E402

SPEC = dict(vocab_size=32000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=9,
            num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=2048, dtype="float16", seed=7)
SMALL = {**SPEC, "vocab_size": 4096, "hidden_size": 512, "intermediate_size": 1024, "num_hidden_layers": 2,
         "num_attention_heads": 8, "num_key_value_heads": 2}  # --small: checks the bench itself in seconds
CONVERT_TARGET, KQUANT_TARGET, RSS_TARGET = 1.5, 0.8, 0.5

MEASURE = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
t0 = time.perf_counter()
{body}
dt = time.perf_counter() - t0
me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e6
print("@@" + json.dumps({{"seconds": dt, "rss_mb": me, "child_rss_mb": kids, "extra": globals().get("extra")}}))
"""

PAGE = os.sysconf("SC_PAGE_SIZE")
Result = dict[str, Any]
OUT = sys.stdout  # the human-readable report (stderr under --json)


def say(*a: object) -> None:
    print(*a, file=OUT, flush=True)


def _tree_mem(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes of ``pid`` and all its descendants, summed.  The RSS sum counts pages shared
    between the processes (libraries, the memory-mapped input, fork's copy-on-write pages) once per
    process -- an upper bound; PSS splits each shared page between its sharers."""
    rss = pss = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                rss += int(f.read().split()[1]) * PAGE
            with open(f"/proc/{p}/smaps_rollup") as f:
                pss += next((int(ln.split()[1]) * 1024 for ln in f if ln.startswith("Pss:")), 0)
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    stack += [int(c) for c in f.read().split()]
        except (OSError, ValueError, IndexError):
            continue
    return rss, pss


def run(body: str, python: str = sys.executable) -> Result:
    """Run ``body`` in a fresh ``python`` process: wall seconds, peak RSS (tree sampled + getrusage)."""
    code = MEASURE.format(root=str(ROOT), body=textwrap.dedent(body))
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen([python, "-c", code], stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        peak = peak_pss = 0
        while p.poll() is None:
            rss, pss = _tree_mem(p.pid)
            peak, peak_pss = max(peak, rss), max(peak_pss, pss)
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    line = next((ln for ln in stdout.splitlines() if ln.startswith("@@")), None)
    if p.returncode != 0 or line is None:
        return {"error": (stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1][:200]}
    r: Result = json.loads(line[2:])
    r["wall_s"] = wall
    r["tree_rss_mb"] = peak / 1e6
    r["tree_pss_mb"] = peak_pss / 1e6
    r["peak_rss_mb"] = max(r["tree_rss_mb"], r["rss_mb"], r["child_rss_mb"])
    return r


def generate(dest: Path, spec: dict[str, Any]) -> None:
    r = run(f"""
    from pathlib import Path
    from batuta_sync.tinymodel import TinyLlamaSpec, write_tiny_llama
    write_tiny_llama(Path({str(dest)!r}), TinyLlamaSpec(**{spec!r}), card=False)
    """)
    if "error" in r:
        raise SystemExit(f"could not generate the model: {r['error']}")


OURS_VENV = Path.home() / ".cache" / "batuta-bench" / "ours"
OURS_PYTHON = sys.executable


def ours_python(arg: str | None) -> str:
    """The interpreter our side runs in: ``--ours-python``, $BATUTA_BENCH_OURS_PYTHON, a venv holding a
    plain ``pip install -e .`` (batuta's own dependencies and nothing else: what a user gets) at
    ~/.cache/batuta-bench/ours, else this one."""
    cand = arg or os.environ.get("BATUTA_BENCH_OURS_PYTHON")
    if cand:
        return cand
    venv = OURS_VENV / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def ours(src: Path, out: Path, quant: str, jobs: int) -> Result:
    """``batuta convert SRC OUT --to gguf --quantization Q --jobs N`` (the CLI entry point, in-process)."""
    r = run(python=OURS_PYTHON, body=f"""
    from batuta_sync.cli import main
    rc = main(["convert", {str(src)!r}, {str(out)!r}, "--to", "gguf", "--quantization", {quant!r},
               "--jobs", "{jobs}", "--quiet"])
    if rc:
        raise SystemExit(f"batuta convert exited {{rc}}")
    """)
    if "error" not in r:
        r["seconds_used"] = r["wall_s"]
    return r


def convert_hf_to_gguf(script: Path, python: str, src: Path, out: Path, quant: str) -> Result:
    r = run(peers.convert_hf_to_gguf_body(script, src, out, quant), python)
    if "error" not in r:
        r["seconds_used"] = r["wall_s"]
    return r


def llama_model_quantize(python: str, f16: Path, out: Path, threads: int) -> Result:
    r = run(peers.llama_model_quantize_body(f16, out, "Q4_K_M", threads), python)
    if "error" not in r:
        r["seconds_used"] = r["extra"]["call_s"]
    return r


def gguf_py_path(src: Path, out: Path, quant: str) -> Result:
    """Stand-in for convert_hf_to_gguf: what it does with lazy tensors (mmap, float32, Q/K permutation,
    ``gguf.quants.quantize``, GGUFWriter tensor by tensor), written with gguf-py directly."""
    r = run(f"""
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
    Q = gguf.GGMLQuantizationType
    qt = Q[quant]
    items = []
    with safe_open(str(src / "model.safetensors"), "np") as f:
        for name in list(f.keys()):
            shape = f.get_slice(name).get_shape()
            t = qt if len(shape) == 2 else Q.F32
            if t in (Q.F32, Q.F16):
                dt = np.float32 if t == Q.F32 else np.float16
                w.add_tensor_info(nmap.get_name(name, try_suffixes=(".weight",)), shape, np.dtype(dt),
                                  int(np.prod(shape)) * np.dtype(dt).itemsize)
            else:
                bshape = gguf.quant_shape_to_byte_shape(shape, t)
                w.add_tensor_info(nmap.get_name(name, try_suffixes=(".weight",)), bshape, np.dtype(np.uint8),
                                  int(np.prod(bshape)), raw_dtype=t)
            items.append((name, t))
        w.write_header_to_file(); w.write_kv_data_to_file(); w.write_ti_data_to_file()
        for name, t in items:
            x = f.get_tensor(name).astype(np.float32)
            if name.endswith("q_proj.weight"):
                x = permute(x, cfg["num_attention_heads"])
            elif name.endswith("k_proj.weight"):
                x = permute(x, cfg["num_key_value_heads"])
            w.write_tensor_data(gguf.quants.quantize(x, t) if t != Q.F32 else x)
    w.close()
    """)
    if "error" not in r:
        r["seconds_used"] = r["wall_s"]
    return r


def ggml_chunk_driver(f16_gguf: Path, ours_q4: Path, out: Path, threads: int) -> Result:
    """Stand-in for llama_model_quantize: ggml_quantize_chunk (xllamacpp) over the F16 GGUF with our
    file's per-tensor types, row chunks spread over ``threads`` threads -- what llama_model_quantize does."""
    r = run(f"""
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path
    import gguf, numpy as np
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
    if "error" not in r:
        r["seconds_used"] = r["wall_s"]
    return r


def kernels(f16_gguf: Path, types: list[str], layers: int) -> Result:
    """Section 2: ours vs ggml_quantize_chunk per K-quant type, alternately per 2048 rows, bytes compared."""
    return run(f"""
    import time
    from pathlib import Path
    import gguf, numpy as np
    from tests.convert._llamacpp import ggml_quantize
    from batuta_sync.convert.quantize import quantize_rows
    types, prefixes = {types!r}, tuple(f"blk.{{i}}." for i in range({layers}))
    res = {{q: {{"ours_s": 0.0, "ggml_s": 0.0, "mb": 0.0, "equal": True}} for q in types}}
    # 1024 super-blocks: as many as kquants needs to load the compiled kernels (fewer run in numpy)
    warm = np.random.default_rng(0).standard_normal((128, 256 * 8)).astype(np.float32)
    for q in types:  # untimed first calls: one-off set-up (imports, JIT compilation) is section 1's business
        quantize_rows(warm, q); ggml_quantize(warm, q)
    for t in gguf.GGUFReader(Path({str(f16_gguf)!r})).tensors:
        if len(t.shape) != 2 or not t.name.startswith(prefixes) or int(t.shape[0]) % 256:
            continue
        x = np.asarray(t.data).astype(np.float32).reshape(-1, int(t.shape[0]))
        for r0 in range(0, x.shape[0], 2048):
            rows = np.ascontiguousarray(x[r0:r0 + 2048])
            for q in types:
                a = time.perf_counter(); mine = quantize_rows(rows, q); b = time.perf_counter()
                ref = ggml_quantize(rows, q).tobytes(); c = time.perf_counter()
                e = res[q]
                e["ours_s"] += b - a; e["ggml_s"] += c - b; e["mb"] += rows.nbytes / 1e6
                e["equal"] = e["equal"] and mine == ref
    extra = res
    """)


def imatrix_jobs(work: Path, src: Path, f16: Path) -> list[tuple[str, Callable[[], Result]]]:
    """The Q4_K_M + imatrix and MoE rows (peer: node-llama-cpp's libllama); [] when it is absent."""
    sys.path.insert(0, str(ROOT))
    from tests.convert.test_quant_mixtures import NODE_LLAMA

    if not next(iter(NODE_LLAMA.glob("libllama*.so")), None):
        say(f"peer not installed: no libllama under {NODE_LLAMA} (.ci/run installs it) -> imatrix/MoE rows skipped")
        return []
    imx, moe = work / "calib.imatrix", work / "moe-F16.gguf"

    def prepare() -> None:
        if not imx.exists():
            from tests.convert.test_imatrix import model_entries, write_imatrix_gguf
            from tests.convert.test_quant_mixtures import _moe_gguf

            write_imatrix_gguf(imx, *model_entries(f16))
            _moe_gguf(f16, moe, 4)

    def peer(gguf_in: Path, out: Path, with_imatrix: bool) -> Result:
        prepare()
        r = run(python=OURS_PYTHON, body=f"""
        import time
        from pathlib import Path
        from batuta_sync.convert.imatrix import load
        from tests.convert.test_imatrix_llama_quantize import llama_quantize_imatrix
        w = load({str(imx)!r}).entries if {with_imatrix!r} else None
        t = time.perf_counter()
        llama_quantize_imatrix(Path({str(gguf_in)!r}), Path({str(out)!r}), "Q4_K_M", w)
        extra = {{"call_s": time.perf_counter() - t}}
        """)
        if "error" not in r:
            r["seconds_used"] = r["extra"]["call_s"]
        return r

    def mine(gguf_in: Path, out: Path, with_imatrix: bool) -> Result:
        prepare()
        extra_args = f', "--imatrix", {str(imx)!r}' if with_imatrix else ""
        # Timed like the peer: the job's call in a started interpreter (the peer's ``call_s`` excludes
        # Python's start too); our call still includes importing the converter and loading numba.
        r = run(python=OURS_PYTHON, body=f"""
        import time
        from batuta_sync.cli import main
        t = time.perf_counter()
        rc = main(["convert", {str(gguf_in)!r}, {str(out)!r}, "--to", "gguf", "--quantization", "Q4_K_M",
                   "--jobs", "1", "--quiet"{extra_args}])
        extra = {{"call_s": time.perf_counter() - t}}
        if rc:
            raise SystemExit(f"batuta convert exited {{rc}}")
        """)
        if "error" not in r:
            r["seconds_used"] = r["extra"]["call_s"]
        return r

    return [
        ("ours Q4_K_M+imatrix j1", lambda: mine(src, work / "ours-imx.gguf", True)),
        ("peer Q4_K_M+imatrix t1", lambda: peer(f16, work / "peer-imx.gguf", True)),
        ("ours MoE Q4_K_M j1", lambda: mine(moe, work / "ours-moe.gguf", False)),
        ("peer MoE Q4_K_M t1", lambda: peer(moe, work / "peer-moe.gguf", False)),
    ]


def compare(a: Path, b: Path) -> dict[str, Any]:
    """Tensor by tensor: same names, types and bytes?"""
    import gguf
    import numpy as np

    ta = {t.name: t for t in gguf.GGUFReader(a).tensors}
    tb = {t.name: t for t in gguf.GGUFReader(b).tensors}
    same = [n for n in ta if n in tb and int(ta[n].tensor_type) == int(tb[n].tensor_type)
            and np.asarray(ta[n].data).tobytes() == np.asarray(tb[n].data).tobytes()]
    return {"tensors": len(ta), "peer_tensors": len(tb), "identical": len(same),
            "all_identical": len(same) == len(ta) == len(tb)}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    except OSError:
        return "?"


def revision() -> dict[str, Any]:
    """The commit measured, and whether the converter's sources differ from it (others edit them live)."""
    def git(*a: str) -> str:
        p = subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True)
        return p.stdout

    changed = git("status", "--porcelain", "--", "batuta_sync/convert").splitlines()
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "convert_sources_modified": [ln[3:] for ln in changed],
            "kquants_backend": os.environ.get("BATUTA_KQUANTS_BACKEND", "auto")}


def best_of(results: dict[str, Result], name: str, r: Result) -> None:
    """Keep the fastest run of ``name``; the peak RSS is the worst over all runs."""
    old = results.get(name)
    if old is None or "error" in old:
        results[name] = r
    elif "error" not in r:
        keep = r if r["seconds_used"] < old["seconds_used"] else old
        keep["peak_rss_mb"] = max(r["peak_rss_mb"], old["peak_rss_mb"])
        keep["tree_pss_mb"] = max(r["tree_pss_mb"], old["tree_pss_mb"])
        keep["runs"] = old.get("runs", 1) + 1
        results[name] = keep


def row(job: str, me: Result, peer: Result, peer_name: str, size_mb: float, target: float,
        check: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"job": job, "peer": peer_name, "model_mb": round(size_mb, 1), "speed_target": target,
                           "rss_target": RSS_TARGET}
    if "error" in me:
        out["ours_error"] = me["error"]
    else:
        out.update(ours_s=round(me["seconds_used"], 3), ours_rss_mb=round(me["peak_rss_mb"], 1),
                   ours_pss_mb=round(me["tree_pss_mb"], 1),
                   ours_rss_over_model=round(me["peak_rss_mb"] / size_mb, 3))
        out["rss_pass"] = out["ours_rss_over_model"] < RSS_TARGET
    if "error" in peer:
        out["peer_error"] = peer["error"]
    else:
        out.update(peer_s=round(peer["seconds_used"], 3), peer_rss_mb=round(peer["peak_rss_mb"], 1),
                   peer_process_s=round(peer["wall_s"], 3))
        if (peer.get("extra") or {}).get("torch_import_s") is not None:
            out["peer_torch_import_s"] = round(peer["extra"]["torch_import_s"], 3)
    if "ours_s" in out and "peer_s" in out:
        out["ratio"] = round(out["peer_s"] / out["ours_s"], 3)
        out["speed_pass"] = out["ratio"] >= target
    if check is not None:
        out["bytes"] = check
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    def f(v: Any, spec: str) -> str:
        return "n/a" if v is None else format(v, spec)

    def verdict(v: bool | None) -> str:
        return "n/a" if v is None else ("PASS" if v else "FAIL")

    head = (f"{'job':10s} {'ours s':>8s} {'peer s':>8s} {'ratio':>6s} {'ours RSS':>9s} {'peer RSS':>9s} "
            f"{'model':>7s} {'RSS/model':>9s}  {'speed':14s} {'RSS < 0.5':9s}")
    say(head)
    say("-" * len(head))
    for r in rows:
        speed = f"{verdict(r.get('speed_pass'))} (>= {r['speed_target']}x)"
        say(f"{r['job']:10s} {f(r.get('ours_s'), '8.2f')} {f(r.get('peer_s'), '8.2f')} {f(r.get('ratio'), '6.2f')} "
            f"{f(r.get('ours_rss_mb'), '6.0f')} MB {f(r.get('peer_rss_mb'), '6.0f')} MB {r['model_mb']:4.0f} MB "
            f"{f(r.get('ours_rss_over_model'), '9.2f')}  {speed:14s} {verdict(r.get('rss_pass'))}")
    say("ratio = peer s / ours s (> 1: we are faster).  Peers and notes:")
    for r in rows:
        notes = [r["peer"]]
        if "ours_pss_mb" in r:
            notes.append(f"our peak PSS {r['ours_pss_mb']:.0f} MB")
        if "peer_torch_import_s" in r:
            notes.append(f"process {r['peer_process_s']:.2f} s of which importing torch {r['peer_torch_import_s']:.2f} s")
        elif "peer_process_s" in r and r["peer_process_s"] != r.get("peer_s"):
            notes.append(f"call only; whole process {r['peer_process_s']:.2f} s")
        if "bytes" in r:
            b = r["bytes"]
            notes.append(f"tensors byte-identical to the peer's: {b['identical']}/{b['tensors']}")
        for k in ("ours_error", "peer_error"):
            if k in r:
                notes.append(f"{k.replace('_', ' ')}: {r[k]}")
        say(f"  {r['job']:10s} " + "; ".join(notes))


def main() -> int:
    global OUT
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Installing the peers (never in CI):\n" + peers.INSTALL)
    ap.add_argument("--threads", default="1,2", help="thread / job counts for Q4_K_M (default 1,2)")
    ap.add_argument("--repeat", type=int, default=1, help="run each job N times (interleaved), keep the fastest")
    ap.add_argument("--only", choices=("all", "convert", "kquant", "q4km", "kernels", "imatrix"), default="all",
                    help="convert: F16+Q8_0; q4km: Q4_K_M vs llama_model_quantize; kernels: section 2; "
                         "kquant: q4km + kernels; imatrix: Q4_K_M+imatrix and MoE Q4_K_M vs libllama")
    ap.add_argument("--kernel-types", default="Q2_K,Q3_K,Q4_K,Q5_K,Q6_K", help="types for section 2")
    ap.add_argument("--kernel-layers", type=int, default=2, help="blocks whose tensors section 2 quantizes (default 2)")
    ap.add_argument("--peer-python", default=None,
                    help=f"interpreter with torch/transformers/llama_cpp (default: $BATUTA_BENCH_PEER_PYTHON, "
                         f"{peers.VENV}/bin/python if present, else this one)")
    ap.add_argument("--ours-python", default=None,
                    help=f"interpreter for our side (default: $BATUTA_BENCH_OURS_PYTHON, {OURS_VENV}/bin/python "
                         "if present -- a venv with `pip install -e .` only -- else this one)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON on stdout (table on stderr)")
    ap.add_argument("--keep", action="store_true", help="keep the generated model and outputs")
    ap.add_argument("--small", action="store_true", help="a 2-layer 6 M-parameter model: checks the bench itself")
    args = ap.parse_args()
    if args.json:
        OUT = sys.stderr
    threads = [int(t) for t in args.threads.split(",")]
    want_convert = args.only in ("all", "convert")
    want_q4 = args.only in ("all", "kquant", "q4km")
    want_kernels = args.only in ("all", "kquant", "kernels")
    want_imatrix = args.only in ("all", "imatrix")

    global OURS_PYTHON
    OURS_PYTHON = ours_python(args.ours_python)
    extra = subprocess.run([OURS_PYTHON, "-c", "import importlib.util as u; print(bool(u.find_spec('scipy')))"],
                           capture_output=True, text=True).stdout.strip()
    blas = os.environ.get("BATUTA_NUMBA_BLAS") == "1"
    say(f"ours: {OURS_PYTHON} (SciPy importable: {extra}; hidden from numba's BLAS probe unless "
        f"BATUTA_NUMBA_BLAS=1, which is {'set: about +20 MB RSS' if blas else 'not set'})")
    python = peers.peer_python(args.peer_python)
    versions = peers.installed(python)
    have_chg = bool(versions["torch"] and versions["transformers"])
    have_lmq = bool(versions["llama_cpp"])
    script = peers.find_convert_script() if want_convert and have_chg else None
    if want_convert and not (have_chg and script):
        why = "torch + transformers" if not have_chg else "the llama-cpp-python sdist (pip download failed)"
        say(f"peer not installed: convert_hf_to_gguf.py needs {why} in {python}; install with:\n{peers.INSTALL}\n"
            "  -> F16/Q8_0 are compared against gguf-py's writer path instead (stand-in).")
    if want_q4 and not have_lmq:
        say(f"peer not installed: llama_model_quantize needs llama-cpp-python in {python}; install with:\n"
            f"{peers.INSTALL}\n  -> Q4_K_M is compared against ggml_quantize_chunk driven over the same tensors "
            "(stand-in).")

    load0 = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-convert-"))
    try:
        src = work / "model"
        spec = SMALL if args.small else SPEC
        generate(src, spec)
        size_mb = sum(f.stat().st_size for f in src.glob("*.safetensors")) / 1e6
        n_params = size_mb * 1e6 / 2
        say(f"model: {n_params / 1e6:.0f} M parameters, F16 safetensors {size_mb:.0f} MB; {os.cpu_count()} CPUs "
            f"({cpu_model()}); load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; batuta {revision()}; "
            f"peers: {python} {versions}")
        f16 = work / "ours-F16-j1.gguf"
        jobs: list[tuple[str, Callable[[], Result]]] = []
        chg_name = "convert_hf_to_gguf.py" if script else "gguf-py writer path (stand-in)"
        for q in ("F16", "Q8_0") if want_convert else ():
            jobs += [
                (f"ours {q} j1", lambda q=q: ours(src, work / f"ours-{q}-j1.gguf", q, 1)),
                (f"ours {q} j2", lambda q=q: ours(src, work / f"ours-{q}-j2.gguf", q, 2)),
                (f"peer {q}", (lambda q=q: convert_hf_to_gguf(script, python, src, work / f"peer-{q}.gguf", q))
                 if script else (lambda q=q: gguf_py_path(src, work / f"peer-{q}.gguf", q))),
            ]
        q4_name = (f"llama_model_quantize (llama-cpp-python {versions['llama_cpp']})" if have_lmq
                   else "ggml_quantize_chunk driver (stand-in)")
        for t in threads if want_q4 else ():
            jobs.append((f"ours Q4_K_M j{t}", lambda t=t: ours(src, work / f"ours-Q4_K_M-j{t}.gguf", "Q4_K_M", t)))
            if have_lmq:
                jobs.append((f"peer Q4_K_M t{t}", lambda t=t: llama_model_quantize(python, f16, work / f"peer-Q4_K_M-t{t}.gguf", t)))
            else:
                jobs.append((f"peer Q4_K_M t{t}", lambda t=t: ggml_chunk_driver(
                    f16, work / f"ours-Q4_K_M-j{t}.gguf", work / f"peer-Q4_K_M-t{t}.gguf", t)))
        imx_jobs = imatrix_jobs(work, src, f16) if want_imatrix else []
        jobs += imx_jobs
        if (want_q4 or want_kernels or want_imatrix) and not want_convert:  # peers and section 2 read our F16 file
            r = ours(src, f16, "F16", 1)
            if "error" in r:
                raise SystemExit(f"could not write the F16 GGUF: {r['error']}")

        results: dict[str, Result] = {}
        for i in range(max(1, args.repeat)):
            for name, fn in jobs:
                if i and "error" in results.get(name, {}):
                    continue
                say(f"  [{i + 1}/{max(1, args.repeat)}] {name} ...")
                best_of(results, name, fn())

        rows: list[dict[str, Any]] = []
        for q in ("F16", "Q8_0") if want_convert else ():
            me, peer = results[f"ours {q} j1"], results[f"peer {q}"]
            check = compare(work / f"ours-{q}-j1.gguf", work / f"peer-{q}.gguf") if script and \
                "error" not in me and "error" not in peer else None
            rows.append(row(q, me, peer, chg_name, size_mb, CONVERT_TARGET, check))
            rows[-1]["ours_j2"] = {k: round(v, 3) for k, v in results[f"ours {q} j2"].items()
                                   if k in ("seconds_used", "peak_rss_mb")}
        for t in threads if want_q4 else ():
            me, peer = results[f"ours Q4_K_M j{t}"], results[f"peer Q4_K_M t{t}"]
            check = compare(work / f"ours-Q4_K_M-j{t}.gguf", work / f"peer-Q4_K_M-t{t}.gguf") \
                if "error" not in me and "error" not in peer else None
            rows.append(row(f"Q4_K_M@{t}", me, peer, q4_name + f", nthread={t}", size_mb, KQUANT_TARGET, check))

        for job, mine_f, peer_f in (("Q4_K_M+imatrix@1", "ours-imx.gguf", "peer-imx.gguf"),
                                    ("MoE Q4_K_M@1", "ours-moe.gguf", "peer-moe.gguf")) if imx_jobs else ():
            me, peer = results[f"ours {job[:-2]} j1"], results[f"peer {job[:-2]} t1"]
            check = compare(work / mine_f, work / peer_f) if "error" not in me and "error" not in peer else None
            rows.append(row(job, me, peer, "llama_model_quantize (node-llama-cpp 3.22.1 libllama), nthread=1",
                            size_mb, KQUANT_TARGET, check))

        kern: dict[str, Any] = {}
        if want_kernels:
            say("  section 2: K-quant kernels ...")
            k = kernels(f16, args.kernel_types.split(","), args.kernel_layers)
            kern = {"error": k["error"]} if "error" in k else k["extra"]
        load1 = os.getloadavg()

        say(f"\n== Section 1: batuta convert vs llama.cpp, same model, best of {max(1, args.repeat)} "
            f"(load average before {load0[0]:.2f}, after {load1[0]:.2f}) ==")
        if rows:
            print_table(rows)
            for r in rows:
                if "ours_j2" in r and "seconds_used" in r["ours_j2"]:
                    j2 = r["ours_j2"]
                    extra = f", ratio {r['peer_s'] / j2['seconds_used']:.2f}x" if "peer_s" in r else ""
                    say(f"  {r['job']} with --jobs 2: {j2['seconds_used']:.2f} s, peak RSS {j2['peak_rss_mb']:.0f} MB{extra}")
        if kern:
            say(f"\n== Section 2: K-quant kernels alone, 1 thread, ours vs ggml_quantize_chunk, interleaved per 2048 "
                f"rows, blocks 0..{args.kernel_layers - 1} ==")
            if "error" in kern:
                say(f"  n/a ({kern['error']})")
            for q, e in kern.items() if "error" not in kern else ():
                say(f"  {q:5s} {e['mb']:6.0f} MB f32: ours {e['ours_s']:6.2f} s, ggml {e['ggml_s']:6.2f} s -> "
                    f"{e['ggml_s'] / e['ours_s']:.2f}x (target >= {KQUANT_TARGET}x); bytes equal: {e['equal']}")
        if args.json:
            print(json.dumps({
                "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "machine": {"cpus": os.cpu_count(), "cpu": cpu_model(), "platform": platform.platform(),
                            "python": platform.python_version(), "load_before": load0, "load_after": load1},
                "batuta": revision(),
                "model": {"params": n_params, "safetensors_mb": round(size_mb, 1), "spec": spec},
                "peers": {"python": python, "versions": versions, "convert_script": str(script) if script else None},
                "repeat": max(1, args.repeat), "rows": rows, "kernels": kern,
                "raw": results,
            }, indent=2, default=str))
    finally:
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
