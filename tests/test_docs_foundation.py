"""Docs derived from code are current; the README's commands are what CI runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from batuta_sync._dev import gendocs

ROOT = Path(__file__).resolve().parents[1]


def test_generated_docs_are_current() -> None:
    assert gendocs.main(["--check"]) == 0, "run `python -m batuta_sync._dev.gendocs` and commit the result"


def test_check_mode_detects_a_stale_doc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    monkeypatch.setattr(gendocs, "ROOT", tmp_path)
    assert gendocs.main(["--check"]) == 1  # nothing generated yet in tmp
    assert gendocs.main([]) == 0
    assert gendocs.main(["--check"]) == 0
    assert "| 64 | `usage` |" in (tmp_path / "docs" / "exit-codes.md").read_text()


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = text.split("```bash\n")[1:]
    return [b.split("```", 1)[0].strip() for b in blocks]


def test_ci_runs_the_readme_test_command() -> None:
    commands = _readme_commands()
    assert len(commands) >= 2, "README must show the demo command and the test command"
    demo, test = commands[0], commands[1]
    assert "batuta demo" in demo
    install, _, pytest_cmd = test.partition(" && ")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert pytest_cmd and pytest_cmd in ci, "the README's pytest command must be exactly what .ci/run runs"
    assert install.replace("pip install", "python -m pip install -q") in ci


def test_every_env_var_of_the_spec_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for var in ("HF_TOKEN", "HF_HOME", "HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_HUB_CACHE"):
        assert f"`{var}" in doc


def _schema_properties(node: object) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.get("properties", {}).items():
            found.add(key)
            found |= _schema_properties(value)
        for key, value in node.items():
            if key != "properties":
                found |= _schema_properties(value)
    elif isinstance(node, list):
        for item in node:
            found |= _schema_properties(item)
    return found


def test_every_schema_property_is_documented() -> None:
    import json

    schema = json.loads((ROOT / "schemas" / "hf.schema.json").read_text(encoding="utf-8"))
    doc = (ROOT / "docs" / "hf-yaml.md").read_text(encoding="utf-8")
    props = _schema_properties(schema)
    assert len(props) > 20
    missing = sorted(p for p in props if f"`{p}`" not in doc)
    assert not missing, f"undocumented hf.yaml keys: {missing}"
