"""Where things are in the hf.yaml text: the slow, marked reading, used only when needed.

:func:`compose` walks the composed node tree (``yaml.compose`` keeps marks) into the same plain data
the fast reader builds, plus the tables ``path -> (line, col)`` of every value and key.  It also
reports what the fast reader refuses to guess about: syntax errors, duplicate keys (which
``yaml.safe_load`` silently collapses), merge keys and alias bombs.  :func:`locate` turns a problem
found on plain data (a path) into a ``file:line:col`` diagnostic.

This is the DVC way: a valid manifest — every ``plan`` — never pays for the marks; a manifest with a
problem is read a second time with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from batuta_sync.core.manifest.model import SECTIONS, Path_
from batuta_sync.errors import Diagnostic

_MAX_NODES = 10_000
_TOO_DEEP = "the document is nested too deeply to be a manifest"
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass
class Doc:
    """hf.yaml read with positions."""

    data: Any
    marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)  # path -> (line, col) of the value (1-based)
    key_marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)  # path -> (line, col) of the key naming it
    diags: list[Diagnostic] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Problem:
    """A problem found on plain data: what, where (a path into the document), and whether the key
    (rather than its value) is to blame."""

    message: str
    path: Path_
    at_key: bool = False

    def locate(self, doc: Doc, source: str) -> Diagnostic:
        line, col = (doc.key_marks.get(self.path) if self.at_key else None) or nearest(doc.marks, self.path)
        return Diagnostic(self.message, source, line, col, key_str(self.path))


def key_str(path: Path_) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


def nearest(marks: Mapping[Path_, tuple[int, int]], path: Path_) -> tuple[int, int]:
    for i in range(len(path), -1, -1):
        if path[:i] in marks:
            return marks[path[:i]]
    return (0, 0)


def _distinct_nodes(root: Any) -> int:
    """Nodes of a composed YAML graph, each counted once however many aliases point at it."""
    import yaml

    seen: set[int] = set()
    stack = [root]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                stack += (k, v)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
    return len(seen)


class _TooLarge(Exception):
    pass


def _mark(node: Any) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Walker:
    """One walk of a composed tree into plain data, recording marks and key-level problems."""

    def __init__(self, doc: Doc, source: str, budget: int) -> None:
        import yaml

        self.doc = doc
        self.source = source
        self.budget = budget
        self.constructor = yaml.constructor.SafeConstructor()
        self.yaml = yaml

    def walk(self, n: Any, path: Path_) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise _TooLarge
        self.doc.marks[path] = _mark(n)
        if isinstance(n, self.yaml.MappingNode):
            return self._mapping(n, path)
        if isinstance(n, self.yaml.SequenceNode):
            return [self.walk(v, (*path, i)) for i, v in enumerate(n.value)]
        return self.constructor.construct_object(n, deep=True)

    def _mapping(self, n: Any, path: Path_) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        first: dict[Any, int] = {}
        for knode, vnode in n.value:
            if knode.tag == _MERGE_TAG:
                self._diag("YAML merge keys (<<) are not supported in hf.yaml", knode, path)
                continue
            key = self.constructor.construct_object(knode, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                key = str(key)
            kpath = (*path, str(key))
            if key in first:
                what = "duplicate name" if len(path) == 1 and path[0] in SECTIONS else "duplicate key"
                self._diag(f"{what} {key!r} (first defined at line {first[key]}); YAML would silently keep the last one",
                           knode, kpath)
                continue
            first[key] = knode.start_mark.line + 1
            self.doc.key_marks[kpath] = _mark(knode)
            out[str(key) if not isinstance(key, str) else key] = self.walk(vnode, kpath)
        return out

    def _diag(self, message: str, node: Any, path: Path_) -> None:
        self.doc.diags.append(Diagnostic(message, self.source, *_mark(node), key_str(path)))


def compose(text: str, source: str) -> Doc:
    """``text`` read with positions; YAML-level problems in ``Doc.diags``."""
    import yaml

    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    doc = Doc(None)
    try:
        node = yaml.compose(text, Loader=loader_cls)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        problem = exc.problem or exc.context or "invalid YAML"
        doc.diags.append(Diagnostic(f"YAML syntax error: {problem}", source, line, col))
        return doc
    except yaml.YAMLError as exc:  # pragma: no cover - unmarked scanner errors are rare
        doc.diags.append(Diagnostic(f"YAML error: {exc}", source))
        return doc
    except RecursionError:
        doc.diags.append(Diagnostic(_TOO_DEEP, source))
        return doc
    if node is None:
        return doc
    # aliases can make a tiny file expand exponentially ("billion laughs"): allow a few re-visits only
    walker = _Walker(doc, source, _MAX_NODES + 10 * _distinct_nodes(node))
    try:
        doc.data = walker.walk(node, ())
    except _TooLarge:
        doc.diags.append(Diagnostic("YAML anchors/aliases expand the document far beyond its size; write it out", source))
    except RecursionError:
        doc.diags.append(Diagnostic(_TOO_DEEP, source))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        doc.diags.append(
            Diagnostic(f"YAML error: {getattr(exc, 'problem', exc)}", source, *((mark.line + 1, mark.column + 1) if mark else (0, 0)))
        )
    return doc
