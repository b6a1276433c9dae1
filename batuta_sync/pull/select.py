"""What to pull: the PURE half of the pull engine (no I/O, no network, no cache).

:func:`plan_pull` takes a :class:`~batuta_sync.types.RepoSnapshot` and a :class:`PullRequest`
and decides which files to download, which the safety policy blocks by name (and why), which
format was chosen and the notes to show.  Format auto-selection for models: safetensors, else
GGUF, never pickle; ``--format gguf --quantization Q4_K_M`` picks that quantization's file(s)
incl. split shards.  Datasets: ``--split`` (file layout or the card's ``configs``).  When the
asked-for format must be produced from another one, the selection names the
:class:`ConversionNeeded`; the I/O half (:mod:`batuta_sync.pull.engine`) turns that into
:class:`~batuta_sync.pull.engine.ConversionNeededError` and
:func:`batuta_sync.convert.on_pull.pull_or_convert` is the caller's explicit opt-in to convert.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batuta_sync.errors import NotFoundError, UsageError
from batuta_sync.ids import matches_patterns
from batuta_sync.safety import FileSafety, UnsafePathError, classify_file_safety, path_problem, unsafe_reason
from batuta_sync.types import HfAssetType, RepoFile, RepoRef, RepoSnapshot

__all__ = [
    "FORMATS",
    "QUANT_PREFERENCE",
    "ConversionNeeded",
    "PullRequest",
    "PullSelection",
    "card_splits",
    "dataset_splits",
    "gguf_quantizations",
    "plan_pull",
    "weight_family",
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



# --------------------------------------------------------------------------- formats

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
    """``safetensors`` / ``gguf`` / ``pytorch`` / … for weight files (and their index JSON), else None
    (the one table: ``fileformats/weights.py``)."""
    from batuta_sync.fileformats.weights import family

    return family(path)


def gguf_quantizations(path: str) -> tuple[str, ...]:
    """Quantization names in a GGUF path (``llama-2-7b.Q4_K_M.gguf`` -> ``("Q4_K_M",)``)."""
    up = path.upper().replace("FP16", "F16").replace("FP32", "F32")
    return tuple(dict.fromkeys(m.group(1) for m in _QUANT_RE.finditer(up)))


def _norm_quant(q: str) -> str:
    return q.strip().upper().replace("FP16", "F16").replace("FP32", "F32")




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
            candidates = [f for f in candidates if matches_patterns(f.path, req.include)]
        if req.exclude:
            candidates = [f for f in candidates if not matches_patterns(f.path, req.exclude)]
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
def ls_command(ref: RepoRef) -> str:
    """The command that lists ``ref``'s files (for hints)."""
    kind = "" if ref.repo_type is HfAssetType.MODEL else f" --repo-type {ref.repo_type.value}"
    rev = "" if ref.revision == "main" else f" --revision {ref.revision}"
    return f"batuta hf ls {ref.repo_id}{kind}{rev}"
