"""Differentiable, batched hand models: one side (``HandLayer``) and the right/left pair (``HandModel``).

Both run MANO and OpenHand through the same code: smplx's linear blend skinning over MANO-layout arrays.
``hand_pose`` is the full articulation in axis-angle (zero is the model's rest pose, the flat hand). MANO
parameters that are stored relative to the mean pose (InterHand2.6M, smplx's ``flat_hand_mean=False``) need
``HandLayer.hands_mean`` added first; for OpenHand that mean is zero.
"""

from __future__ import annotations

import dataclasses

import torch
from smplx.lbs import lbs

from core_model.handmodel.data import HandModelData
from core_model.handmodel.keypoints import MANO21_TO_OURS

NUM_BETAS = 10


@dataclasses.dataclass
class HandOutput:
    """Posed hands. Leading dims ``...`` are the caller's (``[B, T]`` or ``[B, T, 2]`` for a pair).

    vertices: [..., V, 3] metres; keypoints: [..., 21, 3] metres, our keypoint order (DESIGN section 3);
    joints: [..., 16, 3] metres, MANO's skeleton joints after posing.
    """

    vertices: torch.Tensor
    keypoints: torch.Tensor
    joints: torch.Tensor


def _check_last_dim(name: str, tensor: torch.Tensor, size: int) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(tensor).__name__}")
    if tensor.ndim == 0 or tensor.shape[-1] != size:
        raise ValueError(f"{name}: expected shape [..., {size}], got {tuple(tensor.shape)}")


class HandLayer(torch.nn.Module):
    """One side of a hand model as a torch module; arrays live in buffers so ``.to(device)`` moves them."""

    def __init__(self, data: HandModelData) -> None:
        super().__init__()
        self.data = data
        self.side = data.side
        self.name = data.name
        num_verts = data.num_vertices

        def buffer(name: str, array, dtype=torch.float32) -> None:
            self.register_buffer(name, torch.as_tensor(array, dtype=dtype).clone(), persistent=False)

        buffer("v_template", data.v_template)
        buffer("shapedirs", data.shapedirs[:, :, :NUM_BETAS])
        buffer("posedirs", data.posedirs.reshape(num_verts * 3, -1).T)
        buffer("J_regressor", data.J_regressor)
        buffer("lbs_weights", data.weights)
        buffer("hands_mean", data.hands_mean)
        buffer("hands_components", data.hands_components)
        parents = torch.as_tensor(data.kintree_table[0].astype("int64") % 4294967296)
        parents[0] = -1
        buffer("parents", parents, torch.long)
        buffer("fingertip_ids", data.fingertip_ids, torch.long)
        buffer("faces", data.faces, torch.long)
        buffer("closed_faces", data.closed_faces, torch.long)

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    def forward(self, betas: torch.Tensor, global_orient: torch.Tensor, hand_pose: torch.Tensor,
                transl: torch.Tensor | None = None) -> HandOutput:
        """betas [..., 10], global_orient [..., 3], hand_pose [..., 45] axis-angle, transl [..., 3] metres."""
        _check_last_dim("betas", betas, NUM_BETAS)
        _check_last_dim("global_orient", global_orient, 3)
        _check_last_dim("hand_pose", hand_pose, 45)
        if transl is None:
            transl = global_orient.new_zeros(global_orient.shape)
        _check_last_dim("transl", transl, 3)
        lead = torch.broadcast_shapes(betas.shape[:-1], global_orient.shape[:-1], hand_pose.shape[:-1],
                                      transl.shape[:-1])
        flat = int(torch.Size(lead).numel())

        def rows(t: torch.Tensor) -> torch.Tensor:
            return t.to(self.v_template.dtype).expand(*lead, t.shape[-1]).reshape(flat, t.shape[-1])

        pose = torch.cat([rows(global_orient), rows(hand_pose)], dim=-1)
        vertices, joints = lbs(rows(betas), pose, self.v_template, self.shapedirs, self.posedirs,
                               self.J_regressor, self.parents, self.lbs_weights)
        offset = rows(transl)[:, None, :]
        vertices, joints = vertices + offset, joints + offset
        mano21 = torch.cat([joints, vertices[:, self.fingertip_ids]], dim=1)
        keypoints = mano21[:, list(MANO21_TO_OURS)]
        return HandOutput(
            vertices=vertices.reshape(*lead, -1, 3),
            keypoints=keypoints.reshape(*lead, 21, 3),
            joints=joints.reshape(*lead, 16, 3),
        )


class HandModel(torch.nn.Module):
    """The right/left pair. Parameters carry a hand axis before the last: ``[..., 2, D]``, 0 = right, 1 = left."""

    def __init__(self, right: HandModelData, left: HandModelData) -> None:
        super().__init__()
        if (right.side, left.side) != ("right", "left"):
            raise ValueError(f"expected a right and a left model, got {right.side!r} and {left.side!r}")
        if right.num_vertices != left.num_vertices:
            raise ValueError("right and left models must have the same vertex count")
        self.right = HandLayer(right)
        self.left = HandLayer(left)
        self.name = right.name
        self.meta = dict(right.meta)

    @property
    def num_vertices(self) -> int:
        return self.right.num_vertices

    @property
    def sides(self) -> tuple[HandLayer, HandLayer]:
        return self.right, self.left

    @property
    def fingertip_ids(self) -> torch.Tensor:
        return self.right.fingertip_ids

    def forward(self, betas: torch.Tensor, global_orient: torch.Tensor, hand_pose: torch.Tensor,
                transl: torch.Tensor | None = None) -> HandOutput:
        for name, t in (("betas", betas), ("global_orient", global_orient), ("hand_pose", hand_pose),
                        ("transl", transl)):
            if t is not None and (t.ndim < 2 or t.shape[-2] != 2):
                raise ValueError(f"{name}: expected a hand axis of size 2 at dim -2, got {tuple(t.shape)}")
        outputs = [
            layer(betas[..., h, :], global_orient[..., h, :], hand_pose[..., h, :],
                  None if transl is None else transl[..., h, :])
            for h, layer in enumerate(self.sides)
        ]
        return HandOutput(*(torch.stack([getattr(o, f.name) for o in outputs], dim=-3)
                            for f in dataclasses.fields(HandOutput)))
