"""The paper's ablation (Table 2: Baseline, +TE, +TE+PC, +TE+PC+TC; Table 3: without the MANO loss) on the
held-out synthetic test split: trains every row with the same recipe and budget, evaluates each under both root
protocols, and prints markdown tables with the paper's InterHand2.6M numbers beside ours.

    python benchmarks/ablation.py train --train DIR --runs DIR [--steps 700] [--max-minutes 100]
        [--preset lite-landmarks] [--freeze-stride 32] [--rows full baseline ...]
    python benchmarks/ablation.py report --test DIR --runs DIR [--out ablation.md]

``train`` is resumable: it trains the rows in order, each from ``RUNS/ROW/last.pt``, and exits with status 75
when the time budget ends first; run it again to continue. ``report`` evaluates every finished row (cached in
``RUNS/ROW/eval`` while the checkpoint is unchanged).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from core_model.evaluate import evaluate_checkpoint
from core_model.geometry.alignment import PROTOCOLS
from core_model.results import file_sha256
from core_model.train import EXIT_STOPPED, train
from core_model.training.config import ObjectiveConfig, TrainConfig

# (row label, --ablation, --ablate, short name for --rows): the full model first, so the shipped model exists
# soonest, then the per-frame baseline, the other end of Table 2.
ROWS: list[tuple[str, str, tuple[str, ...], str]] = [
    ("Baseline + TE + PC + TC", "baseline+te+pc+tc", (), "full"),
    ("Baseline", "baseline", (), "baseline"),
    ("Baseline + TE", "baseline+te", (), "te"),
    ("Baseline + TE + PC", "baseline+te+pc", (), "te+pc"),
    ("Ours (w/o MANO)", "baseline+te+pc+tc", ("mano",), "no-mano"),
]
TABLE_ORDER = ["Baseline", "Baseline + TE", "Baseline + TE + PC", "Baseline + TE + PC + TC", "Ours (w/o MANO)"]
COLUMNS = ["Accel_E", "MMPD", "MPJPE", "MPVPE", "PA-MPJPE", "MRRPE"]
# The paper's InterHand2.6M numbers (Tables 2 and 3; it reports no MRRPE).
PAPER = {
    "Baseline": {"Accel_E": 8.14, "MMPD": 8.87, "MPJPE": 18.49, "MPVPE": 19.07, "PA-MPJPE": 8.96},
    "Baseline + TE": {"Accel_E": 4.33, "MMPD": 8.34, "MPJPE": 14.61, "MPVPE": 15.14, "PA-MPJPE": 8.26},
    "Baseline + TE + PC": {"Accel_E": 4.13, "MMPD": 3.82, "MPJPE": 13.41, "MPVPE": 14.11, "PA-MPJPE": 8.43},
    "Baseline + TE + PC + TC": {"Accel_E": 3.70, "MMPD": 4.22, "MPJPE": 13.25, "MPVPE": 13.91, "PA-MPJPE": 8.12},
    "Ours (w/o MANO)": {"Accel_E": 5.12, "MMPD": 6.37, "MPJPE": 14.45, "MPVPE": 14.73, "PA-MPJPE": 8.37},
}
RATIO_COLUMNS = ("Accel_E", "MMPD", "MPJPE")

log = logging.getLogger("ablation")


def run_dir(runs: Path, ablation: str, ablate: tuple[str, ...]) -> Path:
    return runs / (ablation + "".join(f"-no-{a}" for a in ablate))


def row_config(args: argparse.Namespace, ablation: str, ablate: tuple[str, ...], minutes: float) -> TrainConfig:
    """One recipe for every row: only the ablation switches differ."""
    return TrainConfig(
        data=(str(args.train),), out=str(run_dir(args.runs, ablation, ablate)), preset=args.preset,
        input_size=args.input_size, frames=10, batch_size=args.batch, workers=args.workers, steps=args.steps,
        lr=args.lr, lr_step_steps=max(1, round(args.decay_at * args.steps)), freeze_stride=args.freeze_stride,
        feature_cache=str(args.runs / "features.pt") if args.freeze_stride == 32 else None,
        ablation=ablation, ablate=ablate, objective=ObjectiveConfig(gt_rel_transl=args.gt_rel_transl),
        checkpoint_every=100, log_every=10, max_minutes=minutes,
        seed=args.seed, device=args.device)


def command_cache(args: argparse.Namespace) -> int:
    """Encode the training windows once into RUNS/features.pt, before rows train in parallel from it."""
    from core_model.device import pick_device
    from core_model.handmodel.registry import load_hand_model
    from core_model.network.encoder import FrameEncoder
    from core_model.train import training_windows
    from core_model.training.feature_cache import load_or_build

    if args.threads:
        torch.set_num_threads(args.threads)
    config = row_config(args, *ROWS[0][1:3], None)
    if config.feature_cache is None:
        raise SystemExit("cache: only with --freeze-stride 32 (a frozen encoder's features are what is cached)")
    dataset = training_windows(config, load_hand_model(config.hand_model))
    device = pick_device(args.device)
    encoder = FrameEncoder(config.network_config().encoder, config.imagenet_weights).to(device)
    f1, _ = load_or_build(config.feature_cache, encoder, dataset, device)
    print(f"{len(f1)} windows cached in {config.feature_cache}")
    return 0


def command_train(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + 60 * args.max_minutes if args.max_minutes else math.inf
    if args.threads:
        torch.set_num_threads(args.threads)
    for label, ablation, ablate, short in ROWS:
        if args.rows and short not in args.rows:
            continue
        left = (deadline - time.monotonic()) / 60
        if left < 1:
            print(f"time budget spent before {label}; run the same command again to continue")
            return EXIT_STOPPED
        config = row_config(args, ablation, ablate, None if math.isinf(left) else left)
        print(f"== {label}: {config.out}", flush=True)
        result = train(config, resume="auto")
        if result.status != "finished":
            print(f"{label} stopped at step {result.step} of {result.total_steps} ({result.status}); run the same "
                  "command again to continue")
            return EXIT_STOPPED
    return 0


def evaluate_row(args: argparse.Namespace, label: str, folder: Path) -> dict | None:
    checkpoint = folder / "last.pt"
    if not checkpoint.is_file():
        return None
    out = folder / "eval"
    cached = out / "metrics.json"
    digest = file_sha256(checkpoint)
    if cached.is_file():
        data = json.loads(cached.read_text())
        if data["meta"]["checkpoint_sha256"] == digest and data["meta"]["data"] == [str(args.test)]:
            return data
    print(f"evaluating {label} ({checkpoint})", flush=True)
    evaluate_checkpoint(checkpoint, [str(args.test)], out, device=args.device, label=label)
    return json.loads(cached.read_text())


def _cell(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def report(results: dict[str, dict]) -> str:
    lines: list[str] = []
    for protocol in PROTOCOLS:
        lines += [f"### Root protocol `{protocol}`: {PROTOCOLS[protocol].description}", "",
                  "| row | steps | " + " | ".join(COLUMNS) + " | paper (InterHand2.6M): " + " / ".join(COLUMNS[:5])
                  + " |", "|" + " --- |" * (len(COLUMNS) + 3)]
        for label in TABLE_ORDER:
            data = results.get(label)
            paper = " / ".join(_cell(PAPER[label].get(c)) for c in COLUMNS[:5])
            if data is None:
                lines.append(f"| {label} | not trained | " + " | ".join("-" for _ in COLUMNS) + f" | {paper} |")
                continue
            row = data["protocols"][protocol]
            steps = data["meta"].get("trained_steps")
            lines.append(f"| {label} | {steps} | " + " | ".join(_cell(row.get(c)) for c in COLUMNS)
                         + f" | {paper} |")
        lines.append("")
        full, base = results.get("Baseline + TE + PC + TC"), results.get("Baseline")
        if full and base:
            cells = []
            for c in RATIO_COLUMNS:
                ours = full["protocols"][protocol][c] / base["protocols"][protocol][c]
                paper = PAPER["Baseline + TE + PC + TC"][c] / PAPER["Baseline"][c]
                cells.append(f"{c} {ours:.2f}x (paper {paper:.2f}x)")
            lines += ["Full model / Baseline: " + ", ".join(cells), ""]
    any_data = next(iter(results.values()), None)
    if any_data:
        counts = any_data["counts"]
        lines.append(f"Test split: {counts['sequences']} sequences, {counts['frames']} frames, "
                     f"{counts['valid_hands']} hands with full ground truth. Millimetres; Accel_E in mm/frame²; "
                     f"ground-truth MMPD {_cell(any_data.get('gt_mmpd'))} mm.")
    return "\n".join(lines) + "\n"


def command_report(args: argparse.Namespace) -> int:
    results = {}
    for label, ablation, ablate, short in ROWS:
        if args.rows and short not in args.rows:
            continue
        data = evaluate_row(args, label, run_dir(args.runs, ablation, ablate))
        if data is not None:
            results[label] = data
    text = report(results)
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train every row (resumable)")
    c = sub.add_parser("cache", help="only build RUNS/features.pt (then train rows in parallel from it)")
    for p in (t, c):
        p.add_argument("--train", type=Path, required=True, help="synthetic training split (interhand synth)")
        p.add_argument("--steps", type=int, default=700, help="optimiser steps per row (700)")
        p.add_argument("--batch", type=int, default=8, help="windows of T=10 frames per step (8)")
        p.add_argument("--lr", type=float, default=1e-3)
        p.add_argument("--decay-at", type=float, default=0.75, help="lr x0.1 at this share of the steps (0.75)")
        p.add_argument("--input-size", type=int, default=128)
        p.add_argument("--preset", default="lite-landmarks", choices=("lite", "lite-landmarks"),
                       help="lite-landmarks (default: the shipped model's) or lite (the paper's RGB-only input)")
        p.add_argument("--freeze-stride", type=int, default=32,
                       help="encoder layers kept at their ImageNet weights (32, the default: all of them, and every "
                            "row trains from one cache of their features, RUNS/features.pt; 8: train deeper stages)")
        p.add_argument("--workers", type=int, default=1)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--gt-rel-transl", action="store_true",
                       help="place the left hand with the ground-truth relative translation in training (the paper's "
                            "setting); the prediction is still trained by its own loss")
        p.add_argument("--rows", nargs="+", choices=[row[3] for row in ROWS], default=None,
                       help="train only these rows (default: all, in order); run several invocations in parallel")
        p.add_argument("--threads", type=int, default=None, help="torch threads of this process")
        p.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget of this invocation")
    r = sub.add_parser("report", help="evaluate the trained rows and print the tables")
    r.add_argument("--test", type=Path, required=True, help="synthetic test split (interhand synth --split test)")
    r.add_argument("--out", type=Path, default=None, help="also write the tables to this markdown file")
    r.add_argument("--rows", nargs="+", choices=[row[3] for row in ROWS], default=None,
                   help="evaluate and report only these rows (default: every trained one)")
    for p in (t, r, c):
        p.add_argument("--runs", type=Path, required=True, help="folder of the five run directories")
        p.add_argument("--device", default="auto")
    args = parser.parse_args()
    return {"train": command_train, "cache": command_cache, "report": command_report}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
