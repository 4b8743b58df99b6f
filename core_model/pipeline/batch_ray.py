"""``interhand batch --ray``: the batch's two stages as Ray tasks and actors, on a local Ray cluster started for
the batch or on an existing one (``--ray-address HOST:PORT``).

The same scheduler (``batch_schedule.run_jobs``) drives it: detection is a Ray task per video (one CPU each, anywhere in
the cluster), reconstruction a method call on a model actor (one GPU each where the cluster has GPUs, else one
CPU per torch thread), the model loaded once per actor. Videos and results are paths: every node must see the
inputs and the output folder at the same paths (a shared file system), and have interhand-studio installed
(``pip install 'interhand-studio[cluster]'``). Ray is imported here only, and only for ``--ray``.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import os
import threading
from typing import Any

from core_model.pipeline.batch import BatchSettings, Job
from core_model.pipeline.batch_schedule import (
    Detected,
    ModelWorker,
    Throttled,
    detect_job,
    plan_workers,
)

log = logging.getLogger(__name__)

LOCAL_OBJECT_STORE = 128 * 2**20
"""Object store of a local cluster: the batch moves regions and summary rows only (kilobytes per video)."""


def import_ray():
    """The ``ray`` module; ImportError saying what to install when it is absent."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError("--ray needs Ray: pip install 'interhand-studio[cluster]' (or pip install 'ray>=2.9')"
                          ) from exc
    return ray


class _ModelActor:
    """A :class:`ModelWorker` in a Ray actor. Two calls at once (``max_concurrency=2``): ``run`` on one thread,
    so that ``cancel`` can reach it on the other."""

    def __init__(self, settings: BatchSettings, device: str, threads: int, queue: Any) -> None:
        self.cancelled = threading.Event()
        self.report = Throttled(queue.put_nowait)
        self.worker = ModelWorker(settings, device, threads)

    def run(self, job: Job, detected: Detected):
        return self.worker.run(job, detected, self.report, self.cancelled.is_set)

    def cancel(self) -> None:
        self.cancelled.set()


def _detect_task(job: Job, roi, queue: Any) -> Detected:
    return detect_job(job, roi, Throttled(queue.put_nowait))


class RayBackend:
    """The two stages on Ray (see the module). ``address`` None: a local cluster of this machine's cores
    (``include_dashboard=False``, a small object store), shut down again by :meth:`close`; otherwise the
    cluster at that address (``auto``: the one this machine belongs to), left running.

    Sizing comes from the cluster's resources (:func:`plan_workers` with its CPUs and GPUs): on a CPU-only
    cluster each model actor holds ``threads`` CPUs, and at least one CPU is left for detection tasks."""

    def __init__(self, settings: BatchSettings, address: str | None = None, device: str | None = None,
                 workers: int | None = None, detectors: int | None = None, threads: int | None = None,
                 num_cpus: int | None = None) -> None:
        ray = self.ray = import_ray()
        from ray.util.queue import Queue

        self.settings = settings
        self._started = not ray.is_initialized()
        if self._started:
            options: dict[str, Any] = {"include_dashboard": False, "configure_logging": False,
                                       "log_to_driver": log.isEnabledFor(logging.DEBUG)}
            if address is None:
                from core_model.pipeline.run import usable_cores

                # "local": a new cluster of our own, even where RAY_ADDRESS or a `ray start` names another one.
                # No usage statistics: the machine may have no internet, and a batch is nobody else's business.
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
                options.update(address="local", num_cpus=num_cpus or usable_cores(),
                               object_store_memory=LOCAL_OBJECT_STORE)
            else:
                options["address"] = address
            ray.init(**options)
        try:
            resources = ray.cluster_resources()
            cpus, gpus = int(resources.get("CPU", 1)), int(resources.get("GPU", 0))
            plan = plan_workers(device, workers, detectors, threads, cores=cpus, gpus=gpus)
            gpu = plan.devices[0] != "cpu"
            per_actor = 0 if gpu else plan.threads
            if not gpu and len(plan.devices) * per_actor >= cpus:
                raise ValueError(f"--workers: {len(plan.devices)} model workers of {per_actor} CPUs leave none of "
                                 f"the cluster's {cpus} CPUs to detection; use fewer")
            self.plan = plan
            self.workers = len(plan.devices)
            self.detectors = min(plan.detectors, max(1, cpus - self.workers * per_actor))
            self._queue = Queue(actor_options={"num_cpus": 0})
            # On a GPU the actor asks for the GPU alone: its CPU work is light and the cores are the detectors'.
            self._actor_options = {"num_gpus": 1, "num_cpus": 0} if gpu else {"num_cpus": per_actor}
            self._actors = [self._new_actor() for _ in range(self.workers)]
            self._detect = ray.remote(num_cpus=1, max_retries=0)(_detect_task)
            self._tasks: list[Any] = []
        except BaseException:
            self._shutdown()
            raise

    def describe(self) -> str:
        where = "a local Ray cluster" if self._started else "the Ray cluster"
        tasks = f"{self.detectors} detection task{'s' if self.detectors > 1 else ''} at a time"
        return f"{where} ({self.plan.describe(tasks)})"

    def _new_actor(self):
        device = "cuda" if self._actor_options.get("num_gpus") else "cpu"  # Ray gives each actor its own GPU
        actor = self.ray.remote(max_concurrency=2)(_ModelActor).options(**self._actor_options)
        return actor.remote(self.settings, device, self.plan.threads, self._queue)

    def detect(self, job: Job) -> cf.Future:
        ref = self._detect.remote(job, self.settings.roi, self._queue)
        self._tasks.append(ref)
        return ref.future()

    def reconstruct(self, worker: int, job: Job, detected: Detected) -> cf.Future:
        return self._actors[worker].run.remote(job, detected).future()

    def progress(self) -> list[tuple[int, str, int, int]]:
        with contextlib.suppress(Exception):
            size = self._queue.qsize()
            if size:
                return self._queue.get_nowait_batch(size)
        return []

    def worker_died(self, exc: BaseException) -> bool:
        errors = self.ray.exceptions
        return isinstance(exc, (errors.RayActorError, errors.WorkerCrashedError)) and not self._init_failed(exc)

    def _init_failed(self, exc: BaseException) -> bool:
        return bool(getattr(exc, "actor_init_failed", False))

    def start_error(self, exc: BaseException) -> str | None:
        if not self._init_failed(exc):
            return None
        cause = getattr(exc, "cause", None) or exc
        return f"the model workers could not start: {cause}"

    def restart(self, worker: int | None) -> None:
        if worker is not None:
            with contextlib.suppress(Exception):
                self.ray.kill(self._actors[worker], no_restart=True)
            self._actors[worker] = self._new_actor()

    def cancel(self) -> None:
        for actor in self._actors:
            with contextlib.suppress(Exception):
                actor.cancel.remote()
        for ref in self._tasks:
            with contextlib.suppress(Exception):
                self.ray.cancel(ref)

    def close(self) -> None:
        for actor in getattr(self, "_actors", []):
            with contextlib.suppress(Exception):
                self.ray.kill(actor, no_restart=True)
        with contextlib.suppress(Exception):
            self._queue.shutdown(force=True)
        self._shutdown()

    def _shutdown(self) -> None:
        if self._started:
            self.ray.shutdown()
