"""pytest plugin: the suite-wide secret check (run by ``python -m tests.reliability.report --full``).

    BATUTA_CANARY_REPORT=/tmp/canary.jsonl python -m pytest -p tests.reliability.canary_plugin tests

Every test of the suite runs with a canary token in ``HF_TOKEN`` (set after the suite's own
environment isolation, so commands, subprocesses and clients all see it).  After each test the canary
must not appear in its captured stdout/stderr or log records (every phase), its failure text, or any
file under its tmp dir (``token`` files excepted: ``batuta hf login`` stores it there by design).
One JSON line per test goes to ``BATUTA_CANARY_REPORT``: ``{"test", "outcome", "leaks": [...]}``.
The plugin never fails a test itself: a test that expects no token at all may fail for that reason,
which is not a leak (the report counts outcomes and leaks separately).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.conftest import files_containing

CANARY = "hf_" + "SuiteWideCanary" + "Tok3nZq7Xv9Lp2Rt5W"  # hf_ + 34 letters and digits, HF token shape
_LEAKS: dict[str, list[str]] = {}
_OUTCOME: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _suite_canary(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    if "_isolated_env" in request.fixturenames:  # the suite scrubs HF_TOKEN: set the canary after it
        request.getfixturevalue("_isolated_env")
    monkeypatch.setenv("HF_TOKEN", CANARY)
    yield
    found = files_containing(tmp_path, CANARY.encode())
    _LEAKS.setdefault(request.node.nodeid, []).extend(f"file {p}" for p in found)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    outcome = yield
    rep = outcome.get_result()
    leaks = _LEAKS.setdefault(item.nodeid, [])
    for name, text in rep.sections:
        if name.endswith(f" {rep.when}") and CANARY in text:  # each phase adds its own sections
            leaks.append(f"{rep.when}: {name}")
    if CANARY in (rep.longreprtext or ""):
        leaks.append(f"{rep.when}: failure text")
        rep.longrepr = "secret leak: the failure text contains the canary token (details withheld)"
    if rep.when == "call" or (rep.when == "setup" and not rep.passed):
        _OUTCOME[item.nodeid] = rep.outcome


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    path = os.environ.get("BATUTA_CANARY_REPORT")
    if not path:
        return
    line = {"test": nodeid, "outcome": _OUTCOME.pop(nodeid, "unknown"), "leaks": _LEAKS.pop(nodeid, [])}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
