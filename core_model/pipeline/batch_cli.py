"""Handler of ``interhand batch`` (wired into ``core_model.cli``): many videos into a folder of results and a
summary table, on this machine or a Ray cluster (``core_model.pipeline.batch`` and ``batch_schedule``)."""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
import time
from pathlib import Path

from core_model.pipeline.cli_commands import EXIT_INTERRUPTED, EXIT_TRUNCATED, _terminate_like_ctrl_c, add_model_options
from core_model.progress import ProgressBar

EXIT_SOME_FAILED = EXIT_TRUNCATED
"""Some videos failed or were truncated; the others' results are written and the summary says which."""


def add_batch_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+",
                   help="videos, folders (the videos under them; a folder of images is one sequence), glob patterns "
                        "(quote them: 'data/**/*.mp4') or text files listing any of these, one per line")
    p.add_argument("-o", "--out", type=Path, required=True,
                   help="output folder: a result per video (NAME.npz, after the video's name) and summary.csv")
    add_model_options(p, batch=True)
    p.add_argument("--workers", type=int, default=None,
                   help="model workers, each loading the model once (default: one per GPU; on the CPU one per "
                        "three cores)")
    p.add_argument("--detectors", type=int, default=None,
                   help="videos detected at once, ahead of the model workers (default: the cores; with GPUs the "
                        "cores the workers leave)")
    p.add_argument("--retry-failed", action="store_true",
                   help="run again the videos an earlier run of this batch found unusable (damaged, no hands); "
                        "finished results are always skipped")
    ray = p.add_mutually_exclusive_group()
    ray.add_argument("--ray", action="store_true",
                     help="run on a local Ray cluster started for the batch (needs interhand-studio[cluster])")
    ray.add_argument("--ray-address", default=None, metavar="HOST:PORT",
                     help="run on the existing Ray cluster at this address ('auto': the one this machine is in); "
                          "the inputs and the output folder must be on a file system every node sees")


def cmd_batch(args: argparse.Namespace) -> int:
    """Reconstruct many videos. Exit status 0 (every video has its result), 3 (some failed or were truncated: the
    summary says which), 2 (bad arguments or a model that does not load: nothing run) or 130 (interrupted: the
    finished results stay, and a rerun continues)."""
    previous = _terminate_like_ctrl_c()
    try:
        return _batch(args, ProgressBar())
    except KeyboardInterrupt:  # before any video ran (while hashing, or starting the workers)
        print("\ninterhand batch: interrupted before any video ran", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _batch(args: argparse.Namespace, bar: ProgressBar) -> int:
    from core_model.pipeline import batch, batch_schedule
    from core_model.pipeline.models import describe_run_model
    from core_model.pipeline.region import parse_roi
    from core_model.pipeline.run import check_output_folder

    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"-o/--out: {out} is a file; the batch writes a folder of results")
    check_output_folder(out / batch.SUMMARY)
    if args.batch < 1:
        raise ValueError(f"--batch: expected a positive number of windows, got {args.batch}")
    videos = batch.collect_videos(args.inputs)
    settings = batch.BatchSettings(checkpoint=str(args.checkpoint) if args.checkpoint else None,
                                   untrained=args.untrained, hand_model=args.hand_model,
                                   roi=parse_roi(args.roi) if args.roi else None, refine=args.refine,
                                   batch=args.batch, threads=args.threads)
    describe_run_model(args.checkpoint, args.hand_model, args.untrained)  # a bad checkpoint fails here, not 20 times
    start = time.perf_counter()
    plan = batch.plan_batch(videos, out, settings.identity(), args.retry_failed,
                            hashed=(lambda i, n: bar("hashing", i, n)) if len(videos) >= 50 else None)
    bar.end()
    earlier = len(videos) - len(plan.jobs)
    print(f"{len(videos)} videos: {len(plan.jobs)} to run"
          + (f", {earlier} done by an earlier run into {out} (skipped)" if earlier else ""))
    interrupted = False
    try:
        if plan.jobs:
            backend = _backend(args, settings)
            print(f"running on {backend.describe()}")
            with contextlib.closing(batch_schedule.run_jobs(plan.jobs, backend, refine=args.refine)) as updates:
                for update in updates:
                    if update.row is not None:
                        batch.record_row(plan, update.job, update.row)
                        bar.end()
                        print(_video_line(update, Path(update.row.video).name), flush=True)
                    bar("batch", update.frames_done, max(update.frames, 1),
                        text=f"frames, video {update.videos_done}/{update.videos}")
    except KeyboardInterrupt:
        interrupted = True
    except batch_schedule.WorkerStartError as exc:
        bar.end()
        print(f"interhand batch: error: {exc}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - start
    bar.end()
    summary = batch.write_summary_csv(plan.rows, wall, out / batch.SUMMARY)
    print()
    print(batch.markdown_table(plan.rows, wall))
    print()
    ran = sum(not r.reused and r.status != "not run" for r in plan.rows)
    print(f"wrote {summary}; {ran} videos in {wall:.1f} s ({batch.videos_per_minute(plan.rows, wall):.2f} "
          "videos/minute)" if ran else f"wrote {summary}")
    if interrupted:
        print(f"interhand batch: interrupted; the finished results stay in {out}: the same command continues "
              "with the rest", file=sys.stderr)
        return EXIT_INTERRUPTED
    if any(r.status != "ok" for r in plan.rows):
        return EXIT_SOME_FAILED
    return 0


def _backend(args: argparse.Namespace, settings):
    from core_model.pipeline import batch_schedule

    if args.ray or args.ray_address:
        from core_model.pipeline.batch_ray import RayBackend

        return RayBackend(settings, address=args.ray_address, device=args.device, workers=args.workers,
                          detectors=args.detectors, threads=args.threads)
    plan = batch_schedule.plan_workers(args.device, args.workers, args.detectors, args.threads)
    return batch_schedule.LocalBackend(settings, plan)


def _video_line(update, name: str) -> str:
    row = update.row
    head = f"[{update.videos_done}/{update.videos}] {name}: {row.status}"
    if row.status == "failed":
        return f"{head} after {row.seconds:.1f} s: {row.error}"
    share = f"{100 * row.two_hands:.1f} %" if math.isfinite(row.two_hands) else "-"
    tail = f" ({row.error})" if row.error else ""
    return f"{head}, {row.frames} frames, both hands on {share}, {row.seconds:.1f} s{tail}"
