"""Video -> result file, as a generator of progress events (DESIGN section 10: the GUI worker forwards them as
signals, the CLI draws a progress bar; cancel is cooperative, between batches).

Two passes over the video, one frame in memory at a time: the first detects hands (the regions need the whole
sequence, see ``region.py``), the second cuts crops and feeds the windows to the model. Nothing is written
until the end, and then atomically: a cancelled or interrupted run leaves no result file behind.
"""

from __future__ import annotations

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
from core_model.pipeline.region import HandRegions, crop_frame, regions_from_detections, regions_from_roi
from core_model.pipeline.video import open_source
from core_model.results import Reconstruction, ResultMeta, empty_arrays, file_sha256, save_result

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunEvent:
    """stage: ``detect``, ``model`` or ``done``; done/total in that stage's units (frames, windows);
    frames: indices whose results are final (model stage); result: the finished record (done stage)."""

    stage: str
    done: int
    total: int
    frames: np.ndarray | None = None
    result: Reconstruction | None = None
    message: str = ""


def detect_regions(video: str | os.PathLike[str], roi: tuple[float, float, float, float] | None = None,
                   cancel: Callable[[], bool] | None = None) -> Iterator[RunEvent | HandRegions]:
    """Pass 1: yields RunEvent('detect') per frame, then the HandRegions."""
    with open_source(video) as source, MediaPipeHandDetector() as detector:
        info = source.info
        frames = []
        for index, hands in detect_frames(source, detector, info.fps):
            frames.append(hands)
            if cancel is not None and index % 32 == 0 and cancel():
                from core_model.pipeline.inference import CancelledError

                raise CancelledError(f"cancelled while detecting hands (frame {index})")
            yield RunEvent("detect", index + 1, info.frame_count)
        if source.stop_reason:
            log.warning(source.stop_reason)
            yield RunEvent("detect", len(frames), len(frames), message=source.stop_reason)
    regions = regions_from_detections(frames, info.fps, info.width, info.height)
    if roi is not None:
        regions = regions_from_roi(len(frames), roi, info.width, info.height, detections=regions)
    yield regions


def reconstruct(video: str | os.PathLike[str], output: str | os.PathLike[str], model: torch.nn.Module, *,
                model_preset: str, checkpoint_sha256: str = "", roi: tuple[float, float, float, float] | None = None,
                batch: int = 4, overlap: int | None = None, device: torch.device | str = "cpu",
                cancel: Callable[[], bool] | None = None) -> Iterator[RunEvent]:
    """Reconstruct ``video`` with ``model`` (an STCNet in eval mode on ``device``) and write ``output``."""
    from core_model.geometry.interpenetration import HandMeshes, detect_interpenetration

    output = Path(output)
    if output.suffix != ".npz":
        raise ValueError(f"output: a result file ends in .npz, got {output.name}")
    regions = None
    for item in detect_regions(video, roi, cancel):
        if isinstance(item, HandRegions):
            regions = item
        else:
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
    arrays = empty_arrays(n, hand_model.num_vertices, model.config.feature_sizes[0])
    valid = regions.valid & has_region[:, None]
    window_frames, mhsa, mhca = [], [], []

    with open_source(video) as source:
        def crops() -> Iterator[tuple[int, np.ndarray]]:
            for index, frame in source:
                if index < n and has_region[index]:
                    yield index, crop_frame(frame, regions.bbox[index], size)

        for update in run_windows(window_model, crops(), windows, overlap=overlap, batch=batch, device=device,
                                  cancel=cancel):
            f = update.frames
            if len(f):
                out = update.outputs
                for name in ("betas", "global_orient", "hand_pose", "transl", "keypoints", "vertices"):
                    arrays[name][f] = out[name]
                arrays["chirality_maps"][f] = out["chirality_maps"]
                box = regions.bbox[f]
                scale = box[:, None, None, 2:3]
                arrays["keypoints2d"][f] = box[:, None, None, :2] + (out["keypoints2d"] + 1) / 2 * scale
                pen = detect_interpenetration(out["vertices"], meshes)
                arrays["inside"][f], arrays["depth"][f] = pen.inside, pen.depth
            for span, maps in update.windows:
                if "mhsa_attention" in maps:
                    window_frames.append(span)
                    mhsa.append(maps["mhsa_attention"])
                    if "mhca_attention" in maps:
                        mhca.append(maps["mhca_attention"])
            yield RunEvent("model", update.done, update.total, frames=f)
    arrays["bbox"] = regions.bbox
    arrays["det_keypoints2d"], arrays["det_score"] = regions.det_keypoints2d, regions.det_score
    arrays["valid"] = valid
    for name in ("betas", "global_orient", "hand_pose", "transl", "keypoints", "vertices", "keypoints2d"):
        arrays[name][~has_region] = np.nan
    video_path = Path(video)
    meta = ResultMeta(source_path=str(video_path.resolve()),
                      source_sha256=file_sha256(video_path) if video_path.is_file() else "",
                      fps=float(source.info.fps), frame_count=n, model_preset=model_preset,
                      checkpoint_sha256=checkpoint_sha256, hand_model=hand_model.name, software_version=__version__,
                      extra={"region_shares": regions.shares(), "overlap": overlap})
    result = Reconstruction(
        meta=meta, **arrays, region_source=regions.source,
        window_frames=np.array(window_frames, np.int64).reshape(-1, 2) if mhsa else None,
        mhsa_attention=np.stack(mhsa).astype(np.float32) if mhsa else None,
        mhca_attention=np.stack(mhca).astype(np.float32) if mhca and len(mhca) == len(mhsa) else None)
    save_result(result, output)
    yield RunEvent("done", 1, 1, result=result, message=f"wrote {output}")
