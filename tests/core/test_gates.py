"""CI gates fail when they could not check (issue 14, items 1 and 4), end to end through the CLI.

A gate is a command whose exit code a pipeline decides on: ``plan --detailed-exitcode`` (with or
without ``--locked`` / ``--refresh-only``) and ``status --exit-code``.  When the Hub is unreachable,
rejects the token, or a repo is gone, the gate must exit with the cause's documented code (network 9,
auth 7, not found 8), not "No changes" (0); only an explicit ``--offline`` plans from hf.lock alone.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.errors import exit_code
from tests._builders import run_cli as run

FILES = {"config.json": b'{"a": 1}', "weights.txt": b"w" * 3000}
GATES = (
    ("plan", "--detailed-exitcode"),
    ("plan", "--locked", "--detailed-exitcode"),
    ("plan", "--refresh-only", "--detailed-exitcode"),
    ("status", "--exit-code"),
)


def _dead_endpoint() -> str:
    """A loopback URL nobody listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _applied_workspace(tmp_path: Path, hub: Any, capsys: pytest.CaptureFixture[str], extra: str = "") -> Path:
    hub.store.commit("org/a", FILES)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "hf.yaml").write_text(f"version: 1\nmodels:\n  a:\n    repo: org/a\n    output: ./models/a\n{extra}")
    code, _, err = run(capsys, "apply", "-f", str(ws / "hf.yaml"), "--auto-approve")
    assert code == 0, err
    for gate in GATES:  # in sync and reachable: every gate passes
        assert run(capsys, *gate, "-f", str(ws / "hf.yaml"))[0] == 0, gate
    return ws


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATUTA_RETRY_BACKOFF", "0.01")


@pytest.mark.parametrize("gate", GATES, ids=lambda g: " ".join(g))
def test_an_unreachable_hub_fails_every_gate_with_the_network_code(
    gate: tuple[str, ...], tmp_path: Path, hub_env: Any, fast_retries: None,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    ws = _applied_workspace(tmp_path, hub_env, capsys)
    monkeypatch.setenv("HF_ENDPOINT", _dead_endpoint())
    code, out, err = run(capsys, *gate, "-f", str(ws / "hf.yaml"))
    assert code == exit_code("network") == 9, (out, err)
    assert "models.a: could not check org/a@main" in err and "not-checked" in err
    assert "No changes" not in out and "In sync" not in out


def test_plain_plan_says_loudly_which_resources_were_not_checked_and_offline_is_explicit(
    tmp_path: Path, hub_env: Any, fast_retries: None, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ws = _applied_workspace(tmp_path, hub_env, capsys)
    monkeypatch.setenv("HF_ENDPOINT", _dead_endpoint())
    f = str(ws / "hf.yaml")
    code, out, err = run(capsys, "plan", "-f", f)
    assert code == 0  # not a gate: the plan is shown
    assert out.startswith("NOT CHECKED: 1 resource could not be checked against the Hub")
    assert "  ? models.a: could not check org/a@main" in out
    assert "No changes among the checked resources; 1 not checked" in out
    assert "Warning: 1 resource was not checked against the Hub" in err and "models.a" in err
    code, out, _ = run(capsys, "plan", "-f", f, "--format", "markdown")
    assert "**Not checked (1), treated as unchanged:**" in out
    code, out, _ = run(capsys, "status", "-f", f)
    assert code == 0 and "In sync" not in out and "(not checked)" in out
    # Asked for explicitly, offline planning from hf.lock and the disk passes the gates (with the
    # endpoint hf.lock was resolved on: another one would be a visible plan change of its own).
    monkeypatch.setenv("HF_ENDPOINT", hub_env.url)
    for gate in GATES:
        code, out, err = run(capsys, *gate, "-f", f, "--offline")
        assert code == 0, (gate, out, err)
        assert "NOT CHECKED" not in out


def test_a_rejected_token_fails_the_gates_with_the_auth_code(
    tmp_path: Path, fast_retries: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from batuta_sync.server import HubServer, UserSpec

    srv = HubServer(root=tmp_path / "hub-root", users=[UserSpec("alice", "hf_alicealicealicealice0", "write")])
    srv.start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", srv.url)
        monkeypatch.setenv("HF_TOKEN", "hf_alicealicealicealice0")
        ws = _applied_workspace(tmp_path, srv, capsys)
        monkeypatch.setenv("HF_TOKEN", "hf_revokedrevokedrevoked0")
        for gate in GATES:
            code, _, err = run(capsys, *gate, "-f", str(ws / "hf.yaml"))
            assert code == exit_code("auth") == 7, (gate, err)
            assert "could not check org/a@main" in err and "hf_revoked" not in err
    finally:
        srv.stop()


def test_a_repo_gone_upstream_fails_the_gates_with_the_not_found_code(
    tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = _applied_workspace(tmp_path, hub_env, capsys)
    hub_env.store.delete_repo("org/a")
    for gate in GATES:
        code, _, err = run(capsys, *gate, "-f", str(ws / "hf.yaml"))
        assert code == exit_code("not-found") == 8, (gate, err)


def test_mixed_causes_report_the_one_to_fix_first(
    tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two resources fail differently (one repo gone, one publish target forbidden… here: gone and
    a 5xx): the exit code is the first of auth, not-found, rate-limited, network."""
    hub_env.store.commit("org/b", FILES)
    ws = _applied_workspace(tmp_path, hub_env, capsys, extra="  b:\n    repo: org/b\n")
    hub_env.store.delete_repo("org/a")
    hub_env.faults.configure(server_errors=100, server_error_status=503, path_filter="org/b")
    code, _, err = run(capsys, "plan", "-f", str(ws / "hf.yaml"), "--detailed-exitcode")
    hub_env.faults.reset()
    assert code == 8, err
    assert "2 resources could not be checked" in err and "models.a" in err and "models.b" in err


def test_locked_means_hf_lock_matches_hf_yaml_not_that_upstream_stood_still(
    tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = _applied_workspace(tmp_path, hub_env, capsys)
    f = str(ws / "hf.yaml")
    old = hub_env.store.resolve("org/a")
    new = hub_env.store.commit("org/a", {"config.json": b'{"a": 2}'})
    # hf.yaml and hf.lock agree: --locked passes, upstream drift is reported separately.
    code, out, err = run(capsys, "plan", "-f", f, "--locked", "--detailed-exitcode")
    assert code == 0, err
    assert f"upstream moved: org/a@main moved {old[:7]} → {new[:7]}" in out
    code, out, _ = run(capsys, "status", "-f", f, "--exit-code")
    assert code == 2 and "upstream moved" in out
    # hf.yaml and hf.lock disagree: exit 5 without asking the Hub, and the hint really fixes it.
    (ws / "hf.yaml").write_text((ws / "hf.yaml").read_text() + "    include: ['*.json']\n")
    hub_env.log.clear()
    code, _, err = run(capsys, "plan", "-f", f, "--locked", "--detailed-exitcode")
    assert code == 5 and "models.a: hf.yaml changed its repo, type or file selection" in err
    assert "batuta lock" in err and hub_env.log.count() == 0
    code, _, err = run(capsys, "lock", "-f", f)
    assert code == 0 and "Updated hf.lock" in err
    code, out, err = run(capsys, "plan", "-f", f, "--locked", "--detailed-exitcode")
    assert code == 0, err  # the lock agrees again (same pinned commit, narrower selection)
    # A resource new to hf.yaml and not yet locked.
    (ws / "hf.yaml").write_text((ws / "hf.yaml").read_text() + "  c:\n    repo: org/a\n")
    code, _, err = run(capsys, "plan", "-f", f, "--locked")
    assert code == 5 and "models.c: in hf.yaml but not in hf.lock" in err
