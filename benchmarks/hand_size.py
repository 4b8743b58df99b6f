"""Predicted hand size against ground truth, per checkpoint: does a row avoid interpenetration by shrinking the
hands? (The ablation's "w/o MANO" row reached MMPD 0.11 mm; BENCHMARKS.md, "The ablation".) Prints markdown.

    python benchmarks/hand_size.py --test DIR CKPT [CKPT ...] [--sequences 12] [--threads 2]

Size: the wrist-to-middle-fingertip length along the finger (bone lengths 0-9-10-11-12, millimetres), mean over
the hands with full ground truth, the network run on whole sequences as ``interhand evaluate`` runs it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core_model.evaluate import predict_sequences
from core_model.network.checkpoint import load_checkpoint
from core_model.training.datasets import build_windows

CHAIN = [0, 9, 10, 11, 12]  # wrist, middle MCP, PIP, DIP, tip


def finger_length_mm(keypoints: np.ndarray) -> np.ndarray:
    """[..., 21, 3] metres -> [...] wrist-to-middle-tip length along the finger, millimetres."""
    return np.linalg.norm(np.diff(keypoints[..., CHAIN, :], axis=-2), axis=-1).sum(-1) * 1000.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--test", type=Path, required=True, help="synthetic test split")
    parser.add_argument("--sequences", type=int, default=12, help="the first N test sequences")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| checkpoint | predicted (mm) | ground truth (mm) | ratio |\n| --- | ---: | ---: | ---: |")
    for path in args.checkpoints:
        model, _ = load_checkpoint(path)
        dataset = build_windows([str(args.test)], model.hand_model, window=model.config.frames,
                                crop_size=model.config.input_size, split="test", max_sequences=args.sequences)
        predictions = predict_sequences(model, dataset, batch=8)
        pred = np.concatenate([finger_length_mm(p.keypoints[p.valid]) for p in predictions])
        truth = np.concatenate([finger_length_mm(p.gt_keypoints[p.valid]) for p in predictions])
        print(f"| {path} | {pred.mean():.1f} | {truth.mean():.1f} | {np.mean(pred / truth):.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
