"""The spec's data model: Hub JSON translated once into frozen dataclasses.

Every ``from_json`` is tolerant: a missing or mistyped field becomes its empty
value (``""``, ``0``, ``None``, ``()``) instead of an exception, because search
results carry only a subset of the fields ``info`` returns.  Nothing above
``batuta_sync.hub`` sees camelCase JSON.

Pure: stdlib only, no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from batuta_sync.ids import git_sha1, is_git_sha1, sha256_hex
from batuta_sync.types import HfAssetType, RepoFile, byte_count

# --------------------------------------------------------------------------- helpers


def _str(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _sha(v: Any) -> str:
    """A commit sha from info JSON: kept only with its shape (``""`` otherwise, never a path part)."""
    return v if is_git_sha1(v) else ""


def _opt_str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _int(v: Any) -> int:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v)
    if isinstance(v, str):
        try:
            return int(float(v))
        except ValueError:
            return 0
    return 0


def _opt_int(v: Any) -> int | None:
    return None if v is None else _int(v)


def _map(v: Any) -> Mapping[str, Any]:
    return v if isinstance(v, Mapping) else {}


def _strs(v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        return (v,)
    if isinstance(v, list | tuple):
        return tuple(x for x in v if isinstance(x, str))
    return ()


def _author(data: Mapping[str, Any]) -> str:
    author = _str(data.get("author"))
    if not author:
        rid = _str(data.get("id") or data.get("modelId"))
        author = rid.split("/", 1)[0] if "/" in rid else ""
    return author


def _file(path: str, size: Any, blob: Any, lfs: Mapping[str, Any], where: str) -> RepoFile:
    """One listed file, its identifiers checked where they enter (they name cache files).

    A missing blob id stays ``""`` (unknown: such a file is never cached); a present one
    must be a git sha1, an LFS oid a sha256, the size a non-negative integer.
    """
    at = f"{where} ({path!r})"
    blob_id = "" if blob is None or blob == "" else git_sha1(blob, where=at, kind="git blob id")
    oid = lfs.get("sha256") or lfs.get("oid")
    sha256 = None if oid is None or oid == "" else sha256_hex(oid, where=at, kind="LFS oid")
    size = 0 if size is None else byte_count(size, where=at)
    return RepoFile(path=path, size=size, blob_id=blob_id, sha256=sha256)


def files_from_siblings(siblings: Any) -> tuple[RepoFile, ...]:
    """``siblings`` of an info response (``?blobs=true`` adds size/blobId/lfs) as RepoFiles."""
    out: list[RepoFile] = []
    if not isinstance(siblings, list):
        return ()
    for s in siblings:
        s = _map(s)
        path = _str(s.get("rfilename"))
        if not path:
            continue
        lfs = _map(s.get("lfs"))
        size = s.get("size") if s.get("size") is not None else lfs.get("size")
        out.append(_file(path, size, s.get("blobId"), lfs, "the Hub's file list (siblings)"))
    return tuple(sorted(out, key=lambda f: f.path))


def files_from_tree(entries: Any) -> list[RepoFile]:
    """Entries of ``/api/{T}/{id}/tree/{rev}`` (files only) as RepoFiles."""
    out: list[RepoFile] = []
    if not isinstance(entries, list):
        return out
    for e in entries:
        e = _map(e)
        if e.get("type") != "file":
            continue
        lfs = _map(e.get("lfs"))
        out.append(_file(_str(e.get("path")), e.get("size"), e.get("oid"), lfs, "the Hub's tree listing"))
    return out


# --------------------------------------------------------------------------- models


@dataclass(frozen=True, slots=True)
class ModelIndexEntry:
    """One ``model-index`` entry: a model and the evaluation results reported for it."""

    name: str
    results: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_json(cls, data: Any) -> ModelIndexEntry:
        d = _map(data)
        results = d.get("results")
        return cls(
            name=_str(d.get("name")),
            results=tuple(r for r in results if isinstance(r, Mapping)) if isinstance(results, list) else (),
        )


@dataclass(frozen=True, slots=True)
class SafetensorsInfo:
    """Parameter counts per dtype (``{"F16": 7_000_000_000}``) and their total."""

    parameters: Mapping[str, int]
    total: int

    @classmethod
    def from_json(cls, data: Any) -> SafetensorsInfo | None:
        d = _map(data)
        if not d:
            return None
        params = {str(k): _int(v) for k, v in _map(d.get("parameters")).items()}
        total = _int(d.get("total")) or sum(params.values())
        return cls(parameters=params, total=total)


@dataclass(frozen=True, slots=True)
class GgufInfo:
    """What the Hub reads from a repo's GGUF header."""

    total: int = 0
    architecture: str | None = None
    context_length: int | None = None
    chat_template: str | None = None
    bos_token: str | None = None
    eos_token: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> GgufInfo | None:
        d = _map(data)
        if not d:
            return None
        return cls(
            total=_int(d.get("total")),
            architecture=_opt_str(d.get("architecture")),
            context_length=_opt_int(d.get("context_length")),
            chat_template=_opt_str(d.get("chat_template")),
            bos_token=_opt_str(d.get("bos_token")),
            eos_token=_opt_str(d.get("eos_token")),
        )


@dataclass(frozen=True, slots=True)
class HfModelInfo:
    """Spec ``HfModelInfo`` (+ the commit's file list when asked for, and a few Hub flags)."""

    id: str
    author: str = ""
    sha: str = ""
    pipeline_tag: str | None = None
    tags: tuple[str, ...] = ()
    downloads: int = 0
    likes: int = 0
    library_name: str | None = None
    model_index: tuple[ModelIndexEntry, ...] | None = None
    safetensors: SafetensorsInfo | None = None
    gguf: GgufInfo | None = None
    files: tuple[RepoFile, ...] = ()
    private: bool = False
    gated: str | None = None
    last_modified: str | None = None

    asset_type = HfAssetType.MODEL

    @classmethod
    def from_json(cls, data: Any) -> HfModelInfo:
        d = _map(data)
        card = _map(d.get("cardData"))
        mi = d.get("model-index", d.get("model_index", card.get("model-index")))
        gated = d.get("gated")
        return cls(
            id=_str(d.get("id") or d.get("modelId")),
            author=_author(d),
            sha=_sha(d.get("sha")),
            pipeline_tag=_opt_str(d.get("pipeline_tag")),
            tags=_strs(d.get("tags")),
            downloads=_int(d.get("downloads")),
            likes=_int(d.get("likes")),
            library_name=_opt_str(d.get("library_name") or card.get("library_name")),
            model_index=tuple(ModelIndexEntry.from_json(e) for e in mi) if isinstance(mi, list) else None,
            safetensors=SafetensorsInfo.from_json(d.get("safetensors")),
            gguf=GgufInfo.from_json(d.get("gguf")),
            files=files_from_siblings(d.get("siblings")),
            private=bool(d.get("private", False)),
            gated=(gated if isinstance(gated, str) else ("auto" if gated is True else None)),
            last_modified=_opt_str(d.get("lastModified")),
        )

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)


@dataclass(frozen=True, slots=True)
class FeatureType:
    """A dataset column's type as declared in the card's ``dataset_info.features``.

    ``kind`` is ``Value``, ``ClassLabel``, ``Sequence``, ``Image``, ``Audio``, ``struct`` …;
    ``dtype`` the element type (``string``, ``int64`` …); ``names`` the ClassLabel names.
    """

    kind: str
    dtype: str | None = None
    names: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.kind == "ClassLabel" and self.names:
            return f"ClassLabel({', '.join(self.names)})"
        if self.kind == "Value" or not self.dtype:
            return self.dtype or self.kind
        return f"{self.kind}({self.dtype})"

    @classmethod
    def from_json(cls, f: Mapping[str, Any]) -> FeatureType:
        if "dtype" in f and isinstance(f["dtype"], str):
            return cls(kind="Value", dtype=f["dtype"])
        if "class_label" in f:
            names = _map(_map(f["class_label"]).get("names"))
            return cls(
                kind="ClassLabel", dtype="int64", names=tuple(str(names[k]) for k in sorted(names, key=_int))
            )
        if "sequence" in f:
            inner = f["sequence"]
            dtype = inner if isinstance(inner, str) else _str(_map(inner).get("dtype")) or "struct"
            return cls(kind="Sequence", dtype=dtype)
        if "list" in f:
            inner = f["list"]
            dtype = inner if isinstance(inner, str) else _str(_map(inner).get("dtype")) or "struct"
            return cls(kind="List", dtype=dtype)
        if "struct" in f:
            return cls(kind="struct")
        if "_type" in f:
            return cls(kind=_str(f["_type"]), dtype=_opt_str(f.get("dtype")))
        for k in ("image", "audio", "video"):
            if k in f:
                return cls(kind=k.capitalize())
        return cls(kind="unknown")


@dataclass(frozen=True, slots=True)
class DatasetSplit:
    name: str
    num_examples: int = 0
    num_bytes: int = 0


def _dataset_info_block(card: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """``dataset_info`` from the card: one mapping, or a list (one per config)."""
    di = card.get("dataset_info")
    if isinstance(di, Mapping):
        return [di]
    if isinstance(di, list):
        return [x for x in di if isinstance(x, Mapping)]
    return []


@dataclass(frozen=True, slots=True)
class HfDatasetInfo:
    """Spec ``HfDatasetInfo``.  Splits/features/sizes come from the card's ``dataset_info``
    (the first/default config when there are several; sizes are summed over configs)."""

    id: str
    author: str = ""
    description: str | None = None
    citation: str | None = None
    splits: tuple[DatasetSplit, ...] = ()
    features: Mapping[str, FeatureType] = field(default_factory=dict)
    size_bytes: int = 0
    download_size: int = 0
    sha: str = ""
    tags: tuple[str, ...] = ()
    downloads: int = 0
    likes: int = 0
    files: tuple[RepoFile, ...] = ()
    private: bool = False
    gated: str | None = None
    last_modified: str | None = None

    asset_type = HfAssetType.DATASET

    @property
    def size_categories(self) -> tuple[str, ...]:
        return tuple(t.split(":", 1)[1] for t in self.tags if t.startswith("size_categories:"))

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(t.split(":", 1)[1] for t in self.tags if t.startswith("language:"))

    @classmethod
    def from_json(cls, data: Any) -> HfDatasetInfo:
        d = _map(data)
        card = _map(d.get("cardData"))
        blocks = _dataset_info_block(card) or _dataset_info_block(d)
        first = blocks[0] if blocks else {}
        splits = tuple(
            DatasetSplit(
                _str(_map(s).get("name")), _int(_map(s).get("num_examples")), _int(_map(s).get("num_bytes"))
            )
            for s in (first.get("splits") or [])
            if isinstance(s, Mapping)
        )
        features: dict[str, FeatureType] = {}
        raw_features = first.get("features")
        if isinstance(raw_features, list):
            for f in raw_features:
                if isinstance(f, Mapping) and isinstance(f.get("name"), str):
                    features[f["name"]] = FeatureType.from_json(f)
        elif isinstance(raw_features, Mapping):  # the datasets-library dict form
            for name, f in raw_features.items():
                features[str(name)] = FeatureType.from_json(_map(f))
        size = sum(_int(b.get("dataset_size")) for b in blocks) or sum(s.num_bytes for s in splits)
        download = sum(_int(b.get("download_size")) for b in blocks)
        gated = d.get("gated")
        tags = _strs(d.get("tags"))
        # the Hub also lists card size_categories / language as tags; keep them visible
        extra = [f"size_categories:{c}" for c in _strs(card.get("size_categories"))]
        extra += [f"language:{c}" for c in _strs(card.get("language"))]
        tags = tags + tuple(t for t in extra if t not in tags)
        return cls(
            id=_str(d.get("id")),
            author=_author(d),
            description=_opt_str(d.get("description") or card.get("description") or first.get("description")),
            citation=_opt_str(d.get("citation") or card.get("citation") or first.get("citation")),
            splits=splits,
            features=features,
            size_bytes=size,
            download_size=download,
            sha=_sha(d.get("sha")),
            tags=tags,
            downloads=_int(d.get("downloads")),
            likes=_int(d.get("likes")),
            files=files_from_siblings(d.get("siblings")),
            private=bool(d.get("private", False)),
            gated=(gated if isinstance(gated, str) else ("auto" if gated is True else None)),
            last_modified=_opt_str(d.get("lastModified")),
        )

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)


class SpaceSdk(str, enum.Enum):
    """Spec ``SpaceSdk``; ``UNKNOWN`` when the Hub reports something else or nothing."""

    GRADIO = "gradio"
    STREAMLIT = "streamlit"
    DOCKER = "docker"
    STATIC = "static"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: Any) -> SpaceSdk:
        v = _str(value).strip().lower()
        for m in cls:
            if m.value == v:
                return m
        return cls.UNKNOWN


class SpaceStatus(str, enum.Enum):
    """A Space's runtime stage as the Hub reports it (``runtime.stage``)."""

    RUNNING = "RUNNING"
    BUILDING = "BUILDING"
    APP_STARTING = "APP_STARTING"
    RUNNING_BUILDING = "RUNNING_BUILDING"
    RUNNING_APP_STARTING = "RUNNING_APP_STARTING"
    STOPPED = "STOPPED"
    PAUSED = "PAUSED"
    SLEEPING = "SLEEPING"
    BUILD_ERROR = "BUILD_ERROR"
    RUNTIME_ERROR = "RUNTIME_ERROR"
    CONFIG_ERROR = "CONFIG_ERROR"
    NO_APP_FILE = "NO_APP_FILE"
    DELETING = "DELETING"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def parse(cls, value: Any) -> SpaceStatus:
        v = _str(value).strip().upper()
        for m in cls:
            if m.value == v:
                return m
        return cls.UNKNOWN


@dataclass(frozen=True, slots=True)
class HfSpaceInfo:
    """Spec ``HfSpaceInfo``."""

    id: str
    author: str = ""
    sdk: SpaceSdk = SpaceSdk.UNKNOWN
    hardware: str | None = None
    status: SpaceStatus = SpaceStatus.UNKNOWN
    sha: str = ""
    tags: tuple[str, ...] = ()
    likes: int = 0
    files: tuple[RepoFile, ...] = ()
    private: bool = False
    last_modified: str | None = None

    asset_type = HfAssetType.SPACE

    @classmethod
    def from_json(cls, data: Any) -> HfSpaceInfo:
        d = _map(data)
        runtime = _map(d.get("runtime"))
        hw = runtime.get("hardware")
        hardware = (
            _opt_str(_map(hw).get("current") or _map(hw).get("requested"))
            if isinstance(hw, Mapping)
            else _opt_str(hw)
        )
        card = _map(d.get("cardData"))
        return cls(
            id=_str(d.get("id")),
            author=_author(d),
            sdk=SpaceSdk.parse(d.get("sdk") or card.get("sdk")),
            hardware=hardware,
            status=SpaceStatus.parse(runtime.get("stage") or d.get("status")),
            sha=_sha(d.get("sha")),
            tags=_strs(d.get("tags")),
            likes=_int(d.get("likes")),
            files=files_from_siblings(d.get("siblings")),
            private=bool(d.get("private", False)),
            last_modified=_opt_str(d.get("lastModified")),
        )

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)


@dataclass(frozen=True, slots=True)
class UserInfo:
    """``whoami``: who the token belongs to (never the token itself)."""

    name: str
    fullname: str | None = None
    type: str = "user"
    email: str | None = None
    orgs: tuple[str, ...] = ()
    token_name: str | None = None
    token_role: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> UserInfo:
        d = _map(data)
        orgs = d.get("orgs")
        token = _map(_map(d.get("auth")).get("accessToken"))
        return cls(
            name=_str(d.get("name")),
            fullname=_opt_str(d.get("fullname")),
            type=_str(d.get("type")) or "user",
            email=_opt_str(d.get("email")),
            orgs=tuple(_str(_map(o).get("name")) for o in orgs if _map(o).get("name"))
            if isinstance(orgs, list)
            else (),
            token_name=_opt_str(token.get("displayName")),
            token_role=_opt_str(token.get("role")),
        )

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)


HfRepoInfo = HfModelInfo | HfDatasetInfo | HfSpaceInfo


def info_from_json(repo_type: HfAssetType, data: Any) -> HfRepoInfo:
    """Translate an info/search object of the given repo type."""
    if repo_type is HfAssetType.DATASET:
        return HfDatasetInfo.from_json(data)
    if repo_type is HfAssetType.SPACE:
        return HfSpaceInfo.from_json(data)
    return HfModelInfo.from_json(data)


def _plain(v: Any) -> Any:
    if isinstance(v, enum.Enum):
        return v.value
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, FeatureType):
        return str(v)
    return v


def _to_json(obj: Any) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for k in obj.__dataclass_fields__:
        v = getattr(obj, k)
        if k == "features":
            d[k] = {name: str(ft) for name, ft in v.items()}
        elif k == "files":
            d[k] = [{"path": f.path, "size": f.size, "blob_id": f.blob_id, "sha256": f.sha256} for f in v]
        elif hasattr(v, "__dataclass_fields__"):
            d[k] = _plain(asdict(v))
        elif isinstance(v, tuple) and v and hasattr(v[0], "__dataclass_fields__"):
            d[k] = [_plain(asdict(x)) for x in v]
        else:
            d[k] = _plain(v)
    d["type"] = obj.asset_type.value if hasattr(obj, "asset_type") else None
    if d["type"] is None:
        del d["type"]
    return d


# --------------------------------------------------------------------------- queries


class SortKey(str, enum.Enum):
    """``--sort``: our names and the Hub's ``sort`` parameter."""

    DOWNLOADS = "downloads"
    LIKES = "likes"
    UPDATED = "updated"
    TRENDING = "trending"

    @property
    def hub_param(self) -> str:
        return {"updated": "lastModified", "trending": "trendingScore"}.get(self.value, self.value)


@dataclass(frozen=True, slots=True)
class ModelQuery:
    search: str = ""
    task: str | None = None
    library: str | None = None
    author: str | None = None
    sort: SortKey = SortKey.DOWNLOADS
    limit: int = 20


@dataclass(frozen=True, slots=True)
class DatasetQuery:
    search: str = ""
    language: str | None = None
    size: str | None = None  # a size expression, see batuta_sync.hub.sizeexpr
    author: str | None = None
    sort: SortKey = SortKey.DOWNLOADS
    limit: int = 20


@dataclass(frozen=True, slots=True)
class SpaceQuery:
    search: str = ""
    sdk: SpaceSdk | None = None
    author: str | None = None
    sort: SortKey = SortKey.LIKES
    limit: int = 20


# --------------------------------------------------------------------------- size expressions

#: The Hub's dataset ``size_categories`` (number of rows), as (label, low, high).
SIZE_CATEGORIES: tuple[tuple[str, float, float], ...] = (
    ("n<1K", 0, 1e3),
    ("1K<n<10K", 1e3, 1e4),
    ("10K<n<100K", 1e4, 1e5),
    ("100K<n<1M", 1e5, 1e6),
    ("1M<n<10M", 1e6, 1e7),
    ("10M<n<100M", 1e7, 1e8),
    ("100M<n<1B", 1e8, 1e9),
    ("1B<n<10B", 1e9, 1e10),
    ("10B<n<100B", 1e10, 1e11),
    ("100B<n<1T", 1e11, 1e12),
    ("n>1T", 1e12, float("inf")),
)

_ROW_UNITS = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}
_BYTE_UNITS = {
    "B": 1,
    "KB": 1e3,
    "MB": 1e6,
    "GB": 1e9,
    "TB": 1e12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


@dataclass(frozen=True, slots=True)
class SizeFilter:
    """A parsed ``--size`` expression.

    ``kind == "rows"``: ``categories`` are the Hub ``size_categories`` overlapping the
    range (sent to the Hub as ``size_categories:<label>`` filters).  ``kind == "bytes"``:
    ``low``/``high`` bound the dataset size in bytes, filtered client-side.
    """

    kind: str
    low: float
    high: float
    categories: tuple[str, ...] = ()

    def matches_bytes(self, size: int) -> bool:
        return size > 0 and self.low <= size <= self.high


def _size_error(expr: str) -> Exception:
    from batuta_sync.errors import UsageError

    return UsageError(
        f"Cannot parse the size expression {expr!r}.",
        hint="Use bytes like '>1GB', '<100MB', '1GB-10GB' (B, KB, MB, GB, TB, KiB…), or rows like "
        "'10K-100K', '>1M', '<1K' (Hub size_categories).",
    )


def _parse_quantity(text: str, expr: str) -> tuple[float, str]:
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not m:
        raise _size_error(expr)
    number, unit = float(m.group(1)), m.group(2).upper()
    if unit in _BYTE_UNITS and unit != "B":
        return number * _BYTE_UNITS[unit], "bytes"
    if unit == "B" and m.group(2) == "b":  # a lowercase 'b' is ambiguous
        raise _size_error(expr)
    if unit == "B":
        # "1B" is a billion rows (the Hub's own notation, e.g. 1B<n<10B)
        return number * _ROW_UNITS["B"], "rows"
    if unit in _ROW_UNITS:
        return number * _ROW_UNITS[unit], "rows"
    if unit in {"BYTES", "BYTE"}:
        return number, "bytes"
    raise _size_error(expr)


def parse_size_expr(expr: str) -> SizeFilter:
    """Parse ``>1GB``, ``<100MB``, ``>=2GB``, ``1GB-10GB`` (bytes) or ``10K-100K``, ``>1M`` (rows).

    A Hub size category label itself (``10K<n<100K``) is accepted too.  Raises
    :class:`~batuta_sync.errors.UsageError` on anything else.
    """
    text = expr.strip()
    for label, lo, hi in SIZE_CATEGORIES:
        if text == label:
            return SizeFilter("rows", lo, hi, (label,))
    if not text:
        raise _size_error(expr)
    low, high = 0.0, float("inf")
    kind: str
    if text[0] in "<>":
        op = text[0]
        rest = text[1:]
        if rest.startswith("="):
            rest = rest[1:]
        value, kind = _parse_quantity(rest, expr)
        if op == ">":
            low = value
        else:
            high = value
    elif "-" in text:
        a, _, b = text.partition("-")
        lo_v, kind_a = _parse_quantity(a, expr)
        hi_v, kind_b = _parse_quantity(b, expr)
        if kind_a != kind_b or lo_v > hi_v:
            raise _size_error(expr)
        low, high, kind = lo_v, hi_v, kind_a
    else:
        raise _size_error(expr)
    if kind == "bytes":
        return SizeFilter("bytes", low, high)
    cats = tuple(label for label, lo, hi in SIZE_CATEGORIES if lo < high and hi > low)
    if not cats:
        raise _size_error(expr)
    return SizeFilter("rows", low, high, cats)


#: Weight file formats by extension (for "total weight size per format").
WEIGHT_FORMATS: dict[str, str] = {
    ".safetensors": "safetensors",
    ".gguf": "gguf",
    ".bin": "pytorch",
    ".pt": "pytorch",
    ".pth": "pytorch",
    ".ckpt": "pytorch",
    ".pkl": "pickle",
    ".onnx": "onnx",
    ".h5": "tensorflow",
    ".msgpack": "flax",
    ".mlmodel": "coreml",
    ".tflite": "tflite",
}


def weight_sizes(files: tuple[RepoFile, ...] | list[RepoFile]) -> dict[str, int]:
    """Total bytes of weight files per format, e.g. ``{"safetensors": 13_476_839_424}``."""
    out: dict[str, int] = {}
    for f in files:
        name = f.path.rsplit("/", 1)[-1].lower()
        dot = name.rfind(".")
        fmt = WEIGHT_FORMATS.get(name[dot:]) if dot >= 0 else None
        if fmt:
            out[fmt] = out.get(fmt, 0) + f.size
    return dict(sorted(out.items()))
