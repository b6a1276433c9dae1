"""hf.yaml: parse, validate (JSON Schema + semantic checks) and model the desired state.

``parse_manifest(text, source=)`` is pure (text in, frozen :class:`Manifest` out);
``load_manifest(path)`` reads the file.  Every problem is collected and raised at
once as a :class:`~batuta_sync.errors.ManifestError` whose diagnostics carry
``file:line:col`` and the key, Terraform-style::

    hf.yaml:7:5: models.llama.revison: unknown key 'revison' (allowed: exclude, format, …)

How positions are found: the text is *composed* (``yaml.compose``) into a node
tree that keeps marks; the tree is walked once into plain data plus a table
``path -> mark``; jsonschema errors carry ``absolute_path`` which is looked up in
that table.  Duplicate keys (which ``yaml.safe_load`` silently collapses) are
found during the same walk.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from batuta_sync.errors import Diagnostic, ManifestError
from batuta_sync.types import HfAssetType, is_valid_repo_id

ADDRESS_RE = re.compile(r"^(models|datasets|spaces|conversions|publish)\.([A-Za-z0-9][A-Za-z0-9_-]{0,63})$")
REPO_SECTIONS: dict[str, HfAssetType] = {
    "models": HfAssetType.MODEL,
    "datasets": HfAssetType.DATASET,
    "spaces": HfAssetType.SPACE,
}
SECTIONS = ("models", "datasets", "spaces", "conversions", "publish")
# conversions: llama-quantize / gguf-split options (keyword arguments of batuta_sync.convert.convert)
GGUF_OPTION_KEYS = ("tensor_types", "output_tensor_type", "token_embedding_type", "pure", "allow_requantize",
                    "split_max_size", "split_max_tensors", "imatrix")
DEFAULT_REVISION = "main"
Path_ = tuple[str | int, ...]


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class RepoSpec:
    """A repo to pull: ``models.<name>``, ``datasets.<name>`` or ``spaces.<name>``."""

    address: str
    repo: str
    repo_type: HfAssetType
    revision: str = DEFAULT_REVISION
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    format: str | None = None
    quantization: str | None = None
    split: str | None = None
    output: str | None = None  # relative to the manifest directory
    allow_unsafe: bool = False

    def selection(self) -> dict[str, Any]:
        """The fields that decide *which files* are locked (part of the lock entry)."""
        return {
            "include": list(self.include),
            "exclude": list(self.exclude),
            "format": self.format,
            "quantization": self.quantization,
            "split": self.split,
            "allow_unsafe": self.allow_unsafe,
        }

    def selection_digest(self) -> str:
        return digest_of(self.selection())


@dataclass(frozen=True, slots=True)
class ConversionSpec:
    """A conversion ``conversions.<name>`` of another address's files."""

    address: str
    source: str  # an address
    to: str  # gguf | safetensors
    quantization: str | None = None
    output: str | None = None
    # GGUF options as written in hf.yaml (only those set), e.g. (("pure", True), ("tensor_types", ("attn_v=Q8_0",)))
    gguf_options: tuple[tuple[str, Any], ...] = ()
    # SHA-256 of the ``imatrix:`` file (set by load_manifest, which resolves its path): the memo key
    # follows the file's content, not its name
    imatrix_sha256: str | None = None

    def params(self) -> dict[str, Any]:
        """The memo-key parameters; the GGUF options only when set (so older lock entries stay valid)."""
        out: dict[str, Any] = {"to": self.to, "quantization": self.quantization}
        for key, value in self.gguf_options:
            out[key] = ";".join(value) if isinstance(value, tuple) else str(value).lower() if isinstance(value, bool) else str(value)
        if self.imatrix_sha256:
            out["imatrix"] = "sha256:" + self.imatrix_sha256
        return out

    def convert_kwargs(self) -> dict[str, Any]:
        """The GGUF options as keyword arguments of ``batuta_sync.convert.convert``."""
        return dict(self.gguf_options)

    @property
    def output_path(self) -> str:
        return self.output or f".batuta/outputs/conversions/{self.address.split('.', 1)[1]}"


@dataclass(frozen=True, slots=True)
class PublishSpec:
    """A repo to publish ``publish.<name>`` from a local path or an address."""

    address: str
    source: str  # an address or a local path
    repo: str
    repo_type: HfAssetType = HfAssetType.MODEL
    revision: str = DEFAULT_REVISION
    format: str | None = None
    private: bool = False
    message: str | None = None
    card: tuple[tuple[str, Any], ...] = ()
    sdk: str | None = None
    prune: bool = False
    allow_unsafe: bool = False

    @property
    def source_is_address(self) -> bool:
        return bool(ADDRESS_RE.match(self.source))

    def params(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "private": self.private,
            "message": self.message,
            "card": dict(self.card),
            "sdk": self.sdk,
            "prune": self.prune,
        }


@dataclass(frozen=True)
class Manifest:
    """The parsed, validated hf.yaml.  ``digest`` covers the meaning, not comments or layout."""

    path: str
    digest: str
    version: int = 1
    repos: tuple[RepoSpec, ...] = ()
    conversions: tuple[ConversionSpec, ...] = ()
    publishes: tuple[PublishSpec, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    policies: Mapping[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        """The directory relative paths are resolved against."""
        return Path(self.path).resolve().parent if self.path else Path.cwd()

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(r.address for r in self.specs)

    @property
    def specs(self) -> tuple[RepoSpec | ConversionSpec | PublishSpec, ...]:
        return (*self.repos, *self.conversions, *self.publishes)

    def get(self, address: str) -> RepoSpec | ConversionSpec | PublishSpec | None:
        for r in self.specs:
            if r.address == address:
                return r
        return None

    def settings_layer(self) -> dict[str, Any]:
        """The hf.yaml layer of :func:`batuta_sync.settings.resolve_settings` (policies win over defaults)."""
        layer: dict[str, Any] = {}
        for src in (self.defaults, self.policies):
            for key in ("endpoint", "offline", "cache_dir", "metadata_ttl", "remote"):
                if src.get(key) is not None:
                    layer[key] = src[key]
        if "cache_dir" in layer:
            layer["cache_dir"] = str((self.root / str(layer["cache_dir"])).resolve())
        return layer

    @property
    def jobs(self) -> int:
        return int(self.policies.get("jobs", 8))

    @property
    def materialize(self) -> str:
        return str(self.policies.get("materialize", "symlink"))

    @property
    def allow_unsafe(self) -> bool:
        return self.policies.get("safety") == "allow_unsafe"


def digest_of(obj: Any) -> str:
    """``sha256:`` of the canonical JSON of ``obj`` (sorted keys, no spaces)."""
    data = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(data.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- schema


def schema_path(name: str) -> Path:
    """Where a schema file lives: packaged as ``batuta_sync/_schemas`` or at the repo root ``schemas/``."""
    here = Path(__file__).resolve().parents[1]
    for candidate in (here / "_schemas" / name, here.parent / "schemas" / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"schema {name} not found")  # pragma: no cover - packaging bug


@cache
def load_schema(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(schema_path(name).read_text(encoding="utf-8"))
    return data


# --------------------------------------------------------------------------- YAML with positions


@dataclass
class _Doc:
    data: Any
    marks: dict[Path_, tuple[int, int]]  # path -> (line, col) of the value (1-based)
    key_marks: dict[Path_, tuple[int, int]]  # path -> (line, col) of the key naming it
    diags: list[Diagnostic]


def _key_str(path: Path_) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


_MAX_NODES = 10_000


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


_TOO_DEEP = "the document is nested too deeply to be a manifest"


class _TooLarge(Exception):
    pass


def _compose(text: str, source: str) -> _Doc:
    import yaml

    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    doc = _Doc(None, {}, {}, [])
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
        doc.data = None
        return doc
    constructor = yaml.constructor.SafeConstructor()
    # aliases can make a tiny file expand exponentially ("billion laughs"): allow a few re-visits only
    budget = [_MAX_NODES + 10 * _distinct_nodes(node)]

    def walk(n: Any, path: Path_) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise _TooLarge
        doc.marks[path] = (n.start_mark.line + 1, n.start_mark.column + 1)
        if isinstance(n, yaml.MappingNode):
            out: dict[Any, Any] = {}
            first: dict[Any, int] = {}
            for knode, vnode in n.value:
                if knode.tag == "tag:yaml.org,2002:merge":
                    doc.diags.append(
                        Diagnostic(
                            "YAML merge keys (<<) are not supported in hf.yaml",
                            source,
                            knode.start_mark.line + 1,
                            knode.start_mark.column + 1,
                            _key_str(path),
                        )
                    )
                    continue
                key = constructor.construct_object(knode, deep=True)
                if not isinstance(key, str | int | float | bool) or key is None:
                    key = str(key)
                kpath = (*path, str(key))
                if key in first:
                    what = "duplicate name" if len(path) == 1 and path[0] in SECTIONS else "duplicate key"
                    doc.diags.append(
                        Diagnostic(
                            f"{what} {key!r} (first defined at line {first[key]}); YAML would silently keep the last one",
                            source,
                            knode.start_mark.line + 1,
                            knode.start_mark.column + 1,
                            _key_str(kpath),
                        )
                    )
                    continue
                first[key] = knode.start_mark.line + 1
                doc.key_marks[kpath] = (knode.start_mark.line + 1, knode.start_mark.column + 1)
                out[str(key) if not isinstance(key, str) else key] = walk(vnode, kpath)
            return out
        if isinstance(n, yaml.SequenceNode):
            return [walk(v, (*path, i)) for i, v in enumerate(n.value)]
        return constructor.construct_object(n, deep=True)

    try:
        doc.data = walk(node, ())
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


# --------------------------------------------------------------------------- validation


_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


def _py_type(value: Any) -> str:
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
        return f"expected {wanted}, got {_py_type(err.instance)} ({err.instance!r})", path, False
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


def _schema_diags(doc: _Doc, source: str) -> list[Diagnostic]:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(load_schema("hf.schema.json"))
    out: list[Diagnostic] = []
    for err in validator.iter_errors(doc.data):
        if err.validator == "propertyNames":
            continue  # reported precisely by its sub-error below (with the key mark)
        msg, path, at_key = _schema_message(err)
        if err.relative_schema_path and "propertyNames" in err.relative_schema_path:
            # The name itself is invalid: the instance is the key string.
            path = (*tuple(err.absolute_path), str(err.instance))
            at_key = True
        line, col = (doc.key_marks.get(path) if at_key else None) or _nearest(doc.marks, path)
        out.append(Diagnostic(msg, source, line, col, _key_str(path)))
    return out


def _nearest(marks: Mapping[Path_, tuple[int, int]], path: Path_) -> tuple[int, int]:
    for i in range(len(path), -1, -1):
        if path[:i] in marks:
            return marks[path[:i]]
    return (0, 0)


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


def _semantic_diags(doc: _Doc, source: str) -> list[Diagnostic]:
    data = doc.data
    out: list[Diagnostic] = []

    def diag(msg: str, path: Path_, *, at_key: bool = False) -> None:
        line, col = (doc.key_marks.get(path) if at_key else None) or _nearest(doc.marks, path)
        out.append(Diagnostic(msg, source, line, col, _key_str(path)))

    addresses: set[str] = set()
    for section in SECTIONS:
        entries = data.get(section)
        if isinstance(entries, dict):
            addresses.update(f"{section}.{name}" for name in entries)

    outputs: list[tuple[str, Path_]] = []
    edges: dict[str, str] = {}
    for section in REPO_SECTIONS:
        for name, spec in _mapping(data.get(section)).items():
            if not isinstance(spec, dict):
                continue
            base: Path_ = (section, name)
            repo = spec.get("repo")
            if isinstance(repo, str) and repo and not is_valid_repo_id(repo):
                diag(f"invalid repo id {repo!r}: use 'namespace/name' with letters, digits, '-', '_', '.'", (*base, "repo"))
            for key in ("include", "exclude"):
                pats = spec.get(key)
                if isinstance(pats, list):
                    for i, pat in enumerate(pats):
                        if isinstance(pat, str) and (why := glob_problem(pat)):
                            diag(f"bad glob {pat!r}: {why}", (*base, key, i))
            if spec.get("split") is not None and section != "datasets":
                diag("'split' only applies to datasets", (*base, "split"), at_key=True)
            if spec.get("quantization") is not None and spec.get("format") not in (None, "gguf"):
                diag("'quantization' selects GGUF files: set format: gguf or drop it", (*base, "quantization"), at_key=True)
            if isinstance(spec.get("output"), str):
                outputs.append((spec["output"], (*base, "output")))
    for name, spec in _mapping(data.get("conversions")).items():
        if not isinstance(spec, dict):
            continue
        base = ("conversions", name)
        src = spec.get("from")
        if isinstance(src, str) and ADDRESS_RE.match(src):
            if src not in addresses:
                diag(f"dangling address {src!r}: no such resource in this manifest", (*base, "from"))
            elif src.startswith("publish."):
                diag(f"cannot convert {src!r}: a publish has no local files", (*base, "from"))
            else:
                edges[f"conversions.{name}"] = src
        for key in ("quantization", *GGUF_OPTION_KEYS):
            if spec.get(key) not in (None, False, []) and spec.get("to") == "safetensors":
                diag(f"'{key}' applies to GGUF output only (to: gguf)", (*base, key), at_key=True)
        out_path = str(spec["output"]) if isinstance(spec.get("output"), str) else f".batuta/outputs/conversions/{name}"
        out_key: Path_ = (*base, "output") if "output" in spec else base
        outputs.append((out_path, out_key))
    for name, spec in _mapping(data.get("publish")).items():
        if not isinstance(spec, dict):
            continue
        base = ("publish", name)
        repo = spec.get("repo")
        if isinstance(repo, str) and repo and not is_valid_repo_id(repo):
            diag(f"invalid repo id {repo!r}: use 'namespace/name' with letters, digits, '-', '_', '.'", (*base, "repo"))
        src = spec.get("from")
        if isinstance(src, str) and ADDRESS_RE.match(src):
            if src not in addresses:
                diag(f"dangling address {src!r}: no such resource in this manifest", (*base, "from"))
            elif src.startswith("publish."):
                diag(f"cannot publish from {src!r}: publish from a path, a repo or a conversion", (*base, "from"))
            else:
                edges[f"publish.{name}"] = src
        elif isinstance(src, str) and re.match(r"^[A-Za-z]+\.[A-Za-z0-9_-]+$", src) and src.split(".")[0] in (
            "model",
            "dataset",
            "space",
            "conversion",
        ):
            diag(f"{src!r} looks like a misspelt address (sections are plural: models., conversions.)", (*base, "from"))
        if spec.get("sdk") and spec.get("type", "model") != "space":
            diag("'sdk' only applies to spaces (type: space)", (*base, "sdk"), at_key=True)
        if spec.get("type") == "space" and not spec.get("sdk"):
            diag("a space needs 'sdk' (gradio, streamlit, docker or static)", base)

    # Cycles, by address (conversions may chain).
    reported: set[str] = set()
    for start in sorted(edges):
        seen: list[str] = [start]
        cur = start
        while cur in edges:
            cur = edges[cur]
            if cur in seen:
                cycle = seen[seen.index(cur) :]
                if not reported.intersection(cycle):
                    reported.update(cycle)
                    sect, nm = cycle[0].split(".", 1)
                    diag("dependency cycle: " + " -> ".join([*cycle, cur]), (sect, nm, "from"))
                break
            seen.append(cur)

    # Conflicting outputs: the same directory, or one inside another.
    normed = [(_norm_out(p), p, path) for p, path in outputs]
    for i, (a, raw_a, path_a) in enumerate(normed):
        for b, raw_b, path_b in normed[:i]:
            if a == b or a.startswith(b + "/") or b.startswith(a + "/") or "." in (a, b):
                diag(
                    f"conflicting output {raw_a!r}: overlaps {raw_b!r} of {_key_str(path_b[:2])}",
                    path_a,
                )
    return out


def parse_manifest(text: str, *, source: str = "hf.yaml", schema_checked: bool = False) -> Manifest:
    """Parse and validate hf.yaml text; raise ManifestError listing *every* problem.

    ``schema_checked``: this exact text already passed the JSON Schema (see
    :func:`load_manifest`'s validation cache), so skip it; semantic checks always run.
    """
    doc = _compose(text, source)
    diags = list(doc.diags)
    if not diags and not isinstance(doc.data, dict):
        line, col = doc.marks.get((), (1, 1))
        diags.append(Diagnostic(f"expected a mapping at the top level, got {_py_type(doc.data)}", source, line, col))
    if isinstance(doc.data, dict):
        if not schema_checked:
            diags += _schema_diags(doc, source)
        diags += _semantic_diags(doc, source)
    if diags:
        diags.sort(key=lambda d: (d.line, d.col, d.message))
        n = len(diags)
        raise ManifestError(f"{source} has {n} problem{'s' if n != 1 else ''}:", diags)
    return _build(doc.data, source)


def _build(data: dict[str, Any], source: str) -> Manifest:
    defaults = dict(data.get("defaults") or {})
    unsafe_policy = (data.get("policies") or {}).get("safety") == "allow_unsafe"
    default_rev = str(defaults.get("revision", DEFAULT_REVISION))
    repos: list[RepoSpec] = []
    for section, rtype in REPO_SECTIONS.items():
        for name, spec in sorted((data.get(section) or {}).items()):
            repos.append(
                RepoSpec(
                    address=f"{section}.{name}",
                    repo=spec["repo"],
                    repo_type=rtype,
                    revision=str(spec.get("revision", default_rev)),
                    include=tuple(spec.get("include") or ()),
                    exclude=tuple(spec.get("exclude") or ()),
                    format=spec.get("format"),
                    quantization=spec.get("quantization"),
                    split=spec.get("split"),
                    output=spec.get("output"),
                    allow_unsafe=bool(spec.get("allow_unsafe", unsafe_policy)),
                )
            )
    conversions = tuple(
        ConversionSpec(
            address=f"conversions.{name}",
            source=spec["from"],
            to=spec["to"],
            quantization=spec.get("quantization") or ("Q4_K_M" if spec["to"] == "gguf" else None),
            output=spec.get("output"),
            gguf_options=tuple((k, tuple(spec[k]) if isinstance(spec[k], list) else spec[k])
                               for k in GGUF_OPTION_KEYS if spec.get(k) not in (None, False, [])),
        )
        for name, spec in sorted((data.get("conversions") or {}).items())
    )
    publishes = tuple(
        PublishSpec(
            address=f"publish.{name}",
            source=spec["from"],
            repo=spec["repo"],
            repo_type=HfAssetType(spec.get("type", "model")),
            revision=str(spec.get("revision", DEFAULT_REVISION)),
            format=spec.get("format"),
            private=bool(spec.get("private", defaults.get("private", False))),
            message=spec.get("message"),
            card=tuple(sorted((spec.get("card") or {}).items())),
            sdk=spec.get("sdk"),
            prune=bool(spec.get("prune", False)),
            allow_unsafe=bool(spec.get("allow_unsafe", unsafe_policy)),
        )
        for name, spec in sorted((data.get("publish") or {}).items())
    )
    return Manifest(
        path=source,
        digest=digest_of(data),
        version=int(data["version"]),
        repos=tuple(repos),
        conversions=conversions,
        publishes=publishes,
        defaults=defaults,
        policies=dict(data.get("policies") or {}),
    )


def _resolve_imatrix(manifest: Manifest) -> Manifest:
    """Each ``imatrix:`` path made absolute (inside the project directory) and its file digested."""
    import dataclasses
    import hashlib

    from batuta_sync._fs import confine

    convs = []
    for c in manifest.conversions:
        opts = dict(c.gguf_options)
        if opts.get("imatrix"):
            target = confine(manifest.root, manifest.root / str(opts["imatrix"]), what=f"{c.address}.imatrix")
            try:
                digest = hashlib.sha256()
                with target.open("rb") as f:
                    for block in iter(lambda: f.read(1 << 24), b""):
                        digest.update(block)
            except OSError as exc:
                raise ManifestError(f"{c.address}: cannot read the importance matrix {opts['imatrix']}: "
                                    f"{exc.strerror or exc}.",
                                    hint="imatrix: is a path relative to hf.yaml's directory.") from None
            opts["imatrix"] = str(target)
            c = dataclasses.replace(c, gguf_options=tuple(opts.items()), imatrix_sha256=digest.hexdigest())
        convs.append(c)
    return dataclasses.replace(manifest, conversions=tuple(convs))


def load_manifest(path: str | Path = "hf.yaml") -> Manifest:
    """Read and validate ``path``; raise ManifestError (exit 3) listing every problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(
            f"{p} not found.",
            hint="Create hf.yaml (see docs/manifest.md) or point at it with -f PATH.",
        )
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"Cannot read {p}: {exc}.")
    # Validation cache: importing jsonschema and validating costs ~0.1 s, more than the
    # whole offline no-op plan should; a text that passed the same schema is not re-checked.
    # The marker is content-addressed and lives in batuta's own state dir, not in the project.
    key = _validation_key(text)
    marker = _validation_dir() / key
    checked = marker.is_file()
    manifest = parse_manifest(text, source=str(p), schema_checked=checked)
    if any(dict(c.gguf_options).get("imatrix") for c in manifest.conversions):
        manifest = _resolve_imatrix(manifest)
    if not checked:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        except OSError:
            pass  # read-only home: just validate every time
    return manifest


def _validation_dir() -> Path:
    """``$HF_HOME/batuta/manifest-checked`` (HF_HOME defaults to ~/.cache/huggingface)."""
    import os

    home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
    return Path(home).expanduser() / "batuta" / "manifest-checked"


def _validation_key(text: str) -> str:
    from batuta_sync._version import __version__

    h = hashlib.sha256()
    for part in (__version__, schema_path("hf.schema.json").read_text(encoding="utf-8"), text):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def dependencies(manifest: Manifest) -> dict[str, tuple[str, ...]]:
    """address -> the addresses it reads from (its ``from``, when that is an address)."""
    deps: dict[str, tuple[str, ...]] = {r.address: () for r in manifest.repos}
    for c in manifest.conversions:
        deps[c.address] = (c.source,)
    for p in manifest.publishes:
        deps[p.address] = (p.source,) if p.source_is_address else ()
    return deps


def iter_specs(manifest: Manifest) -> Iterable[RepoSpec | ConversionSpec | PublishSpec]:
    yield from manifest.repos
    yield from manifest.conversions
    yield from manifest.publishes
