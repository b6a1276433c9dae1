"""Pull throughput: batuta's pull engine vs huggingface_hub.snapshot_download, same server, same run.

    python tests/bench/bench_pull.py [--files 4] [--size-mib 256] [--runs 1] [--jobs 8]

Generates a repo of ``--files`` × ``--size-mib`` MiB safetensors shards plus small files,
serves it with ``batuta hub serve`` in a subprocess on 127.0.0.1, then (fresh cache dir
each time, best of ``--runs``):

* ``batuta_sync.pull.pull`` - every byte hashed (sha256 for LFS files, git sha1 for the rest)
  and verified before the blob gets its final name;
* ``huggingface_hub.snapshot_download`` (HF_HUB_DISABLE_XET=1) - checks sizes only;

and prints seconds, GB/s and the ratio, then repeats the batuta pull against the filled
cache and prints the server's request counts for it (content requests must be 0).
Everything it generated is deleted afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REPO = "bench/pull-4x256"


def _write_safetensors(path: Path, size: int, seed: int) -> None:
    """A valid safetensors file: one U8 tensor of ``size - header`` random bytes."""
    header = json.dumps(
        {"__metadata__": {"format": "pt"}, "w": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}}
    )
    n = size - 8 - len(header) - 64
    header = json.dumps(
        {"__metadata__": {"format": "pt"}, "w": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}
    )
    header += " " * (size - 8 - n - len(header))
    block = bytearray(os.urandom(1 << 20))
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header.encode())
        left = n
        i = seed
        while left > 0:
            block[:8] = struct.pack("<Q", i)  # every MiB differs
            k = min(left, len(block))
            f.write(block[:k])
            left -= k
            i += 1
    assert path.stat().st_size == size


def _cpu() -> float:
    """user + system CPU seconds of this process (all threads)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _post_json(url: str, body: object, method: str = "POST") -> None:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        r.read()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=2, help="timed runs per client, alternating who goes first")
    ap.add_argument("--jobs", type=int, default=8)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="batuta-bench-pull-"))
    server: subprocess.Popen[bytes] | None = None
    try:
        # 1. the repo, committed straight into a server root
        from batuta_sync.server import HubServer

        src = work / "src"
        src.mkdir()
        files: dict[str, bytes | Path] = {
            "config.json": json.dumps({"architectures": ["LlamaForCausalLM"], "hidden_size": 4096}).encode(),
            "tokenizer.json": json.dumps({"model": {"vocab": {f"t{i}": i for i in range(20000)}}}).encode(),
            "tokenizer_config.json": b'{"bos_token": "<s>"}',
            "generation_config.json": b'{"do_sample": true}',
            "README.md": b"---\nlicense: mit\n---\n# bench\n",
        }
        for i in range(args.files):
            p = src / f"model-{i + 1:05d}-of-{args.files:05d}.safetensors"
            _write_safetensors(p, args.size_mib << 20, seed=i * 100_000)
            files[p.name] = p
        files["model.safetensors.index.json"] = json.dumps(
            {
                "weight_map": {
                    f"w{i}": f"model-{i + 1:05d}-of-{args.files:05d}.safetensors" for i in range(args.files)
                }
            }
        ).encode()
        total = sum((v.stat().st_size if isinstance(v, Path) else len(v)) for v in files.values())
        store_srv = HubServer(work / "root", durable=False)
        store_srv.store.commit(REPO, files)
        shutil.rmtree(src)

        # 2. the server in its own process
        port = _free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "batuta_sync",
                "hub",
                "serve",
                "--root",
                str(work / "root"),
                "--port",
                str(port),
                "--control-api",  # the bench reads /_batuta/counters and the log (off by default)
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                _get_json(f"{url}/_batuta/counters")
                break
            except OSError:
                time.sleep(0.05)
        else:
            print("the server did not start", file=sys.stderr)
            return 1

        from huggingface_hub import snapshot_download

        from batuta_sync.pull import PullRequest, pull
        from batuta_sync.settings import resolve_settings
        from batuta_sync.types import RepoRef

        def settings_for(cache: Path) -> object:
            return resolve_settings(
                env={"HF_ENDPOINT": url, "HF_HOME": str(cache / "home"), "HF_HUB_CACHE": str(cache / "hub")}
            )

        def settle() -> None:
            """Same start for every timed run: no dirty pages pending, server blobs in the page cache."""
            os.sync()
            for blob in (work / "root").rglob("*"):
                if blob.is_file():
                    with open(blob, "rb") as fh:
                        while fh.read(8 << 20):
                            pass

        ours_cpu: list[float] = []
        theirs_cpu: list[float] = []

        def run_ours(run: int) -> float:
            cache = work / f"batuta{run}"
            shutil.rmtree(cache, ignore_errors=True)
            settle()
            c0 = _cpu()
            t0 = time.perf_counter()
            res = pull(settings_for(cache), PullRequest(RepoRef(REPO)), jobs=args.jobs)  # type: ignore[arg-type]
            dt = time.perf_counter() - t0
            ours_cpu.append(_cpu() - c0)
            assert sum(f.size for f in res.selected) == total, "batuta pulled the wrong set"
            for f in res.selected:  # untimed: what is on disk is what the Hub listed
                h = hashlib.sha256() if f.sha256 else hashlib.sha1(b"blob %d\x00" % f.size)
                with open(res.snapshot_dir / f.path, "rb") as fh:
                    while chunk := fh.read(8 << 20):
                        h.update(chunk)
                assert h.hexdigest() == (f.sha256 or f.blob_id), f"{f.path} differs on disk"
            return dt

        def run_theirs(run: int) -> float:
            hcache = work / f"hf{run}"
            settle()
            c0 = _cpu()
            t0 = time.perf_counter()
            path = snapshot_download(REPO, endpoint=url, cache_dir=hcache, max_workers=args.jobs)
            dt = time.perf_counter() - t0
            theirs_cpu.append(_cpu() - c0)
            assert sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) == total
            shutil.rmtree(hcache)
            return dt

        ours: list[float] = []
        theirs: list[float] = []
        for run in range(args.runs):  # alternate who goes first
            if run % 2 == 0:
                ours.append(run_ours(run))
                theirs.append(run_theirs(run))
            else:
                theirs.append(run_theirs(run))
                ours.append(run_ours(run))
            if run < args.runs - 1:
                shutil.rmtree(work / f"batuta{run}")

        # 3. a second pull against the filled cache: request counts
        _post_json(f"{url}/_batuta/log", {}, method="DELETE")
        cache = work / f"batuta{args.runs - 1}"
        t0 = time.perf_counter()
        again = pull(settings_for(cache), PullRequest(RepoRef(REPO)), jobs=args.jobs)  # type: ignore[arg-type]
        cached_s = time.perf_counter() - t0
        log = _get_json(f"{url}/_batuta/log")
        entries = log.get("entries", log) if isinstance(log, dict) else log
        paths = [e.get("path", "") for e in entries] if isinstance(entries, list) else []
        content = sum(1 for p in paths if "/resolve/" in p)
        api = sum(1 for p in paths if p.startswith("/api/"))

        gb = total / 1e9
        best_ours, best_theirs = min(ours), min(theirs)
        print(
            f"repo: {args.files} x {args.size_mib} MiB + {len(files) - args.files} small files = {total / 2**20:.0f} MiB, "
            f"127.0.0.1, server in a subprocess, {os.cpu_count()} CPUs, best of {args.runs}"
        )
        print(
            f"batuta pull (every byte hashed)  : {best_ours:6.2f} s  {gb / best_ours:5.2f} GB/s  (jobs={args.jobs})"
        )
        print(
            f"huggingface_hub.snapshot_download: {best_theirs:6.2f} s  {gb / best_theirs:5.2f} GB/s  (size checks only)"
        )
        print(
            f"ratio (snapshot_download time / batuta time): {best_theirs / best_ours:.2f}x  (target >= 1.5x, goal 2x)"
        )
        print(
            "runs (s): batuta "
            + " ".join(f"{t:.2f}" for t in ours)
            + " | snapshot_download "
            + " ".join(f"{t:.2f}" for t in theirs)
            + "  (alternating who goes first; median ratio "
            + f"{sorted(theirs)[len(theirs) // 2] / sorted(ours)[len(ours) // 2]:.2f}x)"
        )
        print(
            f"client CPU per GB (load-independent-ish): batuta {min(ours_cpu) / gb:.2f} s, "
            f"snapshot_download {min(theirs_cpu) / gb:.2f} s  (ratio {min(theirs_cpu) / min(ours_cpu):.2f}x)"
        )
        print(
            f"second batuta pull of the cached repo: {cached_s:.2f} s, {len(paths)} request(s): "
            f"{api} API, {content} content (cache hits {again.cache_hits}/{len(again.selected)})"
        )
        return 0 if content == 0 else 1
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
