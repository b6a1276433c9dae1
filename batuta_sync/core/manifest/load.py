"""hf.yaml text → :class:`Manifest`: the fast reading, validation, and the model built from it.

``parse_manifest(text, source=)`` is pure (text in, frozen Manifest out); ``load_manifest(path)``
reads the file and keeps the validation cache.  The text is read once without positions
(:func:`fast_data`, libyaml + a constructor that refuses what it would have to guess about); the
checks of :mod:`.validate` run on that plain data; only if they find a problem — or the fast reader
refused — is the text read again with positions (:mod:`.positions`) to say ``file:line:col``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from batuta_sync.core.manifest import overlay
from batuta_sync.core.manifest.model import (
    DEFAULT_REVISION,
    GGUF_OPTION_KEYS,
    REPO_SECTIONS,
    ConversionSpec,
    Manifest,
    Path_,
    Policies,
    PublishSpec,
    RepoSpec,
    digest_data,
    digest_of,
)
from batuta_sync.core.manifest.positions import Doc, Problem, compose
from batuta_sync.core.manifest.validate import py_type, schema_path, schema_problems, semantic_problems
from batuta_sync.errors import Diagnostic, ManifestError
from batuta_sync.types import HfAssetType

_STR_TAG = "tag:yaml.org,2002:str"


class _Unusual(Exception):
    """The fast reader met something only the marked reading handles (it reports or refuses it)."""


def _plain(node: Any, scalar: Any) -> Any:
    """A composed node as plain data, with no marks: strings as they are, other scalars through
    ``scalar`` (PyYAML's safe constructor); merge keys, non-string or duplicate keys refused."""
    value = node.value
    if isinstance(value, str):
        return value if node.tag == _STR_TAG else scalar(node)
    if node.id == "mapping":
        out: dict[str, Any] = {}
        for knode, vnode in value:
            key = knode.value
            if knode.tag != _STR_TAG or key in out:
                raise _Unusual
            out[key] = _plain(vnode, scalar)
        return out
    return [_plain(v, scalar) for v in value]


def fast_data(text: str) -> tuple[bool, Any]:
    """(True, data) read without positions, or (False, None) when only the marked reading can tell
    (syntax errors, anchors, merge keys, duplicate or non-string keys, absurd nesting).

    libyaml composes; the walk keeps strings as they are and constructs only the other scalars,
    about twice as fast as ``yaml.safe_load``'s constructor.  A text with no ``&`` has no anchor,
    hence no alias (so no alias bomb): anything else goes to the marked reading."""
    if "&" in text:
        return False, None
    import yaml

    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        node = yaml.compose(text, Loader=loader)
        if node is None:
            return True, None
        return True, _plain(node, yaml.constructor.SafeConstructor().construct_object)
    except Exception:  # any YAMLError, _Unusual, RecursionError: let the marked reading decide
        return False, None


def _problems(data: Any, *, schema_checked: bool) -> list[Problem]:
    if not isinstance(data, dict):
        return [Problem(f"expected a mapping at the top level, got {py_type(data)}", ())]
    out = [] if schema_checked else schema_problems(data)
    return out + semantic_problems(data)


def parse_manifest(text: str, *, source: str = "hf.yaml", schema_checked: bool = False) -> Manifest:
    """Parse and validate hf.yaml text; raise ManifestError listing *every* problem.

    ``schema_checked``: this exact text already passed the JSON Schema (see
    :func:`load_manifest`'s validation cache), so skip it; semantic checks always run.
    """
    ok, data = fast_data(text)
    problems = _problems(data, schema_checked=schema_checked) if ok else []
    if ok and not problems:
        return _build(data, source)
    doc = compose(text, source)  # positions, only now
    diags = list(doc.diags)
    if not ok:  # the marked reading saw what the fast one refused; check what it could read
        problems = [] if diags and not isinstance(doc.data, dict) else _problems(doc.data, schema_checked=schema_checked)
    diags += [_locate(p, doc, source) for p in problems]
    if diags:
        diags.sort(key=lambda d: (d.line, d.col, d.message))
        n = len(diags)
        raise ManifestError(f"{source} has {n} problem{'s' if n != 1 else ''}:", diags)
    return _build(doc.data, source)


def located_error(text: str, source: str, problems: list[tuple[str, Path_]]) -> ManifestError:
    """A ManifestError with ``file:line:col`` for problems found outside the manifest's own checks
    (a ``moved:`` block hf.lock contradicts): the text is read again with positions."""
    doc = compose(text, source)
    diags = sorted((_locate(Problem(msg, path), doc, source) for msg, path in problems), key=lambda d: (d.line, d.col))
    n = len(diags)
    return ManifestError(f"{source} has {n} problem{'s' if n != 1 else ''}:", diags)


def _locate(problem: Problem, doc: Doc, source: str) -> Diagnostic:
    if not problem.path:  # the top level: where the document starts
        line, col = doc.marks.get((), (1, 1))
        return Diagnostic(problem.message, source, line, col)
    return problem.locate(doc, source)
def _repo_specs(data: dict[str, Any], defaults: dict[str, Any], unsafe_policy: bool) -> list[RepoSpec]:
    default_rev = str(defaults.get("revision", DEFAULT_REVISION))
    repos: list[RepoSpec] = []
    for section, rtype in REPO_SECTIONS.items():
        for name, spec in sorted((data.get(section) or {}).items()):
            repos.append(
                RepoSpec(
                    address=f"{section}.{name}",
                    repo=spec["repo"],
                    repo_type=rtype,
                    revision=str(spec.get("revision", default_rev)),
                    include=tuple(spec.get("include") or ()),
                    exclude=tuple(spec.get("exclude") or ()),
                    format=spec.get("format"),
                    quantization=spec.get("quantization"),
                    split=spec.get("split"),
                    output=spec.get("output"),
                    allow_unsafe=bool(spec.get("allow_unsafe", unsafe_policy)),
                    fetch=str(spec.get("fetch", "always")),
                )
            )
    return repos


def _build(data: dict[str, Any], source: str) -> Manifest:
    defaults = dict(data.get("defaults") or {})
    policies = Policies.from_dict(data.get("policies"))
    unsafe_policy = policies.safety == "allow_unsafe"
    conversions = tuple(
        ConversionSpec(
            address=f"conversions.{name}",
            source=spec["from"],
            to=spec["to"],
            quantization=spec.get("quantization") or ("Q4_K_M" if spec["to"] == "gguf" else None),
            output=spec.get("output"),
            gguf_options=tuple((k, tuple(spec[k]) if isinstance(spec[k], list) else spec[k])
                               for k in GGUF_OPTION_KEYS if spec.get(k) not in (None, False, [])),
        )
        for name, spec in sorted((data.get("conversions") or {}).items())
    )
    publishes = tuple(
        PublishSpec(
            address=f"publish.{name}",
            source=spec["from"],
            repo=spec["repo"],
            repo_type=HfAssetType(spec.get("type", "model")),
            revision=str(spec.get("revision", DEFAULT_REVISION)),
            format=spec.get("format"),
            private=bool(spec.get("private", defaults.get("private", False))),
            message=spec.get("message"),
            card=tuple(sorted((spec.get("card") or {}).items())),
            sdk=spec.get("sdk"),
            prune=bool(spec.get("prune", False)),
            allow_unsafe=bool(spec.get("allow_unsafe", unsafe_policy)),
        )
        for name, spec in sorted((data.get("publish") or {}).items())
    )
    return Manifest(
        path=source,
        digest=digest_of(digest_data(data)),
        version=int(data["version"]),
        repos=tuple(_repo_specs(data, defaults, unsafe_policy)),
        conversions=conversions,
        publishes=publishes,
        defaults=defaults,
        policies=policies,
        moves=tuple((str(m["from"]), str(m["to"])) for m in data.get("moved") or ()),
    )


def _resolve_imatrix(manifest: Manifest) -> Manifest:
    """Each ``imatrix:`` path made absolute (inside the project directory) and its file digested."""
    import dataclasses

    from batuta_sync._fs import confine

    convs = []
    for c in manifest.conversions:
        opts = dict(c.gguf_options)
        if opts.get("imatrix"):
            target = confine(manifest.root, manifest.root / str(opts["imatrix"]), what=f"{c.address}.imatrix")
            try:
                digest = hashlib.sha256()
                with target.open("rb") as f:
                    for block in iter(lambda: f.read(1 << 24), b""):
                        digest.update(block)
            except OSError as exc:
                raise ManifestError(f"{c.address}: cannot read the importance matrix {opts['imatrix']}: "
                                    f"{exc.strerror or exc}.",
                                    hint="imatrix: is a path relative to hf.yaml's directory.") from None
            opts["imatrix"] = str(target)
            c = dataclasses.replace(c, gguf_options=tuple(opts.items()), imatrix_sha256=digest.hexdigest())
        convs.append(c)
    return dataclasses.replace(manifest, conversions=tuple(convs))


def read_manifest_text(path: str | Path) -> str:
    """The text of hf.yaml at ``path``; ManifestError (exit 3) when it cannot be read."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(
            f"{p} not found.",
            hint="Create hf.yaml (see docs/manifest.md) or point at it with -f PATH.",
        )
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"Cannot read {p}: {exc}.")


def _data_of(text: str, source: str) -> Any:
    """The plain data of a manifest text (positions only when the fast reading refuses)."""
    ok, data = fast_data(text)
    if ok:
        return data
    doc = compose(text, source)
    if doc.diags:
        raise ManifestError(f"{source} has {len(doc.diags)} problem{'s' if len(doc.diags) != 1 else ''}:", doc.diags)
    return doc.data


def _chain(p: Path, text: str, data: dict[str, Any]) -> list[tuple[Path, str, Any]]:
    """The overlay ``p`` and every manifest it extends, base first (see :mod:`.overlay`)."""
    from batuta_sync._fs import PathEscapeError, confine

    chain: list[tuple[Path, str, Any]] = [(p, text, data)]
    seen = {p.resolve()}
    cur, cur_data = p, data
    while isinstance(cur_data, dict) and overlay.KEY in cur_data:
        ref = cur_data[overlay.KEY]
        if not isinstance(ref, str) or not ref.strip() or "://" in ref:
            raise ManifestError(f"{cur}: `extends:` must name a manifest file, e.g. `extends: hf.yaml`.")
        if len(chain) > overlay.MAX_DEPTH:
            raise ManifestError(f"{p}: more than {overlay.MAX_DEPTH} levels of `extends:`.",
                                hint="Let the overlay extend the base manifest directly.")
        try:
            base = confine(p.parent, cur.parent / ref, what="manifest named by extends:")
        except PathEscapeError:
            raise ManifestError(f"{cur}: `extends: {ref}` leaves the folder of {p.name}.",
                                hint="Keep the base manifest in the overlay's folder (or below it).") from None
        if base.resolve() in seen:
            raise ManifestError(f"{cur}: `extends: {ref}` makes a cycle.", hint="An overlay cannot extend itself.")
        seen.add(base.resolve())
        base_text = read_manifest_text(base)
        cur, cur_data = base, _data_of(base_text, str(base))
        chain.insert(0, (base, base_text, cur_data))
    return chain


def _locate_in_chain(problem: Problem, chain: list[tuple[Path, str, Any]]) -> Diagnostic:
    """A merged document's problem, placed in the overlay that sets the value, else in its base."""
    docs = [(compose(text, str(path)), str(path)) for path, text, _data in reversed(chain)]
    for doc, source in docs:
        if problem.path and (problem.path in doc.marks or problem.path in doc.key_marks):
            return _locate(problem, doc, source)
    return _locate(problem, *docs[0])


def _load_overlay(p: Path, text: str, data: dict[str, Any]) -> Manifest:
    import dataclasses

    chain = _chain(p, text, data)
    merged = overlay.merge_chain([d for _path, _text, d in chain])
    problems = _problems(merged, schema_checked=False)
    if problems:
        diags = sorted((_locate_in_chain(pr, chain) for pr in problems), key=lambda d: (d.file, d.line, d.col))
        n = len(diags)
        raise ManifestError(f"{p} (merged onto {chain[0][0]}) has {n} problem{'s' if n != 1 else ''}:", diags)
    manifest = dataclasses.replace(_build(merged, str(p)), lock_file=overlay.lock_file_for(p.name),
                                   extends=tuple(str(path) for path, _t, _d in chain[:-1]))
    if any(dict(c.gguf_options).get("imatrix") for c in manifest.conversions):
        manifest = _resolve_imatrix(manifest)
    return manifest


def load_manifest(path: str | Path = "hf.yaml") -> Manifest:
    """Read and validate ``path``; raise ManifestError (exit 3) listing every problem.

    An overlay (a manifest with ``extends:``, :mod:`.overlay`) is merged onto its base first."""
    p = Path(path)
    text = read_manifest_text(p)
    if overlay.KEY in text:
        data = _data_of(text, str(p))
        if isinstance(data, dict) and overlay.KEY in data:
            return _load_overlay(p, text, data)
    # Validation cache: importing jsonschema and validating costs ~0.1 s, more than the
    # whole offline no-op plan should; a text that passed the same schema is not re-checked.
    # The marker is content-addressed and lives in batuta's own state dir, not in the project.
    key = _validation_key(text)
    marker = _validation_dir() / key
    checked = marker.is_file()
    manifest = parse_manifest(text, source=str(p), schema_checked=checked)
    if any(dict(c.gguf_options).get("imatrix") for c in manifest.conversions):
        manifest = _resolve_imatrix(manifest)
    if not checked:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        except OSError:
            pass  # read-only home: just validate every time
    return manifest


def _validation_dir() -> Path:
    """``$HF_HOME/batuta/manifest-checked`` (HF_HOME defaults to ~/.cache/huggingface)."""
    import os

    home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
    return Path(home).expanduser() / "batuta" / "manifest-checked"


def _validation_key(text: str) -> str:
    from batuta_sync._version import __version__

    h = hashlib.sha256()
    for part in (__version__, schema_path("hf.schema.json").read_text(encoding="utf-8"), text):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()
