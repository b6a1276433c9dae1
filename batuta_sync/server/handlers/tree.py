"""Listings: tree, paths-info, refs and commits."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from batuta_sync.server.handlers.base import BaseHandler
from batuta_sync.server.protocol import HTTPError
from batuta_sync.server.store import (
    Commit,
    EntryNotFound,
)


def _html(text: str) -> str:
    import html

    return html.escape(text)


class TreeHandlers(BaseHandler):
    def _entry_json(self, c: Commit, path: str, *, is_dir: bool) -> dict[str, Any]:
        if is_dir:
            return {"type": "directory", "oid": c.dirs[path], "size": 0, "path": path}
        e = c.files[path]
        out: dict[str, Any] = {"type": "file", "oid": e.oid, "size": e.size, "path": path}
        if e.lfs:
            out["lfs"] = {"oid": e.sha256, "size": e.size, "pointerSize": e.pointer_size}
            xet_hash = self.hub.xet.file_for_sha256(e.sha256)
            if xet_hash is not None:
                out["xetHash"] = xet_hash
        return out

    def _add_last_commits(self, c: Commit, entries: list[dict[str, Any]]) -> None:
        """``expand=true``: the last commit that changed each path (first-parent walk)."""
        want = {e["path"]: e for e in entries}
        store = self.hub.store

        def key_of(commit: Commit, path: str, kind: str) -> str | None:
            if kind == "directory":
                return commit.dirs.get(path)
            f = commit.files.get(path)
            return f.oid if f else None

        hist = list(store.history(c.id))
        for path, e in want.items():
            cur = key_of(hist[0], path, e["type"])
            last = hist[0]
            for older in hist[1:]:
                if key_of(older, path, e["type"]) != cur:
                    break
                last = older
            e["lastCommit"] = {"id": last.id, "title": last.title, "date": last.date}
            if e["type"] == "file":
                e["securityFileStatus"] = {
                    "status": "unscanned",
                    "avScan": {"virusFound": False, "virusNames": None},
                    "pickleImportScan": None,
                }

    def _tree(self, repo_type: str, repo_id: str, rev: str, path: str) -> None:
        st, _ = self._visible_repo(repo_type, repo_id)
        store = self.hub.store
        c = store.get_commit(store.resolve_state(st, rev))
        path = path.strip("/")
        recursive = self._flag("recursive")
        expand = self._flag("expand")
        if path and path not in c.dirs:
            if path in c.files:
                raise HTTPError(400, f"{path!r} is a file, not a folder.")
            raise EntryNotFound(f"Entry {path!r} not found in {repo_id}@{rev}.", c.id)
        prefix = path + "/" if path else ""
        names: list[tuple[str, bool]] = []
        for d in c.dirs:
            if d.startswith(prefix) and (recursive or "/" not in d[len(prefix) :]):
                names.append((d, True))
        for p in c.files:
            if p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :]):
                names.append((p, False))
        names.sort(key=lambda x: (x[0].split("/")[:-1], not x[1], x[0]))
        page, headers = self._paginate(names, 50 if expand else 1000)
        entries = [self._entry_json(c, p, is_dir=is_dir) for p, is_dir in page]
        if expand:
            self._add_last_commits(c, entries)
        self._json(entries, headers=headers)

    def _paths_info(self, repo_type: str, repo_id: str, rev: str) -> None:
        st, _ = self._visible_repo(repo_type, repo_id)
        store = self.hub.store
        c = store.get_commit(store.resolve_state(st, rev))
        raw = self._read_body()
        ctype = (self.headers.get("Content-Type") or "").lower()
        paths: list[str]
        expand = False
        if "json" in ctype:
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                raise HTTPError(400, "Invalid JSON body.")
            p = body.get("paths") or []
            paths = [p] if isinstance(p, str) else list(p)
            expand = bool(body.get("expand"))
        else:
            form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
            paths = form.get("paths", [])
            expand = (form.get("expand", [""])[-1]).lower() in ("1", "true")
        entries = []
        for p in paths:
            p = p.strip("/")
            if p in c.files:
                entries.append(self._entry_json(c, p, is_dir=False))
            elif p in c.dirs:
                entries.append(self._entry_json(c, p, is_dir=True))
        if expand:
            if len(entries) > self.hub.limits.max_expand_paths:  # each costs a walk of the history
                raise self._too_large("paths-info with expand", self.hub.limits.max_expand_paths, "paths")
            self._add_last_commits(c, entries)
        self._json(entries)

    def _refs(self, repo_type: str, repo_id: str) -> None:
        st, _ = self._visible_repo(repo_type, repo_id)
        branches, tags, prs = self.hub.store.refs_snapshot(st)
        out: dict[str, Any] = {
            "branches": [
                {"name": b, "ref": f"refs/heads/{b}", "targetCommit": sha}
                for b, sha in sorted(branches.items())
            ],
            "tags": [
                {"name": t, "ref": f"refs/tags/{t}", "targetCommit": sha} for t, sha in sorted(tags.items())
            ],
            "converts": [],
        }
        if self._flag("include_prs"):
            out["pullRequests"] = [
                {"name": str(n), "ref": f"refs/pr/{n}", "targetCommit": sha} for n, sha in sorted(prs.items())
            ]
        self._json(out)

    def _commits(self, repo_type: str, repo_id: str, rev: str) -> None:
        st, _ = self._visible_repo(repo_type, repo_id)
        store = self.hub.store
        hist = list(store.history(store.resolve_state(st, rev)))
        page, headers = self._paginate(hist, 50)
        formatted = "formatted" in self.params.get("expand[]", []) + self.params.get("expand", [])
        self._json(
            [
                {
                    "id": c.id,
                    "title": c.title,
                    "message": c.message,
                    "date": c.date,
                    "authors": [{"user": c.author, "avatar": None}],
                    **(
                        {"formatted": {"title": _html(c.title), "message": _html(c.message)}}
                        if formatted
                        else {}
                    ),
                }
                for c in page
            ],
            headers=headers,
        )
