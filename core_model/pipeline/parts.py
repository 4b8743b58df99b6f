"""A run's parts folder, kept so that a killed run can continue: ``.{result stem}.{key}.parts`` beside the result.

What it holds: ``run.json`` (what the run is: the source's identity, the settings and the model, and the key made
of them), ``regions.npz`` (pass 1's hand regions, once the detector has seen every frame), the frame stores
(``frames/``, ``windows/``, ``refined/``: ``store.py``) and ``checkpoint.pt`` (which windows have run and the
windowed inference's state between two batches, ``core_model.network.windowed.WindowsState``).

The key is a hash of everything that decides the result's arrays: the source (path, size, modification time and a
hash of its first and last MiB; for an image folder, every image's name, size and time), the result's path, the
model's weights, preset, hand model and checkpoint hash, and the run's settings (region, overlap, batch, device
type, precision, refinement). The same command finds the same folder; any other settings, another video or other
weights make another folder. An untrained network (``--untrained``) draws new weights in every process: its runs
never continue.

When it is written: ``run.json`` when the folder is made, ``regions.npz`` after pass 1, ``checkpoint.pt`` every
:data:`CHECKPOINT_SECONDS` and after the last window, each atomically, the frame stores' files made durable
(fsync) first, so that after a power cut what a checkpoint records is on disk.

When it goes (``reconstruct`` decides): whenever the run ends in Python's hands (written, failed, cancelled,
Ctrl-C, SIGTERM), so a cancelled run still leaves nothing behind; and, when a result is written, other runs' parts
folders for the same result file (now superseded). It stays only when the process dies without a word (SIGKILL,
the out-of-memory killer, a power cut, a native crash): then the same command continues from the last checkpoint.
A lock (``flock``) on ``lock`` keeps two processes from using one folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core_model import __version__
from core_model.fileio import atomic_path
from core_model.pipeline.region import HandRegions
from core_model.pipeline.video import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

FORMAT = "interhand-run-parts"
VERSION = 1
CHECKPOINT_SECONDS = float(os.environ.get("INTERHAND_CHECKPOINT_SECONDS", "10"))
"""Seconds between two checkpoints of a run's progress (each costs an fsync of the frame stores and a small file;
a killed run loses at most this much work). ``INTERHAND_CHECKPOINT_SECONDS`` overrides it (0: after every batch)."""
SAMPLE_BYTES = 1 << 20


class PartsBusyError(OSError):
    """Another process is running the same run (it holds the parts folder's lock)."""


def source_identity(source: str | os.PathLike[str]) -> dict[str, Any]:
    """What identifies a video file or an image folder without reading all of it: its path, size, modification
    time and a SHA-256 of its first and last MiB (of a folder: of every image's name, size and time)."""
    path = Path(source).resolve()
    digest = hashlib.sha256()
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for image in images:
            stat = image.stat()
            digest.update(f"{image.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return {"path": str(path), "kind": "images", "count": len(images), "sha256": digest.hexdigest()}
    stat = path.stat()
    with open(path, "rb") as handle:
        digest.update(handle.read(SAMPLE_BYTES))
        if stat.st_size > SAMPLE_BYTES:
            handle.seek(max(SAMPLE_BYTES, stat.st_size - SAMPLE_BYTES))
            digest.update(handle.read(SAMPLE_BYTES))
    return {"path": str(path), "kind": "video", "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "sample_sha256": digest.hexdigest()}


def weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of a model's state (names, dtypes, shapes and values, in order)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        value = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}\0{value.dtype}\0{tuple(tensor.shape)}\n".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def run_key(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def parts_folder(output: Path, key: str) -> Path:
    return output.parent / f".{output.stem}.{key[:16]}.parts"


@dataclasses.dataclass
class Interrupted:
    """An interrupted run found beside a result file: its folder, its ``run.json`` and how far it got (windows
    done of total, from its last checkpoint; 0 when it was killed before one)."""

    folder: Path
    record: dict[str, Any]
    windows_done: int
    windows_total: int


def interrupted_runs(output: str | os.PathLike[str]) -> list[Interrupted]:
    """The parts folders of interrupted runs writing ``output`` (newest first); a folder another process is using
    is left out."""
    output = Path(os.path.abspath(output))
    found = []
    for folder in output.parent.glob(f".{output.stem}.*.parts"):
        record = _read_record(folder)
        if record is None or record.get("output") != str(output) or _locked(folder):
            continue
        progress = record.get("progress", {})
        found.append(Interrupted(folder, record, int(progress.get("windows_done", 0)),
                                 int(progress.get("windows_total", 0))))
    return sorted(found, key=lambda run: run.folder.stat().st_mtime, reverse=True)


def _read_record(folder: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("format") == FORMAT else None


def _locked(folder: Path) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return False
    try:
        with open(folder / "lock", "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


class RunParts:
    """The parts folder of one run (see the module's docstring). ``resumed``: it held an earlier run's work."""

    def __init__(self, output: Path, identity: dict[str, Any], fresh: bool = False) -> None:
        self.output = Path(os.path.abspath(output))
        self.identity = {**identity, "output": str(self.output)}
        self.key = run_key(self.identity)
        self.folder = parts_folder(self.output, self.key)
        self._lock = None
        self.folder.mkdir(exist_ok=True)
        try:
            self._take_lock()
            record = _read_record(self.folder)
            self.resumed = (not fresh and record is not None and record.get("key") == self.key
                            and record.get("version") == VERSION)
            if not self.resumed:
                self._clear()
                self._write_record({"format": FORMAT, "version": VERSION, "key": self.key,
                                    "software_version": __version__, **self.identity,
                                    "progress": {"stage": "detect"}})
            self.record = _read_record(self.folder) or {}
        except BaseException:
            self.release()
            raise

    def _take_lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no protection against a second process
            return
        self._lock = open(self.folder / "lock", "a+")  # held open for the run's life
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise PartsBusyError(f"output: another process is running the same run into {self.output} (its parts "
                                 f"folder {self.folder.name} is locked); wait for it or stop it") from None

    def _clear(self) -> None:
        for entry in self.folder.iterdir():
            if entry.name == "lock":
                continue
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def _write_record(self, record: dict[str, Any]) -> None:
        with atomic_path(self.folder / "run.json") as tmp:
            tmp.write_text(json.dumps(record, indent=1))
        self.record = record

    def progress(self, **progress: Any) -> None:
        """Note how far the run got in ``run.json`` (what the app shows when it offers to continue)."""
        self._write_record({**self.record, "progress": {**self.record.get("progress", {}), **progress}})

    def store_folder(self, name: str) -> Path:
        return self.folder / name

    # ---- pass 1 ----
    def save_regions(self, regions: HandRegions, decode_stopped: str) -> None:
        arrays = {f.name: getattr(regions, f.name) for f in dataclasses.fields(HandRegions)
                  if getattr(regions, f.name) is not None}
        with atomic_path(self.folder / "regions.npz") as tmp:
            np.savez(tmp, decode_stopped=np.array(decode_stopped), **arrays)
        self.progress(stage="infer")

    def regions(self) -> tuple[HandRegions, str] | None:
        """Pass 1's regions and the decoder's stop message, when this folder has them."""
        path = self.folder / "regions.npz"
        if not self.resumed or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            stopped = str(arrays.pop("decode_stopped"))
            return HandRegions(**arrays), stopped
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: its regions cannot be read (%s); detecting again", self.folder, exc)
            return None

    # ---- pass 2 ----
    def save_checkpoint(self, payload: dict[str, Any], windows_done: int, windows_total: int) -> None:
        """``payload`` (plain dicts and tensors) as the run's checkpoint, atomically; the stores must be synced."""
        with atomic_path(self.folder / "checkpoint.pt") as tmp:
            torch.save(payload, tmp)
        for folder in (self.folder, *(p for p in self.folder.iterdir() if p.is_dir())):
            _sync_folder(folder)  # the new files' names and the rename survive a power cut too
        self.progress(windows_done=windows_done, windows_total=windows_total)

    def checkpoint(self) -> dict[str, Any] | None:
        path = self.folder / "checkpoint.pt"
        if not self.resumed or not path.is_file():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged checkpoint costs the windows since pass 1, never the run
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.warning("%s: its checkpoint cannot be read (%s); running every window again", self.folder, reason)
            return None

    # ---- the end ----
    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def remove(self) -> None:
        """Delete the folder (the run is over)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.release()


def _sync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # not on every platform (Windows opens no folders)
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def remove_superseded(output: Path, keep: Path | None = None) -> None:
    """Delete the parts folders of other interrupted runs into ``output`` (its new result supersedes them)."""
    for run in interrupted_runs(output):
        if keep is None or run.folder != keep:
            with contextlib.suppress(OSError):
                shutil.rmtree(run.folder)
