"""Shared machinery of the reliability suite (used by the tests and by ``report.py``).

* sizes: reduced by default (CI); ``BATUTA_RELIABILITY=full`` (or ``report.py --full``) runs the full size;
* :func:`random_faults`: switches on the server's own seeded random fault mode (about ``rate`` of
  all requests fail; drop / truncate / corrupt on file bodies, 429 / 5xx on everything);
* seeding a local Hub with tiny real repos and writing the project ``hf.yaml``;
* running the CLI in-process (with its own environment and cwd) or as a subprocess;
* integrity checks: every blob in a cache matches the digest it is named after, every output
  file matches the repo file (or a reference run) it came from; a monitor thread that keeps
  checking while an apply runs ("no corrupt file is ever visible").
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batuta_sync.server import HubServer
from batuta_sync.server.state import DEFAULT_FAULT_WEIGHTS, Faults

REPO_ROOT = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------- sizes


def full_mode() -> bool:
    return os.environ.get("BATUTA_RELIABILITY", "").strip().lower() in ("full", "1", "yes")


def size(reduced: int, full: int) -> int:
    """``reduced`` in CI, ``full`` with BATUTA_RELIABILITY=full."""
    return full if full_mode() else reduced


# --------------------------------------------------------------------------- random faults

#: The chaos mix: share of each kind among the injected faults (body kinds only hit file bodies).
FAULT_KINDS: dict[str, float] = dict(DEFAULT_FAULT_WEIGHTS)

#: Initial retry backoff of the batuta clients during chaos runs (read by the hub client and the
#: downloader); with ``Retry-After: 0`` from the server a retry costs tens of milliseconds, not seconds.
CHAOS_ENV: dict[str, str | None] = {"BATUTA_RETRY_BACKOFF": "0.05"}


def random_faults(
    server: HubServer,
    rate: float = 0.3,
    seed: int = 0,
    *,
    kinds: Mapping[str, float] | None = None,
    retry_after: str = "0",
    only: str | None = None,
) -> Faults:
    """Switch the server's random fault mode on (counts restarted): about ``rate`` of requests get
    a fault drawn among ``kinds`` (see :class:`batuta_sync.server.Faults`); returns the fault object
    whose ``counts`` say what was really injected."""
    server.faults.clear_counts()
    server.faults.configure(
        fault_rate=rate, fault_seed=seed, fault_kinds=dict(kinds or FAULT_KINDS), retry_after=retry_after, only=only
    )
    return server.faults


# --------------------------------------------------------------------------- seeding


def _files(d: Path) -> dict[str, Path]:
    return {p.relative_to(d).as_posix(): p for p in sorted(d.rglob("*")) if p.is_file()}


@dataclass
class Seeded:
    """What was put on the server: repo -> {path: bytes}."""

    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)

    def digests(self, repo: str) -> dict[str, str]:
        return {p: hashlib.sha256(b).hexdigest() for p, b in self.repos[repo].items()}

    def total_bytes(self, repo: str) -> int:
        return sum(len(b) for b in self.repos[repo].values())


def seed_hub(server: HubServer, work: Path, *, extra_files: int = 4, extra_size: int = 1 << 20, seed: int = 7) -> Seeded:
    """A tiny LLaMA (safetensors + tokenizer) and a dataset with ``extra_files`` random parquet-named shards."""
    from batuta_sync.tinymodel import write_tiny_dataset, write_tiny_llama

    out = Seeded()
    model = _files(write_tiny_llama(work / "seed" / "model"))
    server.store.commit("rel/tiny-llama", model, repo_type="model", message="tiny llama")
    out.repos["rel/tiny-llama"] = {p: f.read_bytes() for p, f in model.items()}
    data = _files(write_tiny_dataset(work / "seed" / "dataset"))
    rng = random.Random(seed)
    blobs: dict[str, bytes | Path] = dict(data)
    for i in range(extra_files):
        n = max(1, extra_size + rng.randint(-extra_size // 3, extra_size // 3))
        blobs[f"extra/shard-{i:03d}.parquet"] = rng.randbytes(n)
    server.store.commit("rel/tiny-data", blobs, repo_type="dataset", message="tiny data")
    out.repos["rel/tiny-data"] = {p: (b.read_bytes() if isinstance(b, Path) else b) for p, b in blobs.items()}
    return out


MANIFEST = """\
version: 1
defaults:
  endpoint: {endpoint}
models:
  llama:
    repo: rel/tiny-llama
    revision: main
    include: ["*.json", "*.safetensors"]
    output: ./models/tiny-llama
datasets:
  data:
    repo: rel/tiny-data
    output: ./data/tiny
{conversions}{publish}"""

CONVERSION = """\
conversions:
  llama-q4:
    from: models.llama
    to: gguf
    quantization: Q4_K_M
    output: ./models/tiny-llama-gguf
"""

PUBLISH = """\
publish:
  llama-gguf:
    from: conversions.llama-q4
    repo: rel/{push_repo}
    type: model
    card:
      license: apache-2.0
      base_model: rel/tiny-llama
"""


def publisher_wired() -> bool:
    """True once the publisher exposes what ``core.steps.make_push_step`` calls."""
    try:
        import batuta_sync.publish as pub
    except Exception:
        return False
    return all(hasattr(pub, n) for n in ("PushRequest", "prepare_push", "push"))


def write_project(
    project: Path, endpoint: str, *, convert: bool = True, push: bool | None = None, push_repo: str = "pushed"
) -> Path:
    project.mkdir(parents=True, exist_ok=True)
    if push is None:
        push = publisher_wired()
    text = MANIFEST.format(
        endpoint=endpoint,
        conversions=CONVERSION if convert else "",
        publish=PUBLISH.format(push_repo=push_repo) if (push and convert) else "",
    )
    path = project / "hf.yaml"
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- running the CLI

_CLI_LOCK = threading.Lock()


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str
    seconds: float
    error: BaseException | None = None


@contextlib.contextmanager
def patched_env(env: Mapping[str, str | None]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in env}
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --------------------------------------------------------------------------- token leak watch

CANARIES: set[str] = set()
LEAKS: list[str] = []


def watch_token(token: str) -> None:
    """Every captured output checked by ``note_output`` must not contain ``token``."""
    CANARIES.add(token)


def note_output(text: str | bytes | None, where: str) -> None:
    if not text:
        return
    data = text if isinstance(text, str) else text.decode("utf-8", "replace")
    for c in CANARIES:
        if c in data:
            LEAKS.append(f"token found in {where}")


def communicate(p: subprocess.Popen[str], timeout: float = 300) -> tuple[str, str]:
    out, err = p.communicate(timeout=timeout)
    note_output(out, f"stdout of pid {p.pid} {p.args!r}"[:200])
    note_output(err, f"stderr of pid {p.pid} {p.args!r}"[:200])
    return out, err


_TOKEN_DEFAULT = object()


def cache_env(home: Path, endpoint: str | None = None, token: Any = _TOKEN_DEFAULT) -> dict[str, str | None]:
    """Environment of one isolated client; the token defaults to the ambient HF_TOKEN (the canary in tests)."""
    if token is _TOKEN_DEFAULT:
        token = os.environ.get("HF_TOKEN")
    hf_home = home / "hf-home"
    return {
        "HOME": str(home),
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hf_home / "hub"),
        "HF_ENDPOINT": endpoint,
        "HF_TOKEN": token,
        "HF_HUB_OFFLINE": None,
        "HF_HUB_DISABLE_XET": "1",
        "BATUTA_DEBUG": None,
    }


def run_cli(argv: Sequence[str], env: Mapping[str, str | None], cwd: Path) -> CliResult:
    """Run ``batuta argv`` in this process (own env, cwd, captured output); never raises."""
    from batuta_sync.cli import main

    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    error: BaseException | None = None
    with _CLI_LOCK, patched_env(env):
        old = Path.cwd()
        os.chdir(cwd)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(list(argv))
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else 1
                except BaseException as exc:  # recorded: a traceback escaping main is a finding
                    error = exc
                    code = -1
        finally:
            os.chdir(old)
    note_output(out.getvalue(), f"stdout of batuta {' '.join(argv)}")
    note_output(err.getvalue(), f"stderr of batuta {' '.join(argv)}")
    if error is not None:
        note_output(f"{error!r} {error}", f"exception of batuta {' '.join(argv)}")
    return CliResult(int(code or 0), out.getvalue(), err.getvalue(), time.perf_counter() - t0, error)


def subprocess_env(env: Mapping[str, str | None]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("COV_CORE", "PYTEST"))}
    for k, v in env.items():
        if v is None:
            base.pop(k, None)
        else:
            base[k] = v
    base["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + base.get("PYTHONPATH", "")
    return base


def batuta_cmd(*argv: str) -> list[str]:
    return [sys.executable, "-m", "batuta_sync", *argv]


def spawn(argv: Sequence[str], env: Mapping[str, str | None], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=subprocess_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# --------------------------------------------------------------------------- integrity


def git_blob_sha1(data: bytes) -> str:
    h = hashlib.sha1(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def blob_ok(path: Path) -> bool | None:
    """True/False for a cache blob named after its digest; None if the name is not a digest."""
    name = path.name
    try:
        data = path.read_bytes()
    except OSError:
        return None  # vanished between listing and reading (a concurrent prune/replace): not visible
    if len(name) == 64:
        return hashlib.sha256(data).hexdigest() == name
    if len(name) == 40:
        return git_blob_sha1(data) == name
    return None


TEMP_MARKERS = (".incomplete", ".partial", ".tmp", ".lock")


def is_temp_name(name: str) -> bool:
    return name.startswith(".") or any(m in name for m in TEMP_MARKERS)


def cache_blobs(cache: Path) -> list[Path]:
    if not cache.is_dir():
        return []
    return [p for p in cache.glob("*/blobs/*") if p.is_file() and not is_temp_name(p.name)]


def bad_blobs(cache: Path) -> list[str]:
    return [str(p) for p in cache_blobs(cache) if blob_ok(p) is False]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def output_files(root: Path) -> dict[str, Path]:
    """Every final-named file under ``root`` (temp names excluded), relative posix path -> path."""
    if not root.exists():
        return {}
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for n in files:
            p = Path(dirpath) / n
            if not is_temp_name(n):
                out[p.relative_to(root).as_posix()] = p
    return out


def temp_files(root: Path) -> list[str]:
    found = []
    for dirpath, _dirs, files in os.walk(root):
        found += [str(Path(dirpath) / n) for n in files if is_temp_name(n) and not n.endswith(".lock")]
    return found


def check_outputs(root: Path, expected: Mapping[str, str], *, complete: bool) -> list[str]:
    """Problems: a final-named file under ``root`` whose sha256 differs from ``expected`` (or is not
    expected at all); with ``complete`` also every expected file that is missing."""
    problems = []
    have = output_files(root)
    for rel, p in have.items():
        want = expected.get(rel)
        try:
            got = sha256_file(p)
        except OSError:
            continue
        if want is None:
            problems.append(f"unexpected file {p}")
        elif got != want:
            problems.append(f"corrupt file {p}")
    if complete:
        problems += [f"missing {root / rel}" for rel in expected if rel not in have]
    return problems


class IntegrityMonitor:
    """Keeps hashing every visible blob / output file while something runs; counts corrupt ones."""

    def __init__(self, cache: Path, outputs: Mapping[Path, Mapping[str, str]], interval: float = 0.02) -> None:
        self.cache = cache
        self.outputs = outputs
        self.interval = interval
        self.corrupt: set[str] = set()
        self.checked = 0
        self._seen: dict[str, tuple[int, int, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="integrity-monitor", daemon=True)

    def _fresh(self, p: Path) -> bool:
        try:
            st = p.stat()
        except OSError:
            return False
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if self._seen.get(str(p)) == key:
            return False
        self._seen[str(p)] = key
        return True

    def scan(self) -> None:
        for b in cache_blobs(self.cache):
            if self._fresh(b):
                self.checked += 1
                if blob_ok(b) is False:
                    self.corrupt.add(str(b))
        for root, expected in self.outputs.items():
            for rel, p in output_files(root).items():
                if rel in expected and self._fresh(p):
                    self.checked += 1
                    try:
                        if sha256_file(p) != expected[rel]:
                            self.corrupt.add(str(p))
                    except OSError:
                        pass

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.scan()
            self._stop.wait(self.interval)

    def __enter__(self) -> IntegrityMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.scan()


# --------------------------------------------------------------------------- lockfile


def lock_parses(project: Path) -> str | None:
    """None when hf.lock is absent or parses; else the error text."""
    from batuta_sync.core.lockfile import loads
    from batuta_sync.errors import BatutaError

    path = project / "hf.lock"
    if not path.exists():
        return None
    try:
        loads(path.read_text(encoding="utf-8"), source=str(path))
    except (BatutaError, UnicodeDecodeError) as exc:
        return str(exc)
    return None


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):  # pragma: no cover - non-Linux
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def start_server(root: Path, **kw: Any) -> HubServer:
    return HubServer(root=root, **kw).start()
