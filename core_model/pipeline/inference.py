"""Windowed inference: T-frame windows with overlap over each run of frames that have a crop, batched, blended
so that there is no seam at window borders, produced incrementally.

Why blending with ramps: a frame near a window's edge has less temporal context, so its weight ramps down there
and the neighbouring window, which sees it in its middle, takes over; the weights of every frame are normalised,
so a frame covered by one window only keeps that window's output unchanged. Rotations are blended as matrices
and projected back onto SO(3) (averaging axis-angle vectors breaks near 180 degrees). What derives from the
parameters (posed vertices and keypoints) is not averaged but recomputed from the blended parameters (the model's
``finish``): averaging two meshes gives a mesh no parameters produce, with shrunken fingers where poses differ.

Only the frames still covered by a pending window are held in memory; finished frames leave as soon as no later
window can touch them, which is what lets the viewer show results while the run goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Protocol

import numpy as np
import torch

from core_model.pipeline.timing import StageTimer, stage

WINDOW_KEYS = ("mhsa_attention", "mhca_attention")  # per window, not per frame


class WindowModel(Protocol):
    """A model that maps a batch of crop windows to per-frame outputs.

    ``input_size`` S and ``frames`` T; calling it with float RGB crops in [0, 1] of shape [B, T, 3, S, S] returns
    tensors by name: per-frame ones shaped [B, T, ...] and, optionally, per-window ones named in ``WINDOW_KEYS``
    shaped [B, ...]. ``rotmats`` [B, T, ..., 3, 3], when present, is blended as rotations.

    Optional, and used by :func:`run_windows` when present:

    - ``encode(crops [F, 3, S, S], frames [F] indices) -> {name: [F, ...]}`` and
      ``head(features {name: [B, T, ...]}) -> outputs``:
      the per-frame part of the model split from the per-window part, so that a frame shared by overlapping
      windows is encoded once (the encoder is most of the cost, and it sees one frame at a time anyway);
    - ``finish(blended {name: [F, ...] numpy}) -> {name: [F, ...] numpy}``: recompute what derives from the
      blended parameters (posed vertices and keypoints), so that the outputs agree with each other.
    """

    input_size: int
    frames: int

    def __call__(self, crops: torch.Tensor) -> Mapping[str, torch.Tensor]: ...


class STCNetWindowModel:
    """STCNet as a :class:`WindowModel`, split into its per-frame encoder and its per-window temporal part.

    Why the split mirrors ``STCNet.forward`` step by step: overlapping windows share frames, and the frame encoder
    (EfficientNet / ResNet, with its batch norm in eval mode) gives the same features for a frame whichever window
    holds it; encoding each frame once halves the work at the default overlap of T/2. ``tests`` check that the
    split gives what ``forward`` gives. Blended parameters are posed through the hand model once per frame by
    :meth:`finish`, so vertices, keypoints and 2D keypoints are exactly those of the blended parameters.

    ``landmarks`` [N, 2, 21, 3]: the detector's landmarks of every frame of the video in the model's input format
    (:mod:`core_model.network.landmarks`), for a landmark-guided model (which refuses to run without them)."""

    def __init__(self, model: torch.nn.Module, landmarks: np.ndarray | None = None) -> None:
        self.model = model
        self.input_size = int(model.config.input_size)
        self.frames = int(model.config.frames)
        if model.config.landmarks and landmarks is None:
            raise ValueError(f"landmarks: the {model.config.preset!r} model is landmark-guided; pass the "
                             "detector's landmarks of every frame")
        self.landmarks = torch.from_numpy(np.asarray(landmarks, np.float32)) if model.config.landmarks else None

    def __call__(self, crops: torch.Tensor, landmarks: torch.Tensor | None = None) -> Mapping[str, torch.Tensor]:
        return self.model(crops, landmarks=landmarks).tensors()

    def encode(self, crops: torch.Tensor, frames: Sequence[int]) -> dict[str, torch.Tensor]:
        """[F, 3, S, S] crops of video frames ``frames`` -> per-frame features (channels-last input: about 1.4x
        faster convolutions on CPU)."""
        m = self.model
        f1, f2 = m.encoder(crops.contiguous(memory_format=torch.channels_last))
        ext = m.extractor(f1, f2)
        out = {"hands": ext.hands, "global1": ext.global1, "global2": ext.global2,
               "chirality_maps": ext.weight_maps}
        if self.landmarks is not None:
            out["landmarks"] = self.landmarks[list(frames)].to(crops.device)
        return out

    def head(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Windows of per-frame features [B, T, ...] -> the decoded hand-model parameters per frame, attention
        maps per window (what ``STCNet.forward`` computes between the extractor and the hand model)."""
        m = self.model
        hands = m.guide(features["hands"], features.get("landmarks"))
        global1, global2 = features["global1"], features["global2"]
        out: dict[str, torch.Tensor] = {}
        if m.temporal is not None:
            temporal = m.temporal(hands, global1, global2)
            tokens = temporal.hands
            out["mhsa_attention"] = temporal.mhsa.float()
            if temporal.mhca is not None:
                out["mhca_attention"] = temporal.mhca.float()
        else:
            context = torch.cat([global1, global2], dim=-1)[:, :, None, :].expand(-1, -1, 2, -1)
            tokens = torch.cat([hands, context], dim=-1)
        params = m.decoder(tokens)
        out.update(betas=params.betas, rotmats=params.rotmats, global_orient=params.global_orient,
                   hand_pose=params.hand_pose, camera=params.camera, rel_transl=params.rel_transl,
                   chirality_maps=features["chirality_maps"])
        return {k: v.float() for k, v in out.items()}

    def finish(self, blended: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Pose the hand model with the blended parameters (``STCNet``'s own posing code) and return every
        per-frame output: betas, global_orient, hand_pose, rotmats, transl, vertices, keypoints, keypoints2d ..."""
        from core_model.network.decoder import DecodedParameters

        device = next(self.model.parameters()).device
        t = {k: torch.from_numpy(np.ascontiguousarray(v, np.float32)).to(device) for k, v in blended.items()}
        params = DecodedParameters(betas=t["betas"], rotmats=t["rotmats"], global_orient=t["global_orient"],
                                   hand_pose=t["hand_pose"], camera=t["camera"], rel_transl=t["rel_transl"])
        with torch.inference_mode(), torch.autocast(device.type, enabled=False):
            posed = self.model.pose_hands(params, None, t["chirality_maps"], None, None).tensors()
        return {k: v.float().cpu().numpy() for k, v in posed.items()}


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


def _frame_parts(model: WindowModel) -> tuple[Callable[[torch.Tensor, list[int]], Mapping[str, torch.Tensor]],
                                                Callable[[Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]]]:
    """The model's (encode, head); a model without them is its own head over the crops."""
    encode, head = getattr(model, "encode", None), getattr(model, "head", None)
    if encode is not None and head is not None:
        return encode, head
    return (lambda crops, frames: {"crops": crops}), (lambda features: model(features["crops"]))


def run_windows(model: WindowModel, crops: Iterable[tuple[int, np.ndarray]], windows: list[Window], *,
                overlap: int, batch: int = 4, device: torch.device | str = "cpu",
                cancel: Callable[[], bool] | None = None, encode_batch: int = 8,
                autocast: torch.dtype | None = None, timer: StageTimer | None = None) -> Iterator[InferenceUpdate]:
    """Feed ``crops`` (index, RGB uint8 [S, S, 3], in increasing index, covering every frame of ``windows``)
    through ``model`` ``batch`` windows at a time; yield each batch's finished frames. ``cancel()`` is checked
    between batches and raises :class:`CancelledError` when it returns True.

    Each frame is encoded once (``encode_batch`` frames per call: small batches stay in the CPU's caches) and its
    features kept until the last window holding it has run. ``autocast``: a reduced precision (``torch.bfloat16``)
    for the network on a GPU; the blending and the hand model stay in float32/64. ``timer`` collects the seconds
    of the ``model``, ``blend`` and ``hand model`` stages."""
    if batch < 1:
        raise ValueError(f"batch: expected a positive number of windows per batch, got {batch}")
    if encode_batch < 1:
        raise ValueError(f"encode_batch: expected a positive number of frames, got {encode_batch}")
    size, length = int(model.input_size), int(model.frames)
    if windows and any(len(w.frames) != length for w in windows):
        raise ValueError(f"windows: every window must hold T={length} frames (the model's)")
    device = torch.device(device)
    encode, head = _frame_parts(model)
    finish = getattr(model, "finish", None)
    weights = window_weights(length, overlap)
    pending: dict[int, np.ndarray] = {}  # crops read, not yet encoded
    features: dict[int, dict[str, torch.Tensor]] = {}
    sums: dict[int, dict[str, np.ndarray]] = {}
    weight_sum: dict[int, float] = {}
    crop_iter = iter(crops)
    next_window, done, last_read = 0, 0, -1

    def precision() -> contextlib.AbstractContextManager[None]:
        if autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=autocast)

    while next_window < len(windows):
        if cancel is not None and cancel():
            raise CancelledError(f"cancelled after {done} of {len(windows)} windows")
        group = windows[next_window: next_window + batch]
        need_until = max(w.span[1] for w in group)
        while last_read < need_until - 1:
            try:
                index, crop = next(crop_iter)
            except StopIteration:
                raise ValueError(f"crops: ended before frame {need_until - 1}, which a window needs") from None
            if crop.shape != (size, size, 3):
                raise ValueError(f"crops: frame {index} is {crop.shape}, expected ({size}, {size}, 3)")
            pending[int(index)] = crop
            last_read = int(index)
        needed = sorted({int(f) for w in group for f in w.frames} - features.keys())
        with stage(timer, "model"), torch.inference_mode(), precision():
            for at in range(0, len(needed), encode_batch):
                ids = needed[at: at + encode_batch]
                images = torch.from_numpy(np.stack([pending.pop(f) for f in ids])).to(device)
                encoded = encode(images.permute(0, 3, 1, 2).float().div_(255.0), ids)
                for k, f in enumerate(ids):
                    features[f] = {name: value[k] for name, value in encoded.items()}
            names = features[int(group[0].frames[0])].keys()
            stacked = {n: torch.stack([torch.stack([features[int(f)][n] for f in w.frames]) for w in group])
                       for n in names}
            out = head(stacked)
            host = {k: v.detach().float().cpu().numpy() for k, v in out.items() if isinstance(v, torch.Tensor)}
        with stage(timer, "blend"):
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
            for f in [f for f in features if f < horizon]:
                del features[f]
            for f in [f for f in pending if f < horizon]:
                del pending[f]
        if finish is not None and final:
            with stage(timer, "hand model"):
                outputs = finish(outputs)
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
