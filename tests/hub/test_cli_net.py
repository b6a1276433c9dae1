"""Network options through the CLI (issue 14 "fail fast", issue 13 point 8): a refused endpoint
fails in a few quick attempts, ``--no-wait`` / ``--timeout`` / ``BATUTA_TIMEOUT`` shorten every
wait, ``--token`` warns, ``--token-file`` and empty tokens, userinfo never printed.

Waits are counted through ``time.sleep`` (what the CLI's countdown sleep calls), not timed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from batuta_sync.server import HubServer
from tests._builders import run_cli as run
from tests.hostile import transport as t
from tests.hub.conftest import ALICE

ARGV_WARNING = "visible to other users"


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    rec: list[float] = []
    monkeypatch.setattr(time, "sleep", rec.append)
    return rec


@pytest.fixture
def closed_endpoint(monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"http://127.0.0.1:{t.closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", url)
    return url


def test_refused_endpoint_fails_with_exit_9_after_three_quick_attempts(
    closed_endpoint: str, sleeps: list[float], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "hf", "info", "model", "x/y")
    assert code == 9 and out == ""
    assert "after 3 attempts: ConnectError" in err and "Traceback" not in err
    assert sleeps == [0.25, 0.5]  # not 1, 2, 4, 8, 16 (31 s)


def test_no_wait_makes_one_attempt(closed_endpoint: str, sleeps: list[float], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "hf", "info", "model", "x/y", "--no-wait")
    assert code == 9 and "1 attempt (--no-wait)" in err and sleeps == []


@pytest.mark.parametrize("how", ["flag-before", "flag-after", "env"])
def test_timeout_bounds_a_silent_server(
    how: str, sleeps: list[float], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with t.Peer(t.silent) as peer:
        monkeypatch.setenv("HF_ENDPOINT", peer.url)
        argv = ["hf", "info", "model", "x/y"]
        if how == "flag-before":
            argv = ["--timeout", "0.3", *argv]
        elif how == "flag-after":
            argv = [*argv, "--timeout", "0.3"]
        else:
            monkeypatch.setenv("BATUTA_TIMEOUT", "0.3")
        code, _, err = run(capsys, *argv)
    assert code == 9 and "did not answer GET /api/models/x/y within 0.3 s (2 attempts)" in err
    assert sleeps == [0.3] and len(peer.requests) == 2


def test_invalid_timeouts_are_refused(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run(capsys, "--timeout", "soon", "hf", "info", "model", "x/y")
    assert code == 64 and "--timeout='soon' is not a valid timeout" in err
    monkeypatch.setenv("BATUTA_TIMEOUT", "-1")
    code, _, err = run(capsys, "hf", "info", "model", "x/y")
    assert code == 3 and "BATUTA_TIMEOUT='-1' is not a valid timeout" in err


def test_endpoint_password_is_never_printed(sleeps: list[float], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    port = t.closed_port()
    monkeypatch.setenv("HF_ENDPOINT", f"http://robot:S3cretPassw0rd@127.0.0.1:{port}")
    code, out, err = run(capsys, "hf", "info", "model", "x/y")
    assert code == 9 and "S3cretPassw0rd" not in out + err and "robot" not in out + err
    assert f"http://***@127.0.0.1:{port}" in err


# --------------------------------------------------------------------------- tokens


def test_token_on_the_command_line_warns_and_still_works(auth_hub: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "hf", "whoami", "--token", ALICE)
    assert code == 0 and out.startswith("alice") and ALICE not in out + err
    assert err.count(ARGV_WARNING) == 1 and "--token-file" in err


def test_token_file(auth_hub: HubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "tok"
    f.write_text(ALICE + "\n")
    code, out, err = run(capsys, "hf", "whoami", "--token-file", str(f), "--json")
    assert code == 0 and ARGV_WARNING not in err and ALICE not in out + err
    assert json.loads(out)["token_source"] == "token-file"
    f.write_text("hf_wrongWRONGwrongWRONGwrongWRONGwrong99")
    code, _, err = run(capsys, "hf", "whoami", "--token-file", str(f))
    assert code == 7 and "--token-file" in err
    code, _, err = run(capsys, "hf", "whoami", "--token-file", str(tmp_path / "missing"))
    assert code == 3 and "Cannot read the token file" in err


def test_empty_token_means_anonymous(
    auth_hub: HubServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.setenv("HF_TOKEN", ALICE)
    code, out, _ = run(capsys, "hf", "whoami")
    assert code == 0 and out.startswith("alice")
    code, _, err = run(capsys, "hf", "whoami", "--token", "")  # beats HF_TOKEN
    assert code == 7 and "Not logged in" in err and ARGV_WARNING not in err
    (Path(os.environ["HF_HOME"]) / "token").write_text(ALICE)
    monkeypatch.setenv("HF_TOKEN", "")  # set but empty: beats the stored login
    code, _, err = run(capsys, "hf", "whoami")
    assert code == 7 and "Not logged in" in err
    monkeypatch.delenv("HF_TOKEN")
    code, out, _ = run(capsys, "hf", "whoami")
    assert code == 0 and out.startswith("alice")


def test_subcommand_options_sharing_a_prefix_with_global_ones_still_parse() -> None:
    """`convert --to` is a prefix of the global --token and --token-file: the root parser must not
    call it ambiguous (it did once --token-file existed)."""
    from batuta_sync.cli import build_parser

    argv = ["convert", "in.safetensors", "out.gguf", "--to", "gguf", "--token-file", "f"]
    args = build_parser(argv).parse_args(argv)
    assert args.to == "gguf" and args.token_file == "f"
