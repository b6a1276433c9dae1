"""batuta pull through Xet reconstruction (opt-in, ``BATUTA_DOWNLOAD_PROTOCOL=xet``; issue 21 point 4):
a new revision of a large file downloads only the chunks the cache lacks, every byte still
verified against the sha256, and anything wrong falls back to the HTTP path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.pull import PullRequest, pull
from batuta_sync.settings import resolve_settings
from batuta_sync.types import RepoRef
from tests.xet._client import run_py

SIZE = 24 << 20
CHANGED = 1 << 20


def _upload(srv: Any, path: Path) -> None:
    run_py(srv.url, f'api.upload_file(path_or_fileobj={str(path)!r}, path_in_repo="w.npy", repo_id="local/x")')


def _pull(srv: Any) -> Any:
    s = resolve_settings(flags={"endpoint": srv.url})
    return pull(s, PullRequest(RepoRef("local/x"), allow_unsafe=True))


@pytest.fixture
def xet_repo(hub_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BATUTA_DOWNLOAD_PROTOCOL", "xet")
    hub_server.store.create_repo("local/x")
    f = tmp_path / "w.npy"
    f.write_bytes(os.urandom(SIZE))
    _upload(hub_server, f)
    return f


def _cas_bytes(srv: Any, mark: int) -> int:
    return sum(e.bytes_out for e in srv.log.entries[mark:] if "/xet-cas/xorb-data/" in e.path)


def _resolve_gets(srv: Any, mark: int) -> int:
    return sum(1 for e in srv.log.entries[mark:] if e.method == "GET" and e.path.startswith("/local/x/resolve/"))


def test_a_new_revision_downloads_only_the_chunks_the_cache_lacks(hub_server: Any, xet_repo: Path) -> None:
    mark = len(hub_server.log.entries)
    first = _pull(hub_server)
    assert first.files[0].read_bytes() == xet_repo.read_bytes()
    assert _cas_bytes(hub_server, mark) >= SIZE and _resolve_gets(hub_server, mark) == 0  # the Xet path, not HTTP
    with open(xet_repo, "r+b") as out:
        out.seek(SIZE // 2)
        out.write(os.urandom(CHANGED))
    _upload(hub_server, xet_repo)
    mark = len(hub_server.log.entries)
    second = _pull(hub_server)
    assert second.snapshot.commit != first.snapshot.commit
    assert second.files[0].read_bytes() == xet_repo.read_bytes()
    fetched = _cas_bytes(hub_server, mark)
    assert fetched < 0.15 * SIZE, fetched  # ~1 MB changed (+ chunk boundaries), not the 24 MB file
    assert second.reused_bytes > 0.8 * SIZE and second.transferred_bytes < 0.15 * SIZE
    assert _resolve_gets(hub_server, mark) == 0


def test_a_cas_that_lies_is_caught_by_the_sha256_and_the_http_path_serves(hub_server: Any, xet_repo: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from batuta_sync.pull import xet

    real = xet._fetch_range

    def flipped(*args: Any) -> bytes:
        data = bytearray(real(*args))
        data[-1] ^= 1  # inside the last chunk's bytes (uncompressed random data): a wrong file
        return bytes(data)

    monkeypatch.setattr(xet, "_fetch_range", flipped)
    mark = len(hub_server.log.entries)
    res = _pull(hub_server)
    assert res.files[0].read_bytes() == xet_repo.read_bytes()  # never the bad bytes
    assert _resolve_gets(hub_server, mark) == 1  # the fallback downloaded it over HTTP


def test_the_default_stays_http(hub_server: Any, xet_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BATUTA_DOWNLOAD_PROTOCOL")
    mark = len(hub_server.log.entries)
    res = _pull(hub_server)
    assert res.files[0].read_bytes() == xet_repo.read_bytes()
    assert _cas_bytes(hub_server, mark) == 0 and _resolve_gets(hub_server, mark) == 1
    from batuta_sync.errors import UsageError
    from batuta_sync.pull.xet import protocol

    assert protocol({"BATUTA_DOWNLOAD_PROTOCOL": "XET"}) == "xet" and protocol({}) == "http"
    with pytest.raises(UsageError):
        protocol({"BATUTA_DOWNLOAD_PROTOCOL": "ftp"})


@pytest.mark.parametrize("lie", ["huge chunk range", "huge byte range", "not a hash", "not an object"])
def test_a_hostile_reconstruction_answer_is_refused_before_any_fetch(lie: str) -> None:
    from batuta_sync.pull.xet import ChunkIndex, XetStats, rebuild
    from batuta_sync.types import RepoFile

    h = "a" * 64
    term = {"hash": h, "range": {"start": 0, "end": 10**12 if lie == "huge chunk range" else 2}}
    info = {"range": {"start": 0, "end": 2}, "url": "http://127.0.0.1:9/x",
            "url_range": {"start": 0, "end": 10**12 if lie == "huge byte range" else 10}}
    if lie == "not a hash":
        term["hash"] = "../../etc"
    answer: Any = {"terms": [term], "fetch_info": {h: [info]}}

    class NoHttp:
        def stream(self, *a: Any, **k: Any) -> Any:
            raise AssertionError("fetched although the answer is impossible")

    f = RepoFile("w.npy", 10, "b" * 40, "c" * 64)
    with pytest.raises((ValueError, TypeError, AttributeError)):
        rebuild(NoHttp(), f, [] if lie == "not an object" else answer,
                ChunkIndex(Path("/nonexistent"), lambda e: Path("/nonexistent") / e), Path("/tmp/never-written"),
                XetStats())
    assert not Path("/tmp/never-written").exists()


def test_a_damaged_or_planted_chunk_record_is_ignored(tmp_path: Path) -> None:
    """The chunk index is batuta's own state, but a record never makes batuta read past a chunk's
    bound (a huge length would be a huge allocation) nor names a file outside the blobs."""
    import json

    from batuta_sync.pull.xet import ChunkIndex

    blobs = tmp_path / "blobs"
    blobs.mkdir()
    good = "a" * 64
    (blobs / good).write_bytes(b"x" * 100)
    idx_dir = tmp_path / "idx"
    idx_dir.mkdir()
    h = "c" * 64
    (idx_dir / f"{good}.json").write_text(json.dumps({"terms": [[h, 0, [10**12]]]}))  # absurd length
    (idx_dir / "..%2f..%2fetc.json").write_text(json.dumps({"terms": [[h, 5, [10]]]}))  # not a blob name
    (idx_dir / "bad.json").write_text("{not json")

    def blob_path(etag: str) -> Path:
        from batuta_sync import ids

        return blobs / ids.blob_id(etag)

    index = ChunkIndex(idx_dir, blob_path)
    assert index.find(h, 0, 1) is None and index.find(h, 5, 6) is None
    (idx_dir / f"{good}.json").write_text(json.dumps({"terms": [[h, 0, [40, 60]]]}))
    index = ChunkIndex(idx_dir, blob_path)
    assert index.find(h, 0, 2) == [(good, 0, 40), (good, 40, 60)]
