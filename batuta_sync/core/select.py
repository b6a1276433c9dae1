"""Which files of a repo snapshot a manifest entry selects (pure).

Delegates to the pull engine's ``plan_pull`` (include/exclude, format/quantization/split
rules, safety policy) so ``batuta plan`` and ``batuta hf pull`` select the same files: one
include/exclude matcher, the pull engine's.  The planner tests' fakes use this too.
"""

from __future__ import annotations

from batuta_sync.core.manifest import RepoSpec
from batuta_sync.types import RepoFile, RepoSnapshot


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
