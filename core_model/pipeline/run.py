"""Video -> result file, as a generator of progress events (DESIGN section 10: the GUI worker forwards them as
signals, the CLI draws a progress bar; cancel is cooperative, between batches).

Two passes over the video, one frame in memory at a time: the first detects hands (the regions need the whole
sequence, see ``region.py``), the second cuts crops and feeds the windows to the model. Finished frames go to a
hidden parts folder beside the result (``store.py``: memory stays bounded on long videos); the result file is
written at the end, atomically, and the parts folder removed whatever happens: a cancelled, failed or
interrupted run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from core_model import __version__
from core_model.pipeline.detect import MediaPipeHandDetector, detect_frames
from core_model.pipeline.inference import STCNetWindowModel, plan_windows, run_windows
from core_model.pipeline.prefetch import Prefetch
from core_model.pipeline.region import HandRegions, crop_frame, regions_from_detections, regions_from_roi
from core_model.pipeline.store import FrameStore
from core_model.pipeline.timing import StageTimer, stage
from core_model.pipeline.video import open_source
from core_model.results import FRAME_ARRAYS, Reconstruction, ResultMeta, file_sha256, save_result

log = logging.getLogger(__name__)

STORED = ("betas", "global_orient", "hand_pose", "transl", "keypoints", "vertices", "keypoints2d", "inside", "depth",
          "chirality_maps")
"""Per-frame arrays the model makes, kept on disk while the run goes on (``store.py``); the rest is small."""


@dataclasses.dataclass
class RunEvent:
    """stage: ``detect``, ``model`` or ``done``; done/total in that stage's units (frames, windows);
    frames: indices whose results are final (model stage); result: the finished record (done stage).
    arrays (model stage): the run's per-frame arrays by result-file name, filled in place as windows finish, so a
    viewer can show the frames listed so far while the run goes on (read them; never write)."""

    stage: str
    done: int
    total: int
    frames: np.ndarray | None = None
    result: Reconstruction | None = None
    message: str = ""
    arrays: dict[str, np.ndarray] | None = None


def detect_regions(video: str | os.PathLike[str], roi: tuple[float, float, float, float] | None = None,
                   cancel: Callable[[], bool] | None = None, timer: StageTimer | None = None
                   ) -> Iterator[RunEvent | HandRegions]:
    """Pass 1: yields RunEvent('detect') per frame, then the HandRegions. ``timer``: seconds of the ``decode``
    and ``detect`` stages."""
    with open_source(video) as source, MediaPipeHandDetector() as detector:
        info = source.info
        frames = []
        stream = timer.iterate("decode", source) if timer is not None else source
        with Prefetch(stream, depth=2, name="decode") as decoded:  # decoding overlaps detection
            for index, hands in detect_frames(decoded, detector, info.fps, timer=timer):
                frames.append(hands)
                if cancel is not None and index % 32 == 0 and cancel():
                    from core_model.pipeline.inference import CancelledError

                    raise CancelledError(f"cancelled while detecting hands (frame {index})")
                yield RunEvent("detect", index + 1, info.frame_count)
        if source.stop_reason:
            log.warning(source.stop_reason)
            yield RunEvent("detect", len(frames), len(frames), message=source.stop_reason)
        elif len(frames) != info.frame_count:  # the container's count was an estimate: end the bar at 100 %
            yield RunEvent("detect", len(frames), len(frames))
    regions = regions_from_detections(frames, info.fps, info.width, info.height)
    if roi is not None:
        regions = regions_from_roi(len(frames), roi, info.width, info.height, detections=regions)
    yield regions


def reconstruct(video: str | os.PathLike[str], output: str | os.PathLike[str], model: torch.nn.Module, *,
                model_preset: str, checkpoint_sha256: str = "", roi: tuple[float, float, float, float] | None = None,
                batch: int = 4, overlap: int | None = None, device: torch.device | str = "cpu",
                cancel: Callable[[], bool] | None = None, autocast: torch.dtype | None = None,
                encode_batch: int = 8, timer: StageTimer | None = None) -> Iterator[RunEvent]:
    """Reconstruct ``video`` with ``model`` (an STCNet in eval mode on ``device``) and write ``output``.

    ``autocast``: reduced precision for the network (``torch.bfloat16`` on a GPU); ``encode_batch``: frames per
    encoder call; ``timer``: collects seconds per stage (decode, detect, crop, model, blend, hand model,
    penetration, write) for ``benchmarks/pipeline.py``."""
    from core_model.geometry.interpenetration import HandMeshes, detect_interpenetration

    output = Path(output)
    if output.suffix != ".npz":
        raise ValueError(f"output: a result file ends in .npz, got {output.name}")
    check_output_folder(output)  # before minutes of work, not after
    regions, decode_stopped = None, ""
    for item in detect_regions(video, roi, cancel, timer):
        if isinstance(item, HandRegions):
            regions = item
        else:
            decode_stopped = item.message or decode_stopped
            yield item
    if regions is None:  # detect_regions always ends with the regions
        raise RuntimeError("detect_regions: ended without regions")
    n = len(regions)
    has_region = regions.region_valid
    if not has_region.any():
        raise ValueError(f"video: no hands found on any of the {n} frames of {Path(video).name}")
    window_model = STCNetWindowModel(model)
    length, size = window_model.frames, window_model.input_size
    overlap = length // 2 if overlap is None else overlap
    windows = plan_windows(has_region, length, overlap)
    hand_model = model.hand_model
    meshes = HandMeshes.from_model(hand_model)
    symbols = {"N": n, "V": hand_model.num_vertices, "H": model.config.feature_sizes[0]}
    rows = {name: (tuple(symbols.get(d, d) for d in FRAME_ARRAYS[name][0][1:]),
                   bool if FRAME_ARRAYS[name][1] == "b" else np.float32) for name in STORED}
    created = _make_folders(output.parent)
    window_store: FrameStore | None = None
    store: FrameStore | None = None
    saved = False
    try:
        store = FrameStore(output, n, rows)
        arrays: dict[str, np.ndarray] = dict(store.views())
        arrays["bbox"], arrays["valid"] = regions.bbox, regions.valid & has_region[:, None]
        arrays["det_keypoints2d"], arrays["det_score"] = regions.det_keypoints2d, regions.det_score
        window_frames: list[tuple[int, int]] = []
        with open_source(video) as source, contextlib.ExitStack() as stack:
            def crops() -> Iterator[tuple[int, np.ndarray]]:
                frames = timer.iterate("decode", source) if timer is not None else source
                for index, frame in frames:
                    if index >= n:
                        break
                    if has_region[index]:
                        with stage(timer, "crop"):
                            crop = crop_frame(frame, regions.bbox[index], size)
                        yield index, crop

            # Decoding and cropping overlap the model; the prefetcher is closed before the source is.
            prefetched = stack.enter_context(Prefetch(crops(), depth=2 * length, name="crops"))
            for update in run_windows(window_model, prefetched, windows, overlap=overlap, batch=batch,
                                      device=device, cancel=cancel, encode_batch=encode_batch, autocast=autocast,
                                      timer=timer):
                f = update.frames
                if len(f):
                    out = update.outputs
                    with stage(timer, "penetration"):
                        pen = detect_interpenetration(out["vertices"], meshes)
                    with stage(timer, "write"):
                        box = regions.bbox[f][:, None, None]  # crop [-1, 1] -> frame pixels
                        out["keypoints2d"] = box[..., :2] + (out["keypoints2d"] + 1) / 2 * box[..., 2:3]
                        out["inside"], out["depth"] = pen.inside, pen.depth
                        for name in STORED:
                            store.write(name, f, out[name])
                with stage(timer, "write"):
                    for span, maps in update.windows:
                        if "mhsa_attention" not in maps:
                            continue
                        if window_store is None:
                            window_store = FrameStore(output, len(windows), {
                                k: (maps[k].shape, np.float32) for k in ("mhsa_attention", "mhca_attention")
                                if k in maps})
                        window_store.write("mhsa_attention", [len(window_frames)], maps["mhsa_attention"][None])
                        if "mhca_attention" in maps and "mhca_attention" in window_store.names:
                            window_store.write("mhca_attention", [len(window_frames)], maps["mhca_attention"][None])
                        window_frames.append(span)
                yield RunEvent("model", update.done, update.total, frames=f, arrays=arrays)
        with stage(timer, "write"):
            store.finalise()
            windowed = {}
            if window_store is not None:
                window_store.finalise()
                windowed = dict(window_store.views())  # every window ran: a cancelled run never gets here
                windowed["window_frames"] = np.array(window_frames, np.int64).reshape(-1, 2)
            video_path = Path(video)
            extra: dict[str, object] = {"region_shares": regions.shares(), "overlap": overlap}
            if decode_stopped:
                extra["decode_stopped"] = decode_stopped
            meta = ResultMeta(source_path=str(video_path.resolve()),
                              source_sha256=file_sha256(video_path) if video_path.is_file() else "",
                              fps=float(source.info.fps), frame_count=n, model_preset=model_preset,
                              checkpoint_sha256=checkpoint_sha256, hand_model=hand_model.name,
                              software_version=__version__, extra=extra)
            result = Reconstruction(meta=meta, **arrays, region_source=regions.source, **windowed)
            save_result(result, output)
            saved = True
        yield RunEvent("done", 1, 1, result=result, message=f"wrote {output}")
    finally:
        for parts in (store, window_store):
            if parts is not None:
                parts.close()
        if not saved:
            for folder in reversed(created):
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only if empty: never anything but what this run made


def cpu_threads() -> int:
    """Torch threads for a CPU run: every core this process may use but one, which is left to the thread that
    decodes and crops the next frames (``prefetch.py``). On two cores that is one torch thread: measured here,
    a second OpenMP thread buys little on an idle machine and costs 5x when other work holds a core (its threads
    spin at every barrier waiting for the one that was descheduled): 20 against 3.4 frames/s."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - 1)


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
