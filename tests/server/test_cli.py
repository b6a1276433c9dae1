"""`batuta hub serve`: flags, config file, clean Ctrl-C/SIGTERM exit, tokens never printed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx  # the one HTTP client library (huggingface_hub installs it)
import pytest
from huggingface_hub import HfApi

from batuta_sync.cli import main
from tests.server._serve import free_port, serve_and_probe

TOKEN = "tok-alice-very-secret-1"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_subprocess_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batuta_sync",
            "hub",
            "serve",
            "--root",
            str(tmp_path / "r"),
            "--user",
            f"alice:{TOKEN}:write",
            "--user",
            "bob:tok-bob-readonly-2:read",
            "--org",
            "acme:alice,bob",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = "".join(proc.stdout.readline() for _ in range(3))
        if not first.startswith("batuta hub serving "):
            proc.kill()
            pytest.fail(f"server did not start: {first!r} {proc.communicate()[1]}")
        url = first.splitlines()[0].rsplit(" at ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:")
        me = HfApi(endpoint=url, token=TOKEN).whoami()
        assert me["name"] == "alice" and [o["name"] for o in me["orgs"]] == ["acme"]
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    text = first + out + err
    assert "Traceback" not in text
    assert TOKEN not in text and "tok-bob" not in text
    assert f"export HF_ENDPOINT={url}" in text and "alice (write)" in text


def test_serve_in_process_sigint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    cfg = tmp_path / "hub.yaml"
    cfg.write_text("users:\n  - {name: carol, token_env: CAROL_TOKEN, role: write}\norgs: {}\n")
    os.environ["CAROL_TOKEN"] = "tok-carol-from-env-3"
    seen: dict[str, object] = {}

    def probe(base: str) -> None:
        r = httpx.get(f"{base}/api/whoami-v2", headers={"authorization": "Bearer tok-carol-from-env-3"})
        seen["name"] = r.json()["name"]
        seen["control"] = httpx.get(f"{base}/_batuta/log").status_code

    try:
        rc = serve_and_probe(
            tmp_path / "r", port, ["--config", str(cfg), "--no-control-api", "--no-lfs-redirect"], probe
        )
    finally:
        os.environ.pop("CAROL_TOKEN", None)
    assert rc == 0 and seen["name"] == "carol" and seen["control"] == 404
    out = capsys.readouterr()
    assert f"http://127.0.0.1:{port}" in out.out and "tok-carol" not in out.out + out.err


@pytest.mark.parametrize(
    "argv",
    [
        ["--user", "nocolon"],
        ["--user", "a:b:admin"],
        ["--org", "acme"],
        ["--user", "a:tok-aaaaaaaa", "--org", "acme:zed"],
        ["--port", "70000"],
    ],
)
def test_bad_flags_are_usage_errors(
    tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hub", "serve", "--root", str(tmp_path / "r"), *argv]) == 64
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("bad.json", "{not json"),
        ("bad.yaml", "users: [\n"),
        ("list.yaml", "- a\n"),
        ("nouser.yaml", "users:\n  - {token: x}\n"),
        ("notoken.yaml", "users:\n  - {name: x}\n"),
        ("role.yaml", "users:\n  - {name: x, token: tok-xxxxxxxx, role: admin}\n"),
        ("orgs.yaml", "orgs: {acme: alice}\n"),
    ],
)
def test_bad_config_is_config_error(tmp_path: Path, name: str, text: str) -> None:
    cfg = tmp_path / name
    cfg.write_text(text)
    assert main(["hub", "serve", "--root", str(tmp_path / "r"), "--config", str(cfg)]) == 3
    assert (
        main(["hub", "serve", "--root", str(tmp_path / "r"), "--config", str(tmp_path / "missing.yaml")]) == 3
    )


def test_port_in_use_and_root_is_file(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert main(["hub", "serve", "--root", str(tmp_path / "r"), "--port", str(port)]) == 64
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["hub", "serve", "--root", str(f)]) == 64


def test_users_file_admin_token_file_and_control_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    users = tmp_path / "users"
    users.write_text(f"# name:token[:role]\n\nalice:{TOKEN}:write\n  bob:tok-bob-readonly-2:read  \n")
    users.chmod(0o600)
    admin = tmp_path / "admin"
    admin.write_text("admin-secret-token-42\n")
    admin.chmod(0o644)
    seen: dict[str, object] = {}

    def probe(base: str) -> None:
        me = httpx.get(f"{base}/api/whoami-v2", headers={"authorization": "Bearer tok-bob-readonly-2"})
        seen["bob"] = me.json()["auth"]["accessToken"]["role"]
        seen["anon"] = httpx.get(f"{base}/_batuta/counters").status_code
        seen["admin"] = httpx.get(
            f"{base}/_batuta/counters", headers={"authorization": "Bearer admin-secret-token-42"}
        ).status_code

    extra = ["--users-file", str(users), "--control-api", "--admin-token-file", str(admin)]
    assert serve_and_probe(tmp_path / "r", free_port(), extra, probe) == 0
    assert seen == {"bob": "read", "anon": 401, "admin": 200}
    out = capsys.readouterr()
    text = out.out + out.err
    assert "control API" in out.out and "warning: --user" not in out.err
    assert f"the admin token file {admin} is readable by other users (mode 644)" in out.err
    assert "users file" not in out.err  # mode 600: no warning
    assert TOKEN not in text and "admin-secret" not in text
    # the admin token may come from the environment instead
    monkeypatch.setenv("BATUTA_HUB_ADMIN_TOKEN", "admin-from-env-0042")
    seen.clear()

    def probe_env(base: str) -> None:
        seen["admin"] = httpx.get(
            f"{base}/_batuta/log", headers={"authorization": "Bearer admin-from-env-0042"}
        ).status_code

    extra = ["--users-file", str(users), "--control-api"]
    assert serve_and_probe(tmp_path / "r", free_port(), extra, probe_env) == 0
    assert seen == {"admin": 200}


def test_user_flag_warns_that_argv_is_visible(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seen: dict[str, str] = {}

    def probe(base: str) -> None:
        seen["name"] = httpx.get(
            f"{base}/api/whoami-v2", headers={"authorization": f"Bearer {TOKEN}"}
        ).json()["name"]

    assert serve_and_probe(tmp_path / "r", free_port(), ["--user", f"alice:{TOKEN}"], probe) == 0
    err = capsys.readouterr().err
    assert seen == {"name": "alice"} and "warning: --user" in err and "--users-file" in err
    assert TOKEN not in err


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["--host", "0.0.0.0"], 64, "open mode"),
        (["--host", "192.0.2.1", "--port", "1"], 64, "--insecure-open-write"),
        (["--control-api", "--users-file", "{users}"], 64, "admin token"),
        (["--public-url", "ftp://x"], 64, "public URL"),
        (["--public-url", "http://u:p@x"], 64, "public URL"),
        (["--users-file", "{missing}"], 3, "Cannot read the users file"),
        (["--users-file", "{badusers}"], 64, "line 2"),
        (["--users-file", "{users}", "--control-api", "--admin-token-file", "{empty}"], 3, "is empty"),
    ],
)
def test_serve_refusals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, needle: str
) -> None:
    (tmp_path / "users").write_text("carol:tok-carol-cccccccc\n")
    (tmp_path / "badusers").write_text("carol:tok-carol-cccccccc\nno-token-here\n")
    (tmp_path / "empty").write_text("\n")
    paths = {k: str(tmp_path / k) for k in ("users", "badusers", "empty", "missing")}
    argv = [a.format(**paths) for a in argv]
    assert main(["hub", "serve", "--root", str(tmp_path / "r"), *argv]) == code
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and "tok-carol" not in err


def test_banner_warns_about_non_loopback_binds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from batuta_sync.cli.hub_cmd import print_banner
    from batuta_sync.server import HubServer, UserSpec

    print_banner(
        HubServer(tmp_path / "a", host="0.0.0.0", users=[UserSpec("a", "tok-aaaaaaaa")])
    )  # never started
    err = capsys.readouterr().err
    assert "reachable beyond this machine" in err and "everyone" not in err
    print_banner(HubServer(tmp_path / "b", host="0.0.0.0", insecure_open_write=True))
    assert "write access for everyone (--insecure-open-write)" in capsys.readouterr().err
    print_banner(HubServer(tmp_path / "c", public_url="https://hub.example"))
    out = capsys.readouterr()
    assert out.err == "" and "export HF_ENDPOINT=https://hub.example\n" in out.out
    assert "Xet and classic LFS" in out.out and "HF_HUB_DISABLE_XET=1" not in out.out  # the defaults just work
    print_banner(HubServer(tmp_path / "d", xet=False))
    assert "classic LFS only (clients need HF_HUB_DISABLE_XET=1)" in capsys.readouterr().out
