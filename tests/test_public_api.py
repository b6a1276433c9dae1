"""The typed public API (issue #15 point 5): ``__all__``, the static imports under
``TYPE_CHECKING`` and the lazy loader name the same objects; type checkers see real types."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import batuta_sync

INIT = Path(batuta_sync.__file__)


def _static_imports() -> dict[str, str]:
    """name -> module of every ``from M import X as X`` under ``if TYPE_CHECKING:``."""
    tree = ast.parse(INIT.read_text())
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module, ast.dump(stmt)
                for alias in stmt.names:
                    # `X as X` is the explicit re-export mypy --strict (no_implicit_reexport) accepts
                    assert alias.asname == alias.name, f"write `{alias.name} as {alias.name}`"
                    found[alias.name] = stmt.module
    return found


def test_all_static_imports_and_lazy_table_agree() -> None:
    static = _static_imports()
    lazy = batuta_sync._LAZY
    assert static == lazy  # same names, same defining module
    assert sorted(batuta_sync.__all__) == sorted([*lazy, "BatutaError", "__version__"])
    assert batuta_sync.__all__ == sorted(batuta_sync.__all__)  # kept sorted: one place to look
    assert len(set(batuta_sync.__all__)) == len(batuta_sync.__all__)


@pytest.mark.parametrize("name", sorted(batuta_sync._LAZY))
def test_every_public_name_loads_from_its_module(name: str) -> None:
    value = getattr(batuta_sync, name)
    assert value is getattr(importlib.import_module(batuta_sync._LAZY[name]), name)
    assert name in dir(batuta_sync)


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no attribute 'pull_everything'"):
        batuta_sync.pull_everything  # noqa: B018


def test_the_engines_keep_their_package_names() -> None:
    # `pull` / `convert` are the subpackages (core/steps does `from batuta_sync import pull`);
    # a top-level function of that name would be shadowed by them.
    import batuta_sync.convert
    import batuta_sync.pull

    assert "pull" not in batuta_sync.__all__ and "convert" not in batuta_sync.__all__
    from batuta_sync import pull as pull_mod

    assert pull_mod is sys.modules["batuta_sync.pull"]
    assert callable(pull_mod.pull) and callable(batuta_sync.convert.convert)


def test_the_package_is_marked_typed() -> None:
    assert (INIT.parent / "py.typed").is_file()


def test_importing_the_package_loads_no_engine() -> None:
    code = (
        "import sys, batuta_sync; "
        "print(sorted(m for m in sys.modules if m.startswith('batuta_sync.') and m not in "
        "('batuta_sync._version', 'batuta_sync.errors')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_old_import_paths_still_work_with_a_deprecation_warning() -> None:
    import batuta_sync.hub.client as hub_client
    from batuta_sync.client import HfClient

    with pytest.warns(DeprecationWarning, match="batuta_sync.client.HfClient"):
        old = hub_client.HfClient
    assert old is HfClient and issubclass(HfClient, hub_client.HubApi)
    with pytest.raises(AttributeError):
        hub_client.NoSuchThing  # noqa: B018
    sys.modules.pop("batuta_sync.demo", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        demo = importlib.import_module("batuta_sync.demo")
    assert any("batuta_sync.cli.demo" in str(w.message) for w in caught)
    from batuta_sync.cli.demo import run_demo

    assert demo.run_demo is run_demo


def test_type_checkers_see_real_types(tmp_path: Path) -> None:
    """``reveal_type(batuta_sync.make_plan)`` is the function's signature, not ``Any``."""
    pytest.importorskip("mypy")
    snippet = tmp_path / "use_api.py"
    snippet.write_text(
        "import batuta_sync\n"
        "from batuta_sync import HfClient, pull_or_convert\n"
        "reveal_type(batuta_sync.make_plan)\n"
        "reveal_type(HfClient().download_model)\n"
        "reveal_type(pull_or_convert)\n"
        "plan: int = batuta_sync.make_plan()\n"  # a Plan is not an int: mypy must say so
    )
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent",
         "--cache-dir", str(tmp_path / "cache"), "--config-file", "", str(snippet)],
        capture_output=True, text=True, timeout=300, cwd=INIT.parent.parent,
    )
    revealed = [line for line in out.stdout.splitlines() if "Revealed type" in line]
    assert len(revealed) == 3, out.stdout + out.stderr
    assert all("Any" not in line.split("Revealed type is", 1)[1].split("->")[-1] for line in revealed), revealed
    assert "def (manifest:" in revealed[0] and "batuta_sync.core.planner.plan.Plan" in revealed[0]
    assert "pathlib.Path" in revealed[1]
    assert 'expression has type "Plan", variable has type "int"' in out.stdout


#: Where docs may import from: the package's names, and the engine packages' own ``__all__``.
PUBLIC_MODULES = {"batuta_sync", "batuta_sync.pull", "batuta_sync.convert", "batuta_sync.publish",
                  "batuta_sync.server", "batuta_sync.distributed"}


def test_docs_import_only_public_names() -> None:
    import re

    root = INIT.parent.parent
    docs = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    pattern = re.compile(r"^\s*from (batuta_sync[\w.]*) import \(?([\w, \n]+?)\)?\s*(?:#.*)?$", re.MULTILINE)
    seen = 0
    for doc in docs:
        for module, names in pattern.findall(doc.read_text()):
            assert module in PUBLIC_MODULES, f"{doc.name}: `from {module} import …` is an internal module"
            mod = importlib.import_module(module)
            for name in (n.strip() for n in names.split(",") if n.strip()):
                public = getattr(mod, "__all__", ())
                assert name in public, f"{doc.name}: {name} is not in {module}.__all__"
                getattr(mod, name)
                seen += 1
    assert seen > 20  # the docs do show the API
