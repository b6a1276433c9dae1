"""Suite-wide secret check for tests/reliability and tests/fuzz.

Every test here runs with a known canary token in ``HF_TOKEN`` (so every in-process and
subprocess ``batuta`` run of the scenarios carries it).  After each test the canary must not
appear in: captured stdout/stderr, log records, any CLI output the harness captured, the
failure text of the test, or any file under the test's tmp dir (hf.lock, plan.json, cache,
server store, ...) except ``$HF_HOME/token`` files, the one place ``batuta hf login`` stores it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability import _harness

CANARY = "hf_" + "CanaryToken4Reliability" + "Zq7Xv9Lp2Rt5Wn8"  # 38 chars, HF token shape


def files_containing(root: Path, needle: bytes, *, allow: tuple[str, ...] = ("token",)) -> list[str]:
    """Paths of files under ``root`` whose bytes contain ``needle`` (files named in ``allow`` skipped)."""
    hits = []
    for dirpath, _dirs, files in os.walk(root):
        for n in files:
            p = Path(dirpath) / n
            if n in allow or p.is_symlink():
                continue
            try:
                if p.stat().st_size > (256 << 20):
                    continue
                if needle in p.read_bytes():
                    hits.append(str(p))
            except OSError:
                continue
    return hits


@pytest.fixture(autouse=True)
def _token_never_leaks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> Iterator[str]:
    monkeypatch.setenv("HF_TOKEN", CANARY)
    _harness.watch_token(CANARY)
    _harness.LEAKS.clear()
    caplog.set_level(logging.DEBUG)
    yield CANARY
    out, err = capfd.readouterr()
    problems = list(_harness.LEAKS)
    _harness.LEAKS.clear()
    if CANARY in out or CANARY in err:
        problems.append("token in captured stdout/stderr")
    if CANARY in caplog.text:
        problems.append("token in log records")
    problems += [f"token in file {p}" for p in files_containing(tmp_path, CANARY.encode())]
    assert not problems, "secret leak: " + "; ".join(problems)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and CANARY in rep.longreprtext:
        rep.longrepr = "secret leak: the test failure text contains the token (details withheld)"
