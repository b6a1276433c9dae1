"""Shared test builders: the few ways tests seed a workspace, a file or a served Hub.

Import them as ``from tests._builders import …`` (like ``tests.publish.fixtures``).  Before adding a
per-folder copy of one of these, extend the builder here instead.

* :func:`workspace` — a workspace folder with an ``hf.yaml`` (``version: 1`` + the body given);
* :func:`safetensors_blob` — the bytes of a safetensors file from a header (or raw header bytes)
  and a data section, valid or deliberately not;
* :func:`moto_s3` — a real S3 server (moto, server mode) on 127.0.0.1 with one bucket, as
  ``AWS_ENDPOINT_URL`` and test credentials;
* :func:`run_cli` — ``batuta ARGV`` in process: ``(exit code, stdout, stderr)``;
* :func:`hub_on_env` — a started local Hub as ``HF_ENDPOINT`` for the test, stopped afterwards
  (the body of the ``seeded`` / ``auth_hub`` style fixtures).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from batuta_sync.server import HubServer


def workspace(root: Path, body: str, *, name: str = "ws") -> Path:
    """``root/name`` holding ``hf.yaml`` = ``version: 1`` + ``body``; returns the folder."""
    ws = root / name
    ws.mkdir(exist_ok=True)
    (ws / "hf.yaml").write_text("version: 1\n" + body)
    return ws


def safetensors_blob(
    header: object, data: bytes = b"", *, raw: bytes | None = None, pad: bytes = b""
) -> bytes:
    """``<u64 header length><header><data>``: the header is ``json.dumps(header)`` unless ``raw``
    gives its bytes; ``pad`` is appended to the header (inside its announced length)."""
    h = (raw if raw is not None else json.dumps(header).encode()) + pad
    return struct.pack("<Q", len(h)) + h + data


@contextmanager
def hub_on_env(srv: HubServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """``srv`` (started) as the test's ``HF_ENDPOINT``; stopped when the block ends."""
    monkeypatch.setenv("HF_ENDPOINT", srv.url)
    try:
        yield srv
    finally:
        srv.stop()


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``batuta *argv`` in this process (``cli.main``): its exit code, stdout and stderr."""
    from batuta_sync.cli import main

    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@contextmanager
def moto_s3(mp: pytest.MonkeyPatch, bucket: str) -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 holding ``bucket``; yields its URL (``AWS_ENDPOINT_URL``), with
    test credentials in the environment through ``mp``; skips when moto or obstore is missing."""
    import contextlib as _contextlib

    moto_server = pytest.importorskip("moto.server")
    pytest.importorskip("obstore")
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        mp.delenv(var, raising=False)
    mp.setenv("AWS_ACCESS_KEY_ID", "testing")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        mp.setenv("AWS_ENDPOINT_URL", url)
        import boto3

        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        with _contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
            client.create_bucket(Bucket=bucket)
        yield url
    finally:
        server.stop()
