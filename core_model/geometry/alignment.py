"""Alignments used before comparing hands: root-relative protocols and Procrustes (similarity) alignment.

The field reports root-relative errors under two incompatible protocols (paper section 4.1 and the methods it
compares with); both are named here so that every printed number can say which one it used.
"""

from __future__ import annotations

import dataclasses

import roma
import torch

WRIST, MIDDLE_MCP = 0, 9
"""Keypoint indices in our order (DESIGN section 3)."""


@dataclasses.dataclass(frozen=True)
class Protocol:
    """How a predicted hand is brought onto the ground truth before measuring errors."""

    name: str
    root: int
    scale_to_gt_bone: bool
    description: str


PROTOCOLS = {
    "wrist": Protocol("wrist", WRIST, False, "wrist root, no scaling (InterNet, InterWild)"),
    "mcp-scaled": Protocol("mcp-scaled", MIDDLE_MCP, True,
                           "middle-MCP root, prediction scaled to the ground-truth wrist-to-middle-MCP bone length "
                           "(IntagHand, ITH-3D)"),
}


class AlignmentInputError(ValueError):
    """Bad input to an alignment; the message names the argument."""


def get_protocol(protocol: str | Protocol) -> Protocol:
    if isinstance(protocol, Protocol):
        return protocol
    if protocol not in PROTOCOLS:
        raise AlignmentInputError(f"protocol: expected one of {sorted(PROTOCOLS)}, got {protocol!r}")
    return PROTOCOLS[protocol]


def root_align(pred_keypoints: torch.Tensor, gt_keypoints: torch.Tensor, protocol: str | Protocol,
               pred_points: torch.Tensor | None = None, gt_points: torch.Tensor | None = None):
    """Root-relative keypoints (and optional other points, e.g. vertices) of prediction and ground truth.

    keypoints [..., 21, 3]; points [..., P, 3] move with their hand's keypoints. Returns
    ``(pred_keypoints, gt_keypoints, pred_points, gt_points)``, the points ``None`` when not given.
    """
    proto = get_protocol(protocol)
    pred_root = pred_keypoints[..., proto.root:proto.root + 1, :]
    gt_root = gt_keypoints[..., proto.root:proto.root + 1, :]
    scale = 1.0
    if proto.scale_to_gt_bone:
        bone = (gt_keypoints[..., MIDDLE_MCP, :] - gt_keypoints[..., WRIST, :]).norm(dim=-1)
        pred_bone = (pred_keypoints[..., MIDDLE_MCP, :] - pred_keypoints[..., WRIST, :]).norm(dim=-1)
        scale = (bone / pred_bone.clamp_min(1e-12))[..., None, None]
    pk = (pred_keypoints - pred_root) * scale
    gk = gt_keypoints - gt_root
    pp = None if pred_points is None else (pred_points - pred_root) * scale
    gp = None if gt_points is None else gt_points - gt_root
    return pk, gk, pp, gp


def procrustes_align(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """``pred`` [..., N, 3] moved by the similarity (scale, rotation, translation) that best fits it to ``gt``.

    Uses roma's batched Umeyama solution (SVD, reflections excluded).
    """
    if pred.shape != gt.shape or pred.ndim < 2 or pred.shape[-1] != 3:
        raise AlignmentInputError(f"pred, gt: expected equal shapes [..., N, 3], got {tuple(pred.shape)} and "
                                  f"{tuple(gt.shape)}")
    rotation, translation, scale = roma.rigid_points_registration(pred, gt, compute_scaling=True)
    return scale[..., None, None] * pred @ rotation.transpose(-1, -2) + translation[..., None, :]
