"""STCNet's complexity: parameters, FLOPs per frame and per T-frame window, and CPU latency per window.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``, which counts matrix multiplications and
convolutions only (no normalisation, activation, softmax or elementwise ops) and counts **2 FLOPs per
multiply-add** (MAC). Papers in this field usually report MACs under the name "FLOPs"; both are printed.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from core_model.handmodel.layer import HandModel
from core_model.network.config import STCNetConfig
from core_model.network.stcnet import STCNet

PAPER_PARAMETERS = 55.4e6
PAPER_FLOPS = 16.5e9
"""Table 4 of the paper (its own model; "Flops" is not said to be per frame or per window, nor FLOPs or MACs)."""


@dataclasses.dataclass
class Complexity:
    """One configuration's figures. flops_*: torch's count, 2 per multiply-add. latency_ms: per window, batch 1,
    on ``latency_device`` (median of the runs), None when not measured."""

    preset: str
    encoder: str
    input_size: int
    frames: int
    hand_model: str
    parameters: int
    parameters_by_part: dict[str, int]
    flops_window: int
    flops_by_part: dict[str, int]
    latency_ms: float | None
    latency_device: str
    threads: int

    @property
    def flops_per_frame(self) -> float:
        return self.flops_window / self.frames

    @property
    def macs_per_frame(self) -> float:
        return self.flops_per_frame / 2

    @property
    def macs_window(self) -> float:
        return self.flops_window / 2


def count_parameters(model: torch.nn.Module) -> tuple[int, dict[str, int]]:
    """(total trainable parameters, per top-level part)."""
    by_part = {name: sum(p.numel() for p in child.parameters() if p.requires_grad)
               for name, child in model.named_children()}
    return sum(p.numel() for p in model.parameters() if p.requires_grad), by_part


def _window(model: STCNet, frames: int, batch: int = 1) -> dict[str, torch.Tensor]:
    """The forward's inputs: random crops, and every landmark present for a landmark-guided model."""
    device = next(model.parameters()).device
    size = model.config.input_size
    inputs = {"images": torch.rand(batch, frames, 3, size, size, generator=torch.Generator().manual_seed(0))}
    if model.config.landmarks:
        inputs["landmarks"] = torch.ones(batch, frames, 2, 21, 3)
    return {k: v.to(device) for k, v in inputs.items()}


def count_flops(model: STCNet, frames: int) -> tuple[int, dict[str, int]]:
    """(FLOPs of one forward over a batch-1 window of ``frames`` frames, per top-level part); 2 FLOPs per MAC."""
    inputs = _window(model, frames)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False, depth=2) as counter:
            model(**inputs)
    finally:
        model.train(was_training)
    counts = counter.get_flop_counts()
    root = type(model).__name__
    by_part = {name: int(sum(counts.get(f"{root}.{name}", {}).values())) for name, _ in model.named_children()}
    return int(counter.get_total_flops()), by_part


def measure_latency(model: STCNet, frames: int, runs: int = 3, warmup: int = 1) -> float:
    """Median wall time in milliseconds of a batch-1 forward over one window (no gradients, eval mode)."""
    if runs < 1:
        raise ValueError(f"runs: expected at least 1, got {runs}")
    inputs = _window(model, frames)
    device = inputs["images"].device
    was_training = model.training
    model.eval()
    times = []
    try:
        with torch.inference_mode():
            for i in range(warmup + runs):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                model(**inputs)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i >= warmup:
                    times.append((time.perf_counter() - start) * 1e3)
    finally:
        model.train(was_training)
    return statistics.median(times)


def measure_complexity(config: STCNetConfig, hand_model: HandModel, *, frames: int | None = None,
                       latency_runs: int = 3, device: torch.device | str = "cpu") -> Complexity:
    """Build ``config`` with random weights and measure it. ``latency_runs=0`` skips the timing."""
    frames = config.frames if frames is None else frames
    if frames < 1:
        raise ValueError(f"frames: expected at least 1, got {frames}")
    model = STCNet(config, hand_model, imagenet_weights=None).to(device)
    parameters, parameters_by_part = count_parameters(model)
    flops, flops_by_part = count_flops(model, frames)
    latency = measure_latency(model, frames, runs=latency_runs) if latency_runs > 0 else None
    return Complexity(preset=config.preset, encoder=config.encoder, input_size=config.input_size, frames=frames,
                      hand_model=hand_model.name, parameters=parameters, parameters_by_part=parameters_by_part,
                      flops_window=flops, flops_by_part=flops_by_part, latency_ms=latency,
                      latency_device=str(torch.device(device)), threads=torch.get_num_threads())


def format_complexity(c: Complexity) -> str:
    """Human-readable lines for ``interhand info --complexity``."""
    lines = [
        f"preset {c.preset}: {c.encoder} at {c.input_size}x{c.input_size}, T = {c.frames}, hand model {c.hand_model}",
        f"  parameters          {c.parameters / 1e6:.2f} M  (paper, Table 4: {PAPER_PARAMETERS / 1e6:.1f} M)",
        "    " + ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in c.parameters_by_part.items()),
        f"  FLOPs per frame     {c.flops_per_frame / 1e9:.2f} G = {c.macs_per_frame / 1e9:.2f} G multiply-adds "
        f"(paper, Table 4: {PAPER_FLOPS / 1e9:.1f} G)",
        f"  FLOPs per window    {c.flops_window / 1e9:.2f} G = {c.macs_window / 1e9:.2f} G multiply-adds "
        f"({c.frames} frames)",
        "    " + ", ".join(f"{k} {v / 1e9:.3f} G" for k, v in c.flops_by_part.items()),
        "  (torch.utils.flop_counter: 2 FLOPs per multiply-add; matmuls and convolutions only)",
    ]
    if c.latency_ms is not None:
        lines.append(f"  latency per window  {c.latency_ms:.0f} ms on {c.latency_device} ({c.threads} threads, "
                     f"batch 1, median) = {c.latency_ms / c.frames:.1f} ms per frame")
    return "\n".join(lines)
