"""The partials protocol of the download engine (security.md DL-4: correct even when locks lie).

* every fetcher writes only its own partial, ``blobs/<etag>.<host>-<pid>-<tid>-<rand>.incomplete``
  (:func:`own_partial_path`); nobody else ever opens it while its owner lives;
* a resumable partial is taken over by ``os.rename`` to the taker's own name, which only one
  taker can win (:func:`claim_partial`); the losers start from byte 0 (or take another one);
* the published blob is never written into (:func:`publish`): a fetcher that finds
  ``blobs/<etag>`` already there drops its own copy; a final name that already exists is only
  replaced when it is not a verified blob;
* after a failure the partial is parked as ``blobs/<etag>.incomplete`` or deleted
  (:func:`abandon_partial`).  A partial of a dead process (same host, pid gone; another host:
  untouched for :data:`STALE_FOREIGN`) is resumable; any partial nobody writes that is older than
  :data:`STALE_ANY` is deleted (:func:`resumable_partials`).

:class:`Writer` writes a partial at explicit offsets (``O_DIRECT`` for big files when possible).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import mmap
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batuta_sync._proc import pid_alive
from batuta_sync.hub.cache import CacheLayout, mark_verified, seal_blob, verified_blob
from batuta_sync.types import RepoFile

STALE_FOREIGN = 3600.0  # a partial of another host untouched this long is abandoned
STALE_ANY = 7 * 86400.0  # any partial nobody writes that is older than this is garbage
ALIGN = 4096


def aligned_buffer(size: int) -> memoryview:
    """A page-aligned buffer (usable for O_DIRECT writes)."""
    return memoryview(mmap.mmap(-1, size))


class Writer:
    """Writes a partial file at explicit offsets.

    For big files, whole aligned chunks go straight to the disk (``O_DIRECT``): no copy into
    the page cache, whose first-touch cost dominates on VMs, and no eviction of everyone
    else's cache by a 100 GB download.  Anything unaligned (a chunk cut short by a dropped
    connection, the file's tail) and filesystems without O_DIRECT use the normal path.
    """

    def __init__(self, fh: Any, path: Path, *, direct: bool) -> None:
        """``direct``: try ``O_DIRECT`` (the caller decides: file size, ``BATUTA_DIRECT_IO``)."""
        self.fh = fh
        self.dfd: int | None = None
        if direct and hasattr(os, "O_DIRECT"):
            try:
                self.dfd = os.open(path, os.O_WRONLY | os.O_DIRECT | getattr(os, "O_NOFOLLOW", 0))
            except OSError:
                self.dfd = None

    def next_size(self, pos: int, want: int, chunk: int) -> int:
        """How much to read next: realign to ALIGN first when writing direct."""
        if self.dfd is not None and pos % ALIGN:
            return min(ALIGN - pos % ALIGN, want)
        return min(chunk, want)

    def write(self, data: memoryview, pos: int) -> None:
        n = len(data)
        if self.dfd is not None and pos % ALIGN == 0 and n % ALIGN == 0:
            try:
                pwrite_all(self.dfd, data, pos)
                return
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self.close()  # this filesystem refuses O_DIRECT: normal writes from now on
        pwrite_all(self.fh.fileno(), data, pos)

    def restart(self) -> None:
        self.fh.truncate(0)

    def close(self) -> None:
        if self.dfd is not None:
            with contextlib.suppress(OSError):
                os.close(self.dfd)
            self.dfd = None


def pwrite_all(fd: int, data: memoryview, pos: int) -> None:
    while len(data):
        n = os.pwrite(fd, data, pos)
        data = data[n:]
        pos += n


PARTIAL = re.compile(
    r"^(?P<etag>[^.]+)\.(?:(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-(?P<tid>\d+)-(?P<rand>[0-9a-f]{8})\.)?incomplete$"
)


_HOST_TAG: list[str] = []


def host_tag() -> str:
    """8 hex digits naming this machine in partial names (pids mean something only here)."""
    if not _HOST_TAG:
        _HOST_TAG.append(hashlib.sha1(os.uname().nodename.encode("utf-8", "replace")).hexdigest()[:8])
    return _HOST_TAG[0]


def own_partial_path(layout: CacheLayout, etag: str) -> Path:
    """This fetcher's own partial: ``<etag>.<host>-<pid>-<tid>-<rand>.incomplete``."""
    tag = f"{host_tag()}-{os.getpid()}-{threading.get_native_id()}-{secrets.token_hex(4)}"
    return layout.blobs_dir / f"{etag}.{tag}.incomplete"


def nobody_writes(m: re.Match[str], mtime: float, now: float) -> bool:
    """Whether a partial is free to take: parked, or its writer is gone."""
    age = now - mtime
    if m.group("pid") is None or age > STALE_ANY:
        return True
    if m.group("host") != host_tag():
        return age > STALE_FOREIGN
    return not pid_alive(int(m.group("pid")))


def resumable_partials(blobs_dir: Path) -> dict[str, list[tuple[Path, int]]]:
    """Partials in ``blobs_dir`` nobody writes, per etag, biggest first.

    Those older than :data:`STALE_ANY` are deleted on the way (security.md DL-3).
    """
    found: dict[str, list[tuple[Path, int]]] = {}
    now = time.time()
    try:
        entries = list(os.scandir(blobs_dir))
    except OSError:
        return found
    for e in entries:
        m = PARTIAL.match(e.name)
        if m is None:
            continue
        try:
            st = e.stat(follow_symlinks=False)
        except OSError:
            continue
        if not e.is_file(follow_symlinks=False) or not nobody_writes(m, st.st_mtime, now):
            continue
        if now - st.st_mtime > STALE_ANY:
            unlink(Path(e.path))
            continue
        found.setdefault(m.group("etag"), []).append((Path(e.path), st.st_size))
    for parts in found.values():
        parts.sort(key=lambda ps: -ps[1])
    return found


def claim_partial(
    layout: CacheLayout,
    etag: str,
    mine: Path,
    listing: Callable[[Path], dict[str, list[tuple[Path, int]]]] | None = None,
) -> bool:
    """Take over the biggest resumable partial of ``etag`` as ``mine`` (atomic rename: only one
    taker wins each; a loser tries the next).  False when there is none.  ``listing``: what lists
    the candidates (default :func:`resumable_partials`)."""
    for path, _size in (listing or resumable_partials)(layout.blobs_dir).get(etag, ()):
        try:
            os.rename(path, mine)
        except OSError:  # taken by another fetcher a moment ago
            continue
        return True
    return False


def open_partial(path: Path) -> Any:
    """Open this fetcher's partial (its own name; only regular files are ever renamed to it)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    return open(fd, "r+b", buffering=0)


def publish(layout: CacheLayout, file: RepoFile, mine: Path, state: Path) -> None:
    """Give the verified partial its final name without ever touching a published blob, and
    stamp it verified.  A file already under the final name is kept only when it is a
    verified blob (stamp, else re-hashed); anything else there is replaced."""
    blob = layout.blob_path(file.etag)
    seal_blob(mine)  # published blobs are read-only (hub.cache.BLOB_MODE)
    try:
        os.link(mine, blob)
    except OSError:  # taken already, or no hard links on this filesystem
        if not verified_blob(state, layout, file):  # not a blob another fetcher published
            os.replace(mine, blob)
            mark_verified(state, layout, file)
            return
        unlink(mine)
    else:
        unlink(mine)
        mark_verified(state, layout, file)  # after the unlink: it changes the ctime
    # partials of this blob left by dead fetchers are worthless now
    for path, _size in resumable_partials(layout.blobs_dir).get(file.etag, ()):
        unlink(path)


def abandon_partial(layout: CacheLayout, file: RepoFile, mine: Path, state: Path, *, keep: bool) -> None:
    """After a failure: park a resumable partial as ``<etag>.incomplete`` (``keep``) or delete it."""
    try:
        size = os.lstat(mine).st_size
    except OSError:
        return
    if not keep or size == 0 or verified_blob(state, layout, file, rehash=False):
        unlink(mine)
        return
    parked = layout.incomplete_path(file.etag)
    try:
        other = os.lstat(parked).st_size
    except OSError:
        other = -1
    if other >= size:  # a longer one is parked already
        unlink(mine)
        return
    with contextlib.suppress(OSError):  # sealed by a publish that failed: a partial stays writable (resume appends)
        os.chmod(mine, 0o644)
    try:
        os.replace(mine, parked)
    except OSError:  # pragma: no cover - same directory; the dead-owner rule still finds it
        pass


def unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
