"""Writing: preupload and the NDJSON commit."""

from __future__ import annotations

import json
from typing import Any

from batuta_sync.server import meta
from batuta_sync.server.handlers.base import BaseHandler
from batuta_sync.server.protocol import HTTPError
from batuta_sync.server.store import (
    Commit,
    NewFile,
    StoreError,
    check_path,
    is_lfs_policy,
)


class CommitHandlers(BaseHandler):
    def _preupload(self, repo_type: str, repo_id: str, rev: str) -> None:
        st, _ = self._writable_repo(repo_type, repo_id)
        body = self._json_body()
        store = self.hub.store
        try:
            c: Commit | None = store.get_commit(store.resolve_state(st, rev))
        except StoreError:
            if self._flag("create_pr"):
                c = None
            else:
                raise
        gitignore = body.get("gitIgnore")
        if not isinstance(gitignore, str) and c is not None and ".gitignore" in c.files:
            entry = c.files[".gitignore"]
            if entry.size <= 1 << 20:
                gitignore = store.blob_path(entry.sha256).read_text("utf-8", errors="replace")
        ignored = meta.gitignore_matcher(gitignore) if isinstance(gitignore, str) else (lambda p: False)
        out = []
        files = body.get("files") or []
        if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
            raise HTTPError(400, "preupload 'files' must be a list of {path, size} objects.")
        for f in files:
            path = str(f.get("path") or "")
            size = f.get("size") or 0
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise HTTPError(400, f"preupload: invalid size for {path[:200]!r}.")
            lfs = is_lfs_policy(path, size)
            existing = c.files.get(path) if c is not None else None
            oid: str | None = None
            if existing is not None:
                oid = existing.sha256 if lfs else (existing.oid if not existing.lfs else None)
            out.append(
                {
                    "path": path,
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": ignored(path),
                    "oid": oid,
                }
            )
        self._json({"files": out, "commitOid": c.id if c else None})

    def _commit(self, repo_type: str, repo_id: str, rev: str) -> None:
        _, user = self._writable_repo(repo_type, repo_id)
        store = self.hub.store
        header: dict[str, Any] = {}
        adds: list[NewFile] = []
        deletes: list[str] = []
        max_ops = self.hub.limits.max_commit_ops
        for n, line in enumerate(self._body_lines()):  # streamed: one operation in memory at a time
            if n > max_ops:  # line 0 is the header
                raise self._too_large("The commit", max_ops, "operations")
            try:
                item = json.loads(line)
            except ValueError:
                raise HTTPError(400, "Commit payload must be NDJSON.")
            if not isinstance(item, dict):
                raise HTTPError(400, "Each NDJSON line must be an object.")
            key = item.get("key")
            value = item.get("value") or {}
            if key == "header":
                header = value
            elif key == "file":
                path = check_path(str(value.get("path") or ""))
                if value.get("encoding", "base64") != "base64":
                    raise HTTPError(400, "Only base64 encoding is supported for inline files.")
                adds.append(store.put_inline(path, str(value.get("content") or "")))
            elif key == "lfsFile":
                path = check_path(str(value.get("path") or ""))
                oid = str(value.get("oid") or "")[:64]
                if not self.hub.can_read_object(user, oid):
                    # Same answer whether the object is absent or held only by repos the committer
                    # cannot read: a commit cannot be used to learn of, or to take, someone's object.
                    raise HTTPError(
                        422,
                        f"LFS object {oid} for {path!r} was not uploaded to this repo (or to a repo you can "
                        "read); upload its content first (LFS batch + upload).",
                    )
                size = store.blob_size(oid)
                if value.get("size") is not None and int(value["size"]) != size:
                    raise HTTPError(422, f"LFS object {oid} has size {size}, not {value['size']}.")
                adds.append(NewFile(path, oid, size, None, lfs=True))
            elif key in ("deletedFile", "deletedFolder"):
                deletes.append(check_path(str(value.get("path") or "").strip("/")))
            else:
                raise HTTPError(400, f"Unknown commit operation {key!r}.")
        summary = str(header.get("summary") or "")
        title, _, rest = summary.partition("\n")
        description = "\n\n".join(
            x for x in (rest.strip(), str(header.get("description") or "").strip()) if x
        )
        create_pr = self._flag("create_pr")
        sha, pr = store.apply_commit(
            repo_id,
            repo_type,
            rev,
            adds,
            deletes,
            parent=header.get("parentCommit") or None,
            title=title.strip(),
            description=description,
            author=user.name,
            create_pr=create_pr,
        )
        url = self._repo_url(repo_type, repo_id)
        self._json(
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{url}/commit/{sha}",
                "pullRequestUrl": f"{url}/discussions/{pr}" if pr is not None and create_pr else None,
            }
        )
