"""Training objective of the paper (section 3.2, eq. 5-10), every term switchable for ablations.

Shapes follow DESIGN section 3: ``[B, T, 2, ...]``, hand 0 = right, 1 = left, metres. Each equation sums over
hands and frames as written; the result is then averaged over the batch ``B``. ``||.||_2`` of a joint set
(eq. 5, 7) is read as the sum over joints of each joint's Euclidean distance. The labelled-frame indicator
``1(t)`` is ``labelled [B, T]`` (bool); shape consistency (eq. 8) compares the predicted right and left shapes.
"""

from __future__ import annotations

import dataclasses

import torch

from core_model.geometry.interpenetration import HandMeshes, detect_interpenetration


class LossInputError(ValueError):
    """Bad input to a loss; the message names the argument."""


@dataclasses.dataclass
class LossConfig:
    """Weights of eq. 10 (the paper's values as defaults) and switches for each term."""

    lambda_joint: float = 100.0
    lambda_inter: float = 10.0
    lambda_mano: float = 1.0
    lambda_reg: float = 0.1
    lambda_consist: float = 1.0
    lambda_beta: float = 0.1
    alpha: float = 0.02                    # metres: l_alpha saturates at this penetration depth (eq. 6)
    use_smooth: bool = True
    use_joint: bool = True
    use_inter: bool = True
    use_mano: bool = True
    use_consist: bool = True
    use_reg: bool = True
    inter_depth: str = "surface"           # or "vertices": the paper's distance to the other hand's vertex set


@dataclasses.dataclass
class LossTerms:
    """Scalars of eq. 5-10 (unweighted terms; ``total`` is eq. 10). A switched-off term is 0."""

    smooth: torch.Tensor
    joint: torch.Tensor
    inter: torch.Tensor
    mano: torch.Tensor
    reg: torch.Tensor
    total: torch.Tensor

    def as_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name).detach()) for f in dataclasses.fields(self)}


def _check(name: str, x: torch.Tensor, last: tuple[int, ...], ndim: int | None = None) -> None:
    if not isinstance(x, torch.Tensor):
        raise LossInputError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if (ndim is not None and x.ndim != ndim) or tuple(x.shape[x.ndim - len(last):]) != last:
        raise LossInputError(f"{name}: expected shape [B, T, {', '.join(map(str, last))}], got {tuple(x.shape)}")
    if x.numel() == 0:
        raise LossInputError(f"{name}: empty batch, shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise LossInputError(f"{name}: contains NaN or inf")


def _same(names: str, a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise LossInputError(f"{names}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")


def _labelled(labelled: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    if labelled is None:
        return like.new_ones(like.shape[:2])
    if tuple(labelled.shape) != tuple(like.shape[:2]):
        raise LossInputError(f"labelled: expected shape {tuple(like.shape[:2])} (B, T), got {tuple(labelled.shape)}")
    return labelled.to(like.dtype)


def l_alpha(x: torch.Tensor, alpha: float = 0.02) -> torch.Tensor:
    """Robust penalty alpha * tanh(x / alpha): linear for small x, saturating at alpha."""
    return alpha * torch.tanh(x / alpha)


def smooth_loss(keypoints: torch.Tensor) -> torch.Tensor:
    """Eq. 5: distances between consecutive frames' joints, keypoints [B, T, 2, J, 3]."""
    _check("keypoints", keypoints, (2, keypoints.shape[-2], 3), ndim=5)
    step = (keypoints[:, 1:] - keypoints[:, :-1]).norm(dim=-1)             # [B, T-1, 2, J]
    return step.sum(dim=(1, 2, 3)).mean()


def inter_loss(vertices: torch.Tensor, meshes: HandMeshes, alpha: float = 0.02,
               depth: str = "surface") -> torch.Tensor:
    """Eq. 6: l_alpha of the penetration depth of every vertex inside the other hand, vertices [B, T, 2, V, 3].

    The inside mask (Inter, eq. 4) carries no gradient; the depth does, so the hands are pushed apart.
    """
    _check("vertices", vertices, (2, vertices.shape[-2], 3), ndim=5)
    result = detect_interpenetration(vertices, meshes, depth=depth, backend="torch")
    return (result.inside * l_alpha(result.depth, alpha)).sum(dim=(1, 2, 3)).mean()


def joint_loss(pred_keypoints: torch.Tensor, gt_keypoints: torch.Tensor,
               labelled: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 7: (1/T) sum over labelled frames and hands of the joint distances, keypoints [B, T, 2, J, 3]."""
    _check("pred_keypoints", pred_keypoints, (2, pred_keypoints.shape[-2], 3), ndim=5)
    _check("gt_keypoints", gt_keypoints, (2, gt_keypoints.shape[-2], 3), ndim=5)
    _same("pred_keypoints, gt_keypoints", pred_keypoints, gt_keypoints)
    per_frame = (pred_keypoints - gt_keypoints).norm(dim=-1).sum(dim=(2, 3))   # [B, T]
    return (per_frame * _labelled(labelled, pred_keypoints)).sum(1).mean() / pred_keypoints.shape[1]


def mano_loss(pred_betas: torch.Tensor, gt_betas: torch.Tensor | None = None,
              labelled: torch.Tensor | None = None, lambda_consist: float = 1.0,
              use_consist: bool = True) -> torch.Tensor:
    """Eq. 8: shape error on labelled frames plus lambda_consist * ||beta_right - beta_left||^2, betas [B, T, 2, 10].

    Without ``gt_betas`` only the consistency term remains (sequences without MANO labels).
    """
    _check("pred_betas", pred_betas, (2, pred_betas.shape[-1]), ndim=4)
    loss = pred_betas.new_zeros(pred_betas.shape[0])
    if gt_betas is not None:
        _check("gt_betas", gt_betas, (2, gt_betas.shape[-1]), ndim=4)
        _same("pred_betas, gt_betas", pred_betas, gt_betas)
        err = (pred_betas - gt_betas).norm(dim=-1).sum(-1)                     # [B, T]
        loss = loss + (err * _labelled(labelled, pred_betas)).sum(1)
    if use_consist:
        loss = loss + lambda_consist * ((pred_betas[:, :, 0] - pred_betas[:, :, 1]) ** 2).sum(dim=(1, 2))
    return loss.mean()


def reg_loss(hand_pose: torch.Tensor, betas: torch.Tensor, lambda_beta: float = 0.1) -> torch.Tensor:
    """Eq. 9: squared magnitude of pose [B, T, 2, P] and lambda_beta times that of shape [B, T, 2, 10]."""
    _check("hand_pose", hand_pose, (2, hand_pose.shape[-1]), ndim=4)
    _check("betas", betas, (2, betas.shape[-1]), ndim=4)
    return ((hand_pose ** 2).sum(dim=(1, 2, 3)) + lambda_beta * (betas ** 2).sum(dim=(1, 2, 3))).mean()


def total_loss(config: LossConfig, *, pred_keypoints: torch.Tensor, pred_vertices: torch.Tensor | None = None,
               pred_betas: torch.Tensor | None = None, pred_hand_pose: torch.Tensor | None = None,
               gt_keypoints: torch.Tensor | None = None, gt_betas: torch.Tensor | None = None,
               labelled: torch.Tensor | None = None, meshes: HandMeshes | None = None) -> LossTerms:
    """Eq. 10: L_smooth + lambda_j L_joint + lambda_i L_inter + lambda_m L_mano + lambda_r L_reg.

    Only the inputs of switched-on terms are needed; a missing one raises an error naming it.
    """
    zero = pred_keypoints.new_zeros(())

    def need(name: str, value):
        if value is None:
            raise LossInputError(f"{name}: required by a switched-on loss term (see LossConfig)")
        return value

    smooth = smooth_loss(pred_keypoints) if config.use_smooth else zero
    joint = (joint_loss(pred_keypoints, need("gt_keypoints", gt_keypoints), labelled)
             if config.use_joint else zero)
    inter = (inter_loss(need("pred_vertices", pred_vertices), need("meshes", meshes), config.alpha,
                        config.inter_depth) if config.use_inter else zero)
    mano = (mano_loss(need("pred_betas", pred_betas), gt_betas, labelled, config.lambda_consist, config.use_consist)
            if config.use_mano else zero)
    reg = (reg_loss(need("pred_hand_pose", pred_hand_pose), need("pred_betas", pred_betas), config.lambda_beta)
           if config.use_reg else zero)
    total = (smooth + config.lambda_joint * joint + config.lambda_inter * inter + config.lambda_mano * mano
             + config.lambda_reg * reg)
    return LossTerms(smooth, joint, inter, mano, reg, total)
