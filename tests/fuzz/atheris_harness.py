"""Coverage-guided fuzzing of the same targets with atheris (on demand, never in CI).

    pip install atheris
    python tests/fuzz/atheris_harness.py manifest -atheris_runs=200000 [corpus_dir]
    python tests/fuzz/atheris_harness.py --list

Each input goes through ``run_bounded`` (only BatutaError may escape; < 250 ms; < 64 MiB with
``--trace``); any other exception is a crash atheris reports with the reproducing input.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv: list[str]) -> int:
    from tests.fuzz._targets import TARGETS, run_bounded

    if len(argv) < 2 or argv[1] in ("-h", "--help", "--list"):
        print("targets:", ", ".join(sorted(TARGETS)))
        return 0
    name = argv[1]
    if name not in TARGETS:
        print(f"unknown target {name!r}; choose from {', '.join(sorted(TARGETS))}", file=sys.stderr)
        return 64
    trace = "--trace" in argv
    rest = [a for a in argv[2:] if a != "--trace"]
    import atheris  # type: ignore[import-not-found]

    def one(data: bytes) -> None:
        run_bounded(name, data, trace=trace)

    atheris.Setup([argv[0], *rest], one)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
