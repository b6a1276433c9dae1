"""The route table (server/routes.py): methods and arity per repo API head, and the fall-through
rules of the first path segment, driven over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2 as httpx  # the one HTTP client library (huggingface_hub installs it)
import pytest

from batuta_sync.server import HubServer
from batuta_sync.server.routes import ANY, MANY, ONE, REPO_API

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


@pytest.fixture
def c(hub_server: HubServer) -> Iterator[httpx.Client]:
    hub_server.store.commit("o/r", {"config.json": b"{}"})
    hub_server.store.commit("o/r", {"app.py": b"print(1)\n"}, repo_type="space")
    with httpx.Client(base_url=hub_server.url, timeout=30) as client:
        yield client


def _unrouted(r: httpx.Response) -> bool:
    """The route table's own miss (not a handler's 404 for a missing repo or file)."""
    return r.status_code == 404 and r.headers.get("X-Error-Message", "").startswith("Not found: ")


def _path(head: str, arity: str) -> str:
    kind = "spaces" if head == "runtime" else "models"  # runtime: a space route (below)
    return f"/api/{kind}/o/r/{head}" + ("" if arity == ONE else "/main")


@pytest.mark.parametrize("head", sorted(h for h, (arity, _, _) in REPO_API.items() if arity != ANY))
def test_a_repo_api_head_answers_only_its_methods(c: httpx.Client, head: str) -> None:
    arity, methods, _ = REPO_API[head]
    for m in METHODS:
        r = c.request(m, _path(head, arity))
        assert _unrouted(r) == (m not in methods), (m, head, r.status_code, r.text)


@pytest.mark.parametrize("head", sorted(h for h, (arity, _, _) in REPO_API.items() if arity != ANY))
def test_a_repo_api_head_answers_only_its_arity(c: httpx.Client, head: str) -> None:
    arity, methods, _ = REPO_API[head]
    wrong = _path(head, arity) + "/main" if arity == ONE else _path(head, arity).removesuffix("/main")
    assert _unrouted(c.request(sorted(methods)[0], wrong))
    if arity == MANY:
        assert not _unrouted(c.request(sorted(methods)[0], f"/api/models/o/r/{head}/refs%2Fpr%2F1/x"))


def test_the_xet_token_heads_take_any_method_and_length(c: httpx.Client) -> None:
    for head in ("xet-read-token", "xet-write-token"):
        assert REPO_API[head][0] == ANY
        for m in METHODS:
            assert not _unrouted(c.request(m, f"/api/models/o/r/{head}"))


def test_runtime_is_a_space_route(c: httpx.Client) -> None:
    assert _unrouted(c.get("/api/models/o/r/runtime"))
    r = c.get("/api/spaces/o/r/runtime")
    assert r.status_code == 200 and r.json()["stage"] == "RUNNING"


def test_unknown_heads_and_bare_repo_paths(c: httpx.Client) -> None:
    assert _unrouted(c.get("/api/models/o/r/nothing-here/main"))
    assert _unrouted(c.post("/api/models/o/r"))  # the info route is GET only
    assert c.get("/api/models/o/r").json()["id"] == "o/r"
    assert _unrouted(c.get("/api/whoami-v2/x")) and _unrouted(c.get("/api/repos/create"))
    assert c.post("/api/repos/move").status_code == 501


def test_a_first_segment_that_does_not_match_its_protocol_falls_through_to_repo_paths(
    hub_server: HubServer, c: httpx.Client
) -> None:
    """``/v2/…`` of another shape, ``/lfs-upload/…`` with GET: repo paths, like any namespace."""
    hub_server.store.commit("v2/x", {"config.json": b'{"v2": 1}'})
    hub_server.store.commit("lfs-upload/y", {"config.json": b'{"lfs": 1}'})
    assert c.get("/v2/x/resolve/main/config.json").content == b'{"v2": 1}'
    assert c.get("/lfs-upload/y/resolve/main/config.json").content == b'{"lfs": 1}'
    assert _unrouted(c.get("/lfs-upload/ticket"))
    assert _unrouted(c.get("/cdn-lfs/model/o/r/resolve/x"))  # six segments: not a CDN path


def test_the_repo_api_table_is_pinned() -> None:
    """The heads, their arity and methods (as the Hub's API has them; docs/hub-server.md)."""
    expected = {
        "revision": (MANY, {"GET"}),
        "tree": (MANY, {"GET"}),
        "paths-info": (MANY, {"POST"}),
        "refs": (ONE, {"GET"}),
        "commits": (MANY, {"GET"}),
        "preupload": (MANY, {"POST"}),
        "commit": (MANY, {"POST"}),
        "branch": (MANY, {"POST", "DELETE"}),
        "tag": (MANY, {"POST", "DELETE"}),
        "settings": (ONE, {"PUT"}),
        "like": (ONE, {"POST", "DELETE"}),
        "runtime": (ONE, {"GET"}),
        "xet-read-token": (ANY, {"GET", "HEAD", *METHODS}),
        "xet-write-token": (ANY, {"GET", "HEAD", *METHODS}),
    }
    assert {h: (arity, set(methods)) for h, (arity, methods, _) in REPO_API.items()} == expected
