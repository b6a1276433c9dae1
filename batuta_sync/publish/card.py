"""Model / dataset cards and Space README front matter (pure; deterministic output).

* :func:`generate_model_card` — YAML front matter (license, tags, library_name, base_model,
  pipeline_tag, datasets, model-index with metrics) + a body with provenance for converted models
  and the PAIML stack attribution.  Same input -> byte-identical output (no dates, no local paths,
  no host or user names), so re-publishing never makes churn commits.
* :func:`merge_card` — an existing README.md is kept: only missing front-matter keys are added, the
  body is untouched; the unified diff is returned for display.
* :func:`card_for_push` — what ``push`` uploads as README.md, from the folder and the overrides.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batuta_sync.fileformats import card as card_format

CARD_FILE = "README.md"
METRICS_FILES = ("metrics.json", "eval_results.json", "all_results.json", "results.json")
PROVENANCE_FILES = ("provenance.json", "batuta_provenance.json")
ATTRIBUTION = (
    "Published with [batuta](https://github.com/paiml/batuta) — part of the PAIML stack "
    "(Pragmatic AI Labs: aprender · realizar · presentar · batuta)."
)

_MODEL_KEYS = ("license", "language", "library_name", "pipeline_tag", "base_model", "base_model_relation",
               "datasets", "tags", "metrics", "model-index")
_PIPELINES = (
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
    ("ForConditionalGeneration", "text2text-generation"),
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForMaskedLM", "fill-mask"),
    ("ForImageClassification", "image-classification"),
    ("ForSpeechSeq2Seq", "automatic-speech-recognition"),
    ("ForCTC", "automatic-speech-recognition"),
)


def _yaml_dump(data: Mapping[str, Any]) -> str:
    import yaml

    return str(yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True, default_flow_style=False, width=100))


def split_front_matter(text: str) -> tuple[dict[str, Any] | None, str]:
    """(front matter mapping or None, body).  Unparseable front matter is treated as absent."""
    return card_format.parse(text)


def render_card(front: Mapping[str, Any], body: str) -> str:
    body = body.lstrip("\n")
    return f"---\n{_yaml_dump(front)}---\n\n{body}" if front else body


def _branding(metadata: Mapping[str, Any]) -> tuple[str, ...]:
    """The tool's own tags, only when the card asks for them (``card: {branding: true}``)."""
    return ("batuta", "paiml") if metadata.get("branding") is True else ()


def _hub_url(metadata: Mapping[str, Any], repo_id: str) -> str:
    """A repo's page on the endpoint the card is published to (not always huggingface.co)."""
    return f"{str(metadata.get('endpoint') or 'https://huggingface.co').rstrip('/')}/{repo_id}"


_STAMP_RE = re.compile(r"\n<!-- batuta-card sha256:([0-9a-f]{64}) -->\n\Z")


def stamp(card: str) -> str:
    """Sign a card batuta generated, so a later push can tell it from one edited on the Hub."""
    body = card.rstrip("\n") + "\n"
    return f"{body}\n<!-- batuta-card sha256:{hashlib.sha256(body.encode('utf-8')).hexdigest()} -->\n"


def is_untouched_stamp(card: str) -> bool:
    """True for a card exactly as batuta generated it (its stamp matches): safe to regenerate."""
    m = _STAMP_RE.search(card)
    if m is None:
        return False
    return hashlib.sha256(card[: m.start()].encode("utf-8")).hexdigest() == m.group(1)


def _as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    if isinstance(v, (list, tuple)):
        return [x for x in v if x not in (None, "")]
    return [v]


def _clean_metrics(raw: Mapping[str, Any]) -> dict[str, float | int]:
    inner = raw.get("metrics")
    src: Mapping[str, Any] = inner if isinstance(inner, Mapping) else raw
    out: dict[str, float | int] = {}
    for k, v in sorted(src.items()):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if k.endswith(("_runtime", "_samples_per_second", "_steps_per_second", "epoch")) or k in {"step", "total_flos"}:
            continue
        out[str(k)] = round(v, 6) if isinstance(v, float) else v
    return out


def model_index(name: str, metrics: Mapping[str, float | int], *, task: str | None, dataset: str | None) -> list[Any]:
    """The ``model-index`` block ModelCardData parses into EvalResults."""
    ds = dataset or "custom"
    return [
        {
            "name": name,
            "results": [
                {
                    "task": {"type": task or "other"},
                    "dataset": {"name": ds, "type": ds},
                    "metrics": [{"type": k, "value": v, "name": k} for k, v in metrics.items()],
                }
            ],
        }
    ]


def generate_model_card(metadata: Mapping[str, Any]) -> str:
    """A model card (README.md text) from ``metadata``.

    Keys (all optional): ``model_name``, ``license``, ``language``, ``library_name``, ``pipeline_tag``,
    ``base_model``, ``datasets``, ``tags``, ``metrics`` (name -> number), ``dataset`` (for the
    model-index), ``description``, ``format`` (safetensors/gguf), ``provenance`` (``source_repo``,
    ``source_commit``, ``converter``, ``converter_version``, ``quantization``), ``files``.
    """
    name = str(metadata.get("model_name") or "model")
    prov = metadata.get("provenance") if isinstance(metadata.get("provenance"), Mapping) else {}
    assert isinstance(prov, Mapping)
    fmt = metadata.get("format")
    tags = [str(t) for t in _as_list(metadata.get("tags"))]
    for t in (fmt, *_branding(metadata)):
        if t and t not in tags:
            tags.append(str(t))
    quant = prov.get("quantization")
    if quant and "quantized" not in tags:
        tags.append("quantized")
    base_model = metadata.get("base_model") or prov.get("source_repo")
    datasets = [str(d) for d in _as_list(metadata.get("datasets"))]
    metrics = {str(k): v for k, v in (metadata.get("metrics") or {}).items()}
    dataset_for_index = metadata.get("dataset") or (datasets[0] if datasets else None)

    front: dict[str, Any] = {}
    front["license"] = metadata.get("license") or "other"
    if metadata.get("language"):
        front["language"] = _as_list(metadata.get("language"))
    front["library_name"] = metadata.get("library_name") or ("gguf" if fmt == "gguf" else "transformers")
    if metadata.get("pipeline_tag"):
        front["pipeline_tag"] = metadata["pipeline_tag"]
    if base_model:
        front["base_model"] = str(base_model)
        if prov.get("source_repo"):
            front["base_model_relation"] = "quantized" if quant or fmt == "gguf" else "finetune"
    if datasets:
        front["datasets"] = datasets
    front["tags"] = tags
    if metrics:
        front["model-index"] = model_index(name, metrics, task=metadata.get("pipeline_tag"), dataset=dataset_for_index)

    lines = [f"# {name}", ""]
    desc = metadata.get("description")
    lines += [str(desc).strip(), ""] if desc else [f"{name} is a {fmt or 'machine learning'} model published with batuta.", ""]
    if prov:
        lines += ["## Provenance", ""]
        if prov.get("source_repo"):
            src = f"[{prov['source_repo']}]({_hub_url(metadata, str(prov['source_repo']))})"
            commit = prov.get("source_commit")
            lines.append(f"- Converted from {src}" + (f" at commit `{commit}`" if commit else ""))
        if prov.get("converter") or prov.get("converter_version"):
            lines.append(f"- Converter: {prov.get('converter') or 'batuta convert'} {prov.get('converter_version') or ''}".rstrip())
        if quant:
            lines.append(f"- Quantization: {quant}")
        if prov.get("source_format") and (fmt or prov.get("target_format")):
            lines.append(f"- Format: {prov['source_format']} → {fmt or prov.get('target_format')}")
        lines.append("")
    if metrics:
        lines += ["## Evaluation", "", "| Metric | Value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in metrics.items()]
        lines.append("")
    files = [str(f) for f in _as_list(metadata.get("files"))]
    if files:
        lines += ["## Files", ""] + [f"- `{f}`" for f in files] + [""]
    lines += ["## Attribution", "", ATTRIBUTION, ""]
    return render_card(front, "\n".join(lines))


def generate_dataset_card(metadata: Mapping[str, Any]) -> str:
    name = str(metadata.get("pretty_name") or metadata.get("name") or "dataset")
    front: dict[str, Any] = {"license": metadata.get("license") or "other", "pretty_name": name}
    if metadata.get("language"):
        front["language"] = _as_list(metadata.get("language"))
    if metadata.get("task_categories"):
        front["task_categories"] = _as_list(metadata.get("task_categories"))
    tags = [str(t) for t in _as_list(metadata.get("tags"))]
    for t in _branding(metadata):
        if t not in tags:
            tags.append(t)
    front["tags"] = tags
    body = [f"# {name}", "", str(metadata.get("description") or f"{name}, published with batuta.").strip(), ""]
    files = [str(f) for f in _as_list(metadata.get("files"))]
    if files:
        body += ["## Files", ""] + [f"- `{f}`" for f in files] + [""]
    body += ["## Attribution", "", ATTRIBUTION, ""]
    return render_card(front, "\n".join(body))


SPACE_SDKS = ("gradio", "streamlit", "docker", "static")


def generate_space_readme(metadata: Mapping[str, Any]) -> str:
    sdk = str(metadata.get("sdk") or "gradio")
    title = str(metadata.get("title") or "batuta space")
    front: dict[str, Any] = {
        "title": title,
        "emoji": metadata.get("emoji") or "🚀",
        "colorFrom": metadata.get("colorFrom") or "blue",
        "colorTo": metadata.get("colorTo") or "green",
        "sdk": sdk,
    }
    if metadata.get("sdk_version"):
        front["sdk_version"] = str(metadata["sdk_version"])
    if sdk == "docker":
        front["app_port"] = int(metadata.get("app_port") or 7860)
    else:
        front["app_file"] = metadata.get("app_file") or ("index.html" if sdk == "static" else "app.py")
    front["pinned"] = bool(metadata.get("pinned", False))
    front["license"] = metadata.get("license") or "other"
    body = [f"# {title}", "", str(metadata.get("description") or "A Space published with batuta.").strip(), "",
            ATTRIBUTION, ""]
    return render_card(front, "\n".join(body))


def merge_card(existing: str | None, generated: str) -> str:
    """Keep ``existing``; add only the front-matter keys it lacks (body untouched)."""
    if existing is None:
        return generated
    gen_front, _ = split_front_matter(generated)
    old_front, _ = split_front_matter(existing)
    if gen_front is None:
        return existing
    if old_front is None:
        if card_format.split(existing)[0] is not None:  # front matter present but unparseable: leave it alone
            return existing
        return render_card(gen_front, existing)
    missing = {k: v for k, v in gen_front.items() if k not in old_front}
    if not missing:
        return existing
    old_yaml, body = card_format.split(existing)
    assert old_yaml is not None
    merged_yaml = old_yaml.rstrip("\n") + "\n" + _yaml_dump(missing)
    return f"---\n{merged_yaml}---\n" + body


def card_diff(old: str | None, new: str) -> str:
    if old == new:
        return ""
    return "".join(
        difflib.unified_diff(
            (old or "").splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile="README.md (local)" if old is not None else "/dev/null",
            tofile="README.md (to push)",
        )
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def read_metrics(root: Path, files: Sequence[str]) -> tuple[dict[str, float | int], str | None]:
    """Numbers from the first metrics file present (metrics.json, eval_results.json, …) and its dataset name."""
    for name in METRICS_FILES:
        if name in files:
            doc = _read_json(root / name)
            if isinstance(doc, Mapping):
                ds = doc.get("dataset") or doc.get("eval_dataset")
                return _clean_metrics(doc), str(ds) if isinstance(ds, str) else None
    return {}, None


def read_provenance(root: Path, files: Sequence[str]) -> dict[str, Any]:
    for name in PROVENANCE_FILES:
        if name in files:
            doc = _read_json(root / name)
            if isinstance(doc, Mapping):
                return {str(k): v for k, v in doc.items() if isinstance(v, (str, int, float))}
    return {}


def provenance_from_gguf(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Provenance recorded in GGUF metadata: source / base model repo and the quantization (file type)."""
    out: dict[str, Any] = {}
    for key in ("general.source.huggingface.repository", "general.base_model.0.repo_url", "general.source.url",
                "general.source.repo_url"):
        v = metadata.get(key)
        if isinstance(v, str) and v:
            repo = v.rstrip("/").split("huggingface.co/")[-1]
            if re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
                out["source_repo"] = repo
                break
    ftype = metadata.get("general.file_type")
    if isinstance(ftype, int) and not isinstance(ftype, bool):
        try:
            from gguf import LlamaFileType

            name = LlamaFileType(ftype).name
            out["quantization"] = name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except (ImportError, ValueError):
            pass
    out["source_format"] = "safetensors" if out.get("source_repo") else None
    return {k: v for k, v in out.items() if v}


def pipeline_for(config: Mapping[str, Any] | None) -> str | None:
    archs = (config or {}).get("architectures")
    for arch in archs if isinstance(archs, list) else []:
        for suffix, tag in _PIPELINES:
            if isinstance(arch, str) and arch.endswith(suffix):
                return tag
    return None


@dataclass(frozen=True)
class CardPlan:
    content: bytes | None  # README.md bytes to upload instead of the local file (None = local file as is)
    text: str  # the card that will be on the Hub
    diff: str  # unified diff local -> pushed ("" when unchanged)
    keys_added: tuple[str, ...] = ()  # front-matter keys added to the user's README.md
    generated: bool = False  # no local README.md: the whole card is batuta's


def card_for_push(
    root: Path,
    files: Sequence[str],
    *,
    repo_type: str,
    repo_id: str,
    fmt: str | None = None,
    config: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    sdk: str | None = None,
    gguf_metadata: Mapping[str, Any] | None = None,
    endpoint: str = "https://huggingface.co",
) -> CardPlan:
    """The README.md to push: the local one (front matter completed), else a generated card,
    stamped (:func:`stamp`) so the next push may regenerate it if nobody edited it on the Hub."""
    overrides = dict(overrides or {})
    name = repo_id.split("/")[-1]
    # (the file list is not put in generated cards: adding a file must not rewrite README.md)
    if repo_type == "model":
        metrics, ds = read_metrics(root, files)
        prov = provenance_from_gguf(gguf_metadata) if gguf_metadata else {}
        prov.update(read_provenance(root, files))
        if isinstance(overrides.get("provenance"), Mapping):
            prov.update(overrides["provenance"])
        meta: dict[str, Any] = {
            "model_name": name,
            "format": fmt,
            "pipeline_tag": pipeline_for(config),
            "metrics": metrics,
            "dataset": ds,
            "provenance": prov,
            "endpoint": endpoint,
        }
        if fmt != "gguf" and config is None:
            meta["library_name"] = "safetensors" if fmt == "safetensors" else None
        meta.update({k: v for k, v in overrides.items() if k != "provenance"})
        generated = generate_model_card(meta)
    elif repo_type == "dataset":
        generated = generate_dataset_card({"pretty_name": name, **overrides})
    else:
        app = next((a for a in ("app.py", "streamlit_app.py", "index.html") if a in files), None)
        generated = generate_space_readme({"title": name, "sdk": sdk, "app_file": app, **overrides})
    existing: str | None = None
    if CARD_FILE in files:
        existing = (root / CARD_FILE).read_text(encoding="utf-8", errors="replace")
    text = merge_card(existing, generated) if existing is not None else stamp(generated)
    added: tuple[str, ...] = ()
    if existing is not None and text != existing:
        old_front = split_front_matter(existing)[0] or {}
        added = tuple(k for k in (split_front_matter(text)[0] or {}) if k not in old_front)
    return CardPlan(None if text == existing else text.encode("utf-8"), text, card_diff(existing, text),
                    keys_added=added, generated=existing is None)
