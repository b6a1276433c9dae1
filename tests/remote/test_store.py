"""The remote store interface, the shared CAS, the lease lock and `remote check`, on moto S3 and file://."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from batuta_sync.errors import UsageError, WorkspaceBusyError
from batuta_sync.ids import InvalidIdentifierError
from batuta_sync.remote import open_remote
from batuta_sync.remote.cas import SharedStore, blob_key, run_key, tree_key
from batuta_sync.remote.check import run_check
from batuta_sync.remote.lease import acquire, force_unlock, lock_key
from batuta_sync.remote.store import PreconditionFailed, RemoteError


def test_conditional_writes(remote_url: str) -> None:
    store = open_remote(remote_url)
    assert store.put_if_absent("a/b.json", b"one") is True
    assert store.put_if_absent("a/b.json", b"two") is False
    body, etag = store.get("a/b.json") or (b"", "")
    assert body == b"one"
    new = store.put_if_match("a/b.json", b"two", etag)
    assert new and new != etag
    with pytest.raises(PreconditionFailed):
        store.put_if_match("a/b.json", b"three", etag)
    assert (store.get("a/b.json") or (b"",))[0] == b"two"
    info = store.head("a/b.json")
    assert info is not None and info.size == 3
    assert store.exists("a/b.json") and not store.exists("a/nope") and not store.exists("a")
    with pytest.raises(PreconditionFailed):
        store.delete_if_match("a/b.json", etag)
    store.delete_if_match("a/b.json", info.etag)
    assert store.head("a/b.json") is None and store.get("a/b.json") is None
    store.delete_if_match("a/b.json", "whatever")  # missing is fine
    store.put_if_absent("x/1", b"1")
    store.put_if_absent("x/2/3", b"23")
    assert sorted(i.key for i in store.list("x/")) == ["x/1", "x/2/3"]
    assert store.get_to_file("nope", Path("/nonexistent/never")) is None


@pytest.mark.parametrize("key", ["../escape", "/abs", "a//b", "a/./b", ""])
def test_keys_are_confined(remote_url: str, key: str, tmp_path: Path) -> None:
    store = open_remote(remote_url)
    with pytest.raises(RemoteError):
        store.put_if_absent(key, b"x")
    assert not (tmp_path / "escape").exists()


def test_cas_blobs_verified_on_read(remote_url: str, tmp_path: Path) -> None:
    shared = SharedStore(open_remote(remote_url))
    src = tmp_path / "blob"
    src.write_bytes(b"weights" * 1000)
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    assert shared.put_blob(sha, src) is True
    assert shared.put_blob(sha, src) is False  # create-only: the second writer's put is a no-op
    assert shared.has_blob(sha)
    dest = tmp_path / "out" / "blob"
    res = shared.fetch_blob(sha, dest, size=7000)
    assert res.hit and dest.read_bytes() == src.read_bytes()
    # a lying remote: bytes under a name they do not hash to count as a miss, nothing is written
    other = "c" * 64
    shared.store.put_if_absent(blob_key(other), b"not what the name says")
    bad = tmp_path / "out" / "bad"
    res = shared.fetch_blob(other, bad)
    assert not res.hit and res.corrupt and not bad.exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["blob"]
    # larger than the expected size: refused before it is written
    with pytest.raises(RemoteError):
        shared.fetch_blob(sha, tmp_path / "out" / "small", size=10)
    assert not shared.fetch_blob("d" * 64, tmp_path / "out" / "missing").hit
    # git blobs are named by their git sha1
    gsha = hashlib.sha1(b"blob 5\0hello").hexdigest()
    (tmp_path / "g").write_bytes(b"hello")
    shared.put_blob(gsha, tmp_path / "g")
    assert blob_key(gsha).startswith("cas/gitsha1/")
    assert shared.fetch_blob(gsha, tmp_path / "out" / "g").hit


def test_listings_and_runs_validated(remote_url: str) -> None:
    shared = SharedStore(open_remote(remote_url))
    commit = "a" * 40
    listing = {"format_version": 1, "files": {"config.json": {"size": 2, "blob_id": "b" * 40},
                                              "m.safetensors": {"size": 9, "blob_id": "c" * 40, "lfs_sha256": "d" * 64}}}
    assert shared.put_listing("model", "org/m", commit, listing)
    assert shared.get_listing("model", "org/m", commit) == listing
    assert shared.get_listing("model", "org/m", "e" * 40) is None
    hostile = {"files": {"../../etc/passwd": {"size": 1, "blob_id": "b" * 40}}}
    shared.store.put_if_absent(tree_key("model", "org/evil", commit), __import__("json").dumps(hostile).encode())
    assert shared.get_listing("model", "org/evil", commit) is None
    memo = "sha256:" + "f" * 64
    assert shared.put_run(memo, {"m-Q4_K_M.gguf": {"sha256": "1" * 64, "size": 10}})
    assert shared.get_run(memo) == {"m-Q4_K_M.gguf": {"sha256": "1" * 64, "size": 10}}
    assert shared.get_run("0" * 64) is None


@pytest.mark.parametrize(
    ("fn", "arg"),
    [(blob_key, "../x"), (run_key, "sha256:zz"), (lock_key, "../x"), (lock_key, "")],
)
def test_keys_only_from_identifiers(fn: object, arg: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        fn(arg)  # type: ignore[operator]
    with pytest.raises(InvalidIdentifierError):
        tree_key("model", "org/../x", "a" * 40)
    with pytest.raises(InvalidIdentifierError):
        tree_key("models", "org/x", "a" * 40)


def test_lease_lock_one_holder_takeover_after_expiry(remote_url: str) -> None:
    store = open_remote(remote_url)
    now = [1000.0]
    clock = lambda: now[0]  # noqa: E731
    first = acquire(store, "lineage-1", plan_id="p1", ttl=60, clock=clock)
    with pytest.raises(WorkspaceBusyError) as ei:
        acquire(store, "lineage-1", ttl=60, clock=clock)
    assert first.id in (ei.value.hint or "") and "pid" in ei.value.message
    assert first.renew()
    # the holder dies (stops renewing); after its lease expires another runner takes over
    now[0] += 61
    second = acquire(store, "lineage-1", ttl=60, clock=clock)
    assert second.id != first.id
    assert not first.renew() and first.lost  # the old holder learns it lost the lease
    first.release()  # a lost lease releases nothing
    with pytest.raises(WorkspaceBusyError):
        acquire(store, "lineage-1", ttl=60, clock=clock)
    second.release()
    third = acquire(store, "lineage-1", ttl=60, clock=clock)
    third.release()


def test_lease_wait_then_acquire(remote_url: str) -> None:
    store = open_remote(remote_url)
    held = acquire(store, "lin", ttl=600)
    waited: list[str] = []

    def sleep(_s: float) -> None:
        held.release()

    got = acquire(store, "lin", ttl=600, wait=30, sleep=sleep, on_wait=lambda r: waited.append(r.id))
    assert waited == [held.id]
    got.release()


def test_force_unlock(remote_url: str) -> None:
    store = open_remote(remote_url)
    lease = acquire(store, "lin2", ttl=600)
    lease._stop.set()
    assert force_unlock(store, lease.id) == "locks/lin2.json"
    acquire(store, "lin2", ttl=600).release()
    with pytest.raises(UsageError):
        force_unlock(store, "no-such-id")


def test_lease_race_has_one_winner(remote_url: str) -> None:
    store = open_remote(remote_url)
    winners: list[str] = []
    losers: list[str] = []

    def go() -> None:
        try:
            winners.append(acquire(store, "race", ttl=600).id)
        except WorkspaceBusyError:
            losers.append("x")

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(winners) == 1 and len(losers) == 5


def test_remote_check_passes_on_good_stores(remote_url: str) -> None:
    report = run_check(open_remote(remote_url))
    assert report.ok and report.locks_safe, report.to_json()
    assert [r.name for r in report.results] == ["create-race", "read-after-write", "stale-if-match", "stale-delete"]
    assert list(open_remote(remote_url).list("_check/")) == []


def test_remote_check_catches_a_store_that_ignores_conditions(tmp_path: Path) -> None:
    from batuta_sync.remote._file import FileStore

    class Sloppy(FileStore):
        def put_if_absent(self, key: str, data: bytes | Path) -> bool:  # last writer wins, every writer "wins"
            p = self._path(key)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data if isinstance(data, bytes) else Path(data).read_bytes())
            return True

        def put_if_match(self, key: str, data: bytes, etag: str) -> str:
            self._path(key).write_bytes(data)
            return hashlib.sha256(data).hexdigest()

    report = run_check(Sloppy(tmp_path / "r"))
    assert not report.ok and not report.locks_safe
    assert {r.name for r in report.results if not r.ok} >= {"create-race", "stale-if-match"}


@pytest.mark.parametrize(
    "url", ["http://x", "s3://UPPER/x", "s3://key:secret@bucket/x", "s3://bucket/../x", "file://host/x", "file:rel"]
)
def test_bad_remote_urls(url: str) -> None:
    with pytest.raises(UsageError) as ei:
        open_remote(url)
    assert "secret" not in ei.value.render()


def test_s3_errors_name_bucket_never_credentials(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_remote("s3://no-such-bucket-x/p")
    with pytest.raises(RemoteError) as ei:
        store.put_if_absent("k", b"x")
    text = ei.value.render()
    assert "s3://no-such-bucket-x/p" in text and "testing-secret" not in text
