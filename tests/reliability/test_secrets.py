"""Secrets end to end: a token given through ``batuta hf login`` and through ``HF_TOKEN`` never
appears in any output, log, lockfile, plan file, cache file or exception text, for every command
(success and failure paths, ``--debug`` included) against an authenticated local Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from batuta_sync.server import HubServer, UserSpec
from tests.reliability._harness import (
    LEAKS,
    cache_env,
    note_output,
    publisher_wired,
    run_cli,
    seed_hub,
    watch_token,
    write_project,
)
from tests.reliability.conftest import files_containing

TOKEN = "hf_" + "AliceWrite" + "Tok3nZz91Qq47Rr28Ss65Uu"
WRONG = "hf_" + "WrongTok3n" + "Zz91Qq47Rr28Ss65UuXx13"


def secrets_scenario(work: Path) -> dict[str, Any]:
    """Run every command with a known token (login, then env) and scan everything they leave."""
    watch_token(TOKEN)
    watch_token(WRONG)
    server = HubServer(root=work / "hub", users=[UserSpec("alice", TOKEN, "write")], orgs={"rel": ["alice"]}).start()
    commands = 0
    codes: dict[str, int] = {}
    try:
        seed_hub(server, work, extra_files=1, extra_size=64 << 10)
        proj = work / "proj"
        manifest = write_project(proj, server.url, push=publisher_wired(), push_repo="secret-pushed")
        push_dir = work / "to-push"
        push_dir.mkdir()
        (push_dir / "data.csv").write_text("a,b\n1,2\n")
        (push_dir / "README.md").write_text("---\nlicense: mit\n---\n# data\n")

        def scenario(label: str, env: dict[str, str | None]) -> None:
            nonlocal commands
            m = str(manifest)
            runs: list[list[str]] = [
                ["hf", "whoami"],
                ["hf", "info", "model", "rel/tiny-llama"],
                ["hf", "info", "model", "rel/does-not-exist"],
                ["hf", "search", "tiny"],
                ["hf", "pull", "model", "rel/tiny-llama"],
                ["hf", "pull", "files", "rel/tiny-llama", "config.json", "--json"],
                ["validate", "-f", m],
                ["plan", "-f", m, "-o", str(proj / "plan.json")],
                ["plan", "-f", m, "--json"],
                ["show", str(proj / "plan.json")],
                ["apply", "--auto-approve", "-f", m, str(proj / "plan.json")],
                ["apply", "--auto-approve", "-f", m, str(proj / "plan.json")],  # single-use: refused
                ["plan", "-f", m, "--detailed-exitcode", "--format", "markdown"],
                ["lock", "-f", m],
                ["status", "-f", m, "--json"],
                ["graph", "-f", m],
                ["cache", "ls"],
                ["cache", "stats"],
                ["hf", "push", "dataset", str(push_dir), "--repo", "rel/secret-data", "--dry-run"],
                ["hf", "push", "dataset", str(push_dir), "--repo", "rel/secret-data"],
                ["hf", "info", "model", "rel/does-not-exist", "--debug"],
                ["hf", "whoami", "--token", WRONG],
                ["hf", "whoami", "--token", WRONG, "--debug"],
                ["plan", "-f", str(proj / "missing.yaml")],
            ]
            for argv in runs:
                res = run_cli(argv, env, proj)
                commands += 1
                codes[f"{label}: {' '.join(a for a in argv if '/' not in a or a.startswith('rel/'))}"] = res.code
                note_output(repr(res.error), f"{label}: exception of {argv}")

        home = work / "login-home"
        env = cache_env(home, server.url, token=None)
        res = run_cli(["hf", "login", "--token", TOKEN], env, proj)
        commands += 1
        if res.code != 0:
            raise AssertionError(f"login failed: {res.err}")
        token_file = home / "hf-home" / "token"
        stored = token_file.exists() and TOKEN in token_file.read_text()
        scenario("login", env)
        run_cli(["hf", "logout"], env, proj)
        commands += 1
        scenario("env", cache_env(work / "env-home", server.url, token=TOKEN))
        log_json = str(server.log.as_json())
        note_output(log_json, "server request log")
        leaked = [p for t in (TOKEN, WRONG) for p in files_containing(work, t.encode())]
        return {"commands": commands, "codes": codes, "login_stored_token": stored, "leaks": list(LEAKS),
                "files_with_token": leaked}
    finally:
        server.stop()


def test_token_never_appears_anywhere(tmp_path: Path) -> None:
    fig = secrets_scenario(tmp_path)
    LEAKS.clear()  # reported through fig; the autouse check then re-checks the canary
    assert fig["commands"] >= 40
    assert fig["login_stored_token"]  # the scan would see it: the token file is the one allowed place
    codes = fig["codes"]
    for label in ("login", "env"):  # the token really worked (authenticated Hub)
        assert codes[f"{label}: hf whoami"] == 0, codes
        assert codes[f"{label}: hf pull model rel/tiny-llama"] == 0, codes
        assert codes[f"{label}: hf info model rel/does-not-exist"] == 8, codes
        assert codes[f"{label}: hf whoami --token {WRONG}"] == 7, codes
    assert fig["leaks"] == [], fig["leaks"]
    assert fig["files_with_token"] == [], fig["files_with_token"]


LEAKY_TESTS = '''
import os


def test_prints(tmp_path):
    print(os.environ["HF_TOKEN"])


def test_writes_a_lockfile(tmp_path):
    (tmp_path / "hf.lock").write_text(os.environ["HF_TOKEN"])


def test_fails_with_it(tmp_path):
    assert os.environ["HF_TOKEN"] == "x"


def test_stores_it_where_login_does(tmp_path):
    (tmp_path / "token").write_text(os.environ["HF_TOKEN"])
'''


def test_suite_wide_canary_plugin_finds_every_kind_of_leak(tmp_path: Path) -> None:
    """The plugin behind the report's suite-wide check (``secrets_suite``) sees a token printed, written
    to a file or shown in a failure, and nothing else."""
    import json
    import subprocess
    import sys

    from tests.reliability._harness import REPO_ROOT, subprocess_env
    from tests.reliability.canary_plugin import CANARY as SUITE_CANARY

    (tmp_path / "leaky").mkdir()
    (tmp_path / "leaky" / "test_leaky.py").write_text(LEAKY_TESTS)
    out = tmp_path / "canary.jsonl"
    env = subprocess_env({"BATUTA_CANARY_REPORT": str(out)})
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.reliability.canary_plugin",
         "--rootdir", str(REPO_ROOT), "--basetemp", str(tmp_path / "bt"), str(tmp_path / "leaky")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    rows = {r["test"].rsplit("::", 1)[1]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["test_prints"]["leaks"] == ["call: Captured stdout call"]
    assert [x.rsplit("/", 1)[1] for x in rows["test_writes_a_lockfile"]["leaks"]] == ["hf.lock"]
    assert rows["test_fails_with_it"]["leaks"] == ["call: failure text"]
    assert rows["test_fails_with_it"]["outcome"] == "failed"
    assert rows["test_stores_it_where_login_does"]["leaks"] == []
    assert SUITE_CANARY not in p.stdout + p.stderr  # the failure text is withheld
