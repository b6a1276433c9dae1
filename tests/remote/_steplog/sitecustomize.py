"""Loaded by the runner subprocesses of tests/remote/test_scenario.py (PYTHONPATH): when
BATUTA_TEST_STEP_LOG names a file, every apply step and every real conversion appends one JSON
line ``{pid, kind, address, start, end, message}`` to it (O_APPEND: lines from concurrent
runners do not interleave).  Nothing else changes: the runner is ``python -m batuta_sync apply``."""

from __future__ import annotations

import json
import os
import time
from typing import Any

LOG = os.environ.get("BATUTA_TEST_STEP_LOG")


def _write(record: dict[str, Any]) -> None:
    assert LOG
    fd = os.open(LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)


def _install() -> None:
    import batuta_sync.core.steps as steps

    real_default_steps = steps.default_steps

    def logged(kind: str, fn: Any) -> Any:
        def step(action: Any, ctx: Any) -> Any:
            start = time.time()
            _write({"pid": os.getpid(), "event": "start", "kind": kind, "address": action.address, "t": start})
            result = fn(action, ctx)
            _write({"pid": os.getpid(), "event": "step", "kind": kind, "address": action.address,
                    "start": start, "end": time.time(), "message": result.message})
            return result

        return step

    def default_steps(*a: Any, **k: Any) -> Any:
        import batuta_sync.convert as convert_mod

        real_convert = convert_mod.convert
        if not getattr(real_convert, "_logged", False):
            def convert(*ca: Any, **ck: Any) -> Any:
                _write({"pid": os.getpid(), "event": "converted", "t": time.time()})
                return real_convert(*ca, **ck)

            convert._logged = True  # type: ignore[attr-defined]
            convert_mod.convert = convert
        return {kind: logged(kind.value, fn) for kind, fn in real_default_steps(*a, **k).items()}

    steps.default_steps = default_steps


if LOG:
    _install()
