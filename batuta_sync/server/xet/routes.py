"""HTTP glue of Xet storage for ``batuta hub serve``: the Hub's token endpoints
(``/api/{type}s/{repo}/xet-{read,write}-token/{rev}``) and the CAS service under ``/xet-cas/``
(``v1/xorbs``, ``v1/shards``, ``v1/chunks``, ``v1/reconstructions``, signed xorb range fetches).

Functions take the server's request handler ``h`` (``batuta_sync.server.app._Handler``) and use only
its request/response helpers; the decisions live in :mod:`batuta_sync.server.xet.cas`."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from email.message import Message
from io import BufferedIOBase
from typing import Any, Protocol

from batuta_sync.server.store import StoreError
from batuta_sync.server.xet import shard as shardfmt
from batuta_sync.server.xet.cas import FileRecord, Grant, RepoKey, XetStore
from batuta_sync.server.xet.errors import XetError
from batuta_sync.server.xet.hashing import hash_to_hex, is_hash_hex


class Request(Protocol):
    """What these functions use of the server's request handler (``app._Handler``)."""

    command: str
    headers: Message
    raw_path: str
    wfile: BufferedIOBase
    bytes_out: int

    @property
    def hub(self) -> Any: ...

    def _json(self, obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> None: ...

    def _send_bytes(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None: ...

    def _send_head(
        self, status: int, headers: Mapping[str, str], length: int, expected_out: int | None = None
    ) -> None: ...

    def _read_body(self, limit: int | None = None) -> bytes: ...

    def _body_reader(self) -> tuple[Callable[[int], bytes], int | None]: ...

    def _base(self) -> str: ...

    def _param(self, name: str, default: str | None = None) -> str | None: ...

    def _parse_range(self, size: int, etag: str) -> tuple[int, int] | None: ...

    def _visible_repo(self, repo_type: str, repo_id: str) -> tuple[Any, Any]: ...

    def _writable_repo(self, repo_type: str, repo_id: str) -> tuple[Any, Any]: ...


FETCH_URL_TTL = 3600
_RANGE = re.compile(r"\Abytes=(\d{1,19})-(\d{0,19})\Z")
_PLURAL = {"model": "models", "dataset": "datasets", "space": "spaces"}


def token(h: Request, repo_type: str, repo_id: str, scope: str, rev: str) -> None:
    """Issue a read or write access token for one repo (the caller's rights on it are checked)."""
    if h.command != "GET":
        raise XetError("Xet token endpoints answer GET only.", 405)
    if not h.hub.xet_enabled:
        raise XetError("Xet storage is turned off on this server; set HF_HUB_DISABLE_XET=1.", 501)
    if scope == "write":
        st, user = h._writable_repo(repo_type, repo_id)
    else:
        st, user = h._visible_repo(repo_type, repo_id)
        if st.gated and user is None and not h.hub.open_mode:
            raise XetError(f"Access to {repo_id} is restricted: log in to access it.", 401)
    xet: XetStore = h.hub.xet
    tok, exp = xet.issue(user.name if user is not None else "", (st.repo_type, st.repo_id), rev[:256], scope)
    cas_url = f"{h._base()}/xet-cas"
    headers = {"X-Xet-Cas-Url": cas_url, "X-Xet-Access-Token": tok, "X-Xet-Token-Expiration": str(exp)}
    h._json({"casUrl": cas_url, "accessToken": tok, "exp": exp}, headers=headers)


def resolve_headers(h: Request, repo_type: str, repo_id: str, commit: str, sha256: str) -> dict[str, str]:
    """Headers of a ``/resolve/`` answer for an LFS file: the Xet ones when Xet stores its content."""
    fh = h.hub.xet.file_for_sha256(sha256)
    if fh is None:
        return {}
    route = f"{h._base()}/api/{_PLURAL[repo_type]}/{repo_id}/xet-read-token/{commit}"
    return {"X-Xet-Hash": fh, "X-Xet-Refresh-Route": route, "Link": f'<{route}>; rel="xet-auth"'}


# ---------------------------------------------------------------------- CAS
def _user_of(h: Request, g: Grant) -> Any:
    hub = h.hub
    if hub.open_mode:
        return hub.user_for(None)
    return next((u for u in hub.users.values() if u.name == g.user), None)


def _reader(h: Request, g: Grant) -> Callable[[RepoKey], bool]:
    """Whether the grant's user can (still) read a repo."""
    user = _user_of(h, g)
    store = h.hub.store

    def can_read(key: RepoKey) -> bool:
        try:
            st = store.repo(key[1], key[0])
        except StoreError:
            return False
        return bool(h.hub.can_read(user, st))

    return can_read


def _write_grant(h: Request, g: Grant) -> Any:
    """The repo of a write grant, re-checking that the user may still write to it."""
    if g.scope != "write":
        raise XetError("This operation needs a Xet write token.", 403)
    try:
        st = h.hub.store.repo(g.repo[1], g.repo[0])
    except StoreError:
        raise XetError("The repo this token was issued for no longer exists.", 404) from None
    if not h.hub.can_write_ns(_user_of(h, g), st.namespace):
        raise XetError("This token's user can no longer write to the repo.", 403)
    return st


def cas(h: Request, d: list[str]) -> None:
    """Route a request under ``/xet-cas/``."""
    xet: XetStore = h.hub.xet
    m = h.command
    if d[:1] == ["xorb-data"] and len(d) == 2 and m in ("GET", "HEAD"):
        return _fetch(h, xet, d[1])
    if d[:1] == ["v1"] and d[1:2] == ["telemetry"] and m == "POST":
        h._read_body()
        return h._json({})
    g = xet.grant(h.headers.get("Authorization"))
    if d[:2] == ["v1", "xorbs"] and len(d) == 4 and m == "POST":
        return _put_xorb(h, xet, g, d[3])
    if d == ["v1", "shards"] and m == "POST":
        return _put_shard(h, xet, g)
    if d[:2] == ["v1", "chunks"] and len(d) == 4 and m == "GET":
        if not is_hash_hex(d[3]):
            raise XetError("A chunk hash is 64 lowercase hex digits.")
        got = xet.dedup_shard(d[3], _reader(h, g))
        if got is None:
            raise XetError("No xorb you can read holds this chunk.", 404)
        return h._send_bytes(200, got, {"Content-Type": "application/octet-stream"})
    if d[:2] == ["v1", "reconstructions"] and len(d) == 3 and m == "GET":
        return _reconstruction(h, xet, g, d[2])
    raise XetError(f"Not found: {h.raw_path}", 404)


def _put_xorb(h: Request, xet: XetStore, g: Grant, xh: str) -> None:
    _write_grant(h, g)
    if not is_hash_hex(xh):
        raise XetError("A xorb hash is 64 lowercase hex digits.")
    read, length = h._body_reader()
    if length is None:
        raise XetError("A xorb upload needs a Content-Length.", 411)
    inserted = xet.put_xorb(g, xh, read, length)
    h._json({"was_inserted": inserted})


def _put_shard(h: Request, xet: XetStore, g: Grant) -> None:
    st = _write_grant(h, g)
    data = h._read_body(shardfmt.MAX_SHARD_BYTES)
    xet.count_received(len(data))
    parsed = shardfmt.parse_shard(data)
    can_read = _reader(h, g)
    for x in parsed.xorbs:  # what the shard says about xorbs must be what was uploaded
        xh = hash_to_hex(x.xorb)
        index = xet.readable_xorb(xh, can_read)
        if index is None:
            raise XetError(f"The shard describes xorb {xh}, which was not uploaded to a repo you can read.", 400)
        if [(c.hash, c.byte_start, c.unpacked_len) for c in x.chunks] != [
            (c.hash, start, c.unpacked_len) for c, start in zip(index.chunks, index.unpacked_starts(), strict=True)
        ]:
            raise XetError(f"The shard's description of xorb {xh} does not match the xorb.")
    with xet.user_lock(g.user):
        new = _check_files(h, xet, g, st, parsed, can_read)
    xet.link_group(
        [hash_to_hex(x.xorb) for x in parsed.xorbs]
        + [hash_to_hex(s.xorb) for f in parsed.files for s in f.segments]
    )
    h._json({"result": 1 if new else 0})


def _check_files(
    h: Request, xet: XetStore, g: Grant, st: Any, parsed: shardfmt.Shard, can_read: Callable[[RepoKey], bool]
) -> int:
    """Verify (and record) the files of a shard; the number of new ones."""
    store = h.hub.store
    new = 0
    for info in parsed.files:
        fh = hash_to_hex(info.file_hash)
        checked = xet.check_file(info, can_read)  # always: a known file hash proves nothing
        rec = xet.file(fh)
        if rec is None:
            h256 = hashlib.sha256()  # the file is rebuilt and hashed, not stored a second time
            for piece in xet.file_bytes(checked):
                h256.update(piece)
            sha = h256.hexdigest()
            if info.sha256 is not None and hash_to_hex(info.sha256) != sha:
                raise XetError(f"The content of file {fh} does not have the sha256 the shard claims.")
            rec = FileRecord(fh, sha, checked.size, checked.terms)
            xet.add_file(rec)
            new += 1
        elif info.sha256 is not None and hash_to_hex(info.sha256) != rec.sha256:
            raise XetError(f"The content of file {fh} does not have the sha256 the shard claims.")
        store.add_owner(st, rec.sha256)
    return new


def _reconstruction(h: Request, xet: XetStore, g: Grant, fh: str) -> None:
    if not is_hash_hex(fh):
        raise XetError("A file hash is 64 lowercase hex digits.")
    rec = xet.file(fh)
    store = h.hub.store
    visible = False
    if rec is not None and _reader(h, g)(g.repo):
        try:
            visible = store.holds(store.repo(g.repo[1], g.repo[0]), rec.sha256)
        except StoreError:
            visible = False
    if rec is None or not visible:
        raise XetError("File not found (or not in the repo this token is for).", 404)
    first, last = 0, rec.size - 1
    rng = h.headers.get("Range")
    if rng:
        mt = _RANGE.match(rng.strip())
        if mt is None:
            raise XetError("Only a single 'bytes=a-b' range is supported.")
        first = int(mt.group(1))
        last = min(int(mt.group(2)), rec.size - 1) if mt.group(2) else rec.size - 1
        if first > last or first >= rec.size:
            raise XetError("Requested range not satisfiable.", 416)
    base = h._base()
    exp = int(time.time()) + FETCH_URL_TTL

    def url(xorb: str, start: int, end: int) -> str:
        sig = xet.sign(xorb, start, end, exp)
        return f"{base}/xet-cas/xorb-data/{xorb}?r={start}-{end}&e={exp}&s={sig}"

    h._json(xet.reconstruction(rec, first, last, url) if rec.size else {
        "offset_into_first_range": 0, "terms": [], "fetch_info": {}})


def _fetch(h: Request, xet: XetStore, xh: str) -> None:
    """Bytes of a stored xorb through a signed URL from a reconstruction answer."""
    try:
        start_s, _, end_s = (h._param("r") or "").partition("-")
        start, end, exp = int(start_s), int(end_s), int(h._param("e") or "")
    except ValueError:
        raise XetError("Malformed xorb fetch URL.", 403) from None
    if not is_hash_hex(xh) or not xet.check_signature(xh, start, end, exp, h._param("s") or ""):
        raise XetError("This xorb fetch URL is invalid or has expired.", 403)
    rng = h.headers.get("Range")
    if rng:
        mt = _RANGE.match(rng.strip())
        if mt is None or not mt.group(2):
            raise XetError("Only a single 'bytes=a-b' range is supported.")
        a, b = int(mt.group(1)), int(mt.group(2))
        if not start <= a <= b <= end:
            raise XetError("The range is outside what this URL grants.", 403)
        start, end = a, b
    path = xet.xorb_file(xh)
    length = end - start + 1
    headers = {"Content-Type": "application/octet-stream", "Content-Range": f"bytes {start}-{end}/*"}
    if h.command == "HEAD":
        return h._send_head(206, headers, length)
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(length)
    if len(data) != length:
        raise XetError("The range is past the end of the xorb.", 416)
    h._send_bytes(206, data, headers)


def send_file(h: Request, sha256: str, size: int, etag: str, headers: Mapping[str, str]) -> bool:
    """Answer a plain-HTTP download of a file Xet stores (rebuilt from its xorbs; ``Range`` honoured
    as for any blob).  False when Xet does not hold ``sha256`` (the caller sends the blob file)."""
    if h.hub.store.blob_path(sha256).is_file():
        return False  # also uploaded whole (classic LFS): sent as a file
    rec = h.hub.xet.record_for_sha256(sha256)
    if rec is None or rec.size != size:
        return False
    hd = dict(headers)
    hd.update({"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"})
    rng = h._parse_range(size, etag)
    status, start, length = 200, 0, size
    if rng is not None:
        status, start, length = 206, rng[0], rng[1] - rng[0] + 1
        hd["Content-Range"] = f"bytes {rng[0]}-{rng[1]}/{size}"
    h._send_head(status, hd, length)
    if h.command != "HEAD":
        for piece in h.hub.xet.file_bytes(rec, start, length):
            h.wfile.write(piece)
            h.bytes_out += len(piece)
    return True
