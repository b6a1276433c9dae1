"""git-lfs: the batch API and the ticketed upload / verify endpoints it hands out."""

from __future__ import annotations

from typing import Any

from batuta_sync.ids import is_sha256
from batuta_sync.server.handlers.base import BaseHandler
from batuta_sync.server.protocol import HTTPError
from batuta_sync.server.state import UserSpec
from batuta_sync.server.store import (
    RepoNotFound,
    RepoState,
    StoreError,
)


class LfsHandlers(BaseHandler):
    def _lfs_batch(self, repo_type: str, repo_id: str) -> None:
        """git-lfs batch.  Nothing is revealed about objects in repos the caller cannot read: an upload
        of such an object is answered "needs upload" (its bytes then prove possession), a download of
        an object not in this repo is "does not exist" whether or not some other repo holds it."""
        body = self._json_body()
        op = body.get("operation")
        user: UserSpec | None
        if op == "upload":
            st, user = self._writable_repo(repo_type, repo_id)
        elif op == "download":
            st, user = self._visible_repo(repo_type, repo_id)
        else:
            raise HTTPError(400, f"Unknown LFS operation {str(op)[:50]!r}.")
        raw_objects = body.get("objects") or []
        if not isinstance(raw_objects, list) or not all(isinstance(o, dict) for o in raw_objects):
            raise HTTPError(400, "LFS batch 'objects' must be a list of {oid, size} objects.")
        limit = self.hub.limits.max_lfs_objects
        if len(raw_objects) > limit:
            raise self._too_large("The LFS batch request", limit, "objects; split it into batches")
        base = self._base()
        objects = []
        needs_upload: list[dict[str, Any]] = []
        for obj in raw_objects:
            oid, size = obj.get("oid"), obj.get("size", 0)
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                size = -1
            item: dict[str, Any] = {"oid": str(oid)[:64], "size": max(size, 0)}
            if not is_sha256(oid) or size < 0:
                item["error"] = {"code": 422, "message": "Invalid object: expected a sha256 oid and a size."}
            elif op == "upload":
                if not self.hub.can_read_object(user, str(oid)):
                    needs_upload.append(item)
            else:
                held = self.hub.store.holds(st, str(oid))  # cheap: no history walk for others' oids
                commit = self._commit_with_blob(st, str(oid)) if held else None
                if commit is not None:
                    href = f"{base}/cdn-lfs/{repo_type}/{repo_id}/resolve/{commit}/{oid}"
                    item["actions"] = {"download": {"href": href}}
                else:
                    item["error"] = {"code": 404, "message": "Object does not exist"}
            objects.append(item)
        tickets = self.hub.new_uploads([(i["oid"], i["size"]) for i in needs_upload], st, user)
        for item, ticket in zip(needs_upload, tickets, strict=True):
            item["actions"] = {
                "upload": {"href": f"{base}/lfs-upload/{ticket}", "header": {}},
                "verify": {"href": f"{base}/lfs-verify/{ticket}", "header": {}},
            }
        self._json(
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
            headers={"Content-Type": "application/vnd.git-lfs+json"},
        )

    def _commit_with_blob(self, st: RepoState, sha256: str) -> str | None:
        store = self.hub.store
        branches, tags, prs = store.refs_snapshot(st)
        for head in [*branches.values(), *tags.values(), *prs.values()]:
            for c in store.history(head):
                if any(e.sha256 == sha256 for e in c.files.values()):
                    return c.id
        return None

    def _lfs_upload(self, ticket: str) -> None:
        """PUT the bytes of a negotiated object.  The body is always read and hashed, even when the
        store already has the object: the upload is what proves the uploader has it."""
        up = self.hub.upload_for(ticket)
        if up is None:
            self._drain_small_body()
            raise HTTPError(403, "No LFS upload was negotiated for this URL (use the batch API first).")
        if up.done:  # a retried PUT of an upload already received: accepted, ignored
            self._drain_small_body()
            return self._json({"ok": True})
        try:
            st = self.hub.store.repo(up.repo[1], up.repo[0])
        except RepoNotFound:
            self._drain_small_body()
            raise HTTPError(404, "The repo this upload was negotiated for no longer exists.") from None
        read, length = self._body_reader()
        if length is not None and length != up.size:
            raise HTTPError(400, f"Upload size {length} does not match the announced size {up.size}.")
        try:
            self.hub.store.put_stream(read, up.size, expected_sha256=up.oid)
        except StoreError:
            self.close_connection = True
            raise
        self._read_body()  # consume a chunked terminator, if any
        self.hub.store.add_owner(st, up.oid)
        self.hub.upload_done(up)
        self._json({"ok": True})

    def _lfs_verify(self, ticket: str) -> None:
        """Verify one upload ticket: says only whether that upload (whose oid and size the caller
        announced) was received, never anything about other objects."""
        body = self._json_body()
        up = self.hub.upload_for(ticket)
        if up is None or not up.done or body.get("oid") != up.oid:
            raise HTTPError(404, "No completed LFS upload for this URL and oid.")
        if body.get("size") is not None and body["size"] != up.size:
            raise HTTPError(422, f"The upload has size {up.size}, not {str(body['size'])[:20]}.")
        self._json({"ok": True})
