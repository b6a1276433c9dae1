"""Workspace files next to hf.yaml: hf.lock, ``.batuta/`` (apply lock, journal, state).

The apply lock is :func:`batuta_sync._fs.file_lock` on ``.batuta/apply.lock``; the holder writes
``pid host time`` into it so a second apply can name who holds it.  The kernel
drops the lock when the holder dies (even by SIGKILL): no stale lock files.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from batuta_sync._fs import FileLock, PathEscapeError, atomic_write, confine, file_lock
from batuta_sync.errors import ConfigError, WorkspaceBusyError

if TYPE_CHECKING:
    from batuta_sync.core.manifest import Manifest

_PLAN_ID_RE = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")
_ACTION_ID_RE = re.compile(
    r"\A(pull|convert|push|relock|delete-local|noop):(models|datasets|spaces|conversions|publish)\.[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z"
)
_LOCK_DIGEST_RE = re.compile(r"\A(none|sha256:[0-9a-f]{64})\Z")
MAX_STATE_BYTES = 256 * 1024 * 1024


def check_plan_id(value: Any, what: str = "plan_id") -> str:
    """A plan id names its journal file: 1-64 letters, digits, '-' or '_' (no path tricks); ValueError if not."""
    if not isinstance(value, str) or not _PLAN_ID_RE.match(value):
        shown = repr(value)[:80]
        raise ValueError(f"{what} {shown} is not a plan id (1-64 letters, digits, '-' or '_')")
    return value


@dataclass(frozen=True)
class Workspace:
    """Paths derived from the manifest path.  ``lock_name`` is the manifest's lock file (``hf.lock``;
    an overlay such as ``hf.prod.yaml`` has its own, ``hf.prod.lock``: see ``Manifest.lock_file``)."""

    manifest: Path
    lock_name: str = "hf.lock"

    @classmethod
    def of(cls, manifest: Any) -> Workspace:
        """The workspace of a loaded :class:`~batuta_sync.core.manifest.Manifest`."""
        return cls(Path(manifest.path), getattr(manifest, "lock_file", "hf.lock"))

    @property
    def root(self) -> Path:
        return self.manifest.resolve().parent

    @property
    def lock_path(self) -> Path:
        return self.root / self.lock_name

    @property
    def dir(self) -> Path:
        return self.root / ".batuta"

    @property
    def apply_lock(self) -> Path:
        return self.dir / "apply.lock"

    def journal(self, plan_id: str) -> Path:
        try:
            return self.dir / "journal" / f"{check_plan_id(plan_id)}.json"
        except ValueError as exc:  # a Plan built in Python with a hostile id
            raise ConfigError(f"Refusing the plan: {exc}.", hint="Plan ids come from `batuta plan`; do not set them by hand.")


# A flock belongs to the open file description, which fork() shares with the child: a forked
# worker (e.g. a conversion process pool) that outlives a SIGKILLed apply would keep the
# workspace locked.  Children close their copy right after fork, so the lock dies with us.
_HELD: set[IO[str]] = set()


def _close_held_in_child() -> None:
    for fh in list(_HELD):
        try:
            os.close(fh.fileno())
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_held_in_child)


def _sweep_dead_temps(root: Path) -> None:
    """Remove temp files of hf.lock and journal writes killed mid-write (SIGKILL, power loss).

    Only called with the workspace lock held: every writer of these files holds it, so any
    such temp file belongs to a dead process."""
    for pattern in (".hf.lock.*.tmp", ".batuta/journal/.journal.*", ".batuta/journal/.*.tmp"):
        for tmp in root.glob(pattern):
            try:
                tmp.unlink()
            except OSError:
                pass


class WorkspaceLock:
    """Exclusive, non-blocking (or ``timeout`` seconds) lock of a workspace for one apply."""

    def __init__(self, path: Path, *, timeout: float = 0.0) -> None:
        self.path = path
        self.timeout = timeout
        self._fh: IO[str] | None = None  # the lock file: the holder record is written into it
        self._lock: FileLock | None = None

    def acquire(self) -> WorkspaceLock:
        import socket

        lock = file_lock(self.path, timeout=self.timeout)
        try:
            lock.acquire()
        except TimeoutError:
            holder = self.holder()
            who = (
                f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
                if holder
                else "another process"
            )
            raise WorkspaceBusyError(
                f"Another `batuta apply` holds the workspace lock {self.path} ({who}).",
            ) from None
        fh = lock.file
        assert fh is not None
        fh.seek(0)
        fh.truncate()
        fh.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            )
            + "\n"
        )
        fh.flush()
        self._lock = lock
        self._fh = fh
        _HELD.add(fh)
        _sweep_dead_temps(self.path.parent.parent)
        return self

    def holder(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def release(self) -> None:
        if self._fh is None or self._lock is None:
            return
        _HELD.discard(self._fh)
        try:
            self._fh.seek(0)
            self._fh.truncate()
            self._fh.flush()
        finally:
            self._lock.release()
            self._fh = None
            self._lock = None

    def __enter__(self) -> WorkspaceLock:
        return self.acquire()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


class Journal:
    """``.batuta/journal/<plan_id>.json``: the actions of a plan applied so far, each with the
    digest hf.lock has once that action is recorded.

    An entry is written *before* the lock, so after a crash the current lock digest tells
    which prefix of the entries really reached hf.lock (an entry whose lock write never
    happened is simply redone).  Lets ``batuta apply plan.json`` resume although hf.lock moved.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[tuple[str, str]] = parse_journal(read_json(path), str(path))

    @property
    def exists(self) -> bool:
        return bool(self.entries)

    def digests(self) -> set[str]:
        return {d for _, d in self.entries}

    def done_at(self, lock_digest: str) -> list[str]:
        """The action ids applied when hf.lock has ``lock_digest``."""
        last = max((i for i, (_, d) in enumerate(self.entries) if d == lock_digest), default=-1)
        return [a for a, _ in self.entries[: last + 1]]

    def record(self, action_id: str, lock_digest: str) -> None:
        self.entries.append((action_id, lock_digest))
        atomic_write(self.path, json.dumps({"entries": self.entries}), fsync=True)

    def remove(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass


# --------------------------------------------------------------------------- reading workspace files


def _bad(path: str, why: str) -> ConfigError:
    return ConfigError(
        f"{path} is invalid: {why}.",
        hint=f"It is batuta's own bookkeeping, not meant to be edited: delete {path} and run the command again.",
    )


def read_json(path: Path) -> Any:
    """The JSON in ``path`` (None when absent); a ConfigError naming the file when unreadable."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _bad(str(path), f"cannot read it ({exc.strerror or exc})")
    if len(raw) > MAX_STATE_BYTES:
        raise _bad(str(path), f"larger than {MAX_STATE_BYTES} bytes")
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise _bad(str(path), f"not JSON ({type(exc).__name__})")


def parse_journal(data: Any, source: str) -> list[tuple[str, str]]:
    """Journal entries ``[action id, lock digest]``, each shape checked."""
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get("entries", []), list):
        raise _bad(source, "expected {\"entries\": [[action id, lock digest], ...]}")
    out: list[tuple[str, str]] = []
    for i, e in enumerate(data.get("entries") or []):
        if not (isinstance(e, list) and len(e) == 2 and all(isinstance(x, str) for x in e)):
            raise _bad(source, f"entries[{i}] is not [action id, lock digest]")
        if not _ACTION_ID_RE.match(e[0]) or not _LOCK_DIGEST_RE.match(e[1]):
            raise _bad(source, f"entries[{i}] {repr(e)[:80]} is not an action id and a lock digest")
        out.append((e[0], e[1]))
    return out


def parse_state(data: Any, source: str) -> tuple[dict[str, str], dict[str, list[Any]]]:
    """``.batuta/state.json``: ``applied`` address -> commit, ``hashes`` path -> [size, mtime_ns, sha256, gitsha1]."""
    from batuta_sync import ids
    from batuta_sync.core.manifest import ADDRESS_RE

    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise _bad(source, "expected a JSON object")
    applied, hashes = data.get("applied") or {}, data.get("hashes") or {}
    if not isinstance(applied, dict) or not isinstance(hashes, dict):
        raise _bad(source, "'applied' and 'hashes' must be objects")
    for address, commit in applied.items():
        if not ADDRESS_RE.match(address) or not ids.is_git_sha1(commit):
            raise _bad(source, f"applied.{address[:80]} = {repr(commit)[:80]} is not an address and a commit sha")
    for path, rec in hashes.items():
        ok = (
            isinstance(rec, list)
            and len(rec) == 4
            and all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**63 for x in rec[:2])
            and (rec[2] is None or ids.is_sha256(rec[2]))
            and (rec[3] is None or ids.is_git_sha1(rec[3]))
        )
        if not ok:
            raise _bad(source, f"hashes[{path[:80]!r}] is not [size, mtime_ns, sha256, gitsha1]")
    return dict(applied), dict(hashes)


# --------------------------------------------------------------------------- confinement


def manifest_paths(manifest: Manifest) -> Iterable[tuple[str, str]]:
    """(key, path) of every local path hf.yaml names: outputs, publish sources, cache_dir."""
    for r in manifest.repos:
        if r.output:
            yield f"{r.address}.output", r.output
    for c in manifest.conversions:
        yield f"{c.address}.output", c.output_path
    for p in manifest.publishes:
        if not p.source_is_address:
            yield f"{p.address}.from", p.source
    for section, values in (("defaults", manifest.defaults), ("policies", manifest.policies)):
        if values.get("cache_dir") is not None:
            yield f"{section}.cache_dir", str(values["cache_dir"])


def confine_manifest(manifest: Manifest, *, allow_outside: bool = False) -> None:
    """Refuse (exit 20) when a path in hf.yaml resolves outside the workspace (the folder of
    hf.yaml): absolute paths, ``..`` and symlinked folders alike.  ``allow_outside`` is
    ``--allow-outside-workspace``, the explicit command-line opt-out."""
    if allow_outside:
        return
    root = manifest.root
    bad: list[str] = []
    for key, path in manifest_paths(manifest):
        try:
            confine(root, path, what=key)
        except PathEscapeError:
            bad.append(f"  - {key}: {path!r}")
    if bad:
        raise PathEscapeError(
            f"{manifest.path}: these paths resolve outside the workspace {root} (absolute, '..' or a symlinked folder):\n"
            + "\n".join(bad),
            hint="Keep outputs, publish sources and cache_dir inside the folder of hf.yaml, or pass "
            "--allow-outside-workspace if you really mean it. Nothing was read or written.",
        )


def workspace_path(manifest: Manifest, path: str, *, allow_outside: bool, what: str) -> Path:
    """``path`` from hf.yaml or hf.lock as an absolute path, confined to the workspace unless allowed."""
    root = manifest.root
    if allow_outside:
        p = Path(path)
        return p if p.is_absolute() else Path(os.path.normpath(root / p))
    return confine(root, path, what=what)
