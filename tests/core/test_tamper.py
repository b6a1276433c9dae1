"""#13 acceptance: tamper tests for plan files, hf.lock, .batuta/state.json and the journal.

Every tampering -- path-traversal shas and ids, wrong types, missing fields, huge values, a
removed MAC, a re-computed unkeyed digest, a validly *signed* plan with crafted paths -- is
refused with one clear paragraph (a documented exit code, no traceback), and a canary folder
next to the workspace is never read into, written or deleted from.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.cli import main
from batuta_sync.core.lockfile import read_lock
from batuta_sync.core.plankey import ENV_KEY, key_path, plan_key
from batuta_sync.core.planner.plan import MAC_FIELD, canonical, plan_mac
from batuta_sync.errors import ConfigError

FILES = {"config.json": b'{"a": 1}', "notes.txt": b"hello"}
BAD_SHA = "../../../victim/keep.txt"


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class Env:
    """A workspace pulling org/m into ./out from the local Hub, and a canary folder beside it."""

    def __init__(self, tmp_path: Path, hub: Any, capsys: pytest.CaptureFixture[str]) -> None:
        self.hub, self.capsys = hub, capsys
        hub.store.commit("org/m", FILES)
        hub.store.commit("org/other", {"evil.txt": b"x"})
        self.canary = tmp_path / "victim"
        self.canary.mkdir()
        (self.canary / "keep.txt").write_text("keep me")
        (self.canary / "notes.txt").write_text("the user's notes")
        self.ws = tmp_path / "ws"
        self.ws.mkdir()
        self.manifest = self.ws / "hf.yaml"
        self.manifest.write_text("version: 1\nmodels:\n  m: {repo: org/m, output: ./out}\n")
        self.plan_path = self.ws / "plan.json"
        self.before = _snapshot(self.canary)

    @property
    def key(self) -> bytes:
        return plan_key(Path(os.environ["HF_HOME"]))

    def run(self, *argv: str) -> tuple[int, str]:
        code = main([*argv, "-f", str(self.manifest)])
        out = self.capsys.readouterr()
        return code, out.out + out.err

    def plan(self) -> dict[str, Any]:
        code, text = self.run("plan", "-o", str(self.plan_path))
        assert code == 0, text
        data: dict[str, Any] = json.loads(self.plan_path.read_text())
        return data

    def write_plan(self, data: dict[str, Any], *, sign: bool = True) -> None:
        if sign:
            data = {**data, MAC_FIELD: plan_mac(data, self.key)}
        self.plan_path.write_text(json.dumps(data))

    def apply(self) -> tuple[int, str]:
        return self.run("apply", str(self.plan_path), "--auto-approve")

    def untouched(self) -> bool:
        return _snapshot(self.canary) == self.before


@pytest.fixture
def env(tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]) -> Env:
    return Env(tmp_path, hub_env, capsys)


def _refused(code: int, text: str, exit_: int, *fragments: str) -> None:
    assert code == exit_, text
    assert "Traceback" not in text and "Internal error" not in text
    for f in fragments:
        assert f in text, (f, text)


# --------------------------------------------------------------------------- plan files: integrity


def test_a_plan_without_its_mac_is_refused(env: Env) -> None:
    data = env.plan()
    del data[MAC_FIELD]
    env.write_plan(data, sign=False)
    _refused(*env.apply(), 3, "plan-integrity", "no `plan_mac`", str(env.plan_path))
    assert not (env.ws / "out").exists() and read_lock(env.ws / "hf.lock") is None


def test_a_recomputed_unkeyed_digest_does_not_make_an_edited_plan_valid(env: Env) -> None:
    """What the old format allowed: edit, recompute sha256 over the canonical body, apply."""
    data = env.plan()
    del data[MAC_FIELD]
    data["actions"][0]["params"]["purge_output"] = ["notes.txt"]
    data["plan_digest"] = "sha256:" + hashlib.sha256(canonical(data)).hexdigest()
    env.write_plan(data, sign=False)
    _refused(*env.apply(), 3, "unkeyed `plan_digest`")


@pytest.mark.parametrize("mac", ["hmac-sha256:" + "0" * 64, "sha256:" + "0" * 64, 7, None])
def test_a_wrong_mac_or_an_edit_after_signing_is_refused(env: Env, mac: Any) -> None:
    data = env.plan()
    if mac is None:  # keep the real MAC, edit the content
        data["actions"][0]["detail"] = "harmless looking"
    else:
        data[MAC_FIELD] = mac
    env.write_plan(data, sign=False)
    _refused(*env.apply(), 3, "plan-integrity")
    assert main(["show", str(env.plan_path)]) == 3
    assert "plan-integrity" in env.capsys.readouterr().err


def test_a_plan_signed_with_another_key_is_refused(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    data = env.plan()
    data[MAC_FIELD] = plan_mac(data, b"somebody else's key" * 3)
    env.write_plan(data, sign=False)
    _refused(*env.apply(), 3, "another key")


def test_ci_jobs_share_the_key_through_the_environment(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """plan in one job (own HF_HOME), apply in another: same BATUTA_PLAN_KEY, no key file."""
    monkeypatch.setenv(ENV_KEY, "ci-secret-" + "7" * 40)
    env.plan()
    assert not key_path(Path(os.environ["HF_HOME"])).exists()
    monkeypatch.setenv("HF_HOME", str(tmp_path / "second-job"))
    assert env.apply()[0] == 0
    monkeypatch.delenv(ENV_KEY)  # a job without the secret cannot apply such a plan
    env.plan()
    monkeypatch.setenv(ENV_KEY, "another-secret-" + "8" * 40)
    _refused(*env.apply(), 3, "plan-integrity")


def test_the_key_file_is_private_and_stable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "h"
    k1 = plan_key(home, env={})
    path = key_path(home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(k1) == 64
    assert plan_key(home, env={}) == k1
    assert sorted(p.name for p in path.parent.iterdir()) == ["plan.key"]
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="not a private regular file"):
        plan_key(home, env={})
    os.chmod(path, 0o600)
    path.write_text("short")
    with pytest.raises(ConfigError, match="too short"):
        plan_key(home, env={})
    with pytest.raises(ConfigError, match="shorter than 32"):
        plan_key(home, env={ENV_KEY: "guessable"})
    assert plan_key(home, env={ENV_KEY: "x" * 40}) == b"x" * 40
    blocked = tmp_path / "file"
    blocked.write_text("a file where the folder must be")
    with pytest.raises(ConfigError, match="Cannot create the plan key"):
        plan_key(blocked, env={})
    path.unlink()
    path.symlink_to(tmp_path / "file")  # a key file that is a symlink is not followed
    with pytest.raises(ConfigError, match="Cannot read the plan key"):
        plan_key(home, env={})


# --------------------------------------------------------------------------- plan files: signed but crafted


def _first(data: dict[str, Any]) -> dict[str, Any]:
    action: dict[str, Any] = data["actions"][0]
    return action


CRAFTED: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "plan-id-traversal": (lambda d: d.update(plan_id="../../../victim/keep"), "plan_id"),
    "plan-id-type": (lambda d: d.update(plan_id=["x"]), "plan_id"),
    "manifest-path": (lambda d: d.update(manifest_path="../../victim/hf.yaml"), "manifest_path"),
    "commit-traversal": (lambda d: _first(d)["lock_entry"].update(commit=BAD_SHA), "commit"),
    "file-path-traversal": (
        lambda d: _first(d)["lock_entry"]["files"].update({"../../victim/keep.txt": {"size": 7, "gitsha1": "a" * 40}}),
        "repo file path",
    ),
    "absolute-file-path": (
        lambda d: _first(d)["lock_entry"]["files"].update({"/etc/passwd": {"size": 1, "gitsha1": "a" * 40}}),
        "absolute",
    ),
    "blob-id-traversal": (
        lambda d: next(iter(_first(d)["lock_entry"]["files"].values())).update(gitsha1=BAD_SHA), "git sha1"
    ),
    "sha256-wrong-shape": (
        lambda d: next(iter(_first(d)["lock_entry"]["files"].values())).update(sha256="A" * 64), "sha256"
    ),
    "repo-id": (lambda d: _first(d)["lock_entry"].update(repo="../../org"), "repo id"),
    "revision": (lambda d: _first(d)["lock_entry"].update(revision="../../main"), "revision"),
    "purge-traversal": (lambda d: _first(d)["params"].update(purge=["../../../../victim/keep.txt"]), "purge"),
    "purge-output-absolute": (lambda d: _first(d)["params"].update(purge_output=[str(Path("/etc/passwd"))]), "purge_output"),
    "parent-commit": (lambda d: _first(d)["params"].update(parent_commit="HEAD; rm -rf /"), "parent_commit"),
    "address": (lambda d: _first(d).update(address="models/../../x"), "address"),
    "id-mismatch": (lambda d: _first(d).update(id="delete-local:models.m"), "is not pull:models.m"),
    "unknown-kind": (lambda d: _first(d).update(kind="exec"), "ActionKind"),
    "unknown-dep": (lambda d: _first(d).update(deps=["pull:models.ghost"]), "not an action of the plan"),
    "bytes-type": (lambda d: _first(d).update(download_bytes="10"), "download_bytes"),
    "bytes-huge": (lambda d: _first(d).update(disk_bytes=2**80), "disk_bytes"),
    "bytes-negative": (lambda d: _first(d).update(upload_bytes=-1), "upload_bytes"),
    "size-huge": (lambda d: next(iter(_first(d)["lock_entry"]["files"].values())).update(size=10**30), "size"),
    "size-bool": (lambda d: next(iter(_first(d)["lock_entry"]["files"].values())).update(size=True), "size"),
    "missing-field": (lambda d: d.pop("manifest_digest"), "missing field"),
    "missing-action-field": (lambda d: _first(d).pop("reason"), "missing field"),
    "actions-type": (lambda d: d.update(actions={"a": 1}), "actions must be a list"),
    "lock-entry-type": (lambda d: _first(d).update(lock_entry="repo"), "lock_entry must be an object"),
    "precondition-commit": (lambda d: d["preconditions"][0].update(expected_commit=BAD_SHA), "commit"),
    "precondition-type": (lambda d: d["preconditions"][0].update(type="../model"), "type"),
    "lock-serial-huge": (lambda d: d.update(lock_serial=2**64), "lock_serial"),
    "digest-shape": (lambda d: d.update(lock_digest="sha256:../../x"), "lock_digest"),
    "huge-detail": (lambda d: _first(d).update(detail="x" * 100_000), "detail"),
    "drift-kind": (lambda d: d.update(drift=[{"address": "models.m", "kind": "rm", "detail": ""}]), "DriftKind"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_a_signed_plan_with_crafted_fields_is_refused_by_name(env: Env, case: str) -> None:
    """Even with the right key (an attacker who can sign), hostile values never reach a path."""
    edit, fragment = CRAFTED[case]
    data = env.plan()
    del data[MAC_FIELD]
    edit(data)
    env.write_plan(data)
    _refused(*env.apply(), 3, str(env.plan_path), fragment)
    assert env.untouched() and not (env.ws / "out").exists() and read_lock(env.ws / "hf.lock") is None


AGREES: dict[str, Callable[[dict[str, Any]], None]] = {
    "output": lambda d: _first(d)["lock_entry"].update(output="../victim"),
    "output-absolute": lambda d: _first(d)["lock_entry"].update(output="/tmp"),
    "other-repo": lambda d: _first(d)["lock_entry"].update(repo="org/other"),
    "other-revision": lambda d: _first(d)["lock_entry"].update(revision="dev"),
    "other-selection": lambda d: _first(d)["lock_entry"].update(selection="sha256:" + "0" * 64),
}


@pytest.mark.parametrize("case", sorted(AGREES))
def test_a_signed_plan_whose_lock_entry_disagrees_with_hf_yaml_is_refused_at_apply(env: Env, case: str) -> None:
    """Well-formed values that hf.yaml does not declare: the step re-derives and compares."""
    data = env.plan()
    del data[MAC_FIELD]
    AGREES[case](data)
    env.write_plan(data)
    _refused(*env.apply(), 1, "does not match hf.yaml")
    assert env.untouched() and not (env.ws / "out").exists()
    lock = read_lock(env.ws / "hf.lock")
    assert lock is None or "models.m" not in lock.entries


def test_paths_in_plan_params_are_display_only(env: Env) -> None:
    """``params.path/src/dst/output`` are never used by apply: pointing them at the canary changes nothing."""
    data = env.plan()
    del data[MAC_FIELD]
    _first(data)["params"].update(output=str(env.canary), path=str(env.canary), dst="../victim", src="/")
    data["options"] = {"root": str(env.canary), "cache_dir": str(env.canary)}
    env.write_plan(data)
    code, text = env.apply()
    assert code == 0, text
    assert env.untouched() and (env.ws / "out" / "notes.txt").read_bytes() == b"hello"


def test_a_signed_relock_for_an_address_hf_yaml_lacks_cannot_plant_a_lock_entry(env: Env) -> None:
    """A relock would record its entry in hf.lock; one pointing at the canary would let a later
    removal delete the user's files.  Refused because hf.yaml does not declare it."""
    data = env.plan()
    del data[MAC_FIELD]
    entry = {**_first(data)["lock_entry"], "output": "../victim",
             "files": {"keep.txt": {"size": 7, "gitsha1": "a" * 40}}}
    data["actions"].append({"id": "relock:models.planted", "kind": "relock", "address": "models.planted",
                            "reason": "not_locked", "deps": [], "lock_entry": entry})
    env.write_plan(data)
    code, text = env.apply()
    assert code != 0 and "does not match hf.yaml" in text and "Traceback" not in text
    lock = read_lock(env.ws / "hf.lock")
    assert lock is None or "models.planted" not in lock.entries
    assert env.untouched()


# --------------------------------------------------------------------------- hf.lock


def _locked(env: Env) -> str:
    code, text = env.run("apply", "--auto-approve")
    assert code == 0, text
    return (env.ws / "hf.lock").read_text()


LOCK_EDITS: dict[str, tuple[Callable[[str, str], str], str]] = {
    "commit-traversal": (lambda t, c: t.replace(f'"{c}"', f'"{BAD_SHA}"', 1), "commit"),
    "file-path-traversal": (lambda t, c: t.replace('"notes.txt":', '"../../victim/keep.txt":'), "repo file path"),
    "gitsha1-traversal": (lambda t, c: t.replace('"gitsha1": "', '"gitsha1": "../../', 1), "git sha1"),
    "size-string": (lambda t, c: t.replace('"size": 5', '"size": "5"'), "size"),
    "size-huge": (lambda t, c: t.replace('"size": 5', '"size": 1' + "0" * 40), "size"),
    "size-negative": (lambda t, c: t.replace('"size": 5', '"size": -5'), "size"),
    "no-digest": (lambda t, c: t.replace(', "gitsha1": "', ', "x": "'), "needs a gitsha1 or a sha256"),
    "missing-commit": (lambda t, c: t.replace(f'    commit: "{c}"\n', ""), "missing key 'commit'"),
    "repo-id": (lambda t, c: t.replace('repo: "org/m"', 'repo: "../../org/m"'), "repo id"),
    "revision": (lambda t, c: t.replace('revision: "main"', 'revision: "../x"'), "revision"),
    "type": (lambda t, c: t.replace('type: "model"', 'type: "../model"'), "expected model, dataset or space"),
    "address": (lambda t, c: t.replace('"models.m":', '"models/../m":'), "not an address"),
    "serial-string": (lambda t, c: t.replace("serial: 1", 'serial: "x"'), "serial"),
    "serial-huge": (lambda t, c: t.replace("serial: 1", "serial: " + "9" * 30), "serial"),
    "last-applied-plan": (lambda t, c: t.replace('last_applied_plan: "', 'last_applied_plan: "../../'), "last_applied_plan"),
    "output-type": (lambda t, c: t.replace('output: "./out"', "output: [1]"), "output"),
    "files-type": (lambda t, c: t.replace("    files:\n", "    files: 3\n    x:\n"), "files"),
}


@pytest.mark.parametrize("case", sorted(LOCK_EDITS))
def test_a_tampered_lock_is_a_config_error_naming_the_file(env: Env, case: str) -> None:
    text = _locked(env)
    commit = env.hub.store.resolve("org/m")
    edit, fragment = LOCK_EDITS[case]
    tampered = edit(text, commit)
    assert tampered != text, "the edit did not apply"
    (env.ws / "hf.lock").write_text(tampered)
    for argv in (("plan",), ("apply", "--auto-approve"), ("status",), ("lock",)):
        _refused(*env.run(*argv), 3, "hf.lock", fragment)
    assert env.untouched()


def test_a_lock_output_outside_the_workspace_cannot_make_apply_delete_there(env: Env) -> None:
    """A well-formed lock whose removed resource 'materialized' into the canary: the delete
    step confines the output to the workspace (exit 20) and removes nothing."""
    text = _locked(env)
    planted = text.replace('"models.m":', '"models.gone":').replace('output: "./out"', 'output: "../victim"')
    planted = planted.replace('"notes.txt":', '"keep.txt":')
    (env.ws / "hf.lock").write_text(text.rstrip("\n") + "\n" + planted.split("resources:\n", 1)[1])
    lock = read_lock(env.ws / "hf.lock")
    assert lock is not None and set(lock.entries) == {"models.m", "models.gone"}
    code, out = env.run("plan")
    assert code == 0 and "delete-local  models.gone" in out
    _refused(*env.run("apply", "--auto-approve"), 20, "path-escape", "models.gone.output")
    assert env.untouched()


def test_a_symlink_planted_in_the_cache_cannot_make_purge_delete_outside(env: Env) -> None:
    """A corrupt cached file makes the next pull purge it: the snapshot entry is a symlink the
    attacker pointed at the canary; only the link goes, never its target."""
    _locked(env)
    from batuta_sync.core.planner.diff import snapshot_dir
    from batuta_sync.settings import resolve_settings

    lock = read_lock(env.ws / "hf.lock")
    assert lock is not None
    entry = lock.entries["models.m"]
    snap = Path(snapshot_dir(str(resolve_settings().hub_cache), "model", "org/m", entry.commit))  # type: ignore[union-attr]
    link = snap / "notes.txt"
    link.unlink()
    link.symlink_to(env.canary / "notes.txt")  # same path, different size: the plan purges it
    code, out = env.run("plan", "--verify")
    assert code == 0 and "pull  models.m" in out, out
    code, out = env.run("apply", "--auto-approve")
    assert code == 0, out
    assert env.untouched() and (env.ws / "out" / "notes.txt").read_bytes() == b"hello"


# --------------------------------------------------------------------------- state.json and the journal


STATE_EDITS: dict[str, tuple[Any, str]] = {
    "not-json": ("{", "not JSON"),
    "list": ([], "expected a JSON object"),
    "applied-traversal": ({"applied": {"models.m": BAD_SHA}}, "commit sha"),
    "applied-address": ({"applied": {"../x": "a" * 40}}, "address"),
    "applied-type": ({"applied": ["models.m"]}, "must be objects"),
    "hash-types": ({"hashes": {"/x": ["5", 0, None, None]}}, "hashes"),
    "hash-huge": ({"hashes": {"/x": [2**70, 0, None, None]}}, "hashes"),
    "hash-digest": ({"hashes": {"/x": [5, 0, "../../x", None]}}, "hashes"),
    "hash-short": ({"hashes": {"/x": [5]}}, "hashes"),
}


@pytest.mark.parametrize("case", sorted(STATE_EDITS))
def test_a_tampered_state_file_is_a_config_error_naming_it(env: Env, case: str) -> None:
    _locked(env)
    state = env.ws / ".batuta" / "state.json"
    value, fragment = STATE_EDITS[case]
    state.write_text(value if isinstance(value, str) else json.dumps(value))
    for argv in (("plan",), ("status",), ("apply", "--auto-approve")):
        _refused(*env.run(*argv), 3, "state.json", fragment, "delete")
    assert env.untouched()
    state.unlink()  # the hint's way out works
    assert env.run("plan")[0] == 0


JOURNAL_EDITS: dict[str, tuple[Any, str]] = {
    "not-json": ("[", "not JSON"),
    "list": ([], "expected"),
    "entry-type": ({"entries": [1]}, "entries[0]"),
    "action-id": ({"entries": [["pull:../../x", "none"]]}, "entries[0]"),
    "digest": ({"entries": [["pull:models.m", "sha256:../../x"]]}, "entries[0]"),
    "three": ({"entries": [["pull:models.m", "none", "x"]]}, "entries[0]"),
    "entries-type": ({"entries": "x"}, "expected"),
}


@pytest.mark.parametrize("case", sorted(JOURNAL_EDITS))
def test_a_tampered_journal_is_a_config_error_naming_it(env: Env, case: str) -> None:
    data = env.plan()
    journal = env.ws / ".batuta" / "journal" / f"{data['plan_id']}.json"
    journal.parent.mkdir(parents=True, exist_ok=True)
    value, fragment = JOURNAL_EDITS[case]
    journal.write_text(value if isinstance(value, str) else json.dumps(value))
    _refused(*env.apply(), 3, str(journal), fragment)
    assert env.untouched() and not (env.ws / "out").exists()
    journal.unlink()
    assert env.apply()[0] == 0


def test_an_oversized_plan_is_refused_before_parsing(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from batuta_sync.core.planner import plan as plan_mod

    env.plan()
    monkeypatch.setattr(plan_mod, "MAX_PLAN_CHARS", 100)
    _refused(*env.apply(), 3, "larger than 100 characters")
    env.plan_path.write_text("[]")
    monkeypatch.setattr(plan_mod, "MAX_PLAN_CHARS", 10**6)
    _refused(*env.apply(), 3, "expected a JSON object")
    env.plan_path.write_bytes(b"\xff\xfe")
    _refused(*env.apply(), 3, "Cannot read the plan")
