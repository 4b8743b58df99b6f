"""Processes of a run: one, or several started by ``torchrun`` (PyTorch DDP, ``env://`` rendezvous: gloo on CPU,
NCCL on CUDA). Nothing home-made: torchrun sets RANK, WORLD_SIZE and LOCAL_RANK, this module reads them.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch
import torch.distributed as dist

from core_model.device import pick_device


@dataclasses.dataclass(frozen=True)
class Processes:
    """This process's place: rank among world_size, local_rank on its node, the device it computes on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Global rank 0: the only process that logs, writes checkpoints and validates."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ValueError(f"{name}: expected an integer in the environment, got {value!r}") from exc


def start(device: str = "auto") -> Processes:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1), else run alone. Under torchrun with
    CUDA, each process takes GPU ``LOCAL_RANK`` (``device`` then only chooses CUDA or CPU)."""
    world = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    chosen = pick_device(device)
    if world == 1:
        return Processes(0, 1, 0, chosen)
    if chosen.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK: {local_rank} but this node has {torch.cuda.device_count()} GPU(s); "
                             "start at most that many processes per node (--nproc_per_node)")
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo", init_method="env://")
    return Processes(rank, world, local_rank, chosen)


def stop(processes: Processes) -> None:
    if processes.distributed and dist.is_initialized():
        dist.destroy_process_group()


def any_true(flag: bool, processes: Processes) -> bool:
    """True on every process when ``flag`` is True on any (a stop request seen by one process stops all at the
    same step)."""
    if not processes.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=processes.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def mean_over_processes(values: dict[str, float], processes: Processes) -> dict[str, float]:
    """Average logged scalars over the processes (one all-reduce)."""
    if not processes.distributed or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=processes.device)
    dist.all_reduce(tensor)
    return {k: float(v) / processes.world_size for k, v in zip(keys, tensor.tolist())}


def from_main(obj: Any, processes: Processes) -> Any:
    """Rank 0's ``obj`` on every process (e.g. the training state rank 0 read from its disk: resuming does not
    need a file system shared between nodes)."""
    if not processes.distributed:
        return obj
    box = [obj if processes.is_main else None]
    dist.broadcast_object_list(box, src=0, device=processes.device if processes.device.type == "cuda" else None)
    return box[0]


def barrier(processes: Processes) -> None:
    if processes.distributed:
        dist.barrier()
