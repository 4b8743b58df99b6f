"""Many videos, one result file each (``interhand batch``): the work of :func:`reconstruct` cut in its two
stages and scheduled over processes, on this machine or on a Ray cluster (``batch_ray.py``).

Why two stages: pass 1 (decoding and MediaPipe, on the CPU) and pass 2 (the network, the inside test, the
optional refinement) of one video run one after the other, so a single run leaves a core (or the GPU) idle half
the time. Here detection is a task of its own (:func:`detect_job`) that runs ahead, in a pool of processes, on
the next videos while the model workers (:class:`ModelWorker`, the model loaded once per worker) reconstruct the
ones already detected; the regions travel to the worker (``reconstruct(detected=...)``). The scheduler
(:func:`run_jobs`) keeps every detector and every worker busy and is the same loop for both engines; an engine
is a :class:`Backend`: here processes of the standard library (:class:`LocalBackend`), there Ray tasks and actors.

Resuming: each video's result is ``OUT_DIR/<name>.npz`` and beside the results a record per video
(``OUT_DIR/.interhand-batch/<name>.json``) keeps the key it was made under: the SHA-256 of the video and the
settings the result depends on (checkpoint hash, preset, hand model, region, refinement, software version). A
rerun skips every video whose record has the same key and whose result is there; a video that failed on its
input (damaged, no hands) is skipped too unless ``retry_failed``; one that failed otherwise (a worker that died,
an error of ours) is tried again.

The summary (:func:`summary_rows`, :func:`write_summary_csv`, :func:`markdown_table`) has one row per video:
frames, the share with both hands reconstructed, the share of those where the hands interpenetrate, the 2D jitter
(``core_model.metrics.jitter_2d`` against MediaPipe's confident landmarks), seconds, status and error message.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import csv
import dataclasses
import glob
import hashlib
import io
import json
import logging
import math
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core_model import __version__
from core_model.cancel import CancelledError
from core_model.fileio import atomic_path
from core_model.metrics import jitter_2d
from core_model.pipeline.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES

log = logging.getLogger(__name__)

RECORDS = ".interhand-batch"
"""Folder of OUT_DIR holding one record per video (its key, its summary row, what its file looked like)."""
SUMMARY = "summary.csv"
MIN_SCORE = 0.8
"""MediaPipe's handedness score above which its landmarks count as the jitter's reference (as in
``benchmarks/real_video.py``)."""
REPORT_EVERY_S = 0.25
"""A worker reports a video's progress at most this often (and at the end of each stage)."""
STATUSES = ("ok", "truncated", "failed", "not run")


# ------------------------------------------------------------------------------------------ inputs


def collect_videos(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The sources named by ``inputs``, in order, each once: a video file; a folder (the videos under it, sorted,
    or, when it holds none, the folder itself as one image sequence when it holds images); a glob pattern
    (``data/*.mp4``, ``data/**/*.mp4``); a text file listing any of these, one per line (relative to the list's
    folder; blank lines and lines starting with ``#`` are skipped). FileNotFoundError names an input that
    matches nothing."""
    found: list[Path] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.append(path)

    def expand(item: str, base: Path | None, depth: int = 0) -> None:
        path = Path(item) if base is None or Path(item).is_absolute() else base / item
        if path.is_dir():
            videos = sorted((p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES),
                            key=_natural)
            if videos:
                for p in videos:
                    add(p)
            elif any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir() if p.is_file()):
                add(path)
            else:
                raise FileNotFoundError(f"inputs: the folder {path} holds no video and no image")
        elif path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
            add(path)
        elif path.is_file():
            if depth > 0:
                raise ValueError(f"inputs: the list {path} is named inside another list; lists do not nest")
            for line in _list_lines(path):
                expand(line, path.parent, depth + 1)
        elif glob.has_magic(str(path)):
            matches = sorted((Path(p) for p in glob.glob(str(path), recursive=True)), key=_natural)
            matches = [p for p in matches if p.is_dir() or p.suffix.lower() in VIDEO_SUFFIXES]
            if not matches:
                raise FileNotFoundError(f"inputs: the pattern {item} matches no video")
            for p in matches:
                expand(str(p), None, depth)
        else:
            raise FileNotFoundError(f"inputs: no such file or folder {path}")

    for item in inputs:
        expand(str(item), None)
    if not found:
        raise FileNotFoundError("inputs: no video found")
    return found


def _list_lines(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise ValueError(f"inputs: {path} is neither a video (by its name: {', '.join(VIDEO_SUFFIXES)}) nor a text "
                         "file listing videos") from exc
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _natural(path: Path) -> list[object]:
    import re

    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(path))]


def result_names(videos: Sequence[Path]) -> list[str]:
    """A result name per video: its file name without the suffix (a folder: its name); where two videos would
    share one, each of them gets the first 8 hex digits of its full path's hash appended."""
    stems = [v.name if v.is_dir() else v.stem for v in videos]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s] = counts.get(s, 0) + 1
    return [s if counts[s] == 1 else f"{s}-{hashlib.sha256(str(v.resolve()).encode()).hexdigest()[:8]}"
            for s, v in zip(stems, videos)]


def source_sha256(path: Path) -> str:
    """SHA-256 of a video file; of an image folder, of its images' names and contents in order."""
    from core_model.results import file_sha256

    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for image in sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural):
        digest.update(image.name.encode() + b"\0")
        with open(image, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def frame_estimate(path: Path) -> int:
    """The container's frame count (an image folder: its images), for the progress bar; 1 when unreadable."""
    if path.is_dir():
        return max(1, sum(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()))
    import cv2

    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        return max(1, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)) if capture.isOpened() else 1
    finally:
        capture.release()


# ------------------------------------------------------------------------------------------ settings, jobs, rows


@dataclasses.dataclass(frozen=True)
class BatchSettings:
    """What every video of a batch is run with (the options of ``interhand run``). checkpoint None with untrained
    None: the shipped model. threads: torch threads of a model worker on the CPU (None: 1, see
    :func:`plan_workers`); batch: windows per network call."""

    checkpoint: str | None = None
    untrained: str | None = None
    hand_model: str = "auto"
    roi: tuple[float, float, float, float] | None = None
    refine: bool = False
    batch: int = 4
    threads: int | None = None

    def identity(self) -> dict[str, Any]:
        """What a result depends on (the settings part of the resume key). The checkpoint is its file's hash;
        device, threads and windows per call change the time, not the result."""
        from core_model.pipeline.models import shipped_checkpoint
        from core_model.results import file_sha256

        checkpoint = "" if self.untrained else file_sha256(self.checkpoint or shipped_checkpoint())
        refine = None
        if self.refine:
            from core_model.refine import RefineConfig

            refine = dataclasses.asdict(RefineConfig())
        return {"checkpoint_sha256": checkpoint, "untrained": self.untrained, "hand_model": self.hand_model,
                "roi": list(self.roi) if self.roi else None, "refine": refine, "software_version": __version__}


@dataclasses.dataclass(frozen=True)
class Job:
    """One video to reconstruct. index: its place in the batch; output: the result file; key: the resume key;
    frames: the container's frame count (the progress bar's estimate)."""

    index: int
    video: str
    output: str
    name: str
    key: str
    frames: int


@dataclasses.dataclass
class VideoRow:
    """One video's line of the summary. status: ok, truncated (a damaged file: the result holds the frames before
    the damage), failed (no result; ``error`` says why) or not run (the batch was interrupted first). two_hands:
    share of frames with both hands reconstructed; interpenetration: share of those where a vertex of one hand
    lies inside the other; jitter: ``jitter_2d`` of the result's 2D keypoints (the refined ones after
    ``--refine``) in hand sizes per frame², on hands MediaPipe saw with a score >= :data:`MIN_SCORE`.
    seconds: detection plus reconstruction of this video. reused: taken from an earlier run's record.
    input_error: the failure lies in the input (a damaged file, no hands), so a rerun would fail again."""

    video: str
    result: str
    status: str
    frames: int = 0
    two_hands: float = math.nan
    interpenetration: float = math.nan
    jitter: float = math.nan
    seconds: float = 0.0
    error: str = ""
    reused: bool = False
    input_error: bool = False


def result_metrics(result) -> dict[str, float | int]:
    """frames, two_hands, interpenetration and jitter of a :class:`Reconstruction` (see :class:`VideoRow`)."""
    refined = bool(result.refined)
    px = np.asarray(result.refined["keypoints2d"] if refined else result.keypoints2d)
    inside = result.refined["inside"] if refined else result.inside
    valid = np.asarray(result.valid, bool)
    both = valid.all(-1)
    interpenetration = float(np.asarray(inside)[both].any(axis=(-1, -2)).mean()) if both.any() else math.nan
    det = np.asarray(result.det_keypoints2d)
    confident = (np.nan_to_num(np.asarray(result.det_score), nan=0.0) >= MIN_SCORE) & np.isfinite(det).all((-1, -2))
    jitter, _ = jitter_2d(px, confident & valid & np.isfinite(px).all((-1, -2)), det)
    return {"frames": int(result.num_frames), "two_hands": float(both.mean()) if len(both) else math.nan,
            "interpenetration": interpenetration, "jitter": jitter}


def describe_error(exc: BaseException) -> str:
    """One line for the summary: the message of our own errors (they name the input), the type with others."""
    text = " ".join(str(exc).split())
    plain = isinstance(exc, (ValueError, OSError)) and text
    return text if plain else f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def is_input_error(exc: BaseException) -> bool:
    """The failure lies in the video (our ValueErrors and file errors name it), not in the machine."""
    return isinstance(exc, (ValueError, OSError)) and not isinstance(exc, (MemoryError, ConnectionError))


# ------------------------------------------------------------------------------------------ the two stages


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
        for item in detect_regions(job.video, roi, cancel):
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
        if self.device.type == "cpu":
            torch.set_num_threads(self.threads)
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

    def describe(self) -> str:
        kinds: dict[str, int] = {}
        for d in self.devices:
            kinds[d] = kinds.get(d, 0) + 1
        workers = ", ".join(f"{n} on {d}" if n > 1 else d for d, n in kinds.items())
        return (f"{len(self.devices)} model worker{'s' if len(self.devices) > 1 else ''} ({workers}; "
                f"{self.threads} torch thread{'s' if self.threads > 1 else ''} each on the CPU), "
                f"{self.detectors} detector{'s' if self.detectors > 1 else ''}")


def plan_workers(device: str | None, workers: int | None, detectors: int | None, threads: int | None,
                 cores: int | None = None, gpus: int | None = None) -> WorkerPlan:
    """How many model workers on which devices, and how many detectors, for this machine (or, with ``cores`` and
    ``gpus``, a Ray cluster's totals).

    With GPUs (``device`` None, ``auto`` or ``cuda``): one worker per GPU, and the other cores detect: MediaPipe
    on the CPU (about 50-70 frames/s a core) bounds the throughput long before the network on a GPU does. On the
    CPU: a worker per three cores, each with one torch thread, and a detector per core (:data:`BENCHMARKS.md`,
    "Batch": the shipped model spends about twice as long in detection as in the network, and one torch thread
    is what a shared core runs best, ``run.cpu_threads``). ``workers``/``detectors``/``threads`` override."""
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
    jobs = list(jobs)
    frames_total = sum(j.frames for j in jobs)
    stages = ("detect", "model", "refine") if refine else ("detect", "model")
    share: dict[int, dict[str, float]] = {j.index: {} for j in jobs}
    by_index = {j.index: j for j in jobs}
    pending: deque[tuple[Job, int]] = deque((j, 0) for j in jobs)
    detecting: dict[cf.Future, tuple[Job, int]] = {}
    ready: deque[tuple[Job, Detected, int]] = deque()
    running: dict[cf.Future, tuple[Job, int, Detected, int]] = {}
    load = [0] * backend.workers
    done_videos = 0
    finished = False

    def frames_done() -> int:
        total = 0.0
        for index, parts in share.items():
            total += by_index[index].frames * sum(parts.get(s, 0.0) for s in stages) / len(stages)
        return int(total)

    def finish(job: Job, row: VideoRow) -> BatchUpdate:
        nonlocal done_videos
        done_videos += 1
        share[job.index] = {s: 1.0 for s in stages}
        return BatchUpdate(done_videos, len(jobs), frames_done(), frames_total, row, job)

    try:
        while pending or detecting or ready or running:
            while pending and len(detecting) + len(ready) < backend.detectors + backend.workers:
                job, tries = pending.popleft()
                detecting[backend.detect(job)] = (job, tries)
            while ready:
                worker = min(range(backend.workers), key=load.__getitem__)
                if load[worker] >= 2:
                    break
                job, detected, tries = ready.popleft()
                running[backend.reconstruct(worker, job, detected)] = (job, worker, detected, tries)
                load[worker] += 1
            done, _ = cf.wait([*detecting, *running], timeout=poll_s, return_when=cf.FIRST_COMPLETED)
            restarted: set[int | None] = set()
            for future in done:
                if future in detecting:
                    job, tries = detecting.pop(future)
                    try:
                        detected = future.result()
                    except Exception as exc:
                        if backend.worker_died(exc) and tries == 0:
                            if None not in restarted:
                                backend.restart(None)
                                restarted.add(None)
                            pending.appendleft((job, tries + 1))
                            continue
                        yield finish(job, VideoRow(job.video, job.output, "failed",
                                                   error=_died(exc, backend, "detecting")))
                        continue
                    if detected.error:
                        yield finish(job, VideoRow(job.video, job.output, "failed", seconds=round(detected.seconds, 3),
                                                   error=detected.error, input_error=detected.input_error))
                    else:
                        share[job.index]["detect"] = 1.0
                        ready.append((job, detected, tries))
                else:
                    job, worker, detected, tries = running.pop(future)
                    load[worker] -= 1
                    try:
                        row = future.result()
                    except Exception as exc:
                        message = backend.start_error(exc)
                        if message is not None:
                            raise WorkerStartError(message) from exc
                        if backend.worker_died(exc) and tries == 0:
                            if worker not in restarted:
                                backend.restart(worker)
                                restarted.add(worker)
                            ready.appendleft((job, detected, tries + 1))
                            continue
                        row = VideoRow(job.video, job.output, "failed", error=_died(exc, backend, "reconstructing"))
                    yield finish(job, row)
            for index, stage, step, total in backend.progress():
                if index in share and stage in stages and share[index].get(stage, 0.0) < 1.0:
                    share[index][stage] = step / max(total, 1)
            yield BatchUpdate(done_videos, len(jobs), frames_done(), frames_total)
        finished = True
    finally:
        if not finished:
            backend.cancel()
            for future in [*detecting, *running]:
                future.cancel()
            with contextlib.suppress(Exception):
                cf.wait([*detecting, *running], timeout=60)
        backend.close()


def _died(exc: BaseException, backend: Backend, doing: str) -> str:
    if backend.worker_died(exc):
        return f"the worker process died while {doing} this video, twice ({describe_error(exc)})"
    return describe_error(exc)


# ------------------------------------------------------------------------------------------ resume records


def record_path(out_dir: Path, name: str) -> Path:
    return out_dir / RECORDS / f"{name}.json"


def read_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_record(path: Path, record: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1, allow_nan=True))


@dataclasses.dataclass
class Plan:
    """A batch after looking at its output folder: the jobs to run and the rows of the videos reused from an
    earlier run (``rows`` holds every video in input order; those of ``jobs`` say ``not run`` until they ran)."""

    jobs: list[Job]
    rows: list[VideoRow]
    records: dict[int, tuple[Path, dict[str, Any]]]


def plan_batch(videos: Sequence[Path], out_dir: Path, identity: dict[str, Any], retry_failed: bool = False,
               hashed: Callable[[int, int], None] | None = None) -> Plan:
    """The resume decision for each video: skip it when its record holds the same key (the video's SHA-256 with
    ``identity``) and its result is there, or it failed on its input and ``retry_failed`` is off. A video whose
    size and modification time are those of its record is not hashed again. ``hashed(i, n)``: progress."""
    names = result_names(videos)
    settings = json.dumps(identity, sort_keys=True)
    jobs, rows, records = [], [], {}
    for index, (video, name) in enumerate(zip(videos, names)):
        output = out_dir / f"{name}.npz"
        path = record_path(out_dir, name)
        record = read_record(path) or {}
        stat = video.stat()
        if record.get("size") == stat.st_size and record.get("mtime_ns") == stat.st_mtime_ns and record.get("sha256"):
            sha = record["sha256"]
        else:
            sha = source_sha256(video)
        key = hashlib.sha256(f"{sha}\n{settings}".encode()).hexdigest()
        fresh = {"key": key, "video": str(video.resolve()), "sha256": sha, "size": stat.st_size,
                 "mtime_ns": stat.st_mtime_ns, "settings": identity}
        old = record.get("row") if record.get("key") == key else None
        reusable = isinstance(old, dict) and (
            (old.get("status") in ("ok", "truncated") and output.is_file())
            or (old.get("status") == "failed" and old.get("input_error") and not retry_failed))
        if reusable:
            known = {f.name for f in dataclasses.fields(VideoRow)}
            row = VideoRow(**{k: v for k, v in old.items() if k in known})
            row.video, row.result, row.reused = str(video), str(output), True
            rows.append(row)
        else:
            job = Job(index, str(video), str(output), name, key, frame_estimate(video))
            jobs.append(job)
            rows.append(VideoRow(str(video), str(output), "not run"))
            records[index] = (path, fresh)
        if hashed is not None:
            hashed(index + 1, len(videos))
    return Plan(jobs, rows, records)


def record_row(plan: Plan, job: Job, row: VideoRow) -> None:
    """A finished video into the plan's rows and its record on disk (what a rerun reads)."""
    plan.rows[job.index] = row
    path, record = plan.records[job.index]
    write_record(path, {**record, "row": dataclasses.asdict(row), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})


# ------------------------------------------------------------------------------------------ the summary


COLUMNS = ("video", "frames", "two_hands", "interpenetration", "jitter", "seconds", "status", "error", "reused",
           "result")


def overall_row(rows: Sequence[VideoRow], wall_s: float) -> dict[str, Any]:
    """The batch as one row: frames summed; two_hands weighted by frames, interpenetration by two-hand frames and
    jitter by frames over the videos with a result; seconds: the batch's wall time; status: counts."""
    made = [r for r in rows if r.status in ("ok", "truncated")]
    frames = sum(r.frames for r in made)

    def weighted(values: list[tuple[float, float]]) -> float:
        pairs = [(v, w) for v, w in values if math.isfinite(v) and w > 0]
        return sum(v * w for v, w in pairs) / sum(w for _, w in pairs) if pairs else math.nan

    counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
    status = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    reused = sum(r.reused for r in rows)
    return {"video": f"all {len(rows)} videos", "frames": frames,
            "two_hands": weighted([(r.two_hands, r.frames) for r in made]),
            "interpenetration": weighted([(r.interpenetration, r.frames * r.two_hands) for r in made]),
            "jitter": weighted([(r.jitter, r.frames) for r in made]), "seconds": round(wall_s, 3),
            "status": status + (f" ({reused} from an earlier run)" if reused else ""), "error": "",
            "reused": "", "result": ""}


def summary_rows(rows: Sequence[VideoRow], wall_s: float) -> list[dict[str, Any]]:
    out = [{c: getattr(r, c) if c != "result" or r.status in ("ok", "truncated") else "" for c in COLUMNS}
           for r in rows]
    return [*out, overall_row(rows, wall_s)]


def write_summary_csv(rows: Sequence[VideoRow], wall_s: float, path: Path) -> Path:
    """``summary.csv``: one line per video, then the overall line (numbers plain; NaN where undefined)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in summary_rows(rows, wall_s):
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue())
    return path


def markdown_table(rows: Sequence[VideoRow], wall_s: float) -> str:
    """The summary as a markdown table (the overall line last, in bold)."""

    def pct(v: float) -> str:
        return f"{100 * v:.1f} %" if math.isfinite(v) else "-"

    def num(v: float, digits: int = 4) -> str:
        return f"{v:.{digits}f}" if math.isfinite(v) else "-"

    lines = ["| video | frames | two hands | interpenetration | jitter | time (s) | status | error |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    table = summary_rows(rows, wall_s)
    for i, r in enumerate(table):
        last = i == len(table) - 1
        name = r["video"] if last else Path(r["video"]).name
        status = r["status"] + (" (earlier run)" if r["reused"] is True else "")
        cells = [name, str(r["frames"]) if r["status"] != "failed" else "-", pct(r["two_hands"]),
                 pct(r["interpenetration"]), num(r["jitter"]), num(r["seconds"], 1), status,
                 str(r["error"]).replace("|", "\\|")]
        if last:
            cells = [f"**{c}**" if c else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def videos_per_minute(rows: Iterable[VideoRow], wall_s: float) -> float:
    count = sum(1 for r in rows if not r.reused and r.status != "not run")
    return 60.0 * count / wall_s if wall_s > 0 else math.nan
