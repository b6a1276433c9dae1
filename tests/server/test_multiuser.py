"""Two users on one server: bob cannot learn of, or obtain, alice's private LFS object by any endpoint.

alice uploads a private file with the real huggingface_hub client; bob (a write user with his own
repo) then tries every endpoint a hostile client could use, over raw HTTP, and the real client's own
upload path.  Each probe is compared with the same probe for an object that exists nowhere: the
answers must be the same (nothing about existence or size leaks).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx  # the one HTTP client library (huggingface_hub installs it)
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import RepositoryNotFoundError

from batuta_sync.server import HubServer, Limits, UserSpec

ALICE, BOB = "tok-alice-aaaaaaaa", "tok-bob-bbbbbbbbbb"
SECRET = b"alice's private weights " + os.urandom(4096)
SECRET_OID = hashlib.sha256(SECRET).hexdigest()
NOWHERE_OID = hashlib.sha256(b"exists nowhere").hexdigest()


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[HubServer]:
    s = HubServer(
        tmp_path / "root",
        users=[UserSpec("alice", ALICE, "write"), UserSpec("bob", BOB, "write")],
        orgs={"acme": ["alice"]},
    ).start()
    try:
        alice = HfApi(endpoint=s.url, token=ALICE)
        alice.create_repo("alice/secret", private=True)
        alice.upload_file(path_or_fileobj=SECRET, path_in_repo="w.bin", repo_id="alice/secret")
        HfApi(endpoint=s.url, token=BOB).create_repo("bob/mine", private=True)
        yield s
    finally:
        s.stop()


def _bob(srv: HubServer) -> httpx.Client:
    return httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {BOB}"}, timeout=30)


def _batch(c: httpx.Client, repo: str, op: str, oid: str, size: int) -> httpx.Response:
    return c.post(
        f"/{repo}.git/info/lfs/objects/batch",
        json={"operation": op, "transfers": ["basic"], "objects": [{"oid": oid, "size": size}]},
    )


def _commit(c: httpx.Client, repo: str, oid: str, size: int, path: str = "stolen.bin") -> httpx.Response:
    lines = [
        {"key": "header", "value": {"summary": "take it", "description": ""}},
        {"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": oid, "size": size}},
    ]
    body = b"\n".join(json.dumps(x).encode() for x in lines)
    return c.post(
        f"/api/models/{repo}/commit/main", content=body, headers={"Content-Type": "application/x-ndjson"}
    )


def _same(answer: Any) -> Any:
    """``answer`` with alice's oid replaced by the nowhere oid (to compare the two answers)."""
    return json.loads(json.dumps(answer).replace(SECRET_OID, NOWHERE_OID))


def test_batch_upload_answers_needs_upload_for_an_object_bob_cannot_read(srv: HubServer) -> None:
    with _bob(srv) as c:
        for size in (len(SECRET), 1):
            mine = _batch(c, "bob/mine", "upload", SECRET_OID, size).json()["objects"][0]
            nowhere = _batch(c, "bob/mine", "upload", NOWHERE_OID, size).json()["objects"][0]
            assert "upload" in mine["actions"] and mine["size"] == size  # "send the bytes", like for nothing
            assert set(mine) == set(nowhere) and mine["actions"].keys() == nowhere["actions"].keys()
        # the upload ticket proves possession: other bytes do not hash to alice's oid
        assert c.put(mine["actions"]["upload"]["href"], content=b"x").status_code == 422
        # verify says nothing about alice's object either (the old /lfs-verify told existence and size)
        verify = mine["actions"]["verify"]["href"]
        assert c.post(verify, json={"oid": SECRET_OID, "size": len(SECRET)}).status_code == 404
        assert c.post("/lfs-verify", json={"oid": SECRET_OID, "size": 1}).status_code == 404


def test_commit_referencing_alices_oid_is_refused_like_a_missing_one(srv: HubServer) -> None:
    with _bob(srv) as c:
        stolen = _commit(c, "bob/mine", SECRET_OID, len(SECRET))
        missing = _commit(c, "bob/mine", NOWHERE_OID, len(SECRET))
        wrong_size = _commit(c, "bob/mine", SECRET_OID, 1)  # must not say "has size N"
        assert stolen.status_code == missing.status_code == wrong_size.status_code == 422
        assert _same(stolen.json()) == missing.json()
        assert str(len(SECRET)) not in wrong_size.text
        assert "upload its content first" in stolen.json()["error"]
        # nothing was committed, nothing can be downloaded from bob's repo
        assert c.get("/bob/mine/resolve/main/stolen.bin", follow_redirects=True).status_code == 404
    assert "stolen.bin" not in srv.store.commit_of("bob/mine").files


def test_download_endpoints_reveal_nothing_to_bob(srv: HubServer, tmp_path: Path) -> None:
    sha = srv.store.resolve("alice/secret", "main")
    bob_sha = srv.store.resolve("bob/mine", "main")
    with _bob(srv) as c:
        # batch download in his own repo: "does not exist", exactly as for an oid that exists nowhere
        mine = _batch(c, "bob/mine", "download", SECRET_OID, len(SECRET)).json()
        assert _same(mine) == _batch(c, "bob/mine", "download", NOWHERE_OID, len(SECRET)).json()
        assert mine["objects"][0]["error"]["code"] == 404
        # alice's repo is invisible on every read endpoint
        probes = [
            c.post("/alice/secret.git/info/lfs/objects/batch", json={"operation": "download", "objects": []}),
            c.get(f"/cdn-lfs/model/alice/secret/resolve/{sha}/{SECRET_OID}"),
            c.get(f"/cdn-lfs/model/bob/mine/resolve/{bob_sha}/{SECRET_OID}"),
            c.get("/alice/secret/resolve/main/w.bin"),
            c.get(f"/alice/secret/resolve/{sha}/w.bin"),
            c.get("/api/models/alice/secret"),
            c.get(f"/api/models/alice/secret/revision/{sha}"),
            c.get("/api/models/alice/secret/tree/main"),
            c.post("/api/models/alice/secret/paths-info/main", json={"paths": ["w.bin"]}),
            c.get("/api/models/alice/secret/refs"),
            c.get("/api/models/alice/secret/commits/main"),
        ]
        assert [p.status_code for p in probes] == [404] * len(probes)
        assert all(SECRET_OID not in p.text and str(len(SECRET)) not in p.text for p in probes)
        for query in ({"search": "secret"}, {"author": "alice"}, {"full": "true"}):
            listing = c.get("/api/models", params=query)
            assert listing.status_code == 200 and "alice/secret" not in listing.text
    bob = HfApi(endpoint=srv.url, token=BOB)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("alice/secret", "w.bin", endpoint=srv.url, token=BOB, cache_dir=tmp_path / "c")
    with pytest.raises(RepositoryNotFoundError):
        bob.model_info("alice/secret", files_metadata=True)
    assert [m.id for m in bob.list_models(author="alice")] == []


def test_real_client_upload_of_the_same_bytes_must_send_them(srv: HubServer, tmp_path: Path) -> None:
    """Proof by upload: bob, who has the same bytes, uploads them like anyone else (the server does
    not say "already there"); alice, who can read her object, does not need to send them again."""
    bob = HfApi(endpoint=srv.url, token=BOB)
    srv.log.clear()
    bob.upload_file(path_or_fileobj=SECRET, path_in_repo="same.bin", repo_id="bob/mine")
    assert srv.log.count("PUT", "/lfs-upload/") == 1
    got = hf_hub_download("bob/mine", "same.bin", endpoint=srv.url, token=BOB, cache_dir=tmp_path / "b")
    assert Path(got).read_bytes() == SECRET
    alice = HfApi(endpoint=srv.url, token=ALICE)
    alice.create_repo("acme/copy", private=True)
    srv.log.clear()
    alice.upload_file(path_or_fileobj=SECRET, path_in_repo="w.bin", repo_id="acme/copy")
    assert srv.log.count("PUT", "/lfs-upload/") == 0  # readable by her: "already present"
    # Once bob has uploaded it to his repo, he may reference it in another commit of his.
    with _bob(srv) as c:
        assert _commit(c, "bob/mine", SECRET_OID, len(SECRET), "again.bin").status_code == 200


def test_a_readable_repo_makes_its_objects_referencable(srv: HubServer) -> None:
    with _bob(srv) as c:
        assert _commit(c, "bob/mine", SECRET_OID, len(SECRET)).status_code == 422
        HfApi(endpoint=srv.url, token=ALICE).update_repo_settings("alice/secret", private=False)
        r = _commit(c, "bob/mine", SECRET_OID, len(SECRET))
        assert r.status_code == 200, r.text  # public now: bob could download it anyway
        assert _commit(c, "bob/mine", SECRET_OID, 1).status_code == 422  # the size still has to match
        HfApi(endpoint=srv.url, token=ALICE).delete_repo("alice/secret")
        # bob's commit holds the object now: it stays readable through his repo
        assert c.get("/bob/mine/resolve/main/stolen.bin", follow_redirects=True).content == SECRET


def test_upload_ticket_is_bound_to_its_repo_and_object(srv: HubServer) -> None:
    data = b"bob's own object " * 100
    oid = hashlib.sha256(data).hexdigest()
    with _bob(srv) as c:
        item = _batch(c, "bob/mine", "upload", oid, len(data)).json()["objects"][0]
        href, verify = item["actions"]["upload"]["href"], item["actions"]["verify"]["href"]
        assert httpx.put(href.replace("/lfs-upload/", "/lfs-upload/x"), content=data).status_code == 403
        assert httpx.put(href, content=data).status_code == 200  # no auth on the PUT, as on the Hub
        assert httpx.put(href, content=data).status_code == 200  # a retried PUT: accepted, ignored
        assert c.post(verify, json={"oid": oid, "size": len(data)}).status_code == 200
        assert c.post(verify, json={"oid": oid, "size": 3}).status_code == 422
    # bob's object belongs to bob/mine only: alice cannot reference it in her repo
    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {ALICE}"}, timeout=30) as a:
        assert _commit(a, "alice/secret", oid, len(data)).status_code == 422
        item = _batch(a, "alice/secret", "upload", oid, len(data)).json()["objects"][0]
        assert "upload" in item["actions"]
        # bob cannot negotiate uploads into alice's repo, nor download from it
        with _bob(srv) as c:
            assert _batch(c, "alice/secret", "upload", oid, len(data)).status_code == 404
    # the upload's repo is gone before the bytes arrive: refused
    HfApi(endpoint=srv.url, token=BOB).create_repo("bob/tmp")
    with _bob(srv) as c:
        item = _batch(c, "bob/tmp", "upload", NOWHERE_OID, 3).json()["objects"][0]
    HfApi(endpoint=srv.url, token=BOB).delete_repo("bob/tmp")
    assert httpx.put(item["actions"]["upload"]["href"], content=b"abc").status_code == 404


def test_upload_tickets_are_bounded_and_expire(tmp_path: Path) -> None:
    limits = Limits(max_pending_uploads=2, upload_ticket_ttl=3600)
    with HubServer(tmp_path / "r", limits=limits) as s, httpx.Client(base_url=s.url, timeout=30) as c:
        s.store.create_repo("local/t")
        objs = [{"oid": hashlib.sha256(b"%d" % i).hexdigest(), "size": 1} for i in range(3)]
        r = c.post("/local/t.git/info/lfs/objects/batch", json={"operation": "upload", "objects": objs[:2]})
        assert r.status_code == 200
        first = r.json()["objects"][0]["actions"]["upload"]["href"]
        r = c.post("/local/t.git/info/lfs/objects/batch", json={"operation": "upload", "objects": objs[2:]})
        assert r.status_code == 503 and r.headers["Retry-After"]
        assert c.put(first, content=b"0").status_code == 200  # a used ticket frees its slot
        r = c.post("/local/t.git/info/lfs/objects/batch", json={"operation": "upload", "objects": objs[2:]})
        assert r.status_code == 200
    expired = Limits(upload_ticket_ttl=0)
    with HubServer(tmp_path / "r2", limits=expired) as s, httpx.Client(base_url=s.url, timeout=30) as c:
        s.store.create_repo("local/t")
        r = c.post("/local/t.git/info/lfs/objects/batch", json={"operation": "upload", "objects": objs[:1]})
        assert c.put(r.json()["objects"][0]["actions"]["upload"]["href"], content=b"0").status_code == 403


def test_malformed_batch_objects(srv: HubServer) -> None:
    with _bob(srv) as c:
        url = "/bob/mine.git/info/lfs/objects/batch"
        assert c.post(url, json=[1]).status_code == 400
        assert c.post(url, json={"operation": "upload", "objects": "x"}).status_code == 400
        r = c.post(url, json={"operation": "upload", "objects": [{"oid": SECRET_OID, "size": "big"}]})
        assert r.json()["objects"][0]["error"]["code"] == 422
        inline = base64.b64encode(b"fine").decode()
        body = json.dumps({"key": "file", "value": {"path": "ok.txt", "content": inline}}).encode()
        assert c.post("/api/models/bob/mine/commit/main", content=body).status_code == 200


def test_open_mode_keeps_working_for_the_real_client(hub_server: HubServer, tmp_path: Path) -> None:
    api = HfApi(endpoint=hub_server.url, token="x")
    api.create_repo("local/o")
    api.upload_file(path_or_fileobj=SECRET, path_in_repo="w.bin", repo_id="local/o")
    api.create_repo("local/o2")
    hub_server.log.clear()
    api.upload_file(path_or_fileobj=SECRET, path_in_repo="w.bin", repo_id="local/o2")
    assert hub_server.log.count("PUT", "/lfs-upload/") == 0  # everything is readable in open mode


def test_ownership_is_rebuilt_from_commits_on_restart(tmp_path: Path) -> None:
    from batuta_sync.server import Store

    store = Store(tmp_path / "s", durable=False)
    first = store.commit("alice/a", {"w.bin": SECRET})
    store.commit("alice/a", {"x.bin": b"later"}, deletes=["w.bin"])
    store.commit("bob/b", {"y.bin": b"bob"})
    (tmp_path / "s" / "objects" / first[:2] / f"{first}.json").unlink()  # a lost commit record
    again = Store(tmp_path / "s", durable=False)
    assert [st.repo_id for st in again.holders(hashlib.sha256(b"later").hexdigest())] == ["alice/a"]
    assert [st.repo_id for st in again.holders(hashlib.sha256(b"bob").hexdigest())] == ["bob/b"]
    assert again.holders(SECRET_OID) == []  # only the lost commit referenced it
    again.delete_repo("bob/b")
    assert again.holders(hashlib.sha256(b"bob").hexdigest()) == []


def test_upload_quota_is_per_user(tmp_path: Path) -> None:
    users = [UserSpec("alice", ALICE, "write"), UserSpec("bob", BOB, "write")]
    with HubServer(tmp_path / "q", users=users, limits=Limits(max_pending_uploads=2)) as s:
        s.store.create_repo("alice/a")
        s.store.create_repo("bob/b")
        objs = [{"oid": hashlib.sha256(b"%d" % i).hexdigest(), "size": 1} for i in range(3)]
        with _bob(s) as c:
            url = "/bob/b.git/info/lfs/objects/batch"
            assert c.post(url, json={"operation": "upload", "objects": objs[:2]}).status_code == 200
            r = c.post(url, json={"operation": "upload", "objects": objs[2:]})
            assert r.status_code == 503 and "bob" in r.json()["error"]
        a = httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {ALICE}"}, timeout=30)
        with a:  # bob's tickets do not use up alice's
            r = a.post("/alice/a.git/info/lfs/objects/batch", json={"operation": "upload", "objects": objs})
            assert r.status_code == 503
            r = a.post(
                "/alice/a.git/info/lfs/objects/batch", json={"operation": "upload", "objects": objs[:2]}
            )
            assert r.status_code == 200
