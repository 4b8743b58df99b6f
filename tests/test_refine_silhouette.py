"""The refinement's silhouette terms: gradients checked, and a hand without landmarks held on its mask."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from core_model.handmodel.poses import NAMED_POSES, pose_of
from core_model.refine import RefineConfig, RefineInput, Refiner, terms
from core_model.refine.arrays import silhouette_inputs
from core_model.refine.camera import default_intrinsics, project
from core_model.refine.kinematics import HandSkeleton, rotmats_of

T, M = 6, 80
K = default_intrinsics(640, 480)


def test_silhouette_terms_have_the_gradients_of_their_values():
    torch.manual_seed(0)
    D = torch.float64
    crop = torch.tensor([[[100.0, 80.0, 200.0]]], dtype=D).expand(1, 2, 3)
    outside = torch.rand(1, 2, 16, 16, dtype=D) * 0.2
    points = (torch.rand(1, 2, 5, 2, dtype=D) * 180 + 110).requires_grad_(True)
    weight = torch.ones(1, 2, 5, dtype=D)
    assert torch.autograd.gradcheck(
        lambda p: terms.silhouette_inside(p, outside, crop, weight, 0.02, 2), (points,))
    cover = torch.rand(1, 2, 7, 2, dtype=D) * 200 + 100
    assert torch.autograd.gradcheck(
        lambda p: terms.silhouette_cover(p, cover, torch.ones(1, 2, 7, dtype=D), crop, 0.02, 2), (points,))


@pytest.fixture(scope="module")
def scene(openhand):
    """Two hands side by side 50 cm away, still; their exact masks over a square crop around both."""
    pose = torch.stack([pose_of(side, NAMED_POSES["relaxed"]) for side in (openhand.right, openhand.left)])
    roots = torch.tensor([[-0.07, 0.0, 0.5], [0.07, 0.0, 0.5]]).expand(T, 2, 3).clone()
    orient = torch.tensor([[0.0, 0.0, 0.3], [0.0, 0.0, -0.3]]).expand(T, 2, 3).clone()
    betas = torch.zeros(T, 2, 10)
    skeleton = HandSkeleton(openhand)
    Kt = torch.as_tensor(K, dtype=torch.float32)
    keypoints = skeleton(betas, rotmats_of(orient, pose.expand(T, 2, 45)), roots)
    vertices = openhand(betas, orient, pose.expand(T, 2, 45), skeleton.transl(betas, roots)).vertices
    px = project(keypoints, Kt)
    vpx = project(vertices, Kt).numpy()
    lo, hi = vpx.reshape(-1, 2).min(0), vpx.reshape(-1, 2).max(0)
    side = float((hi - lo).max() * 1.3)
    centre = (lo + hi) / 2
    bbox = np.tile([centre[0] - side / 2, centre[1] - side / 2, side, side], (T, 1))
    masks = np.zeros((T, M, M), np.int8)
    faces = (openhand.right.data.faces, openhand.left.data.faces)
    for t in range(T):
        for h in range(2):
            grid = (vpx[t, h] - bbox[t, :2]) / side * M * 16           # 4 fractional bits for fillPoly
            for face in faces[h]:
                cv2.fillPoly(masks[t], [grid[face].round().astype(np.int32)], h + 1, shift=4)
    return {"pose": pose, "roots": roots, "orient": orient, "betas": betas, "px": px, "bbox": bbox,
            "masks": masks}


def _input(scene, start_roots: torch.Tensor, masks: bool) -> RefineInput:
    det = scene["px"].clone()
    score = torch.full((T, 2), 0.95)
    det[:, 1], score[:, 1] = float("nan"), float("nan")                 # the left hand's landmarks are missing
    extra = {}
    if masks:
        arrays = {"masks": scene["masks"], "bbox": scene["bbox"]}
        extra = {k: torch.as_tensor(v)[None].float() for k, v in silhouette_inputs(arrays, np.arange(T)).items()}
    return RefineInput(betas=scene["betas"][None], global_orient=scene["orient"][None],
                       hand_pose=scene["pose"].expand(T, 2, 45)[None], roots=start_roots[None],
                       rel_transl=(start_roots[:, 1] - start_roots[:, 0])[None], det_keypoints2d=det[None],
                       det_score=score[None], K=torch.as_tensor(K, dtype=torch.float32).expand(1, T, 3, 3),
                       scale_px=torch.full((1, T), float(scene["bbox"][0, 2])),
                       valid=torch.ones(1, T, 2, dtype=torch.bool), link=torch.ones(1, T - 1, dtype=torch.bool),
                       **extra)


def test_a_hand_without_landmarks_is_held_on_its_mask(openhand, scene):
    """The left hand starts 3 cm off in the image plane and has no landmarks: without masks nothing but the prior
    holds it, and it stays where it started; with them it comes most of the way back onto its silhouette
    (measured: 45 -> 17 px median keypoint error on a 673 px crop at the default weights, 10 px at 2.5x them)."""
    start = scene["roots"].clone()
    start[:, 1] += torch.tensor([0.03, -0.02, 0.0])
    refiner = Refiner(openhand, RefineConfig(use_inter=False, use_capsules=False))
    with_masks = refiner.refine(_input(scene, start, masks=True))
    without = refiner.refine(_input(scene, start, masks=False))

    def left_error_px(result) -> float:
        return float((result.keypoints2d[0, :, 1] - scene["px"][:, 1]).norm(dim=-1).median())

    assert left_error_px(without) > 30, left_error_px(without)
    assert left_error_px(with_masks) < 0.45 * left_error_px(without), (left_error_px(with_masks),
                                                                        left_error_px(without))
    assert with_masks.losses["inside"][1] < with_masks.losses["inside"][0]
    right = (with_masks.keypoints2d[0, :, 0] - scene["px"][:, 0]).norm(dim=-1).median()
    assert float(right) < 3  # pixels: the hand with landmarks stays on them
