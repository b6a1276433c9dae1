"""hf.yaml parsing and validation: every problem at once, each with file:line:col and the key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from batuta_sync.core.manifest import glob_problem, load_manifest, load_schema, parse_manifest
from batuta_sync.errors import ManifestError
from batuta_sync.types import HfAssetType

GOOD = """\
# yaml-language-server: $schema=./schemas/hf.schema.json
version: 1
defaults:
  revision: main
  endpoint: http://127.0.0.1:9
policies:
  safety: safe_only
  jobs: 4
  max_cache_size: 50GB
  materialize: copy
models:
  llama:
    repo: org/llama
    include: ["*.safetensors", "*.json"]
    exclude: ["original/**"]
    output: ./models/llama
  llama-gguf:
    repo: org/llama-GGUF
    revision: v1.0
    format: gguf
    quantization: Q4_K_M
datasets:
  squad:
    repo: rajpurkar/squad
    split: train
spaces:
  demo:
    repo: org/demo
conversions:
  llama-q4:
    from: models.llama
    to: gguf
    quantization: Q4_K_M
    output: ./build/llama-q4
publish:
  llama-gguf:
    from: conversions.llama-q4
    repo: me/llama-gguf
    private: true
    card: {license: mit, tags: [llama, gguf]}
  app:
    from: ./space
    repo: me/app
    type: space
    sdk: gradio
"""


def test_a_full_manifest_parses_into_frozen_specs() -> None:
    m = parse_manifest(GOOD, source="hf.yaml")
    assert m.addresses == (
        "models.llama",
        "models.llama-gguf",
        "datasets.squad",
        "spaces.demo",
        "conversions.llama-q4",
        "publish.app",
        "publish.llama-gguf",
    )
    llama = m.get("models.llama")
    assert llama is not None and llama.repo_type is HfAssetType.MODEL  # type: ignore[union-attr]
    assert m.get("datasets.squad").split == "train"  # type: ignore[union-attr]
    assert m.get("conversions.llama-q4").quantization == "Q4_K_M"  # type: ignore[union-attr]
    pub = m.get("publish.llama-gguf")
    assert pub.source_is_address and pub.private and dict(pub.card)["license"] == "mit"  # type: ignore[union-attr]
    assert not m.get("publish.app").source_is_address  # type: ignore[union-attr]
    assert m.materialize == "copy" and m.jobs == 4
    assert m.settings_layer() == {"endpoint": "http://127.0.0.1:9"}
    assert m.get("nope.x") is None


def test_digest_ignores_comments_and_layout() -> None:
    a = parse_manifest(GOOD)
    b = parse_manifest("# another comment\n" + GOOD.replace("jobs: 4", "jobs:   4  # four"))
    c = parse_manifest(GOOD.replace("jobs: 4", "jobs: 5"))
    assert a.digest == b.digest != c.digest


def test_defaults_and_policies_feed_settings(tmp_path: Path) -> None:
    m = parse_manifest("version: 1\ndefaults: {offline: true, cache_dir: ./c}\npolicies: {endpoint: http://x:1}\n",
                       source=str(tmp_path / "hf.yaml"))
    layer = m.settings_layer()
    assert layer["offline"] is True and layer["endpoint"] == "http://x:1"
    assert layer["cache_dir"] == str((tmp_path / "c").resolve())


def test_conversion_to_gguf_defaults_to_q4_k_m() -> None:
    m = parse_manifest("version: 1\nmodels: {a: {repo: o/a}}\nconversions: {q: {from: models.a, to: gguf}}\n")
    assert m.get("conversions.q").quantization == "Q4_K_M"  # type: ignore[union-attr]


# Each broken manifest: (id, text, line, col, key, message fragment).
BROKEN = [
    ("unknown-top-key", "version: 1\nmodel:\n  a: {repo: o/a}\n", 2, 1, "model", "unknown key 'model'"),
    ("unknown-entry-key", "version: 1\nmodels:\n  a:\n    repo: o/a\n    revison: main\n", 5, 5, "models.a.revison", "unknown key 'revison'"),
    ("wrong-type-include", "version: 1\nmodels:\n  a:\n    repo: o/a\n    include: '*.json'\n", 5, 14, "models.a.include", "expected a list"),
    ("wrong-type-private", "version: 1\npublish:\n  p:\n    from: ./x\n    repo: o/p\n    private: 'yes'\n", 6, 14, "publish.p.private", "expected true or false"),
    ("missing-version", "models:\n  a: {repo: o/a}\n", 1, 1, "", "missing required key 'version'"),
    ("bad-version", "version: 2\n", 1, 10, "version", "unsupported value 2"),
    ("missing-repo", "version: 1\nmodels:\n  a:\n    revision: main\n", 3, 3, "models.a", "missing required key 'repo'"),
    ("duplicate-name", "version: 1\nmodels:\n  a:\n    repo: o/a\n  a:\n    repo: o/b\n", 5, 3, "models.a", "duplicate name 'a'"),
    ("duplicate-key", "version: 1\nmodels:\n  a:\n    repo: o/a\n    repo: o/b\n", 5, 5, "models.a.repo", "duplicate key 'repo'"),
    ("bad-glob", "version: 1\nmodels:\n  a:\n    repo: o/a\n    include: ['ok/*', 'x[ab']\n", 5, 23, "models.a.include[1]", "bad glob 'x[ab'"),
    ("absolute-glob", "version: 1\nmodels:\n  a:\n    repo: o/a\n    exclude: ['/etc/*']\n", 5, 15, "models.a.exclude[0]", "absolute path"),
    ("unknown-quantization", "version: 1\nmodels:\n  a: {repo: o/a}\nconversions:\n  q:\n    from: models.a\n    to: gguf\n    quantization: Q3_XL\n", 8, 19, "conversions.q.quantization", "unknown quantization 'Q3_XL'"),
    ("dangling-address", "version: 1\nconversions:\n  q:\n    from: models.ghost\n    to: gguf\n", 4, 11, "conversions.q.from", "dangling address 'models.ghost'"),
    ("not-an-address", "version: 1\nconversions:\n  q:\n    from: ./dir\n    to: gguf\n", 4, 11, "conversions.q.from", "is not an address"),
    ("cycle", "version: 1\nconversions:\n  a:\n    from: conversions.b\n    to: gguf\n  b:\n    from: conversions.a\n    to: safetensors\n", 4, 11, "conversions.a.from", "dependency cycle: conversions.a -> conversions.b -> conversions.a"),
    ("self-cycle", "version: 1\nconversions:\n  a:\n    from: conversions.a\n    to: gguf\n", 4, 11, "conversions.a.from", "dependency cycle"),
    ("conflicting-outputs", "version: 1\nmodels:\n  a:\n    repo: o/a\n    output: ./m\n  b:\n    repo: o/b\n    output: m/sub\n", 8, 13, "models.b.output", "conflicting output 'm/sub'"),
    ("invalid-repo-id", "version: 1\nmodels:\n  a:\n    repo: org/has space\n", 4, 11, "models.a.repo", "invalid repo id"),
    ("invalid-repo-id-dashes", "version: 1\npublish:\n  p:\n    from: ./x\n    repo: org/a--b\n", 5, 11, "publish.p.repo", "invalid repo id"),
    ("invalid-name", "version: 1\nmodels:\n  my.model:\n    repo: o/a\n", 3, 3, "models.my.model", "invalid name 'my.model'"),
    ("bad-enum-to", "version: 1\nmodels: {a: {repo: o/a}}\nconversions:\n  q: {from: models.a, to: onnx}\n", 4, 27, "conversions.q.to", "invalid value 'onnx'"),
    ("split-on-model", "version: 1\nmodels:\n  a:\n    repo: o/a\n    split: train\n", 5, 5, "models.a.split", "'split' only applies to datasets"),
    ("sdk-needs-space", "version: 1\npublish:\n  p:\n    from: ./x\n    repo: o/p\n    sdk: gradio\n", 6, 5, "publish.p.sdk", "only applies to spaces"),
    ("space-needs-sdk", "version: 1\npublish:\n  p:\n    from: ./x\n    repo: o/p\n    type: space\n", 4, 5, "publish.p", "needs 'sdk'"),
    ("publish-from-publish", "version: 1\npublish:\n  a: {from: ./x, repo: o/a}\n  b: {from: publish.a, repo: o/b}\n", 4, 13, "publish.b.from", "cannot publish from 'publish.a'"),
    ("yaml-syntax", "version: 1\nmodels:\n  a: {repo: o/a\n", 4, 1, "", "YAML syntax error"),
    ("top-level-list", "- version: 1\n", 1, 1, "", "expected a mapping at the top level"),
    ("jobs-range", "version: 1\npolicies:\n  jobs: 0\n", 3, 9, "policies.jobs", "out of range"),
    ("cache-size", "version: 1\npolicies:\n  max_cache_size: lots\n", 3, 19, "policies.max_cache_size", "invalid value 'lots'"),
]


@pytest.mark.parametrize(("text", "line", "col", "key", "fragment"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_each_broken_manifest_gives_a_precise_error(text: str, line: int, col: int, key: str, fragment: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(text, source="hf.yaml")
    diags = info.value.diagnostics
    match = [d for d in diags if fragment in d.message]
    assert match, f"no diagnostic containing {fragment!r} in {[str(d) for d in diags]}"
    d = match[0]
    assert (d.file, d.line, d.col, d.key) == ("hf.yaml", line, col, key), str(d)
    assert info.value.exit_code == 3
    assert f"hf.yaml:{line}:{col}" in info.value.render()


def test_every_problem_is_reported_at_once() -> None:
    text = (
        "version: 1\nmodels:\n  a:\n    repo: o/a\n    revison: x\n  a:\n    repo: o/b\n"
        "conversions:\n  q:\n    from: models.zz\n    to: gguf\n    quantization: Q9\n"
    )
    with pytest.raises(ManifestError) as info:
        parse_manifest(text, source="m.yaml")
    msgs = " | ".join(d.message for d in info.value.diagnostics)
    assert len(info.value.diagnostics) == 4, msgs
    for fragment in ("unknown key 'revison'", "duplicate name 'a'", "dangling address", "unknown quantization 'Q9'"):
        assert fragment in msgs
    lines = [d.line for d in info.value.diagnostics]
    assert lines == sorted(lines)


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [("*.json", None), ("a/**", None), ("[!.]*", None), ("", "empty"), ("a\\b", "backslash"), ("../x", "'..'"),
     ("{a,b}", "brace expansion"), ("{a", "unbalanced"), ("a}", "unbalanced"), ("***", "not a valid wildcard"), ("C:/x", "absolute")],
)
def test_glob_problems(pattern: str, problem: str | None) -> None:
    got = glob_problem(pattern)
    assert (got is None) if problem is None else (got is not None and problem in got)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"not found"):
        load_manifest(tmp_path / "hf.yaml")


def test_schema_is_draft_2020_12_and_documents_every_section() -> None:
    schema = load_schema("hf.schema.json")
    assert schema["$schema"].endswith("2020-12/schema")
    assert set(schema["properties"]) == {"version", "defaults", "policies", "models", "datasets", "spaces", "conversions", "publish", "moved"}
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(schema)
    import yaml

    Draft202012Validator(schema).validate(yaml.safe_load(GOOD))


def test_validate_command(tmp_path: Path) -> None:
    good = tmp_path / "hf.yaml"
    good.write_text(GOOD)
    bad = tmp_path / "bad.yaml"
    bad.write_text(BROKEN[1][1])
    ok = subprocess.run([sys.executable, "-m", "batuta_sync", "validate", "-f", str(good)], capture_output=True, text=True)
    assert ok.returncode == 0 and "is valid: 7 resources" in ok.stdout
    js = subprocess.run([sys.executable, "-m", "batuta_sync", "validate", "-f", str(good), "--json"], capture_output=True, text=True)
    assert json.loads(js.stdout)["valid"] is True
    r = subprocess.run([sys.executable, "-m", "batuta_sync", "validate", "-f", str(bad)], capture_output=True, text=True)
    assert r.returncode == 3
    assert f"{bad}:5:5: models.a.revison: unknown key 'revison'" in r.stderr
    assert "Traceback" not in r.stderr


def test_validation_cache_is_content_addressed_outside_the_project(tmp_path: Path) -> None:
    import os

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "hf.yaml").write_text(GOOD)
    first = load_manifest(ws / "hf.yaml")
    markers = list((Path(os.environ["HF_HOME"]) / "batuta" / "manifest-checked").iterdir())
    assert len(markers) == 1 and not (ws / ".batuta").exists()
    assert load_manifest(ws / "hf.yaml") == first  # second load: schema skipped, same result
    (ws / "hf.yaml").write_text(BROKEN[1][1])
    with pytest.raises(ManifestError, match="revison"):
        load_manifest(ws / "hf.yaml")  # another text is validated again
