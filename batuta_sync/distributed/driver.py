"""The driver side of a Dask apply: the step functions that send pull and convert to the cluster.

:class:`DaskHook` is an :class:`~batuta_sync.core.api.ExecutorHook`: for the apply it connects to
the scheduler (``dask://HOST:PORT``) or starts a ``LocalCluster`` (``dask-local:N``), and hands
the DAG walk step functions that

1. submit the action as one Dask task (:mod:`.worker`; ``retries`` bounded; conversions ask for
   ``resources={"memory": ...}`` only when some worker declares a ``memory`` resource, since Dask
   never schedules a task whose resource no worker has),
2. wait for it (a second Ctrl-C cancels the future at once),
3. verify what the worker returned against the plan and the remote (every blob in the CAS, the
   conversion's run record equal to the digests returned), and
4. run the *local* step, which now finds everything in the remote (pull: local cache -> remote;
   convert: the run-cache, required) and returns the lock entry the walk records.

So the lock entry is built by the same code as in a local apply, and hf.lock, the journal and the
workspace/remote locks never leave the driver.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from batuta_sync.core.actions import Action, ActionKind
from batuta_sync.core.executor import StepContext, StepFn, StepResult
from batuta_sync.core.lockfile import ConversionLock, RepoLock, entry_from_dict
from batuta_sync.core.manifest import ConversionSpec, ExecutorSpec, Manifest, RepoSpec
from batuta_sync.distributed.worker import ConvertTask, PullTask, convert_task, pull_task
from batuta_sync.errors import BatutaError, ConfigError, IntegrityError, PlanError

if TYPE_CHECKING:
    from batuta_sync.core.planner.plan import Plan
    from batuta_sync.remote.cas import SharedStore
    from batuta_sync.settings import Settings

#: how long one wait for a future lasts before the walk's Ctrl-C state is looked at again
POLL = 0.2
#: seconds to reach a dask:// scheduler before the apply gives up (nothing applied yet)
CONNECT_TIMEOUT = 10.0


def worker_error(action: Action, payload: Mapping[str, Any]) -> BatutaError:
    """The expected error a worker returned, as a BatutaError with the worker's code and exit code."""
    err = payload["error"]
    exc = BatutaError(f"{action.address} (on worker {payload.get('worker', '?')}): {err['message']}",
                      hint=err.get("hint") or None, code=str(err.get("code") or "error"))
    exc.exit_name = str(err.get("exit_name") or "error")
    return exc


def memory_request(limit: int | None, input_bytes: int) -> dict[str, float] | None:
    """The ``resources=`` of a conversion: its input size in bytes (what it reads and, at most,
    holds) as ``memory``, capped at the largest worker's so it can always be placed -- or None
    when no worker declares ``memory`` (Dask would never schedule a task asking for it)."""
    if not limit:
        return None
    return {"memory": float(min(limit, max(1, input_bytes)))}


class Cluster:
    """One Dask client for one apply: submit, wait (interruptible), cancel what is left."""

    def __init__(self, client: Any, *, retries: int, owned: Any = None) -> None:
        self.client = client
        self.retries = retries
        self.owned = owned  # the LocalCluster this apply started (closed with it)
        self.topic = f"batuta-progress-{uuid.uuid4().hex[:12]}"
        self.sinks: dict[str, Any] = {}
        self.outstanding: dict[str, Any] = {}
        self.guard = threading.Lock()

    def memory_limit(self) -> int | None:
        """The largest ``memory`` resource a worker declares (None: no worker declares one)."""
        workers = self.client.scheduler_info().get("workers", {})
        amounts = [float(w.get("resources", {}).get("memory", 0)) for w in workers.values()]
        best = max(amounts, default=0.0)
        return int(best) if best > 0 else None

    def submit(self, action: Action, fn: Callable[..., Any], task: Any, *, resources: Mapping[str, float] | None,
               ctx: StepContext) -> dict[str, Any]:
        from distributed import KilledWorker

        fut = self.client.submit(fn, task, key=f"batuta-{action.kind.value}-{uuid.uuid4().hex}", pure=False,
                                 retries=self.retries, resources=dict(resources) if resources else None)
        with self.guard:
            self.outstanding[action.id] = fut
        finished = threading.Event()
        fut.add_done_callback(lambda _f: finished.set())
        try:
            # not fut.result(timeout=): from several threads at once, distributed's sync() can fail
            while not finished.wait(POLL):
                if ctx.abort.is_set():  # a second Ctrl-C: cancel it on the cluster, now
                    fut.cancel()
                    raise KeyboardInterrupt
            try:
                out: dict[str, Any] = fut.result()
                return out
            except KilledWorker as exc:
                times = int(getattr(exc, "allowed_failures", self.retries)) + 1
                raise BatutaError(
                    f"{action.address}: the workers running it died {times} times "
                    "(out of memory, or killed); it was not retried further.",
                    hint="Check the workers' logs and memory; conversions can ask for memory with "
                    "`dask worker --resources memory=BYTES` (docs/distributed.md).",
                    code="worker-lost",
                ) from None
        finally:
            with self.guard:
                self.outstanding.pop(action.id, None)

    def on_event(self, event: Any) -> None:
        """A worker's progress event (``log_event``) -> the action's progress sink on the driver."""
        _time, msg = event
        sink = self.sinks.get(str(msg.get("action")))
        if sink is None:
            return
        try:
            if msg.get("event") == "start":
                sink.start(int(msg.get("files", 0)), int(msg.get("total", 0)))
            elif msg.get("event") == "advance":
                sink.advance("", int(msg.get("bytes", 0)))
        except Exception:  # a display problem must not stop the client's event loop (nor the apply)
            self.sinks.pop(str(msg.get("action")), None)

    def cancel_outstanding(self) -> None:
        with self.guard:
            futures = list(self.outstanding.values())
            self.outstanding.clear()
        if futures:
            self.client.cancel(futures)


@contextmanager
def connect(spec: ExecutorSpec, *, retries: int) -> Iterator[Cluster]:
    """A client on ``spec``'s scheduler, or on a LocalCluster started (and stopped) for the apply."""
    import logging

    import dask
    from distributed import Client, LocalCluster

    owned = None
    with dask.config.set({"distributed.scheduler.allowed-failures": retries}):
        try:
            if spec.kind == "dask-local":
                owned = LocalCluster(n_workers=spec.workers, threads_per_worker=1, processes=True,
                                     host="127.0.0.1", dashboard_address="127.0.0.1:0", silence_logs=logging.WARNING)
                client = Client(owned, set_as_default=False)
            else:
                client = Client(spec.address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            if owned is not None:
                owned.close()
            raise ConfigError(
                f"Cannot reach the Dask scheduler {spec.text}: {exc or type(exc).__name__}; nothing was applied.",
                hint="Check the address (dask://HOST:PORT, default port 8786) and that `dask scheduler` runs "
                "there; or apply with --executor local.",
            ) from None
    cluster = Cluster(client, retries=retries, owned=owned)
    client.subscribe_topic(cluster.topic, cluster.on_event)
    try:
        yield cluster
    finally:
        cluster.cancel_outstanding()
        try:
            client.unsubscribe_topic(cluster.topic)
        finally:
            client.close()
            if owned is not None:
                owned.close()


class DaskHook:
    """:class:`~batuta_sync.core.api.ExecutorHook` for ``dask://HOST:PORT`` and ``dask-local:N``."""

    def __init__(self, spec: ExecutorSpec, *, retries: int = 2) -> None:
        self.spec = spec
        self.retries = retries

    @contextmanager
    def __call__(
        self, steps: Mapping[ActionKind, StepFn], settings: Settings, manifest: Manifest, plan: Plan
    ) -> Iterator[Mapping[ActionKind, StepFn]]:
        from batuta_sync.pull.engine import open_shared

        if not any(a.kind in (ActionKind.PULL, ActionKind.CONVERT) for a in plan.actions):
            yield steps  # nothing for the cluster: no connection at all
            return
        shared = open_shared(settings)
        if shared is None:
            raise ConfigError(f"The executor {self.spec.text} needs a usable remote; {settings.remote} is not.")
        with connect(self.spec, retries=self.retries) as cluster:
            remote = RemoteSteps(cluster, shared, settings, manifest, steps)
            yield {**steps, ActionKind.PULL: remote.pull, ActionKind.CONVERT: remote.convert}


class RemoteSteps:
    """Pull and convert step functions that run the action on the cluster, then on the driver
    only verify and materialize from the remote (the local step functions do that part)."""

    def __init__(self, cluster: Cluster, shared: SharedStore, settings: Settings, manifest: Manifest,
                 local: Mapping[ActionKind, StepFn]) -> None:
        self.cluster = cluster
        self.shared = shared
        self.settings = settings
        self.manifest = manifest
        self.local = local

    # ------------------------------------------------------------------ pull

    def pull(self, action: Action, ctx: StepContext) -> StepResult:
        entry = entry_from_dict(action.address, action.lock_entry)
        spec = self.manifest.get(action.address)
        if not isinstance(entry, RepoLock) or not isinstance(spec, RepoSpec):
            raise PlanError(f"The plan's resolution of {action.address} is not a repo entry.")
        task = PullTask(
            action_id=action.id, endpoint=self.settings.endpoint, remote=str(self.settings.remote),
            repo=entry.repo, repo_type=entry.repo_type, revision=entry.revision, commit=entry.commit,
            files=tuple((f.path, f.size, f.gitsha1 or "", f.sha256) for f in entry.files),
            allow_unsafe=spec.allow_unsafe, topic=self.cluster.topic,
        )
        progress_for = ctx.extra.get("progress_for")
        if progress_for is not None:  # fed from the worker's events (Cluster.on_event)
            self.cluster.sinks[action.id] = progress_for(action)
        out = self.cluster.submit(action, pull_task, task, resources=None, ctx=ctx)
        if "error" in out:
            raise worker_error(action, out)
        expected = {f.path: [f.sha256 or f.gitsha1, f.size] for f in entry.files}
        self._verify(action, out["digests"], expected)
        res = self.local[ActionKind.PULL](action, replace(ctx, extra={**ctx.extra, "progress_for": None}))
        return replace(res, bytes=int(out.get("bytes", 0)), message=self._where(out))

    # ------------------------------------------------------------------ convert

    def convert(self, action: Action, ctx: StepContext) -> StepResult:
        task = self._convert_task(action, ctx)
        if task is None:  # an imatrix file or an unknown input: converted on the driver
            return self.local[ActionKind.CONVERT](action, ctx)
        resources = memory_request(self.cluster.memory_limit(), sum(size for _p, _d, size in task.inputs))
        out = self.cluster.submit(action, convert_task, task, resources=resources, ctx=ctx)
        if "error" in out:
            raise worker_error(action, out)
        record = self.shared.get_run(task.key) or {}
        self._verify(action, out["digests"], {n: [r["sha256"], r["size"]] for n, r in record.items()})
        res = self.local[ActionKind.CONVERT](action, replace(ctx, extra={**ctx.extra, "require_run_cache": True}))
        self._share_rest(res)
        return replace(res, message=self._where(out))

    def _convert_task(self, action: Action, ctx: StepContext) -> ConvertTask | None:
        from batuta_sync import convert as convert_mod
        from batuta_sync.core.planner.diff import conversion_key
        from batuta_sync.core.steps import _tree_of, source_dir

        spec = self.manifest.get(action.address)
        if not isinstance(spec, ConversionSpec):
            raise PlanError(f"The plan has an action for {action.address}, which hf.yaml does not declare as expected.")
        options = spec.convert_kwargs()
        input_tree = _tree_of(ctx, spec.source)
        source = ctx.lock.get(spec.source)
        if options.get("imatrix") or input_tree is None:
            return None
        if isinstance(source, RepoLock):
            inputs = tuple((f.path, str(f.sha256 or f.gitsha1), f.size) for f in source.files)
        elif isinstance(source, ConversionLock):
            inputs = tuple((f.path, str(f.sha256), f.size) for f in source.outputs)
        else:
            return None
        key = conversion_key(input_tree, str(convert_mod.CONVERTER_VERSION), spec.params())
        return ConvertTask(
            action_id=action.id, remote=str(self.settings.remote), key=key,
            source_name=source_dir(self.manifest, self.settings, ctx, spec.source).name, inputs=inputs,
            to=spec.to, quantization=spec.quantization, options=tuple(sorted(options.items())),
            allow_unsafe=self.manifest.allow_unsafe,
        )

    def _share_rest(self, res: StepResult) -> None:
        """The driver-written outputs (provenance.json) into the CAS too: a conversion of this
        conversion then finds every input file in the remote."""
        from batuta_sync._fs import confine
        from batuta_sync.core.steps import _abs

        entry = res.lock_entry
        if not isinstance(entry, ConversionLock):
            return
        base = _abs(self.manifest, self.settings, entry.output, f"{entry.address}.output")
        for f in entry.outputs:
            if f.sha256 and not self.shared.has_blob(f.sha256):
                self.shared.put_blob(f.sha256, confine(base, f.path, follow_last=False, what="conversion output"))

    # ------------------------------------------------------------------ checks

    def _verify(self, action: Action, got: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
        """The worker's digests equal ``expected`` and every blob is in the remote (else IntegrityError)."""
        norm = {str(k): [str(v[0]), int(v[1])] for k, v in got.items()}
        want = {str(k): [str(v[0]), int(v[1])] for k, v in expected.items()}
        missing = [p for p, (digest, _size) in sorted(norm.items()) if not self.shared.has_blob(str(digest))]
        if norm != want or missing:
            what = "the plan (or the remote's run record)" if norm != want else (
                f"the remote {self.shared.url} (missing: {', '.join(missing[:5])})")
            raise IntegrityError(
                f"{action.address}: what the worker returned does not match {what}; nothing was recorded for it.",
                hint="Apply again; if it repeats, run `batuta remote check` on the remote.",
            )

    @staticmethod
    def _where(out: Mapping[str, Any]) -> str:
        how = "run-cache hit on" if out.get("cached") else "on"
        return f"{how} worker {out.get('worker', '?')}"
