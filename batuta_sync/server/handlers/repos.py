"""Repo lifecycle: create, delete, settings, likes, branches and tags."""

from __future__ import annotations

from batuta_sync.server.handlers.base import BaseHandler
from batuta_sync.server.protocol import PREFIX, HTTPError
from batuta_sync.server.store import (
    RepoNotFound,
    check_repo_id,
)


class RepoHandlers(BaseHandler):
    def _create_repo(self) -> None:
        body = self._json_body()
        user = self._user()
        if user is None:
            raise HTTPError(401, "You must be authenticated to create a repo.")
        name = str(body.get("name") or "")
        org = body.get("organization") or user.name
        repo_type = str(body.get("type") or "model")
        if repo_type not in PREFIX:
            raise HTTPError(400, f"Invalid repo type {repo_type!r}.")
        repo_id = f"{org}/{name}"
        check_repo_id(repo_id)
        if not self.hub.can_write_ns(user, str(org)):
            raise HTTPError(403, f"You don't have the rights to create a repo under {org!r}.")
        private = body.get("private")
        if body.get("visibility") in ("private", "public"):
            private = body["visibility"] == "private"
        store = self.hub.store
        try:
            store.repo(repo_id, repo_type)
            raise HTTPError(409, f"You already created this {repo_type} repo", None)
        except RepoNotFound:
            pass
        except HTTPError as exc:
            body_409 = {"error": exc.message, "url": self._repo_url(repo_type, repo_id)}
            self.status = 409
            return self._json(body_409, 409, {"X-Error-Message": exc.message})
        st = store.create_repo(
            repo_id, repo_type, private=bool(private), exist_ok=True, sdk=body.get("sdk"), author=user.name
        )
        self._json(
            {"url": self._repo_url(repo_type, repo_id), "name": repo_id, "id": repo_id, "private": st.private}
        )

    def _delete_repo(self) -> None:
        body = self._json_body()
        user = self._user()
        name = str(body.get("name") or "")
        org = body.get("organization") or (user.name if user else "")
        repo_type = str(body.get("type") or "model")
        repo_id = f"{org}/{name}"
        self._writable_repo(repo_type, repo_id)
        self.hub.store.delete_repo(repo_id, repo_type)
        self._json({"deleted": repo_id})

    def _settings(self, repo_type: str, repo_id: str) -> None:
        self._writable_repo(repo_type, repo_id)
        body = self._json_body()
        private = body.get("private")
        if body.get("visibility") in ("private", "public"):
            private = body["visibility"] == "private"
        gated = body.get("gated")
        self.hub.store.update_settings(
            repo_id, repo_type, private=None if private is None else bool(private), gated=gated
        )
        self._json({"ok": True})

    def _like(self, repo_type: str, repo_id: str) -> None:
        st, user = self._visible_repo(repo_type, repo_id)
        if user is None:
            raise HTTPError(401, "You must be authenticated to like a repo.")
        delta = 1 if self.command == "POST" else -1
        self.hub.store.set_likes(repo_id, max(0, st.likes + delta), repo_type=repo_type)
        self._json({"likes": st.likes})

    def _branch(self, repo_type: str, repo_id: str, branch: str) -> None:
        self._writable_repo(repo_type, repo_id)
        store = self.hub.store
        if self.command == "DELETE":
            store.delete_branch(repo_id, branch, repo_type=repo_type)
            return self._json({"deleted": branch})
        body = self._json_body()
        start = body.get("startingPoint") or "main"
        store.create_branch(repo_id, branch, repo_type=repo_type, from_rev=str(start))
        self._json({"created": branch})

    def _tag(self, repo_type: str, repo_id: str, rev_or_tag: str) -> None:
        self._writable_repo(repo_type, repo_id)
        store = self.hub.store
        if self.command == "DELETE":
            store.delete_tag(repo_id, rev_or_tag, repo_type=repo_type)
            return self._json({"deleted": rev_or_tag})
        body = self._json_body()
        tag = str(body.get("tag") or "")
        store.create_tag(repo_id, tag, repo_type=repo_type, rev=rev_or_tag)
        self._json({"created": tag})
