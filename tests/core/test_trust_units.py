"""Unit edges of the #13 checks: lock entry kinds, plan shapes, workspace files, step re-derivation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batuta_sync.core.actions import Action, ActionKind, Reason
from batuta_sync.core.executor import StepContext
from batuta_sync.core.lockfile import ConversionLock, Lock, PublishLock, entry_from_dict
from batuta_sync.core.manifest import parse_manifest
from batuta_sync.core.plankey import _create, key_path
from batuta_sync.core.planner.plan import Plan
from batuta_sync.core.steps import make_pull_step, make_relock_step
from batuta_sync.core.workspace import Journal, parse_state, read_json
from batuta_sync.errors import ConfigError, ManifestError, PlanError

SHA = "a" * 40


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({"kind": "conversion", "from": "models.m", "key": "k", "converter": "1", "input_tree": "t", "output": "",
          "params": {}}, "non-empty path"),
        ({"kind": "conversion", "from": "models.m", "key": "k", "converter": "1", "input_tree": "t", "output": "o",
          "params": {"to": ["x"]}}, "plain values"),
        ({"kind": "conversion", "from": "../m", "key": "k", "converter": "1", "input_tree": "t", "output": "o"},
         "not an address"),
        ({"kind": "conversion", "from": "models.m", "key": "k" * 500, "converter": "1", "input_tree": "t", "output": "o"},
         "at most 200"),
        ({"kind": "publish", "repo": "me/p", "type": "model", "revision": "main", "commit": "HEAD", "source_tree": "t"},
         "commit sha"),
        ({"kind": "repo", "repo": "o/m", "type": "model", "revision": "main", "commit": SHA, "selection": "s",
          "files": {"a": "x"}}, "expected {size"),
        ({"kind": "repo", "repo": "o/m", "type": "model", "revision": "main", "commit": SHA, "selection": "s",
          "output": "a\x00b"}, "output"),
    ],
)
def test_lock_entries_of_every_kind_are_shape_checked(entry: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=r"resources\.(conversions\.c|models\.m)") as info:
        entry_from_dict("conversions.c" if entry["kind"] == "conversion" else "models.m", entry)
    assert fragment in str(info.value)


def test_valid_conversion_and_publish_entries_still_parse() -> None:
    c = entry_from_dict("conversions.c", {"kind": "conversion", "from": "models.m", "key": "k", "converter": "1",
                                          "input_tree": "t", "output": ".batuta/outputs/conversions/c",
                                          "params": {"to": "gguf", "quantization": None}})
    p = entry_from_dict("publish.p", {"kind": "publish", "repo": "me/p", "type": "model", "revision": "main",
                                      "commit": SHA, "source_tree": "h1:x"})
    assert isinstance(c, ConversionLock) and isinstance(p, PublishLock)


def test_a_plan_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ManifestError, match="expected a JSON object"):
        Plan.from_dict([], key=b"k" * 32)  # type: ignore[arg-type]


def test_read_json_edges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from batuta_sync.core import workspace

    assert read_json(tmp_path / "absent.json") is None
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(ConfigError, match="cannot read it"):
        read_json(tmp_path / "dir.json")
    (tmp_path / "big.json").write_text("[" + "1," * 100 + "1]")
    monkeypatch.setattr(workspace, "MAX_STATE_BYTES", 50)
    with pytest.raises(ConfigError, match="larger than 50 bytes"):
        read_json(tmp_path / "big.json")
    assert parse_state({"applied": {"models.m": SHA}, "hashes": {"/a": [1, 2, None, SHA]}}, "s") == (
        {"models.m": SHA}, {"/a": [1, 2, None, SHA]})


def test_journal_round_trip_of_real_entries(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.json")
    j.record("pull:models.m", "none")
    assert Journal(tmp_path / "j.json").entries == [("pull:models.m", "none")]


def test_a_lost_key_creation_race_keeps_the_winners_key(tmp_path: Path) -> None:
    path = key_path(tmp_path)
    _create(path)
    first = path.read_bytes()
    _create(path)  # os.link finds the file: the loser keeps the winner's key
    assert path.read_bytes() == first and sorted(p.name for p in path.parent.iterdir()) == ["plan.key"]


def _man(tmp_path: Path, body: str) -> Any:
    (tmp_path / "hf.yaml").write_text("version: 1\n" + body)
    return parse_manifest((tmp_path / "hf.yaml").read_text(), source=str(tmp_path / "hf.yaml"))


class _State:
    def set_applied(self, address: str, commit: str | None) -> None:
        self.applied = (address, commit)


def test_relock_entries_must_agree_with_hf_yaml_for_every_kind(tmp_path: Path) -> None:
    man = _man(tmp_path, "models:\n  m: {repo: o/m}\nconversions:\n  c: {from: models.m, to: gguf}\n"
                         "publish:\n  p: {from: models.m, repo: me/p}\n")
    relock = make_relock_step(_State(), man)  # type: ignore[arg-type]
    ctx = StepContext(lock=Lock())
    conv = {"kind": "conversion", "from": "models.m", "key": "k", "converter": "1", "input_tree": "t",
            "output": ".batuta/outputs/conversions/c"}
    assert relock(Action(ActionKind.RELOCK, "conversions.c", Reason.NOT_LOCKED, lock_entry=conv), ctx).lock_entry
    with pytest.raises(PlanError, match=r"does not match hf\.yaml"):
        relock(Action(ActionKind.RELOCK, "conversions.c", Reason.NOT_LOCKED, lock_entry={**conv, "output": "../x"}), ctx)
    pub = {"kind": "publish", "repo": "me/p", "type": "model", "revision": "main", "commit": SHA, "source_tree": "t"}
    assert relock(Action(ActionKind.RELOCK, "publish.p", Reason.NOT_LOCKED, lock_entry=pub), ctx).lock_entry
    with pytest.raises(PlanError, match=r"does not match hf\.yaml"):
        relock(Action(ActionKind.RELOCK, "publish.p", Reason.NOT_LOCKED, lock_entry={**pub, "repo": "evil/p"}), ctx)
    # a drop (no entry) needs no agreement
    assert relock(Action(ActionKind.RELOCK, "models.gone", Reason.REMOVED_FROM_MANIFEST), ctx).lock_entry is None


def test_a_pull_whose_plan_entry_is_not_a_repo_is_refused(tmp_path: Path) -> None:
    from batuta_sync.settings import Settings

    man = _man(tmp_path, "models:\n  m: {repo: o/m}\n")
    pull = make_pull_step(Settings(hf_home=tmp_path), man, _State())  # type: ignore[arg-type]
    pub = {"kind": "publish", "repo": "o/m", "type": "model", "revision": "main", "commit": SHA, "source_tree": "t"}
    with pytest.raises(PlanError, match="not a repo entry"):
        pull(Action(ActionKind.PULL, "models.m", Reason.NOT_LOCKED, lock_entry=pub), StepContext(lock=Lock()))


def test_a_plan_id_that_is_a_path_never_names_a_journal(tmp_path: Path) -> None:
    from batuta_sync.core.workspace import Workspace

    with pytest.raises(ConfigError, match="not a plan id"):
        Workspace(tmp_path / "hf.yaml").journal("../../x")
