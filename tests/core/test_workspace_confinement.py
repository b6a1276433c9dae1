"""#13.4: paths in hf.yaml stay inside the workspace (the folder of hf.yaml) unless the user
passes --allow-outside-workspace; absolute paths, '..' and symlinked folders alike.

Each hostile hf.yaml is refused at validate and at plan time (exit 20, naming the key), and a
canary folder outside the workspace is never touched, by apply either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batuta_sync._fs import PathEscapeError
from batuta_sync.cli import main
from batuta_sync.core.api import apply_plan, make_plan
from batuta_sync.core.manifest import load_manifest
from batuta_sync.core.workspace import confine_manifest, manifest_paths
from batuta_sync.errors import exit_code
from tests._builders import workspace as _ws

FILES = {"config.json": b'{"a": 1}', "notes.txt": b"hello"}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "config.json").write_text("the user's own file")
    (victim / "keep.txt").write_text("keep me")
    return victim


def _cases(tmp_path: Path, victim: Path) -> dict[str, tuple[str, str]]:
    """name -> (hf.yaml body, the key the error must name)."""
    (tmp_path / "ws").mkdir(exist_ok=True)
    (tmp_path / "ws" / "link").symlink_to(victim, target_is_directory=True)
    return {
        "dotdot-output": ("models:\n  m: {repo: org/m, output: ../victim}\n", "models.m.output"),
        "absolute-output": (f"models:\n  m: {{repo: org/m, output: {victim}}}\n", "models.m.output"),
        "tmp-output": ("models:\n  m: {repo: org/m, output: /tmp/x}\n", "models.m.output"),
        "symlinked-dir-output": ("models:\n  m: {repo: org/m, output: ./link}\n", "models.m.output"),
        "symlinked-dir-below": ("models:\n  m: {repo: org/m, output: ./link/sub}\n", "models.m.output"),
        "conversion-output": (
            "models:\n  m: {repo: org/m}\nconversions:\n  c: {from: models.m, to: gguf, output: ../victim}\n",
            "conversions.c.output",
        ),
        "publish-from-outside": (f"publish:\n  p: {{from: {victim}, repo: me/p}}\n", "publish.p.from"),
        "publish-from-dotdot": ("publish:\n  p: {from: ./../victim, repo: me/p}\n", "publish.p.from"),
        "publish-from-symlink": ("publish:\n  p: {from: ./link, repo: me/p}\n", "publish.p.from"),
        "cache-dir-defaults": ("defaults: {cache_dir: ../victim}\nmodels:\n  m: {repo: org/m}\n", "defaults.cache_dir"),
        "cache-dir-policies": (f"policies: {{cache_dir: {victim}}}\nmodels:\n  m: {{repo: org/m}}\n", "policies.cache_dir"),
    }


CASE_NAMES = [
    "dotdot-output", "absolute-output", "tmp-output", "symlinked-dir-output", "symlinked-dir-below", "conversion-output",
    "publish-from-outside", "publish-from-dotdot", "publish-from-symlink", "cache-dir-defaults", "cache-dir-policies",
]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_each_escape_is_refused_at_validate_plan_and_apply(
    case: str, tmp_path: Path, canary: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    hub_env.store.commit("org/m", FILES)
    body, key = _cases(tmp_path, canary)[case]
    ws = _ws(tmp_path, body)
    before = _snapshot(canary)
    tmp_x = Path("/tmp/x").exists()
    f = str(ws / "hf.yaml")
    for argv in (["validate", "-f", f], ["plan", "-f", f], ["apply", "-f", f, "--auto-approve"], ["status", "-f", f]):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == exit_code("path-escape") == 20, (argv, err)
        assert key in err and "--allow-outside-workspace" in err and "Traceback" not in err
    assert _snapshot(canary) == before
    assert not (ws / "hf.lock").exists() and Path("/tmp/x").exists() == tmp_x


def test_paths_inside_the_workspace_are_fine_and_listed(tmp_path: Path) -> None:
    ws = _ws(tmp_path, (
        "defaults: {cache_dir: ./.cache}\nmodels:\n  m: {repo: org/m, output: ./models/m}\n"
        "conversions:\n  c: {from: models.m, to: gguf}\npublish:\n  p: {from: ./out, repo: me/p}\n  q: {from: models.m, repo: me/q}\n"
    ))
    (ws / "models").mkdir()
    (ws / "models" / "inner").symlink_to(ws / "models", target_is_directory=True)  # a link that stays inside
    man = load_manifest(ws / "hf.yaml")
    confine_manifest(man)
    assert dict(manifest_paths(man)) == {
        "models.m.output": "./models/m",
        "conversions.c.output": ".batuta/outputs/conversions/c",
        "publish.p.from": "./out",
        "defaults.cache_dir": "./.cache",
    }


def test_allow_outside_workspace_is_the_explicit_opt_out(
    tmp_path: Path, canary: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    hub_env.store.commit("org/m", FILES)
    target = tmp_path / "elsewhere"
    ws = _ws(tmp_path, f"models:\n  m: {{repo: org/m, output: {target}}}\n")
    f = str(ws / "hf.yaml")
    assert main(["validate", "-f", f]) == 20
    assert main(["validate", "-f", f, "--allow-outside-workspace"]) == 0
    assert main(["apply", "-f", f, "--auto-approve"]) == 20
    assert not target.exists()
    assert main(["apply", "-f", f, "--auto-approve", "--allow-outside-workspace"]) == 0, capsys.readouterr().err
    assert (target / "notes.txt").read_bytes() == b"hello"
    # removing the resource deletes what batuta wrote there -- again only with the opt-out
    (ws / "hf.yaml").write_text("version: 1\n")
    assert main(["apply", "-f", f, "--auto-approve"]) == 20
    assert (target / "notes.txt").exists()
    assert main(["apply", "-f", f, "--auto-approve", "--allow-outside-workspace"]) == 0
    assert not (target / "notes.txt").exists()


def test_a_symlink_planted_after_the_plan_is_caught_at_apply(
    tmp_path: Path, canary: Path, hub_env: Any
) -> None:
    """plan saw a real folder; before apply, the output folder became a symlink to the canary."""
    hub_env.store.commit("org/m", FILES)
    ws = _ws(tmp_path, "models:\n  m: {repo: org/m, output: ./out}\n")
    plan = make_plan(ws / "hf.yaml")
    before = _snapshot(canary)
    (ws / "out").symlink_to(canary, target_is_directory=True)
    with pytest.raises(PathEscapeError, match=r"models\.m\.output"):
        apply_plan(plan, manifest=ws / "hf.yaml")
    assert _snapshot(canary) == before and not (ws / "hf.lock").exists()
