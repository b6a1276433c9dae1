"""Restart serves byte for byte; a crash mid-commit leaves the previous commit intact; 32+ connections."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx2 as httpx  # the one HTTP client library (huggingface_hub installs it)
import pytest
from huggingface_hub import HfApi, hf_hub_download

from batuta_sync.server import HubServer, Store


def _snapshot(url: str, repos: list[tuple[str, str]]) -> tuple[dict[str, object], dict[str, bytes]]:
    meta: dict[str, object] = {}
    bodies: dict[str, bytes] = {}
    prefix = {"model": "", "dataset": "datasets/", "space": "spaces/"}
    with httpx.Client(follow_redirects=True) as c:
        for rt, rid in repos:
            for ep in (
                "",
                "?blobs=true",
                "/tree/main?recursive=true",
                "/refs",
                "/commits/main",
                "/revision/v1",
            ):
                r = c.get(f"{url}/api/{rt}s/{rid}{ep}")
                assert r.status_code == 200, (ep, r.text)
                meta[f"{rt}:{rid}{ep}"] = r.json()
        for rt, rid in repos:
            tree = c.get(f"{url}/api/{rt}s/{rid}/tree/main?recursive=true").json()
            for e in tree:
                if e["type"] != "file":
                    continue
                r = c.get(f"{url}/{prefix[rt]}{rid}/resolve/main/{e['path']}")
                assert r.status_code == 200
                key = f"{rt}:{rid}:{e['path']}"
                bodies[key] = r.content
                bodies[key + ":headers"] = json.dumps(
                    [r.headers.get(h) for h in ("ETag", "X-Repo-Commit", "Content-Length", "X-Linked-Size")]
                ).encode()
    return meta, bodies


def test_restart_serves_byte_for_byte(tmp_path: Path) -> None:
    root = tmp_path / "root"
    repos = [("model", "local/m"), ("dataset", "local/d")]
    srv = HubServer(root).start()
    try:
        api = HfApi(endpoint=srv.url, token="t")
        api.create_repo("local/m")
        folder = tmp_path / "f"
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "w.safetensors").write_bytes(os.urandom(200_000))
        (folder / "config.json").write_text("{}")
        api.upload_folder(repo_id="local/m", folder_path=folder)
        api.create_tag("local/m", tag="v1")
        api.upload_file(path_or_fileobj=b"later", path_in_repo="later.txt", repo_id="local/m")
        srv.store.commit(
            "local/d",
            {"data.parquet": os.urandom(5000), "README.md": b"---\nlicense: mit\n---\n"},
            repo_type="dataset",
        )
        srv.store.create_tag("local/d", "v1", repo_type="dataset")
        meta1, bodies1 = _snapshot(srv.url, repos)
    finally:
        srv.stop()
    srv2 = HubServer(root).start()
    try:
        meta2, bodies2 = _snapshot(srv2.url, repos)
    finally:
        srv2.stop()
    assert bodies1 == bodies2
    n_files = {"model": 3, "dataset": 2}
    for key, v1 in meta1.items():
        v2 = meta2[key]
        if isinstance(v1, dict) and "downloads" in v1:
            assert isinstance(v2, dict)
            rt = key.split(":")[0]
            assert v2.pop("downloads") == v1.pop("downloads") + n_files[rt]  # counters persisted too
        assert v1 == v2, key


def test_failed_commit_leaves_previous_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "root")
    good = store.commit("local/c", {"a.txt": b"one", "w.bin": b"w" * 100})

    def boom(self: Store, st: object) -> None:
        raise OSError("simulated crash before the refs swap")

    monkeypatch.setattr(Store, "_save_settings", boom)
    with pytest.raises(OSError):
        store.commit("local/c", {"a.txt": b"two"})
    monkeypatch.undo()
    reopened = Store(tmp_path / "root")
    assert reopened.resolve("local/c", "main") == good
    c = reopened.get_commit(good)
    assert reopened.blob_path(c.files["a.txt"].sha256).read_bytes() == b"one"


_CRASHER = r"""
import os, sys
from pathlib import Path
from batuta_sync.server import Store
s = Store(Path(sys.argv[1]))
i = 0
while True:
    sha = s.commit("local/crash", {"big.bin": os.urandom(3 << 20), f"f{i}.txt": str(i).encode()}, message=f"c{i}")
    print(sha, flush=True)
    i += 1
"""


def test_kill_9_mid_commit_keeps_store_consistent(tmp_path: Path) -> None:
    root = tmp_path / "root"
    proc = subprocess.Popen([sys.executable, "-c", _CRASHER, str(root)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        done = [proc.stdout.readline().strip() for _ in range(3)]
    finally:
        proc.kill()
        proc.wait()
    assert all(len(s) == 40 for s in done)
    store = Store(root)
    head = store.resolve("local/crash", "main")
    history = [c.id for c in store.history(head)]
    assert done[-1] in history  # every acknowledged commit survived
    for cid in history:
        for e in store.get_commit(cid).files.values():
            data = store.blob_path(e.sha256).read_bytes()
            assert hashlib.sha256(data).hexdigest() == e.sha256 and len(data) == e.size
    assert list((root / "tmp").iterdir()) == []  # staging cleaned on open


def test_32_concurrent_downloads(hub_server: HubServer, tmp_path: Path) -> None:
    files = {f"w{i}.bin": os.urandom(64_000 + i) for i in range(32)}
    hub_server.store.commit("local/cc", files)
    results: dict[str, bytes] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(32)

    def worker(name: str) -> None:
        try:
            barrier.wait(timeout=30)
            p = hf_hub_download("local/cc", name, endpoint=hub_server.url, cache_dir=tmp_path / name)
            results[name] = Path(p).read_bytes()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert results == files


def test_40_simultaneous_connections(hub_server: HubServer) -> None:
    hub_server.store.commit("local/conn", {"a.txt": b"hello"})
    port = int(hub_server.url.rsplit(":", 1)[1])
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(40)]
    for c in conns:
        c.connect()
    # All 40 are open at once; each gets served (and keeps alive for a second request).
    for _ in range(2):
        for c in conns:
            c.request("GET", "/local/conn/resolve/main/a.txt")
        for c in conns:
            r = c.getresponse()
            assert r.status == 200 and r.read() == b"hello"
    assert hub_server.counters["max_active_connections"] >= 40
    for c in conns:
        c.close()


def test_concurrent_commits_and_reads(hub_server: HubServer) -> None:
    from huggingface_hub import CommitOperationAdd

    api = HfApi(endpoint=hub_server.url, token="t")
    api.create_repo("local/busy")
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            op = CommitOperationAdd(path_in_repo=f"f{i}.txt", path_or_fileobj=str(i).encode())
            api.create_commit("local/busy", [op], commit_message=f"c{i}")
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(10):
                api.list_repo_refs("local/busy")
                api.model_info("local/busy", revision=api.model_info("local/busy").sha[:8])  # type: ignore[index]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert sorted(api.list_repo_files("local/busy")) == sorted(f"f{i}.txt" for i in range(8))
    assert len(api.list_repo_commits("local/busy")) == 9  # serialised: no commit lost
