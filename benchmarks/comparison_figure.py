"""Time of a three-method comparison figure: ``interhand figures multiview`` with two results of one clip and one
result's refinement, a row per frame, headless (offscreen EGL/OSMesa, no display). Prints the whole command's wall
time as a user runs it (a fresh process: imports, loading, rendering, writing) and, in-process, where the time goes.

    python benchmarks/comparison_figure.py CLIP OURS.npz OTHER.npz [--labels ours other] [--frames 40,120,230]
        [--out DIR] [--repeats 3]

OURS.npz holds the test-time refinement (``interhand run CLIP -o OURS.npz --refine``); OTHER.npz is another result
of the same clip (e.g. ``interhand run CLIP -o OTHER.npz --roi x,y,w,h``). The figures are written to DIR
(default: a temporary folder) as PNG and PDF at 300 dpi, so they can be looked at.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def command(args: argparse.Namespace, out: Path) -> list[str]:
    return [sys.executable, "-m", "core_model.cli", "figures", "multiview", str(args.ours), str(args.other),
            "--labels", *args.labels, "--refined", "--frames", args.frames, "--video", str(args.clip),
            "--out", str(out), "--dpi", str(args.dpi)]


def whole_command(args: argparse.Namespace, out: Path) -> float:
    """Seconds of one ``interhand figures multiview`` process, start to exit."""
    start = time.perf_counter()
    result = subprocess.run(command(args, out), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"interhand figures multiview failed:\n{result.stderr}")
    return seconds


def in_process(args: argparse.Namespace, out: Path) -> dict[str, float]:
    """Where one figure's time goes, in this (warm) process: loading the two results, the hand model's faces,
    rendering the meshes, reading and cropping the frames, and laying out and writing the figure."""
    from core_model.figures import multiview
    from core_model.figures.multiview import comparison_figure, methods_of
    from core_model.pipeline.models import faces_of, hand_model_of_result
    from core_model.results import load_result

    spent: dict[str, float] = {}

    def timed(name, function):
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
        return wrapper

    render, crops, save = multiview._render, multiview._crops, multiview.save_figure
    multiview._render, multiview._crops = timed("render meshes", render), timed("read and crop frames", crops)
    multiview.save_figure = timed("draw and write figure", save)
    try:
        start = time.perf_counter()
        ours, other = load_result(args.ours), load_result(args.other)
        spent["load results"] = time.perf_counter() - start
        start = time.perf_counter()
        faces = faces_of(hand_model_of_result(ours.meta.hand_model))
        spent["hand model faces"] = time.perf_counter() - start
        methods = methods_of([(args.labels[0], ours, faces), (args.labels[1], other, faces)], refined=True)
        start = time.perf_counter()
        comparison_figure(methods, [int(f) for f in args.frames.split(",")], out, video=args.clip, dpi=args.dpi)
        spent["figure in all"] = time.perf_counter() - start
    finally:
        multiview._render, multiview._crops, multiview.save_figure = render, crops, save
    spent["layout (the rest)"] = spent["figure in all"] - sum(
        spent.get(k, 0.0) for k in ("render meshes", "read and crop frames", "draw and write figure"))
    return spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clip", type=Path, help="the video both results were made from")
    parser.add_argument("ours", type=Path, help="a result with its refinement (interhand run --refine)")
    parser.add_argument("other", type=Path, help="another result of the same clip")
    parser.add_argument("--labels", nargs=2, default=["ours", "other"], help="the two results' column headers")
    parser.add_argument("--frames", default="40,120,230", help="frames, one row each (default 40,120,230)")
    parser.add_argument("--dpi", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3, help="runs of the whole command per format")
    parser.add_argument("--out", type=Path, default=None, help="folder for the figures (default: a temporary one)")
    args = parser.parse_args(argv)
    folder = args.out or Path(tempfile.mkdtemp(prefix="interhand-comparison-figure-"))
    folder.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{platform.node()}: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {load:.1f}; clip {args.clip.name}, frames {args.frames}, {args.dpi} dpi; "
          "methods: " + ", ".join([args.labels[0], f"{args.labels[0]} (refined)", args.labels[1]]))
    print()
    print("| figure | whole command, s (runs) | median |")
    print("| --- | --- | ---: |")
    for suffix in ("png", "pdf"):
        out = folder / f"comparison.{suffix}"
        runs = [whole_command(args, out) for _ in range(args.repeats)]
        print(f"| {out.name} | {', '.join(f'{s:.1f}' for s in runs)} | {statistics.median(runs):.1f} |")
    print()
    in_process(args, folder / "warm-up.png")  # imports and first-use costs out of the way
    spent = in_process(args, folder / "in-process.png")
    print("| in-process (warm), PNG | s |")
    print("| --- | ---: |")
    for name, seconds in spent.items():
        print(f"| {name} | {seconds:.2f} |")
    print()
    print(f"figures in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
