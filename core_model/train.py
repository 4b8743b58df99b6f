"""``interhand train``: train STCNet with the paper's recipe (section 4.1) on one or more datasets, on CPU, one
GPU, or several processes under ``torchrun`` (DDP), resumable.

One process::

    interhand train --preset lite --data /data/synth_train --out runs/lite

Several processes on one node (4 GPUs with NCCL, or CPU processes with gloo and ``--device cpu``; torchrun sets
OMP_NUM_THREADS=1 per process unless it is set), the same arguments::

    torchrun --standalone --nproc_per_node 4 -m core_model.cli train --preset paper --data ... --out runs/paper

Several nodes: the same command on every node, HOST:PORT (any node) reachable from all::

    torchrun --nnodes N --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST:29500 --rdzv_id RUN \\
        -m core_model.cli train --preset paper --data ... --out runs/paper

Each process reads its share of every epoch (``DistributedSampler``) with ``--batch`` windows per step, as the
paper's "batch 32 per GPU". Global rank 0 alone logs, validates and writes checkpoints; on resume it reads the
checkpoint and hands the state to the others, so only rank 0's node needs the run directory.

Resume: ``RUN/last.pt`` is replaced atomically every ``--checkpoint-every`` steps, on reaching ``--max-minutes``,
on SIGINT/SIGTERM and at the end; running the same command again continues from it (or ``--resume PATH``).
Exit status 0: finished; 75: stopped early with a checkpoint (time budget or signal), run it again to continue.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from core_model.data.windows import Augmentation, WindowDataset, collate_windows
from core_model.progress import ProgressBar
from core_model.training import distributed
from core_model.training.config import ABLATE_CHOICES, ObjectiveConfig, TrainConfig
from core_model.training.datasets import EpochSampler, SeededWindows, build_windows
from core_model.training.feature_cache import CachedWindows, collate_cached, load_or_build
from core_model.training.logbook import RunLog, format_curve, plot_curve, read_log
from core_model.training.objective import batch_loss, gt_rel_transl
from core_model.training.state import (
    LAST,
    Progress,
    read_training_state,
    save_training_checkpoint,
    step_seed,
)

log = logging.getLogger(__name__)

EXIT_STOPPED = 75
"""Exit status of a run that stopped early with a checkpoint (EX_TEMPFAIL: run the same command again)."""


@dataclasses.dataclass
class TrainResult:
    """status: ``finished``, ``time budget`` or ``interrupted``; step / total_steps; the last checkpoint."""

    status: str
    step: int
    total_steps: int
    checkpoint: Path | None
    run_dir: Path
    is_main: bool = True


class _StopRequest:
    """SIGINT / SIGTERM ask the loop to checkpoint and stop at the next step; a second SIGINT stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: dict[int, object] = {}

    def __enter__(self) -> _StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("signal %d: saving a checkpoint and stopping after this step", signum)

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def train(config: TrainConfig, resume: str | Path | None = "auto") -> TrainResult:
    """Train as ``config`` says. ``resume``: ``'auto'`` continues from ``config.out/last.pt`` when it exists, a
    path continues from that checkpoint, None starts afresh (refusing a run directory that has a checkpoint)."""
    processes = distributed.start(config.device)
    try:
        with _StopRequest() as stop:
            return _train(config, resume, processes, stop)
    finally:
        distributed.stop(processes)


def training_windows(config: TrainConfig, hand_model) -> WindowDataset:
    """The windows a run trains on: augmented crops, or centred ones for a run that reads cached features (they
    set the cache's key, so ``benchmarks/ablation.py cache`` builds its file from this same call)."""
    augmentation = Augmentation() if config.augment and config.feature_cache is None else None
    return build_windows(config.data, hand_model, window=config.frames,
                         crop_size=config.network_config().input_size, stride=config.window_stride,
                         augmentation=augmentation)


def _precision(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    if config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda"
                                      and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return None


def _train(config: TrainConfig, resume, processes: distributed.Processes, stop: _StopRequest) -> TrainResult:
    session = _Session(config, resume, processes)
    if session.progress.step >= session.total_steps:
        if session.main:
            log.info("nothing to do: %s is at step %d of %d", session.resume_path, session.progress.step,
                     session.total_steps)
        return TrainResult("finished", session.progress.step, session.total_steps, session.resume_path,
                           session.run_dir, session.main)
    return session.run(stop)


class _Session:
    """One invocation of ``interhand train``: the model, data and optimiser built (and restored on resume), then
    the loop of steps with its logging, validation, checkpoints and time budget.

    Built in the order the parts depend on each other: the model before its encoder's cache, the data before the
    steps per epoch, the optimiser on the parameters' device before its state is restored."""

    def __init__(self, config: TrainConfig, resume, processes: distributed.Processes) -> None:
        self.began = time.perf_counter()
        self.config, self.processes = config, processes
        self.run_dir = Path(config.out)
        self.main = processes.is_main
        self.device = processes.device
        if self.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        # Rank 0 alone looks at the disk (other nodes need not share it) and tells the others.
        self.resume_path = distributed.from_main(_resume_path(self.run_dir, resume) if self.main else None,
                                                 processes)
        torch.manual_seed(config.seed)
        self._build_model()
        self._build_data()
        self._build_optimiser()
        if self.resume_path:
            self._restore()
        if self.main:
            self._describe()

    def _build_model(self) -> None:
        from core_model.handmodel.registry import load_hand_model
        from core_model.network.checkpoint import load_weights
        from core_model.network.stcnet import STCNet

        config = self.config
        self.hand_model = load_hand_model(config.hand_model)
        self.net_config = config.network_config()
        self.model = STCNet(self.net_config, self.hand_model,
                            imagenet_weights=None if self.resume_path else config.imagenet_weights)
        if config.init_checkpoint and not self.resume_path:
            load_weights(self.model, config.init_checkpoint)
        self.model.encoder.freeze(config.freeze_stride)
        self.objective = config.effective_objective()
        self.injected = self.objective.gt_rel_transl

    def _build_data(self) -> None:
        """The windows, read as images or as cached encoder features; the sampler and the step counts."""
        config, processes, main = self.config, self.processes, self.main
        self.cached = config.feature_cache is not None
        self.dataset = training_windows(config, self.hand_model)
        self.items: torch.utils.data.Dataset = self.dataset
        self.collate = collate_windows
        if self.cached:
            encoder = self.model.encoder.to(self.device)
            # Rank 0 builds the file; the others then find it (a shared disk) or build their own.
            if main:
                features = load_or_build(config.feature_cache, encoder, self.dataset, self.device)
            distributed.barrier(processes)
            if not main:
                features = load_or_build(config.feature_cache, encoder, self.dataset, self.device)
            self.items, self.collate = CachedWindows(self.dataset, *features), collate_cached
            if main and config.augment:
                log.info("feature cache: image augmentation is off (the cached features are the centred crops'); "
                         "the simulated detector's landmarks are drawn afresh every step")
        self.sampler = EpochSampler(self.dataset, processes.world_size, processes.rank, config.seed)
        self.steps_per_epoch = len(self.sampler.base) // config.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"batch_size: {config.batch_size} windows per step, but each of the "
                             f"{processes.world_size} process(es) gets only {len(self.sampler.base)} of the "
                             f"{len(self.dataset)} windows; use a smaller --batch or more data")
        self.total_steps = config.steps or config.epochs * self.steps_per_epoch
        self.decay_steps = config.lr_step_steps or max(1, round(config.lr_step_epochs * self.steps_per_epoch))

    def _build_optimiser(self) -> None:
        config = self.config
        self.model.to(self.device)  # before the optimiser: its state is created on (and loaded to) that device
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=config.lr, betas=config.adam_betas,
                                          weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: config.lr_decay ** (step // self.decay_steps))
        self.progress = Progress(step=0, steps_per_epoch=self.steps_per_epoch, total_steps=self.total_steps,
                                 world_size=self.processes.world_size)

    def _restore(self) -> None:
        """Weights, optimiser, schedule and position from the checkpoint being resumed (read by rank 0)."""
        from core_model.network.checkpoint import load_weights

        state = None
        if self.main:
            load_weights(self.model, self.resume_path)  # refuses another architecture or hand model, naming it
            state = read_training_state(self.resume_path)
            _warn_changes(state.config, self.config.to_dict(), self.resume_path)
        state = distributed.from_main(state, self.processes)
        self.optimizer.load_state_dict(state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)
        self.progress = dataclasses.replace(state.progress, steps_per_epoch=self.steps_per_epoch,
                                            total_steps=self.total_steps,
                                            finished=state.progress.step >= self.total_steps,
                                            world_size=self.processes.world_size)
        if state.progress.steps_per_epoch != self.steps_per_epoch and self.main:
            log.warning("resume: %d steps per epoch now, %d when saved (data, batch or process count changed); "
                        "the epoch position is recomputed from the step", self.steps_per_epoch,
                        state.progress.steps_per_epoch)
        if self.main:
            log.info("resumed from %s at step %d of %d", self.resume_path, self.progress.step, self.total_steps)

    def _describe(self) -> None:
        """config.json in the run folder and one log line of what is being trained."""
        config, net, dataset = self.config, self.net_config, self.dataset
        _write_json(self.run_dir / "config.json", {
            "train": config.to_dict(), "network": net.to_dict(), "hand_model": self.hand_model.name,
            "world_size": self.processes.world_size, "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps, "lr_decay_steps": self.decay_steps, "windows": len(dataset)})
        log.info("training %s (%s, input %d, T=%d) on %d windows of %d sequences: %d steps/epoch, %d steps, "
                 "lr x%g every %d steps, %d process(es) on %s", config.run_name, net.preset, net.input_size,
                 net.frames, len(dataset), len(dataset.sequences), self.steps_per_epoch, self.total_steps,
                 config.lr_decay, self.decay_steps, self.processes.world_size, self.device)

    # -- the loop -----------------------------------------------------------------------------------------------

    def run(self, stop: _StopRequest) -> TrainResult:
        """Steps until the last, a stop request or the time budget; a checkpoint at each of those."""
        from core_model.geometry.interpenetration import HandMeshes

        config, progress, main = self.config, self.progress, self.main
        self.net = self._parallel()
        loader = DataLoader(SeededWindows(self.items, config.seed), batch_size=config.batch_size,
                            sampler=self.sampler, num_workers=config.workers, collate_fn=self.collate,
                            drop_last=True, pin_memory=self.device.type == "cuda",
                            persistent_workers=config.workers > 0)
        self.meshes = HandMeshes.from_model(self.hand_model) if self.objective.losses.use_inter else None
        self.autocast_dtype = _precision(config, self.device)
        validation = _Validation(config, self.hand_model, self.net_config, self.device) \
            if main and config.val_every else None
        self.runlog = RunLog(self.run_dir, tensorboard=config.tensorboard,
                             purge_step=progress.step or None) if main else None
        bar = ProgressBar(log_every=config.log_every) if main else None
        if main:
            bar("train", progress.step, self.total_steps)  # the clock starts here, at the step resumed from
        self.sums: dict[str, float] = defaultdict(float)
        self._open_log_interval()
        self.step_times: list[float] = []
        self.save_seconds = self.val_seconds = 0.0
        self.elapsed_before = progress.elapsed_s
        status, last_saved = "finished", None
        session_began = time.perf_counter()  # steps per minute of this invocation, for the closing line
        self.net.train()
        try:
            while progress.step < self.total_steps and status == "finished":
                self.sampler.set_epoch(progress.step // self.steps_per_epoch,
                                       skip=(progress.step % self.steps_per_epoch) * config.batch_size)
                for batch in loader:
                    floats = self._step(batch)
                    step = progress.step
                    self._log(step)
                    if main:
                        bar("train", step, self.total_steps, f"ep {step / self.steps_per_epoch:.2f} loss "
                            f"{floats['total']:.2f} err {floats['joint_err_mm']:.1f} mm")
                    if validation is not None and step % config.val_every == 0:
                        self._validate(validation, step)
                    halt = distributed.any_true(stop.requested or self._over_budget(step), self.processes)
                    progress.finished = step >= self.total_steps
                    if halt and not progress.finished:
                        status = "interrupted" if stop.requested else "time budget"
                    if main and (step % config.checkpoint_every == 0 or halt or progress.finished):
                        last_saved = self._save(self.run_dir / LAST)
                        if config.keep_every and step % config.keep_every == 0:
                            shutil.copyfile(last_saved, self.run_dir / f"step_{step:08d}.pt")
                    if halt or progress.finished:
                        break
            if main:
                bar.end()
        finally:
            if self.runlog is not None:
                self.runlog.close()
        distributed.barrier(self.processes)
        if main:
            log.info("%s at step %d of %d (%.1f steps/min this session); checkpoint %s", status, progress.step,
                     self.total_steps, 60 * len(self.step_times) / max(time.perf_counter() - session_began, 1e-9),
                     last_saved)
        return TrainResult(status, progress.step, self.total_steps, last_saved, self.run_dir, main)

    def _parallel(self) -> torch.nn.Module:
        """The model, wrapped for DistributedDataParallel when there are several processes."""
        if not self.processes.distributed:
            return self.model
        # All parameters get gradients unless a head is left out of the objective (camera without the 2D loss).
        unused = not self.objective.use_reproj or (self.injected and not self.objective.use_rel)
        device = self.device
        return torch.nn.parallel.DistributedDataParallel(
            self.model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=unused)

    def _step(self, batch) -> dict[str, float]:
        """One optimiser step on ``batch``; its losses as floats."""
        config, device, progress = self.config, self.device, self.progress
        t0 = time.perf_counter()
        torch.manual_seed(step_seed(config.seed, self.processes.rank, progress.step))
        window, features = batch if self.cached else (batch, None)
        window = window.to(device)
        if features is not None:
            features = tuple(f.to(device) for f in features)
        rel = gt_rel_transl(window) if self.injected else None
        with torch.autocast(device.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            output = self.net(None if self.cached else window.images, rel_transl=rel,
                              landmarks=window.landmarks if self.net_config.landmarks else None, features=features)
        loss = batch_loss(output, window, self.objective, self.meshes, self.injected)
        if not torch.isfinite(loss.total):
            raise FloatingPointError(f"loss: not finite at step {progress.step} ({loss.as_floats()})")
        self.optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        progress.step += 1
        self.step_times.append(time.perf_counter() - t0)
        floats = loss.as_floats()
        for k, v in floats.items():
            self.sums[k] += v
        self.interval_steps += 1
        return floats

    def _open_log_interval(self) -> None:
        # Per logging interval: wall and CPU seconds of this process (CPU time shows the cost on a shared machine).
        self.interval_steps, self.interval_began, self.interval_cpu = 0, time.perf_counter(), time.process_time()

    def _log(self, step: int) -> None:
        """Every ``log_every`` steps: the interval's mean losses over all processes and its speed, to the log."""
        config = self.config
        if step % config.log_every != 0 and step != self.total_steps:
            return
        means = distributed.mean_over_processes({k: v / self.interval_steps for k, v in self.sums.items()},
                                                self.processes)
        seconds = (time.perf_counter() - self.interval_began) / self.interval_steps
        cpu_seconds = (time.process_time() - self.interval_cpu) / self.interval_steps
        if self.main:
            frames = config.batch_size * config.frames * self.processes.world_size
            self.runlog.record(step, "train", means, epoch=step / self.steps_per_epoch,
                               lr=self.optimizer.param_groups[0]["lr"], s_per_step=seconds,
                               cpu_s_per_step=cpu_seconds, frames_per_s=frames / seconds)
        self.sums.clear()
        self._open_log_interval()

    def _validate(self, validation: _Validation, step: int) -> None:
        t_val = time.perf_counter()
        self.runlog.record(step, "val", validation.run(self.model))
        self.val_seconds = time.perf_counter() - t_val
        self.interval_began, self.interval_cpu = time.perf_counter(), time.process_time()

    def _over_budget(self, step: int) -> bool:
        """Whether the next step, and the save and validation that may follow it, would pass ``max_minutes``."""
        if not self.config.max_minutes:
            return False
        recent = sorted(self.step_times[-20:])[len(self.step_times[-20:]) // 2]
        upcoming = self.val_seconds if self.config.val_every and (step + 1) % self.config.val_every == 0 else 0.0
        spent = time.perf_counter() - self.began
        return spent + 1.5 * recent + self.save_seconds + upcoming > self.config.max_minutes * 60

    def _save(self, path: Path) -> Path:
        t0 = time.perf_counter()
        self.progress.elapsed_s = self.elapsed_before + t0 - self.began
        out = save_training_checkpoint(path, self.model, self.optimizer, self.scheduler, self.progress,
                                       self.config.to_dict())
        self.save_seconds = max(self.save_seconds, time.perf_counter() - t0)
        return out


def _resume_path(run_dir: Path, resume: str | Path | None) -> Path | None:
    if resume == "auto":
        return run_dir / LAST if (run_dir / LAST).is_file() else None
    if resume is not None:
        path = Path(resume)
        if not path.is_file():
            raise FileNotFoundError(f"resume: no such checkpoint {path}")
        return path
    if (run_dir / LAST).is_file():
        raise ValueError(f"out: {run_dir} already holds {LAST}; resume it, or choose another run directory")
    return None


def _warn_changes(saved: dict, now: dict, path: Path) -> None:
    changed = {k: (saved.get(k), v) for k, v in now.items() if saved.get(k) != v}
    if changed:
        listed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(changed.items()))
        log.warning("resume: settings differ from those %s was trained with: %s", path, listed)


def _write_json(path: Path, data: dict) -> None:
    from core_model.fileio import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")


class _Validation:
    """Held-out metrics during training (rank 0): MPJPE, PA-MPJPE, MPVPE, Accel_E, MMPD, MRRPE on the first
    ``val_sequences`` sequences of ``val_data``, whole sequences as ``interhand evaluate`` runs them."""

    def __init__(self, config: TrainConfig, hand_model, net_config, device: torch.device) -> None:
        from core_model.geometry.interpenetration import HandMeshes

        self.dataset = build_windows(config.val_data, hand_model, window=config.frames,
                                     crop_size=net_config.input_size, split="test",
                                     max_sequences=config.val_sequences)
        self.meshes = HandMeshes.from_model(hand_model)
        self.device = device
        self.batch = max(1, min(config.batch_size, 8))

    def run(self, model: torch.nn.Module) -> dict[str, float]:
        from core_model.evaluate import compute_metrics, predict_sequences

        predictions = predict_sequences(model, self.dataset, batch=self.batch, device=self.device)
        result = compute_metrics(predictions, self.meshes)
        scalars = {}
        for protocol, row in result.rows.items():
            for column in ("MPJPE", "MPVPE", "Accel_E", "MRRPE"):
                scalars[f"{column}/{protocol}"] = row[column]
        first = next(iter(result.rows.values()))
        scalars["PA-MPJPE"], scalars["MMPD"] = first["PA-MPJPE"], first["MMPD"]
        return scalars


def add_train_parser(subparsers, hand_model_choices: tuple[str, ...] = ("auto", "mano", "openhand")):
    # Long by design: one argparse option per training setting, in the order ``--help`` lists them.
    """Add ``train`` to an argparse subparsers object; returns the parser."""
    from core_model.network.ablation import ABLATIONS, FULL_MODEL
    from core_model.network.config import PRESETS

    d = TrainConfig.__dataclass_fields__
    p = subparsers.add_parser(
        "train", help="train STCNet (the paper's recipe; CPU, GPU or torchrun DDP; resumable)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(handler=run_train)
    p.add_argument("--data", action="append", default=None, metavar="[KIND:]PATH",
                   help="training data: a synthetic set folder, interhand:ROOT (train split) or hic:ROOT; "
                        "repeat to combine")
    p.add_argument("--out", type=Path, default=None, help="run directory (checkpoints, log.jsonl, tb/)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="lite")
    p.add_argument("--hand-model", choices=hand_model_choices, default="auto",
                   help="hand model: imported MANO, shipped OpenHand, or auto (MANO if imported)")
    p.add_argument("--input-size", type=int, default=None, help="crop side (multiple of 32, >= 64; default: preset)")
    p.add_argument("--frames", type=int, default=d["frames"].default, help="T, frames per window (default 10)")
    p.add_argument("--window-stride", type=int, default=None,
                   help="frames between training windows (default T: each frame once per epoch)")
    p.add_argument("--no-augment", action="store_true", help="train on unaugmented crops")
    p.add_argument("--batch", type=int, default=d["batch_size"].default, help="windows per step and process (32)")
    p.add_argument("--workers", type=int, default=d["workers"].default, help="data loader processes (2)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, default=d["epochs"].default, help="epochs (default 30)")
    length.add_argument("--steps", type=int, default=None, help="total optimiser steps (overrides --epochs)")
    p.add_argument("--lr", type=float, default=d["lr"].default, help="Adam learning rate (1e-3)")
    p.add_argument("--weight-decay", type=float, default=d["weight_decay"].default, help="(1e-4)")
    p.add_argument("--lr-decay", type=float, default=d["lr_decay"].default, help="lr factor per decay (0.1)")
    decay = p.add_mutually_exclusive_group()
    decay.add_argument("--lr-step-epochs", type=float, default=d["lr_step_epochs"].default,
                       help="epochs between lr decays (10)")
    decay.add_argument("--lr-step-steps", type=int, default=None, help="steps between lr decays")
    p.add_argument("--grad-clip", type=float, default=0.0, help="clip the gradient norm (0: off, the paper)")
    p.add_argument("--ablation", choices=sorted(ABLATIONS), default=FULL_MODEL,
                   help="a row of the paper's Table 2 (plus no-mhca); default the full model")
    p.add_argument("--ablate", action="append", choices=ABLATE_CHOICES, default=[],
                   help="remove a component: te (temporal encoder), mhca, pc (interpenetration loss), tc (smooth "
                        "loss), mano (MANO and regularisation losses, Table 3); repeatable")
    p.add_argument("--gt-rel-transl", action="store_true",
                   help="place the left hand with the ground-truth translation while training (the paper)")
    p.add_argument("--no-rel-loss", action="store_true", help="do not supervise the predicted translation")
    p.add_argument("--no-reproj", action="store_true", help="no 2D reprojection loss (the camera stays untrained)")
    p.add_argument("--reproj-weight", type=float, default=ObjectiveConfig().lambda_reproj,
                   help="weight of the 2D reprojection loss per normalised crop unit (10)")
    p.add_argument("--checkpoint-every", type=int, default=d["checkpoint_every"].default,
                   help="steps between checkpoints (500); a resume loses at most this many")
    p.add_argument("--keep-every", type=int, default=0, help="also keep step_N.pt every N steps (0: no)")
    p.add_argument("--log-every", type=int, default=d["log_every"].default, help="steps between log records (10)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop with a checkpoint before this wall-clock budget (exit status 75)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (under torchrun: GPU LOCAL_RANK)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto: bf16 autocast on CUDA, fp32 on CPU")
    p.add_argument("--imagenet-weights", default="default", metavar="PATH",
                   help="frame-encoder ImageNet weights: 'default' (bundled Lite0; a ResNet starts random), a file "
                        "(the torchvision ResNet-50 checkpoint for --preset paper), or 'none'")
    p.add_argument("--freeze-stride", type=int, default=0, choices=(0, 2, 4, 8, 16, 32),
                   help="keep the encoder layers up to this output stride at their ImageNet weights (0: train all; "
                        "8 halves a CPU step)")
    p.add_argument("--feature-cache", type=Path, default=None, metavar="FILE",
                   help="with --freeze-stride 32: train from the frozen encoder's features of every window, kept "
                        "in FILE (built there on first use; shareable between runs on the same data), without "
                        "image augmentation; several times faster on a CPU")
    p.add_argument("--init", default=None, metavar="CKPT", help="start a new run from these weights")
    resume = p.add_mutually_exclusive_group()
    resume.add_argument("--resume", default="auto", metavar="CKPT",
                        help="continue from this checkpoint (default: RUN/last.pt when present)")
    resume.add_argument("--no-resume", dest="resume", action="store_const", const=None,
                        help="start afresh (refused when RUN/last.pt exists)")
    p.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard events (log.jsonl only)")
    p.add_argument("--val-data", action="append", default=[], metavar="[KIND:]PATH",
                   help="held-out data evaluated every --val-every steps")
    p.add_argument("--val-every", type=int, default=0, help="steps between validations (0: none)")
    p.add_argument("--val-sequences", type=int, default=8, help="validate on the first N held-out sequences (8)")
    p.add_argument("--curve", type=Path, default=None, metavar="RUN",
                   help="print the training curve of run directory RUN (and with --curve-png, plot it); no training")
    p.add_argument("--curve-png", type=Path, default=None, help="with --curve: write the curve as a PNG")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    objective = ObjectiveConfig(use_rel=not args.no_rel_loss, use_reproj=not args.no_reproj,
                                lambda_reproj=args.reproj_weight, gt_rel_transl=args.gt_rel_transl)
    weights = None if args.imagenet_weights in ("none", "None") else args.imagenet_weights
    return TrainConfig(
        data=tuple(args.data or ()), out=str(args.out), preset=args.preset, hand_model=args.hand_model,
        input_size=args.input_size, frames=args.frames, window_stride=args.window_stride,
        augment=not args.no_augment, batch_size=args.batch, workers=args.workers, epochs=args.epochs,
        steps=args.steps, lr=args.lr, weight_decay=args.weight_decay, lr_decay=args.lr_decay,
        lr_step_epochs=args.lr_step_epochs, lr_step_steps=args.lr_step_steps, grad_clip=args.grad_clip,
        ablation=args.ablation, ablate=tuple(args.ablate), objective=objective,
        checkpoint_every=args.checkpoint_every, keep_every=args.keep_every, log_every=args.log_every,
        max_minutes=args.max_minutes, seed=args.seed, device=args.device, precision=args.precision,
        freeze_stride=args.freeze_stride, feature_cache=None if args.feature_cache is None else str(args.feature_cache),
        imagenet_weights=weights, init_checkpoint=args.init,
        tensorboard=not args.no_tensorboard,
        val_data=tuple(args.val_data), val_every=args.val_every, val_sequences=args.val_sequences)


def run_train(args: argparse.Namespace) -> int:
    if args.curve is not None:
        records = read_log(args.curve)
        print(format_curve(records))
        if args.curve_png is not None:
            print(f"wrote {plot_curve(records, args.curve_png)}")
        return 0
    if not args.data or args.out is None:
        raise ValueError("data, out: training needs --data (at least one) and --out")
    result = train(config_from_args(args), resume=args.resume)
    if result.status == "finished":
        if result.is_main:
            print(f"finished: step {result.step} of {result.total_steps}; checkpoint {result.checkpoint}")
        return 0
    if result.is_main:
        print(f"stopped ({result.status}) at step {result.step} of {result.total_steps}; checkpoint "
              f"{result.checkpoint}; run the same command again to continue", file=sys.stderr)
    return EXIT_STOPPED
