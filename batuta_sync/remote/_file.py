"""``file:///path``: a remote on a shared file system (NFS, a mounted volume, a local folder).

Create-only writes use ``os.link`` of a fully written temporary file (atomic, fails with
EEXIST when another writer won); compare-and-swap takes a per-key ``filelock`` (which
falls back to a soft lock on file systems without working ``flock``), compares the
current ETag (sha256 of the content) and replaces the object with ``os.replace``.  Every
key is confined to the root (``_fs.confine``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from batuta_sync._fs import atomic_write, confine, temp_file_beside
from batuta_sync.remote.store import ObjectInfo, PreconditionFailed, RemoteError, local_write_error

_CHUNK = 1 << 20


def _etag_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class FileStore:
    """A directory as an object store (``root/<key>``; lock files under ``root/.locks/``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RemoteError(f"Cannot use the remote {self.url}: {exc.strerror or exc}.")

    @property
    def url(self) -> str:
        return "file://" + str(self.root)

    # ------------------------------------------------------------------ helpers

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in key.split("/")):
            raise RemoteError(f"Refusing the remote key {key!r} on {self.url}.")
        return confine(self.root, key, what="remote key")

    @staticmethod
    def _fill(tmp: Path, data: bytes | Path) -> None:
        """Write ``data`` (bytes, or a local file's content) into ``tmp`` and fsync it."""
        with open(tmp, "wb") as f:
            if isinstance(data, Path):
                with open(data, "rb") as src:
                    shutil.copyfileobj(src, f, _CHUNK)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())

    @contextlib.contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        import filelock

        lock_path = confine(self.root, ".locks/" + hashlib.sha256(key.encode()).hexdigest() + ".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(str(lock_path), timeout=60):
            yield

    def _os_error(self, exc: OSError, key: str) -> RemoteError:
        return RemoteError(f"The remote {self.url} failed on {key!r}: {exc.strerror or exc}.")

    # ------------------------------------------------------------------ interface

    def put_if_absent(self, key: str, data: bytes | Path) -> bool:
        dest = self._path(key)
        try:
            with temp_file_beside(dest) as tmp:
                self._fill(tmp, data)
                try:
                    os.link(tmp, dest)  # create-only: never replaces what another writer put there
                    return True
                except FileExistsError:
                    return False
        except OSError as exc:
            raise self._os_error(exc, key)

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        dest = self._path(key)
        try:
            with self._key_lock(key):
                if not dest.is_file() or _etag_of(dest) != etag:
                    raise PreconditionFailed(f"{key!r} on {self.url} changed since it was read.")
                atomic_write(dest, data, fsync=True)
                return hashlib.sha256(data).hexdigest()
        except OSError as exc:
            raise self._os_error(exc, key)

    def get(self, key: str) -> tuple[bytes, str] | None:
        dest = self._path(key)
        try:
            data = dest.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._os_error(exc, key)
        return data, hashlib.sha256(data).hexdigest()

    def get_to_file(
        self, key: str, dest: Path, *, max_size: int | None = None, on_chunk: Callable[[bytes], None] | None = None
    ) -> int | None:
        src = self._path(key)
        try:
            size = src.stat().st_size
            if max_size is not None and size > max_size:
                raise RemoteError(f"{key!r} on {self.url} is {size} bytes, more than the expected {max_size}.")
            if on_chunk is None:
                shutil.copyfile(src, dest)
                return size
            written = 0
            with open(src, "rb") as fin, open(dest, "wb") as fout:
                while chunk := fin.read(8 << 20):
                    written += len(chunk)
                    if max_size is not None and written > max_size:
                        raise RemoteError(f"{key!r} on {self.url} grew past the expected {max_size} bytes.")
                    fout.write(chunk)
                    on_chunk(chunk)
            return written
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise local_write_error(exc, key, self.url)

    def head(self, key: str) -> ObjectInfo | None:
        dest = self._path(key)
        try:
            st = dest.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._os_error(exc, key)
        return ObjectInfo(key, st.st_size, _etag_of(dest))

    def exists(self, key: str) -> bool:
        """A ``stat``: :meth:`head` hashes the object for its ETag, which a CAS lookup does not need."""
        try:
            return self._path(key).is_file()
        except OSError as exc:
            raise self._os_error(exc, key)

    def delete_if_match(self, key: str, etag: str) -> None:
        dest = self._path(key)
        try:
            with self._key_lock(key):
                if not dest.exists():
                    return
                if _etag_of(dest) != etag:
                    raise PreconditionFailed(f"{key!r} on {self.url} changed since it was read.")
                dest.unlink()
        except OSError as exc:
            raise self._os_error(exc, key)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            try:
                self._path(key).unlink()
            except FileNotFoundError:
                raise
            except OSError as exc:
                raise self._os_error(exc, key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self.root / prefix if prefix else self.root
        start = base if base.is_dir() else base.parent
        if not start.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                p = Path(dirpath) / name
                key = p.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    with contextlib.suppress(OSError):
                        yield ObjectInfo(key, p.stat().st_size, "")
