"""The one current frame every panel shows, and what is loaded: result files (the first is the one shown in
the video, 3D and attention panels; all are overlaid in the charts) and the video. Panels never talk to each
other: they set the frame here and redraw on its signals, which is what keeps them synchronized."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from PySide6 import QtCore

from core_model.pipeline.video import VideoError, open_source
from core_model.results import Reconstruction


@dataclasses.dataclass
class LoadedResult:
    """A result and which of its frames are final: all of them for a file, those finished so far while a run
    streams in (``ready`` [N] bool). path: the file it came from or was saved to (None while running)."""

    label: str
    result: Reconstruction
    ready: np.ndarray
    path: Path | None = None

    @classmethod
    def from_file(cls, path: Path, result: Reconstruction) -> LoadedResult:
        return cls(path.stem, result, np.ones(result.num_frames, bool), path)

    def shows(self, frame: int) -> bool:
        """Frame ``frame`` has a finished reconstruction to draw."""
        return 0 <= frame < len(self.ready) and bool(self.ready[frame])


class Session(QtCore.QObject):
    """frame_changed(frame): the current frame moved. results_changed(): results were added, removed or replaced.
    frames_updated(indices): frames of the primary result were filled in by a running model.
    video_changed(): a video was opened or closed."""

    frame_changed = QtCore.Signal(int)
    results_changed = QtCore.Signal()
    frames_updated = QtCore.Signal(object)
    video_changed = QtCore.Signal()

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.results: list[LoadedResult] = []
        self.video = None
        self.video_path: Path | None = None
        self.frame = 0
        self._cached: tuple[int, np.ndarray] | None = None

    @property
    def primary(self) -> LoadedResult | None:
        return self.results[0] if self.results else None

    @property
    def num_frames(self) -> int:
        if self.primary is not None:
            return self.primary.result.num_frames
        return self.video.info.frame_count if self.video is not None else 0

    @property
    def fps(self) -> float:
        if self.video is not None:
            return float(self.video.info.fps)
        return float(self.primary.result.meta.fps) if self.primary is not None else 30.0

    def set_frame(self, frame: int, force: bool = False) -> None:
        frame = int(np.clip(frame, 0, max(self.num_frames - 1, 0)))
        if frame != self.frame or force:
            self.frame = frame
            self.frame_changed.emit(frame)

    def open_video(self, path: Path) -> None:
        """Open a video or image folder (VideoError / FileNotFoundError with core_model's message)."""
        source = open_source(path)
        self.close_video()
        self.video, self.video_path = source, Path(path)
        self.video_changed.emit()
        self.set_frame(self.frame, force=True)

    def close_video(self) -> None:
        if self.video is not None:
            self.video.close()
        self.video, self.video_path, self._cached = None, None, None

    def read_frame(self, frame: int) -> np.ndarray | None:
        """The video's frame (RGB uint8), None without a video or past its end; the last one read is kept, so
        every panel drawing the same frame decodes it once."""
        if self.video is None:
            return None
        if self._cached is not None and self._cached[0] == frame:
            return self._cached[1]
        try:
            image = self.video.read(frame)
        except (IndexError, VideoError):  # past the end; an image folder's image of another size or unreadable
            return None
        self._cached = (frame, image)
        return image

    def add_result(self, loaded: LoadedResult, primary: bool = False) -> None:
        if primary:
            self.results.insert(0, loaded)
        else:
            self.results.append(loaded)
        self.results_changed.emit()
        self.set_frame(self.frame, force=True)

    def replace_result(self, old: LoadedResult, new: LoadedResult) -> None:
        self.results[self.results.index(old)] = new
        self.results_changed.emit()
        self.set_frame(self.frame, force=True)

    def remove_result(self, loaded: LoadedResult) -> None:
        self.results.remove(loaded)
        self.results_changed.emit()
        self.set_frame(self.frame, force=True)

    def clear(self) -> None:
        self.results.clear()
        self.close_video()
        self.results_changed.emit()
        self.video_changed.emit()
        self.set_frame(0, force=True)
