"""Fuzz targets: every parser of untrusted input, as ``bytes -> None`` functions.

Shared by the hypothesis tests (CI, bounded examples) and ``atheris_harness.py`` (on demand).
The contract checked by :func:`run_bounded`: only :class:`~batuta_sync.errors.BatutaError`
subclasses escape; each input is handled in bounded time and memory.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
import tracemalloc
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batuta_sync.errors import BatutaError

TIME_LIMIT_S = 0.25  # the robustness bound of the issue (per input, without tracing)
MEMORY_LIMIT = 64 << 20


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _tmp_file(data: bytes, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(suffix=suffix, prefix="batuta-fuzz-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Path(name)


def _with_file(data: bytes, suffix: str, fn: Callable[[Path], Any]) -> None:
    p = _tmp_file(data, suffix)
    try:
        fn(p)
    finally:
        p.unlink(missing_ok=True)


# --------------------------------------------------------------------------- targets


def t_manifest(data: bytes) -> None:
    from batuta_sync.core.manifest import parse_manifest

    parse_manifest(_text(data), source="fuzz/hf.yaml")


def t_lockfile(data: bytes) -> None:
    from batuta_sync.core.lockfile import loads

    loads(_text(data), source="fuzz/hf.lock")


FUZZ_PLAN_KEY = b"fuzz-plan-key-" + b"0" * 32  # strategies.plans() signs with it: mutations get past the MAC


def t_plan(data: bytes) -> None:
    from batuta_sync.core.planner.plan import Plan

    Plan.from_json(_text(data), key=FUZZ_PLAN_KEY, source="fuzz/plan.json")


def t_safetensors(data: bytes) -> None:
    from batuta_sync.publish.validate import parse_safetensors_header
    from batuta_sync.safety import check_safetensors_header

    parse_safetensors_header(data, len(data), "fuzz.safetensors")
    check_safetensors_header(data)


def t_safetensors_file(data: bytes) -> None:
    from batuta_sync.convert.st_io import read_header
    from batuta_sync.publish.validate import validate_safetensors
    from batuta_sync.server.meta import safetensors_params

    def run(p: Path) -> None:
        safetensors_params(p)  # server side: metadata of an uploaded file (returns None when bad)
        for fn in (read_header, validate_safetensors):
            try:
                fn(p)
            except BatutaError:
                pass

    _with_file(data, ".safetensors", run)


def t_gguf(data: bytes) -> None:
    from batuta_sync.publish.validate import parse_gguf_bytes, read_gguf_strings

    try:
        parse_gguf_bytes(data, "fuzz.gguf")
    finally:
        read_gguf_strings(io.BytesIO(data), len(data), "fuzz.gguf")


def t_gguf_file(data: bytes) -> None:
    from batuta_sync.server.meta import gguf_summary

    _with_file(data, ".gguf", gguf_summary)


def t_pickle_scan(data: bytes) -> None:
    from batuta_sync.publish.secrets import pickle_strings, scan_bytes
    from batuta_sync.safety import looks_like_pickle, pickle_bearing_reason

    looks_like_pickle(data[:4096])
    pickle_bearing_reason(data)
    pickle_strings(data)
    scan_bytes(data, "fuzz/model.pkl")


def torch_zip(pkl: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/data/0", b"\0" * 64)
    return buf.getvalue()


def t_unpickler(data: bytes) -> None:
    """The allow-listed torch unpickler, on a torch-zip whose data.pkl is ``data``."""
    from batuta_sync.convert.pickle_safe import load_state_dict
    from batuta_sync.safety import sniff_file_safety

    def run(p: Path) -> None:
        sniff_file_safety(p)
        load_state_dict(p)

    _with_file(torch_zip(data), ".pt", run)


def t_notebook(data: bytes) -> None:
    from batuta_sync.publish.secrets import scan_bytes, scan_json_text

    scan_json_text(data, "fuzz/notebook.ipynb")
    scan_bytes(data, "fuzz/notebook.ipynb")


def t_hub_json(data: bytes) -> None:
    """What a malicious server can send as repo info / tree JSON, after the HTTP layer decoded it."""
    from batuta_sync.hub.models import files_from_siblings, files_from_tree, info_from_json
    from batuta_sync.types import HfAssetType

    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return  # not JSON: the HTTP layer's job (covered by the hostile-server tests)
    for kind in HfAssetType:
        info_from_json(kind, obj)
    files_from_tree(obj if isinstance(obj, list) else [obj])
    files_from_siblings(obj.get("siblings") if isinstance(obj, dict) else obj)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "manifest": t_manifest,
    "lockfile": t_lockfile,
    "plan": t_plan,
    "safetensors": t_safetensors,
    "safetensors_file": t_safetensors_file,
    "gguf": t_gguf,
    "gguf_file": t_gguf_file,
    "pickle_scan": t_pickle_scan,
    "unpickler": t_unpickler,
    "notebook": t_notebook,
    "hub_json": t_hub_json,
}


# --------------------------------------------------------------------------- the contract


@dataclass
class Stats:
    inputs: int = 0
    batuta_errors: int = 0
    max_seconds: float = 0.0
    max_peak_bytes: int = 0


STATS: dict[str, Stats] = {}


class EscapedError(AssertionError):
    pass


def run_bounded(name: str, data: bytes, *, trace: bool = True) -> Stats:
    """Run target ``name`` on ``data``; raise EscapedError if anything but a BatutaError escapes
    or a bound is exceeded (memory with tracemalloc; time re-measured untraced when close)."""
    fn = TARGETS[name]
    st = STATS.setdefault(name, Stats())
    st.inputs += 1

    def once() -> float:
        t0 = time.thread_time()
        try:
            fn(data)
        except BatutaError:
            st.batuta_errors += 1
        except RecursionError as exc:  # a stack overflow is a crash too
            raise EscapedError(f"{name}: RecursionError escaped: {exc}") from exc
        except Exception as exc:
            raise EscapedError(f"{name}: {type(exc).__name__} escaped: {str(exc)[:300]}") from exc
        return time.thread_time() - t0

    if trace:
        tracemalloc.start()
        try:
            seconds = once()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        st.max_peak_bytes = max(st.max_peak_bytes, peak)
        if peak > MEMORY_LIMIT:
            raise EscapedError(f"{name}: {peak / 2**20:.1f} MiB for a {len(data)}-byte input (limit 64 MiB)")
        if seconds > TIME_LIMIT_S:
            seconds = min(seconds, _untraced(fn, data))
    else:
        seconds = once()
    st.max_seconds = max(st.max_seconds, seconds)
    # CPU time of this thread, not wall time: a pathological input burns CPU, while waiting for a core
    # another process holds (2 shared CI cores) does not count; still 4x the 250 ms bound as margin
    if seconds > 4 * TIME_LIMIT_S:
        raise EscapedError(f"{name}: {seconds * 1000:.0f} ms of CPU for a {len(data)}-byte input (limit 4 x 250 ms)")
    return st


def _untraced(fn: Callable[[bytes], None], data: bytes) -> float:
    t0 = time.thread_time()
    try:
        fn(data)
    except Exception:
        pass
    return time.thread_time() - t0
