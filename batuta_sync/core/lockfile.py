"""hf.lock: the resolved state, as frozen values, with one deterministic writer.

Format: YAML, written by hand-rolled code rather than ``yaml.dump`` so the bytes
are stable across PyYAML versions.  Why YAML and not JSON: a lock is merged by
git far more often than it is read by a human, and JSON's commas and closing
braces make two branches that each add a resource conflict on the neighbouring
line; with one indented block per resource (sorted by address, separated by a
blank line) and one line per file, independent changes merge cleanly.  Every
scalar is written as a JSON string/number (a YAML subset), so reading is a plain
``yaml.load`` with the C loader.  No timestamps; ``serial`` only moves when the
content changes.

Layout (schema: ``schemas/lock.schema.json``)::

    version: 1
    lineage: "…"            # random id fixed when the lock is created
    serial: 3               # +1 on every content change
    endpoint: "https://…"   # the Hub the entries were resolved on (a change shows in every plan)
    last_applied_plan: "…"  # the plan id of the last complete apply (plans are single-use)
    resources:
      "models.llama":
        kind: "repo"
        ...
        files:
          "config.json": {size: 12, gitsha1: "…"}
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from batuta_sync._fs import atomic_write
from batuta_sync.errors import ManifestError

LOCK_VERSION = 1
HEADER = "# hf.lock: resolved state written by `batuta`. Commit it; do not edit by hand.\n"


@dataclass(frozen=True, slots=True)
class FileDigest:
    """One locked file: its size and content digests (hex, no prefix)."""

    path: str
    size: int
    gitsha1: str | None = None
    sha256: str | None = None

    @property
    def digest(self) -> str:
        """The strongest digest, algorithm-prefixed (``sha256:…`` or ``gitsha1:…``)."""
        if self.sha256:
            return f"sha256:{self.sha256}"
        return f"gitsha1:{self.gitsha1}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"size": self.size}
        if self.gitsha1:
            d["gitsha1"] = self.gitsha1
        if self.sha256:
            d["sha256"] = self.sha256
        return d


def tree_digest(files: Iterable[FileDigest]) -> str:
    """Terraform-style ``h1:`` dirhash: sha256 over sorted ``"<digest>  <path>\\n"`` lines, base64."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.digest}  {f.path}\n".encode())
    return "h1:" + base64.b64encode(h.digest()).decode("ascii")


@dataclass(frozen=True, slots=True)
class RepoLock:
    """A pulled repo resolved to one commit and its selected files."""

    address: str
    repo: str
    repo_type: str
    revision: str
    commit: str
    selection: str  # digest of the selection fields of the manifest entry
    files: tuple[FileDigest, ...] = ()
    output: str | None = None
    kind: str = "repo"

    @property
    def tree(self) -> str:
        return tree_digest(self.files)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "kind": self.kind,
            "repo": self.repo,
            "type": self.repo_type,
            "revision": self.revision,
            "commit": self.commit,
            "selection": self.selection,
            "tree": self.tree,
            "files": {f.path: f.to_dict() for f in self.files},
        }
        if self.output:
            d["output"] = self.output
        return d


@dataclass(frozen=True, slots=True)
class ConversionLock:
    """A conversion: its memo key (inputs + converter version + params) and output digests."""

    address: str
    source: str
    key: str
    converter: str
    input_tree: str
    params: tuple[tuple[str, Any], ...]
    output: str
    outputs: tuple[FileDigest, ...] = ()
    kind: str = "conversion"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "from": self.source,
            "key": self.key,
            "converter": self.converter,
            "input_tree": self.input_tree,
            "params": dict(self.params),
            "output": self.output,
            "tree": tree_digest(self.outputs),
            "outputs": {f.path: f.to_dict() for f in self.outputs},
        }


@dataclass(frozen=True, slots=True)
class PublishLock:
    """A publish: the commit batuta last pushed and the digest of what it pushed."""

    address: str
    repo: str
    repo_type: str
    revision: str
    commit: str
    source_tree: str
    kind: str = "publish"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "repo": self.repo,
            "type": self.repo_type,
            "revision": self.revision,
            "commit": self.commit,
            "source_tree": self.source_tree,
        }


LockEntry = RepoLock | ConversionLock | PublishLock


@dataclass(frozen=True)
class Lock:
    """The whole lockfile.  Immutable: ``with_entry``/``without`` return new values."""

    lineage: str = ""
    serial: int = 0
    last_applied_plan: str | None = None
    entries: Mapping[str, LockEntry] = field(default_factory=dict)
    version: int = LOCK_VERSION
    endpoint: str = ""  # the Hub the entries were resolved on (userinfo stripped); "" = not recorded

    def get(self, address: str) -> LockEntry | None:
        return self.entries.get(address)

    def with_entry(self, entry: LockEntry) -> Lock:
        entries = dict(self.entries)
        entries[entry.address] = entry
        return replace(self, entries=entries)

    def without(self, address: str) -> Lock:
        entries = {k: v for k, v in self.entries.items() if k != address}
        return replace(self, entries=entries)

    def renamed(self, old: str, new: str) -> Lock:
        """The entry at ``old`` moved to ``new`` (hf.yaml ``moved:``): same content, new address;
        conversions reading ``old`` now read ``new`` (their input did not change, only its name)."""
        entries = {k: v for k, v in self.entries.items() if k != old}
        for k, v in entries.items():
            if isinstance(v, ConversionLock) and v.source == old:
                entries[k] = replace(v, source=new)
        if old in self.entries:
            entries[new] = replace(self.entries[old], address=new)
        return replace(self, entries=entries)

    def content(self) -> dict[str, Any]:
        """What ``serial`` tracks: the resources (not the header)."""
        return {k: self.entries[k].to_dict() for k in sorted(self.entries)}

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "version": self.version,
            "lineage": self.lineage,
            "serial": self.serial,
            "resources": self.content(),
        }
        if self.last_applied_plan:
            d["last_applied_plan"] = self.last_applied_plan
        if self.endpoint:
            d["endpoint"] = self.endpoint
        return d


# --------------------------------------------------------------------------- text


# Characters JSON leaves raw but YAML reads as line breaks or refuses (all in the BMP, so a
# \uXXXX escape means the same to both).  Astral characters stay raw UTF-8: PyYAML does not
# join JSON's surrogate-pair escapes.
_ESCAPE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")


def _s(value: Any, *, separators: tuple[str, str] | None = None) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=separators)
    return _ESCAPE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _flow(d: Mapping[str, Any]) -> str:
    # A JSON object is also a YAML flow mapping: readable by any YAML tool, and by _fast_load.
    return _s(dict(d), separators=(", ", ": "))


def dumps(lock: Lock) -> str:
    """The canonical text of ``lock`` (same value → same bytes)."""
    lines = [HEADER.rstrip("\n"), f"version: {lock.version}", f"lineage: {_s(lock.lineage)}", f"serial: {lock.serial}"]
    if lock.endpoint:
        lines.append(f"endpoint: {_s(lock.endpoint)}")
    if lock.last_applied_plan:
        lines.append(f"last_applied_plan: {_s(lock.last_applied_plan)}")
    if not lock.entries:
        lines.append("resources: {}")
        return "\n".join(lines) + "\n"
    lines.append("resources:")
    for address in sorted(lock.entries):
        lines.append("")
        lines.append(f"  {_s(address)}:")
        for key, value in lock.entries[address].to_dict().items():
            if key in ("files", "outputs"):
                if not value:
                    lines.append(f"    {key}: {{}}")
                    continue
                lines.append(f"    {key}:")
                for path in sorted(value):
                    lines.append(f"      {_s(path)}: {_flow(value[path])}")
            elif isinstance(value, dict):
                lines.append(f"    {key}: {_flow(dict(sorted(value.items())))}")
            else:
                lines.append(f"    {key}: {_s(value)}")
    return "\n".join(lines) + "\n"


MAX_SIZE = 2**53  # no file is larger; JSON-safe


def _id(check: Any, value: Any, where: str) -> str:
    """``check(value)`` from :mod:`batuta_sync.ids`, as a ValueError naming the key."""
    from batuta_sync.ids import InvalidIdentifierError

    try:
        out: str = check(value, where=where)
    except InvalidIdentifierError as exc:
        raise ValueError(exc.message.rstrip("."))
    return out


def _text(value: Any, where: str, *, limit: int = 4096) -> str:
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise ValueError(f"{where}: expected a string of at most {limit} characters, got {_show(value)}")
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _local_path(value: Any, where: str) -> str:
    """A path from hf.yaml recorded in the lock (confined to the workspace where it is used)."""
    path = _text(value, where)
    if not path:
        raise ValueError(f"{where}: expected a non-empty path")
    return path


def _files(raw: Any, where: str) -> tuple[FileDigest, ...]:
    from batuta_sync import ids

    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping of files")
    out = []
    for path, d in sorted(raw.items()):
        at = f"{where}.{path}"
        _id(ids.repo_path, path, where)
        size = d.get("size") if isinstance(d, dict) else None
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
            raise ValueError(f"{at}: expected {{size, gitsha1|sha256}} with a size between 0 and {MAX_SIZE}")
        gitsha1, sha256 = d.get("gitsha1"), d.get("sha256")
        if gitsha1 is None and sha256 is None:
            raise ValueError(f"{at}: needs a gitsha1 or a sha256")
        out.append(
            FileDigest(
                str(path),
                size,
                None if gitsha1 is None else _id(ids.git_sha1, gitsha1, f"{at}.gitsha1"),
                None if sha256 is None else _id(ids.sha256_hex, sha256, f"{at}.sha256"),
            )
        )
    return tuple(out)


_TYPES = ("model", "dataset", "space")


def _repo_type(value: Any, where: str) -> str:
    if value not in _TYPES:
        raise ValueError(f"{where}: expected model, dataset or space, got {_show(value)}")
    return str(value)


def entry_from_dict(address: str, d: Any) -> LockEntry:
    """One lock entry, every field checked (identifiers with :mod:`batuta_sync.ids`); ValueError if not."""
    from batuta_sync import ids
    from batuta_sync.core.manifest import ADDRESS_RE

    at = f"resources.{address}"
    if not ADDRESS_RE.match(address):
        raise ValueError(f"{at}: not an address (e.g. models.<name>)")
    if not isinstance(d, dict):
        raise ValueError(f"{at}: expected a mapping")
    kind = d.get("kind")
    try:
        if kind == "repo":
            return RepoLock(
                address=address,
                repo=_id(ids.repo_id, d["repo"], f"{at}.repo"),
                repo_type=_repo_type(d["type"], f"{at}.type"),
                revision=_id(ids.revision, d["revision"], f"{at}.revision"),
                commit=_id(ids.commit_sha, d["commit"], f"{at}.commit"),
                selection=_text(d["selection"], f"{at}.selection", limit=200),
                files=_files(d.get("files", {}), f"{at}.files"),
                output=None if d.get("output") is None else _local_path(d["output"], f"{at}.output"),
            )
        if kind == "conversion":
            params = d.get("params") or {}
            if not isinstance(params, dict) or not all(
                isinstance(v, str | int | float | bool) or v is None for v in params.values()
            ):
                raise ValueError(f"{at}.params: expected a mapping of plain values")
            source = _text(d["from"], f"{at}.from", limit=200)
            if not ADDRESS_RE.match(source):
                raise ValueError(f"{at}.from: not an address, got {_show(source)}")
            return ConversionLock(
                address=address,
                source=source,
                key=_text(d["key"], f"{at}.key", limit=200),
                converter=_text(d["converter"], f"{at}.converter", limit=200),
                input_tree=_text(d["input_tree"], f"{at}.input_tree", limit=200),
                params=tuple(sorted((str(k), v) for k, v in params.items())),
                output=_local_path(d["output"], f"{at}.output"),
                outputs=_files(d.get("outputs", {}), f"{at}.outputs"),
            )
        if kind == "publish":
            return PublishLock(
                address=address,
                repo=_id(ids.repo_id, d["repo"], f"{at}.repo"),
                repo_type=_repo_type(d["type"], f"{at}.type"),
                revision=_id(ids.revision, d["revision"], f"{at}.revision"),
                commit=_id(ids.commit_sha, d["commit"], f"{at}.commit"),
                source_tree=_text(d["source_tree"], f"{at}.source_tree", limit=200),
            )
    except KeyError as exc:
        raise ValueError(f"{at}: missing key {exc.args[0]!r}")
    raise ValueError(f"{at}.kind: expected repo, conversion or publish, got {_show(kind)}")


def _fast_load(text: str) -> dict[str, Any] | None:
    """Parse the exact layout :func:`dumps` writes (every value one JSON document per line).

    About 10x faster than YAML for a large lock; returns None at the first line that
    deviates (hand edits, merge results), and the caller falls back to the YAML parser.
    """
    top: dict[str, Any] = {}
    resources: dict[str, Any] = {}
    entry: dict[str, Any] | None = None
    block: dict[str, Any] | None = None
    try:
        for line in text.split("\n"):
            if not line or line.startswith("#"):
                continue
            if line.startswith("      "):
                if block is None:
                    return None
                key, _, value = line[6:].partition(": ")
                block[json.loads(key)] = json.loads(value)
            elif line.startswith("    "):
                if entry is None:
                    return None
                key, sep, value = line[4:].partition(": ")
                if sep:
                    entry[key] = json.loads(value)
                    block = None
                elif key.endswith(":"):
                    block = entry[key[:-1]] = {}
                else:
                    return None
            elif line.startswith("  "):
                if not line.endswith(":"):
                    return None
                entry = resources[json.loads(line[2:-1])] = {}
                block = None
            else:
                key, sep, value = line.partition(": ")
                if key == "resources:" and not sep:
                    top["resources"] = resources
                elif sep and key == "resources" and value == "{}":
                    top["resources"] = {}
                elif sep:
                    top[key] = json.loads(value)
                else:
                    return None
    except ValueError:
        return None
    return top


def loads(text: str, *, source: str = "hf.lock") -> Lock:
    """Parse lock text; raise ManifestError (exit 3) when it is not a lock batuta wrote."""
    data = _fast_load(text)
    if data is None:
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            data = yaml.load(text, Loader=loader)
        except yaml.YAMLError as exc:
            raise ManifestError(
                f"{source} is not valid YAML: {exc}.",
                hint="A merge conflict? Resolve it (or delete the conflicting blocks) and run `batuta lock`.",
            )
    try:
        if not isinstance(data, dict):
            raise ValueError("expected a mapping at the top level")
        if data.get("version") != LOCK_VERSION:
            raise ValueError(f"version: unsupported lock version {data.get('version')!r} (this batuta reads {LOCK_VERSION})")
        resources = data.get("resources") or {}
        if not isinstance(resources, dict):
            raise ValueError("resources: expected a mapping")
        entries = {str(a): entry_from_dict(str(a), d) for a, d in resources.items()}
        serial = data.get("serial") or 0
        if isinstance(serial, bool) or not isinstance(serial, int) or not 0 <= serial <= MAX_SIZE:
            raise ValueError(f"serial: expected a non-negative integer, got {_show(serial)}")
        last = data.get("last_applied_plan")
        if last is not None:
            from batuta_sync.core.workspace import check_plan_id

            check_plan_id(last, "last_applied_plan")
        return Lock(
            lineage=_text(data.get("lineage") or "", "lineage", limit=200),
            endpoint=_text(data.get("endpoint") or "", "endpoint", limit=2048),
            serial=serial,
            last_applied_plan=last,
            entries=entries,
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise ManifestError(
            f"{source} is invalid: {exc}.",
            hint="hf.lock is written by batuta; restore it from git or delete it and run `batuta lock`.",
        )


def read_lock(path: str | Path) -> Lock | None:
    """The lock at ``path``, or None when there is none yet."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return loads(text, source=str(path))


def lock_digest(lock: Lock | None) -> str:
    """A digest of the lock's full text (``none`` when there is no lock)."""
    if lock is None:
        return "none"
    return "sha256:" + hashlib.sha256(dumps(lock).encode("utf-8")).hexdigest()


def next_version(old: Lock | None, new: Lock) -> Lock:
    """``new`` with lineage kept and serial bumped iff its content (or endpoint) differs from ``old``."""
    import uuid

    lineage = (old.lineage if old else "") or new.lineage or uuid.uuid4().hex
    serial = old.serial if old else 0
    if old is None or old.content() != new.content() or old.endpoint != new.endpoint:
        serial += 1
    return replace(new, lineage=lineage, serial=serial)


def write_lock(path: str | Path, lock: Lock) -> None:
    """Write atomically: a temp file in the same directory, fsync, then ``os.replace``."""
    atomic_write(path, dumps(lock), fsync=True)
