"""The layer rules' bookkeeping (issue #15 point 6).  The rules themselves are import-linter
contracts in pyproject.toml, checked by ``lint-imports`` in .ci/run; these tests keep ruff's
C901 exceptions from growing and check the two places where the graph may reach up."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

#: The functions over ruff's max-complexity when C901 came in (file -> names).  Nothing may join.
C901_EXCEPTIONS: dict[str, set[str]] = {
    "batuta_sync/convert/_kquants_numba.py": {"_qkx2_lanes", "quantize_q6k"},
    "batuta_sync/convert/iquants.py": {"_qp", "_q45k_row", "quantize_iq4_rows"},  # numba ports of ggml loops
    "batuta_sync/convert/gguf_to_hf.py": {"write_hf"},
    "batuta_sync/convert/hf_to_gguf.py": {"read_spec", "plan"},  # on main since the convert merge
    "batuta_sync/convert/tokenizer.py": {"write_hf_tokenizer"},  # on main since the convert merge
    "batuta_sync/cli/push_cmd.py": {"_handler"},  # on main since the gates merge
    "batuta_sync/convert/quantize.py": {"_mixture"},
    "batuta_sync/convert/requantize.py": {"requantize_gguf"},
    "batuta_sync/core/executor.py": {"execute"},
    "batuta_sync/core/planner/diff.py": {"diff_repo"},
    "batuta_sync/ids.py": {"repo_path_problem"},
    "batuta_sync/publish/card.py": {"generate_model_card"},
    "batuta_sync/publish/secrets/text.py": {"_scan_plain"},
    "batuta_sync/publish/validate.py": {"parse_safetensors_header", "_parse_gguf", "validate_folder"},
    "batuta_sync/pull/engine.py": {"pull"},
    "batuta_sync/pull/select.py": {"plan_pull"},
    "batuta_sync/safety.py": {"check_safetensors_header"},
    "batuta_sync/server/meta.py": {"derive_tags"},
    "batuta_sync/server/store.py": {"apply_commit"},
    "tests/bench/bench_convert.py": {"main"},
    "tests/bench/bench_pull.py": {"main"},
}


def test_c901_exceptions_in_pyproject_are_the_pinned_files() -> None:
    ignores = PYPROJECT["tool"]["ruff"]["lint"]["per-file-ignores"]
    assert {f for f, rules in ignores.items() if "C901" in rules} == set(C901_EXCEPTIONS)
    assert "C901" in PYPROJECT["tool"]["ruff"]["lint"]["select"]


def test_ci_type_checks_strictly() -> None:
    """``mypy --strict`` in CI, and the same rules for a plain ``mypy batuta_sync`` (issue #15)."""
    assert PYPROJECT["tool"]["mypy"]["strict"] is True
    run = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert "mypy --strict batuta_sync" in run


def test_no_new_function_exceeds_the_complexity_threshold_in_the_excepted_files() -> None:
    ruff = shutil.which("ruff")
    if ruff is None:  # pragma: no cover - ruff is a dev dependency
        pytest.skip("ruff is not installed")
    limit = PYPROJECT["tool"]["ruff"]["lint"]["mccabe"]["max-complexity"]
    out = subprocess.run(
        [ruff, "check", "--isolated", "--select", "C901", "--config", f"lint.mccabe.max-complexity={limit}",
         "--output-format", "json", "--exit-zero", *C901_EXCEPTIONS],
        capture_output=True, text=True, check=True, cwd=ROOT, timeout=120,
    )
    found: dict[str, set[str]] = {}
    for d in json.loads(out.stdout):
        name = d["message"].split("`")[1]
        found.setdefault(Path(d["filename"]).resolve().relative_to(ROOT).as_posix(), set()).add(name)
    new = {f: names - C901_EXCEPTIONS[f] for f, names in found.items() if names - C901_EXCEPTIONS[f]}
    assert not new, f"split these functions (complexity > {limit}): {new}"


def test_nothing_imports_the_facade_or_the_cli_from_below() -> None:
    """The one upward reach left (the deprecated ``hub.client.HfClient``) resolves at run time."""
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("batuta_sync")
    above = {m for m in graph.find_downstream_modules("batuta_sync.client")
             if not m.startswith("batuta_sync.cli") and m not in ("batuta_sync", "batuta_sync.demo")}
    assert above == set()  # only the CLI (and the package's TYPE_CHECKING imports) import the facade
    entry_points = {"batuta_sync.demo", "batuta_sync.__main__", "batuta_sync._dev.gendocs"}
    below_cli = {m for m in graph.find_downstream_modules("batuta_sync.cli")
                 if not m.startswith("batuta_sync.cli") and m not in entry_points}
    assert below_cli == set()  # only entry points (and the deprecated demo shim) import the CLI
    code = "import warnings, batuta_sync.hub.client as h; warnings.simplefilter('ignore'); print(h.HfClient.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "batuta_sync.client"


def test_the_package_itself_uses_no_deprecated_path() -> None:
    """The deprecated re-exports are for users; batuta's own modules use the new homes (an
    import of the old path would warn at run time and reach up without an import edge)."""
    import re

    old = re.compile(r"from batuta_sync\.hub\.client import [^\n]*\bHfClient\b|from batuta_sync\.demo import|"
                     r"import batuta_sync\.demo\b|from batuta_sync\.core\.render import [^\n]*\bhuman_bytes\b")
    hits = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in sorted((ROOT / "batuta_sync").rglob("*.py"))
        if p.name != "demo.py" or p.parent.name != "batuta_sync"
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if old.search(line)
    ]
    assert hits == [], "use batuta_sync.hub.client.HubApi / batuta_sync.client.HfClient / batuta_sync.cli.demo / batuta_sync._fmt"
