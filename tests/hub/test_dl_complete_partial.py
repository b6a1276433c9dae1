"""A parked partial that already holds every byte: the Hub answers the resume ``Range: bytes=N-``
with 416, the engine drains that answer (the keep-alive connection stays usable) and publishes the
verified partial without receiving a byte."""

from __future__ import annotations

from pathlib import Path

from batuta_sync.hub.cache import CacheLayout
from batuta_sync.hub.client import HfClient
from batuta_sync.hub.download import Downloader, DownloadJob
from batuta_sync.server import HubServer
from batuta_sync.settings import Settings
from batuta_sync.types import RepoRef


def test_a_complete_partial_is_published_after_a_416(seeded: HubServer, tmp_path: Path) -> None:
    s = Settings(endpoint=seeded.url, hf_home=tmp_path / "hf", hub_cache=tmp_path / "hf" / "hub")
    ref = RepoRef("acme/tiny-llama")
    snap = HfClient(s).snapshot(ref)
    layout = CacheLayout.of(s.hub_cache, ref)
    jobs = [DownloadJob(ref, snap.commit, f, layout) for f in snap.files if f.path in ("config.json", "README.md")]
    full = Downloader(s).fetch(jobs[0])  # fetch it once to learn the bytes
    assert not full.cached
    blob = layout.blob_path(jobs[0].file.etag)
    data = blob.read_bytes()
    blob.unlink()
    layout.incomplete_path(jobs[0].file.etag).write_bytes(data)  # parked, complete, unverified
    mark = len(seeded.log.entries)
    dl = Downloader(s, jobs=1)
    report = dl.fetch_all(jobs)
    assert blob.read_bytes() == data and not layout.incomplete_path(jobs[0].file.etag).exists()
    by_path = {o.path: o for o in report.outcomes}
    assert by_path[jobs[0].file.path].transferred == 0 and by_path[jobs[0].file.path].resumed_from == len(data)
    statuses = [e.status for e in seeded.log.entries[mark:]]
    assert 416 in statuses and all(o.path in by_path for o in report.outcomes)
