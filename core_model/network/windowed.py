"""Windowed inference: an STCNet over a whole sequence in T-frame windows with overlap, batched, blended so that
there is no seam at window borders, produced incrementally. The one path every consumer takes: ``interhand run``
and the app (``core_model.pipeline.run``), ``interhand evaluate`` and training's validation
(``core_model.evaluate``).

Why blending with ramps: a frame near a window's edge has less temporal context, so its weight ramps down there
and the neighbouring window, which sees it in its middle, takes over; the weights of every frame are normalised,
so a frame covered by one window only keeps that window's output unchanged. What is blended is the network's
parameters (shape, rotations, camera, relative translation), never what derives from them: rotations are blended
as matrices and projected back onto SO(3) (averaging axis-angle vectors breaks near 180 degrees), and the posed
vertices and keypoints are recomputed from the blended parameters by the hand model (averaging two meshes gives a
mesh no parameters produce, with shrunken fingers where poses differ).

Each frame is encoded once (``STCNet.encode_frames``), however many windows hold it: the encoder is most of the
cost and sees one frame at a time anyway. Only the frames still covered by a pending window are held in memory;
finished frames leave as soon as no later window can touch them, which is what lets the viewer show results while
the run goes on.

Between two batches the whole state of a run is :class:`WindowsState`: the next window, the last frame read, and
for the frames a later window still needs, their encoded features and the blend's weighted sums so far. Given it
back, :func:`run_windows` continues exactly where it stood (``interhand run`` resumes a killed run this way). Why
not restart at a window boundary from scratch: a frame's blend mixes every window covering it, and a window's
outputs depend, in the last bits, on which frames were encoded together and which windows were decoded together
(batched kernels); restarting from the saved state replays the very same batches, so the result is identical to
an uninterrupted run's, not merely close to it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

from core_model.cancel import CancelledError
from core_model.network.decoder import DecodedParameters
from core_model.network.extractor import ExtractedFeatures
from core_model.network.stcnet import STCNet
from core_model.timing import StageTimer, stage

BLENDED = ("betas", "rotmats", "camera", "rel_transl")
"""The network's per-frame parameters, blended across windows; the rest is recomputed from them."""
WINDOW_KEYS = ("mhsa_attention", "mhca_attention")
"""Outputs per window, not per frame."""


@dataclasses.dataclass
class Frame:
    """One frame of a sequence as the network takes it.

    index: its place in the sequence (frames come in increasing index); image: the crop, RGB uint8 [S, S, 3] (as
    a video gives it) or float [3, S, S] in [0, 1] (as a dataset gives it); landmarks: [2, 21, 3] the detector's
    landmarks in the crop (:mod:`core_model.network.landmarks`), for a landmark-guided model; rel_transl: [3] the
    left wrist minus the right wrist to place the left hand with instead of the prediction (the paper's
    ground-truth setting), or None."""

    index: int
    image: np.ndarray | torch.Tensor
    landmarks: torch.Tensor | None = None
    rel_transl: torch.Tensor | None = None


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
class WindowsState:
    """Where :func:`run_windows` stands between two batches; given back as ``resume``, it continues from there.

    next_window: the first window not yet run; last_read: the index of the last frame taken from ``frames`` (a
    resumed run must be given the frames after it only); placed: whether the frames give ``rel_transl`` (None
    before the first frame); features: frame -> its encoded features (tensors, on the CPU), for the frames a later
    window still needs; sums / weight_sum: frame -> the blend's weighted sums (float64) and total weight so far,
    for the frames some window has touched but which are not final yet."""

    next_window: int
    last_read: int
    placed: bool | None
    features: dict[int, dict[str, torch.Tensor]]
    sums: dict[int, dict[str, np.ndarray]]
    weight_sum: dict[int, float]


@dataclasses.dataclass
class InferenceUpdate:
    """What one batch finished. frames: [F] indices now final; outputs: name -> [F, ...] numpy float32, the
    fields of ``STCNetOutput`` per frame posed from the blended parameters (betas, global_orient, hand_pose,
    rotmats, transl, vertices, keypoints, joints, rel_transl, rel_transl_pred, camera, keypoints2d,
    chirality_maps); windows: the windows of this batch as ([start, stop), {name: per-window numpy array}) with
    their attention maps; done/total: windows processed so far and in all. state(): the run's
    :class:`WindowsState` at this update (a copy, made when asked: call it before resuming the iteration)."""

    frames: np.ndarray
    outputs: dict[str, np.ndarray]
    windows: list[tuple[tuple[int, int], dict[str, np.ndarray]]]
    done: int
    total: int
    state: Callable[[], WindowsState] | None = None


def run_windows(model: STCNet, frames: Iterable[Frame], windows: list[Window], *, overlap: int, batch: int = 4,
                device: torch.device | str = "cpu", cancel: Callable[[], bool] | None = None,
                encode_batch: int = 8, autocast: torch.dtype | None = None,
                timer: StageTimer | None = None, resume: WindowsState | None = None) -> Iterator[InferenceUpdate]:
    """Feed ``frames`` (increasing index, covering every frame of ``windows``) through ``model`` (in eval mode on
    ``device``), ``batch`` windows at a time; yield each batch's finished frames. ``cancel()`` is checked between
    batches and raises :class:`~core_model.cancel.CancelledError` when it returns True.

    ``resume``: continue from a state an earlier run of the same model, windows, frames and settings was in
    (``InferenceUpdate.state()``); ``frames`` then start after ``resume.last_read``. The updates are those the
    earlier run would have yielded from there on, bit for bit.

    ``encode_batch``: frames per encoder call (small batches stay in the CPU's caches). ``autocast``: a reduced
    precision (``torch.bfloat16``) for the network on a GPU; the blending and the hand model stay in float32/64.
    ``timer`` collects the seconds of the ``model``, ``blend`` and ``hand model`` stages."""
    if batch < 1:
        raise ValueError(f"batch: expected a positive number of windows per batch, got {batch}")
    if encode_batch < 1:
        raise ValueError(f"encode_batch: expected a positive number of frames, got {encode_batch}")
    length = int(model.config.frames)
    if windows and any(len(w.frames) != length for w in windows):
        raise ValueError(f"windows: every window must hold T={length} frames (the model's)")
    runner = _Runner(model, torch.device(device), overlap, encode_batch, autocast, timer)
    next_window = 0
    if resume is not None:
        if not 0 <= resume.next_window <= len(windows) or (resume.next_window % batch and
                                                            resume.next_window != len(windows)):
            raise ValueError(f"resume: window {resume.next_window} is not where a batch of {batch} of the "
                             f"{len(windows)} windows starts")
        runner.restore(resume)
        next_window = resume.next_window
    source = iter(frames)
    while next_window < len(windows):
        if cancel is not None and cancel():
            raise CancelledError(f"cancelled after {next_window} of {len(windows)} windows")
        group = windows[next_window: next_window + batch]
        runner.read(source, until=max(w.span[1] for w in group))
        decoded = runner.decode(group)
        next_window += len(group)
        horizon = windows[next_window].span[0] if next_window < len(windows) else np.inf
        with stage(timer, "blend"):
            runner.blend(group, decoded)
            final, blended = runner.release(horizon)
        outputs = runner.pose(blended) if final else {}
        per_window = [(w.span, {n: decoded[n][b] for n in WINDOW_KEYS if n in decoded}) for b, w in enumerate(group)]
        yield InferenceUpdate(np.array(final, np.int64), outputs, per_window, next_window, len(windows),
                              state=lambda at=next_window: runner.snapshot(at))


class _Runner:
    """The state of one :func:`run_windows`: frames read and not yet encoded, each frame's features until its last
    window has run, and each frame's weighted sums until it is final."""

    def __init__(self, model: STCNet, device: torch.device, overlap: int, encode_batch: int,
                 autocast: torch.dtype | None, timer: StageTimer | None) -> None:
        self.model, self.device, self.timer = model, device, timer
        self.size = int(model.config.input_size)
        self.weights = window_weights(int(model.config.frames), overlap)
        self.encode_batch, self.autocast = encode_batch, autocast
        self.pending: dict[int, Frame] = {}
        self.features: dict[int, dict[str, torch.Tensor]] = {}
        self.sums: dict[int, dict[str, np.ndarray]] = {}
        self.weight_sum: dict[int, float] = {}
        self.last_read = -1
        self.placed: bool | None = None  # whether the frames give rel_transl (all or none)

    def snapshot(self, next_window: int) -> WindowsState:
        """The state between two batches (copies on the CPU). Frames read but not encoded yet are not kept: the
        state's ``last_read`` goes back to before the first of them, so a resumed run reads them again."""
        last_read = min(self.pending) - 1 if self.pending else self.last_read
        return WindowsState(
            next_window=next_window, last_read=last_read, placed=self.placed,
            features={f: {n: v.detach().cpu().clone() for n, v in feats.items()} for f, feats in self.features.items()},
            sums={f: {n: v.copy() for n, v in acc.items()} for f, acc in self.sums.items()},
            weight_sum={f: float(w) for f, w in self.weight_sum.items()})

    def restore(self, state: WindowsState) -> None:
        """Continue from ``state`` (:meth:`snapshot`)."""
        self.last_read = int(state.last_read)
        self.placed = state.placed
        self.features = {int(f): {n: v.to(self.device) for n, v in feats.items()}
                         for f, feats in state.features.items()}
        self.sums = {int(f): {n: np.asarray(v, np.float64).copy() for n, v in acc.items()}
                     for f, acc in state.sums.items()}
        self.weight_sum = {int(f): float(w) for f, w in state.weight_sum.items()}
        self.pending = {}

    def read(self, source: Iterator[Frame], until: int) -> None:
        """Read frames up to index ``until - 1``."""
        while self.last_read < until - 1:
            try:
                frame = next(source)
            except StopIteration:
                raise ValueError(f"frames: ended before frame {until - 1}, which a window needs") from None
            shape = tuple(frame.image.shape)
            if shape not in ((self.size, self.size, 3), (3, self.size, self.size)):
                raise ValueError(f"frames: frame {frame.index} is {shape}, expected ({self.size}, {self.size}, 3) "
                                 f"uint8 or (3, {self.size}, {self.size}) float")
            if frame.index <= self.last_read:
                raise ValueError(f"frames: frame {frame.index} came after frame {self.last_read}; expected "
                                 "increasing indices")
            self.model.check_landmarks(None if frame.landmarks is None else frame.landmarks[None], (1,))
            given = frame.rel_transl is not None
            if self.placed is None:
                self.placed = given
            elif given != self.placed:
                raise ValueError(f"frames: frame {frame.index} {'has' if given else 'lacks'} rel_transl, unlike "
                                 "the first; give rel_transl on every frame or on none")
            self.pending[int(frame.index)] = frame
            self.last_read = int(frame.index)

    def _precision(self) -> contextlib.AbstractContextManager[None]:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    def _encode(self, indices: list[int]) -> None:
        for at in range(0, len(indices), self.encode_batch):
            ids = indices[at: at + self.encode_batch]
            frames = [self.pending.pop(f) for f in ids]
            images = torch.stack([_as_input(f.image) for f in frames]).to(self.device)
            encoded = dataclasses.asdict(self.model.encode_frames(images))
            for k, (f, frame) in enumerate(zip(ids, frames)):
                self.features[f] = {name: value[k] for name, value in encoded.items()}
                for name in ("landmarks", "rel_transl"):
                    value = getattr(frame, name)
                    if value is not None:
                        self.features[f][name] = torch.as_tensor(value, dtype=torch.float32).to(self.device)

    def decode(self, group: list[Window]) -> dict[str, np.ndarray]:
        """Encode the group's new frames, decode its windows: per-frame parameters [B, T, ...] and per-window
        attention maps [B, ...], on the host."""
        with stage(self.timer, "model"), torch.inference_mode(), self._precision():
            self._encode(sorted({int(f) for w in group for f in w.frames} - self.features.keys()))
            stacked = {n: torch.stack([torch.stack([self.features[int(f)][n] for f in w.frames]) for w in group])
                       for n in self.features[int(group[0].frames[0])]}
            features = ExtractedFeatures(**{f.name: stacked[f.name] for f in dataclasses.fields(ExtractedFeatures)})
            window = self.model.decode_window(features, stacked.get("landmarks"))
            out = {name: getattr(window.params, name) for name in BLENDED}
            out.update({k: v for k, v in (("mhsa_attention", window.mhsa), ("mhca_attention", window.mhca))
                        if v is not None})
            return {k: v.detach().float().cpu().numpy() for k, v in out.items()}

    def blend(self, group: list[Window], decoded: dict[str, np.ndarray]) -> None:
        """Add each window's per-frame parameters to its frames' weighted sums."""
        for b, w in enumerate(group):
            seen: set[int] = set()
            for k, f in enumerate(w.frames):
                f = int(f)
                if f in seen:  # a repeated edge frame of a short run counts once
                    continue
                seen.add(f)
                acc = self.sums.setdefault(f, {})
                for name in BLENDED:
                    contribution = self.weights[k] * decoded[name][b, k].astype(np.float64)
                    acc[name] = acc[name] + contribution if name in acc else contribution
                self.weight_sum[f] = self.weight_sum.get(f, 0.0) + self.weights[k]

    def release(self, horizon: float) -> tuple[list[int], dict[str, np.ndarray]]:
        """The frames before ``horizon`` (the next window's first frame), which no later window touches: their
        blended parameters [F, ...] (rotations back on SO(3)) and what they carried, dropped from the state."""
        final = sorted(f for f in self.sums if f < horizon)
        blended: dict[str, np.ndarray] = {}
        if final:
            blended = {n: np.stack([self.sums[f][n] / self.weight_sum[f] for f in final]) for n in BLENDED}
            blended["rotmats"] = _to_so3(blended["rotmats"])
            blended["chirality_maps"] = np.stack([self.features[f]["weight_maps"].float().cpu().numpy()
                                                  for f in final])
            if self.placed:
                blended["rel_transl_given"] = np.stack([self.features[f]["rel_transl"].cpu().numpy()
                                                        for f in final])
        for f in final:
            del self.sums[f], self.weight_sum[f]
        for table in (self.features, self.pending):
            for f in [f for f in table if f < horizon]:
                del table[f]
        return final, blended

    def pose(self, blended: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Pose the hand model with the blended parameters (``STCNet.pose_hands``): every per-frame output."""
        import roma

        with stage(self.timer, "hand model"), torch.inference_mode(), torch.autocast(self.device.type,
                                                                                     enabled=False):
            t = {k: torch.from_numpy(np.ascontiguousarray(v, np.float32)).to(self.device) for k, v in blended.items()}
            rotvec = roma.rotmat_to_rotvec(t["rotmats"])                       # [F, 2, 16, 3]
            params = DecodedParameters(betas=t["betas"], rotmats=t["rotmats"], global_orient=rotvec[..., 0, :],
                                       hand_pose=rotvec[..., 1:, :].flatten(-2), camera=t["camera"],
                                       rel_transl=t["rel_transl"])
            posed = self.model.pose_hands(params, t.get("rel_transl_given"), t["chirality_maps"], None, None)
            return {k: v.float().cpu().numpy() for k, v in posed.tensors().items()}


def _as_input(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A frame's crop as the network's input: float [3, S, S] in [0, 1]."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8:
        return torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)
    return torch.as_tensor(image, dtype=torch.float32)


def _to_so3(matrices: np.ndarray) -> np.ndarray:
    """The nearest rotation to each [..., 3, 3] matrix (SVD; determinant +1)."""
    u, _, vt = np.linalg.svd(matrices)
    det = np.sign(np.linalg.det(u @ vt))
    u[..., :, -1] *= det[..., None]
    return u @ vt
