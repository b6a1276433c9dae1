"""Plan renderings: Terraform-like text for terminals and logs, markdown for pull-request comments
(with a Mermaid drawing of the action DAG), and one self-contained HTML file for CI artifacts (the
DAG as an inline SVG from a small layered layout; no script, no external asset, a CSP meta tag).

Pure: a Plan in, a string out.  Symbols: ``+`` new in hf.lock, ``~`` relock,
``-`` delete, ``↓`` pull, ``⇄`` convert, ``↑`` push.  Reasons and drift kinds read as words
(``not locked``); JSON keeps the tokens.  ``color=True`` (the CLI decides: a terminal, no
``NO_COLOR``) paints Terraform's way: green for what is added or fetched, yellow for what
changes in place, red for deletions and what could not be checked.  Every plan string (addresses,
details, reasons, the endpoint) is escaped for the output format: ``html.escape`` for HTML and SVG,
Mermaid entity codes for Mermaid labels, and ``|``/``<`` escapes for markdown table cells.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from html import escape
from typing import Any

from batuta_sync._fmt import human_bytes, plural, words
from batuta_sync.core.actions import Action, ActionKind, Reason
from batuta_sync.core.planner.graph import to_mermaid
from batuta_sync.core.planner.plan import Plan

_GREEN, _YELLOW, _RED, _MAGENTA, _BOLD = "32", "33", "31", "35", "1"
_KIND_COLOR = {
    ActionKind.PULL: _GREEN,
    ActionKind.CONVERT: _YELLOW,
    ActionKind.PUSH: _YELLOW,
    ActionKind.RELOCK: _YELLOW,
    ActionKind.DELETE_LOCAL: _RED,
}


def _paint(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color and text.strip() else text


def _marker(a: Action) -> str:
    return "+" if a.reason is Reason.NOT_LOCKED else " "


def _address(a: Action) -> str:
    """The address, with where it was moved from (hf.yaml ``moved:``)."""
    src = a.params.get("moved_from")
    return f"{src} → {a.address}" if isinstance(src, str) else a.address


def _size(a: Action) -> str:
    if a.kind is ActionKind.PULL and a.download_bytes:
        return human_bytes(a.download_bytes)
    if a.kind is ActionKind.PUSH and a.upload_bytes:
        return "≤" + human_bytes(a.upload_bytes)
    return ""


def _summary_line(plan: Plan) -> str:
    s = plan.summary()
    parts = [
        f"{s['pull']} to pull",
        f"{s['convert']} to convert",
        f"{s['push']} to push",
        f"{s['delete-local']} to delete",
        f"{s['relock']} to relock",
    ]
    moved = sum(1 for a in plan.actions if isinstance(a.params.get("moved_from"), str))
    if moved:
        parts.append(f"{moved} moved")
    return "Plan: " + ", ".join(parts) + f"; {s['unchanged']} unchanged."


def _upload_text(plan: Plan) -> str:
    """Upload size; a push fed by a pending conversion only knows its size after converting."""
    pushes = [a for a in plan.actions if a.kind is ActionKind.PUSH]
    if not pushes:
        return "upload 0 B"
    unknown = any(a.upload_bytes == 0 for a in pushes)
    if plan.upload_bytes == 0:
        return "upload known after conversion" if unknown else "upload 0 B"
    return f"upload ≤{human_bytes(plan.upload_bytes)}" + (" + conversion outputs" if unknown else "")


def _bytes_line(plan: Plan) -> str:
    line = f"Download {human_bytes(plan.download_bytes)}, {_upload_text(plan)}; "
    line += f"disk needed {human_bytes(plan.disk_bytes)} of {human_bytes(plan.free_bytes)} free."
    if plan.free_bytes is not None and plan.disk_bytes > plan.free_bytes:
        line += "  NOT ENOUGH DISK SPACE."
    return line


def source_text(src: Mapping[str, Any]) -> str:
    """``  from remote`` | ``  from Hub`` | ``  partly: N of M files from remote`` ("" from the cache)."""
    files, remote, where = int(src.get("files", 0)), int(src.get("remote", 0)), src.get("from")
    if where == "remote":
        return "  from remote"
    if where == "hub":
        return "  from Hub"
    if where == "partly":
        return f"  partly: {remote} of {plural(files, 'file')} from remote"
    return ""


def _remote_line(plan: Plan) -> str:
    """Shared remote: URL; of the blobs the pulls fetch, how many it holds."""
    files = sum(int(v.get("files", 0)) for v in plan.sources.values())
    remote = sum(int(v.get("remote", 0)) for v in plan.sources.values())
    if not plan.sources:
        return f"Shared remote: {plan.remote}" + ("" if not any(a.kind is ActionKind.PULL for a in plan.actions)
                                                  else "  (not asked: the pulls' sources are unknown)")
    if remote == files:
        return f"Shared remote: {plan.remote}  (all {plural(files, 'blob')} to fetch are on it)"
    if remote == 0:
        return f"Shared remote: {plan.remote}  (none of the {plural(files, 'blob')} to fetch is on it: they come from the Hub)"
    return f"Shared remote: {plan.remote}  ({remote} of {plural(files, 'blob')} to fetch are on it; the rest come from the Hub)"


def _endpoint_line(plan: Plan) -> str:
    n = len(plan.resources())
    line = f"Hub endpoint: {plan.endpoint or '(not recorded)'}  (all {n} resource{'s' if n != 1 else ''} of this plan)"
    if plan.endpoint_changed:
        line += (
            f"\n! ENDPOINT CHANGED: hf.lock was resolved on {plan.locked_endpoint}, this plan talks to "
            f"{plan.endpoint}. `batuta lock` records the new one in hf.lock (so does an apply that runs actions)."
        )
    return line


def _not_checked(plan: Plan, color: bool) -> list[str]:
    """The loud block for resources the Hub could not be asked about (first, never buried)."""
    n = len(plan.warnings)
    if not n:
        return []
    head = (
        f"NOT CHECKED: {plural(n, 'resource')} could not be checked against the Hub "
        f"and {'are' if n != 1 else 'is'} treated as unchanged:"
    )
    return [_paint(head, f"{_BOLD};{_RED}", color), *(_paint(f"  ? {w}", _RED, color) for w in plan.warnings), ""]


def _action_row(plan: Plan, a: Action, widths: tuple[int, int, int], color: bool) -> str:
    w_kind, w_addr, w_reason = widths
    size = _size(a)
    reason = words(a.reason.value)
    code = _KIND_COLOR.get(a.kind, "")
    head = _paint(f"{_marker(a)} {a.kind.symbol} {a.kind.value:<{w_kind}}", code, color)
    row = f"  {head}  {_address(a):<{w_addr}}  ({reason}){' ' * (w_reason - len(reason))}  {a.detail}"
    if size:
        row += f"  [{size}]"
    if a.address in plan.sources and a.kind is ActionKind.PULL:
        row += source_text(plan.sources[a.address])
    if a.deps:
        row += f"  after {', '.join(d.split(':', 1)[1] for d in a.deps)}"
    return row.rstrip()


def render_text(plan: Plan, *, color: bool = False) -> str:
    lines: list[str] = _not_checked(plan, color)
    if plan.refresh_only:
        lines.append("Refresh-only plan: reports drift, changes nothing.")
    if plan.actions:
        lines.append("batuta will perform the following actions:")
        lines.append("")
        w_kind = max(len(a.kind.value) for a in plan.actions)
        w_addr = max(len(_address(a)) for a in plan.actions)
        w_reason = max(len(words(a.reason.value)) for a in plan.actions)
        for a in plan.actions:
            lines.append(_action_row(plan, a, (w_kind, w_addr, w_reason), color))
        lines.append("")
    elif not plan.refresh_only and plan.warnings:
        lines.append(f"No changes among the checked resources; {len(plan.warnings)} not checked (above).")
    elif not plan.refresh_only:
        if plan.endpoint_changed:
            lines.append(f"No actions, but the Hub endpoint changed ({plural(len(plan.unchanged), 'resource')}; see below).")
        else:
            lines.append(f"No changes. hf.yaml, hf.lock and the workspace agree ({plural(len(plan.unchanged), 'resource')}).")
    if plan.drift:
        if lines and lines[-1]:
            lines.append("")
        lines.append("Drift (this plan does not change it):")
        for d in plan.drift:
            lines.append(f"  {_paint('!', _MAGENTA, color)} {d.address}  {words(d.kind.value)}: {d.detail}")
        lines.append("")
    elif plan.refresh_only:
        lines.append("No drift: the lock matches the Hub and the local files.")
    if plan.actions:
        lines.append(_paint(_summary_line(plan), _BOLD, color))
        lines.append(_bytes_line(plan))
    lines.append(_endpoint_line(plan))
    if plan.remote:
        lines.append(_remote_line(plan))
    return "\n".join(lines).rstrip() + "\n"


def _md_cell(text: str) -> str:
    """Text for a markdown table cell: no line breaks, ``|`` and HTML escaped."""
    return " ".join(text.split()).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _md_code(text: str) -> str:
    """Inline code in a table cell: a code span shows ``<`` and ``\\`` as they are, only ``|`` needs
    escaping (GFM tables) and a backtick, which would end the span, becomes ``'``."""
    return "`" + " ".join(text.split()).replace("|", "\\|").replace("`", "'") + "`"


def render_markdown(plan: Plan) -> str:
    out = ["### batuta plan", "", _endpoint_line(plan), ""]
    if plan.actions:
        out += ["| | action | address | reason | detail | endpoint |", "|---|---|---|---|---|---|"]
        for a in plan.actions:
            detail = a.detail + (f" ({_size(a)})" if _size(a) else "")
            out.append(
                f"| {a.kind.symbol.strip() or '·'} | {a.kind.value} | {_md_code(a.address)} | {words(a.reason.value)} | {_md_cell(detail)} | {_md_code(plan.endpoint)} |"
            )
        out += ["", f"**{_summary_line(plan)}**", "", _bytes_line(plan)]
        out += ["", "<details open><summary>Action graph</summary>", "", render_mermaid(plan).rstrip(), "", "</details>"]
    else:
        out.append("No changes." if not plan.refresh_only else "Refresh-only plan.")
    if plan.warnings:
        out += ["", f"**Not checked ({len(plan.warnings)}), treated as unchanged:**", ""]
        out += [f"- {w}" for w in plan.warnings]
    if plan.drift:
        out += ["", "<details><summary>Drift</summary>", ""]
        out += [f"- {_md_code(d.address)} {words(d.kind.value)}: {_md_cell(d.detail)}" for d in plan.drift]
        out += ["", "</details>"]
    out += ["", f"<sub>plan `{plan.plan_id[:12]}` · manifest `{plan.manifest_digest[:19]}`</sub>"]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- Mermaid
_MERMAID_SAFE = re.compile(r"[A-Za-z0-9 _.,:/@+=()-]")


def _mermaid_label(text: str) -> str:
    """A quoted Mermaid label: every character outside a small safe set becomes an entity code
    (``#35;``), so quotes, brackets, backticks, ``<``/``>`` and newlines cannot end the label, the
    node, the code fence, or inject markup into the renderer."""
    return "".join(ch if _MERMAID_SAFE.fullmatch(ch) else f"#{ord(ch)};" for ch in text[:200])


def action_label(a: Action) -> str:
    return f"{a.kind.symbol.strip()} {a.kind.value} {a.address} ({a.reason.value})".strip()


def render_mermaid(plan: Plan) -> str:
    """The action DAG as a fenced ```` ```mermaid ```` block (GitHub and GitLab draw it in PR
    comments).  Node ids are generated (``n0``, ``n1``…), never taken from the plan."""
    nodes = {a.id: _mermaid_label(action_label(a)) for a in plan.actions}
    edges = [(d, a.id) for a in plan.actions for d in a.deps if d in nodes]
    return "```mermaid\n" + to_mermaid(nodes, edges) + "```\n"


# --------------------------------------------------------------------------- HTML + SVG
_KIND_ORDER = (ActionKind.PULL, ActionKind.CONVERT, ActionKind.PUSH, ActionKind.RELOCK, ActionKind.DELETE_LOCAL)
_NODE_W, _NODE_H, _GAP_X, _GAP_Y, _PAD = 240, 44, 60, 16, 12

_CSS = """\
body{font:14px/1.45 system-ui,"DejaVu Sans",sans-serif;color:#1f2328;max-width:76rem;margin:1.5rem auto;padding:0 1.5rem}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #d1d9e0;vertical-align:top}
th{color:#59636e;font-size:.85rem}td.num{text-align:right;white-space:nowrap}
code{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.9em}
.summary{font-weight:600}.warn{color:#9a6700}.alert{color:#cf222e;font-weight:600}.muted{color:#59636e}
svg{max-width:100%;height:auto;border:1px solid #d1d9e0;border-radius:6px;background:#f6f8fa}
.node rect{fill:#fff;stroke:#8c959f;rx:6}.node text{font:12px ui-monospace,"DejaVu Sans Mono",monospace;fill:#1f2328}
.kind-pull rect{stroke:#0969da;fill:#ddf4ff}.kind-convert rect{stroke:#8250df;fill:#fbefff}
.kind-push rect{stroke:#1a7f37;fill:#dafbe1}.kind-relock rect{stroke:#9a6700;fill:#fff8c5}
.kind-delete-local rect{stroke:#cf222e;fill:#ffebe9}
.node text.why{font:11px system-ui,"DejaVu Sans",sans-serif;fill:#59636e}
.edge{fill:none;stroke:#59636e;stroke-width:1.3}
"""


def _csp(css: str) -> str:
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    return f"default-src 'none'; style-src 'sha256-{digest}'; img-src 'none'; base-uri 'none'; form-action 'none'"


def dag_layout(plan: Plan) -> dict[str, tuple[int, int]]:
    """Action id → (layer, row): layer = 1 + the deepest dependency (0 without one); rows ordered
    by the mean row of the dependencies (one barycentre sweep), then by id.  A cycle (a tampered
    plan) cannot loop: a node still being placed counts as layer 0."""
    ids = {a.id: a for a in plan.actions}
    layer: dict[str, int] = {}

    def depth(aid: str, seen: frozenset[str]) -> int:
        if aid in layer:
            return layer[aid]
        deps = [d for d in ids[aid].deps if d in ids and d not in seen]
        value = 1 + max((depth(d, seen | {aid}) for d in deps), default=-1)
        layer[aid] = value
        return value

    for aid in ids:
        depth(aid, frozenset())
    pos: dict[str, tuple[int, int]] = {}
    for lv in range(max(layer.values(), default=-1) + 1):
        members = [aid for aid in ids if layer[aid] == lv]

        def key(aid: str) -> tuple[float, str]:
            rows = [pos[d][1] for d in ids[aid].deps if d in pos]
            return (sum(rows) / len(rows) if rows else -1.0, aid)

        for row, aid in enumerate(sorted(members, key=key)):
            pos[aid] = (lv, row)
    return pos


def render_svg(plan: Plan) -> str:
    """The action DAG as inline SVG: one ``<g class="node">`` per action, one ``<path class="edge">``
    per dependency."""
    pos = dag_layout(plan)
    if not pos:
        return ""
    layers = max(lv for lv, _ in pos.values()) + 1
    rows = max(r for _, r in pos.values()) + 1
    width = _PAD * 2 + layers * _NODE_W + (layers - 1) * _GAP_X
    height = _PAD * 2 + rows * _NODE_H + (rows - 1) * _GAP_Y

    def xy(aid: str) -> tuple[int, int]:
        lv, row = pos[aid]
        return _PAD + lv * (_NODE_W + _GAP_X), _PAD + row * (_NODE_H + _GAP_Y)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="Action graph: {len(pos)} actions">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" fill="#59636e"/></marker></defs>',
    ]
    for a in plan.actions:
        for d in a.deps:
            if d not in pos:
                continue
            (x1, y1), (x2, y2) = xy(d), xy(a.id)
            sx, sy, ex, ey = x1 + _NODE_W, y1 + _NODE_H // 2, x2, y2 + _NODE_H // 2
            mid = (sx + ex) // 2
            parts.append(
                f'<path class="edge" data-from="{escape(d)}" data-to="{escape(a.id)}" '
                f'd="M{sx} {sy}C{mid} {sy} {mid} {ey} {ex} {ey}" marker-end="url(#arrow)"/>'
            )
    for a in plan.actions:
        x, y = xy(a.id)
        label = action_label(a)
        head = f"{a.kind.symbol.strip()} {a.address}".strip()
        head = head if len(head) <= 30 else head[:29] + "…"
        parts.append(
            f'<g class="node kind-{escape(a.kind.value)}" data-id="{escape(a.id)}"><title>{escape(label)}'
            f"{escape(' — ' + a.detail) if a.detail else ''}</title>"
            f'<rect x="{x}" y="{y}" width="{_NODE_W}" height="{_NODE_H}"/>'
            f'<text x="{x + 10}" y="{y + 18}">{escape(head)}</text>'
            f'<text class="why" x="{x + 10}" y="{y + 34}">{escape(a.kind.value + " · " + a.reason.value)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render_html(plan: Plan) -> str:
    """One self-contained HTML page (inline style allowed by its hash, no script, no external
    asset): summary, actions grouped by kind with reasons and sizes, the DAG, drift, warnings."""
    e = escape
    body: list[str] = [f"<h1>batuta plan <code>{e(plan.plan_id[:12])}</code></h1>"]
    body.append(f"<p>Hub endpoint: <code>{e(plan.endpoint or '(not recorded)')}</code></p>")
    if plan.endpoint_changed:
        body.append(
            f'<p class="alert">Endpoint changed: hf.lock was resolved on <code>{e(plan.locked_endpoint)}</code>, '
            f"this plan talks to <code>{e(plan.endpoint)}</code>.</p>"
        )
    if plan.actions:
        body.append(f'<p class="summary">{e(_summary_line(plan))}</p><p>{e(_bytes_line(plan))}</p>')
        body.append("<h2>Action graph</h2>" + render_svg(plan))
        for kind in _KIND_ORDER:
            acts = [a for a in plan.actions if a.kind is kind]
            if not acts:
                continue
            body.append(f'<h2 id="kind-{e(kind.value)}">{e(kind.symbol.strip())} {e(kind.value)} ({len(acts)})</h2>')
            body.append(
                '<table><thead><tr><th scope="col"></th><th scope="col">address</th><th scope="col">reason</th>'
                '<th scope="col">detail</th><th scope="col">size</th><th scope="col">after</th></tr></thead><tbody>'
            )
            for a in acts:
                after = ", ".join(d.split(":", 1)[-1] for d in a.deps)
                body.append(
                    f"<tr><td>{e(_marker(a).strip())}</td><td><code>{e(a.address)}</code></td><td>{e(a.reason.value)}</td>"
                    f'<td>{e(a.detail)}</td><td class="num">{e(_size(a))}</td><td>{e(after)}</td></tr>'
                )
            body.append("</tbody></table>")
    else:
        body.append(f"<p>{'Refresh-only plan.' if plan.refresh_only else 'No changes.'}</p>")
    if plan.drift:
        body.append("<h2>Drift (this plan does not change it)</h2><ul>")
        body += [f"<li><code>{e(d.address)}</code> {e(d.kind.value)}: {e(d.detail)}</li>" for d in plan.drift]
        body.append("</ul>")
    if plan.warnings:
        body.append('<h2>Warnings</h2><ul class="warn">' + "".join(f"<li>{e(w)}</li>" for w in plan.warnings) + "</ul>")
    if plan.unchanged:
        body.append(f'<p class="muted">Unchanged: {e(", ".join(plan.unchanged))}</p>')
    body.append(f'<p class="muted">manifest <code>{e(plan.manifest_digest[:19])}</code></p>')
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{e(_csp(_CSS))}">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>batuta plan {e(plan.plan_id[:12])}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
