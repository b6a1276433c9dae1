"""llama.cpp ``-hf <user>/<repo>[:quant]`` against the local Hub, hosted and mirrored.

``llamacpp_pull`` replays ggml-org/llama.cpp common/hf-cache.cpp (``get_repo_commit``,
``get_repo_files``) and common/download.cpp (``find_best_model``, ``get_split_files``,
``find_best_sibling`` for ``mmproj``, ``common_download_file_single_online``) request by request:
the endpoint from ``MODEL_ENDPOINT`` else ``HF_ENDPOINT`` (a ``/`` appended), ``User-Agent:
llama-cpp/<build>`` and ``Accept: application/json`` on API calls; ``GET api/models/<repo>/refs``
(branch ``main``, else the first); ``GET api/models/<repo>/tree/<commit>?recursive=true`` (files
only, ``lfs.oid`` else ``oid``); the quant-tag selection; then per file ``HEAD`` and ``GET`` of
``<repo>/resolve/<commit>/<path>`` following redirects (ETag, Content-Length, Accept-Ranges read
from the HEAD).  The selection is ported here from the client, independently of the server's
own (registry.pick_gguf), so that a server listing that breaks the client's choice fails this test.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from batuta_sync.server import HubServer
from batuta_sync.server.mirror import MirrorConfig

from . import _gguf_repos

UA = "llama-cpp/b6500"
_NOT_MODEL = ("mmproj", "imatrix", "mtp-", "eagle3-", "dflash-", "dspark-")


def _endpoint() -> str:
    ep = os.environ.get("MODEL_ENDPOINT") or os.environ.get("HF_ENDPOINT") or "https://huggingface.co/"
    return ep if ep.endswith("/") else ep + "/"


def _split(path: str) -> tuple[str, str, int, int] | None:
    if not path.endswith(".gguf"):
        return None
    prefix, index, count = path[:-5], 1, 1
    m = re.match(r"^(.+)-([0-9]{5})-of-([0-9]{5})$", prefix, re.IGNORECASE)
    if m:
        prefix, index, count = m.group(1), int(m.group(2)), int(m.group(3))
    t = re.search(r"[-.]([A-Z0-9_]+)$", prefix, re.IGNORECASE)
    return prefix, (t.group(1).upper() if t else ""), index, count


def _is_model(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return path.endswith(".gguf") and not any(k in name for k in _NOT_MODEL)


def _bits(path: str) -> int:
    s = _split(path)
    m = re.search(r"[0-9]+", s[1]) if s else None
    return int(m.group(0)) if m else 0


def find_best_model(files: list[dict[str, Any]], tag: str) -> dict[str, Any] | None:
    for t in [tag] if tag else ["Q4_K_M", "Q8_0"]:
        pattern = re.compile(t + "[.-]", re.IGNORECASE)
        for f in files:
            s = _split(f["path"])
            if _is_model(f["path"]) and pattern.search(f["path"]) and s and not (s[3] > 1 and s[2] != 1):
                return f
    if not tag:
        for f in files:
            s = _split(f["path"])
            if _is_model(f["path"]) and s and not (s[3] > 1 and s[2] != 1):
                return f
    return None


def split_files(files: list[dict[str, Any]], primary: dict[str, Any]) -> list[dict[str, Any]]:
    s = _split(primary["path"])
    assert s is not None
    if s[3] <= 1:
        return [primary]
    return [f for f in files if (o := _split(f["path"])) and o[3] == s[3] and o[0] == s[0]]


def find_best_mmproj(files: list[dict[str, Any]], model: str) -> dict[str, Any] | None:
    best, best_depth, best_diff = None, 0, 0
    model_dir = model.split("/")[:-1]
    model_bits = _bits(model)
    for f in files:
        if not f["path"].endswith(".gguf") or "mmproj" not in f["path"]:
            continue
        sib_dir = f["path"].split("/")[:-1]
        if sib_dir != model_dir[: len(sib_dir)]:
            continue
        depth, diff = len(sib_dir), abs(_bits(f["path"]) - model_bits)
        if best is None or depth > best_depth or (depth == best_depth and diff < best_diff):
            best, best_depth, best_diff = f, depth, diff
    return best


def llamacpp_pull(hf_repo: str, *, mmproj: bool = False) -> dict[str, bytes]:
    """{path: bytes} of what ``llama-cli -hf hf_repo`` downloads (the requests it sends)."""
    repo, _, tag = hf_repo.partition(":")
    ep = _endpoint()
    api = {"User-Agent": UA, "Accept": "application/json"}
    with httpx.Client(timeout=30, follow_redirects=True) as c:
        refs = c.get(f"{ep}api/models/{repo}/refs", headers=api)
        assert refs.status_code == 200, refs.text
        branches = [b for b in refs.json()["branches"] if isinstance(b.get("targetCommit"), str)]
        commit = next((b for b in branches if b["name"] == "main"), branches[0])["targetCommit"]
        assert re.fullmatch(r"[0-9a-fA-F]{40}", commit)
        tree = c.get(f"{ep}api/models/{repo}/tree/{commit}?recursive=true", headers=api)
        assert tree.status_code == 200
        files = []
        for item in tree.json():
            if item.get("type") != "file":
                continue
            oid = item["lfs"]["oid"] if isinstance(item.get("lfs"), dict) else item.get("oid", "")
            files.append({"path": item["path"], "oid": oid, "lfs": isinstance(item.get("lfs"), dict)})
        primary = find_best_model(files, tag)
        assert primary is not None, f"no GGUF for {hf_repo}"
        wanted = split_files(files, primary)
        if mmproj and (proj := find_best_mmproj(files, primary["path"])) is not None:
            wanted.append(proj)
        out: dict[str, bytes] = {}
        for f in wanted:
            url = f"{ep}{repo}/resolve/{commit}/{f['path']}"
            head = c.head(url, headers={"User-Agent": UA})
            assert 200 <= head.status_code < 300, head.status_code
            assert head.headers.get("ETag") and head.headers.get("Accept-Ranges") != "none"
            r = c.get(url, headers={"User-Agent": UA})
            assert r.status_code == 200
            assert int(head.headers["Content-Length"]) == len(r.content)
            if f["lfs"]:
                assert hashlib.sha256(r.content).hexdigest() == f["oid"]
            out[f["path"]] = r.content
    return out


@pytest.fixture(params=["hosted", "mirrored"])
def hub(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[HubServer, dict[str, bytes], HubServer]]:
    origin = HubServer(tmp_path / "origin").start()
    files = _gguf_repos.seed(origin.store)
    srv = origin
    if request.param == "mirrored":
        srv = HubServer(tmp_path / "mirror", upstream=MirrorConfig(origin.url, backoff=0.01)).start()
    try:
        yield srv, files, origin
    finally:
        if srv is not origin:
            srv.stop()
        origin.stop()


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("alice/tiny-gguf", ["tiny-Q4_K_M.gguf"]),
        ("alice/tiny-gguf:Q8_0", ["tiny-Q8_0.gguf"]),
        ("alice/tiny-gguf:f16", ["tiny-F16.gguf"]),
        ("alice/custom-gguf", ["model-Q4_0.gguf"]),
        ("alice/sharded-gguf:Q4_K_M", ["big-Q4_K_M-00001-of-00002.gguf", "big-Q4_K_M-00002-of-00002.gguf"]),
    ],
)
def test_llamacpp_hf_pull(
    hub: tuple[HubServer, dict[str, bytes], HubServer],
    monkeypatch: pytest.MonkeyPatch,
    spec: str,
    want: list[str],
) -> None:
    srv, files, _ = hub
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setenv("MODEL_ENDPOINT", srv.url)
    got = llamacpp_pull(spec)
    repo = spec.partition(":")[0]
    assert sorted(got) == sorted(want)
    assert all(got[p] == files[f"{repo}/{p}"] for p in want)


def test_llamacpp_mmproj_and_hf_endpoint(
    hub: tuple[HubServer, dict[str, bytes], HubServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv, files, origin = hub
    monkeypatch.delenv("MODEL_ENDPOINT", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", srv.url + "/")
    got = llamacpp_pull("alice/tiny-gguf:Q8_0", mmproj=True)
    assert sorted(got) == ["tiny-Q8_0.gguf", "tiny-mmproj-F16.gguf"]
    assert got["tiny-mmproj-F16.gguf"] == files["alice/tiny-gguf/tiny-mmproj-F16.gguf"]
    if srv is not origin:  # a second client: served from the mirror's store
        origin.log.clear()
        llamacpp_pull("alice/tiny-gguf:Q8_0", mmproj=True)
        assert not [e for e in origin.log.entries if "/resolve/" in e.path]
