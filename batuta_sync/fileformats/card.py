"""README (model / dataset / space card) front matter: split and parse.

:func:`split` is pure stdlib; :func:`parse` loads the YAML with PyYAML's safe loader,
imported lazily (a declared dependency; ``yaml.safe_load`` builds plain data only).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["parse", "split"]

_FRONT_RE = re.compile(r"\A---[ \t]*\r?\n(.*?)(?:\r?\n)---[ \t]*(?:\r?\n|\Z)", re.S)


def split(text: str) -> tuple[str | None, str]:
    """(front matter YAML text or None, body): a block fenced by ``---`` lines at the very top."""
    m = _FRONT_RE.match(text)
    if not m:
        return None, text
    return m.group(1), text[m.end() :]


def parse(text: str) -> tuple[dict[str, Any] | None, str]:
    """(front matter mapping or None, body).  Unparseable or non-mapping front matter is absent
    (None, and the whole text is the body)."""
    yaml_text, body = split(text)
    if yaml_text is None:
        return None, text
    import yaml

    try:
        data = yaml.safe_load(yaml_text) or {}
    except yaml.YAMLError:
        return None, text
    if not isinstance(data, dict):
        return None, text
    return data, body
