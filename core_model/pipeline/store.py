"""Per-frame result arrays kept on disk while a run goes on: one ``.npy`` file per array in a folder beside the
result file, written frame by frame.

Why: a 10-minute video reconstructed with the 1,159-vertex OpenHand holds about 0.75 GB of vertices, depths and
flags, and an hour holds 4.5 GB; in memory that grows with the video. Here finished frames go to the files with
unbuffered writes (the page cache, not this process, holds them), readers get read-only memory maps that see each
write as it lands (the viewer shows frames while the run goes on), and ``results.save_result`` copies the files
into the result archive block by block. Resident memory stays at a few frames whatever the length.

A store can also live in a folder it is given (a run's parts folder, ``parts.py``) and reopen the files it finds
there: a killed run's finished frames are kept that way, ``written`` / ``restore_written`` say which rows are final,
and ``sync`` makes them durable before a checkpoint records them.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

FILL_ROWS = 1024  # frames written per block when filling frames nothing was reconstructed on


class FrameStore:
    """Arrays ``[N, *row_shape]`` by name, stored in ``folder`` (a fresh hidden folder beside ``beside``, or the
    ``folder`` given, where files of the same shapes are reopened with their content).

    ``write`` stores rows of finished frames; ``finalise`` fills every frame never written with the fill value
    (NaN for floats, False for flags, 0 for integer labels: "not reconstructed"); ``views`` maps the files
    read-only. ``close`` (or the context manager) deletes the folder: nothing is left behind, finished or not.
    Maps handed out stay readable after that on POSIX systems, where an open mapping keeps a deleted file's
    data."""

    def __init__(self, beside: str | os.PathLike[str], num_frames: int,
                 rows: Mapping[str, tuple[tuple[int, ...], np.dtype | type]],
                 folder: str | os.PathLike[str] | None = None) -> None:
        if num_frames < 1:
            raise ValueError(f"num_frames: expected at least one frame, got {num_frames}")
        beside = Path(beside)
        self.num_frames = int(num_frames)
        if folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix=f".{beside.stem}.", suffix=".parts", dir=beside.parent))
        else:
            self.folder = Path(folder)
            self.folder.mkdir(parents=True, exist_ok=True)
        # name -> (unbuffered file, header size, bytes per frame, dtype, row shape)
        self._files: dict[str, tuple[io.FileIO, int, int, np.dtype, tuple[int, ...]]] = {}
        self._written: dict[str, np.ndarray] = {}
        try:
            for name, (row_shape, dtype) in rows.items():
                self._create(name, tuple(row_shape), np.dtype(dtype))
        except BaseException:
            self.close()
            raise

    def _create(self, name: str, row_shape: tuple[int, ...], dtype: np.dtype) -> None:
        path = self.folder / f"{name}.npy"
        shape = (self.num_frames, *row_shape)
        row_bytes = int(np.prod(row_shape, dtype=np.int64)) * dtype.itemsize
        offset = _reusable(path, shape, dtype, row_bytes * self.num_frames)
        if offset is None:
            with open(path, "wb") as handle:
                np.lib.format.write_array_header_1_0(handle, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                              "fortran_order": False, "shape": shape})
                offset = handle.tell()
                handle.truncate(offset + row_bytes * self.num_frames)  # sparse until written
        self._files[name] = (io.FileIO(path, "r+"), offset, row_bytes, dtype, row_shape)
        self._written[name] = np.zeros(self.num_frames, bool)

    def __enter__(self) -> FrameStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def names(self) -> list[str]:
        return list(self._files)

    @property
    def rows(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Each array's row shape and dtype (what the constructor took)."""
        return {name: (row_shape, dtype) for name, (_, _, _, dtype, row_shape) in self._files.items()}

    def write(self, name: str, frames: np.ndarray, values: np.ndarray) -> None:
        """Rows ``values`` [F, *row_shape] of frames ``frames`` [F] (any order; consecutive frames go in one write)."""
        handle, offset, row_bytes, dtype, row_shape = self._files[name]
        frames = np.asarray(frames, np.int64)
        values = np.asarray(values)
        if values.shape != (len(frames), *row_shape):
            raise ValueError(f"values: {name} rows are {row_shape}, got {values.shape} for {len(frames)} frames")
        if len(frames) and (frames.min() < 0 or frames.max() >= self.num_frames):
            raise ValueError(f"frames: expected indices in 0..{self.num_frames - 1}")
        order = np.argsort(frames, kind="stable")
        frames, values = frames[order], np.ascontiguousarray(values[order], dtype)
        breaks = np.flatnonzero(np.diff(frames) != 1) + 1
        for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(frames)]):
            self._write_at(handle, values[lo:hi].tobytes(), offset + int(frames[lo]) * row_bytes)
        self._written[name][frames] = True

    @staticmethod
    def _write_at(handle: io.FileIO, data: bytes, at: int) -> None:
        """Unbuffered: the bytes reach the OS at once, so the maps handed out by ``views`` see them."""
        handle.seek(at)
        view = memoryview(data)
        while view:
            view = view[handle.write(view):]

    def written(self) -> dict[str, np.ndarray]:
        """Per array, [N] bool: the frames whose rows were written (copies)."""
        return {name: mask.copy() for name, mask in self._written.items()}

    def restore_written(self, written: Mapping[str, np.ndarray]) -> None:
        """Take ``written`` (:meth:`written` of an earlier store over the same files) as the rows already final."""
        for name, mask in written.items():
            mask = np.asarray(mask, bool)
            if name not in self._written or mask.shape != (self.num_frames,):
                raise ValueError(f"written: {name} {mask.shape} does not fit this store ({self.num_frames} frames of "
                                 f"{self.names})")
            self._written[name] = mask.copy()

    def sync(self) -> None:
        """Make every write so far durable (fsync): what a checkpoint records must survive a power cut."""
        for handle, *_ in self._files.values():
            os.fsync(handle.fileno())

    def finalise(self) -> None:
        """Write the fill value on every frame nothing was written on."""
        for name, (handle, offset, row_bytes, dtype, row_shape) in self._files.items():
            missing = np.flatnonzero(~self._written[name])
            if not len(missing):
                continue
            fill = np.full((1, *row_shape), np.nan, dtype) if dtype.kind == "f" else np.zeros((1, *row_shape), dtype)
            breaks = np.flatnonzero(np.diff(missing) != 1) + 1
            for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(missing)]):
                for start in range(int(missing[lo]), int(missing[hi - 1]) + 1, FILL_ROWS):
                    count = min(FILL_ROWS, int(missing[hi - 1]) + 1 - start)
                    self._write_at(handle, np.repeat(fill, count, axis=0).tobytes(), offset + start * row_bytes)
            self._written[name][missing] = True

    def views(self) -> dict[str, np.memmap]:
        """Every array as a read-only memory map of its file (sees later writes)."""
        return {name: np.load(self.folder / f"{name}.npy", mmap_mode="r") for name in self._files}

    def close(self) -> None:
        """Close the files and delete the folder."""
        for handle, *_ in self._files.values():
            handle.close()
        self._files.clear()
        shutil.rmtree(self.folder, ignore_errors=True)


def _reusable(path: Path, shape: tuple[int, ...], dtype: np.dtype, data_bytes: int) -> int | None:
    """The data offset of an existing ``.npy`` file at ``path`` holding ``shape`` and ``dtype`` in full (a killed
    run's), else None."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version != (1, 0):
                return None
            file_shape, fortran, file_dtype = np.lib.format.read_array_header_1_0(handle)
            offset = handle.tell()
    except (OSError, ValueError):
        return None
    if file_shape != shape or fortran or file_dtype != dtype or path.stat().st_size != offset + data_bytes:
        return None
    return offset
