"""`batuta hub serve`: flags, config file, clean Ctrl-C/SIGTERM exit, tokens never printed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
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
        rc = serve_and_probe(tmp_path / "r", port, ["--config", str(cfg), "--no-control-api", "--no-lfs-redirect"], probe)
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
