"""Conversion on pull: ``batuta hf pull model X --format gguf --quantization Q4_K_M`` when X has only safetensors.

An explicit step that callers opt into.  The pull engine decides (purely) that a conversion is
needed and raises :class:`~batuta_sync.pull.ConversionNeededError`; :func:`pull_or_convert`
catches it and converts: pull the source weights with their config and tokenizer (verified,
cached), convert them, and report the GGUF as what was pulled.  The output goes to ``--output``
when given, else under ``$HF_HOME/batuta/converted``.  ``batuta hf pull`` and
:meth:`batuta_sync.HfClient.download_model` call it; a plan's pulls (``core/steps``) call
:func:`batuta_sync.pull.pull`, because a plan declares its conversions explicitly.

This is the one module of :mod:`batuta_sync.convert` that may import the pull engine
(import-linter: the rest of ``convert`` imports no ``hub``/``pull``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from batuta_sync._fmt import file_digests
from batuta_sync.pull import ConversionNeededError, PullRequest, PullResult, PullSelection, pull
from batuta_sync.types import RepoFile

if TYPE_CHECKING:
    from batuta_sync.hub.download import ProgressSink
    from batuta_sync.settings import Settings
    from batuta_sync.types import RepoSnapshot

__all__ = ["convert_for_pull", "pull_or_convert"]


def pull_or_convert(
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
    """:func:`batuta_sync.pull.pull`, and when the asked-for format must be produced, produce it.

    Offline (or when the Hub was unreachable and the cached listing answered) there is no
    conversion: the :class:`~batuta_sync.pull.ConversionNeededError` says what is needed.
    """
    try:
        return pull(
            settings,
            req,
            jobs=jobs,
            progress=progress,
            snapshot=snapshot,
            max_wait=max_wait,
            no_wait=no_wait,
            sleep=sleep,
        )
    except ConversionNeededError as need:
        if need.offline or need.snapshot is None or need.selection is None:
            raise
        return convert_for_pull(settings, req, need.selection, need.snapshot)


def convert_for_pull(
    settings: Settings, req: PullRequest, selection: PullSelection, snapshot: RepoSnapshot
) -> PullResult:
    """Pull the source format, convert it to what ``req`` asked for, and report the result."""
    from batuta_sync.convert import GGUFQuantization, convert

    need = selection.conversion
    assert need is not None
    quant = GGUFQuantization.parse(need.quantization or "Q4_K_M").value
    source_req = dataclasses.replace(req, format=need.source_format, quantization=None, output=None)
    source = pull(settings, source_req, snapshot=snapshot)
    name = snapshot.ref.repo_id.split("/")[-1]
    out_dir = req.output or (
        settings.batuta_dir / "converted" / snapshot.ref.repo_id.replace("/", "--") / snapshot.commit
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}-{quant}.gguf"
    if not target.exists():  # the name carries repo, commit (dir) and quantization: reuse is safe
        convert(source.snapshot_dir, target, to=need.target_format, quantization=quant)
    size, sha256, blob_id = file_digests(target)
    assert blob_id is not None
    gguf = RepoFile(path=target.name, size=size, blob_id=blob_id, sha256=sha256)
    note = (
        f"{snapshot.ref.repo_id} has no {need.target_format} {quant} file: converted its "
        f"{need.source_format} weights (commit {snapshot.commit[:12]}) to {target}"
    )
    return dataclasses.replace(
        source, selected=(gguf,), output=out_dir, format=need.target_format, notes=(*source.notes, note)
    )
