"""The training objective on one batch: eq. 10 of the paper (:func:`core_model.losses.total_loss`) on ground
truth brought into STCNet's frame, plus the relative-translation and 2D reprojection terms of
:class:`~core_model.training.config.ObjectiveConfig`.

Ground truth from the loaders is in the camera frame; STCNet's keypoints have the right wrist at the origin. The
joint loss compares them after moving the ground truth to its own right wrist, so the left hand's joints also
measure the predicted right-to-left translation. Joints without ground truth (invalid joints, hands or a missing
right wrist) take the detached prediction as their target: they add nothing to the loss and no gradient, which is
how a per-joint mask enters eq. 7 (whose indicator is per frame). MANO betas enter eq. 8 only where
``params_valid`` says they belong to the hand model in use; elsewhere only the shape-consistency term remains.
"""

from __future__ import annotations

import dataclasses

import torch

from core_model.data.windows import Window
from core_model.geometry.interpenetration import HandMeshes
from core_model.losses import total_loss
from core_model.network.decoder import weak_perspective_project
from core_model.network.output import STCNetOutput
from core_model.training.config import ObjectiveConfig

MM = 1000.0


@dataclasses.dataclass
class BatchLoss:
    """total: the scalar to minimise; terms: unweighted values by name (eq. 5-9, ``rel``, ``reproj``) and a
    readable training error ``joint_err_mm`` (mean distance of the supervised joints in the right-wrist frame)."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]

    def as_floats(self) -> dict[str, float]:
        return {"total": float(self.total.detach()), **{k: float(v.detach()) for k, v in self.terms.items()}}


def gt_rel_transl(window: Window) -> torch.Tensor:
    """[B, T, 3] the ground-truth translation to inject (zeros where it is unknown)."""
    return torch.where(window.root_rel_valid[..., None], window.root_rel, torch.zeros_like(window.root_rel))


def joint_targets(window: Window, pred_keypoints: torch.Tensor, injected: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(targets [B, T, 2, 21, 3], mask [B, T, 2, 21]): ground truth relative to its right wrist where known, the
    detached prediction elsewhere. With an injected translation the left hand's position comes from the ground
    truth, so frames without a known translation drop the left hand."""
    kp = window.keypoints3d
    mask = window.joint_valid & window.hand_valid[..., None] & window.joint_valid[:, :, :1, :1]
    if injected:
        mask = mask & torch.stack([torch.ones_like(window.root_rel_valid), window.root_rel_valid], -1)[..., None]
    gt = kp - kp[:, :, :1, :1, :]
    return torch.where(mask[..., None], gt, pred_keypoints.detach()), mask


def normalised_crop_keypoints(keypoints2d: torch.Tensor, crop_size: int) -> torch.Tensor:
    """Crop pixels (pixel centres at integers) -> normalised crop coordinates, the crop's edges at -1 and 1
    (the inverse of the pipeline's ``(uv + 1) / 2 * S`` on continuous coordinates)."""
    return 2.0 * (keypoints2d + 0.5) / crop_size - 1.0


def batch_loss(output: STCNetOutput, window: Window, config: ObjectiveConfig, meshes: HandMeshes | None,
               injected: bool) -> BatchLoss:
    """The objective of one batch. ``injected``: the forward pass placed the left hand with the ground-truth
    translation."""
    loss_config = config.losses
    T = output.keypoints.shape[1]
    targets, mask = joint_targets(window, output.keypoints, injected)
    labelled = window.labelled
    gt_betas = None
    params_valid = window.params_valid & labelled[..., None]
    if bool(params_valid.any()):
        gt_betas = torch.where(params_valid[..., None], window.betas, output.betas.detach())
    eq10 = total_loss(loss_config, pred_keypoints=output.keypoints, pred_vertices=output.vertices,
                      pred_betas=output.betas, pred_hand_pose=output.hand_pose, gt_keypoints=targets,
                      gt_betas=gt_betas, labelled=labelled, meshes=meshes if loss_config.use_inter else None)
    terms = {name: getattr(eq10, name) for name in ("smooth", "joint", "inter", "mano", "reg")}
    total = eq10.total
    zero = total.new_zeros(())

    rel = zero
    if config.use_rel:
        ok = (window.root_rel_valid & labelled).to(total.dtype)
        rel = ((output.rel_transl_pred - window.root_rel).norm(dim=-1) * ok).sum(1).mean() / T
        total = total + config.lambda_rel * rel
    terms["rel"] = rel

    reproj = zero
    if config.use_reproj:
        local = output.keypoints - output.keypoints[..., :1, :]          # each hand about its own wrist
        if not config.reproj_pose_grad:
            local = local.detach()
        uv = weak_perspective_project(local, output.camera)
        gt_uv = normalised_crop_keypoints(window.keypoints2d, window.images.shape[-1])
        ok2d = (window.joint_valid & window.hand_valid[..., None] & labelled[..., None, None]).to(total.dtype)
        reproj = ((uv - gt_uv).norm(dim=-1) * ok2d).sum(dim=(1, 2, 3)).mean() / T
        total = total + config.lambda_reproj * reproj
    terms["reproj"] = reproj

    supervised = (mask & labelled[..., None, None]).to(total.dtype)
    err = (output.keypoints.detach() - targets).norm(dim=-1)
    terms["joint_err_mm"] = (err * supervised).sum() / supervised.sum().clamp_min(1) * MM
    return BatchLoss(total, terms)
