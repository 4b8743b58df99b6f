"""The ``interhand synth`` subcommand: generate the rendered synthetic set, optionally write a preview grid."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_synth_parser(subparsers, hand_model_choices: tuple[str, ...] = ("auto", "mano", "openhand")):
    """Add ``synth`` to an argparse subparsers object; returns the parser."""
    p = subparsers.add_parser("synth", help="render the synthetic interacting-hand benchmark",
                              description="Render sequences of two interacting hands with full annotations "
                                          "(see core_model.data.synth for the on-disk layout).")
    p.set_defaults(handler=run_synth)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--sequences", type=int, default=100, help="number of sequences (default 100)")
    p.add_argument("--frames", type=int, default=60, help="frames per sequence, 30 fps (default 60)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--split", choices=("train", "test"), default="train",
                   help="train or test: the two never share a random stream")
    p.add_argument("--workers", type=int, default=1, help="processes rendering in parallel (default 1)")
    p.add_argument("--hand-model", choices=hand_model_choices, default="auto",
                   help="hand model: imported MANO, shipped OpenHand, or auto (MANO if imported)")
    p.add_argument("--interactions", nargs="+", default=(), metavar="NAME",
                   help="only these interactions, in turn (default: drawn from the whole interaction prior)")
    p.add_argument("--preview", type=Path, default=None, metavar="PNG",
                   help="also write a grid of frames with their projected keypoints to PNG")
    return p


def run_synth(args: argparse.Namespace) -> int:
    from core_model.data.preview import preview_grid
    from core_model.data.synth import generate_dataset

    def progress(done: int, total: int) -> None:
        print(f"\rsynth: {done}/{total} sequences", end="", file=sys.stderr, flush=True)

    start = time.perf_counter()
    index = generate_dataset(args.out, args.sequences, args.frames, args.size, args.seed, args.split,
                             hand_model=args.hand_model, workers=args.workers, progress=progress,
                             interactions=tuple(args.interactions))
    seconds = time.perf_counter() - start
    print(file=sys.stderr)
    print(f"wrote {index} ({args.sequences} x {args.frames} frames in {seconds:.1f} s)")
    if args.preview is not None:
        print(f"wrote {preview_grid(args.out, args.preview)}")
    return 0
