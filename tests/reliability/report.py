"""One command for every reliability figure.

    python -m tests.reliability.report            # reduced size (what CI runs), ~2-3 min
    python -m tests.reliability.report --full     # full size (BATUTA_RELIABILITY=full)
    python -m tests.reliability.report --only chaos,crashes --json

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


def _secrets(work: Path) -> dict[str, Any]:
    from tests.reliability.conftest import files_containing
    from tests.reliability.test_secrets import secrets_scenario

    fig = secrets_scenario(work)
    fig["canary_in_files"] = files_containing(work, CANARY.encode())
    fig.pop("codes", None)
    return fig


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
        "secrets": _secrets,
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
    names = [n for n in a.only.split(",") if n] or list(table)
    work = Path(tempfile.mkdtemp(prefix="batuta-reliability-"))
    results: dict[str, Any] = {"mode": "full" if _harness.full_mode() else "reduced"}
    t0 = time.perf_counter()
    try:
        for name in names:
            d = work / name
            d.mkdir()
            t = time.perf_counter()
            try:
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
    if a.json:
        print(json.dumps(results, indent=2, sort_keys=True, default=str))
    else:
        print(f"== token leaks: {results['token_leaks'] or 'none'}; total {results['total_seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
