"""Benchmark: differential re-publish vs ``HfApi.upload_folder`` on the same local Hub, in one run.

    python tests/bench/bench_push.py [--size-mb 1000] [--files 10]

A 10-file, ~1 GB model folder (config.json + 9 safetensors shards) is pushed to two repos on one
local server: repo A with ``batuta_sync.publish.push``, repo B with ``HfApi.upload_folder``.
Then one shard is changed and both re-publish; then nothing is changed and both re-publish again.
Bytes sent are read from the server's request log (bytes_in), times are wall clock.

Targets: bytes(batuta) <= bytes(upload_folder) for the one-file change; the unchanged re-publish takes
< 1/10 of upload_folder's time.  Also prints the secret scanner's throughput on text (target
≥ 20 MB/s) and the adversarial inputs of the reference (target < 2 s each).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _shard(path: Path, nbytes: int, seed: int) -> None:
    n = nbytes // 4
    header = {"__metadata__": {"format": "pt"}, f"layers.{seed}.weight": {"dtype": "F32", "shape": [n],
                                                                        "data_offsets": [0, n * 4]}}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        left = n * 4
        block = os.urandom(8 * 1024 * 1024)
        while left:
            k = min(left, len(block))
            f.write(block[:k])
            left -= k


def _bytes_in(srv: object, mark: int) -> int:
    return sum(e.bytes_in for e in srv.log.entries[mark:])  # type: ignore[attr-defined]


def _puts(srv: object, mark: int) -> int:
    return sum(1 for e in srv.log.entries[mark:] if e.method == "PUT")  # type: ignore[attr-defined]


def bench_scanner() -> None:
    from batuta_sync.publish.secrets import scan_text
    from tests.publish.fixtures import tokenizer_json

    code = "".join(p.read_text() for p in sorted(Path(__file__).resolve().parents[2].joinpath("batuta_sync").rglob("*.py")))
    tok = json.dumps(tokenizer_json(20000), ensure_ascii=False, indent=2)
    print(f"\nsecret scanner throughput (target >= 20 MB/s on text; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs — under load, trust the CPU-second figure):")
    for name, text in (("python source", code), ("tokenizer.json", tok)):
        data = (text * (30_000_000 // len(text) + 1))[:30_000_000].encode()
        t, c = time.perf_counter(), time.process_time()
        scan_text(data, "bench")
        dt, dc = time.perf_counter() - t, time.process_time() - c
        print(f"  {name:16s} {len(data) / dt / 1e6:6.1f} MB/s wall, {len(data) / dc / 1e6:6.1f} MB per CPU-second")
    print("adversarial 10 MiB inputs (target < 2 s each):")
    for name, text in (
        ("single line", "a" * (10 * 2**20)),
        ("100k PEM headers", "-----BEGIN RSA PRIVATE KEY-----\n" * 100_000),
        ("key= + alnum run", "key=" + "aB3" * (10 * 2**20 // 3)),
        ("'ey' repeated", "ey" * (5 * 2**20)),
        ("percent run", "%41" * (10 * 2**20 // 3)),
    ):
        t, c = time.perf_counter(), time.process_time()
        scan_text(text, "adv")
        print(f"  {name:18s} {time.perf_counter() - t:5.2f} s wall, {time.process_time() - c:5.2f} CPU-s")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1000)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--skip-scanner", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-push-"))
    os.environ["HF_HOME"] = str(tmp / "hf-home")
    from huggingface_hub import HfApi

    from batuta_sync.publish import PushRequest, push
    from batuta_sync.server import HubServer
    from batuta_sync.settings import resolve_settings

    srv = HubServer(root=tmp / "hub")
    srv.start()
    try:
        # Two folders with the same layout and different random content: the server de-duplicates LFS
        # objects by sha256 across repos, so sharing content would let the second tool skip uploads.
        shards = args.files - 1
        per = args.size_mb * 1_000_000 // shards
        folders = []
        t = time.perf_counter()
        for name in ("model-a", "model-b"):
            folder = tmp / name
            folder.mkdir()
            (folder / "config.json").write_text(json.dumps({"model_type": "bench", "architectures": ["BenchModel"]}))
            for i in range(shards):
                _shard(folder / f"model-{i + 1:05d}-of-{shards:05d}.safetensors", per, i)
            folders.append(folder)
        total = sum(p.stat().st_size for p in folders[0].iterdir())
        print(f"folder: {args.files} files, {total / 1e6:.0f} MB, x2 (generated in {time.perf_counter() - t:.1f} s)")

        settings = resolve_settings(flags={"endpoint": srv.url})
        api = HfApi(endpoint=srv.url, token=False)
        req = PushRequest(folders[0], "bench/batuta")
        api.create_repo("bench/upload-folder", exist_ok=True)

        def ours() -> tuple[float, int, int, bool]:
            mark = len(srv.log.entries)
            t0 = time.perf_counter()
            res = push(settings, req)
            return time.perf_counter() - t0, _bytes_in(srv, mark), _puts(srv, mark), res.noop

        def theirs() -> tuple[float, int, int]:
            mark = len(srv.log.entries)
            t0 = time.perf_counter()
            api.upload_folder(repo_id="bench/upload-folder", folder_path=str(folders[1]))
            return time.perf_counter() - t0, _bytes_in(srv, mark), _puts(srv, mark)

        rows = []
        o, u = ours(), theirs()
        rows.append(("first publish", o, u))
        # change one shard (same size, new content)
        for folder in folders:
            victim = folder / f"model-{shards // 2 + 1:05d}-of-{shards:05d}.safetensors"
            with open(victim, "r+b") as f:
                f.seek(-1024 * 1024, os.SEEK_END)
                f.write(os.urandom(1024 * 1024))
        o, u = ours(), theirs()
        rows.append(("one file changed", o, u))
        o, u = ours(), theirs()
        rows.append(("nothing changed", o, u))

        print(f"\n{'scenario':18s} | {'batuta push':>28s} | {'HfApi.upload_folder':>28s} | time ratio")
        for name, (ot, ob, op, _noop), (ut, ub, up) in rows:
            print(f"{name:18s} | {ot:7.2f} s {ob / 1e6:9.1f} MB {op:3d} PUT | {ut:7.2f} s {ub / 1e6:9.1f} MB "
                  f"{up:3d} PUT | {ot / ut:6.3f}")
        changed, unchanged = rows[1], rows[2]
        ok_bytes = changed[1][1] <= changed[2][1]
        ok_time = unchanged[1][0] < unchanged[2][0] / 10
        print(f"\ntarget 1: bytes(batuta) <= bytes(upload_folder) after one change: "
              f"{changed[1][1]} <= {changed[2][1]} -> {'PASS' if ok_bytes else 'FAIL'}")
        print(f"target 2: unchanged re-publish < 1/10 of upload_folder: {unchanged[1][0]:.3f} s vs "
              f"{unchanged[2][0]:.3f} s (ratio {unchanged[1][0] / unchanged[2][0]:.3f}) -> "
              f"{'PASS' if ok_time else 'FAIL'}")
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if not args.skip_scanner:
        bench_scanner()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
