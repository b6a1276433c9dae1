"""A hostile Xet client against our server: lying xorbs and shards, borrowed xorbs, other users'
private files, wrong-scope and expired tokens, forged fetch URLs — each refused, nothing stored."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from batuta_sync.server import HubServer, UserSpec
from batuta_sync.server.xet import chunking, shard, xorb
from batuta_sync.server.xet.hashing import chunk_hash, file_hash, hash_to_hex, hex_to_hash, range_hash

ALICE, BOB, CAROL = "tok-alice-1234", "tok-bob-123456", "tok-carol-1234"


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[HubServer]:
    s = HubServer(
        tmp_path / "root",
        users=[UserSpec("alice", ALICE, "write"), UserSpec("bob", BOB, "write"), UserSpec("carol", CAROL, "read")],
    ).start()
    s.store.create_repo("alice/secret", private=True)
    s.store.create_repo("bob/pub")
    try:
        yield s
    finally:
        s.stop()


def _token(srv: HubServer, repo: str, scope: str, user_token: str | None) -> httpx.Response:
    h = {"Authorization": f"Bearer {user_token}"} if user_token else {}
    return httpx.get(f"{srv.url}/api/models/{repo}/xet-{scope}-token/main", headers=h)


def cas(srv: HubServer, repo: str, scope: str, user_token: str | None) -> httpx.Client:
    r = _token(srv, repo, scope, user_token)
    assert r.status_code == 200, r.text
    assert r.json()["accessToken"] == r.headers["X-Xet-Access-Token"]
    return httpx.Client(base_url=r.headers["X-Xet-Cas-Url"], headers={"Authorization": f"Bearer {r.json()['accessToken']}"})


class Upload:
    """A file cut into chunks, its xorb and a shard describing it (all honest until edited)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.chunks = list(chunking.chunks(data))
        self.xorb_hash, self.xorb = xorb.serialize_xorb(self.chunks)
        hashes = [(chunk_hash(c), len(c)) for c in self.chunks]
        self.file_hash = file_hash(hashes)
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.segment = shard.Segment(self.xorb_hash, len(data), 0, len(self.chunks))
        self.verification = range_hash([h for h, _ in hashes])
        starts = [sum(len(c) for c in self.chunks[:i]) for i in range(len(self.chunks))]
        self.xorb_info = shard.XorbInfo(
            self.xorb_hash,
            tuple(shard.XorbChunk(h, s, n) for (h, n), s in zip(hashes, starts, strict=True)),
            len(data),
            len(self.xorb),
        )

    def shard(self, **edit: object) -> bytes:
        f = {"file_hash": self.file_hash, "segments": (self.segment,), "verification": (self.verification,),
             "sha256": hex_to_hash(self.sha256)}
        f.update(edit)  # type: ignore[arg-type]
        return shard.serialize_shard([shard.FileInfo(**f)], [self.xorb_info])  # type: ignore[arg-type]

    def put_xorb(self, c: httpx.Client) -> httpx.Response:
        return c.post(f"/v1/xorbs/default/{hash_to_hex(self.xorb_hash)}", content=self.xorb)


def _commit(srv: HubServer, repo: str, token: str, up: Upload, path: str = "w.bin") -> httpx.Response:
    lines = [{"key": "header", "value": {"summary": "add"}},
             {"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": up.sha256, "size": len(up.data)}}]
    return httpx.post(
        f"{srv.url}/api/models/{repo}/commit/main",
        content="\n".join(json.dumps(x) for x in lines),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
    )


def _alice_secret(srv: HubServer) -> Upload:
    up = Upload(os.urandom(300_000))
    with cas(srv, "alice/secret", "write", ALICE) as c:
        assert up.put_xorb(c).json() == {"was_inserted": True}
        assert c.post("/v1/shards", content=up.shard()).status_code == 200
    assert _commit(srv, "alice/secret", ALICE, up).status_code == 200
    return up


def test_tokens_follow_users_roles_and_private_repos(srv: HubServer) -> None:
    assert _token(srv, "alice/secret", "read", BOB).status_code == 404  # private: not even its existence
    assert _token(srv, "alice/secret", "read", None).status_code == 404
    assert _token(srv, "bob/pub", "write", CAROL).status_code == 403  # read-only role
    assert _token(srv, "bob/pub", "write", None).status_code == 401
    assert _token(srv, "bob/pub", "read", None).status_code == 200  # public repo: anonymous read
    assert httpx.post(f"{srv.url}/api/models/bob/pub/xet-read-token/main").status_code == 405
    up = Upload(os.urandom(50_000))
    with cas(srv, "bob/pub", "read", CAROL) as c:
        assert up.put_xorb(c).status_code == 403  # a read token cannot upload
        assert c.post("/v1/shards", content=up.shard()).status_code == 403
    with cas(srv, "bob/pub", "write", BOB) as c:
        srv.xet.clock = lambda: 4e9  # far in the future: the token has expired
        assert up.put_xorb(c).status_code == 401
    no_token = httpx.Client(base_url=f"{srv.url}/xet-cas")
    assert no_token.post(f"/v1/xorbs/default/{hash_to_hex(up.xorb_hash)}", content=up.xorb).status_code == 401
    assert not list((srv.root / "xet").rglob("*.json"))


def test_lying_xorbs_and_shards_are_refused(srv: HubServer) -> None:
    up = Upload(os.urandom(200_000) + bytes(100_000))
    other = Upload(os.urandom(100_000))
    with cas(srv, "bob/pub", "write", BOB) as c:
        # a xorb whose hash does not match its chunks
        r = c.post(f"/v1/xorbs/default/{hash_to_hex(other.xorb_hash)}", content=up.xorb)
        assert r.status_code == 400 and "hash" in r.json()["error"]
        assert srv.xet.xorb(hash_to_hex(other.xorb_hash)) is None
        assert c.post("/v1/xorbs/default/NOTAHASH", content=up.xorb).status_code == 400
        # a shard naming a xorb that was never uploaded
        assert c.post("/v1/shards", content=up.shard()).status_code == 400
        assert up.put_xorb(c).status_code == 200
        n = len(up.chunks)
        lies = {
            "file hash": {"file_hash": other.file_hash},
            "range past the xorb": {"segments": (shard.Segment(up.xorb_hash, len(up.data), 0, n + 1),)},
            "segment size": {"segments": (shard.Segment(up.xorb_hash, len(up.data) - 1, 0, n),)},
            "verification hash": {"verification": (other.verification,)},
            "sha256": {"sha256": hex_to_hash(other.sha256)},
        }
        for what, edit in lies.items():
            r = c.post("/v1/shards", content=up.shard(**edit))
            assert r.status_code == 400, (what, r.text)
        bad_info = shard.XorbInfo(up.xorb_hash, up.xorb_info.chunks[:-1], 0, 0)
        assert c.post("/v1/shards", content=shard.serialize_shard([], [bad_info])).status_code == 400
        assert c.post("/v1/shards", content=b"not a shard").status_code == 400
        assert not srv.store.has_blob(up.sha256) and srv.xet.file(hash_to_hex(up.file_hash)) is None
        # the honest shard is accepted and the commit names the verified sha256
        assert c.post("/v1/shards", content=up.shard()).json() == {"result": 1}
        assert c.post("/v1/shards", content=up.shard()).json() == {"result": 0}
    assert _commit(srv, "bob/pub", BOB, up).status_code == 200
    r = httpx.get(f"{srv.url}/bob/pub/resolve/main/w.bin", follow_redirects=True)
    assert r.content == up.data and r.headers["X-Xet-Hash"] == hash_to_hex(up.file_hash)


def test_borrowing_another_users_private_xorbs_and_files_is_refused(srv: HubServer) -> None:
    secret = _alice_secret(srv)
    fh = hash_to_hex(secret.file_hash)
    with cas(srv, "bob/pub", "write", BOB) as c:
        # a shard claiming ranges of a xorb bob cannot read
        r = c.post("/v1/shards", content=secret.shard())
        assert r.status_code == 400 and "not uploaded to a repo you can read" in r.json()["error"]
        files_only = shard.serialize_shard([shard.parse_shard(secret.shard()).files[0]], [])
        r = c.post("/v1/shards", content=files_only)  # the same answer as for a xorb that does not exist
        assert r.status_code == 400 and "not uploaded (or not to a repo you can" in r.json()["error"]
        # the dedup query does not reveal alice's chunks to him
        assert c.get(f"/v1/chunks/default/{hash_to_hex(chunk_hash(secret.chunks[0]))}").status_code == 404
        # a reconstruction request for alice's private file
        assert c.get(f"/v1/reconstructions/{fh}").status_code == 404
    # nor can he commit its sha256 into his repo
    assert _commit(srv, "bob/pub", BOB, secret).status_code == 422
    with cas(srv, "alice/secret", "read", ALICE) as c:
        assert c.get(f"/v1/reconstructions/{fh}").status_code == 200
        hit = c.get(f"/v1/chunks/default/{hash_to_hex(chunk_hash(secret.chunks[0]))}")
        assert hit.status_code == 200
        assert shard.parse_shard(hit.content).xorbs[0].xorb == secret.xorb_hash
        assert c.get("/v1/chunks/default/zz").status_code == 400
        assert c.get("/v2/reconstructions/" + fh).status_code == 404  # v1 only: clients fall back


def _reconstruct(c: httpx.Client, fh: str, rng: str | None = None) -> bytes:
    r = c.get(f"/v1/reconstructions/{fh}", headers={"Range": rng} if rng else {})
    assert r.status_code == 200, r.text
    rec = r.json()
    out = bytearray()
    for t in rec["terms"]:
        fi = next(f for f in rec["fetch_info"][t["hash"]] if f["range"] == t["range"])
        ur = fi["url_range"]
        raw = httpx.get(fi["url"], headers={"Range": f"bytes={ur['start']}-{ur['end']}"}).content
        piece = bytearray()
        pos = 0
        while pos < len(raw):
            clen = int.from_bytes(raw[pos + 1 : pos + 4], "little")
            ulen = int.from_bytes(raw[pos + 5 : pos + 8], "little")
            piece += xorb.decode_chunk(raw[pos + 4], raw[pos + 8 : pos + 8 + clen], ulen)
            pos += 8 + clen
        assert len(piece) == t["unpacked_length"]
        out += piece
    return bytes(out[rec["offset_into_first_range"] :])


def test_reconstruction_with_byte_ranges_and_signed_fetches(srv: HubServer) -> None:
    secret = _alice_secret(srv)
    fh = hash_to_hex(secret.file_hash)
    data = secret.data
    with cas(srv, "alice/secret", "read", ALICE) as c:
        assert _reconstruct(c, fh) == data
        assert _reconstruct(c, fh, "bytes=150000-151999")[:2000] == data[150_000:152_000]
        assert _reconstruct(c, fh, f"bytes={len(data) - 1}-")[:1] == data[-1:]
        assert c.get(f"/v1/reconstructions/{fh}", headers={"Range": f"bytes={len(data)}-"}).status_code == 416
        assert c.get(f"/v1/reconstructions/{fh}", headers={"Range": "bytes=5-1,7-9"}).status_code == 400
        url = c.get(f"/v1/reconstructions/{fh}").json()["fetch_info"][hash_to_hex(secret.xorb_hash)][0]["url"]
    assert httpx.get(url.replace("s=", "s=0")).status_code == 403  # forged signature
    assert httpx.get(url.replace("r=0-", "r=1-")).status_code == 403  # another range, same signature
    assert httpx.get(url, headers={"Range": "bytes=0-999999999"}).status_code == 403  # beyond the grant
    assert httpx.get(url.split("?")[0]).status_code == 403
    assert httpx.head(url).status_code == 206
