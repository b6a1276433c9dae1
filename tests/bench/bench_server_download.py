"""Loopback download throughput of the local Hub: huggingface_hub vs curl, in one run.

    python tests/bench/bench_server_download.py [--size-mib 1024] [--runs 2]

Generates a file (default 1 GiB) in a temporary directory, commits it to a fresh server root,
serves it on 127.0.0.1 and times, best of --runs:
  * ``hf_hub_download`` (the real client; writes the file into a fresh cache dir, like a user would)
  * ``curl -L -o /dev/null`` (the peer: a C client that discards the bytes)
and prints MB/s for each and the ratio.  Everything it wrote is deleted afterwards.
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    if shutil.which("curl") is None:
        print("curl not found: cannot run the peer measurement", file=sys.stderr)
        return 1

    from huggingface_hub import hf_hub_download

    from batuta_sync.server import HubServer

    size = args.size_mib << 20
    work = Path(tempfile.mkdtemp(prefix="batuta-bench-"))
    try:
        src = work / "big.bin"
        _make_file(src, size)
        srv = HubServer(work / "root", durable=False)
        srv.store.commit("bench/big", {"big.bin": src})
        src.unlink()
        srv.start()
        try:
            url = f"{srv.url}/bench/big/resolve/main/big.bin"
            hf_times, curl_times = [], []
            for i in range(args.runs):
                cache = work / f"cache{i}"
                t0 = time.perf_counter()
                p = hf_hub_download("bench/big", "big.bin", endpoint=srv.url, cache_dir=cache)
                hf_times.append(time.perf_counter() - t0)
                got = Path(p).stat().st_size
                shutil.rmtree(cache)
                if got != size:
                    print(f"hf_hub_download returned {got} bytes, expected {size}", file=sys.stderr)
                    return 1
                t0 = time.perf_counter()
                out = subprocess.run(
                    ["curl", "-sS", "-L", "-o", "/dev/null", "-w", "%{size_download}", url],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                curl_times.append(time.perf_counter() - t0)
                if int(float(out.stdout.strip())) != size:
                    print(f"curl downloaded {out.stdout} bytes, expected {size}", file=sys.stderr)
                    return 1
        finally:
            srv.stop()
        mb = size / 1e6
        hf_rate = mb / min(hf_times)
        curl_rate = mb / min(curl_times)
        print(f"file: {args.size_mib} MiB over 127.0.0.1, best of {args.runs}")
        print(f"hf_hub_download : {hf_rate:8.1f} MB/s  ({min(hf_times):.2f} s, writes to a cache dir)")
        print(f"curl -o /dev/null: {curl_rate:8.1f} MB/s  ({min(curl_times):.2f} s)")
        print(f"ratio hf/curl   : {hf_rate / curl_rate:8.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
