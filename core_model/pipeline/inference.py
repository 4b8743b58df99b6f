"""Windowed inference: T-frame windows with overlap over each run of frames that have a crop, batched, blended
so that there is no seam at window borders, produced incrementally.

Why blending with ramps: a frame near a window's edge has less temporal context, so its weight ramps down there
and the neighbouring window, which sees it in its middle, takes over; the weights of every frame are normalised,
so a frame covered by one window only keeps that window's output unchanged. Rotations are blended as matrices
and projected back onto SO(3) (averaging axis-angle vectors breaks near 180 degrees).

Only the frames still covered by a pending window are held in memory; finished frames leave as soon as no later
window can touch them, which is what lets the viewer show results while the run goes on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

import numpy as np
import torch

WINDOW_KEYS = ("mhsa_attention", "mhca_attention")  # per window, not per frame


class WindowModel(Protocol):
    """A model that maps a batch of crop windows to per-frame outputs.

    ``input_size`` S and ``frames`` T; calling it with float RGB crops in [0, 1] of shape [B, T, 3, S, S] returns
    tensors by name: per-frame ones shaped [B, T, ...] and, optionally, per-window ones named in ``WINDOW_KEYS``
    shaped [B, ...]. ``rotmats`` [B, T, ..., 3, 3], when present, is blended as rotations."""

    input_size: int
    frames: int

    def __call__(self, crops: torch.Tensor) -> Mapping[str, torch.Tensor]: ...


class STCNetWindowModel:
    """STCNet as a :class:`WindowModel` (its output dataclass as a dict of tensors)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.input_size = int(model.config.input_size)
        self.frames = int(model.config.frames)

    def __call__(self, crops: torch.Tensor) -> Mapping[str, torch.Tensor]:
        return self.model(crops).tensors()


@dataclasses.dataclass
class Window:
    """One window: ``frames`` [T] the frame indices it feeds (edge frames repeated when a run is shorter than T)."""

    frames: np.ndarray

    @property
    def span(self) -> tuple[int, int]:
        """[start, stop) of the frames it covers."""
        return int(self.frames[0]), int(self.frames[-1]) + 1


def plan_windows(has_region: np.ndarray, frames: int, overlap: int) -> list[Window]:
    """Windows of ``frames`` over each run of True in ``has_region`` [N], consecutive windows sharing ``overlap``
    frames; the last window of a run ends on the run's last frame. Runs never share a window."""
    if frames < 1:
        raise ValueError(f"frames: expected T >= 1, got {frames}")
    if not 0 <= overlap < frames:
        raise ValueError(f"overlap: expected 0 <= overlap < T={frames}, got {overlap}")
    has_region = np.asarray(has_region, bool)
    edges = np.flatnonzero(np.diff(np.r_[0, has_region.astype(np.int8), 0]))
    stride = frames - overlap
    windows = []
    for start, stop in zip(edges[::2], edges[1::2]):
        if stop - start <= frames:
            idx = np.minimum(np.arange(start, start + frames), stop - 1)
            windows.append(Window(idx))
            continue
        starts = list(range(start, stop - frames + 1, stride))
        if starts[-1] + frames < stop:
            starts.append(stop - frames)
        windows.extend(Window(np.arange(s, s + frames)) for s in starts)
    return windows


def window_weights(frames: int, overlap: int) -> np.ndarray:
    """[T] blending weights: 1 in the middle, a linear ramp over the ``overlap`` frames at each end."""
    k = np.arange(frames)
    ramp = np.minimum((k + 1) / (overlap + 1), (frames - k) / (overlap + 1))
    return np.minimum(1.0, ramp)


@dataclasses.dataclass
class InferenceUpdate:
    """What one batch finished. frames: [F] indices now final; outputs: name -> [F, ...] numpy (blended);
    windows: the windows of this batch as ([start, stop), {name: per-window numpy array}).
    done/total: windows processed so far and in all."""

    frames: np.ndarray
    outputs: dict[str, np.ndarray]
    windows: list[tuple[tuple[int, int], dict[str, np.ndarray]]]
    done: int
    total: int


class CancelledError(Exception):
    """The run was cancelled between two batches."""


def _to_so3(matrices: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(matrices)
    det = np.sign(np.linalg.det(u @ vt))
    u[..., :, -1] *= det[..., None]
    return u @ vt


def _rotvec(matrices: np.ndarray) -> np.ndarray:
    import roma

    return roma.rotmat_to_rotvec(torch.from_numpy(np.ascontiguousarray(matrices))).numpy()


def run_windows(model: WindowModel, crops: Iterable[tuple[int, np.ndarray]], windows: list[Window], *,
                overlap: int, batch: int = 4, device: torch.device | str = "cpu",
                cancel: Callable[[], bool] | None = None) -> Iterator[InferenceUpdate]:
    """Feed ``crops`` (index, RGB uint8 [S, S, 3], in increasing index, covering every frame of ``windows``)
    through ``model`` ``batch`` windows at a time; yield each batch's finished frames. ``cancel()`` is checked
    between batches and raises :class:`CancelledError` when it returns True."""
    if batch < 1:
        raise ValueError(f"batch: expected a positive number of windows per batch, got {batch}")
    size, length = int(model.input_size), int(model.frames)
    if windows and any(len(w.frames) != length for w in windows):
        raise ValueError(f"windows: every window must hold T={length} frames (the model's)")
    weights = window_weights(length, overlap)
    crop_store: dict[int, np.ndarray] = {}
    sums: dict[int, dict[str, np.ndarray]] = {}
    weight_sum: dict[int, float] = {}
    crop_iter = iter(crops)
    next_window, done = 0, 0
    need_until = -1
    while next_window < len(windows):
        if cancel is not None and cancel():
            raise CancelledError(f"cancelled after {done} of {len(windows)} windows")
        group = windows[next_window: next_window + batch]
        need_until = max(w.span[1] for w in group)
        while max(crop_store, default=-1) < need_until - 1:
            try:
                index, crop = next(crop_iter)
            except StopIteration:
                raise ValueError(f"crops: ended before frame {need_until - 1}, which a window needs") from None
            if crop.shape != (size, size, 3):
                raise ValueError(f"crops: frame {index} is {crop.shape}, expected ({size}, {size}, 3)")
            crop_store[int(index)] = crop
        stack = np.stack([np.stack([crop_store[int(f)] for f in w.frames]) for w in group])
        images = torch.from_numpy(stack).to(device).permute(0, 1, 4, 2, 3).float().div_(255.0)
        with torch.inference_mode():
            out = model(images)
        host = {k: v.detach().float().cpu().numpy() for k, v in out.items() if isinstance(v, torch.Tensor)}
        window_out = []
        for b, w in enumerate(group):
            seen: set[int] = set()
            for k, f in enumerate(w.frames):
                f = int(f)
                if f in seen:  # a repeated edge frame of a short run counts once
                    continue
                seen.add(f)
                acc = sums.setdefault(f, {})
                for name, value in host.items():
                    if name in WINDOW_KEYS:
                        continue
                    contribution = weights[k] * value[b, k].astype(np.float64)
                    acc[name] = acc[name] + contribution if name in acc else contribution
                weight_sum[f] = weight_sum.get(f, 0.0) + weights[k]
            window_out.append((w.span, {n: host[n][b] for n in WINDOW_KEYS if n in host}))
        next_window += len(group)
        done += len(group)
        horizon = windows[next_window].span[0] if next_window < len(windows) else np.inf
        final = sorted(f for f in sums if f < horizon)
        outputs = _finish(final, sums, weight_sum)
        for f in final:
            del sums[f], weight_sum[f]
        for f in [f for f in crop_store if f < horizon]:
            del crop_store[f]
        yield InferenceUpdate(np.array(final, np.int64), outputs, window_out, done, len(windows))


def _finish(final: list[int], sums: dict[int, dict[str, np.ndarray]], weight_sum: dict[int, float]
            ) -> dict[str, np.ndarray]:
    if not final:
        return {}
    names = sums[final[0]].keys()
    out = {n: np.stack([sums[f][n] / weight_sum[f] for f in final]).astype(np.float32) for n in names}
    if "rotmats" in out:
        rot = _to_so3(out["rotmats"].astype(np.float64))
        out["rotmats"] = rot.astype(np.float32)
        rotvec = _rotvec(rot)  # [F, 2, J, 3]
        if "global_orient" in out:
            out["global_orient"] = rotvec[..., 0, :].astype(np.float32)
        if "hand_pose" in out:
            out["hand_pose"] = rotvec[..., 1:, :].reshape(rotvec.shape[:-2] + (-1,)).astype(np.float32)
    return out
