"""Print STCNet's complexity for both presets as a Markdown table (recorded in BENCHMARKS.md).

    python benchmarks/complexity.py [--runs 5] [--device cpu]

Parameters, FLOPs per frame and per T-frame window (torch.utils.flop_counter: 2 FLOPs per multiply-add), and
latency per window at batch 1 (median of --runs after one warm-up), beside the paper's Table 4.
"""

from __future__ import annotations

import argparse
import platform

import torch

from core_model.device import describe_device, pick_device
from core_model.handmodel.registry import load_hand_model
from core_model.network.complexity import PAPER_FLOPS, PAPER_PARAMETERS, measure_complexity
from core_model.network.config import STCNetConfig


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="timed forward passes per preset (median reported)")
    parser.add_argument("--device", default="cpu", help="device for the latency ('cpu', 'cuda', 'auto')")
    parser.add_argument("--presets", nargs="+", default=["paper", "lite"], choices=["paper", "lite"])
    args = parser.parse_args()
    device = pick_device(args.device)
    hand_model = load_hand_model("auto").to(device)
    print(f"machine: {cpu_name()}, {describe_device(device)}; hand model {hand_model.name}")
    print()
    print("| preset | encoder, input, T | parameters | FLOPs / frame (torch) | MACs / frame | FLOPs / window "
          f"| latency / window ({device.type}, batch 1) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    measured = {}
    for name in args.presets:
        c = measure_complexity(STCNetConfig.from_preset(name), hand_model, latency_runs=args.runs, device=device)
        measured[name] = c
        print(f"| `{name}` | {c.encoder}, {c.input_size}x{c.input_size}, {c.frames} | {c.parameters / 1e6:.2f} M "
              f"| {c.flops_per_frame / 1e9:.2f} G | {c.macs_per_frame / 1e9:.2f} G | {c.flops_window / 1e9:.1f} G "
              f"| {c.latency_ms:.0f} ms ({c.latency_ms / c.frames:.1f} ms / frame) |")
    print(f"| paper, Table 4 | ResNet-50, 256x256, 10 | {PAPER_PARAMETERS / 1e6:.1f} M "
          f"| {PAPER_FLOPS / 1e9:.1f} G (\"Flops\"; unit, frame or window not stated) | | | |")
    print()
    print("| preset | part | parameters | FLOPs / window (torch) |")
    print("| --- | --- | ---: | ---: |")
    for name, c in measured.items():
        for part, flops in c.flops_by_part.items():
            print(f"| `{name}` | {part} | {c.parameters_by_part[part] / 1e6:.2f} M | {flops / 1e9:.3f} G |")
    print()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
