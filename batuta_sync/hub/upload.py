"""Hub I/O of pushing: create the repo/branch and make ONE commit (through ``HfApi.create_commit``).

``create_commit`` does the Hub's upload protocol: ``preupload`` (regular vs LFS), the LFS batch /
PUT / verify (or Xet), then the NDJSON commit carrying ``parentCommit`` so a branch that moved since
the plan is refused (HTTP 412 -> :class:`~batuta_sync.errors.ConflictError`).

Xet or classic LFS?  huggingface_hub uploads through Xet whenever ``hf_xet`` is installed, and a
server that does not speak Xet cannot make it fall back.  So the choice is made here, per commit,
by what the server offers, with ``BATUTA_UPLOAD_PROTOCOL`` as an override:

* ``auto`` (default): Xet when ``hf_xet`` is installed **and** the server hands out a Xet write
  token for the repo (``GET /api/{type}s/{repo}/xet-write-token/{rev}`` answers 200 with an
  ``X-Xet-Cas-Url``, as huggingface.co and ``batuta hub serve`` do); classic LFS otherwise;
  ``HF_HUB_DISABLE_XET=1`` (huggingface_hub's own switch) makes ``auto`` mean classic LFS;
* ``lfs`` / ``xet``: force one.

It is applied by setting ``huggingface_hub.constants.HF_HUB_DISABLE_XET`` for the duration of the
commit (huggingface_hub reads it at call time), under a lock, and restoring it afterwards.

Retries (security.md RL-2, RL-6): each call runs in the one retry loop (:mod:`batuta_sync.hub.retry`:
1, 2, 4, 8, 16 s or ``BATUTA_RETRY_BACKOFF``; server hints are a minimum; the endpoint's shared
rate-limit gate), failures classified by type and status (``HfHubHTTPError.response.status_code``,
``httpx2.ConnectError``), never by exception names; ``HfApi`` sends batuta's one User-Agent.
Repo/branch creation (``exist_ok``), ``validate-yaml``, ``preupload`` and LFS transfers are
idempotent and retried on 408/429/5xx and on connection failures.  The commit POST itself is
retried only when the Hub cannot have processed it: 429 and 503 (``parentCommit`` also guards a
double commit); a 500/502/504 after it was sent is reported, not replayed.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from batuta_sync.errors import BatutaError, ConflictError, HubError, NetworkError, UsageError
from batuta_sync.settings import Settings
from batuta_sync.types import HfAssetType

PROTOCOLS = ("auto", "lfs", "xet")
_XET_LOCK = threading.Lock()


def server_offers_xet(settings: Settings, repo_id: str, repo_type: HfAssetType, revision: str) -> bool:
    """Whether ``settings.endpoint`` hands out Xet write tokens for this repo (one GET; any failure,
    refusal or answer without a CAS URL means no: the commit then goes through classic LFS)."""
    from urllib.parse import quote

    from batuta_sync.hub._http import HubHttp

    path = f"/api/{repo_type.value}s/{repo_id}/xet-write-token/{quote(revision, safe='')}"
    try:
        with HubHttp(settings) as http:
            resp = http.request("GET", path, retry=False, allow=(400, 401, 403, 404, 405, 501))
    except BatutaError:
        return False
    return resp.status_code == 200 and bool(resp.headers.get("X-Xet-Cas-Url"))


def upload_protocol(
    settings: Settings, env: Mapping[str, str] | None = None, *, offers_xet: Callable[[], bool] | None = None
) -> str:
    """``lfs`` or ``xet`` for pushes to ``settings.endpoint`` (see the module docstring);
    ``offers_xet`` asks the server (without it, ``auto`` means classic LFS)."""
    env = os.environ if env is None else env
    choice = (env.get("BATUTA_UPLOAD_PROTOCOL") or "auto").strip().lower()
    if choice not in PROTOCOLS:
        raise UsageError(
            f"BATUTA_UPLOAD_PROTOCOL={choice!r} is not one of {', '.join(PROTOCOLS)}.",
            hint="Unset it (auto) or set it to lfs or xet.",
        )
    if choice != "auto":
        return choice
    if (env.get("HF_HUB_DISABLE_XET") or "").strip().lower() in ("1", "true", "yes", "on"):
        return "lfs"  # the user turned Xet off for huggingface_hub: so for us too
    try:
        import hf_xet  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return "lfs"
    return "xet" if offers_xet is not None and offers_xet() else "lfs"


class Transfer:
    """batuta's view of the bytes ``create_commit`` sends: fed to a progress sink (the same
    :class:`~batuta_sync.hub.download.ProgressSink` pulls use, so push shows the same display), and
    stopped once ``abort`` is set (a second Ctrl-C in apply).

    huggingface_hub has no byte callback of its own, only tqdm bars; so its bars are always off
    and the bytes are observed where they leave: classic LFS reads each file through
    ``CommitOperationAdd.as_file(with_tqdm=True)``, which :func:`_add_op` overrides with a counting
    reader (the high-water mark of the file position, so a retried part is not counted twice);
    Xet reports per-item progress to the reporter class :func:`_xet_mode` installs.  Small
    "regular" files travel inside the commit payload and are counted when the commit lands.
    """

    def __init__(self, sink: Any = None, abort: threading.Event | None = None, *, root: Path | None = None) -> None:
        self.sink = sink
        self.abort = abort
        self.root = root
        self.counted: dict[str, int] = {}
        self._lock = threading.Lock()
        self._open = False

    def open(self, files: int, total_bytes: int) -> bool:
        """Start the display for ``files`` / ``total_bytes`` unless it is already open (a series of
        commits opens it once for the whole push); True when this call opened it."""
        if self._open:
            return False
        self._open = True
        if self.sink is not None:
            self.sink.start(files, total_bytes)
        return True

    def close(self) -> None:
        if self._open:
            self._open = False
            if self.sink is not None:
                self.sink.close()

    def check(self) -> None:
        if self.abort is not None and self.abort.is_set():
            raise KeyboardInterrupt

    def name(self, item: str) -> str:
        """A repo path for what huggingface_hub names by its local path (Xet items)."""
        if self.root is not None:
            try:
                return Path(item).resolve().relative_to(self.root.resolve()).as_posix()
            except (ValueError, OSError):
                pass
        return item

    def progress(self, path: str, size: int, done: int) -> None:
        """``path`` has ``done`` of ``size`` bytes sent (monotone; a restart never counts twice)."""
        self.check()
        with self._lock:
            prev = self.counted.get(path)
            if prev is None:
                self.counted[path] = prev = 0
                if self.sink is not None:
                    self.sink.file_start(path, size, 0)
            if done > prev:
                self.counted[path] = done
                if self.sink is not None:
                    self.sink.advance(path, done - prev)
            finished = done >= size > prev
        if finished and self.sink is not None:
            self.sink.file_done(path, cached=False)

    def settle(self, sizes: Mapping[str, int]) -> None:
        """The commit landed: whatever was not seen leaving (regular files in the payload) is sent."""
        for path, size in sizes.items():
            if self.counted.get(path, -1) < size:
                self.progress(path, size, size)


@functools.cache
def _add_op() -> Any:
    """``CommitOperationAdd`` whose LFS reads report to its :class:`Transfer` (see there)."""
    from huggingface_hub import CommitOperationAdd

    class CountedAdd(CommitOperationAdd):
        transfer: Transfer | None = None

        @contextmanager
        def as_file(self, with_tqdm: bool = False) -> Iterator[Any]:
            transfer = self.transfer
            if not with_tqdm or transfer is None or not isinstance(self.path_or_fileobj, (str, Path)):
                with super().as_file(with_tqdm=False) as f:
                    yield f
                return
            path, size = self.path_in_repo, os.path.getsize(self.path_or_fileobj)
            with open(self.path_or_fileobj, "rb") as f:
                read = f.read

                def counted(n: int | None = -1) -> bytes:
                    transfer.check()
                    data = read(n)
                    transfer.progress(path, size, f.tell())
                    return data

                f.read = counted  # type: ignore[method-assign]
                yield f

    return CountedAdd


def _xet_reporter(transfer: Transfer) -> type:
    """A stand-in for huggingface_hub's ``XetUploadProgressReporter`` that feeds ``transfer``."""

    class Reporter:
        def __init__(self, *_args: Any, **_kwargs: Any) -> None:
            pass

        def update_progress(self, _group: Any, items: Mapping[str, Any]) -> None:
            for item in items.values():
                total = int(getattr(item, "total_bytes", 0) or 0)
                done = int(getattr(item, "bytes_completed", 0) or 0)
                if total:
                    try:
                        transfer.progress(transfer.name(str(item.item_name)), total, done)
                    except KeyboardInterrupt:
                        pass  # raised in hf_xet's thread it would be lost; _abort_watcher stops it

        def reset_for_next_commit(self) -> None:
            pass

        def close(self) -> None:
            pass

    return Reporter


@contextmanager
def _abort_watcher(transfer: Transfer, protocol: str) -> Iterator[None]:
    """Xet transfers run in hf_xet's threads, which never read our files through Python: once
    ``abort`` is set, cancel the session (huggingface_hub's own Ctrl-C path)."""
    if transfer.abort is None or protocol != "xet":
        yield
        return
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.1):
            if transfer.abort is not None and transfer.abort.is_set():
                from huggingface_hub.utils._xet import abort_xet_session

                abort_xet_session()  # type: ignore[no-untyped-call]
                return

    thread = threading.Thread(target=watch, name="batuta-push-abort", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


@contextmanager
def _xet_mode(protocol: str, transfer: Transfer) -> Iterator[None]:
    """Choose the protocol for one commit; huggingface_hub's tqdm bars stay off (see :class:`Transfer`)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import _xet_progress_reporting as xet_reporting

    hf_tqdm = importlib.import_module("huggingface_hub.utils.tqdm")  # the module (the package re-exports a class)
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    with _XET_LOCK:
        old = constants.HF_HUB_DISABLE_XET
        old_bars = are_progress_bars_disabled()
        old_reporter = xet_reporting.XetUploadProgressReporter
        constants.HF_HUB_DISABLE_XET = protocol != "xet"
        # huggingface_hub reports Xet progress only with its bars on, and the only bar of a Xet
        # commit is this reporter, replaced here.  For LFS its bars are off and the reads counted.
        if protocol == "xet" and transfer.sink is not None and not hf_tqdm.HF_HUB_DISABLE_PROGRESS_BARS:
            xet_reporting.XetUploadProgressReporter = _xet_reporter(transfer)  # type: ignore[assignment,misc]
            enable_progress_bars()  # (HF_HUB_DISABLE_PROGRESS_BARS=1 would make it warn: then no Xet bytes)
        else:
            disable_progress_bars()
        try:
            yield
        finally:
            constants.HF_HUB_DISABLE_XET = old
            xet_reporting.XetUploadProgressReporter = old_reporter  # type: ignore[misc]
            if old_bars:
                disable_progress_bars()
            else:
                enable_progress_bars()


def _api(settings: Settings) -> Any:
    from huggingface_hub import HfApi

    from batuta_sync.hub._http import limit_huggingface_hub
    from batuta_sync.hub.auth import identity_headers
    from batuta_sync.hub.limits import NetLimits

    limit_huggingface_hub(NetLimits.from_settings(settings))  # its shared client has no timeouts
    return HfApi(
        endpoint=settings.endpoint,
        token=settings.token_value() or False,
        headers=identity_headers(),  # batuta's one User-Agent (hub.auth), not huggingface_hub's own
    )


def _map_error(exc: BaseException, settings: Settings, what: str) -> BatutaError:
    """huggingface_hub / transport exceptions -> BatutaErrors (the shared mapping in errors_map)."""
    from huggingface_hub.errors import HfHubHTTPError

    from batuta_sync.hub.errors_map import error_for

    if isinstance(exc, BatutaError):
        return exc
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        resp = exc.response
        try:
            body = resp.text
        except Exception:
            body = ""
        url = str(resp.request.url) if resp.request is not None else ""
        method = resp.request.method if resp.request is not None else "POST"
        err = error_for(
            resp.status_code,
            {k.lower(): v for k, v in resp.headers.items()},
            urlsplit(url).path,
            body,
            method=method,
            has_token=settings.token is not None,
            endpoint=settings.endpoint,
        )
        if resp.status_code == 412:
            return ConflictError(
                f"The branch moved while {what}: the Hub refused the commit because its parent is no longer "
                "the branch head (412). Nothing was committed.",
                hint="Run the push again (it re-reads the remote tree), or re-run `batuta plan` and apply the new plan.",
            )
        return err
    name = type(exc).__name__
    import httpx2

    if isinstance(exc, (httpx2.TransportError, OSError)):  # no answer: refused, timed out, dropped
        return NetworkError(f"Could not reach {settings.endpoint} while {what}: {name}: {exc}")
    return HubError(f"The upload failed while {what}: {name}: {exc}", hint="Rerun with --debug for details.")


_COMMIT_POST = re.compile(r"/api/(?:models|datasets|spaces)/[^?]+/commit/")
_UNPROCESSED = frozenset({429, 503})  # the Hub did not process the request: safe to send again
Sleep = Callable[[float], None]


def _refused(exc: BaseException) -> bool:
    """The connection never got through (by type: httpx2's connect errors, a refused socket)."""
    import httpx2

    return isinstance(exc, (httpx2.ConnectError, httpx2.ConnectTimeout, ConnectionRefusedError))


def _failed_request(exc: BaseException) -> tuple[int | None, dict[str, str], str]:
    """(status, lower-cased headers, URL path) of the HTTP answer behind ``exc`` (None: no answer)."""
    from huggingface_hub.errors import HfHubHTTPError

    resp = exc.response if isinstance(exc, HfHubHTTPError) else None
    if resp is None:
        return None, {}, ""
    headers = {k.lower(): v for k, v in resp.headers.items()}
    return int(resp.status_code), headers, urlsplit(str(resp.request.url)).path  # HfHubHTTPError needs its request


def _may_retry(exc: BaseException, status: int | None, path: str) -> bool:
    from batuta_sync.hub.ratelimit import is_retryable_status

    if status is None:  # no answer: only a connection that never got through is safe to redo
        return _refused(exc)
    if not is_retryable_status(status):
        return False
    return status in _UNPROCESSED or not _COMMIT_POST.search(path)


def _call(settings: Settings, what: str, fn: Callable[[], Any], *, sleep: Sleep | None = None) -> Any:
    """Run one huggingface_hub call in the one retry loop (:mod:`batuta_sync.hub.retry`): the hub
    client's schedule, the endpoint's shared gate, ``--timeout``; what is retried is decided by
    :func:`_may_retry` (type and status, never names)."""
    from batuta_sync.hub.limits import NetLimits
    from batuta_sync.hub.retry import Failure, Kind, Retry

    def classify(exc: BaseException) -> Failure | None:
        if not isinstance(exc, Exception):
            return None
        status, headers, path = _failed_request(exc)

        def error(_attempts: int) -> BaseException:
            return _map_error(exc, settings, what)

        if not _may_retry(exc, status, path):
            return Failure(Kind.FINAL, error)
        if status is None:
            return Failure(Kind.REFUSED, error)
        return Failure(Kind.RATE_LIMITED if status == 429 else Kind.STATUS, error, status, headers)

    policy = Retry(settings.endpoint, limits=NetLimits.from_settings(settings), sleep=sleep or time.sleep)
    return policy.request(fn, classify)


def ensure_repo(
    settings: Settings,
    repo_id: str,
    repo_type: HfAssetType,
    *,
    private: bool = False,
    sdk: str | None = None,
) -> None:
    """Create the repo when missing (``exist_ok``): one POST /api/repos/create."""
    api = _api(settings)
    _call(
        settings,
        f"creating {repo_type.value} repo {repo_id}",
        lambda: api.create_repo(
            repo_id,
            repo_type=repo_type.value,
            private=private,
            exist_ok=True,
            space_sdk=sdk if repo_type is HfAssetType.SPACE else None,
        ),
    )


def ensure_branch(
    settings: Settings, repo_id: str, repo_type: HfAssetType, branch: str, *, start: str | None = None
) -> None:
    """Create ``branch`` at commit ``start`` (default: the default branch's head) when it does not exist."""
    api = _api(settings)
    _call(
        settings,
        f"creating branch {branch} of {repo_id}",
        lambda: api.create_branch(repo_id, branch=branch, revision=start, repo_type=repo_type.value, exist_ok=True),
    )


@dataclass(frozen=True)
class CommitResult:
    commit: str
    url: str
    pr_url: str | None = None  # create_pr: the pull request's page
    pr_revision: str | None = None  # create_pr: ``refs/pr/N``, where further commits of the series go


def commit_files(
    settings: Settings,
    repo_id: str,
    repo_type: HfAssetType,
    revision: str,
    *,
    root: Path,
    uploads: Sequence[str],
    generated: Mapping[str, bytes] | None = None,
    deletes: Sequence[str] = (),
    message: str,
    description: str | None = None,
    parent_commit: str | None = None,
    protocol: str | None = None,
    progress: Callable[[str], None] | None = None,
    sha256: Mapping[str, str] | None = None,
    transfer: Transfer | None = None,
    create_pr: bool = False,
) -> CommitResult:
    """One commit: ``uploads`` (paths under ``root``), ``generated`` contents, ``deletes``.

    ``sha256`` (path -> hex digest, already computed and re-checked by the caller) is handed to
    huggingface_hub so it does not read and hash the files a second time.  ``transfer`` observes
    the bytes sent and stops the upload once its ``abort`` is set (:class:`Transfer`).
    ``create_pr`` opens a pull request (``refs/pr/N``) with the commit instead of moving ``revision``.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    transfer = transfer or Transfer()
    transfer.root = root
    generated = dict(generated or {})
    ops: list[Any] = []
    sizes: dict[str, int] = {}
    for rel in uploads:
        if rel in generated:
            continue
        op = _add_op()(path_in_repo=rel, path_or_fileobj=str(root / rel))
        op.transfer = transfer
        sizes[rel] = os.path.getsize(root / rel)
        known = (sha256 or {}).get(rel)
        if known and hasattr(op.upload_info, "is_hashed") and not op.upload_info.is_hashed:
            op.upload_info.sha256 = bytes.fromhex(known)
        ops.append(op)
    for rel, content in sorted(generated.items()):
        ops.append(CommitOperationAdd(path_in_repo=rel, path_or_fileobj=content))
        sizes[rel] = len(content)
    ops.extend(CommitOperationDelete(path_in_repo=rel, is_folder=False) for rel in deletes)
    if progress is not None:
        progress(f"committing {len(ops)} operation(s) to {repo_id}@{revision}")
    proto = protocol or upload_protocol(
        settings, offers_xet=lambda: server_offers_xet(settings, repo_id, repo_type, revision)
    )
    api = _api(settings)

    opened = transfer.open(len(sizes), sum(sizes.values()))

    def commit() -> Any:
        transfer.check()
        with _xet_mode(proto, transfer), _abort_watcher(transfer, proto):
            return api.create_commit(
                repo_id,
                ops,
                commit_message=message,
                commit_description=description,
                repo_type=repo_type.value,
                revision=revision,
                parent_commit=parent_commit,
                create_pr=create_pr,
            )

    try:
        info = _call(settings, f"committing to {repo_id}@{revision}", commit)
        transfer.settle(sizes)
    except BatutaError:
        transfer.check()  # an upload cancelled by the abort is the interrupt it is
        raise
    finally:
        if opened:
            transfer.close()
    pr_url = getattr(info, "pr_url", None)
    pr_revision = getattr(info, "pr_revision", None)
    return CommitResult(commit=str(info.oid), url=str(info.commit_url), pr_url=str(pr_url) if pr_url else None,
                        pr_revision=str(pr_revision) if pr_revision else None)
