"""Pass 1 (decoding and hand detection) in this process against worker processes: time and detection agreement.

    python benchmarks/detect_parallel.py [--real DIR] [--workers 2] [--repeat 3] [--warmups 0 15 30]
                                         [--split-workers 2 4] [--long 0] [--timed all|long]

Two tables, each case in a fresh process (MediaPipe's start-up counts, as in ``interhand run``):

1. **Time**: ``core_model.pipeline.run.detect_regions`` (what ``interhand run`` runs for pass 1) on each clip, with
   ``workers=1`` (this process: decoding in a thread beside MediaPipe) and ``workers=N`` for each ``--workers``,
   alternated ``--repeat`` times; the median wall time, frames/s and speed-up. ``--long K`` adds a clip of the
   first real clip repeated K times (mp4v, written into a temporary folder), long enough for every worker of a
   many-core machine to get a segment.
2. **Agreement** with the sequential pass: the video cut into segments for each of ``--split-workers`` workers and
   each warm-up of ``--warmups`` (segments as short as 16 frames, so that even the short clips are cut), and per
   frame compared with the sequential pass: the share of frames with the same number of hands, the share with
   identical landmarks, the landmark distance (mean over the 21, pixels) of each hand to the nearest hand of the
   sequential pass where the counts agree, and the crop region (``HandRegions.bbox``, what the network sees) as
   intersection over union with the sequential one.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_REAL = ROOT.parent / "shared" / "real-media"

from pipeline import spawn as spawn_case  # noqa: E402 (this folder's: cases run in processes alike)

from core_model.pipeline.detect_parallel import WARMUP, plan_segments  # noqa: E402 (after the path is set)

# ------------------------------------------------------------------------------------------------ worker side


def run_case(case: dict) -> dict:
    """One pass 1 in this process; its wall time, and its detections pickled to ``case['out']``."""
    from core_model.pipeline.detect_parallel import Detections, detect_in_workers, plan_segments
    from core_model.pipeline.region import HandRegions, regions_from_detections
    from core_model.pipeline.run import detect_regions
    from core_model.pipeline.video import open_source
    from core_model.timing import StageTimer

    timer = StageTimer()
    start = time.perf_counter()
    with open_source(case["video"]) as source:
        info = source.info
    if case.get("warmup") is None:  # the product's path, end to end
        frames, regions = None, None
        for item in detect_regions(case["video"], timer=timer, workers=case["workers"]):
            if isinstance(item, HandRegions):
                regions = item
        wall = time.perf_counter() - start
    else:  # a chosen cut and warm-up
        segments = plan_segments(info.frame_count, case["workers"], case["warmup"], min_segment=16)
        detected = None
        for item in detect_in_workers(case["video"], info, segments, warmup=case["warmup"], timer=timer):
            if isinstance(item, Detections):
                detected = item
        wall = time.perf_counter() - start
        if detected is None:
            raise RuntimeError("the seek check failed")
        frames = detected.frames
        regions = regions_from_detections(frames, info.fps, info.width, info.height)
    with open(case["out"], "wb") as f:
        pickle.dump({"hands": frames, "bbox": regions.bbox, "det": regions.det_keypoints2d}, f)
    return {"wall": wall, "frames": len(regions), "stages": timer.seconds}


def worker(argv: list[str]) -> int:
    print("RESULT " + json.dumps(run_case(json.loads(argv[0]))))
    return 0


# ------------------------------------------------------------------------------------------------ parent side


def spawn(case: dict) -> dict:
    """One case in a fresh process (``pipeline.spawn``), with the detections it pickled beside its figures."""
    result = spawn_case(case, __file__)
    with open(case["out"], "rb") as f:
        result.update(pickle.load(f))
    return result


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, 4] x 2 boxes (x, y, side, side) -> [N] intersection over union; NaN where either is missing."""
    lo = np.maximum(a[:, :2], b[:, :2])
    hi = np.minimum(a[:, :2] + a[:, 2:], b[:, :2] + b[:, 2:])
    inter = np.clip(hi - lo, 0, None).prod(-1)
    union = a[:, 2:].prod(-1) + b[:, 2:].prod(-1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / union


def agreement(reference: list, frames: list, ref_bbox: np.ndarray, bbox: np.ndarray) -> dict:
    """How far ``frames`` (per-frame FrameHands) agree with the sequential ``reference``."""
    if len(reference) != len(frames):
        raise RuntimeError(f"{len(frames)} frames against {len(reference)} sequentially")
    same = np.array([len(a) == len(b) for a, b in zip(reference, frames)])
    identical = np.array([len(a) == len(b) and np.array_equal(a.keypoints, b.keypoints)
                          for a, b in zip(reference, frames)])
    dist = [np.linalg.norm(b.keypoints - h, axis=-1).mean(-1).min()
            for a, b in zip(reference, frames) if len(a) == len(b) for h in a.keypoints]
    dist = np.array(dist) if dist else np.zeros(1)
    both = np.isfinite(ref_bbox).all(-1) & np.isfinite(bbox).all(-1)
    overlap = iou(ref_bbox[both], bbox[both]) if both.any() else np.ones(1)
    region_same = float((np.isfinite(ref_bbox).all(-1) == np.isfinite(bbox).all(-1)).mean())
    return {"same_count": float(same.mean()), "identical": float(identical.mean()),
            "first_differing": int(np.flatnonzero(~identical)[0]) if (~identical).any() else None,
            "px_median": float(np.median(dist)), "px_p95": float(np.percentile(dist, 95)),
            "px_max": float(dist.max()), "iou_mean": float(overlap.mean()), "iou_min": float(overlap.min()),
            "region_same": region_same}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()
    return (f"{platform.node()}: {cores} usable cores ({cpu}); load average {load[0]:.2f} / {load[1]:.2f} / "
            f"{load[2]:.2f}")


def frame_count(clip: Path) -> int:
    """The frames the container announces (what the segments are planned on)."""
    from core_model.pipeline.video import open_source

    with open_source(clip) as source:
        return source.info.frame_count


def write_long(clip: Path, times: int, out: Path) -> Path:
    """``clip`` repeated ``times`` times into ``out`` (mp4v)."""
    import cv2

    from core_model.pipeline.video import open_source

    with open_source(clip) as source:
        frames = [f for _, f in source]
        fps, (w, h) = source.info.fps, (source.info.width, source.info.height)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for _ in range(times):
        for f in frames:
            writer.write(np.ascontiguousarray(f[:, :, ::-1]))
    writer.release()
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL, help="folder of real clips (*.mp4)")
    parser.add_argument("--workers", type=int, nargs="+", default=[2], help="worker counts to time")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each timed case (median reported)")
    parser.add_argument("--warmups", type=int, nargs="*", default=[0, WARMUP, 2 * WARMUP], help="warm-ups to compare")
    parser.add_argument("--split-workers", type=int, nargs="*", default=[2, 4],
                        help="worker counts for the agreement table")
    parser.add_argument("--long", type=int, default=0, help="also time the first clip repeated this many times")
    parser.add_argument("--no-time", action="store_true", help="only the agreement table")
    parser.add_argument("--timed", choices=("all", "long"), default="all",
                        help="clips to time: all, or only the --long one")
    args = parser.parse_args(argv)
    clips = sorted(args.real.glob("*.mp4")) if args.real.is_dir() else []
    if not clips:
        print(f"no clips in {args.real}")
        return 1
    print(machine(), flush=True)
    with tempfile.TemporaryDirectory(prefix="interhand-detect-") as tmp:
        tmp = Path(tmp)
        timed = list(clips) if args.timed == "all" or not args.long else []
        if args.long:
            longest = max(clips, key=frame_count)
            timed.append(write_long(longest, args.long, tmp / f"{longest.stem}_x{args.long}.mp4"))
        sequential = {}
        if not args.no_time:
            print("\n### Time: `detect_regions` in this process (1) and in worker processes\n")
            print("| clip | frames | workers | segments | wall (s), median of " + str(args.repeat)
                  + " | frames/s | speed-up | runs (s) |\n| --- | --- | --- | --- | --- | --- | --- | --- |")
        for clip in timed:
            counts = [1] if args.no_time else [1, *args.workers]
            walls: dict[int, list[float]] = {w: [] for w in counts}
            for _ in range(1 if args.no_time else args.repeat):
                for w in counts:
                    r = spawn({"video": str(clip), "workers": w, "out": str(tmp / f"{clip.stem}_{w}.pkl")})
                    walls[w].append(r["wall"])
                    if w == 1:
                        sequential[clip] = r
            if args.no_time:
                continue
            base = float(np.median(walls[1]))
            n = sequential[clip]["frames"]
            for w in counts:
                wall = float(np.median(walls[w]))
                segments = len(plan_segments(frame_count(clip), w))
                print(f"| {clip.name} | {n} | {w} | {segments} | {wall:.2f} | {n / wall:.1f} | {base / wall:.2f}x | "
                      f"{', '.join(f'{x:.1f}' for x in walls[w])} |", flush=True)

        if args.warmups and args.split_workers:
            print("\n### Agreement with the sequential pass (segments of at least 16 frames)\n")
            print("| clip | workers | warm-up | same hand count | identical landmarks | first differing frame | "
                  "landmarks (px): median / 95th pct / max | crop IoU: mean / min |\n"
                  "| --- | --- | --- | --- | --- | --- | --- | --- |")
            for clip in clips:
                ref = spawn({"video": str(clip), "workers": 1, "warmup": 0, "out": str(tmp / "ref.pkl")})
                for w in args.split_workers:
                    for warm in args.warmups:
                        r = spawn({"video": str(clip), "workers": w, "warmup": warm,
                                   "out": str(tmp / f"{clip.stem}_{w}_{warm}.pkl")})
                        a = agreement(ref["hands"], r["hands"], ref["bbox"], r["bbox"])
                        first = "none" if a["first_differing"] is None else str(a["first_differing"])
                        print(f"| {clip.name} | {w} | {warm} | {a['same_count']:.1%} | {a['identical']:.1%} | "
                              f"{first} | {a['px_median']:.2f} / {a['px_p95']:.2f} / {a['px_max']:.1f} | "
                              f"{a['iou_mean']:.3f} / {a['iou_min']:.3f} |", flush=True)
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
