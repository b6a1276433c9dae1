"""Pulling Xet-stored files through reconstruction, reusing the chunks of earlier revisions (issue 21).

Opt-in (``BATUTA_DOWNLOAD_PROTOCOL=xet``); the default stays the HTTP path, for the reasons and
figures in ``docs/pull-and-cache.md`` ("Xet-stored files", ``tests/bench/bench_xet_pull.py``).

For each large LFS file of a pull the Hub says is Xet-stored (``xetHash`` in the commit's tree):
a read token (``/api/{type}s/{repo}/xet-read-token/{commit}``), the file's reconstruction
(``{cas}/v1/reconstructions/{hash}``: terms = chunk ranges of xorbs, and where to fetch them), then
each term either **copied from a blob already in the cache** -- when an earlier reconstruction
recorded where those chunks are (``<batuta state>/xet-chunks/<repo folder>/<etag>.json``: per
term, the xorb, its chunk range and each chunk's length) -- or fetched (one ranged GET per fetch
range, chunks unpacked by :mod:`batuta_sync.fileformats.xorb`).  The file is rebuilt beside its
blob, hashed as it is written, and published under ``blobs/<sha256>`` only when the sha256 is the
Hub's; any failure (a server that does not speak Xet, a refused token, a bad range, a digest
mismatch) leaves the file to the HTTP path, which verifies it the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batuta_sync._fs import atomic_write, atomic_writer, confine
from batuta_sync.settings import Settings
from batuta_sync.types import RepoFile, RepoRef

MIN_SIZE = 8 << 20
"""Smaller files take the HTTP path (one request; nothing worth deduplicating)."""
_MAX_RECORD = 64 << 20
MAX_CHUNKS = 8 * 1024  # chunks in one xorb (the spec's limit): bounds a term and a fetch range
MAX_RANGE = (64 << 20) + MAX_CHUNKS * 8  # bytes of one fetch range: a whole xorb at most
MAX_CHUNK_BYTES = 128 * 1024  # the chunker's largest chunk


def protocol(env: Mapping[str, str] | None = None) -> str:
    """``BATUTA_DOWNLOAD_PROTOCOL``: ``http`` (default, also ``auto``) or ``xet``."""
    value = (os.environ if env is None else env).get("BATUTA_DOWNLOAD_PROTOCOL", "auto").strip().lower()
    if value not in ("auto", "http", "xet"):
        from batuta_sync.errors import UsageError

        raise UsageError(f"BATUTA_DOWNLOAD_PROTOCOL={value!r} is not auto, http or xet.",
                         hint="Unset it for the default (HTTP), or set it to xet.")
    return "xet" if value == "xet" else "http"


@dataclass(frozen=True)
class Term:
    xorb: str
    start: int  # chunk range [start, end) of the xorb
    end: int
    lengths: tuple[int, ...]  # unpacked length of each chunk of the range


class ChunkIndex:
    """Where chunks of xorbs lie in blobs of one repo's cache folder (from earlier reconstructions)."""

    def __init__(self, folder: Path, blob_path: Callable[[str], Path]) -> None:
        self.folder = folder
        self.blob_path = blob_path
        self._map: dict[tuple[str, int], tuple[str, int, int]] | None = None

    def _load(self) -> dict[tuple[str, int], tuple[str, int, int]]:
        if self._map is None:
            self._map = {}
            for rec in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else ():
                try:
                    if rec.stat().st_size > _MAX_RECORD or not self.blob_path(rec.stem).is_file():
                        continue
                    terms = json.loads(rec.read_text(encoding="utf-8"))["terms"]
                    found: dict[tuple[str, int], tuple[str, int, int]] = {}
                    pos = 0
                    for xorb, start, lengths in terms:
                        for i, n in enumerate(lengths):
                            if not (isinstance(n, int) and 0 < n <= MAX_CHUNK_BYTES and isinstance(start, int)):
                                raise ValueError("a chunk length out of bounds")  # never a huge read
                            found[(str(xorb), start + i)] = (rec.stem, pos, n)
                            pos += n
                except Exception:  # a damaged or planted record (also a bad name) only costs a download
                    continue
                for k, v in found.items():
                    self._map.setdefault(k, v)
        return self._map

    def find(self, xorb: str, start: int, end: int) -> list[tuple[str, int, int]] | None:
        """(etag, offset, length) of every chunk of ``[start, end)``, or None when one is unknown."""
        m = self._load()
        out = [m.get((xorb, i)) for i in range(start, end)]
        return None if any(x is None for x in out) else [x for x in out if x is not None]

    def record(self, etag: str, terms: Sequence[Term]) -> None:
        data = {"terms": [[t.xorb, t.start, list(t.lengths)] for t in terms]}
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(self.folder / f"{etag}.json", json.dumps(data, separators=(",", ":")))
        self._map = None


@dataclass
class XetStats:
    files: int = 0
    fetched_bytes: int = 0  # bytes received from the CAS
    reused_bytes: int = 0  # bytes copied from blobs already in the cache


def xet_hashes(http: Any, ref: RepoRef, commit: str) -> dict[str, str]:
    """path -> Xet file hash of the commit's files (the tree listing's ``xetHash``)."""
    entries = http.get_json_pages(f"/api/{ref.repo_type.api_plural}/{ref.repo_id}/tree/{commit}",
                                  params={"recursive": "true", "expand": "true"})
    from batuta_sync import ids

    out: dict[str, str] = {}
    for e in entries if isinstance(entries, list) else ():
        h = e.get("xetHash") if isinstance(e, dict) else None
        if isinstance(h, str) and ids.is_sha256(h) and isinstance(e.get("path"), str):
            out[e["path"]] = h
    return out


def _fetch_range(http: Any, url: str, start: int, end: int) -> bytes:
    got = bytearray()
    with http.stream("GET", url, headers={"range": f"bytes={start}-{end}", "accept-encoding": "identity"}) as resp:
        for piece in resp.iter_raw():
            got += piece
            if len(got) > end - start + 1:
                break
    if len(got) != end - start + 1:
        raise ValueError(f"the CAS sent {len(got)} bytes for a {end - start + 1}-byte range")
    return bytes(got)


def rebuild(http: Any, f: RepoFile, answer: Mapping[str, Any], index: ChunkIndex, dest: Path,
            stats: XetStats) -> list[Term]:
    """Write ``f`` to ``dest`` from a reconstruction ``answer`` (chunks reused or fetched); the
    sha256 is checked before ``dest`` appears.  Returns the terms with their chunk lengths."""
    from batuta_sync import ids
    from batuta_sync.fileformats.xorb import read_chunks

    fetch: dict[str, list[Mapping[str, Any]]] = answer.get("fetch_info") or {}
    terms: list[Term] = []
    h = hashlib.sha256()
    with atomic_writer(dest) as out:
        for t in answer.get("terms") or []:
            xorb, start, end = str(t["hash"]), int(t["range"]["start"]), int(t["range"]["end"])
            if not (ids.is_sha256(xorb) and 0 <= start < end <= start + MAX_CHUNKS):
                raise ValueError("the reconstruction names an impossible chunk range")
            known = index.find(xorb, start, end)
            if known is not None:
                pieces = []
                for etag, offset, length in known:
                    with open(index.blob_path(etag), "rb") as src:
                        src.seek(offset)
                        pieces.append(src.read(length))
                stats.reused_bytes += sum(len(p) for p in pieces)
            else:
                info = next(i for i in fetch.get(xorb, ()) if int(i["range"]["start"]) <= start
                            and end <= int(i["range"]["end"]))
                fs, fe = int(info["range"]["start"]), int(info["range"]["end"])
                us, ue = int(info["url_range"]["start"]), int(info["url_range"]["end"])
                if not (0 <= us <= ue < us + MAX_RANGE and fe - fs <= MAX_CHUNKS):
                    raise ValueError("the reconstruction asks to fetch an impossible byte range")
                raw = _fetch_range(http, str(info["url"]), us, ue)
                stats.fetched_bytes += len(raw)
                pieces = list(read_chunks(raw, fe - fs))[start - fs : end - fs]
            for p in pieces:
                h.update(p)
                out.write(p)
            terms.append(Term(xorb, start, end, tuple(len(p) for p in pieces)))
        if out.tell() != f.size or h.hexdigest() != f.sha256:
            raise ValueError("the rebuilt file is not the Hub's (size or sha256 differ)")
    return terms


def fetch_by_reconstruction(settings: Settings, http: Any, layout: Any, ref: RepoRef, commit: str,
                            files: Sequence[RepoFile]) -> tuple[list[str], XetStats]:
    """Rebuild the large Xet-stored ``files`` into the cache; returns the paths done (the rest go
    to the HTTP path) and what was fetched and reused."""
    from batuta_sync._redact import register_secret
    from batuta_sync.hub.cache import mark_verified
    from batuta_sync.pull._notice import warn

    stats = XetStats()
    big = [f for f in files if f.sha256 and f.size >= MIN_SIZE]
    if not big:
        return [], stats
    done: list[str] = []
    try:
        hashes = xet_hashes(http, ref, commit)
        tok = http.get_json(f"/api/{ref.repo_type.api_plural}/{ref.repo_id}/xet-read-token/{commit}")
        cas, token = str(tok["casUrl"]).rstrip("/"), str(tok["accessToken"])
    except Exception as exc:  # no Xet here: the HTTP path serves everything
        warn(f"Xet reconstruction is not available for {ref} ({exc}); downloading over HTTP.")
        return [], stats
    register_secret(token)
    index = ChunkIndex(confine(settings.batuta_dir, f"xet-chunks/{layout.folder}", what="chunk index"),
                       layout.blob_path)
    for f in big:
        fh = hashes.get(f.path)
        if fh is None:
            continue
        try:
            answer = http.get_json(f"{cas}/v1/reconstructions/{fh}", headers={"authorization": f"Bearer {token}"})
            if not isinstance(answer, dict):
                raise ValueError("the reconstruction is not a JSON object")
            terms = rebuild(http, f, answer, index, layout.blob_path(f.etag), stats)
        except Exception as exc:
            warn(f"Xet reconstruction of {f.path} failed ({exc}); downloading it over HTTP.")
            continue
        mark_verified(settings.batuta_dir, layout, f)
        index.record(f.etag, terms)
        stats.files += 1
        done.append(f.path)
    return done, stats
