"""#13.3: the endpoint in hf.yaml never receives the token unless the user trusted it.

Two local Hubs: the "trusted" one (our HubServer with a user whose token the CI job holds,
and a private repo) and an "attacker" one (a raw HTTP server that records every request's
headers).  A pull request that points ``defaults.endpoint`` at the attacker must not make
``validate``/``plan``/``apply``/``status``/``lock`` send it the token.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.errors import exit_code
from batuta_sync.settings import (
    UntrustedEndpointError,
    endpoint_display,
    endpoint_key,
    endpoint_trusted,
    resolve_settings,
)
from tests._builders import run_cli as run

TOKEN = "hf_ci" + "x" * 34  # the CI secret
FILES = {"config.json": b'{"a": 1}', "notes.txt": b"hello"}


class Attacker:
    """Answers every request with 404 JSON and records (method, path, headers)."""

    def __init__(self) -> None:
        seen: list[tuple[str, str, dict[str, str]]] = []
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                body = b'{"error": "Repository not found"}'
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Error-Code", "RepoNotFound")
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_HEAD = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

    @property
    def authorized(self) -> list[str]:
        return [p for _, p, h in self.seen if "authorization" in h or TOKEN in json.dumps(h)]


@pytest.fixture
def attacker() -> Iterator[Attacker]:
    a = Attacker()
    try:
        yield a
    finally:
        a.stop()


@pytest.fixture
def trusted(tmp_path: Path) -> Iterator[Any]:
    from batuta_sync.server import HubServer
    from batuta_sync.server.state import UserSpec

    srv = HubServer(root=tmp_path / "trusted-root", users=[UserSpec("ci", TOKEN, "write")])
    srv.start()
    try:
        srv.store.create_repo("ci/private", private=True)
        srv.store.commit("ci/private", FILES)
        yield srv
    finally:
        srv.stop()


def _ws(tmp_path: Path, endpoint: str) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    (ws / "hf.yaml").write_text(
        f"version: 1\ndefaults:\n  endpoint: {endpoint}\nmodels:\n  m: {{repo: ci/private, output: ./m}}\n"
    )
    return ws


def test_an_untrusted_hf_yaml_endpoint_never_sees_the_token(
    tmp_path: Path, attacker: Attacker, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = _ws(tmp_path, attacker.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    f = str(ws / "hf.yaml")
    assert run(capsys, "validate", "-f", f)[0] == 0  # validate never talks to the Hub
    for argv in (["plan", "-f", f], ["plan", "-f", f, "-o", str(ws / "p.json")], ["apply", "-f", f, "--auto-approve"],
                 ["status", "-f", f], ["lock", "-f", f]):
        code, out, err = run(capsys, *argv)
        assert code == exit_code("untrusted-endpoint") == 22, (argv, err)
        assert "--trust-endpoint" in err and attacker.url in err and TOKEN not in out + err
    assert attacker.seen == []  # refused before the first request
    assert not (ws / "m").exists() and not (ws / "hf.lock").exists() and not (ws / "p.json").exists()


def test_a_stored_login_token_is_protected_too(
    tmp_path: Path, attacker: Attacker, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    ws = _ws(tmp_path, attacker.url)
    (Path(os.environ["HF_HOME"]) / "token").write_text(TOKEN)
    code, _, err = run(capsys, "plan", "-f", str(ws / "hf.yaml"))
    assert code == 22 and "(file)" in err
    assert attacker.seen == []


def test_without_a_token_the_hf_yaml_endpoint_is_used_anonymously(
    tmp_path: Path, attacker: Attacker, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = _ws(tmp_path, attacker.url)
    code, _, err = run(capsys, "plan", "-f", str(ws / "hf.yaml"))
    assert code == exit_code("not-found"), err  # the attacker has nothing, but it was asked
    assert attacker.seen and attacker.authorized == []


def test_the_endpoint_the_user_chose_wins_and_gets_the_token(
    tmp_path: Path, attacker: Attacker, trusted: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """HF_ENDPOINT (the CI's own setting) beats the PR's hf.yaml endpoint: the private repo is
    pulled from the trusted Hub with the token, the attacker hears nothing."""
    ws = _ws(tmp_path, attacker.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", trusted.url)
    f = str(ws / "hf.yaml")
    code, out, err = run(capsys, "plan", "-f", f, "-o", str(ws / "p.json"))
    assert code == 0, err
    assert f"Hub endpoint: {trusted.url}" in out and attacker.url not in out
    assert run(capsys, "apply", "-f", f, str(ws / "p.json"), "--auto-approve")[0] == 0
    assert (ws / "m" / "notes.txt").read_bytes() == b"hello"
    assert attacker.seen == []


def test_trust_endpoint_flag_and_env_let_the_token_go_to_the_hf_yaml_endpoint(
    tmp_path: Path, trusted: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = _ws(tmp_path, trusted.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    f = str(ws / "hf.yaml")
    assert run(capsys, "plan", "-f", f)[0] == 22
    # the flag: an equivalent spelling of the URL is the same endpoint
    code, out, err = run(capsys, "plan", "-f", f, "--trust-endpoint", trusted.url.upper().replace("HTTP://", "http://") + "/")
    assert code == 0, err
    assert "↓ pull  models.m" in out and f"Hub endpoint: {trusted.url}" in out
    monkeypatch.setenv("BATUTA_TRUSTED_ENDPOINTS", f"https://other.example, {trusted.url}")
    code, out, err = run(capsys, "apply", "-f", f, "--auto-approve")
    assert code == 0, err
    assert (ws / "m" / "config.json").exists()


def test_every_plan_rendering_shows_the_endpoint_and_a_changed_endpoint_is_refused_at_apply(
    tmp_path: Path, trusted: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from batuta_sync.server import HubServer
    from batuta_sync.server.state import UserSpec

    ws = _ws(tmp_path, trusted.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("BATUTA_TRUSTED_ENDPOINTS", trusted.url)
    f = str(ws / "hf.yaml")
    code, out, _ = run(capsys, "plan", "-f", f)
    assert code == 0 and f"Hub endpoint: {trusted.url}  (all 1 resource of this plan)" in out
    code, md, _ = run(capsys, "plan", "-f", f, "--format", "markdown")
    assert "| not locked |" in md and f"`{trusted.url}` |" in md and f"Hub endpoint: {trusted.url}" in md
    code, js, _ = run(capsys, "plan", "-f", f, "--json", "-o", str(ws / "p.json"))
    data = json.loads(js)
    assert data["endpoint"] == trusted.url and data["resources"] == {"models.m": {"endpoint": trusted.url}}
    # the same plan applied against another Hub (same hf.yaml, HF_ENDPOINT moved) is refused
    other = HubServer(root=tmp_path / "other-root", users=[UserSpec("ci", TOKEN, "write")])
    other.start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", other.url)
        code, _, err = run(capsys, "apply", "-f", f, str(ws / "p.json"), "--auto-approve")
        assert code == exit_code("stale-plan") and other.url in err and trusted.url in err
        assert other.log.entries == []
    finally:
        other.stop()
    assert not (ws / "m").exists()


def test_settings_rules(tmp_path: Path) -> None:
    env = {"HF_TOKEN": TOKEN}
    man = {"endpoint": "http://evil.example:8080"}
    with pytest.raises(UntrustedEndpointError) as info:
        resolve_settings(env=env, manifest=man, home=tmp_path)
    assert info.value.exit_code == 22 and TOKEN not in info.value.render()
    # offline: nothing is sent, so nothing to refuse; no token: anonymous
    assert resolve_settings(env={**env, "HF_HUB_OFFLINE": "1"}, manifest=man, home=tmp_path).offline
    anon = resolve_settings(env={}, manifest=man, home=tmp_path)
    assert anon.token is None and anon.endpoint_source == "hf.yaml" and not endpoint_trusted(anon)
    # hf.yaml naming the default Hub is fine; flag and env endpoints are the user's choice
    assert resolve_settings(env=env, manifest={"endpoint": "https://HuggingFace.co/"}, home=tmp_path).token
    assert resolve_settings(flags={"endpoint": "http://x:1"}, env=env, manifest=man, home=tmp_path).endpoint_source == "flag"
    assert resolve_settings(env={**env, "HF_ENDPOINT": "http://y:1"}, manifest=man, home=tmp_path).endpoint == "http://y:1"
    ok = resolve_settings(flags={"trust_endpoint": ["HTTP://EVIL.example:8080/"]}, env=env, manifest=man, home=tmp_path)
    assert ok.token is not None and endpoint_trusted(ok)
    # another port, scheme or path is another endpoint
    for near in ("http://evil.example:8081", "https://evil.example:8080", "http://evil.example:8080/x"):
        with pytest.raises(UntrustedEndpointError):
            resolve_settings(flags={"trust_endpoint": [near]}, env=env, manifest=man, home=tmp_path)
    assert endpoint_key("https://a.b") == endpoint_key("https://user:pw@A.b:443/") == "https://a.b:443"
    assert endpoint_key("http://a:bad") == "http://a:80"
    assert endpoint_display("https://user:secret@host.example/x") == "https://host.example/x"
    with pytest.raises(UntrustedEndpointError) as info:
        resolve_settings(env=env, manifest={"endpoint": "http://u:pw123456@evil.example"}, home=tmp_path)
    assert "pw123456" not in info.value.render()


def test_hf_lock_records_the_endpoint_and_a_changed_one_is_a_visible_plan_change(
    tmp_path: Path, trusted: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from batuta_sync.core.lockfile import read_lock
    from batuta_sync.server import HubServer
    from batuta_sync.server.state import UserSpec

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "hf.yaml").write_text("version: 1\nmodels:\n  m: {repo: ci/private, output: ./m}\n")
    f = str(ws / "hf.yaml")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", trusted.url)
    assert run(capsys, "apply", "-f", f, "--auto-approve")[0] == 0
    lock = read_lock(ws / "hf.lock")
    assert lock is not None and lock.endpoint == trusted.url and lock.serial == 1
    code, out, _ = run(capsys, "plan", "-f", f, "--detailed-exitcode")
    assert code == 0 and "ENDPOINT CHANGED" not in out
    mirror = HubServer(root=tmp_path / "mirror-root", users=[UserSpec("ci", TOKEN, "write")])
    mirror.start()
    try:
        mirror.store.create_repo("ci/private", private=True)
        mirror.store.commit("ci/private", FILES)
        monkeypatch.setenv("HF_ENDPOINT", mirror.url)
        code, out, _ = run(capsys, "plan", "-f", f, "--detailed-exitcode")
        assert code == 2 and "No actions, but the Hub endpoint changed" in out
        assert f"ENDPOINT CHANGED: hf.lock was resolved on {trusted.url}, this plan talks to {mirror.url}" in out
        code, js, _ = run(capsys, "plan", "-f", f, "--json")
        data = json.loads(js)
        assert data["endpoint_changed"] is True and data["locked_endpoint"] == trusted.url and data["has_changes"]
        assert "ENDPOINT CHANGED" in run(capsys, "plan", "-f", f, "--format", "markdown")[1]
        # a mirror chosen outside the repository (HF_ENDPOINT) is no hf.yaml/hf.lock disagreement:
        # --locked passes (uv/cargo meaning); the plan above still shows the change
        code, out, err = run(capsys, "plan", "-f", f, "--locked")
        assert code == 0 and "ENDPOINT CHANGED" in out, err
        assert run(capsys, "lock", "-f", f)[0] == 0
        relocked = read_lock(ws / "hf.lock")
        assert relocked is not None and relocked.endpoint == mirror.url and relocked.serial == 2
        code, out, _ = run(capsys, "plan", "-f", f, "--refresh-only")
        assert "ENDPOINT CHANGED" not in out
    finally:
        mirror.stop()
