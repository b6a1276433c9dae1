"""The manifest's model: frozen values only (no parsing, no I/O beyond ``Manifest.root``).

``Manifest`` holds the specs of every section; ``Policies`` is the ``policies:`` block as a typed
value that also reads like the mapping it was (``policies.get("jobs")``).  Adding a policy is one
field here plus its entry in ``schemas/hf.schema.json`` (``Policies.from_dict`` picks up every field).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batuta_sync.types import HfAssetType

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


def digest_of(obj: Any) -> str:
    """``sha256:`` of the canonical JSON of ``obj`` (sorted keys, no spaces)."""
    data = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(data.encode("utf-8")).hexdigest()


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
    # "on-demand": downloaded only when a conversion of it must really run (not on a run-cache hit)
    fetch: str = "always"

    @property
    def on_demand(self) -> bool:
        return self.fetch == "on-demand"

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
        return self.output or default_conversion_output(self.address)


def default_conversion_output(address: str) -> str:
    """Where a conversion without ``output:`` writes (it follows the name: a move changes it)."""
    return f".batuta/outputs/conversions/{address.split('.', 1)[1]}"


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
class Policies(Mapping[str, Any]):
    """``policies:`` of hf.yaml (schema ``$defs/policies``).  A field per policy, None = not set;
    as a mapping it holds the policies that are set (what hf.yaml says), so ``get`` keeps working."""

    safety: str | None = None
    jobs: int | None = None
    max_cache_size: str | None = None
    materialize: str | None = None
    endpoint: str | None = None
    offline: bool | None = None
    cache_dir: str | None = None
    executor: str | None = None  # where apply runs pull/convert actions (parse_executor)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Policies:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in names})

    def __getitem__(self, key: str) -> Any:
        value = getattr(self, key, None) if key in self._names() else None
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return (k for k in self._names() if getattr(self, k) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


# --------------------------------------------------------------------------- executor

#: policies that say *where* apply runs, not *what* it does: left out of the manifest digest, so a
#: saved plan stays applicable on another executor
RUNTIME_POLICIES = ("executor",)
EXECUTOR_FORMS = "local, dask://HOST:PORT or dask-local:N"
MAX_LOCAL_WORKERS = 256
_DASK_ADDR_RE = re.compile(r"\Adask://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?):([0-9]{1,5})\Z")
_DASK_LOCAL_RE = re.compile(r"\Adask-local:([0-9]{1,4})\Z")


@dataclass(frozen=True, slots=True)
class ExecutorSpec:
    """Where apply runs its pull and convert actions: ``local`` (threads, the default), an existing
    Dask scheduler (``dask://HOST:PORT`` -> ``address`` ``tcp://HOST:PORT``) or a Dask
    ``LocalCluster`` of ``workers`` processes started for the apply (``dask-local:N``)."""

    kind: str  # local | dask | dask-local
    text: str = "local"
    address: str = ""
    workers: int = 0

    @property
    def is_local(self) -> bool:
        return self.kind == "local"


def executor_problem(text: object) -> str | None:
    """Why ``text`` is not an executor spec (one sentence), or None."""
    if not isinstance(text, str):
        return f"the executor must be a string ({EXECUTOR_FORMS})"
    if text == "local":
        return None
    if m := _DASK_ADDR_RE.match(text):
        port = int(m.group(2))
        return None if 0 < port < 65536 else f"the port of {text!r} is out of range (1-65535)"
    if m := _DASK_LOCAL_RE.match(text):
        n = int(m.group(1))
        return None if 0 < n <= MAX_LOCAL_WORKERS else f"dask-local needs 1 to {MAX_LOCAL_WORKERS} workers, not {n}"
    return f"unknown executor {text!r} (use {EXECUTOR_FORMS})"


def parse_executor(text: str | None) -> ExecutorSpec:
    """The one parser of ``--executor`` / ``policies.executor`` (None = ``local``); ValueError
    with :func:`executor_problem`'s sentence for anything else."""
    if text is None or text == "local":
        return ExecutorSpec("local")
    problem = executor_problem(text)
    if problem is not None:
        raise ValueError(problem)
    if m := _DASK_ADDR_RE.match(text):
        return ExecutorSpec("dask", text, address=f"tcp://{m.group(1)}:{int(m.group(2))}")
    m = _DASK_LOCAL_RE.match(text)
    assert m is not None
    return ExecutorSpec("dask-local", text, workers=int(m.group(1)))


def digest_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """What the manifest digest covers: ``data`` without the :data:`RUNTIME_POLICIES`."""
    policies = data.get("policies")
    if not isinstance(policies, Mapping) or not any(k in policies for k in RUNTIME_POLICIES):
        return dict(data)
    kept = {k: v for k, v in policies.items() if k not in RUNTIME_POLICIES}
    out = {k: v for k, v in data.items() if k != "policies"}
    if kept:
        out["policies"] = kept
    return out


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
    policies: Policies = field(default_factory=Policies)
    #: hf.lock, or an overlay's own lock (``hf.prod.yaml`` with ``extends:`` -> ``hf.prod.lock``)
    lock_file: str = "hf.lock"
    #: the files an overlay was merged from, base first (empty for a plain manifest)
    extends: tuple[str, ...] = ()
    # ``moved:`` blocks, (from, to) in file order: a renamed address keeps its hf.lock entry
    moves: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.policies, Policies):  # a plain mapping (library callers, tests)
            object.__setattr__(self, "policies", Policies.from_dict(self.policies))

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

    def moved_from(self, address: str) -> str | None:
        """The old address ``moved:`` renamed ``address`` from (None when it was not renamed)."""
        return next((src for src, dst in self.moves if dst == address), None)

    def moved_output(self, address: str) -> tuple[str, str] | None:
        """(old, new) default output of a conversion renamed by ``moved:`` (its directory is named
        after the address); None when it is not moved or its ``output:`` is explicit."""
        spec = self.get(address)
        src = self.moved_from(address)
        if src is None or not isinstance(spec, ConversionSpec) or spec.output is not None:
            return None
        return default_conversion_output(src), spec.output_path

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
        return int(self.policies.jobs or 8)

    @property
    def materialize(self) -> str:
        return str(self.policies.materialize or "symlink")

    @property
    def allow_unsafe(self) -> bool:
        return self.policies.safety == "allow_unsafe"


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
