"""The MANO decoder's regression part: MLPs from each hand's temporal feature to shape, rotations (6D inside,
axis-angle out), a weak-perspective camera, and from both hands' features to the right-to-left translation."""

from __future__ import annotations

import dataclasses

import roma
import torch
from torch import nn

NUM_BETAS = 10
NUM_JOINTS = 16  # global orientation + 15 articulated joints (45 pose dofs)
CAMERA_SCALE = 8.0
"""Initial weak-perspective scale, 1/metres: a hand about 0.25 m across spans the crop's [-1, 1]."""
_IDENTITY_6D = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)  # the first two columns of I, row-major as roma's [3, 2] layout


@dataclasses.dataclass
class DecodedParameters:
    """Per frame and hand ([B, T, 2, ...], 0 = right, 1 = left) unless noted.

    betas: [..., 10]; rotmats: [..., 16, 3, 3] (global orientation first); global_orient: [..., 3] and hand_pose:
    [..., 45] axis-angle radians; camera: [..., 3] weak perspective (scale 1/m, tx, ty); rel_transl: [B, T, 3]
    metres, left wrist minus right wrist.
    """

    betas: torch.Tensor
    rotmats: torch.Tensor
    global_orient: torch.Tensor
    hand_pose: torch.Tensor
    camera: torch.Tensor
    rel_transl: torch.Tensor


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, out_dim))


class ManoRegressor(nn.Module):
    """One MLP per hand side (the sides' pose spaces are mirror images), one for the relative translation.

    The last layers start small with biases at the rest pose (identity rotations, mean shape, scale
    ``CAMERA_SCALE``), so training starts from plausible hands; small rather than zero keeps gradients flowing to
    every earlier layer.
    """

    per_hand = NUM_BETAS + 6 * NUM_JOINTS + 3

    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.hands = nn.ModuleList([_mlp(in_dim, hidden, self.per_hand) for _ in range(2)])
        self.translation = _mlp(2 * in_dim, hidden, 3)
        with torch.no_grad():
            for head in [*self.hands, self.translation]:
                last = head[-1]
                last.weight.mul_(0.01)
                last.bias.zero_()
            for head in self.hands:
                rot = head[-1].bias[NUM_BETAS:NUM_BETAS + 6 * NUM_JOINTS].view(NUM_JOINTS, 6)
                rot.copy_(torch.tensor(_IDENTITY_6D).expand(NUM_JOINTS, 6))

    def forward(self, features: torch.Tensor) -> DecodedParameters:
        """features: [B, T, 2, D] -> parameters."""
        raw = torch.stack([head(features[..., h, :]) for h, head in enumerate(self.hands)], dim=-2)
        rel_transl = self.translation(features.flatten(-2))
        # Rotations and everything after them in float32, also under mixed-precision autocast.
        with torch.autocast(raw.device.type, enabled=False):
            betas, rot6d, camera = raw.float().split([NUM_BETAS, 6 * NUM_JOINTS, 3], dim=-1)
            rotmats = roma.special_gramschmidt(rot6d.unflatten(-1, (NUM_JOINTS, 3, 2)))
            rotvecs = roma.rotmat_to_rotvec(rotmats)                                      # [B, T, 2, 16, 3]
            scale = CAMERA_SCALE * torch.exp(camera[..., :1])
            rel_transl = rel_transl.float()
        return DecodedParameters(betas=betas, rotmats=rotmats, global_orient=rotvecs[..., 0, :],
                                 hand_pose=rotvecs[..., 1:, :].flatten(-2), camera=torch.cat([scale, camera[..., 1:]],
                                                                                             dim=-1),
                                 rel_transl=rel_transl)


def weak_perspective_project(points: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
    """points [..., N, 3] metres (root-relative, camera axes) and camera [..., 3] (s, tx, ty) -> [..., N, 2]
    normalised crop coordinates, x right and y down, the crop spanning [-1, 1]: ``uv = s * xy + t``.
    Pixels in a crop of side S: ``(uv + 1) * S / 2``."""
    return camera[..., None, :1] * points[..., :2] + camera[..., None, 1:]
