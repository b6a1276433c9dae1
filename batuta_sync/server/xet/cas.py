"""The CAS side of Xet storage: access tokens, and the on-disk store of verified xorbs and file
reconstructions under ``<root>/xet/``.

Authorisation is by repo: a token is issued for one repo (read or write) to one user, and every
object remembers the repos it was uploaded for.  A xorb is readable through a token when the token's
user can read one of those repos; a file reconstruction when the token's repo holds the file."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from batuta_sync._fs import atomic_write
from batuta_sync.server.xet import shard as shardfmt
from batuta_sync.server.xet.errors import XetError
from batuta_sync.server.xet.hashing import file_hash, hash_to_hex, hex_to_hash, range_hash
from batuta_sync.server.xet.xorb import ChunkRef, XorbIndex, decode_chunk, parse_xorb

RepoKey = tuple[str, str]
"""(repo_type, repo_id)"""

DEFAULT_TOKEN_TTL = 3600.0
MAX_TOKENS = 100_000
MAX_GROUP = 1024
MAX_SHA_CACHE = 100_000
MAX_FILE_SIZE = 1 << 40
"""Bytes of one file a shard may describe (its sha256 is computed by rebuilding it: bounded work)."""


DEFAULT_GC_GRACE = 24 * 3600.0
"""Unreferenced Xet objects younger than this are kept by :meth:`XetStore.collect`."""


@dataclass
class GcReport:
    files: int = 0
    xorbs: int = 0
    bytes: int = 0


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except OSError:
        return 0.0


@dataclass(frozen=True)
class Grant:
    """What an access token allows: ``scope`` ("read" or "write") on one repo, for one user."""

    user: str
    repo: RepoKey
    revision: str
    scope: str
    expires: float


@dataclass(frozen=True)
class Term:
    xorb: str
    chunk_start: int
    chunk_end: int
    unpacked_len: int


@dataclass(frozen=True)
class FileRecord:
    file_hash: str
    sha256: str
    size: int
    terms: tuple[Term, ...]


@dataclass
class _Stored:
    index: XorbIndex
    holders: set[RepoKey] = field(default_factory=set)
    group: set[str] = field(default_factory=set)
    """Xorbs uploaded in the same shard: a dedup hit on one describes them all (as the Hub does)."""


class XetStore:
    """Tokens and verified Xet objects of one server."""

    def __init__(self, root: Path, *, token_ttl: float = DEFAULT_TOKEN_TTL, durable: bool = True) -> None:
        self.root = Path(root) / "xet"
        self.token_ttl = token_ttl
        self.durable = durable
        self.clock: Callable[[], float] = time.time
        self._secret = secrets.token_bytes(32)
        self._tokens: dict[str, Grant] = {}
        self._xorbs: dict[str, _Stored] = {}
        self._chunk_to_xorb: dict[bytes, str] | None = None
        self._files: dict[str, FileRecord] = {}
        self._by_sha: dict[str, str | None] = {}  # sha256 -> file hash (None: not stored with Xet)
        self._lock = threading.Lock()
        self._user_locks: dict[str, threading.Lock] = {}
        self.bytes_received = 0
        """Bytes of xorbs and shards received (the dedup figure)."""

    # ------------------------------------------------------------------ tokens
    def issue(self, user: str, repo: RepoKey, revision: str, scope: str) -> tuple[str, int]:
        """A new access token and its expiry (unix seconds)."""
        now = self.clock()
        exp = int(now + self.token_ttl)
        token = "xet_" + secrets.token_urlsafe(32)
        with self._lock:
            if len(self._tokens) >= MAX_TOKENS:
                for k in [k for k, g in self._tokens.items() if g.expires <= now]:
                    del self._tokens[k]
                while len(self._tokens) >= MAX_TOKENS:
                    del self._tokens[next(iter(self._tokens))]
            self._tokens[token] = Grant(user, repo, revision, scope, float(exp))
        return token, exp

    def grant(self, auth_header: str | None) -> Grant:
        """The grant of a CAS request's ``Authorization: Bearer <token>``; 401 when absent/expired."""
        scheme, _, token = (auth_header or "").partition(" ")
        g = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if g is None:
            raise XetError("A valid Xet access token is required (get one from the xet-*-token API).", 401)
        if g.expires <= self.clock():
            raise XetError("The Xet access token has expired; refresh it.", 401)
        return g

    # ------------------------------------------------------------------ signed fetch URLs
    def sign(self, xorb: str, start: int, end: int, exp: int) -> str:
        msg = f"{xorb}|{start}|{end}|{exp}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def check_signature(self, xorb: str, start: int, end: int, exp: int, sig: str) -> bool:
        return exp > self.clock() and hmac.compare_digest(self.sign(xorb, start, end, exp), sig)

    # ------------------------------------------------------------------ xorbs
    def _xorb_path(self, h: str) -> Path:
        return self.root / "xorbs" / h[:2] / h

    def xorb_file(self, h: str) -> Path:
        return self._xorb_path(h)

    def _load_xorb(self, h: str) -> _Stored | None:
        with self._lock:
            got = self._xorbs.get(h)
        if got is not None:
            return got
        meta = self._xorb_path(h).with_suffix(".json")
        try:
            d = json.loads(meta.read_text())
        except (OSError, ValueError):
            return None
        chunks = tuple(ChunkRef(o, p, u, bytes.fromhex(ch)) for o, p, u, ch in d["chunks"])
        st = _Stored(
            XorbIndex(hex_to_hash(h), chunks, d["data_len"]),
            {(t, i) for t, i in d["holders"]},
            set(d.get("group", ())),
        )
        with self._lock:
            return self._xorbs.setdefault(h, st)

    def _save_xorb_meta(self, h: str, st: _Stored) -> None:
        d = {
            "chunks": [[c.offset, c.packed_len, c.unpacked_len, c.hash.hex()] for c in st.index.chunks],
            "data_len": st.index.data_len,
            "holders": sorted(st.holders),
            "group": sorted(st.group),
        }
        atomic_write(self._xorb_path(h).with_suffix(".json"), json.dumps(d).encode(), fsync=self.durable)

    def xorb(self, h: str) -> XorbIndex | None:
        st = self._load_xorb(h)
        return st.index if st is not None else None

    def xorb_holders(self, h: str) -> set[RepoKey]:
        st = self._load_xorb(h)
        return set(st.holders) if st is not None else set()

    def put_xorb(self, grant: Grant, h: str, read: Callable[[int], bytes], length: int) -> bool:
        """Receive, verify and store a xorb uploaded as ``h``; True if it was new.  The body is read
        and verified even when the xorb is already stored: the bytes prove the uploader has it."""
        expected = hex_to_hash(h)
        dest = self._xorb_path(h)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{h}.{secrets.token_hex(6)}.tmp")
        try:
            with open(tmp, "wb") as f:
                index = parse_xorb(read, length, expected, f.write)
                if self.durable:
                    f.flush()
                    os.fsync(f.fileno())
            self.count_received(length)
            st = self._load_xorb(h)
            inserted = st is None
            if st is None:
                os.replace(tmp, dest)
                st = _Stored(index)
                with self._lock:
                    st = self._xorbs.setdefault(h, st)
                    if self._chunk_to_xorb is not None:
                        for c in index.chunks:
                            self._chunk_to_xorb.setdefault(c.hash, h)
            with self._lock:
                st.holders.add(grant.repo)
            self._save_xorb_meta(h, st)
            return inserted
        finally:
            tmp.unlink(missing_ok=True)

    def readable_xorb(self, h: str, can_read: Callable[[RepoKey], bool]) -> XorbIndex | None:
        st = self._load_xorb(h)
        if st is None or not any(can_read(k) for k in list(st.holders)):
            return None
        return st.index

    # ------------------------------------------------------------------ dedup
    def _chunk_map(self) -> dict[bytes, str]:
        if self._chunk_to_xorb is None:
            m: dict[bytes, str] = {}
            for meta in sorted((self.root / "xorbs").glob("*/*.json")):
                st = self._load_xorb(meta.stem)
                for c in st.index.chunks if st is not None else ():
                    m.setdefault(c.hash, meta.stem)
            with self._lock:
                if self._chunk_to_xorb is None:
                    self._chunk_to_xorb = m
        return self._chunk_to_xorb

    def link_group(self, xorbs: Iterable[str]) -> None:
        """Record that ``xorbs`` were described by one shard (bounded: ``MAX_GROUP``)."""
        group = sorted(set(xorbs))[:MAX_GROUP]
        for h in group:
            st = self._load_xorb(h)
            if st is not None and not set(group) <= st.group:
                with self._lock:
                    st.group.update(group)
                    while len(st.group) > MAX_GROUP:
                        st.group.discard(max(st.group - {h}))
                self._save_xorb_meta(h, st)

    def dedup_shard(self, chunk: str, can_read: Callable[[RepoKey], bool]) -> bytes | None:
        """A shard describing the readable xorb that holds chunk ``chunk`` and the readable xorbs
        uploaded with it, else None."""
        h = self._chunk_map().get(hex_to_hash(chunk))
        first = self.readable_xorb(h, can_read) if h is not None else None
        if h is None or first is None:
            return None
        infos = []
        for x in [h, *sorted(self._load_xorb(h).group - {h})]:  # type: ignore[union-attr]
            index = self.readable_xorb(x, can_read)
            if index is None:
                continue
            infos.append(
                shardfmt.XorbInfo(
                    index.hash,
                    tuple(
                        shardfmt.XorbChunk(c.hash, start, c.unpacked_len)
                        for c, start in zip(index.chunks, index.unpacked_starts(), strict=True)
                    ),
                    index.unpacked_len,
                    index.data_len,
                )
            )
        return shardfmt.serialize_shard([], infos, footer=True)

    # ------------------------------------------------------------------ garbage collection
    def collect(self, live_sha256: Iterable[str], *, grace: float = DEFAULT_GC_GRACE) -> GcReport:
        """Remove what no commit can reach: file records whose sha256 no repo holds, then xorbs no
        kept file record uses.  Objects touched within ``grace`` seconds stay (an upload sends its
        xorbs and shard before the commit that makes them reachable).  Run while nothing uploads
        (``HubServer`` runs it before it serves)."""
        now = self.clock()
        live = set(live_sha256)
        report = GcReport()
        keep: set[str] = set()
        for meta in sorted((self.root / "files").glob("*/*.json")):
            rec = self.file(meta.stem)
            young = _age(meta, now) < grace
            if rec is not None and (rec.sha256 in live or young):
                keep.update(t.xorb for t in rec.terms)
                continue
            if young:
                continue
            if rec is not None:
                self._sha_path(rec.sha256).unlink(missing_ok=True)
                with self._lock:
                    self._by_sha.pop(rec.sha256, None)
            meta.unlink(missing_ok=True)
            with self._lock:
                self._files.pop(meta.stem, None)
            report.files += 1
        for meta in sorted((self.root / "xorbs").glob("*/*.json")):
            h = meta.stem
            if h in keep or _age(meta, now) < grace:
                continue
            data = self._xorb_path(h)
            with contextlib.suppress(OSError):
                report.bytes += data.stat().st_size
            data.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            with self._lock:
                self._xorbs.pop(h, None)
                self._chunk_to_xorb = None  # rebuilt on the next dedup query
            report.xorbs += 1
        return report

    # ------------------------------------------------------------------ files
    def _file_path(self, fh: str) -> Path:
        return self.root / "files" / fh[:2] / f"{fh}.json"

    def _sha_path(self, sha256: str) -> Path:
        return self.root / "by-sha256" / sha256[:2] / sha256

    def file(self, fh: str) -> FileRecord | None:
        with self._lock:
            rec = self._files.get(fh)
        if rec is not None:
            return rec
        try:
            d = json.loads(self._file_path(fh).read_text())
        except (OSError, ValueError):
            return None
        rec = FileRecord(fh, d["sha256"], d["size"], tuple(Term(*t) for t in d["terms"]))
        with self._lock:
            return self._files.setdefault(fh, rec)

    def file_for_sha256(self, sha256: str) -> str | None:
        """The Xet file hash of the content with this sha256, if Xet stores it (cached)."""
        with self._lock:
            if sha256 in self._by_sha:
                return self._by_sha[sha256]
        try:
            fh: str | None = self._sha_path(sha256).read_text().strip()
        except OSError:
            fh = None
        if fh is not None and self.file(fh) is None:
            fh = None
        with self._lock:
            if len(self._by_sha) >= MAX_SHA_CACHE:
                self._by_sha.clear()
            return self._by_sha.setdefault(sha256, fh)

    def user_lock(self, user: str) -> threading.Lock:
        """One lock per user around shard verification: a user cannot run several rebuilds at once
        (a small shard can name a large file made of already-stored xorbs)."""
        with self._lock:
            if len(self._user_locks) >= MAX_TOKENS:
                self._user_locks = {k: v for k, v in self._user_locks.items() if v.locked()}
            return self._user_locks.setdefault(user, threading.Lock())

    def count_received(self, n: int) -> None:
        with self._lock:
            self.bytes_received += n

    def check_file(self, info: shardfmt.FileInfo, can_read: Callable[[RepoKey], bool]) -> FileRecord:
        """Verify one file of a shard against the stored xorbs: every segment names a readable xorb
        and a chunk range inside it with the right size, the verification hashes match, and the
        chunks hash to the file hash.  Returns its record (sha256 still to be computed)."""
        fh = hash_to_hex(info.file_hash)
        chunks: list[tuple[bytes, int]] = []
        terms = []
        size = 0
        for i, seg in enumerate(info.segments):
            xh = hash_to_hex(seg.xorb)
            index = self.readable_xorb(xh, can_read)
            if index is None:
                raise XetError(
                    f"file {fh} references xorb {xh}, which was not uploaded (or not to a repo you can "
                    "read); upload the xorb first",  # the same answer whether it exists or not
                )
            if not 0 <= seg.chunk_start < seg.chunk_end <= len(index.chunks):
                raise XetError(f"file {fh} claims chunks {seg.chunk_start}..{seg.chunk_end} of xorb {xh}, "
                               f"which has {len(index.chunks)}")
            run = index.chunks[seg.chunk_start : seg.chunk_end]
            if sum(c.unpacked_len for c in run) != seg.unpacked_len:
                raise XetError(f"file {fh}: segment {i} does not have the size it claims")
            if info.verification is not None and range_hash([c.hash for c in run]) != info.verification[i]:
                raise XetError(f"file {fh}: the verification hash of segment {i} does not match xorb {xh}")
            chunks.extend((c.hash, c.unpacked_len) for c in run)
            terms.append(Term(xh, seg.chunk_start, seg.chunk_end, seg.unpacked_len))
            size += seg.unpacked_len
            if size > MAX_FILE_SIZE:
                raise XetError(f"file {fh} is larger than this server accepts ({MAX_FILE_SIZE} bytes)", 413)
        if file_hash(chunks) != info.file_hash:
            raise XetError(f"the chunks of file {fh} do not hash to its file hash")
        return FileRecord(fh, "", size, tuple(terms))

    def file_bytes(self, rec: FileRecord, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Bytes ``start .. start+length`` of a file rebuilt from its xorbs, a chunk at a time (chunks
        wholly outside the range are skipped undecoded)."""
        end = rec.size if length is None else min(rec.size, start + length)
        pos = 0
        for t in rec.terms:
            if pos >= end:
                return
            if pos + t.unpacked_len <= start:
                pos += t.unpacked_len
                continue
            index = self.xorb(t.xorb)
            if index is None:
                raise XetError(f"xorb {t.xorb} is missing from the store", 500)
            with open(self._xorb_path(t.xorb), "rb") as f:
                for c in index.chunks[t.chunk_start : t.chunk_end]:
                    c_end = pos + c.unpacked_len
                    if c_end > start and pos < end:
                        f.seek(c.offset)
                        raw = f.read(c.packed_len)
                        data = decode_chunk(raw[4], raw[8:], c.unpacked_len)
                        yield data[max(0, start - pos) : end - pos]
                    pos = c_end

    # the store's ExternalBlobs: files stored with Xet are served without a second whole copy
    def size(self, sha256: str) -> int | None:
        fh = self.file_for_sha256(sha256)
        rec = self.file(fh) if fh is not None else None
        return rec.size if rec is not None else None

    def write_to(self, sha256: str, f: BinaryIO) -> None:
        fh = self.file_for_sha256(sha256)
        rec = self.file(fh) if fh is not None else None
        if rec is None:
            raise XetError(f"no Xet file has sha256 {sha256}", 404)
        for piece in self.file_bytes(rec):
            f.write(piece)

    def record_for_sha256(self, sha256: str) -> FileRecord | None:
        fh = self.file_for_sha256(sha256)
        return self.file(fh) if fh is not None else None

    def add_file(self, rec: FileRecord) -> None:
        d = {"sha256": rec.sha256, "size": rec.size, "terms": [list(vars(t).values()) for t in rec.terms]}
        atomic_write(self._file_path(rec.file_hash), json.dumps(d).encode(), fsync=self.durable)
        atomic_write(self._sha_path(rec.sha256), rec.file_hash.encode(), fsync=self.durable)
        with self._lock:
            self._files[rec.file_hash] = rec
            self._by_sha[rec.sha256] = rec.file_hash

    # ------------------------------------------------------------------ reconstruction
    def reconstruction(
        self, rec: FileRecord, first: int, last: int, url: Callable[[str, int, int], str]
    ) -> dict[str, Any]:
        """The v1 reconstruction of bytes ``first..last`` (inclusive) of a file: its terms and, per
        xorb, the byte ranges to fetch; ``url(xorb, start, end)`` makes a signed fetch URL."""
        terms: list[dict[str, Any]] = []
        fetch: dict[str, list[dict[str, Any]]] = {}
        pos = 0
        offset_into_first = 0
        for t in rec.terms:
            t_end = pos + t.unpacked_len
            if t_end > first and pos <= last:
                index = self.xorb(t.xorb)
                assert index is not None
                cs, ce = t.chunk_start, t.chunk_end
                run = index.chunks[cs:ce]
                # trim whole chunks outside the range
                p = pos
                while run and p + run[0].unpacked_len <= first:
                    p += run[0].unpacked_len
                    run = run[1:]
                    cs += 1
                if not terms:
                    offset_into_first = first - p
                q = p + sum(c.unpacked_len for c in run)
                while len(run) > 1 and q - run[-1].unpacked_len > last:
                    q -= run[-1].unpacked_len
                    run = run[:-1]
                    ce -= 1
                ce = cs + len(run)
                terms.append(
                    {"hash": t.xorb, "unpacked_length": q - p, "range": {"start": cs, "end": ce}}
                )
                start, end = run[0].offset, run[-1].offset + run[-1].packed_len - 1
                fetch.setdefault(t.xorb, []).append(
                    {
                        "range": {"start": cs, "end": ce},
                        "url": url(t.xorb, start, end),
                        "url_range": {"start": start, "end": end},
                    }
                )
            pos = t_end
        return {"offset_into_first_range": offset_into_first, "terms": terms, "fetch_info": fetch}
