"""Every example validates, and plans against a local Hub seeded with the repos it names."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from batuta_sync.cli import main
from batuta_sync.tinymodel import write_tiny_dataset, write_tiny_llama

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*/hf.yaml"))


def _files(d: Path) -> dict[str, Path]:
    return {p.relative_to(d).as_posix(): p for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_example_validates(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert path.read_text().startswith("# yaml-language-server: $schema=")
    assert main(["validate", "-f", str(path)]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_example_plans_against_local_hub(
    path: Path, hub_server: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = yaml.safe_load(path.read_text())
    seed = tmp_path / "seed"
    model = _files(write_tiny_llama(seed / "model"))
    data = _files(write_tiny_dataset(seed / "data"))
    store = hub_server.store  # type: ignore[attr-defined]
    for kind, files in (("models", model), ("datasets", data), ("spaces", data)):
        for entry in (doc.get(kind) or {}).values():
            repo_type = kind[:-1]
            store.commit(entry["repo"], files, repo_type=repo_type)
            rev = entry.get("revision", "main")
            if rev != "main":
                store.create_tag(entry["repo"], rev, repo_type=repo_type)
    project = tmp_path / "project"
    shutil.copytree(path.parent, project)
    for entry in (doc.get("publish") or {}).values():
        src = entry["from"]
        if src.startswith("./"):
            write_tiny_llama(project / src)
    monkeypatch.chdir(project)
    code = main(["plan", "--endpoint", hub_server.url, "--detailed-exitcode"])  # type: ignore[attr-defined]
    out = capsys.readouterr()
    assert code == 2, out.err  # a fresh project has work to do
    for kind in ("models", "datasets", "spaces", "conversions", "publish"):
        for name in doc.get(kind) or {}:
            assert f"{kind}.{name}" in out.out


# --------------------------------------------------------------------------- pipelines
#
# Each example's CI steps run as written (bash, a `batuta` on PATH that is this checkout), in a
# fresh clone and a fresh HF cache per job like a CI runner, against the local Hub; between runs
# the upstream model gets a new commit.  Only `pip install` lines are skipped.

EVENTS = ("pull_request", "push", "schedule")
_GITLAB_EVENT = {'"merge_request_event"': "pull_request", '"schedule"': "schedule"}


def _github_jobs(path: Path, event: str) -> list[list[tuple[str | None, str]]]:
    """The (step id, script) lists of the jobs of ``path`` that run on ``event``."""
    doc = yaml.safe_load(path.read_text())
    jobs = []
    for job in doc["jobs"].values():
        if f"github.event_name == '{event}'" not in job.get("if", ""):
            continue
        jobs.append([(s.get("id"), s["run"]) for s in job["steps"] if "run" in s and not s["run"].startswith("pip install")])
    return jobs


def _gitlab_jobs(path: Path, event: str) -> list[list[tuple[str | None, str]]]:
    doc = yaml.safe_load(path.read_text())
    jobs = []
    for job in doc.values():
        if not isinstance(job, dict) or "script" not in job:
            continue
        rule = job["rules"][0]["if"]
        on = "push" if "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH" in rule else _GITLAB_EVENT[rule.split("==")[1].strip()]
        if on == event:
            jobs.append([(None, line) for line in job["script"]])
    return jobs


class Runner:
    """A CI runner: clones the project's origin, runs steps with bash, keeps what they printed."""

    def __init__(self, tmp: Path, hub_url: str) -> None:
        import sys

        self.tmp = tmp
        self.hub_url = hub_url
        self.bin = tmp / "bin"
        self.bin.mkdir()
        shim = self.bin / "batuta"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m batuta_sync "$@"\n')
        shim.chmod(0o755)
        self.origin = tmp / "origin.git"
        self.runs = 0
        self.log: list[str] = []

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        import os

        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "GITHUB_", "CI_"))}
        env.update(
            PATH=f"{self.bin}:{env['PATH']}", HOME=str(home), HF_HOME=str(home / "hf"), HF_ENDPOINT=self.hub_url,
            HF_HUB_DISABLE_XET="1", BATUTA_RETRY_BACKOFF="0.01", CI_COMMIT_BRANCH="main",
            GIT_AUTHOR_NAME="dev", GIT_AUTHOR_EMAIL="dev@example.com", GIT_COMMITTER_NAME="dev",
            GIT_COMMITTER_EMAIL="dev@example.com",
        )
        env.update(extra)
        return env

    def sh(self, script: str, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
        import subprocess

        proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=300)
        out = proc.stdout + proc.stderr
        self.log.append(f"$ {script}\n{out}[exit {proc.returncode}]")
        return proc.returncode, out

    def init_origin(self, project: Path) -> None:
        home = self.tmp / "dev-home"
        env = self.env(home)
        self.sh(f"git init -q -b main && git add -A && git commit -qm init && git clone -q --bare . {self.origin}",
                project, env)

    def developer(self, script: str) -> str:
        """Run ``script`` in a developer clone, then commit and push whatever it changed."""
        self.runs += 1
        work = self.tmp / f"dev-{self.runs}"
        env = self.env(self.tmp / "dev-home")
        assert self.sh(f"git clone -q {self.origin} {work}", self.tmp, env)[0] == 0
        code, out = self.sh(script, work, env)
        assert code == 0, "\n".join(self.log)
        self.sh("git add -A && (git diff --cached --quiet || git commit -qm dev) && git push -q", work, env)
        return out

    def pipeline(self, jobs: list[list[tuple[str | None, str]]], **extra: str) -> list[tuple[int, str]]:
        """Run every job (fresh clone + fresh HF cache each); a job stops at its first failing step."""
        results = []
        for steps in jobs:
            self.runs += 1
            work = self.tmp / f"job-{self.runs}"
            home = self.tmp / f"runner-{self.runs}"
            out_file = self.tmp / f"github-output-{self.runs}"
            out_file.write_text("")
            env = self.env(home, GITHUB_OUTPUT=str(out_file), **extra)
            assert self.sh(f"git clone -q {self.origin} {work}", self.tmp, env)[0] == 0
            outputs: dict[str, dict[str, str]] = {}
            code, text = 0, ""
            for step_id, script in steps:
                for sid, kv in outputs.items():
                    for k, v in kv.items():
                        script = script.replace("${{ steps." + sid + ".outputs." + k + " }}", v)
                code, out = self.sh(script, work, env)
                text += out
                if step_id:
                    outputs[step_id] = dict(
                        line.split("=", 1) for line in out_file.read_text().splitlines() if "=" in line
                    )
                if code != 0:
                    break
            results.append((code, text))
        return results

    def origin_file(self, name: str) -> str:
        import subprocess

        return subprocess.run(["git", "--git-dir", str(self.origin), "show", f"HEAD:{name}"],
                              capture_output=True, text=True, check=True).stdout


def _seed_gitops(hub: Any, tmp_path: Path) -> Path:
    seed = write_tiny_llama(tmp_path / "seed")
    hub.store.commit("myorg/bert-base-classifier", _files(seed))
    project = tmp_path / "project"
    shutil.copytree(ROOT / "examples" / "gitops", project)
    write_tiny_llama(project / "artifacts" / "classifier")
    return project


@pytest.mark.parametrize("ci", ["github-actions.yml", "gitlab-ci.yml"])
def test_gitops_pipeline_survives_an_upstream_push(ci: str, hub_server: Any, tmp_path: Path) -> None:
    jobs = _github_jobs if ci.startswith("github") else _gitlab_jobs
    path = ROOT / "examples" / "gitops" / ci
    project = _seed_gitops(hub_server, tmp_path)
    runner = Runner(tmp_path, hub_server.url)
    runner.init_origin(project)
    log = lambda: "\n\n".join(runner.log)  # noqa: E731
    runner.developer("batuta lock")  # the PR that adds hf.yaml commits its hf.lock

    def ok(event: str, **extra: str) -> str:
        results = runner.pipeline(jobs(path, event), **extra)
        assert results and all(code == 0 for code, _ in results), log()
        return "".join(text for _, text in results)

    ok("pull_request")
    ok("push")  # applies: pulls the model, publishes the classifier, commits hf.lock back
    published = hub_server.store.resolve("myorg/my-classifier")
    assert '"publish.classifier"' in runner.origin_file("hf.lock")
    ok("schedule")

    old = hub_server.store.resolve("myorg/bert-base-classifier")
    new = hub_server.store.commit("myorg/bert-base-classifier", {"config.json": b'{"moved": true}'})

    ok("pull_request")  # --locked: hf.yaml and hf.lock still agree
    out = ok("schedule")  # the drift job reports the move without failing
    assert f"upstream moved: myorg/bert-base-classifier@main moved {old[:7]} → {new[:7]}" in out, log()
    ok("push")  # a fresh runner pulls the locked commit, not the new one, and publishes nothing
    assert old in runner.origin_file("hf.lock") and new not in runner.origin_file("hf.lock")
    assert hub_server.store.resolve("myorg/my-classifier") == published

    # Taking the new commit is a reviewed change of hf.lock.
    runner.developer("batuta lock --update models.classifier-base")
    ok("pull_request")
    ok("push")
    assert new in runner.origin_file("hf.lock")

    # A gate that cannot reach the Hub fails instead of reporting "no changes".
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    results = runner.pipeline(jobs(path, "pull_request"), HF_ENDPOINT=dead)
    assert results and results[0][0] != 0, log()
    assert "could not check" in results[0][1]


def test_airgapped_node_steps_apply_and_survive_an_upstream_push(hub_server: Any, tmp_path: Path) -> None:
    import re

    example = ROOT / "examples" / "airgapped" / "hf.yaml"
    text = example.read_text()
    steps = re.findall(r"^#   \$ (.+)$", text, flags=re.M)
    assert steps and any("apply" in s for s in steps)
    mirror = "http://mirror.internal:8080"
    out_dir = tmp_path / "models"
    doc = yaml.safe_load(text)
    seed = tmp_path / "seed"
    hub_server.store.commit(doc["models"]["llama-1b"]["repo"], _files(write_tiny_llama(seed / "model")))
    hub_server.store.commit(doc["datasets"]["eval"]["repo"], _files(write_tiny_dataset(seed / "data")), repo_type="dataset")
    project = tmp_path / "project"
    project.mkdir()
    (project / "hf.yaml").write_text(text.replace(mirror, hub_server.url).replace("/models/", f"{out_dir}/"))
    runner = Runner(tmp_path, hub_server.url)
    runner.init_origin(project)
    runner.developer("batuta lock")
    script = "\n".join(steps).replace(mirror, hub_server.url)

    def node() -> None:
        results = runner.pipeline([[(None, script)]])
        assert results[0][0] == 0, "\n\n".join(runner.log)

    node()  # a fresh node: pulls and materializes (copies) the locked files
    weights = out_dir / "llama-3.2-1b" / "model.safetensors"
    assert weights.is_file() and not weights.is_symlink()
    before = weights.read_bytes()
    hub_server.store.commit(doc["models"]["llama-1b"]["repo"], {"model.safetensors": b"moved upstream"})
    node()  # pinned by hf.lock: the node keeps the locked files
    assert weights.read_bytes() == before
