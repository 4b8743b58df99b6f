"""Pass 1 (hand detection) in worker processes, each decoding and detecting one contiguous segment of the video.

Why segments with a warm-up: MediaPipe's landmarker in VIDEO mode tracks each hand from the frame before
(``detect.py``), so what it reports on a frame depends on the frames before it, and the frames of one video cannot
be dealt out one by one. Each worker opens the video itself, seeks to its segment (FFmpeg decodes on from the key
frame before it: no frame is decoded twice beyond that and the warm-up), and runs a detector of its own from
``warmup`` frames before the segment's first frame, dropping what it reports there: by the segment's start its
tracker has found the hands it can see. What stays different from one sequential pass (a hand the sequential
tracker had held since before the warm-up and the palm detector cannot find again) is measured on the real clips in
BENCHMARKS.md ("Parallel hand detection").

A seek that landed on the wrong frame would shift every detection of a segment. The warm-up frames are also the
last frames of the segment before, which its worker decoded without seeking there: both workers keep thumbnails of
them, and where the two disagree the parallel pass is given up and the caller detects sequentially (logged).

Workers are spawned processes (no fork of a threaded GUI or torch process); they import OpenCV and MediaPipe, not
torch. Each sends progress and, at the end, its segment's detections through one queue; cancel is checked between
messages, and a cancelled or failed pass terminates the workers. A spawned process imports the parent's main
module first: a script that runs the pipeline needs Python's ``if __name__ == "__main__":`` guard (and a frozen app
``multiprocessing.freeze_support()``, as ``packaging/entry_*.py`` have). A worker that cannot start is reported and
the pass runs in the calling process instead.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import multiprocessing
import os
import queue as queue_module
import traceback
from collections.abc import Callable, Iterator

import numpy as np

from core_model.cancel import check_cancel
from core_model.pipeline.detect import FrameHands
from core_model.pipeline.video import VideoInfo
from core_model.timing import StageTimer

log = logging.getLogger(__name__)

WARMUP = 15
"""Frames a worker detects before its segment and drops, so that its tracker has found the hands by the first frame
it keeps (half a second at 30 frames/s; see BENCHMARKS.md "Parallel hand detection" for 0, 15 and 30)."""
MIN_SEGMENT = 60
"""Frames a worker detects at least, its warm-up included: a worker costs a second or two to start here (a process,
OpenCV, MediaPipe's native library and models) and ``warmup`` frames detected twice; shorter segments cost more than
they save."""
PROGRESS_EVERY = 8
"""Frames between a worker's progress messages."""
THUMB = 24
"""Side of the grey thumbnails that check a seek landed on the frame it asked for."""
THUMB_TOLERANCE = 3.0
"""Mean absolute difference (grey levels of 255) under which two thumbnails show the same frame: decoding after a
seek may differ by a rounding from decoding straight through, a neighbouring frame of a moving video differs more."""


def default_workers(cores: int) -> int:
    """Detection processes for a machine with ``cores`` usable cores: one (this process, no worker) on two cores or
    fewer, where two workers were measured 1.1-1.5x faster on a quiet machine but up to 25 % slower while other
    processes loaded it (BENCHMARKS.md "Parallel hand detection"), and the pass must never be slower than the
    sequential one; else one per core."""
    return 1 if cores <= 2 else cores


def plan_segments(frames: int, workers: int, warmup: int = WARMUP, min_segment: int = MIN_SEGMENT
                  ) -> list[tuple[int, int | None]]:
    """The (start, stop) frame ranges ``frames`` frames are cut into for ``workers`` processes, in order, together
    covering every frame; the last stop is None (to the end of the file, whatever its container announced). Fewer
    segments where a worker would detect under ``min_segment`` frames; one (the sequential pass) for ``workers`` <= 1.
    The first segment is ``warmup`` frames longer than the others, which detect that many before theirs."""
    if workers < 1:
        raise ValueError(f"workers: expected a positive number of processes, got {workers}")
    if warmup < 0:
        raise ValueError(f"warmup: expected a non-negative number of frames, got {warmup}")
    count = max(1, min(workers, frames // max(1, min_segment)))
    if count == 1:
        return [(0, None)]
    work = (frames + (count - 1) * warmup) / count  # frames each worker detects, warm-up included
    bounds = [0] + [round(work + k * (work - warmup)) for k in range(count - 1)]
    return [(start, bounds[k + 1] if k + 1 < count else None) for k, start in enumerate(bounds)]


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """A small grey image of ``frame`` (RGB uint8) for comparing frames decoded by two workers."""
    import cv2

    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA)


@dataclasses.dataclass
class Segment:
    """What a worker found on its segment. hands: per kept frame; head: thumbnails of the warm-up frames (index ->
    image); tail: thumbnails of the segment's last frames, which the next worker warms up on; stop_reason: set when
    decoding stopped early; seconds: the worker's stage times (decode, detect)."""

    start: int
    hands: list[FrameHands]
    head: dict[int, np.ndarray]
    tail: dict[int, np.ndarray]
    stop_reason: str | None
    seconds: dict[str, float]


@dataclasses.dataclass
class Detections:
    """The whole pass: the detector's hands per frame (as many as were decoded) and why decoding stopped early."""

    frames: list[FrameHands]
    stop_reason: str | None


def _pack(hands: list[FrameHands]) -> tuple[np.ndarray, ...]:
    """Per-frame hands as four arrays (a few bytes to pickle instead of thousands of small objects)."""
    counts = np.array([len(h) for h in hands], np.int64)
    if not len(hands):
        return counts, np.zeros((0, 21, 2), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32)
    return (counts, np.concatenate([h.keypoints for h in hands]), np.concatenate([h.right_prob for h in hands]),
            np.concatenate([h.score for h in hands]))


def _unpack(counts: np.ndarray, keypoints: np.ndarray, right_prob: np.ndarray, score: np.ndarray
            ) -> list[FrameHands]:
    ends = np.cumsum(counts)
    return [FrameHands(keypoints[e - c:e], right_prob[e - c:e], score[e - c:e]) for c, e in zip(counts, ends)]


def _detect_segment(worker: int, video: str, start: int, stop: int | None, warmup: int, next_warmup: int,
                    messages) -> None:
    """Worker process: detect frames ``start`` .. ``stop`` of ``video``, from ``warmup`` frames before; send
    ("progress", worker, frames kept so far) now and then and ("done", worker, packed :class:`Segment` fields) or
    ("error", worker, exception, traceback text) at the end."""
    try:
        from core_model.pipeline.detect import MediaPipeHandDetector, detect_frames
        from core_model.pipeline.prefetch import Prefetch
        from core_model.pipeline.video import open_source

        timer = StageTimer()
        first = max(0, start - warmup)
        head: dict[int, np.ndarray] = {}
        tail: dict[int, np.ndarray] = {}
        hands: list[FrameHands] = []

        def thumbed(stream):
            for index, frame in stream:
                if index < start:
                    head[index] = thumbnail(frame)
                elif stop is not None and index >= stop - next_warmup:
                    tail[index] = thumbnail(frame)
                yield index, frame

        with open_source(video) as source, MediaPipeHandDetector() as detector:
            stream = thumbed(timer.iterate("decode", source.frames(first, stop)))
            with Prefetch(stream, depth=2, name="decode") as decoded:
                for index, found in detect_frames(decoded, detector, source.info.fps, timer=timer):
                    if index < start:
                        continue
                    hands.append(found)
                    if len(hands) % PROGRESS_EVERY == 0:
                        messages.put(("progress", worker, len(hands)))
            stop_reason = source.stop_reason
        messages.put(("done", worker, (start, _pack(hands), head, tail, stop_reason, timer.seconds)))
    except BaseException as exc:  # sent to the parent, raised there
        text = traceback.format_exc()
        try:
            messages.put(("error", worker, exc, text))
        except Exception:  # an exception that does not pickle: its text
            messages.put(("error", worker, RuntimeError(f"{type(exc).__name__}: {exc}"), text))


def _seeks_agree(segments: list[Segment]) -> tuple[bool, str]:
    """Whether each worker's warm-up frames look like the same frames decoded by the worker before it."""
    for before, after in itertools.pairwise(segments):
        shared = sorted(set(before.tail) & set(after.head))
        for index in shared:
            diff = float(np.abs(before.tail[index].astype(np.int16) - after.head[index].astype(np.int16)).mean())
            if diff > THUMB_TOLERANCE:
                return False, (f"frame {index} decoded after a seek differs from the same frame decoded straight "
                               f"through (mean difference {diff:.1f} grey levels)")
    return True, ""


def detect_in_workers(video: str | os.PathLike[str], info: VideoInfo, segments: list[tuple[int, int | None]], *,
                      warmup: int = WARMUP, cancel: Callable[[], bool] | None = None,
                      timer: StageTimer | None = None) -> Iterator[int | Detections | None]:
    """Detect ``segments`` of ``video`` (from :func:`plan_segments`) in one worker process each. Yields the frames
    done so far (kept frames, all workers together) as they come, then the :class:`Detections`, or None when a seek
    was found to land elsewhere (the caller then detects sequentially). ``timer``: the workers' decode and detect
    seconds, summed (processor seconds across workers, not wall time)."""
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    processes = []
    done: dict[int, Segment] = {}
    progress = [0] * len(segments)
    heard: set[int] = set()
    failed = False
    try:
        for k, (start, stop) in enumerate(segments):
            process = context.Process(
                target=_detect_segment, name=f"detect-{k}", daemon=True,
                args=(k, str(video), start, stop, warmup if k else 0, warmup if k + 1 < len(segments) else 0,
                      messages))
            process.start()
            processes.append(process)
        while len(done) < len(segments):
            check_cancel(cancel, f"cancelled while detecting hands ({sum(progress)} frames done)")
            try:
                message = messages.get(timeout=0.1)
            except queue_module.Empty:
                for k, process in enumerate(processes):
                    if k in done or process.exitcode is None or process.exitcode == 0:
                        continue
                    if k not in heard:  # it never started: see the module's docstring
                        log.warning("hand detection worker %d could not start (exit code %d; a script that runs "
                                    "the pipeline needs the `if __name__ == \"__main__\":` guard); detecting in "
                                    "this process", k, process.exitcode)
                        failed = True
                        break
                    raise RuntimeError(f"hand detection: worker {k} (frames {segments[k][0]}..) ended with exit "
                                       f"code {process.exitcode} before finishing") from None
                if failed:
                    break
                continue
            kind, k = message[0], message[1]
            heard.add(k)
            if kind == "error":
                log.debug("hand detection worker %d failed:\n%s", k, message[3])
                raise message[2]
            if kind == "progress":
                progress[k] = message[2]
            else:
                start, packed, head, tail, stop_reason, seconds = message[2]
                done[k] = Segment(start, _unpack(*packed), head, tail, stop_reason, seconds)
                progress[k] = len(done[k].hands)
            yield sum(progress)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join()
        messages.close()
    if failed:
        yield None
        return
    ordered = [done[k] for k in range(len(segments))]
    if timer is not None:
        for segment in ordered:
            for name, seconds in segment.seconds.items():
                timer.add(name, seconds)
    agree, why = _seeks_agree(ordered)
    if not agree:
        log.warning("parallel hand detection given up for %s: %s; detecting sequentially", info.path.name, why)
        yield None
        return
    frames: list[FrameHands] = []
    stop_reason = None
    for (start, stop), segment in zip(segments, ordered):
        frames.extend(segment.hands)
        if segment.stop_reason or (stop is not None and start + len(segment.hands) < stop):
            # Decoding stopped inside this segment: the frames after it are not the video's (as sequentially).
            stop_reason = segment.stop_reason or (f"{info.path.name}: decoding stopped after frame "
                                                  f"{start + len(segment.hands) - 1}")
            break
    yield Detections(frames, stop_reason)
