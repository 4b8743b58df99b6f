"""A training run's settings in one dataclass: the paper's recipe (section 4.1) as defaults, every departure an
explicit field, stored in each checkpoint so a resumed run can say what changed."""

from __future__ import annotations

import dataclasses
from typing import Any

from core_model.losses import LossConfig
from core_model.network.ablation import ABLATIONS, FULL_MODEL, Ablation, ablation
from core_model.network.config import PRESETS, STCNetConfig

ABLATE_CHOICES = ("te", "mhca", "pc", "tc", "mano")
"""Components ``--ablate`` removes from the full model: the temporal encoder (with its MHCA), MHCA alone, the
interpenetration constraint (eq. 6), the temporal constraint (eq. 5), the MANO and regularisation losses (eq. 8-9,
the paper's Table 3 "without MANO loss")."""


@dataclasses.dataclass
class ObjectiveConfig:
    """The objective: eq. 10 (``losses``) plus two terms the paper does not need.

    lambda_rel: weight of the relative-translation loss (mean over labelled frames of ||c_pred - c_gt||, metres).
        The paper injects the ground-truth translation; STCNet predicts it, so the prediction is supervised as one
        more joint of eq. 7 would be: the same weight as lambda_joint.
    lambda_reproj: weight of the 2D loss between the keypoints projected by the predicted weak-perspective camera
        and the ground-truth crop keypoints, both in normalised crop units (the crop spans [-1, 1]). One unit is
        half the crop, about 0.1-0.15 m of hands at the loaders' margin, so 10 per unit is about 70-100 per metre:
        a 2D error costs a little less than the same error in 3D (lambda_joint = 100 per metre).
    reproj_pose_grad: False (default) detaches the 3D keypoints in the 2D loss, so it trains the camera only and
        cannot pull the 3D pose toward the weak-perspective approximation of the true perspective image.
    gt_rel_transl: place the left hand with the ground-truth relative translation during training (the paper's
        setting); the prediction is still trained by the relative-translation loss.
    """

    losses: LossConfig = dataclasses.field(default_factory=LossConfig)
    use_rel: bool = True
    lambda_rel: float = 100.0
    use_reproj: bool = True
    lambda_reproj: float = 10.0
    reproj_pose_grad: bool = False
    gt_rel_transl: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectiveConfig:
        data = dict(data)
        losses = LossConfig(**data.pop("losses", {}))
        return cls(losses=losses, **data)


@dataclasses.dataclass
class TrainConfig:
    """One training run. Defaults are the paper's recipe: Adam (beta1 = the paper's momentum 0.9), lr 1e-3 times
    ``lr_decay`` = 0.1 every 10 epochs, 30 epochs, batch 32 windows per process (the paper's "per GPU"), weight
    decay 1e-4, T = 10, eq. 10's weights.

    data: dataset specs, ``PATH`` or ``KIND:PATH`` with KIND synthetic, interhand or hic (see
        :mod:`core_model.training.datasets`); several are concatenated.
    out: the run directory (checkpoints, logs, TensorBoard events).
    input_size: crop side (a multiple of 32 from 64); None keeps the preset's.
    window_stride: frames between training windows of a sequence; None = ``frames`` (each frame once per epoch).
    steps: total optimiser steps; None trains ``epochs`` epochs. lr_step_steps: decay interval in steps; None uses
        ``lr_step_epochs`` (may be fractional).
    ablation: a row of :data:`core_model.network.ablation.ABLATIONS`; ``ablate`` removes components from it
        (:data:`ABLATE_CHOICES`).
    checkpoint_every: steps between checkpoints (``last.pt``, replaced atomically); keep_every: steps between
        numbered copies kept beside it (0: none). A resumed run loses at most ``checkpoint_every`` steps.
    max_minutes: wall-clock budget of this invocation; the run checkpoints and stops before exceeding it.
    precision: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``fp32`` or ``bf16``.
    freeze_stride: encoder layers up to this output stride keep their ImageNet weights and statistics (0: none;
        8: the stem and the stride-2/4/8 stages), a departure from the paper that halves a CPU step.
    feature_cache: a file holding the frozen encoder's features of every training window (built there when absent
        or stale; :mod:`core_model.training.feature_cache`), read instead of the images each step. Needs the whole
        encoder frozen (``freeze_stride`` 32) and turns image augmentation off; the simulated detector's landmarks
        stay fresh per step.
    imagenet_weights: ``default`` (the bundled EfficientNet-Lite0 weights; ResNets start random), a file, or
        None. init_checkpoint: start from these weights (a new run, not a resume).
    val_data / val_every / val_sequences: evaluate on held-out data every ``val_every`` steps (0: never),
        using at most ``val_sequences`` sequences.
    """

    data: tuple[str, ...] = ()
    out: str = "runs/stcnet"
    preset: str = "lite"
    hand_model: str = "auto"
    input_size: int | None = None
    frames: int = 10
    window_stride: int | None = None
    augment: bool = True
    batch_size: int = 32
    workers: int = 2
    epochs: int = 30
    steps: int | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-4
    adam_betas: tuple[float, float] = (0.9, 0.999)
    lr_decay: float = 0.1
    lr_step_epochs: float = 10.0
    lr_step_steps: int | None = None
    grad_clip: float = 0.0
    ablation: str = FULL_MODEL
    ablate: tuple[str, ...] = ()
    objective: ObjectiveConfig = dataclasses.field(default_factory=ObjectiveConfig)
    checkpoint_every: int = 500
    keep_every: int = 0
    log_every: int = 10
    max_minutes: float | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    freeze_stride: int = 0
    feature_cache: str | None = None
    imagenet_weights: str | None = "default"
    init_checkpoint: str | None = None
    tensorboard: bool = True
    val_data: tuple[str, ...] = ()
    val_every: int = 0
    val_sequences: int = 8

    def __post_init__(self) -> None:
        self.data = tuple(self.data)
        self.val_data = tuple(self.val_data)
        self.ablate = tuple(self.ablate)
        self.adam_betas = tuple(self.adam_betas)
        if not self.data:
            raise ValueError("data: give at least one dataset (PATH or KIND:PATH)")
        if self.preset not in PRESETS:
            raise ValueError(f"preset: expected one of {sorted(PRESETS)}, got {self.preset!r}")
        ablation(self.ablation)
        bad = [a for a in self.ablate if a not in ABLATE_CHOICES]
        if bad:
            raise ValueError(f"ablate: expected components among {ABLATE_CHOICES}, got {bad}")
        positive = {"frames": self.frames, "batch_size": self.batch_size, "epochs": self.epochs,
                    "checkpoint_every": self.checkpoint_every, "log_every": self.log_every,
                    "val_sequences": self.val_sequences}
        for name, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        for name in ("window_stride", "steps", "lr_step_steps"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name}: expected a positive integer or None, got {value!r}")
        for name in ("workers", "keep_every", "val_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected >= 0, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"lr: expected > 0, got {self.lr!r}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay: expected a factor in (0, 1], got {self.lr_decay!r}")
        if not self.lr_step_epochs > 0:
            raise ValueError(f"lr_step_epochs: expected > 0, got {self.lr_step_epochs!r}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("weight_decay, grad_clip: expected >= 0")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"max_minutes: expected > 0 minutes, got {self.max_minutes!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision: expected 'auto', 'fp32' or 'bf16', got {self.precision!r}")
        if self.freeze_stride not in (0, 2, 4, 8, 16, 32):
            raise ValueError(f"freeze_stride: expected 0, 2, 4, 8, 16 or 32, got {self.freeze_stride!r}")
        if self.feature_cache is not None and self.freeze_stride != 32:
            raise ValueError(f"feature_cache: cached features need the whole encoder frozen (freeze_stride 32), got "
                             f"freeze_stride {self.freeze_stride}")
        if self.val_every and not self.val_data:
            raise ValueError("val_every: needs val_data (a held-out dataset)")
        self.network_config()  # validates input_size and frames against the preset

    def resolved_ablation(self) -> Ablation:
        """The ablation row with the ``ablate`` removals applied (named after the table row it equals)."""
        row = ablation(self.ablation)
        removed = set(self.ablate)
        te = row.temporal_encoder and "te" not in removed
        result = Ablation(
            name=row.name, temporal_encoder=te, cross_attention=te and row.cross_attention and "mhca" not in removed,
            interpenetration_loss=row.interpenetration_loss and "pc" not in removed,
            smooth_loss=row.smooth_loss and "tc" not in removed)
        switches = dataclasses.astuple(result)[1:]
        same = [a.name for a in ABLATIONS.values() if dataclasses.astuple(a)[1:] == switches]
        name = same[0] if same else row.name + "".join(f"-{r}" for r in sorted(removed - {"mano"}))
        return dataclasses.replace(result, name=name)

    @property
    def uses_mano_loss(self) -> bool:
        return "mano" not in self.ablate

    @property
    def run_name(self) -> str:
        """The ablation row with a suffix for the MANO-loss ablation (Table 3)."""
        return self.resolved_ablation().name + ("" if self.uses_mano_loss else "-no-mano-loss")

    def network_config(self) -> STCNetConfig:
        overrides: dict[str, Any] = {"frames": self.frames}
        if self.input_size is not None:
            overrides["input_size"] = self.input_size
        return self.resolved_ablation().apply(STCNetConfig.from_preset(self.preset, **overrides))

    def effective_objective(self) -> ObjectiveConfig:
        """``objective`` with the ablation's loss switches applied (PC, TC, MANO + regularisation)."""
        row = self.resolved_ablation()
        losses = dataclasses.replace(
            self.objective.losses,
            use_inter=self.objective.losses.use_inter and row.interpenetration_loss,
            use_smooth=self.objective.losses.use_smooth and row.smooth_loss,
            use_mano=self.objective.losses.use_mano and self.uses_mano_loss,
            use_reg=self.objective.losses.use_reg and self.uses_mano_loss)
        return dataclasses.replace(self.objective, losses=losses)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (stored in checkpoints that load with ``weights_only=True``)."""
        out = dataclasses.asdict(self)
        out["objective"] = self.objective.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"config: unknown training fields {unknown} (written by a newer version?)")
        if "objective" in data:
            data["objective"] = ObjectiveConfig.from_dict(data["objective"])
        return cls(**data)
