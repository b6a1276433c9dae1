"""`batuta init [REPO …]`: a commented hf.yaml from what the Hub has; it must validate and plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batuta_sync.server import HubServer
from tests._builders import run_cli as run
from tests.hub.conftest import write_tiny_gguf


def _files(d: Path) -> dict[str, Path]:
    return {str(p.relative_to(d)): p for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture
def hub(hub_env: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubServer:
    """The local Hub with a safetensors llama (no GGUF), a GGUF repo, a pickle-only model, a BERT,
    a dataset and a space; the test runs in an empty project directory."""
    from batuta_sync.tinymodel import write_tiny_dataset, write_tiny_llama, write_tiny_space

    src = tmp_path / "src"
    llama = write_tiny_llama(src / "llama")
    store = hub_env.store
    store.commit("acme/tiny-llama", _files(llama))
    gguf = write_tiny_gguf(src / "x.gguf")
    store.commit("acme/tiny-gguf", {"m.Q8_0.gguf": gguf, "m.Q4_K_M.gguf": gguf, "README.md": b"# gguf\n"})
    store.commit("acme/old-pickle", {"config.json": b'{"architectures": ["LlamaForCausalLM"]}', "pytorch_model.bin": b"\x80\x04K\x01."})
    store.commit(
        "zed/tiny-llama",
        {"config.json": b'{"architectures": ["BertModel"]}', "model.safetensors": (llama / "model.safetensors").read_bytes()},
    )
    store.commit("acme/tiny-ds", _files(write_tiny_dataset(src / "ds")), repo_type="dataset")
    store.commit("acme/demo", _files(write_tiny_space(src / "sp")), repo_type="space")
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    return hub_env


def _valid_and_plans(capsys: pytest.CaptureFixture[str], manifest: str = "hf.yaml") -> str:
    code, out, err = run(capsys, "validate", "-f", manifest)
    assert code == 0, err
    code, out, err = run(capsys, "plan", "-f", manifest, "--json")
    assert code == 0, err
    return out


def test_init_detects_types_formats_and_suggests_a_conversion(
    hub: HubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys, "init", "acme/tiny-llama", "acme/tiny-gguf", "acme/old-pickle", "zed/tiny-llama", "acme/tiny-ds", "acme/demo"
    )
    assert code == 0 and "Wrote hf.yaml (6 repo(s))" in err
    text = Path("hf.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=https://batuta-sync.dev/schemas/hf.schema.json\n")
    import yaml

    doc = yaml.safe_load(text)
    assert doc["models"] == {
        "tiny-llama": {"repo": "acme/tiny-llama", "format": "safetensors"},
        "tiny-gguf": {"repo": "acme/tiny-gguf", "format": "gguf", "quantization": "Q4_K_M"},
        "old-pickle": {"repo": "acme/old-pickle"},
        "tiny-llama-2": {"repo": "zed/tiny-llama", "format": "safetensors"},
    }
    assert doc["datasets"] == {"tiny-ds": {"repo": "acme/tiny-ds"}}
    assert doc["spaces"] == {"demo": {"repo": "acme/demo"}}
    assert "conversions" not in doc  # suggested, commented out
    assert "# also: Q8_0" in text and "LlamaForCausalLM" in text and "BertModel" in text
    assert "#     from: models.tiny-llama\n" in text  # the llama gets a suggestion ...
    assert "models.tiny-llama-2" not in text  # ... the BERT (unsupported) does not
    assert "#     from: models.old-pickle" not in text and "# allow_unsafe: true" in text
    plan = json.loads(_valid_and_plans(capsys))
    assert {a["address"] for a in plan["actions"]} >= {"models.tiny-llama", "datasets.tiny-ds", "spaces.demo"}

    # the suggestion, uncommented, is a valid conversion that plans
    lines = text.split("# Suggested:")[1].splitlines()[1:]
    Path("hf.yaml").write_text(text + "\n".join(line[2:] for line in lines) + "\n")
    plan = json.loads(_valid_and_plans(capsys))
    convert = [a for a in plan["actions"] if a["address"].startswith("conversions.")]
    assert [a["address"] for a in convert] == ["conversions.tiny-llama-q4-k-m"]


def test_init_refuses_to_overwrite_unless_forced(hub: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    Path("hf.yaml").write_text("version: 1\n# mine\n")
    hub.log.clear()
    code, _, err = run(capsys, "init", "acme/tiny-llama")
    assert code == 64
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "already exists" in lines[0] and "--force" in lines[1]
    assert Path("hf.yaml").read_text() == "version: 1\n# mine\n" and hub.log.count() == 0
    code, _, _ = run(capsys, "init", "acme/tiny-llama", "--force")
    assert code == 0 and "acme/tiny-llama" in Path("hf.yaml").read_text()
    code, _, _ = run(capsys, "init", "-f", "other.yaml", "datasets/acme/tiny-ds")
    assert code == 0 and "datasets:" in Path("other.yaml").read_text()
    _valid_and_plans(capsys, "other.yaml")


def test_init_pins_a_revision_and_takes_an_explicit_type(hub: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    sha = hub.store.commit_of("acme/tiny-ds", repo_type="dataset").id
    hub.store.create_tag("acme/tiny-ds", "v1", rev=sha, repo_type="dataset")
    hub.store.commit("acme/tiny-ds", {"late.txt": b"x"}, repo_type="dataset")
    code, _, err = run(capsys, "init", "datasets/acme/tiny-ds@v1", "spaces/acme/demo")
    assert code == 0, err
    import yaml

    doc = yaml.safe_load(Path("hf.yaml").read_text())
    assert doc["datasets"] == {"tiny-ds": {"repo": "acme/tiny-ds", "revision": "v1"}}
    plan = json.loads(_valid_and_plans(capsys))
    assert any(sha[:7] in json.dumps(a) for a in plan["actions"])


def test_init_errors(hub: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "init", "acme/nothing-here")
    assert code == 8 and "is not a model, dataset or space" in err and "Traceback" not in err
    code, _, _ = run(capsys, "init", "datasets/acme/tiny-llama")  # it is a model
    assert code == 8
    code, _, _ = run(capsys, "init", "acme/tiny-llama@../x")
    assert code == 64
    code, _, _ = run(capsys, "init", "not a repo")
    assert code == 64
    assert not Path("hf.yaml").exists()  # nothing half-written


def test_init_survives_odd_configs_and_rare_quants(hub: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    st = b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "  # an empty but well-formed safetensors header
    hub.store.commit("odd/not-json", {"config.json": b"{nope", "model.safetensors": st})
    hub.store.commit("odd/no-list", {"config.json": b'{"architectures": "LlamaForCausalLM"}', "model.safetensors": st})
    hub.store.commit("odd/q3", {"m.Q3_K_S.gguf": b"GGUF" + b"\x00" * 60})
    code, _, err = run(capsys, "init", "odd/not-json", "odd/no-list", "odd/q3")
    assert code == 0, err
    text = Path("hf.yaml").read_text()
    assert "# Suggested:" not in text  # no architecture read, so no conversion offered
    assert "quantization: Q3_K_S" in text


def test_init_without_repos_writes_a_valid_skeleton(hub: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    hub.log.clear()
    code, _, _ = run(capsys, "init")
    assert code == 0 and hub.log.count() == 0
    _valid_and_plans(capsys)


def test_resource_names_are_schema_names() -> None:
    from batuta_sync.cli.init_cmd import resource_name

    taken: set[str] = set()
    assert [resource_name(r, taken) for r in ("a/Llama.2-7B", "b/llama.2-7b", "c/_x_", "d/---")] == [
        "llama-2-7b",
        "llama-2-7b-2",
        "x",
        "repo",
    ]
