"""Plan renderings: Terraform-like text for terminals and logs, markdown for pull-request comments.

Pure: a Plan in, a string out.  Symbols: ``+`` new in hf.lock, ``~`` relock,
``-`` delete, ``↓`` pull, ``⇄`` convert, ``↑`` push.  Reasons and drift kinds read as words
(``not locked``); JSON keeps the tokens.  ``color=True`` (the CLI decides: a terminal, no
``NO_COLOR``) paints Terraform's way: green for what is added or fetched, yellow for what
changes in place, red for deletions and what could not be checked.
"""

from __future__ import annotations

from batuta_sync._fmt import human_bytes, plural, words
from batuta_sync.core.actions import Action, ActionKind, Reason
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


def render_text(plan: Plan, *, color: bool = False) -> str:
    lines: list[str] = _not_checked(plan, color)
    if plan.refresh_only:
        lines.append("Refresh-only plan: reports drift, changes nothing.")
    if plan.actions:
        lines.append("batuta will perform the following actions:")
        lines.append("")
        w_kind = max(len(a.kind.value) for a in plan.actions)
        w_addr = max(len(a.address) for a in plan.actions)
        w_reason = max(len(words(a.reason.value)) for a in plan.actions)
        for a in plan.actions:
            size = _size(a)
            reason = words(a.reason.value)
            code = _KIND_COLOR.get(a.kind, "")
            head = _paint(f"{_marker(a)} {a.kind.symbol} {a.kind.value:<{w_kind}}", code, color)
            row = f"  {head}  {a.address:<{w_addr}}  ({reason}){' ' * (w_reason - len(reason))}  {a.detail}"
            if size:
                row += f"  [{size}]"
            if a.deps:
                row += f"  after {', '.join(d.split(':', 1)[1] for d in a.deps)}"
            lines.append(row.rstrip())
        lines.append("")
    elif not plan.refresh_only and plan.warnings:
        lines.append(f"No changes among the checked resources; {len(plan.warnings)} not checked (above).")
    elif not plan.refresh_only:
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
    return "\n".join(lines).rstrip() + "\n"


def render_markdown(plan: Plan) -> str:
    out = ["### batuta plan", ""]
    if plan.actions:
        out += ["| | action | address | reason | detail |", "|---|---|---|---|---|"]
        for a in plan.actions:
            detail = a.detail + (f" ({_size(a)})" if _size(a) else "")
            out.append(f"| {a.kind.symbol.strip() or '·'} | {a.kind.value} | `{a.address}` | {words(a.reason.value)} | {detail} |")
        out += ["", f"**{_summary_line(plan)}**", "", _bytes_line(plan)]
    else:
        out.append("No changes." if not plan.refresh_only else "Refresh-only plan.")
    if plan.warnings:
        out += ["", f"**Not checked ({len(plan.warnings)}), treated as unchanged:**", ""]
        out += [f"- {w}" for w in plan.warnings]
    if plan.drift:
        out += ["", "<details><summary>Drift</summary>", ""]
        out += [f"- `{d.address}` {words(d.kind.value)}: {d.detail}" for d in plan.drift]
        out += ["", "</details>"]
    out += ["", f"<sub>plan `{plan.plan_id[:12]}` · manifest `{plan.manifest_digest[:19]}`</sub>"]
    return "\n".join(out) + "\n"
