"""Secrets outside argv and output (issue 13 point 8, issue 14): userinfo redaction, token
sources and their precedence, --timeout / BATUTA_TIMEOUT resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from batuta_sync._redact import redact, register_url_secrets
from batuta_sync.errors import ConfigError, NetworkError
from batuta_sync.settings import HfAuth, resolve_settings


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("https://user:pa55word@hub.example/api", "https://***@hub.example/api"),
        ("http://ghp_tokenAsUserName@127.0.0.1:9", "http://***@127.0.0.1:9"),
        ("a HF_ENDPOINT=https://u:p@h and ftp://x:y@z.", "a HF_ENDPOINT=https://***@h and ftp://***@z."),
        ("https://hub.example/api/models/a@b", "https://hub.example/api/models/a@b"),  # '@' in the path
        ("mail me at a@b.example", "mail me at a@b.example"),
    ],
)
def test_userinfo_is_masked_in_every_url(text: str, want: str) -> None:
    assert redact(text) == want


def test_endpoint_userinfo_is_masked_even_without_its_scheme(tmp_path: Path) -> None:
    s = resolve_settings(env={"HF_ENDPOINT": "https://deploy:Pa55-Word-9x@hub.example"}, home=tmp_path)
    assert s.endpoint == "https://deploy:Pa55-Word-9x@hub.example"  # still used as given
    err = NetworkError("cannot connect to deploy:Pa55-Word-9x@hub.example:443")
    assert "Pa55-Word-9x" not in err.render()  # (a short user name is not masked bare)
    register_url_secrets("not a url @ all")  # harmless
    register_url_secrets("http://[::1@x")  # unparseable: ignored
    register_url_secrets(None)


def test_token_precedence_and_empty_means_anonymous(tmp_path: Path) -> None:
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "token").write_text("hf_storedSTOREDstoredSTOREDstored1")
    tok_file = tmp_path / "tok"
    tok_file.write_text("  hf_fileFILEfileFILEfileFILEfile12\n")
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": "hf_envENVenvENVenvENVenvENVenv12"}

    def res(flags: dict[str, object], e: dict[str, str] = env) -> tuple[HfAuth, str | None]:
        s = resolve_settings(flags=flags, env=e, home=tmp_path)
        return s.auth, s.token_value()

    assert res({"token": "hf_flagFLAGflagFLAGflagFLAGflag12", "token_file": str(tok_file)})[0] is HfAuth.TOKEN
    assert res({"token_file": str(tok_file)}) == (HfAuth.TOKEN_FILE, "hf_fileFILEfileFILEfileFILEfile12")
    assert res({})[0] is HfAuth.ENV_TOKEN
    assert res({"token": ""}) == (HfAuth.NONE, None)
    assert res({}, {**env, "HF_TOKEN": ""}) == (HfAuth.NONE, None)
    assert res({}, {"HF_HOME": env["HF_HOME"]})[0] is HfAuth.FILE_TOKEN
    tok_file.write_text("\n")
    assert res({"token_file": str(tok_file)}) == (HfAuth.NONE, None)
    with pytest.raises(ConfigError, match="Cannot read the token file"):
        res({"token_file": str(tmp_path / "nope")})


def test_timeout_resolution(tmp_path: Path) -> None:
    assert resolve_settings(env={}, home=tmp_path).timeout is None
    assert resolve_settings(env={"BATUTA_TIMEOUT": "7"}, home=tmp_path).timeout == 7.0
    assert resolve_settings(flags={"timeout": 2.5}, env={"BATUTA_TIMEOUT": "7"}, home=tmp_path).timeout == 2.5
    for bad in ("0", "inf", "nan", "x"):
        with pytest.raises(ConfigError, match="BATUTA_TIMEOUT"):
            resolve_settings(env={"BATUTA_TIMEOUT": bad}, home=tmp_path)


def test_auth_headers_only_for_the_endpoints_origin(tmp_path: Path) -> None:
    from batuta_sync._redact import Secret
    from batuta_sync.hub.auth import auth_headers
    from batuta_sync.settings import Settings

    s = Settings(endpoint="https://Hub.Example", token=Secret("hf_originORIGINoriginORIGINorigin12"), auth=HfAuth.TOKEN)
    for same in ("https://hub.example/api/x", "https://HUB.example:443/resolve/y"):
        assert auth_headers(s, same) == {"authorization": "Bearer hf_originORIGINoriginORIGINorigin12"}
    for other in (
        "http://hub.example/api/x",  # another scheme (a downgrade)
        "https://hub.example:8443/x",  # another port
        "https://cdn.hub.example/x",  # a sub-domain (the CDN)
        "https://hub.example.evil/x",
        "https://hub.example@evil.example/x",  # userinfo trick: the host is evil.example
    ):
        assert auth_headers(s, other) == {}, other
    assert auth_headers(Settings(endpoint="https://hub.example"), "https://hub.example/x") == {}


def test_informational_messages_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from batuta_sync.cli import _common

    _common.info(argparse.Namespace(quiet=False), "pushing to https://ci:Zx9-pass-Qw7@hub.internal/acme/m")
    err = capsys.readouterr().err
    assert "Zx9-pass-Qw7" not in err and "https://***@hub.internal/acme/m" in err
