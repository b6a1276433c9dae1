"""``batuta apply --executor dask://HOST:PORT | dask-local:N``: pull and convert actions on Dask.

The plan and its DAG walk stay the local executor's (:func:`batuta_sync.core.executor.execute`:
same order, same failure rules, same journal); only the *step functions* of pull and convert
change.  Each submits the action to the cluster as one Dask task, the worker reads its inputs
from and writes its outputs to the shared remote (content-addressed), and returns digests; the
driver verifies them against the remote, materializes the workspace from it and records hf.lock
and the journal itself.  Push, relock and delete actions run on the driver.  See
``docs/distributed.md``.

This package sits above the core and below the CLI; ``dask``/``distributed`` are imported only
when a cluster is used (``pip install 'batuta_sync[dask]'``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from batuta_sync.core.manifest import ExecutorSpec, parse_executor
from batuta_sync.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from batuta_sync.core.api import ExecutorHook
    from batuta_sync.settings import Settings

__all__ = ["executor_hook", "require_dask", "resolve_executor"]

INSTALL_HINT = "Install the extra: pip install 'batuta_sync[dask]' (or pip install 'dask[distributed]')."


def resolve_executor(flag: str | None, policy: str | None) -> ExecutorSpec:
    """``--executor`` over ``policies.executor`` over ``local`` (UsageError for a bad flag)."""
    text = flag if flag is not None else policy
    try:
        return parse_executor(text)
    except ValueError as exc:
        where = "--executor" if flag is not None else "policies.executor"
        raise UsageError(f"{where}: {exc}.", hint="See docs/distributed.md.")


def require_dask() -> None:
    """ConfigError (exit 3, code ``missing-extra``) when dask.distributed cannot be imported."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ConfigError(
            "A Dask executor (--executor dask://HOST:PORT or dask-local:N, or policies.executor) needs "
            "dask.distributed, which is not installed; nothing was planned or changed.",
            hint=INSTALL_HINT + " Or apply with --executor local.",
            code="missing-extra",
        )


def require_remote(spec: ExecutorSpec, settings: Settings) -> None:
    """Workers exchange inputs and outputs through the remote only: refuse a cluster without one."""
    if not settings.remote:
        raise ConfigError(
            f"The executor {spec.text} needs a shared remote: workers read their inputs from it and write "
            "their outputs to it, never to the driver's disk; none is configured.",
            hint="Set --remote s3://bucket/prefix (or BATUTA_REMOTE, or defaults.remote in hf.yaml) to a remote "
            "every worker can reach; see docs/distributed.md.",
        )
    from urllib.parse import urlsplit

    if urlsplit(settings.endpoint).password is not None:
        raise ConfigError(
            f"The executor {spec.text} sends the Hub endpoint to every worker, and this endpoint has a "
            "password in its URL; refusing to send it.",
            hint="Drop the user:password@ part of the endpoint; workers authenticate with their own HF_TOKEN.",
        )
    if settings.offline:
        raise ConfigError(
            f"The executor {spec.text} cannot run offline: workers reach the Hub and the remote.",
            hint="Drop --offline (or HF_HUB_OFFLINE), or apply with --executor local.",
        )


def executor_hook(spec: ExecutorSpec, settings: Settings, *, retries: int = 2) -> ExecutorHook | None:
    """The hook :func:`batuta_sync.core.api.apply_plan` runs its actions through (None: local).

    Checks everything that can fail before the plan is made: dask importable, a remote, online.
    The cluster itself is reached (or started) only when the apply begins."""
    if spec.is_local:
        return None
    require_dask()
    require_remote(spec, settings)
    from batuta_sync.distributed.driver import DaskHook

    return DaskHook(spec, retries=retries)
