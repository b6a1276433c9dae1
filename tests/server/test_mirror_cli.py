"""``batuta hub serve --upstream …`` and the real clients (``hf`` CLI, ``batuta hf pull``) through it."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from batuta_sync.cli import main
from batuta_sync.server import HubServer, UserSpec
from batuta_sync.server.mirror import MirrorConfig

from ._serve import free_port, serve_and_probe

UP_TOKEN = "tok-upstream-secret-1234"


def safetensors_bytes(n: int) -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}}).encode()
    return struct.pack("<Q", len(header)) + header + b"\0" * (4 * n)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[HubServer]:
    srv = HubServer(tmp_path / "up", users=[UserSpec("bot", UP_TOKEN, "read")]).start()
    srv.store.commit("acme/open", {"config.json": b'{"open": 1}'})
    srv.store.commit("bot/secret", {"config.json": b'{"secret": 1}'})
    srv.store.update_settings("bot/secret", private=True)
    try:
        yield srv
    finally:
        srv.stop()


def test_serve_with_upstream_flags(tmp_path: Path, up: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    tok = tmp_path / "up.tok"
    tok.write_text(UP_TOKEN + "\n")
    tok.chmod(0o600)
    users = tmp_path / "users.txt"
    users.write_text("alice:tok-m-alice:read\nbob:tok-m-bob:read\n")
    users.chmod(0o600)
    seen: dict[str, int] = {}

    def probe(base: str) -> None:
        seen["open"] = httpx.get(f"{base}/acme/open/resolve/main/config.json").status_code
        for who in ("alice", "bob"):
            h = {"Authorization": f"Bearer tok-m-{who}"}
            seen[who] = httpx.get(f"{base}/bot/secret/resolve/main/config.json", headers=h).status_code

    argv = [
        "--upstream", up.url, "--upstream-token-file", str(tok), "--users-file", str(users),
        "--upstream-private", "bot/*=alice", "--upstream-ttl", "60", "--cache-size", "1G",
    ]  # fmt: skip
    rc = serve_and_probe(tmp_path / "m", free_port(), argv, probe)
    assert rc == 0 and seen == {"open": 200, "alice": 200, "bob": 404}
    out = capsys.readouterr()
    assert f"mirror of {up.url} (branches re-resolved after 60 s)" in out.out
    assert UP_TOKEN not in out.out + out.err


def test_serve_offline(tmp_path: Path, up: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    m = HubServer(tmp_path / "m", upstream=MirrorConfig(up.url)).start()
    try:
        httpx.get(f"{m.url}/acme/open/resolve/main/config.json").raise_for_status()
    finally:
        m.stop()
    seen: dict[str, int] = {}

    def probe(base: str) -> None:
        seen["cached"] = httpx.get(f"{base}/acme/open/resolve/main/config.json").status_code
        seen["other"] = httpx.get(f"{base}/api/models/acme/other").status_code

    up.log.clear()
    rc = serve_and_probe(tmp_path / "m", free_port(), ["--upstream", up.url, "--offline"], probe)
    assert rc == 0 and seen == {"cached": 200, "other": 404} and not up.log.entries
    assert "offline: cached content only" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["--cache-size", "1G"],
        ["--upstream-private", "a/*=b"],
        ["--upstream", "ftp://x"],
        ["--upstream", "http://127.0.0.1:1", "--cache-size", "lots"],
        ["--upstream", "http://127.0.0.1:1", "--upstream-private", "nope"],
        ["--upstream", "http://127.0.0.1:1", "--upstream-ttl", "-1"],
    ],
)
def test_bad_mirror_flags_are_usage_errors(
    tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hub", "serve", "--root", str(tmp_path / "r"), *argv]) == 64
    assert "Traceback" not in capsys.readouterr().err


def test_empty_upstream_token_file_is_a_config_error(tmp_path: Path) -> None:
    tok = tmp_path / "empty.tok"
    tok.write_text("\n")
    argv = ["hub", "serve", "--root", str(tmp_path / "r"), "--upstream", "http://127.0.0.1:1"]
    assert main([*argv, "--upstream-token-file", str(tok)]) == 3


def test_hf_cli_and_batuta_pull_through_the_mirror(
    tmp_path: Path, up: HubServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = safetensors_bytes(64)
    up.store.commit("acme/open", {"model.safetensors": weights, "README.md": b"# open\n"})
    m = HubServer(tmp_path / "m", upstream=MirrorConfig(up.url)).start()
    try:
        env = {
            **os.environ,
            "HF_ENDPOINT": m.url,
            "HF_HUB_CACHE": str(tmp_path / "hfcache"),
            "HF_HUB_DISABLE_XET": "1",
        }
        env.pop("HF_TOKEN", None)
        hf = Path(sys.executable).with_name("hf")
        cmd = [
            str(hf) if hf.exists() else "hf",
            "download",
            "acme/open",
            "config.json",
            "--local-dir",
            str(tmp_path / "d"),
        ]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "d" / "config.json").read_bytes() == b'{"open": 1}'
        monkeypatch.setenv("HF_ENDPOINT", m.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "bcache"))
        monkeypatch.delenv("HF_TOKEN", raising=False)
        assert main(["hf", "pull", "model", "acme/open", "--output", str(tmp_path / "o"), "--copy"]) == 0
        assert (tmp_path / "o" / "model.safetensors").read_bytes() == weights
        capsys.readouterr()
    finally:
        m.stop()
    assert sum(1 for e in up.log.entries if e.path.startswith("/cdn-lfs/")) == 1
