"""The peers of ``bench_convert.py``: llama.cpp's own tools, installed by hand (never in CI or pyproject).

* ``convert_hf_to_gguf.py`` (F16 / Q8_0) ships in the llama-cpp-python source distribution, under
  ``vendor/llama.cpp/`` with its own ``gguf-py``; it needs torch and transformers.
* ``llama_model_quantize`` (Q4_K_M) is exported by llama-cpp-python's ctypes binding, which PyPI only
  has as a source distribution (a ~6-minute C++ build on 2 cores).

Both go into one virtual environment that sees our site-packages (``--system-site-packages``), so our
own environment is left untouched: ``~/.cache/batuta-bench/peers`` unless ``--peer-python`` or
``BATUTA_BENCH_PEER_PYTHON`` names another interpreter.  ``INSTALL`` is the recipe the bench prints
when a peer is missing.

Each peer runs in its own process; the functions here return the code that process runs (``body``),
to be timed by ``bench_convert.run``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

CACHE = Path.home() / ".cache" / "batuta-bench"
VENV = CACHE / "peers"
LLAMA_CPP_PYTHON = "0.3.36"  # the sdist the reference notes (docs/conversion.md) were measured with
TORCH = "2.13.0"  # the CPU build lying on this machine's disk; any other version downloads GBs of CUDA

INSTALL = f"""\
    python -m venv --system-site-packages {VENV}
    {VENV}/bin/pip install torch=={TORCH}
    {VENV}/bin/pip install transformers sentencepiece
    CMAKE_ARGS="-DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_BLAS=OFF -DGGML_NATIVE=ON -DLLAMA_CURL=OFF" \\
      CMAKE_BUILD_PARALLEL_LEVEL=2 {VENV}/bin/pip wheel --no-deps -w {CACHE}/wheels \\
      llama-cpp-python=={LLAMA_CPP_PYTHON}          # builds llama.cpp: ~6 min on 2 quiet cores
    {VENV}/bin/pip install {CACHE}/wheels/llama_cpp_python-{LLAMA_CPP_PYTHON}-*.whl
    (convert_hf_to_gguf.py comes from the same sdist; the bench downloads and unpacks it itself)"""

LLAMA_FTYPE = {"Q4_K_M": 15, "Q5_K_M": 17, "Q6_K": 18, "Q8_0": 7}


def peer_python(explicit: str | None) -> str:
    """The interpreter the peers run in: --peer-python, $BATUTA_BENCH_PEER_PYTHON, the bench venv, or ours."""
    if explicit:
        return explicit
    env = os.environ.get("BATUTA_BENCH_PEER_PYTHON")
    if env:
        return env
    venv = VENV / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def installed(python: str) -> dict[str, str | None]:
    """Version of torch / transformers / llama_cpp importable by ``python`` (None when absent)."""
    code = (
        "import importlib.metadata as m, json\n"
        "out = {}\n"
        "for mod, dist in (('torch', 'torch'), ('transformers', 'transformers'), ('llama_cpp', 'llama_cpp_python')):\n"
        "    try:\n"
        "        out[mod] = m.version(dist)\n"
        "    except m.PackageNotFoundError:\n"
        "        out[mod] = None\n"
        "print(json.dumps(out))\n"
    )
    try:
        p = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return {"torch": None, "transformers": None, "llama_cpp": None}


def find_convert_script(cache: Path = CACHE) -> Path | None:
    """``vendor/llama.cpp/convert_hf_to_gguf.py`` from the llama-cpp-python sdist (downloaded once, cached)."""
    pattern = "llama_cpp_python-*/vendor/llama.cpp/convert_hf_to_gguf.py"
    found = sorted(cache.glob(pattern))
    if found:
        return found[-1]
    cache.mkdir(parents=True, exist_ok=True)
    tars = sorted(cache.glob("llama_cpp_python-*.tar.gz"))
    if not tars:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        f"llama-cpp-python=={LLAMA_CPP_PYTHON}", "-d", str(cache)], capture_output=True, text=True)
        tars = sorted(cache.glob("llama_cpp_python-*.tar.gz"))
    if not tars:
        return None
    with tarfile.open(tars[-1]) as tf:
        members = [m for m in tf.getmembers() if "/vendor/llama.cpp/" in m.name and
                   (m.name.endswith(".py") or "/gguf-py/" in m.name or "/conversion/" in m.name)]
        tf.extractall(cache, members=members, filter="data")
    found = sorted(cache.glob(pattern))
    return found[-1] if found else None


def convert_hf_to_gguf_body(script: Path, src: Path, out: Path, outtype: str) -> str:
    """Run llama.cpp's converter as ``python convert_hf_to_gguf.py SRC --outfile OUT --outtype T`` would.

    Two additions, neither saving the peer any work: ``import torch`` is timed on its own first (the
    script's first heavy import, so the total is unchanged), and an unrecognised BPE pre-tokenizer
    (our generated tokenizer.json has no entry in llama.cpp's hash table, so the script would stop)
    falls back to ``gpt-2`` -- after the script has loaded the tokenizer and computed the hash.
    """
    d = script.parent
    return f"""
    import runpy, sys, time
    t = time.perf_counter()
    import torch
    extra = {{"torch_import_s": time.perf_counter() - t}}
    sys.path[:0] = [{str(d)!r}, {str(d / 'gguf-py')!r}]
    sys.argv = ["convert_hf_to_gguf.py", {str(src)!r}, "--outfile", {str(out)!r}, "--outtype", {outtype.lower()!r}]
    import conversion.base as _base
    _pre = _base.TextModel.get_vocab_base_pre
    def _get_vocab_base_pre(self, tokenizer):
        try:
            return _pre(self, tokenizer)
        except NotImplementedError:
            return "gpt-2"
    _base.TextModel.get_vocab_base_pre = _get_vocab_base_pre
    runpy.run_path({str(script)!r}, run_name="__main__")
    """


def llama_model_quantize_body(src: Path, out: Path, quant: str, threads: int) -> str:
    """``llama_model_quantize(src, out, params)`` through llama-cpp-python's ctypes binding.

    ``extra["call_s"]`` is the call alone (without starting Python and importing llama_cpp): the figure
    the table uses, which is the conservative choice for our ratio.
    """
    return f"""
    import ctypes, time
    import llama_cpp
    llama_cpp.llama_backend_init()
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = {LLAMA_FTYPE[quant]}
    p.nthread = {threads}
    t = time.perf_counter()
    rc = llama_cpp.llama_model_quantize({str(src).encode()!r}, {str(out).encode()!r}, ctypes.byref(p))
    extra = {{"call_s": time.perf_counter() - t}}
    if rc != 0:
        raise SystemExit(f"llama_model_quantize returned {{rc}}")
    """
