"""Hub error responses -> BatutaErrors (codes, exit codes, hints; never a token)."""

from __future__ import annotations

import pytest

from batuta_sync.errors import (
    AuthError,
    ConflictError,
    HubError,
    NetworkError,
    NotFoundError,
    RateLimitedError,
)
from batuta_sync.hub.errors_map import Target, error_for, target_of


def test_targets_from_urls() -> None:
    assert target_of("/api/models/a/b/revision/refs%2Fpr%2F1?x=1") == Target("model", "a/b", "refs/pr/1")
    assert target_of("/api/datasets/a/b/tree/main/sub") == Target("dataset", "a/b", "main")
    assert target_of("/api/spaces/a/b") == Target("space", "a/b", None)
    assert target_of("/api/models/gpt2/revision/main") == Target("model", "gpt2", "main")
    assert target_of("/datasets/a/b/resolve/v1/data/x.json") == Target("dataset", "a/b", "v1", "data/x.json")
    assert target_of("/a/b/resolve/main/w.bin") == Target("model", "a/b", "main", "w.bin")
    assert target_of("/api/whoami-v2") == Target() and Target().describe() == "the requested resource"


@pytest.mark.parametrize(
    ("status", "headers", "path", "cls", "code", "exit_code"),
    [
        (401, {"x-error-code": "GatedRepo"}, "/a/b/resolve/main/x", AuthError, "gated-repo", 7),
        (404, {}, "/api/models/a/b", NotFoundError, "repo-not-found", 8),
        (404, {"x-error-code": "EntryNotFound"}, "/a/b/resolve/main/x", NotFoundError, "entry-not-found", 8),
        (404, {}, "/api/whoami-v2", NotFoundError, "not-found", 8),
        (401, {}, "/api/models/a/b", AuthError, "unauthorized", 7),
        (403, {}, "/api/models/a/b", AuthError, "forbidden", 7),
        (409, {}, "/api/repos/create", ConflictError, "conflict", 19),
        (412, {}, "/api/models/a/b/commit/main", ConflictError, "conflict", 19),
        (429, {}, "/api/models", RateLimitedError, "rate-limited", 10),
        (502, {}, "/api/models", NetworkError, "network", 9),
        (408, {}, "/api/models", NetworkError, "network", 9),
        (400, {"x-error-message": "bad   sort"}, "/api/models", HubError, "hub-error", 9),
    ],
)
def test_error_mapping(
    status: int, headers: dict[str, str], path: str, cls: type, code: str, exit_code: int
) -> None:
    err = error_for(status, headers, path, '{"error": "from body"}', endpoint="http://hub", attempts=2)
    assert type(err) is cls and err.code == code and err.exit_code == exit_code and err.hint
    assert "\n" not in err.message


def test_messages_use_the_server_text_and_mask_tokens() -> None:
    tok = "hf_" + "a" * 34
    err = error_for(400, {}, "/api/models", '{"error": "token ' + tok + ' is bad"}')
    assert tok not in err.render() and "The Hub said: token hf_*** is bad" in err.message
    assert "The Hub said" not in error_for(400, {}, "/api/models", "<html>").message
    gated = error_for(
        403, {"x-error-code": "GatedRepo"}, "/api/datasets/a/b", endpoint="http://hub", has_token=True
    )
    assert "http://hub/datasets/a/b" in gated.hint and "with your token" in gated.hint


@pytest.mark.parametrize(
    ("source", "fix"),
    [("token", "--token"), ("env", "HF_TOKEN"), ("file", "batuta hf login"), ("", "HF_TOKEN")],
)
def test_rejected_token_hint_names_where_to_fix_it(source: str, fix: str) -> None:
    err = error_for(401, {}, "/api/whoami-v2", has_token=True, token_source=source)
    assert fix in err.hint and err.message.startswith("The Hub rejected your token (401) for whoami.")
