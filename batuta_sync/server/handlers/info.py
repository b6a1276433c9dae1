"""Repo info (``/api/{type}s/{repo}[/revision/{rev}]``) and search (``/api/{type}s?…``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from batuta_sync.server.handlers.base import BaseHandler
from batuta_sync.server.protocol import HTTPError
from batuta_sync.server.store import (
    Commit,
    RepoState,
    StoreError,
)


class InfoHandlers(BaseHandler):
    def _info_json(self, st: RepoState, c: Commit, *, siblings: bool, blobs: bool) -> dict[str, Any]:
        info = c.info
        card = dict(info.get("cardData") or {})
        out: dict[str, Any] = {
            "_id": c.tree[:24],
            "id": st.repo_id,
            "author": st.namespace,
            "sha": c.id,
            "lastModified": c.date,
            "createdAt": st.created_at,
            "private": st.private,
            "gated": st.gated,
            "disabled": False,
            "likes": st.likes,
            "tags": list(info.get("tags") or []),
            "cardData": card,
            "usedStorage": sum(e.size for e in c.files.values()),
        }
        if st.repo_type != "space":
            out["downloads"] = st.downloads
        if st.repo_type == "model":
            out["modelId"] = st.repo_id
            for key in ("library_name", "pipeline_tag"):
                if isinstance(card.get(key), str):
                    out[key] = card[key]
            for key in ("safetensors", "gguf"):
                if key in info:
                    out[key] = info[key]
        elif st.repo_type == "dataset":
            if isinstance(card.get("dataset_info"), (dict, list)):
                out["dataset_info"] = card["dataset_info"]
        else:
            sdk = card.get("sdk") if isinstance(card.get("sdk"), str) else st.sdk
            out["sdk"] = sdk
            app_files = {"app.py", "Dockerfile", "index.html", "app.R"}
            if isinstance(card.get("app_file"), str):
                app_files.add(card["app_file"])
            stage = "RUNNING" if any(p in c.files for p in app_files) else "NO_APP_FILE"
            out["runtime"] = {
                "stage": stage,
                "hardware": {"current": "cpu-basic", "requested": "cpu-basic"},
                "storage": None,
                "gcTimeout": None,
                "replicas": {"current": 1, "requested": 1},
                "devMode": False,
                "domains": [],
            }
            out["subdomain"] = st.repo_id.replace("/", "-").lower()
        if siblings:
            sibs = []
            for p in sorted(c.files):
                e = c.files[p]
                s: dict[str, Any] = {"rfilename": p}
                if blobs:
                    s["size"] = e.size
                    s["blobId"] = e.oid
                    if e.lfs:
                        s["lfs"] = {"size": e.size, "sha256": e.sha256, "pointerSize": e.pointer_size}
                sibs.append(s)
            out["siblings"] = sibs
        return out

    def _info(self, repo_type: str, repo_id: str, rev: str, *, explicit_rev: bool) -> None:
        st, _ = self._visible_repo(repo_type, repo_id)
        c = self.hub.store.get_commit(self.hub.store.resolve_state(st, rev))
        self._json(self._info_json(st, c, siblings=True, blobs=self._flag("blobs")))

    def _search(self, repo_type: str) -> None:
        user = self._user()
        store = self.hub.store
        searches = [s.lower() for s in self.params.get("search", []) if s]
        author = self._param("author")
        filters = [f for f in self.params.get("filter", []) if f]
        for key in ("pipeline_tag", "library", "language", "sdk", "task_categories", "size_categories"):
            for v in self.params.get(key, []):
                if v:
                    filters.append(v if key in ("pipeline_tag", "library", "sdk") else f"{key}:{v}")
        gated = self._param("gated")
        rows: list[tuple[RepoState, Commit]] = []
        for st in store.repos():
            if st.repo_type != repo_type or not self.hub.can_read(user, st):
                continue
            if author and st.namespace.lower() != author.lower():
                continue
            if any(s not in st.repo_id.lower() for s in searches):
                continue
            if gated is not None and bool(st.gated) != (gated.lower() == "true"):
                continue
            try:
                c = store.get_commit(st.branches["main"])
            except (KeyError, StoreError):
                continue
            if filters and not all(self._matches(f, st, c) for f in filters):
                continue
            rows.append((st, c))
        sort = self._param("sort")
        desc = (self._param("direction") or "-1") != "1"
        keyfuncs: dict[str, Callable[[tuple[RepoState, Commit]], Any]] = {
            "downloads": lambda r: (r[0].downloads, r[0].repo_id),
            "likes": lambda r: (r[0].likes, r[0].repo_id),
            "trendingScore": lambda r: (r[0].likes + r[0].downloads, r[0].repo_id),
            "lastModified": lambda r: (r[1].date, r[0].repo_id),
            "last_modified": lambda r: (r[1].date, r[0].repo_id),
            "createdAt": lambda r: (r[0].created_at, r[0].repo_id),
            "created_at": lambda r: (r[0].created_at, r[0].repo_id),
            "id": lambda r: r[0].repo_id,
        }
        if sort:
            if sort not in keyfuncs:
                raise HTTPError(400, f"Invalid sort parameter {sort!r}.")
            rows.sort(key=keyfuncs[sort], reverse=desc)
        else:
            rows.sort(key=lambda r: r[0].repo_id)
        full = self._flag("full")
        card = self._flag("cardData") or full
        expand = set(self.params.get("expand", []) + self.params.get("expand[]", []))
        page, headers = self._paginate(rows, 1000)
        out = []
        for st, c in page:
            item = self._info_json(st, c, siblings=full or "siblings" in expand, blobs=False)
            if not card and "cardData" not in expand:
                item.pop("cardData", None)
            out.append(item)
        self._json(out, headers=headers)

    @staticmethod
    def _matches(f: str, st: RepoState, c: Commit) -> bool:
        tags = set(c.info.get("tags") or [])
        if f in tags:
            return True
        card = c.info.get("cardData") or {}
        key, sep, val = f.partition(":")
        if sep:
            if key == "language" and val in tags:
                return True
            if key in ("library", "library_name") and card.get("library_name") == val:
                return True
            return bool(key == "sdk" and (card.get("sdk") or st.sdk) == val)
        if card.get("pipeline_tag") == f or card.get("library_name") == f:
            return True
        return st.repo_type == "space" and (card.get("sdk") or st.sdk) == f
