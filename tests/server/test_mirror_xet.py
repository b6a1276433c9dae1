"""The pull-through mirror in front of a Xet-backed upstream (issue 21 point 2): the upstream's
files were uploaded through Xet by the real client (default install); the mirror fetches them over
HTTP (the upstream rebuilds them from its xorbs), verifies and caches them, and serves them to the
real client with Xet on, to a client with Xet off and to batuta's own pull — byte-identical."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from batuta_sync.server import HubServer
from batuta_sync.server.mirror import MirrorConfig
from tests.publish.fixtures import safetensors_bytes, tiny_model_tensors
from tests.xet._client import run_py

DATA = safetensors_bytes(tiny_model_tensors(3000, 256), {"format": "pt"})  # ~3 MB, a real safetensors file


@pytest.fixture
def up(tmp_path: Path) -> Iterator[HubServer]:
    srv = HubServer(tmp_path / "upstream").start()
    try:
        yield srv
    finally:
        srv.stop()


def test_a_xet_backed_upstream_is_mirrored_for_every_client(tmp_path: Path, up: HubServer) -> None:
    up.store.create_repo("alice/x")
    src = tmp_path / "w.safetensors"
    src.write_bytes(DATA)
    run_py(up.url, f'api.upload_file(path_or_fileobj={str(src)!r}, path_in_repo="w.safetensors", repo_id="alice/x")')
    assert up.xet.bytes_received >= len(DATA)  # stored with Xet upstream, not classic LFS
    mirror = HubServer(tmp_path / "mirror", upstream=MirrorConfig(up.url, backoff=0.01, max_retry_after=0.05)).start()
    try:
        want = hashlib.sha256(DATA).hexdigest()
        code = ("from huggingface_hub import hf_hub_download\n"
                "p = hf_hub_download('alice/x', 'w.safetensors', endpoint=os.environ['HF_ENDPOINT'], "
                "cache_dir={cache!r})\nemit(sha(p))\n")
        for n, xet in enumerate((True, False)):
            got = run_py(mirror.url, code.replace("{cache!r}", repr(str(tmp_path / f"c{n}"))), xet=xet)
            assert got == want, f"xet={xet}"
        from batuta_sync.pull import PullRequest, pull
        from batuta_sync.settings import resolve_settings
        from batuta_sync.types import RepoRef

        res = pull(resolve_settings(flags={"endpoint": mirror.url}), PullRequest(RepoRef("alice/x")))
        assert hashlib.sha256(res.files[0].read_bytes()).hexdigest() == want
        bodies = [e for e in up.log.entries if e.method == "GET" and e.path.startswith(("/cdn-lfs/", "/alice/x/resolve/"))
                  and e.bytes_out >= len(DATA)]
        assert len(bodies) == 1  # three clients, one upstream transfer of the file
    finally:
        mirror.stop()
