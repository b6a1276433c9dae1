"""Benchmark: Xet vs classic LFS through the real huggingface_hub client on one local Hub, same run.

    python tests/bench/bench_xet.py [--size-mb 1024] [--change-mb 1] [--json]

A file of ``--size-mb`` random bytes is uploaded to repo A through Xet (default install: hf_xet on)
and another one to repo B through classic LFS (``HF_HUB_DISABLE_XET=1``), each in a fresh client process; then
both are downloaded (fresh caches), and the Xet-stored file once more over plain HTTP
(``HF_HUB_DISABLE_XET=1``: the server rebuilds it from its xorbs); then ``--change-mb`` in the middle is rewritten and both are
re-uploaded (the Xet client cache is cleared first: what is reused comes from the server's dedup
API).  Times are wall clock around each client process (interpreter start included, ~1 s); bytes
are what the server received (request bodies) for each step.

Random data does not compress, so Xet's bytes are the file plus ~0.01 % of chunk headers; its gain
is on the re-upload.  The server verifies everything it accepts (hashes every chunk, decompresses
it, rebuilds the file to check its sha256), which is most of Xet's upload time here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from batuta_sync.server import HubServer


def _client(url: str, code: str, home: Path, *, xet: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_DISABLE_XET", "HF_TOKEN")}
    env.update(HF_ENDPOINT=url, HF_HOME=str(home), HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_TELEMETRY="1")
    if not xet:
        env["HF_HUB_DISABLE_XET"] = "1"
    prelude = "import os\nfrom huggingface_hub import HfApi, hf_hub_download\napi = HfApi(endpoint=os.environ['HF_ENDPOINT'])\n"
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", prelude + code], env=env, check=True, timeout=3600)
    return time.perf_counter() - t


def _bytes_in(srv: HubServer, mark: int) -> int:
    return sum(e.bytes_in for e in srv.log.entries[mark:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--change-mb", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    size = args.size_mb << 20
    tmp = Path(tempfile.mkdtemp(prefix="bench-xet-"))
    rows: list[dict[str, object]] = []
    try:
        files = {p: tmp / f"model-{p}.bin" for p in ("xet", "lfs")}  # distinct: no cross-repo dedup
        for f in files.values():
            with open(f, "wb") as out:
                left = size
                while left:
                    n = min(left, 16 << 20)
                    out.write(os.urandom(n))
                    left -= n
        srv = HubServer(tmp / "hub", durable=False).start()
        try:
            srv.store.create_repo("local/xet")
            srv.store.create_repo("local/lfs")
            home = tmp / "home"

            def step(name: str, proto: str, code: str) -> None:
                mark = len(srv.log.entries)
                secs = _client(srv.url, code, home, xet=proto == "xet")
                sent = _bytes_in(srv, mark)
                rows.append({"step": name, "protocol": proto, "seconds": round(secs, 2),
                             "MB/s": round(size / secs / 1e6, 1), "bytes_in": sent,
                             "bytes_in/size": round(sent / size, 4)})

            for proto in ("xet", "lfs"):
                step("upload", proto, f"api.upload_file(path_or_fileobj={str(files[proto])!r}, path_in_repo='model.bin', repo_id='local/{proto}')")
            for proto in ("xet", "lfs"):
                cache = tmp / f"cache-{proto}"
                step("download", proto, f"hf_hub_download('local/{proto}', 'model.bin', cache_dir={str(cache)!r})")
                shutil.rmtree(cache)
            cache = tmp / "cache-http"  # the Xet-stored file through plain HTTP (rebuilt by the server)
            step("download, Xet file, HTTP", "lfs",
                 f"hf_hub_download('local/xet', 'model.bin', cache_dir={str(cache)!r})")
            shutil.rmtree(cache)
            for f in files.values():
                with open(f, "r+b") as out:
                    out.seek(size // 2)
                    out.write(os.urandom(args.change_mb << 20))
            shutil.rmtree(home / "xet", ignore_errors=True)
            for proto in ("xet", "lfs"):
                step(f"re-upload ({args.change_mb} MB changed)", proto,
                     f"api.upload_file(path_or_fileobj={str(files[proto])!r}, path_in_repo='model.bin', repo_id='local/{proto}')")
            xorbs = sum(p.stat().st_size for p in (tmp / "hub" / "xet" / "xorbs").rglob("*") if p.is_file())
        finally:
            srv.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps({"size": size, "rows": rows, "xorb_store_bytes": xorbs}, indent=1))
        return
    print(f"file: {args.size_mb} MiB random; server: batuta hub serve on 127.0.0.1 (durable=False)")
    print(f"{'step':30} {'proto':5} {'seconds':>8} {'MB/s':>7} {'sent to server':>16} {'of file':>8}")
    for r in rows:
        print(f"{r['step']:30} {r['protocol']:5} {r['seconds']:>8} {r['MB/s']:>7} {r['bytes_in']:>16} {r['bytes_in/size']:>8.2%}")
    print(f"xorb store after both Xet uploads: {xorbs / size:.2%} of the file size (no other copy is kept)")


if __name__ == "__main__":
    main()
