"""Video -> result file, as a generator of progress events (DESIGN section 10: the GUI worker forwards them as
signals, the CLI draws a progress bar; cancel is cooperative, between batches).

Two passes over the video, one frame in memory at a time: the first detects hands (the regions need the whole
sequence, see ``region.py``), the second cuts crops and feeds the windows to the model. Finished frames go to a
hidden parts folder beside the result (``store.py``: memory stays bounded on long videos); the result file is
written at the end, atomically, and the parts folder removed whenever the run ends in Python's hands: a
cancelled, failed or interrupted (Ctrl-C, SIGTERM) run leaves nothing behind.

A run killed without a word (SIGKILL, the out-of-memory killer, a power cut, a native crash) leaves its parts
folder, named after the run's source, settings and model (``parts.py``): the same command then continues from the
last checkpoint (pass 1's regions, and the windows run so far with the windowed inference's state) instead of
starting again, and writes the arrays an uninterrupted run writes, bit for bit (``resume=False`` starts again).

With ``refine`` a third step fits the network's hands to the detector's landmarks (``core_model.refine``) once
every window has run, and stores the ``refined_*`` arrays beside the network's result. Refinement works on whole
sequences; a long video is refined in chunks of :data:`REFINE_CHUNK` frames (each with :data:`REFINE_MARGIN`
frames of context on either side, so the smoothness terms see across the cut; each chunk gets its own shape
correction), read from the parts folder and written back to it, so memory stays bounded by the chunk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from core_model import __version__
from core_model.cancel import check_cancel
from core_model.geometry.interpenetration import HandMeshes, detect_interpenetration
from core_model.network.landmarks import landmark_input
from core_model.network.windowed import Frame, InferenceUpdate, WindowsState, plan_windows, run_windows
from core_model.pipeline import parts as run_parts
from core_model.pipeline.detect import MediaPipeHandDetector, Witness, detect_frames
from core_model.pipeline.detect_parallel import Detections, default_workers, detect_in_workers, plan_segments
from core_model.pipeline.prefetch import Prefetch
from core_model.pipeline.region import (
    HandRegions,
    crop_frame,
    landmarks_in_crops,
    regions_from_detections,
    regions_from_roi,
)
from core_model.pipeline.store import FrameStore
from core_model.pipeline.video import ImageFolderSource, VideoFileSource, open_source
from core_model.pipeline.witness import MASK_SIZE
from core_model.results import (
    FRAME_ARRAYS,
    OPTIONAL_ARRAYS,
    REFINED_ARRAYS,
    REFINED_PREFIX,
    Reconstruction,
    ResultMeta,
    file_sha256,
    save_result,
)
from core_model.timing import StageTimer, stage

if TYPE_CHECKING:
    from core_model.refine import RefineConfig

log = logging.getLogger(__name__)

STORED = ("betas", "global_orient", "hand_pose", "transl", "keypoints", "vertices", "keypoints2d", "inside", "depth",
          "chirality_maps", "camera")
"""Per-frame arrays the model makes, kept on disk while the run goes on (``store.py``); the rest is small."""
REFINE_INPUTS = ("betas", "global_orient", "hand_pose", "keypoints", "keypoints2d", "camera", "bbox", "valid",
                 "det_keypoints2d", "det_score", "masks")
"""What refinement reads of the run's arrays (``refine.arrays.input_from_arrays``): small per frame."""
REFINE_CHUNK = 512
"""Frames refined as one sequence (shorter videos in one piece). Refinement's memory grows with the chunk and with
how much the hands interpenetrate (the contact term's vertices and their gradients): measured with OpenHand on the
2-core CPU, 512 frames of an untrained network whose hands overlap on every frame peaked at 1.1 GB above the run
(35 s), 1,056 such frames at 2.1 GB (84 s); 256 frames with few contacts at 0.1 GB (0.7 s)."""
REFINE_MARGIN = 16
"""Frames of context refined with a chunk on either side (and then dropped), so that its ends are smoothed too."""


@dataclasses.dataclass
class RunEvent:
    """stage: ``detect``, ``model``, ``refine`` (with ``reconstruct(refine=...)``) or ``done``; done/total in that
    stage's units (frames, windows, the refinement fit's iterations: see :func:`_refine_into`);
    frames: indices whose results are final (model stage); result: the finished record (done stage).
    message: a warning (the video is damaged: decoding stopped early) or, at ``done``, what was written; note:
    news that is no warning (an interrupted run continues).
    arrays (model stage): the run's per-frame arrays by result-file name, filled in place as windows finish, so a
    viewer can show the frames listed so far while the run goes on (read them; never write)."""

    stage: str
    done: int
    total: int
    frames: np.ndarray | None = None
    result: Reconstruction | None = None
    message: str = ""
    arrays: dict[str, np.ndarray] | None = None
    note: str = ""


def detect_regions(video: str | os.PathLike[str], roi: tuple[float, float, float, float] | None = None,
                   cancel: Callable[[], bool] | None = None, timer: StageTimer | None = None,
                   witness: Witness | None = None, workers: int | None = None) -> Iterator[RunEvent | HandRegions]:
    """Pass 1: yields RunEvent('detect') as frames are done, then the HandRegions. ``timer``: seconds of the
    ``decode``, ``detect`` and ``witness`` stages. ``witness``: completes MediaPipe's hands (``pipeline.witness``;
    it runs in this process, so pass 1 does too). ``workers``: processes that decode and detect segments of the
    video (``detect_parallel.py``; None: :func:`~core_model.pipeline.detect_parallel.default_workers` of the
    usable cores; 1: this process alone, decoding in a thread beside the detector)."""
    with open_source(video) as source:
        info = source.info
        workers = 1 if witness is not None else default_workers(usable_cores()) if workers is None else workers
        detected = None
        segments = plan_segments(info.frame_count, workers)
        if len(segments) > 1:
            for item in detect_in_workers(video, info, segments, cancel=cancel, timer=timer):
                if isinstance(item, int):
                    yield RunEvent("detect", min(item, info.frame_count), info.frame_count)
                else:
                    detected = item
        if detected is None:
            detected = yield from _detect_here(source, cancel, timer, witness)
    frames = detected.frames
    if detected.stop_reason:
        log.warning(detected.stop_reason)
        yield RunEvent("detect", len(frames), len(frames), message=detected.stop_reason)
    elif len(frames) != info.frame_count:  # the container's count was an estimate: end the bar at 100 %
        yield RunEvent("detect", len(frames), len(frames))
    regions = regions_from_detections(frames, info.fps, info.width, info.height)
    if roi is not None:
        regions = regions_from_roi(len(frames), roi, info.width, info.height, detections=regions)
    yield regions


def _detect_here(source: VideoFileSource | ImageFolderSource, cancel: Callable[[], bool] | None,
                 timer: StageTimer | None, witness: Witness | None = None) -> Iterator[RunEvent]:
    """Pass 1 in this process: one detector (and ``witness``) over every frame, decoding in a thread beside it;
    returns the :class:`Detections`."""
    frames = []
    with MediaPipeHandDetector() as detector:
        stream = timer.iterate("decode", source) if timer is not None else source
        with Prefetch(stream, depth=2, name="decode") as decoded:  # decoding overlaps detection
            for index, hands in detect_frames(decoded, detector, source.info.fps, timer=timer, witness=witness):
                frames.append(hands)
                if index % 32 == 0:
                    check_cancel(cancel, f"cancelled while detecting hands (frame {index})")
                yield RunEvent("detect", index + 1, source.info.frame_count)
    return Detections(frames, source.stop_reason)


def reconstruct(video: str | os.PathLike[str], output: str | os.PathLike[str], model: torch.nn.Module, *,
                model_preset: str, checkpoint_sha256: str = "", roi: tuple[float, float, float, float] | None = None,
                batch: int = 4, overlap: int | None = None, device: torch.device | str = "cpu",
                cancel: Callable[[], bool] | None = None, autocast: torch.dtype | None = None,
                encode_batch: int = 8, timer: StageTimer | None = None, refine: RefineConfig | None = None,
                refine_threads: int | None = None, witness: Witness | None = None,
                detected: Iterable[RunEvent | HandRegions] | None = None, detect_workers: int | None = None,
                resume: bool = True) -> Iterator[RunEvent]:
    """Reconstruct ``video`` with ``model`` (an STCNet in eval mode on ``device``) and write ``output``: detect,
    infer, optionally refine, write (the steps of :class:`_Run`).

    ``autocast``: reduced precision for the network (``torch.bfloat16`` on a GPU); ``encode_batch``: frames per
    encoder call; ``timer``: collects seconds per stage (decode, detect, crop, model, blend, hand model,
    penetration, refine, write) for ``benchmarks/pipeline.py``. ``refine``: also fit the hands to the detector's
    landmarks with these settings (on ``device``, in the frame's assumed intrinsics) and store the result as the
    ``refined_*`` arrays, with ``meta.extra["refine"]`` = {config, seconds, losses (per term, frame-weighted
    (first, last) over the chunks), frames, chunks, gate (refined hands per gating reason)}. Refinement needs
    gradients and turns them on for itself, also under the caller's ``no_grad`` or ``inference_mode``.
    ``refine_threads``: torch threads while refining on the CPU (the caller's count is restored before each event);
    None: every core (:func:`usable_cores`), as the thread that decodes frames has finished by then (measured,
    BENCHMARKS.md "Test-time refinement" (e): 4.1 against 6.8 ms per frame with two threads on the 2-core CPU).
    ``witness``: a second witness beside MediaPipe (``pipeline.witness.PerceptionWitness``) on the frames where
    MediaPipe reports fewer than two hands (the result's ``witness`` says which one each hand came from), which
    also segments the hands in every frame's crop (the result's ``masks``).
    ``detected``: pass 1 already done elsewhere (``interhand batch`` detects the next videos while the model works
    on this one): what :func:`detect_regions` yielded for this video, ``roi`` and ``witness``, the regions last;
    the events that carry a message (a damaged file's stop) must be among them, the per-frame ones may be left
    out. ``detect_workers``: processes for pass 1 (:func:`detect_regions`' ``workers``; None: from the usable
    cores).

    ``resume``: continue an interrupted run of the same source, output, model and settings when its parts folder
    is there (``parts.py``; a RunEvent's ``note`` says so); False discards it and starts again. A run with a
    ``witness`` always starts afresh: its masks are not checkpointed yet."""
    output = Path(output)
    if output.suffix != ".npz":
        raise ValueError(f"output: a result file ends in .npz, got {output.name}")
    if not Path(video).exists():
        raise FileNotFoundError(f"video: no such file or folder {video}")
    check_output_folder(output)  # before minutes of work, not after
    identity = run_identity(video, model, model_preset=model_preset, checkpoint_sha256=checkpoint_sha256, roi=roi,
                            batch=batch, overlap=overlap, device=device, autocast=autocast,
                            encode_batch=encode_batch, refine=refine, witness=witness is not None)
    run = _Run(video, output, model, cancel=cancel, timer=timer)
    created = _make_folders(output.parent)
    saved = False
    parts = None
    try:
        run.parts = parts = run_parts.RunParts(output, identity, fresh=not resume or witness is not None)
        yield from run.detect(roi, witness, detected, detect_workers)
        yield from run.infer(overlap=overlap, batch=batch, device=device, autocast=autocast,
                             encode_batch=encode_batch)
        if refine is not None:
            with stage(timer, "refine"):
                yield from run.refine(refine, device=device, threads=refine_threads)
        with stage(timer, "write"):
            result = run.write(model_preset=model_preset, checkpoint_sha256=checkpoint_sha256)
        saved = True
        run_parts.remove_superseded(output, keep=parts.folder)
        yield RunEvent("done", 1, 1, result=result, message=f"wrote {output}")
    finally:
        run.close()
        if parts is not None:
            parts.remove()  # the run ended in Python's hands: written, failed or cancelled
        if not saved:
            for folder in reversed(created):
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only if empty: never anything but what this run made


def run_identity(video: str | os.PathLike[str], model: torch.nn.Module, *, model_preset: str,
                 checkpoint_sha256: str, roi: tuple[float, float, float, float] | None, batch: int,
                 overlap: int | None, device: torch.device | str, autocast: torch.dtype | None, encode_batch: int,
                 refine: RefineConfig | None, witness: bool = False) -> dict:
    """Everything that decides a run's result, as plain JSON: the parts folder's key (``parts.py``)."""
    return {"source": run_parts.source_identity(video),
            "model": {"weights_sha256": run_parts.weights_sha256(model), "preset": model_preset,
                      "checkpoint_sha256": checkpoint_sha256, "hand_model": model.hand_model.name,
                      "config": model.config.to_dict()},
            "settings": {"roi": list(roi) if roi is not None else None, "batch": batch, "overlap": overlap,
                         "device": torch.device(device).type, "autocast": str(autocast), "encode_batch": encode_batch,
                         "refine": dataclasses.asdict(refine) if refine is not None else None,
                         "witness": "fused" if witness else "mediapipe"}}


class _Run:
    """One :func:`reconstruct` in its steps, each a generator of events: ``detect`` (pass 1: the regions),
    ``infer`` (pass 2: crops through the windowed network into the parts folder), ``refine`` (optional), then
    ``write`` (the result file) and ``close`` (the parts folder gone, whatever happened)."""

    def __init__(self, video: str | os.PathLike[str], output: Path, model: torch.nn.Module, *,
                 cancel: Callable[[], bool] | None, timer: StageTimer | None) -> None:
        self.video, self.output, self.model = video, output, model
        self.cancel, self.timer = cancel, timer
        self.parts: run_parts.RunParts | None = None  # where the stores live and checkpoints go
        self.regions: HandRegions | None = None
        self.decode_stopped = ""
        self.stores: dict[str, FrameStore] = {}   # "frames", "windows", "refined": the parts folder's arrays
        self.arrays: dict[str, np.ndarray] = {}   # the network's per-frame arrays by result-file name
        self.window_frames: list[tuple[int, int]] = []
        self.refine_meta: dict[str, object] | None = None
        self.meshes: HandMeshes | None = None  # the closed meshes the inside test needs, made by ``infer``
        self.witness: Witness | None = None
        self.overlap = 0
        self.fps = 0.0
        self.image_size = (0, 0)
        hand_model = model.hand_model
        self.symbols = {"V": hand_model.num_vertices, "H": model.config.feature_sizes[0]}

    def detect(self, roi: tuple[float, float, float, float] | None, witness: Witness | None,
               detected: Iterable[RunEvent | HandRegions] | None = None, workers: int | None = None
               ) -> Iterator[RunEvent]:
        """Pass 1: the detector (and ``witness``) over every frame, then the regions to crop (``roi``: a fixed
        one); an interrupted run's regions when the parts folder has them; ``detected``: pass 1's items made
        elsewhere (see :func:`reconstruct`); ``workers``: detection processes (see :func:`detect_regions`)."""
        self.witness = witness
        saved = self.parts.regions() if self.parts is not None else None
        if saved is not None:
            self.regions, self.decode_stopped = saved
            n = len(self.regions)
            yield RunEvent("detect", n, n, message=self.decode_stopped,
                           note=f"continuing an interrupted run (parts in {self.parts.folder.name}): hands already "
                                f"found on the {n} frames")
        else:
            items = (detect_regions(self.video, roi, self.cancel, self.timer, witness, workers) if detected is None
                     else detected)
            for item in items:
                if isinstance(item, HandRegions):
                    self.regions = item
                else:
                    self.decode_stopped = item.message or self.decode_stopped
                    yield item
        if self.regions is None:  # detect_regions always ends with the regions
            raise RuntimeError("detect_regions: ended without regions")
        if not self.regions.region_valid.any():
            raise ValueError(f"video: no hands found on any of the {len(self.regions)} frames of "
                             f"{Path(self.video).name}")
        self.symbols["N"] = len(self.regions)
        if saved is None and self.parts is not None:
            self.parts.save_regions(self.regions, self.decode_stopped)

    def _rows(self, table: dict[str, tuple[tuple[int | str, ...], str]], names) -> dict:
        kinds = {"b": bool, "i": np.int8}
        return {name: (tuple(self.symbols.get(d, d) for d in table[name][0][1:]), kinds.get(table[name][1],
                                                                                            np.float32))
                for name in names}

    def infer(self, *, overlap: int | None, batch: int, device: torch.device | str, autocast: torch.dtype | None,
              encode_batch: int) -> Iterator[RunEvent]:
        """Pass 2: each frame with a region cropped and fed, in overlapping windows, through the network; the
        finished frames written to the parts folder as they come (RunEvent('model') per batch of windows)."""
        model, regions, timer = self.model, self.regions, self.timer
        assert regions is not None, "detect first"
        n, has_region = len(regions), regions.region_valid
        length, size = int(model.config.frames), int(model.config.input_size)
        self.overlap = length // 2 if overlap is None else overlap
        windows = plan_windows(has_region, length, self.overlap)
        self.meshes = HandMeshes.from_model(model.hand_model)
        landmarks = None
        if model.config.landmarks:  # the detector's landmarks, in each frame's crop, guide the network
            landmarks = landmark_input(torch.from_numpy(landmarks_in_crops(regions.det_keypoints2d, regions.bbox)))
        store = self.stores["frames"] = self._store("frames", n, self._rows({**FRAME_ARRAYS, **OPTIONAL_ARRAYS},
                                                                           STORED))
        resume = self._resume_point(store, len(windows), int(batch))
        start = resume.last_read + 1 if resume is not None else 0
        self.arrays = dict(store.views())
        self.arrays["bbox"], self.arrays["valid"] = regions.bbox, regions.valid & has_region[:, None]
        self.arrays["det_keypoints2d"], self.arrays["det_score"] = regions.det_keypoints2d, regions.det_score
        masks = None
        if self.witness is not None:  # written by the thread that crops, alone (FrameStore is not shared)
            masks = self.stores["masks"] = FrameStore(self.output, n, {"masks": ((MASK_SIZE, MASK_SIZE), np.int8)})
        with open_source(self.video) as source, contextlib.ExitStack() as stack:
            self.image_size = (int(source.info.width), int(source.info.height))
            self.fps = float(source.info.fps)

            def frames() -> Iterator[Frame]:
                decoded = timer.iterate("decode", source) if timer is not None else source
                for index, frame in decoded:
                    if index >= n:
                        break
                    if has_region[index] and index >= start:  # a resumed run has the frames before
                        with stage(timer, "crop"):
                            crop = crop_frame(frame, regions.bbox[index], size)
                        if masks is not None:
                            with stage(timer, "segment"):
                                masks.write("masks", [index], self.witness.segment(frame, regions.bbox[index])[None])
                        yield Frame(index, crop, None if landmarks is None else landmarks[index])

            if resume is not None:
                done = np.flatnonzero(store.written()["vertices"])
                yield RunEvent("model", resume.next_window, len(windows), frames=done, arrays=self.arrays,
                               note=f"continuing an interrupted run: {resume.next_window} of {len(windows)} windows "
                                    f"({len(done)} frames) were finished")
            # Decoding and cropping overlap the model; the prefetcher is closed before the source is.
            prefetched = stack.enter_context(Prefetch(frames(), depth=2 * length, name="crops"))
            saved_at = time.monotonic()
            for update in run_windows(model, prefetched, windows, overlap=self.overlap, batch=batch, device=device,
                                      cancel=self.cancel, encode_batch=encode_batch, autocast=autocast,
                                      timer=timer, resume=resume):
                if len(update.frames):
                    self._store_frames(update.frames, update.outputs)
                with stage(timer, "write"):
                    self._store_windows(update.windows, len(windows))
                    if (update.done == update.total
                            or time.monotonic() - saved_at >= run_parts.CHECKPOINT_SECONDS):
                        self._checkpoint(update)
                        saved_at = time.monotonic()
                yield RunEvent("model", update.done, update.total, frames=update.frames, arrays=self.arrays)
        with stage(timer, "write"):
            store.finalise()
            if masks is not None:
                masks.finalise()
                self.arrays["masks"] = masks.views()["masks"]

    def _store(self, kind: str, n: int, rows: dict) -> FrameStore:
        """The frame store ``kind`` (``frames``, ``windows``, ``refined``) in the run's parts folder."""
        folder = self.parts.store_folder(kind) if self.parts is not None else None
        return FrameStore(self.output, n, rows, folder=folder)

    def _resume_point(self, store: FrameStore, total: int, batch: int) -> WindowsState | None:
        """The windowed inference's state an interrupted run checkpointed, with the stores' rows it had finished
        (restored into ``store`` and into the attention maps' store, made here); None to start at the first
        window."""
        checkpoint = self.parts.checkpoint() if self.parts is not None else None
        if checkpoint is None:
            return None
        try:
            saved = checkpoint["state"]
            state = WindowsState(
                next_window=int(saved["next_window"]), last_read=int(saved["last_read"]), placed=saved["placed"],
                features={int(f): dict(v) for f, v in saved["features"].items()},
                sums={int(f): {k: v.numpy() for k, v in acc.items()} for f, acc in saved["sums"].items()},
                weight_sum={int(f): float(w) for f, w in saved["weight_sum"].items()})
            if int(checkpoint["windows_total"]) != total or not 0 <= state.next_window <= total:
                raise ValueError(f"{checkpoint['windows_total']} windows planned, {total} now")
            store.restore_written({k: v.numpy() for k, v in checkpoint["written"]["frames"].items()})
            windows = checkpoint["written"].get("windows")
            self.window_frames = [tuple(span) for span in checkpoint["window_frames"].tolist()]
            if windows:  # the attention maps' store, made now: no window may be left to run that would make it
                rows = {name: (tuple(shape), np.float32) for name, shape in checkpoint["window_rows"].items()}
                self.stores["windows"] = self._store("windows", total, rows)
                self.stores["windows"].restore_written({k: v.numpy() for k, v in windows.items()})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("%s: its checkpoint does not fit this run (%s); running every window again",
                        self.parts.folder, exc)
            store.restore_written({k: np.zeros(len(v), bool) for k, v in store.written().items()})
            self.window_frames = []
            windows_store = self.stores.pop("windows", None)
            if windows_store is not None:
                windows_store.close()
            return None
        log.info("continuing an interrupted run at window %d of %d", state.next_window, total)
        return state

    def _checkpoint(self, update: InferenceUpdate) -> None:
        """Record in the parts folder how far the run got (the stores' rows made durable first)."""
        for store in self.stores.values():
            store.sync()
        state = update.state()
        self.parts.save_checkpoint({
            "windows_done": update.done, "windows_total": update.total,
            "window_frames": torch.tensor(self.window_frames, dtype=torch.int64).reshape(-1, 2),
            "written": {kind: {name: torch.from_numpy(mask) for name, mask in self.stores[kind].written().items()}
                        for kind in ("frames", "windows") if kind in self.stores},
            "window_rows": {name: list(shape) for name, (shape, _) in self.stores["windows"].rows.items()}
            if "windows" in self.stores else {},
            "state": {"next_window": state.next_window, "last_read": state.last_read, "placed": state.placed,
                      "features": state.features,
                      "sums": {f: {k: torch.from_numpy(v) for k, v in acc.items()} for f, acc in state.sums.items()},
                      "weight_sum": state.weight_sum}}, update.done, update.total)

    def _store_frames(self, frames: np.ndarray, out: dict[str, np.ndarray]) -> None:
        """Finished frames: their interpenetration, their keypoints in frame pixels, into the parts folder."""
        with stage(self.timer, "penetration"):
            pen = detect_interpenetration(out["vertices"], self.meshes)
            # A hand the detector did not see is not reconstructed (valid False): nothing can be inside it, and
            # it presses into nothing.
            lone = ~self.arrays["valid"][frames].all(-1)
            pen.inside[lone], pen.depth[lone] = False, 0.0
        with stage(self.timer, "write"):
            box = self.regions.bbox[frames][:, None, None]  # crop [-1, 1] -> frame pixels
            out["keypoints2d"] = box[..., :2] + (out["keypoints2d"] + 1) / 2 * box[..., 2:3]
            out["inside"], out["depth"] = pen.inside, pen.depth
            for name in STORED:
                self.stores["frames"].write(name, frames, out[name])

    def _store_windows(self, windows: list[tuple[tuple[int, int], dict[str, np.ndarray]]], total: int) -> None:
        """Each window's attention maps and the frames it covers."""
        for span, maps in windows:
            if "mhsa_attention" not in maps:
                continue
            store = self.stores.get("windows")
            if store is None:
                store = self.stores["windows"] = self._store("windows", total, {
                    k: (maps[k].shape, np.float32) for k in ("mhsa_attention", "mhca_attention") if k in maps})
            store.write("mhsa_attention", [len(self.window_frames)], maps["mhsa_attention"][None])
            if "mhca_attention" in maps and "mhca_attention" in store.names:
                store.write("mhca_attention", [len(self.window_frames)], maps["mhca_attention"][None])
            self.window_frames.append(span)

    def refine(self, config: RefineConfig, *, device: torch.device | str, threads: int | None
               ) -> Iterator[RunEvent]:
        """Test-time refinement of the finished arrays into the ``refined_*`` parts (:func:`_refine_into`)."""
        rows = self._rows(REFINED_ARRAYS, REFINED_ARRAYS)
        store = self.stores["refined"] = self._store("refined", len(self.regions), rows)  # refined from the start
        self.refine_meta = yield from _refine_into(self.arrays, store, {k: r[0] for k, r in rows.items()},
                                                   self.model.hand_model, config, device=device,
                                                   image_size=self.image_size, cancel=self.cancel, threads=threads)

    def write(self, *, model_preset: str, checkpoint_sha256: str) -> Reconstruction:
        """The result file, atomically, from the parts."""
        windowed = {}
        if "windows" in self.stores:
            self.stores["windows"].finalise()
            windowed = dict(self.stores["windows"].views())  # every window ran: a cancelled run never gets here
            windowed["window_frames"] = np.array(self.window_frames, np.int64).reshape(-1, 2)
        refined = dict(self.stores["refined"].views()) if "refined" in self.stores else {}
        video_path = Path(self.video)
        extra: dict[str, object] = {"region_shares": self.regions.shares(), "overlap": self.overlap}
        if self.decode_stopped:
            extra["decode_stopped"] = self.decode_stopped
        if self.refine_meta is not None:
            extra["refine"] = self.refine_meta
        meta = ResultMeta(source_path=str(video_path.resolve()),
                          source_sha256=file_sha256(video_path) if video_path.is_file() else "",
                          fps=self.fps, frame_count=len(self.regions), model_preset=model_preset,
                          checkpoint_sha256=checkpoint_sha256, hand_model=self.model.hand_model.name,
                          software_version=__version__, extra=extra)
        result = Reconstruction(meta=meta, **self.arrays, region_source=self.regions.source,
                                witness=self.regions.witness, **windowed, refined=refined)
        save_result(result, self.output, scratch=self.parts.folder if self.parts is not None else None)
        return result

    def close(self) -> None:
        for store in self.stores.values():
            store.close()


def refine_chunks(n: int, chunk: int | None = None, margin: int | None = None
                  ) -> list[tuple[int, int, int, int]]:
    """The chunks refinement cuts N frames into: (lo, hi) the frames a chunk stores, (a, b) the frames it refines,
    ``margin`` more on each side where there are."""
    chunk = REFINE_CHUNK if chunk is None else chunk
    margin = REFINE_MARGIN if margin is None else margin
    if chunk < 1:
        raise ValueError(f"chunk: expected a positive number of frames, got {chunk}")
    if n < 1:
        return []
    count = max(1, -(-n // chunk))
    size = -(-n // count)  # equal chunks: no short tail refined on its own
    return [(lo, min(n, lo + size), max(0, lo - margin), min(n, lo + size + margin)) for lo in range(0, n, size)]


def _refine_into(arrays: dict[str, np.ndarray], store: FrameStore, rows: dict[str, tuple[int, ...]],
                 hand_model: torch.nn.Module, config: RefineConfig, *, device: torch.device | str,
                 image_size: tuple[int, int], cancel: Callable[[], bool] | None, threads: int | None = None
                 ) -> Iterator[RunEvent]:
    """Refine the run's ``arrays`` chunk by chunk into ``store`` (``rows``: one frame's shape of each of its
    arrays). Every frame of every :data:`REFINED_ARRAYS` is written: NaN / False where a hand was not refined (no
    reconstruction claimed valid), ``gate`` ABSENT there. Yields RunEvent('refine') as the fit goes, in the fit's
    units (``Refiner.progress_total`` per chunk, about one L-BFGS iteration each) plus one per chunk for its
    arrays (meshes, penetration) and their writing; cancel is checked between the fit's pieces. Returns what goes
    into ``meta.extra["refine"]``. ``threads``: see :func:`reconstruct`'s ``refine_threads``."""
    import time

    from core_model.refine import Refiner, refine_result_arrays_steps
    from core_model.refine.gating import ABSENT, REASONS

    start = time.perf_counter()
    chunks = refine_chunks(len(arrays["valid"]))
    # Refinement needs gradients; the caller may run the pipeline under no_grad or inference_mode. The modes are
    # set around each piece of work only, never across a yield (they are the consumer's thread state).
    with torch.inference_mode(False), torch.enable_grad():
        refiner = Refiner(hand_model, config)
    per_chunk = refiner.progress_total() + 1
    total = len(chunks) * per_chunk
    yield RunEvent("refine", 0, total)
    losses: dict[str, list[float]] = {}
    fitted = refined_frames = 0
    gate_counts = np.zeros(len(REASONS), np.int64)
    for index, (lo, hi, a, b) in enumerate(chunks):
        check_cancel(cancel, f"cancelled while refining (frames {lo}..{hi - 1})")
        part = {name: np.array(arrays[name][a:b]) for name in REFINE_INPUTS if name in arrays}  # copies, not maps
        hands = part["valid"].astype(bool) & np.isfinite(part["keypoints"]).all((-1, -2))
        count = int((hands.any(-1) & np.isfinite(part["bbox"]).all(-1)).sum())  # refine.arrays' own test
        out: dict[str, np.ndarray] = {}
        if count:
            fit = refine_result_arrays_steps(part, refiner, device=device, image_size=image_size)
            while True:  # the fit one piece at a time, its progress and a look at cancel in between
                with torch.inference_mode(False), torch.enable_grad(), _cpu_threads_for(device, threads):
                    try:
                        steps, _ = next(fit)
                    except StopIteration as finished:
                        result, raw = finished.value
                        break
                yield RunEvent("refine", index * per_chunk + steps, total)
                check_cancel(cancel, f"cancelled while refining (frames {lo}..{hi - 1})")
            out = {name[len(REFINED_PREFIX):]: value[lo - a:hi - a] for name, value in result.items()}
            for term, (first, last) in raw.losses.items():  # per-frame means: weighted by the chunk's frames
                sums = losses.setdefault(term, [0.0, 0.0])
                sums[0] += first * count
                sums[1] += last * count
            fitted += count
        done = np.isfinite(out["keypoints"]).all((-1, -2)) if out else np.zeros((hi - lo, 2), bool)
        for name, (_, kind) in REFINED_ARRAYS.items():
            value = out.get(name)
            if value is None:
                shape = (hi - lo, *rows[name])
                value = np.zeros(shape, bool) if kind == "b" else np.full(shape, ABSENT if kind == "i" else np.nan)
            store.write(name, np.arange(lo, hi), value)
        if out:
            gate_counts += np.bincount(out["gate"][done].astype(np.int64), minlength=len(REASONS))[:len(REASONS)]
        refined_frames += int(done.any(-1).sum())
        yield RunEvent("refine", (index + 1) * per_chunk, total)
    store.finalise()
    return {"config": dataclasses.asdict(config), "seconds": round(time.perf_counter() - start, 3),
            "losses": {term: [first / max(fitted, 1), last / max(fitted, 1)] for term, (first, last) in losses.items()},
            "frames": refined_frames, "chunks": len(chunks),
            "gate": {REASONS[i]: int(c) for i, c in enumerate(gate_counts) if c}}


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_threads() -> int:
    """Torch threads for a CPU run: every core this process may use but one, which is left to the thread that
    decodes and crops the next frames (``prefetch.py``). On two cores that is one torch thread: measured here,
    a second OpenMP thread buys little on an idle machine and costs 5x when other work holds a core (its threads
    spin at every barrier waiting for the one that was descheduled): 20 against 3.4 frames/s."""
    return max(1, usable_cores() - 1)


@contextlib.contextmanager
def _cpu_threads_for(device: torch.device | str, threads: int | None) -> Iterator[None]:
    """Torch's thread count set to ``threads`` (None: every core) for a piece of CPU work, restored after."""
    if torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads or usable_cores())
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check_output_folder(output: Path) -> None:
    """Check, without creating anything, that the result's folder exists or can be made and takes files:
    NotADirectoryError / PermissionError naming it otherwise."""
    folder = Path(os.path.abspath(output.parent))
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise NotADirectoryError(f"output: cannot make the folder {folder}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"output: the folder {existing} is read-only for this user; choose another -o")


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the ones created, outermost first (removed again on failure)."""
    folder = Path(os.path.abspath(folder))
    missing = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    folder.mkdir(parents=True, exist_ok=True)
    return missing
