"""Garbage collection of the server's Xet store (issue 21): xorbs and file records that no repo can
reach (an abandoned upload, a deleted repo) are removed once older than the grace period; what a
commit references, and anything young, stays — and still downloads byte-identical."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from batuta_sync.server import HubServer, UserSpec
from batuta_sync.server.xet.hashing import hash_to_hex
from tests.xet.test_hostile import ALICE, Upload, _commit, cas


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[HubServer]:
    s = HubServer(tmp_path / "root", users=[UserSpec("alice", ALICE, "write")]).start()
    s.store.create_repo("alice/pub")
    s.store.create_repo("alice/tmp")
    try:
        yield s
    finally:
        s.stop()


def _upload(srv: HubServer, repo: str, up: Upload, *, commit: bool) -> None:
    with cas(srv, repo, "write", ALICE) as c:
        assert up.put_xorb(c).status_code == 200
        assert c.post("/v1/shards", content=up.shard()).status_code == 200
    if commit:
        assert _commit(srv, repo, ALICE, up).status_code == 200


def _xorb_file(srv: HubServer, up: Upload) -> Path:
    return srv.xet.xorb_file(hash_to_hex(up.xorb_hash))


def test_unreachable_objects_go_reachable_and_young_ones_stay(srv: HubServer) -> None:
    kept, abandoned, deleted = (Upload(os.urandom(150_000)) for _ in range(3))
    _upload(srv, "alice/pub", kept, commit=True)
    _upload(srv, "alice/pub", abandoned, commit=False)  # xorb + shard sent, never committed
    _upload(srv, "alice/tmp", deleted, commit=True)
    srv.store.delete_repo("alice/tmp")

    young = srv.collect_garbage()  # default grace (24 h): everything was just uploaded
    assert (young.xorbs, young.files) == (0, 0) and _xorb_file(srv, abandoned).exists()

    report = srv.collect_garbage(grace=0)
    assert (report.xorbs, report.files) == (2, 2) and report.bytes >= 300_000
    assert _xorb_file(srv, kept).exists()
    assert not _xorb_file(srv, abandoned).exists() and not _xorb_file(srv, deleted).exists()
    assert srv.xet.file_for_sha256(deleted.sha256) is None
    r = httpx.get(f"{srv.url}/alice/pub/resolve/main/w.bin", headers={"Authorization": f"Bearer {ALICE}"},
                  follow_redirects=True)
    assert r.status_code == 200 and r.content == kept.data
    assert srv.collect_garbage(grace=0).xorbs == 0  # idempotent


def test_a_restart_collects_before_serving(srv: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from batuta_sync.server.xet import cas as casmod

    up = Upload(os.urandom(100_000))
    _upload(srv, "alice/pub", up, commit=False)
    srv.stop()
    monkeypatch.setattr(casmod, "DEFAULT_GC_GRACE", 0.0)
    again = HubServer(tmp_path / "root", users=[UserSpec("alice", ALICE, "write")]).start()
    try:
        assert not _xorb_file(again, up).exists()
    finally:
        again.stop()
