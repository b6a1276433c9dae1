"""``batuta hf tree``: the spec's two trees, rendered from data (``data/hf_tree.json``).

The content (categories, components, integration types) is data; this module only
draws it with box-drawing characters, exactly as the spec shows it.  Stdlib only:
this runs on every ``batuta hf tree`` and must start in well under 100 ms.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

DATA_FILE = Path(__file__).parent / "data" / "hf_tree.json"


@lru_cache(maxsize=1)
def load_tree_data() -> dict[str, Any]:
    """The parsed data file (``ecosystem`` and ``integration``)."""
    data: dict[str, Any] = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    return data


def render_ecosystem(data: dict[str, Any] | None = None) -> str:
    """The "HuggingFace Stack Tree": categories and their components, with notes aligned."""
    eco = (data or load_tree_data())["ecosystem"]
    cats = eco["categories"]
    width = int(eco.get("name_width", 14))
    lines = [f"{eco['title']} ({len(cats)} {eco.get('count_noun', 'categories')})"]
    for i, cat in enumerate(cats):
        last_cat = i == len(cats) - 1
        lines.append(("└── " if last_cat else "├── ") + cat["name"])
        stem = "    " if last_cat else "│   "
        children = cat.get("children", [])
        for j, leaf in enumerate(children):
            branch = "└── " if j == len(children) - 1 else "├── "
            text = leaf["name"]
            if leaf.get("note"):
                text = f"{text:<{width}} ({leaf['note']})"
            lines.append(stem + branch + text)
    return "\n".join(lines) + "\n"


def _row(cells: list[str], widths: list[int]) -> str:
    """One table row; a cell wider than its column pushes the next separator right and the
    next cell absorbs the overflow, keeping the line length (as drawn in the spec)."""
    out = "│"
    pos = boundary = 1
    for cell, width in zip(cells, widths, strict=True):
        boundary += width
        text = f" {cell} "
        text = text.ljust(boundary - pos)
        out += text + "│"
        pos += len(text) + 1
        boundary += 1
    return out


def _rule(left: str, mid: str, right: str, widths: list[int]) -> str:
    return left + mid.join("─" * w for w in widths) + right


def render_integration(data: dict[str, Any] | None = None) -> str:
    """The "PAIML-HuggingFace Integration Tree": a sectioned table plus its legend."""
    integ = (data or load_tree_data())["integration"]
    cols = integ["columns"]
    widths = [int(c["width"]) for c in cols]
    keys = [c["key"] for c in cols]
    lines = [integ["title"], integ["rule"] * int(integ["rule_width"]), ""]
    lines.append(_rule("┌", "┬", "┐", widths))
    lines.append(_row([c["header"] for c in cols], widths))
    for section in integ["sections"]:
        lines.append(_rule("├", "┼", "┤", widths))
        lines.append(_row([section["name"]] + [""] * (len(cols) - 1), widths))
        lines.append(_rule("├", "┼", "┤", widths))
        for row in section["rows"]:
            lines.append(_row([row[k] for k in keys], widths))
    lines.append(_rule("└", "┴", "┘", widths))
    lines += ["", integ.get("legend_title", "Legend:")]
    kw = int(integ.get("legend_key_width", 13))
    lines += [f"  {item['key']:<{kw}} - {item['text']}" for item in integ["legend"]]
    return "\n".join(lines) + "\n"


def tree_json(integration: bool) -> dict[str, Any]:
    """The data behind one tree (for ``--json``), without rendering hints."""
    data = load_tree_data()
    if integration:
        integ = data["integration"]
        return {
            "title": integ["title"],
            "columns": {c["key"]: c["header"] for c in integ["columns"]},
            "sections": integ["sections"],
            "legend": integ["legend"],
        }
    eco = data["ecosystem"]
    return {"title": eco["title"], "categories": eco["categories"]}
