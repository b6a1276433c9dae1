"""Cold start (issue 19 point 7): an apply whose conversions will use the compiled K-quant kernels
starts compiling (or loading) exactly those kernels in the background while its pulls run; small
sources, which run on numpy, never trigger it."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from batuta_sync.core.actions import Action, ActionKind, Reason
from batuta_sync.core.manifest import parse_manifest
from batuta_sync.core.planner.plan import Plan

YAML = ("version: 1\nmodels:\n  m: {repo: org/m}\n"
        "conversions:\n  q: {from: models.m, to: gguf, quantization: QUANT}\n")


def _plan(size: int) -> Plan:
    from batuta_sync.core.lockfile import FileDigest, RepoLock

    entry = RepoLock("models.m", "org/m", "model", "main", "a" * 40, "s",
                     (FileDigest("model.safetensors", size, None, "b" * 64),))
    pull = Action(ActionKind.PULL, "models.m", Reason.NOT_IN_CACHE, lock_entry=entry.to_dict())
    conv = Action(ActionKind.CONVERT, "conversions.q", Reason.NOT_LOCKED, deps=(pull.id,))
    return Plan("p1", "hf.yaml", "sha256:m", "none", actions=(pull, conv))


@pytest.mark.parametrize(("quant", "size", "want"), [
    ("Q4_K_M", 64 << 20, ["Q4_K", "Q6_K"]),
    ("Q5_K_M", 64 << 20, ["Q5_K", "Q6_K"]),
    ("Q4_K_M", 1 << 20, None),  # numpy territory: nothing compiles
    ("Q8_0", 64 << 20, None),  # no K-quant kernels
])
def test_prewarm_starts_exactly_the_kernels_the_plan_needs(quant: str, size: int, want: list[str] | None,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from batuta_sync.convert import kquants
    from batuta_sync.core.steps import prewarm

    seen: list[list[str]] = []
    done = threading.Event()

    def record(qtypes: Any) -> bool:
        seen.append(list(qtypes))
        done.set()
        return True

    monkeypatch.setattr(kquants, "warm_up", record)
    thread = prewarm(_plan(size), None, parse_manifest(YAML.replace("QUANT", quant)))
    if want is None:
        assert thread is None and seen == []
        return
    assert thread is not None and thread.daemon
    thread.join(30)
    assert seen == [want]


def test_warm_up_loads_the_kernels_so_the_next_call_uses_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from batuta_sync.convert import kquants

    monkeypatch.delenv("BATUTA_KQUANTS_BACKEND", raising=False)
    if kquants._jit() is None:
        pytest.skip("numba is not usable here")
    assert kquants.warm_up(["Q6_K"]) is True
    assert kquants.backend_name("Q6_K", 1) == "numba"  # even one super-block: the kernels are loaded
    monkeypatch.setenv("BATUTA_KQUANTS_BACKEND", "numpy")
    assert kquants.warm_up(["Q6_K"]) is False  # forced numpy: nothing to warm
