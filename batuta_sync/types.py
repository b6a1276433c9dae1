"""Small domain values shared by every layer (pure, stdlib only).

Wire formats (Hub JSON, huggingface_hub objects) are translated into these once,
in ``batuta_sync/hub/``; nothing above that layer sees camelCase JSON.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from batuta_sync.ids import SHA1_RE as SHA1_RE  # one home: batuta_sync/ids.py
from batuta_sync.ids import InvalidIdentifierError, commit_sha, git_sha1, sha256_hex


class HfAssetType(str, enum.Enum):
    """Spec: ``HfAssetType``.  The value is the Hub's ``repo_type``."""

    MODEL = "model"
    DATASET = "dataset"
    SPACE = "space"

    @property
    def api_plural(self) -> str:
        """``models`` / ``datasets`` / ``spaces`` as in ``/api/{T}/…``."""
        return self.value + "s"

    @property
    def url_prefix(self) -> str:
        """``""`` / ``"datasets/"`` / ``"spaces/"`` as in ``/{P}{id}/resolve/…``."""
        return "" if self is HfAssetType.MODEL else self.api_plural + "/"

    @property
    def cache_prefix(self) -> str:
        """``models`` / ``datasets`` / ``spaces`` as in ``models--org--name``."""
        return self.api_plural

    @classmethod
    def parse(cls, value: str) -> HfAssetType:
        v = value.strip().lower().rstrip("s")
        for member in cls:
            if member.value == v:
                return member
        from batuta_sync.errors import UsageError

        raise UsageError(f"Unknown repo type {value!r}.", hint="Use one of: model, dataset, space.")


def is_valid_repo_id(repo_id: str) -> bool:
    """``name`` or ``namespace/name`` with the Hub's allowed characters (no ``--``, no ``..``)."""
    from batuta_sync.ids import is_repo_id

    return is_repo_id(repo_id)


def check_repo_id(repo_id: str) -> str:
    """Return ``repo_id`` or raise a UsageError that says what is wrong with it."""
    if not is_valid_repo_id(repo_id):
        from batuta_sync.errors import UsageError

        raise UsageError(
            f"{repo_id!r} is not a valid repo id.",
            hint="Use 'namespace/name' with letters, digits, '-', '_' or '.', e.g. 'meta-llama/Llama-2-7b-hf'.",
        )
    return repo_id


def byte_count(value: object, *, where: str) -> int:
    """``value`` if it is a file size (a non-negative int, not a bool); else InvalidIdentifierError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidIdentifierError(f"Refusing the size {value!r} from {where}: it is not a byte count.")
    return value


@dataclass(frozen=True, slots=True)
class RepoFile:
    """One file of a repo at a commit, as the Hub lists it.

    ``blob_id`` is the git blob SHA-1; ``sha256`` is set for LFS files (their
    content digest) and is what a downloader must verify for them.
    """

    path: str
    size: int
    blob_id: str
    sha256: str | None = None

    def __post_init__(self) -> None:
        # Type-level guard (issue 13): these values name cache files (``blobs/<etag>``), so
        # no RepoFile can carry one without its shape, wherever it was read from.
        if not isinstance(self.path, str):
            raise InvalidIdentifierError(f"Refusing the repo file path {self.path!r}: it is not text.")
        byte_count(self.size, where=f"the listing of {self.path!r}")
        if self.blob_id != "":  # "" = unknown (nothing can be verified or cached under it)
            git_sha1(self.blob_id, where=f"the listing of {self.path!r}", kind="git blob id")
        if self.sha256 is not None:
            sha256_hex(self.sha256, where=f"the listing of {self.path!r}", kind="LFS sha256")

    @property
    def is_lfs(self) -> bool:
        return self.sha256 is not None

    @property
    def etag(self) -> str:
        """The name huggingface_hub gives the blob in its cache: sha256 for LFS, else git sha1."""
        return self.sha256 or self.blob_id


@dataclass(frozen=True, slots=True)
class RepoRef:
    """A repo (type + id) and the revision asked for (branch, tag, sha)."""

    repo_id: str
    repo_type: HfAssetType = HfAssetType.MODEL
    revision: str = "main"

    def __str__(self) -> str:
        prefix = "" if self.repo_type is HfAssetType.MODEL else f"{self.repo_type.value}:"
        return f"{prefix}{self.repo_id}@{self.revision}"


@dataclass(frozen=True, slots=True)
class RepoSnapshot:
    """A repo resolved to one commit with its full file listing (and the card's YAML metadata,
    ``cardData``, when the Hub sent it in the same answer)."""

    ref: RepoRef
    commit: str
    files: tuple[RepoFile, ...]
    card: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        commit_sha(self.commit, where=f"the snapshot of {self.ref}")  # it names snapshots/<commit>

    def file(self, path: str) -> RepoFile | None:
        for f in self.files:
            if f.path == path:
                return f
        return None

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)
