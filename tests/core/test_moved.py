"""hf.yaml ``moved:`` (Terraform's moved blocks), as pure functions: validation with file:line, the
plan of a rename (one ``moved`` relock, no delete + pull), what hf.lock becomes after apply, and
the hf.lock contradictions (:func:`move_problems`)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from batuta_sync.core.actions import ActionKind, Reason
from batuta_sync.core.executor import StepResult, _lock_update
from batuta_sync.core.lockfile import ConversionLock, FileDigest
from batuta_sync.core.manifest import load_schema, parse_manifest
from batuta_sync.core.planner import apply_moves, build_plan
from batuta_sync.core.planner.diff import conversion_key, move_problems
from batuta_sync.core.render import render_text
from batuta_sync.core.state import LocalDirState, LocalFile
from batuta_sync.errors import ManifestError
from tests.core.fakes import (
    C1,
    C2,
    OPTS,
    local_repo,
    lock_of,
    manifest,
    remote_head,
    remote_snap,
    repo_lock,
    select,
    world,
)

OLD = manifest("models:\n  old:\n    repo: org/tiny\n")
NEW = manifest("models:\n  new:\n    repo: org/tiny\nmoved:\n  - {from: models.old, to: models.new}\n")
NEW_NO_MOVE = manifest("models:\n  new:\n    repo: org/tiny\n")


def plan(man, lock, w, **opts):  # type: ignore[no-untyped-def]
    return build_plan(man, lock, w, replace(OPTS, **opts), select, plan_id="plan-0001", tool_version="t")


def cached(address: str = "models.new"):  # type: ignore[no-untyped-def]
    return world([remote_head(address, "org/tiny", C1)], [local_repo(address, C1)])


# --------------------------------------------------------------------------- the plan of a rename


def test_without_a_move_a_rename_is_a_delete_and_a_relock() -> None:
    """The behaviour ``moved:`` exists to avoid (so the tests below can tell the difference)."""
    lock = lock_of(repo_lock(OLD, "models.old", C1))
    w = world([remote_snap("models.new", "org/tiny", C1)], [local_repo("models.new", C1)])
    got = {(a.address, a.reason, a.lock_entry is None) for a in plan(NEW_NO_MOVE, lock, w).actions}
    assert got == {("models.old", Reason.REMOVED_FROM_MANIFEST, True), ("models.new", Reason.NOT_LOCKED, False)}


def test_a_move_plans_one_moved_relock_and_no_delete_or_pull() -> None:
    lock = lock_of(repo_lock(OLD, "models.old", C1))
    p = plan(NEW, lock, cached())
    assert [(a.kind, a.address, a.reason) for a in p.actions] == [(ActionKind.RELOCK, "models.new", Reason.MOVED)]
    a = p.actions[0]
    assert a.params["moved_from"] == "models.old" and a.download_bytes == 0
    assert a.lock_entry is not None and a.lock_entry["commit"] == C1
    text = render_text(p)
    assert "models.old → models.new" in text and "(moved)" in text and "1 moved" in text
    assert "delete" not in text.split("Plan:")[0]
    # the JSON plan names the move, and validates against schemas/plan.schema.json
    d = p.to_dict()
    assert d["actions"][0]["reason"] == "moved" and d["actions"][0]["params"]["moved_from"] == "models.old"
    from jsonschema import Draft202012Validator

    Draft202012Validator(load_schema("plan.schema.json")).validate(json.loads(p.to_json(b"k" * 32)))


def test_a_move_is_idempotent_once_hf_lock_has_the_new_address() -> None:
    lock = lock_of(repo_lock(NEW, "models.new", C1))
    p = plan(NEW, lock, cached())
    assert p.actions == () and p.unchanged == ("models.new",)


def test_a_move_with_another_change_carries_moved_from_on_that_action() -> None:
    """Renamed *and* re-pinned: the pull is planned under the new address and apply drops the old."""
    lock = lock_of(repo_lock(OLD, "models.old", C1))
    repinned = manifest("models:\n  new:\n    repo: org/tiny\n    revision: v2\nmoved:\n  - {from: models.old, to: models.new}\n")
    p = plan(repinned, lock, world([remote_snap("models.new", "org/tiny", C2)]))
    assert [(a.kind, a.reason) for a in p.actions] == [(ActionKind.PULL, Reason.REVISION_CHANGED)]
    assert p.actions[0].params["moved_from"] == "models.old"
    assert "moved from models.old" in p.actions[0].detail


def test_locked_accepts_a_pending_move() -> None:
    """``--locked`` (hf.lock must cover hf.yaml): a rename declared by ``moved:`` is no disagreement."""
    lock = lock_of(repo_lock(OLD, "models.old", C1))
    assert [a.reason for a in plan(NEW, lock, cached(), locked=True).actions] == [Reason.MOVED]


# --------------------------------------------------------------------------- conversions


CONV_LOCK_OUT = (FileDigest("tiny-Q4_K_M.gguf", 500, None, "a" * 64),)


def conv_lock(address: str, source: str, tree: str, output: str) -> ConversionLock:
    params = {"to": "gguf", "quantization": "Q4_K_M"}
    key = conversion_key(tree, "conv-1", params)
    return ConversionLock(address, source, key, "conv-1", tree, tuple(sorted(params.items())), output, CONV_LOCK_OUT)


def test_renaming_the_input_of_a_conversion_does_not_convert_again() -> None:
    before = manifest("models:\n  old: {repo: org/tiny}\nconversions:\n  q4: {from: models.old, to: gguf}\n")
    after = manifest(
        "models:\n  new: {repo: org/tiny}\nconversions:\n  q4: {from: models.new, to: gguf}\n"
        "moved:\n  - {from: models.old, to: models.new}\n"
    )
    rl = repo_lock(before, "models.old", C1)
    lock = lock_of(rl, conv_lock("conversions.q4", "models.old", rl.tree, ".batuta/outputs/conversions/q4"))
    out = LocalDirState("conversions.q4", "/ws/out", True, {"tiny-Q4_K_M.gguf": LocalFile(500)})
    w = world([remote_head("models.new", "org/tiny", C1)], [local_repo("models.new", C1), out])
    p = plan(after, lock, w)
    assert [(a.kind, a.address, a.reason) for a in p.actions] == [(ActionKind.RELOCK, "models.new", Reason.MOVED)]
    assert "conversions.q4" in p.unchanged
    # apply: hf.lock's key is rewritten and the conversion now reads the new address
    new_lock = _lock_update(lock, p.actions[0], StepResult())
    assert set(new_lock.entries) == {"models.new", "conversions.q4"}
    conv = new_lock.get("conversions.q4")
    assert isinstance(conv, ConversionLock) and conv.source == "models.new"


def test_a_moved_conversion_keeps_its_default_output_directory_renamed() -> None:
    """A conversion without ``output:`` lives in .batuta/outputs/conversions/<name>: the move
    plans a relock that renames the directory, not a conversion (observe found the old one)."""
    before = manifest("models:\n  m: {repo: org/tiny}\nconversions:\n  a: {from: models.m, to: gguf}\n")
    after = manifest(
        "models:\n  m: {repo: org/tiny}\nconversions:\n  b: {from: models.m, to: gguf}\n"
        "moved:\n  - {from: conversions.a, to: conversions.b}\n"
    )
    assert after.moved_output("conversions.b") == (".batuta/outputs/conversions/a", ".batuta/outputs/conversions/b")
    assert after.moved_output("models.m") is None
    rl = repo_lock(before, "models.m", C1)
    lock = lock_of(rl, conv_lock("conversions.a", "models.m", rl.tree, ".batuta/outputs/conversions/a"))
    out = LocalDirState("conversions.b", "/ws/.batuta/outputs/conversions/a", True, {"tiny-Q4_K_M.gguf": LocalFile(500)})
    w = world([remote_head("models.m", "org/tiny", C1)], [local_repo("models.m", C1), out])
    p = plan(after, lock, w)
    assert [(a.kind, a.address, a.reason) for a in p.actions] == [(ActionKind.RELOCK, "conversions.b", Reason.MOVED)]
    a = p.actions[0]
    assert (a.params["output_from"], a.params["output_to"]) == (".batuta/outputs/conversions/a", ".batuta/outputs/conversions/b")
    assert a.lock_entry is not None and a.lock_entry["output"] == ".batuta/outputs/conversions/b"
    moved, applied = apply_moves(after, lock)
    assert applied == {"conversions.b": "conversions.a"} and "conversions.a" not in moved.entries


# --------------------------------------------------------------------------- hf.lock contradictions


def test_move_problems_neither_or_both_addresses_in_hf_lock() -> None:
    typo = manifest("models:\n  new:\n    repo: org/tiny\nmoved:\n  - {from: models.olb, to: models.new}\n")
    lock = lock_of(repo_lock(OLD, "models.old", C1))
    ((msg, path),) = move_problems(typo, lock)
    assert "models.olb" in msg and "hf.lock does not have" in msg and path == ("moved", 0, "from")
    both = lock_of(repo_lock(OLD, "models.old", C1), repo_lock(NEW, "models.new", C1))
    ((msg, path),) = move_problems(NEW, both)
    assert "already has both" in msg and path == ("moved", 0)
    assert move_problems(NEW, lock) == [] and move_problems(NEW, lock_of(repo_lock(NEW, "models.new", C1))) == []
    assert move_problems(typo, lock_of()) == []  # a fresh checkout (no hf.lock) contradicts nothing


# --------------------------------------------------------------------------- validation (file:line)


def problems(body: str) -> list[str]:
    with pytest.raises(ManifestError) as exc:
        parse_manifest("version: 1\n" + body, source="hf.yaml")
    return [f"{d.line}: {d.message}" for d in exc.value.diagnostics]


MODELS = "models:\n  a: {repo: org/a}\n  b: {repo: org/b}\n"


@pytest.mark.parametrize(
    ("moves", "expected"),
    [
        ("  - {from: models.x, to: models.zz}\n", "moved to 'models.zz', which is not declared"),
        ("  - {from: models.a, to: models.b}\n", "moved from 'models.a', which is still declared"),
        ("  - {from: datasets.x, to: models.b}\n", "a move stays in its section"),
        ("  - {from: models.b, to: models.b}\n", "to itself"),
        ("  - {from: models.x, to: models.a}\n  - {from: models.x, to: models.b}\n", "'models.x' is moved more than once"),
        ("  - {from: models.x, to: models.a}\n  - {from: models.y, to: models.a}\n", "several moves to 'models.a'"),
        ("  - {from: models.x, to: models.y}\n  - {from: models.y, to: models.a}\n", "chained or cyclic move"),
        ("  - {from: models.x, to: models.a}\n  - {from: models.a, to: models.x}\n", "chained or cyclic move"),
        ("  - {from: models.x}\n", "missing required key 'to'"),
        ("  - {from: models.x, to: models.a, by: me}\n", "unknown key 'by'"),
        ("  - {from: nowhere, to: models.a}\n", "moved[0].from"),
    ],
)
def test_bad_moves_are_reported_with_their_line(moves: str, expected: str) -> None:
    got = problems(MODELS + "moved:\n" + moves)
    assert got, "expected a problem"
    text = "\n".join(got)
    if expected.startswith("moved["):  # a schema error: the path is in the key, check the line only
        with pytest.raises(ManifestError) as exc:
            parse_manifest("version: 1\n" + MODELS + "moved:\n" + moves, source="hf.yaml")
        assert any(d.key.startswith("moved[0]") and d.line == 6 for d in exc.value.diagnostics)
        return
    assert expected in text
    assert all(int(line.split(":")[0]) >= 6 for line in got), got  # the moved: block starts on line 5


def test_a_good_move_parses_into_manifest_moves() -> None:
    m = parse_manifest("version: 1\n" + MODELS + "moved:\n  - {from: models.x, to: models.a}\n", source="hf.yaml")
    assert m.moves == (("models.x", "models.a"),)


def test_what_reads_a_renamed_resource_waits_for_its_moved_relock() -> None:
    """The conversion reads its input from hf.lock at apply time: with the input renamed (cache
    only) and the conversion to run again, the convert depends on the input's moved relock."""
    before = manifest("models:\n  old: {repo: org/tiny}\nconversions:\n  q4: {from: models.old, to: gguf}\n")
    after = manifest(
        "models:\n  new: {repo: org/tiny}\nconversions:\n  q4: {from: models.new, to: gguf, quantization: Q8_0}\n"
        "moved:\n  - {from: models.old, to: models.new}\n"
    )
    rl = repo_lock(before, "models.old", C1)
    lock = lock_of(rl, conv_lock("conversions.q4", "models.old", rl.tree, ".batuta/outputs/conversions/q4"))
    out = LocalDirState("conversions.q4", "/ws/out", True, {"tiny-Q4_K_M.gguf": LocalFile(500)})
    w = world([remote_head("models.new", "org/tiny", C1)], [local_repo("models.new", C1), out])
    relock, convert = plan(after, lock, w).actions
    assert (relock.id, relock.reason) == ("relock:models.new", Reason.MOVED)
    assert (convert.kind, convert.reason) == (ActionKind.CONVERT, Reason.PARAMS_CHANGED)
    assert convert.deps == ("relock:models.new",)
