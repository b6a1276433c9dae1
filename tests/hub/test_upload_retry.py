"""Pushes in the one retry loop (hub/upload.py ``_call``): what HfApi raised is classified by its
type and the answer's status (``HfHubHTTPError.response.status_code``), never by class names.
No sockets: the attempts raise what huggingface_hub raises."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest
from huggingface_hub.errors import HfHubHTTPError

from batuta_sync.errors import ConflictError, NetworkError, RateLimitedError
from batuta_sync.hub import upload
from batuta_sync.settings import Settings

HUB = "http://hub.example"
COMMIT = f"{HUB}/api/models/acme/m/commit/main"
PREUPLOAD = f"{HUB}/api/models/acme/m/preupload/main"


def _http_error(status: int, url: str, headers: dict[str, str] | None = None) -> HfHubHTTPError:
    resp = httpx2.Response(status, headers=headers or {}, request=httpx2.Request("POST", url))
    return HfHubHTTPError(f"{status}", response=resp)


def _fails(*errors: BaseException) -> Callable[[], str]:
    left = list(errors)

    def fn() -> str:
        if left:
            raise left.pop(0)
        return "done"

    return fn


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(endpoint=HUB, hf_home=tmp_path / "hf")


def test_idempotent_calls_retry_5xx_on_the_schedule(settings: Settings) -> None:
    waits: list[float] = []
    fn = _fails(_http_error(502, PREUPLOAD), _http_error(503, PREUPLOAD, {"retry-after": "5"}))
    assert upload._call(settings, "uploading", fn, sleep=waits.append) == "done"
    assert waits == [1, 5]


def test_the_commit_post_is_replayed_only_when_the_hub_cannot_have_processed_it(settings: Settings) -> None:
    waits: list[float] = []
    assert upload._call(settings, "committing", _fails(_http_error(503, COMMIT)), sleep=waits.append) == "done"
    with pytest.raises(NetworkError, match="500"):
        upload._call(settings, "committing", _fails(_http_error(500, COMMIT)), sleep=waits.append)
    with pytest.raises(ConflictError, match="branch moved"):
        upload._call(settings, "committing", _fails(_http_error(412, COMMIT)), sleep=waits.append)
    assert waits == [1]


def test_a_429_beyond_the_wait_limit_fails_at_once(settings: Settings) -> None:
    waits: list[float] = []
    err = _http_error(429, PREUPLOAD, {"retry-after": "900"})
    with pytest.raises(RateLimitedError, match="--max-wait 300"):
        upload._call(settings, "uploading", _fails(err), sleep=waits.append)
    assert waits == []


def test_transport_errors_by_type(settings: Settings) -> None:
    waits: list[float] = []
    refused = httpx2.ConnectError("[Errno 111] Connection refused")
    assert upload._call(settings, "creating", _fails(refused, refused), sleep=waits.append) == "done"
    assert waits == [0.25, 0.5]

    class ConnectErrorLookalike(Exception):  # a name is not a type: not retried, not a network error
        pass

    with pytest.raises(Exception, match="upload failed"):
        upload._call(settings, "creating", _fails(ConnectErrorLookalike("x")), sleep=waits.append)
    with pytest.raises(NetworkError, match="ReadTimeout"):  # may have been processed: reported, not replayed
        upload._call(settings, "creating", _fails(httpx2.ReadTimeout("silent")), sleep=waits.append)
    assert waits == [0.25, 0.5]


def test_what_the_failed_request_was() -> None:
    assert upload._failed_request(_http_error(503, PREUPLOAD, {"Retry-After": "3"})) == (
        503,
        {"retry-after": "3"},
        "/api/models/acme/m/preupload/main",
    )
    assert upload._failed_request(ValueError("no answer")) == (None, {}, "")
