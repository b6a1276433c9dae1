"""The foundation: error tree, exit codes, settings precedence, redaction, CLI error mapping."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from batuta_sync import errors
from batuta_sync._redact import Secret, redact, register_secret
from batuta_sync.cli import main
from batuta_sync.settings import HfAuth, resolve_settings


def test_exit_codes_are_unique_and_terraform_compatible() -> None:
    codes = [c for c, _ in errors.EXIT_CODES.values()]
    assert len(codes) == len(set(codes))
    assert errors.exit_code("ok") == 0 and errors.exit_code("error") == 1 and errors.exit_code("changes") == 2


@pytest.mark.parametrize(
    "cls",
    [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.BatutaError)],
)
def test_every_error_class_maps_to_a_documented_code(cls: type[errors.BatutaError]) -> None:
    err = cls("boom") if cls is not errors.ManifestError else cls("boom", [errors.Diagnostic("x", "f", 1, 2)])
    assert err.exit_name in errors.EXIT_CODES
    assert err.render().startswith(f"Error [{err.code}]: boom")


def test_manifest_error_lists_every_diagnostic() -> None:
    err = errors.ManifestError(
        "hf.yaml has 2 problems", [errors.Diagnostic("bad", "hf.yaml", 3, 5, "models.x"), errors.Diagnostic("worse")]
    )
    assert "hf.yaml:3:5: models.x: bad" in err.render()
    assert "  - worse" in err.render()


def test_settings_precedence_flag_env_manifest_default(tmp_path: Path) -> None:
    env = {"HF_ENDPOINT": "http://env", "HF_HOME": str(tmp_path / "h")}
    man = {"endpoint": "http://manifest", "offline": True}
    assert resolve_settings(flags={"endpoint": "http://flag"}, env=env, manifest=man, home=tmp_path).endpoint == "http://flag"
    assert resolve_settings(env=env, manifest=man, home=tmp_path).endpoint == "http://env"
    assert resolve_settings(env={}, manifest=man, home=tmp_path).endpoint == "http://manifest"
    s = resolve_settings(env={}, home=tmp_path)
    assert s.endpoint == "https://huggingface.co"
    assert s.hf_home == tmp_path / ".cache" / "huggingface" and s.hub_cache == s.hf_home / "hub"
    assert resolve_settings(env={}, manifest=man, home=tmp_path).offline is True
    assert resolve_settings(env={"HF_HUB_OFFLINE": "1"}, home=tmp_path).offline is True
    assert resolve_settings(env={"HF_HUB_CACHE": "/x/c"}, home=tmp_path).hub_cache == Path("/x/c")


def test_token_sources_and_auth_kind(tmp_path: Path) -> None:
    hf_home = tmp_path / "hh"
    hf_home.mkdir()
    assert resolve_settings(env={"HF_HOME": str(hf_home)}, home=tmp_path).auth is HfAuth.NONE
    (tmp_path / ".huggingface").mkdir()
    (tmp_path / ".huggingface" / "token").write_text("legacy_token_123\n")
    s = resolve_settings(env={"HF_HOME": str(hf_home)}, home=tmp_path)
    assert (s.auth, s.token_value()) == (HfAuth.FILE_TOKEN, "legacy_token_123")
    (hf_home / "token").write_text("stored_token_456")
    assert resolve_settings(env={"HF_HOME": str(hf_home)}, home=tmp_path).token_value() == "stored_token_456"
    s = resolve_settings(env={"HF_HOME": str(hf_home), "HF_TOKEN": "env_token_789"}, home=tmp_path)
    assert (s.auth, s.token_value()) == (HfAuth.ENV_TOKEN, "env_token_789")
    s = resolve_settings(flags={"token": "flag_token_000"}, env={"HF_TOKEN": "env_token_789"}, home=tmp_path)
    assert (s.auth, s.token_value()) == (HfAuth.TOKEN, "flag_token_000")
    assert "flag_token_000" not in repr(s) and "flag_token_000" not in str(s.token)


def test_redaction_masks_registered_and_hf_shaped_tokens() -> None:
    register_secret("my-very-secret-value")
    assert redact("token=my-very-secret-value!") == "token=***!"
    assert "hf_" + "a" * 34 not in redact("x hf_" + "a" * 34)
    assert Secret("another-secret-1") == Secret("another-secret-1")
    assert errors.BatutaError("failed with my-very-secret-value").message == "failed with ***"


def test_cli_usage_error_is_64_not_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 64
    err = capsys.readouterr().err
    assert "Error [usage]" in err and "Traceback" not in err


def test_cli_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "batuta 0.1.0" in capsys.readouterr().out
    assert main([]) == 0


def test_python_dash_m_runs_the_cli() -> None:
    out = subprocess.run([sys.executable, "-m", "batuta_sync", "--help"], capture_output=True, text=True, check=True)
    assert "usage: batuta" in out.stdout


def test_command_map_matches_what_modules_register() -> None:
    """cli._ROOT_COMMANDS/_HF_COMMANDS (used to build only the needed parser) must stay true."""
    import importlib

    from batuta_sync import cli

    for name in cli._COMMAND_MODULES:
        root = cli._Parser(prog="x")
        sub = root.add_subparsers()
        hf = sub.add_parser("hf").add_subparsers()
        importlib.import_module(f"batuta_sync.cli.{name}").register(sub, hf)
        assert {c for c in sub.choices if c != "hf"} == {k for k, v in cli._ROOT_COMMANDS.items() if v == name}
        assert set(hf.choices) == {k for k, v in cli._HF_COMMANDS.items() if v == name}


@pytest.mark.parametrize(
    ("argv", "modules"),
    [
        (["hf", "tree"], ("query_cmd",)),
        (["--endpoint", "http://x", "hf", "pull", "model", "a/b"], ("pull_cmd",)),
        (["plan", "--detailed-exitcode"], ("core_cmd",)),
        (["--help"], None),
        (["hf"], None),
        (["nope"], None),
    ],
)
def test_only_the_needed_command_module_is_loaded(argv: list[str], modules: tuple[str, ...] | None) -> None:
    from batuta_sync import cli

    assert cli._modules_for(argv) == (modules or cli._COMMAND_MODULES)


@pytest.mark.parametrize(
    ("exc", "code", "needle"),
    [
        (KeyboardInterrupt(), 130, "Interrupted"),
        (OSError(28, "No space left on device", "/data/x.bin"), 16, "Error [disk-full]"),
        (PermissionError(13, "Permission denied", "/root/x"), 1, "Error [os-error]"),
        (ValueError("boom hf_" + "b" * 34), 1, "Internal error: ValueError"),
        (errors.NotFoundError("no such repo"), 8, "Error [repo-not-found]: no such repo"),
    ],
)
def test_every_failure_is_one_paragraph_with_its_exit_code(
    exc: BaseException, code: int, needle: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from batuta_sync import cli

    def boom(argv: object) -> int:
        raise exc

    monkeypatch.setattr(cli, "_run", boom)
    assert main(["hf", "tree"]) == code
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert "b" * 34 not in err  # token-shaped strings are redacted even in bug reports
    if code != 130:
        assert main(["hf", "tree", "--debug"]) == code
        assert "Traceback" in capsys.readouterr().err


def test_broken_pipe_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from batuta_sync import cli

    def boom(argv: object) -> int:
        raise BrokenPipeError

    monkeypatch.setattr(cli, "_run", boom)
    monkeypatch.setattr(sys, "stdout", sys.stdout)
    assert main(["hf", "tree"]) == 0


def test_output_helpers(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from batuta_sync.cli import _common

    _common.print_table(["a", "b"], [[1, None], ["x", "y"]])
    assert capsys.readouterr().out == "a\tb\n1\t\nx\ty\n"  # piped: plain columns
    monkeypatch.setattr(_common, "is_tty", lambda stream=None: True)
    _common.print_table(["col"], [["val"]], title="T")
    assert "val" in capsys.readouterr().out  # a rich table on a terminal
    register_secret("sekrit-token-value")
    _common.emit_json({"b": "sekrit-token-value", "a": 1})
    out = capsys.readouterr().out
    assert out.index('"a"') < out.index('"b"') and "sekrit" not in out
    _common.info(argparse.Namespace(quiet=True), "hidden")
    _common.info(argparse.Namespace(quiet=False), "shown")
    assert capsys.readouterr().err == "shown\n"
    monkeypatch.undo()
    assert _common.is_tty(object()) is False


def test_settings_from_args_uses_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from batuta_sync.cli import _common

    monkeypatch.setenv("HF_ENDPOINT", "http://env")
    s = _common.settings_from_args(argparse.Namespace(endpoint="http://flag", token="tok_flag_123", offline=True))
    assert (s.endpoint, s.offline, s.token_value()) == ("http://flag", True, "tok_flag_123")
    assert _common.settings_from_args(argparse.Namespace()).endpoint == "http://env"
