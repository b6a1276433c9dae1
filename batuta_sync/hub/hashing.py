"""Hashing of downloaded bytes: sha256 for LFS files, the git blob sha1 for the others, inline or in a
helper thread one chunk behind the network (``hub/download.py`` step 4)."""

from __future__ import annotations

import hashlib
import queue
import threading
from typing import Any

from batuta_sync.hub.partials import aligned_buffer
from batuta_sync.types import RepoFile


class Hasher:
    """sha256 for LFS files; git blob sha1 (``blob <size>\\0`` + content) for the rest."""

    def __init__(self, f: RepoFile) -> None:
        self.file = f
        self.reset()

    def reset(self) -> None:
        f = self.file
        if f.sha256:
            self.h = hashlib.sha256()
            self.expected = f.sha256.lower()
            self.kind = "sha256"
        else:
            self.h = hashlib.sha1(b"blob %d\x00" % f.size)
            self.expected = f.blob_id.lower()
            self.kind = "git-sha1"

    def update(self, data: Any) -> None:
        self.h.update(data)

    def ok(self) -> bool:
        return not self.expected or self.h.hexdigest() == self.expected


class PipelinedHasher(Hasher):
    """A :class:`Hasher` whose digest runs in a helper thread, one chunk behind the network.

    The worker takes a free buffer (:meth:`buffer`), fills and writes it, then hands it over
    (:meth:`submit`); the helper hashes it and returns it to the pool.  Receiving/writing and
    hashing of one file thus proceed on two cores.  :meth:`reset` and :meth:`ok` wait for
    the helper to catch up first.
    """

    DEPTH = 4

    def __init__(self, f: RepoFile, chunk_size: int) -> None:
        super().__init__(f)
        self._free: queue.Queue[memoryview] = queue.Queue()
        for _ in range(self.DEPTH):
            self._free.put(aligned_buffer(chunk_size))
        self._todo: queue.Queue[tuple[memoryview, int] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="batuta-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._todo.get()
            try:
                if item is None:
                    return
                buf, n = item
                try:
                    self.h.update(buf[:n])
                except BaseException as exc:  # pragma: no cover - hashlib does not fail on bytes
                    self._error = exc
                self._free.put(buf)
            finally:
                self._todo.task_done()

    def buffer(self) -> memoryview:
        return self._free.get()

    def give_back(self, buf: memoryview) -> None:
        self._free.put(buf)

    def submit(self, buf: memoryview, n: int) -> None:
        self._todo.put((buf, n))

    def drain(self) -> None:
        self._todo.join()
        if self._error is not None:  # pragma: no cover
            raise self._error

    def update(self, data: Any) -> None:
        self.drain()
        self.h.update(data)

    def reset(self) -> None:
        if hasattr(self, "_todo"):
            self.drain()
        super().reset()

    def ok(self) -> bool:
        self.drain()
        return super().ok()

    def close(self) -> None:
        self._todo.put(None)
        self._thread.join()
