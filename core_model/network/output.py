"""What STCNet returns: shapes and units in one place (DESIGN section 5)."""

from __future__ import annotations

import dataclasses

import torch

from core_model.network.decoder import DecodedParameters


@dataclasses.dataclass
class STCNetOutput:
    """One window. Tensors are ``[B, T, 2, ...]`` with hand 0 = right, 1 = left; metres; camera axes (OpenCV:
    x right, y down, z forward); the right wrist (keypoint 0) is the origin.

    betas: [B, T, 2, 10] shape coefficients.
    global_orient: [B, T, 2, 3] axis-angle radians.
    hand_pose: [B, T, 2, 45] axis-angle radians, 15 joints in the hand model's order.
    rotmats: [B, T, 2, 16, 3, 3] the same rotations as matrices (global first), as the network made them.
    transl: [B, T, 2, 3] the hand model's ``transl`` that reproduces ``vertices`` from the parameters above.
    vertices: [B, T, 2, V, 3]; V is the hand model's (778 for MANO).
    keypoints: [B, T, 2, 21, 3] in DESIGN section 3's order (0 wrist, 1-4 thumb, ... 17-20 pinky).
    joints: [B, T, 2, 16, 3] the hand model's skeleton joints.
    rel_transl: [B, T, 3] left wrist minus right wrist as used for placing the left hand: the prediction, or the
        ground truth when one was passed to forward (the paper's setting).
    rel_transl_pred: [B, T, 3] the network's prediction (what a translation loss supervises).
    camera: [B, T, 2, 3] weak perspective per hand (scale in 1/metres, tx, ty), applied to that hand's
        wrist-relative points; see ``weak_perspective_project``.
    keypoints2d: [B, T, 2, 21, 2] keypoints projected with ``camera``, normalised crop coordinates in [-1, 1].
    chirality_maps: [B, T, 2, H1, W1] the hand-chirality weight maps over the stride-32 feature grid, in (0, 1).
    mhsa_attention: [B, K, heads, 2T, 2T] MHSA weights of the K = 2 temporal blocks (tokens: right frames 0..T-1,
        then left frames; rows sum to 1), or None for the Baseline (no temporal encoder).
    mhca_attention: [B, K, 2, heads, T, T] MHCA weights (query hand, its frame -> global-feature frame), or None
        without MHCA.
    hand_model: the hand model's name (``MANO`` or ``OpenHand``).
    """

    betas: torch.Tensor
    global_orient: torch.Tensor
    hand_pose: torch.Tensor
    rotmats: torch.Tensor
    transl: torch.Tensor
    vertices: torch.Tensor
    keypoints: torch.Tensor
    joints: torch.Tensor
    rel_transl: torch.Tensor
    rel_transl_pred: torch.Tensor
    camera: torch.Tensor
    keypoints2d: torch.Tensor
    chirality_maps: torch.Tensor
    mhsa_attention: torch.Tensor | None
    mhca_attention: torch.Tensor | None
    hand_model: str

    def tensors(self) -> dict[str, torch.Tensor]:
        """The tensor fields by name (None fields left out)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if isinstance(getattr(self, f.name), torch.Tensor)}


@dataclasses.dataclass
class WindowDecoding:
    """A window's decoding before the hand model: ``STCNet.decode_window``'s result.

    params: the hand-model parameters per frame ([B, T, 2, ...]); mhsa / mhca: the window's attention maps as in
    :class:`STCNetOutput` (float32), or None where the model has no such block.
    """

    params: DecodedParameters
    mhsa: torch.Tensor | None
    mhca: torch.Tensor | None
