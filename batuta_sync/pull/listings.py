"""Commit listings shared through the remote (``trees/<type>/<repo>/<commit>.json``).

A commit's listing never changes, so once one runner has asked the Hub for it every other
runner can read it from the shared remote: with a warm remote, a repo pinned to a commit (a
``revision:`` sha, a locked commit whose selection changed, ``hf pull --revision <sha>``)
costs no Hub API call.  Branches and tags still go to the Hub: only it knows where they point.

:func:`shared_snapshot` reads a listing (validated by :meth:`SharedStore.get_listing`; a
malformed one is a miss), :func:`share_snapshot` writes one through (create-only), and
:class:`ListingClient` wraps a Hub client so the planner's ``snapshot`` queries use both.
Remote failures only warn: the Hub answers instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batuta_sync.ids import is_git_sha1
from batuta_sync.pull._notice import warn as _warn
from batuta_sync.types import RepoFile, RepoRef, RepoSnapshot

if TYPE_CHECKING:
    from batuta_sync.remote.cas import SharedStore

__all__ = ["ListingClient", "share_snapshot", "shared_snapshot"]


def shared_snapshot(shared: SharedStore, ref: RepoRef) -> RepoSnapshot | None:
    """The listing of ``ref`` from the remote when ``ref.revision`` is a commit sha, else None."""
    if not is_git_sha1(ref.revision):
        return None
    from batuta_sync.remote.store import RemoteError

    try:
        data = shared.get_listing(ref.repo_type.value, ref.repo_id, ref.revision)
    except RemoteError as exc:
        _warn(f"the shared remote {shared.url} failed ({exc.message}); asking the Hub.")
        return None
    if data is None:
        return None
    try:
        files = tuple(
            RepoFile(path, int(e["size"]), str(e["blob_id"]), e.get("lfs_sha256"))
            for path, e in sorted(data["files"].items())
        )
        return RepoSnapshot(ref, ref.revision, files)
    except (ValueError, TypeError, KeyError):
        return None


def share_snapshot(shared: SharedStore, snapshot: RepoSnapshot) -> None:
    """Write ``snapshot``'s complete listing through to the remote (create-only; errors warn)."""
    from batuta_sync.hub.cache import tree_json
    from batuta_sync.remote.store import RemoteError

    ref = snapshot.ref
    try:
        shared.put_listing(ref.repo_type.value, ref.repo_id, snapshot.commit, tree_json(snapshot.files))
    except RemoteError as exc:
        _warn(f"could not share the listing of {ref} with the remote {shared.url} ({exc.message}).")


class ListingClient:
    """A Hub client whose ``snapshot`` of a commit sha is answered by the shared remote when it
    has the listing; every listing the Hub sends is written through.  Everything else is the
    wrapped client's."""

    def __init__(self, inner: Any, shared: SharedStore) -> None:
        self.inner = inner
        self.shared = shared
        self.from_remote: set[RepoRef] = set()  # the refs the remote answered

    def snapshot(self, ref: RepoRef) -> RepoSnapshot:
        snap = shared_snapshot(self.shared, ref)
        if snap is not None:
            self.from_remote.add(ref)
            return snap
        fetched: RepoSnapshot = self.inner.snapshot(ref)
        share_snapshot(self.shared, fetched)
        return fetched

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
