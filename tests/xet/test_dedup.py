"""Chunk-level dedup: re-uploading a 200 MB file with 1 MB changed in the middle sends the CAS
under 5 % of the file through Xet and grows the server's disk use by under 5 %, where classic LFS
sends (and stores) all of it again."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx2 as httpx

from batuta_sync.server import HubServer
from tests.xet._client import run_py

SIZE = 200_000_000
CHANGED = 1_000_000


def _upload(srv: HubServer, path: Path, *, xet: bool = True) -> None:
    run_py(
        srv.url,
        f'api.upload_file(path_or_fileobj={str(path)!r}, path_in_repo="model.bin", repo_id="local/big")',
        xet=xet,
    )


def test_reupload_after_small_change_sends_under_5_percent(hub_server: HubServer, tmp_path: Path) -> None:
    hub_server.store.create_repo("local/big")
    f = tmp_path / "model.bin"
    with open(f, "wb") as out:
        for _ in range(SIZE // 10_000_000):
            out.write(os.urandom(10_000_000))
    xet = hub_server.xet
    _upload(hub_server, f)
    first = xet.bytes_received
    assert first >= SIZE * 0.99  # random data: no compression, everything sent once

    with open(f, "r+b") as out:
        out.seek(SIZE // 2)
        out.write(os.urandom(CHANGED))
    root = hub_server.root
    stored_before = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    # a fresh client cache: what is reused must come from the server (the global dedup query)
    shutil.rmtree(Path(os.environ["HF_HOME"]) / "xet", ignore_errors=True)
    _upload(hub_server, f)
    sent = xet.bytes_received - first
    stored = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) - stored_before
    print(f"xet re-upload: sent {sent} bytes ({sent / SIZE:.2%}), the server's disk use grew {stored / SIZE:.2%}")
    assert sent < 0.05 * SIZE and stored < 0.05 * SIZE
    # not stored whole, yet served whole (rebuilt from the xorbs) to plain HTTP clients, with Range
    v2 = hub_server.store.commit_of("local/big").files["model.bin"].sha256
    assert not hub_server.store.blob_path(v2).exists() and hub_server.store.blob_size(v2) == SIZE
    with open(f, "rb") as fin:
        fin.seek(SIZE // 2 - 10)
        want = fin.read(CHANGED + 20)
    r = httpx.get(
        f"{hub_server.url}/local/big/resolve/main/model.bin",
        headers={"Range": f"bytes={SIZE // 2 - 10}-{SIZE // 2 + CHANGED + 9}"},
        follow_redirects=True,
    )
    assert r.status_code == 206 and r.content == want

    # classic LFS on the same server: the whole file again
    with open(f, "r+b") as out:
        out.seek(SIZE // 2)
        out.write(os.urandom(CHANGED))
    before = sum(e.bytes_in for e in hub_server.log.entries if e.path.startswith("/lfs-upload/"))
    _upload(hub_server, f, xet=False)
    lfs = sum(e.bytes_in for e in hub_server.log.entries if e.path.startswith("/lfs-upload/")) - before
    print(f"classic LFS re-upload: sent {lfs} bytes ({lfs / SIZE:.0%})")
    assert lfs == SIZE
