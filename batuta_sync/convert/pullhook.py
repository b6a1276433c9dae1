"""``batuta hf pull model X --format gguf --quantization Q4_K_M`` when X has only safetensors.

The pull engine decides (purely) that a conversion is needed; this hook does it: pull the source
weights with their config and tokenizer (verified, cached), convert them, and report the GGUF as
what was pulled. The output goes to ``--output`` when given, else under ``$HF_HOME/batuta/converted``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from batuta_sync._fmt import file_digests
from batuta_sync.types import RepoFile

if TYPE_CHECKING:
    from batuta_sync.pull import PullRequest, PullResult, PullSelection
    from batuta_sync.settings import Settings
    from batuta_sync.types import RepoSnapshot


def convert_for_pull(
    settings: Settings, req: PullRequest, selection: PullSelection, snapshot: RepoSnapshot
) -> PullResult:
    """Pull the source format, convert it to what ``req`` asked for, and report the result."""
    from batuta_sync.convert import GGUFQuantization, convert
    from batuta_sync.pull import pull

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
