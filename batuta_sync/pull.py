"""Pulling repos into the cache: what to fetch (pure) and fetching it (I/O).

* :func:`plan_pull` - PURE: from a :class:`~batuta_sync.types.RepoSnapshot` and a
  :class:`PullRequest`, which files to download, which are blocked by the safety policy
  (and why), which format was chosen and notes to show.  Format auto-selection for models:
  safetensors, else GGUF, never pickle; ``--format gguf --quantization Q4_K_M`` picks that
  quantization's file(s) incl. split shards.  Datasets: ``--split``.
* :func:`pull` - resolve (≤ 2 API calls via :class:`~batuta_sync.hub.client.HfClient`, or
  none when given a snapshot / offline), download into the huggingface_hub-layout cache
  (:mod:`batuta_sync.hub.download`), content-check, link the snapshot, optionally
  materialize ``--output``, record cache statistics.
* :func:`cached_snapshot` - the cached listing of a repo, without network.

Example::

    from batuta_sync.pull import PullRequest, pull
    from batuta_sync.settings import resolve_settings
    from batuta_sync.types import RepoRef

    res = pull(resolve_settings(), PullRequest(RepoRef("TheBloke/Llama-2-7B-GGUF"), format="gguf",
                                               quantization="Q4_K_M"))
    print(res.snapshot_dir, [f.path for f in res.selected])
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batuta_sync.errors import (
    ConversionError,
    IntegrityError,
    NetworkError,
    NotFoundError,
    OfflineError,
    UsageError,
)
from batuta_sync.safety import (
    FileSafety,
    UnsafePathError,
    check_name_collisions,
    classify_file_safety,
    path_problem,
    unsafe_reason,
)
from batuta_sync.types import HfAssetType, RepoFile, RepoRef, RepoSnapshot, check_repo_id

if TYPE_CHECKING:
    from batuta_sync.hub.download import ProgressSink
    from batuta_sync.settings import Settings

__all__ = [
    "ConversionNeededError",
    "PullRequest",
    "PullResult",
    "PullSelection",
    "cached_snapshot",
    "gguf_quantizations",
    "plan_pull",
    "pull",
    "register_conversion_hook",
]

FORMATS = ("safetensors", "gguf")

# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class PullRequest:
    """What to pull.  ``files`` (exact paths, ``pull files``) overrides format selection."""

    ref: RepoRef
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    format: str | None = None  # safetensors | gguf | None (auto)
    quantization: str | None = None
    split: str | None = None
    output: Path | None = None
    copy: bool = False
    allow_unsafe: bool = False
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConversionNeeded:
    """The asked-for format is not in the repo but can be produced from what is there."""

    source_format: str
    target_format: str
    quantization: str | None
    source_files: tuple[RepoFile, ...]


@dataclass(frozen=True)
class PullSelection:
    """The pure decision: what to fetch, what is blocked and why, the chosen format, notes."""

    selected: tuple[RepoFile, ...]
    blocked: tuple[tuple[str, str], ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  # (path, why not selected) for weight files left out
    format: str | None = None
    notes: tuple[str, ...] = ()
    conversion: ConversionNeeded | None = None

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.selected)


@dataclass(frozen=True)
class PullResult:
    snapshot: RepoSnapshot  # commit + ALL remote files
    selected: tuple[RepoFile, ...]
    snapshot_dir: Path
    output: Path | None
    downloaded_bytes: int
    cache_hits: int
    blocked: tuple[tuple[str, str], ...] = ()
    format: str | None = None
    notes: tuple[str, ...] = ()
    transferred_bytes: int = 0
    seconds: float = 0.0
    offline: bool = False

    @property
    def files(self) -> tuple[Path, ...]:
        base = self.output or self.snapshot_dir
        return tuple(base / f.path for f in self.selected)

    def to_json(self) -> dict[str, Any]:
        return {
            "repo": self.snapshot.ref.repo_id,
            "repo_type": self.snapshot.ref.repo_type.value,
            "revision": self.snapshot.ref.revision,
            "commit": self.snapshot.commit,
            "snapshot_dir": str(self.snapshot_dir),
            "output": str(self.output) if self.output else None,
            "format": self.format,
            "files": [
                {"path": f.path, "size": f.size, "sha256": f.sha256, "blob_id": f.blob_id}
                for f in self.selected
            ],
            "downloaded_bytes": self.downloaded_bytes,
            "transferred_bytes": self.transferred_bytes,
            "cache_hits": self.cache_hits,
            "blocked": [{"path": p, "reason": r} for p, r in self.blocked],
            "notes": list(self.notes),
            "seconds": round(self.seconds, 3),
            "offline": self.offline,
        }


class ConversionNeededError(ConversionError):
    """The repo lacks the requested format; ``batuta convert`` can produce it."""

    code = "conversion-needed"

    def __init__(self, message: str, conversion: ConversionNeeded, *, hint: str | None = None) -> None:
        self.conversion = conversion
        super().__init__(message, hint=hint)


ConversionHook = Callable[["Settings", PullRequest, PullSelection, RepoSnapshot], PullResult]
_CONVERSION_HOOK: ConversionHook | None = None


def register_conversion_hook(hook: ConversionHook | None) -> None:
    """Let the conversion layer satisfy a pull that needs a conversion (e.g. safetensors → GGUF Q4_K_M).

    The hook receives the settings, the request, the selection (its ``conversion`` names the
    source files) and the snapshot, and returns the PullResult to report.
    """
    global _CONVERSION_HOOK
    _CONVERSION_HOOK = hook


# --------------------------------------------------------------------------- formats

_WEIGHT_FAMILY: dict[str, str] = {
    ".safetensors": "safetensors",
    ".gguf": "gguf",
    ".bin": "pytorch",
    ".pt": "pytorch",
    ".pth": "pytorch",
    ".ckpt": "pytorch",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".joblib": "pickle",
    ".h5": "tensorflow",
    ".keras": "tensorflow",
    ".msgpack": "flax",
    ".onnx": "onnx",
    ".onnx_data": "onnx",
    ".ot": "rust",
    ".tflite": "tflite",
    ".mlmodel": "coreml",
    ".npz": "numpy",
}
_INDEX_RE = re.compile(r"\.(safetensors|bin|msgpack|h5|pt|pth|ckpt)\.index\.json$", re.IGNORECASE)
_SHARD_RE = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
_QUANT_RE = re.compile(
    r"(?<![A-Z0-9])("
    r"IQ[1-4]_(?:XXS|XS|S|M|NL|L)|"
    r"TQ[12]_0|"
    r"Q[2-8]_K(?:_(?:XL|S|M|L))?|"
    r"Q4_0_(?:4_4|4_8|8_8)|"
    r"Q[4-8]_[01]|"
    r"MXFP4|BF16|F16|F32|FP16|FP32"
    r")(?![A-Z0-9])"
)
QUANT_PREFERENCE = (
    "Q4_K_M",
    "Q4_K_S",
    "Q5_K_M",
    "Q4_0",
    "Q5_0",
    "Q6_K",
    "Q8_0",
    "Q3_K_M",
    "BF16",
    "F16",
    "F32",
)


def weight_family(path: str) -> str | None:
    """``safetensors`` / ``gguf`` / ``pytorch`` / … for weight files (and their index JSON), else None."""
    name = path.rsplit("/", 1)[-1].lower()
    m = _INDEX_RE.search(name)
    if m:
        return _WEIGHT_FAMILY.get("." + m.group(1).lower())
    dot = name.rfind(".")
    if dot <= 0:
        return None
    return _WEIGHT_FAMILY.get(name[dot:])  # training_args.bin & co count as pytorch (pickles)


def gguf_quantizations(path: str) -> tuple[str, ...]:
    """Quantization names in a GGUF path (``llama-2-7b.Q4_K_M.gguf`` -> ``("Q4_K_M",)``)."""
    up = path.upper().replace("FP16", "F16").replace("FP32", "F32")
    return tuple(dict.fromkeys(m.group(1) for m in _QUANT_RE.finditer(up)))


def _norm_quant(q: str) -> str:
    return q.strip().upper().replace("FP16", "F16").replace("FP32", "F32")


def _matches(path: str, patterns: Sequence[str]) -> bool:
    for p in patterns:
        if p.endswith("/"):
            p += "*"
        if fnmatch.fnmatchcase(path, p):
            return True
    return False


def _shard_groups(files: Sequence[RepoFile]) -> tuple[list[RepoFile], list[str]]:
    """Keep complete split-GGUF shard sets; return (kept, problems)."""
    groups: dict[tuple[str, int], dict[int, RepoFile]] = {}
    kept: list[RepoFile] = []
    for f in files:
        m = _SHARD_RE.search(f.path)
        if m:
            key = (f.path[: m.start()], int(m.group(2)))
            groups.setdefault(key, {})[int(m.group(1))] = f
        else:
            kept.append(f)
    problems: list[str] = []
    for (prefix, total), shards in sorted(groups.items()):
        missing = [i for i in range(1, total + 1) if i not in shards]
        if missing:
            problems.append(
                f"{prefix}-*-of-{total:05d}.gguf is missing shard(s) {', '.join(f'{i:05d}' for i in missing)}"
            )
            continue
        kept.extend(shards[i] for i in range(1, total + 1))
    return kept, problems


# --------------------------------------------------------------------------- datasets

_SPLIT_KEYWORDS = (
    "train",
    "training",
    "validation",
    "valid",
    "val",
    "dev",
    "test",
    "testing",
    "eval",
    "evaluation",
)
_SEP = r"[-._ 0-9]"
_NAMED_SHARD_RE = re.compile(r"^(?P<split>[A-Za-z][A-Za-z0-9_]*?)-\d{5}-of-\d{5}\.")
_META_NAMES = {
    "readme.md",
    ".gitattributes",
    "dataset_infos.json",
    "dataset_info.json",
    "dataset_dict.json",
    "state.json",
}
_META_EXTS = (".md", ".py", ".yaml", ".yml", ".gitattributes", ".gitignore", ".lock")


def card_splits(card: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """Split name -> data_files globs (possibly empty) from a dataset card's YAML."""
    out: dict[str, list[str]] = {}
    if not card:
        return out
    configs = card.get("configs")
    if isinstance(configs, list):
        for cfg in configs:
            if not isinstance(cfg, Mapping):
                continue
            data_files = cfg.get("data_files")
            if isinstance(data_files, list):
                for df in data_files:
                    if isinstance(df, Mapping) and isinstance(df.get("split"), str):
                        paths = df.get("path")
                        globs = (
                            [paths]
                            if isinstance(paths, str)
                            else [p for p in paths or [] if isinstance(p, str)]
                        )
                        out.setdefault(df["split"], []).extend(globs)
            elif isinstance(data_files, Mapping):
                for split, paths in data_files.items():
                    globs = (
                        [paths] if isinstance(paths, str) else [p for p in paths or [] if isinstance(p, str)]
                    )
                    out.setdefault(str(split), []).extend(globs)
    infos = card.get("dataset_info")
    for info in infos if isinstance(infos, list) else [infos]:
        if isinstance(info, Mapping):
            for s in info.get("splits") or []:
                if isinstance(s, Mapping) and isinstance(s.get("name"), str):
                    out.setdefault(s["name"], [])
    return out


def _is_meta(path: str) -> bool:
    name = path.rsplit("/", 1)[-1].lower()
    return name in _META_NAMES or name.endswith(_META_EXTS)


def _in_split(path: str, split: str) -> bool:
    parts = path.split("/")
    if split in parts[:-1]:
        return True
    return re.search(rf"(^|{_SEP}){re.escape(split)}({_SEP}|$)", parts[-1]) is not None


def dataset_splits(files: Sequence[RepoFile], card: Mapping[str, Any] | None = None) -> list[str]:
    """Split names visible in the file layout (+ the card)."""
    found: dict[str, None] = dict.fromkeys(card_splits(card))
    for f in files:
        if _is_meta(f.path):
            continue
        name = f.path.rsplit("/", 1)[-1]
        m = _NAMED_SHARD_RE.match(name)
        if m:
            found.setdefault(m.group("split"), None)
            continue
        for kw in _SPLIT_KEYWORDS:
            if _in_split(f.path, kw):
                found.setdefault(kw, None)
    return list(found)


def _split_files(files: Sequence[RepoFile], split: str, card: Mapping[str, Any] | None) -> list[RepoFile]:
    globs = card_splits(card).get(split) or []
    out = []
    for f in files:
        if _is_meta(f.path):
            continue
        if globs:
            if any(
                fnmatch.fnmatchcase(f.path, g) or fnmatch.fnmatchcase(f.path, g.replace("**/", ""))
                for g in globs
            ):
                out.append(f)
        elif _in_split(f.path, split):
            out.append(f)
    return out


# --------------------------------------------------------------------------- the pure plan


def plan_pull(
    snapshot: RepoSnapshot, req: PullRequest, *, card: Mapping[str, Any] | None = None
) -> PullSelection:
    """Decide which files of ``snapshot`` to fetch for ``req`` (pure; raises BatutaErrors).

    ``card`` is the dataset card's YAML (for ``--split`` with card-declared splits); by default
    the ``cardData`` the Hub sent with the snapshot, so ``batuta plan`` resolves card-declared
    splits exactly as ``batuta hf pull`` does.
    """
    if card is None:
        card = snapshot.card
    ref = snapshot.ref
    notes: list[str] = []
    skipped: list[tuple[str, str]] = []
    fmt = req.format.lower() if req.format else None
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(
            f"Unknown --format {req.format!r}.", hint="Use --format safetensors or --format gguf."
        )
    if req.quantization and fmt is None:
        fmt = "gguf"
    if req.quantization and fmt != "gguf":
        raise UsageError(
            "--quantization applies to GGUF files only.", hint="Use it with --format gguf (or drop --format)."
        )

    files = list(snapshot.files)
    # 1. explicit files
    if req.files:
        by_path = {f.path: f for f in files}
        missing = [p for p in req.files if p not in by_path]
        if missing:
            raise NotFoundError(
                f"{ref}: not in commit {snapshot.commit[:12]}: {', '.join(missing)}.",
                hint=f"List the repo's files with `{ls_command(ref)}`.",
                code="entry-not-found",
            )
        candidates = [by_path[p] for p in dict.fromkeys(req.files)]
    else:
        candidates = files
        if req.include:
            candidates = [f for f in candidates if _matches(f.path, req.include)]
        if req.exclude:
            candidates = [f for f in candidates if not _matches(f.path, req.exclude)]
        if (req.include or req.exclude) and not candidates:
            raise NotFoundError(
                f"{ref}: no file matches --include {list(req.include)} / --exclude {list(req.exclude)}.",
                hint=f"List the repo's files with `{ls_command(ref)}`.",
                code="entry-not-found",
            )

    # 2. remote names must be safe relative paths
    for f in candidates:
        problem = path_problem(f.path)
        if problem:
            raise UnsafePathError(
                f"{ref}: refusing the remote file name {f.path!r}: it {problem}. Nothing was written."
            )

    chosen: str | None = None
    conversion: ConversionNeeded | None = None
    # 3. dataset split
    if ref.repo_type is HfAssetType.DATASET and req.split:
        split_files = _split_files(candidates, req.split, card)
        if not split_files:
            splits = dataset_splits(files, card)
            raise NotFoundError(
                f"{ref}: there is no split {req.split!r}. Splits in this dataset: "
                + (", ".join(splits) if splits else "(none found in the file layout or the card)")
                + ".",
                hint="Pass one of those names to --split, or omit --split to pull every file.",
                code="split-not-found",
            )
        candidates = [f for f in candidates if _is_meta(f.path)] + split_files
        notes.append(f"split {req.split!r}: {len(split_files)} data file(s)")
    elif req.split and ref.repo_type is not HfAssetType.DATASET:
        raise UsageError(
            "--split applies to datasets only.", hint="Use `batuta hf pull dataset REPO --split NAME`."
        )

    # 4. format selection (models; and any repo when --format is explicit)
    if not req.files and (ref.repo_type is HfAssetType.MODEL or fmt):
        weights: dict[str, list[RepoFile]] = {}
        for f in candidates:
            fam = weight_family(f.path)
            if fam:
                weights.setdefault(fam, []).append(f)
        auto = fmt is None and not req.include
        if fmt == "gguf" or (auto and "safetensors" not in weights and "gguf" in weights):
            chosen, picked, extra_notes, conversion = _pick_gguf(weights, req, ref, explicit=fmt == "gguf")
            notes.extend(extra_notes)
        elif fmt == "safetensors" or (auto and "safetensors" in weights):
            if "safetensors" not in weights:
                src = "gguf" if "gguf" in weights else next(iter(sorted(weights)), None)
                if src is None:
                    raise NotFoundError(
                        f"{ref}: the repo has no weight files to pull as safetensors.",
                        hint="Check the repo id, or pull specific files with --include.",
                        code="format-not-found",
                    )
                conversion = ConversionNeeded(src, "safetensors", None, tuple(weights[src]))
                picked = []
            else:
                picked = weights["safetensors"]
            chosen = "safetensors"
        else:
            picked = [f for fam, fs in weights.items() for f in fs]  # include patterns: the user chose
            chosen = None
            if auto and weights:
                chosen = "+".join(sorted(weights))
        picked_ids = {id(f) for f in picked}
        new: list[RepoFile] = []
        for f in candidates:
            fam = weight_family(f.path)
            if fam is None or id(f) in picked_ids:
                new.append(f)
            else:
                skipped.append((f.path, f"{fam} weights ({chosen or 'another format'} selected)"))
        candidates = new
        if skipped:
            fams = sorted({weight_family(p) or "" for p, _ in skipped})
            notes.append(
                f"format {chosen}: left out {len(skipped)} {'/'.join(fams)} file(s) (use --include to pull them)"
            )

    # 5. safety by name
    blocked: list[tuple[str, str]] = []
    selected: list[RepoFile] = []
    for f in candidates:
        if classify_file_safety(f.path) is FileSafety.UNSAFE and not req.allow_unsafe:
            blocked.append((f.path, f"{unsafe_reason(f.path)}; allow with --allow-unsafe"))
        else:
            selected.append(f)
    if req.allow_unsafe and any(classify_file_safety(f.path) is FileSafety.UNSAFE for f in selected):
        notes.append("--allow-unsafe: pickle-based files are downloaded, never loaded")
    return PullSelection(
        selected=tuple(sorted(selected, key=lambda f: f.path)),
        blocked=tuple(blocked),
        skipped=tuple(skipped),
        format=chosen,
        notes=tuple(notes),
        conversion=conversion,
    )


def _pick_gguf(
    weights: Mapping[str, list[RepoFile]], req: PullRequest, ref: RepoRef, *, explicit: bool
) -> tuple[str, list[RepoFile], list[str], ConversionNeeded | None]:
    ggufs = list(weights.get("gguf", []))
    notes: list[str] = []
    want = _norm_quant(req.quantization) if req.quantization else None
    by_quant: dict[str, list[RepoFile]] = {}
    for f in ggufs:
        qs = gguf_quantizations(f.path)
        for q in qs or ("(unknown)",):
            by_quant.setdefault(q, []).append(f)
    if not ggufs or (want and want not in by_quant):
        src = "safetensors" if "safetensors" in weights else ("pytorch" if "pytorch" in weights else None)
        have = ", ".join(sorted(by_quant)) if by_quant else "none"
        if src is not None:
            conv = ConversionNeeded(src, "gguf", want, tuple(weights[src]))
            return (
                "gguf",
                [],
                [f"no GGUF {want or ''} file in the repo (GGUF quantizations present: {have})"],
                conv,
            )
        if not ggufs:
            raise NotFoundError(
                f"{ref}: the repo has no GGUF files.", hint="Drop --format gguf.", code="format-not-found"
            )
        raise NotFoundError(
            f"{ref}: no GGUF file with quantization {want}. Quantizations in this repo: {have}.",
            hint="Pass one of those to --quantization.",
            code="quant-not-found",
        )
    if want is None:
        if len(by_quant) > 1:
            want = next((q for q in QUANT_PREFERENCE if q in by_quant), sorted(by_quant)[0])
            notes.append(
                f"GGUF quantizations present: {', '.join(sorted(by_quant))}; picked {want} (use --quantization)"
            )
        else:
            want = next(iter(by_quant))
    files, problems = _shard_groups(by_quant[want])
    if not files:
        raise NotFoundError(
            f"{ref}: the GGUF {want} file set is incomplete: {'; '.join(problems)}.",
            hint="The repo is missing shards; pick another --quantization.",
            code="entry-not-found",
        )
    names = ", ".join(f.path for f in files)
    notes.append(
        f"GGUF {want}: {names}"
        + (f" ({len(files)} shards)" if len(files) > 1 and _SHARD_RE.search(files[0].path) else "")
    )
    notes.extend(problems)
    return "gguf", files, notes, None


# --------------------------------------------------------------------------- offline


def cached_snapshot(settings: Settings, ref: RepoRef) -> RepoSnapshot | None:
    """The cached listing of ``ref`` (``refs/`` + ``trees/<sha>.json``); no network."""
    from batuta_sync.hub.cache import cached_snapshot_at

    return cached_snapshot_at(settings.hub_cache, ref, settings.batuta_dir)


# --------------------------------------------------------------------------- I/O


def _parse_card(text: str) -> dict[str, Any] | None:
    if not text.startswith("---"):
        return None
    end = text.find("\n---", 3)
    if end < 0:
        return None
    import yaml

    try:
        data = yaml.safe_load(text[3:end])
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _resolve_snapshot(settings: Settings, ref: RepoRef, **http_kwargs: Any) -> tuple[RepoSnapshot, bool]:
    """(snapshot, offline?) - from the Hub, or the cache when offline / the Hub is unreachable."""
    if settings.offline:
        snap = cached_snapshot(settings, ref)
        if snap is None:
            raise OfflineError(
                f"Offline mode and {ref} is not in the cache ({settings.hub_cache}): no refs/{ref.revision} "
                "or no trees/<commit>.json listing."
            )
        return snap, True
    from batuta_sync.ids import is_git_sha1

    if is_git_sha1(ref.revision):  # a commit's (complete) listing never changes
        from batuta_sync.hub.cache import cached_snapshot_at

        snap = cached_snapshot_at(settings.hub_cache, ref)
        if snap is not None:
            return snap, False
    from batuta_sync.hub.client import HfClient

    try:
        with HfClient(settings, **http_kwargs) as client:
            return client.snapshot(ref), False
    except NetworkError:
        snap = cached_snapshot(settings, ref)
        if snap is None:
            raise
        return snap, True


def ls_command(ref: RepoRef) -> str:
    """The command that lists ``ref``'s files (for hints)."""
    kind = "" if ref.repo_type is HfAssetType.MODEL else f" --repo-type {ref.repo_type.value}"
    rev = "" if ref.revision == "main" else f" --revision {ref.revision}"
    return f"batuta hf ls {ref.repo_id}{kind}{rev}"


def pull(
    settings: Settings,
    req: PullRequest,
    *,
    jobs: int = 8,
    progress: ProgressSink | None = None,
    snapshot: RepoSnapshot | None = None,
    max_wait: float | None = None,
    no_wait: bool = False,
    sleep: Callable[[float], None] | None = None,
) -> PullResult:
    """Download ``req`` into the cache (and ``req.output``); see the module docstring.

    Raises :class:`~batuta_sync.errors.UnsafeFileError` when the policy blocks everything
    asked for, :class:`ConversionNeededError` when the format must be converted and no
    conversion hook is registered, :class:`~batuta_sync.errors.OfflineError` naming the
    missing files when offline.  Files blocked while others were pulled are in ``blocked``.
    """
    import time

    from batuta_sync.hub.cache import (
        CacheLayout,
        HfCache,
        ensure_cache_root,
        link_snapshot_file,
        materialize,
        verified_blob,
        write_partial_listing,
        write_ref,
        write_tree,
    )
    from batuta_sync.hub.download import Downloader, DownloadJob
    from batuta_sync.safety import sniff_file_safety, unsafe_files_error

    t0 = time.monotonic()
    check_repo_id(req.ref.repo_id)
    offline = settings.offline
    complete_listing = snapshot is None  # ours: the commit's full listing; a caller's may be a subset
    if snapshot is None:
        waits: dict[str, Any] = {"max_wait": max_wait, "no_wait": no_wait}
        if sleep is not None:
            waits["sleep"] = sleep
        snapshot, offline = _resolve_snapshot(settings, req.ref, **waits)
        complete_listing = not offline
    else:
        offline = settings.offline
    if snapshot.ref != req.ref:
        snapshot = replace(snapshot, ref=req.ref)
    ref = req.ref
    layout = CacheLayout.of(settings.hub_cache, ref)
    cache = HfCache.from_settings(settings)
    dl = Downloader(
        settings, jobs=jobs, progress=progress, max_wait=max_wait, no_wait=no_wait, sleep=sleep or time.sleep
    )

    def have(f: RepoFile) -> bool:  # verified by batuta (or re-hashed now), never by size
        return verified_blob(settings.batuta_dir, layout, f)

    def fetch(files: Sequence[RepoFile]) -> Any:
        missing = [f for f in files if not have(f)]
        if offline and missing:
            raise OfflineError(
                f"Offline and {len(missing)} file(s) of {ref} (commit {snapshot.commit[:12]}) are not in the cache: "
                + ", ".join(f.path for f in missing)
                + "."
            )
        return dl.fetch_all([DownloadJob(ref, snapshot.commit, f, layout) for f in files])

    card: Mapping[str, Any] | None = snapshot.card  # the Hub's cardData, when it sent it
    if card is None and ref.repo_type is HfAssetType.DATASET and req.split:
        readme = snapshot.file("README.md")
        if readme is not None and readme.etag and path_problem(readme.path) is None and (have(readme) or not offline):
            ensure_cache_root(settings.hub_cache)
            fetch([readme])
            try:
                card = _parse_card(
                    layout.blob_path(readme.etag).read_text(encoding="utf-8", errors="replace")
                )
            except OSError:
                card = None

    selection = plan_pull(snapshot, req, card=card)
    if selection.conversion is not None:
        hook = _CONVERSION_HOOK
        if hook is None and not offline:
            from batuta_sync.convert.pullhook import convert_for_pull

            hook = convert_for_pull
        if hook is not None:
            return hook(settings, req, selection, snapshot)
        c = selection.conversion
        target = c.target_format + (f" {c.quantization}" if c.quantization else "")
        raise ConversionNeededError(
            f"{ref} has no {target} file; it has {c.source_format} weights "
            f"({len(c.source_files)} file(s)). A conversion is needed.",
            c,
            hint=f"Pull the {c.source_format} files (`--format {c.source_format}` if supported) and run "
            f"`batuta convert` to produce {target}, or declare the conversion in hf.yaml.",
        )
    if not selection.selected:
        if selection.blocked:
            raise unsafe_files_error(selection.blocked)
        raise NotFoundError(
            f"{ref}: nothing to pull.", hint="Check --include/--exclude.", code="entry-not-found"
        )

    blocked = list(selection.blocked)
    check_name_collisions([f.path for f in selection.selected], f"{ref} (commit {snapshot.commit[:12]})")
    unnamed = [f.path for f in selection.selected if not f.etag]
    if unnamed:
        raise IntegrityError(
            f"{ref}: no hash known for {', '.join(unnamed)}; cannot verify or cache it.",
            hint="Give the snapshot's files their blob ids / sha256 (HfClient.snapshot does).",
        )
    if not offline:
        ensure_cache_root(settings.hub_cache)
        if complete_listing:
            write_tree(layout, snapshot)
        else:
            write_partial_listing(settings.batuta_dir, layout, replace(snapshot, files=selection.selected))
    if req.output is not None and req.copy:
        from batuta_sync.hub.cache import disk_free, human_bytes

        out_dir = Path(req.output)
        need = sum(
            f.size
            for f in selection.selected
            if not ((out_dir / f.path).is_file() and (out_dir / f.path).stat().st_size == f.size)
        )
        if disk_free(Path(req.output)) < need + (16 << 20):
            from batuta_sync.errors import DiskFullError

            raise DiskFullError(
                f"Not enough free space in {req.output} for copies of {len(selection.selected)} file(s) "
                f"({human_bytes(need)}). Nothing was downloaded.",
                hint="Drop --copy (symlinks need no space), free space, or choose another --output.",
            )
    try:
        report = fetch(selection.selected)
    finally:
        if progress is not None:
            progress.close()

    # content check: a pickle renamed .safetensors & co never enter the snapshot
    keep: list[RepoFile] = []
    fresh = {o.path for o in report.outcomes if not o.cached}
    for f in selection.selected:
        blob = layout.blob_path(f.etag)
        verdict = sniff_file_safety(blob, f.path)
        if verdict.unsafe and not req.allow_unsafe:
            blocked.append((f.path, f"{verdict.reason}; allow with --allow-unsafe (it is never loaded)"))
            if f.path in fresh and not any(g.etag == f.etag for g in keep):
                blob.unlink(missing_ok=True)  # never cached (a blob that was already there may serve others)
            continue
        keep.append(f)
    for f in keep:
        link_snapshot_file(layout, snapshot.commit, f)
    if not offline:
        write_ref(layout, ref.revision, snapshot.commit)
    snap_dir = layout.snapshot_dir(snapshot.commit)
    snap_dir.mkdir(parents=True, exist_ok=True)
    output = None
    if req.output is not None:
        output = materialize(snap_dir, [f.path for f in keep], Path(req.output), copy=req.copy)

    hits = [f for f in keep if f.path not in fresh]
    misses = [f for f in keep if f.path in fresh]
    cache.index.touch(layout.folder, snapshot.commit)
    cache.index.record(
        {
            "repo": layout.folder,
            "revision": ref.revision,
            "commit": snapshot.commit,
            "hits": len(hits),
            "misses": len(misses),
            "hit_bytes": sum(f.size for f in hits),
            "miss_bytes": sum(f.size for f in misses),
            "transferred": report.transferred,
        }
    )
    if not keep and blocked:
        raise unsafe_files_error(blocked)
    return PullResult(
        snapshot=snapshot,
        selected=tuple(keep),
        snapshot_dir=snap_dir,
        output=output,
        downloaded_bytes=sum(f.size for f in misses),
        cache_hits=len(hits),
        blocked=tuple(blocked),
        format=selection.format,
        notes=selection.notes,
        transferred_bytes=report.transferred,
        seconds=time.monotonic() - t0,
        offline=offline,
    )
