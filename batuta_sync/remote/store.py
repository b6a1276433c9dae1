"""The object-store interface every remote backend implements.

A remote is untrusted storage shared by many runners: batuta only ever relies on two
guarantees from it -- **create-only writes** (``put_if_absent``: exactly one of N racing
writers wins) and **compare-and-swap updates** (``put_if_match``: a write conditioned on
the ETag the writer last saw).  Everything else (blob contents, listings, run records)
is verified by digest on read.  ``batuta remote check`` proves the two guarantees on a
scratch prefix before a store is trusted with locks.

Backends: :mod:`batuta_sync.remote._s3` (S3 and S3-compatible servers, through obstore)
and :mod:`batuta_sync.remote._file` (a shared file system).  Tests use both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from batuta_sync.errors import BatutaError


class RemoteError(BatutaError):
    """The remote store failed or refused an operation (the message names bucket/prefix)."""

    code = "remote"
    exit_name = "remote"
    default_hint = (
        "Check the remote URL, that the bucket exists and that the credentials (AWS_* variables or "
        "profile) allow read and write; `batuta remote check` tests the store end to end."
    )


class PreconditionFailed(RemoteError):
    """A conditional write lost: the object changed (or appeared) since the caller looked."""

    code = "remote-precondition"


def local_write_error(exc: OSError, key: str, url: str) -> BatutaError:
    """A local file-system failure while copying ``key`` from ``url`` (disk full is its own code)."""
    import errno

    from batuta_sync.errors import DiskFullError

    if exc.errno == errno.ENOSPC:
        return DiskFullError(f"No space left while copying {key!r} from {url}.")
    return RemoteError(f"The remote {url} failed on {key!r}: {exc.strerror or exc}.")


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str


@runtime_checkable
class RemoteStore(Protocol):
    """Keys are ``/``-separated relative names under the remote's prefix."""

    @property
    def url(self) -> str:
        """The remote's URL without credentials (for messages)."""
        ...

    def put_if_absent(self, key: str, data: bytes | Path) -> bool:
        """Create ``key``; False when it already exists (that counts as success for CAS objects)."""
        ...

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        """Replace ``key`` only if its ETag is still ``etag``; the new ETag, or PreconditionFailed."""
        ...

    def get(self, key: str) -> tuple[bytes, str] | None:
        """(body, etag), or None when the key does not exist."""
        ...

    def get_to_file(
        self, key: str, dest: Path, *, max_size: int | None = None, on_chunk: Callable[[bytes], None] | None = None
    ) -> int | None:
        """Stream ``key`` into ``dest`` (a new file); bytes written, or None when it does not exist.
        ``on_chunk`` sees every chunk as it is written (the caller hashes in the same pass)."""
        ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists (cheaper than :meth:`head` where an ETag costs a hash)."""
        ...

    def delete_if_match(self, key: str, etag: str) -> None:
        """Delete ``key`` if its ETag is still ``etag`` (PreconditionFailed otherwise; missing is fine)."""
        ...

    def delete(self, key: str) -> None:
        """Unconditional delete (gc of content-addressed objects only)."""
        ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]: ...
