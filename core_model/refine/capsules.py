"""Each hand as a set of capsules on its keypoints (finger phalanges and palm rays), for a collision term that
separates interlocked hands.

Why not only the paper's eq. 6 at test time: its residual is the distance from a vertex inside the other hand to
that hand's nearest vertex. When a finger passes right through another (the usual failure on interlocked real
hands, where the detector's landmarks of the two hands interleave), the vertices on either side of the crossing
are pulled to opposite sides of the other finger and the forces cancel: the fit stays crossed (measured on the
real clips: the term hardly decreases even at 100x its weight). Two capsules overlapping have one separating
direction, the common perpendicular of their axes; for fingers crossing in the image that is the depth, which
the 2D landmarks leave free. The capsules sit on the 21 keypoints the fit already has, so the term costs a few
hundred segment distances per frame, no skinning and no inside test.
"""

from __future__ import annotations

import torch

# Segments as keypoint pairs in our order (wrist 0; thumb 1-4 CMC..tip; index 5-8; middle 9-12; ring 13-16;
# pinky 17-20): the three phalanges of every finger (the thumb's metacarpal, proximal and distal), and the palm
# as rays from the wrist to each finger's base plus the knuckle line.
PHALANGES = tuple((base + k, base + k + 1) for base in (1, 5, 9, 13, 17) for k in range(3))
PALM = ((0, 5), (0, 9), (0, 13), (0, 17), (5, 9), (9, 13), (13, 17))
SEGMENTS = PHALANGES + PALM
TIPS = tuple(i for i, (_, b) in enumerate(SEGMENTS) if b in (4, 8, 12, 16, 20))
"""Segments ending at a fingertip keypoint, which lies on the skin: their capsule ends a radius short of it."""


def point_segment_distance(points: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance from points [..., 3] to segments a-b [..., 3] (broadcast)."""
    ab = b - a
    s = (((points - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)).clamp(0.0, 1.0)
    return (points - (a + s[..., None] * ab)).norm(dim=-1)


def segment_distance(p0: torch.Tensor, p1: torch.Tensor, q0: torch.Tensor, q1: torch.Tensor,
                     eps: float = 1e-12) -> torch.Tensor:
    """Closest distance between segments p0-p1 and q0-q1 (all [..., 3], broadcast), differentiable almost
    everywhere (see :func:`closest_points`). The norm is smoothed by ``eps`` (m^2) so that touching axes still
    have a gradient."""
    gap = closest_points(p0, p1, q0, q1, eps)[2]
    return torch.sqrt((gap * gap).sum(-1) + eps)


def closest_points(p0: torch.Tensor, p1: torch.Tensor, q0: torch.Tensor, q1: torch.Tensor, eps: float = 1e-12
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The closest points of segments p0-p1 and q0-q1 as their parameters s, t [...] along each and the gap
    [..., 3] from the second's point to the first's: the parameters clamped to the segments (Ericson, Real-Time
    Collision Detection, 5.1.9); parallel segments take s = 0."""
    d1, d2, r = p1 - p0, q1 - q0, p0 - q0
    a, e = (d1 * d1).sum(-1).clamp_min(eps), (d2 * d2).sum(-1).clamp_min(eps)
    b, c, f = (d1 * d2).sum(-1), (d1 * r).sum(-1), (d2 * r).sum(-1)
    denom = a * e - b * b
    s = torch.where(denom > 1e-9 * a * e, ((b * f - c * e) / denom.clamp_min(eps)).clamp(0.0, 1.0),
                    torch.zeros_like(a))
    t = (b * s + f) / e
    s = torch.where(t < 0, (-c / a).clamp(0.0, 1.0), torch.where(t > 1, ((b - c) / a).clamp(0.0, 1.0), s))
    t = t.clamp(0.0, 1.0)
    return s, t, (p0 + s[..., None] * d1) - (q0 + t[..., None] * d2)


def capsule_axes(keypoints: torch.Tensor, radii: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The capsules' axis end points [..., 2, S, 3] each, from keypoints [..., 2, 21, 3] and radii [2, S]; the
    fingertip segments are shortened by their radius so that the capsule's cap ends at the tip."""
    index = torch.as_tensor(SEGMENTS, device=keypoints.device)
    a, b = keypoints[..., index[:, 0], :], keypoints[..., index[:, 1], :]
    shorten = torch.zeros_like(radii)
    shorten[:, list(TIPS)] = radii[:, list(TIPS)]
    length = (b - a).norm(dim=-1, keepdim=True).clamp_min(1e-6)
    b = b - (b - a) * (shorten[..., None] / length).clamp(max=0.5)
    return a, b


def candidate_pairs(keypoints: torch.Tensor, radii: torch.Tensor, weight: torch.Tensor, reach: float
                    ) -> tuple[torch.Tensor, ...]:
    """The (frame indices..., right capsule, left capsule) of every pair whose capsules are within ``reach``
    metres of touching, on frames where ``weight`` [...] is positive; keypoints [..., 2, 21, 3]. Why: the
    collision term then follows only pairs that can meet before the next look, a few per frame, instead of all
    S x S pairs of every frame (most of a refinement's time otherwise)."""
    with torch.no_grad():
        a, b = capsule_axes(keypoints, radii)
        d = segment_distance(a[..., 0, :, None, :], b[..., 0, :, None, :], a[..., 1, None, :, :],
                             b[..., 1, None, :, :])
        near = (d < radii[0][:, None] + radii[1][None, :] + reach) & (weight > 0)[..., None, None]
        return torch.nonzero(near, as_tuple=True)


def fit_radii(vertices: torch.Tensor, keypoints: torch.Tensor, quantile: float = 0.5) -> torch.Tensor:
    """Capsule radii [2, S] of both hands of one pose: vertices [2, V, 3], keypoints [2, 21, 3]. Each vertex
    belongs to its nearest segment; a capsule's radius is the ``quantile`` of its vertices' distances (the
    median: the capsules stay inside the skin, so touching hands are not pushed apart). A segment that no vertex
    chose takes the hand's median radius."""
    index = torch.as_tensor(SEGMENTS, device=keypoints.device)
    a, b = keypoints[:, index[:, 0]], keypoints[:, index[:, 1]]                       # [2, S, 3]
    dist = point_segment_distance(vertices[:, :, None], a[:, None], b[:, None])         # [2, V, S]
    near, owner = dist.min(-1)
    radii = torch.empty(2, len(SEGMENTS), dtype=vertices.dtype, device=vertices.device)
    for h in range(2):
        fallback = near[h].quantile(quantile)
        for s in range(len(SEGMENTS)):
            mine = near[h][owner[h] == s]
            radii[h, s] = mine.quantile(quantile) if len(mine) >= 3 else fallback
    return radii
