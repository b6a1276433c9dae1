"""What runners share through a remote: blobs, commit listings and conversion run records.

Object layout (under the remote's prefix)::

    cas/sha256/<ab>/<sha256>            an LFS blob, named by its content sha256
    cas/gitsha1/<ab>/<sha1>             a regular (git) blob, named by its git blob id
    trees/<type>/<org>/<name>/<commit>.json   a commit's listing (tree_json format of hub/cache.py)
    runs/<memo key>.json                a conversion's outputs: {"outputs": {name: {sha256, size}}}

Keys are built only from validated identifiers (``batuta_sync.ids``); everything read back
is verified (blobs by digest, listings and run records by shape) and a mismatch counts as
a miss, never as data.  Writes are create-only, so racing runners cannot overwrite each other.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batuta_sync import ids
from batuta_sync._fs import confine, temp_file_beside
from batuta_sync.remote.store import RemoteStore

_CHUNK = 1 << 20
MAX_LISTING_BYTES = 64 << 20
MAX_RUN_BYTES = 1 << 20


def blob_key(digest: str) -> str:
    """``cas/sha256/ab/<digest>`` or ``cas/gitsha1/ab/<digest>`` (the kind follows the length)."""
    d = ids.blob_id(digest, where="a remote blob key")
    kind = "sha256" if ids.is_sha256(d) else "gitsha1"
    return f"cas/{kind}/{d[:2]}/{d}"


def tree_key(repo_type: str, repo_id: str, commit: str) -> str:
    if repo_type not in ("model", "dataset", "space"):
        raise ids.InvalidIdentifierError(f"Refusing the repo type {repo_type!r} in a remote key.")
    rid = ids.repo_id(repo_id, where="a remote listing key")
    sha = ids.commit_sha(commit, where="a remote listing key")
    return f"trees/{repo_type}/{rid}/{sha}.json"


def run_key(memo: str) -> str:
    """``runs/<memo>.json``; the memo key is a sha256 (hex, optionally ``sha256:``-prefixed)."""
    hexd = memo.split(":", 1)[1] if memo.startswith("sha256:") else memo
    return f"runs/{ids.sha256_hex(hexd, where='a conversion memo key')}.json"


def digest_file(path: Path, kind: str) -> str:
    """sha256 of the content, or its git blob sha1 (``kind`` = ``sha256`` | ``gitsha1``)."""
    size = path.stat().st_size
    h = hashlib.sha256() if kind == "sha256" else hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class FetchResult:
    hit: bool
    size: int = 0
    corrupt: bool = False  # the remote held bytes that do not match their name (treated as a miss)


class SharedStore:
    """Blob CAS, listings and run-cache over one :class:`RemoteStore`."""

    def __init__(self, store: RemoteStore) -> None:
        self.store = store

    @property
    def url(self) -> str:
        return self.store.url

    # ------------------------------------------------------------------ blobs

    def has_blob(self, digest: str) -> bool:
        return self.store.exists(blob_key(digest))

    def put_blob(self, digest: str, path: Path) -> bool:
        """Write-through of a verified local blob (create-only; True when this call created it)."""
        return self.store.put_if_absent(blob_key(digest), Path(path))

    def fetch_blob(self, digest: str, dest: Path, *, size: int | None = None, mode: int | None = None) -> FetchResult:
        """Download ``digest`` into ``dest`` (atomically), verifying it; a mismatch is a miss.
        ``mode``: the file's permissions, set before it takes its name (a cache blob: read-only)."""
        key = blob_key(digest)
        kind = "sha256" if ids.is_sha256(digest) else "gitsha1"
        dest = Path(dest)
        # hashed as it is written (one pass); a git blob sha1 needs the size first: the listing's
        h = None
        if kind == "sha256":
            h = hashlib.sha256()
        elif size is not None:
            h = hashlib.sha1(b"blob %d\0" % size)
        with temp_file_beside(dest, suffix=".remote") as tmp_path:
            got = self.store.get_to_file(key, tmp_path, max_size=size, on_chunk=h.update if h is not None else None)
            if got is None:
                return FetchResult(False)
            seen = h.hexdigest() if h is not None else digest_file(tmp_path, kind)
            if (size is not None and got != size) or seen != digest:
                return FetchResult(False, corrupt=True)
            if mode is not None:
                os.chmod(tmp_path, mode)
            os.replace(tmp_path, dest)
            return FetchResult(True, got)

    def _small_json(self, key: str, limit: int) -> Any:
        """The JSON document at ``key`` if it exists, is at most ``limit`` bytes and parses; else None."""
        info = self.store.head(key)
        if info is None or info.size > limit:
            return None
        got = self.store.get(key)
        if got is None or len(got[0]) > limit:
            return None
        try:
            return json.loads(got[0])
        except ValueError:
            return None

    # ------------------------------------------------------------------ listings

    def put_listing(self, repo_type: str, repo_id: str, commit: str, listing: Mapping[str, Any]) -> bool:
        data = json.dumps(listing, sort_keys=True, separators=(",", ":")).encode()
        return self.store.put_if_absent(tree_key(repo_type, repo_id, commit), data)

    def get_listing(self, repo_type: str, repo_id: str, commit: str) -> dict[str, Any] | None:
        """The shared listing, or None (missing, too large or malformed: a miss, never trusted)."""
        data = self._small_json(tree_key(repo_type, repo_id, commit), MAX_LISTING_BYTES)
        if data is None:
            return None
        try:
            files = data["files"]
            if not isinstance(files, dict):
                return None
            for path, entry in files.items():
                ids.repo_path(path)
                ids.git_sha1(entry["blob_id"])
                if not isinstance(entry["size"], int) or entry["size"] < 0:
                    return None
                if entry.get("lfs_sha256") is not None:
                    ids.sha256_hex(entry["lfs_sha256"])
        except (ValueError, KeyError, TypeError, AttributeError, ids.InvalidIdentifierError):
            return None
        return data if isinstance(data, dict) else None

    # ------------------------------------------------------------------ run-cache

    def put_run(self, memo: str, outputs: Mapping[str, Mapping[str, Any]]) -> bool:
        body = {"format_version": 1, "outputs": {k: dict(v) for k, v in outputs.items()}}
        return self.store.put_if_absent(run_key(memo), json.dumps(body, sort_keys=True).encode())

    def get_run(self, memo: str) -> dict[str, dict[str, Any]] | None:
        data = self._small_json(run_key(memo), MAX_RUN_BYTES)
        if data is None:
            return None
        try:
            outputs = data["outputs"]
            out: dict[str, dict[str, Any]] = {}
            for name, entry in outputs.items():
                ids.repo_path(name)
                out[name] = {"sha256": ids.sha256_hex(entry["sha256"]), "size": int(entry["size"])}
            return out
        except (ValueError, KeyError, TypeError, AttributeError, ids.InvalidIdentifierError):
            return None

    def has_run(self, memo: str) -> bool:
        """The run record of ``memo`` parses and every output blob it names is on the remote
        (one HEAD per blob; nothing downloaded).  Blobs are still verified when fetched."""
        outputs = self.get_run(memo)
        return bool(outputs) and all(self.has_blob(e["sha256"]) for e in (outputs or {}).values())

    def fetch_run(self, memo: str, dest_dir: Path) -> tuple[Path, ...] | None:
        """Materialize the recorded outputs of conversion ``memo`` under ``dest_dir``, each blob
        verified by digest and size; the files written, or None on any miss (no record, a missing
        or corrupt blob): then the caller converts.  Names are confined to ``dest_dir``."""
        outputs = self.get_run(memo)
        if not outputs:
            return None
        got: list[Path] = []
        for name, entry in sorted(outputs.items()):
            dest = confine(dest_dir, name, follow_last=False, what="a run-cache output")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not self.fetch_blob(entry["sha256"], dest, size=entry["size"]).hit:
                return None
            got.append(dest)
        return tuple(got)

    def share_run(self, memo: str, base: Path, outputs: Mapping[str, tuple[str, int]]) -> bool:
        """Write-through of a conversion: its output blobs (``{name: (sha256, size)}`` under ``base``),
        then the run record (create-only, last, so a reader never finds a record without its blobs).
        True when this call created the record."""
        for name, (sha, _size) in sorted(outputs.items()):
            self.put_blob(sha, confine(base, name, follow_last=False, what="a conversion output"))
        return self.put_run(memo, {name: {"sha256": sha, "size": size} for name, (sha, size) in outputs.items()})
