"""The pages, as pure functions: server objects in, :class:`Html` out (no I/O, no request state).

Every user-controlled string (repo ids, file names, commit messages, tags, card text and front
matter) reaches the page through :mod:`batuta_sync.server.web.html`, which escapes it.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from batuta_sync._fmt import human_bytes
from batuta_sync.server.store import Commit, RepoState
from batuta_sync.server.web.html import Html, el, join, path_url, repo_path_url

PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
TYPES = ("model", "dataset", "space")
STYLESHEET = "/_web/style.css"


@dataclass(frozen=True)
class Viewer:
    """Who looks at a page: a user name (None = anonymous), whether the server is open (no users),
    and the CSRF token the logout / login forms carry."""

    name: str | None
    open_mode: bool
    csrf: str


def repo_href(st: RepoState, *rest: str) -> str:
    """``/{prefix}{ns}/{name}[/rest…]`` with each part percent-encoded."""
    kind = PREFIX[st.repo_type].rstrip("/")
    return path_url(kind, *st.repo_id.split("/"), *rest)


def resolve_href(st: RepoState, commit: str, path: str) -> str:
    return repo_href(st, "resolve", commit) + "/" + repo_path_url(path)


def tree_href(st: RepoState, rev: str, path: str = "") -> str:
    base = repo_href(st, "tree", rev)
    return base + ("/" + repo_path_url(path) if path else "")


# ------------------------------------------------------------------ layout
def layout(title: str, body: Html, viewer: Viewer, *, search: str = "") -> Html:
    if viewer.open_mode:
        who: Html = el("span", {"class": "who"}, "open server")
    elif viewer.name and not viewer.csrf:  # a bearer token (no session): nothing to sign out of
        who = el("span", {"class": "who"}, "signed in as ", el("strong", None, viewer.name))
    elif viewer.name:
        who = el(
            "form",
            {"method": "post", "action": "/_web/logout", "class": "who"},
            el("span", None, "signed in as ", el("strong", None, viewer.name), " "),
            el("input", {"type": "hidden", "name": "csrf", "value": viewer.csrf}),
            el("button", {"type": "submit"}, "Sign out"),
        )
    else:
        who = el("a", {"class": "who", "href": "/_web/login"}, "Sign in")
    header = el(
        "header",
        None,
        el("a", {"class": "brand", "href": "/"}, "batuta hub"),
        el(
            "form",
            {"method": "get", "action": "/", "class": "search", "role": "search"},
            el("input", {"type": "search", "name": "search", "value": search, "placeholder": "Search repos",
                         "aria-label": "Search repos"}),
            el("button", {"type": "submit"}, "Search"),
        ),
        who,
    )
    doc = join(
        Html("<!DOCTYPE html>\n"),
        el(
            "html",
            {"lang": "en"},
            el(
                "head",
                None,
                el("meta", {"charset": "utf-8"}),
                el("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}),
                el("meta", {"name": "referrer", "content": "same-origin"}),
                el("title", None, f"{title} · batuta hub"),
                el("link", {"rel": "stylesheet", "href": STYLESHEET}),
            ),
            el("body", None, header, el("main", None, body)),
        ),
    )
    return Html(doc + "\n")


def _chips(tags: Sequence[str], link: bool = True) -> Html:
    return join(
        *(
            el("a", {"class": "chip", "href": "/?" + _q(tag=t)}, t) if link else el("span", {"class": "chip"}, t)
            for t in tags
        )
    )


def _q(**params: str) -> str:
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in params.items() if v})


# ------------------------------------------------------------------ repo list
@dataclass(frozen=True)
class ListQuery:
    search: str = ""
    repo_type: str = ""  # "" = all types
    author: str = ""
    tag: str = ""
    sort: str = "id"


SORTS = {"id": "name", "lastModified": "last commit", "downloads": "downloads", "likes": "likes"}


def list_page(
    rows: Sequence[tuple[RepoState, Commit]], q: ListQuery, viewer: Viewer, *, truncated: int = 0
) -> Html:
    def opt(value: str, label: str, current: str) -> Html:
        return el("option", {"value": value, "selected": value == current}, label)

    filters = el(
        "form",
        {"method": "get", "action": "/", "class": "filters"},
        el("label", None, "Search ", el("input", {"type": "search", "name": "search", "value": q.search})),
        el(
            "label",
            None,
            "Type ",
            el("select", {"name": "type"}, opt("", "all", q.repo_type), *(opt(t, t + "s", q.repo_type) for t in TYPES)),
        ),
        el("label", None, "Author ", el("input", {"type": "text", "name": "author", "value": q.author})),
        el("label", None, "Tag ", el("input", {"type": "text", "name": "tag", "value": q.tag})),
        el("label", None, "Sort ", el("select", {"name": "sort"}, *(opt(k, v, q.sort) for k, v in SORTS.items()))),
        el("button", {"type": "submit"}, "Filter"),
    )
    trs = []
    for st, c in rows:
        tags = list(c.info.get("tags") or [])
        trs.append(
            el(
                "tr",
                None,
                el("td", None, el("span", {"class": f"type {st.repo_type}"}, st.repo_type)),
                el(
                    "td",
                    None,
                    el("a", {"class": "repo", "href": repo_href(st)}, st.repo_id),
                    el("span", {"class": "badge"}, "private") if st.private else None,
                    el("div", {"class": "tags"}, _chips(tags[:8])) if tags else None,
                ),
                el("td", None, el("time", {"datetime": c.date}, c.date[:10])),
                el("td", {"class": "num"}, human_bytes(sum(e.size for e in c.files.values()))),
                el("td", {"class": "num"}, "" if st.repo_type == "space" else str(st.downloads)),
                el("td", {"class": "num"}, str(st.likes)),
            )
        )
    head = el(
        "thead",
        None,
        el("tr", None, *(el("th", {"scope": "col"}, h) for h in ("type", "repo", "last commit", "size", "downloads", "likes"))),
    )
    n = len(rows)
    summary = el("p", {"class": "count"}, f"{n} repo{'s' if n != 1 else ''}" + (f" shown, {truncated} more (narrow the search)" if truncated else ""))
    table = el("table", {"class": "repos"}, head, el("tbody", None, trs)) if rows else el("p", {"class": "empty"}, "No repos match.")
    return layout("Repos", join(el("h1", None, "Repositories"), filters, summary, table), viewer, search=q.search)


# ------------------------------------------------------------------ repo pages
@dataclass(frozen=True)
class RepoView:
    """One repo at one revision, as the repo, tree and commits pages show it."""

    st: RepoState
    commit: Commit
    rev: str  # as asked (branch, tag or sha)
    branches: Mapping[str, str]
    tags: Mapping[str, str]
    base_url: str  # for the "use it" snippets
    xet: bool = True  # the server speaks Xet: clients need no HF_HUB_DISABLE_XET


def _rev_selector(v: RepoView, action: str, *, path: str | None = None) -> Html:
    """A GET form choosing the revision (no JavaScript: submit reloads ``action?rev=…[&path=…]``)."""
    opts = [el("option", {"value": b, "selected": b == v.rev}, f"branch: {b}") for b in sorted(v.branches)]
    opts += [el("option", {"value": t, "selected": t == v.rev}, f"tag: {t}") for t in sorted(v.tags)]
    if v.rev not in v.branches and v.rev not in v.tags:
        opts.append(el("option", {"value": v.rev, "selected": True}, f"commit: {v.rev[:12]}"))
    return el(
        "form",
        {"method": "get", "action": action, "class": "rev"},
        el("label", None, "Revision ", el("select", {"name": "rev"}, opts)),
        el("input", {"type": "hidden", "name": "path", "value": path}) if path else None,
        el("button", {"type": "submit"}, "Show"),
    )


def _repo_header(v: RepoView, active: str) -> Html:
    st = v.st
    tags = list(v.commit.info.get("tags") or [])
    tabs = [
        ("card", "Card", repo_href(st) + ("?" + _q(rev=v.rev) if v.rev != "main" else "")),
        ("files", "Files", tree_href(st, v.rev)),
        ("history", "History", repo_href(st, "commits", v.rev)),
    ]
    nav = el(
        "nav",
        {"class": "tabs", "aria-label": "Repo"},
        *(el("a", {"href": href, "aria-current": "page" if key == active else None}, label) for key, label, href in tabs),
    )
    return join(
        el(
            "h1",
            None,
            el("span", {"class": f"type {st.repo_type}"}, st.repo_type),
            " ",
            el("a", {"href": repo_href(st)}, st.repo_id),
            el("span", {"class": "badge"}, "private") if st.private else None,
            el("span", {"class": "badge"}, "gated") if st.gated else None,
        ),
        el("div", {"class": "tags"}, _chips(tags)) if tags else None,
        el(
            "p",
            {"class": "commitline"},
            "commit ",
            el("code", None, v.commit.id[:12]),
            " · ",
            v.commit.title,
            " · ",
            el("time", {"datetime": v.commit.date}, v.commit.date[:19].replace("T", " ")),
        ),
        nav,
    )


def snippets(v: RepoView) -> Html:
    """The "use it" commands for this repo and revision (shell-quoted, then escaped)."""
    st, repo, q = v.st, v.st.repo_id, shlex.quote
    rev_flag = f" --revision {q(v.rev)}" if v.rev != "main" else ""
    point = f"export HF_ENDPOINT={q(v.base_url)}" + ("" if v.xet else "\nexport HF_HUB_DISABLE_XET=1")
    lines = [("Point clients at this hub", point)]
    type_flag = "" if st.repo_type == "model" else f" --repo-type {st.repo_type}"
    lines.append(("hf (huggingface_hub)", f"hf download {q(repo)}{type_flag}{rev_flag}"))
    if st.repo_type in ("model", "dataset"):
        lines.append(("batuta", f"batuta hf pull {st.repo_type} {q(repo)}{rev_flag}"))
    ggufs = sorted(p for p in v.commit.files if p.lower().endswith(".gguf"))
    if st.repo_type == "model" and ggufs:
        quant = _quant_of(ggufs[0])
        target = f"{repo}:{quant}" if quant else repo
        lines.append(("llama.cpp", f"MODEL_ENDPOINT={q(v.base_url)} llama-cli -hf {q(target)}"))
    items = [el("div", {"class": "snippet"}, el("h3", None, label), el("pre", None, el("code", None, cmd))) for label, cmd in lines]
    return el("section", {"class": "use"}, el("h2", None, "Use it"), items)


def _quant_of(filename: str) -> str:
    """``model-Q4_K_M.gguf`` → ``Q4_K_M`` (the tag llama.cpp's ``-hf repo:quant`` selects by)."""
    import re

    m = re.search(r"(?i)[-_.]((?:I?Q[0-9]+(?:_[0-9A-Z]+)*)|F16|BF16|F32)\.gguf\Z", filename)
    return m.group(1).upper() if m else ""


def _n(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def repo_page(v: RepoView, card_html: Html | None, card_meta: Html, viewer: Viewer) -> Html:
    c = v.commit
    total = sum(e.size for e in c.files.values())
    facts = el(
        "ul",
        {"class": "facts"},
        el("li", None, f"{_n(len(c.files), 'file', 'files')}, {human_bytes(total)}"),
        el("li", None, f"{_n(len(v.branches), 'branch', 'branches')}, {_n(len(v.tags), 'tag', 'tags')}"),
        el("li", None, f"{v.st.downloads} downloads, {v.st.likes} likes") if v.st.repo_type != "space" else None,
    )
    card = (
        el("article", {"class": "card"}, card_html)
        if card_html is not None
        else el("p", {"class": "empty"}, "This repo has no README.md (model card).")
    )
    side = el("aside", None, _rev_selector(v, repo_href(v.st)), facts, snippets(v), card_meta)
    body = join(_repo_header(v, "card"), el("div", {"class": "cols"}, card, side))
    return layout(v.st.repo_id, body, viewer)


def tree_page(v: RepoView, path: str, entries: Sequence[tuple[str, bool]], viewer: Viewer) -> Html:
    """``entries``: (full path, is_dir) directly inside ``path``."""
    st, c = v.st, v.commit
    crumbs: list[Html] = [el("a", {"href": tree_href(st, v.rev)}, st.repo_id.split("/")[1])]
    acc = ""
    for part in [p for p in path.split("/") if p]:
        acc = f"{acc}/{part}" if acc else part
        crumbs += [Html(" / "), el("a", {"href": tree_href(st, v.rev, acc)}, part)]
    rows = []
    if path:
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        rows.append(el("tr", None, el("td", {"colspan": "4"}, el("a", {"href": tree_href(st, v.rev, parent)}, "../"))))
    for full, is_dir in entries:
        name = full.rsplit("/", 1)[-1]
        if is_dir:
            rows.append(
                el(
                    "tr",
                    {"class": "dir"},
                    el("td", None, el("a", {"href": tree_href(st, v.rev, full)}, name + "/")),
                    el("td", None),
                    el("td", None),
                    el("td", None),
                )
            )
            continue
        e = c.files[full]
        rows.append(
            el(
                "tr",
                None,
                el("td", None, name),
                el("td", {"class": "num", "title": f"{e.size} bytes"}, human_bytes(e.size)),
                el("td", None, el("code", {"class": "sha", "title": "LFS sha256"}, e.sha256) if e.lfs else el("span", {"class": "muted"}, "git")),
                el("td", None, el("a", {"href": resolve_href(st, c.id, full), "download": name}, "download")),
            )
        )
    head = el("thead", None, el("tr", None, *(el("th", {"scope": "col"}, h) for h in ("name", "size", "LFS sha256", ""))))
    body = join(
        _repo_header(v, "files"),
        _rev_selector(v, repo_href(st, "tree"), path=path),
        el("p", {"class": "crumbs"}, crumbs),
        el("table", {"class": "files"}, head, el("tbody", None, rows)),
    )
    return layout(f"{st.repo_id} files", body, viewer)


def commits_page(v: RepoView, commits: Sequence[Commit], page: int, more: bool, viewer: Viewer) -> Html:
    st = v.st
    items = [
        el(
            "li",
            None,
            el("div", {"class": "title"}, c.title),
            el(
                "div",
                {"class": "muted"},
                el("a", {"href": tree_href(st, c.id)}, el("code", None, c.id[:12])),
                " · ",
                c.author,
                " · ",
                el("time", {"datetime": c.date}, c.date[:19].replace("T", " ")),
            ),
            el("pre", {"class": "message"}, c.message.strip()) if c.message.strip() and c.message.strip() != c.title else None,
        )
        for c in commits
    ]
    pager = []
    href = repo_href(st, "commits", v.rev)
    if page > 1:
        pager.append(el("a", {"href": f"{href}?page={page - 1}", "rel": "prev"}, "newer"))
    if more:
        pager.append(el("a", {"href": f"{href}?page={page + 1}", "rel": "next"}, "older"))
    body = join(
        _repo_header(v, "history"),
        _rev_selector(v, repo_href(st, "commits")),
        el("ol", {"class": "commits"}, items),
        el("nav", {"class": "pager"}, pager) if pager else None,
    )
    return layout(f"{st.repo_id} history", body, viewer)


# ------------------------------------------------------------------ login & errors
def login_page(viewer: Viewer, message: str = "", next_url: str = "/") -> Html:
    if viewer.open_mode:
        body = join(el("h1", None, "Sign in"), el("p", None, "This server is open (no users): every repo is visible."))
        return layout("Sign in", body, viewer)
    form = el(
        "form",
        {"method": "post", "action": "/_web/login", "class": "login"},
        el("input", {"type": "hidden", "name": "csrf", "value": viewer.csrf}),
        el("input", {"type": "hidden", "name": "next", "value": next_url}),
        el("label", None, "Access token ", el("input", {"type": "password", "name": "token", "autocomplete": "off", "required": True})),
        el("button", {"type": "submit"}, "Sign in"),
    )
    body = join(
        el("h1", None, "Sign in"),
        el("p", {"class": "error", "role": "alert"}, message) if message else None,
        el("p", None, "Sign in with your hub token to see the private repos you can read."),
        form,
    )
    return layout("Sign in", body, viewer)


def error_page(status: int, message: str, viewer: Viewer) -> Html:
    body = join(el("h1", None, f"{status}"), el("p", {"class": "error"}, message), el("p", None, el("a", {"href": "/"}, "All repos")))
    return layout(f"Error {status}", body, viewer)
