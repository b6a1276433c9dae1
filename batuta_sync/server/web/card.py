"""Model/dataset cards: README markdown → sanitised HTML, front matter → a table.

markdown-it-py (a dependency of rich) in CommonMark mode with ``html`` off: raw HTML in the card
is shown as text, never as markup.  Links and images additionally pass :func:`safe_href` (only
http(s), mailto and relative URLs); relative image sources point at the repo's own ``/resolve/``
URLs (same origin, the only images the Content-Security-Policy allows), images on other origins
become plain links, and relative links point at the repo's files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from batuta_sync.server.web.html import Html, el, esc, join, safe_href

MAX_CARD_BYTES = 1 << 20  # a longer README is rendered from its first MiB


def strip_front_matter(text: str) -> str:
    """The markdown body of a README without its leading ``---`` … ``---`` block."""
    if not text.startswith("---"):
        return text
    lines = text.split("\n")
    if lines[0].strip() != "---":
        return text
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "\n".join(lines[i + 1 :])
    return text


def _safe_link(url: str) -> bool:
    """Links and images: http(s), mailto and relative URLs only (no ``data:`` either)."""
    return safe_href(url) is not None and not url.strip().lower().startswith("data:")


def _renderer(resolve_base: str) -> Any:
    from markdown_it import MarkdownIt

    class _Card(MarkdownIt):
        def validateLink(self, url: str) -> bool:
            return _safe_link(url)

    md = _Card("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")

    def image(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        tok = tokens[idx]
        src = str(tok.attrGet("src") or "")
        if ":" in src.split("/", 1)[0] or src.startswith("//"):
            # Another origin: a link, never an image (no tracking pixel, even without the CSP).
            alt = self.renderInlineAsText(tok.children or [], options, env)
            return str(el("a", {"href": src, "rel": "nofollow noopener noreferrer"}, f"image: {alt or src}"))
        if not src.startswith(("/", "#")):
            tok.attrSet("src", resolve_base + src.lstrip("./"))
        return str(self.image(tokens, idx, options, env))  # the default rule escapes the alt text

    def link_open(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        tok = tokens[idx]
        href = str(tok.attrGet("href") or "")
        if "://" in href:
            tok.attrSet("rel", "nofollow noopener noreferrer")
        elif href and ":" not in href.split("/", 1)[0] and not href.startswith(("/", "#", "?")):
            tok.attrSet("href", resolve_base + href.lstrip("./"))  # a repo file, as on the Hub
        return str(self.renderToken(tokens, idx, options, env))

    md.add_render_rule("image", image)
    md.add_render_rule("link_open", link_open)
    return md


def render_markdown(text: str, resolve_base: str) -> Html:
    """The card body as HTML.  ``resolve_base`` ends with ``/`` (``/{repo}/resolve/{commit}/``)."""
    body = strip_front_matter(text[:MAX_CARD_BYTES])
    # markdown-it escapes all text and refuses the raw-HTML rules (html=False) and unsafe links.
    return Html(_renderer(resolve_base).render(body))


def _value(v: Any) -> Html:
    if isinstance(v, list) and all(isinstance(x, (str, int, float, bool)) for x in v):
        return join(*(el("span", {"class": "chip"}, str(x)) for x in v))
    if isinstance(v, (dict, list)):
        return el("code", None, json.dumps(v, ensure_ascii=False, sort_keys=True)[:2000])
    return esc(v)


def front_matter_table(card: Mapping[str, Any]) -> Html:
    """The front matter (already parsed by the server's bounded YAML loader) as a two-column table."""
    if not card:
        return Html("")
    rows = [el("tr", None, el("th", {"scope": "row"}, str(k)), el("td", None, _value(v))) for k, v in card.items()]
    return el("table", {"class": "meta"}, el("caption", None, "Card metadata"), el("tbody", None, rows))
