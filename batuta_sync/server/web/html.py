"""A tiny HTML builder that escapes by default.

Every ``str`` that reaches a page goes through :func:`el` / :func:`join` and is escaped with
``html.escape`` (quotes included, so the same rule is right for text and attribute values).  Only
:class:`Html` values — built here, or the sanitised output of the markdown renderer — pass through
unchanged, so forgetting to escape means writing ``Html(...)`` on purpose.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from urllib.parse import quote

# Void elements never get a closing tag.
_VOID = frozenset({"br", "hr", "img", "input", "link", "meta"})
_ALLOWED_SCHEMES = ("http:", "https:", "mailto:")


class Html(str):
    """Markup that is already safe to emit (never build one from user input directly)."""

    __slots__ = ()


def esc(value: object) -> Html:
    """``value`` as text: ``& < > " '`` escaped (an Html value is kept as it is)."""
    if isinstance(value, Html):
        return value
    return Html(html.escape(str(value), quote=True))


def _children(children: Iterable[object]) -> Iterable[str]:
    for c in children:
        if c is None or c is False:
            continue
        if isinstance(c, (str, int)):
            yield esc(c)
        else:
            yield from _children(c)  # type: ignore[arg-type]


def join(*children: object) -> Html:
    """Children concatenated, each escaped unless it is Html (None skipped, iterables flattened)."""
    return Html("".join(_children(children)))


def el(tag: str, attrs: Mapping[str, object] | None = None, *children: object) -> Html:
    """``<tag attr="…">children</tag>``; ``None``/``False`` attributes are left out, ``True`` ones
    are written bare.  Tag and attribute names are fixed by the code, never by user input."""
    parts = [f"<{tag}"]
    for k, v in (attrs or {}).items():
        if v is None or v is False:
            continue
        name = k.rstrip("_").replace("_", "-")
        parts.append(f" {name}" if v is True else f' {name}="{esc(v)}"')
    parts.append(">")
    if tag in _VOID:
        return Html("".join(parts))
    return Html("".join(parts) + join(*children) + f"</{tag}>")


def path_url(*segments: str) -> str:
    """A same-origin URL path from raw segments, each percent-encoded (a ``/`` inside a segment
    stays encoded; pass several segments to build ``/a/b``)."""
    return "/" + "/".join(quote(s, safe="") for s in segments if s != "")


def repo_path_url(path: str) -> str:
    """A repo file path (``a/b.txt``) for a URL: each component percent-encoded, slashes kept."""
    return "/".join(quote(p, safe="") for p in path.split("/"))


def safe_href(url: str) -> str | None:
    """``url`` if a link to it is harmless: http(s), mailto, or relative (no scheme); else None.
    (``javascript:``, ``data:``, ``vbscript:`` … in any case and with embedded whitespace or
    control characters are refused — browsers strip those before reading the scheme.)"""
    cleaned = "".join(ch for ch in url if ch > " " and ch != "\x7f").lower()
    scheme, sep, _ = cleaned.partition(":")
    if not sep or "/" in scheme or "?" in scheme or "#" in scheme:
        return url  # relative: no scheme before the first / ? #
    return url if cleaned.startswith(_ALLOWED_SCHEMES) else None
