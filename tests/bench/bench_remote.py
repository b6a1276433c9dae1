"""The shared remote: a second runner's apply from a warm remote vs from the Hub, same run; and a
no-op plan with a warm remote, counting Hub API calls.

    python tests/bench/bench_remote.py [--remote s3|file] [--files 4] [--runs 1]
    BENCH_REMOTE_MIB=1024 python tests/bench/bench_remote.py     # the issue's 1 GiB repo

Generates a repo of ``--files`` safetensors shards totalling ``BENCH_REMOTE_MIB`` MiB (default 128)
plus small files, serves it with ``batuta hub serve`` in a subprocess on 127.0.0.1 and starts the
remote (moto's S3 server on 127.0.0.1 with ``--remote s3``, the default when moto and obstore are
installed; else a ``file://`` folder).  hf.yaml pins the repo to its commit.  Each runner is a
``python -m batuta_sync apply`` process with its own fresh HF cache:

1. runner 1, remote cold: everything from the Hub, written through to the remote;
2. runner 2, remote warm: everything from the remote (timed);
3. runner 3, no remote: everything from the Hub (timed);
4. ``batuta plan`` of runner 2 (applied: a no-op) and of a fresh runner 4 with the warm remote:
   the Hub requests each makes (API and content) from our server's request log.

Prints seconds, the ratio Hub time / remote time, and the request counts (both plans must make
0 Hub API calls; the exit status says so).  Both servers run on loopback, so the ratio measures
batuta's overhead per source, not the network: against the real Hub (rate limits, 100 ms RTT) the
remote's advantage is larger.  Everything it generated is deleted afterwards.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pull import _free_port, _get_json, _post_json, _write_safetensors

ROOT = Path(__file__).resolve().parents[2]
REPO = "bench/remote"
BUCKET = "batuta-bench"


def _start_hub(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "batuta_sync", "hub", "serve", "--root", str(work / "root"), "--port", str(port),
         "--control-api"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            _get_json(f"{url}/_batuta/counters")
            return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the Hub server did not start")


def _start_remote(kind: str, work: Path) -> tuple[Any, str, dict[str, str]]:
    """(a handle to stop, the remote URL, the environment the runners need)."""
    if kind == "file":
        return None, f"file://{work / 'remote'}", {}
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request otherwise

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    import boto3

    boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                 aws_access_key_id="bench", aws_secret_access_key="bench-secret").create_bucket(Bucket=BUCKET)
    return server, f"s3://{BUCKET}/team", env


def _hub_requests(url: str) -> tuple[int, int]:
    """(API calls, content downloads) in the Hub's request log since it was last cleared."""
    log = _get_json(f"{url}/_batuta/log")
    entries = log.get("entries", log) if isinstance(log, dict) else log
    paths = [e.get("path", "") for e in entries] if isinstance(entries, list) else []
    return sum(1 for p in paths if p.startswith("/api/")), sum(1 for p in paths if "/resolve/" in p)


def _runner(work: Path, name: str, hub: str, remote: str | None, commit: str, env: dict[str, str]) -> tuple[Path, dict[str, str]]:
    ws = work / name
    ws.mkdir()
    defaults = f"defaults:\n  remote: {remote}\n" if remote else ""
    (ws / "hf.yaml").write_text(f"version: 1\n{defaults}models:\n  m: {{repo: {REPO}, revision: {commit}}}\n")
    home = work / f"{name}-home"
    run_env = {**os.environ, **env, "HOME": str(home), "HF_HOME": str(home / "hf"), "HF_HUB_CACHE": str(home / "hf" / "hub"),
               "HF_ENDPOINT": hub, "PYTHONPATH": str(ROOT), "HF_HUB_DISABLE_XET": "1"}
    run_env.pop("BATUTA_REMOTE", None)
    return ws, run_env


def _batuta(ws: Path, env: dict[str, str], *argv: str) -> float:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "batuta_sync", *argv, "-f", str(ws / "hf.yaml")], env=env,
                          capture_output=True, text=True, check=False)
    dt = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"batuta {' '.join(argv)} failed in {ws.name}:\n{done.stdout}{done.stderr}")
    return dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--remote", choices=("s3", "file"), default=None, help="default: s3 (moto) when installed")
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--runs", type=int, default=1, help="timed runs per source (best of)")
    args = ap.parse_args()
    mib = int(os.environ.get("BENCH_REMOTE_MIB", "128"))
    kind = args.remote
    if kind is None:
        try:
            import moto.server  # noqa: F401
            import obstore  # noqa: F401

            kind = "s3"
        except ImportError:
            kind = "file"

    work = Path(tempfile.mkdtemp(prefix="batuta-bench-remote-"))
    hub_proc = None
    remote_srv = None
    try:
        from batuta_sync.server import HubServer

        src = work / "src"
        src.mkdir()
        files: dict[str, bytes | Path] = {
            "config.json": json.dumps({"architectures": ["LlamaForCausalLM"]}).encode(),
            "README.md": b"---\nlicense: mit\n---\n# bench\n",
        }
        for i in range(args.files):
            p = src / f"model-{i + 1:05d}-of-{args.files:05d}.safetensors"
            _write_safetensors(p, (mib << 20) // args.files, seed=i * 100_000)
            files[p.name] = p
        total = sum((v.stat().st_size if isinstance(v, Path) else len(v)) for v in files.values())
        seed = HubServer(work / "root", durable=False)
        seed.store.commit(REPO, files)
        commit = str(seed.store.resolve(REPO))
        shutil.rmtree(src)

        hub_proc, hub = _start_hub(work)
        remote_srv, remote, remote_env = _start_remote(kind, work)

        ws1, env1 = _runner(work, "r1", hub, remote, commit, remote_env)
        cold = _batuta(ws1, env1, "apply", "--auto-approve")
        warm_runs: list[float] = []
        hub_runs: list[float] = []
        for run in range(args.runs):
            ws2, env2 = _runner(work, f"r2-{run}", hub, remote, commit, remote_env)
            _post_json(f"{hub}/_batuta/log", {}, method="DELETE")
            warm_runs.append(_batuta(ws2, env2, "apply", "--auto-approve"))
            warm_api, warm_content = _hub_requests(hub)
            ws3, env3 = _runner(work, f"r3-{run}", hub, None, commit, {})
            hub_runs.append(_batuta(ws3, env3, "apply", "--auto-approve"))

        _post_json(f"{hub}/_batuta/log", {}, method="DELETE")
        noop_s = _batuta(ws2, env2, "plan", "--detailed-exitcode")
        noop_api, noop_content = _hub_requests(hub)
        ws4, env4 = _runner(work, "r4", hub, remote, commit, remote_env)
        _post_json(f"{hub}/_batuta/log", {}, method="DELETE")
        fresh_s = _batuta(ws4, env4, "plan")
        fresh_api, fresh_content = _hub_requests(hub)
        ws5, env5 = _runner(work, "r5", hub, None, commit, {})
        _post_json(f"{hub}/_batuta/log", {}, method="DELETE")
        _batuta(ws5, env5, "plan")
        bare_api, _ = _hub_requests(hub)

        best_warm, best_hub = min(warm_runs), min(hub_runs)
        gb = total / 1e9
        print(f"repo: {args.files} shards, {total / 2**20:.0f} MiB (BENCH_REMOTE_MIB={mib}); Hub and remote "
              f"({kind}) on 127.0.0.1; each runner a fresh `python -m batuta_sync apply`; best of {args.runs}")
        print(f"runner 1, cold remote (Hub + write-through): {cold:6.2f} s")
        print(f"runner 2, warm remote                     : {best_warm:6.2f} s  {gb / best_warm:5.2f} GB/s  "
              f"(Hub requests: {warm_api} API, {warm_content} content)")
        print(f"runner 3, no remote (Hub)                 : {best_hub:6.2f} s  {gb / best_hub:5.2f} GB/s")
        print(f"ratio (Hub time / warm-remote time): {best_hub / best_warm:.2f}x")
        print(f"no-op plan, warm remote (runner 2)        : {noop_s:6.2f} s, Hub requests: {noop_api} API, "
              f"{noop_content} content")
        print(f"plan of a fresh runner, warm remote       : {fresh_s:6.2f} s, Hub requests: {fresh_api} API, "
              f"{fresh_content} content  (without a remote: {bare_api} API)")
        return 0 if (noop_api, fresh_api, warm_content, warm_api) == (0, 0, 0, 0) else 1
    finally:
        if hub_proc is not None:
            hub_proc.terminate()
            try:
                hub_proc.wait(10)
            except subprocess.TimeoutExpired:
                hub_proc.kill()
        if remote_srv is not None:
            remote_srv.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
