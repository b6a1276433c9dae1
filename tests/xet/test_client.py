"""The real huggingface_hub client, default install (hf_xet, no HF_HUB_DISABLE_XET), against our
server: every upload path goes through Xet (xorbs + shards, no LFS PUT), and downloads with Xet,
without it, and over plain HTTP all give the same bytes."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import httpx2 as httpx
import pytest

from batuta_sync.server import HubServer
from tests.xet._client import run_hf, run_py


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, bytes]:
    rnd = os.urandom
    content = {
        "big.bin": rnd(3_000_000),
        "folder/a.bin": rnd(2_000_000),
        "folder/sub/b.bin": rnd(700_000) + bytes(800_000),
        "folder/note.txt": b"small text stays a regular git file\n",
        "c1.bin": rnd(1_200_000),
        "c2.bin": rnd(900_000),
        "cli.bin": rnd(1_100_000),
    }
    for name, data in content.items():
        (tmp_path / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / name).write_bytes(data)
    return content


def test_real_client_uploads_and_downloads_through_xet(
    hub_server: HubServer, files: dict[str, bytes], tmp_path: Path
) -> None:
    src = tmp_path / "src"
    run_py(
        hub_server.url,
        f"""
        from huggingface_hub import CommitOperationAdd
        src = {str(src)!r}
        api.create_repo("local/x")
        api.upload_file(path_or_fileobj=src + "/big.bin", path_in_repo="big.bin", repo_id="local/x")
        api.upload_folder(folder_path=src + "/folder", path_in_repo="folder", repo_id="local/x")
        api.create_commit("local/x", operations=[
            CommitOperationAdd("c1.bin", src + "/c1.bin"), CommitOperationAdd("c2.bin", src + "/c2.bin")],
            commit_message="two at once")
        """,
    )
    run_hf(hub_server.url, ["upload", "local/x", "cli.bin", "cli.bin"], cwd=src)
    log = hub_server.log
    assert log.count("POST", "/xet-cas/v1/xorbs/") >= 4 and log.count("POST", "/xet-cas/v1/shards") >= 4
    assert log.count("PUT", "/lfs-upload/") == 0  # nothing went through classic LFS
    remote = {p for p in files}
    assert set(hub_server.store.commit_of("local/x").files) == remote

    want = {p: _sha(d) for p, d in files.items()}
    n_rec = log.count("GET", "/xet-cas/v1/reconstructions/")
    got = run_py(
        hub_server.url,
        f"""
        from huggingface_hub import hf_hub_download, snapshot_download
        out = {{p: sha(hf_hub_download("local/x", p, cache_dir={str(tmp_path / "c1")!r})) for p in {sorted(files)!r}}}
        snap = snapshot_download("local/x", cache_dir={str(tmp_path / "c2")!r})
        out.update({{"snap/" + p: sha(os.path.join(snap, p)) for p in {sorted(files)!r}}})
        emit(out)
        """,
    )
    assert got == {**want, **{"snap/" + p: s for p, s in want.items()}}
    # Xet files came through the reconstruction API (the text file is a regular git file)
    assert log.count("GET", "/xet-cas/v1/reconstructions/") - n_rec >= 2 * (len(files) - 1)
    assert log.count("GET", "/xet-cas/xorb-data/") > 0
    # ... and without Xet, through plain HTTP
    n_cdn = log.count("GET", "/cdn-lfs/")
    got = run_py(
        hub_server.url,
        f"""
        from huggingface_hub import snapshot_download
        snap = snapshot_download("local/x", cache_dir={str(tmp_path / "c3")!r})
        emit({{p: sha(os.path.join(snap, p)) for p in {sorted(files)!r}}})
        """,
        xet=False,
    )
    assert got == want and log.count("GET", "/cdn-lfs/") - n_cdn == len(files) - 1

    with httpx.Client(base_url=hub_server.url, follow_redirects=True) as c:
        r = c.get("/local/x/resolve/main/big.bin")
        assert r.content == files["big.bin"]
        r = c.get("/local/x/resolve/main/big.bin", headers={"Range": "bytes=1000-2999"})
        assert r.status_code == 206 and r.content == files["big.bin"][1000:3000]
        head = c.head("/local/x/resolve/main/big.bin", follow_redirects=False)
        assert len(head.headers["X-Xet-Hash"]) == 64 and 'rel="xet-auth"' in head.headers["Link"]
        tree = c.get("/api/models/local/x/tree/main").json()
        assert {e["path"] for e in tree if "xetHash" in e} == {"big.bin", "c1.bin", "c2.bin", "cli.bin"}
    curl = shutil.which("curl")
    if curl:
        out = subprocess.run(
            [curl, "-sfL", f"{hub_server.url}/local/x/resolve/main/folder/sub/b.bin"],
            capture_output=True, timeout=60, check=True,
        ).stdout
        assert out == files["folder/sub/b.bin"]


def test_a_repo_mixing_xet_and_classic_lfs_files(hub_server: HubServer, tmp_path: Path) -> None:
    a, b = os.urandom(1_000_000), os.urandom(1_100_000)
    (tmp_path / "a.bin").write_bytes(a)
    (tmp_path / "b.bin").write_bytes(b)
    hub_server.store.create_repo("local/mix")
    up = "api.upload_file(path_or_fileobj={p!r}, path_in_repo={n!r}, repo_id='local/mix')"
    run_py(hub_server.url, up.format(p=str(tmp_path / "a.bin"), n="xet.bin"))
    run_py(hub_server.url, up.format(p=str(tmp_path / "b.bin"), n="lfs.bin"), xet=False)
    assert hub_server.log.count("PUT", "/lfs-upload/") == 1
    for xet in (True, False):
        got = run_py(
            hub_server.url,
            f"""
            from huggingface_hub import snapshot_download
            snap = snapshot_download("local/mix", cache_dir={str(tmp_path / f"c{xet}")!r})
            emit({{p: sha(os.path.join(snap, p)) for p in ("xet.bin", "lfs.bin")}})
            """,
            xet=xet,
        )
        assert got == {"xet.bin": _sha(a), "lfs.bin": _sha(b)}
