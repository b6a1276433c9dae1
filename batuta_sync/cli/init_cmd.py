"""CLI: ``batuta init [REPO …]``: write a commented ``hf.yaml`` for the given repos.

Each REPO (``org/name``, ``datasets/org/name``, ``spaces/org/name``, optionally ``@REVISION``) is
looked up on the Hub: its type (model, then dataset, then space, unless the prefix says), its
weight formats (safetensors / GGUF quantizations / pickle) and, for a safetensors model without a
GGUF, its architecture (``config.json``): a supported one gets a commented-out ``conversions:``
entry.  The text is produced by :func:`render_manifest` (pure); :func:`detect` is the Hub I/O.
An existing manifest is never overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batuta_sync.cli import _common

if TYPE_CHECKING:
    from batuta_sync.client import HfClient
    from batuta_sync.types import HfAssetType

SCHEMA_URL = "https://batuta-sync.dev/schemas/hf.schema.json"
PREFERRED_QUANTS = ("Q4_K_M", "Q5_K_M", "Q8_0", "Q6_K", "Q4_0", "F16", "BF16")  # first present wins
DEFAULT_CONVERSION = "Q4_K_M"
_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Detected:
    """What ``batuta init`` learned about one repo."""

    repo_id: str
    repo_type: str  # model | dataset | space
    revision: str | None = None
    formats: tuple[str, ...] = ()  # weight families present: safetensors, gguf, pytorch, …
    quantizations: tuple[str, ...] = ()  # GGUF quantizations found in file names
    architecture: str | None = None  # config.json architectures[0] (safetensors models)
    convertible: bool = False  # a supported architecture for GGUF conversion
    files: int = 0  # number of files at the revision


def parse_repo_arg(text: str) -> tuple[str | None, str, str | None]:
    """``[datasets/|spaces/|models/]org/name[@rev]`` -> (type or None, repo id, revision or None)."""
    from batuta_sync.errors import UsageError
    from batuta_sync.ids import revision_problem
    from batuta_sync.types import check_repo_id

    body, _, rev = text.partition("@")
    kind: str | None = None
    head, _, rest = body.partition("/")
    if head in ("models", "datasets", "spaces") and rest.count("/") <= 1 and rest:
        kind, body = head[:-1], rest
    check_repo_id(body)
    if rev:
        problem = revision_problem(rev)
        if problem:
            raise UsageError(
                f"The revision in {text!r} {problem}.", hint="Write REPO@BRANCH, REPO@TAG or REPO@SHA."
            )
    return kind, body, rev or None


def resource_name(repo_id: str, taken: set[str]) -> str:
    """A manifest key (schema ``name``) from the repo's name, unique among ``taken``."""
    base = _NAME_BAD.sub("-", repo_id.rsplit("/", 1)[-1].lower()).strip("-_")[:60] or "repo"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


# --------------------------------------------------------------------------- Hub I/O


def _lookup(hub: HfClient, kind: HfAssetType, repo_id: str, rev: str | None) -> Any:
    return hub.repo_info(kind, repo_id, rev, files=True)


def detect(hub: HfClient, text: str) -> Detected:
    """Look ``text`` (a REPO argument) up on the Hub: type, formats, architecture."""
    from batuta_sync.convert.archs import BY_HF
    from batuta_sync.errors import NotFoundError
    from batuta_sync.pull import gguf_quantizations, weight_family
    from batuta_sync.types import HfAssetType

    kind, repo_id, rev = parse_repo_arg(text)
    kinds = [HfAssetType(kind)] if kind else list(HfAssetType)
    for candidate in kinds:
        try:
            info = _lookup(hub, candidate, repo_id, rev)
        except NotFoundError as exc:
            if exc.code != "repo-not-found" or len(kinds) == 1:
                raise
            continue
        break
    else:
        raise NotFoundError(
            f"{repo_id} is not a model, dataset or space on {hub.settings.endpoint}.",
            hint="Check the repo id; if it is private, log in first (`batuta hf login` or HF_TOKEN).",
            code="repo-not-found",
        )
    kind = candidate.value
    paths = [f.path for f in info.files]
    formats = tuple(sorted({fam for p in paths if (fam := weight_family(p))}))
    quants = tuple(
        dict.fromkeys(q for p in paths if p.lower().endswith(".gguf") for q in gguf_quantizations(p))
    )
    arch = None
    if kind == "model" and "safetensors" in formats and "gguf" not in formats and "config.json" in paths:
        arch = _architecture(hub, repo_id, info.sha or rev or "main")
    return Detected(
        repo_id=repo_id,
        repo_type=kind,
        revision=rev,
        formats=formats,
        files=len(paths),
        quantizations=quants,
        architecture=arch,
        convertible=arch in BY_HF,
    )


def _architecture(hub: HfClient, repo_id: str, rev: str) -> str | None:
    """``architectures[0]`` of the model's config.json (None when absent or unreadable)."""
    from urllib.parse import quote

    from batuta_sync.errors import BatutaError

    try:
        config = hub.http.get_json(f"/{repo_id}/resolve/{quote(rev, safe='')}/config.json")
    except BatutaError:
        return None
    archs = config.get("architectures") if isinstance(config, dict) else None
    if isinstance(archs, list) and archs and isinstance(archs[0], str) and len(archs[0]) < 200:
        return archs[0]
    return None


# --------------------------------------------------------------------------- rendering (pure)


def _pick_quant(quants: Sequence[str]) -> str | None:
    for q in PREFERRED_QUANTS:
        if q in quants:
            return q
    return quants[0] if quants else None


def _entry_lines(name: str, d: Detected) -> list[str]:
    out: list[str] = []
    fmts = ", ".join(d.formats) if d.formats else "no weight files"
    if d.repo_type != "model":
        fmts = f"{d.repo_type}, {d.files} file(s)"
    about = f"  # {d.repo_id}: {fmts}"
    if d.quantizations:
        about += f" (GGUF: {', '.join(d.quantizations)})"
    if d.architecture:
        about += f"; {d.architecture}"
    out.append(about)
    out.append(f"  {name}:")
    out.append(f"    repo: {d.repo_id}")
    if d.revision:
        out.append(f"    revision: {d.revision}")
    else:
        out.append(
            "    # revision: main            # pin a branch, tag or commit sha (hf.lock pins the commit anyway)"
        )
    if d.repo_type == "model":
        if "gguf" in d.formats:
            q = _pick_quant(d.quantizations)
            out.append("    format: gguf")
            if q:
                out.append(
                    f"    quantization: {q}"
                    + (
                        f"        # also: {', '.join(x for x in d.quantizations if x != q)}"
                        if len(d.quantizations) > 1
                        else ""
                    )
                )
        elif "safetensors" in d.formats:
            out.append("    format: safetensors")
        elif "pytorch" in d.formats:
            out.append(
                "    # Only pickle weights (.bin/.pt): they can run code when loaded, so batuta skips them"
            )
            out.append("    # (safety: safe_only). Set allow_unsafe: true only for a repo you trust.")
            out.append("    # allow_unsafe: true")
    elif d.repo_type == "dataset":
        out.append("    # split: train               # only this split's files")
    out.append(
        f"    # output: ./{d.repo_type}s/{name}    # also materialise the files here (default: cache only)"
    )
    return out


def render_manifest(entries: Sequence[tuple[str, Detected]], *, endpoint: str | None = None) -> str:
    """The commented hf.yaml for ``(name, detected)`` pairs (deterministic text)."""
    lines = [
        f"# yaml-language-server: $schema={SCHEMA_URL}",
        "# hf.yaml: the Hub models, datasets and spaces this project needs (written by `batuta init`).",
        "#   batuta validate            # check this file",
        "#   batuta plan -o plan.json   # see what would happen",
        "#   batuta apply plan.json     # do exactly that; commit hf.yaml and hf.lock",
        "version: 1",
    ]
    if endpoint:
        lines += [
            "# defaults:",
            f"#   endpoint: {endpoint}   # a Hub other than huggingface.co (or set HF_ENDPOINT)",
        ]
    lines += [
        "policies:",
        "  safety: safe_only          # pickle files (.bin/.pt/.pkl) are never pulled unless a resource says allow_unsafe",
    ]
    for kind in ("model", "dataset", "space"):
        group = [(n, d) for n, d in entries if d.repo_type == kind]
        if not group:
            continue
        lines.append(f"{kind}s:")
        for n, d in group:
            lines += _entry_lines(n, d)
    suggestions = [(n, d) for n, d in entries if d.convertible]
    if suggestions:
        lines += [
            "# Suggested: a GGUF for llama.cpp / ollama (none on the Hub). Uncomment to convert locally.",
            "# conversions:",
        ]
        for n, _d in suggestions:
            lines += [
                f"#   {n}-{DEFAULT_CONVERSION.lower().replace('_', '-')}:",
                f"#     from: models.{n}",
                "#     to: gguf",
                f"#     quantization: {DEFAULT_CONVERSION}",
            ]
    elif not entries:
        lines += ["models: {}", "# models:", "#   my-model:", "#     repo: org/name"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- command


def _cmd_init(args: argparse.Namespace) -> int:
    from batuta_sync._fs import atomic_write
    from batuta_sync.errors import UsageError

    path = Path(args.file)
    if path.exists() and not args.force:
        raise UsageError(
            f"{path} already exists; `batuta init` does not overwrite a manifest.",
            hint="Edit it, choose another file with -f, or pass --force to replace it.",
        )
    for text in args.repos:  # every argument checked before any request
        parse_repo_arg(text)
    from batuta_sync.cli.query_cmd import client_from_args

    entries: list[tuple[str, Detected]] = []
    taken: set[str] = set()
    endpoint = None
    if args.repos:
        with client_from_args(args) as hub:
            detected = [detect(hub, text) for text in args.repos]
            default = "https://huggingface.co"
            endpoint = hub.settings.endpoint if hub.settings.endpoint.rstrip("/") != default else None
        entries = [(resource_name(d.repo_id, taken), d) for d in detected]
    text = render_manifest(entries, endpoint=endpoint)
    atomic_write(path, text.encode("utf-8"))
    _common.info(args, f"Wrote {path} ({len(entries)} repo(s)). Next: batuta validate && batuta plan")
    return 0


def register(root: Any, hf: Any) -> None:
    """Add ``init``."""
    p = _common.command_parser(
        root, "init", "Write a commented hf.yaml for the given repos (formats detected on the Hub)."
    )
    p.add_argument(
        "repos",
        nargs="*",
        metavar="REPO",
        help="org/name (datasets/org/name, spaces/org/name; @REVISION to pin).",
    )
    p.add_argument(
        "-f",
        "--file",
        default="hf.yaml",
        metavar="HF_YAML",
        help="The manifest to write (default ./hf.yaml).",
    )
    p.add_argument("--force", action="store_true", help="Replace an existing manifest.")
    p.set_defaults(handler=_cmd_init)
