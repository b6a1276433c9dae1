"""Which files of a repo snapshot a manifest entry selects (pure).

Delegates to the pull engine's ``plan_pull`` (format/quantization/split rules,
safety policy) so ``batuta plan`` and ``batuta hf pull`` select the same files;
``glob_select`` is the include/exclude core used when the pull engine is absent.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from batuta_sync.core.manifest import RepoSpec
from batuta_sync.types import RepoFile, RepoSnapshot


def _match(path: str, pattern: str) -> bool:
    if fnmatchcase(path, pattern):
        return True
    # "dir/" and "dir/**" select everything below dir; "**/x" also matches "x" at the top.
    if pattern.endswith("/") and path.startswith(pattern):
        return True
    return pattern.startswith("**/") and fnmatchcase(path, pattern[3:])


def glob_select(files: Sequence[RepoFile], include: Sequence[str], exclude: Sequence[str]) -> tuple[RepoFile, ...]:
    out = []
    for f in files:
        if include and not any(_match(f.path, p) for p in include):
            continue
        if any(_match(f.path, p) for p in exclude):
            continue
        out.append(f)
    return tuple(sorted(out, key=lambda f: f.path))


def select_files(snapshot: RepoSnapshot, spec: RepoSpec) -> tuple[RepoFile, ...]:
    """The files ``spec`` locks from ``snapshot`` (raises a BatutaError when the selection is impossible).

    Same rules as ``batuta hf pull`` (``plan_pull``): include/exclude, format and
    quantization, dataset split, safety policy by name.  Files the policy blocks are
    not locked; if it blocks everything, or the format needs a conversion, planning fails.
    """
    from batuta_sync.errors import ConversionError
    from batuta_sync.pull import PullRequest, plan_pull
    from batuta_sync.safety import unsafe_files_error

    req = PullRequest(
        ref=snapshot.ref,
        include=spec.include,
        exclude=spec.exclude,
        format=spec.format,
        quantization=spec.quantization,
        split=spec.split,
        allow_unsafe=spec.allow_unsafe,
    )
    sel = plan_pull(snapshot, req)
    if sel.conversion is not None:
        c = sel.conversion
        target = c.target_format + (f" {c.quantization}" if c.quantization else "")
        raise ConversionError(
            f"{snapshot.ref.repo_id} has no {target} file, only {c.source_format} weights; "
            f"pull format: {c.source_format} and declare a `conversions:` entry to produce {target}."
        )
    if not sel.selected and sel.blocked:
        raise unsafe_files_error(sel.blocked)
    return sel.selected
