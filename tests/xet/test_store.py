"""The Xet store across restarts and edge cases: persisted xorbs/files/groups, dedup answers that
leave out xorbs the asker cannot read, revoked repos, token caps, malformed CAS requests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from batuta_sync.server import HubServer, UserSpec
from batuta_sync.server.xet import cas as casmod
from batuta_sync.server.xet import shard
from batuta_sync.server.xet.hashing import chunk_hash, hash_to_hex
from tests.xet.test_hostile import ALICE, BOB, Upload, _commit, cas

USERS = [UserSpec("alice", ALICE, "write"), UserSpec("bob", BOB, "write")]


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[HubServer]:
    s = HubServer(tmp_path / "root", users=USERS).start()
    s.store.create_repo("alice/secret", private=True)
    s.store.create_repo("alice/pub")
    try:
        yield s
    finally:
        s.stop()


def test_objects_survive_a_restart(srv: HubServer, tmp_path: Path) -> None:
    up = Upload(os.urandom(200_000))
    with cas(srv, "alice/pub", "write", ALICE) as c:
        assert up.put_xorb(c).status_code == 200
        assert c.post("/v1/shards", content=up.shard()).status_code == 200
    assert _commit(srv, "alice/pub", ALICE, up).status_code == 200
    srv.stop()
    again = HubServer(tmp_path / "root", users=USERS).start()
    try:
        fh, xh = hash_to_hex(up.file_hash), hash_to_hex(up.xorb_hash)
        assert again.xet.file_for_sha256(up.sha256) == fh
        assert again.xet.xorb_holders(xh) == {("model", "alice/pub")}
        assert again.xet.xorb_holders("0" * 64) == set() and again.xet.file("0" * 64) is None
        with cas(again, "alice/pub", "read", BOB) as c:  # public repo: bob may read and dedup
            assert c.get(f"/v1/chunks/default/{hash_to_hex(chunk_hash(up.chunks[0]))}").status_code == 200
            assert c.get(f"/v1/reconstructions/{fh}").status_code == 200
        r = httpx.get(f"{again.url}/alice/pub/resolve/main/w.bin", follow_redirects=True)
        assert r.content == up.data
        with cas(again, "alice/pub", "write", ALICE) as c:  # the same xorb again: verified, not new
            assert up.put_xorb(c).json() == {"was_inserted": False}
    finally:
        again.stop()


def test_dedup_answers_leave_out_xorbs_the_asker_cannot_read(srv: HubServer) -> None:
    private, public = Upload(os.urandom(100_000)), Upload(os.urandom(100_000))
    with cas(srv, "alice/secret", "write", ALICE) as c:
        assert private.put_xorb(c).status_code == 200
    with cas(srv, "alice/pub", "write", ALICE) as c:
        assert public.put_xorb(c).status_code == 200
        # one shard describing both (alice can read both): they become one dedup group
        both = shard.serialize_shard(
            [], [private.xorb_info, public.xorb_info]
        )
        assert c.post("/v1/shards", content=both).status_code == 200
    with cas(srv, "alice/pub", "read", ALICE) as c:
        got = shard.parse_shard(c.get(f"/v1/chunks/default/{hash_to_hex(chunk_hash(public.chunks[0]))}").content)
        assert {x.xorb for x in got.xorbs} == {private.xorb_hash, public.xorb_hash}
    with cas(srv, "alice/pub", "read", BOB) as c:
        got = shard.parse_shard(c.get(f"/v1/chunks/default/{hash_to_hex(chunk_hash(public.chunks[0]))}").content)
        assert [x.xorb for x in got.xorbs] == [public.xorb_hash]


def test_revoked_rights_and_malformed_requests(srv: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    up = Upload(os.urandom(50_000))
    srv.store.create_repo("bob/gone")
    c = cas(srv, "bob/gone", "write", BOB)
    srv.store.delete_repo("bob/gone")
    assert up.put_xorb(c).status_code == 404
    r = c.get(f"/v1/reconstructions/{hash_to_hex(up.file_hash)}")
    assert r.status_code == 404
    c.close()
    with cas(srv, "alice/pub", "write", ALICE) as c:
        def body() -> Iterator[bytes]:
            yield up.xorb
        assert c.post(f"/v1/xorbs/default/{hash_to_hex(up.xorb_hash)}", content=body()).status_code == 411
        assert c.post("/v1/telemetry", json={"x": 1}).status_code == 200
        assert c.get("/v1/reconstructions/nothex").status_code == 400
        assert c.get("/v1/nothing").status_code == 404
        assert up.put_xorb(c).status_code == 200
        assert c.post("/v1/shards", content=up.shard()).status_code == 200
        url = srv.xet.sign(hash_to_hex(up.xorb_hash), 0, 10**7, 4_000_000_000)
        fetch = f"{srv.url}/xet-cas/xorb-data/{hash_to_hex(up.xorb_hash)}?r=0-{10**7}&e=4000000000&s={url}"
        assert httpx.get(fetch).status_code == 416  # signed, but past the end of the xorb
        assert httpx.get(fetch, headers={"Range": "bytes=0-"}).status_code == 400
        r = c.get(f"/v1/reconstructions/{hash_to_hex(up.file_hash)}", headers={"Range": "items=0-1"})
        assert r.status_code == 400
    srv.store.update_settings("alice/pub", gated="auto")
    assert httpx.get(f"{srv.url}/api/models/alice/pub/xet-read-token/main").status_code == 401
    monkeypatch.setattr(casmod, "MAX_TOKENS", 3)
    monkeypatch.setattr(casmod, "MAX_GROUP", 1)
    srv.xet.link_group([hash_to_hex(up.xorb_hash), "f" * 64])
    tokens = [srv.xet.issue("alice", ("model", "alice/pub"), "main", "read")[0] for _ in range(5)]
    assert len(srv.xet._tokens) <= 3
    assert srv.xet.grant(f"Bearer {tokens[-1]}").user == "alice"
    srv.xet.clock = lambda: 4e9
    srv.xet.issue("alice", ("model", "alice/pub"), "main", "read")  # the expired ones are swept first
    assert len(srv.xet._tokens) == 1


def test_model_info_is_derived_from_a_xet_stored_safetensors(srv: HubServer) -> None:
    import json
    import struct

    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}).encode()
    up = Upload(struct.pack("<Q", len(header)) + header + bytes(24) + os.urandom(40_000))
    with cas(srv, "alice/pub", "write", ALICE) as c:
        assert up.put_xorb(c).status_code == 200
        assert c.post("/v1/shards", content=up.shard()).status_code == 200
    assert not srv.store.blob_path(up.sha256).exists()
    assert _commit(srv, "alice/pub", ALICE, up, "model.safetensors").status_code == 200
    info = httpx.get(f"{srv.url}/api/models/alice/pub").json()
    assert info["safetensors"]["total"] == 6
    assert not list((srv.root / "tmp").iterdir())  # the temporary rebuild is gone


def test_a_shard_cannot_name_a_file_too_large_to_verify(srv: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    up = Upload(os.urandom(100_000))
    with cas(srv, "alice/pub", "write", ALICE) as c:
        assert up.put_xorb(c).status_code == 200
        monkeypatch.setattr(casmod, "MAX_FILE_SIZE", 150_000)
        twice = shard.serialize_shard(
            [shard.FileInfo(up.file_hash, (up.segment, up.segment), None, None)], []
        )  # the same xorb twice: 200 000 bytes to rebuild from a 200-byte shard
        r = c.post("/v1/shards", content=twice)
        assert r.status_code == 413 and "larger than this server accepts" in r.json()["error"]
    assert srv.xet.user_lock("alice") is srv.xet.user_lock("alice") is not srv.xet.user_lock("bob")
