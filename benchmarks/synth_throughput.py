"""Throughput of the synthetic set generator (``interhand synth``) in one process, per image size.

Prints a markdown table: frames per second end to end (motion, rendering with VTK offscreen, compositing and
writing JPEG/PNG/npz), and the share of each stage. Run: ``python benchmarks/synth_throughput.py``
(``--sizes 128 256 512 --sequences 3 --frames 30``).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--sequences", type=int, default=3)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--hand-model", default="auto")
    args = parser.parse_args()

    from core_model.data.appearance import hand_regions
    from core_model.data.motion import synthesize_motion
    from core_model.data.renderer import HandRenderer
    from core_model.data.synth import generate_sequence, sequence_seed, write_sequence
    from core_model.handmodel.registry import load_hand_model

    torch.set_num_threads(1)
    model = load_hand_model(args.hand_model)
    faces = [model.right.data.faces, model.left.data.faces,
             hand_regions(model.right).forearm_faces, hand_regions(model.left).forearm_faces]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; torch threads 1; "
          f"hand model {model.name} ({model.num_vertices} vertices per hand)")
    print(f"{args.sequences} sequences x {args.frames} frames per size, one process\n")
    print("| size | frames | end to end (frames/s) | motion (ms/frame) | render + composite (ms/frame) "
          "| write (ms/frame) |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            motion_s = gen_s = write_s = 0.0
            with HandRenderer(size, faces) as renderer:
                generate_sequence(model, sequence_seed(999, "train", 0), 2, size, renderer)  # warm up
                for i in range(args.sequences):
                    seed = sequence_seed(0, "train", i)
                    rng = np.random.default_rng(seed)
                    start = time.perf_counter()
                    synthesize_motion(model, rng, args.frames, size * rng.uniform(1.0, 1.7), size)
                    motion_s += time.perf_counter() - start
                    start = time.perf_counter()
                    seq = generate_sequence(model, seed, args.frames, size, renderer)
                    gen_s += time.perf_counter() - start
                    start = time.perf_counter()
                    write_sequence(seq, Path(tmp) / f"{size}_{i}")
                    write_s += time.perf_counter() - start
            n = args.sequences * args.frames
            print(f"| {size} | {n} | {n / (gen_s + write_s):.1f} | {1000 * motion_s / n:.1f} | "
                  f"{1000 * (gen_s - motion_s) / n:.1f} | {1000 * write_s / n:.1f} |")


if __name__ == "__main__":
    main()
