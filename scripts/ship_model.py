"""Turn a training run's checkpoint into the model the app ships: fp16 weights (half the size, no optimiser
state) with the run's provenance, written atomically to ``assets/models/stcnet_lite_landmarks_synth.pt``, or with
``--perception`` to ``assets/models/perception_lite_synth.pt`` (a ``perceive-train`` snapshot; the provenance is
the chain of run configurations, through ``--init``).

    python scripts/ship_model.py RUN/last.pt [--out PATH] [--note "what it was trained on"]
    python scripts/ship_model.py --perception RUN/step_NNNNNN.pt [--note ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core_model.network.checkpoint import load_checkpoint, save_checkpoint
from core_model.pipeline.models import SHIPPED_CHECKPOINT

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a training checkpoint (RUN/last.pt)")
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / Path(*SHIPPED_CHECKPOINT))
    parser.add_argument("--note", default="", help="what it was trained on, stored in the checkpoint")
    parser.add_argument("--perception", action="store_true", help="ship a perception snapshot")
    args = parser.parse_args()
    if args.perception:
        return ship_perception(args)
    model, ckpt = load_checkpoint(args.checkpoint)
    train = ckpt.extra.get("train", {})
    config = train.get("config", {})
    progress = train.get("progress", {})
    extra = {"trained": {"config": config, "step": progress.get("step"), "total_steps": progress.get("total_steps"),
                         "elapsed_s": progress.get("elapsed_s"), "note": args.note,
                         "source": args.checkpoint.name}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(args.out, model, extra=extra, half=True)
    size = args.out.stat().st_size / 2**20
    print(f"wrote {args.out} ({size:.1f} MiB, fp16): {ckpt.config.preset} preset, input {ckpt.config.input_size}, "
          f"hand model {ckpt.hand_model}, step {progress.get('step')} of {progress.get('total_steps')}")
    return 0


def ship_perception(args: argparse.Namespace) -> int:
    from core_model.perception.model import load_perception, save_perception
    from core_model.pipeline.perceive import SHIPPED

    model, meta = load_perception(args.checkpoint)
    runs, source = [], args.checkpoint
    while source is not None:  # the run that made it, the run it was initialised from, ...
        config = json.loads((Path(source).parent / "config.json").read_text())
        runs.append({"run": Path(source).parent.name, "snapshot": Path(source).name, "config": config})
        source = config.get("init")
    out = args.out if args.out != ROOT / "assets" / Path(*SHIPPED_CHECKPOINT) else ROOT / "assets" / Path(*SHIPPED)
    save_perception(model, out, {**meta, "trained": runs, "note": args.note}, half=True)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB, fp16): input {model.config.input_size}, "
          f"runs {' <- '.join(r['run'] + '/' + r['snapshot'] for r in runs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
