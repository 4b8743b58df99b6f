"""Does a model learn hand pose from the synthetic renders at all, and how fast? Trains short arms side by side
on the same batches and prints each hand's wrist-relative keypoint error on held-out windows every few steps,
beside the error of a constant (the average training pose), which an arm must beat to have learned anything.

    python benchmarks/learnability.py --train DIR --test DIR [--steps 150] [--every 25] [--arms stcnet probe]
        [--lr 1e-3] [--batch 8] [--no-augment] [--threads 2]

Arms:
- ``stcnet``: the lite STCNet at 128 px with the training objective (true relative translation placing the left
  hand, as ``--gt-rel-transl``; the interpenetration term off for speed), encoder frozen up to stride 8;
- ``probe``: the same frozen-to-stride-8 EfficientNet-Lite0 trunk, global-pooled F1 and F2, and an MLP regressing
  both hands' wrist-relative keypoints directly (no MANO, extractor or attention): what the features alone allow.

Why it exists: the shipped model stayed at the constant's error for 988 steps (BENCHMARKS.md, "Shipped model").
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core_model.data.windows import Augmentation, Window, collate_windows
from core_model.handmodel.registry import load_hand_model
from core_model.network.encoder import FrameEncoder
from core_model.network.stcnet import STCNet
from core_model.training.config import ObjectiveConfig, TrainConfig
from core_model.training.datasets import SeededWindows, build_windows
from core_model.training.objective import batch_loss, gt_rel_transl

INPUT = 128


def wrist_relative(keypoints: torch.Tensor) -> torch.Tensor:
    """[..., 2, 21, 3] -> each hand about its own wrist."""
    return keypoints - keypoints[..., :1, :]


def hand_errors_mm(pred: torch.Tensor, truth: torch.Tensor) -> list[float]:
    """Mean wrist-relative keypoint error of each hand, millimetres."""
    err = (wrist_relative(pred) - wrist_relative(truth)).norm(dim=-1)
    return [float(err[..., h, :].mean()) * 1000 for h in range(2)]


class Probe(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = FrameEncoder("efficientnet_lite0")
        self.encoder.freeze(8)
        self.head = nn.Sequential(nn.Linear(320 + 112, 512), nn.ReLU(), nn.Linear(512, 2 * 21 * 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        f1, f2 = self.encoder(images.flatten(0, 1))
        pooled = torch.cat([f1.mean((2, 3)), f2.mean((2, 3))], 1)
        return self.head(pooled).view(*images.shape[:2], 2, 21, 3)

    def loss(self, window: Window) -> torch.Tensor:
        return (self(window.images) - wrist_relative(window.keypoints3d)).norm(dim=-1).mean()

    def predict(self, window: Window) -> torch.Tensor:
        return self(window.images)


class STCNetArm(nn.Module):
    def __init__(self, hand_model) -> None:
        super().__init__()
        config = TrainConfig(data=("unused",), input_size=INPUT, freeze_stride=8,
                             objective=ObjectiveConfig(gt_rel_transl=True))
        self.net = STCNet(config.network_config(), hand_model)
        self.net.encoder.freeze(8)
        objective = config.effective_objective()
        self.objective = dataclasses.replace(objective, losses=dataclasses.replace(objective.losses,
                                                                                   use_inter=False))

    def loss(self, window: Window) -> torch.Tensor:
        output = self.net(window.images, rel_transl=gt_rel_transl(window))
        return batch_loss(output, window, self.objective, None, True).total

    def predict(self, window: Window) -> torch.Tensor:
        return self.net(window.images).keypoints


def constant_errors(train: SeededWindows, test: Window, samples: int = 400) -> list[float]:
    """The error of predicting the average wrist-relative training pose (over ``samples`` windows)."""
    rng = np.random.default_rng(1)
    poses = [wrist_relative(torch.as_tensor(train[(0, int(i))]["keypoints3d"])) for i in
             rng.integers(0, len(train), samples)]
    mean = torch.stack(poses).mean((0, 1))
    return hand_errors_mm(mean.expand_as(test.keypoints3d), test.keypoints3d)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--arms", nargs="+", choices=("stcnet", "probe"), default=["stcnet", "probe"])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--test-windows", type=int, default=16)
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    hand_model = load_hand_model("openhand")
    train = SeededWindows(build_windows([str(args.train)], hand_model, window=10, crop_size=INPUT,
                                        augmentation=None if args.no_augment else Augmentation()), 0)
    test_set = build_windows([str(args.test)], hand_model, window=10, crop_size=INPUT)
    stride = max(1, len(test_set) // args.test_windows)
    test = collate_windows([test_set[i] for i in range(0, stride * args.test_windows, stride)])
    constant = constant_errors(train, test)

    rows = []
    for name in args.arms:
        torch.manual_seed(0)
        arm = STCNetArm(hand_model) if name == "stcnet" else Probe()
        optimizer = torch.optim.Adam([p for p in arm.parameters() if p.requires_grad], lr=args.lr)
        rng = np.random.default_rng(0)  # the same batches for every arm
        began = time.perf_counter()
        for step in range(args.steps + 1):
            if step % args.every == 0:
                arm.eval()
                with torch.no_grad():
                    right, left = hand_errors_mm(arm.predict(test), test.keypoints3d)
                arm.train()
                rows.append((name, step, right, left, time.perf_counter() - began))
                print(f"{name} step {step}: right {right:.1f} mm, left {left:.1f} mm", file=sys.stderr, flush=True)
            if step == args.steps:
                break
            batch = collate_windows([train[(0, int(i))] for i in rng.integers(0, len(train), args.batch)])
            loss = arm.loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    print(f"Held-out: {len(test.images)} windows x 10 frames of {args.test}; batch {args.batch}, lr {args.lr}, "
          f"augmentation {'off' if args.no_augment else 'on'}, torch threads {torch.get_num_threads()}.\n")
    print("| arm | step | right hand (mm) | left hand (mm) | seconds |\n| --- | ---: | ---: | ---: | ---: |")
    print(f"| constant (average training pose) | - | {constant[0]:.1f} | {constant[1]:.1f} | - |")
    for name, step, right, left, seconds in rows:
        print(f"| {name} | {step} | {right:.1f} | {left:.1f} | {seconds:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
