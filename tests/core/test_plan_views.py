"""Plan views for review: the self-contained HTML page (inline SVG DAG) and the Mermaid block of
the markdown plan.  Parsed, not grepped: html.parser for the page, a Mermaid line grammar for the block."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.core.actions import Action, ActionKind, Drift, DriftKind, Reason
from batuta_sync.core.planner.plan import Plan
from batuta_sync.core.render import dag_layout, render_html, render_markdown, render_mermaid, render_svg

EVIL = '</code><script>alert(1)</script><img src=x onerror=alert(2)>"|`]) --> x["'


def make_plan(actions: tuple[Action, ...], **kw: Any) -> Plan:
    base: dict[str, Any] = dict(
        plan_id="p" * 32, manifest_path="hf.yaml", manifest_digest="sha256:" + "0" * 64, lock_digest="",
        endpoint="http://127.0.0.1:9", actions=actions,
    )
    base.update(kw)
    return Plan(**base)


# a diamond plus a chain: pull a, pull b; convert c after a and b; push d after c; relock e alone
DAG = (
    Action(ActionKind.PULL, "models.a", Reason.NOT_LOCKED, "org/a@abc", download_bytes=2_500_000),
    Action(ActionKind.PULL, "models.b", Reason.REVISION_CHANGED, "org/b@def", download_bytes=1000),
    Action(ActionKind.CONVERT, "conversions.c", Reason.INPUT_CHANGED, "gguf q4", deps=("pull:models.a", "pull:models.b")),
    Action(ActionKind.PUSH, "publish.d", Reason.NOT_PUBLISHED, "to org/d", deps=("convert:conversions.c",), upload_bytes=4096),
    Action(ActionKind.RELOCK, "models.e", Reason.LOCK_STALE),
)


class _Doc(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))
        if tag not in ("meta", "br", "img", "link", "input"):
            self.stack.append(tag)
        self._in_style = tag == "style"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> vs {self.stack[-1:]}")
        else:
            self.stack.pop()
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data
        elif data.strip():
            self.text.append(data.strip())

    def all(self, tag: str, cls: str | None = None) -> list[dict[str, str]]:
        return [a for t, a in self.elements if t == tag and (cls is None or cls in a.get("class", "").split())]


def parse(html: str) -> _Doc:
    d = _Doc()
    d.feed(html)
    d.close()
    assert d.problems == [] and d.stack == [], (d.problems, d.stack)
    return d


def test_html_plan_is_one_self_contained_page() -> None:
    page = render_html(make_plan(DAG, unchanged=("models.z",), warnings=("careful",)))
    doc = parse(page)
    assert page.startswith("<!DOCTYPE html>")
    tags = {t for t, _ in doc.elements}
    assert not tags & {"script", "link", "img", "iframe", "object"}  # nothing loaded, nothing run
    assert not [k for _, a in doc.elements for k in a if k.startswith("on") or k == "style"]
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", page)
    csp = [a["content"] for a in doc.all("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    assert len(csp) == 1 and "default-src 'none'" in csp[0] and "script-src" not in csp[0]
    digest = base64.b64encode(hashlib.sha256(doc.style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in csp[0]  # the inline stylesheet, and only it, is allowed
    # Actions grouped by kind, in a fixed order, with reasons and sizes.
    headings = [t for t in doc.text if re.match(r"^\S+ (pull|convert|push|relock|delete-local) \(\d+\)$", t)]
    assert headings == ["↓ pull (2)", "⇄ convert (1)", "↑ push (1)", "~ relock (1)"]
    assert "not_locked" in doc.text and "2.5 MB" in doc.text and "≤4.1 kB" in doc.text
    assert "models.a, models.b" in doc.text  # the convert's "after" column
    assert "http://127.0.0.1:9" in doc.text and "careful" in doc.text
    assert any("Plan: 2 to pull" in t for t in doc.text)


def test_svg_has_one_node_per_action_and_one_edge_per_dependency() -> None:
    plan = make_plan(DAG)
    doc = parse(render_html(plan))
    nodes = doc.all("g", "node")
    assert sorted(n["data-id"] for n in nodes) == sorted(a.id for a in DAG)
    edges = {(e["data-from"], e["data-to"]) for e in doc.all("path", "edge")}
    assert len(doc.all("path", "edge")) == sum(len(a.deps) for a in DAG) == 3
    assert edges == {(d, a.id) for a in DAG for d in a.deps}
    assert {n["class"] for n in nodes} >= {"node kind-pull", "node kind-convert", "node kind-push"}


def test_layered_layout_puts_every_dependency_left_of_its_dependant() -> None:
    pos = dag_layout(make_plan(DAG))
    assert pos["pull:models.a"][0] == pos["pull:models.b"][0] == pos["relock:models.e"][0] == 0
    assert pos["convert:conversions.c"] == (1, 0) and pos["push:publish.d"] == (2, 0)
    for a in DAG:
        assert all(pos[d][0] < pos[a.id][0] for d in a.deps)
    rows = [pos[a.id] for a in DAG]
    assert len(set(rows)) == len(rows)  # no two boxes on the same spot
    # The boxes drawn match the layout: x grows with the layer.
    rects = re.findall(r'data-id="([^"]+)"><title>.*?</title><rect x="(\d+)" y="(\d+)"', render_svg(make_plan(DAG)))
    xs = {aid: int(x) for aid, x, _ in rects}
    assert xs["pull:models.a"] < xs["convert:conversions.c"] < xs["push:publish.d"]


def test_a_cyclic_plan_still_renders() -> None:
    """A tampered plan with a cycle must not hang the renderer."""
    cyc = (
        Action(ActionKind.PULL, "models.a", Reason.NOT_LOCKED, deps=("convert:conversions.b",)),
        Action(ActionKind.CONVERT, "conversions.b", Reason.INPUT_CHANGED, deps=("pull:models.a",)),
    )
    doc = parse(render_html(make_plan(cyc)))
    assert len(doc.all("g", "node")) == 2
    assert render_svg(make_plan(())) == ""


def test_every_plan_string_is_escaped_in_html_and_svg() -> None:
    hostile = (
        Action(ActionKind.PULL, "models.a", Reason.NOT_LOCKED, EVIL),
        Action(ActionKind.PUSH, "publish.b", Reason.NOT_PUBLISHED, EVIL, deps=("pull:models.a",)),
    )
    plan = make_plan(hostile, endpoint="http://h/<script>", drift=(Drift("models.a", DriftKind.UPSTREAM_MOVED, EVIL),),
                     warnings=(EVIL,), unchanged=(EVIL,))
    page = render_html(plan)
    doc = parse(page)
    assert "<script" not in page and "<img" not in page and "<title>batuta plan" in page
    assert not doc.all("script") and not doc.all("img")
    assert [t for t in doc.text if t == EVIL]  # shown as text, verbatim
    assert "http://h/<script>" in doc.text
    titles = re.findall(r"<title>(.*?)</title>", page)
    assert any("&lt;/code&gt;" in t for t in titles)


MERMAID_NODE = re.compile(r'^  (n\d+)\["([^"\n`]*)"\]$')
MERMAID_EDGE = re.compile(r"^  (n\d+) --> (n\d+)$")


def mermaid_block(md: str) -> list[str]:
    blocks = re.findall(r"^```mermaid\n(.*?)^```$", md, re.S | re.M)
    assert len(blocks) == 1, md
    lines = blocks[0].rstrip("\n").split("\n")
    assert lines[0] == "flowchart LR"
    return lines[1:]


def test_markdown_plan_has_a_valid_mermaid_block_of_the_dag() -> None:
    md = render_markdown(make_plan(DAG))
    lines = mermaid_block(md)
    nodes = {m.group(1): m.group(2) for ln in lines if (m := MERMAID_NODE.match(ln))}
    edges = [m.groups() for ln in lines if (m := MERMAID_EDGE.match(ln))]
    assert len(nodes) + len(edges) == len(lines)  # every line is a node or an edge
    assert len(nodes) == len(DAG) and len(edges) == 3
    assert all(u in nodes and v in nodes for u, v in edges)
    by_label = {lbl: nid for nid, lbl in nodes.items()}
    conv = next(nid for lbl, nid in by_label.items() if "conversions.c" in lbl)
    assert {u for u, v in edges if v == conv} == {nid for lbl, nid in by_label.items() if "pull models." in lbl and "models.e" not in lbl}
    assert "| ↓ | pull | `models.a` |" in md  # the table stays
    assert "```mermaid" not in render_markdown(make_plan(()))  # no actions, no graph


def test_mermaid_ids_and_labels_are_sanitised() -> None:
    hostile = (
        Action(ActionKind.PULL, 'models.x"];click n0 "javascript:alert(1)', Reason.NOT_LOCKED),
        Action(ActionKind.PUSH, "publish.y\n```\n<script>", Reason.NOT_PUBLISHED, deps=('pull:models.x"];click n0 "javascript:alert(1)',)),
    )
    block = render_mermaid(make_plan(hostile))
    lines = mermaid_block(block)
    assert all(MERMAID_NODE.match(ln) or MERMAID_EDGE.match(ln) for ln in lines), lines
    assert block.count("```") == 2  # the label cannot close the fence
    assert "<" not in block and '"]' not in block.replace('"]\n', "") and "click" in block  # text, not a directive
    assert len([ln for ln in lines if MERMAID_EDGE.match(ln)]) == 1


def test_markdown_table_cells_are_escaped() -> None:
    md = render_markdown(make_plan((Action(ActionKind.PULL, "models.a", Reason.NOT_LOCKED, "a|b <b>x</b>"),)))
    row = next(ln for ln in md.splitlines() if ln.startswith("| ↓ |"))
    assert row.count(" | ") == 5 and r"a\|b &lt;b&gt;x&lt;/b&gt;" in row


@pytest.mark.usefixtures("hub_env")
def test_cli_plan_format_html_writes_the_page(tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from batuta_sync.cli import main

    hub_env.store.commit("org/a", {"config.json": b"{}"})
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "hf.yaml").write_text("version: 1\nmodels:\n  a:\n    repo: org/a\n")
    out = ws / "plan.html"
    assert main(["plan", "-f", str(ws / "hf.yaml"), "--format", "html", "-o", str(out)]) == 0
    _, err = capsys.readouterr()
    assert "Wrote the HTML plan" in err
    doc = parse(out.read_text())
    assert [n["data-id"] for n in doc.all("g", "node")] == ["pull:models.a"]
    assert not (ws / "plan.json").exists()
    assert main(["plan", "-f", str(ws / "hf.yaml"), "--format", "html"]) == 0
    assert capsys.readouterr().out.startswith("<!DOCTYPE html>")
    saved = ws / "saved.json"
    assert main(["plan", "-f", str(ws / "hf.yaml"), "-o", str(saved)]) == 0
    capsys.readouterr()
    assert main(["show", str(saved), "--format", "html"]) == 0
    assert "pull:models.a" in capsys.readouterr().out


def test_empty_plan_endpoint_change_and_dangling_dependencies() -> None:
    empty = parse(render_html(make_plan((), locked_endpoint="https://old.example", endpoint="https://new.example"))).text
    assert "No changes." in empty and any("Endpoint changed" in t for t in empty) and "https://old.example" in empty
    assert "Refresh-only plan." in parse(render_html(make_plan((), options={"refresh_only": True}))).text
    # A dependency on an action outside the plan (e.g. --target) draws no edge and no node.
    lone = (Action(ActionKind.PUSH, "publish.d", Reason.NOT_PUBLISHED, deps=("convert:conversions.gone",)),)
    doc = parse(render_html(make_plan(lone)))
    assert len(doc.all("g", "node")) == 1 and doc.all("path", "edge") == []
    assert "-->" not in render_mermaid(make_plan(lone))
    md = render_markdown(make_plan((), drift=(Drift("models.a", DriftKind.LOCAL_MODIFIED, "x <b>|"),)))
    assert "- `models.a` local_modified: x &lt;b&gt;\\|" in md
