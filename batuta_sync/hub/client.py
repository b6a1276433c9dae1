"""``HfClient``: the spec's "API Client", plain synchronous methods over :class:`HubHttp`.

Example::

    from batuta_sync import HfClient
    from batuta_sync.hub.models import ModelQuery

    hub = HfClient()                                   # settings: flag > env > hf.yaml > default
    for m in hub.search_models(ModelQuery("llama", task="text-generation", limit=5)):
        print(m.id, m.downloads)
    info = hub.model_info("meta-llama/Llama-2-7b-hf", files=True)
    snap = hub.snapshot(RepoRef("meta-llama/Llama-2-7b-hf"))   # commit + every file (≤ 2 calls)

``info``/``search`` answers are kept in the metadata cache (``settings.metadata_ttl``):
a repeat within the TTL sends no request, and offline (``settings.offline``) they are
answered from it at any age or fail with :class:`~batuta_sync.errors.OfflineError`
naming what is missing.  ``snapshot``/``resolve_commit`` always ask the Hub when online
(plans must see the current head) and fall back to the cache only offline.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from batuta_sync.errors import AuthError, HubError, OfflineError
from batuta_sync.hub.auth import check_token_shape, delete_token, store_token
from batuta_sync.hub.metacache import MetadataCache
from batuta_sync.hub.models import (
    DatasetQuery,
    HfDatasetInfo,
    HfModelInfo,
    HfRepoInfo,
    HfSpaceInfo,
    ModelQuery,
    SortKey,
    SpaceQuery,
    UserInfo,
    files_from_siblings,
    files_from_tree,
    info_from_json,
    parse_size_expr,
)
from batuta_sync.ids import commit_sha
from batuta_sync.settings import HfAuth, Settings
from batuta_sync.types import HfAssetType, RepoRef, RepoSnapshot, check_repo_id

if TYPE_CHECKING:
    from batuta_sync.hub._http import HubHttp

Params = list[tuple[str, Any]]


def _commit_of(body: Any, ref: RepoRef) -> str:
    """The ``sha`` of a revision answer: absent is a Hub error, present without its shape is
    refused (:class:`~batuta_sync.ids.InvalidIdentifierError`: it would name ``snapshots/<sha>``)."""
    sha = body.get("sha") if isinstance(body, dict) else None
    if sha is None:
        raise HubError(f"The Hub's answer for {ref} has no commit sha.", hint="Check HF_ENDPOINT.")
    return commit_sha(sha, where=f"the Hub's answer for {ref}")


def _rev(revision: str) -> str:
    return quote(revision, safe="")


class HfClient:
    """HuggingFace Hub client for batuta (spec ``HfClient``).

    Args:
        settings: resolved settings (default: :func:`batuta_sync.settings.resolve_settings`).
        http: an existing transport to share (default: a new :class:`HubHttp`).
        **http_kwargs: passed to :class:`HubHttp` (``sleep``, ``max_wait``, ``no_wait``, ``on_wait`` …).
    """

    def __init__(
        self, settings: Settings | None = None, *, http: HubHttp | None = None, **http_kwargs: Any
    ) -> None:
        if settings is None:
            from batuta_sync.settings import resolve_settings

            settings = resolve_settings()
        self.settings = settings
        self._http = http
        self._http_kwargs = http_kwargs
        self._lock = threading.Lock()
        self.cache = MetadataCache(settings)
        #: the oldest metadata-cache answer this client served, in seconds (None: all fresh from the
        #: Hub), so a command can say how old what it shows is
        self.cached_age: float | None = None

    @property
    def http(self) -> HubHttp:
        """The transport, created on first use (cache hits and offline runs never import httpx)."""
        if self._http is None:
            with self._lock:  # one transport (and one shared rate-limit gate) per client
                if self._http is None:
                    from batuta_sync.hub._http import HubHttp

                    self._http = HubHttp(self.settings, **self._http_kwargs)
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> HfClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ cached JSON

    def _served(self, entry: Any) -> Any:
        """An answer from the metadata cache: remember its age (the oldest wins)."""
        import time

        age = entry.age(time.time())
        self.cached_age = age if self.cached_age is None else max(self.cached_age, age)
        return entry.body
    def _get(self, path: str, params: Params | None, what: str, *, fresh: bool = False) -> Any:
        """GET JSON through the metadata cache (``fresh``: skip the TTL hit, still write)."""
        key = self.cache.key(path, params)
        if self.settings.offline:
            entry = self.cache.get_any_age(key)
            if entry is not None:
                return self._served(entry)
            raise OfflineError(
                f"Offline mode (--offline / HF_HUB_OFFLINE=1) and {what} is not in the metadata cache "
                f"({self.cache.root}).",
            )
        if not fresh:
            entry = self.cache.get(key)
            if entry is not None:
                return self._served(entry)
        body = self.http.get_json(path, params=params or None)
        self.cache.put(key, body, what)
        return body

    def _list(self, path: str, params: Params, what: str, limit: int | None) -> list[Any]:
        key = self.cache.key(path, [*params, ("__limit", limit)])
        if self.settings.offline:
            entry = self.cache.get_any_age(key)
            if entry is not None:
                return list(self._served(entry))
            raise OfflineError(
                f"Offline mode (--offline / HF_HUB_OFFLINE=1) and {what} is not in the metadata cache."
            )
        entry = self.cache.get(key)
        if entry is not None:
            return list(self._served(entry))
        items = self.http.get_json_pages(path, params=params, limit=limit)
        self.cache.put(key, items, what)
        return items

    # ------------------------------------------------------------------ search
    def search_models(self, query: ModelQuery) -> list[HfModelInfo]:
        """``GET /api/models`` with search/author/library/task/sort; newest Hub fields only."""
        params: Params = [("search", query.search)] if query.search else []
        if query.author:
            params.append(("author", query.author))
        if query.library:
            params.append(("filter", query.library))
        if query.task:
            params.append(("pipeline_tag", query.task))
        params += [("sort", query.sort.hub_param), ("direction", "-1"), ("limit", str(query.limit))]
        items = self._list("/api/models", params, f"the model search {query.search!r}", query.limit)
        return [HfModelInfo.from_json(x) for x in items][: query.limit]

    def search_datasets(self, query: DatasetQuery) -> list[HfDatasetInfo]:
        """``GET /api/datasets``; ``--size`` rows -> ``size_categories`` filters, bytes -> client-side."""
        size = parse_size_expr(query.size) if query.size else None
        base: Params = [("search", query.search)] if query.search else []
        if query.author:
            base.append(("author", query.author))
        if query.language:
            base.append(("filter", f"language:{query.language}"))
        base += [("sort", query.sort.hub_param), ("direction", "-1")]
        what = f"the dataset search {query.search!r}"
        if size is None:
            items = self._list("/api/datasets", [*base, ("limit", str(query.limit))], what, query.limit)
            return [HfDatasetInfo.from_json(x) for x in items][: query.limit]
        if size.kind == "bytes":
            # sizes live in the card: ask for full objects and keep those in range
            scan = max(query.limit * 10, 200)
            items = self._list("/api/datasets", [*base, ("full", "true"), ("limit", str(scan))], what, scan)
            found = [HfDatasetInfo.from_json(x) for x in items]
            return [d for d in found if size.matches_bytes(d.size_bytes or d.download_size)][: query.limit]
        # rows: one Hub filter per size category (repeated filters are ANDed by the Hub)
        per_cat = [
            [*base, ("filter", f"size_categories:{c}"), ("limit", str(query.limit))] for c in size.categories
        ]
        if len(per_cat) == 1:
            lists = [self._list("/api/datasets", per_cat[0], what, query.limit)]
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(8, len(per_cat))) as pool:
                lists = list(pool.map(lambda p: self._list("/api/datasets", p, what, query.limit), per_cat))
        seen: set[str] = set()
        merged: list[HfDatasetInfo] = []
        for lst in lists:
            for x in lst:
                d = HfDatasetInfo.from_json(x)
                if d.id not in seen:
                    seen.add(d.id)
                    merged.append(d)
        return _sort(merged, query.sort)[: query.limit]

    def search_spaces(self, query: SpaceQuery) -> list[HfSpaceInfo]:
        """``GET /api/spaces``; ``sdk`` is sent as a filter and re-checked client-side."""
        params: Params = [("search", query.search)] if query.search else []
        if query.author:
            params.append(("author", query.author))
        if query.sdk is not None:
            params.append(("filter", query.sdk.value))
        params += [("sort", query.sort.hub_param), ("direction", "-1"), ("limit", str(query.limit))]
        items = self._list("/api/spaces", params, f"the space search {query.search!r}", query.limit)
        spaces = [HfSpaceInfo.from_json(x) for x in items]
        if query.sdk is not None:
            from batuta_sync.hub.models import SpaceSdk

            spaces = [
                s for s in spaces if s.sdk in (query.sdk, SpaceSdk.UNKNOWN) or query.sdk.value in s.tags
            ]
        return spaces[: query.limit]

    # ------------------------------------------------------------------ info
    def repo_info(
        self, repo_type: HfAssetType, repo_id: str, revision: str | None = None, *, files: bool = False
    ) -> HfRepoInfo:
        """Info of any repo type (``files=True`` adds sizes and hashes of every file)."""
        check_repo_id(repo_id)
        path = f"/api/{repo_type.api_plural}/{repo_id}"
        if revision:
            path += f"/revision/{_rev(revision)}"
        params: Params = [("blobs", "true")] if files else []
        at = f" at revision {revision!r}" if revision else ""
        body = self._get(path, params, f"{repo_type.value} info for {repo_id!r}{at}")
        return info_from_json(repo_type, body)

    def model_info(self, repo_id: str, revision: str | None = None, files: bool = False) -> HfModelInfo:
        info = self.repo_info(HfAssetType.MODEL, repo_id, revision, files=files)
        assert isinstance(info, HfModelInfo)
        return info

    def dataset_info(self, repo_id: str, revision: str | None = None, files: bool = False) -> HfDatasetInfo:
        info = self.repo_info(HfAssetType.DATASET, repo_id, revision, files=files)
        assert isinstance(info, HfDatasetInfo)
        return info

    def space_info(self, repo_id: str, revision: str | None = None, files: bool = False) -> HfSpaceInfo:
        info = self.repo_info(HfAssetType.SPACE, repo_id, revision, files=files)
        assert isinstance(info, HfSpaceInfo)
        return info

    # ------------------------------------------------------------------ snapshot
    def resolve_commit(self, ref: RepoRef) -> str:
        """The 40-hex commit ``ref.revision`` points at (1 API call; cache only offline)."""
        check_repo_id(ref.repo_id)
        path = f"/api/{ref.repo_type.api_plural}/{ref.repo_id}/revision/{_rev(ref.revision)}"
        body = self._get(path, None, f"the commit of {ref}", fresh=True)
        sha = _commit_of(body, ref)
        return sha

    def snapshot(self, ref: RepoRef) -> RepoSnapshot:
        """Resolve ``ref`` to its commit and full recursive file list (path, size, blob id, sha256).

        One call (``revision/{rev}?blobs=true``) when the Hub lists every sibling's blob id,
        else a second, paginated tree listing at the resolved commit.
        """
        check_repo_id(ref.repo_id)
        base = f"/api/{ref.repo_type.api_plural}/{ref.repo_id}"
        body = self._get(
            f"{base}/revision/{_rev(ref.revision)}",
            [("blobs", "true")],
            f"the file list of {ref}",
            fresh=True,
        )
        sha = _commit_of(body, ref)
        siblings = body.get("siblings")
        files = files_from_siblings(siblings)
        card_data = body.get("cardData")
        card = card_data if isinstance(card_data, dict) else None  # the README's YAML (dataset splits)
        if isinstance(siblings, list) and files and all(f.blob_id for f in files):
            return RepoSnapshot(ref, sha, files, card)
        tree_path = f"{base}/tree/{sha}"
        params: Params = [("recursive", "true"), ("expand", "false")]
        key = self.cache.key(tree_path, params)
        if self.settings.offline:
            entry = self.cache.get_any_age(key)
            if entry is None:
                raise OfflineError(
                    f"Offline mode and the file list of {ref} (commit {sha}) is not in the metadata cache."
                )
            entries = entry.body
        else:
            entries = self.http.get_json_pages(tree_path, params=params)
            self.cache.put(key, entries, f"the file tree of {ref} at {sha}")
        return RepoSnapshot(ref, sha, tuple(sorted(files_from_tree(entries), key=lambda f: f.path)), card)

    # ------------------------------------------------------------------ auth
    def is_authenticated(self) -> bool:
        """True when a token is configured (``--token``, HF_TOKEN or a stored login); no request."""
        return self.settings.token is not None

    @property
    def auth(self) -> HfAuth:
        """Spec ``HfAuth``: where the token comes from."""
        return self.settings.auth

    def whoami(self) -> UserInfo:
        """``GET /api/whoami-v2``: who the token belongs to."""
        if self.settings.token is None:
            raise AuthError("Not logged in: no token from --token, HF_TOKEN or a stored login.")
        if self.settings.offline:
            raise OfflineError("Offline mode (--offline / HF_HUB_OFFLINE=1): whoami needs the Hub.")
        return UserInfo.from_json(self.http.get_json("/api/whoami-v2"))

    def login(self, token: str) -> UserInfo:
        """Check ``token`` with whoami, then store it at ``$HF_HOME/token`` (mode 0600)."""
        from batuta_sync._redact import Secret

        token = check_token_shape(token)
        trial = replace(self.settings, token=Secret(token), auth=HfAuth.TOKEN)
        with HfClient(trial, **self._http_kwargs) as trial_client:
            user = trial_client.whoami()
        store_token(self.settings, token)
        return user

    def logout(self) -> bool:
        """Remove the stored token; True if one was stored."""
        return delete_token(self.settings)

    # ------------------------------------------------------------------ download / upload
    def download_model(
        self,
        repo_id: str,
        files: Sequence[str] | None = None,
        revision: str | None = None,
        *,
        output: str | os.PathLike[str] | None = None,
        format: str | None = None,
        allow_unsafe: bool = False,
    ) -> Path:
        """Download a model (``files``: exact paths, else the best format) and return its folder.

        Delegates to :func:`batuta_sync.pull.pull` (verified, resumable, into the HF cache;
        ``output`` also materialises the files there).  Pickle formats need ``allow_unsafe``.
        """
        from batuta_sync.pull import PullRequest, pull

        req = PullRequest(
            ref=RepoRef(check_repo_id(repo_id), HfAssetType.MODEL, revision or "main"),
            files=tuple(files or ()),
            format=format,
            output=Path(output) if output is not None else None,
            allow_unsafe=allow_unsafe,
        )
        kw = self._http_kwargs
        result = pull(
            self.settings,
            req,
            max_wait=kw.get("max_wait"),
            no_wait=bool(kw.get("no_wait")),
            sleep=kw.get("sleep"),
        )
        return result.output or result.snapshot_dir

    def upload_model(
        self,
        local_path: str | os.PathLike[str],
        repo_id: str,
        commit_message: str,
        *,
        private: bool = False,
        format: str | None = None,
    ) -> str:
        """Upload a model folder (validated, secret-scanned, only changed files) and return the commit sha.

        Delegates to :func:`batuta_sync.publish.push.push`; an unchanged folder makes no commit
        and returns the current head.
        """
        from batuta_sync.publish.push import PushRequest, push

        req = PushRequest(
            path=Path(local_path), repo_id=repo_id, message=commit_message, private=private, format=format
        )
        result = push(self.settings, req)
        return result.commit or ""

    # ------------------------------------------------------------------ model cards
    def generate_model_card(self, info: Mapping[str, Any]) -> str:
        """Model card markdown (README.md) from card metadata (spec ``ModelCardInfo``).

        Delegates to :func:`batuta_sync.publish.card.generate_model_card`; keys include
        ``model_name``, ``license``, ``library_name``, ``pipeline_tag``, ``tags``, ``metrics``.
        """
        from batuta_sync.publish.card import generate_model_card

        return generate_model_card(info)


def _sort(items: Sequence[HfDatasetInfo], key: SortKey) -> list[HfDatasetInfo]:
    if key is SortKey.DOWNLOADS:
        return sorted(items, key=lambda d: -d.downloads)
    if key is SortKey.LIKES:
        return sorted(items, key=lambda d: -d.likes)
    if key is SortKey.UPDATED:
        return sorted(items, key=lambda d: d.last_modified or "", reverse=True)
    return list(items)
