"""A Dask LocalCluster (2 worker processes, 1 thread each, on 127.0.0.1) and a moto S3 server,
both started once per module: cluster start-up costs ~1 s, so the tests of a module share it.

The AWS variables are set in ``os.environ`` before the cluster starts: worker processes inherit
them (dummy credentials and the moto endpoint; no test can reach real ones).  Each test gets its
own prefix in the bucket, so runs never see each other's objects.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

BUCKET = "batuta-dask"


@pytest.fixture(scope="module")
def s3_module() -> Iterator[str]:
    moto_server = pytest.importorskip("moto.server")
    pytest.importorskip("obstore")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
            mp.delenv(var, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        mp.setenv("AWS_ENDPOINT_URL", url)
        import boto3

        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
            client.create_bucket(Bucket=BUCKET)
        try:
            yield url
        finally:
            server.stop()


@pytest.fixture(scope="module")
def cluster(s3_module: str) -> Iterator[Any]:
    """The running LocalCluster; tests reach it as ``dask://127.0.0.1:PORT``."""
    distributed = pytest.importorskip("distributed")
    lc = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0", silence_logs=logging.WARNING)
    try:
        yield lc
    finally:
        lc.close()


@pytest.fixture
def executor(cluster: Any) -> str:
    """``--executor`` for the module's cluster."""
    return "dask://" + cluster.scheduler_address.removeprefix("tcp://")


@pytest.fixture
def s3_remote(s3_module: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh prefix of the module's S3 bucket (its AWS variables hold for the driver too)."""
    return f"s3://{BUCKET}/t/{uuid.uuid4().hex[:12]}"
