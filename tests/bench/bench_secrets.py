"""Secret-scanner throughput on every uploaded byte (run by hand: ``python tests/bench/bench_secrets.py``).

Prints MB per CPU-second (and wall) of the raw scan (high-confidence tokens in ASCII, UTF-16 and UTF-32)
on ~1 GiB of random float16 tensor bytes and uniform random bytes (and its UTF-16/32 stages on text, whose
ASCII part the text engine covers), of :func:`scan_file` on a safetensors file of that tensor data and on
text (all 28 rules), and the ratio to the 500 MB/s target and to a peer measured in the same run: plain
``re`` (one compiled alternation of the same literal prefixes, ASCII only — less work) over the same bytes.  ``BENCH_SECRETS_MIB`` changes the size (default 1024).
"""

from __future__ import annotations

import json
import os
import re
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

TARGET = 500.0  # MB/s per core on tensor data (issue #13)


def _measure(fn: Callable[[], object], nbytes: int, repeat: int = 1) -> tuple[float, float]:
    best_c, best_w = float("inf"), float("inf")
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        best_w = min(best_w, time.perf_counter() - w)
        best_c = min(best_c, time.process_time() - c)
    return nbytes / best_c / 1e6, nbytes / best_w / 1e6


def main() -> None:
    import numpy as np

    from batuta_sync.publish.secrets import scan_file
    from batuta_sync.publish.secrets.raw import CHUNK, RawScanner
    from batuta_sync.publish.secrets.rules import HIGH_CONFIDENCE

    mib = int(os.environ.get("BENCH_SECRETS_MIB", "1024"))
    n = mib * 2**20
    rng = np.random.default_rng(0)
    f16 = rng.standard_normal(n // 2, dtype=np.float32).astype(np.float16).tobytes()
    rnd = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    src = "".join(p.read_text() for p in sorted(Path(__file__).resolve().parents[2].joinpath("batuta_sync").rglob("*.py")))
    text = (src * (n // 4 // len(src) + 1))[: n // 4].encode()
    peer = re.compile(b"|".join(re.escape(p) for rr in HIGH_CONFIDENCE for p in rr.prefixes))

    def raw(data: bytes, binary: bool) -> Callable[[], object]:
        def run() -> object:
            # as scan_file runs it: on text, the ASCII stage is left to the text engine (all rules)
            sc = RawScanner(binary=binary, ascii=False)
            view = memoryview(data)
            for i in range(0, len(data), CHUNK):
                sc.feed(bytes(view[i : i + CHUNK]))
            return sc.finish()

        return run

    print(f"secret scan throughput, {mib} MiB inputs (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs;"
          " MB per CPU-second is the per-core figure, wall time is shown too)")
    print(f"{'input':34s} {'scanner MB/s':>12s} {'wall':>8s} {'x target':>9s} {'re peer':>9s} {'x peer':>7s}")
    for name, data, binary in (("float16 tensor bytes (raw scan)", f16, True), ("uniform random bytes (raw scan)", rnd, True),
                               ("text: UTF-16/32 stages only", text, False)):
        cpu, wall = _measure(raw(data, binary), len(data), repeat=2)
        pcpu, _ = _measure(lambda d=data: sum(1 for _ in peer.finditer(d)), len(data))  # type: ignore[misc]
        print(f"{name:34s} {cpu:12.0f} {wall:8.0f} {cpu / TARGET:9.2f} {pcpu:9.0f} {cpu / pcpu:7.1f}")

    with tempfile.TemporaryDirectory() as tmp:
        st = Path(tmp) / "model.safetensors"
        header = json.dumps({"__metadata__": {"format": "pt"},
                             "w": {"dtype": "F16", "shape": [len(f16) // 2], "data_offsets": [0, len(f16)]}}).encode()
        st.write_bytes(struct.pack("<Q", len(header)) + header + f16)
        cpu, wall = _measure(lambda: scan_file(st, "model.safetensors"), st.stat().st_size)
        print(f"{'scan_file(model.safetensors)':34s} {cpu:12.0f} {wall:8.0f} {cpu / TARGET:9.2f}")
        txt = Path(tmp) / "train.py"
        txt.write_bytes(text[: 64 * 2**20])
        cpu, wall = _measure(lambda: scan_file(txt, "train.py"), txt.stat().st_size)
        print(f"{'scan_file(train.py, all 28 rules)':34s} {cpu:12.0f} {wall:8.0f}")


if __name__ == "__main__":
    main()
