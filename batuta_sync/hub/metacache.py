"""Metadata cache (spec ``HfCache.metadata_ttl``): Hub JSON answers kept on disk.

Entries live under ``settings.batuta_dir / "metadata"``, one JSON file per request
key (endpoint + path + sorted query + identity of the token, never the token itself,
so a private answer is not served to another identity).  Within ``metadata_ttl``
seconds a repeated ``info``/``search`` is answered from here without a request;
offline, any age is good enough.  Writes are atomic (temp + ``os.replace``); an
unreadable entry is ignored, never an error.

An answer about one repo (``/api/models/org/x…``) is filed under a folder of that repo
(``repo-<digest of endpoint, type, id>/``), so batuta's own push to the repo drops all of it
at once (:meth:`MetadataCache.forget_repo`), for every identity; other answers (search
listings) live under ``any/`` and age out with the TTL.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batuta_sync._fs import atomic_write
from batuta_sync.settings import Settings

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class CacheEntry:
    body: Any
    fetched_at: float
    description: str

    def age(self, now: float) -> float:
        return max(0.0, now - self.fetched_at)


def _norm_params(params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None) -> list[list[str]]:
    if not params:
        return []
    items = params.items() if isinstance(params, Mapping) else params
    out: list[list[str]] = []
    for k, v in items:
        if isinstance(v, list | tuple):
            out.extend([str(k), str(x)] for x in v)
        elif v is not None:
            out.append([str(k), str(v)])
    return sorted(out)


_REPO_PATH = re.compile(
    r"^/api/(models|datasets|spaces)/([^/]+(?:/[^/]+)??)"
    r"(?:/(?:revision|tree|refs|commits|commit|paths-info|preupload|branch|tag|settings|discussions|treesize)(?:/.*)?)?$"
)


def repo_of_path(path: str) -> tuple[str, str] | None:
    """``("models", "org/x")`` for an API path about one repo, else None."""
    m = _REPO_PATH.match(path)
    return (m.group(1), m.group(2)) if m else None


class MetadataCache:
    """Key -> JSON body store with TTL, for one settings (endpoint + token identity)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.root = settings.batuta_dir / "metadata"
        self.ttl = settings.metadata_ttl
        self._clock = clock
        token = settings.token_value()
        self._identity = hashlib.sha256(token.encode()).hexdigest()[:16] if token else "anonymous"

    def key(self, path: str, params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None) -> str:
        """``<scope>/<digest>``: the scope is the repo the path is about (see the module doc)."""
        raw = json.dumps([FORMAT_VERSION, self.settings.endpoint, self._identity, path, _norm_params(params)])
        repo = repo_of_path(path)
        scope = self._repo_scope(*repo) if repo else "any"
        return f"{scope}/{hashlib.sha256(raw.encode()).hexdigest()}"

    def _repo_scope(self, plural: str, repo_id: str) -> str:
        raw = json.dumps([self.settings.endpoint, plural, repo_id])
        return "repo-" + hashlib.sha256(raw.encode()).hexdigest()[:24]

    def forget_repo(self, plural: str, repo_id: str) -> None:
        """Drop every cached answer about ``repo_id`` (``plural``: models | datasets | spaces),
        for every identity: called after batuta changed the repo (a push)."""
        import shutil

        shutil.rmtree(self.root / self._repo_scope(plural, repo_id), ignore_errors=True)

    def _file(self, key: str) -> Path:
        scope, _, digest = key.rpartition("/")
        return self.root / (scope or "any") / digest[:2] / f"{digest}.json"

    def get(self, key: str, *, max_age: float | None = None) -> CacheEntry | None:
        """The entry if present and younger than ``max_age`` (default: the TTL; None-age = any)."""
        try:
            data = json.loads(self._file(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION or "body" not in data:
            return None
        entry = CacheEntry(data["body"], float(data.get("fetched_at", 0)), str(data.get("description", "")))
        limit = self.ttl if max_age is None else max_age
        if limit != float("inf") and entry.age(self._clock()) > limit:
            return None
        return entry

    def get_any_age(self, key: str) -> CacheEntry | None:
        return self.get(key, max_age=float("inf"))

    def put(self, key: str, body: Any, description: str) -> None:
        """Store ``body`` (best effort: a read-only cache dir is not an error)."""
        path = self._file(key)
        doc = {
            "version": FORMAT_VERSION,
            "fetched_at": self._clock(),
            "description": description,
            "body": body,
        }
        with contextlib.suppress(OSError):
            atomic_write(path, json.dumps(doc, separators=(",", ":")))  # the C encoder; json.dump is pure Python

    def clear(self) -> int:
        """Remove every entry; returns how many files were removed."""
        n = 0
        if not self.root.is_dir():
            return 0
        for f in self.root.rglob("*.json"):
            with contextlib.suppress(OSError):
                f.unlink()
                n += 1
        return n
