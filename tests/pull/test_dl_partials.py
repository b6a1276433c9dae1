"""Partial files without trustworthy locks (security.md DL-3/DL-4): every fetcher writes its own
partial, takes over a resumable one by rename, never touches a published blob, and leaves no
partial behind (except a parked, resumable one after an interruption)."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from batuta_sync._proc import pid_alive
from batuta_sync.client import HfClient
from batuta_sync.errors import DiskFullError, NetworkError
from batuta_sync.hub import download
from batuta_sync.hub.cache import CacheLayout
from batuta_sync.hub.download import CountingProgress, Downloader, DownloadJob, FetchOutcome
from batuta_sync.settings import Settings
from batuta_sync.types import RepoRef

from ._repos import CONFIG, safetensors_bytes

REPO = "org/partials"
BIG = safetensors_bytes(250_000, seed=21)  # ~1 MB, LFS
SHA = hashlib.sha256(BIG).hexdigest()


@pytest.fixture
def job(hub_env: Any, settings: Settings) -> DownloadJob:
    hub_env.store.commit(REPO, {"model.safetensors": BIG, "config.json": CONFIG})
    ref = RepoRef(REPO)
    snap = HfClient(settings).snapshot(ref)
    f = next(f for f in snap.files if f.path == "model.safetensors")
    assert f.etag == SHA
    return DownloadJob(ref, snap.commit, f, CacheLayout.of(settings.hub_cache, ref))


def content_gets(srv: Any) -> list[Any]:
    return [e for e in srv.log.entries if e.method == "GET" and "/cdn-lfs/" in e.path]


def partials(job: DownloadJob) -> list[str]:
    d = job.layout.blobs_dir
    return sorted(p.name for p in d.glob("*.incomplete")) if d.is_dir() else []


def named_partial(job: DownloadJob, *, pid: int, host: str | None = None, tid: int = 1) -> Path:
    job.layout.blobs_dir.mkdir(parents=True, exist_ok=True)
    host = host or download._host_tag()
    return job.layout.blobs_dir / f"{SHA}.{host}-{pid}-{tid}-0badc0de.incomplete"


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


class Hook(CountingProgress):
    """Runs ``action`` once, when the download has received at least ``at`` bytes."""

    def __init__(self, at: int, action: Any) -> None:
        super().__init__()
        self.at, self.action, self.fired = at, action, False

    def advance(self, path: str, nbytes: int) -> None:
        super().advance(path, nbytes)
        if not self.fired and self.done_bytes >= self.at:
            self.fired = True
            self.action()


def publish_elsewhere(job: DownloadJob) -> Path:
    """What a faster fetcher does: its own verified file, then the final name."""
    blob = job.layout.blob_path(SHA)
    tmp = blob.with_name("other-fetcher.tmp")
    tmp.write_bytes(BIG)
    os.link(tmp, blob)
    tmp.unlink()
    return blob


# --------------------------------------------------------------------------- without locks


def test_8_threads_with_locks_that_do_nothing_end_with_one_valid_blob(
    job: DownloadJob, settings: Settings, hub_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DL-4, the huggingface_hub #4306 reproduction: ``flock`` is a no-op; 8 fetchers overlap
    (each request cut after 200 kB, 30 ms apart), with resumes, rate limits and a parked partial."""
    monkeypatch.setattr(fcntl, "flock", lambda *a, **k: None)
    job.layout.blobs_dir.mkdir(parents=True)
    job.layout.incomplete_path(SHA).write_bytes(BIG[:300_000])  # one of them takes this over
    hub_env.faults.configure(
        latency_ms=30, drop_after_bytes=200_000, drop_count=1000, rate_limit=3, retry_after="1",
        path_filter="/cdn-lfs/",
    )
    start = threading.Barrier(8)
    results: list[FetchOutcome | BaseException] = []

    def run() -> None:
        start.wait()
        try:
            results.append(Downloader(settings, sleep=lambda s: None).fetch(job))
        except BaseException as exc:  # pragma: no cover - the assertion below shows it
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(isinstance(r, FetchOutcome) for r in results) and len(results) == 8, results
    assert job.layout.blob_path(SHA).read_bytes() == BIG
    assert partials(job) == []
    assert sorted(p.name for p in job.layout.blobs_dir.iterdir()) == [SHA]
    # the parked partial was taken over by at most one of them (a rename has one winner)
    assert sum(r.resumed_from for r in results if isinstance(r, FetchOutcome)) <= 300_000


def test_a_blob_published_meanwhile_stops_the_download_and_is_not_touched(
    job: DownloadJob, settings: Settings, hub_env: Any
) -> None:
    hub_env.faults.configure(drop_after_bytes=200_000, drop_count=1000, path_filter="/cdn-lfs/")
    seen: dict[str, Any] = {}

    def other() -> None:
        seen["stat"] = os.stat(publish_elsewhere(job))

    out = Downloader(settings, progress=Hook(200_000, other)).fetch(job)
    assert out.cached and out.transferred == 200_000  # stopped at the next request
    assert len(content_gets(hub_env)) == 1
    st = os.stat(job.layout.blob_path(SHA))
    assert (st.st_ino, st.st_mtime_ns) == (seen["stat"].st_ino, seen["stat"].st_mtime_ns)
    assert partials(job) == []


def test_a_blob_published_just_before_ours_is_kept_as_it_is(
    job: DownloadJob, settings: Settings, hub_env: Any
) -> None:
    seen: dict[str, Any] = {}

    def other() -> None:  # after our last byte arrived, before we publish
        seen["stat"] = os.stat(publish_elsewhere(job))

    out = Downloader(settings, progress=Hook(len(BIG), other)).fetch(job)
    assert not out.cached and out.transferred == len(BIG)
    st = os.stat(job.layout.blob_path(SHA))
    assert (st.st_ino, st.st_mtime_ns, st.st_nlink) == (seen["stat"].st_ino, seen["stat"].st_mtime_ns, 1)
    assert job.layout.blob_path(SHA).read_bytes() == BIG and partials(job) == []


def test_a_wrong_file_under_the_final_name_is_replaced(job: DownloadJob, settings: Settings) -> None:
    job.layout.blobs_dir.mkdir(parents=True)
    job.layout.blob_path(SHA).write_bytes(b"truncated")
    out = Downloader(settings).fetch(job)
    assert not out.cached and job.layout.blob_path(SHA).read_bytes() == BIG and partials(job) == []


@pytest.mark.parametrize("blob_there", [False, True], ids=["free", "taken"])
def test_filesystems_without_hard_links_publish_by_rename(
    job: DownloadJob, settings: Settings, monkeypatch: pytest.MonkeyPatch, blob_there: bool
) -> None:
    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    seen: dict[str, Any] = {}

    def other() -> None:
        blob = job.layout.blob_path(SHA)
        blob.write_bytes(BIG)
        seen["ino"] = os.stat(blob).st_ino

    monkeypatch.setattr(os, "link", no_links)
    progress = Hook(len(BIG), other) if blob_there else None
    Downloader(settings, progress=progress).fetch(job)
    assert job.layout.blob_path(SHA).read_bytes() == BIG and partials(job) == []
    if blob_there:
        assert os.stat(job.layout.blob_path(SHA)).st_ino == seen["ino"]


# --------------------------------------------------------------------------- taking partials over


def test_the_partial_of_a_dead_process_is_resumed(job: DownloadJob, settings: Settings, hub_env: Any) -> None:
    pid = dead_pid()
    named_partial(job, pid=pid).write_bytes(BIG[:400_000])
    named_partial(job, pid=pid, tid=2).write_bytes(BIG[:100_000])  # the shorter one: swept at the end
    out = Downloader(settings).fetch(job)
    assert out.resumed_from == 400_000 and out.transferred == len(BIG) - 400_000
    assert [e.status for e in content_gets(hub_env)] == [206]
    assert job.layout.blob_path(SHA).read_bytes() == BIG and partials(job) == []


def test_a_live_fetchers_partial_is_never_taken(job: DownloadJob, settings: Settings, hub_env: Any) -> None:
    live = named_partial(job, pid=os.getpid(), tid=99)  # another thread of this process
    live.write_bytes(BIG[:400_000])
    foreign = named_partial(job, pid=1234, host="0123abcd")  # another host, written a moment ago
    foreign.write_bytes(BIG[:500_000])
    out = Downloader(settings).fetch(job)
    assert out.resumed_from == 0 and [e.status for e in content_gets(hub_env)] == [200]
    assert live.read_bytes() == BIG[:400_000] and foreign.read_bytes() == BIG[:500_000]


def test_another_hosts_partial_untouched_for_an_hour_is_resumed(
    job: DownloadJob, settings: Settings, hub_env: Any
) -> None:
    foreign = named_partial(job, pid=1234, host="0123abcd")
    foreign.write_bytes(BIG[:500_000])
    old = time.time() - 2 * 3600
    os.utime(foreign, (old, old))
    out = Downloader(settings).fetch(job)
    assert out.resumed_from == 500_000 and partials(job) == []


def test_partials_nobody_writes_for_a_week_are_deleted(job: DownloadJob, settings: Settings) -> None:
    week = time.time() - 8 * 86400
    other = job.layout.blobs_dir / ("e" * 64 + ".incomplete")
    reused_pid = named_partial(job, pid=os.getpid(), tid=7)
    for p in (other, reused_pid):
        p.write_bytes(b"x" * 10)
        os.utime(p, (week, week))
    Downloader(settings).fetch(job)
    assert partials(job) == []


def test_a_symlink_posing_as_a_partial_is_ignored(
    job: DownloadJob, settings: Settings, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"keep me")
    job.layout.blobs_dir.mkdir(parents=True)
    job.layout.incomplete_path(SHA).symlink_to(victim)
    Downloader(settings).fetch(job)
    assert victim.read_bytes() == b"keep me" and job.layout.blob_path(SHA).read_bytes() == BIG


def test_free_space_check_counts_what_a_resumable_partial_holds(
    job: DownloadJob, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    named_partial(job, pid=dead_pid()).write_bytes(BIG[:600_000])
    real = shutil.disk_usage
    free = len(BIG) - 600_000 + download.DISK_MARGIN + 1
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=free))
    Downloader(settings).check_disk([job])  # the remainder fits
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=free - 600_000))
    for p in job.layout.blobs_dir.glob("*.incomplete"):
        p.unlink()
    with pytest.raises(DiskFullError):
        Downloader(settings).check_disk([job])


# --------------------------------------------------------------------------- after a failure


def test_a_network_failure_parks_a_resumable_partial(job: DownloadJob, settings: Settings, hub_env: Any) -> None:
    hub_env.faults.configure(drop_after_bytes=300_000, drop_count=1, path_filter="/cdn-lfs/")

    def outage() -> None:
        hub_env.faults.configure(server_errors=100)

    with pytest.raises(NetworkError):
        Downloader(settings, sleep=lambda s: None, progress=Hook(300_000, outage)).fetch(job)
    assert partials(job) == [f"{SHA}.incomplete"]  # parked under the shared name, not leaked
    assert job.layout.incomplete_path(SHA).stat().st_size == 300_000
    hub_env.faults.reset()
    out = Downloader(settings).fetch(job)
    assert out.resumed_from == 300_000 and partials(job) == []


def test_a_shorter_partial_does_not_replace_a_longer_parked_one(
    job: DownloadJob, settings: Settings, hub_env: Any
) -> None:
    job.layout.blobs_dir.mkdir(parents=True)
    parked = job.layout.incomplete_path(SHA)
    hub_env.faults.configure(drop_after_bytes=100_000, drop_count=1, path_filter="/cdn-lfs/")

    def outage() -> None:  # meanwhile an interrupted run parked a longer one
        parked.write_bytes(BIG[:700_000])
        hub_env.faults.configure(server_errors=100)

    # the longer parked one is taken only when we start; ours (100 kB) is dropped on failure
    with pytest.raises(NetworkError):
        Downloader(settings, sleep=lambda s: None, progress=Hook(100_000, outage)).fetch(job)
    assert partials(job) == [f"{SHA}.incomplete"] and parked.stat().st_size == 700_000


def test_other_failures_leave_no_partial(job: DownloadJob, settings: Settings) -> None:
    def bug() -> None:
        raise ValueError("a bug in a progress display")

    with pytest.raises(ValueError):
        Downloader(settings, progress=Hook(1, bug)).fetch(job)
    assert partials(job) == [] and not job.layout.blob_path(SHA).exists()


def test_a_partial_taken_by_someone_else_first_is_skipped(
    job: DownloadJob, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two takers listed the same partial; the rename of the loser fails and it takes the next."""
    gone = named_partial(job, pid=dead_pid())
    second = named_partial(job, pid=dead_pid(), tid=3)
    second.write_bytes(BIG[:200_000])
    real = download._resumable_partials

    def listing(d: Path) -> dict[str, list[tuple[Path, int]]]:
        found = real(d)
        found.setdefault(SHA, []).insert(0, (gone, 900_000))  # listed, but renamed away since
        return found

    monkeypatch.setattr(download, "_resumable_partials", listing)
    mine = download._own_partial_path(job.layout, SHA)
    assert download._claim_partial(job.layout, SHA, mine)
    assert mine.read_bytes() == BIG[:200_000] and not second.exists()
    mine.unlink()
    assert not download._claim_partial(job.layout, "f" * 64, mine)


def test_pid_liveness(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pid_alive(os.getpid()) and pid_alive(os.getppid())
    assert not pid_alive(0) and not pid_alive(dead_pid())

    def eperm(pid: int, sig: int) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "kill", eperm)
    assert pid_alive(4242)  # another user's process: alive
