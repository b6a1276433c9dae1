"""Hub I/O of repo management: create / delete repos, branches and tags; list repos and files.

Every call goes through :class:`~batuta_sync.hub._http.HubHttp` (one retry policy, the shared
rate-limit gate, the error map of :mod:`batuta_sync.hub.errors_map`).  Writes that are not
idempotent are sent once unless their "already done" answer is accepted anyway:

* ``create_repo`` / ``create_branch`` / ``create_tag`` are retried only with ``exist_ok`` (a lost
  answer to a first try that succeeded comes back as 409 and is accepted); without it a 409 is
  :class:`~batuta_sync.errors.ConflictError` (exit 19) naming what exists;
* ``delete_*`` are retried only with ``missing_ok`` for the same reason (a retry sees 404).

Identifiers read from the Hub's answers (paths, blob ids, LFS oids, sizes) are checked where they
enter (:mod:`batuta_sync.ids`, :func:`batuta_sync.hub.models.files_from_tree`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from batuta_sync.errors import AuthError, ConflictError, HubError, NotFoundError
from batuta_sync.hub.models import HfRepoInfo, files_from_tree, info_from_json
from batuta_sync.ids import repo_path, repo_path_problem, revision_problem
from batuta_sync.types import HfAssetType, check_repo_id

if TYPE_CHECKING:
    from batuta_sync.hub._http import HubHttp

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RepoCreated:
    """Outcome of :func:`create_repo`: the repo URL, and whether this call created it."""

    repo_id: str
    repo_type: HfAssetType
    url: str
    created: bool


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One entry of ``batuta hf ls``: a file (size, git blob id, LFS sha256) or a folder."""

    path: str
    kind: str  # "file" | "directory"
    size: int = 0
    blob_id: str = ""
    sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "type": self.kind}
        if self.kind == "file":
            out.update(size=self.size, blob_id=self.blob_id or None, lfs_sha256=self.sha256)
        return out


def _describe(repo_type: HfAssetType, repo_id: str) -> str:
    return f"{repo_type.value} repo '{repo_id}'"


def _base(repo_type: HfAssetType, repo_id: str) -> str:
    return f"/api/{repo_type.api_plural}/{check_repo_id(repo_id)}"


def _seg(name: str) -> str:
    return quote(name, safe="")


def _ref(value: str, *, where: str) -> str:
    """A user-given branch / tag / revision name, or a UsageError (exit 64) saying what is wrong."""
    problem = revision_problem(value)
    if problem:
        from batuta_sync.errors import UsageError

        raise UsageError(
            f"{where} {value!r} is not a valid git ref name: it {problem}.",
            hint="Use letters, digits and . _ - / (e.g. v1.0, dev, release/2).",
        )
    return value


def _about(what: str, fn: Callable[[], T]) -> T:
    """Run ``fn``; a permission or not-found error from an endpoint whose URL does not name the
    repo (``/api/repos/...``) is re-worded to say which repo and operation it was about."""
    try:
        return fn()
    except (AuthError, NotFoundError) as exc:
        raise type(exc)(
            exc.message.replace("the requested resource", what), hint=exc.hint, code=exc.code
        ) from None


def _split(repo_id: str) -> tuple[str | None, str]:
    ns, sep, name = check_repo_id(repo_id).rpartition("/")
    return (ns if sep else None), name


def create_repo(
    http: HubHttp,
    repo_id: str,
    repo_type: HfAssetType = HfAssetType.MODEL,
    *,
    private: bool = False,
    exist_ok: bool = False,
    sdk: str | None = None,
) -> RepoCreated:
    """``POST /api/repos/create``; an existing repo is a ConflictError (exit 19) unless ``exist_ok``."""
    org, name = _split(repo_id)
    body: dict[str, Any] = {"name": name, "type": repo_type.value, "private": private}
    if org:
        body["organization"] = org
    if repo_type is HfAssetType.SPACE:
        body["sdk"] = sdk or "static"
    what = _describe(repo_type, repo_id)
    resp = _about(
        what,
        lambda: http.request("POST", "/api/repos/create", json=body, retry=exist_ok, allow=(409,)),
    )
    if org is None and resp.status_code != 409:  # a bare name: the Hub says whose it became
        repo_id = _created_id(resp, name) or repo_id
    url = f"{http.endpoint}/{repo_type.url_prefix}{repo_id}"
    if resp.status_code == 409:
        if not exist_ok:
            raise ConflictError(
                f"The {what} already exists on {http.endpoint}; nothing was changed.",
                hint="Pass --exist-ok to accept an existing repo, or choose another name.",
                code="repo-exists",
            )
        return RepoCreated(repo_id, repo_type, url, created=False)
    return RepoCreated(repo_id, repo_type, url, created=True)


def _created_id(resp: Any, name: str) -> str | None:
    """``namespace/name`` from a create answer (``name`` or ``id``), if it has that shape."""
    from batuta_sync.ids import is_repo_id

    try:
        body = resp.json()
    except ValueError:
        return None
    rid = (body.get("name") or body.get("id")) if isinstance(body, dict) else None
    if is_repo_id(rid) and isinstance(rid, str) and rid.endswith("/" + name):
        return rid
    return None


def delete_repo(
    http: HubHttp, repo_id: str, repo_type: HfAssetType = HfAssetType.MODEL, *, missing_ok: bool = False
) -> bool:
    """``DELETE /api/repos/delete``; True if it was deleted, False if missing and ``missing_ok``."""
    org, name = _split(repo_id)
    body: dict[str, Any] = {"name": name, "type": repo_type.value}
    if org:
        body["organization"] = org
    what = _describe(repo_type, repo_id)
    try:
        _about(what, lambda: http.request("DELETE", "/api/repos/delete", json=body, retry=missing_ok))
    except NotFoundError:
        if missing_ok:
            return False
        raise
    return True


def _ref_write(
    http: HubHttp,
    method: str,
    path: str,
    *,
    json: Any,
    what: str,
    ok_status: int,
    accept: bool,
    exists_hint: str,
) -> bool:
    """One branch/tag write; ``ok_status`` (409 exists / 404 missing) is False when ``accept``."""
    allow = (ok_status,) if ok_status == 409 else ()
    try:
        resp = http.request(method, path, json=json, retry=accept, allow=allow)
    except NotFoundError as exc:
        if ok_status == 404 and accept and exc.code == "revision-not-found":
            return False
        raise
    if resp.status_code == 409:
        if accept:
            return False
        raise ConflictError(
            f"{what} already exists; nothing was changed.", hint=exists_hint, code="ref-exists"
        )
    return True


def create_branch(
    http: HubHttp,
    repo_id: str,
    repo_type: HfAssetType,
    branch: str,
    *,
    start: str | None = None,
    exist_ok: bool = False,
) -> bool:
    """``POST /api/{T}/{id}/branch/{branch}`` at ``start`` (default: the default branch head)."""
    branch = _ref(branch, where="the branch name")
    body = {"startingPoint": _ref(start, where="--revision")} if start else None
    return _ref_write(
        http,
        "POST",
        f"{_base(repo_type, repo_id)}/branch/{_seg(branch)}",
        json=body,
        what=f"Branch '{branch}' of {_describe(repo_type, repo_id)}",
        ok_status=409,
        accept=exist_ok,
        exists_hint="Pass --exist-ok to accept it, or delete it first (`batuta hf repo branch delete`).",
    )


def delete_branch(
    http: HubHttp, repo_id: str, repo_type: HfAssetType, branch: str, *, missing_ok: bool = False
) -> bool:
    """``DELETE /api/{T}/{id}/branch/{branch}`` (the default branch cannot be deleted: 403)."""
    branch = _ref(branch, where="the branch name")
    return _ref_write(
        http,
        "DELETE",
        f"{_base(repo_type, repo_id)}/branch/{_seg(branch)}",
        json=None,
        what="",
        ok_status=404,
        accept=missing_ok,
        exists_hint="",
    )


def create_tag(
    http: HubHttp,
    repo_id: str,
    repo_type: HfAssetType,
    tag: str,
    *,
    target: str = "main",
    message: str | None = None,
    exist_ok: bool = False,
) -> bool:
    """``POST /api/{T}/{id}/tag/{target}`` with ``{"tag", "message"}``."""
    tag = _ref(tag, where="the tag name")
    body: dict[str, Any] = {"tag": tag}
    if message:
        body["message"] = message
    return _ref_write(
        http,
        "POST",
        f"{_base(repo_type, repo_id)}/tag/{_seg(_ref(target, where='--revision'))}",
        json=body,
        what=f"Tag '{tag}' of {_describe(repo_type, repo_id)}",
        ok_status=409,
        accept=exist_ok,
        exists_hint="Pass --exist-ok to accept it, or delete it first (`batuta hf repo tag delete`).",
    )


def delete_tag(
    http: HubHttp, repo_id: str, repo_type: HfAssetType, tag: str, *, missing_ok: bool = False
) -> bool:
    """``DELETE /api/{T}/{id}/tag/{tag}``."""
    tag = _ref(tag, where="the tag name")
    return _ref_write(
        http,
        "DELETE",
        f"{_base(repo_type, repo_id)}/tag/{_seg(tag)}",
        json=None,
        what="",
        ok_status=404,
        accept=missing_ok,
        exists_hint="",
    )


@dataclass(frozen=True, slots=True)
class Ref:
    """A branch or tag and the commit it points at."""

    name: str
    kind: str  # "branch" | "tag"
    commit: str


def list_refs(http: HubHttp, repo_id: str, repo_type: HfAssetType = HfAssetType.MODEL) -> list[Ref]:
    """Branches and tags (``GET /api/{T}/{id}/refs``), each name and commit checked where it enters."""
    from batuta_sync.ids import commit_sha
    from batuta_sync.ids import revision as ref_name

    body = http.get_json(f"{_base(repo_type, repo_id)}/refs")
    if not isinstance(body, dict):
        raise HubError("The Hub's refs answer is not a JSON object.", hint="Check HF_ENDPOINT.")
    out: list[Ref] = []
    for key, kind in (("branches", "branch"), ("tags", "tag")):
        items = body.get(key) or []
        if not isinstance(items, list):
            raise HubError(f"The Hub's refs answer has a malformed {key!r} list.", hint="Check HF_ENDPOINT.")
        for item in items:
            item = item if isinstance(item, dict) else {}
            where = f"the Hub's {kind} list of {repo_id}"
            out.append(
                Ref(
                    ref_name(item.get("name"), where=where),
                    kind,
                    commit_sha(item.get("targetCommit"), where=where),
                )
            )
    return out


def list_repos(
    http: HubHttp, author: str, repo_type: HfAssetType = HfAssetType.MODEL, *, limit: int | None = None
) -> list[HfRepoInfo]:
    """The repos of a user or organization (``GET /api/{T}?author=…``), private ones the token sees."""
    check_repo_id(author)
    if "/" in author:
        from batuta_sync.errors import UsageError

        raise UsageError(
            f"{author!r} is a repo id, not a user or organization.", hint="Pass only the namespace."
        )
    params = [("author", author), ("sort", "lastModified"), ("direction", "-1")]
    items = http.get_json_pages(f"/api/{repo_type.api_plural}", params=params, limit=limit)
    return [info_from_json(repo_type, x) for x in items]


def list_files(
    http: HubHttp,
    repo_id: str,
    repo_type: HfAssetType = HfAssetType.MODEL,
    path: str = "",
    *,
    rev: str = "main",
    recursive: bool = False,
) -> list[TreeEntry]:
    """Files and folders under ``path`` at ``rev`` (``GET /api/{T}/{id}/tree/{rev}/{path}``)."""
    rev = _ref(rev, where="--revision")
    path = path.strip("/")
    problem = repo_path_problem(path) if path else None
    if problem:
        from batuta_sync.errors import UsageError

        raise UsageError(f"The path {path!r} {problem}.", hint="Give a folder or file path inside the repo.")
    url = f"{_base(repo_type, repo_id)}/tree/{_seg(rev)}"
    if path:
        url += "/" + quote(path, safe="/")
    params = [("recursive", "true")] if recursive else None
    entries = http.get_json_pages(url, params=params)
    return entries_from_tree(entries)


def entries_from_tree(entries: Any) -> list[TreeEntry]:
    """A tree listing as TreeEntries (folders first at each level, then files, by path)."""
    if not isinstance(entries, list):
        raise HubError("The Hub's tree listing is not a JSON list.", hint="Check HF_ENDPOINT.")
    where = "the Hub's tree listing"
    out = [
        TreeEntry(repo_path(f.path, where=where), "file", f.size, f.blob_id, f.sha256)
        for f in files_from_tree(entries)
    ]
    for e in entries:
        if isinstance(e, dict) and e.get("type") == "directory":
            out.append(TreeEntry(repo_path(e.get("path"), where=where), "directory"))
    out.sort(key=lambda t: (t.path.split("/")[:-1], t.kind != "directory", t.path))
    return out


__all__ = [
    "Ref",
    "RepoCreated",
    "TreeEntry",
    "create_branch",
    "create_repo",
    "create_tag",
    "delete_branch",
    "delete_repo",
    "delete_tag",
    "entries_from_tree",
    "list_files",
    "list_refs",
    "list_repos",
]
