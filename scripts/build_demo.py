"""Build the bundled demo (``assets/demo/``): one sequence of the held-out synthetic test split, encoded as a
video, and the shipped model's result on that video with the sequence's ground truth attached (``gt_*``), so the
app opens with both hands, ground-truth wireframes and acceleration errors against ground truth.

    python scripts/build_demo.py [--index 3] [--frames 120] [--size 384] [--checkpoint PATH]

The video goes through the same pipeline as any user's (MediaPipe regions, crops, STCNet, blending,
interpenetration). Ground truth is put in the result's convention: camera axes, metres, the right wrist at the
origin (the network's output is root-relative; the perspective translation is not recovered).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np
import torch

from core_model.data.motion import FPS
from core_model.data.synth import generate_sequence, sequence_seed
from core_model.fileio import atomic_path
from core_model.handmodel.registry import load_hand_model
from core_model.pipeline.models import load_run_model, shipped_checkpoint
from core_model.pipeline.run import reconstruct
from core_model.results import load_result, save_result

ROOT = Path(__file__).resolve().parents[1]
SEED = 0  # the seed of the test split evaluated in BENCHMARKS.md


def write_video(images: np.ndarray, path: Path) -> None:
    """RGB frames -> MPEG-4 Part 2 at 30 fps (what OpenCV's wheels write; H.264 would need PyAV)."""
    height, width = images.shape[1:3]
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (width, height))
        if not writer.isOpened():
            raise RuntimeError(f"video: OpenCV cannot write {path}")
        for image in images:
            writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        writer.release()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=int, default=0, help="sequence of the test split's random stream")
    parser.add_argument("--frames", type=int, default=120, help="frames at 30 fps (120: 4 s)")
    parser.add_argument("--size", type=int, default=384, help="image side in pixels")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "demo")
    args = parser.parse_args()

    hand_model = load_hand_model("openhand")
    seq = generate_sequence(hand_model, sequence_seed(SEED, "test", args.index), args.frames, args.size)
    args.out.mkdir(parents=True, exist_ok=True)
    video = args.out / "demo.mp4"
    write_video(seq.images, video)

    checkpoint = args.checkpoint or shipped_checkpoint()
    model, preset, digest = load_run_model(checkpoint, "openhand", torch.device("cpu"))
    result_path = args.out / "demo_result.npz"
    with torch.inference_mode():
        for event in reconstruct(video, result_path, model, model_preset=preset, checkpoint_sha256=digest):
            if event.stage == "done":
                print(event.message)

    result = load_result(result_path)
    motion = seq.motion
    origin = motion.keypoints[:, :1, :1, :]  # the right wrist, per frame
    result.gt = {"keypoints": (motion.keypoints - origin).astype(np.float32),
                 "vertices": (motion.vertices - origin).astype(np.float32),
                 "keypoints2d": seq.keypoints2d.astype(np.float32),
                 "betas": motion.betas.astype(np.float32), "hand_pose": motion.hand_pose.astype(np.float32),
                 "global_orient": motion.global_orient.astype(np.float32)}
    result.meta.extra["demo"] = {"split": "test", "seed": SEED, "index": args.index, "frames": args.frames,
                                 "size": args.size, "interaction": seq.meta["interaction"],
                                 "ground_truth": "camera axes, metres, right wrist at the origin"}
    save_result(result, result_path)
    source = {"generator": "scripts/build_demo.py", "arguments": {k: str(v) for k, v in vars(args).items()},
              "sequence": seq.meta, "checkpoint": str(checkpoint.relative_to(ROOT) if checkpoint.is_relative_to(ROOT)
                                                      else checkpoint), "checkpoint_sha256": digest,
              "licence": "rendered by this project from its own OpenHand model (MIT, see assets/openhand); "
                         "the same licence as the project"}
    with atomic_path(args.out / "SOURCE.json") as tmp:
        tmp.write_text(json.dumps(source, indent=2), encoding="utf-8")
    sizes = {p.name: p.stat().st_size / 2**20 for p in sorted(args.out.iterdir())}
    print("wrote " + ", ".join(f"{name} ({mib:.1f} MiB)" for name, mib in sizes.items()))
    valid = result.valid.all(-1)
    print(f"{int(valid.sum())} of {len(valid)} frames with both hands; interaction {seq.meta['interaction']!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
