"""Validation of hf.yaml as plain data: the JSON Schema, then the semantic checks.

Every check returns :class:`~batuta_sync.core.manifest.positions.Problem` values (a message and a
path); none needs the text or its positions, which are computed only when there is a problem to
show (:mod:`.positions`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from batuta_sync.core.manifest.model import (
    ADDRESS_RE,
    GGUF_OPTION_KEYS,
    REPO_SECTIONS,
    SECTIONS,
    Path_,
    executor_problem,
)
from batuta_sync.core.manifest.positions import Problem, key_str
from batuta_sync.types import is_valid_repo_id

# --------------------------------------------------------------------------- schema


def schema_path(name: str) -> Path:
    """Where a schema file lives: packaged as ``batuta_sync/_schemas`` or at the repo root ``schemas/``."""
    here = Path(__file__).resolve().parents[2]
    for candidate in (here / "_schemas" / name, here.parent / "schemas" / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"schema {name} not found")  # pragma: no cover - packaging bug


@cache
def load_schema(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(schema_path(name).read_text(encoding="utf-8"))
    return data


_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


def py_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _schema_message(err: Any) -> tuple[str, Path_, bool]:
    """A readable message for one jsonschema error, the path to blame, and whether to point at the key."""
    path: Path_ = tuple(err.absolute_path)
    v = err.validator
    if v == "additionalProperties":
        extra = sorted(k for k in err.instance if k not in err.schema.get("properties", {}))
        allowed = ", ".join(sorted(err.schema.get("properties", {})))
        key = extra[0] if extra else "?"
        return f"unknown key {key!r} (allowed: {allowed})", (*path, key), True
    if v == "required":
        missing = re.findall(r"'([^']+)' is a required property", err.message)
        return f"missing required key {missing[0] if missing else err.message!r}", path, True
    if v == "type":
        want = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        wanted = " or ".join(_TYPE_NAMES.get(str(w), str(w)) for w in want)
        return f"expected {wanted}, got {py_type(err.instance)} ({err.instance!r})", path, False
    if v == "enum":
        opts = ", ".join(str(o) for o in err.validator_value)
        what = "unknown quantization" if path and path[-1] == "quantization" else "invalid value"
        return f"{what} {err.instance!r} (expected one of: {opts})", path, False
    if v == "const":
        return f"unsupported value {err.instance!r} (expected {err.validator_value!r})", path, False
    if v == "pattern" and err.schema.get("description", "").startswith("A resource name"):
        return f"invalid name {err.instance!r}: use letters, digits, '-' and '_' (no dots)", path, True
    if v == "pattern" and "address" in err.schema.get("description", ""):
        return f"{err.instance!r} is not an address (expected e.g. models.<name> or conversions.<name>)", path, False
    if v == "pattern":
        return f"invalid value {err.instance!r} (must match {err.validator_value})", path, False
    if v == "minLength":
        return "must not be empty", path, False
    if v in ("minimum", "maximum"):
        return f"{err.instance!r} is out of range ({v} {err.validator_value})", path, False
    return err.message, path, False


def schema_problems(data: Any) -> list[Problem]:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(load_schema("hf.schema.json"))
    out: list[Problem] = []
    for err in validator.iter_errors(data):
        if err.validator == "propertyNames":
            continue  # reported precisely by its sub-error below (with the key mark)
        msg, path, at_key = _schema_message(err)
        if err.relative_schema_path and "propertyNames" in err.relative_schema_path:
            # The name itself is invalid: the instance is the key string.
            path = (*tuple(err.absolute_path), str(err.instance))
            at_key = True
        out.append(Problem(msg, path, at_key))
    return out


# --------------------------------------------------------------------------- semantic checks


def glob_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable repo-path glob, or None."""
    if not pattern.strip():
        return "empty pattern"
    if pattern.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", pattern):
        return "absolute path: patterns match paths inside the repo"
    if "\\" in pattern:
        return "backslash: use '/' between directories"
    if any(part == ".." for part in pattern.split("/")):
        return "'..' cannot match a repo path"
    return _bracket_problem(pattern)


def _bracket_problem(pattern: str) -> str | None:
    depth = 0
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "[":
            close = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            if close < 0:
                return "unclosed '[' character class"
            i = close
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                return "unbalanced '}'"
        i += 1
    if depth:
        return "unbalanced '{'"
    if re.search(r"\{[^}]*,[^}]*\}", pattern):
        return "brace expansion {a,b} is not supported: list the patterns instead"
    if "***" in pattern:
        return "'***' is not a valid wildcard (use '*' or '**')"
    return None


def _norm_out(path: str) -> str:
    parts: list[str] = []
    for part in path.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == ".." and parts and parts[-1] != "..":
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts) or "."


def _mapping(value: Any) -> dict[Any, Any]:
    """A section as a dict; anything else (the schema already reported it) as empty."""
    return value if isinstance(value, dict) else {}


def _entries(data: dict[str, Any], section: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, spec in _mapping(data.get(section)).items():
        if isinstance(spec, dict):
            yield name, spec


class _Checker:
    """The semantic checks of one document (plain data in, problems out)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.out: list[Problem] = []
        self.addresses: set[str] = set()
        for section in SECTIONS:
            entries = data.get(section)
            if isinstance(entries, dict):
                self.addresses.update(f"{section}.{name}" for name in entries)
        self.outputs: list[tuple[str, Path_]] = []
        self.edges: dict[str, str] = {}

    def diag(self, msg: str, path: Path_, *, at_key: bool = False) -> None:
        self.out.append(Problem(msg, path, at_key))

    def _repo_id(self, spec: dict[str, Any], base: Path_) -> None:
        repo = spec.get("repo")
        if isinstance(repo, str) and repo and not is_valid_repo_id(repo):
            self.diag(f"invalid repo id {repo!r}: use 'namespace/name' with letters, digits, '-', '_', '.'", (*base, "repo"))

    def repos(self) -> None:
        for section in REPO_SECTIONS:
            for name, spec in _entries(self.data, section):
                base: Path_ = (section, name)
                self._repo_id(spec, base)
                for key in ("include", "exclude"):
                    pats = spec.get(key)
                    for i, pat in enumerate(pats if isinstance(pats, list) else ()):
                        if isinstance(pat, str) and (why := glob_problem(pat)):
                            self.diag(f"bad glob {pat!r}: {why}", (*base, key, i))
                if spec.get("split") is not None and section != "datasets":
                    self.diag("'split' only applies to datasets", (*base, "split"), at_key=True)
                if spec.get("quantization") is not None and spec.get("format") not in (None, "gguf"):
                    self.diag("'quantization' selects GGUF files: set format: gguf or drop it", (*base, "quantization"), at_key=True)
                if isinstance(spec.get("output"), str):
                    self.outputs.append((spec["output"], (*base, "output")))

    def conversions(self) -> None:
        for name, spec in _entries(self.data, "conversions"):
            base: Path_ = ("conversions", name)
            src = spec.get("from")
            if isinstance(src, str) and ADDRESS_RE.match(src):
                if src not in self.addresses:
                    self.diag(f"dangling address {src!r}: no such resource in this manifest", (*base, "from"))
                elif src.startswith("publish."):
                    self.diag(f"cannot convert {src!r}: a publish has no local files", (*base, "from"))
                else:
                    self.edges[f"conversions.{name}"] = src
            for key in ("quantization", *GGUF_OPTION_KEYS):
                if spec.get(key) not in (None, False, []) and spec.get("to") == "safetensors":
                    self.diag(f"'{key}' applies to GGUF output only (to: gguf)", (*base, key), at_key=True)
            out_path = str(spec["output"]) if isinstance(spec.get("output"), str) else f".batuta/outputs/conversions/{name}"
            self.outputs.append((out_path, (*base, "output") if "output" in spec else base))

    def publishes(self) -> None:
        for name, spec in _entries(self.data, "publish"):
            base: Path_ = ("publish", name)
            self._repo_id(spec, base)
            self._publish_source(spec.get("from"), name, base)
            if spec.get("sdk") and spec.get("type", "model") != "space":
                self.diag("'sdk' only applies to spaces (type: space)", (*base, "sdk"), at_key=True)
            if spec.get("type") == "space" and not spec.get("sdk"):
                self.diag("a space needs 'sdk' (gradio, streamlit, docker or static)", base)

    def _publish_source(self, src: Any, name: str, base: Path_) -> None:
        if not isinstance(src, str):
            return
        if ADDRESS_RE.match(src):
            if src not in self.addresses:
                self.diag(f"dangling address {src!r}: no such resource in this manifest", (*base, "from"))
            elif src.startswith("publish."):
                self.diag(f"cannot publish from {src!r}: publish from a path, a repo or a conversion", (*base, "from"))
            else:
                self.edges[f"publish.{name}"] = src
        elif re.match(r"^[A-Za-z]+\.[A-Za-z0-9_-]+$", src) and src.split(".")[0] in ("model", "dataset", "space", "conversion"):
            self.diag(f"{src!r} looks like a misspelt address (sections are plural: models., conversions.)", (*base, "from"))

    def on_demand(self) -> None:
        """``fetch: on-demand``: a cache-only repo whose every user is a conversion (so a remote
        run-cache hit can skip its download, docs/remote.md)."""
        for section in REPO_SECTIONS:
            for name, spec in _entries(self.data, section):
                if spec.get("fetch") != "on-demand":
                    continue
                base: Path_ = (section, name, "fetch")
                users = [u for u, src in self.edges.items() if src == f"{section}.{name}"]
                if spec.get("output") is not None:
                    self.diag("'fetch: on-demand' is for cache-only repos: drop 'output:' or the fetch setting", base)
                elif not users or any(not u.startswith("conversions.") for u in users):
                    self.diag("'fetch: on-demand' needs every user of this repo to be a conversion "
                              "(a publish needs its files; with no conversion it would never be pulled)", base)

    def policies(self) -> None:
        policies = self.data.get("policies")
        value = policies.get("executor") if isinstance(policies, dict) else None
        if isinstance(value, str) and (problem := executor_problem(value)):
            self.diag(problem, ("policies", "executor"))

    def cycles(self) -> None:
        """Cycles, by address (conversions may chain)."""
        reported: set[str] = set()
        for start in sorted(self.edges):
            seen: list[str] = [start]
            cur = start
            while cur in self.edges:
                cur = self.edges[cur]
                if cur in seen:
                    cycle = seen[seen.index(cur) :]
                    if not reported.intersection(cycle):
                        reported.update(cycle)
                        sect, nm = cycle[0].split(".", 1)
                        self.diag("dependency cycle: " + " -> ".join([*cycle, cur]), (sect, nm, "from"))
                    break
                seen.append(cur)

    def conflicting_outputs(self) -> None:
        """The same directory, or one inside another."""
        normed = [(_norm_out(p), p, path) for p, path in self.outputs]
        for i, (a, raw_a, path_a) in enumerate(normed):
            for b, raw_b, path_b in normed[:i]:
                if a == b or a.startswith(b + "/") or b.startswith(a + "/") or "." in (a, b):
                    self.diag(f"conflicting output {raw_a!r}: overlaps {raw_b!r} of {key_str(path_b[:2])}", path_a)


    def moved(self) -> None:
        """``moved:`` blocks: ``to`` declared, ``from`` not, the same section, and each address at
        most once on each side and never on both (no chains, no cycles)."""
        pairs = _move_pairs(self.data.get("moved"))
        froms = [src for _i, src, _dst in pairs]
        tos = [dst for _i, _src, dst in pairs]
        for i, src, dst in pairs:
            base: Path_ = ("moved", i)
            if src == dst:
                self.diag(f"moved from {src!r} to itself: drop this move", (*base, "to"))
                continue
            if src.split(".")[0] != dst.split(".")[0]:
                self.diag(f"cannot move {src!r} to {dst!r}: a move stays in its section ({src.split('.')[0]}.)", (*base, "to"))
            if dst not in self.addresses:
                self.diag(f"moved to {dst!r}, which is not declared in this manifest", (*base, "to"))
            if src in self.addresses:
                self.diag(f"moved from {src!r}, which is still declared: remove it, or drop this move", (*base, "from"))
            if src in tos or dst in froms:
                self.diag(f"chained or cyclic move {src!r} -> {dst!r}: write each rename as one move from the oldest address", base)
            elif froms.count(src) > 1:
                self.diag(f"{src!r} is moved more than once", (*base, "from"))
            elif tos.count(dst) > 1:
                self.diag(f"several moves to {dst!r}", (*base, "to"))


def _move_pairs(moved: Any) -> list[tuple[int, str, str]]:
    """(index, from, to) of the well-formed ``moved:`` blocks (the schema reports the others)."""
    out: list[tuple[int, str, str]] = []
    for i, m in enumerate(moved if isinstance(moved, list) else ()):
        src, dst = (m.get("from"), m.get("to")) if isinstance(m, dict) else (None, None)
        if isinstance(src, str) and isinstance(dst, str) and ADDRESS_RE.match(src) and ADDRESS_RE.match(dst):
            out.append((i, src, dst))
    return out


def semantic_problems(data: dict[str, Any]) -> list[Problem]:
    check = _Checker(data)
    check.repos()
    check.conversions()
    check.publishes()
    check.on_demand()
    check.policies()
    check.cycles()
    check.moved()
    check.conflicting_outputs()
    return check.out
