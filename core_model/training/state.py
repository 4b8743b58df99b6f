"""The training state inside an STCNet checkpoint (``extra["train"]``): where the run is (step, epoch), the
optimiser and learning-rate schedule, the run's settings, so ``interhand train`` can pick up where it stopped.

Everything is plain (dicts with string keys, lists, numbers, tensors on CPU) so the file still loads with
``torch.load(weights_only=True)``; the optimiser's integer parameter ids become strings here and back.

No random-generator state is stored because none is needed: every step reseeds torch from (seed, rank, step)
(:func:`step_seed`) and every window's augmentation is seeded from (seed, epoch, index)
(:class:`core_model.training.datasets.SeededWindows`), so a resumed run draws what the uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from core_model.network.checkpoint import read_checkpoint, save_checkpoint
from core_model.network.stcnet import STCNet
from core_model.training.datasets import item_seed

LAST = "last.pt"
"""The checkpoint a run replaces at every interval; automatic resume reads it."""


@dataclasses.dataclass
class Progress:
    """Where a run stands. step: optimiser steps done; steps_per_epoch and total_steps as planned when it was
    saved; elapsed_s: training wall-clock over all invocations; finished: the run reached ``total_steps``."""

    step: int = 0
    steps_per_epoch: int = 1
    total_steps: int = 0
    elapsed_s: float = 0.0
    finished: bool = False
    world_size: int = 1

    @property
    def epoch(self) -> float:
        return self.step / max(self.steps_per_epoch, 1)


def step_seed(seed: int, rank: int, step: int) -> int:
    """The torch seed of optimiser step ``step`` on process ``rank`` (dropout and any other draw in the step)."""
    return item_seed(seed, -1 - rank, step)


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(v) for v in value)
    return value


def optimizer_to_plain(state: dict[str, Any]) -> dict[str, Any]:
    """``optimizer.state_dict()`` with string parameter ids and CPU tensors."""
    return {"state": {str(k): _to_cpu(v) for k, v in state["state"].items()},
            "param_groups": _to_cpu(state["param_groups"])}


def optimizer_from_plain(plain: dict[str, Any]) -> dict[str, Any]:
    return {"state": {int(k): v for k, v in plain["state"].items()}, "param_groups": plain["param_groups"]}


def save_training_checkpoint(path: str | os.PathLike[str], model: STCNet, optimizer: torch.optim.Optimizer,
                             scheduler: torch.optim.lr_scheduler.LRScheduler, progress: Progress,
                             config: dict[str, Any]) -> Path:
    """Weights (through :func:`core_model.network.checkpoint.save_checkpoint`, atomically) and the training
    state under ``extra["train"]``."""
    extra = {"train": {
        "progress": dataclasses.asdict(progress),
        "optimizer": optimizer_to_plain(optimizer.state_dict()),
        "scheduler": _to_cpu(scheduler.state_dict()),
        "config": config,
    }}
    return save_checkpoint(path, model, extra=extra)


@dataclasses.dataclass
class TrainingState:
    """The part of a checkpoint that is not weights: progress, optimiser and scheduler state dicts, the settings
    it was trained with."""

    progress: Progress
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    config: dict[str, Any]


def read_training_state(path: str | os.PathLike[str]) -> TrainingState:
    """The training state of a checkpoint written by :func:`save_training_checkpoint`."""
    extra = read_checkpoint(path).extra
    train = extra.get("train")
    if not isinstance(train, dict):
        raise ValueError(f"resume: {path} holds weights only, no training state (start a new run from it with "
                         "--init instead)")
    return TrainingState(progress=Progress(**train["progress"]), optimizer=optimizer_from_plain(train["optimizer"]),
                         scheduler=train["scheduler"], config=train["config"])
