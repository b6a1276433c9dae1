"""The container-registry endpoints Ollama pulls GGUF models from (``ollama pull host/<ns>/<repo>:<quant>``).

Ollama (server/images.go, server/download.go) sends, for a model name ``host/ns/repo:tag``:

1. ``GET /v2/<ns>/<repo>/manifests/<tag>`` with ``Accept: application/vnd.docker.distribution.manifest.v2+json``;
2. for the config and every layer: ``HEAD /v2/<ns>/<repo>/blobs/sha256:<hex>`` (``Content-Length``), then
   ``GET`` of the same URL following redirects to the same host only, and it takes the data URL from
   the final answer's ``Location`` header; then ``GET <data URL>`` with ``Range: bytes=a-b`` parts
   (without its token), and it checks each blob's sha256.

So a blob answer carries ``Location`` = its own absolute URL (Range served there); for a private or
gated repo that URL is signed (HMAC of repo, digest and expiry with a per-process key, valid
``SIGNED_URL_TTL``), since Ollama does not send its token to the data URL.  The manifest is a
Docker manifest v2 whose layers are, by ``sha256:`` digest: the GGUF of the quantization
(``application/vnd.ollama.image.model``; its digest is the LFS sha256), and when known its chat
template (``.template``: the repo's ``template`` file, else one derived from the GGUF's chat template
for common families), parameters (``.params``: the repo's ``params`` JSON file, else the family's
stop tokens) and system prompt (``.system``: the repo's ``system`` file).  The config blob is the
JSON Ollama reads (``model_format``, ``model_family``, ``file_type``, ``rootfs``).

The tag picks the GGUF like the Hub and llama.cpp do: the first model file (not ``mmproj``,
``imatrix``, …) whose name contains ``<tag>`` followed by ``.`` or ``-`` (case-insensitive);
``latest`` tries ``Q4_K_M`` then ``Q8_0`` then takes the first model file.  Sharded GGUFs are refused
(Ollama loads one file).  Served for hosted and mirrored repos, with the repo's read rules; blobs
are only served for digests of that repo's manifests (authorisation is per repo, as for
``/cdn-lfs/``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from batuta_sync.server.store import Commit, FileEntry, RepoState

if TYPE_CHECKING:
    from batuta_sync.server.app import _Handler

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
MODEL_TYPE = "application/vnd.ollama.image.model"
TEMPLATE_TYPE = "application/vnd.ollama.image.template"
PARAMS_TYPE = "application/vnd.ollama.image.params"
SYSTEM_TYPE = "application/vnd.ollama.image.system"
DEFAULT_TAGS = ("Q4_K_M", "Q8_0")
_TAG_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
_DIGEST_RE = re.compile(r"\Asha256:([0-9a-f]{64})\Z")
_SPLIT_RE = re.compile(r"^(.+)-([0-9]{5})-of-([0-9]{5})$", re.IGNORECASE)
_QUANT_RE = re.compile(r"[-.]([A-Z0-9_]+)$", re.IGNORECASE)
_NOT_MODEL = ("mmproj", "imatrix", "mtp-", "eagle3-", "dflash-", "dspark-")
_MAX_SIDE_FILE = 1 << 20
SIGNED_URL_TTL = 3600  # seconds a signed blob URL (private/gated repos) stays valid
_URL_KEY = secrets.token_bytes(
    32
)  # per process: a restart invalidates signed URLs (Ollama asks again)  # template / params / system files read into a manifest

# Ollama (Go text/template) chat templates for families recognised in a GGUF's Jinja template.
_FAMILIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "<|im_start|>",
        "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
        "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
        "<|im_start|>assistant\n",
        ("<|im_start|>", "<|im_end|>"),
    ),
    (
        "<|start_header_id|>",
        "{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
        "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>"
        "{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n",
        ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    ),
    (
        "<start_of_turn>",
        '{{- range .Messages }}<start_of_turn>{{ if eq .Role "assistant" }}model{{ else }}{{ .Role }}{{ end }}\n'
        "{{ .Content }}<end_of_turn>\n{{ end }}<start_of_turn>model\n",
        ("<start_of_turn>", "<end_of_turn>"),
    ),
    (
        "[INST]",
        '{{- range .Messages }}{{ if eq .Role "user" }}[INST] {{ .Content }} [/INST]'
        "{{ else }}{{ .Content }}</s>{{ end }}{{ end }}",
        ("[INST]", "[/INST]"),
    ),
)


@dataclass(frozen=True)
class Split:
    prefix: str
    quant: str
    index: int
    count: int


def split_info(path: str) -> Split | None:
    """llama.cpp's reading of a GGUF file name: prefix, quant tag, shard index and count."""
    if not path.endswith(".gguf"):
        return None
    prefix = path[: -len(".gguf")]
    index = count = 1
    m = _SPLIT_RE.match(prefix)
    if m:
        prefix, index, count = m.group(1), int(m.group(2)), int(m.group(3))
    q = _QUANT_RE.search(prefix)
    return Split(prefix, q.group(1).upper() if q else "", index, count)


def is_model_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return path.endswith(".gguf") and not any(k in name for k in _NOT_MODEL)


def pick_gguf(paths: Sequence[str], tag: str) -> str | None:
    """The GGUF a quant tag names (``latest`` / empty: Q4_K_M, Q8_0, then the first model file)."""
    explicit = tag.lower() not in ("", "latest")
    for t in (tag,) if explicit else DEFAULT_TAGS:
        pattern = re.compile(re.escape(t) + r"[.-]", re.IGNORECASE)
        for p in paths:
            s = split_info(p)
            if (
                is_model_file(p)
                and s is not None
                and pattern.search(p)
                and not (s.count > 1 and s.index != 1)
            ):
                return p
    if not explicit:
        for p in paths:
            s = split_info(p)
            if is_model_file(p) and s is not None and not (s.count > 1 and s.index != 1):
                return p
    return None


def _family(chat_template: Any) -> tuple[str, tuple[str, ...]] | None:
    if not isinstance(chat_template, str):
        return None
    for marker, template, stops in _FAMILIES:
        if marker in chat_template:
            return template, stops
    return None


@dataclass(frozen=True)
class Manifest:
    body: bytes
    digest: str
    blobs: Mapping[str, bytes]  # generated blobs (config, template, params, system) by digest
    model: FileEntry


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build_manifest(
    c: Commit, model_path: str, side_files: Mapping[str, bytes], gguf: Mapping[str, Any] | None = None
) -> Manifest:
    """The Docker manifest v2 for the GGUF ``model_path`` of ``c``; ``side_files``: the contents of
    the repo's ``template``, ``params`` and ``system`` files when present; ``gguf``: that file's GGUF
    metadata (default: the repo's, ``c.info["gguf"]``)."""
    model = c.files[model_path]
    if gguf is None:
        repo_gguf = c.info.get("gguf")
        gguf = repo_gguf if isinstance(repo_gguf, dict) else {}
    fam = _family(gguf.get("chat_template"))
    blobs: dict[str, bytes] = {}
    layers: list[dict[str, Any]] = [
        {"mediaType": MODEL_TYPE, "digest": "sha256:" + model.sha256, "size": model.size}
    ]

    def add(media_type: str, data: bytes) -> None:
        d = _digest(data)
        blobs[d] = data
        layers.append({"mediaType": media_type, "digest": d, "size": len(data)})

    template = side_files.get("template")
    if template is None and fam is not None:
        template = fam[0].encode()
    if template is not None:
        add(TEMPLATE_TYPE, template)
    params = side_files.get("params")
    if params is None and fam is not None:
        params = json.dumps({"stop": list(fam[1])}, sort_keys=True).encode()
    if params is not None:
        add(PARAMS_TYPE, params)
    if side_files.get("system") is not None:
        add(SYSTEM_TYPE, side_files["system"])
    split = split_info(model_path)
    arch = gguf.get("architecture") if isinstance(gguf.get("architecture"), str) else ""
    config = {
        "model_format": "gguf",
        "model_family": arch,
        "model_families": [arch] if arch else [],
        "model_type": "",
        "file_type": split.quant if split else "",
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_digest = _digest(config_bytes)
    blobs[config_digest] = config_bytes
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_V2,
        "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": len(config_bytes)},
        "layers": layers,
    }
    body = json.dumps(manifest, indent=2).encode()
    return Manifest(body, _digest(body), blobs, model)


# ---------------------------------------------------------------------- HTTP side
def route(h: _Handler, d: list[str]) -> None:
    """``/v2/...`` (``d`` = the decoded segments after ``v2``)."""
    from batuta_sync.server.protocol import HTTPError

    if h.command not in ("GET", "HEAD"):
        raise HTTPError(405, "The registry endpoints are read-only.")
    if len(d) == 4 and d[2] == "manifests":
        return _manifest(h, f"{d[0]}/{d[1]}", d[3])
    if len(d) == 4 and d[2] == "blobs":
        return _blob(h, f"{d[0]}/{d[1]}", d[3])
    if d in ([], [""]):  # the registry API version check
        return h._send_bytes(200, b"{}", {"Docker-Distribution-API-Version": "registry/2.0"})
    raise HTTPError(404, f"Not found: {h.raw_path}")


def _head_commit(h: _Handler, repo_id: str, signed_for: str | None = None) -> tuple[RepoState, Commit, bool]:
    """The repo and its ``main`` commit, authorised by the request's token, or — for a blob URL this
    server signed (``signed_for`` = its digest) — by the signature; and whether the caller needed
    more than anonymous access (then blob URLs handed out are signed)."""
    from batuta_sync.server.protocol import HTTPError

    if signed_for is not None and _signature_ok(h, repo_id, signed_for):
        st = h.hub.store.repo(repo_id, "model")
        restricted = True
    else:
        st, user = h._visible_repo("model", repo_id)
        if st.gated and user is None and not h.hub.open_mode:
            raise HTTPError(401, f"Access to {repo_id} is restricted: log in to access it.", "GatedRepo")
        restricted = bool(st.private or st.gated) and not h.hub.open_mode
    store = h.hub.store
    return st, store.get_commit(store.resolve_state(st, "main")), restricted


def _sign(repo_id: str, digest: str, expires: int) -> str:
    msg = f"{repo_id}\n{digest}\n{expires}".encode()
    return hmac.new(_URL_KEY, msg, hashlib.sha256).hexdigest()


def _signature_ok(h: _Handler, repo_id: str, digest: str) -> bool:
    """Whether the request carries a valid, unexpired signature of this repo and digest."""
    sig, exp = h._param("sig") or "", h._param("expires") or ""
    if not exp.isdigit() or len(exp) > 12 or int(exp) < time.time():
        return False
    return hmac.compare_digest(sig.encode(), _sign(repo_id, digest, int(exp)).encode())


def _data_url(h: _Handler, repo_id: str, digest: str, restricted: bool) -> str:
    """Where Ollama fetches the bytes (without its token): signed for private or gated repos."""
    url = f"{h._base()}/v2/{repo_id}/blobs/{digest}"
    if not restricted:
        return url
    exp = int(time.time()) + SIGNED_URL_TTL
    return f"{url}?expires={exp}&sig={_sign(repo_id, digest, exp)}"


def _side_files(h: _Handler, st: RepoState, c: Commit) -> dict[str, bytes]:
    from batuta_sync.server import mirror

    out: dict[str, bytes] = {}
    for name in ("template", "params", "system"):
        e = c.files.get(name)
        if e is None or e.size > _MAX_SIDE_FILE:
            continue
        path = (
            mirror.file_path(h.hub, st, c.id, e, fetch=True)
            if st.mirrored
            else h.hub.store.blob_path(e.sha256)
        )
        out[name] = path.read_bytes()[:_MAX_SIDE_FILE]
    if "params" in out:
        try:
            ok = isinstance(json.loads(out["params"]), dict)
        except ValueError:
            ok = False
        if not ok:
            del out["params"]  # Ollama would refuse the pull; a broken file is ignored
    return out


def _manifest(h: _Handler, repo_id: str, tag: str) -> None:
    from batuta_sync.server.protocol import HTTPError

    if not _TAG_RE.match(tag):
        raise HTTPError(400, f"Invalid tag {tag[:80]!r}.")
    st, c, _ = _head_commit(h, repo_id)
    path = pick_gguf(sorted(c.files), tag)
    if path is None:
        raise HTTPError(404, f"No GGUF file for the tag {tag!r} in {repo_id}.", "EntryNotFound")
    split = split_info(path)
    if split is not None and split.count > 1:
        raise HTTPError(400, f"{path} is one shard of {split.count}; Ollama loads single-file GGUFs only.")
    m = build_manifest(c, path, _side_files(h, st, c), h.hub.store.gguf_summary(c.files[path].sha256))
    h._send_bytes(
        200,
        m.body,
        {
            "Content-Type": MANIFEST_V2,
            "Docker-Content-Digest": m.digest,
            "Docker-Distribution-API-Version": "registry/2.0",
            "X-Repo-Commit": c.id,
        },
    )


def _blob(h: _Handler, repo_id: str, digest: str) -> None:
    from batuta_sync.server.protocol import HTTPError

    m = _DIGEST_RE.match(digest)
    if not m:
        raise HTTPError(400, f"Invalid digest {digest[:80]!r}: expected sha256:<64 hex>.")
    st, c, restricted = _head_commit(h, repo_id, signed_for=digest if h._param("sig") else None)
    hexd = m.group(1)
    headers = {
        "Docker-Content-Digest": digest,
        "Docker-Distribution-API-Version": "registry/2.0",
        "Location": _data_url(h, repo_id, digest, restricted),  # Ollama takes its data URL from here
        "X-Repo-Commit": c.id,
    }
    models = [c.files[p] for p in sorted(c.files) if is_model_file(p) and c.files[p].lfs]
    for e in models:
        if e.sha256 == hexd:
            drawn = h._random_fault(body=h.command == "GET")
            if h.command == "GET":
                h.hub.store.record_download(st)
            return h._send_file(h._file_path(st, c.id, e), e.size, hexd, headers, drawn)
    side = _side_files(h, st, c)
    for p in (p for p in sorted(c.files) if is_model_file(p) and pick_gguf([p], "latest")):
        # The manifest used the file's own GGUF metadata when it was stored here, else the repo's
        # (a mirrored file not fetched yet): both are this repo's blobs.
        for gguf in (h.hub.store.gguf_summary(c.files[p].sha256), None):
            data = build_manifest(c, p, side, gguf).blobs.get(digest)
            if data is not None:
                return h._send_bytes(200, data, {**headers, "Content-Type": "application/octet-stream"})
    raise HTTPError(404, f"Blob {digest} is not part of {repo_id}.", "EntryNotFound")
