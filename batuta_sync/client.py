"""``HfClient``: the spec's "API Client", the facade ABOVE the engines.

It is :class:`batuta_sync.hub.client.HubApi` (search, info, snapshot, auth: plain synchronous
methods over :class:`~batuta_sync.hub._http.HubHttp`) plus the transfers, which delegate to
the engines: :meth:`HfClient.download_model` to :func:`batuta_sync.convert.on_pull.pull_or_convert`
(the pull engine, converting when the asked-for format must be produced),
:meth:`HfClient.upload_model` to :func:`batuta_sync.publish.push.push` and
:meth:`HfClient.generate_model_card` to :func:`batuta_sync.publish.card.generate_model_card`.
The engines import only ``hub``; nothing below this module imports it (import-linter).

Example::

    from batuta_sync import HfClient
    from batuta_sync.hub.models import ModelQuery

    hub = HfClient()                                   # settings: flag > env > hf.yaml > default
    for m in hub.search_models(ModelQuery("llama", task="text-generation", limit=5)):
        print(m.id, m.downloads)
    folder = hub.download_model("TheBloke/Llama-2-7B-GGUF", format="gguf")
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from batuta_sync.hub.client import HubApi
from batuta_sync.types import HfAssetType, RepoRef, check_repo_id

__all__ = ["HfClient"]


class HfClient(HubApi):
    """HuggingFace Hub client for batuta (spec ``HfClient``).

    Args:
        settings: resolved settings (default: :func:`batuta_sync.settings.resolve_settings`).
        http: an existing transport to share (default: a new :class:`HubHttp`).
        **http_kwargs: passed to :class:`HubHttp` (``sleep``, ``max_wait``, ``no_wait``, ``on_wait`` …).
    """

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

        Delegates to :func:`batuta_sync.convert.on_pull.pull_or_convert` (verified, resumable,
        into the HF cache; ``output`` also materialises the files there; a format the repo
        lacks is converted).  Pickle formats need ``allow_unsafe``.
        """
        from batuta_sync.convert.on_pull import pull_or_convert
        from batuta_sync.pull import PullRequest

        req = PullRequest(
            ref=RepoRef(check_repo_id(repo_id), HfAssetType.MODEL, revision or "main"),
            files=tuple(files or ()),
            format=format,
            output=Path(output) if output is not None else None,
            allow_unsafe=allow_unsafe,
        )
        kw = self._http_kwargs
        result = pull_or_convert(
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

    def generate_model_card(self, info: Mapping[str, Any]) -> str:
        """Model card markdown (README.md) from card metadata (spec ``ModelCardInfo``).

        Delegates to :func:`batuta_sync.publish.card.generate_model_card`; keys include
        ``model_name``, ``license``, ``library_name``, ``pipeline_tag``, ``tags``, ``metrics``.
        """
        from batuta_sync.publish.card import generate_model_card

        return generate_model_card(info)
