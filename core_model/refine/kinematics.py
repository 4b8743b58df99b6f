"""Keypoints (and any chosen vertices) of a hand model without skinning the whole mesh.

Why: the reprojection, smoothness, prior and limit terms need only the 21 keypoints, and the interpenetration
term only the vertices near the contact; skinning all V vertices every step costs far more. The 16 skeleton
joints come from forward kinematics (one tree level at a time, batched over frames and hands) and vertices are
skinned on their own with the same linear blend skinning as smplx. Results equal
:class:`core_model.handmodel.layer.HandModel`'s (tested).
"""

from __future__ import annotations

import dataclasses

import roma
import torch
from torch import nn

from core_model.handmodel.keypoints import MANO21_TO_OURS
from core_model.handmodel.layer import HandModel


@dataclasses.dataclass
class Posed:
    """World rotations R [..., 2, 16, 3, 3] and positions P [..., 2, 16, 3] of the joints, the shaped rest joints
    J [..., 2, 16, 3], and pose_feature [..., 2, 135] (rotations minus identity, for pose blend shapes)."""

    R: torch.Tensor
    P: torch.Tensor
    J: torch.Tensor
    feature: torch.Tensor


@dataclasses.dataclass
class VertexSet:
    """K chosen vertices: ``at`` indexes per-hand tensors ``[..., 2, ...]`` (frame indices, then the hand), and
    the model arrays of those vertices: template [K, 3], shapedirs [K, 3, 10], posedirs [K, 3, 135], weights
    [K, 16]."""

    at: tuple[torch.Tensor, ...]
    template: torch.Tensor
    shapedirs: torch.Tensor
    posedirs: torch.Tensor
    weights: torch.Tensor


@dataclasses.dataclass
class Surface:
    """K chosen vertices of both hands: template [2, K, 3], shapedirs [2, K, 3, 10], posedirs [2, K, 3, 135],
    weights [2, K, 16]."""

    template: torch.Tensor
    shapedirs: torch.Tensor
    posedirs: torch.Tensor
    weights: torch.Tensor


class HandSkeleton(nn.Module):
    """Both sides of a hand model: ``betas [..., 2, 10]``, rotations and wrist positions ``roots [..., 2, 3]``.

    The wrist (keypoint 0) lands exactly on ``root``; the hand model's ``transl`` is :meth:`transl`.
    """

    def __init__(self, model: HandModel) -> None:
        super().__init__()
        parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("jt", "js", "vt", "vs", "vp", "vw", "tips")}
        for layer in model.sides:
            V = layer.num_vertices
            parts["jt"].append(layer.J_regressor @ layer.v_template)                         # [16, 3]
            parts["js"].append(torch.einsum("jv,vcb->jcb", layer.J_regressor, layer.shapedirs))
            parts["vt"].append(layer.v_template)                                             # [V, 3]
            parts["vs"].append(layer.shapedirs)                                              # [V, 3, 10]
            parts["vp"].append(layer.posedirs.T.reshape(V, 3, -1))                           # [V, 3, 135]
            parts["vw"].append(layer.lbs_weights)                                            # [V, 16]
            parts["tips"].append(layer.fingertip_ids)
        for name, stack in parts.items():
            self.register_buffer(name, torch.stack(stack), persistent=False)                # hand axis first
        self.parents = model.right.parents.tolist()
        depth = [0] * len(self.parents)
        for j in range(1, len(self.parents)):
            depth[j] = depth[self.parents[j]] + 1
        self.levels = [[j for j in range(len(self.parents)) if depth[j] == d] for d in range(1, max(depth) + 1)]
        self.register_buffer("order", torch.tensor(MANO21_TO_OURS), persistent=False)
        self.register_buffer("hand_of_tip", torch.arange(2)[:, None].expand(2, 5).clone(), persistent=False)

    def rest_joints(self, betas: torch.Tensor) -> torch.Tensor:
        """[..., 2, 16, 3] skeleton joints of the shaped rest hand (no pose, no translation)."""
        return self.jt.to(betas) + torch.einsum("hjcb,...hb->...hjc", self.js.to(betas), betas)

    def transl(self, betas: torch.Tensor, roots: torch.Tensor) -> torch.Tensor:
        """The hand model's ``transl`` [..., 2, 3] that puts each wrist at ``roots``."""
        return roots - self.rest_joints(betas)[..., 0, :]

    def pose(self, betas: torch.Tensor, rotmats: torch.Tensor, roots: torch.Tensor) -> Posed:
        """Forward kinematics; rotmats [..., 2, 16, 3, 3] (global orientation first)."""
        J = self.rest_joints(betas)
        world_r: list[torch.Tensor] = [rotmats[..., 0, :, :]] * 16
        world_p: list[torch.Tensor] = [roots] * 16
        for level in self.levels:
            par = [self.parents[j] for j in level]
            pr = torch.stack([world_r[p] for p in par], dim=-3)                              # [..., L, 3, 3]
            pp = torch.stack([world_p[p] for p in par], dim=-2)
            bone = J[..., level, :] - J[..., par, :]
            rot = pr @ rotmats[..., level, :, :]
            pos = pp + (pr @ bone[..., None])[..., 0]
            for k, j in enumerate(level):
                world_r[j], world_p[j] = rot[..., k, :, :], pos[..., k, :]
        eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
        return Posed(torch.stack(world_r, dim=-3), torch.stack(world_p, dim=-2), J,
                     (rotmats[..., 1:, :, :] - eye).flatten(-3))

    @staticmethod
    def _affine(posed: Posed) -> tuple[torch.Tensor, torch.Tensor]:
        """Per joint the skinning transform ``v -> R v + (P - R J)``: rotations and offsets."""
        return posed.R, posed.P - (posed.R @ posed.J[..., None])[..., 0]

    def keypoints(self, betas: torch.Tensor, posed: Posed) -> torch.Tensor:
        """[..., 2, 21, 3] in our keypoint order (wrist at the root)."""
        dt = betas.dtype
        hands, tips = self.hand_of_tip, self.tips
        rest = (self.vt.to(dt)[hands, tips]
                + torch.einsum("htcb,...hb->...htc", self.vs.to(dt)[hands, tips], betas)
                + torch.einsum("htcp,...hp->...htc", self.vp.to(dt)[hands, tips], posed.feature))  # [..., 2, 5, 3]
        R, t = self._affine(posed)
        w = self.vw.to(dt)[hands, tips]                                                        # [2, 5, 16]
        Rb = torch.einsum("htk,...hkij->...htij", w, R)
        tb = torch.einsum("htk,...hki->...hti", w, t)
        moved = (Rb @ rest[..., None])[..., 0] + tb
        return torch.cat([posed.P, moved], dim=-2)[..., self.order, :]

    def surface(self, index: torch.Tensor, dtype: torch.dtype) -> Surface:
        """Gather once what skinning the vertices ``index`` [K] of both hands needs (:meth:`vertices`)."""
        return Surface(self.vt.to(dtype)[:, index], self.vs.to(dtype)[:, index], self.vp.to(dtype)[:, index],
                       self.vw.to(dtype)[:, index])

    def vertices(self, betas: torch.Tensor, posed: Posed, surface: Surface) -> torch.Tensor:
        """The ``surface`` vertices of both hands, posed on every frame: [..., 2, K, 3]. Dense, unlike
        :meth:`vertices_at`: the same vertices on every frame need no gathers (whose backward, an indexed
        accumulate, cost 7x the rest of the objective for 16,000 vertices on the CPU)."""
        rest = (surface.template + torch.einsum("hkcb,...hb->...hkc", surface.shapedirs, betas)
                + torch.einsum("hkcp,...hp->...hkc", surface.posedirs, posed.feature))            # [..., 2, K, 3]
        R, t = self._affine(posed)
        Rb = torch.einsum("hkj,...hjab->...hkab", surface.weights, R)
        tb = torch.einsum("hkj,...hja->...hka", surface.weights, t)
        return (Rb @ rest[..., None])[..., 0] + tb

    def vertex_set(self, index: tuple[torch.Tensor, ...], hand: torch.Tensor, vertex: torch.Tensor,
                   dtype: torch.dtype) -> VertexSet:
        """Gather once what skinning the vertices ``vertex`` of hands ``hand`` at frames ``index`` needs."""
        return VertexSet(index + (hand,), self.vt.to(dtype)[hand, vertex], self.vs.to(dtype)[hand, vertex],
                         self.vp.to(dtype)[hand, vertex], self.vw.to(dtype)[hand, vertex])

    def vertices_at(self, betas: torch.Tensor, posed: Posed, chosen: VertexSet) -> torch.Tensor:
        """The chosen vertices [K, 3] (see :meth:`vertex_set`), posed."""
        at = chosen.at
        rest = (chosen.template + (chosen.shapedirs @ betas[at][..., None])[..., 0]
                + (chosen.posedirs @ posed.feature[at][..., None])[..., 0])                     # [K, 3]
        R, t = self._affine(posed)
        Rb = torch.einsum("kj,kjab->kab", chosen.weights, R[at])
        tb = torch.einsum("kj,kja->ka", chosen.weights, t[at])
        return (Rb @ rest[..., None])[..., 0] + tb

    def forward(self, betas: torch.Tensor, rotmats: torch.Tensor, roots: torch.Tensor) -> torch.Tensor:
        """Keypoints [..., 2, 21, 3]."""
        return self.keypoints(betas, self.pose(betas, rotmats, roots))


def rotmats_of(global_orient: torch.Tensor, hand_pose: torch.Tensor) -> torch.Tensor:
    """[..., 3] and [..., 45] axis-angle -> [..., 16, 3, 3] rotation matrices (global first)."""
    rotvecs = torch.cat([global_orient[..., None, :], hand_pose.unflatten(-1, (15, 3))], dim=-2)
    return roma.rotvec_to_rotmat(rotvecs)
