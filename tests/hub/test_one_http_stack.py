"""Issue 15 point 1: one HTTP client library (httpx2, which huggingface_hub 2.x is built on),
one retry loop, one User-Agent.

* the project's declared requirements (``[project] dependencies`` of pyproject.toml, followed
  through the installed distributions' own requirements) bring exactly one HTTP client library;
  the test extra's peers (moto's S3 server needs ``requests``) are test peers, not requirements
  of batuta;
* no module of batuta_sync or of the tests imports another HTTP client library or tenacity;
* metadata calls, downloads and pushes send the same User-Agent (the server's request log).
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from batuta_sync.hub.auth import USER_AGENT
from batuta_sync.server import HubServer
from batuta_sync.settings import Settings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - huggingface_hub requires tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
#: distributions that are HTTP client libraries (a second one means users install two stacks)
HTTP_CLIENTS = frozenset({"httpx", "httpx2", "requests", "urllib3", "aiohttp", "pycurl", "httplib2", "niquests"})
#: HTTP client libraries a dependency pulls in for its own tools, not used by batuta: gguf (llama.cpp's
#: gguf-py) requires requests for its scripts; batuta only reads and writes GGUF files with it.
#: The way out is gguf as an extra (or issue 15 point 2's own GGUF reader): see docs/_drafts/http.md.
ALLOWED_THROUGH = {"gguf": frozenset({"requests"})}
#: modules nobody in the project may import any more
FORBIDDEN_IMPORTS = frozenset({"httpx", "httpcore", "requests", "urllib3", "aiohttp", "tenacity"})


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> list[Requirement]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return [Requirement(r) for r in data["project"]["dependencies"]]


def _closure(reqs: list[Requirement], skipped: set[tuple[str, str]] | None = None) -> set[str]:
    """Every distribution the requirements pull in (as installed here), markers evaluated; the
    :data:`ALLOWED_THROUGH` edges are left out and recorded in ``skipped``."""
    seen: set[str] = set()
    todo = [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]
    while todo:
        req = todo.pop()
        name = _norm(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            continue
        extras = req.extras or {""}
        for raw in dist.requires or ():
            sub = Requirement(raw)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
                if _norm(sub.name) in ALLOWED_THROUGH.get(name, ()):
                    if skipped is not None:
                        skipped.add((name, _norm(sub.name)))
                    continue
                todo.append(sub)
    return seen


def test_declared_requirements_bring_one_http_client_library() -> None:
    reqs = _declared()
    direct = {_norm(r.name) for r in reqs} & HTTP_CLIENTS
    assert direct == {"httpx2"}, direct  # httpx 0.28 was declared next to huggingface_hub's httpx2
    skipped: set[tuple[str, str]] = set()
    assert _closure(reqs, skipped) & HTTP_CLIENTS == {"httpx2"}
    assert skipped <= {(dist, lib) for dist, libs in ALLOWED_THROUGH.items() for lib in libs}
    assert "tenacity" not in {_norm(r.name) for r in reqs}  # the retry loop is hub/retry.py
    # the range we declare is within what huggingface_hub asks for (one install, no resolver fight)
    hf = next(Requirement(r) for r in md.requires("huggingface_hub") or () if _norm(Requirement(r).name) == "httpx2")
    ours = next(r for r in reqs if _norm(r.name) == "httpx2")
    assert md.version("httpx2") in ours.specifier and md.version("httpx2") in hf.specifier


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_no_module_imports_a_second_http_stack_or_tenacity() -> None:
    offenders = {}
    for folder in ("batuta_sync", "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "fixtures" in path.parts:
                continue
            bad = _imports(path) & FORBIDDEN_IMPORTS
            if bad:
                offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_metadata_downloads_and_pushes_send_one_user_agent(
    hub_server: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The three paths (HubHttp, the download engine, HfApi pushes) name batuta the same way,
    seen by a recording proxy in front of the Hub (before: three different User-Agents)."""
    from huggingface_hub import close_session

    from batuta_sync.hub import upload
    from batuta_sync.hub._http import HubHttp
    from batuta_sync.hub.cache import CacheLayout
    from batuta_sync.hub.download import Downloader, DownloadJob
    from batuta_sync.types import HfAssetType, RepoFile, RepoRef

    from ._proxy import HttpProxy

    close_session()  # huggingface_hub's shared client reads the proxy variables when it is built
    for var in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    with HttpProxy({"hub.test": "127.0.0.1"}) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        settings = Settings(
            endpoint=hub_server.url.replace("127.0.0.1", "hub.test"),
            hf_home=tmp_path / "hf",
            hub_cache=tmp_path / "hf" / "hub",
        )
        upload.ensure_repo(settings, "acme/ua", HfAssetType.MODEL)
        upload.commit_files(
            settings, "acme/ua", HfAssetType.MODEL, "main", root=tmp_path, uploads=(),
            generated={"a.txt": b"hi\n"}, message="seed",
        )
        with HubHttp(settings, sleep=lambda s: None) as http:
            info = http.get_json("/api/models/acme/ua/revision/main", params={"blobs": "true"})
        sib = next(s for s in info["siblings"] if s["rfilename"] == "a.txt")
        ref = RepoRef("acme/ua")
        f = RepoFile(path="a.txt", size=sib["size"], blob_id=sib["blobId"])
        job = DownloadJob(ref, info["sha"], f, CacheLayout.of(settings.hub_cache, ref))
        Downloader(settings, sleep=lambda s: None).fetch(job)
    close_session()  # later tests get a client without this proxy
    agents: dict[str, set[str]] = {}
    for seen in proxy.seen:
        path = seen.target
        kind = "download" if "/resolve/" in path else "push" if "/repos/create" in path or "/commit/" in path else "metadata"
        agents.setdefault(kind, set()).add(seen.headers.get("user-agent", ""))
    assert set(agents) == {"push", "metadata", "download"}, agents
    assert {ua for uas in agents.values() for ua in uas} == {USER_AGENT}, agents
