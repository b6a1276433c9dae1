"""The ``/v2/`` registry endpoints, driven the way Ollama pulls ``host/<ns>/<repo>:<tag>``.

``ollama_pull`` replays the requests of ollama/ollama server/images.go (``pullModelManifest``) and
server/download.go (``blobDownload.Prepare`` / ``run`` / ``downloadChunk``): the manifest GET with the
Docker manifest v2 ``Accept`` header; per blob a HEAD for ``Content-Length``, a GET that follows
same-host redirects only and takes the data URL from the final answer's ``Location``; then ranged
GETs of that URL (parts of ``max(total/16, min_part)`` bytes, no token: Go's default client), and a
sha256 check of every blob.  Ollama's minimum part is 100 MB; tests pass a smaller one so that the
multi-part path is exercised on small files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx2 as httpx
import pytest

from batuta_sync.server import HubServer, UserSpec
from batuta_sync.server.mirror import MirrorConfig
from batuta_sync.server.registry import pick_gguf, split_info

from . import _gguf_repos

UA = "ollama/0.12.3 (amd64 linux) Go/go1.24.1"
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def ollama_pull(
    base: str, name: str, tag: str, *, token: str | None = None, min_part: int = 100_000_000
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and {digest: bytes} of every layer and the config, as Ollama fetches them."""
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(timeout=30) as c:
        r = c.get(
            f"{base}/v2/{name}/manifests/{tag}", headers={"Accept": MANIFEST_V2, "User-Agent": UA, **auth}
        )
        r.raise_for_status()
        manifest = json.loads(r.content)
        blobs: dict[str, bytes] = {}
        for layer in [*manifest["layers"], manifest["config"]]:
            digest = layer["digest"]
            url = f"{base}/v2/{name}/blobs/{digest}"
            head = c.head(url, headers={"User-Agent": UA, **auth})
            assert head.status_code == 200, head.text
            total = int(head.headers["Content-Length"])
            assert total == layer["size"]
            direct = _direct_url(c, url, auth)
            size = max(total // 16, min_part)
            parts = []
            for start in range(0, total, size):
                end = min(start + size, total)
                part = httpx.get(direct, headers={"Range": f"bytes={start}-{end - 1}"})  # Go's default client
                assert part.status_code in (200, 206)
                parts.append(part.content[: end - start])
            data = b"".join(parts)
            assert "sha256:" + hashlib.sha256(data).hexdigest() == digest  # Ollama's verifyBlob
            blobs[digest] = data
    return manifest, blobs


def _direct_url(c: httpx.Client, url: str, auth: dict[str, str]) -> str:
    """GET following redirects to the same host only; the final answer's Location (resp.Location())."""
    host = urlsplit(url).hostname
    for _ in range(10):
        with c.stream("GET", url, headers={"User-Agent": UA, **auth}) as r:
            loc = r.headers.get("Location")
            if (
                r.status_code in (301, 302, 303, 307, 308)
                and loc
                and urlsplit(urljoin(url, loc)).hostname == host
            ):
                url = urljoin(url, loc)
                continue
            assert r.status_code in (200, 307), r.status_code
            assert loc, "Ollama needs a Location header on the blob answer"
            return urljoin(url, loc)
    raise AssertionError("too many redirects")


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[HubServer, dict[str, bytes]]]:
    srv = HubServer(tmp_path / "hub").start()
    try:
        yield srv, _gguf_repos.seed(srv.store)
    finally:
        srv.stop()


def _layers(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {layer["mediaType"].rsplit(".", 1)[-1]: layer for layer in manifest["layers"]}


@pytest.mark.parametrize(
    ("tag", "path"),
    [
        ("Q4_K_M", "tiny-Q4_K_M.gguf"),
        ("q8_0", "tiny-Q8_0.gguf"),
        ("latest", "tiny-Q4_K_M.gguf"),
        ("F16", "tiny-F16.gguf"),
    ],
)
def test_ollama_pulls_a_quant_from_a_hosted_repo(
    hub: tuple[HubServer, dict[str, bytes]], tag: str, path: str
) -> None:
    srv, files = hub
    manifest, blobs = ollama_pull(srv.url, "alice/tiny-gguf", tag, min_part=10_000)
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == MANIFEST_V2
    layers = _layers(manifest)
    model = files[f"alice/tiny-gguf/{path}"]
    assert layers["model"]["digest"] == "sha256:" + _gguf_repos.sha256(model)
    assert blobs[layers["model"]["digest"]] == model
    template = blobs[layers["template"]["digest"]].decode()
    assert "<|im_start|>{{ .Role }}" in template and "{{ .Content }}" in template  # Go template, ChatML
    assert json.loads(blobs[layers["params"]["digest"]]) == {"stop": ["<|im_start|>", "<|im_end|>"]}
    config = json.loads(blobs[manifest["config"]["digest"]])
    assert manifest["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert config["model_format"] == "gguf" and config["model_family"] == "qwen2"
    assert config["file_type"] == path[5:-5].upper()
    assert config["rootfs"]["diff_ids"] == [layer["digest"] for layer in manifest["layers"]]


def test_manifest_headers_and_the_version_check(hub: tuple[HubServer, dict[str, bytes]]) -> None:
    srv, _ = hub
    r = httpx.get(f"{srv.url}/v2/")
    assert r.status_code == 200 and r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    r = httpx.get(f"{srv.url}/v2/alice/tiny-gguf/manifests/Q8_0", headers={"Accept": MANIFEST_V2})
    assert r.headers["Content-Type"] == MANIFEST_V2
    assert r.headers["Docker-Content-Digest"] == "sha256:" + hashlib.sha256(r.content).hexdigest()
    h = httpx.head(f"{srv.url}/v2/alice/tiny-gguf/manifests/Q8_0")
    assert h.status_code == 200 and int(h.headers["Content-Length"]) == len(r.content)


def test_repo_template_params_and_system_files_win(hub: tuple[HubServer, dict[str, bytes]]) -> None:
    srv, files = hub
    manifest, blobs = ollama_pull(srv.url, "alice/custom-gguf", "latest")
    layers = _layers(manifest)
    assert blobs[layers["model"]["digest"]] == files["alice/custom-gguf/model-Q4_0.gguf"]
    assert blobs[layers["template"]["digest"]] == b"{{ .Prompt }}"
    assert blobs[layers["params"]["digest"]] == files["alice/custom-gguf/params"]
    assert blobs[layers["system"]["digest"]] == b"You are terse."


def test_refusals(hub: tuple[HubServer, dict[str, bytes]], tmp_path: Path) -> None:
    srv, files = hub
    base = f"{srv.url}/v2/alice"
    r = httpx.get(f"{base}/tiny-gguf/manifests/Q2_K")
    assert r.status_code == 404 and "No GGUF file" in r.json()["error"]
    r = httpx.get(f"{base}/sharded-gguf/manifests/Q4_K_M")
    assert r.status_code == 400 and "shard" in r.json()["error"]
    assert httpx.get(f"{base}/sharded-gguf/manifests/Q8_0").status_code == 200
    assert httpx.get(f"{base}/tiny-gguf/manifests/bad%2Ftag").status_code == 400
    assert httpx.get(f"{base}/tiny-gguf/blobs/sha256:xyz").status_code == 400
    assert httpx.get(f"{base}/nope/manifests/latest").status_code == 404
    assert httpx.post(f"{base}/tiny-gguf/manifests/latest").status_code == 405
    # a digest of another repo's file is not served through this repo (authorisation per repo)
    other = _gguf_repos.sha256(files["alice/custom-gguf/model-Q4_0.gguf"])
    r = httpx.get(f"{base}/tiny-gguf/blobs/sha256:{other}")
    assert r.status_code == 404
    assert httpx.get(f"{srv.url}/v2/foo").status_code == 404
    # a broken params file is ignored; a GGUF with an unknown chat template gets no template layer
    srv.store.commit(
        "alice/odd-gguf",
        {"m-Q4_K_M.gguf": _gguf_repos.gguf_file(chat_template="{{ unknown }}"), "params": b"[1, 2"},
    )
    kinds = [x["mediaType"] for x in httpx.get(f"{base}/odd-gguf/manifests/latest").json()["layers"]]
    assert kinds == ["application/vnd.ollama.image.model"]
    srv.store.update_settings("alice/odd-gguf", gated="auto")
    assert httpx.get(f"{base}/odd-gguf/manifests/latest").status_code == 200  # open mode: no gate
    # a repo namespaced "v2" still resolves files normally
    srv.store.commit("v2/model", {"a.txt": b"A"})
    assert httpx.get(f"{srv.url}/v2/model/resolve/main/a.txt").content == b"A"


def test_private_repos_need_a_token(tmp_path: Path) -> None:
    srv = HubServer(tmp_path / "hub", users=[UserSpec("alice", "tok-alice", "read")]).start()
    try:
        _gguf_repos.seed(srv.store)
        srv.store.update_settings("alice/tiny-gguf", private=True)
        assert httpx.get(f"{srv.url}/v2/alice/tiny-gguf/manifests/latest").status_code == 404
        r = httpx.get(
            f"{srv.url}/v2/alice/tiny-gguf/manifests/latest", headers={"Authorization": "Bearer tok-alice"}
        )
        assert r.status_code == 200
        digest = r.json()["layers"][0]["digest"]
        assert httpx.head(f"{srv.url}/v2/alice/tiny-gguf/blobs/{digest}").status_code == 404
        # Ollama fetches the parts without its token: the Location it gets is signed
        manifest, blobs = ollama_pull(srv.url, "alice/tiny-gguf", "Q8_0", token="tok-alice", min_part=10_000)
        assert len(blobs) == len(manifest["layers"]) + 1
        auth = {"Authorization": "Bearer tok-alice"}
        loc = httpx.get(f"{srv.url}/v2/alice/tiny-gguf/blobs/{digest}", headers=auth).headers["Location"]
        assert "sig=" in loc and httpx.get(loc).status_code == 200
        query = dict(p.split("=") for p in loc.split("?")[1].split("&"))
        bad = [
            loc.replace(query["sig"], "0" * 64),  # tampered
            loc.replace(query["expires"], "1000"),  # expired (and then the signature is wrong too)
            loc.replace(digest, manifest["config"]["digest"]),  # signed for another digest
            loc.replace("alice/tiny-gguf", "alice/custom-gguf"),  # or another repo
        ]
        for url in bad:
            assert httpx.get(url).status_code == 404, url
        srv.store.update_settings("alice/custom-gguf", gated="auto")
        r = httpx.get(f"{srv.url}/v2/alice/custom-gguf/manifests/latest")
        assert r.status_code == 401 and r.headers["X-Error-Code"] == "GatedRepo"
    finally:
        srv.stop()


def test_pick_gguf_rules() -> None:
    paths = ["a/x-Q4_K_M.gguf", "mmproj-Q4_K_M.gguf", "x-Q8_0.gguf", "y-IQ4_XS-00002-of-00002.gguf"]
    assert pick_gguf(paths, "latest") == "a/x-Q4_K_M.gguf"
    assert pick_gguf(["mmproj-Q4_K_M.gguf", "z.gguf"], "") == "z.gguf"
    assert pick_gguf(paths, "iq4_xs") is None  # only the first shard of a split model is picked
    assert pick_gguf(["readme.md"], "latest") is None
    s = split_info("m-Q4_K_M-00001-of-00003.gguf")
    assert s is not None and (s.prefix, s.quant, s.index, s.count) == ("m-Q4_K_M", "Q4_K_M", 1, 3)
    assert split_info("x.bin") is None


# ---------------------------------------------------------------------- through the mirror
def test_ollama_pulls_through_the_mirror_fetching_once(tmp_path: Path) -> None:
    up = HubServer(tmp_path / "up").start()
    files = _gguf_repos.seed(up.store)
    m = HubServer(tmp_path / "m", upstream=MirrorConfig(up.url, backoff=0.01)).start()
    try:
        for _ in range(2):
            manifest, blobs = ollama_pull(m.url, "alice/tiny-gguf", "Q8_0", min_part=10_000)
            model = _layers(manifest)["model"]["digest"]
            assert blobs[model] == files["alice/tiny-gguf/tiny-Q8_0.gguf"]
            assert "<|im_start|>" in blobs[_layers(manifest)["template"]["digest"]].decode()
        lfs_gets = [e for e in up.log.entries if e.method == "GET" and e.path.startswith("/cdn-lfs/")]
        assert len(lfs_gets) == 1  # HEAD + GET + ranged GETs, twice: one upstream body
        manifest, blobs = ollama_pull(m.url, "alice/custom-gguf", "latest")
        assert blobs[_layers(manifest)["system"]["digest"]] == b"You are terse."
    finally:
        m.stop()
        up.stop()
