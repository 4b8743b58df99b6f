"""What can a head learn on the synthetic renders when the encoder is fully frozen? EfficientNet-Lite0 stays at
its ImageNet weights (128 px crops, no layer trained): its features are computed once and cached, then heads are
trained on the cache side by side, and each hand's wrist-relative keypoint error on held-out windows (and on a
fixed subset of the training windows) is printed every few steps, beside the error of a constant (the average
training pose), which an arm must beat to have learned anything.

    python benchmarks/frozen_features.py cache --train DIR --test DIR --out CACHE_DIR [--train-windows N]
        [--test-windows 160] [--threads 2]
    python benchmarks/frozen_features.py train --cache CACHE_DIR [--arms probe stcnet stcnet-lm lmprobe hmprobe
        baseline] [--steps 1500] [--every 250] [--batch 8] [--lr 1e-3] [--threads 1]

``cache`` encodes the first N windows of the training split (all by default) and every stride-th window of the
test split (stride = its windows // M, M = 160 by default), both unaugmented, and saves per split the encoder's
F_1 (stride 32, fp16), F_2 averaged over the map (all that STCNet uses of it) and the windows' annotations (no
images) in CACHE_DIR/train.pt and CACHE_DIR/test.pt. ``train`` trains every arm from the same seed on the same
batches (Adam) and prints a markdown table.

Arms:
- ``probe``: an MLP on pooled F_1 and F_2 regressing both hands' wrist-relative keypoints: what the RGB features
  carry;
- ``stcnet``: STCNet's whole path after the encoder (extractor, temporal encoder, MANO decoder, hand model) with the
  training objective less the interpenetration term, the left hand placed with the true relative translation (as
  ``--gt-rel-transl``);
- ``baseline``: the same without the temporal encoder (the paper's Baseline);
- ``stcnet-lm``: ``stcnet`` with the landmark-guided input (``landmarks=True``), fed the ground-truth 2D keypoints
  with 1 px Gaussian noise as landmarks, in training and evaluation;
- ``lmprobe``: an MLP from the 2D keypoints (normalised, each hand about its wrist) to the 3D ones, no image;
- ``hmprobe``: a small CNN on Gaussian heatmaps of the 2D keypoints (32 x 32) and two coordinate channels.
``lmprobe`` and ``hmprobe`` add Gaussian noise of 0.02 normalised units (1.28 px) to the keypoints in training
only. These noise levels, and ground-truth keypoints rather than the windows' simulated detector landmarks, are
those of the runs that motivated the landmark preset, kept so that new numbers compare with theirs.

Why it exists: the shipped RGB-only model stayed at the constant's error (BENCHMARKS.md, "Shipped model"). On
the full cache (1,800 training windows, 160 held-out ones, 1,500 steps) the RGB arms stayed near the constant's
94 / 99 mm (probe 88 / 103 mm; stcnet 94 / 113 mm while fitting its training windows), where a coordinate MLP on
noisy 2D keypoints reached 33 mm: the features of a frozen encoder carry little 3D pose and 2D landmarks a lot,
which motivated the ``lite-landmarks`` preset (:mod:`core_model.network.landmarks`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core_model.data.windows import Window, WindowDataset, collate_windows
from core_model.handmodel.layer import HandModel
from core_model.handmodel.registry import load_hand_model
from core_model.network.config import ENCODER_CHANNELS
from core_model.network.encoder import FrameEncoder
from core_model.network.landmarks import pixels_to_input
from core_model.network.output import STCNetOutput
from core_model.network.stcnet import STCNet
from core_model.training.config import ObjectiveConfig, TrainConfig
from core_model.training.datasets import build_windows
from core_model.training.objective import batch_loss, gt_rel_transl

ENCODER = "efficientnet_lite0"
INPUT = 128                  # crop side, pixels
WINDOW = 10                  # frames per window
HAND_MODEL = "openhand"      # the hand model the synthetic renders were made with
CHUNK = 16                   # windows per encoder pass
TRAIN_EVAL_STRIDE = 12       # the train columns: every 12th cached training window
LANDMARK_NOISE_PX = 1.0      # stcnet-lm: landmark noise, crop pixels (training and evaluation)
KEYPOINT_NOISE = 0.02        # lmprobe, hmprobe: keypoint noise, normalised crop units (training only)
ARMS = ("probe", "stcnet", "stcnet-lm", "lmprobe", "hmprobe", "baseline")


def wrist_relative(keypoints: torch.Tensor) -> torch.Tensor:
    """[..., 2, 21, 3] -> each hand about its own wrist."""
    return keypoints - keypoints[..., :1, :]


def hand_errors_mm(pred: torch.Tensor, truth: torch.Tensor) -> list[float]:
    """Mean wrist-relative keypoint error of each hand (right, left), millimetres."""
    err = (wrist_relative(pred) - wrist_relative(truth)).norm(dim=-1)
    return [float(err[..., h, :].mean()) * 1000 for h in range(2)]


# ------------------------------------------------------------------------------------------ cache


def spread_indices(total: int, count: int) -> list[int]:
    """Every ``total // count``-th of ``total`` windows from the first, at most ``count`` of them."""
    stride = max(1, total // count)
    return list(range(0, total, stride))[:count]


@torch.no_grad()
def encode(dataset: WindowDataset, indices: Sequence[int], encoder: FrameEncoder, label: str
           ) -> dict[str, object]:
    """The frozen encoder's F_1 [N, T, C1, H, W] (fp16) and pooled F_2 [N, T, C2] of windows ``indices``, with
    their annotations (every :class:`Window` field but the images and vertices, which would dwarf the rest)."""
    f1s, g2s, anns = [], [], []
    began = time.perf_counter()
    for k in range(0, len(indices), CHUNK):
        window = collate_windows([dataset[i] for i in indices[k:k + CHUNK]])
        leading = window.images.shape[:2]
        f1, f2 = encoder(window.images.flatten(0, 1).contiguous(memory_format=torch.channels_last))
        f1s.append(f1.half().unflatten(0, leading))
        g2s.append(f2.mean((2, 3)).unflatten(0, leading))
        ann = window.to_dict()
        del ann["images"], ann["vertices"]
        anns.append(ann)
        if k % (20 * CHUNK) == 0:
            print(f"{label}: {k} / {len(indices)} windows, {time.perf_counter() - began:.0f} s", file=sys.stderr,
                  flush=True)
    return {"f1": torch.cat(f1s), "g2": torch.cat(g2s),
            "ann": {key: torch.cat([a[key] for a in anns]) for key in anns[0]}}


def run_cache(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    hand_model = load_hand_model(HAND_MODEL)
    encoder = FrameEncoder(ENCODER).eval()            # ImageNet weights, never trained here
    args.out.mkdir(parents=True, exist_ok=True)
    for split, root in (("test", args.test), ("train", args.train)):
        dataset = build_windows([str(root)], hand_model, window=WINDOW, crop_size=INPUT, augmentation=None)
        if split == "test":
            indices = spread_indices(len(dataset), args.test_windows)
        else:
            indices = list(range(len(dataset) if args.train_windows is None else min(args.train_windows,
                                                                                     len(dataset))))
        cache = encode(dataset, indices, encoder, split)
        torch.save({**cache, "source": str(root), "indices": indices}, args.out / f"{split}.pt")
        print(f"{split}: {len(indices)} of {len(dataset)} windows of {root} -> {args.out / f'{split}.pt'}",
              file=sys.stderr)


# ------------------------------------------------------------------------------------------ heads


@dataclasses.dataclass
class Batch:
    """Cached windows: ``window`` holds the annotations, its images a zero placeholder of the right shape (the
    objective reads the crop size from it); f1 [B, T, C1, H, W] float32, g2 [B, T, C2]."""

    window: Window
    f1: torch.Tensor
    g2: torch.Tensor


@dataclasses.dataclass
class Cache:
    """One split as ``cache`` saved it."""

    f1: torch.Tensor
    g2: torch.Tensor
    ann: dict[str, torch.Tensor]
    source: str

    @classmethod
    def load(cls, path: Path) -> Cache:
        data = torch.load(path, weights_only=True)
        return cls(data["f1"], data["g2"], data["ann"], data["source"])

    def __len__(self) -> int:
        return len(self.g2)

    def batch(self, indices: torch.Tensor) -> Batch:
        fields = {key: value[indices] for key, value in self.ann.items()}
        B, T = fields["keypoints3d"].shape[:2]
        fields["images"] = torch.zeros(1, 1, 1, 1, 1).expand(B, T, 3, INPUT, INPUT)
        fields["vertices"] = torch.zeros(B, T, 2, 1, 3)
        return Batch(Window.from_dict(fields), self.f1[indices].float(), self.g2[indices])


def keypoint_loss(pred: torch.Tensor, window: Window) -> torch.Tensor:
    """The probes' objective: mean distance of the predicted keypoints to the wrist-relative ground truth."""
    return (pred - wrist_relative(window.keypoints3d)).norm(dim=-1).mean()


def normalised(keypoints2d: torch.Tensor) -> torch.Tensor:
    """Crop pixels -> about [-1, 1] as the probes had them (x / 64 - 1, no half-pixel shift: unlike
    :func:`pixels_to_input`; kept so the probes' numbers stay comparable)."""
    return keypoints2d / (INPUT / 2) - 1.0


class Arm(nn.Module):
    """A head on cached features: ``loss`` for a training step, ``predict`` [B, T, 2, 21, 3] for evaluation."""

    def loss(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError


class PooledProbe(Arm):
    """An MLP on globally pooled F_1 and F_2: what the RGB features carry, without STCNet's path."""

    def __init__(self) -> None:
        super().__init__()
        c1, c2 = ENCODER_CHANNELS[ENCODER]
        self.mlp = nn.Sequential(nn.Linear(c1 + c2, 512), nn.ReLU(), nn.Linear(512, 2 * 21 * 3))

    def predict(self, batch: Batch) -> torch.Tensor:
        x = torch.cat([batch.f1.mean((-1, -2)), batch.g2], -1)
        return self.mlp(x).view(*x.shape[:2], 2, 21, 3)

    def loss(self, batch: Batch) -> torch.Tensor:
        return keypoint_loss(self.predict(batch), batch.window)


class LandmarkProbe(Arm):
    """An MLP from both hands' 2D keypoints, each about its wrist, to the 3D ones: what 2D landmarks carry."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * 21 * 2, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                                 nn.Linear(512, 2 * 21 * 3))

    def forward(self, batch: Batch, noisy: bool) -> torch.Tensor:
        uv = normalised(batch.window.keypoints2d)
        if noisy:
            uv = uv + torch.randn_like(uv) * KEYPOINT_NOISE
        uv = wrist_relative(uv)
        return self.mlp(uv.flatten(-3)).view(*uv.shape[:2], 2, 21, 3)

    def predict(self, batch: Batch) -> torch.Tensor:
        return self(batch, noisy=False)

    def loss(self, batch: Batch) -> torch.Tensor:
        return keypoint_loss(self(batch, noisy=True), batch.window)


class HeatmapProbe(Arm):
    """A small CNN on Gaussian heatmaps of the 2D keypoints (``RES`` x ``RES``, sigma 1.5 cells) and two coordinate
    channels: the heatmap-channel input the issue proposed, without the RGB crop."""

    RES = 32

    def __init__(self) -> None:
        super().__init__()
        grid = (torch.arange(self.RES) + 0.5) / self.RES * 2 - 1           # cell centres in [-1, 1]
        cy, cx = torch.meshgrid(grid, grid, indexing="ij")
        self.register_buffer("grid", grid, persistent=False)
        self.register_buffer("coords", torch.stack([cx, cy]), persistent=False)

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1), nn.BatchNorm2d(cout), nn.ReLU())

        cells = (self.RES // 8) ** 2
        self.cnn = nn.Sequential(block(2 * 21 + 2, 64), block(64, 128), block(128, 128), nn.Flatten(),
                                 nn.Linear(128 * cells, 512), nn.ReLU(), nn.Linear(512, 2 * 21 * 3))

    def heatmaps(self, uv: torch.Tensor) -> torch.Tensor:
        """[..., 21, 2] normalised coordinates -> [..., 21, RES, RES]."""
        sigma = 1.5 * 2.0 / self.RES
        gx = torch.exp(-((self.grid - uv[..., 0:1]) ** 2) / (2 * sigma ** 2))
        gy = torch.exp(-((self.grid - uv[..., 1:2]) ** 2) / (2 * sigma ** 2))
        return gy[..., :, None] * gx[..., None, :]

    def forward(self, batch: Batch, noisy: bool) -> torch.Tensor:
        uv = normalised(batch.window.keypoints2d)
        if noisy:
            uv = uv + torch.randn_like(uv) * KEYPOINT_NOISE
        B, T = uv.shape[:2]
        maps = self.heatmaps(uv).flatten(0, 1)                              # [B * T, 2, 21, RES, RES]
        x = torch.cat([maps.flatten(1, 2), self.coords.expand(len(maps), -1, -1, -1)], 1)
        return self.cnn(x).view(B, T, 2, 21, 3)

    def predict(self, batch: Batch) -> torch.Tensor:
        return self(batch, noisy=False)

    def loss(self, batch: Batch) -> torch.Tensor:
        return keypoint_loss(self(batch, noisy=True), batch.window)


class CachedEncoder(nn.Module):
    """Stands in for STCNet's frame encoder: returns the cached features of the batch's frames (``features``, set
    before each forward) whatever the images, F_2 as a 1 x 1 map (the extractor only averages it)."""

    def __init__(self) -> None:
        super().__init__()
        self.features: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.features is None:
            raise RuntimeError("CachedEncoder: no features set for this batch")
        f1, g2 = self.features
        return f1, g2[..., None, None]


class HeadArm(Arm):
    """STCNet after its encoder (``stcnet``; ``baseline`` without the temporal encoder; ``stcnet-lm`` landmark-
    guided) with the training objective less the interpenetration term (slow, and not about pose), the left hand
    placed with the true relative translation in training and evaluation."""

    def __init__(self, name: str, hand_model: HandModel) -> None:
        super().__init__()
        config = TrainConfig(data=("unused",), input_size=INPUT, objective=ObjectiveConfig(gt_rel_transl=True))
        network = config.network_config()
        if name == "stcnet-lm":
            network = dataclasses.replace(network, landmarks=True)
        elif name == "baseline":
            network = dataclasses.replace(network, temporal_encoder=False, cross_attention=False)
        # Built whole (its encoder at random: no weights to load) and then given the cache, so the head's initial
        # weights are drawn exactly as in the runs this benchmark reproduces.
        self.net = STCNet(network, hand_model, imagenet_weights=None)
        self.net.encoder = CachedEncoder()
        objective = config.effective_objective()
        self.objective = dataclasses.replace(objective, losses=dataclasses.replace(objective.losses,
                                                                                   use_inter=False))

    def forward(self, batch: Batch) -> STCNetOutput:
        self.net.encoder.features = (batch.f1.flatten(0, 1), batch.g2.flatten(0, 1))
        landmarks = None
        if self.net.config.landmarks:
            keypoints = batch.window.keypoints2d
            landmarks = pixels_to_input(keypoints + torch.randn_like(keypoints) * LANDMARK_NOISE_PX, INPUT)
        return self.net(batch.window.images, rel_transl=gt_rel_transl(batch.window), landmarks=landmarks)

    def predict(self, batch: Batch) -> torch.Tensor:
        return self(batch).keypoints

    def loss(self, batch: Batch) -> torch.Tensor:
        return batch_loss(self(batch), batch.window, self.objective, None, True).total


def build_arm(name: str, hand_model: HandModel) -> Arm:
    if name == "probe":
        return PooledProbe()
    if name == "lmprobe":
        return LandmarkProbe()
    if name == "hmprobe":
        return HeatmapProbe()
    return HeadArm(name, hand_model)


@dataclasses.dataclass
class Row:
    arm: str
    step: int | None
    test: list[float]
    train: list[float]
    seconds: float | None


def evaluate(arm: Arm, batches: Sequence[Batch]) -> list[list[float]]:
    """Each batch's per-hand errors, in evaluation mode (dropout and batch-norm statistics off)."""
    arm.eval()
    with torch.no_grad():
        errors = [hand_errors_mm(arm.predict(batch), batch.window.keypoints3d) for batch in batches]
    arm.train()
    return errors


def train_arm(name: str, arm: Arm, train: Cache, test: Batch, train_eval: Batch, args: argparse.Namespace
              ) -> list[Row]:
    """``args.steps`` Adam steps on batches drawn from a generator seeded 0 (the same batches for every arm),
    evaluated every ``args.every`` steps."""
    optimizer = torch.optim.Adam([p for p in arm.parameters() if p.requires_grad], lr=args.lr)
    rng = np.random.default_rng(0)
    rows = []
    began = time.perf_counter()
    for step in range(args.steps + 1):
        if step % args.every == 0:
            test_err, train_err = evaluate(arm, (test, train_eval))
            rows.append(Row(name, step, test_err, train_err, time.perf_counter() - began))
            print(f"{name} step {step}: test {test_err[0]:.1f} / {test_err[1]:.1f} mm, train {train_err[0]:.1f} / "
                  f"{train_err[1]:.1f} mm", file=sys.stderr, flush=True)
        if step == args.steps:
            break
        batch = train.batch(torch.as_tensor(rng.integers(0, len(train), args.batch)))
        loss = arm.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return rows


def run_train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    train = Cache.load(args.cache / "train.pt")
    test_cache = Cache.load(args.cache / "test.pt")
    hand_model = load_hand_model(HAND_MODEL)
    test = test_cache.batch(torch.arange(len(test_cache)))
    train_eval = train.batch(torch.arange(0, len(train), TRAIN_EVAL_STRIDE))

    mean = wrist_relative(train.ann["keypoints3d"]).mean((0, 1))           # [2, 21, 3] over all training frames
    rows = [Row("constant (average training pose)", None,
                hand_errors_mm(mean.expand_as(test.window.keypoints3d), test.window.keypoints3d),
                hand_errors_mm(mean.expand_as(train_eval.window.keypoints3d), train_eval.window.keypoints3d), None)]
    for name in args.arms:
        torch.manual_seed(0)                                               # the same initial draws as a lone run
        rows += train_arm(name, build_arm(name, hand_model), train, test, train_eval, args)

    print(f"Cache {args.cache}: {len(train)} training windows of {train.source} (train columns: every "
          f"{TRAIN_EVAL_STRIDE}th, {len(train_eval.g2)} windows), {len(test_cache)} held-out windows of "
          f"{test_cache.source}, {WINDOW} frames each; batch {args.batch}, lr {args.lr}, torch threads "
          f"{torch.get_num_threads()}. Each hand's mean wrist-relative keypoint error, mm.\n")
    print("| arm | step | right test | left test | right train | left train | seconds |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        step = "-" if row.step is None else row.step
        seconds = "-" if row.seconds is None else f"{row.seconds:.0f}"
        print(f"| {row.arm} | {step} | {row.test[0]:.1f} | {row.test[1]:.1f} | {row.train[0]:.1f} | "
              f"{row.train[1]:.1f} | {seconds} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("cache", help="encode the windows once and save features and annotations")
    c.add_argument("--train", type=Path, required=True, help="the synthetic training split")
    c.add_argument("--test", type=Path, required=True, help="the synthetic test split")
    c.add_argument("--out", type=Path, required=True, help="the cache folder")
    c.add_argument("--train-windows", type=int, default=None, help="the first N training windows (default: all)")
    c.add_argument("--test-windows", type=int, default=160,
                   help="M held-out windows: every (windows // M)-th of the test split from the first")
    c.add_argument("--threads", type=int, default=2)
    t = sub.add_parser("train", help="train heads on a cache side by side")
    t.add_argument("--cache", type=Path, required=True)
    t.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    t.add_argument("--steps", type=int, default=1500)
    t.add_argument("--every", type=int, default=250, help="evaluate every this many steps")
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.what == "cache":
        if args.test_windows < 1 or (args.train_windows is not None and args.train_windows < 1):
            parser.error("--train-windows and --test-windows: expected at least 1")
        run_cache(args)
    else:
        if args.every < 1 or args.steps < 0 or args.batch < 1:
            parser.error("--every and --batch: expected at least 1; --steps: at least 0")
        run_train(args)


if __name__ == "__main__":
    main()
