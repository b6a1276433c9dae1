"""Adopt a local folder into the cache: ``batuta import ADDRESS DIR`` (issue 20).

A model someone downloaded with ``hf download --local-dir`` (or copied from a colleague) holds the
bytes a pull would fetch.  Each file the lock selects is read once from the folder, hashed while it
is copied into ``blobs/<etag>`` beside its final name, and published there only when its digest is
the one the Hub lists (sha256 for LFS files, the git blob sha1 otherwise); the pull that follows
then finds every blob verified and downloads nothing.  The folder itself is never modified, and a
path of the listing is joined to it only through the confinement check (a hostile listing or a
symlink in the folder cannot make batuta read outside it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from batuta_sync._fs import PathEscapeError, atomic_writer, confine
from batuta_sync.settings import Settings
from batuta_sync.types import RepoFile, RepoRef


@dataclass(frozen=True)
class AdoptProblem:
    path: str
    problem: str  # "missing" | "size" | "content" | "outside"

    def __str__(self) -> str:
        what = {
            "missing": "not in the folder",
            "size": "has another size than the Hub's file",
            "content": "differs from the Hub's file (digest mismatch)",
            "outside": "leads outside the folder (a symlink)",
        }[self.problem]
        return f"{self.path}: {what}"


@dataclass(frozen=True)
class AdoptResult:
    adopted: tuple[str, ...]  # copied into the cache now
    cached: tuple[str, ...]  # already verified in the cache
    problems: tuple[AdoptProblem, ...]


class _Mismatch(Exception):
    pass


def _copy_verified(src: Path, dest: Path, f: RepoFile) -> None:
    """Copy ``src`` to ``dest`` (atomically) only if it hashes to ``f``'s digest."""
    h = hashlib.sha256() if f.sha256 else hashlib.sha1(b"blob %d\0" % f.size)
    with atomic_writer(dest) as out, open(src, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            out.write(chunk)
        if h.hexdigest() != f.etag:
            raise _Mismatch


def adopt_files(settings: Settings, ref: RepoRef, files: Sequence[RepoFile], folder: Path) -> AdoptResult:
    """Put ``files`` (a locked selection of ``ref``) from ``folder`` into the cache, verified.

    Files already verified in the cache are left alone; every other file must be in ``folder`` with
    the Hub's content.  What matches is adopted even when others do not (blobs are content-addressed,
    a verified one is never wrong); the caller decides what the problems mean."""
    from batuta_sync.hub.cache import CacheLayout, ensure_cache_root, mark_verified, verified_blob

    layout = CacheLayout.of(settings.hub_cache, ref)
    ensure_cache_root(settings.hub_cache)
    layout.blobs_dir.mkdir(parents=True, exist_ok=True)
    adopted: list[str] = []
    cached: list[str] = []
    problems: list[AdoptProblem] = []
    done: set[str] = set()
    for f in files:
        if f.etag in done or verified_blob(settings.batuta_dir, layout, f):
            cached.append(f.path)
            continue
        try:
            src = confine(folder, f.path, what="file to import")
        except PathEscapeError:
            problems.append(AdoptProblem(f.path, "outside"))
            continue
        if not src.is_file():
            problems.append(AdoptProblem(f.path, "missing"))
            continue
        if src.stat().st_size != f.size:
            problems.append(AdoptProblem(f.path, "size"))
            continue
        try:
            _copy_verified(src, layout.blob_path(f.etag), f)
        except _Mismatch:
            problems.append(AdoptProblem(f.path, "content"))
            continue
        mark_verified(settings.batuta_dir, layout, f)
        done.add(f.etag)
        adopted.append(f.path)
    return AdoptResult(tuple(adopted), tuple(cached), tuple(problems))
