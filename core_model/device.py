"""Compute device choice: CUDA when present, else CPU; a user's explicit choice is checked, not guessed."""

from __future__ import annotations

import torch


def pick_device(requested: str | None = None) -> torch.device:
    """``None`` or ``'auto'``: the first CUDA device if any, else CPU. Otherwise the named device, validated."""
    if requested in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise ValueError(f"device: {requested!r} is not a torch device (try 'cpu', 'cuda' or 'cuda:1')") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {requested!r} requested but CUDA is not available "
                             f"(torch {torch.__version__} sees no GPU)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device: {requested!r} does not exist; {torch.cuda.device_count()} CUDA device(s)")
    return device


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return f"cuda:{index} ({props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda})"
    return f"cpu ({torch.get_num_threads()} threads; torch {torch.__version__})"
