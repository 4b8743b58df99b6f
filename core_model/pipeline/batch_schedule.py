"""The batch's two stages, the engines they run on and the scheduler that keeps both busy (``interhand batch``;
the why is in ``batch.py``).

Stages: :func:`detect_job` (pass 1: decoding and MediaPipe, on the CPU) and :class:`ModelWorker` (pass 2: the
model, loaded once per worker). Engines (:class:`Backend`): :class:`LocalBackend`, processes of this machine
(``concurrent.futures`` over spawned ``multiprocessing``), and ``batch_ray.RayBackend``. The scheduler
(:func:`run_jobs`) is one loop over futures for both.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import logging
import math
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from core_model.cancel import CancelledError
from core_model.pipeline.batch import (
    BatchSettings,
    Job,
    VideoRow,
    describe_error,
    is_input_error,
    result_metrics,
)

log = logging.getLogger(__name__)

REPORT_EVERY_S = 0.25
"""A worker reports a video's progress at most this often (and at the end of each stage)."""


Report = Callable[[int, str, int, int], None]
"""report(job index, stage, done, total): a worker's progress on one video."""


class Throttled:
    """A :data:`Report` that passes a call on at most every :data:`REPORT_EVERY_S` seconds per job and stage,
    and always the last step of a stage."""

    def __init__(self, send: Callable[[tuple[int, str, int, int]], None] | None) -> None:
        self.send = send
        self.last: dict[tuple[int, str], float] = {}

    def __call__(self, index: int, stage: str, done: int, total: int) -> None:
        if self.send is None:
            return
        now = time.monotonic()
        if done < total and now - self.last.get((index, stage), -math.inf) < REPORT_EVERY_S:
            return
        self.last[(index, stage)] = now
        with contextlib.suppress(Exception):  # progress is a courtesy: never fail a video over it
            self.send((index, stage, int(done), int(total)))


@dataclasses.dataclass
class Detected:
    """Pass 1 of one video: what ``reconstruct(detected=...)`` takes (the regions last, after any event with a
    message), the seconds it took, or the error that stopped it (then ``items`` is empty)."""

    items: list
    seconds: float
    error: str = ""
    input_error: bool = False


def detect_job(job: Job, roi: tuple[float, float, float, float] | None, report: Report | None = None,
               cancel: Callable[[], bool] | None = None) -> Detected:
    """Pass 1 (decoding and MediaPipe) over ``job``'s video: a :class:`Detected`, never an exception from the
    video (it is recorded); CancelledError when ``cancel()`` says so."""
    from core_model.pipeline.region import HandRegions
    from core_model.pipeline.run import detect_regions

    start = time.perf_counter()
    items: list = []
    try:
        for item in detect_regions(job.video, roi, cancel, workers=1):  # the batch runs several of these at once
            if isinstance(item, HandRegions) or item.message:
                items.append(item)
            elif report is not None:
                report(job.index, item.stage, item.done, item.total)
    except CancelledError:
        raise
    except Exception as exc:
        log.debug("detection of %s failed", job.video, exc_info=True)
        return Detected([], time.perf_counter() - start, describe_error(exc), is_input_error(exc))
    return Detected(items, time.perf_counter() - start)


class WorkerStartError(RuntimeError):
    """A model worker could not load the model (the same for every worker: the batch stops)."""


class ModelWorker:
    """A model loaded once on ``device`` that reconstructs one detected video after another (pass 2)."""

    def __init__(self, settings: BatchSettings, device: str, threads: int | None = None) -> None:
        import torch

        from core_model.device import pick_device
        from core_model.pipeline.models import load_run_model

        self.settings = settings
        self.device = pick_device(device)
        self.threads = threads or settings.threads or 1
        torch.set_num_threads(self.threads)  # on a GPU too: the other cores are the detectors'
        self.model, self.preset, self.checkpoint_sha256 = load_run_model(
            settings.checkpoint, settings.hand_model, self.device, settings.untrained)
        self.refine = None
        if settings.refine:
            from core_model.refine import RefineConfig

            self.refine = RefineConfig()

    def run(self, job: Job, detected: Detected, report: Report | None = None,
            cancel: Callable[[], bool] | None = None) -> VideoRow:
        """Reconstruct ``job`` from its detection into ``job.output``; the summary row (a failure is a row, not an
        exception; CancelledError when ``cancel()`` says so)."""
        import torch

        from core_model.pipeline.run import reconstruct

        start = time.perf_counter()
        row = VideoRow(job.video, job.output, "failed")
        stopped = ""
        result = None
        try:
            run = reconstruct(job.video, job.output, self.model, model_preset=self.preset,
                              checkpoint_sha256=self.checkpoint_sha256, roi=self.settings.roi,
                              batch=self.settings.batch, device=self.device, cancel=cancel, refine=self.refine,
                              refine_threads=self.threads if self.device.type == "cpu" else None,
                              detected=detected.items)
            with contextlib.closing(run), torch.no_grad():
                for event in run:
                    if event.stage == "done":
                        result = event.result
                    elif event.message:
                        stopped = event.message
                    elif report is not None:
                        report(job.index, event.stage, event.done, event.total)
        except CancelledError:
            raise
        except Exception as exc:
            log.debug("reconstruction of %s failed", job.video, exc_info=True)
            row.error, row.input_error = describe_error(exc), is_input_error(exc)
        if result is not None:
            for name, value in result_metrics(result).items():
                setattr(row, name, value)
            row.status, row.error = ("truncated", stopped) if stopped else ("ok", "")
        row.seconds = round(detected.seconds + time.perf_counter() - start, 3)
        return row


# ------------------------------------------------------------------------------------------ engines


class Backend(Protocol):
    """Where the two stages run. ``detect`` and ``reconstruct`` return futures (of :class:`Detected` and
    :class:`VideoRow`); ``worker_died`` tells whether a future's exception means its process died (the work is
    tried again once, elsewhere, after ``restart``); ``progress`` drains the workers' reports."""

    workers: int
    detectors: int

    def describe(self) -> str: ...
    def detect(self, job: Job) -> cf.Future: ...
    def reconstruct(self, worker: int, job: Job, detected: Detected) -> cf.Future: ...
    def progress(self) -> list[tuple[int, str, int, int]]: ...
    def worker_died(self, exc: BaseException) -> bool: ...
    def start_error(self, exc: BaseException) -> str | None: ...
    def restart(self, worker: int | None) -> None: ...
    def cancel(self) -> None: ...
    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class WorkerPlan:
    """devices: one per model worker; detectors: detection processes (or Ray tasks) at once; threads: torch
    threads per model worker on the CPU."""

    devices: tuple[str, ...]
    detectors: int
    threads: int

    def describe(self, detectors: str = "") -> str:
        """One line; ``detectors``: what to say of the detectors instead of "N detectors"."""
        kinds: dict[str, int] = {}
        for d in self.devices:
            kinds[d] = kinds.get(d, 0) + 1
        workers = ", ".join(f"{n} on {d}" if n > 1 else d for d, n in kinds.items())
        return (f"{len(self.devices)} model worker{'s' if len(self.devices) > 1 else ''} ({workers}; "
                f"{self.threads} torch thread{'s' if self.threads > 1 else ''} each on the CPU), "
                + (detectors or f"{self.detectors} detector{'s' if self.detectors > 1 else ''}"))


def plan_workers(device: str | None, workers: int | None, detectors: int | None, threads: int | None,
                 cores: int | None = None, gpus: int | None = None) -> WorkerPlan:
    """How many model workers on which devices, and how many detectors, for this machine (or, with ``cores`` and
    ``gpus``, a Ray cluster's totals).

    With GPUs (``device`` None, ``auto`` or ``cuda``): one worker per GPU, and the other cores detect: MediaPipe
    on the CPU (about 70 frames/s a core, BENCHMARKS.md "Pipeline") bounds the throughput long before the network
    on a GPU does. On the CPU: a worker per three cores, each with one torch thread, and a detector per core: the
    shipped model spends about twice as long in detection as in the network, one torch thread is what a shared
    core runs best (``run.cpu_threads``), and on two cores two detectors beat one (BENCHMARKS.md "Many videos").
    ``workers``/``detectors``/``threads`` override; more workers than GPUs share them in turn."""
    from core_model.pipeline.run import usable_cores

    cores = cores or usable_cores()
    if gpus is None:
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for name, value in (("workers", workers), ("detectors", detectors), ("threads", threads)):
        if value is not None and value < 1:
            raise ValueError(f"--{name}: expected a positive number, got {value}")
    if device in (None, "auto", "cuda") and gpus:
        names = [f"cuda:{i}" for i in range(gpus)]
    elif device in (None, "auto", "cpu"):
        names = ["cpu"]
    elif device == "cuda":
        raise ValueError("--device: 'cuda' requested but no GPU is available")
    else:
        names = [device]
    gpu = names[0] != "cpu"
    count = workers or (len(names) if gpu else max(1, cores // 3))
    devices = tuple(names[i % len(names)] for i in range(count))
    default_detectors = max(1, cores - count) if gpu else cores
    return WorkerPlan(devices, detectors or default_detectors, threads or 1)


_STATE: dict[str, Any] = {}
"""Per process of :class:`LocalBackend`: the model worker, the report queue, the cancel event."""


def _quiet_child(queue, cancel) -> None:
    # Ctrl-C reaches every process of the terminal's group: the coordinator alone handles it (by ``cancel``),
    # so that a worker between two videos does not die and break its pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _STATE["report"] = Throttled(queue.put)
    _STATE["cancel"] = cancel.is_set


def _start_detector(queue, cancel, log_level: int) -> None:
    logging.basicConfig(level=log_level, format="%(levelname)s %(message)s")
    _quiet_child(queue, cancel)


def _start_model_worker(settings: BatchSettings, device: str, threads: int, queue, cancel, log_level: int) -> None:
    logging.basicConfig(level=log_level, format="%(levelname)s %(message)s")
    _quiet_child(queue, cancel)
    try:
        _STATE["worker"] = ModelWorker(settings, device, threads)
    except Exception as exc:  # raised with the first video instead: a failed initializer only says "broken"
        _STATE["error"] = describe_error(exc)


def _ready() -> None:
    """A task that does nothing: submitting it starts a pool's process."""


def _detect_here(job: Job, roi) -> Detected:
    return detect_job(job, roi, _STATE["report"], _STATE["cancel"])


def _reconstruct_here(job: Job, detected: Detected) -> VideoRow:
    if "error" in _STATE:
        raise WorkerStartError(_STATE["error"])
    return _STATE["worker"].run(job, detected, _STATE["report"], _STATE["cancel"])


class LocalBackend:
    """The two stages in processes of this machine (``concurrent.futures`` over ``multiprocessing``, spawned: a
    forked torch or MediaPipe is not safe): a pool of ``plan.detectors`` detection processes and one
    single-process pool per model worker, each loading the model once."""

    def __init__(self, settings: BatchSettings, plan: WorkerPlan) -> None:
        import multiprocessing

        self.settings, self.plan = settings, plan
        self.workers, self.detectors = len(plan.devices), plan.detectors
        self._ctx = multiprocessing.get_context("spawn")
        self._queue = self._ctx.Queue()
        self._cancel = self._ctx.Event()
        self._level = logging.getLogger().getEffectiveLevel()
        self._detect_pool = self._new_detect_pool()
        self._pools = [self._new_worker(i) for i in range(self.workers)]
        for pool in self._pools:  # start the workers (imports, the model) now, while the first videos are detected
            pool.submit(_ready)

    def _new_detect_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(self.detectors, mp_context=self._ctx, initializer=_start_detector,
                                      initargs=(self._queue, self._cancel, self._level))

    def _new_worker(self, index: int) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(1, mp_context=self._ctx, initializer=_start_model_worker,
                                      initargs=(self.settings, self.plan.devices[index], self.plan.threads,
                                                self._queue, self._cancel, self._level))

    def describe(self) -> str:
        return f"this machine ({self.plan.describe()})"

    def detect(self, job: Job) -> cf.Future:
        return self._detect_pool.submit(_detect_here, job, self.settings.roi)

    def reconstruct(self, worker: int, job: Job, detected: Detected) -> cf.Future:
        return self._pools[worker].submit(_reconstruct_here, job, detected)

    def progress(self) -> list[tuple[int, str, int, int]]:
        import queue

        items = []
        with contextlib.suppress(queue.Empty, OSError, ValueError):
            while len(items) < 10000:
                items.append(self._queue.get_nowait())
        return items

    def worker_died(self, exc: BaseException) -> bool:
        from concurrent.futures.process import BrokenProcessPool

        return isinstance(exc, BrokenProcessPool)

    def start_error(self, exc: BaseException) -> str | None:
        return str(exc) if isinstance(exc, WorkerStartError) else None

    def restart(self, worker: int | None) -> None:
        if worker is None:
            self._detect_pool.shutdown(wait=False, cancel_futures=True)
            self._detect_pool = self._new_detect_pool()
        else:
            self._pools[worker].shutdown(wait=False, cancel_futures=True)
            self._pools[worker] = self._new_worker(worker)
            self._pools[worker].submit(_ready)

    def cancel(self) -> None:
        self._cancel.set()

    def close(self) -> None:
        for pool in (self._detect_pool, *self._pools):
            pool.shutdown(wait=True, cancel_futures=True)
        self._queue.close()
        self._queue.join_thread()


# ------------------------------------------------------------------------------------------ the scheduler


@dataclasses.dataclass
class BatchUpdate:
    """What :func:`run_jobs` yields: progress (``row`` None) or a finished video (its row and job)."""

    videos_done: int
    videos: int
    frames_done: int
    frames: int
    row: VideoRow | None = None
    job: Job | None = None


def run_jobs(jobs: Sequence[Job], backend: Backend, refine: bool = False, poll_s: float = 0.2
             ) -> Iterator[BatchUpdate]:
    """Run ``jobs`` on ``backend``; yields progress and each finished video's row (in the order they finish).

    Detection runs ahead by at most ``detectors + workers`` videos (detected or under way, not yet given to a
    worker); each worker holds at most two videos (one running, the next queued so that it never waits for the
    coordinator). A process that dies takes its videos with it: they are tried once more after the process is
    replaced, then recorded as failed. Closing the generator early (Ctrl-C) cancels the work under way: each
    worker stops at its next check and removes its parts folder."""
    return _Schedule(jobs, backend, refine).run(poll_s)


class _Schedule:
    """The state of :func:`run_jobs`: videos waiting, being detected, detected (ready), being reconstructed."""

    def __init__(self, jobs: Sequence[Job], backend: Backend, refine: bool) -> None:
        self.jobs, self.backend = list(jobs), backend
        self.stages = ("detect", "model", "refine") if refine else ("detect", "model")
        self.share: dict[int, dict[str, float]] = {j.index: {} for j in self.jobs}  # stage -> share done
        self.frames = {j.index: j.frames for j in self.jobs}
        self.pending: deque[tuple[Job, int]] = deque((j, 0) for j in self.jobs)  # (job, tries)
        self.detecting: dict[cf.Future, tuple[Job, int]] = {}
        self.ready: deque[tuple[Job, Detected, int]] = deque()
        self.running: dict[cf.Future, tuple[Job, int, Detected, int]] = {}  # (job, worker, detection, tries)
        self.load = [0] * backend.workers
        self.done = 0
        self.restarted: set[int | None] = set()  # processes replaced in this round (one death, one restart)

    def run(self, poll_s: float) -> Iterator[BatchUpdate]:
        finished = False
        try:
            while self.pending or self.detecting or self.ready or self.running:
                self._submit()
                done, _ = cf.wait([*self.detecting, *self.running], timeout=poll_s, return_when=cf.FIRST_COMPLETED)
                self.restarted.clear()
                for future in done:
                    update = self._detected(future) if future in self.detecting else self._reconstructed(future)
                    if update is not None:
                        yield update
                self._progress()
                yield self._update()
            finished = True
        finally:
            if not finished:
                self._cancel()
            self.backend.close()

    def _submit(self) -> None:
        backend = self.backend
        while self.pending and len(self.detecting) + len(self.ready) < backend.detectors + backend.workers:
            job, tries = self.pending.popleft()
            self.detecting[backend.detect(job)] = (job, tries)
        while self.ready:
            worker = min(range(backend.workers), key=self.load.__getitem__)
            if self.load[worker] >= 2:
                break
            job, detected, tries = self.ready.popleft()
            self.running[backend.reconstruct(worker, job, detected)] = (job, worker, detected, tries)
            self.load[worker] += 1

    def _detected(self, future: cf.Future) -> BatchUpdate | None:
        job, tries = self.detecting.pop(future)
        try:
            detected = future.result()
        except Exception as exc:
            if self._again(exc, tries, None):
                self.pending.appendleft((job, tries + 1))
                return None
            return self._finish(job, VideoRow(job.video, job.output, "failed",
                                              error=_died(exc, self.backend, "detecting")))
        if detected.error:
            return self._finish(job, VideoRow(job.video, job.output, "failed", seconds=round(detected.seconds, 3),
                                              error=detected.error, input_error=detected.input_error))
        self.share[job.index]["detect"] = 1.0
        self.ready.append((job, detected, tries))
        return None

    def _reconstructed(self, future: cf.Future) -> BatchUpdate | None:
        job, worker, detected, tries = self.running.pop(future)
        self.load[worker] -= 1
        try:
            row = future.result()
        except Exception as exc:
            message = self.backend.start_error(exc)
            if message is not None:
                raise WorkerStartError(message) from exc
            if self._again(exc, tries, worker):
                self.ready.appendleft((job, detected, tries + 1))
                return None
            row = VideoRow(job.video, job.output, "failed", error=_died(exc, self.backend, "reconstructing"))
        return self._finish(job, row)

    def _again(self, exc: BaseException, tries: int, worker: int | None) -> bool:
        """Whether to try a video again after ``exc``: its process died, the first time (the process is replaced;
        ``worker`` None: a detector)."""
        if not self.backend.worker_died(exc) or tries > 0:
            return False
        if worker not in self.restarted:
            self.backend.restart(worker)
            self.restarted.add(worker)
        return True

    def _finish(self, job: Job, row: VideoRow) -> BatchUpdate:
        self.done += 1
        self.share[job.index] = dict.fromkeys(self.stages, 1.0)
        return dataclasses.replace(self._update(), row=row, job=job)

    def _progress(self) -> None:
        for index, stage, step, total in self.backend.progress():
            parts = self.share.get(index)
            if parts is not None and stage in self.stages and parts.get(stage, 0.0) < 1.0:
                parts[stage] = step / max(total, 1)

    def _update(self) -> BatchUpdate:
        frames_done = sum(self.frames[i] * sum(parts.get(s, 0.0) for s in self.stages) / len(self.stages)
                          for i, parts in self.share.items())
        return BatchUpdate(self.done, len(self.jobs), int(frames_done), sum(self.frames.values()))

    def _cancel(self) -> None:
        self.backend.cancel()
        futures = [*self.detecting, *self.running]
        for future in futures:
            future.cancel()
        with contextlib.suppress(Exception):
            cf.wait(futures, timeout=60)


def _died(exc: BaseException, backend: Backend, doing: str) -> str:
    if backend.worker_died(exc):
        return f"the worker process died while {doing} this video, twice ({describe_error(exc)})"
    return describe_error(exc)
