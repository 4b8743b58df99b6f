"""The generators the GUI worker drives: a reconstruction (model built in the worker thread, then
core_model.pipeline.run.reconstruct) and the overlay video export."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from core_model.results import Reconstruction

if TYPE_CHECKING:
    from core_model.pipeline.parts import Interrupted


@dataclasses.dataclass
class RunSettings:
    """What ``interhand run`` takes: checkpoint (None: the shipped model), untrained (a preset name instead of a
    checkpoint), device (None: CUDA when present), roi (x, y, w, h; None: detected), hand model kind (``auto``:
    the checkpoint's), windows per batch, refine (also fit the hands to the detector's landmarks, with the
    default ``RefineConfig``, as ``interhand run --refine``), resume (continue a killed run of the same video,
    result file and settings from what it finished, as ``interhand run`` does; False: ``--restart``)."""

    video: Path
    output: Path
    checkpoint: Path | None = None
    untrained: str | None = None
    device: str | None = None
    roi: tuple[float, float, float, float] | None = None
    hand_model: str = "auto"
    batch: int = 4
    refine: bool = False
    resume: bool = True


def build_model(settings: RunSettings) -> tuple[torch.nn.Module, str, str, torch.device]:
    """(model in eval mode, preset, checkpoint hash, device), the way ``interhand run`` builds it."""
    from core_model.device import pick_device
    from core_model.pipeline.models import load_run_model

    device = pick_device(settings.device)
    model, preset, ckpt_hash = load_run_model(settings.checkpoint, settings.hand_model, device, settings.untrained)
    return model, preset, ckpt_hash, device


ModelFactory = Callable[[RunSettings], tuple[torch.nn.Module, str, str, torch.device]]


def reconstruction_job(settings: RunSettings, factory: ModelFactory = build_model
                       ) -> Callable[[Callable[[], bool]], Iterator[object]]:
    """The worker's generator: builds the model (slow: weights, hand model) off the GUI thread, then yields
    core_model's RunEvents."""
    def job(cancelled: Callable[[], bool]) -> Iterator[object]:
        from core_model.pipeline.run import cpu_threads, reconstruct
        from core_model.refine import RefineConfig

        # Leave a core to the GUI thread: with every core busy in torch, the event loop waits for CPU time.
        # (Refinement, after the last frame, takes every core: measured, the GUI thread still waits < 40 ms.)
        torch.set_num_threads(cpu_threads())
        model, preset, checkpoint_hash, device = factory(settings)
        with torch.inference_mode():
            yield from reconstruct(settings.video, settings.output, model, model_preset=preset,
                                   checkpoint_sha256=checkpoint_hash, roi=settings.roi, batch=settings.batch,
                                   device=device, cancel=cancelled,
                                   refine=RefineConfig() if settings.refine else None, resume=settings.resume)
    return job


def interrupted_run(settings: RunSettings) -> Interrupted | None:
    """The parts of a killed run that ``settings`` would continue (same video, result file, checkpoint, region,
    batch, refinement and device kind), or None. An untrained network's runs never continue (new weights in every
    process). The run itself checks the model's weights too, and starts again if they differ."""
    from core_model.device import pick_device
    from core_model.pipeline.models import shipped_checkpoint
    from core_model.pipeline.parts import interrupted_runs, source_identity
    from core_model.results import file_sha256

    if settings.untrained is not None or not settings.video.exists():
        return None
    found = interrupted_runs(settings.output)
    if not found:
        return None
    checkpoint = settings.checkpoint if settings.checkpoint is not None else shipped_checkpoint()
    expected_source = source_identity(settings.video)
    expected_model = file_sha256(checkpoint) if checkpoint.is_file() else None
    wanted = {"roi": list(settings.roi) if settings.roi is not None else None, "batch": settings.batch,
              "device": pick_device(settings.device).type}
    for run in found:
        record = run.record
        ran = record.get("settings", {})
        if (record.get("source") == expected_source
                and record.get("model", {}).get("checkpoint_sha256") == expected_model
                and all(ran.get(key) == value for key, value in wanted.items())
                and (ran.get("refine") is not None) == settings.refine):
            return run
    return None


def overlay_job(video: str | os.PathLike[str], result: Reconstruction, path: Path, mode: str
                ) -> Callable[[Callable[[], bool]], Iterator[object]]:
    """Yields (frames written, total); one frame is short, so the worker's check between items cancels it."""
    def job(_cancelled: Callable[[], bool]) -> Iterator[object]:
        from core_model.figures.overlay import write_overlay_video

        yield from write_overlay_video(video, result, path, mode)
    return job
