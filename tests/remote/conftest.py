"""Remotes for tests: a real S3 server (moto in server mode) on 127.0.0.1 and a file:// folder.

The S3 fixture sets dummy AWS credentials and AWS_ENDPOINT_URL so no test can read real ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._builders import moto_s3

BUCKET = "batuta-test"


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with moto_s3(monkeypatch, BUCKET) as url:
        yield url


@pytest.fixture(params=["s3", "file"])
def remote_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "s3":
        request.getfixturevalue("s3_endpoint")
        # moto keeps one in-process backend for every server it starts: a prefix per test keeps
        # each test's objects apart
        import uuid

        return f"s3://{BUCKET}/team/{uuid.uuid4().hex[:12]}"
    return f"file://{tmp_path / 'shared-remote'}"
