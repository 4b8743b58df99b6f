"""Frame sources: video files (anything OpenCV's FFmpeg reads) and image folders, streamed frame by frame.

Why streamed: a 10-minute 720p video is ~50 GB of RGB frames; nothing here holds more than one decoded frame.
Frames come out as RGB ``uint8 [H, W, 3]`` whatever the source holds (grayscale is broadcast to three channels,
16-bit is scaled to 8 bits), already turned upright when the container carries rotation metadata.

A truncated or damaged file is decoded as far as it goes: iteration stops there and ``stopped_at`` /
``stop_reason`` say where and why, so the caller can report it instead of failing the whole run.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MIN_SIDE = 32  # a hand needs a few dozen pixels; below this a source is refused rather than run to no result
MAX_PIXELS = 8192 * 8192


class VideoError(ValueError):
    """A source that cannot be read as a sequence of frames; the message names the file and the reason."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What a source is. width/height: of the frames as delivered (after rotation). frame_count: the container's
    count (an estimate for some codecs; the exact number is known once decoding has reached the end).
    rotation: degrees clockwise applied to turn stored frames upright (0, 90, 180, 270).
    bit_depth: of the stored samples (8 or 16); frames are always delivered as uint8."""

    path: Path
    kind: str  # "video" or "images"
    fps: float
    frame_count: int
    width: int
    height: int
    rotation: int = 0
    bit_depth: int = 8
    channels: int = 3


def to_rgb8(frame: np.ndarray, bgr: bool = True) -> np.ndarray:
    """Any decoded frame (gray, BGR, BGRA; uint8 or uint16) as RGB uint8 [H, W, 3]."""
    if frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    elif frame.dtype != np.uint8:
        raise VideoError(f"frame: unsupported sample type {frame.dtype} (expected 8- or 16-bit integers)")
    if frame.ndim == 2:
        return np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] not in (1, 3, 4):
        raise VideoError(f"frame: unsupported layout {frame.shape}")
    if frame.shape[2] == 1:
        return np.repeat(frame, 3, axis=2)
    frame = frame[:, :, :3]
    return np.ascontiguousarray(frame[:, :, ::-1]) if bgr else np.ascontiguousarray(frame)


def _check_size(path: Path, width: int, height: int) -> None:
    if min(width, height) < MIN_SIDE:
        raise VideoError(f"{path}: frames are {width}x{height}; at least {MIN_SIDE} pixels a side are needed to "
                         "see a hand")
    if width * height > MAX_PIXELS:
        raise VideoError(f"{path}: frames are {width}x{height}, more than {MAX_PIXELS} pixels")


class VideoFileSource:
    """A video file decoded by OpenCV (FFmpeg backend). Sequential iteration is the fast path; ``read(i)`` seeks
    (exact for intra-coded and most inter-coded files: FFmpeg seeks to the previous key frame and decodes on)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"video: no such file {self.path}")
        if self.path.is_dir():
            raise VideoError(f"video: {self.path} is a folder; open it as an image folder")
        if self.path.stat().st_size == 0:
            raise VideoError(f"video: {self.path} is empty (0 bytes)")
        self._cap = self._open()
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        rotation = int(self._cap.get(cv2.CAP_PROP_ORIENTATION_META) or 0) % 360
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise VideoError(f"video: {self.path} holds no decodable frame (zero frames, or a codec FFmpeg lacks)")
        depth = 16 if first.dtype == np.uint16 else 8
        channels = 1 if first.ndim == 2 else first.shape[2]
        frame = to_rgb8(first)
        height, width = frame.shape[:2]
        _check_size(self.path, width, height)
        if not (np.isfinite(fps) and 0.1 <= fps <= 1000):
            raise VideoError(f"video: {self.path} reports an unusable frame rate {fps!r}")
        self.info = VideoInfo(self.path, "video", fps, max(count, 1), width, height, rotation, depth, channels)
        self._pos = 1  # index of the frame the capture returns next
        self.stopped_at: int | None = None
        self.stop_reason: str | None = None

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise VideoError(f"video: {self.path} is not a video OpenCV/FFmpeg can read (damaged, or not a video "
                             "despite its name)")
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)  # FFmpeg turns frames upright from the display matrix
        return cap

    def __enter__(self) -> VideoFileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._cap.release()

    def __len__(self) -> int:
        return self.info.frame_count

    def _rewind(self) -> None:
        self._cap.release()
        self._cap = self._open()
        self._pos = 0

    def _grab(self) -> np.ndarray | None:
        ok, frame = self._cap.read()
        if not ok or frame is None:
            return None
        self._pos += 1
        return to_rgb8(frame)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        """(index, RGB uint8 frame) from the first frame to the last readable one."""
        return self.frames()

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(index, RGB uint8 frame) from ``start`` up to ``stop`` (None: the last readable frame): one seek, then
        sequential decoding (one segment of the video for parallel hand detection). Fewer when the file ends
        first: where that is damage, not the end announced, ``stopped_at`` / ``stop_reason`` say so."""
        if start < 0 or (stop is not None and stop < start):
            raise ValueError(f"start, stop: expected 0 <= start <= stop, got {start}, {stop}")
        if start == 0:
            self._rewind()
        elif start != self._pos:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, start)
            self._pos = start
        self.stopped_at = self.stop_reason = None
        index = start
        while stop is None or index < stop:
            frame = self._grab()
            if frame is None:
                reason = truncation_reason(self.path.name, index, self.info.frame_count)
                if reason:
                    self.stopped_at, self.stop_reason = index, reason
                return
            yield index, frame
            index += 1

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` (random access, for the viewer); IndexError past the last readable frame. Reading
        forward one frame at a time does not seek; elsewhere OpenCV seeks to the key frame before and decodes on."""
        if not isinstance(index, (int, np.integer)) or index < 0:
            raise IndexError(f"index: expected a non-negative frame index, got {index!r}")
        index = int(index)
        if index == 0 and self._pos != 0:
            self._rewind()
        elif index != self._pos:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            self._pos = index
        frame = self._grab()
        if frame is None:
            raise IndexError(f"index: frame {index} cannot be read from {self.path.name} "
                             f"({self.info.frame_count} announced)")
        return frame


def truncation_reason(name: str, frames_read: int, expected: int) -> str | None:
    """Why decoding ``name`` stopped after ``frames_read`` of the ``expected`` frames its container announces, or
    None when that is its end: containers often over-count by a frame or two (edit lists, B-frame delay); a larger
    shortfall is damage."""
    if frames_read < expected - max(2, expected // 100):
        return (f"{name}: decoding stopped after frame {frames_read - 1} of the {expected} the file announces "
                "(truncated or damaged); the frames before it were used")
    return None


def declared_image_size(path: Path) -> tuple[str, int] | None:
    """(``"WxH"``, pixels) an image file's header declares, read without decoding it (Pillow); None when Pillow does
    not know the format (OpenCV's own limit of a gigapixel then bounds what it decodes). Why: an image's header can
    declare any size, and decoding allocates it first."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = (int(v) for v in image.size)
                return f"{width}x{height}", width * height
    except Image.DecompressionBombError as exc:  # Pillow refuses to open it at all; its message holds the size
        numbers = [int(n) for n in re.findall(r"\d+", str(exc))]
        pixels = numbers[0] if numbers else MAX_PIXELS + 1
        return f"{pixels} pixels", pixels
    except Exception:  # not a format Pillow knows, or damaged: OpenCV decides
        return None


def _natural_key(path: Path) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


class ImageFolderSource:
    """A folder of images (one per frame, in natural name order: 2.png before 10.png) at a given frame rate."""

    def __init__(self, folder: str | os.PathLike[str], fps: float = 30.0) -> None:
        self.path = Path(folder)
        if not self.path.is_dir():
            raise FileNotFoundError(f"image folder: no such folder {self.path}")
        if not (np.isfinite(fps) and fps > 0):
            raise ValueError(f"fps: expected a positive frame rate, got {fps!r}")
        self.files = sorted((p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
        if not self.files:
            raise VideoError(f"image folder: {self.path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        first_raw = self._load_raw(0)
        first = to_rgb8(first_raw)
        height, width = first.shape[:2]
        _check_size(self.files[0], width, height)
        depth = 16 if first_raw.dtype == np.uint16 else 8
        channels = 1 if first_raw.ndim == 2 else first_raw.shape[2]
        self.info = VideoInfo(self.path, "images", float(fps), len(self.files), width, height, 0, depth, channels)
        self.stopped_at: int | None = None
        self.stop_reason: str | None = None

    def __enter__(self) -> ImageFolderSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing stays open between reads."""

    def __len__(self) -> int:
        return len(self.files)

    def _load_raw(self, index: int) -> np.ndarray:
        path = self.files[index]
        declared = declared_image_size(path)
        if declared is not None and declared[1] > MAX_PIXELS:
            raise VideoError(f"image folder: {path} declares {declared[0]}, more than {MAX_PIXELS} pixels (not "
                             "decoded)")
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise VideoError(f"image folder: {path} is not an image OpenCV can read")
        return image

    def read(self, index: int) -> np.ndarray:
        if not isinstance(index, (int, np.integer)) or not 0 <= index < len(self.files):
            raise IndexError(f"index: expected 0 <= index < {len(self.files)}, got {index!r}")
        frame = to_rgb8(self._load_raw(int(index)))
        if frame.shape[:2] != (self.info.height, self.info.width):
            raise VideoError(f"image folder: {self.files[index]} is {frame.shape[1]}x{frame.shape[0]}, the "
                             f"first image {self.info.width}x{self.info.height}; all frames must have one size")
        return frame

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        return self.frames()

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(index, frame) from ``start`` up to ``stop`` (None: the last image); stops at an unreadable image, and
        ``stopped_at`` / ``stop_reason`` say which (see :meth:`VideoFileSource.frames`)."""
        if start < 0 or (stop is not None and stop < start):
            raise ValueError(f"start, stop: expected 0 <= start <= stop, got {start}, {stop}")
        self.stopped_at = self.stop_reason = None
        for index in range(start, len(self.files) if stop is None else min(stop, len(self.files))):
            try:
                frame = self.read(index)
            except VideoError as exc:
                self.stopped_at, self.stop_reason = index, f"stopped at image {index}: {exc}"
                return
            yield index, frame


def open_source(path: str | os.PathLike[str], fps: float | None = None) -> VideoFileSource | ImageFolderSource:
    """A video file or an image folder. ``fps`` is required meaning only for folders (default 30); for a video it
    overrides the container's rate only when given."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"video: no such file or folder {path}")
    if path.is_dir():
        return ImageFolderSource(path, fps if fps is not None else 30.0)
    source = VideoFileSource(path)
    if fps is not None:
        if not (np.isfinite(fps) and fps > 0):
            raise ValueError(f"fps: expected a positive frame rate, got {fps!r}")
        source.info = dataclasses.replace(source.info, fps=float(fps))
    return source
