"""Remotes for tests: a real S3 server (moto in server mode) on 127.0.0.1 and a file:// folder.

The S3 fixture sets dummy AWS credentials and AWS_ENDPOINT_URL so no test can read real ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

BUCKET = "batuta-test"


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    moto_server = pytest.importorskip("moto.server")
    pytest.importorskip("obstore")
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    import contextlib

    import boto3

    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
        client.create_bucket(Bucket=BUCKET)
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(params=["s3", "file"])
def remote_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "s3":
        request.getfixturevalue("s3_endpoint")
        # moto keeps one in-process backend for every server it starts: a prefix per test keeps
        # each test's objects apart
        import uuid

        return f"s3://{BUCKET}/team/{uuid.uuid4().hex[:12]}"
    return f"file://{tmp_path / 'shared-remote'}"
