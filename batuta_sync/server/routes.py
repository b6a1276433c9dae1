"""The local Hub's route table: which handler answers which request path.

Routing works on the RAW request path split at ``/`` (``segs``) and then unquoted (``d``), so that
``refs%2Fpr%2F1`` stays one segment.  Three tables, tried in this order (each miss falls through to
the next rule, and the last miss is a 404 ``Not found: <path>``):

* :data:`PREFIXES` — the first segment names a protocol (``/_batuta``, ``/api``, Xet CAS, the OCI
  registry, the LFS upload/verify tickets, ``/cdn-lfs``);
* :data:`API` and :data:`REPO_API` — the ``/api/…`` endpoints, and those of one repo
  (``/api/{type}s/{namespace}/{name}/<head>/…``);
* the repo paths (``[{datasets,spaces}/]{namespace}/{name}/resolve/…``, git-lfs batch).

The handlers live in ``server/handlers/`` (one module an area); ``app._Handler`` joins them.
See docs/hub-server.md for the endpoint list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import unquote

from batuta_sync.server import meta, web
from batuta_sync.server.protocol import TYPES_BY_PLURAL, HTTPError
from batuta_sync.server.xet import routes as xet_routes

if TYPE_CHECKING:
    from batuta_sync.server.app import _Handler

GET, POST, PUT, DELETE = frozenset({"GET"}), frozenset({"POST"}), frozenset({"PUT"}), frozenset({"DELETE"})
READ = frozenset({"GET", "HEAD"})
ONE, MANY, ANY = "one", "many", "any"  # how many segments a repo API route takes: its head only, 2+, any

#: ``/<prefix>/…``: (handler, segs, d) -> whether it answered (False: routing goes on).
Prefix = Callable[["_Handler", list[str], list[str]], bool]
#: ``/api/<exact path>``: (methods, handler).
ApiRoute = tuple[frozenset[str], Callable[["_Handler"], None]]
#: ``/api/{type}s/{repo}/<head>/…``: (arity, methods, handler(h, repo_type, repo_id, rest)).
RepoRoute = tuple[str, frozenset[str], Callable[["_Handler", str, str, list[str]], None]]


def not_found(h: _Handler) -> HTTPError:
    return HTTPError(404, f"Not found: {h.raw_path}")


def route(h: _Handler) -> None:
    """Answer the request ``h`` (called by ``BaseHandler._dispatch``)."""
    if web.handle(h):  # browser pages (Accept prefers text/html) and /_web/
        return
    segs = [s for s in h.raw_path.split("/")[1:]]
    if segs and segs[-1] == "" and len(segs) > 1:
        segs = segs[:-1]
    d = [unquote(s) for s in segs]
    if not d or d == [""]:
        return h._json({"name": "batuta local hub", "api": "/api"})
    prefix = PREFIXES.get(d[0])
    if prefix is not None and prefix(h, segs, d):
        return None
    _repo_path(h, d)


def _repo_path(h: _Handler, d: list[str]) -> None:
    """``[{datasets,spaces}/]{namespace}/{name}/…``: file downloads and the git-lfs batch API."""
    m = h.command
    repo_type = "model"
    if d[0] in ("datasets", "spaces") and len(d) > 2:
        repo_type = TYPES_BY_PLURAL[d[0]]
        d = d[1:]
    if len(d) >= 6 and d[1].endswith(".git") and d[2:] == ["info", "lfs", "objects", "batch"] and m == "POST":
        return h._lfs_batch(repo_type, f"{d[0]}/{d[1][:-4]}")
    if len(d) >= 5 and d[2] == "resolve" and m in READ:
        return h._resolve(repo_type, f"{d[0]}/{d[1]}", d[3], "/".join(d[4:]))
    raise not_found(h)


# ---------------------------------------------------------------------- first segment
def _control(h: _Handler, segs: list[str], d: list[str]) -> bool:
    if not h.hub.control_api:
        raise HTTPError(404, "The control API is disabled on this server (see --control-api).")
    if not h.hub.admin_ok(h.headers.get("Authorization")):
        h._drain_small_body()
        raise HTTPError(
            401 if not h.headers.get("Authorization") else 403,
            "The control API needs the admin token (Authorization: Bearer <admin token>).",
        )
    h._control(d[1:])
    return True


def _api(h: _Handler, segs: list[str], d: list[str]) -> bool:
    segs, d = segs[1:], d[1:]
    exact = API.get(tuple(d))
    if exact is not None and h.command in exact[0]:
        exact[1](h)
        return True
    if len(d) == 1 and d[0] in TYPES_BY_PLURAL and h.command == "GET":
        h._search(TYPES_BY_PLURAL[d[0]])
        return True
    if len(d) >= 3 and d[0] in TYPES_BY_PLURAL:
        _repo_api(h, TYPES_BY_PLURAL[d[0]], f"{d[1]}/{d[2]}", d[3:])
        return True
    raise not_found(h)


def _xet_cas(h: _Handler, segs: list[str], d: list[str]) -> bool:
    xet_routes.cas(h, d[1:])
    return True


def _registry(h: _Handler, segs: list[str], d: list[str]) -> bool:
    """The container registry Ollama pulls from (``/v2/…``); other paths may be a repo named v2/…"""
    if not (len(d) <= 2 or (len(d) == 5 and d[3] in ("manifests", "blobs"))):
        return False
    from batuta_sync.server import registry

    registry.route(h, d[1:])
    return True


def _lfs_upload(h: _Handler, segs: list[str], d: list[str]) -> bool:
    if len(d) == 2 and h.command == "PUT":
        h._lfs_upload(d[1])
        return True
    return False


def _lfs_verify(h: _Handler, segs: list[str], d: list[str]) -> bool:
    if len(d) == 2 and h.command == "POST":
        h._lfs_verify(d[1])
        return True
    return False


def _cdn_lfs(h: _Handler, segs: list[str], d: list[str]) -> bool:
    if len(d) == 7 and d[4] == "resolve" and h.command in READ:
        h._cdn_blob(d[1], f"{d[2]}/{d[3]}", d[5], d[6])
        return True
    return False


PREFIXES: dict[str, Prefix] = {
    "_batuta": _control,
    "api": _api,
    "xet-cas": _xet_cas,
    "v2": _registry,
    "lfs-upload": _lfs_upload,
    "lfs-verify": _lfs_verify,
    "cdn-lfs": _cdn_lfs,
}


# ---------------------------------------------------------------------- /api/…
def _move_repo(h: _Handler) -> None:
    raise HTTPError(501, "Moving repos is not supported by the local hub.")


def _validate_yaml(h: _Handler) -> None:
    body = h._json_body()
    errors, warnings = meta.validate_card_yaml(str(body.get("content") or ""))
    out = {"errors": [{"message": e} for e in errors], "warnings": [{"message": w} for w in warnings]}
    h._json(out, 400 if errors else 200)


API: dict[tuple[str, ...], ApiRoute] = {
    ("whoami-v2",): (GET, lambda h: h._whoami()),
    ("repos", "create"): (POST, lambda h: h._create_repo()),
    ("repos", "delete"): (DELETE, lambda h: h._delete_repo()),
    ("repos", "move"): (POST, _move_repo),
    ("validate-yaml",): (POST, _validate_yaml),
}


# ---------------------------------------------------------------------- /api/{type}s/{repo}/…
def _repo_api(h: _Handler, repo_type: str, repo_id: str, rest: list[str]) -> None:
    if not rest:
        if h.command == "GET":
            return h._info(repo_type, repo_id, "main", explicit_rev=False)
        raise not_found(h)
    found = REPO_API.get(rest[0])
    if found is None:
        raise not_found(h)
    arity, methods, handler = found
    if not (arity == ANY or (arity == ONE) == (len(rest) == 1)) or h.command not in methods:
        raise not_found(h)
    handler(h, repo_type, repo_id, rest)


def _runtime(h: _Handler, repo_type: str, repo_id: str, rest: list[str]) -> None:
    if repo_type != "space":
        raise not_found(h)
    st, _ = h._visible_repo(repo_type, repo_id)
    c = h.hub.store.get_commit(st.branches["main"])
    h._json(h._info_json(st, c, siblings=False, blobs=False)["runtime"])


def _xet_token(h: _Handler, repo_type: str, repo_id: str, rest: list[str]) -> None:
    xet_routes.token(h, repo_type, repo_id, rest[0][4:-6], "/".join(rest[1:]) or "main")


def _rev(rest: list[str]) -> str:
    return "/".join(rest[1:])


REPO_API: dict[str, RepoRoute] = {
    "revision": (MANY, GET, lambda h, t, r, rest: h._info(t, r, _rev(rest), explicit_rev=True)),
    "tree": (MANY, GET, lambda h, t, r, rest: h._tree(t, r, rest[1], "/".join(rest[2:]))),
    "paths-info": (MANY, POST, lambda h, t, r, rest: h._paths_info(t, r, _rev(rest))),
    "refs": (ONE, GET, lambda h, t, r, rest: h._refs(t, r)),
    "commits": (MANY, GET, lambda h, t, r, rest: h._commits(t, r, _rev(rest))),
    "preupload": (MANY, POST, lambda h, t, r, rest: h._preupload(t, r, _rev(rest))),
    "commit": (MANY, POST, lambda h, t, r, rest: h._commit(t, r, _rev(rest))),
    "branch": (MANY, POST | DELETE, lambda h, t, r, rest: h._branch(t, r, _rev(rest))),
    "tag": (MANY, POST | DELETE, lambda h, t, r, rest: h._tag(t, r, _rev(rest))),
    "settings": (ONE, PUT, lambda h, t, r, rest: h._settings(t, r)),
    "like": (ONE, POST | DELETE, lambda h, t, r, rest: h._like(t, r)),
    "runtime": (ONE, GET, _runtime),
    "xet-read-token": (ANY, frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"}), _xet_token),
    "xet-write-token": (ANY, frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"}), _xet_token),
}
