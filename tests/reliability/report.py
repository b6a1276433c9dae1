"""One command for every reliability figure.

    python -m tests.reliability.report            # reduced size (what CI runs)
    python -m tests.reliability.report --full     # full size (BATUTA_RELIABILITY=full), + the suite-wide canary run
    python -m tests.reliability.report --only chaos,crashes --json

Scenarios: chaos (random faults from the server while apply pulls, converts and pushes), crashes
(SIGKILL at download / conversion / upload / lock write and at random), two_applies, shared_cache,
same_blob_flock / same_blob_no_flock (8 threads + 2 processes), load (64 concurrent downloads),
fuzz (every parser of untrusted input), hostile_server (a malicious Hub), secrets (every command with
a token from login and from the environment), secrets_suite (the whole test suite with a canary
token; full size or ``--only``).  Each prints its figures, then one summary line per scenario
(ok / FAIL); the exit status is 1 if any failed.

Runs against local Hub servers on 127.0.0.1 in a temporary directory (removed afterwards unless
``--keep``), with a canary token in HF_TOKEN that must never show up anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

CANARY = "hf_" + "ReportCanaryTok3n" + "Zq7Xv9Lp2Rt5Wn8"
CANARY_SUITE = "hf_" + "SuiteWideCanary" + "Tok3nZq7Xv9Lp2Rt5W"  # tests/reliability/canary_plugin.py
SLOW = {"secrets_suite": "runs the whole test suite (minutes): --full, or --only secrets_suite"}


def _fuzz(work: Path) -> dict[str, Any]:
    from hypothesis import HealthCheck, given, settings

    from tests.fuzz import test_fuzz_parsers as T
    from tests.fuzz._targets import STATS, run_bounded

    STATS.clear()
    failures: dict[str, str] = {}
    def checker(name: str) -> Callable[[], None]:
        @settings(max_examples=T.EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(data=T.STRATEGIES[name])
        def check(data: bytes) -> None:
            run_bounded(name, data)

        return check  # type: ignore[no-any-return]

    for name in sorted(T.STRATEGIES):
        try:
            checker(name)()
        except Exception as exc:
            failures[name] = f"{type(exc).__name__}: {str(exc)[:300]}"
    return {
        "targets": {
            n: {"inputs": s.inputs, "batuta_errors": s.batuta_errors, "max_ms": round(s.max_seconds * 1000, 1),
                "max_peak_mib": round(s.max_peak_bytes / 2**20, 2)}
            for n, s in sorted(STATS.items())
        },
        "escapes": failures,
    }


HOSTILE_HEADERS: dict[str, dict[str, str]] = {
    "content-length-huge": {"Content-Length": "999999999999"},
    "content-length-negative": {"Content-Length": "-1"},
    "content-range-lie": {"Content-Range": "bytes 0-3/2"},
    "retry-after-huge": {"Retry-After": "99999999"},
    "etag-traversal": {"ETag": '"../../x"'},
}


def _hostile(work: Path) -> dict[str, Any]:
    """Every crafted answer of the malicious Hub (tests/fuzz/test_hostile_server.py) against
    ``hf info`` / ``hf pull model`` / ``hf pull files``: exit codes, escapes, time and memory per command."""
    from tests.fuzz import test_hostile_server as H
    from tests.reliability._harness import cache_env

    h = H.Hostile()
    srv = H._server(h)
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    cases: dict[str, tuple[bytes, bytes, dict[str, str]]] = {
        name: (H._payload(info, "["), H._payload(tree, '{"a":'), {}) for name, (info, tree) in sorted(H.CASES.items())
    }
    one_file = json.dumps({"sha": H.SHA, "siblings": [H._sibling("model.safetensors", 4)]}).encode()
    cases.update({f"header:{n}": (one_file, b"[]", hdrs) for n, hdrs in HOSTILE_HEADERS.items()})
    per_case: dict[str, Any] = {}
    problems: list[str] = []
    max_s, max_mib, commands = 0.0, 0.0, 0
    try:
        for name, (info, tree, headers) in cases.items():
            h.info, h.tree, h.body, h.headers = info, tree, b"\x00\x01\x02\x03", headers
            tmp = work / name.replace(":", "-")
            tmp.mkdir(parents=True)
            env = cache_env(tmp / "home", url)
            codes = []
            for argv in H.commands(tmp):
                res, peak_bytes = H.run_measured(h, argv, env, tmp)
                commands += 1
                codes.append(res.code)
                max_s, max_mib = max(max_s, res.seconds), max(max_mib, peak_bytes / 2**20)
                label = f"{name}: {' '.join(argv[:3])}"
                if res.error is not None:
                    problems.append(f"{label}: {type(res.error).__name__} escaped")
                if "Traceback" in res.err:
                    problems.append(f"{label}: traceback printed")
                if res.code not in H.ERROR_CODES and res.code != 0:
                    problems.append(f"{label}: undocumented exit code {res.code}")
                if h.body_requests > h.body_limit:
                    problems.append(f"{label}: {h.body_requests} body requests (retry loop)")
            problems += [f"{name}: file written outside the cache: {e}" for e in H.files_outside(tmp)]
            per_case[name] = "/".join(map(str, codes))
    finally:
        srv.shutdown()
        srv.server_close()
    return {
        "cases": len(cases),
        "commands": commands,
        "exit_codes_by_case": per_case,
        "max_seconds_per_command": round(max_s, 3),
        "max_traced_mib_per_command": round(max_mib, 2),
        "problems": problems,
    }


def _secrets(work: Path) -> dict[str, Any]:
    from tests.reliability.conftest import files_containing
    from tests.reliability.test_secrets import secrets_scenario

    fig = secrets_scenario(work)
    fig["canary_in_files"] = files_containing(work, CANARY.encode())
    fig.pop("codes", None)
    return fig


def _secrets_suite(work: Path) -> dict[str, Any]:
    """The whole test suite (minus tests/reliability and tests/fuzz, which carry their own autouse
    canary check) under ``tests/reliability/canary_plugin.py``: a canary HF_TOKEN in every test, and
    every test's output, log records, failure text and tmp files scanned for it."""
    import collections
    import subprocess

    from tests.reliability._harness import REPO_ROOT

    out = work / "canary.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_CORE"))}
    env["BATUTA_CANARY_REPORT"] = str(out)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.reliability.canary_plugin",
           "tests", "--ignore=tests/reliability", "--ignore=tests/fuzz"]
    p = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=3600)
    lines = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    tail = (p.stdout.strip().splitlines() or [""])[-1]
    return {
        "command": "python -m pytest -p tests.reliability.canary_plugin tests --ignore=tests/reliability --ignore=tests/fuzz",
        "tests_checked": len(lines),
        "outcomes": dict(collections.Counter(x["outcome"] for x in lines)),
        "failed_tests_with_a_token_set": [x["test"] for x in lines if x["outcome"] == "failed"][:20],
        "leaks": [f"{x['test']}: {', '.join(x['leaks'])}" for x in lines if x["leaks"]],
        "canary_in_pytest_output": CANARY_SUITE in p.stdout + p.stderr,
        "pytest_summary": tail,
        "also": "tests/reliability and tests/fuzz: autouse canary check in tests/reliability/conftest.py",
    }


def _ok(cond: bool) -> str:
    return "ok" if cond else "FAIL"


def _line(name: str, fig: dict[str, Any], fn: Callable[[dict[str, Any]], tuple[str, bool]]) -> tuple[bool, str]:
    if "error" in fig:
        return False, f"{name:<18} FAIL  scenario error: {fig['error'][:200]}"
    try:
        text, good = fn(fig)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        return False, f"{name:<18} FAIL  figures incomplete ({type(exc).__name__}: {exc})"
    return good, f"{name:<18} {_ok(good):<4}  {text}"


def _chaos_line(f: dict[str, Any]) -> tuple[str, bool]:
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(f["faults_by_kind"].items()) if v or k != "ignore_range")
    text = (
        f"{f['converged_runs']}/{f['runs']} runs converged ({f['applies']} applies, at most "
        f"{f['max_applies_to_converge']} per run), plan empty after {f['plan_empty_after']}/{f['runs']}; "
        f"{f['faults_injected']} faults injected in {f['requests']} requests ({kinds}); "
        f"{f['retries']} retries; {f['bytes_transferred_again'] / 2**20:.2f} MiB downloaded again "
        f"({f['bytes_transferred_again'] / max(1, f['bytes_sent']):.1%} of {f['bytes_sent'] / 2**20:.1f} MiB), "
        f"{f['bytes_uploaded_again'] / 2**20:.2f} MiB uploaded again "
        f"(of {f['bytes_uploaded'] / 2**20:.2f} MiB; LFS blobs the Hub already has are skipped); "
        f"{f['files_checked_while_running']} files hashed while running; corrupt files {f['corrupt_files']}; "
        f"escaped exceptions {f['escaped_exceptions']}"
    )
    good = (
        f["converged_runs"] == f["runs"] == f["plan_empty_after"]
        and f["corrupt_files"] == 0
        and f["escaped_exceptions"] == 0
        and not f["findings"]
    )
    return text, good


def _crash_line(f: dict[str, Any]) -> tuple[str, bool]:
    pts = "; ".join(
        f"{p}: {v['killed']}/{v['trials']} killed" + (f" ({', '.join(v['triggers'])})" if v["triggers"] else "")
        for p, v in f["points"].items()
    )
    text = (
        f"{f['trials']} trials, {f['killed']} SIGKILLed [{pts}]; hf.lock parse failures "
        f"{f['lock_parse_failures']}; partial files under a final name {f['partial_files_under_final_name']}; "
        f"next apply converged {f['resumed_ok']}/{f['trials']}, plan empty {f['plan_empty_after_resume']}/{f['trials']}; "
        f"temp files left {f['temp_files_left_after_resume']}"
    )
    good = (
        f["lock_parse_failures"] == 0
        and f["partial_files_under_final_name"] == 0
        and f["resumed_ok"] == f["trials"] == f["plan_empty_after_resume"]
        and not f["findings"]
    )
    return text, good


def _two_applies_line(f: dict[str, Any]) -> tuple[str, bool]:
    running = f.get("first_still_running_when_second_started", False)
    text = (
        f"second apply started while the first was {'downloading' if running else 'already done'}: "
        f"first exit {f['first_exit']}, second exit {f['second_exit']} after {f['second_seconds']} s "
        f"({' '.join(f['second_message'])[:100]}...); plan after exit {f['plan_after_exit']}; hf.lock parses {f['lock_ok']}"
    )
    refused = f["second_exit"] == 17 if running else f["second_exit"] in (0, 17)
    return text, f["first_exit"] == 0 and refused and f["plan_after_exit"] == 0 and f["lock_ok"]


def _shared_line(f: dict[str, Any]) -> tuple[str, bool]:
    text = f"{f['projects']} projects, exit codes {f['exit_codes']}, problems {len(f['problems'])}, temp files left {f['temp_left']}"
    return text, f["exit_codes"] == [0] * f["projects"] and not f["problems"]


def _blob_line(f: dict[str, Any]) -> tuple[str, bool]:
    text = (
        f"{f['threads']} threads + {f['processes']} processes, flock {'on' if f['flock'] else 'off (no-op)'}, "
        f"{f['blob_mib']} MiB blob: errors {len(f['errors'])}, final blobs {f['final_blobs']} "
        f"(valid {f['final_blob_valid']}), corrupt {len(f['corrupt_blobs'])}, leftovers {len(f['leftovers'])}, "
        f"content requests {f['content_requests']}"
    )
    good = not f["errors"] and f["final_blobs"] == 1 and f["final_blob_valid"] and not f["corrupt_blobs"] and not f["leftovers"]
    return text, good


def _fuzz_line(f: dict[str, Any]) -> tuple[str, bool]:
    t = f["targets"]
    max_ms = max(v["max_ms"] for v in t.values())
    max_mib = max(v["max_peak_mib"] for v in t.values())
    worst = max(t, key=lambda n: t[n]["max_ms"])
    text = (
        f"{len(t)} targets, {sum(v['inputs'] for v in t.values())} inputs, "
        f"{sum(v['batuta_errors'] for v in t.values())} ended in BatutaError; max {max_ms} ms per input "
        f"({worst}, traced), max {max_mib} MiB; escapes of anything else: {len(f['escapes'])}"
    )
    return text, not f["escapes"] and max_mib < 64


def _hostile_line(f: dict[str, Any]) -> tuple[str, bool]:
    text = (
        f"{f['cases']} malicious-Hub cases x 3 commands: max {f['max_seconds_per_command']} s and "
        f"{f['max_traced_mib_per_command']} MiB per command; problems {len(f['problems'])}"
    )
    return text, not f["problems"] and f["max_traced_mib_per_command"] < 64


def _secrets_line(f: dict[str, Any]) -> tuple[str, bool]:
    text = (
        f"{f['commands']} commands (token via login and via HF_TOKEN): leaks in outputs {len(f['leaks'])}, "
        f"files with the token {len(f['files_with_token'])}, report canary in files {len(f['canary_in_files'])}; "
        f"login stored it in $HF_HOME/token {f['login_stored_token']}"
    )
    return text, not f["leaks"] and not f["files_with_token"] and not f["canary_in_files"]


def _suite_line(f: dict[str, Any]) -> tuple[str, bool]:
    if f.get("skipped"):
        return f"skipped: {f['skipped']}", True
    text = (
        f"{f['tests_checked']} tests of the suite (outside tests/reliability and tests/fuzz, which check "
        f"their own) ran with a canary HF_TOKEN ({f['outcomes']}); tests where it showed up: {len(f['leaks'])}"
    )
    return text, not f["leaks"] and f["tests_checked"] > 0 and not f["canary_in_pytest_output"]


def _load_line(f: dict[str, Any]) -> tuple[str, bool]:
    text = (
        f"{f['concurrent_downloads']} concurrent downloads x {f['rounds']} rounds "
        f"({f['bytes_per_round'] / 2**20:.0f} MiB each): errors {len(f['errors'])}, 5xx {f['errors_5xx']}, "
        f"max connections {f['max_active_connections']}, {f['throughput_mib_s']} MiB/s; RSS peaks "
        f"{f['rss_peak_per_round_mib']} MiB, growth after warm-up {f['rss_growth_after_warmup_mib']} MiB"
    )
    return text, not f["errors"] and f["errors_5xx"] == 0 and f["rss_growth_after_warmup_mib"] < 64


SUMMARY: dict[str, Callable[[dict[str, Any]], tuple[str, bool]]] = {
    "chaos": _chaos_line,
    "crashes": _crash_line,
    "two_applies": _two_applies_line,
    "shared_cache": _shared_line,
    "same_blob_flock": _blob_line,
    "same_blob_no_flock": _blob_line,
    "fuzz": _fuzz_line,
    "hostile_server": _hostile_line,
    "secrets": _secrets_line,
    "secrets_suite": _suite_line,
    "load": _load_line,
}


def summary(results: dict[str, Any]) -> list[tuple[bool, str]]:
    """One line per scenario: (passed, "name ok|FAIL headline figures")."""
    return [_line(n, results[n], fn) for n, fn in SUMMARY.items() if n in results]


def scenarios_table() -> dict[str, Callable[[Path], dict[str, Any]]]:
    from tests.reliability import scenarios as S

    return {
        "chaos": S.chaos,
        "crashes": S.crashes,
        "two_applies": S.two_applies,
        "shared_cache": S.shared_cache,
        "same_blob_flock": lambda w: S.same_blob(w, flock=True),
        "same_blob_no_flock": lambda w: S.same_blob(w, flock=False),
        "load": S.load,
        "fuzz": _fuzz,
        "hostile_server": _hostile,
        "secrets": _secrets,
        "secrets_suite": _secrets_suite,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="Full size (also BATUTA_RELIABILITY=full).")
    ap.add_argument("--only", default="", help="Comma-separated scenario names.")
    ap.add_argument("--json", action="store_true", help="Print one JSON document.")
    ap.add_argument("--keep", action="store_true", help="Keep the work directory.")
    a = ap.parse_args(argv)
    if a.full:
        os.environ["BATUTA_RELIABILITY"] = "full"
    for var in ("HF_ENDPOINT", "HF_HUB_OFFLINE"):
        os.environ.pop(var, None)
    os.environ["HF_TOKEN"] = CANARY
    os.environ["HF_HUB_DISABLE_XET"] = "1"
    from tests.reliability import _harness

    _harness.watch_token(CANARY)
    table = scenarios_table()
    explicit = [n for n in a.only.split(",") if n]
    unknown = [n for n in explicit if n not in table]
    if unknown:
        ap.error(f"unknown scenario(s): {', '.join(unknown)} (known: {', '.join(table)})")
    names = explicit or list(table)
    work = Path(tempfile.mkdtemp(prefix="batuta-reliability-"))
    results: dict[str, Any] = {"mode": "full" if _harness.full_mode() else "reduced"}
    t0 = time.perf_counter()
    try:
        for name in names:
            d = work / name
            d.mkdir()
            t = time.perf_counter()
            try:
                if name in SLOW and not explicit and not _harness.full_mode():
                    results[name] = {"skipped": SLOW[name]}
                else:
                    results[name] = table[name](d)
            except Exception as exc:
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            results[name]["seconds"] = round(time.perf_counter() - t, 2)
            if not a.json:
                print(f"== {name} ({results[name]['seconds']} s)")
                print(json.dumps(results[name], indent=2, sort_keys=True, default=str))
                sys.stdout.flush()
        results["token_leaks"] = list(_harness.LEAKS)
        results["total_seconds"] = round(time.perf_counter() - t0, 1)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    lines = summary(results)
    results["summary"] = [text for _good, text in lines]
    if a.json:
        print(json.dumps(results, indent=2, sort_keys=True, default=str))
    else:
        print(f"== summary ({results['mode']} size, {os.cpu_count()} CPUs, total {results['total_seconds']} s)")
        for _good, text in lines:
            print(text)
        print(f"token leaks in captured CLI output: {results['token_leaks'] or 'none'}")
    return 0 if all(good for good, _t in lines) and not results["token_leaks"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
