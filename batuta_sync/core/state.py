"""Observed state, as frozen values: what the Hub and the local disk look like right now.

Built by :mod:`batuta_sync.core.observe` (the I/O edge) and consumed by the pure
planner.  Local files are described by size (and digests only when ``--verify``
asked for full hashes, or when a publish source needs its tree digest).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from batuta_sync.types import RepoRef, RepoSnapshot


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A file on disk: size, and the digests computed for it (None = not computed)."""

    size: int
    sha256: str | None = None
    gitsha1: str | None = None


@dataclass(frozen=True, slots=True)
class RemoteState:
    """What ``ref.revision`` resolves to on the Hub now.

    ``commit`` is None when the repo or branch does not exist (a publish target not
    created yet); ``snapshot`` is set when the planner needs the file listing (the
    resource must be (re)resolved); ``error`` carries why the Hub could not answer.
    """

    address: str
    ref: RepoRef
    commit: str | None = None
    snapshot: RepoSnapshot | None = None
    error: str | None = None
    error_exit: str | None = None  # the exit-code name of that error (errors.EXIT_CODES)


@dataclass(frozen=True)
class LocalRepoState:
    """A pulled repo on disk: cached files per commit, and the output directory."""

    address: str
    snapshots: Mapping[str, Mapping[str, LocalFile]] = field(default_factory=dict)
    output: Mapping[str, LocalFile] | None = None
    applied_commit: str | None = None
    blobs: frozenset[str] = frozenset()  # etags (sha256 / git sha1) whose blob is in the cache


@dataclass(frozen=True)
class LocalDirState:
    """A directory of files (conversion output, publish source); ``exists`` False when absent."""

    address: str
    path: str
    exists: bool
    files: Mapping[str, LocalFile] = field(default_factory=dict)


@dataclass(frozen=True)
class World:
    """Everything observed for one plan."""

    remote: Mapping[str, RemoteState] = field(default_factory=dict)
    local: Mapping[str, LocalRepoState | LocalDirState] = field(default_factory=dict)
    free_bytes: int | None = None
    verified: bool = False
