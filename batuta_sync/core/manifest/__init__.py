"""hf.yaml: parse, validate (JSON Schema + semantic checks) and model the desired state.

``parse_manifest(text, source=)`` is pure (text in, frozen :class:`Manifest` out);
``load_manifest(path)`` reads the file.  Every problem is collected and raised at
once as a :class:`~batuta_sync.errors.ManifestError` whose diagnostics carry
``file:line:col`` and the key, Terraform-style::

    hf.yaml:7:5: models.llama.revison: unknown key 'revison' (allowed: exclude, format, …)

The package, one concern per module:

* :mod:`.model` — the frozen values (``Manifest``, ``RepoSpec``, ``ConversionSpec``,
  ``PublishSpec``, ``Policies``) and the address grammar;
* :mod:`.load` — text → data → model: a fast reading without positions, the validation cache;
* :mod:`.validate` — the JSON Schema and the semantic checks, on plain data (problems are paths);
* :mod:`.positions` — the marked reading, done only when a problem must be shown with its
  ``line:col`` (the DVC way: a valid manifest never pays for positions).
"""

from batuta_sync.core.manifest.load import (
    fast_data,
    load_manifest,
    located_error,
    parse_manifest,
    read_manifest_text,
)
from batuta_sync.core.manifest.model import (
    ADDRESS_RE,
    DEFAULT_REVISION,
    GGUF_OPTION_KEYS,
    REPO_SECTIONS,
    SECTIONS,
    ConversionSpec,
    ExecutorSpec,
    Manifest,
    Path_,
    Policies,
    PublishSpec,
    RepoSpec,
    default_conversion_output,
    dependencies,
    digest_of,
    iter_specs,
    parse_executor,
)
from batuta_sync.core.manifest.validate import glob_problem, load_schema, schema_path

__all__ = [
    "ADDRESS_RE",
    "DEFAULT_REVISION",
    "GGUF_OPTION_KEYS",
    "REPO_SECTIONS",
    "SECTIONS",
    "ConversionSpec",
    "ExecutorSpec",
    "Manifest",
    "Path_",
    "Policies",
    "PublishSpec",
    "RepoSpec",
    "default_conversion_output",
    "dependencies",
    "digest_of",
    "fast_data",
    "glob_problem",
    "iter_specs",
    "load_manifest",
    "load_schema",
    "located_error",
    "parse_executor",
    "parse_manifest",
    "read_manifest_text",
    "schema_path",
]
