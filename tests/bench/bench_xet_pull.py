"""Benchmark behind batuta pull's choice for Xet-stored files (issue 21 point 4): reconstruction
(the Xet CAS, chunk-level dedup) or the plain HTTP path (``/resolve/``, every byte hashed)?

    python tests/bench/bench_xet_pull.py [--size-mb 256] [--change-mb 1] [--json]

One local Hub; a file of ``--size-mb`` random bytes is uploaded through Xet (the real client), then:

1. cold download: batuta's HTTP pull, batuta's Xet reconstruction (``BATUTA_DOWNLOAD_PROTOCOL=xet``)
   and the real client's (``hf_xet``, its chunk cache on so that step 3 could reuse chunks);
2. ``--change-mb`` in the middle is rewritten and uploaded again (a new revision);
3. download of the new revision with the old one in the cache: batuta HTTP (the whole file),
   batuta Xet (chunks of the old revision's blob reused) and hf_xet.

Times are wall clock around each client process (interpreter start included); bytes are what the
server sent (response bodies) in each step.  The decision and these figures are in
``docs/pull-and-cache.md`` ("Xet-stored files").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from batuta_sync.server import HubServer

ROOT = Path(__file__).resolve().parents[2]


def _run(argv: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, env=env, check=True, timeout=3600, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=256)
    ap.add_argument("--change-mb", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    size = args.size_mb << 20
    tmp = Path(tempfile.mkdtemp(prefix="bench-xet-pull-"))
    rows: list[dict[str, object]] = []
    src = tmp / "model.npy"
    with open(src, "wb") as out:
        left = size
        while left:
            n = min(left, 16 << 20)
            out.write(os.urandom(n))
            left -= n
    base = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_DISABLE_XET", "HF_TOKEN", "HF_HUB_OFFLINE")}
    base.update(HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_TELEMETRY="1",
                PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    srv = HubServer(tmp / "hub", durable=False).start()
    try:
        srv.store.create_repo("local/x")
        base["HF_ENDPOINT"] = srv.url
        upload = ("import os\nfrom huggingface_hub import HfApi\n"
                  f"HfApi(endpoint=os.environ['HF_ENDPOINT']).upload_file(path_or_fileobj={str(src)!r}, "
                  "path_in_repo='model.npy', repo_id='local/x')\n")
        _run([sys.executable, "-c", upload], {**base, "HF_HOME": str(tmp / "up-home")})
        xet_env = {**base, "HF_HOME": str(tmp / "xet-home"), "HF_XET_CHUNK_CACHE_SIZE_BYTES": str(8 << 30)}
        http_env = {**base, "HF_HOME": str(tmp / "batuta-home")}
        bxet_env = {**base, "HF_HOME": str(tmp / "batuta-xet-home"), "BATUTA_DOWNLOAD_PROTOCOL": "xet"}
        xet_get = ("import os\nfrom huggingface_hub import hf_hub_download\n"
                   "hf_hub_download('local/x', 'model.npy', endpoint=os.environ['HF_ENDPOINT'])\n")
        batuta_get = [sys.executable, "-m", "batuta_sync", "-q", "hf", "pull", "files", "local/x", "model.npy", "--allow-unsafe"]

        def step(name: str, how: str, argv: list[str], env: dict[str, str]) -> None:
            mark = len(srv.log.entries)
            secs = _run(argv, env)
            got = sum(e.bytes_out for e in srv.log.entries[mark:])
            rows.append({"step": name, "path": how, "seconds": round(secs, 2),
                         "bytes_from_server": got, "of_file": round(got / size, 4)})

        step("cold download", "batuta HTTP", batuta_get, http_env)
        step("cold download", "batuta Xet", batuta_get, bxet_env)
        step("cold download", "hf_xet", [sys.executable, "-c", xet_get], xet_env)
        with open(src, "r+b") as out:
            out.seek(size // 2)
            out.write(os.urandom(args.change_mb << 20))
        _run([sys.executable, "-c", upload], {**base, "HF_HOME": str(tmp / "up-home")})
        step(f"new revision ({args.change_mb} MB changed)", "batuta HTTP", batuta_get, http_env)
        step(f"new revision ({args.change_mb} MB changed)", "batuta Xet", batuta_get, bxet_env)
        step(f"new revision ({args.change_mb} MB changed)", "hf_xet", [sys.executable, "-c", xet_get], xet_env)
    finally:
        srv.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps({"size": size, "rows": rows}, indent=1))
        return
    print(f"file: {args.size_mb} MiB random, stored with Xet; server: batuta hub serve on 127.0.0.1")
    print(f"{'step':32} {'path':20} {'seconds':>8} {'from server':>14} {'of file':>8}")
    for r in rows:
        print(f"{r['step']:32} {r['path']:20} {r['seconds']:>8} {r['bytes_from_server']:>14} {r['of_file']:>8.2%}")


if __name__ == "__main__":
    main()
