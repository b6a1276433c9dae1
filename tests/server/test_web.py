"""The read-only web pages of the local Hub: structure (stdlib html.parser), escaping (a hostile
card, hostile file names, tags and commit messages), the security headers, private repos and the
sign-in flow — and that API clients (the real huggingface_hub) still get JSON."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx2 as httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download

from batuta_sync.server import HubServer, UserSpec
from batuta_sync.server.web import CSP, Sessions, prefers_html
from batuta_sync.server.web.html import el, esc, join, safe_href

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
ALICE, BOB = "tok-alice-web-123456", "tok-bob-web-1234567"
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

HOSTILE_CARD = """---
license: "<script>alert('fm')</script>"
tags: ["<img src=x onerror=alert(1)>", "ok-tag"]
evil_key<b>: {"nested": "</td><script>alert(2)</script>"}
---
# Card <script>alert('h1')</script>

<script>alert('raw')</script>
<img src="x" onerror="alert('img')">
<a href="javascript:alert('a')">raw link</a>
<div onclick="alert('div')">click</div>

[js link](javascript:alert('md'))
[js upper](JAVASCRIPT:alert('md2'))
[vb](vbscript:msgbox)
[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)
[entity](jav&#x61;script:alert('ent'))
[ok](https://example.org/docs)
![pic](images/pic.png)
![remote](https://evil.example/track.png)
<style>body{display:none}</style>
<iframe src="https://evil.example"></iframe>
"""
HOSTILE_FILE = '"><svg onload=alert(9)><img src=x onerror=alert(8)>.txt'
HOSTILE_MSG = "</pre><script>alert('commit')</script>"


@dataclass
class Doc:
    """What the stdlib parser saw: elements (tag, attrs), text, and structural problems."""

    elements: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def all(self, tag: str) -> list[dict[str, str]]:
        return [a for t, a in self.elements if t == tag]

    @property
    def body_text(self) -> str:
        return " ".join(self.text)


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.doc = Doc()
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.doc.elements.append((tag, {k: v or "" for k, v in attrs}))
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.doc.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.doc.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.doc.text.append(data.strip())


def parse(html: str) -> Doc:
    p = _Parser()
    p.feed(html)
    p.close()
    if p.stack:
        p.doc.problems.append(f"unclosed {p.stack}")
    return p.doc


def assert_safe_page(r: httpx.Response) -> Doc:
    """The checks every HTML answer must pass."""
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.headers["Content-Security-Policy"] == CSP
    assert "default-src 'none'" in CSP and "frame-ancestors 'none'" in CSP and "script-src" not in CSP
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.text.startswith("<!DOCTYPE html>")
    doc = parse(r.text)
    assert doc.problems == []
    tags = {t for t, _ in doc.elements}
    assert not tags & {"script", "iframe", "object", "embed", "style", "base", "frame"}, tags
    for tag, attrs in doc.elements:
        for k, v in attrs.items():
            assert not k.startswith("on"), (tag, k, v)
            assert k != "style", (tag, k)
            if k in ("href", "src", "action", "formaction"):
                assert safe_href(v) == v and not v.lower().startswith("data:"), (tag, k, v)
        if tag in ("img", "link"):
            url = attrs.get("src") or attrs.get("href") or ""
            assert not urlsplit(url).netloc, f"external asset {url}"  # air-gapped: same origin only
    assert doc.all("link") == [{"rel": "stylesheet", "href": "/_web/style.css"}]
    assert len(doc.all("title")) == 1 and doc.all("main")
    return doc


def get(srv: HubServer, path: str, **kw: object) -> httpx.Response:
    headers = {**BROWSER, **kw.pop("headers", {})}  # type: ignore[dict-item]
    return httpx.get(srv.url + path, headers=headers, **kw)  # type: ignore[arg-type]


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[HubServer]:
    s = HubServer(
        tmp_path / "root",
        users=[UserSpec("alice", ALICE, "write"), UserSpec("bob", BOB, "read")],
        orgs={"acme": ["alice"]},
    ).start()
    st = s.store
    st.commit("alice/tiny", {"README.md": b"---\nlicense: mit\ntags: [demo]\n---\n# Tiny model\nHello **world**."},
              message="first")
    st.commit(
        "alice/tiny",
        {"model-Q4_K_M.gguf": b"GGUF" + b"\0" * 60, "config.json": b"{}", "sub/deep/x.txt": b"x" * 1500},
        message="add weights\n\nlonger body line",
    )
    st.create_branch("alice/tiny", "dev")
    st.commit("alice/tiny", {"dev.txt": b"d"}, branch="dev", message="dev only")
    st.create_tag("alice/tiny", "v1", rev="dev")
    st.commit("bob/data", {"README.md": b"---\ntask_categories: [text-generation]\n---\n# Data"},
              repo_type="dataset", author="bob")
    st.commit("acme/secret", {"README.md": b"# Secret card", "w.safetensors": b"S" * 100}, message="top secret")
    st.update_settings("acme/secret", "model", private=True)
    try:
        yield s
    finally:
        s.stop()


# ------------------------------------------------------------------ content negotiation
@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (None, False),
        ("*/*", False),
        ("application/json", False),
        ("application/json, text/html", True),  # equal q: a browser-like list still gets HTML
        ("text/html;q=0.5, application/json", False),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),
        ("text/html;q=0", False),
        ("text/html;q=bogus", False),
        ("application/*", False),
        ("application/xhtml+xml", True),
    ],
)
def test_prefers_html(accept: str | None, html: bool) -> None:
    assert prefers_html(accept) is html


def test_api_clients_still_get_json(srv: HubServer, tmp_path: Path) -> None:
    """huggingface_hub (Accept: */*) sees the JSON API on every path the pages also serve."""
    r = httpx.get(srv.url + "/")
    assert r.json() == {"name": "batuta local hub", "api": "/api"}
    r = httpx.get(srv.url + "/alice/tiny", headers={"Accept": "application/json"})
    assert r.status_code == 404 and r.headers["Content-Type"].startswith("application/json")
    api = HfApi(endpoint=srv.url, token=False)
    assert api.model_info("alice/tiny").sha == srv.store.resolve("alice/tiny")
    assert "alice/tiny" in [m.id for m in api.list_models()]
    assert [c.title for c in api.list_repo_commits("alice/tiny")][:2] == ["add weights", "first"]
    p = hf_hub_download("alice/tiny", "model-Q4_K_M.gguf", endpoint=srv.url, token=False, cache_dir=tmp_path / "c")
    assert Path(p).read_bytes().startswith(b"GGUF")
    # A browser asking for the API or a download gets the API, not a page.
    r = get(srv, "/api/models/alice/tiny")
    assert r.json()["id"] == "alice/tiny"
    r = get(srv, "/alice/tiny/resolve/main/config.json")
    assert r.content == b"{}"


# ------------------------------------------------------------------ structure of every page
PAGES = [
    "/",
    "/?type=dataset",
    "/models",
    "/datasets",
    "/alice/tiny",
    "/alice/tiny?rev=dev",
    "/alice/tiny/tree/main",
    "/alice/tiny/tree/main/sub",
    "/alice/tiny/tree/v1/sub/deep",
    "/alice/tiny/tree?rev=dev&path=",
    "/alice/tiny/commits/main",
    "/alice/tiny/commits?rev=dev",
    "/datasets/bob/data",
    "/datasets/bob/data/tree/main",
    "/_web/login",
]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_is_well_formed_and_safe(srv: HubServer, path: str) -> None:
    r = get(srv, path)
    assert r.status_code == 200, r.text
    doc = assert_safe_page(r)
    assert r.headers["Cache-Control"] == "no-store" and "Accept" in r.headers["Vary"]
    assert doc.all("h1")
    if path.startswith(("/alice", "/datasets/bob")):
        assert [a["href"] for a in doc.all("a") if a.get("aria-current") == "page"]  # one active tab


def test_head_answers_like_get_without_body(srv: HubServer) -> None:
    r = httpx.head(srv.url + "/alice/tiny", headers=BROWSER)
    assert r.status_code == 200 and r.content == b""
    assert int(r.headers["Content-Length"]) == len(get(srv, "/alice/tiny").content)
    assert r.headers["Content-Security-Policy"] == CSP


def test_error_pages_are_html_with_the_same_headers(srv: HubServer) -> None:
    for path, status in [
        ("/alice/nope", 404),
        ("/alice/tiny/tree/nobranch", 404),
        ("/alice/tiny/tree/main/config.json", 404),
        ("/alice/tiny/tree/main/missing", 404),
        ("/_web/nothing", 404),
    ]:
        r = get(srv, path)
        assert r.status_code == status, path
        doc = assert_safe_page(r)
        assert doc.all("p")
    r = get(srv, "/", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and "not-a-token" not in r.text
    assert_safe_page(r)


def test_stylesheet_is_same_origin_and_cacheable(srv: HubServer) -> None:
    r = httpx.get(srv.url + "/_web/style.css")
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/css; charset=utf-8"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "url(" not in r.text and "@import" not in r.text  # nothing fetched from elsewhere
    r2 = httpx.get(srv.url + "/_web/style.css", headers={"If-None-Match": r.headers["ETag"]})
    assert r2.status_code == 304 and r2.content == b""


# ------------------------------------------------------------------ contents
def test_repo_page_card_front_matter_selector_and_snippets(srv: HubServer) -> None:
    r = get(srv, "/alice/tiny")
    doc = assert_safe_page(r)
    card_h1 = [t for t in doc.text if t == "Tiny model"]
    assert card_h1 and "<strong>world</strong>" in r.text
    assert "---" not in doc.body_text  # front matter is a table, not card text
    table = re.search(r'<table class="meta">.*?</table>', r.text, re.S)
    assert table and "<th scope=\"row\">license</th><td>mit</td>" in table.group(0)
    options = [a["value"] for t, a in doc.elements if t == "option" and "value" in a and a["value"] in ("main", "dev", "v1")]
    assert options == ["dev", "main", "v1"]
    code = [t for t in doc.text if "HF_ENDPOINT" in t or t.startswith(("hf ", "batuta ", "MODEL_ENDPOINT"))]
    assert f"export HF_ENDPOINT={srv.url}" in code  # the server speaks Xet: no HF_HUB_DISABLE_XET line
    assert not any("HF_HUB_DISABLE_XET" in t for t in code)
    assert "hf download alice/tiny" in code and "batuta hf pull model alice/tiny" in code
    assert f"MODEL_ENDPOINT={srv.url} llama-cli -hf alice/tiny:Q4_K_M" in code
    dev = get(srv, "/alice/tiny?rev=dev")
    assert "hf download alice/tiny --revision dev" in parse(dev.text).text
    assert 'value="dev" selected' in dev.text
    ds = parse(get(srv, "/datasets/bob/data").text).text
    assert "hf download bob/data --repo-type dataset" in ds and "batuta hf pull dataset bob/data" in ds
    assert not any("llama-cli" in t for t in ds)


def test_file_tree_sizes_lfs_and_download_links(srv: HubServer) -> None:
    sha = srv.store.resolve("alice/tiny")
    c = srv.store.get_commit(sha)
    r = get(srv, "/alice/tiny/tree/main")
    doc = assert_safe_page(r)
    links = {a["href"] for a in doc.all("a")}
    assert "/alice/tiny/tree/main/sub" in links
    gguf = c.files["model-Q4_K_M.gguf"]
    assert gguf.lfs and gguf.sha256 in doc.text
    assert f"/alice/tiny/resolve/{sha}/model-Q4_K_M.gguf" in links
    assert "64 B" in doc.text
    with httpx.Client(follow_redirects=True) as client:  # the link downloads the file
        assert client.get(srv.url + f"/alice/tiny/resolve/{sha}/config.json").content == b"{}"
    deep = parse(get(srv, "/alice/tiny/tree/main/sub/deep").text)
    assert "1.5 kB" in deep.text and "../" in deep.text
    assert f"/alice/tiny/resolve/{sha}/sub/deep/x.txt" in {a["href"] for a in deep.all("a")}
    v1 = parse(get(srv, "/alice/tiny/tree/v1").text)
    assert "dev.txt" in v1.text  # the tag was made on dev
    assert "dev.txt" not in parse(r.text).text


def test_commit_history_and_paging(srv: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = parse(get(srv, "/alice/tiny/commits/main").text)
    assert doc.text.index("add weights") < doc.text.index("first")
    assert "longer body line" in doc.body_text
    assert "dev only" in parse(get(srv, "/alice/tiny/commits/dev").text).text
    import batuta_sync.server.web as web

    monkeypatch.setattr(web, "COMMITS_PER_PAGE", 1)
    p1 = parse(get(srv, "/alice/tiny/commits/main").text)
    assert "add weights" in p1.text and "first" not in p1.text
    assert [a["href"] for a in p1.all("a") if a.get("rel") == "next"] == ["/alice/tiny/commits/main?page=2"]
    p2 = parse(get(srv, "/alice/tiny/commits/main?page=2").text)
    assert "first" in p2.text and [a for a in p2.all("a") if a.get("rel") == "prev"]
    p3 = parse(get(srv, "/alice/tiny/commits/main?page=3").text)  # the repo's initial commit
    assert "initial commit" in p3.text and not [a for a in p3.all("a") if a.get("rel") == "next"]
    assert get(srv, "/alice/tiny/commits/main?page=x").status_code == 200


def test_list_search_and_filters(srv: HubServer) -> None:
    def repos(query: str) -> list[str]:
        doc = assert_safe_page(get(srv, "/" + query))
        return [t for t in doc.text if "/" in t and not t.startswith(("Search", "http"))]

    assert repos("") == ["alice/tiny", "bob/data"]
    assert repos("?type=dataset") == ["bob/data"]
    assert repos("?type=model") == ["alice/tiny"]
    assert repos("?search=TIN") == ["alice/tiny"]
    assert repos("?author=bob") == ["bob/data"]
    assert repos("?tag=demo") == ["alice/tiny"]
    assert repos("?tag=task_categories:text-generation") == ["bob/data"]
    assert repos("?tag=nothing") == []
    assert "No repos match." in parse(get(srv, "/?search=zzz").text).text
    srv.store.set_downloads("bob/data", 99, repo_type="dataset")
    assert repos("?sort=downloads")[0] == "bob/data"
    assert repos("?sort=bogus&type=bogus") == repos("")  # unknown values fall back


# ------------------------------------------------------------------ escaping
def test_hostile_card_file_names_tags_and_messages_are_inert(srv: HubServer) -> None:
    srv.store.commit(
        "alice/evil",
        {"README.md": HOSTILE_CARD.encode(), HOSTILE_FILE: b"x", "<i onmouseover=x>dir/a.txt": b"a"},
        message=HOSTILE_MSG,
    )
    pages = ["/", "/alice/evil", "/alice/evil/tree/main", "/alice/evil/commits/main",
             "/alice/evil/tree/main/" + "%3Ci%20onmouseover%3Dx%3Edir",
             "/?search=%3Cscript%3Ealert(1)%3C/script%3E&author=%22%3E%3Cimg%20onerror%3Dx%3E"]
    for path in pages:
        r = get(srv, path)
        assert r.status_code == 200, (path, r.text[:300])
        doc = assert_safe_page(r)
        assert "<script" not in r.text.lower() and "<img src=x" not in r.text.lower()
        assert "javascript:" not in " ".join(v.lower() for _, a in doc.elements for v in a.values())
    card = get(srv, "/alice/evil")
    doc = parse(card.text)
    text = doc.body_text
    # Raw HTML in the markdown is shown as text, not markup.
    assert "<script>alert('raw')</script>" in text and "<div onclick=\"alert('div')\">click</div>" in text
    assert "<script>alert('fm')</script>" in text  # front matter value, escaped
    assert [a["href"] for a in doc.all("a") if "example.org" in a.get("href", "")] == ["https://example.org/docs"]
    assert "[js link](javascript:alert('md'))" in text  # refused link stays literal text
    sha = srv.store.resolve("alice/evil")
    assert [a["src"] for a in doc.all("img")] == [f"/alice/evil/resolve/{sha}/images/pic.png"]
    assert "https://evil.example/track.png" in [a["href"] for a in doc.all("a")]  # a link, not an image
    assert "image: remote" in text
    files = parse(get(srv, "/alice/evil/tree/main").text)
    assert HOSTILE_FILE in files.text and "<i onmouseover=x>dir/" in files.text
    hrefs = [a["href"] for a in files.all("a") if "resolve" in a["href"]]
    assert any("%3Csvg%20onload" in h for h in hrefs)
    assert HOSTILE_MSG in parse(get(srv, "/alice/evil/commits/main").text).text


def test_images_on_other_origins_become_links(srv: HubServer) -> None:
    """A card's external image (a tracking pixel, or just unreachable when air-gapped) is shown as
    a link; the CSP (img-src 'self') would block it anyway."""
    srv.store.commit("alice/img", {"README.md": b"![x](https://evil.example/t.png) ![y](//evil.example/u.png) ![z](./rel.png)"})
    r = get(srv, "/alice/img")
    assert "img-src 'self'" in r.headers["Content-Security-Policy"]
    doc = assert_safe_page(r)
    sha = srv.store.resolve("alice/img")
    assert [a["src"] for a in doc.all("img")] == [f"/alice/img/resolve/{sha}/rel.png"]
    assert "image: x" in doc.text and "image: y" in doc.text


def test_relative_card_links_point_at_the_repo_files(srv: HubServer) -> None:
    srv.store.commit("alice/links", {"README.md": b"[cfg](config.json) [sub](./docs/a.md) [top](#usage) [abs](/bob)"})
    sha = srv.store.resolve("alice/links")
    hrefs = [a["href"] for a in assert_safe_page(get(srv, "/alice/links")).all("a")]
    assert f"/alice/links/resolve/{sha}/config.json" in hrefs and f"/alice/links/resolve/{sha}/docs/a.md" in hrefs
    assert "#usage" in hrefs and "/bob" in hrefs


def test_html_builder_escapes_everything_but_html_values() -> None:
    assert esc('<a href="x">\'') == "&lt;a href=&quot;x&quot;&gt;&#x27;"
    assert el("a", {"href": '"><script>', "download": True, "title": None}, "<b>") == (
        '<a href="&quot;&gt;&lt;script&gt;" download>&lt;b&gt;</a>'
    )
    assert join("<", el("br"), None, ["&", 1]) == "&lt;<br>&amp;1"
    for bad in ("javascript:x", " JavaScript:x", "java\tscript:x", "jav\x00ascript:x", "data:text/html,x", "vbscript:x"):
        assert safe_href(bad) is None, bad
    for ok in ("https://a.b/c", "http://x", "mailto:a@b", "/a/b", "rel/path:x", "#top", "?q=1", "a?b:c"):
        assert safe_href(ok) == ok, ok


# ------------------------------------------------------------------ private repos and sign-in
def test_private_repos_are_invisible_without_a_token(srv: HubServer) -> None:
    anon = assert_safe_page(get(srv, "/"))
    assert "acme/secret" not in anon.body_text
    missing = get(srv, "/acme/missing")
    for path in ["/acme/secret", "/acme/secret/tree/main", "/acme/secret/commits/main"]:
        r = get(srv, path)
        assert r.status_code == 404 and "Secret card" not in r.text and "top secret" not in r.text
        assert r.text.replace("acme/secret", "X") == missing.text.replace("acme/missing", "X")  # same answer
    bob = {"Authorization": f"Bearer {BOB}"}  # not a member of acme
    assert get(srv, "/acme/secret", headers=bob).status_code == 404
    assert "acme/secret" not in parse(get(srv, "/", headers=bob).text).body_text
    alice = {"Authorization": f"Bearer {ALICE}"}
    r = get(srv, "/acme/secret", headers=alice)
    assert r.status_code == 200 and "Secret card" in r.text
    assert "alice" in parse(r.text).body_text and "Sign out" not in r.text  # no session to end
    assert "acme/secret" in parse(get(srv, "/", headers=alice).text).body_text


def _login_form(client: httpx.Client, srv: HubServer, next_url: str = "/") -> str:
    r = client.get(srv.url + "/_web/login", params={"next": next_url}, headers=BROWSER)
    assert r.status_code == 200
    assert "HttpOnly" in r.headers["Set-Cookie"] and "SameSite=Strict" in r.headers["Set-Cookie"]
    doc = assert_safe_page(r)
    forms = doc.all("form")
    assert {"method": "post", "action": "/_web/login", "class": "login"} in forms
    token_input = [a for a in doc.all("input") if a.get("name") == "token"]
    assert token_input and token_input[0]["type"] == "password"
    return next(a["value"] for a in doc.all("input") if a.get("name") == "csrf")


def test_login_flow_cookie_and_logout(srv: HubServer) -> None:
    with httpx.Client(headers=BROWSER) as client:
        csrf = _login_form(client, srv, next_url="/acme/secret")
        origin = {"Origin": srv.url}
        # A wrong token: 401, the form again, nothing about the token echoed.
        r = client.post(srv.url + "/_web/login", data={"csrf": csrf, "token": "nope-nope"}, headers=origin)
        assert r.status_code == 401 and "nope-nope" not in r.text and "Set-Cookie" not in r.headers
        r = client.post(srv.url + "/_web/login", data={"csrf": csrf, "token": ALICE, "next": "/acme/secret"},
                        headers=origin)
        assert r.status_code == 303 and r.headers["Location"] == "/acme/secret"
        cookie = r.headers["Set-Cookie"]
        assert cookie.startswith("batuta_session=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "Secure" not in cookie  # plain http here; see the https test
        assert ALICE not in cookie and ALICE not in r.text
        page = client.get(srv.url + "/acme/secret")
        assert page.status_code == 200 and "Secret card" in page.text
        doc = parse(page.text)
        assert "alice" in doc.body_text and "Sign out" in doc.body_text
        assert "acme/secret" in parse(client.get(srv.url + "/").text).body_text
        # The session also authorises the download links of the pages (GET only).
        sha = srv.store.resolve("acme/secret")
        dl = client.get(srv.url + f"/acme/secret/resolve/{sha}/README.md", follow_redirects=True)
        assert dl.content == b"# Secret card"
        blob = client.get(srv.url + f"/acme/secret/resolve/{sha}/w.safetensors", follow_redirects=True)
        assert blob.content == b"S" * 100
        # ... never a write: the cookie is not a token for the API's POSTs.
        r = client.post(srv.url + "/api/repos/create", json={"name": "x", "organization": "acme"})
        assert r.status_code == 401
        logout_csrf = next(a["value"] for a in doc.all("input") if a.get("name") == "csrf")
        assert client.post(srv.url + "/_web/logout", data={"csrf": "forged"}, headers=origin).status_code == 403
        r = client.post(srv.url + "/_web/logout", data={"csrf": logout_csrf}, headers=origin)
        assert r.status_code == 303 and "Max-Age=0" in r.headers["Set-Cookie"]
        client.cookies.clear()
        client.cookies.set("batuta_session", cookie.split(";")[0].split("=", 1)[1])
        assert client.get(srv.url + "/acme/secret").status_code == 404  # the old id is dead
    assert not any(ALICE in e.path or ALICE in e.query for e in srv.log.entries)


def test_login_refuses_cross_site_and_missing_csrf(srv: HubServer) -> None:
    with httpx.Client(headers=BROWSER) as client:
        csrf = _login_form(client, srv)
        url = srv.url + "/_web/login"
        cases = [
            ({"token": ALICE}, {}),  # no CSRF field
            ({"token": ALICE, "csrf": "0" * 64}, {}),  # a guessed one
            ({"token": ALICE, "csrf": csrf}, {"Origin": "https://evil.example"}),
            ({"token": ALICE, "csrf": csrf}, {"Sec-Fetch-Site": "cross-site"}),
        ]
        for data, headers in cases:
            r = client.post(url, data=data, headers=headers)
            assert r.status_code == 403 and "Set-Cookie" not in r.headers, (data, headers)
            assert_safe_page(r)
    with httpx.Client(headers=BROWSER) as other:  # a CSRF token is bound to its own browser's cookie
        r = other.post(url, data={"token": ALICE, "csrf": csrf}, headers={"Origin": srv.url})
        assert r.status_code == 403


def test_login_redirects_only_to_this_site(srv: HubServer) -> None:
    for target in ["//evil.example/x", "https://evil.example/", "/\\evil.example", "/a\r\nSet-Cookie: x=1"]:
        with httpx.Client(headers=BROWSER) as client:
            csrf = _login_form(client, srv)
            r = client.post(srv.url + "/_web/login", data={"csrf": csrf, "token": ALICE, "next": target},
                            headers={"Origin": srv.url})
            assert r.status_code == 303 and r.headers["Location"] == "/", target


def test_cookie_is_secure_behind_https(tmp_path: Path) -> None:
    s = HubServer(tmp_path / "r", users=[UserSpec("alice", ALICE)], public_url="https://hub.example").start()
    try:
        with httpx.Client(headers=BROWSER) as client:
            r = client.get(s.url + "/_web/login")
            assert "; Secure" in r.headers["Set-Cookie"]
            csrf = next(a["value"] for a in parse(r.text).all("input") if a.get("name") == "csrf")
            client.cookies.set("batuta_login", r.headers["Set-Cookie"].split(";")[0].split("=", 1)[1])
            r = client.post(s.url + "/_web/login", data={"csrf": csrf, "token": ALICE},
                            headers={"Origin": "https://hub.example"})
            assert r.status_code == 303 and "; Secure" in r.headers["Set-Cookie"]
    finally:
        s.stop()


def test_open_server_has_nothing_to_sign_in_to(hub_server: HubServer) -> None:
    hub_server.store.commit("local/r", {"a.txt": b"a"})
    hub_server.store.update_settings("local/r", "model", private=True)
    doc = assert_safe_page(get(hub_server, "/"))
    assert "local/r" in doc.body_text and "open server" in doc.body_text
    assert "open (no users)" in parse(get(hub_server, "/_web/login").text).body_text
    r = httpx.post(hub_server.url + "/_web/login", data={"token": "x"}, headers=BROWSER)
    assert r.status_code == 400


def test_sessions_are_bounded_and_expire() -> None:
    s = Sessions(ttl=3600, max_sessions=3)
    alice = UserSpec("alice", "t")
    ids = [s.create(alice) for _ in range(5)]
    assert len(s) == 3 and s.user(ids[0]) is None and s.user(ids[-1]) == alice
    assert s.user(None) is None and s.user("unknown") is None
    s.drop(ids[-1])
    assert s.user(ids[-1]) is None
    expired = Sessions(ttl=-1)
    sid = expired.create(alice)
    assert expired.user(sid) is None and len(expired) == 0
    assert s.csrf("a") != s.csrf("b") and s.csrf("a") != Sessions().csrf("a")


def test_odd_paths_revisions_and_bodies(srv: HubServer) -> None:
    assert get(srv, "/alice/tiny/").text == get(srv, "/alice/tiny").text  # a trailing slash
    r = get(srv, "/alice")  # one segment is not a page: the API's JSON 404
    assert r.status_code == 404 and r.headers["Content-Type"].startswith("application/json")
    assert get(srv, "/alice/tiny/blob/main/x").headers["Content-Type"].startswith("application/json")
    sha = srv.store.resolve("alice/tiny")
    doc = assert_safe_page(get(srv, f"/alice/tiny/tree/{sha}"))
    assert f"commit: {sha[:12]}" in doc.text  # a sha is shown in the selector as it is
    big = httpx.post(srv.url + "/_web/login", content=b"token=" + b"x" * 20000, headers={**BROWSER,
                     "Content-Type": "application/x-www-form-urlencoded"})
    assert big.status_code == 413
    assert_safe_page(big)


def test_a_repo_without_main_is_left_out_of_the_list(srv: HubServer) -> None:
    """A hand-edited repo.json may lose its main branch: the list skips the repo, like the API."""
    del srv.store.repo("bob/data", "dataset").branches["main"]
    doc = assert_safe_page(get(srv, "/"))
    assert "bob/data" not in doc.body_text and "alice/tiny" in doc.body_text


def test_front_matter_is_stripped_only_when_closed() -> None:
    from batuta_sync.server.web.card import strip_front_matter

    assert strip_front_matter("---\na: 1\n---\n# T") == "# T"
    assert strip_front_matter("--- not front matter\n# T") == "--- not front matter\n# T"
    assert strip_front_matter("---\na: 1\n# never closed") == "---\na: 1\n# never closed"
    assert strip_front_matter("# T") == "# T"
