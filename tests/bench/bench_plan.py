"""No-op `batuta plan` over 1,000 locked models against the local Hub with injected latency.

    python tests/bench/bench_plan.py [--models 1000] [--latency-ms 20] [--runs 3]

Seeds ``--models`` small model repos on an in-process local Hub, applies an hf.yaml
listing them all (fills the cache and hf.lock), then sets the server's latency to
``--latency-ms`` per request and measures, best of ``--runs`` (each a fresh
``python -m batuta_sync`` process, start-up included):

* ``batuta plan --detailed-exitcode``: the no-op plan (issue #14's targets for 1,000 repos: < 3 s,
  ≤ 1 request/repo);
* ``batuta plan --offline``: from hf.lock and the disk alone (target < 0.5 s, 0 requests);
* peer: ``huggingface_hub.snapshot_download`` of every repo into the same (already full)
  cache, the usual "is everything up to date?" loop, in one process, with its request count.

Everything it generated is deleted afterwards.
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

os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=1000)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    from batuta_sync.server import HubServer

    tmp = Path(tempfile.mkdtemp(prefix="bench-plan-"))
    srv = HubServer(root=tmp / "hub").start()
    try:
        env = dict(
            os.environ,
            HF_ENDPOINT=srv.url,
            HF_HOME=str(tmp / "hf-home"),
            HF_HUB_CACHE=str(tmp / "hf-home" / "hub"),
        )
        env.pop("HF_HUB_OFFLINE", None)
        env.pop("HF_TOKEN", None)
        # Measure as installed: byte-code cached (the setup run below writes it).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        names = [f"bench/model-{i:03d}" for i in range(args.models)]
        for i, repo in enumerate(names):
            srv.store.commit(
                repo,
                {
                    "config.json": f'{{"id": {i}}}'.encode(),
                    "tokenizer.json": b'{"vocab": [1, 2, 3]}',
                    "README.md": f"# model {i}\n".encode(),
                },
            )
        ws = tmp / "ws"
        ws.mkdir()
        body = "".join(f"  m{i:03d}:\n    repo: {repo}\n" for i, repo in enumerate(names))
        (ws / "hf.yaml").write_text("version: 1\nmodels:\n" + body)

        def cli(*argv: str) -> tuple[float, int, str]:
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "batuta_sync", *argv], cwd=ws, env=env,
                               capture_output=True, text=True)
            return time.perf_counter() - t0, r.returncode, r.stdout + r.stderr

        secs, code, out = cli("apply", "--auto-approve", "-q")
        if code != 0:
            print(out)
            return 1
        print(f"setup: applied {args.models} models in {secs:.2f} s (no latency)")

        srv.faults.configure(latency_ms=args.latency_ms)

        def best(*argv: str, expect: int = 0) -> tuple[float, int]:
            times = []
            reqs = 0
            for _ in range(args.runs):
                srv.log.clear()
                secs, code, out = cli(*argv)
                if code != expect:
                    print(out)
                    raise SystemExit(f"unexpected exit {code} for {argv}")
                times.append(secs)
                reqs = srv.log.count()
            return min(times), reqs

        plan_s, plan_reqs = best("plan", "--detailed-exitcode")
        off_s, off_reqs = best("plan", "--offline", "--detailed-exitcode")
        # Fixed costs of any `batuta` command on this machine right now (start-up + argparse tree).
        base_s, _ = best("--version")
        py_times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
            py_times.append(time.perf_counter() - t0)
        py_s = min(py_times)

        # Peer: huggingface_hub's up-to-date check of the same repos, same cache, same latency.
        peer = (
            "import sys, time\n"
            "from huggingface_hub import snapshot_download\n"
            "t0 = time.perf_counter()\n"
            "for r in sys.argv[1:]:\n"
            "    snapshot_download(r)\n"
            "print(time.perf_counter() - t0)\n"
        )
        peer_times = []
        peer_reqs = 0
        for _ in range(max(1, min(args.runs, 2))):
            srv.log.clear()
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-c", peer, *names], env=env, capture_output=True, text=True)
            if r.returncode != 0:
                print(r.stderr[-2000:])
                return 1
            peer_times.append(time.perf_counter() - t0)
            peer_reqs = srv.log.count()
        peer_s = min(peer_times)

        n = args.models
        print(f"\nno-op plan over {n} models, {args.latency_ms:.0f} ms injected latency per request (best of {args.runs}):")
        print(f"  batuta plan            {plan_s:6.3f} s   {plan_reqs:4d} requests ({plan_reqs / n:.2f}/repo)   target < 3 s, <= 1/repo")
        print(f"  batuta plan --offline  {off_s:6.3f} s   {off_reqs:4d} requests                  target < 0.5 s")
        print(f"  peer: snapshot_download loop {peer_s:6.3f} s   {peer_reqs:4d} requests ({peer_reqs / n:.2f}/repo)")
        print(f"  ratio peer/batuta: {peer_s / plan_s:.1f}x faster; requests {peer_reqs}/{plan_reqs}")
        print(f"  fixed costs in this run: `python -c pass` {py_s:.3f} s, `batuta --version` {base_s:.3f} s "
              f"-> offline planning itself {off_s - base_s:.3f} s")
        ok = plan_s < 3.0 and plan_reqs <= n and off_s < 0.5 and off_reqs == 0
        print("targets:", "met" if ok else "NOT met")
        return 0
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
