"""Metadata the Hub derives from file contents: safetensors/GGUF header summaries and card front matter.

Everything here reads only headers (never a whole weight file) and is pure apart from opening the
blob it is given.  Malformed input yields ``None`` (the Hub simply omits the summary), never an error.
"""

from __future__ import annotations

import functools
import json
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024

# safetensors dtype names as the Hub reports them (it uses the file's own spelling).
_GGUF_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1),
    1: ("<b", 1),
    2: ("<H", 2),
    3: ("<h", 2),
    4: ("<I", 4),
    5: ("<i", 4),
    6: ("<f", 4),
    7: ("<?", 1),
    10: ("<Q", 8),
    11: ("<q", 8),
    12: ("<d", 8),
}
_GGUF_STRING = 8
_GGUF_ARRAY = 9
_MAX_GGUF_ITEMS = 1 << 26  # sanity cap on array lengths / counts


def safetensors_params(path: Path) -> dict[str, int] | None:
    """Parameter count per dtype from a safetensors file header, or None if it is not one."""
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                return None
            (n,) = struct.unpack("<Q", raw)
            if n == 0 or n > MAX_SAFETENSORS_HEADER:
                return None
            header = json.loads(f.read(n))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict):
        return None
    out: dict[str, int] = {}
    for name, info in header.items():
        if name == "__metadata__" or not isinstance(info, dict):
            continue
        dtype = info.get("dtype")
        shape = info.get("shape")
        if not isinstance(dtype, str) or not isinstance(shape, list):
            return None
        count = 1
        for dim in shape:
            if not isinstance(dim, int) or dim < 0:
                return None
            count *= dim
        out[dtype] = out.get(dtype, 0) + count
    return out


class _GGUFReader:
    def __init__(self, f: IO[bytes]) -> None:
        self.f = f

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise ValueError("truncated GGUF header")
        return data

    def u32(self) -> int:
        return int(struct.unpack("<I", self.read(4))[0])

    def u64(self) -> int:
        return int(struct.unpack("<Q", self.read(8))[0])

    def string(self) -> str:
        n = self.u64()
        if n > _MAX_GGUF_ITEMS:
            raise ValueError("GGUF string too long")
        return self.read(n).decode("utf-8", errors="replace")

    def value(self, vtype: int, *, keep: bool = True) -> Any:
        if vtype in _GGUF_SCALARS:
            fmt, size = _GGUF_SCALARS[vtype]
            return struct.unpack(fmt, self.read(size))[0]
        if vtype == _GGUF_STRING:
            return self.string()
        if vtype == _GGUF_ARRAY:
            itype = self.u32()
            count = self.u64()
            if count > _MAX_GGUF_ITEMS:
                raise ValueError("GGUF array too long")
            if itype in _GGUF_SCALARS and not keep:
                self.f.seek(count * _GGUF_SCALARS[itype][1], 1)
                return None
            items = [self.value(itype, keep=keep) for _ in range(count)]
            return items if keep else None
        raise ValueError(f"unknown GGUF value type {vtype}")


def gguf_summary(path: Path) -> dict[str, Any] | None:
    """The Hub's ``gguf`` block: total parameters, architecture, context length, chat template, bos/eos."""
    try:
        with open(path, "rb") as raw:
            import io

            f = io.BufferedReader(raw, buffer_size=1 << 20)
            r = _GGUFReader(f)
            if r.read(4) != b"GGUF":
                return None
            version = r.u32()
            if version < 2:
                return None
            n_tensors = r.u64()
            n_kv = r.u64()
            if n_tensors > _MAX_GGUF_ITEMS or n_kv > _MAX_GGUF_ITEMS:
                return None
            kv: dict[str, Any] = {}
            wanted_arrays = {"tokenizer.ggml.tokens"}
            for _ in range(n_kv):
                key = r.string()
                vtype = r.u32()
                keep = vtype != _GGUF_ARRAY or key in wanted_arrays
                kv[key] = r.value(vtype, keep=keep)
            total = 0
            for _ in range(n_tensors):
                r.string()
                n_dims = r.u32()
                if n_dims > 16:
                    return None
                count = 1
                for _ in range(n_dims):
                    count *= r.u64()
                r.u32()  # ggml type
                r.u64()  # offset
                total += count
    except (OSError, ValueError, struct.error):
        return None
    out: dict[str, Any] = {"total": total}
    arch = kv.get("general.architecture")
    if isinstance(arch, str):
        out["architecture"] = arch
        ctx = kv.get(f"{arch}.context_length")
        if isinstance(ctx, int):
            out["context_length"] = ctx
    tmpl = kv.get("tokenizer.chat_template")
    if isinstance(tmpl, str):
        out["chat_template"] = tmpl
    tokens = kv.get("tokenizer.ggml.tokens")
    for name in ("bos", "eos"):
        tid = kv.get(f"tokenizer.ggml.{name}_token_id")
        if isinstance(tid, int) and isinstance(tokens, list) and 0 <= tid < len(tokens):
            out[f"{name}_token"] = tokens[tid]
    return out


MAX_FRONT_MATTER_BYTES = 64 * 1024
"""Card metadata larger than this is not parsed (the Hub's own limit is of the same order)."""
MAX_YAML_DEPTH = 32
"""Nesting depth of card metadata (deeper documents are refused, not recursed into)."""
MAX_YAML_NODES = 10_000
"""Scalars + collections in card metadata (bounds the parse time with the pure-Python parser)."""


class CardYAMLError(ValueError):
    """Card metadata that is refused: too large, too deep, uses aliases, or is not valid YAML."""


@functools.lru_cache(maxsize=1)
def _card_loader() -> type:
    """A ``yaml.SafeLoader`` that refuses aliases (no alias bomb can expand) and deep nesting."""
    import yaml
    from yaml.composer import ComposerError

    class CardLoader(yaml.SafeLoader):
        depth = 0
        nodes = 0

        def _here(self) -> Any:
            """The position of the next event (for the error); the yaml stubs leave peek_event untyped."""
            return self.peek_event().start_mark  # type: ignore[no-untyped-call]

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                mark = self._here()
                raise ComposerError(None, None, "YAML aliases (*name) are not allowed in card metadata", mark)
            self.nodes += 1
            if self.nodes > MAX_YAML_NODES:
                mark = self._here()
                raise ComposerError(None, None, f"card metadata has more than {MAX_YAML_NODES} values", mark)
            step = 1 if self.check_event(yaml.CollectionStartEvent) else 0  # depth counts collections
            self.depth += step
            try:
                if self.depth > MAX_YAML_DEPTH:
                    mark = self._here()
                    raise ComposerError(
                        None, None, f"card metadata is nested deeper than {MAX_YAML_DEPTH} levels", mark
                    )
                return super().compose_node(parent, index)
            finally:
                self.depth -= step

    return CardLoader


def load_card_yaml(body: str) -> Any:
    """Parse card metadata with bounds: at most MAX_FRONT_MATTER_BYTES, no aliases, at most
    MAX_YAML_DEPTH levels.  The cost is linear in the (bounded) input; raises CardYAMLError."""
    if len(body) > MAX_FRONT_MATTER_BYTES or len(body.encode("utf-8", "replace")) > MAX_FRONT_MATTER_BYTES:
        raise CardYAMLError(f"card metadata is larger than {MAX_FRONT_MATTER_BYTES} bytes")
    import yaml

    try:
        if getattr(yaml, "__with_libyaml__", False):
            return _load_with_libyaml(yaml, body)
        return yaml.load(body, Loader=_card_loader())  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise CardYAMLError(str(exc)) from None


def _load_with_libyaml(yaml: Any, body: str) -> Any:
    """With libyaml (~10x faster): check the event stream first (no alias, depth and node bounds),
    then load the alias-free document with ``CSafeLoader``."""
    depth = nodes = 0
    for event in yaml.parse(body, Loader=yaml.CSafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise CardYAMLError("YAML aliases (*name) are not allowed in card metadata")
        if isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
            nodes += 1
            if nodes > MAX_YAML_NODES:
                raise CardYAMLError(f"card metadata has more than {MAX_YAML_NODES} values")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise CardYAMLError(f"card metadata is nested deeper than {MAX_YAML_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return yaml.load(body, Loader=yaml.CSafeLoader)


def _json_safe(value: Any) -> Any:
    """Card data as JSON types: mapping keys and non-JSON scalars (dates, bytes) become strings.
    (Recursion is bounded by MAX_YAML_DEPTH.)"""
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _split_front(text: str) -> str | None:
    """The YAML between the leading ``---`` lines, or None when there is no closed front matter.
    Only the first MAX_FRONT_MATTER_BYTES (+ a line) are scanned for the closing ``---``."""
    if not text.startswith("---"):
        return None
    head = text[: MAX_FRONT_MATTER_BYTES * 2 + 8]
    lines = head.splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "\n".join(lines[1:i])
    return None  # not closed (within the bound: a longer front matter is refused as too large)


def front_matter(text: str) -> dict[str, Any]:
    """The YAML front matter of a README (``---`` … ``---``) as a dict; {} when absent, invalid or
    refused by the bounds of :func:`load_card_yaml`."""
    body = _split_front(text)
    if body is None:
        return {}
    try:
        data = load_card_yaml(body)
    except CardYAMLError:
        return {}
    if not isinstance(data, dict):
        return {}
    return dict(_json_safe(data))


def validate_card_yaml(text: str) -> tuple[list[str], list[str]]:
    """Errors and warnings for ``/api/validate-yaml`` (only YAML syntax/shape and the bounds are checked)."""
    if not text.startswith("---"):
        return [], []
    lines = text[: MAX_FRONT_MATTER_BYTES * 2 + 8].splitlines()
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        if len(text) > MAX_FRONT_MATTER_BYTES * 2:
            return [f"Invalid YAML in the card metadata: larger than {MAX_FRONT_MATTER_BYTES} bytes."], []
        return ["YAML front matter is not closed with '---'."], []
    try:
        data = load_card_yaml("\n".join(lines[1:end]))
    except CardYAMLError as exc:
        return [f"Invalid YAML in the card metadata: {exc}"], []
    if data is not None and not isinstance(data, dict):
        return ["The card metadata must be a YAML mapping."], []
    return [], []


def as_str_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if v is not None]
    return []


def derive_tags(
    repo_type: str, card: Mapping[str, Any], files: list[str], summary: Mapping[str, Any]
) -> list[str]:
    """Tags as the Hub would list them: card tags + library/pipeline/license/language/format tags."""
    tags: list[str] = []

    def add(t: str) -> None:
        if t and t not in tags:
            tags.append(t)

    for t in as_str_list(card.get("tags")):
        add(t)
    if repo_type == "model":
        lib = card.get("library_name")
        if isinstance(lib, str):
            add(lib)
        if any(f.endswith(".safetensors") for f in files):
            add("safetensors")
        if any(f.endswith(".gguf") for f in files):
            add("gguf")
        pipe = card.get("pipeline_tag")
        if isinstance(pipe, str):
            add(pipe)
        for lang in as_str_list(card.get("language")):
            add(lang)
        for ds in as_str_list(card.get("datasets")):
            add(f"dataset:{ds}")
        for bm in as_str_list(card.get("base_model")):
            add(f"base_model:{bm}")
    elif repo_type == "dataset":
        for key in (
            "task_categories",
            "task_ids",
            "size_categories",
            "language",
            "multilinguality",
            "modality",
        ):
            for v in as_str_list(card.get(key)):
                add(f"{key}:{v}")
    else:
        sdk = card.get("sdk")
        if isinstance(sdk, str):
            add(sdk)
    for lic in as_str_list(card.get("license")):
        add(f"license:{lic}")
    add("region:us")
    return tags


def gitignore_matcher(text: str) -> Callable[[str], bool]:
    """A predicate telling whether a repo path is ignored by a .gitignore (common subset of the syntax:
    comments, ``!`` negation, trailing ``/`` for folders, leading ``/`` anchors, ``*``/``?``/``**`` globs)."""
    import fnmatch

    rules: list[tuple[bool, bool, bool, str]] = []  # (negate, dir_only, anchored, pattern)
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate:
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.strip("/") if dir_only else line
        anchored = line.startswith("/") or "/" in line
        rules.append((negate, dir_only, anchored, line.lstrip("/")))

    def match_one(path: str, dir_only: bool, anchored: bool, pat: str) -> bool:
        parts = path.split("/")
        # candidate prefixes: every ancestor folder, plus the file itself unless the rule is folders-only
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
        if not dir_only:
            candidates.append(path)
        for cand in candidates:
            target = cand if anchored else cand.rsplit("/", 1)[-1]
            if fnmatch.fnmatchcase(target, pat) or (
                "**" in pat and fnmatch.fnmatchcase(target, pat.replace("**/", "*").replace("/**", "/*"))
            ):
                return True
        return False

    def ignored(path: str) -> bool:
        result = False
        for negate, dir_only, anchored, pat in rules:
            if match_one(path, dir_only, anchored, pat):
                result = not negate
        return result

    return ignored
