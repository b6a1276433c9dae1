"""``--executor`` / ``policies.executor``: one parser, validation with file:line, and the errors
a Dask executor gives before anything is planned (no extra installed, no remote)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from batuta_sync.cli import main
from batuta_sync.core.manifest import ExecutorSpec, load_manifest, parse_executor
from batuta_sync.errors import ManifestError


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        (None, ExecutorSpec("local")),
        ("local", ExecutorSpec("local")),
        ("dask://10.0.0.7:8786", ExecutorSpec("dask", "dask://10.0.0.7:8786", address="tcp://10.0.0.7:8786")),
        ("dask://sched.example.org:1", ExecutorSpec("dask", "dask://sched.example.org:1", address="tcp://sched.example.org:1")),
        ("dask://[::1]:8786", ExecutorSpec("dask", "dask://[::1]:8786", address="tcp://[::1]:8786")),
        ("dask-local:2", ExecutorSpec("dask-local", "dask-local:2", workers=2)),
    ],
)
def test_parse_executor(text: str | None, spec: ExecutorSpec) -> None:
    assert parse_executor(text) == spec


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("dask-local:0", "1 to 256 workers"),
        ("dask-local:999", "1 to 256 workers"),
        ("dask://host:70000", "out of range"),
        ("dask://host", "unknown executor"),
        ("dask://user@host:8786", "unknown executor"),
        ("spark://host:7077", "unknown executor"),
        ("Local", "unknown executor"),
    ],
)
def test_bad_executor_specs(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_executor(text)


def _yaml(tmp_path: Path, executor: str | None) -> Path:
    path = tmp_path / "hf.yaml"
    policy = f"policies:\n  jobs: 2\n  executor: {executor}\n" if executor else "policies:\n  jobs: 2\n"
    path.write_text(f"version: 1\n{policy}models:\n  a: {{repo: org/a}}\n")
    return path


def test_policy_is_validated_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest(_yaml(tmp_path, "dask-local:0"))
    text = info.value.render()
    assert "hf.yaml:4:" in text and "policies.executor" in text and "1 to 256 workers" in text


def test_policy_does_not_change_the_manifest_digest(tmp_path: Path) -> None:
    """Where apply runs is not what it does: a saved plan stays applicable on another executor."""
    plain = load_manifest(_yaml(tmp_path, None))
    on_dask = load_manifest(_yaml(tmp_path, "dask://127.0.0.1:8786"))
    assert on_dask.policies.executor == "dask://127.0.0.1:8786"
    assert on_dask.digest == plain.digest
    (tmp_path / "hf.yaml").write_text("version: 1\npolicies:\n  executor: local\nmodels:\n  a: {repo: org/a}\n")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "hf.yaml").write_text("version: 1\nmodels:\n  a: {repo: org/a}\n")
    assert load_manifest(tmp_path / "hf.yaml").digest == load_manifest(bare / "hf.yaml").digest


def test_without_dask_a_clear_error_before_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
    path = _yaml(tmp_path, None)
    code = main(["apply", "-f", str(path), "--auto-approve", "--remote", f"file://{tmp_path / 'r'}",
                 "--executor", "dask-local:2"])
    err = capsys.readouterr().err
    assert code == 3
    assert "Error [missing-extra]" in err and "pip install 'batuta_sync[dask]'" in err
    assert "Traceback" not in err
    assert not (tmp_path / "hf.lock").exists()


def test_a_policy_executor_without_dask_gives_the_same_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    path = _yaml(tmp_path, "dask-local:2")
    assert main(["apply", "-f", str(path), "--auto-approve"]) == 3
    assert "missing-extra" in capsys.readouterr().err
    # --executor local overrides the policy: no Dask needed (nothing to pull from org/a offline
    # here; the point is that the executor is not what fails)
    main(["apply", "-f", str(path), "--auto-approve", "--executor", "local"])
    assert "missing-extra" not in capsys.readouterr().err


def test_a_dask_executor_needs_a_remote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("distributed")
    code = main(["apply", "-f", str(_yaml(tmp_path, None)), "--auto-approve", "--executor", "dask-local:2"])
    err = capsys.readouterr().err
    assert code == 3
    assert "needs a shared remote" in err and "--remote" in err
    assert not (tmp_path / "hf.lock").exists()


def test_a_bad_flag_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", "-f", str(_yaml(tmp_path, None)), "--auto-approve", "--executor", "yarn"]) == 64
    assert "--executor: unknown executor 'yarn'" in capsys.readouterr().err


def test_an_unreachable_scheduler_is_one_paragraph(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hub_env: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("distributed")
    from batuta_sync.distributed import driver

    monkeypatch.setattr(driver, "CONNECT_TIMEOUT", 1.0)
    hub_env.store.commit("org/a", {"a.txt": b"a"})  # type: ignore[attr-defined]
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(["apply", "-f", str(_yaml(tmp_path, None)), "--auto-approve", "--remote", f"file://{tmp_path / 'r'}",
                 "--executor", f"dask://127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert f"Cannot reach the Dask scheduler dask://127.0.0.1:{port}" in err and "Traceback" not in err


def test_an_endpoint_with_a_password_is_never_sent_to_workers(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    from batuta_sync.distributed import executor_hook
    from batuta_sync.errors import ConfigError
    from batuta_sync.settings import resolve_settings

    settings = resolve_settings(flags={"endpoint": "https://me:s3cret-pw@hub.example.org",
                                       "remote": f"file://{tmp_path / 'r'}"})
    with pytest.raises(ConfigError) as info:
        executor_hook(parse_executor("dask-local:1"), settings)
    assert "password in its URL" in info.value.message and "s3cret-pw" not in info.value.render()
