"""Downloads: ``/resolve/`` and ``/cdn-lfs/`` file bodies (ranges, ETags, body faults, sendfile)."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from email.utils import formatdate
from pathlib import Path
from typing import Any

from batuta_sync.server.handlers.base import BaseHandler
from batuta_sync.server.protocol import CHUNK, PREFIX, HTTPError
from batuta_sync.server.state import FaultDraw
from batuta_sync.server.store import (
    EntryNotFound,
    FileEntry,
    RepoState,
)
from batuta_sync.server.xet import routes as xet_routes


def _norm_etag(value: str) -> str:
    v = value.strip()
    if v.startswith("W/"):
        v = v[2:]
    return v.strip('"')


class ResolveHandlers(BaseHandler):
    def _resolve(self, repo_type: str, repo_id: str, rev: str, path: str) -> None:
        st, user = self._visible_repo(repo_type, repo_id)
        if st.gated and user is None and not self.hub.open_mode:
            raise HTTPError(401, f"Access to {repo_id} is restricted: log in to access it.", "GatedRepo")
        store = self.hub.store
        sha = store.resolve_state(st, rev)
        c = store.get_commit(sha)
        e = c.files.get(path)
        if e is None:
            raise EntryNotFound(f"Entry not found: {path!r} in {repo_id}@{rev}.", sha)
        head = {"X-Repo-Commit": sha, "ETag": f'"{e.oid}"', "Vary": "Origin, Accept-Encoding"}
        if e.lfs:
            head["X-Linked-Etag"] = f'"{e.sha256}"'
            head["X-Linked-Size"] = str(e.size)
            head.update(xet_routes.resolve_headers(self, repo_type, repo_id, sha, e.sha256))
            if self.hub.lfs_redirect:
                loc = f"{self._base()}/cdn-lfs/{repo_type}/{repo_id}/resolve/{sha}/{e.sha256}"
                head["Location"] = loc
                self._random_fault(body=False)
                return self._send_bytes(302, b"", head)
        drawn = self._random_fault(body=self.command == "GET")  # before counting: a 429/5xx is no download
        if self.command == "GET":
            store.record_download(st)
        if not (e.lfs and not st.mirrored and xet_routes.send_file(self, e.sha256, e.size, e.etag, head)):
            self._send_file(self._file_path(st, sha, e), e.size, e.etag, head, drawn)

    def _cdn_blob(self, repo_type: str, repo_id: str, commit: str, sha256: str) -> None:
        if repo_type not in PREFIX:
            raise HTTPError(404, "Not found")
        st, user = self._visible_repo(repo_type, repo_id)
        if st.gated and user is None and not self.hub.open_mode:
            raise HTTPError(401, f"Access to {repo_id} is restricted: log in to access it.", "GatedRepo")
        store = self.hub.store
        # The blob must belong to that commit of that repo: authorisation is per repo, not per blob.
        e = None
        if commit in st.commits:
            e = next((e for e in store.get_commit(commit).files.values() if e.sha256 == sha256), None)
        if e is None:
            raise HTTPError(404, "Blob not found in this repo.", "EntryNotFound")
        size = e.size
        head = {"ETag": f'"{sha256}"', "X-Linked-Size": str(size), "X-Repo-Commit": commit}
        head.update(xet_routes.resolve_headers(self, repo_type, repo_id, commit, sha256))
        drawn = self._random_fault(body=self.command == "GET")
        if self.command == "GET":
            store.record_download(st)
        if st.mirrored or not xet_routes.send_file(self, sha256, size, sha256, head):
            self._send_file(self._file_path(st, commit, e), size, sha256, head, drawn)

    def _file_path(self, st: RepoState, commit: str, e: FileEntry) -> Path:
        """Where the contents of ``e`` are (for a mirrored repo: fetched from the upstream first;
        not needed for a HEAD)."""
        if st.mirrored:
            from batuta_sync.server import mirror

            return mirror.file_path(self.hub, st, commit, e, fetch=self.command == "GET")
        return self.hub.store.blob_path(e.sha256)

    def _parse_range(self, size: int, etag: str) -> tuple[int, int] | None:
        rng = self.headers.get("Range")
        if not rng or size == 0:
            return None
        if self.hub.faults.ignore_range and self.hub.faults.applies(self.raw_path):
            self.hub.faults.count("ignore_range")
            return None
        if_range = self.headers.get("If-Range")
        if if_range and _norm_etag(if_range) != etag:
            return None
        unit, _, spec = rng.partition("=")
        if unit.strip().lower() != "bytes" or "," in spec:
            return None
        first, _, last = spec.strip().partition("-")
        try:
            if first == "":
                n = int(last)
                if n <= 0:
                    raise ValueError
                start, end = max(0, size - n), size - 1
            else:
                start = int(first)
                end = int(last) if last else size - 1
                end = min(end, size - 1)
        except ValueError:
            return None
        if start >= size or start > end:
            raise HTTPError(
                416, "Requested range not satisfiable.", None, {"Content-Range": f"bytes */{size}"}
            )
        return start, end

    def _send_file(
        self, fs_path: Path, size: int, etag: str, headers: Mapping[str, str], drawn: FaultDraw | None = None
    ) -> None:
        """Send a file (or the requested range); ``drawn``: a random body fault drawn for this request."""
        h = dict(headers)
        h["Accept-Ranges"] = "bytes"
        h["Content-Type"] = "application/octet-stream"
        h["Last-Modified"] = formatdate(usegmt=True)
        rng = self._parse_range(size, etag)
        status = 200
        start, length = 0, size
        if rng is not None:
            status = 206
            start, length = rng[0], rng[1] - rng[0] + 1
            h["Content-Range"] = f"bytes {rng[0]}-{rng[1]}/{size}"
        if self.command == "HEAD":
            return self._send_head(status, h, length)
        fault = None
        if self.hub.faults.applies(self.raw_path):
            fault = self.hub.faults.take_body_fault(length, drawn)
        with open(fs_path, "rb") as f:
            self._send_head(status, h, length, expected_out=length if fault is None else fault.send)
            if fault is None:
                sent = self.connection.sendfile(f, offset=start, count=length) if length else 0
                self.bytes_out += sent
                if sent != length:
                    self.close_connection = True
                return
            flip_at = -1 if fault.flip_at is None else fault.flip_at
            f.seek(start)
            pos = 0
            for chunk in _chunks(f, fault.send):
                if 0 <= flip_at - pos < len(chunk):
                    b = bytearray(chunk)
                    b[flip_at - pos] ^= 0xFF
                    chunk = bytes(b)
                self.wfile.write(chunk)
                pos += len(chunk)
                self.bytes_out += len(chunk)
            if fault.send < length:
                self.close_connection = True
                try:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _chunks(f: Any, limit: int) -> Iterator[bytes]:
    left = limit
    while left > 0:
        chunk = f.read(min(CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)
        yield chunk
