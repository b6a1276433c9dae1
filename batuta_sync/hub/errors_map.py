"""Hub HTTP errors -> BatutaErrors with hints (pure; the HTTP layer calls :func:`error_for`).

Driven by the ``X-Error-Code`` response header like huggingface_hub
(``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``, ``GatedRepo``), then by
the status code.  Messages name the repo / revision / file, never the token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from batuta_sync.errors import (
    AuthError,
    BatutaError,
    ConflictError,
    HubError,
    NetworkError,
    NotFoundError,
    RateLimitedError,
)

_API_RE = re.compile(r"^/api/(?P<type>models|datasets|spaces)/(?P<rest>.+)$")
_RESOLVE_RE = re.compile(
    r"^/(?:(?P<prefix>datasets|spaces)/)?(?P<id>[^/]+(?:/[^/]+)?)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"
)
_API_VERBS = ("revision", "tree", "refs", "commits", "commit", "preupload", "paths-info", "resolve")


@dataclass(frozen=True, slots=True)
class Target:
    """What a request was about, recovered from its URL (for error messages)."""

    kind: str = ""  # model | dataset | space | ""
    repo_id: str = ""
    revision: str | None = None
    path: str | None = None

    def describe(self) -> str:
        if not self.repo_id:
            return "the requested resource"
        text = f"{self.kind} '{self.repo_id}'" if self.kind else f"'{self.repo_id}'"
        if self.revision:
            text += f" at revision '{self.revision}'"
        return text


def target_of(path: str) -> Target:
    """Recover repo type / id / revision / file from an API or resolve URL path."""
    path = urlsplit(path).path
    m = _API_RE.match(path)
    if m:
        parts = m.group("rest").split("/")
        kind = m.group("type")[:-1]
        verb_at = next((i for i, p in enumerate(parts) if p in _API_VERBS and i in (1, 2)), None)
        id_parts = parts[:verb_at] if verb_at is not None else parts[:2]
        rev = None
        if verb_at is not None and len(parts) > verb_at + 1:
            rev = unquote(parts[verb_at + 1])
        return Target(kind, "/".join(id_parts), rev)
    m = _RESOLVE_RE.match(path)
    if m:
        kind = (m.group("prefix") or "models")[:-1]
        return Target(kind, m.group("id"), unquote(m.group("rev")), unquote(m.group("path")))
    return Target()


def _server_message(headers: Mapping[str, str], body: str) -> str:
    msg = headers.get("x-error-message", "")
    if not msg and body:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            msg = data["error"]
    msg = " ".join(msg.split())
    return msg[:300]


def error_for(
    status: int,
    headers: Mapping[str, str],
    path: str,
    body: str = "",
    *,
    method: str = "GET",
    has_token: bool = False,
    endpoint: str = "",
    attempts: int = 1,
    token_source: str = "",
) -> BatutaError:
    """The BatutaError for a final (non-retried or retries-exhausted) error response.

    ``token_source`` (``token`` / ``token-file`` / ``env`` / ``file``: :class:`~batuta_sync.settings.HfAuth`
    values) makes the hint for a rejected token name the place to fix.
    """
    code = headers.get("x-error-code", "")
    target = target_of(path)
    what = target.describe()
    if urlsplit(path).path.startswith("/api/whoami"):
        what = "whoami"
    server = _server_message(headers, body)
    said = f" The Hub said: {server}" if server else ""
    if code in ("RepoNotFound", "RevisionNotFound", "EntryNotFound"):
        said = ""  # our message already says it, with the repo/revision/file named
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    repo_url = f"{endpoint}/{'' if target.kind == 'model' else target.kind + 's/'}{target.repo_id}"

    if code == "GatedRepo":
        return AuthError(
            f"{what} is gated: you must accept its terms before downloading.{said}",
            hint=f"Open {repo_url} while logged in, accept the conditions, then retry "
            + ("with your token." if has_token else "after `batuta hf login`."),
            code="gated-repo",
        )
    if code == "RepoNotFound" or (status == 404 and not code and target.repo_id and target.path is None):
        hint = "Check the repo id and type (model/dataset/space)." + (
            " If it is private, your token cannot see it."
            if has_token
            else " If it is private, log in first (`batuta hf login` or HF_TOKEN)."
        )
        return NotFoundError(
            f"{what.split(' at revision')[0]} was not found on {endpoint or 'the Hub'}.{said}",
            hint=hint,
            code="repo-not-found",
        )
    if code == "RevisionNotFound":
        return NotFoundError(
            f"Revision '{target.revision}' of {what.split(' at revision')[0]} does not exist.{said}",
            hint="Check the branch, tag or commit sha (`batuta hf info` shows the current sha).",
            code="revision-not-found",
        )
    if code == "EntryNotFound" or (status == 404 and target.path):
        return NotFoundError(
            f"File '{target.path or '?'}' does not exist in {what}.{said}",
            hint="List the repo's files with `batuta hf info … --files`.",
            code="entry-not-found",
        )
    if status == 401:
        if has_token:
            return AuthError(
                f"The Hub rejected your token (401) for {what}.{said}",
                hint="The token is invalid or expired: "
                + {
                    "token": "check the value passed with --token.",
                    "token-file": "check the token in the file given with --token-file.",
                    "env": "fix or unset the HF_TOKEN environment variable.",
                    "file": "create a new token and run `batuta hf login` again.",
                }.get(token_source, "create a new one and run `batuta hf login`, or fix HF_TOKEN."),
                code="unauthorized",
            )
        return AuthError(f"{what} needs authentication (401).{said}", code="unauthorized")
    if status == 403:
        return AuthError(
            f"Access to {what} is forbidden (403).{said}",
            hint="Your token lacks the permission (read/write role, org membership) for this operation.",
            code="forbidden",
        )
    if status == 404:
        return NotFoundError(f"Not found (404): {method} {urlsplit(path).path}.{said}", code="not-found")
    if status in (409, 412):
        return ConflictError(
            f"Conflict ({status}) on {what}.{said}",
            hint="Someone changed the repo meanwhile: re-run `batuta plan` (or the command) and retry.",
        )
    if status == 429:
        return RateLimitedError(
            f"The Hub is still rate limiting {what}{tried}.{said}",
            hint="Wait a few minutes and retry; logged-in users get a larger quota (`batuta hf login`).",
        )
    if status >= 500 or status == 408:
        return NetworkError(f"The Hub answered {status} for {method} {urlsplit(path).path}{tried}.{said}")
    return HubError(
        f"The Hub refused {method} {urlsplit(path).path} with {status}.{said}",
        hint="Check the arguments; rerun with --debug for details.",
    )
