"""Handlers of ``interhand export`` and ``interhand run`` (wired into ``core_model.cli``)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from core_model.progress import ProgressBar

if TYPE_CHECKING:
    import torch

    from core_model.pipeline.detect import Witness

log = logging.getLogger("interhand")


def cmd_export(args: argparse.Namespace) -> int:
    """Meshes of the selected frames, one file each, plus the animated GLB of the selection."""
    from core_model.pipeline.models import faces_of, hand_model_of_result
    from core_model.pipeline.sequence_export import export_animation, export_frames, parse_frames
    from core_model.results import load_result

    result = load_result(args.result)
    frames = parse_frames(args.frames, result.num_frames)
    model = hand_model_of_result(result.meta.hand_model)
    faces = faces_of(model)
    if model.num_vertices != result.num_vertices:
        raise ValueError(f"result: {result.num_vertices} vertices per hand, but {model.name} here has "
                         f"{model.num_vertices}")
    written = export_frames(result, faces, args.out, args.format, frames)
    skipped = len(frames) - len(written)
    print(f"wrote {len(written)} {args.format.upper()} files to {args.out}"
          + (f" ({skipped} frames without both hands skipped)" if skipped else ""))
    if not args.no_animation:
        path = export_animation(result, faces, Path(args.out) / f"{Path(args.result).stem}_animation.glb", frames)
        print(f"wrote {path} (animated, {result.meta.fps:g} fps)")
    return 0


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("result", type=Path, help="result file (.npz) written by interhand run")
    p.add_argument("--format", choices=("obj", "ply", "glb"), default="obj", help="mesh format of the per-frame files")
    p.add_argument("--frames", default=None, help="frames a:b (Python slice; default all) or one index")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--no-animation", action="store_true", help="skip the animated GLB of the whole selection")


EXIT_TRUNCATED = 3  # the result was written from the readable part of a damaged video
EXIT_INTERRUPTED = 130  # the shell's status for a command ended by SIGINT


def cmd_run(args: argparse.Namespace) -> int:
    """Reconstruct a video into a result file. Exit status 0, 2 (bad input: nothing written), 3 (a damaged or
    truncated video: the result holds the frames before the damage) or 130 (Ctrl-C: nothing written). A run
    killed without a word (SIGKILL, power cut) continues where it stood when the same command is run again."""
    bar = ProgressBar()
    previous = _terminate_like_ctrl_c()
    try:
        return _run(args, bar)
    except KeyboardInterrupt:
        bar.end()
        written = f"after writing {args.output}" if bar.stage == "done" else \
            f"during {bar.stage or 'start-up'}; nothing was written to {args.output}"
        print(f"interhand run: interrupted (Ctrl-C) {written}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _restored(restore: Callable[[], object]) -> Iterator[None]:
    try:
        yield
    finally:
        restore()


def _terminate_like_ctrl_c():
    """SIGTERM (``kill``, a closing terminal, a job scheduler) ends the run as Ctrl-C does, clean-up included;
    Python's default would end the process at once and leave the run's parts folder behind. Returns the previous
    handler (None when not in the main thread, where handlers cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def _run(args: argparse.Namespace, bar: ProgressBar) -> int:
    import torch

    from core_model.device import pick_device
    from core_model.pipeline.models import load_run_model
    from core_model.pipeline.region import parse_roi
    from core_model.pipeline.run import check_output_folder, cpu_threads, reconstruct

    if not Path(args.video).exists():
        raise FileNotFoundError(f"video: no such file or folder {args.video}")
    if Path(args.output).suffix != ".npz":
        raise ValueError(f"-o/--output: a result file ends in .npz, got {Path(args.output).name}")
    check_output_folder(Path(args.output))  # before loading anything
    if args.batch < 1:
        raise ValueError(f"--batch: expected a positive number of windows, got {args.batch}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads: expected a positive number of threads, got {args.threads}")
    if args.detect_workers is not None and args.detect_workers < 1:
        raise ValueError(f"--detect-workers: expected a positive number of processes, got {args.detect_workers}")
    roi = parse_roi(args.roi) if args.roi else None
    device = pick_device(args.device) if args.device else pick_device()
    model, preset, ckpt_hash = load_run_model(args.checkpoint, args.hand_model, device, args.untrained)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(args.threads or cpu_threads())
        log.debug("torch threads: %d", torch.get_num_threads())
    stopped = ""
    refine = None
    if args.refine:
        from core_model.refine import RefineConfig

        refine = RefineConfig()
    run = reconstruct(args.video, args.output, model, model_preset=preset, checkpoint_sha256=ckpt_hash, roi=roi,
                      batch=args.batch, device=device, refine=refine, refine_threads=args.threads,
                      witness=load_witness(args.witness, device), detect_workers=args.detect_workers,
                      resume=not args.restart)
    # Process-wide torch settings go back as they were afterwards (the CLI may be called in-process).
    with contextlib.closing(run), torch.no_grad(), _restored(lambda: torch.set_num_threads(threads)):
        for event in run:
            if event.stage == "done":
                bar.end()
                bar.stage = "done"
                print(event.message)
                shares = event.result.meta.extra.get("region_shares", {})
                print(f"two-hand region on {shares.get('two_hand_region', 0):.1%} of frames; the hand detector "
                      f"alone saw two hands on {shares.get('detector_two_hands', 0):.1%}"
                      + (f"; our perception witnessed {shares['perception_hands']:.2f} hands per frame"
                         if "perception_hands" in shares else ""))
                if "refine" in event.result.meta.extra:
                    print(_refine_summary(event.result.meta.extra["refine"]))
            else:
                if event.note:
                    bar.end()
                    print(f"interhand run: {event.note}", file=sys.stderr)
                if event.message:
                    bar.end()
                    stopped = event.message
                    print(f"warning: {event.message}", file=sys.stderr)
                bar(event.stage, event.done, event.total)
    if stopped:
        print(f"interhand run: the video is damaged or truncated; {args.output} holds the frames before the "
              f"damage (exit status {EXIT_TRUNCATED})", file=sys.stderr)
        return EXIT_TRUNCATED
    return 0


WITNESSES = ("mediapipe", "fused")


def load_witness(choice: str, device: torch.device) -> Witness | None:
    """The second witness ``--witness`` asks for: None for MediaPipe alone, the shipped perception for fused."""
    if choice not in WITNESSES:
        raise ValueError(f"--witness: expected one of {WITNESSES}, got {choice!r}")
    if choice == "mediapipe":
        return None
    from core_model.assets import asset_path
    from core_model.perception.model import load_perception
    from core_model.pipeline.perceive import SHIPPED
    from core_model.pipeline.witness import PerceptionWitness

    model, _ = load_perception(asset_path(*SHIPPED), device)
    return PerceptionWitness(model, device)


def _refine_summary(info: dict) -> str:
    """One line on the refinement: frames, hands whose landmarks were fitted, time."""
    gate = info.get("gate", {})
    if not info.get("frames"):
        return "refine: no frame holds a hand the detector found (or tracked); nothing was refined (refined_* hold NaN)"
    return (f"refined {info['frames']} frames in {info.get('seconds', 0):.1f} s (stored as refined_* beside the "
            f"network's result); the detector's landmarks were fitted on {gate.get('used', 0)} of "
            f"{sum(gate.values())} hands")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", type=Path, help="video file or image folder")
    p.add_argument("-o", "--output", type=Path, required=True, help="result file to write (.npz)")
    add_model_options(p)


def add_model_options(p: argparse.ArgumentParser, batch: bool = False) -> None:
    """The options ``interhand run`` and ``interhand batch`` share: the model, the device, the region, the work
    (``batch``: the help of the batch's device and threads, which are per model worker)."""
    from core_model.network.config import PRESETS

    model = p.add_mutually_exclusive_group()
    model.add_argument("--checkpoint", type=Path, default=None,
                       help="STCNet checkpoint (default: the shipped model, trained on synthetic renders)")
    model.add_argument("--untrained", choices=sorted(PRESETS), default=None, metavar="PRESET",
                       help="an untrained network of this preset (lite or paper) instead of a checkpoint: shows the "
                            "pipeline working, not the hands")
    p.add_argument("--device", default=None,
                   help="cpu, cuda, cuda:1 ... (default: every GPU, a model worker each; else the CPU)" if batch else
                   "cpu, cuda, cuda:1 ... (default: CUDA when present)")
    p.add_argument("--roi", default=None, help="manual hand region x,y,w,h in pixels (default: detected)")
    p.add_argument("--batch", type=int, default=4, help="windows per batch")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads of each model worker on the CPU (default 1; the other cores detect)" if batch
                   else "torch threads on the CPU (default: the cores but one, which decodes the next frames; "
                        "--refine's fit, after the last frame, every core)")
    if not batch:  # a batch schedules its own detection processes (--detectors), with MediaPipe alone for now
        p.add_argument("--witness", choices=WITNESSES, default="mediapipe",
                       help="whose landmarks place and guide the hands: mediapipe (MediaPipe's hand landmarker "
                            "alone) or fused (MediaPipe, and the shipped two-hand perception where MediaPipe sees "
                            "fewer than two hands, which also segments every crop; slower; detection then runs in "
                            "this process)")
        p.add_argument("--detect-workers", type=int, default=None, metavar="N",
                       help="processes that decode and detect hands in segments of the video (default: one per "
                            "usable core, and 1 (this process) on two cores or fewer, where 2 gain 1.1-1.5x on an "
                            "idle machine but lose under load from other processes)")
        p.add_argument("--restart", action="store_true",
                       help="start again even if a killed run of the same video, result file, model and settings "
                            "left its finished windows (by default the run continues from them)")
    p.add_argument("--refine", action="store_true",
                   help="fit the network's hands to the detector's landmarks (test-time refinement); stores "
                        "refined_* beside the network's result")
