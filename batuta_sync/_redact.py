"""Keep tokens out of every output.

Any token batuta learns about (flag, HF_TOKEN, token file) is registered here,
and ``redact`` replaces it wherever it appears; strings shaped like a Hugging
Face token (``hf_`` + 30 or more alphanumerics) are masked even if unknown, and so
is the userinfo of every URL (``https://user:password@host`` -> ``https://***@host``:
a password, or a token used as the user name, never shows).
Errors, logs, plan files and lockfiles pass through ``redact``.
"""

from __future__ import annotations

import re

_KNOWN: set[str] = set()
_HF_TOKEN_RE = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")
# scheme://userinfo@ : everything between "//" and the first "@" before any "/", "?", "#" or space
_USERINFO_RE = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s@]+@")
MASK = "***"


def register_secret(value: str | None) -> None:
    """Remember a secret so ``redact`` masks it from now on (short values are ignored)."""
    if value and len(value) >= 8:
        _KNOWN.add(value)


def redact(text: str) -> str:
    """Return ``text`` with every known secret and every HF-token-shaped string masked."""
    if not text:
        return text
    for secret in _KNOWN:
        if secret in text:
            text = text.replace(secret, MASK)
    if "@" in text:
        text = _USERINFO_RE.sub(r"\1" + MASK + "@", text)
    return _HF_TOKEN_RE.sub("hf_" + MASK, text)


def register_url_secrets(url: str | None) -> None:
    """Remember the userinfo of ``url`` (``user:password@``) as secrets, so it is masked even
    where it appears without its ``scheme://`` (a host:port, a netloc)."""
    if not url or "@" not in url:
        return
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return
    if parts.password:
        register_secret(parts.password)
    if parts.username:
        register_secret(parts.username)


class Secret:
    """A string that never shows itself in ``repr``/``str``/f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)
