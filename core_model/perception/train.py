"""``interhand perceive-train``: train the perception network on rendered crops, in resumable runs.

A run directory holds ``last.pt`` (model, optimiser, step; replaced atomically every ``--save-every`` steps and
when stopped), ``step_NNNNNN.pt`` snapshots (fp16 weights, loadable by ``interhand perceive``), ``log.jsonl`` (one
line per logged step: losses, learning rate, seconds; and synthetic-test scores every ``--val-every`` steps) and
``config.json``. Running the same command again continues where it stopped; exit 75 when ``--max-minutes`` ran
out or ``--until`` was reached first.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Sampler

from core_model.fileio import atomic_path
from core_model.perception.dataset import SynthPerceptionDataset
from core_model.perception.metrics import CropScores
from core_model.perception.model import (
    PerceptionConfig,
    PerceptionNet,
    PerceptionOutput,
    decode,
    save_perception,
)
from core_model.perception.realism import Realism

EXIT_STOPPED = 75
HEATMAP_POS_WEIGHT = 20.0  # the Gaussians cover ~1 % of the cells: weigh them up so the peaks are learnt
LOSS_WEIGHTS = {"heatmap": 10.0, "where": 0.2, "presence": 0.2, "hand_pixels": 2.0, "chirality": 0.5}


@dataclasses.dataclass
class TrainSettings:
    data: list[str]
    out: str
    val_data: str | None = None
    steps: int = 6000
    batch: int = 16
    lr: float = 2e-3
    input_size: int = 160
    realism: str = "all"
    seed: int = 0
    threads: int = 0
    workers: int = 1
    max_minutes: float = 0.0
    until: int = 0
    init: str | None = None
    hand_order: str = "image"
    loss_where: float = LOSS_WEIGHTS["where"]
    loss_hand_pixels: float = LOSS_WEIGHTS["hand_pixels"]
    save_every: int = 100
    keep_every: int = 500
    val_every: int = 500
    val_frames: int = 192


class EpochSampler(Sampler[int]):
    """Indices ``epoch * n + permutation``: a fresh randomisation per epoch, resumable from any step."""

    def __init__(self, n: int, seed: int, start: int = 0) -> None:
        self.n, self.seed, self.start = n, seed, start

    def __len__(self) -> int:
        return 1 << 40

    def __iter__(self):
        position = self.start
        while True:
            epoch, offset = divmod(position, self.n)
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            for i in perm[offset:]:
                yield int(epoch * self.n + i)
            position = (epoch + 1) * self.n


def losses(output: PerceptionOutput, batch: dict[str, torch.Tensor],
           weights: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
    """Segmentation: soft cross-entropy at the head's stride against the labels' class shares, hand pixels
    weighted up (they are a tenth of the crop, and right-versus-left is decided there). Heatmaps: BCE (Gaussian
    cells weighted up) sets each map's level, so its peak is a confidence; a cross-entropy of each map's spatial
    softmax against its normalised Gaussian ("where", for every keypoint inside the crop) sharpens the peak, which
    the BCE alone leaves broad. Presence: BCE."""
    w = {**LOSS_WEIGHTS, **(weights or {})}
    seg = output.seg_logits
    chirality_loss = output.seg_logits.new_zeros(())
    if output.chirality_logits is not None:  # image-ordered heads: the targets into slot order
        batch = to_slots(batch)
        present = batch["presence"]
        per_slot = F.binary_cross_entropy_with_logits(output.chirality_logits, batch["is_right"], reduction="none")
        chirality_loss = (per_slot * present).sum() / present.sum().clamp_min(1)
    onehot = F.one_hot(batch["labels"], 3).permute(0, 3, 1, 2).float()
    shares = F.adaptive_avg_pool2d(onehot, seg.shape[-2:])
    pixel_weight = 1 + w["hand_pixels"] * (1 - shares[:, 0])
    seg_loss = (-(shares * F.log_softmax(seg, 1)).sum(1) * pixel_weight).mean() / pixel_weight.mean()
    target = batch["heatmaps"]
    weight = 1 + HEATMAP_POS_WEIGHT * target
    heat_loss = (F.binary_cross_entropy_with_logits(output.heatmap_logits, target, reduction="none") * weight).mean()
    flat_logits = output.heatmap_logits.flatten(-2)
    flat_target = target.flatten(-2)
    mass = flat_target.sum(-1, keepdim=True)
    has = mass[..., 0] > 1e-3
    where = -(flat_target / mass.clamp_min(1e-6) * F.log_softmax(flat_logits, -1)).sum(-1)
    where_loss = where[has].mean() if has.any() else flat_logits.sum() * 0
    presence_loss = F.binary_cross_entropy_with_logits(output.presence_logits, batch["presence"])
    total = (seg_loss + w["heatmap"] * heat_loss + w["where"] * where_loss + w["presence"] * presence_loss
             + w["chirality"] * chirality_loss)
    return {"loss": total, "seg": seg_loss, "heatmap": heat_loss, "where": where_loss, "presence": presence_loss,
            "chirality": chirality_loss}


def to_slots(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Right/left targets rearranged into the image-ordered slots given by ``batch["order"]``, with ``is_right``
    [N, 2], the chirality target of each slot."""
    order = batch["order"]
    rows = torch.arange(order.shape[0])[:, None]
    lookup = torch.zeros(order.shape[0], 3, dtype=torch.long)
    lookup[rows, order + 1] = torch.arange(1, 3).expand_as(order)    # label of hand h -> 1 + its slot
    labels = lookup.gather(1, batch["labels"].flatten(1)).view_as(batch["labels"])
    return {**batch, "labels": labels, "heatmaps": batch["heatmaps"][rows, order],
            "presence": batch["presence"][rows, order], "is_right": (order == 0).float()}


@torch.no_grad()
def evaluate_crops(model: PerceptionNet, dataset: SynthPerceptionDataset, frames: int | None = None,
                   batch: int = 32) -> dict[str, float]:
    """Scores on the dataset's fixed crops (the first ``frames`` items spread over the set)."""
    model.eval()
    n = len(dataset)
    index = np.linspace(0, n - 1, min(frames or n, n)).round().astype(int)
    scores = CropScores()
    for start in range(0, len(index), batch):
        items = [dataset[int(i)] for i in index[start:start + batch]]
        b = {k: torch.stack([it[k] for it in items]) for k in items[0]}
        pred = decode(model(b["image"]), b["image"].shape[-1])
        scores.add(pred, b["labels"], b["keypoints"], b["visible"], b["presence"])
    return scores.summary()


def _lr(step: int, settings: TrainSettings) -> float:
    warm = 200
    if step < warm:
        return settings.lr * (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, settings.steps - warm))
    return settings.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


class _SignalStop:
    """SIGTERM and SIGINT ask the loop to stop after the current step (it then saves); ``restore`` puts the
    previous handlers back."""

    def __init__(self) -> None:
        self.requested = False
        self.previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

    def _on_signal(self, signum, frame) -> None:
        self.requested = True

    def restore(self) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)


def _step(model: PerceptionNet, optimiser: torch.optim.Optimizer, batch: dict, step: int,
          settings: TrainSettings) -> dict[str, torch.Tensor]:
    """One optimiser step at ``step``'s learning rate; the loss terms."""
    for group in optimiser.param_groups:
        group["lr"] = _lr(step, settings) * group["scale"]
    parts = losses(model(batch["image"]), batch, {"where": settings.loss_where,
                                                  "hand_pixels": settings.loss_hand_pixels})
    optimiser.zero_grad(set_to_none=True)
    parts["loss"].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    optimiser.step()
    return parts


def _start(settings: TrainSettings, model: PerceptionNet, optimiser: torch.optim.Optimizer, last: Path) -> int:
    """Resume from ``last`` (same settings only) or start from ``settings.init``'s weights; the step to go on from."""
    out = last.parent
    if last.is_file():
        state = torch.load(last, map_location="cpu", weights_only=True)
        saved = state["settings"]
        for key in ("input_size", "realism", "batch", "seed", "loss_where", "loss_hand_pixels", "hand_order"):
            if saved.get(key, "chirality" if key == "hand_order" else getattr(settings, key)) != getattr(settings, key):
                raise ValueError(f"out: {out} holds a run with {key}={saved[key]!r}, not {getattr(settings, key)!r}; "
                                 "choose another folder or the same settings")
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        print(f"resuming {out} at step {int(state['step'])}", flush=True)
        return int(state["step"])
    if settings.init:
        from core_model.perception.model import load_perception

        start, meta = load_perception(settings.init)
        if dataclasses.replace(start.config, hand_order=model.config.hand_order) != model.config:
            raise ValueError(f"init: {settings.init} has config {start.config}, this run {model.config}")
        result = model.load_state_dict(start.state_dict(), strict=False)  # a new chirality head starts afresh
        if result.unexpected_keys or any(not k.startswith("chirality.") for k in result.missing_keys):
            raise ValueError(f"init: {settings.init} does not fit ({result.missing_keys[:3]}, "
                             f"{result.unexpected_keys[:3]})")
        print(f"starting from the weights of {settings.init} ({meta})", flush=True)
    return 0


def train(settings: TrainSettings) -> int:
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    realism = Realism.parse(settings.realism)
    torch.manual_seed(settings.seed)
    config = PerceptionConfig(input_size=settings.input_size, hand_order=settings.hand_order)
    model = PerceptionNet(config)
    groups = [{"params": model.encoder.parameters(), "scale": 0.5},
              {"params": [p for n, p in model.named_parameters() if not n.startswith("encoder.")], "scale": 1.0}]
    optimiser = torch.optim.AdamW(groups, lr=settings.lr, weight_decay=1e-4)
    last = out / "last.pt"
    step = _start(settings, model, optimiser, last)
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(settings), indent=1))
    if step >= settings.steps:
        print(f"{out}: already trained for {step} steps")
        return 0

    dataset = SynthPerceptionDataset(settings.data, settings.input_size, realism, train=True, seed=settings.seed)
    val = SynthPerceptionDataset(settings.val_data, settings.input_size, train=False) if settings.val_data else None
    loader = DataLoader(dataset, batch_size=settings.batch, num_workers=settings.workers,
                        sampler=EpochSampler(len(dataset), settings.seed, step * settings.batch),
                        persistent_workers=settings.workers > 0, drop_last=True)
    print(f"training on {len(dataset)} rendered frames ({settings.realism}), batch {settings.batch}, "
          f"{settings.input_size} px, from step {step} to {settings.steps}", flush=True)

    stop = _SignalStop()
    started = time.monotonic()
    log = open(out / "log.jsonl", "a")

    def save() -> None:
        with atomic_path(last) as tmp:
            torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(), "step": step,
                        "settings": dataclasses.asdict(settings)}, tmp)

    try:
        model.train()
        tick = time.monotonic()
        for batch in loader:
            parts = _step(model, optimiser, batch, step, settings)
            step += 1
            if step % 20 == 0 or step == settings.steps:
                record = {"step": step, **{k: round(v.item(), 5) for k, v in parts.items()},
                          "lr": _lr(step, settings), "s_per_step": round((time.monotonic() - tick) / 20, 3)}
                tick = time.monotonic()
                log.write(json.dumps(record) + "\n")
                log.flush()
                print(" ".join(f"{k} {v}" for k, v in record.items()), flush=True)
            if val is not None and (step % settings.val_every == 0 or step == settings.steps):
                scores = evaluate_crops(model, val, settings.val_frames)
                model.train()
                log.write(json.dumps({"step": step, "val": scores}) + "\n")
                log.flush()
                print(f"val at {step}: " + " ".join(f"{k} {v:.3f}" for k, v in scores.items()), flush=True)
            if step % settings.keep_every == 0 or step == settings.steps:
                save_perception(model, out / f"step_{step:06d}.pt", {"step": step, "realism": settings.realism},
                                half=True)
            if step % settings.save_every == 0:
                save()
            out_of_time = settings.max_minutes and time.monotonic() - started > settings.max_minutes * 60
            paused = settings.until and step >= settings.until
            if step >= settings.steps or out_of_time or paused or stop.requested:
                break
    except RuntimeError:
        # A signal sent to the whole process group (Ctrl-C, kill -- -PGID) also ends the data workers, and
        # the loader reports that as an error: a stop like any other, not a failure.
        if not stop.requested:
            raise
    finally:
        save()
        log.close()
        stop.restore()
    if step < settings.steps:
        print(f"stopped at step {step} of {settings.steps}; run the same command again to continue", flush=True)
        return EXIT_STOPPED
    return 0


def add_perceive_train_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("perceive-train", help="train the two-hand perception network on rendered crops",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(handler=_cmd)
    d = TrainSettings(data=[], out="")
    p.add_argument("--data", nargs="+", required=True, help="synthetic set(s) from `interhand synth`")
    p.add_argument("--out", required=True, help="run folder (resumed when it holds last.pt)")
    p.add_argument("--val-data", default=None, help="synthetic test split for periodic scores")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--input-size", type=int, default=d.input_size)
    p.add_argument("--realism", default=d.realism,
                   help="randomisation groups: all (default), renders, all-GROUP-..., renders+GROUP+... with groups "
                        + ", ".join(f.name for f in dataclasses.fields(Realism)))
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--loss-where", type=float, default=d.loss_where,
                   help="weight of the heatmaps' spatial-softmax cross-entropy (0: BCE alone)")
    p.add_argument("--loss-hand-pixels", type=float, default=d.loss_hand_pixels,
                   help="extra segmentation weight of hand pixels (0: every pixel alike)")
    p.add_argument("--hand-order", choices=("image", "chirality"), default=d.hand_order,
                   help="heads' hands in image order with a chirality head (default), or right/left directly")
    p.add_argument("--init", default=None, help="start from this perception checkpoint's weights (fine-tuning)")
    p.add_argument("--threads", type=int, default=d.threads, help="torch threads (0: torch's default)")
    p.add_argument("--workers", type=int, default=d.workers, help="data-loading processes")
    p.add_argument("--max-minutes", type=float, default=d.max_minutes, help="stop (exit 75) after this long")
    p.add_argument("--until", type=int, default=d.until,
                   help="stop (exit 75) at this step, the schedule still that of --steps (runs in pieces, ablations "
                        "compared at equal steps)")
    p.add_argument("--save-every", type=int, default=d.save_every)
    p.add_argument("--keep-every", type=int, default=d.keep_every)
    p.add_argument("--val-every", type=int, default=d.val_every)
    p.add_argument("--val-frames", type=int, default=d.val_frames)
    return p


def _cmd(args: argparse.Namespace) -> int:
    settings = TrainSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainSettings)})
    return train(settings)


if __name__ == "__main__":
    sys.exit(_cmd(add_perceive_train_parser(argparse.ArgumentParser().add_subparsers()).parse_args()))
