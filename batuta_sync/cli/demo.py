"""``batuta demo``: the whole product on a fresh machine, with no network.

1. start the embedded local Hub (``batuta hub serve``) on 127.0.0.1 in a temporary directory;
2. seed it with a tiny generated LLaMA model (safetensors + tokenizer), a tiny dataset and a Space;
3. write an example ``hf.yaml`` (pull the model, dataset and space; convert the model to GGUF
   Q4_K_M; publish the GGUF as a new repo);
4. run ``batuta plan -o plan.json`` → ``batuta apply plan.json`` with the real progress display;
5. show ``hf.lock`` and a second plan, which is empty.

Everything happens in the demo directory (its own HF_HOME too), so the user's cache is untouched.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DEMO_YAML = """\
# yaml-language-server: $schema=https://batuta-sync.dev/schemas/hf.schema.json
# batuta demo: the desired state. `batuta plan` diffs it against hf.lock, the cache and the Hub.
version: 1
defaults:
  endpoint: {endpoint}
models:
  llama:
    repo: demo/tiny-llama
    revision: main
    include: ["*.json", "*.safetensors"]
    output: ./models/tiny-llama
datasets:
  tiny:
    repo: demo/tiny-dataset
    split: train
spaces:
  app:
    repo: demo/tiny-space
conversions:
  llama-q4:
    from: models.llama
    to: gguf
    quantization: Q4_K_M
    output: ./models/tiny-llama-gguf
publish:
  llama-gguf:
    from: conversions.llama-q4
    repo: demo/tiny-llama-GGUF
    type: model
    card:
      license: apache-2.0
      base_model: demo/tiny-llama
      tags: [gguf, demo]
"""


@dataclass(frozen=True)
class DemoResult:
    directory: Path
    apply_exit: int
    second_plan_exit: int
    seconds: float

    @property
    def ok(self) -> bool:
        return self.apply_exit == 0 and self.second_plan_exit == 0


def seed_hub(store: object, work: Path) -> None:
    """Put the tiny model, dataset and space into the local Hub's store."""
    from batuta_sync.tinymodel import write_tiny_dataset, write_tiny_llama, write_tiny_space

    def files(d: Path) -> dict[str, Path]:
        return {p.relative_to(d).as_posix(): p for p in sorted(d.rglob("*")) if p.is_file()}

    seed = work / "seed"
    commit = store.commit  # type: ignore[attr-defined]
    commit("demo/tiny-llama", files(write_tiny_llama(seed / "model")), repo_type="model", message="Add tiny LLaMA")
    commit("demo/tiny-dataset", files(write_tiny_dataset(seed / "dataset")), repo_type="dataset", message="Add data")
    commit("demo/tiny-space", files(write_tiny_space(seed / "space")), repo_type="space", message="Add app")


MARKER = ".batuta-demo"  # written into every demo directory: `--dir` may start it clean again
DEMO_ENTRIES = ("hub", "hf-home", "project", "seed", MARKER)  # everything a demo writes there


def prepare_dir(work: Path) -> None:
    """Make ``work`` an empty demo directory: a new or empty one is used, a previous demo's is
    emptied of what the demo wrote, any other non-empty directory is refused (nothing deleted)."""
    import shutil

    from batuta_sync.errors import UsageError

    if work.exists() and not work.is_dir():
        raise UsageError(f"--dir {work} is a file, not a directory.", hint="Pass a new or empty directory.")
    entries = sorted(p.name for p in work.iterdir()) if work.is_dir() else []
    if entries and MARKER not in entries:
        shown = ", ".join(entries[:5]) + (", …" if len(entries) > 5 else "")
        raise UsageError(
            f"--dir {work} is not empty and is not a previous demo directory (it holds {shown}); "
            "the demo writes a Hub, a cache and a project there, so it refuses to mix them with your files.",
            hint="Pass a new or empty directory, or leave out --dir to use a temporary one.",
        )
    for name in entries:
        if name in DEMO_ENTRIES:
            target = work / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
    work.mkdir(parents=True, exist_ok=True)
    (work / MARKER).write_text("batuta demo directory: `batuta demo --dir` may empty it again\n")


@contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def run_demo(
    directory: Path | None = None,
    *,
    say: Callable[[str], None] = print,
    runner: Callable[[Sequence[str]], int] | None = None,
    quiet: bool = False,
) -> DemoResult:
    """Run the demo in ``directory`` (a new temporary one by default) and return what happened."""
    from batuta_sync.cli import main as cli_main
    from batuta_sync.server import HubServer

    base_run = runner or cli_main
    extra = ["--quiet"] if quiet else []

    def run(argv: Sequence[str]) -> int:
        return base_run([*argv, *extra])
    started = time.perf_counter()
    work = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="batuta-demo-"))
    prepare_dir(work)
    project = work / "project"
    project.mkdir()
    server = HubServer(root=work / "hub").start()
    try:
        say(f"① Local Hub running at {server.url} (data in {work / 'hub'})")
        seed_hub(server.store, work)
        say("② Seeded demo/tiny-llama (model), demo/tiny-dataset (dataset), demo/tiny-space (space)")
        manifest = project / "hf.yaml"
        manifest.write_text(DEMO_YAML.format(endpoint=server.url))
        say(f"③ Wrote {manifest}:\n")
        say(manifest.read_text())
        hf_home = work / "hf-home"
        env = {"HF_HOME": str(hf_home), "HF_HUB_CACHE": str(hf_home / "hub"), "HF_HUB_DISABLE_XET": "1"}
        with _env(env), _cwd(project):
            env_drop = {k: os.environ.pop(k) for k in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT") if k in os.environ}
            try:
                say("④ batuta plan -o plan.json\n")
                plan_exit = run(["plan", "-o", "plan.json"])
                if plan_exit not in (0, 2):
                    return DemoResult(work, plan_exit, -1, time.perf_counter() - started)
                say("\n⑤ batuta apply plan.json --auto-approve\n")
                apply_exit = run(["apply", "plan.json", "--auto-approve"])
                lock = project / "hf.lock"
                if lock.exists():
                    say("\n⑥ hf.lock (commit it next to hf.yaml):\n")
                    say(lock.read_text())
                say("⑦ batuta plan --detailed-exitcode   (nothing left to do → exit 0)\n")
                second = run(["plan", "--detailed-exitcode"])
            finally:
                os.environ.update(env_drop)
        seconds = time.perf_counter() - started
        verdict = "in sync" if second == 0 else f"NOT in sync (exit {second})"
        say(f"\nDone in {seconds:.1f} s: apply exit {apply_exit}, second plan {verdict}. Files: {work}")
        return DemoResult(work, apply_exit, second, seconds)
    finally:
        server.stop()


def main_demo(directory: str | None, quiet: bool) -> int:
    """CLI entry: run the demo, exit non-zero if any step failed."""
    if not quiet:
        result = run_demo(Path(directory) if directory else None, say=lambda s: print(s, flush=True))
    else:
        # Quiet: the commands' own output is kept back and shown only if a step fails; success
        # is one line.
        import contextlib
        import io

        captured = io.StringIO()
        with contextlib.redirect_stdout(captured):
            result = run_demo(Path(directory) if directory else None, say=lambda _s: None, quiet=True)
        if result.ok:
            print(f"batuta demo: ok — plan → apply → in sync in {result.seconds:.1f} s ({result.directory})")
        else:
            sys.stdout.write(captured.getvalue())
    if result.ok:
        return 0
    return result.apply_exit or result.second_plan_exit or 1
