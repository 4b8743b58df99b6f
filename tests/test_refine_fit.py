"""Refinement end to end on small synthetic scenes: a known 3D offset is recovered from exact 2D landmarks, and a
wrong detection (swapped hands, one blob) leaves the hands where the prediction put them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from core_model.handmodel.poses import NAMED_POSES, pose_of
from core_model.refine import RefineConfig, RefineInput, Refiner
from core_model.refine.arrays import REFITTED_ARRAYS, refine_result_arrays
from core_model.refine.camera import default_intrinsics, project
from core_model.refine.gating import ABSENT, BLOB, SWAPPED, USED

T = 8
K = default_intrinsics(640, 480)


@pytest.fixture(scope="module")
def scene(openhand):
    """Two hands 12 cm apart, 50 cm from the camera, drifting slowly; exact landmarks."""
    from core_model.refine.kinematics import HandSkeleton, rotmats_of

    pose = torch.stack([pose_of(openhand.right, NAMED_POSES["relaxed"]), pose_of(openhand.left, NAMED_POSES["grasp"])])
    t = torch.linspace(0, 1, T)[:, None, None]
    roots = torch.tensor([[-0.06, 0.0, 0.5], [0.06, 0.01, 0.52]]) + t * torch.tensor([0.02, -0.01, 0.0])
    gt = {"betas": torch.zeros(T, 2, 10), "global_orient": torch.tensor([[0.3, 0.2, 0.1], [0.2, -0.3, -0.1]])
          .expand(T, 2, 3).clone(), "hand_pose": pose.expand(T, 2, 45).clone(), "roots": roots}
    skeleton = HandSkeleton(openhand)
    kp = skeleton(gt["betas"], rotmats_of(gt["global_orient"], gt["hand_pose"]), roots)
    gt["keypoints"] = kp
    gt["px"] = project(kp, torch.as_tensor(K, dtype=torch.float32))
    return gt


def make_input(gt, det=None, roots=None, score=None) -> RefineInput:
    det = gt["px"].clone() if det is None else det
    roots = gt["roots"] if roots is None else roots
    return RefineInput(betas=gt["betas"][None], global_orient=gt["global_orient"][None],
                       hand_pose=gt["hand_pose"][None], roots=roots[None],
                       rel_transl=(roots[:, 1] - roots[:, 0])[None], det_keypoints2d=det[None],
                       det_score=torch.full((1, T, 2), 0.95) if score is None else score[None],
                       K=torch.as_tensor(K, dtype=torch.float32).expand(1, T, 3, 3),
                       scale_px=torch.full((1, T), 300.0), valid=torch.ones(1, T, 2, dtype=torch.bool),
                       link=torch.ones(1, T - 1, dtype=torch.bool))


def test_known_3d_offset_is_recovered_from_exact_landmarks(openhand, scene):
    offset = torch.tensor([0.02, -0.015, 0.04])
    start = scene["roots"].clone()
    start[:, 1] += offset
    config = RefineConfig(steps=60, use_inter=False, w_rel=0.0, w_root_xy=0.0, w_root_z=0.0, lr_transl=0.004)
    result = Refiner(openhand, config).refine(make_input(scene, roots=start))
    error = (result.roots[0] - scene["roots"]).norm(dim=-1)
    assert float(error[:, 1].max()) < 0.004, error          # 4 cm of offset, back to within 4 mm
    assert float(error[:, 0].max()) < 0.002
    assert (result.gate == USED).all()


def test_gauss_newton_steps_recover_an_offset_and_jitter_where_as_many_lbfgs_iterations_do_not(openhand, scene):
    """Exact landmarks; the left hand's start 4 cm off and jittered by a centimetre from frame to frame, which
    the stiff acceleration term holds together: five Gauss-Newton steps alone bring it back within 2 mm (measured:
    0.4 mm), five L-BFGS iterations leave it centimetres off (21 mm)."""
    start = scene["roots"].clone()
    jitter = 0.01 * torch.randn(T, 3, generator=torch.Generator().manual_seed(0))
    start[:, 1] += torch.tensor([0.02, -0.015, 0.04]) + jitter
    base = RefineConfig(align_steps=0, steps=0, use_inter=False, w_rel=0.0, w_root_xy=0.0, w_root_z=0.0)
    gn = Refiner(openhand, dataclasses.replace(base, gn_steps=5)).refine(make_input(scene, roots=start))
    lbfgs = Refiner(openhand, dataclasses.replace(base, steps=5)).refine(make_input(scene, roots=start))

    def error(result) -> float:
        return float((result.roots[0, :, 1] - scene["roots"][:, 1]).norm(dim=-1).max())

    assert error(gn) < 0.002, error(gn)
    assert error(lbfgs) > 2 * error(gn), (error(lbfgs), error(gn))


def test_a_swapped_detection_leaves_the_frame_near_the_prediction(openhand, scene):
    det = scene["px"].clone()
    det[4] = det[4].flip(0)                                   # right and left swapped on frame 4
    refined = Refiner(openhand, RefineConfig(use_inter=False)).refine(make_input(scene, det=det))
    assert (refined.gate[0, 4] == SWAPPED).all()
    assert (refined.gate[0, [0, 1, 2, 3, 5, 6, 7]] == USED).all()
    moved = (refined.keypoints[0, 4] - scene["keypoints"][4]).norm(dim=-1).max()
    assert float(moved) < 0.003
    # The same frame without the checks is dragged towards the wrong hand: what the gating prevents.
    naive = Refiner(openhand, RefineConfig(use_inter=False, gate=False)).refine(make_input(scene, det=det))
    dragged = float((naive.keypoints[0, 4] - scene["keypoints"][4]).norm(dim=-1).max())
    assert dragged > 0.005 and dragged > 3 * float(moved)


def test_one_blob_for_two_hands_is_not_fitted(openhand, scene):
    det = scene["px"].clone()
    det[5, 1] = det[5, 0] + 2.0                               # both slots on the right hand
    refined = Refiner(openhand, RefineConfig(use_inter=False)).refine(make_input(scene, det=det))
    assert (refined.gate[0, 5] == BLOB).all()
    assert float((refined.keypoints[0, 5] - scene["keypoints"][5]).norm(dim=-1).max()) < 0.003


def test_a_frame_without_landmarks_is_carried_by_its_neighbours(openhand, scene):
    det = scene["px"].clone()
    det[3] = torch.nan
    start = scene["roots"].clone()
    start[3] += torch.tensor([0.0, 0.012, 0.0])              # the network jittered on that frame
    refined = Refiner(openhand, RefineConfig(use_inter=False)).refine(make_input(scene, det=det, roots=start))
    before = (start[3] - scene["roots"][3]).norm(dim=-1).max()
    after = (refined.roots[0, 3] - scene["roots"][3]).norm(dim=-1).max()
    assert float(after) < 0.5 * float(before)


def test_config_rejects_unknown_kernel():
    with pytest.raises(ValueError, match="robust"):
        RefineConfig(robust="cauchy")


def test_result_arrays_round_trip(openhand, scene):
    """A result file's arrays (right wrist at the origin, weak-perspective projection) in, refined_* out."""
    n = T + 2
    right = scene["roots"][:, 0]
    kp = (scene["keypoints"] - right[:, None, None]).numpy()
    arrays = {"betas": np.zeros((n, 2, 10), np.float32), "global_orient": np.full((n, 2, 3), np.nan, np.float32),
              "hand_pose": np.full((n, 2, 45), np.nan, np.float32), "keypoints": np.full((n, 2, 21, 3), np.nan),
              "keypoints2d": np.full((n, 2, 21, 2), np.nan), "bbox": np.full((n, 4), np.nan),
              "valid": np.zeros((n, 2), bool), "det_keypoints2d": np.full((n, 2, 21, 2), np.nan, np.float32),
              "det_score": np.full((n, 2), np.nan, np.float32)}
    f = np.arange(1, T + 1)                                   # frames 0 and n-1 have no reconstruction
    arrays["global_orient"][f], arrays["hand_pose"][f] = scene["global_orient"], scene["hand_pose"]
    arrays["keypoints"][f] = kp
    # The network's weak perspective: scale f/z at each wrist.
    z = scene["roots"][:, :, 2].numpy()
    wrist_px = scene["px"][:, :, 0].numpy()
    arrays["keypoints2d"][f] = (K[0, 0] / z)[..., None, None] * (kp - kp[:, :, :1])[..., :2] + wrist_px[:, :, None]
    arrays["bbox"][f] = [100, 50, 300, 300]
    arrays["valid"][f] = True
    arrays["det_keypoints2d"][f], arrays["det_score"][f] = scene["px"].numpy(), 0.9
    out, result = refine_result_arrays(arrays, Refiner(openhand, dataclasses.replace(RefineConfig(), steps=10)),
                                       K=K)
    assert set(out) == {f"refined_{k}" for k in REFITTED_ARRAYS} | {"refined_gate"}
    assert out["refined_vertices"].shape == (n, 2, openhand.num_vertices, 3)
    assert np.isnan(out["refined_keypoints"][[0, -1]]).all() and not out["refined_inside"][[0, -1]].any()
    assert np.isnan(out["refined_depth"][[0, -1]]).all() and (out["refined_gate"][[0, -1]] == ABSENT).all()
    assert np.allclose(out["refined_keypoints"][f][:, 0, 0], 0, atol=1e-6)   # right wrist at the origin
    err = np.linalg.norm(out["refined_keypoints2d"][f] - scene["px"].numpy(), axis=-1)
    assert np.median(err) < 3.0                                              # pixels, on 640 x 480
    assert result.seconds > 0
