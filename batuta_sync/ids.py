"""One validator per kind of identifier that crosses a trust boundary (stdlib only).

Every value that comes from the Hub (JSON bodies, ``ETag`` / ``X-Repo-Commit`` /
``X-Linked-Etag`` headers), from ``hf.lock``, a saved plan, ``state.json``, the journal
or a server request is checked here *where it enters*, before it can become part of a
file-system path, a URL or a cache key.  A value that does not have its kind's shape is
refused with :class:`InvalidIdentifierError` (exit 11, ``integrity``); callers that read
a user-edited file (lock, plan, state) may re-raise it as their own config error.

The kinds:

* :func:`git_sha1` -- a commit sha or git blob id: exactly 40 lowercase hex digits.
* :func:`sha256_hex` -- an LFS oid / content digest: exactly 64 lowercase hex digits.
* :func:`blob_id` -- a cache blob name (what ``blobs/<name>`` is called): either of the two.
* :func:`etag_from_header` -- an HTTP ``ETag`` / ``X-Linked-Etag`` header value
  (``"…"``, ``W/"…"`` or bare) reduced to the blob name it carries.
* :func:`revision` -- a branch, tag or ``refs/pr/N`` name (git's ref-name rules, kept
  strict enough to be a relative path of plain segments) or a commit sha.
* :func:`repo_id` -- ``name`` or ``namespace/name`` with the Hub's characters.
* :func:`repo_path` -- a file path inside a repo (no ``..``, no absolute, no ``.git``
  component, no control characters, Windows-reserved names refused everywhere).

This module is the single home of these rules; ``safety.path_problem``,
``types.is_valid_repo_id`` and the server use it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from batuta_sync.errors import IntegrityError

SHA1_RE = re.compile(r"\A[0-9a-f]{40}\Z")  # \Z: "$" would accept a trailing newline
SHA256_RE = re.compile(r"\A[0-9a-f]{64}\Z")
_REPO_ID_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?\Z")
# One ref-name segment: no control characters, space, ~ ^ : ? * [ \ (git check-ref-format),
# and nothing that would make it a path trick.
_REF_SEGMENT_RE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9._+@=,-]{0,199}\Z")
_DRIVE = re.compile(r"^[A-Za-z]:")
_WIN_RESERVED = re.compile(r"\A(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?\Z", re.IGNORECASE | re.DOTALL)
MAX_REVISION_LEN = 255
MAX_REPO_PATH_LEN = 4096


class InvalidIdentifierError(IntegrityError):
    """An identifier (sha, oid, ETag, revision, repo id, repo path) without its kind's shape."""

    code = "invalid-identifier"
    exit_name = "integrity"
    default_hint = (
        "The value came from the Hub, hf.lock, a plan or batuta's state and does not have the "
        "expected shape; nothing was read or written with it. If you edited a file by hand, "
        "restore it (e.g. `git checkout hf.lock`); otherwise report the server's answer."
    )


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _refuse(kind: str, value: object, where: str) -> InvalidIdentifierError:
    src = f" from {where}" if where else ""
    return InvalidIdentifierError(f"Refusing {kind} {_show(value)}{src}: it is not a valid {kind}.")


def is_git_sha1(value: object) -> bool:
    return isinstance(value, str) and SHA1_RE.match(value) is not None


def is_sha256(value: object) -> bool:
    return isinstance(value, str) and SHA256_RE.match(value) is not None


def is_blob_id(value: object) -> bool:
    return is_git_sha1(value) or is_sha256(value)


def git_sha1(value: object, *, where: str = "", kind: str = "git sha1") -> str:
    """``value`` if it is 40 lowercase hex digits (a commit sha or git blob id)."""
    if not is_git_sha1(value):
        raise _refuse(kind, value, where)
    return value  # type: ignore[return-value]


def commit_sha(value: object, *, where: str = "") -> str:
    return git_sha1(value, where=where, kind="commit sha")


def sha256_hex(value: object, *, where: str = "", kind: str = "sha256 digest") -> str:
    """``value`` if it is 64 lowercase hex digits (an LFS oid)."""
    if not is_sha256(value):
        raise _refuse(kind, value, where)
    return value  # type: ignore[return-value]


def blob_id(value: object, *, where: str = "") -> str:
    """A cache blob name: a git sha1 or a sha256, nothing else (it becomes ``blobs/<value>``)."""
    if not is_blob_id(value):
        raise _refuse("blob id", value, where)
    return value  # type: ignore[return-value]


def etag_from_header(value: object, *, where: str = "ETag header") -> str:
    """The blob name an ``ETag`` / ``X-Linked-Etag`` header carries (``W/"x"``, ``"x"`` or ``x``)."""
    if not isinstance(value, str):
        raise _refuse("ETag", value, where)
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if not is_blob_id(text):
        raise _refuse("ETag", value, where)
    return text


def revision_problem(value: object) -> str | None:
    """Why ``value`` is not an acceptable revision (branch, tag, ``refs/pr/N``, commit), or None."""
    if not isinstance(value, str) or not value:
        return "is empty"
    if len(value) > MAX_REVISION_LEN:
        return f"is longer than {MAX_REVISION_LEN} characters"
    if is_git_sha1(value):
        return None
    if value.startswith("/") or value.endswith("/") or value.endswith(".lock"):
        return "starts or ends with '/' or ends with '.lock'"
    for seg in value.split("/"):
        if not seg or seg in (".", ".."):
            return "has an empty, '.' or '..' segment"
        if not _REF_SEGMENT_RE.match(seg) or ".." in seg or seg.endswith("."):
            return f"has a segment {_show(seg)} with characters a revision cannot have"
        if seg.lower() == ".git" or _WIN_RESERVED.match(seg):
            return f"has a reserved segment {_show(seg)}"
    return None


def revision(value: object, *, where: str = "") -> str:
    """A branch / tag / ``refs/pr/N`` name or a commit sha (safe as a relative path)."""
    problem = revision_problem(value)
    if problem:
        src = f" from {where}" if where else ""
        raise InvalidIdentifierError(f"Refusing the revision {_show(value)}{src}: it {problem}.")
    return value  # type: ignore[return-value]


def is_repo_id(value: object) -> bool:
    """``name`` or ``namespace/name`` with the Hub's allowed characters (no ``--``, no ``..``)."""
    return (
        isinstance(value, str)
        and _REPO_ID_RE.match(value) is not None
        and "--" not in value
        and ".." not in value
    )


def repo_id(value: object, *, where: str = "") -> str:
    if not is_repo_id(value):
        raise _refuse("repo id", value, where)
    return value  # type: ignore[return-value]


def repo_path_problem(path: object) -> str | None:
    """Why ``path`` is not a safe relative repo path, or None (PAR-4; Windows rules everywhere)."""
    if not isinstance(path, str) or not path:
        return "is an empty path"
    if len(path) > MAX_REPO_PATH_LEN:
        return f"is longer than {MAX_REPO_PATH_LEN} characters"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return "contains a control character"
    if "\\" in path:
        return "contains a backslash"
    if path.startswith("/"):
        return "is an absolute path"
    if _DRIVE.match(path):
        return "starts with a drive letter"
    if ":" in path:
        return "contains ':' (drive letter or NTFS stream)"
    parts = path.split("/")
    for i, part in enumerate(parts):
        if part == "":
            return "has an empty path segment"
        if part in (".", ".."):
            return f"has a '{part}' segment"
        if part.lower() in (".git", ".cache") and i < len(parts) - 1:
            return f"is inside a '{part}/' folder"
        if part.lower() == ".git":
            return "is named '.git'"
        if _WIN_RESERVED.match(part):
            return f"uses the reserved device name {part!r}"
        if part.endswith((".", " ")):
            return "has a segment ending with a dot or space"
        if len(part.encode("utf-8")) > 255:
            return "has a segment longer than 255 bytes"
    return None


def repo_path(value: object, *, where: str = "") -> str:
    problem = repo_path_problem(value)
    if problem:
        src = f" from {where}" if where else ""
        raise InvalidIdentifierError(f"Refusing the repo file path {_show(value)}{src}: it {problem}.")
    return value  # type: ignore[return-value]


def matches_patterns(path: str, patterns: Sequence[str]) -> bool:
    """Whether the repo path matches one of ``patterns`` (``fnmatch``, case-sensitive; ``dir/`` means
    everything under it): the one include/exclude/delete matcher (pull selection, push deletes)."""
    import fnmatch

    for p in patterns:
        if p.endswith("/"):
            p += "*"
        if fnmatch.fnmatchcase(path, p):
            return True
    return False
