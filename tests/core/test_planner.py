"""The planner as pure functions: one test per reason, plus drift, modes, selection and the DAG."""

from __future__ import annotations

from dataclasses import replace

import pytest

from batuta_sync.core.actions import Action, ActionKind, DriftKind, Reason
from batuta_sync.core.lockfile import ConversionLock, FileDigest, Lock, PublishLock, tree_digest
from batuta_sync.core.planner import build_plan
from batuta_sync.core.planner.diff import check_files, conversion_key, select_actions
from batuta_sync.core.planner.plan import Plan, plan_mac
from batuta_sync.core.state import LocalDirState, LocalFile, LocalRepoState
from batuta_sync.errors import (
    ConfigError,
    HubError,
    LockOutOfDateError,
    ManifestError,
    OfflineError,
    PlanError,
)
from tests.core.fakes import (
    C1,
    C2,
    C3,
    FILES,
    OPTS,
    local_repo,
    lock_of,
    manifest,
    present,
    remote_head,
    remote_snap,
    repo_lock,
    rfile,
    select,
    world,
)

KEY = b"k" * 32  # the plan key of these tests
M = manifest("models:\n  tiny:\n    repo: org/tiny\n")
M_OUT = manifest("models:\n  tiny:\n    repo: org/tiny\n    output: ./m/tiny\n")


def plan(man, lock, w, **opts):  # type: ignore[no-untyped-def]
    return build_plan(man, lock, w, replace(OPTS, **opts), select, plan_id="plan-0001", tool_version="t")


def only(p: Plan) -> Action:
    assert len(p.actions) == 1, p.actions
    return p.actions[0]


# --------------------------------------------------------------------------- repo reasons


def test_not_locked_and_not_cached_pulls() -> None:
    a = only(plan(M, None, world([remote_snap("models.tiny", "org/tiny", C1)])))
    assert (a.kind, a.reason) == (ActionKind.PULL, Reason.NOT_LOCKED)
    assert a.download_bytes == 1010 and a.lock_entry and a.lock_entry["commit"] == C1
    assert a.changes_lock


def test_not_locked_but_cached_only_relocks() -> None:
    w = world([remote_snap("models.tiny", "org/tiny", C1)], [local_repo("models.tiny", C1)])
    a = only(plan(M, None, w))
    assert (a.kind, a.reason, a.download_bytes) == (ActionKind.RELOCK, Reason.NOT_LOCKED, 0)


def test_selection_changed_is_lock_stale() -> None:
    old = repo_lock(M, "models.tiny", C1)
    narrowed = manifest("models:\n  tiny:\n    repo: org/tiny\n    include: ['*.json']\n")
    w = world([remote_snap("models.tiny", "org/tiny", C1)], [local_repo("models.tiny", C1)])
    a = only(plan(narrowed, lock_of(old), w))
    assert (a.kind, a.reason) == (ActionKind.RELOCK, Reason.LOCK_STALE)
    assert list(a.lock_entry["files"]) == ["config.json"]  # type: ignore[index]


def test_revision_changed_in_manifest() -> None:
    old = repo_lock(M, "models.tiny", C1)
    moved = manifest("models:\n  tiny:\n    repo: org/tiny\n    revision: v2\n")
    a = only(plan(moved, lock_of(old), world([remote_snap("models.tiny", "org/tiny", C2)])))
    assert (a.kind, a.reason) == (ActionKind.PULL, Reason.REVISION_CHANGED)
    assert a.lock_entry["commit"] == C2  # type: ignore[index]


def test_revision_moved_after_lock_update() -> None:
    lock = lock_of(repo_lock(M, "models.tiny", C2))
    w = world(local=[LocalRepoState("models.tiny", {C2: {}}, None, applied_commit=C1)])
    a = only(plan(M, lock, w))
    assert (a.kind, a.reason) == (ActionKind.PULL, Reason.REVISION_MOVED)
    assert not a.changes_lock


def test_not_in_cache() -> None:
    lock = lock_of(repo_lock(M, "models.tiny", C1))
    a = only(plan(M, lock, world(local=[LocalRepoState("models.tiny")])))
    assert (a.kind, a.reason, a.download_bytes) == (ActionKind.PULL, Reason.NOT_IN_CACHE, 1010)


def test_cached_blobs_cost_no_download() -> None:
    lock = lock_of(repo_lock(M, "models.tiny", C1))
    blobs = frozenset({FILES[1].sha256 or ""})
    a = only(plan(M, lock, world(local=[LocalRepoState("models.tiny", blobs=blobs)])))
    assert a.download_bytes == 10


def test_output_missing() -> None:
    lock = lock_of(repo_lock(M_OUT, "models.tiny", C1))
    a = only(plan(M_OUT, lock, world(local=[local_repo("models.tiny", C1, output={})])))
    assert (a.kind, a.reason, a.download_bytes) == (ActionKind.PULL, Reason.OUTPUT_MISSING, 0)
    assert a.params["output"] == "m/tiny"  # relative to hf.yaml: plans are portable


def test_digest_mismatch_by_size() -> None:
    lock = lock_of(repo_lock(M, "models.tiny", C1))
    w = world(local=[local_repo("models.tiny", C1, present(sizes={"config.json": 3}))])
    p = plan(M, lock, w)
    a = only(p)
    assert (a.kind, a.reason) == (ActionKind.PULL, Reason.DIGEST_MISMATCH)
    assert a.params["purge"] == ["config.json"]
    assert [d.kind for d in p.drift] == [DriftKind.LOCAL_MODIFIED]


def test_digest_mismatch_by_hash_with_verify() -> None:
    lock = lock_of(repo_lock(M, "models.tiny", C1))
    files = present()
    files["model.safetensors"] = LocalFile(1000, sha256="0" * 64)
    a = only(plan(M, lock, world(local=[local_repo("models.tiny", C1, files)]), verify=True))
    assert a.reason is Reason.DIGEST_MISMATCH
    good = present()
    good["model.safetensors"] = LocalFile(1000, sha256=FILES[1].sha256)
    good["config.json"] = LocalFile(10, gitsha1=FILES[0].blob_id)
    assert not plan(M, lock, world(local=[local_repo("models.tiny", C1, good)]), verify=True).actions


def test_replace_requested() -> None:
    lock = lock_of(repo_lock(M, "models.tiny", C1))
    a = only(plan(M, lock, world(local=[local_repo("models.tiny", C1)]), replace=("models.tiny",)))
    assert (a.kind, a.reason) == (ActionKind.PULL, Reason.REPLACE_REQUESTED)
    assert a.params["purge"] == ["config.json", "model.safetensors"] and a.download_bytes == 1010


def test_up_to_date_is_unchanged_and_the_plan_is_empty() -> None:
    lock = lock_of(repo_lock(M, "models.tiny", C1))
    p = plan(M, lock, world([remote_head("models.tiny", "org/tiny", C1)], [local_repo("models.tiny", C1)]))
    assert p.actions == () and p.unchanged == ("models.tiny",) and not p.has_changes and not p.drift


def test_upstream_moved_is_drift_not_an_action() -> None:
    lock = lock_of(repo_lock(M, "models.tiny", C1))
    w = world([remote_head("models.tiny", "org/tiny", C2)], [local_repo("models.tiny", C1)])
    p = plan(M, lock, w)
    assert p.actions == ()
    assert [(d.kind, d.locked, d.observed) for d in p.drift] == [(DriftKind.UPSTREAM_MOVED, C1, C2)]
    assert not p.has_changes
    assert plan(M, lock, w, refresh_only=True).has_changes
    # --locked means hf.lock matches hf.yaml (uv/cargo), which an upstream push does not change.
    locked = plan(M, lock, w, locked=True)
    assert locked.actions == () and [d.kind for d in locked.drift] == [DriftKind.UPSTREAM_MOVED]


def test_pinned_sha_never_drifts() -> None:
    pinned = manifest(f"models:\n  tiny:\n    repo: org/tiny\n    revision: '{C1}'\n")
    lock = lock_of(repo_lock(pinned, "models.tiny", C1))
    w = world([remote_head("models.tiny", "org/tiny", C2)], [local_repo("models.tiny", C1)])
    assert not plan(pinned, lock, w).drift


def test_locked_fails_when_the_lock_would_change() -> None:
    with pytest.raises(LockOutOfDateError, match=r"models.tiny: in hf.yaml but not in hf.lock") as exc:
        plan(M, None, world([remote_snap("models.tiny", "org/tiny", C1)]), locked=True)
    assert "batuta lock" in exc.value.hint
    other_rev = manifest("models:\n  tiny:\n    repo: org/tiny\n    revision: v2\n")
    with pytest.raises(LockOutOfDateError, match=r"another revision"):
        plan(other_rev, lock_of(repo_lock(M, "models.tiny", C1)), world(), locked=True)
    lock = lock_of(repo_lock(M, "models.tiny", C1))
    p = plan(M, lock, world(local=[LocalRepoState("models.tiny")]), locked=True)
    assert only(p).reason is Reason.NOT_IN_CACHE  # pulling locked files keeps the lock


def test_frozen_uses_the_lock_unchecked() -> None:
    lock = lock_of(repo_lock(M, "models.tiny", C1))
    changed = manifest("models:\n  tiny:\n    repo: org/tiny\n    include: ['*.json']\n")
    assert plan(changed, lock, world(local=[local_repo("models.tiny", C1)]), frozen=True).actions == ()
    with pytest.raises(LockOutOfDateError, match=r"--frozen"):
        plan(M, None, world(), frozen=True)


def test_offline_cannot_resolve_an_unlocked_resource() -> None:
    with pytest.raises(OfflineError, match=r"models.tiny"):
        plan(M, None, world(), offline=True)
    with pytest.raises(PlanError, match=r"repo not found"):
        plan(M, None, world([replace(remote_head("models.tiny", "org/tiny", None), error="repo not found")]))


def test_a_selector_error_is_reported_with_the_address() -> None:
    def boom(snap, spec):  # type: ignore[no-untyped-def]
        raise ValueError("no GGUF of that quantization")

    with pytest.raises(PlanError, match=r"models.tiny: no GGUF"):
        build_plan(M, None, world([remote_snap("models.tiny", "org/tiny", C1)]), OPTS, boom, plan_id="x")


# --------------------------------------------------------------------------- conversions

MC = manifest(
    "models:\n  tiny:\n    repo: org/tiny\nconversions:\n  q4:\n    from: models.tiny\n    to: gguf\n    quantization: Q4_K_M\n"
)
OUT = (FileDigest("tiny-Q4_K_M.gguf", 500, None, "a" * 64),)


def conv_lock(input_tree: str, *, converter: str = "conv-1", quant: str = "Q4_K_M", outputs=OUT) -> ConversionLock:  # type: ignore[no-untyped-def]
    params = {"to": "gguf", "quantization": quant}
    return ConversionLock(
        "conversions.q4", "models.tiny", conversion_key(input_tree, converter, params), converter, input_tree,
        tuple(sorted(params.items())), ".batuta/outputs/conversions/q4", outputs,
    )


def conv_world(outputs: dict[str, LocalFile] | None = None, exists: bool = True):  # type: ignore[no-untyped-def]
    files = outputs if outputs is not None else {"tiny-Q4_K_M.gguf": LocalFile(500)}
    return world(
        local=[local_repo("models.tiny", C1), LocalDirState("conversions.q4", "/ws/out", exists, files)]
    )


def test_conversion_not_locked_runs_after_its_pull() -> None:
    p = plan(MC, None, world([remote_snap("models.tiny", "org/tiny", C1)]))
    pull, conv = p.actions
    assert (pull.kind, conv.kind, conv.reason) == (ActionKind.PULL, ActionKind.CONVERT, Reason.NOT_LOCKED)
    assert conv.deps == ("pull:models.tiny",)
    assert conv.params["src"] == f"/cache/models--org--tiny/snapshots/{C1}"
    assert conv.params["key"] and conv.params["dst"] == ".batuta/outputs/conversions/q4"


def test_conversion_waits_for_the_relock_of_its_cached_source() -> None:
    """Reliability finding #13: hf.lock lost (apply killed during its first write) while the
    files are cached: the source only relocks, and the conversion must run after that relock,
    because its step records the source's locked commit and tree (provenance)."""
    w = world([remote_snap("models.tiny", "org/tiny", C1)], [local_repo("models.tiny", C1), *conv_world().local.values()])
    relock, conv = plan(MC, None, w).actions
    assert (relock.kind, conv.kind) == (ActionKind.RELOCK, ActionKind.CONVERT)
    assert conv.deps == (relock.id,)


def test_unchanged_conversion_is_a_noop() -> None:
    rl = repo_lock(MC, "models.tiny", C1)
    p = plan(MC, lock_of(rl, conv_lock(rl.tree)), conv_world())
    assert p.actions == () and "conversions.q4" in p.unchanged


MC_LAZY = manifest(
    "models:\n  tiny:\n    repo: org/tiny\n    fetch: on-demand\nconversions:\n  q4:\n    from: models.tiny\n"
    "    to: gguf\n    quantization: Q4_K_M\n"
)


def _uncached_source(outputs: dict[str, LocalFile] | None = None):  # type: ignore[no-untyped-def]
    files = outputs if outputs is not None else {"tiny-Q4_K_M.gguf": LocalFile(500)}
    return world(local=[LocalRepoState("models.tiny"), LocalDirState("conversions.q4", "/ws/out", True, files)])


def test_an_on_demand_source_missing_from_the_cache_needs_no_pull_while_its_conversion_is_unchanged() -> None:
    rl = repo_lock(MC_LAZY, "models.tiny", C1)
    p = plan(MC_LAZY, lock_of(rl, conv_lock(rl.tree)), _uncached_source())
    assert p.actions == () and {"models.tiny", "conversions.q4"} <= set(p.unchanged)
    moved = world(local=[LocalRepoState("models.tiny", {}, None, applied_commit=C2),
                         LocalDirState("conversions.q4", "/ws/out", True, {"tiny-Q4_K_M.gguf": LocalFile(500)})])
    assert plan(MC_LAZY, lock_of(rl, conv_lock(rl.tree)), moved).actions == ()  # an older commit was pulled once
    # the same files without fetch: on-demand: the declared repo is pulled back into the cache
    rl = repo_lock(MC, "models.tiny", C1)
    a = only(plan(MC, lock_of(rl, conv_lock(rl.tree)), _uncached_source()))
    assert (a.kind, a.reason) == (ActionKind.PULL, Reason.NOT_IN_CACHE)
    # the conversion is due (its output is gone): the pull is planned too, the apply decides
    rl = repo_lock(MC_LAZY, "models.tiny", C1)
    p = plan(MC_LAZY, lock_of(rl, conv_lock(rl.tree)), _uncached_source({}))
    assert [a.kind for a in p.actions] == [ActionKind.PULL, ActionKind.CONVERT]


def test_params_changed() -> None:
    rl = repo_lock(MC, "models.tiny", C1)
    a = only(plan(MC, lock_of(rl, conv_lock(rl.tree, quant="Q8_0")), conv_world()))
    assert (a.kind, a.reason) == (ActionKind.CONVERT, Reason.PARAMS_CHANGED)
    assert a.deps == ()


def test_converter_changed() -> None:
    rl = repo_lock(MC, "models.tiny", C1)
    a = only(plan(MC, lock_of(rl, conv_lock(rl.tree, converter="conv-0")), conv_world()))
    assert a.reason is Reason.CONVERTER_CHANGED


def test_input_changed() -> None:
    rl = repo_lock(MC, "models.tiny", C1)
    a = only(plan(MC, lock_of(rl, conv_lock("h1:old")), conv_world()))
    assert a.reason is Reason.INPUT_CHANGED


def test_conversion_outputs_missing_or_modified() -> None:
    rl = repo_lock(MC, "models.tiny", C1)
    lock = lock_of(rl, conv_lock(rl.tree))
    assert only(plan(MC, lock, conv_world({}, exists=False))).reason is Reason.OUTPUT_MISSING
    assert only(plan(MC, lock, conv_world({"tiny-Q4_K_M.gguf": LocalFile(7)}))).reason is Reason.DIGEST_MISMATCH


def test_chained_conversions_plan_in_dependency_order() -> None:
    m = manifest(
        "models:\n  tiny: {repo: org/tiny}\nconversions:\n  back: {from: conversions.q4, to: safetensors}\n"
        "  q4: {from: models.tiny, to: gguf}\n"
    )
    p = plan(m, None, world([remote_snap("models.tiny", "org/tiny", C1)]))
    ids = [a.id for a in p.actions]
    assert ids == ["pull:models.tiny", "convert:conversions.q4", "convert:conversions.back"]
    assert p.actions[2].deps == ("convert:conversions.q4",) and p.actions[2].params["key"] is None


# --------------------------------------------------------------------------- publishes

MP = manifest(
    "models:\n  tiny: {repo: org/tiny}\nconversions:\n  q4: {from: models.tiny, to: gguf}\n"
    "publish:\n  gguf: {from: conversions.q4, repo: me/tiny-gguf}\n  app: {from: ./space, repo: me/app, type: space, sdk: gradio}\n"
)
SPACE = {"app.py": LocalFile(5, sha256="b" * 64)}
SPACE_TREE = tree_digest([FileDigest("app.py", 5, None, "b" * 64)])


def pub_world(head_gguf: str | None = C2, head_app: str | None = C3, space=SPACE):  # type: ignore[no-untyped-def]
    return world(
        [remote_head("publish.gguf", "me/tiny-gguf", head_gguf), remote_head("publish.app", "me/app", head_app)],
        [local_repo("models.tiny", C1), LocalDirState("conversions.q4", "/ws/o", True, {"tiny-Q4_K_M.gguf": LocalFile(500)}),
         LocalDirState("publish.app", "/ws/space", True, space)],
    )



def pub_lock(**over: str) -> Lock:
    rl = repo_lock(MP, "models.tiny", C1)
    cl = replace(conv_lock(rl.tree), params=(("quantization", "Q4_K_M"), ("to", "gguf")))
    gguf = PublishLock("publish.gguf", "me/tiny-gguf", "model", "main", over.get("gguf_commit", C2), tree_digest(OUT))
    app = PublishLock("publish.app", "me/app", "space", "main", C3, over.get("app_tree", SPACE_TREE))
    return lock_of(rl, cl, gguf, app)


def test_publishes_up_to_date() -> None:
    p = plan(MP, pub_lock(), pub_world())
    assert p.actions == (), p.actions
    assert set(p.unchanged) == {"models.tiny", "conversions.q4", "publish.gguf", "publish.app"}


def test_not_published_and_push_after_its_conversion() -> None:
    p = plan(MP, None, world([remote_snap("models.tiny", "org/tiny", C1), remote_head("publish.gguf", "me/tiny-gguf", None),
                              remote_head("publish.app", "me/app", None)],
                             [LocalDirState("publish.app", "/ws/space", True, SPACE)]))
    by = {a.id: a for a in p.actions}
    push = by["push:publish.gguf"]
    assert push.reason is Reason.NOT_PUBLISHED and push.deps == ("convert:conversions.q4",)
    assert push.params["parent_commit"] is None and push.params["source_tree"] is None
    app = by["push:publish.app"]
    assert app.params["path"] == "space" and app.params["source_tree"] == SPACE_TREE and app.upload_bytes == 5
    assert {(pc.address, pc.expected_commit) for pc in p.preconditions} >= {("publish.gguf", None), ("models.tiny", C1)}


def test_source_changed() -> None:
    a = only(plan(MP, pub_lock(app_tree="h1:old"), pub_world()))
    assert (a.kind, a.reason, a.address) == (ActionKind.PUSH, Reason.SOURCE_CHANGED, "publish.app")


def test_remote_changed_outside_batuta() -> None:
    p = plan(MP, pub_lock(), pub_world(head_gguf="9" * 40))
    a = only(p)
    assert (a.reason, a.params["parent_commit"]) == (Reason.REMOTE_CHANGED, "9" * 40)
    assert [d.kind for d in p.drift] == [DriftKind.PUBLISHED_DRIFT]


def test_missing_publish_source_is_a_plan_error() -> None:
    w = pub_world()
    local = dict(w.local)
    local["publish.app"] = LocalDirState("publish.app", "/ws/space", False)
    with pytest.raises(PlanError, match=r"source directory './space' does not exist"):
        plan(MP, pub_lock(), replace(w, local=local))


# --------------------------------------------------------------------------- removed, targeting, json


def test_removed_from_manifest() -> None:
    old = manifest("models:\n  a: {repo: org/a, output: ./a}\n  b: {repo: org/b}\n")
    lock = lock_of(repo_lock(old, "models.a", C1), repo_lock(old, "models.b", C1))
    p = plan(manifest("models: {}\n"), lock, world())
    kinds = {a.address: (a.kind, a.reason) for a in p.actions}
    assert kinds == {
        "models.a": (ActionKind.DELETE_LOCAL, Reason.REMOVED_FROM_MANIFEST),
        "models.b": (ActionKind.RELOCK, Reason.REMOVED_FROM_MANIFEST),
    }
    a = p.action("delete-local:models.a")
    assert a.params["paths"] == ["a/config.json", "a/model.safetensors"]


def test_target_keeps_dependencies_and_exclude_drops_dependants() -> None:
    w = world([remote_snap("models.tiny", "org/tiny", C1), remote_head("publish.gguf", "me/tiny-gguf", None),
               remote_head("publish.app", "me/app", None)], [LocalDirState("publish.app", "/ws/space", True, SPACE)])
    p = plan(MP, None, w, targets=("publish.gguf",))
    assert [a.id for a in p.actions] == ["pull:models.tiny", "convert:conversions.q4", "push:publish.gguf"]
    p = plan(MP, None, w, excludes=("conversions.q4",))
    assert [a.id for a in p.actions] == ["pull:models.tiny", "push:publish.app"]
    p = plan(MP, None, w, targets=("publish",))
    assert len(p.actions) == 4


def test_select_actions_is_a_pure_filter() -> None:
    a = Action(ActionKind.PULL, "models.a", Reason.NOT_LOCKED)
    b = Action(ActionKind.CONVERT, "conversions.b", Reason.NOT_LOCKED, deps=(a.id,))
    assert select_actions([a, b], (), ("models.a",)) == []
    assert select_actions([a, b], ("conversions.b",), ()) == [a, b]


def test_check_files() -> None:
    exp = [FileDigest("a", 1, "x"), FileDigest("b", 2, None, "y" * 64)]
    assert check_files(exp, {"a": LocalFile(1)}) == (("b",), ())
    assert check_files(exp, {"a": LocalFile(1, gitsha1="z"), "b": LocalFile(2)}) == ((), ("a",))


def test_plan_json_round_trips_and_detects_edits() -> None:
    p = plan(MP, None, world([remote_snap("models.tiny", "org/tiny", C1), remote_head("publish.gguf", "me/tiny-gguf", None),
                              remote_head("publish.app", "me/app", None)], [LocalDirState("publish.app", "/ws/space", True, SPACE)]))
    back = Plan.from_json(p.to_json(KEY), key=KEY)
    assert back.to_dict() == p.to_dict()
    import json

    from jsonschema import Draft202012Validator

    from batuta_sync.core.manifest import load_schema

    Draft202012Validator(load_schema("plan.schema.json")).validate(json.loads(p.to_json(KEY)))
    tampered = json.loads(p.to_json(KEY))
    tampered["actions"][0]["params"]["repo"] = "evil/repo"
    with pytest.raises(ConfigError, match=r"edited"):
        Plan.from_dict(tampered, key=KEY)
    with pytest.raises(ManifestError, match=r"not JSON"):
        Plan.from_json("{", key=KEY)
    with pytest.raises(ManifestError, match=r"format_version"):
        Plan.from_dict({"format_version": "9", "plan_mac": plan_mac({"format_version": "9"}, KEY)}, key=KEY)


def test_plan_summary_counts_bytes() -> None:
    p = plan(M, None, world([remote_snap("models.tiny", "org/tiny", C1)]))
    s = p.summary()
    assert (s["pull"], s["download_bytes"], s["unchanged"]) == (1, 1010, 0)
    assert p.changes_lock and p.has_changes


def test_render_text_and_markdown() -> None:
    from batuta_sync.core.render import human_bytes, render_markdown, render_text

    p = plan(M, None, world([remote_snap("models.tiny", "org/tiny", C1)]))
    text = render_text(p)
    assert "+ ↓ pull  models.tiny  (not locked)" in text and "Plan: 1 to pull" in text and "Download 1.0 kB" in text
    md = render_markdown(p)
    assert "| ↓ | pull | `models.tiny` | not locked |" in md
    empty = plan(M, lock_of(repo_lock(M, "models.tiny", C1)), world(local=[local_repo("models.tiny", C1)]))
    assert render_text(empty).startswith("No changes.")
    assert human_bytes(5) == "5 B" and human_bytes(2_500_000) == "2.5 MB" and human_bytes(None) == "unknown"
    drift = plan(M, lock_of(repo_lock(M, "models.tiny", C1)),
                 world([remote_head("models.tiny", "org/tiny", C2)], [local_repo("models.tiny", C1)]), refresh_only=True)
    assert "upstream moved" in render_text(drift) and "Drift" in render_markdown(drift)


def test_lock_changing_reasons() -> None:
    assert Action(ActionKind.PULL, "m.a", Reason.NOT_IN_CACHE).changes_lock is False
    assert Action(ActionKind.CONVERT, "c.a", Reason.PARAMS_CHANGED).changes_lock is True


def test_graph_cycle_is_reported_by_address() -> None:
    from batuta_sync.core.planner.graph import address_cycle, build_graph, execution_order

    a = Action(ActionKind.CONVERT, "conversions.a", Reason.NOT_LOCKED, deps=("convert:conversions.b",))
    b = Action(ActionKind.CONVERT, "conversions.b", Reason.NOT_LOCKED, deps=("convert:conversions.a",))
    with pytest.raises(ManifestError, match=r"conversions.a -> conversions.b -> conversions.a|conversions.b -> conversions.a -> conversions.b"):
        build_graph([a, b])
    assert address_cycle({"x": ["y"], "y": ["x"]}) is not None and address_cycle({"x": ["y"], "y": []}) is None
    c = Action(ActionKind.PULL, "models.c", Reason.NOT_LOCKED)
    d = Action(ActionKind.CONVERT, "conversions.d", Reason.NOT_LOCKED, deps=(c.id,))
    assert execution_order(build_graph([d, c])) == [[c.id], [d.id]]
    _ = rfile


def test_hub_errors_for_locked_resources_are_warnings() -> None:
    from batuta_sync.core.render import render_text

    lock = lock_of(repo_lock(M, "models.tiny", C1))
    broken = replace(remote_head("models.tiny", "org/tiny", None), error="HTTP 503")
    p = plan(M, lock, world([broken], [local_repo("models.tiny", C1)]))
    assert p.actions == () and p.warnings == ("models.tiny: could not check org/tiny@main: HTTP 503",)
    assert "? models.tiny: could not check" in render_text(p)
    assert Plan.from_json(p.to_json(KEY), key=KEY).warnings == p.warnings
    # A gate (--detailed-exitcode, status --exit-code) cannot pass on what it did not check.
    with pytest.raises(HubError, match=r"1 resource could not be checked") as exc:
        plan(M, lock, world([broken], [local_repo("models.tiny", C1)]), gate=True)
    assert exc.value.exit_code == 9 and exc.value.code == "not-checked"
    denied = replace(broken, error="401", error_exit="auth")
    with pytest.raises(HubError) as exc:
        plan(M, lock, world([denied], [local_repo("models.tiny", C1)]), gate=True)
    assert exc.value.exit_code == 7 and "batuta hf login" in exc.value.hint
    odd = replace(broken, error="odd", error_exit="conflict")
    with pytest.raises(HubError) as exc:
        plan(M, lock, world([odd], [local_repo("models.tiny", C1)]), gate=True)
    assert exc.value.exit_code == 19
