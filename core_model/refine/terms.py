"""The refinement objective's terms, each a plain differentiable function of tensors (gradient-checked in the
tests). Every term is a sum over its residuals divided by ``frames`` (the number of frames refined), so weights
mean the same for a short window and a whole video.

Shapes: ``[..., T, 2, ...]`` with hand 0 = right, 1 = left; ``link [..., T-1, 2]`` (float) is 1 where hand h is
refined on frames t and t+1 and they are consecutive frames of one run (no smoothing across a gap).
"""

from __future__ import annotations

import torch

from core_model.losses import l_alpha
from core_model.refine.capsules import capsule_axes, segment_distance

EPS = 1e-9


def robust(u2: torch.Tensor, kind: str) -> torch.Tensor:
    """Robust cost of squared residuals ``u2`` measured in kernel scales (the knee at u = 1): ``huber``
    (quadratic, then linear: far landmarks still pull, with bounded force), ``geman-mcclure`` (redescending: far
    ones stop pulling), ``l2``. All equal ``u2 / 2`` near 0."""
    if kind == "l2":
        return 0.5 * u2
    if kind == "huber":
        u = torch.sqrt(u2 + EPS)
        return torch.where(u <= 1.0, 0.5 * u2, u - 0.5)
    if kind == "geman-mcclure":
        return 0.5 * u2 / (u2 + 1.0)
    raise ValueError(f"kind: expected 'huber', 'geman-mcclure' or 'l2', got {kind!r}")


def reprojection(pred_px: torch.Tensor, det_px: torch.Tensor, weight: torch.Tensor, scale_px: torch.Tensor,
                 kind: str, knee: float, frames: int) -> torch.Tensor:
    """Confidence-weighted robust 2D error: pred_px, det_px [..., 21, 2] pixels; weight [..., 21] (0 where a
    landmark is absent or distrusted; det_px there may hold anything finite); scale_px [...] pixels of the crop
    side; ``knee`` the kernel scale as a share of it (a landmark that far off costs 0.5)."""
    u2 = ((pred_px - det_px) ** 2).sum(-1) / (knee * scale_px[..., None]) ** 2
    return (weight * robust(u2, kind)).sum() / frames


def smoothness(keypoints: torch.Tensor, link: torch.Tensor, frames: int) -> torch.Tensor:
    """Paper eq. 5 over the refined joints: sum over hands, joints and linked frame pairs of the displacement norm
    ``||J_t - J_{t-1}||_2`` (metres), keypoints [..., T, 2, J, 3]. The norm is smoothed by 1e-9 m^2 so that a
    joint at rest has a gradient."""
    step = keypoints[..., 1:, :, :, :] - keypoints[..., :-1, :, :, :]
    dist = torch.sqrt((step**2).sum(-1) + EPS).sum(-1)                       # [..., T-1, 2]
    return (dist * link).sum() / frames


def acceleration(keypoints: torch.Tensor, link: torch.Tensor, frames: int) -> torch.Tensor:
    """Squared second differences ``||J_{t-1} - 2 J_t + J_{t+1}||^2`` (metres^2) over linked triples: what the
    Accel_E metric and the eye see as jitter, keypoints [..., T, 2, J, 3]."""
    acc = keypoints[..., :-2, :, :, :] - 2 * keypoints[..., 1:-1, :, :, :] + keypoints[..., 2:, :, :, :]
    both = link[..., :-1, :] * link[..., 1:, :]
    return ((acc**2).sum((-1, -2)) * both).sum() / frames


def interpenetration(points: torch.Tensor, partners: torch.Tensor, alpha: float, frames: int) -> torch.Tensor:
    """Paper eq. 6 over the vertices found inside the other hand: ``l_alpha(d(v, V_other))``, with d the distance
    [K] from each such vertex ``points`` [K, 3] to its nearest vertex of the other hand ``partners`` [K, 3] (the
    paper's vertex-set distance; the inside test and the nearest vertex are found exactly and held between
    refreshes). Gradients reach both hands, so they move apart."""
    if points.numel() == 0:
        return points.new_zeros(())
    depth = torch.sqrt(((points - partners) ** 2).sum(-1) + EPS)
    return l_alpha(depth, alpha).sum() / frames


def capsule_collision(keypoints: torch.Tensor, radii: torch.Tensor, pairs: tuple[torch.Tensor, ...], margin: float,
                      frames: int) -> torch.Tensor:
    """Squared overlap (metres^2) of capsules of the right hand with capsules of the left
    (:mod:`core_model.refine.capsules`): ``relu(r_a + r_b + margin - d(axis_a, axis_b))^2`` summed over ``pairs``
    (frame indices..., right capsule a [K], left capsule b [K]: ``capsules.candidate_pairs``, or all pairs);
    keypoints [..., 2, 21, 3], radii [2, S]."""
    *at, s, t = pairs
    if s.numel() == 0:
        return keypoints.new_zeros(())
    a, b = capsule_axes(keypoints, radii)                                              # [..., 2, S, 3]
    right, left = (*at, torch.zeros_like(s), s), (*at, torch.ones_like(t), t)
    d = segment_distance(a[right], b[right], a[left], b[left])
    overlap = torch.relu(radii[0][s] + radii[1][t] + margin - d)
    return (overlap**2).sum() / frames


def prior(value: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, frames: int) -> torch.Tensor:
    """Weighted squared distance to the network's prediction, ``sum weight * (value - target)^2``; weight
    broadcasts over value (e.g. one weight per hand-frame or per coordinate)."""
    return (weight * (value - target) ** 2).sum() / frames


def joint_limits(hand_pose: torch.Tensor, axes: torch.Tensor, low: torch.Tensor, high: torch.Tensor,
                 weight: torch.Tensor, frames: int) -> torch.Tensor:
    """Squared excess of anatomical angles over their limits (radians): hand_pose [..., 2, 45]; axes [2, 15, 3, 3]
    each joint's (flex, abduct, twist) unit axes as rows (``core_model.handmodel.poses.rest_frames``); low, high
    [2, 15, 3]; weight [..., 2] (0 on padding). The angles are the axis-angle vector's coordinates on those axes:
    exact for one-axis rotations and to first order otherwise, which is all a soft limit needs."""
    angles = torch.einsum("hjdc,...hjc->...hjd", axes, hand_pose.unflatten(-1, (15, 3)))
    excess = torch.relu(low - angles) + torch.relu(angles - high)
    return (weight[..., None, None] * excess**2).sum() / frames


def silhouette_inside(points_px: torch.Tensor, outside: torch.Tensor, crop: torch.Tensor, weight: torch.Tensor,
                      knee: float, frames: int) -> torch.Tensor:
    """Surface points that project off the hands' mask: the robust cost of their distance to it, in crop sides.
    points_px [B, T, K, 2] frame pixels; outside [B, T, M, M] each mask cell's distance to the nearest hand cell
    (crop sides; 0 on the hands); crop [B, T, 3] the mask's square (x, y, side) in frame pixels; weight
    [B, T, K] (0 on a hand not refined, or a frame without a mask); ``knee`` the kernel's scale in crop sides.
    Averaged over the K points of a frame, summed over frames."""
    B, T, K, _ = points_px.shape
    uv = 2 * (points_px - crop[..., None, :2]) / crop[..., None, 2:3] - 1          # the crop's edges at -1, 1
    d = torch.nn.functional.grid_sample(outside.flatten(0, 1)[:, None], uv.flatten(0, 1)[:, :, None, :],
                                        mode="bilinear", padding_mode="border", align_corners=False)
    u2 = (d.view(B, T, K) / knee) ** 2
    return (weight * robust(u2, "huber")).sum() / (K * frames)


def silhouette_cover(points_px: torch.Tensor, cover_px: torch.Tensor, cover_weight: torch.Tensor,
                     crop: torch.Tensor, knee: float, frames: int) -> torch.Tensor:
    """Hand cells of the mask that no surface point is near: the robust cost of each cover point's distance to
    the nearest projected surface point, in crop sides. points_px [B, T, K, 2] and cover_px [B, T, P, 2] frame
    pixels; cover_weight [B, T, P] (0 where the frame has no mask or its hands are not both refined)."""
    P = cover_px.shape[-2]
    with torch.no_grad():  # the nearest point is found without a graph: the dense distances are P x K per frame
        nearest = torch.cdist(cover_px, points_px).argmin(-1)                           # [B, T, P]
    chosen = torch.gather(points_px, -2, nearest[..., None].expand(*nearest.shape, 2))
    d2 = ((cover_px - chosen) ** 2).sum(-1)
    u2 = d2 / (knee * crop[..., None, 2]) ** 2
    return (cover_weight * robust(u2, "huber")).sum() / (P * frames)
