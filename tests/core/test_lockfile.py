"""hf.lock: deterministic text, round trips, fast reader = YAML reader, clear errors, atomic writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from batuta_sync.core.lockfile import (
    ConversionLock,
    FileDigest,
    Lock,
    PublishLock,
    RepoLock,
    _fast_load,
    dumps,
    loads,
    lock_digest,
    next_version,
    read_lock,
    tree_digest,
    write_lock,
)
from batuta_sync.errors import ManifestError
from batuta_sync.ids import repo_path_problem, revision_problem

SHA1 = "a" * 40


def sample() -> Lock:
    repo = RepoLock("models.b", "org/b", "model", "main", SHA1, "sha256:" + "0" * 64,
                    (FileDigest("a b/ü.safetensors", 10, "c" * 40, "d" * 64), FileDigest("z.json", 3, "b" * 40)), "./m/b")
    conv = ConversionLock("conversions.q", "models.b", "sha256:" + "1" * 64, "1", repo.tree,
                          (("quantization", "Q4_K_M"), ("to", "gguf")), "out/q", (FileDigest("q.gguf", 5, None, "e" * 64),))
    pub = PublishLock("publish.p", "me/p", "model", "main", "f" * 40, repo.tree)
    empty = RepoLock("datasets.e", "org/e", "dataset", "v1", SHA1, "sha256:" + "2" * 64, ())
    return Lock("lin", 3, "plan-1", {e.address: e for e in (pub, conv, repo, empty)})


def test_text_is_sorted_stable_and_one_block_per_resource() -> None:
    lock = sample()
    text = dumps(lock)
    assert text == dumps(Lock("lin", 3, "plan-1", dict(reversed(list(lock.entries.items())))))
    assert "time" not in text.lower().replace("timestamps", "")
    blocks = text.split("\n\n")
    assert [b.strip().splitlines()[0] for b in blocks[1:]] == ['"conversions.q":', '"datasets.e":', '"models.b":', '"publish.p":']
    assert '"a b/ü.safetensors": {"size": 10, "gitsha1": "' in text


def test_round_trip_through_both_readers() -> None:
    text = dumps(sample())
    assert loads(text) == sample()
    assert _fast_load(text) == yaml.safe_load(text)


def test_hand_edited_yaml_falls_back_to_the_yaml_reader() -> None:
    text = "version: 1\nlineage: x\nserial: 2\nresources:\n  publish.p: {kind: publish, repo: me/p, type: model, revision: main, commit: '" + "f" * 40 + "', source_tree: h1:x}\n"
    assert _fast_load(text) is None
    lock = loads(text)
    assert lock.serial == 2 and isinstance(lock.get("publish.p"), PublishLock)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("<<<<<<< HEAD\nversion: 1\n", "not valid YAML"),
        ("- 1\n", "expected a mapping"),
        ("version: 7\n", "unsupported lock version 7"),
        ("version: 1\nresources: [1]\n", "resources: expected a mapping"),
        ("version: 1\nresources:\n  models.a: {kind: repo}\n", "missing key 'repo'"),
        ("version: 1\nresources:\n  models.a: {kind: other}\n", "expected repo, conversion or publish"),
        ("version: 1\nresources:\n  models.a: {kind: repo, repo: r, type: model, revision: m, commit: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', selection: s, files: {x: 1}}\n", "expected {size"),
    ],
)
def test_invalid_locks_are_config_errors(text: str, fragment: str) -> None:
    with pytest.raises(ManifestError, match=r"hf\.lock") as info:
        loads(text)
    assert fragment in info.value.message and info.value.exit_code == 3


def test_serial_moves_only_when_content_changes_and_lineage_is_kept() -> None:
    first = next_version(None, Lock(entries=sample().entries))
    assert first.serial == 1 and first.lineage
    same = next_version(first, Lock(entries=dict(first.entries), last_applied_plan="p2"))
    assert same.serial == 1 and same.lineage == first.lineage
    changed = next_version(first, first.without("publish.p"))
    assert changed.serial == 2 and changed.lineage == first.lineage


def test_atomic_write_and_read(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    path = tmp_path / "w" / "hf.lock"
    assert read_lock(path) is None and lock_digest(None) == "none"
    write_lock(path, sample())
    assert read_lock(path) == sample()
    assert lock_digest(read_lock(path)) == lock_digest(sample())
    assert sorted(p.name for p in path.parent.iterdir()) == ["hf.lock"]  # no temp file left behind


def test_tree_digest_is_order_independent_and_content_sensitive() -> None:
    a, b = FileDigest("a", 1, "1" * 40), FileDigest("b", 2, None, "2" * 64)
    assert tree_digest([a, b]) == tree_digest([b, a]) != tree_digest([a])
    assert tree_digest([a]).startswith("h1:")


names = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)


# Only valid repo paths and revisions make a lock (the others are refused: tests/core/test_tamper.py).
repo_paths = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\:"),
                     min_size=1, max_size=20).filter(lambda p: repo_path_problem(p) is None)
revisions = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_+@=,-]{0,12}\Z").filter(lambda r: revision_problem(r) is None)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(repo_paths, st.integers(min_value=0, max_value=2**40), max_size=5), revisions)
def test_any_paths_round_trip(files: dict[str, int], revision: str) -> None:
    entry = RepoLock("models.x", "o/x", "model", revision, SHA1, "sha256:" + "0" * 64,
                     tuple(FileDigest(p, n, "b" * 40) for p, n in sorted(files.items())))
    lock = Lock("l", 1, None, {"models.x": entry})
    text = dumps(lock)
    assert loads(text) == lock
    assert yaml.safe_load(text) == _fast_load(text)


@settings(max_examples=80, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                    max_leaves=12))
def test_any_yaml_value_is_a_lock_or_a_config_error(value: object) -> None:
    import json as _json

    doc = {"version": 1, "resources": {"models.a": value}}
    try:
        loads(_json.dumps(doc))
    except ManifestError:
        pass


def test_any_plan_shape_is_a_plan_or_a_config_error() -> None:
    from batuta_sync.core.planner.plan import Plan, plan_mac

    key = b"k" * 32
    for actions in ([[1]], ["x"], [{"kind": "pull"}], [{"kind": "nope", "address": "a", "reason": "x"}]):
        d = {"format_version": "1.0", "plan_id": "p", "manifest_path": "m", "manifest_digest": "d",
             "lock_digest": "l", "actions": actions}
        with pytest.raises(ManifestError):
            Plan.from_dict({**d, "plan_mac": plan_mac(d, key)}, key=key)
