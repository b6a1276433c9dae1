"""Push orchestration: validate -> card -> hash -> scan -> diff (``prepare_push``), then ONE commit (``push``).

``prepare_push`` performs no network writes: it reads the remote tree (one snapshot call) so the
plan lists exactly the added / changed / deleted files and the bytes to send.  ``push`` refuses a
plan with secret findings (:class:`SecretsFoundError`, before any network write), creates the repo
(and branch) when missing, and commits only the differences with ``parent_commit`` = the commit the
plan was made against, so a branch that moved in between fails cleanly with :class:`ConflictError`.
Nothing changed -> no commit at all.

Two caches under ``settings.batuta_dir`` make an unchanged re-publish cheap: digests by
(dev, inode, size, mtime_ns) (``hash-cache.json``) and scan results by content digest
(``scan-cache.json``).  ``PushRequest.rehash`` (``--rehash``) re-reads every file.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from batuta_sync._fmt import git_blob_sha1, human_bytes, plural
from batuta_sync._fs import atomic_write
from batuta_sync.errors import NotFoundError, SecretsFoundError, UsageError, ValidationError
from batuta_sync.publish.card import CARD_FILE, SPACE_SDKS, card_for_push
from batuta_sync.publish.manifest import (
    FileHash,
    HashCache,
    ManifestDiff,
    RemoteManifest,
    UploadManifest,
    hash_cache_path,
    iter_files,
)
from batuta_sync.publish.secrets import (
    INCOMPLETE_RULE,
    SCANNER_VERSION,
    Allowlist,
    Finding,
    filter_allowed,
    scan_bytes,
    scan_file,
)
from batuta_sync.publish.validate import validate_folder
from batuta_sync.settings import Settings
from batuta_sync.types import HfAssetType, RepoRef, RepoSnapshot, check_repo_id

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PushRequest:
    path: Path
    repo_id: str
    repo_type: HfAssetType = HfAssetType.MODEL
    revision: str = "main"
    format: str | None = None
    private: bool = False
    message: str | None = None
    delete: bool = False
    sdk: str | None = None
    card: Mapping[str, Any] = field(default_factory=dict)
    allow_unsafe: bool = False
    parent_commit: str | None = None
    allow_secrets: tuple[str, ...] = ()  # fingerprints (prefixes of ≥ 16 hex digits) to suppress
    rehash: bool = False  # ignore the hash cache (re-verify every file)
    # Publish exactly these paths under ``path`` (a locked selection, e.g. ``publish.from: models.X``
    # whose snapshot folder is shared with other projects); None = every file of the folder.
    files: tuple[str, ...] | None = None
    force: bool = False  # push a "model" folder that has neither weights nor config.json
    create_pr: bool = False  # open a pull request (refs/pr/N) instead of moving ``revision``
    delete_patterns: tuple[str, ...] = ()  # remote files matching these and absent here are deleted
    # A push is a series of commits of at most this many files / bytes each (the Hub recommends
    # < 100 files per commit); an interrupted series resumes: the next push sends only what is missing.
    max_files_per_commit: int = 100
    max_bytes_per_commit: int = 16 << 30


@dataclass(frozen=True)
class PushPlan:
    adds: tuple[str, ...]
    changes: tuple[str, ...]
    deletes: tuple[str, ...]
    unchanged: tuple[str, ...]
    upload_bytes: int
    card_diff: str
    findings: tuple[Finding, ...]
    remote_commit: str | None
    # details used by push() and for display
    repo_exists: bool = True
    branch_exists: bool = True
    format: str | None = None
    generated: Mapping[str, bytes] = field(default_factory=dict)  # README.md to upload instead of the local one
    sizes: Mapping[str, int] = field(default_factory=dict)
    local_sha256: Mapping[str, str] = field(default_factory=dict)
    suppressed: int = 0
    unsafe: tuple[str, ...] = ()  # pickle-bearing files let through by allow_unsafe
    card_keys_added: tuple[str, ...] = ()  # front-matter keys batuta adds to the user's README.md
    card_generated: bool = False  # README.md is a card batuta generates (there is no local one)

    @property
    def is_noop(self) -> bool:
        return not (self.adds or self.changes or self.deletes) and self.repo_exists and self.branch_exists

    def to_json(self) -> dict[str, Any]:
        return {
            "adds": list(self.adds),
            "changes": list(self.changes),
            "deletes": list(self.deletes),
            "unchanged": list(self.unchanged),
            "upload_bytes": self.upload_bytes,
            "card_diff": self.card_diff,
            "findings": [f.to_json() for f in self.findings],
            "suppressed_findings": self.suppressed,
            "remote_commit": self.remote_commit,
            "repo_exists": self.repo_exists,
            "branch_exists": self.branch_exists,
            "format": self.format,
            "unsafe_allowed": list(self.unsafe),
            "card_keys_added": list(self.card_keys_added),
            "card_generated": self.card_generated,
            "noop": self.is_noop,
        }


@dataclass(frozen=True)
class PushResult:
    commit: str | None
    uploaded: tuple[str, ...]
    bytes_sent: int
    noop: bool
    deleted: tuple[str, ...] = ()
    url: str | None = None
    commits: tuple[str, ...] = ()  # every commit of the series, oldest first (the last is ``commit``)
    pr_url: str | None = None  # create_pr: the pull request opened
    pr_revision: str | None = None  # create_pr: its ref, ``refs/pr/N``

    def commit_url(self, settings: Settings, req: PushRequest) -> str | None:
        """Where the user sees the commit: the Hub's URL, else one built on the configured endpoint."""
        if self.url:
            return self.url
        if not self.commit:
            return None
        return f"{settings.endpoint.rstrip('/')}/{req.repo_type.url_prefix}{req.repo_id}/commit/{self.commit}"

    def to_json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "uploaded": list(self.uploaded),
            "deleted": list(self.deleted),
            "bytes_sent": self.bytes_sent,
            "noop": self.noop,
            "url": self.url,
            "commits": list(self.commits or ((self.commit,) if self.commit and not self.noop else ())),
            "pr_url": self.pr_url,
            "pr_revision": self.pr_revision,
        }


# --------------------------------------------------------------------------------------------------
# caches
# --------------------------------------------------------------------------------------------------


class ScanCache:
    """Findings per (scanner version, repo path, sha256): a file's scan result depends only on these."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, list[dict[str, Any]]] = {}
        self.dirty = False
        if path is not None:
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(doc, dict) and isinstance(doc.get("entries"), dict):
                    self.entries = doc["entries"]
            except (OSError, ValueError):
                pass

    @staticmethod
    def key(rel: str, sha256: str) -> str:
        return f"{SCANNER_VERSION}|{rel}|{sha256}"

    def get(self, rel: str, sha256: str) -> list[Finding] | None:
        hit = self.entries.get(self.key(rel, sha256))
        if not isinstance(hit, list):
            return None
        try:
            return [Finding(**f) for f in hit]
        except TypeError:
            return None

    def put(self, rel: str, sha256: str, findings: list[Finding]) -> None:
        self.entries[self.key(rel, sha256)] = [f.to_json() for f in findings]
        self.dirty = True

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        atomic_write(self.path, json.dumps({"version": 1, "entries": self.entries}, separators=(",", ":")))
        self.dirty = False


def _settings_or_default(settings: Settings | None) -> Settings:
    if settings is not None:
        return settings
    from batuta_sync.settings import resolve_settings

    return resolve_settings()


def local_manifest(path: Path, settings: Settings | None = None, *, verify: bool = False) -> UploadManifest:
    """sha256 + git sha1 per file under ``path`` (exclusions applied), hash cache under settings.batuta_dir."""
    settings = _settings_or_default(settings)
    cache = HashCache(hash_cache_path(settings.batuta_dir))
    files = {rel: cache.get(path / rel, verify=verify) for rel in iter_files(path, (settings.hub_cache,))}
    cache.save()
    return UploadManifest(files)


def _hash_bytes(data: bytes) -> FileHash:
    return FileHash(len(data), hashlib.sha256(data).hexdigest(), git_blob_sha1(data))


# --------------------------------------------------------------------------------------------------
# prepare / push
# --------------------------------------------------------------------------------------------------


def _check_request(req: PushRequest) -> Path:
    check_repo_id(req.repo_id)
    root = Path(req.path).expanduser()
    if not root.is_dir():
        raise UsageError(f"{req.path} is not a directory.", hint="Pass the folder to publish, e.g. ./my-model.")
    if req.repo_type is HfAssetType.SPACE:
        if req.sdk is None:
            raise UsageError("Pushing a Space needs --sdk.", hint=f"Use --sdk with one of: {', '.join(SPACE_SDKS)}.")
        if req.sdk not in SPACE_SDKS:
            raise UsageError(f"Unknown Space SDK {req.sdk!r}.", hint=f"Use one of: {', '.join(SPACE_SDKS)}.")
    if not req.revision or req.revision.startswith("/") or ".." in req.revision:
        raise UsageError(f"{req.revision!r} is not a branch name.", hint="Use e.g. --revision main.")
    return root


def _selected(root: Path, req: PushRequest, found: list[str]) -> list[str]:
    """The files to publish: all of ``found``, or exactly ``req.files`` (each must be there)."""
    if req.files is None:
        return found
    present = set(found)
    missing = sorted(set(req.files) - present)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ValidationError(
            f"{len(missing)} file(s) of the selection to publish are missing from {root}: {shown}.",
            hint="Run `batuta apply` (it pulls or converts them first), or `batuta plan` to see why.",
        )
    return sorted(set(req.files))


def _remote_snapshot(settings: Settings, ref: RepoRef) -> tuple[RepoSnapshot | None, bool, bool]:
    """(snapshot or None, repo exists, branch exists)."""
    from batuta_sync.hub.client import HubApi

    client = HubApi(settings)
    try:
        try:
            return client.snapshot(ref), True, True
        except NotFoundError as exc:
            if exc.code != "revision-not-found":
                return None, False, False
        # A new branch starts from the default branch: diff against it (and create the branch there).
        if ref.revision != "main":
            try:
                return client.snapshot(RepoRef(ref.repo_id, ref.repo_type, "main")), True, False
            except NotFoundError:
                pass
        return None, True, False
    finally:
        client.close()


_MAX_CARD = 1 << 20


def _remote_card_is_ours(settings: Settings, snap: RepoSnapshot) -> bool:
    """Whether the Hub's README.md is a card batuta generated and nobody edited (one small GET)."""
    from batuta_sync.hub.client import HubApi
    from batuta_sync.publish.card import is_untouched_stamp

    entry = next((f for f in snap.files if f.path == CARD_FILE), None)
    if entry is None or entry.size > _MAX_CARD:
        return False
    ref = snap.ref
    with HubApi(settings) as client:
        resp = client.http.request("GET", f"/{ref.repo_type.url_prefix}{ref.repo_id}/resolve/{snap.commit}/{CARD_FILE}")
    return is_untouched_stamp(resp.content[:_MAX_CARD].decode("utf-8", errors="replace"))


def prepare_push(settings: Settings, req: PushRequest, *, progress: Progress | None = None) -> PushPlan:
    """Validate, build the card, hash, scan and diff against the remote tree.  No network writes."""
    say = progress or (lambda _m: None)
    root = _check_request(req)
    files = _selected(root, req, list(iter_files(root, (settings.hub_cache,))))
    say(f"validating {len(files)} file(s)")
    report = validate_folder(
        root, files, repo_type=req.repo_type.value, fmt=req.format, allow_unsafe=req.allow_unsafe, force=req.force
    )
    say("reading the remote tree")
    ref = RepoRef(req.repo_id, req.repo_type, req.revision)
    snap, repo_exists, branch_exists = _remote_snapshot(settings, ref)
    remote = RemoteManifest.from_snapshot(snap)
    # A card that exists only on the Hub (e.g. edited in the web UI) is kept: not replaced, not deleted;
    # unless it is exactly a card batuta generated (its stamp matches): then it is regenerated, so a
    # re-conversion's card names the new source commit.
    remote_card_only = (
        CARD_FILE not in files
        and CARD_FILE in remote.files
        and not (snap is not None and _remote_card_is_ours(settings, snap))
    )

    card = card_for_push(
        root,
        files,
        repo_type=req.repo_type.value,
        repo_id=req.repo_id,
        fmt=report.format,
        config=report.config,
        overrides=req.card,
        sdk=req.sdk,
        gguf_metadata=next(iter(report.gguf.values())).metadata if report.gguf else None,
        endpoint=settings.endpoint,
    )
    generated: dict[str, bytes] = {}
    if card.content is not None and not remote_card_only:
        generated[CARD_FILE] = card.content
        if CARD_FILE not in files:
            files.append(CARD_FILE)
            files.sort()

    say("hashing")
    hcache = HashCache(hash_cache_path(settings.batuta_dir))
    hashes: dict[str, FileHash] = {}
    for rel in files:
        hashes[rel] = _hash_bytes(generated[rel]) if rel in generated else hcache.get(root / rel, verify=req.rehash)
    hcache.save()
    manifest = UploadManifest(hashes)

    say("scanning for secrets")
    scache = ScanCache(settings.batuta_dir / "scan-cache.json")
    findings: list[Finding] = []
    for rel in files:
        h = hashes[rel]
        cached = None if req.rehash else scache.get(rel, h.sha256)
        if cached is None:
            cached = scan_bytes(generated[rel], rel) if rel in generated else scan_file(root / rel, rel)
            scache.put(rel, h.sha256, cached)
        findings.extend(cached)
    scache.save()
    allow = Allowlist.load(root, req.allow_secrets)
    kept = filter_allowed(findings, allow)

    diff: ManifestDiff = manifest.diff(remote, delete=req.delete, delete_patterns=req.delete_patterns)
    if remote_card_only:
        diff = replace(diff, deletes=tuple(p for p in diff.deletes if p != CARD_FILE))
    upload_bytes = sum(hashes[p].size for p in diff.to_upload)
    return PushPlan(
        adds=diff.adds,
        changes=diff.changes,
        deletes=diff.deletes,
        unchanged=diff.unchanged,
        upload_bytes=upload_bytes,
        card_diff="" if remote_card_only else card.diff,
        card_keys_added=() if remote_card_only else card.keys_added,
        card_generated=card.generated and not remote_card_only and CARD_FILE in generated,
        findings=tuple(kept),
        remote_commit=remote.commit,
        repo_exists=repo_exists,
        branch_exists=branch_exists,
        format=report.format,
        generated=generated,
        sizes={p: h.size for p, h in hashes.items()},
        local_sha256={p: h.sha256 for p, h in hashes.items()},
        suppressed=len(findings) - len(kept),
        unsafe=report.unsafe,
    )


def secrets_error(findings: tuple[Finding, ...] | list[Finding]) -> SecretsFoundError:
    shown = "\n".join(f"  - {f}" for f in findings[:50])
    more = f"\n  … and {len(findings) - 50} more" if len(findings) > 50 else ""
    unscanned = sum(1 for f in findings if f.rule == INCOMPLETE_RULE)
    what = f"{len(findings) - unscanned} credential(s)"
    if unscanned:
        what += f" and {unscanned} place(s) it could not scan fully"
    return SecretsFoundError(
        f"The secret scan found {what} in the files to push; nothing was sent:\n{shown}{more}",
        hint="Remove the secrets (and rotate them). For a false positive, or content you checked by hand "
        "that could not be scanned, add its fingerprint to .batuta-secrets-allow in the folder "
        "(or pass --allow-secret FINGERPRINT).",
    )


def _default_message(plan: PushPlan) -> str:
    parts = []
    if plan.adds:
        parts.append(f"add {len(plan.adds)}")
    if plan.changes:
        parts.append(f"update {len(plan.changes)}")
    if plan.deletes:
        parts.append(f"delete {len(plan.deletes)}")
    return "batuta push: " + (", ".join(parts) or "create repo") + " file(s)"


def push(
    settings: Settings,
    req: PushRequest,
    *,
    plan: PushPlan | None = None,
    progress: Progress | None = None,
    sink: Any = None,
    abort: threading.Event | None = None,
) -> PushResult:
    """Execute a push (``plan`` from :func:`prepare_push`, computed now when omitted).

    ``sink`` (a :class:`~batuta_sync.hub.download.ProgressSink`, the pull display) is fed the bytes
    sent; once ``abort`` is set the upload stops (KeyboardInterrupt) and no commit is made."""
    say = progress or (lambda _m: None)
    if plan is None:
        plan = prepare_push(settings, req, progress=progress)
    if plan.findings:
        raise secrets_error(plan.findings)
    if plan.is_noop:
        say("nothing changed; no commit")
        return PushResult(plan.remote_commit, (), 0, True)
    root = _check_request(req)
    uploads = tuple(sorted(plan.adds + plan.changes))
    _recheck(root, plan, uploads, settings)
    try:
        return _write(settings, req, plan, root, uploads, say, progress, sink=sink, abort=abort)
    finally:  # whatever reached the Hub, what batuta cached about the repo is out of date
        from batuta_sync.hub.metacache import MetadataCache

        MetadataCache(settings).forget_repo(req.repo_type.api_plural, req.repo_id)


def _write(
    settings: Settings,
    req: PushRequest,
    plan: PushPlan,
    root: Path,
    uploads: tuple[str, ...],
    say: Progress,
    progress: Progress | None,
    *,
    sink: Any = None,
    abort: threading.Event | None = None,
) -> PushResult:
    """The Hub writes of a push: create the repo/branch if needed, then one commit."""
    from batuta_sync.hub import upload

    if not plan.repo_exists:
        say(f"creating {req.repo_type.value} repo {req.repo_id}")
        upload.ensure_repo(settings, req.repo_id, req.repo_type, private=req.private, sdk=req.sdk)
    if not plan.branch_exists and req.revision != "main":
        say(f"creating branch {req.revision}")
        upload.ensure_branch(settings, req.repo_id, req.repo_type, req.revision, start=plan.remote_commit)
    if not (uploads or plan.deletes):
        return PushResult(plan.remote_commit, (), 0, True)
    parent = req.parent_commit or plan.remote_commit
    batches = commit_batches(uploads, plan.sizes, max_files=req.max_files_per_commit,
                             max_bytes=req.max_bytes_per_commit, last=tuple(plan.generated))
    series = f" in {len(batches)} commits" if len(batches) > 1 else ""
    say(f"uploading {plural(len(uploads), 'file')}, {human_bytes(plan.upload_bytes)}{series}")
    transfer = upload.Transfer(sink, abort)
    transfer.open(len(uploads), sum(plan.sizes.get(p, 0) for p in uploads))
    message = req.message or _default_message(plan)
    revision, commits = req.revision, []
    result: upload.CommitResult | None = None
    pr: upload.CommitResult | None = None
    try:
        for i, batch in enumerate(batches):
            last = i == len(batches) - 1
            result = upload.commit_files(
                settings,
                req.repo_id,
                req.repo_type,
                revision,
                root=root,
                uploads=batch,
                generated={k: v for k, v in plan.generated.items() if k in batch},
                deletes=plan.deletes if last else (),
                message=message if len(batches) == 1 else f"{message} (part {i + 1}/{len(batches)})",
                parent_commit=parent,
                progress=progress,
                transfer=transfer,
                create_pr=req.create_pr and i == 0,
                sha256={p: plan.local_sha256[p] for p in batch if p in plan.local_sha256 and p not in plan.generated},
            )
            if req.create_pr and i == 0:
                pr = result
                revision = result.pr_revision or revision
            parent = result.commit
            commits.append(result.commit)
    finally:
        transfer.close()
    assert result is not None
    return PushResult(result.commit, uploads, plan.upload_bytes, False, plan.deletes, result.url, tuple(commits),
                      pr.pr_url if pr else None, pr.pr_revision if pr else None)


def commit_batches(
    paths: Sequence[str], sizes: Mapping[str, int], *, max_files: int, max_bytes: int, last: Sequence[str] = ()
) -> list[tuple[str, ...]]:
    """Split ``paths`` into commits of at most ``max_files`` files and ``max_bytes`` bytes (a file
    larger than ``max_bytes`` gets a commit of its own); ``last`` (the generated card) goes in the
    final commit so it describes the complete upload.  At least one (possibly empty) batch."""
    if max_files < 1 or max_bytes < 1:
        raise UsageError("The files and bytes per commit must be at least 1.", hint="Use e.g. --max-files-per-commit 100.")
    tail = [p for p in paths if p in set(last)]
    batches: list[list[str]] = [[]]
    held = 0
    for p in [p for p in paths if p not in set(last)] + tail:
        size = sizes.get(p, 0)
        cur = batches[-1]
        if cur and (len(cur) >= max_files or held + size > max_bytes):
            batches.append([])
            held = 0
        batches[-1].append(p)
        held += size
    return [tuple(b) for b in batches]


def _recheck(root: Path, plan: PushPlan, uploads: tuple[str, ...], settings: Settings) -> None:
    """Files must still be what the plan scanned: re-stat (hash cache) the ones about to be sent."""
    from batuta_sync.errors import StalePlanError

    if not plan.local_sha256:
        return
    cache = HashCache(hash_cache_path(settings.batuta_dir))
    for rel in uploads:
        if rel in plan.generated:
            continue
        want = plan.local_sha256.get(rel)
        try:
            got = cache.get(root / rel).sha256
        except OSError:
            got = None
        if want is not None and got != want:
            raise StalePlanError(
                f"{rel} changed after the push was planned (scanned and validated content differs).",
                hint="Run the push again so the new content is validated and scanned.",
            )
    cache.save()
