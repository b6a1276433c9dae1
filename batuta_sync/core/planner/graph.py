"""The plan DAG (networkx, imported lazily so `batuta --help` and no-op plans stay fast).

Edges point from a prerequisite to the action that needs it::

    pull:models.llama ──▶ convert:conversions.llama-q4 ──▶ push:publish.llama-gguf
    pull:datasets.squad                                      (independent: runs in parallel)

``execution_order`` returns the topological generations (each a list of action
ids that may run concurrently); ``descendants`` is what a failure skips.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from batuta_sync.core.actions import Action
from batuta_sync.errors import Diagnostic, ManifestError

if TYPE_CHECKING:
    import networkx as nx


def build_graph(actions: Iterable[Action]) -> nx.DiGraph:
    """A DiGraph whose nodes are action ids (attribute ``action``) and edges dep -> dependant."""
    import networkx as nx

    g = nx.DiGraph()
    acts = list(actions)
    for a in acts:
        g.add_node(a.id, action=a)
    for a in acts:
        for dep in a.deps:
            if dep in g:
                g.add_edge(dep, a.id)
    check_acyclic(g)
    return g


def check_acyclic(g: nx.DiGraph) -> None:
    """Raise ManifestError naming the cycle by address when ``g`` has one."""
    import networkx as nx

    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return
    nodes = [u for u, _ in cycle] + [cycle[0][0]]
    text = " -> ".join(n.split(":", 1)[-1] for n in nodes)
    raise ManifestError("The plan has a dependency cycle:", [Diagnostic(f"cycle: {text}")])


def address_cycle(deps: Mapping[str, Sequence[str]]) -> list[str] | None:
    """The first cycle in an address dependency map, by address, or None."""
    import networkx as nx

    g = nx.DiGraph()
    for node, ds in deps.items():
        g.add_node(node)
        for d in ds:
            g.add_edge(d, node)
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return None
    return [u for u, _ in cycle] + [cycle[0][0]]


def execution_order(g: nx.DiGraph) -> list[list[str]]:
    """Topological generations, each sorted (deterministic)."""
    import networkx as nx

    return [sorted(gen) for gen in nx.topological_generations(g)]


def descendants(g: nx.DiGraph, node: str) -> set[str]:
    import networkx as nx

    out: set[str] = nx.descendants(g, node)
    return out


def ancestors(g: nx.DiGraph, node: str) -> set[str]:
    import networkx as nx

    out: set[str] = nx.ancestors(g, node)
    return out


def to_dot(nodes: Mapping[str, str], edges: Iterable[tuple[str, str]], *, title: str = "batuta") -> str:
    """Graphviz text; ``nodes`` maps id -> label."""
    lines = [f'digraph "{title}" {{', "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
    for n in sorted(nodes):
        label = nodes[n].replace('"', '\\"')
        lines.append(f'  "{n}" [label="{label}"];')
    for u, v in sorted(edges):
        lines.append(f'  "{u}" -> "{v}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(nodes: Mapping[str, str], edges: Iterable[tuple[str, str]]) -> str:
    """Mermaid flowchart text (renders in GitHub markdown)."""
    ids = {n: f"n{i}" for i, n in enumerate(sorted(nodes))}
    lines = ["flowchart LR"]
    for n in sorted(nodes):
        label = nodes[n].replace('"', "'")
        lines.append(f'  {ids[n]}["{label}"]')
    for u, v in sorted(edges):
        if u in ids and v in ids:
            lines.append(f"  {ids[u]} --> {ids[v]}")
    return "\n".join(lines) + "\n"


def graph_edges(g: Any) -> list[tuple[str, str]]:
    return sorted((str(u), str(v)) for u, v in g.edges)
