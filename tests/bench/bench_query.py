"""`batuta hf search` latency against the local Hub with 50 ms injected latency, next to
huggingface_hub's ``HfApi.list_models`` on the same server, in one run.

    python tests/bench/bench_query.py [--repos 200] [--runs 7] [--latency-ms 50]

Seeds ``--repos`` model repos into a fresh server root, injects ``--latency-ms`` per request,
then times (median of ``--runs``):

  * ``HfClient.search_models`` in process, metadata cache disabled (TTL 0)     -- ours
  * ``HfApi(endpoint).list_models(search=…, limit=20)`` in process              -- the peer
  * ``batuta hf search models llama`` as a cold subprocess (TTL 0)              -- ours, CLI
  * the same command repeated within the TTL (answered from the metadata cache)
Spec target: search < 2 s.  Everything it wrote is deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def median_time(fn: Callable[[], object], runs: int) -> tuple[float, object]:
    times = []
    result: object = None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repos", type=int, default=200)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    args = ap.parse_args()

    from huggingface_hub import HfApi

    from batuta_sync.client import HfClient
    from batuta_sync.hub.models import ModelQuery, SortKey
    from batuta_sync.server import HubServer
    from batuta_sync.settings import resolve_settings

    work = Path(tempfile.mkdtemp(prefix="batuta-bench-query-"))
    srv = HubServer(work / "root", durable=False)
    try:
        for i in range(args.repos):
            name = f"org{i % 10}/{'llama' if i % 2 else 'mistral'}-{i}"
            card = f"---\nlibrary_name: transformers\npipeline_tag: text-generation\n---\n# {name}\n".encode()
            srv.store.commit(name, {"README.md": card, "config.json": b"{}"})
            srv.store.set_downloads(name, i * 7 % 1000)
        srv.start()
        srv.faults.configure(latency_ms=args.latency_ms)
        hf_home = work / "hf"
        settings = resolve_settings(
            flags={"endpoint": srv.url, "metadata_ttl": 0.0, "hf_home": str(hf_home)}, env={}
        )
        hub = HfClient(settings)
        query = ModelQuery("llama", sort=SortKey.DOWNLOADS, limit=20)
        ours, found = median_time(lambda: hub.search_models(query), args.runs)
        api = HfApi(endpoint=srv.url, token=False)
        peer, peer_found = median_time(
            lambda: list(api.list_models(search="llama", sort="downloads", limit=20)), args.runs
        )
        assert [m.id for m in found] == [m.id for m in peer_found], "ours and the peer disagree"  # type: ignore[attr-defined]
        hub.close()

        env = {**os.environ, "HF_ENDPOINT": srv.url, "HF_HOME": str(hf_home), "BATUTA_METADATA_TTL": "0"}
        env.pop("HF_TOKEN", None)
        batuta = [sys.executable, "-m", "batuta_sync", "hf", "search", "models", "llama", "--limit", "20"]

        def cli() -> None:
            subprocess.run(batuta, env=env, check=True, capture_output=True)

        cli_cold, _ = median_time(cli, args.runs)
        env_cached = {**env, "BATUTA_METADATA_TTL": "600"}
        subprocess.run(batuta, env=env_cached, check=True, capture_output=True)  # fill the cache
        srv.log.clear()
        cli_cached, _ = median_time(
            lambda: subprocess.run(batuta, env=env_cached, check=True, capture_output=True), args.runs
        )
        cached_requests = srv.log.count()
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"search latency, {args.repos} repos, {args.latency_ms:g} ms injected latency, median of {args.runs}:"
    )
    print(f"  batuta HfClient.search_models      {ours * 1000:8.1f} ms")
    print(f"  huggingface_hub HfApi.list_models  {peer * 1000:8.1f} ms   (peer)")
    print(f"  ratio ours/peer                    {ours / peer:8.2f}")
    print(
        f"  `batuta hf search models` (cold process, no cache)   {cli_cold * 1000:8.1f} ms   spec target < 2000 ms"
    )
    print(
        f"  `batuta hf search models` (cold process, cache hit)  {cli_cached * 1000:8.1f} ms   ({cached_requests} requests)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
