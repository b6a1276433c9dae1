"""Hostile input, fuzzed with hypothesis: every parser of untrusted bytes lets only BatutaError
subclasses escape, and handles each input in bounded time (< 250 ms, 4x margin on shared CI
cores) and memory (< 64 MiB, measured with tracemalloc).

CI runs a bounded number of examples (derandomized); ``BATUTA_RELIABILITY=full`` runs many more.
The same targets run under atheris with ``python tests/fuzz/atheris_harness.py TARGET``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import strategies as S
from tests.fuzz._targets import TARGETS, run_bounded
from tests.reliability._harness import full_mode

EXAMPLES = 500 if full_mode() else 40
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not full_mode(),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    database=None,
)

STRATEGIES: dict[str, st.SearchStrategy[bytes]] = {
    "manifest": S.manifests(),
    "lockfile": S.lockfiles(),
    "plan": S.plans(),
    "safetensors": st.one_of(S.safetensors_files(), st.binary(max_size=64)),
    "safetensors_file": S.safetensors_files(),
    "gguf": S.gguf_files(),
    "gguf_file": S.gguf_files(),
    "pickle_scan": S.pickles(),
    "unpickler": S.pickles(),
    "notebook": S.notebooks(),
    "hub_json": S.hub_json(),
}


def test_every_target_has_a_strategy() -> None:
    assert set(STRATEGIES) == set(TARGETS)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_only_batuta_errors_escape_within_bounds(name: str) -> None:
    @FUZZ
    @given(data=STRATEGIES[name])
    def check(data: bytes) -> None:
        run_bounded(name, data)

    check()


def test_malicious_pickles_never_execute(tmp_path: Path) -> None:
    canary = Path("/tmp/batuta-fuzz-pwned")
    canary.unlink(missing_ok=True)
    for payload in S.EVIL:
        run_bounded("pickle_scan", payload)
        run_bounded("unpickler", payload)
    assert not canary.exists(), "a pickle payload ran code"
