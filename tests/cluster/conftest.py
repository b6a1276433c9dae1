"""A Dask LocalCluster (2 worker processes, 1 thread each, on 127.0.0.1) and a moto S3 server,
both started once per module: cluster start-up costs ~1 s, so the tests of a module share it.

The AWS variables are set in ``os.environ`` before the cluster starts: worker processes inherit
them (dummy credentials and the moto endpoint; no test can reach real ones).  Each test gets its
own prefix in the bucket, so runs never see each other's objects.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests._builders import moto_s3

BUCKET = "batuta-dask"


@pytest.fixture(scope="module")
def s3_module() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp, moto_s3(mp, BUCKET) as url:
        yield url


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
