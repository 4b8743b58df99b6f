"""Training crops for the perception network from the rendered synthetic set (``interhand synth``).

Every frame of every sequence is an item. A crop is drawn around both hands as the pipeline will crop them
(a square on their joint box, 1.2-3x its side, off-centre), sometimes around one hand (the other partly or wholly
outside) or around no hand, turned, sometimes mirrored (right and left swap), then given the randomisations of
:mod:`core_model.perception.realism`.

Targets (crop side ``s``): labels [s, s] int64 (0 background, 1 right, 2 left; forearms are background);
heatmaps [2, 21, s/4, s/4] (a Gaussian of 1.5 cells per keypoint inside the crop whose hand is present, peak 1
when visible, :data:`OCCLUDED_PEAK` when hidden); presence [2]; keypoints [2, 21, 2] crop pixels; visible
[2, 21] (visible and inside the crop); order [2] (:func:`image_order`).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from core_model.perception.model import HEATMAP_STRIDE, OCCLUDED_PEAK
from core_model.perception.realism import Randomiser, Realism

HEATMAP_SIGMA = 1.5          # cells
PRESENT_PIXELS = 0.004       # share of the crop a hand must cover to count as present


def _sequence_dirs(root: Path) -> list[Path]:
    index = root / "dataset.json"
    if not index.is_file():
        raise FileNotFoundError(f"data: {root} has no dataset.json (not a synthetic set from `interhand synth`)")
    names = json.loads(index.read_text())["sequence_names"]
    return [root / n for n in names if (root / n / "meta.json").is_file()]


def heatmap_targets(keypoints: np.ndarray, peaks: np.ndarray, size: int, stride: int = HEATMAP_STRIDE,
                    sigma: float = HEATMAP_SIGMA) -> np.ndarray:
    """keypoints [2, 21, 2] crop pixels, peaks [2, 21] (0 for none) -> [2, 21, s/stride, s/stride] float32."""
    cells = size // stride
    centres = (np.arange(cells, dtype=np.float32) * stride + (stride - 1) / 2)
    kp = np.nan_to_num(keypoints, nan=-1e4)
    gx = np.exp(-((centres[None, None, :] - kp[..., 0:1]) / stride) ** 2 / (2 * sigma ** 2))
    gy = np.exp(-((centres[None, None, :] - kp[..., 1:2]) / stride) ** 2 / (2 * sigma ** 2))
    return (gy[..., :, None] * gx[..., None, :] * peaks[..., None, None]).astype(np.float32)


def image_order(keypoints: np.ndarray, present: np.ndarray) -> np.ndarray:
    """[2] the hands (0 right, 1 left) in image order: present hands first, then by the mean x of their keypoints
    (the image-ordered heads' slots, :attr:`PerceptionConfig.hand_order`)."""
    x = np.nanmean(keypoints[..., 0], -1)
    key = [(not present[h], x[h] if np.isfinite(x[h]) else np.inf, h) for h in range(2)]
    return np.array([k[2] for k in sorted(key)], np.int64)


class SynthPerceptionDataset(Dataset):
    """Crops of side ``size`` from one or more synthetic sets. ``train=False`` gives a fixed crop per item
    (both hands, centred, 1.5x, no randomisation): the synthetic test split as rendered."""

    def __init__(self, roots: list[str | Path] | str | Path, size: int = 160, realism: Realism | None = None,
                 train: bool = True, seed: int = 0, frame_step: int = 1) -> None:
        roots = [roots] if isinstance(roots, (str, Path)) else roots
        self.items: list[tuple[Path, int]] = []
        self.annotations: dict[Path, dict[str, np.ndarray]] = {}
        for root in roots:
            for seq in _sequence_dirs(Path(root)):
                if not (seq / "alpha").is_dir() and train and (realism or Realism()).backgrounds:
                    raise ValueError(f"data: {seq} has no alpha/ mattes (synthetic set version 1); render it again "
                                     "with `interhand synth`, or train with --realism renders")
                with np.load(seq / "annotations.npz") as ann:
                    self.annotations[seq] = {k: ann[k] for k in ("keypoints2d", "visibility")}
                frames = len(self.annotations[seq]["keypoints2d"])
                self.items += [(seq, t) for t in range(0, frames, frame_step)]
        if not self.items:
            raise ValueError(f"data: no complete sequence in {[str(r) for r in roots]}")
        self.size = size
        self.train = train
        self.seed = seed
        self.randomiser = Randomiser(realism if realism is not None else (Realism() if train else Realism.renders()),
                                     seed)

    def __len__(self) -> int:  # items of one epoch
        return len(self.items)

    def _crop(self, rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
        """2x3 affine from the rendered frame to the crop."""
        full = labels.shape[0]
        ys, xs = np.nonzero(np.isin(labels, (1, 2)))
        if not self.train:
            lo, hi = (np.array([xs.min(), ys.min()]), np.array([xs.max(), ys.max()])) if len(xs) else \
                (np.zeros(2), np.full(2, full - 1.0))
            side, centre, angle = (hi - lo).max() * 1.5 + 8, (lo + hi) / 2, 0.0
        else:
            u = rng.uniform()
            if u < 0.05 or not len(xs):  # no hand: a corner of the frame, mostly empty
                side = full * rng.uniform(0.25, 0.5)
                centre = rng.choice([side / 2, full - side / 2], 2)
            else:
                if u < 0.2:  # one hand, the other maybe cut
                    h = rng.integers(2)
                    sel = labels[ys, xs] == h + 1
                    if sel.any():
                        ys, xs = ys[sel], xs[sel]
                lo, hi = np.array([xs.min(), ys.min()], float), np.array([xs.max(), ys.max()], float)
                wide = rng.uniform() < 0.3  # some crops far wider than the hands (log-uniform up to 3x)
                scale = np.exp(rng.uniform(np.log(1.15), np.log(3.0))) if wide else rng.uniform(1.15, 1.7)
                side = max((hi - lo).max(), 16) * scale
                centre = (lo + hi) / 2 + rng.uniform(-0.15, 0.15, 2) * side
            angle = rng.uniform(-180, 180) if rng.uniform() < 0.25 else rng.normal(0, 15)
        matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(angle), self.size / side)
        matrix[:, 2] += self.size / 2 - np.asarray(centre, float)
        return matrix

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        epoch, item = divmod(int(index), len(self.items))  # samplers pass epoch * len + item for fresh draws
        seq, t = self.items[item]
        rng = np.random.default_rng([self.seed, epoch, item])
        rgb = cv2.cvtColor(cv2.imread(str(seq / "rgb" / f"{t:06d}.jpg")), cv2.COLOR_BGR2RGB)
        labels = cv2.imread(str(seq / "labels" / f"{t:06d}.png"), cv2.IMREAD_UNCHANGED)
        alpha_path = seq / "alpha" / f"{t:06d}.png"
        alpha = cv2.imread(str(alpha_path), cv2.IMREAD_UNCHANGED) if alpha_path.is_file() else \
            ((labels > 0) * 255).astype(np.uint8)
        ann = self.annotations[seq]
        keypoints = ann["keypoints2d"][t].astype(np.float64)
        visible = ann["visibility"][t].copy()
        image, labels = self.randomiser.dress(rng, rgb, labels, keypoints)
        matrix = self._crop(rng, labels)
        s = self.size
        crop = cv2.warpAffine(image, matrix, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        matte = cv2.warpAffine(alpha.astype(np.float32) / 255, matrix, (s, s), flags=cv2.INTER_LINEAR)
        cover = cv2.warpAffine(np.ones(labels.shape, np.float32), matrix, (s, s), flags=cv2.INTER_LINEAR)
        lab = cv2.warpAffine(labels, matrix, (s, s), flags=cv2.INTER_NEAREST, borderValue=0)
        lab = np.where(lab > 2, 0, lab).astype(np.int64)
        kp = keypoints @ matrix[:, :2].T + matrix[:, 2]
        crop = self.randomiser.compose(rng, crop, matte, cover, kp)
        if self.train and rng.uniform() < 0.5:  # a mirror view: the person's right hand becomes a left one
            crop, lab = crop[:, ::-1].copy(), lab[:, ::-1].copy()
            lab = np.choose(lab, [0, 2, 1])
            kp = kp[::-1].copy()
            kp[..., 0] = s - 1 - kp[..., 0]
            visible = visible[::-1].copy()
        hands = lab > 0
        image8 = self.randomiser.photometric(rng, crop.astype(np.float32), hands) if self.train else \
            (np.clip(crop, 0, 1) * 255 + 0.5).astype(np.uint8)
        present = np.array([(lab == h + 1).mean() >= PRESENT_PIXELS for h in range(2)])
        order = image_order(kp, present)
        inside = ((kp >= 0) & (kp <= s - 1)).all(-1)
        peaks = np.where(visible, 1.0, OCCLUDED_PEAK) * inside * present[:, None]
        return {
            "image": torch.from_numpy(image8).permute(2, 0, 1).float().div_(255),
            "labels": torch.from_numpy(lab),
            "heatmaps": torch.from_numpy(heatmap_targets(kp, peaks.astype(np.float32), s)),
            "presence": torch.from_numpy(present.astype(np.float32)),
            "keypoints": torch.from_numpy(kp.astype(np.float32)),
            "visible": torch.from_numpy(visible & inside & present[:, None]),
            "order": torch.from_numpy(order),
        }
