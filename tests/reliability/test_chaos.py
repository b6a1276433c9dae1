"""Chaos: about 30 % of requests fail (drops at random byte offsets, truncated and corrupted
bodies, 429 with a small Retry-After, 5xx) while ``batuta apply`` pulls, converts and pushes.

Every run converges within a bounded number of applies, every file's hash is verified, and a
monitor thread hashing the cache and the outputs during the applies never sees a corrupt file.
"""

from __future__ import annotations

from pathlib import Path

from tests.reliability import scenarios


def test_apply_converges_under_random_faults(tmp_path: Path) -> None:
    fig = scenarios.chaos(tmp_path)
    assert fig["findings"] == [], "\n".join(fig["findings"])
    assert fig["converged_runs"] == fig["runs"]
    assert fig["plan_empty_after"] == fig["runs"]
    assert fig["corrupt_files"] == 0
    assert fig["escaped_exceptions"] == 0
    assert fig["faults_injected"] > 0
    assert sum(fig["faults_by_kind"].values()) == fig["faults_injected"]
    assert fig["faults_by_kind"]["429"] + fig["faults_by_kind"]["5xx"] > 0
    assert fig["files_checked_while_running"] > 0
