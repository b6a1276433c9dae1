"""The reliability scenarios, each a function returning its figures (a plain dict).

The pytest files call them at the reduced size and assert on the figures; ``report.py`` calls
them (reduced or ``--full``) and prints every figure.  Everything runs against the local Hub on
127.0.0.1 in a work directory the caller owns.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.reliability._harness import (
    CHAOS_ENV,
    IntegrityMonitor,
    Seeded,
    bad_blobs,
    batuta_cmd,
    cache_env,
    check_outputs,
    communicate,
    lock_parses,
    output_files,
    publisher_wired,
    random_faults,
    rss_bytes,
    run_cli,
    seed_hub,
    sha256_file,
    size,
    spawn,
    start_server,
    temp_files,
    write_project,
)

OUTPUT_DIRS = ("models/tiny-llama", "data/tiny", "models/tiny-llama-gguf")


def _outputs_of(project: Path) -> dict[str, dict[str, str]]:
    return {d: {rel: sha256_file(p) for rel, p in output_files(project / d).items()} for d in OUTPUT_DIRS}


def _check_against_seed(seeded: Seeded, outputs: Mapping[str, Mapping[str, str]]) -> list[str]:
    """The fault-free reference run itself must reproduce the seeded bytes."""
    problems = []
    for d, repo in (("models/tiny-llama", "rel/tiny-llama"), ("data/tiny", "rel/tiny-data")):
        want = seeded.digests(repo)
        for rel, digest in outputs[d].items():
            if want.get(rel) != digest:
                problems.append(f"reference output {d}/{rel} differs from the seeded repo")
        if not outputs[d]:
            problems.append(f"reference run produced no files in {d}")
    return problems


def _project_problems(project: Path, reference: Mapping[str, Mapping[str, str]], *, complete: bool) -> list[str]:
    problems: list[str] = []
    for d, expected in reference.items():
        problems += check_outputs(project / d, expected, complete=complete)
    return problems


def _pushed_ok(server: Any, repo: str, expected: Mapping[str, str]) -> list[str]:
    """Files of a pushed model repo on the server equal the local ones (README may be a generated card)."""
    import hashlib

    problems = []
    try:
        commit = server.store.commit_of(repo, repo_type="model")
    except Exception as exc:
        return [f"pushed repo {repo} missing: {exc}"]
    for rel, digest in expected.items():
        if rel == "README.md":
            continue
        e = commit.files.get(rel)
        if e is None:
            problems.append(f"{repo}: {rel} not pushed")
            continue
        data = server.store.blob_path(e.sha256).read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            problems.append(f"{repo}: {rel} differs on the server")
    return problems


# =========================================================================== chaos


def _failure_reason(err: str) -> str:
    """The gist of a failed apply's error output: its error lines with numbers, paths and hashes blanked."""
    import re

    lines = [x.strip() for x in err.splitlines() if x.strip() and not x.strip().lower().startswith("hint")]
    text = " | ".join(lines[:4])[:400]
    text = re.sub(r"[0-9a-f]{16,}", "<hex>", text)
    text = re.sub(r"http://127\.0\.0\.1:\d+", "<hub>", text)
    text = re.sub(r"(?<![\w:])/(?:tmp|work|root|home)/\S+", "<path>", text)
    return re.sub(r"(?<!after )\b\d+(\.\d+)?", "N", text)  # keep "after 6 attempts"


def chaos(work: Path, *, runs: int | None = None, rate: float = 0.3, seed: int = 1, max_applies: int = 10) -> dict[str, Any]:
    """``runs`` fresh projects applied under ~``rate`` random faults until they converge."""
    runs = runs if runs is not None else size(4, 20)
    t0 = time.perf_counter()
    server = start_server(work / "hub")
    push = publisher_wired()
    try:
        seeded = seed_hub(server, work, extra_files=size(3, 6), extra_size=size(256 << 10, 2 << 20))
        # ---- reference: one fault-free run (requests and bytes of a clean run, expected outputs)
        ref_home, ref_proj = work / "ref-home", work / "ref-proj"
        manifest = write_project(ref_proj, server.url, push=push, push_repo="pushed-ref")
        env = cache_env(ref_home, server.url)
        before = server.counters
        res = run_cli(["apply", "--auto-approve", "-q", "-f", str(manifest)], env, ref_proj)
        after = server.counters
        if res.code != 0:
            raise AssertionError(f"fault-free reference apply failed ({res.code}): {res.err[-2000:]}")
        base_requests = after["requests"] - before["requests"]
        base_bytes = after["bytes_out"] - before["bytes_out"]
        base_in = after["bytes_in"] - before["bytes_in"]
        reference = _outputs_of(ref_proj)
        findings = _check_against_seed(seeded, reference)

        faults = random_faults(server, rate, seed, retry_after="0")
        figures: dict[str, Any] = {
            "runs": runs,
            "fault_rate": rate,
            "fault_seed": seed,
            "fault_mix": faults.snapshot()["fault_kinds"],
            "retry_after": faults.retry_after,
            "retry_backoff": CHAOS_ENV["BATUTA_RETRY_BACKOFF"],
            "push_included": push,
            "applies": 0,
            "applies_failed": 0,
            "converged_runs": 0,
            "max_applies_to_converge": 0,
            "plan_empty_after": 0,
            "escaped_exceptions": 0,
            "exit_codes_seen": {},
            "failure_reasons": {},
        }
        req0, bytes0, in0 = server.counters["requests"], server.counters["bytes_out"], server.counters["bytes_in"]
        checked = 0
        corrupt_visible: set[str] = set()
        for r in range(runs):
            home, proj = work / f"home-{r}", work / f"proj-{r}"
            manifest = write_project(proj, server.url, push=push, push_repo=f"pushed-{r}")
            env = {**cache_env(home, server.url), **CHAOS_ENV}
            cache = home / "hf-home" / "hub"
            outs = {proj / d: exp for d, exp in reference.items()}
            with IntegrityMonitor(cache, outs) as mon:
                for attempt in range(1, max_applies + 1):
                    res = run_cli(["apply", "--auto-approve", "-q", "-f", str(manifest)], env, proj)
                    figures["applies"] += 1
                    key = str(res.code)
                    figures["exit_codes_seen"][key] = figures["exit_codes_seen"].get(key, 0) + 1
                    if res.error is not None:
                        figures["escaped_exceptions"] += 1
                        findings.append(f"run {r}: exception escaped the CLI: {type(res.error).__name__}: {res.error}")
                    if res.code == 0:
                        figures["converged_runs"] += 1
                        figures["max_applies_to_converge"] = max(figures["max_applies_to_converge"], attempt)
                        break
                    figures["applies_failed"] += 1
                    why = _failure_reason(res.err)
                    figures["failure_reasons"][why] = figures["failure_reasons"].get(why, 0) + 1
                    if "Traceback" in res.err:
                        findings.append(f"run {r}: traceback printed: {res.err[-1500:]}")
                else:
                    findings.append(f"run {r}: did not converge in {max_applies} applies: {res.err[-1500:]}")
                mon.scan()
            checked += mon.checked
            corrupt_visible |= mon.corrupt
            # converged: the next plan is empty (still under faults; a fault may need the plan retried)
            for _ in range(3):
                plan = run_cli(["plan", "--detailed-exitcode", "-q", "-f", str(manifest)], env, proj)
                if plan.code in (0, 2):
                    break
            if plan.code == 0:
                figures["plan_empty_after"] += 1
            else:
                findings.append(f"run {r}: plan after convergence exit {plan.code}: {plan.out[-800:]} {plan.err[-800:]}")
            findings += [f"run {r}: {p}" for p in _project_problems(proj, reference, complete=True)]
            findings += [f"run {r}: corrupt blob {b}" for b in bad_blobs(cache)]
            if push:
                findings += _pushed_ok(server, f"rel/pushed-{r}", reference["models/tiny-llama-gguf"])
            err = lock_parses(proj)
            if err:
                findings.append(f"run {r}: hf.lock does not parse: {err}")
        faults.configure(fault_rate=0)
        counts = faults.counts
        requests = server.counters["requests"] - req0
        sent = server.counters["bytes_out"] - bytes0
        received = server.counters["bytes_in"] - in0
        figures.update(
            faults_injected=sum(counts.values()),
            faults_by_kind=counts,
            requests=requests,
            requests_clean_run=base_requests,
            retries=max(0, requests - base_requests * runs),
            bytes_sent=sent,
            bytes_clean_run=base_bytes,
            bytes_transferred_again=max(0, sent - base_bytes * runs),
            bytes_uploaded=received,
            bytes_uploaded_clean_run=base_in,
            bytes_uploaded_again=max(0, received - base_in * runs),
            files_checked_while_running=checked,
            corrupt_files=len(corrupt_visible) + sum(1 for f in findings if "corrupt" in f),
            findings=findings,
            seconds=round(time.perf_counter() - t0, 2),
        )
        return figures
    finally:
        server.stop()


# =========================================================================== crashes


def _phase(server: Any, log_from: int, cache: Path, project: Path, n_blobs: int, push: bool) -> str:
    entries = server.log.entries[log_from:]
    content = any("/resolve/" in e.path or "/cdn-lfs/" in e.path for e in entries)
    upload = any(e.method in ("POST", "PUT") and ("/commit/" in e.path or "lfs" in e.path or "preupload" in e.path) for e in entries)
    blobs = len([p for p in cache.glob("*/blobs/*") if "." not in p.name]) if cache.is_dir() else 0
    lock = (project / "hf.lock").read_text(errors="replace") if (project / "hf.lock").exists() else ""
    gguf_done = any(p.suffix == ".gguf" for p in output_files(project / "models/tiny-llama-gguf").values())
    if not entries:
        return "startup"
    if not content:
        return "plan"
    if blobs < n_blobs:
        return "download"
    if '"conversions.llama-q4"' not in lock:
        return "convert" if gguf_done or (project / "models/tiny-llama-gguf").exists() else "download-finish"
    if push and '"publish.llama-gguf"' not in lock:
        return "upload" if upload else "lock-write"
    return "lock-write/finish"


#: Where a crash trial kills ``batuta apply``: right after the trigger is seen (plus a small random delay).
CRASH_POINTS: tuple[str, ...] = ("download", "convert", "upload", "lock-write", "random")
_KILL_DELAY = {"download": 0.05, "convert": 0.3, "upload": 0.03, "lock-write": 0.0}


def _children_of(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return bool(f.read().strip())
    except OSError:
        return False


def _lock_activity(project: Path) -> tuple[bool, int]:
    """(a temp lock file is being written, hf.lock mtime_ns or 0)."""
    writing = False
    try:
        with os.scandir(project) as it:
            for e in it:
                if e.name.startswith(".hf.lock.") and e.name.endswith(".tmp"):
                    writing = True
    except OSError:
        pass
    try:
        mtime = (project / "hf.lock").stat().st_mtime_ns
    except OSError:
        mtime = 0
    return writing, mtime


def _trigger(point: str, server: Any, log_from: int, proj: Path, pid: int, lock0: int) -> str | None:
    """What was seen that calls for the kill at ``point`` (None: not yet)."""
    if point in ("download", "upload"):
        for e in server.log.entries[log_from:]:
            if point == "download" and e.method == "GET" and ("/resolve/" in e.path or "/cdn-lfs/" in e.path):
                return "content GET started"
            if point == "upload" and e.method in ("POST", "PUT") and (
                "/commit/" in e.path or "lfs" in e.path or "preupload" in e.path
            ):
                return "upload request started"
        return None
    if point == "convert":
        out = proj / "models" / "tiny-llama-gguf"
        if out.is_dir() and any(out.iterdir()):
            return "conversion output being written"
        return "conversion workers running" if _children_of(pid) else None
    writing, mtime = _lock_activity(proj)
    if writing:
        return "hf.lock temp file being written"
    return "hf.lock just replaced" if mtime != lock0 else None


def crashes(
    work: Path,
    *,
    trials: int | None = None,
    seed: int = 3,
    latency_ms: float = 15.0,
    points: tuple[str, ...] = CRASH_POINTS,
) -> dict[str, Any]:
    """SIGKILL ``batuta apply`` ``trials`` times, cycling through :data:`CRASH_POINTS` (download,
    conversion, upload, lock write: killed when that activity is seen; random: after a random
    delay); after each kill check hf.lock and every final-named file, then resume and re-plan."""
    trials = trials if trials is not None else size(4, 25)
    rng = random.Random(seed)
    t0 = time.perf_counter()
    server = start_server(work / "hub")
    push = publisher_wired()
    findings: list[str] = []
    try:
        seeded = seed_hub(server, work, extra_files=size(2, 4), extra_size=size(512 << 10, 4 << 20))
        server.faults.configure(latency_ms=latency_ms)
        ref_home, ref_proj = work / "ref-home", work / "ref-proj"
        manifest = write_project(ref_proj, server.url, push=push, push_repo="pushed-ref")
        env = cache_env(ref_home, server.url)
        t_start = time.perf_counter()
        p = spawn(batuta_cmd("apply", "--auto-approve", "-q", "-f", str(manifest)), env, ref_proj)
        _out, err = communicate(p)
        t_ref = time.perf_counter() - t_start
        if p.returncode != 0:
            raise AssertionError(f"reference apply failed ({p.returncode}): {err[-2000:]}")
        reference = _outputs_of(ref_proj)
        findings += _check_against_seed(seeded, reference)
        n_blobs = len([b for b in (ref_home / "hf-home" / "hub").glob("*/blobs/*") if "." not in b.name])
        phases: dict[str, int] = {}
        points = points if push else tuple(x for x in points if x != "upload")
        per_point: dict[str, dict[str, Any]] = {}
        figures: dict[str, Any] = {
            "trials": trials,
            "push_included": push,
            "reference_apply_seconds": round(t_ref, 2),
            "killed": 0,
            "finished_before_kill": 0,
            "lock_parse_failures": 0,
            "partial_files_under_final_name": 0,
            "resumed_ok": 0,
            "plan_empty_after_resume": 0,
            "temp_files_left_after_resume": 0,
        }
        for t in range(trials):
            point = points[t % len(points)]
            pp = per_point.setdefault(
                point,
                {"trials": 0, "killed": 0, "finished_before_kill": 0, "lock_parses": 0, "partial_files": 0,
                 "resumed_ok": 0, "plan_empty_after": 0, "triggers": {}},
            )
            pp["trials"] += 1
            home, proj = work / f"home-{t}", work / f"proj-{t}"
            manifest = write_project(proj, server.url, push=push, push_repo=f"pushed-{t}")
            env = cache_env(home, server.url)
            cache = home / "hf-home" / "hub"
            log_from = len(server.log.entries)
            lock0 = _lock_activity(proj)[1]
            p = spawn(batuta_cmd("apply", "--auto-approve", "-q", "-f", str(manifest)), env, proj)
            seen: str | None = None
            if point == "random":
                deadline = time.monotonic() + rng.uniform(0.15, max(0.3, t_ref))
                while p.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.005)
                seen = "random delay" if p.poll() is None else None
            else:
                while p.poll() is None and seen is None:
                    seen = _trigger(point, server, log_from, proj, p.pid, lock0)
                    if seen is None:
                        time.sleep(0.001)
                if seen is not None and _KILL_DELAY[point]:
                    time.sleep(rng.uniform(0, _KILL_DELAY[point]))
            if seen is not None and p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
                figures["killed"] += 1
                pp["killed"] += 1
                pp["triggers"][seen] = pp["triggers"].get(seen, 0) + 1
                phase = _phase(server, log_from, cache, proj, n_blobs, push)
            else:
                p.wait()
                figures["finished_before_kill"] += 1
                pp["finished_before_kill"] += 1
                phase = "finished"
            communicate(p)
            phases[phase] = phases.get(phase, 0) + 1
            e = lock_parses(proj)
            if e:
                figures["lock_parse_failures"] += 1
                findings.append(f"trial {t} ({point}/{phase}): hf.lock does not parse after SIGKILL: {e}")
            else:
                pp["lock_parses"] += 1
            partial = _project_problems(proj, reference, complete=False) + bad_blobs(cache)
            if partial:
                figures["partial_files_under_final_name"] += len(partial)
                pp["partial_files"] += len(partial)
                findings += [f"trial {t} ({point}/{phase}): {x}" for x in partial]
            # resume
            r = spawn(batuta_cmd("apply", "--auto-approve", "-q", "-f", str(manifest)), env, proj)
            _o, rerr = communicate(r)
            if r.returncode == 0:
                figures["resumed_ok"] += 1
                pp["resumed_ok"] += 1
            else:
                findings.append(f"trial {t} ({point}/{phase}): resume apply exit {r.returncode}: {rerr[-1500:]}")
            q = spawn(batuta_cmd("plan", "--detailed-exitcode", "-q", "-f", str(manifest)), env, proj)
            qout, qerr = communicate(q)
            if q.returncode == 0:
                figures["plan_empty_after_resume"] += 1
                pp["plan_empty_after"] += 1
            else:
                findings.append(f"trial {t} ({point}/{phase}): plan after resume exit {q.returncode}: {qout[-600:]} {qerr[-600:]}")
            findings += [f"trial {t} ({point}/{phase}) after resume: {x}" for x in _project_problems(proj, reference, complete=True)]
            findings += [f"trial {t} ({point}/{phase}) after resume: corrupt blob {b}" for b in bad_blobs(cache)]
            if push:
                findings += [f"trial {t} ({point}) after resume: {x}" for x in _pushed_ok(server, f"rel/pushed-{t}", reference["models/tiny-llama-gguf"])]
            e = lock_parses(proj)
            if e:
                findings.append(f"trial {t} after resume: hf.lock does not parse: {e}")
            left = [x for d in OUTPUT_DIRS for x in temp_files(proj / d)]
            left += [str(x) for x in proj.glob(".hf.lock.*.tmp")]  # a killed lock write's temp file
            figures["temp_files_left_after_resume"] += len(left)
            figures.setdefault("temp_file_examples", []).extend(str(Path(x).relative_to(proj)) for x in left[:3])
        figures.update(points=per_point, phases=phases, findings=findings, seconds=round(time.perf_counter() - t0, 2))
        return figures
    finally:
        server.stop()


# =========================================================================== concurrency


def two_applies(work: Path, *, latency_ms: float = 60.0) -> dict[str, Any]:
    """Two ``batuta apply`` on one project at once: one runs, the other is refused (or waits), clearly.
    The second starts once the first is downloading (so it holds the workspace lock)."""
    server = start_server(work / "hub")
    try:
        seed_hub(server, work, extra_files=2, extra_size=256 << 10)
        server.faults.configure(latency_ms=latency_ms)
        proj = work / "proj"
        manifest = write_project(proj, server.url, push=False)
        env = cache_env(work / "home", server.url)
        cmd = batuta_cmd("apply", "--auto-approve", "-f", str(manifest))
        a = spawn(cmd, env, proj)
        deadline = time.monotonic() + 60
        while a.poll() is None and time.monotonic() < deadline and not any(
            e.method == "GET" and ("/resolve/" in e.path or "/cdn-lfs/" in e.path) for e in server.log.entries
        ):
            time.sleep(0.005)
        first_running = a.poll() is None
        t = time.perf_counter()
        b = spawn(cmd, env, proj)
        _b_out, b_err = communicate(b)
        b_seconds = time.perf_counter() - t
        _a_out, _a_err = communicate(a)
        server.faults.reset()
        plan = spawn(batuta_cmd("plan", "--detailed-exitcode", "-q", "-f", str(manifest)), env, proj)
        communicate(plan)
        return {
            "first_exit": a.returncode,
            "first_still_running_when_second_started": first_running,
            "second_exit": b.returncode,
            "second_seconds": round(b_seconds, 2),
            "second_message": b_err.strip().splitlines()[:3],
            "plan_after_exit": plan.returncode,
            "lock_ok": lock_parses(proj) is None,
        }
    finally:
        server.stop()


def shared_cache(work: Path, *, projects: int = 2, latency_ms: float = 10.0) -> dict[str, Any]:
    """Several projects applying at once into one shared cache."""
    server = start_server(work / "hub")
    try:
        seeded = seed_hub(server, work, extra_files=3, extra_size=size(512 << 10, 4 << 20))
        server.faults.configure(latency_ms=latency_ms)
        env = cache_env(work / "home", server.url)
        procs = []
        for i in range(projects):
            proj = work / f"proj-{i}"
            manifest = write_project(proj, server.url, convert=False, push=False)
            procs.append((proj, spawn(batuta_cmd("apply", "--auto-approve", "-q", "-f", str(manifest)), env, proj)))
        codes, problems = [], []
        for proj, p in procs:
            _o, err = communicate(p)
            codes.append(p.returncode)
            if p.returncode:
                problems.append(err[-1500:])
            for d, repo in (("models/tiny-llama", "rel/tiny-llama"), ("data/tiny", "rel/tiny-data")):
                want = seeded.digests(repo)
                have = {rel: sha256_file(f) for rel, f in output_files(proj / d).items()}
                problems += [f"{proj.name}/{d}/{rel} corrupt" for rel, dg in have.items() if want.get(rel) != dg]
                if not have:
                    problems.append(f"{proj.name}/{d} empty")
        cache = work / "home" / "hf-home" / "hub"
        problems += [f"corrupt blob {b}" for b in bad_blobs(cache)]
        return {"projects": projects, "exit_codes": codes, "problems": problems, "temp_left": len(temp_files(cache))}
    finally:
        server.stop()


WORKER = Path(__file__).with_name("_pull_worker.py")


def same_blob(work: Path, *, threads: int = 8, procs: int = 2, flock: bool = True, blob_mib: int | None = None,
              latency_ms: float = 150.0) -> dict[str, Any]:
    """``threads`` threads and ``procs`` processes pull the same blob into one cache at the same instant."""
    blob_mib = blob_mib if blob_mib is not None else size(8, 64)
    server = start_server(work / "hub")
    try:
        data = random.Random(11).randbytes(blob_mib << 20)
        server.store.commit("rel/one-blob", {"big.parquet": data}, repo_type="dataset")
        server.faults.configure(latency_ms=latency_ms)
        home = work / "home"
        env = cache_env(home, server.url)
        start_at = time.time() + 2.5
        args = [sys.executable, str(WORKER), "--start-at", str(start_at), "--repo", "rel/one-blob", "--file", "big.parquet"]
        if not flock:
            args.append("--no-flock")
        ps = [spawn(args, env, work) for _ in range(procs)]
        import fcntl

        from tests.reliability._pull_worker import pull_once

        real_flock = fcntl.flock  # the no-flock threads replace it in this process: put it back after
        results: list[str] = []
        try:
            with ThreadPoolExecutor(threads) as pool:
                futs = [pool.submit(pull_once, env, "rel/one-blob", "big.parquet", start_at, not flock) for _ in range(threads)]
                results += [f.result() for f in futs]
        finally:
            fcntl.flock = real_flock  # type: ignore[misc]
        for p in ps:
            out, err = communicate(p)
            results.append(out.strip() or f"exit {p.returncode}: {err[-800:]}")
        cache = home / "hf-home" / "hub"
        import hashlib

        digest = hashlib.sha256(data).hexdigest()
        blobs = [b for b in cache.glob("*/blobs/*") if b.is_file()]
        finals = [b for b in blobs if b.name == digest]
        return {
            "threads": threads,
            "processes": procs,
            "flock": flock,
            "blob_mib": blob_mib,
            "results": sorted(set(results)),
            "errors": [r for r in results if r != "ok"],
            "final_blobs": len(finals),
            "final_blob_valid": bool(finals) and all(sha256_file(b) == digest for b in finals),
            "corrupt_blobs": bad_blobs(cache),
            "leftovers": [b.name for b in blobs if b.name != digest],
            "content_requests": server.log.count("GET", "/cdn-lfs/") + server.log.count("GET", "/resolve/"),
        }
    finally:
        server.stop()


# =========================================================================== load


def load(work: Path, *, files: int = 64, rounds: int | None = None, file_kib: int | None = None) -> dict[str, Any]:
    """The pull engine with 64 concurrent downloads against the local server, ``rounds`` times; RSS sampled."""
    from batuta_sync.pull import PullRequest, pull
    from batuta_sync.settings import resolve_settings
    from batuta_sync.types import HfAssetType, RepoRef

    rounds = rounds if rounds is not None else size(4, 12)
    file_kib = file_kib if file_kib is not None else size(256, 4096)
    server = start_server(work / "hub")
    rng = random.Random(5)
    try:
        blobs = {f"shards/part-{i:03d}.parquet": rng.randbytes(file_kib << 10) for i in range(files)}
        server.store.commit("rel/many", blobs, repo_type="dataset")
        samples: list[int] = []
        stop = threading.Event()

        def sampler() -> None:
            while not stop.is_set():
                samples.append(rss_bytes())
                stop.wait(0.05)

        th = threading.Thread(target=sampler, daemon=True)
        th.start()
        peaks: list[int] = []
        errors: list[str] = []
        seconds: list[float] = []
        home = work / "home"
        for r in range(rounds):
            cache = home / f"cache-{r}"
            settings = resolve_settings(
                env={"HF_HOME": str(home / "hf-home"), "HF_HUB_CACHE": str(cache), "HF_ENDPOINT": server.url}
            )
            mark = len(samples)
            t = time.perf_counter()
            try:
                res = pull(settings, PullRequest(RepoRef("rel/many", HfAssetType.DATASET)), jobs=files)
                if len(res.selected) != files:
                    errors.append(f"round {r}: {len(res.selected)} files selected")
            except Exception as exc:  # counted, reported
                errors.append(f"round {r}: {type(exc).__name__}: {exc}")
            seconds.append(time.perf_counter() - t)
            samples.append(rss_bytes())
            peaks.append(max(samples[mark:]))
            errors += [f"round {r}: corrupt {b}" for b in bad_blobs(cache)]
            shutil.rmtree(cache, ignore_errors=True)
        stop.set()
        th.join()
        total = files * (file_kib << 10)
        c = server.counters
        warm = peaks[1] if len(peaks) > 1 else peaks[0]
        return {
            "concurrent_downloads": files,
            "rounds": rounds,
            "bytes_per_round": total,
            "errors": errors,
            "errors_5xx": c["errors_5xx"],
            "max_active_connections": c["max_active_connections"],
            "rss_peak_per_round_mib": [round(p / 2**20, 1) for p in peaks],
            "rss_growth_after_warmup_mib": round((max(peaks[1:] or peaks) - warm) / 2**20, 1),
            "mean_round_seconds": round(sum(seconds) / len(seconds), 3),
            "throughput_mib_s": round(total * rounds / sum(seconds) / 2**20, 1),
        }
    finally:
        server.stop()


def dumps(figures: Mapping[str, Any]) -> str:
    return json.dumps(figures, indent=2, sort_keys=True, default=str)
