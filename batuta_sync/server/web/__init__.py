"""Read-only web pages of ``batuta hub serve`` (repo list, repo card, files, history, sign-in).

Served only when a request's ``Accept`` header prefers ``text/html`` (browsers); API clients
(``Accept: */*`` or JSON, as huggingface_hub sends) get the JSON API as before.  No JavaScript, no
external assets: one same-origin stylesheet, and every HTML answer carries :data:`SECURITY_HEADERS`
(a strict Content-Security-Policy).  Private repos are visible only to a signed-in user: the
sign-in form exchanges a hub token for a random session id kept in an ``HttpOnly; SameSite=Strict``
cookie (``Secure`` on https); the token itself is never stored in the browser.  Details and the
threat model: docs/hub-server.md ("Web pages") and docs/_drafts/web.md.

The hook in ``app.py`` calls :func:`handle` first; it returns False for anything that is not a page.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from itertools import islice
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from batuta_sync.server.state import UserSpec
from batuta_sync.server.store import Commit, RepoNotFound, RepoState, StoreError
from batuta_sync.server.web import assets, card, pages
from batuta_sync.server.web.html import Html, el

if TYPE_CHECKING:
    from batuta_sync.server.app import HubServer, _Handler
    from batuta_sync.server.handlers.base import BaseHandler

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # not no-referrer: that would blank the Origin of our own POSTs
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
SESSION_COOKIE = "batuta_session"
PRE_COOKIE = "batuta_login"  # random value the sign-in form's CSRF token is bound to
SESSION_TTL = 12 * 3600.0
MAX_SESSIONS = 10_000
MAX_LIST_ROWS = 500
COMMITS_PER_PAGE = 50
_RESERVED = frozenset({"api", "_batuta", "_web", "cdn-lfs", "lfs-upload", "lfs-verify"})
_PLURAL = {"models": "model", "datasets": "dataset", "spaces": "space"}


class Sessions:
    """Signed-in browsers: random session id → user, bounded in number and age (in memory: a
    restart signs everyone out)."""

    def __init__(self, ttl: float = SESSION_TTL, max_sessions: int = MAX_SESSIONS) -> None:
        self.ttl = ttl
        self.max_sessions = max_sessions
        self.secret = secrets.token_bytes(32)  # keys the CSRF tokens
        self._by_id: dict[str, tuple[UserSpec, float]] = {}
        self._lock = threading.Lock()

    def create(self, user: UserSpec) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            while len(self._by_id) >= self.max_sessions:
                del self._by_id[next(iter(self._by_id))]  # the oldest goes first
            self._by_id[sid] = (user, time.monotonic() + self.ttl)
        return sid

    def user(self, sid: str | None) -> UserSpec | None:
        if not sid:
            return None
        with self._lock:
            found = self._by_id.get(sid)
            if found is None:
                return None
            if found[1] <= time.monotonic():
                del self._by_id[sid]
                return None
            return found[0]

    def drop(self, sid: str | None) -> None:
        with self._lock:
            self._by_id.pop(sid or "", None)

    def csrf(self, bound_to: str) -> str:
        """The CSRF token of a form, bound to a cookie value the attacker's page cannot read."""
        return hmac.new(self.secret, b"csrf:" + bound_to.encode(), hashlib.sha256).hexdigest()

    def __len__(self) -> int:
        return len(self._by_id)


_SESSIONS: weakref.WeakKeyDictionary[HubServer, Sessions] = weakref.WeakKeyDictionary()
_SESSIONS_LOCK = threading.Lock()


def sessions(hub: HubServer) -> Sessions:
    """The sign-in sessions of one server (created on first use)."""
    with _SESSIONS_LOCK:
        s = _SESSIONS.get(hub)
        if s is None:
            s = _SESSIONS[hub] = Sessions()
        return s


# ------------------------------------------------------------------ request helpers
def prefers_html(accept: str | None) -> bool:
    """Whether an ``Accept`` header asks for HTML before JSON.  ``*/*`` alone (huggingface_hub,
    curl, requests) and ``application/json`` mean JSON; a browser's ``text/html,…,*/*;q=0.8``
    means HTML."""
    html_q = 0.0
    json_q: float | None = None
    star_q = 0.0
    for part in (accept or "").split(","):
        media, *params = part.split(";")
        media = media.strip().lower()
        q = 1.0
        for p in params:
            k, _, v = p.strip().partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        if media in ("text/html", "application/xhtml+xml"):
            html_q = max(html_q, q)
        elif media == "application/json":
            json_q = max(json_q or 0.0, q)
        elif media in ("*/*", "application/*"):
            star_q = max(star_q, q)
    return html_q > 0 and html_q >= (star_q if json_q is None else json_q)


def cookies(h: BaseHandler) -> dict[str, str]:
    out: dict[str, str] = {}
    for header in h.headers.get_all("Cookie") or []:
        for part in header.split(";"):
            k, sep, v = part.strip().partition("=")
            if sep and k not in out:
                out[k] = v.strip()
    return out


def session_user(h: BaseHandler) -> UserSpec | None:
    """The user of a signed-in browser (its session cookie), else None."""
    return sessions(h.hub).user(cookies(h).get(SESSION_COOKIE))


def _is_https(h: _Handler) -> bool:
    public = h.hub.public_url or ""
    return public.startswith("https://") or (h.headers.get("X-Forwarded-Proto") or "").lower() == "https"


def _cookie(h: _Handler, name: str, value: str, max_age: int, path: str = "/") -> str:
    secure = "; Secure" if _is_https(h) else ""
    return f"{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"


def _same_origin(h: _Handler) -> bool:
    """A state-changing POST must come from our own pages: ``Sec-Fetch-Site`` (when sent) is
    same-origin, and ``Origin`` (when sent) names this host."""
    site = (h.headers.get("Sec-Fetch-Site") or "").lower()
    if site and site not in ("same-origin", "none"):
        return False
    origin = h.headers.get("Origin")
    if origin is None:
        return True
    netloc = urlsplit(origin).netloc.lower()
    own = {(h.headers.get("Host") or "").strip().lower(), urlsplit(h._base()).netloc.lower()}
    return netloc in own


def _safe_next(url: str) -> str:
    """A redirect target after sign-in: a same-origin path only (no ``//host``, no scheme)."""
    if not url.startswith("/") or url.startswith("//") or "\\" in url or any(ord(c) < 32 for c in url):
        return "/"
    return url


# ------------------------------------------------------------------ responses
class _Page:
    """One page request: the handler, the viewer, the cookies to set."""

    def __init__(self, h: _Handler) -> None:
        self.h = h
        self.hub = h.hub
        self.set_cookie: str | None = None  # at most one Set-Cookie per answer
        self.cookies = cookies(h)
        self.user: UserSpec | None = None
        self.sid: str | None = None

    def identify(self) -> None:
        """Who is asking: a bearer token (API-style clients) or a session cookie (browsers)."""
        self.user = self.h.hub.user_for(self.h.headers.get("Authorization"))
        if self.user is None and not self.hub.open_mode:
            sid = self.cookies.get(SESSION_COOKIE)
            self.user = sessions(self.hub).user(sid)
            self.sid = sid if self.user is not None else None

    def viewer(self, csrf_for: str | None = None) -> pages.Viewer:
        s = sessions(self.hub)
        bound = self.sid if self.sid else csrf_for
        return pages.Viewer(
            self.user.name if self.user is not None and not self.hub.open_mode else None,
            self.hub.open_mode,
            s.csrf(bound) if bound else "",
        )

    def send(self, status: int, page: Html, extra: Mapping[str, str] | None = None) -> None:
        headers = dict(extra or {})
        if self.set_cookie:
            headers["Set-Cookie"] = self.set_cookie
        _send_page(self.h, status, page.encode(), headers)

    def error(self, status: int, message: str) -> None:
        self.send(status, pages.error_page(status, message, self.viewer()))

    # -------------------------------------------------------------- data access
    def repo(self, repo_type: str, repo_id: str) -> RepoState:
        try:
            st = self.hub.store.repo(repo_id, repo_type)
        except (RepoNotFound, ValueError):
            if self.hub.mirror is None:
                raise RepoNotFound(_not_found(repo_type, repo_id)) from None
            try:  # a pull-through mirror: the upstream's repo (fetched on first view, like an API call)
                st = self.hub.mirror.open_repo(repo_type, repo_id)
            except (RepoNotFound, ValueError):
                raise RepoNotFound(_not_found(repo_type, repo_id)) from None
        if not self.hub.can_read(self.user, st):
            raise RepoNotFound(_not_found(repo_type, repo_id))
        return st

    def view(self, st: RepoState, rev: str) -> pages.RepoView:
        store = self.hub.store
        commit = store.get_commit(store.resolve_state(st, rev))
        branches, tags, _ = store.refs_snapshot(st)
        return pages.RepoView(st, commit, rev, branches, tags, self.h._base(), xet=bool(self.hub.xet_enabled))


def _send_page(h: _Handler, status: int, body: bytes, headers: Mapping[str, str]) -> None:
    hdrs = {"Content-Type": "text/html; charset=utf-8", **SECURITY_HEADERS, "Cache-Control": "no-store"}
    hdrs["Vary"] = "Accept, Cookie"
    hdrs.update(headers)
    h._send_bytes(status, body, hdrs)


def _not_found(repo_type: str, repo_id: str) -> str:
    return f"No {repo_type} {repo_id!r} here, or it is private and you are not signed in as a member."


# ------------------------------------------------------------------ the hook
def handle(h: _Handler) -> bool:
    """Serve the request if it is a web page; False = not ours (the API handles it)."""
    path = h.raw_path
    if path.startswith("/_web/"):
        _web_route(h, path)
        return True
    if h.command not in ("GET", "HEAD") or not prefers_html(h.headers.get("Accept")):
        return False
    segs = path.split("/")[1:]
    if len(segs) > 1 and segs[-1] == "":
        segs = segs[:-1]
    d = [unquote(s) for s in segs]
    if d and d[0] in _RESERVED:
        return False
    repo_type = "model"
    if d == [""] or (len(d) == 1 and d[0] in _PLURAL):
        _run(h, lambda p: _list(p, _PLURAL.get(d[0], "")))
        return True
    if d[0] in ("datasets", "spaces") and len(d) >= 3:
        repo_type, d = _PLURAL[d[0]], d[1:]
    if len(d) < 2 or any(not s for s in d[:2]):
        return False
    repo_id = f"{d[0]}/{d[1]}"
    rest = d[2:]
    param = _params(h)
    if not rest:
        _run(h, lambda p: _repo(p, repo_type, repo_id, param("rev") or "main"))
    elif rest[0] == "tree" and len(rest) == 1:
        _run(h, lambda p: _tree(p, repo_type, repo_id, param("rev") or "main", param("path")))
    elif rest[0] == "tree":
        _run(h, lambda p: _tree(p, repo_type, repo_id, rest[1], "/".join(rest[2:])))
    elif rest[0] == "commits" and len(rest) <= 2:
        rev = rest[1] if len(rest) == 2 else (param("rev") or "main")
        _run(h, lambda p: _commits(p, repo_type, repo_id, rev))
    else:
        return False
    return True


def _params(h: _Handler) -> Callable[[str], str]:
    def get(name: str) -> str:
        v = h.params.get(name)
        return v[-1][:500] if v else ""

    return get


def _run(h: _Handler, fn: Callable[[_Page], None]) -> None:
    from batuta_sync.server.protocol import HTTPError

    p = _Page(h)
    try:
        p.identify()
    except HTTPError as exc:  # an unknown bearer token
        p.error(exc.status, exc.message)
        return
    try:
        fn(p)
    except StoreError as exc:
        p.error(exc.status, exc.message)
    except HTTPError as exc:
        p.error(exc.status, exc.message)


# ------------------------------------------------------------------ pages
def _list(p: _Page, path_type: str) -> None:
    param = _params(p.h)
    repo_type = param("type") if param("type") in pages.TYPES else path_type
    sort = param("sort") if param("sort") in pages.SORTS else "id"
    q = pages.ListQuery(param("search").strip(), repo_type, param("author").strip(), param("tag").strip(), sort)
    store = p.hub.store
    rows: list[tuple[RepoState, Commit]] = []
    for st in store.repos():
        if (q.repo_type and st.repo_type != q.repo_type) or not p.hub.can_read(p.user, st):
            continue
        if q.author and st.namespace.lower() != q.author.lower():
            continue
        if q.search and q.search.lower() not in st.repo_id.lower():
            continue
        try:
            c = store.get_commit(st.branches["main"])
        except (KeyError, StoreError):
            continue
        if q.tag and not p.h._matches(q.tag, st, c):  # the same tag rule as /api/models?filter=
            continue
        rows.append((st, c))
    keys: dict[str, Any] = {
        "id": lambda r: (r[0].repo_id, r[0].repo_type),
        "lastModified": lambda r: (r[1].date, r[0].repo_id),
        "downloads": lambda r: (r[0].downloads, r[0].repo_id),
        "likes": lambda r: (r[0].likes, r[0].repo_id),
    }
    rows.sort(key=keys[sort], reverse=sort != "id")
    shown = rows[:MAX_LIST_ROWS]
    p.send(200, pages.list_page(shown, q, p.viewer(), truncated=len(rows) - len(shown)))


def _repo(p: _Page, repo_type: str, repo_id: str, rev: str) -> None:
    st = p.repo(repo_type, repo_id)
    v = p.view(st, rev)
    readme = v.commit.files.get("README.md")
    card_html: Html | None = None
    if readme is not None:
        with open(p.hub.store.blob_path(readme.sha256), "rb") as f:
            text = f.read(card.MAX_CARD_BYTES).decode("utf-8", errors="replace")
        base = pages.repo_href(st, "resolve", v.commit.id) + "/"
        card_html = card.render_markdown(text, base)
    meta = card.front_matter_table(dict(v.commit.info.get("cardData") or {}))
    p.send(200, pages.repo_page(v, card_html, meta, p.viewer()))


def _tree(p: _Page, repo_type: str, repo_id: str, rev: str, path: str) -> None:
    st = p.repo(repo_type, repo_id)
    v = p.view(st, rev)
    c = v.commit
    path = path.strip("/")
    if path and path not in c.dirs:
        what = "is a file, not a folder" if path in c.files else "does not exist at this revision"
        return p.error(404, f"{path!r} {what}.")
    prefix = path + "/" if path else ""
    entries = [(d, True) for d in c.dirs if d.startswith(prefix) and d != path and "/" not in d[len(prefix) :]]
    entries += [(f, False) for f in c.files if f.startswith(prefix) and "/" not in f[len(prefix) :]]
    entries.sort(key=lambda e: (not e[1], e[0]))
    p.send(200, pages.tree_page(v, path, entries, p.viewer()))


def _commits(p: _Page, repo_type: str, repo_id: str, rev: str) -> None:
    st = p.repo(repo_type, repo_id)
    v = p.view(st, rev)
    try:
        page = max(1, min(int(_params(p.h)("page") or 1), 1_000_000))
    except ValueError:
        page = 1
    start = (page - 1) * COMMITS_PER_PAGE
    got = list(islice(p.hub.store.history(v.commit.id), start, start + COMMITS_PER_PAGE + 1))
    p.send(200, pages.commits_page(v, got[:COMMITS_PER_PAGE], page, len(got) > COMMITS_PER_PAGE, p.viewer()))


# ------------------------------------------------------------------ /_web/: stylesheet, sign-in
def _web_route(h: _Handler, path: str) -> None:
    m = h.command
    if path == "/_web/style.css" and m in ("GET", "HEAD"):
        hdrs = {
            "Content-Type": "text/css; charset=utf-8",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "public, max-age=3600",
            "ETag": assets.CSS_ETAG,
        }
        if (h.headers.get("If-None-Match") or "").strip() == assets.CSS_ETAG:
            h._send_head(304, hdrs, 0)
            return
        h._send_bytes(200, assets.CSS_BYTES, hdrs)
        return
    if path == "/_web/login" and m in ("GET", "HEAD", "POST"):
        _run(h, _login if m == "POST" else _login_form)
        return
    if path == "/_web/logout" and m == "POST":
        _run(h, _logout)
        return
    _run(h, lambda p: p.error(404, "No such page."))


def _login_form(p: _Page, message: str = "", status: int = 200) -> None:
    pre = p.cookies.get(PRE_COOKIE) or ""
    if len(pre) < 32:
        pre = secrets.token_urlsafe(32)
        p.set_cookie = _cookie(p.h, PRE_COOKIE, pre, 3600, "/_web/")
    next_url = _safe_next(_params(p.h)("next") or "/")
    p.send(status, pages.login_page(p.viewer(csrf_for=pre), message, next_url))


def _form(p: _Page) -> dict[str, str]:
    raw = p.h._read_body(16 * 1024)
    form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in form.items()}


def _csrf_ok(p: _Page, form: Mapping[str, str], bound_to: str | None) -> bool:
    if not bound_to or not _same_origin(p.h):
        return False
    return hmac.compare_digest(form.get("csrf", "").encode(), sessions(p.hub).csrf(bound_to).encode())


def _login(p: _Page) -> None:
    form = _form(p)
    if p.hub.open_mode:
        return p.error(400, "This server is open (no users): there is nothing to sign in to.")
    if not _csrf_ok(p, form, p.cookies.get(PRE_COOKIE)):
        return p.error(403, "The sign-in form expired or came from another site; reload the sign-in page.")
    token = form.get("token", "").strip()
    user = p.hub.users.get(token) if token else None
    if user is None:
        p.user, p.sid = None, None
        return _login_form(p, "That token is not valid on this hub.", 401)
    old = p.cookies.get(SESSION_COOKIE)
    sessions(p.hub).drop(old)  # a fresh id at every sign-in (no session fixation)
    sid = sessions(p.hub).create(user)
    p.set_cookie = _cookie(p.h, SESSION_COOKIE, sid, int(SESSION_TTL))
    _see_other(p, _safe_next(form.get("next", "/")))


def _logout(p: _Page) -> None:
    form = _form(p)
    if not _csrf_ok(p, form, p.sid):
        return p.error(403, "The sign-out form expired or came from another site.")
    sessions(p.hub).drop(p.sid)
    p.set_cookie = _cookie(p.h, SESSION_COOKIE, "", 0)
    _see_other(p, "/")


def _see_other(p: _Page, location: str) -> None:
    page = pages.layout("Redirect", el("p", None, el("a", {"href": location}, "Continue")), p.viewer())
    p.send(303, page, {"Location": location})
