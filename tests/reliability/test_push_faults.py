"""A push survives ONE injected 429/5xx on its idempotent or unprocessed calls (security.md RL-2/RL-6).

Found by the chaos scenario (report ``failure_reasons``): every failed apply under random faults was a
push that gave up at the first 429/5xx on ``POST /api/repos/create`` (``exist_ok``: idempotent),
``POST /api/validate-yaml`` (read-only) or ``POST .../commit/<rev>`` (a 429 or 503 means the Hub did not
process it; RL-6 allows that retry, and ``parentCommit`` guards against a double commit).  The apply
after converges, so nothing is lost, but one fault costs a whole apply.  Owner: batuta_sync/hub/upload.py
(``HfApi.create_repo`` / ``create_commit`` were called once, without the hub client's retry policy).
Fixed: hub/upload.py runs each call under the client's schedule and shared gate; the commit POST is
replayed only on 429/503 (tested below: a 500 after the commit was sent is reported, not replayed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batuta_sync.server import HubServer
from tests.reliability._harness import CHAOS_ENV, cache_env, run_cli

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "429-on-create-repo": ("/api/repos/create", {"rate_limit": 1, "retry_after": "0"}),
    "502-on-validate-yaml": ("/api/validate-yaml", {"server_errors": 1, "server_error_status": 502}),
    "429-on-commit": ("/api/datasets/rel/pushed/commit/main", {"rate_limit": 1, "retry_after": "0"}),
    "503-on-commit": ("/api/datasets/rel/pushed/commit/main", {"server_errors": 1, "server_error_status": 503}),
}



@pytest.mark.parametrize("case", sorted(CASES))
def test_push_retries_one_fault(case: str, hub_server: HubServer, tmp_path: Path) -> None:
    folder = tmp_path / "to-push"
    folder.mkdir()
    (folder / "data.csv").write_text("a,b\n1,2\n")
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# data\n")
    path, knobs = CASES[case]
    hub_server.faults.configure(path_filter=path, **knobs)
    env = {**cache_env(tmp_path / "home", hub_server.url), **CHAOS_ENV}
    res = run_cli(["hf", "push", "dataset", str(folder), "--repo", "rel/pushed", "-q"], env, tmp_path)
    assert hub_server.faults.injected == 1  # the fault really hit that call
    assert res.code == 0, res.err
    assert hub_server.store.commit_of("rel/pushed", repo_type="dataset").files.keys() >= {"data.csv"}


def test_a_500_on_the_commit_post_is_reported_not_replayed(hub_server: HubServer, tmp_path: Path) -> None:
    """The Hub may have processed a commit that answered 500: replaying it could commit twice."""
    folder = tmp_path / "to-push"
    folder.mkdir()
    (folder / "data.csv").write_text("a,b\n1,2\n")
    hub_server.faults.configure(path_filter="/api/datasets/rel/pushed/commit/main", server_errors=1, server_error_status=500)
    env = {**cache_env(tmp_path / "home", hub_server.url), **CHAOS_ENV}
    res = run_cli(["hf", "push", "dataset", str(folder), "--repo", "rel/pushed", "-q"], env, tmp_path)
    assert hub_server.faults.injected == 1
    assert res.code == 9, (res.code, res.err)  # network: the Hub failed, nothing replayed
    assert "Traceback" not in res.err and "500" in res.err


def test_which_failures_are_replayed() -> None:
    from httpx2 import ConnectError

    from batuta_sync.hub.upload import _may_retry

    class ConnectLikeName(Exception):  # retryability is decided by type, never by a class name
        pass

    commit = "/api/models/o/r/commit/main"
    assert _may_retry(Exception(), 429, commit) and _may_retry(Exception(), 503, commit)
    assert not _may_retry(Exception(), 500, commit) and not _may_retry(Exception(), 502, commit)
    assert _may_retry(Exception(), 502, "/api/models/o/r/preupload/main")
    assert _may_retry(Exception(), 500, "/api/repos/create")
    assert not _may_retry(Exception(), 404, "/api/repos/create")
    assert _may_retry(ConnectError("refused"), None, "") and not _may_retry(TimeoutError(), None, "")
    assert not _may_retry(ConnectLikeName(), None, "")
