"""End-to-end: `batuta validate|plan|apply|show|graph|lock|status` against the local Hub server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.core.lockfile import RepoLock, read_lock
from tests._builders import run_cli as run

FILES_A = {"config.json": b'{"a": 1}', "tokenizer.json": b'{"v": [1, 2, 3]}', "notes.txt": b"hello " * 300}
FILES_B = {"config.json": b'{"b": 1}', "data.txt": b"b" * 5000}


def _write(ws: Path, body: str) -> Path:
    ws.mkdir(parents=True, exist_ok=True)
    path = ws / "hf.yaml"
    path.write_text("# yaml-language-server: $schema=https://batuta-sync.dev/schemas/hf.schema.json\nversion: 1\n" + body)
    return path


@pytest.fixture
def ws(tmp_path: Path, hub_env: Any) -> Path:
    hub_env.store.commit("org/a", FILES_A)
    hub_env.store.commit("org/b", FILES_B)
    ws = tmp_path / "ws"
    _write(ws, "policies:\n  max_cache_size: 10GB\nmodels:\n  a:\n    repo: org/a\n    output: ./models/a\n  b:\n    repo: org/b\n")
    return ws


def test_first_apply_pulls_and_writes_the_lock_then_the_plan_is_empty(
    ws: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    f = str(ws / "hf.yaml")
    plan_path = str(ws / "plan.json")
    code, out, _ = run(capsys, "plan", "-f", f, "-o", plan_path, "--detailed-exitcode")
    assert code == 2 and "+ ↓ pull  models.a  (not locked)" in out and "Plan: 2 to pull" in out
    code, out, err = run(capsys, "apply", "-f", f, plan_path, "--auto-approve")
    assert code == 0, err
    assert "Apply complete: 2 done" in err
    lock = read_lock(ws / "hf.lock")
    assert lock is not None and lock.last_applied_plan and set(lock.entries) == {"models.a", "models.b"}
    a = lock.get("models.a")
    assert isinstance(a, RepoLock) and a.commit == hub_env.store.resolve("org/a")
    assert {f.path for f in a.files} == set(FILES_A)
    assert (ws / "models/a/notes.txt").read_bytes() == FILES_A["notes.txt"]
    # Lock file: deterministic text that validates against its schema.
    import yaml
    from jsonschema import Draft202012Validator

    from batuta_sync.core.manifest import load_schema

    Draft202012Validator(load_schema("lock.schema.json")).validate(yaml.safe_load((ws / "hf.lock").read_text()))
    assert "\n\n  \"models.b\":" in (ws / "hf.lock").read_text()
    # Next plan: nothing to do.
    code, out, _ = run(capsys, "plan", "-f", f, "--detailed-exitcode")
    assert code == 0 and out.startswith("No changes.")
    # A saved plan is single-use.
    code, _, err = run(capsys, "apply", "-f", f, plan_path, "--auto-approve")
    assert code == 4 and "single-use" in err
    # Offline, the no-op plan answers from hf.lock and the disk alone: no request reaches the Hub.
    hub_env.log.clear()
    code, out, _ = run(capsys, "plan", "-f", f, "--offline", "--detailed-exitcode")
    assert code == 0 and hub_env.log.count() == 0


def test_upstream_move_shows_as_drift_and_changes_the_lock_only_through_lock_update(
    ws: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    f = str(ws / "hf.yaml")
    assert run(capsys, "apply", "-f", f, "--auto-approve")[0] == 0
    before = (ws / "hf.lock").read_text()
    old = hub_env.store.resolve("org/a")
    new = hub_env.store.commit("org/a", {"config.json": b'{"a": 2}'})

    code, out, _ = run(capsys, "status", "-f", f, "--exit-code")
    assert code == 2 and f"! models.a  upstream moved: org/a@main moved {old[:7]} → {new[:7]}" in out
    code, out, _ = run(capsys, "plan", "-f", f, "--refresh-only", "--detailed-exitcode")
    assert code == 2 and "upstream moved" in out and "Refresh-only" in out
    code, out, _ = run(capsys, "plan", "-f", f, "--detailed-exitcode")
    assert code == 0 and "upstream moved" in out  # shown, but pinned: no action
    # --locked (uv/cargo meaning): hf.yaml and hf.lock still agree, so it passes; drift is status's job.
    code, _, err = run(capsys, "plan", "-f", f, "--locked", "--detailed-exitcode")
    assert code == 0, err
    assert (ws / "hf.lock").read_text() == before  # nothing above touched the lock

    code, _, err = run(capsys, "lock", "-f", f, "--update", "models.a")
    assert code == 0 and f"models.a: {old[:7]} → {new[:7]}" in err
    lock = read_lock(ws / "hf.lock")
    assert lock is not None and lock.get("models.a").commit == new  # type: ignore[union-attr]
    assert lock.get("models.b").commit == hub_env.store.resolve("org/b")  # type: ignore[union-attr]
    code, out, _ = run(capsys, "plan", "-f", f, "--detailed-exitcode")
    assert code == 2 and "↓ pull  models.a  (revision moved)" in out
    assert run(capsys, "apply", "-f", f, "--auto-approve")[0] == 0
    assert (ws / "models/a/config.json").read_bytes() == b'{"a": 2}'
    assert run(capsys, "plan", "-f", f, "--locked", "--detailed-exitcode")[0] == 0
    assert run(capsys, "lock", "-f", f)[2].startswith("hf.lock is up to date")
    code, out, _ = run(capsys, "status", "-f", f, "--json")
    assert json.loads(out)["drift"] == []


def test_a_stale_plan_is_refused_listing_each_failed_precondition(
    ws: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    f = str(ws / "hf.yaml")
    plan_path = str(ws / "plan.json")
    assert run(capsys, "plan", "-f", f, "-o", plan_path)[0] == 0
    new = hub_env.store.commit("org/b", {"data.txt": b"moved"})
    code, _, err = run(capsys, "apply", "-f", f, plan_path, "--auto-approve")
    assert code == 4
    assert "models.b: org/b@main moved from" in err and f"to {new[:7]} since the plan" in err
    assert not (ws / "hf.lock").exists()
    # A manifest edit is also refused.
    assert run(capsys, "plan", "-f", f, "-o", plan_path)[0] == 0
    (ws / "hf.yaml").write_text((ws / "hf.yaml").read_text() + "datasets: {}\n")
    code, _, err = run(capsys, "apply", "-f", f, plan_path, "--auto-approve")
    assert code == 4 and "hf.yaml changed since the plan was made" in err


def _cli(ws: Path, hub: Any, *argv: str, **kw: Any) -> subprocess.Popen[str]:
    env = dict(os.environ, HF_ENDPOINT=hub.url)
    return subprocess.Popen([sys.executable, "-m", "batuta_sync", *argv], cwd=ws, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _wait_for(pred: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def test_a_killed_apply_resumes_where_it_stopped(ws: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    f = str(ws / "hf.yaml")
    plan_path = str(ws / "plan.json")
    assert run(capsys, "plan", "-f", f, "-o", plan_path)[0] == 0
    hub_env.faults.configure(latency_ms=150, path_filter="org/b")  # models.b is slow: we kill during it
    proc = _cli(ws, hub_env, "apply", "plan.json", "--auto-approve", "--jobs", "1")
    try:
        _wait_for(lambda: (ws / "hf.lock").exists() and "models.a" in (ws / "hf.lock").read_text())
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    lock = read_lock(ws / "hf.lock")
    assert lock is not None and set(lock.entries) == {"models.a"} and lock.last_applied_plan is None
    hub_env.faults.reset()
    hub_env.log.clear()
    code, _, err = run(capsys, "apply", "-f", f, plan_path, "--auto-approve")
    assert code == 0, err
    assert "1 done (1 already done before)" in err
    assert hub_env.log.count(path_contains="org/a") == 0  # models.a was not redone
    lock = read_lock(ws / "hf.lock")
    assert lock is not None and set(lock.entries) == {"models.a", "models.b"} and lock.last_applied_plan


def test_a_concurrent_apply_is_refused_naming_the_holder(
    ws: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    hub_env.faults.configure(latency_ms=200)
    proc = _cli(ws, hub_env, "apply", "--auto-approve", "--jobs", "1")
    try:
        lockfile = ws / ".batuta" / "apply.lock"
        _wait_for(lambda: lockfile.exists() and '"pid"' in lockfile.read_text())
        holder = json.loads(lockfile.read_text())
        started = time.monotonic()
        code, _, err = run(capsys, "apply", "-f", str(ws / "hf.yaml"), "--auto-approve")
        elapsed = time.monotonic() - started
        assert code == 17 and f"pid {holder['pid']}" in err and "workspace-busy" in err
        assert elapsed < 30  # refused, not queued behind the running apply
    finally:
        hub_env.faults.reset()
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def test_apply_needs_approval_when_not_a_terminal(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "apply", "-f", str(ws / "hf.yaml"))
    assert code == 64 and "--auto-approve" in err
    assert not (ws / "hf.lock").exists()


def test_show_graph_json_markdown_and_targeting(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = str(ws / "hf.yaml")
    plan_path = str(ws / "plan.json")
    code, out, _ = run(capsys, "plan", "-f", f, "--json", "-o", plan_path)
    data = json.loads(out)
    assert data["summary"]["pull"] == 2 and data["plan_mac"].startswith("hmac-sha256:")
    assert run(capsys, "show", plan_path)[1].startswith("batuta will perform")
    assert json.loads(run(capsys, "show", plan_path, "--json")[1])["plan_id"] == data["plan_id"]
    assert "| ↓ | pull | `models.a` |" in run(capsys, "show", plan_path, "--format", "markdown")[1]
    assert "| ↓ | pull | `models.b` |" in run(capsys, "plan", "-f", f, "--format", "markdown")[1]
    out = run(capsys, "plan", "-f", f, "--target", "models.b")[1]
    assert "models.b" in out and "models.a" not in out
    out = run(capsys, "plan", "-f", f, "--exclude", "models.b")[1]
    assert "models.a" in out and "models.b" not in out
    code, _, err = run(capsys, "plan", "-f", f, "--target", "models.zzz")
    assert code == 64 and "Unknown address" in err
    dot = run(capsys, "graph", "-f", f)[1]
    assert dot.startswith('digraph "batuta"') and '"models.a"' in dot
    assert "flowchart LR" in run(capsys, "graph", "-f", f, plan_path, "--format", "mermaid")[1]
    code, _, err = run(capsys, "show", str(ws / "missing.json"))
    assert code == 3
    (ws / "bad.json").write_text('{"format_version": "1.0"}')
    assert run(capsys, "show", str(ws / "bad.json"))[0] == 3


def test_replace_and_removed_resources(ws: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    f = str(ws / "hf.yaml")
    assert run(capsys, "apply", "-f", f, "--auto-approve")[0] == 0
    hub_env.log.clear()
    out = run(capsys, "plan", "-f", f, "--replace", "models.a", "-o", str(ws / "r.json"))[1]
    assert "(replace requested)" in out
    assert run(capsys, "apply", "-f", f, str(ws / "r.json"), "--auto-approve")[0] == 0
    assert hub_env.log.count("GET", "/resolve/") == len(FILES_A)  # every file fetched again
    tampered = ws / "models/a/notes.txt"
    tampered.unlink()  # a symlink into the cache, whose blob is read-only: replace it, as editors do
    tampered.write_text("tampered")
    code, out, _ = run(capsys, "plan", "-f", f, "--detailed-exitcode")
    assert code == 2 and "(digest mismatch)" in out and "local modified" in out
    assert run(capsys, "apply", "-f", f, "--auto-approve")[0] == 0
    assert (ws / "models/a/notes.txt").read_bytes() == FILES_A["notes.txt"]
    # Drop models.a from the manifest: its materialized files go, the lock entry goes.
    _write(ws, "models:\n  b:\n    repo: org/b\n")
    code, out, _ = run(capsys, "plan", "-f", f, "--detailed-exitcode")
    assert code == 2 and "- delete-local  models.a  (removed from manifest)" in out
    assert run(capsys, "apply", "-f", f, "--auto-approve")[0] == 0
    assert not (ws / "models/a").exists()
    lock = read_lock(ws / "hf.lock")
    assert lock is not None and set(lock.entries) == {"models.b"}


def test_broken_manifest_exit_code_for_every_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _write(tmp_path, "models:\n  a:\n    repo: org/a\n    quantization: Q7\n    format: gguf\n")
    for cmd in ("validate", "plan", "apply", "lock", "status", "graph"):
        code, _, err = run(capsys, cmd, "-f", str(f))
        assert code == 3, (cmd, err)
        assert f"{f}:6:19: models.a.quantization: unknown quantization 'Q7'" in err


def test_conversion_and_publish_end_to_end(tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from batuta_sync.tinymodel import write_tiny_llama

    src = write_tiny_llama(tmp_path / "seed")
    hub_env.store.commit("org/tiny", {p.relative_to(src).as_posix(): p for p in src.rglob("*") if p.is_file()})
    ws = tmp_path / "ws"
    f = str(_write(ws, (
        "models:\n  tiny: {repo: org/tiny}\n"
        "conversions:\n  tiny-q8: {from: models.tiny, to: gguf, quantization: Q8_0, output: ./gguf}\n"
        "publish:\n  tiny-gguf: {from: conversions.tiny-q8, repo: me/tiny-gguf, card: {license: mit}}\n"
    )))
    code, out, _ = run(capsys, "plan", "-f", f, "--detailed-exitcode")
    assert code == 2 and "⇄ convert" in out and "↑ push" in out and "after conversions.tiny-q8" in out
    code, _, err = run(capsys, "apply", "-f", f, "--auto-approve")
    assert code == 0, err
    lock = read_lock(ws / "hf.lock")
    assert lock is not None
    conv = lock.get("conversions.tiny-q8")
    pub = lock.get("publish.tiny-gguf")
    assert conv is not None and conv.outputs and conv.outputs[0].path.endswith(".gguf")  # type: ignore[union-attr]
    assert pub is not None and pub.commit == hub_env.store.resolve("me/tiny-gguf")  # type: ignore[union-attr]
    assert run(capsys, "plan", "-f", f, "--detailed-exitcode")[0] == 0
    # Changing a parameter re-converts and re-publishes.
    Path(f).write_text(Path(f).read_text().replace("Q8_0", "F16"))
    code, out, _ = run(capsys, "plan", "-f", f, "--detailed-exitcode")
    assert code == 2 and "(params changed)" in out and "(source changed)" in out
    assert run(capsys, "apply", "-f", f, "--auto-approve")[0] == 0
    outputs = sorted(p.name for p in (ws / "gguf").iterdir())
    assert outputs[1:] == ["provenance.json"], outputs
    assert outputs[0].endswith("F16.gguf"), outputs  # the Q8_0 output was replaced
    prov = json.loads((ws / "gguf" / "provenance.json").read_text())
    assert prov["quantization"] == "F16" and prov["source_commit"] == hub_env.store.resolve("org/tiny")
    # Someone pushes to the published repo outside batuta: status reports it.
    hub_env.store.commit("me/tiny-gguf", {"extra.txt": b"x"})
    code, out, _ = run(capsys, "status", "-f", f)
    assert "published drift" in out


def test_materialize_copy_and_verify(tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    hub_env.store.commit("org/a", FILES_A)
    ws = tmp_path / "ws"
    f = str(_write(ws, "policies: {materialize: copy}\nmodels:\n  a: {repo: org/a, output: ./out}\n"))
    assert run(capsys, "apply", "-f", f, "--auto-approve")[0] == 0
    out = ws / "out" / "config.json"
    assert out.is_file() and not out.is_symlink()
    assert run(capsys, "plan", "-f", f, "--detailed-exitcode")[0] == 0  # trusted by size + mtime, not hashed
    out.write_bytes(b'{"a": 9}')  # same size, different content: the mtime moved, so it is hashed
    code, text, _ = run(capsys, "plan", "-f", f, "--detailed-exitcode")
    assert code == 2 and "(digest mismatch)" in text
    assert run(capsys, "apply", "-f", f, "--auto-approve")[0] == 0
    assert out.read_bytes() == FILES_A["config.json"]
    # Without batuta's record of the file (state lost), only --verify sees a same-size edit.
    (ws / ".batuta" / "state.json").unlink()
    out.write_bytes(b'{"a": 8}')
    assert run(capsys, "plan", "-f", f, "--detailed-exitcode")[0] == 0
    code, text, _ = run(capsys, "plan", "-f", f, "--verify", "--detailed-exitcode", "-o", str(ws / "p.json"))
    assert code == 2 and "(digest mismatch)" in text
    assert run(capsys, "apply", "-f", f, str(ws / "p.json"), "--auto-approve")[0] == 0
    assert out.read_bytes() == FILES_A["config.json"]


def test_publish_from_a_local_path(tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    f = str(_write(ws, "publish:\n  app:\n    from: ./space\n    repo: me/app\n    type: space\n    sdk: gradio\n"))
    (ws / "space").mkdir()
    (ws / "space" / "app.py").write_text("import gradio\n")
    (ws / "space" / "requirements.txt").write_text("gradio\n")
    code, out, _ = run(capsys, "plan", "-f", f, "--detailed-exitcode")
    assert code == 2 and "↑ push  publish.app  (not published)" in out
    code, _, err = run(capsys, "apply", "-f", f, "--auto-approve")
    assert code == 0, err
    head = hub_env.store.resolve("me/app", repo_type="space")
    assert read_lock(ws / "hf.lock").get("publish.app").commit == head  # type: ignore[union-attr]
    assert run(capsys, "plan", "-f", f, "--detailed-exitcode")[0] == 0  # hash cache: unchanged files
    (ws / "space" / "app.py").write_text("import gradio as gr\n")
    code, out, _ = run(capsys, "plan", "-f", f, "--detailed-exitcode")
    assert code == 2 and "(source changed)" in out
    assert run(capsys, "apply", "-f", f, "--auto-approve")[0] == 0
    assert hub_env.store.resolve("me/app", repo_type="space") != head


def test_selection_problems_fail_the_plan_with_the_address(
    tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    hub_env.store.commit("org/pickled", {"config.json": b"{}", "pytorch_model.bin": b"\x80\x02}q\x00."})
    hub_env.store.commit("org/st", {"config.json": b"{}", "model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "})
    ws = tmp_path / "ws"
    f = str(_write(ws, "models:\n  p: {repo: org/pickled, include: ['*.bin']}\n  g: {repo: org/st, format: gguf, quantization: Q4_K_M}\n"))
    code, _, err = run(capsys, "plan", "-f", f)
    assert code == 1
    assert "models.p: Blocked 1 file(s)" in err and "pytorch_model.bin" in err
    assert "models.g: org/st has no gguf Q4_K_M file" in err and "conversions:" in err
    _write(ws, "models:\n  p: {repo: org/pickled, include: ['*.bin'], allow_unsafe: true}\n  missing: {repo: org/nope}\n")
    code, _, err = run(capsys, "plan", "-f", f)
    assert code == 8 and "models.missing:" in err  # not-found keeps its exit code and "models.p" not in err


def test_apply_asks_on_a_terminal(ws: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from batuta_sync.cli import _common

    monkeypatch.setattr(_common, "is_tty", lambda stream=None: True)
    answers = iter(["no", "yes"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    f = str(ws / "hf.yaml")
    code, _, err = run(capsys, "apply", "-f", f)
    assert code == 0 and "Apply cancelled" in err and not (ws / "hf.lock").exists()
    code, _, err = run(capsys, "apply", "-f", f)
    assert code == 0 and "Apply complete" in err and (ws / "hf.lock").exists()


def test_lock_waits_for_no_one_and_refuses_during_an_apply(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from batuta_sync.core.workspace import Workspace, WorkspaceLock

    with WorkspaceLock(Workspace(ws / "hf.yaml").apply_lock):
        code, _, err = run(capsys, "lock", "-f", str(ws / "hf.yaml"))
    assert code == 17 and "workspace-busy" in err
    assert run(capsys, "lock", "-f", str(ws / "hf.yaml"))[0] == 0
    lock = read_lock(ws / "hf.lock")
    assert lock is not None and set(lock.entries) == {"models.a", "models.b"}
    assert not (ws / "models").exists()  # lock resolves, never downloads


def test_a_crafted_plan_cannot_point_apply_outside_the_workspace(
    ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dataclasses import replace

    from batuta_sync.core.actions import Action, ActionKind, Reason
    from batuta_sync.core.api import apply_plan, make_plan

    f = ws / "hf.yaml"
    assert run(capsys, "apply", "-f", str(f), "--auto-approve")[0] == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    plan = make_plan(f)
    evil = Action(ActionKind.DELETE_LOCAL, "models.b", Reason.REMOVED_FROM_MANIFEST,
                  params={"paths": [str(victim)], "dirs": [str(tmp_path)]})
    result = apply_plan(replace(plan, actions=(evil,)), manifest=f)
    assert result.ok and victim.read_text() == "keep me"  # paths come from hf.lock, not the plan
    # A pull whose resolution names another repo than hf.yaml is refused.
    plan = make_plan(f, replace=["models.a"], targets=["models.a"])
    (pull,) = plan.actions
    forged = replace(pull, lock_entry={**(pull.lock_entry or {}), "repo": "evil/repo"})
    result = apply_plan(replace(plan, actions=(forged,)), manifest=f)
    assert "does not match hf.yaml" in str(result.failed["pull:models.a"])


def test_a_plan_made_in_one_checkout_applies_in_another(
    ws: Path, hub_env: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """GitOps: `plan -o plan.json` runs in one CI job's checkout, `apply plan.json` in another's.
    The plan records project paths relative to hf.yaml, so it neither leaks the first
    checkout's path nor writes there."""
    plan_path = ws / "plan.json"
    code, _, err = run(capsys, "plan", "-f", str(ws / "hf.yaml"), "-o", str(plan_path))
    assert code == 0, err
    assert str(ws) not in plan_path.read_text()
    other = tmp_path / "second-checkout"
    other.mkdir()
    for name in ("hf.yaml", "plan.json"):  # what a clean checkout plus the plan artifact hold
        (other / name).write_bytes((ws / name).read_bytes())
    code, _, err = run(capsys, "apply", "-f", str(other / "hf.yaml"), str(other / "plan.json"), "--auto-approve")
    assert code == 0, err
    assert (other / "models/a/notes.txt").read_bytes() == FILES_A["notes.txt"]
    assert not (ws / "models").exists() and not (ws / "hf.lock").exists()
    lock = read_lock(other / "hf.lock")
    assert lock is not None and set(lock.entries) == {"models.a", "models.b"}


def test_a_dataset_split_declared_only_in_the_card_is_resolved_at_plan_time(
    tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The split "holdout" exists only in README.md's `configs:` (no file is named after it).
    The planner reads the card from the Hub's `cardData` in the same answer as the file list,
    so `plan` locks the same files `hf pull --split holdout` would, with no extra request."""
    card = (
        "---\nconfigs:\n- config_name: default\n  data_files:\n"
        "  - split: train\n    path: data/part-*.csv\n  - split: holdout\n    path: extra/kept-*.csv\n---\n# ds\n"
    )
    hub_env.store.commit(
        "org/ds",
        {"README.md": card.encode(), "data/part-0.csv": b"a,b\n1,2\n", "extra/kept-0.csv": b"a,b\n3,4\n",
         "extra/kept-1.csv": b"a,b\n5,6\n"},
        repo_type="dataset",
    )
    ws = tmp_path / "ws"
    f = str(_write(ws, "datasets:\n  ds:\n    repo: org/ds\n    split: holdout\n    output: ./data\n"))
    hub_env.log.clear()
    code, _out, err = run(capsys, "plan", "-f", f, "--detailed-exitcode")
    assert code == 2, err
    assert hub_env.log.count() == 1  # the revision answer carries the card: no README download
    code, _, err = run(capsys, "apply", "-f", f, "--auto-approve")
    assert code == 0, err
    lock = read_lock(ws / "hf.lock")
    entry = lock.get("datasets.ds") if lock else None
    assert isinstance(entry, RepoLock)
    data = {p.path for p in entry.files if p.path.endswith(".csv")}
    assert data == {"extra/kept-0.csv", "extra/kept-1.csv"}
    assert (ws / "data/extra/kept-1.csv").read_bytes() == b"a,b\n5,6\n"
    assert not (ws / "data/data/part-0.csv").exists()
