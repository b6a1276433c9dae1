"""File-system primitives with one home each: confinement and atomic writes.

* :func:`confine` -- **the** "is this path inside that directory" check.  Every read,
  write, link and delete under the cache, the workspace, an output folder or the server
  root goes through it.  It resolves real paths (symlinks included, at every level that
  exists), so a symlinked folder cannot lead out; the last component may be a symlink we
  are about to replace (``follow_last=False``), which is checked without following it.
* :func:`atomic_write` -- write to a unique temporary name beside the target, optionally
  ``fsync`` (for files that must survive power loss: lock, journal, token, state), then
  ``os.replace``.  A crash leaves the old file or the new one, never half of either.

Stdlib only; imports nothing of batuta but ``errors``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from batuta_sync.errors import BatutaError

__all__ = ["PathEscapeError", "atomic_write", "atomic_writer", "confine", "is_inside", "temp_file_beside"]


class PathEscapeError(BatutaError):
    """A path that would leave the directory it must stay in (hostile input or a symlink)."""

    code = "path-escape"
    exit_name = "path-escape"
    default_hint = (
        "Nothing was read, written or deleted. A file name from the Hub, hf.lock, a plan or "
        "hf.yaml, or a symlink on disk, points outside the folder it belongs to."
    )


def _real(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(os.fspath(path))


def is_inside(base: str | os.PathLike[str], target: str | os.PathLike[str], *, follow_last: bool = True) -> bool:
    """True when ``target`` (resolved) is ``base`` (resolved) or below it."""
    b = _real(base)
    t = os.fspath(target)
    if not os.path.isabs(t):
        t = os.path.join(b, t)
    if follow_last:
        r = _real(t)
    else:
        t = os.path.normpath(t)
        r = os.path.join(_real(os.path.dirname(t)), os.path.basename(t))
    return r == b or r.startswith(b.rstrip(os.sep) + os.sep)


def confine(
    base: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    follow_last: bool = True,
    what: str = "path",
) -> Path:
    """``target`` (absolute, or relative to ``base``) if it stays inside ``base``; else raise.

    ``follow_last=False`` checks the folder the last component lives in, not what the last
    component points to: use it for a symlink that is about to be replaced or unlinked.
    The returned path is the lexical one (``base/target`` normalised), not the resolved one.
    """
    t = os.fspath(target)
    joined = os.path.normpath(t if os.path.isabs(t) else os.path.join(os.fspath(base), t))
    if not is_inside(base, joined, follow_last=follow_last):
        raise PathEscapeError(f"Refusing the {what} {t!r}: it resolves outside {os.fspath(base)}.")
    return Path(joined)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        dfd = os.open(str(folder), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


@contextlib.contextmanager
def temp_file_beside(target: str | os.PathLike[str], *, suffix: str = ".tmp") -> Iterator[Path]:
    """A new empty file (mode 0600) with a unique name in ``target``'s folder, for the caller to
    fill and then ``os.replace`` / ``os.link`` onto ``target``; removed on exit if still there."""
    dest = Path(target)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix, dir=str(dest.parent))
    os.close(fd)
    try:
        yield Path(tmp)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike[str], *, fsync: bool = False, mode: int | None = None
) -> Iterator[BinaryIO]:
    """Stream into a temporary file beside ``path``; on a clean exit it replaces ``path``
    (fsync'd first when asked), on an exception it is removed and ``path`` is untouched."""
    target = Path(path)
    with temp_file_beside(target) as tmp:
        with open(tmp, "wb") as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
        if fsync:
            _fsync_dir(target.parent)


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, fsync: bool = False, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace`` (fsync'd when asked)."""
    with atomic_writer(path, fsync=fsync, mode=mode) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
