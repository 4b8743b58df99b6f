"""MediaPipe's palm detector + hand landmarker, offline, from the bundle shipped in ``assets/mediapipe``.

Why the Tasks API in VIDEO mode: it tracks hands from frame to frame (the landmarker's own ROI from the previous
frame) and falls back to the palm detector when a hand is lost, which finds a second hand on far more frames of
clasped hands than running each frame alone. Timestamps must increase, so one detector serves one pass over one
video; ``reset()`` starts a new pass.

Handedness: MediaPipe's documentation says its label assumes a mirrored (selfie) image. With the models of
0.10.21 in the Tasks API of mediapipe 1.2 we checked it on ordinary, unmirrored footage (a signer facing the
camera; two palms held up): the labels are right as they come. ``mirrored=True`` swaps them for selfie footage.
The labels are one piece of evidence; ``region.py`` weighs them against motion over time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from core_model.assets import asset_path
from core_model.geometry.hand_box import hand_size
from core_model.timing import StageTimer, stage

BUNDLE = ("mediapipe", "hand_landmarker.task")
log = logging.getLogger(__name__)


HARMLESS_NATIVE_LINES = (
    "INFO: ",  # LiteRT/TFLite: nine lines when a landmarker is made, two when it is closed
    "WARNING: Logging before InitGoogle() is written to STDERR",  # absl, before its first line
)
"""Starts of lines that MediaPipe's native code writes to file descriptor 2 and that say nothing to a user."""
HARMLESS_NATIVE_MESSAGES = (
    # LiteRT copies each frame into an aligned buffer (the copy is the fix it reports); first frame of a process
    "Input tensor memory is not aligned according to LiteRt's memory alignment requirements",
    # the hand landmarker's own graph projects landmarks from square regions, where this is supported
    "Using NORM_RECT without IMAGE_DIMENSIONS is only supported for the square ROI",
)
"""absl log messages (``W0000 <time> <thread> <file>:<line>] <message>``) of the same kind, by their text."""


def _harmless(line: str) -> bool:
    return line.startswith(HARMLESS_NATIVE_LINES) or any(m in line for m in HARMLESS_NATIVE_MESSAGES)


@contextlib.contextmanager
def native_chatter_held_back() -> Iterator[None]:
    """Drop what MediaPipe's native code writes straight onto file descriptor 2 and that says nothing to a user
    (:data:`HARMLESS_NATIVE_LINES`, :data:`HARMLESS_NATIVE_MESSAGES`) while the block runs; every other line,
    other warnings and errors included, is written to ``sys.stderr`` when the block ends.

    Why at the file-descriptor level: LiteRT's default logger writes with ``fprintf(stderr)`` and absl's with
    ``write(2)``; neither reads an environment variable (``TF_CPP_MIN_LOG_LEVEL``, ``GLOG_minloglevel`` and
    ``ABSL_MIN_LOG_LEVEL`` were tried with mediapipe 1.2.3: no effect), and the wheel exposes no log level. Holding
    back costs ~60 us (a temporary file, two ``dup2``), against ~30 ms for detecting the hands of a frame. Debug
    logging (``interhand -v``) shows the lines unfiltered."""
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (an embedding host): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines(keepends=True)
                    if not _harmless(line)]
            if kept:
                sys.stderr.write("".join(kept))


def _import_tasks():
    """``mediapipe.tasks.python`` (BaseOptions, vision), imported once, without pinning the importer's frames.

    Why: mediapipe's ``tasks.python.audio.core.audio_record`` imports ``sounddevice`` inside ``try`` and keeps the
    OSError it raises without PortAudio (``sd_error``, a module global) for later. That exception's traceback holds
    the frame that caught it, and through ``f_back`` every frame of whatever first imported mediapipe: the GUI's
    ``Runs.start`` (its window, panels and plotters) or a run's generator (its model and arrays). They stayed alive
    until the interpreter's exit and were freed during its finalisation, where shiboken (PySide6 6.11) no longer
    clears the weak references to the Qt wrappers it frees: pyqtgraph's WidgetGroup then cleared a weak reference
    inside freed memory, a segmentation fault at exit (found with ``PYTHONMALLOC=debug``; see BENCHMARKS.md
    "GUI soak"). Dropping the tracebacks of such module-level exceptions lets those frames go; mediapipe only ever
    re-raises the exception, which needs no traceback."""
    try:
        from mediapipe.tasks.python import BaseOptions, vision
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("hand detection needs mediapipe: pip install 'mediapipe>=1.2'") from exc
    for name, module in list(sys.modules.items()):
        if name.startswith("mediapipe.") and module is not None:
            for value in list(vars(module).values()):
                if isinstance(value, BaseException) and value.__traceback__ is not None:
                    value.__traceback__ = None
    return BaseOptions, vision


def warm_up_detector() -> None:
    """Import MediaPipe's Tasks API and load its native library now, in the calling thread; later calls cost
    nothing.

    Why: both hold the GIL, the import while its modules' bodies run and the library while ctypes' dlopen loads it
    (~0.1 s each; MediaPipe loads it when the first detector is made). A GUI calls this on its own thread before a
    run's worker starts; otherwise the worker's first detector does both and the window freezes mid-run. mediapipe
    1.2 has no public way to load the library alone, so this uses its internal loader: the version is pinned in
    pyproject.toml, and the tests call this function."""
    _import_tasks()
    from mediapipe.tasks.python.core.mediapipe_c_bindings import load_raw_library

    load_raw_library()


NO_WITNESS, MEDIAPIPE, PERCEPTION = 0, 1, 2
"""Which witness a hand's landmarks come from (the result file's ``witness``): none, MediaPipe's hand landmarker,
or the project's own two-hand perception (``core_model.perception``) where MediaPipe missed the hand."""


@dataclasses.dataclass
class FrameHands:
    """The hands reported on one frame (K <= 2 after duplicates are dropped).

    keypoints: [K, 21, 2] pixels in the frame, DESIGN order (0 wrist ... 20 pinky tip); NaN on a keypoint the
    witness does not vouch for.
    right_prob: [K] probability that each hand is a right hand (from MediaPipe's handedness).
    score: [K] the witness's confidence in the hand (MediaPipe's handedness confidence, its only per-hand
    confidence in the Tasks API).
    source: [K] int8 the witness of each hand (:data:`MEDIAPIPE` unless given).
    """

    keypoints: np.ndarray
    right_prob: np.ndarray
    score: np.ndarray
    source: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.source is None:
            self.source = np.full(len(self.keypoints), MEDIAPIPE, np.int8)

    @classmethod
    def empty(cls) -> FrameHands:
        return cls(np.zeros((0, 21, 2), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return len(self.keypoints)

    def take(self, keep: list[int] | np.ndarray) -> FrameHands:
        """The hands at indices ``keep``."""
        keep = np.asarray(keep, np.int64)
        return FrameHands(self.keypoints[keep], self.right_prob[keep], self.score[keep], self.source[keep])

    def merged(self, other: FrameHands) -> FrameHands:
        """This frame's hands followed by ``other``'s."""
        return FrameHands(np.concatenate([self.keypoints, other.keypoints]).astype(np.float32),
                          np.concatenate([self.right_prob, other.right_prob]).astype(np.float32),
                          np.concatenate([self.score, other.score]).astype(np.float32),
                          np.concatenate([self.source, other.source]).astype(np.int8))


def drop_duplicates(hands: FrameHands, tolerance: float = 0.25) -> FrameHands:
    """MediaPipe sometimes reports one hand twice. Two reports are one hand when their wrists *and* middle-finger
    bases lie within ``tolerance`` hand sizes of each other (two clasped hands have their wrists far apart)."""
    if len(hands) < 2:
        return hands
    a, b = hands.keypoints[0], hands.keypoints[1]
    scale = float(min(hand_size(a), hand_size(b)))
    same = all(np.hypot(*(a[j] - b[j])) < tolerance * scale for j in (0, 9))
    if not same:
        return hands
    return hands.take([int(np.argmax(hands.score))])


class MediaPipeHandDetector:
    """Two-hand landmark detection on RGB frames. ``model_path`` defaults to the shipped bundle; nothing is ever
    downloaded. Thresholds are MediaPipe's (0.5); lower ones trade false hands for recall."""

    def __init__(self, model_path: str | os.PathLike[str] | None = None, min_detection: float = 0.5,
                 min_presence: float = 0.5, min_tracking: float = 0.5, mirrored: bool = False) -> None:
        BaseOptions, vision = _import_tasks()
        self.model_path = Path(model_path) if model_path is not None else asset_path(*BUNDLE)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"model_path: no such file {self.model_path}")
        for name, value in (("min_detection", min_detection), ("min_presence", min_presence),
                            ("min_tracking", min_tracking)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: expected a confidence in [0, 1], got {value!r}")
        self.mirrored = mirrored
        self._vision = vision
        self._options = vision.HandLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=vision.RunningMode.VIDEO, num_hands=2, min_hand_detection_confidence=min_detection,
            min_hand_presence_confidence=min_presence, min_tracking_confidence=min_tracking)
        self._landmarker = None
        self._last_ms = -1

    def reset(self) -> None:
        """Start a new pass (a new video, or a seek backwards): tracking state and timestamps start over."""
        self.close()

    def close(self) -> None:
        if self._landmarker is not None:
            with native_chatter_held_back():
                self._landmarker.close()
            self._landmarker = None
        self._last_ms = -1

    def __enter__(self) -> MediaPipeHandDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def detect(self, frame: np.ndarray, timestamp_ms: int) -> FrameHands:
        """frame: RGB uint8 [H, W, 3]; timestamp_ms increasing within a pass."""
        import mediapipe as mp

        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frame: expected RGB uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
        if self._landmarker is None:
            with native_chatter_held_back():
                self._landmarker = self._vision.HandLandmarker.create_from_options(self._options)
        timestamp_ms = max(int(timestamp_ms), self._last_ms + 1)
        self._last_ms = timestamp_ms
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
        with native_chatter_held_back():  # the graph runs in the call: its lines are written before it returns
            result = self._landmarker.detect_for_video(image, timestamp_ms)
        if not result.hand_landmarks:
            return FrameHands.empty()
        height, width = frame.shape[:2]
        keypoints = np.array([[[p.x * width, p.y * height] for p in hand] for hand in result.hand_landmarks],
                             np.float32)
        score = np.array([h[0].score for h in result.handedness], np.float32)
        is_right = np.array([h[0].category_name.lower() == "right" for h in result.handedness])
        if self.mirrored:
            is_right = ~is_right
        right_prob = np.where(is_right, score, 1.0 - score).astype(np.float32)
        return drop_duplicates(FrameHands(keypoints, right_prob, score))


class Witness(Protocol):
    """A second witness that completes the detector's hands on a frame and segments the hands in a crop
    (``core_model.pipeline.witness``)."""

    def reset(self) -> None: ...

    def complete(self, frame: np.ndarray, hands: FrameHands) -> FrameHands: ...

    def segment(self, frame: np.ndarray, bbox: np.ndarray) -> np.ndarray: ...


def detect_frames(source: Iterable[tuple[int, np.ndarray]], detector: MediaPipeHandDetector, fps: float,
                  max_side: int = 1280, timer: StageTimer | None = None, witness: Witness | None = None
                  ) -> Iterator[tuple[int, FrameHands]]:
    """Run ``detector`` over a stream of (index, RGB frame), one pass; yields (index, hands) as it goes.

    Frames larger than ``max_side`` are shrunk for detection (MediaPipe works at 192-256 pixels inside; an 8K
    frame only costs time) and the landmarks scaled back to full-frame pixels. ``witness``: completes the hands
    on each frame, at full resolution (its time is charged to the ``witness`` stage)."""
    import cv2

    detector.reset()
    if witness is not None:
        witness.reset()
    for index, frame in source:
        with stage(timer, "detect"):
            scale = min(1.0, max_side / max(frame.shape[:2]))
            small = frame if scale == 1.0 else cv2.resize(frame, None, fx=scale, fy=scale,
                                                          interpolation=cv2.INTER_AREA)
            hands = detector.detect(small, round(index * 1000.0 / fps))
        if scale != 1.0 and len(hands):
            hands = FrameHands(hands.keypoints / scale, hands.right_prob, hands.score, hands.source)
        if witness is not None:
            with stage(timer, "witness"):
                hands = witness.complete(frame, hands)
        yield index, hands
