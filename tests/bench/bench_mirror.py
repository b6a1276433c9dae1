"""Pull-through mirror throughput on 127.0.0.1: direct from the upstream, cold through the mirror
(fetched from the upstream, verified, stored, then served) and warm (served from the mirror's store),
in one run.

    python tests/bench/bench_mirror.py [--size-mib 1024] [--runs 2]

An upstream ``HubServer`` holds a generated file (default 1 GiB, LFS); a mirror ``HubServer`` with
``upstream=`` points at it.  Each measurement downloads with ``curl -L -o /dev/null`` (a C client, so
the servers are what is measured) and, for reference, ``hf_hub_download`` into a fresh cache:

  * direct: from the upstream
  * cold: through a fresh mirror root (one upstream fetch, sha256-verified, then sent)
  * warm: the same mirror again (its store; ``os.sendfile``)

Prints MB/s for each, best of --runs (cold: a new mirror root per run).  Everything written is
deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def _make_file(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n


def _curl(url: str, size: int) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(
        ["curl", "-sS", "-L", "-o", "/dev/null", "-w", "%{size_download}", url],
        check=True,
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - t0
    if int(float(out.stdout.strip() or 0)) != size:
        raise SystemExit(f"curl got {out.stdout!r} bytes from {url}, expected {size}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    if shutil.which("curl") is None:
        print("curl not found", file=sys.stderr)
        return 1

    from huggingface_hub import hf_hub_download

    from batuta_sync.server import HubServer
    from batuta_sync.server.mirror import MirrorConfig

    size = args.size_mib << 20
    work = Path(tempfile.mkdtemp(prefix="batuta-bench-mirror-"))
    results: dict[str, list[float]] = {}

    def record(name: str, seconds: float) -> None:
        results.setdefault(name, []).append(seconds)

    def hf(endpoint: str, n: str) -> float:
        cache = work / f"cache-{n}"
        t0 = time.perf_counter()
        p = hf_hub_download("bench/big", "big.safetensors", endpoint=endpoint, cache_dir=cache)
        took = time.perf_counter() - t0
        if Path(p).stat().st_size != size:
            raise SystemExit("hf_hub_download returned a wrong size")
        shutil.rmtree(cache)
        return took

    try:
        src = work / "big.safetensors"
        _make_file(src, size)
        up = HubServer(work / "upstream", durable=False)
        up.store.commit("bench/big", {"big.safetensors": src})
        src.unlink()
        up.start()
        try:
            path = "/bench/big/resolve/main/big.safetensors"
            for i in range(args.runs):
                record("direct  curl", _curl(up.url + path, size))
                record("direct  hf_hub_download", hf(up.url, f"d{i}"))
                for kind in ("curl", "hf_hub_download"):
                    root = work / f"mirror-{kind}-{i}"
                    m = HubServer(root, durable=False, upstream=MirrorConfig(up.url)).start()
                    try:
                        if kind == "curl":
                            record("cold    curl", _curl(m.url + path, size))
                            record("warm    curl", _curl(m.url + path, size))
                        else:
                            record("cold    hf_hub_download", hf(m.url, f"c{i}"))
                            record("warm    hf_hub_download", hf(m.url, f"w{i}"))
                    finally:
                        m.stop()
                        shutil.rmtree(root, ignore_errors=True)
        finally:
            up.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mib = size / (1 << 20)
    print(f"file: {mib:.0f} MiB, best of {args.runs} run(s), 127.0.0.1")
    for name in sorted(results, key=lambda n: (n.split()[1], ["direct", "cold", "warm"].index(n.split()[0]))):
        best = min(results[name])
        print(f"  {name:<26} {size / best / 1e6:8.0f} MB/s  ({best:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
