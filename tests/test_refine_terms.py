"""Refinement terms: gradients against finite differences (float64 gradcheck), kinematics against the hand model,
and the camera bridge from the network's weak perspective."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core_model.refine import terms
from core_model.refine.camera import default_intrinsics, fit_weak_perspective, project, roots_from_weak_perspective
from core_model.refine.kinematics import HandSkeleton, rotmats_of

D = torch.float64


def _rand(*shape, scale=1.0):
    return (scale * torch.randn(*shape, dtype=D)).requires_grad_(True)


@pytest.mark.parametrize("kind", ["huber", "geman-mcclure", "l2"])
def test_reprojection_gradient(kind):
    torch.manual_seed(0)
    pred = _rand(1, 2, 2, 21, 2, scale=10)
    det = torch.randn(1, 2, 2, 21, 2, dtype=D) * 10
    weight = torch.rand(1, 2, 2, 21, dtype=D)
    scale = torch.full((1, 2, 2), 100.0, dtype=D)
    assert torch.autograd.gradcheck(lambda p: terms.reprojection(p, det, weight, scale, kind, 0.1, 2), (pred,))


def test_robust_kernels_agree_near_zero_and_bound_far_residuals():
    small = torch.tensor([1e-2], dtype=D)
    for kind in ("huber", "geman-mcclure"):
        assert torch.allclose(terms.robust(small, kind), 0.5 * small, rtol=2e-2)
    far = torch.tensor([1e4], dtype=D)
    assert terms.robust(far, "geman-mcclure") < 0.5                          # saturates
    assert terms.robust(far, "huber") == pytest.approx(100 - 0.5)            # grows linearly, not quadratically


def test_smoothness_and_acceleration_gradients():
    torch.manual_seed(1)
    kp = _rand(1, 4, 2, 3, 3, scale=0.05)
    link = torch.tensor([[[1.0, 1.0], [0.0, 1.0], [1.0, 0.0]]], dtype=D)
    assert torch.autograd.gradcheck(lambda k: terms.smoothness(k, link, 4), (kp,))
    assert torch.autograd.gradcheck(lambda k: terms.acceleration(k, link, 4), (kp,))


def test_smoothness_is_the_papers_eq5():
    kp = torch.zeros(1, 3, 2, 1, 3, dtype=D)
    kp[0, 1, 0, 0, 0] = 0.03
    kp[0, 2, 0, 0, 0] = 0.03
    link = torch.ones(1, 2, 2, dtype=D)
    assert terms.smoothness(kp, link, 1).item() == pytest.approx(0.03, abs=2e-4)  # 1e-9 m^2 smoothing
    link[0, 0, 0] = 0.0                          # a gap between frames 0 and 1 of the right hand
    assert terms.smoothness(kp, link, 1).item() == pytest.approx(0.0, abs=1e-3)


def test_interpenetration_gradient_and_saturation():
    torch.manual_seed(2)
    points, partners = _rand(5, 3, scale=0.01), _rand(5, 3, scale=0.01)
    assert torch.autograd.gradcheck(lambda a, b: terms.interpenetration(a, b, 0.02, 2), (points, partners))
    deep = terms.interpenetration(torch.tensor([[1.0, 0, 0]], dtype=D), torch.zeros(1, 3, dtype=D), 0.02, 1)
    assert deep.item() == pytest.approx(0.02, rel=1e-6)   # l_alpha saturates at alpha


def test_prior_and_joint_limit_gradients():
    torch.manual_seed(3)
    value, target = _rand(2, 2, 45, scale=0.3), torch.randn(2, 2, 45, dtype=D) * 0.3
    weight = torch.rand(2, 2, 1, dtype=D)
    assert torch.autograd.gradcheck(lambda v: terms.prior(v, target, weight, 2), (value,))
    axes = torch.linalg.qr(torch.randn(2, 15, 3, 3, dtype=D)).Q.transpose(-1, -2)
    low, high = -torch.full((2, 15, 3), 0.2, dtype=D), torch.full((2, 15, 3), 0.4, dtype=D)
    pose = _rand(2, 2, 45, scale=0.5)
    assert torch.autograd.gradcheck(
        lambda p: terms.joint_limits(p, axes, low, high, torch.ones(2, 2, dtype=D), 2), (pose,))


def test_joint_limits_are_zero_inside_and_positive_outside(openhand):
    from core_model.handmodel.poses import NAMED_POSES, pose_of, rest_frames
    from core_model.refine.fit import Refiner

    refiner = Refiner(openhand)
    fist = torch.stack([pose_of(openhand.right, NAMED_POSES["fist"]), pose_of(openhand.left, NAMED_POSES["fist"])])
    low, high = refiner.limits[..., 0], refiner.limits[..., 1]
    inside = terms.joint_limits(fist, refiner.axes, low, high, torch.ones(2), 1)
    assert inside.item() < 1e-3
    bent_back = fist.clone()
    frames = rest_frames(openhand.right)
    bent_back[0, 3:6] = -1.5 * frames[3, 0]        # index PIP flexed 86 degrees backwards
    assert terms.joint_limits(bent_back, refiner.axes, low, high, torch.ones(2), 1).item() > 1.0


def test_projection_gradient():
    K = torch.tensor(default_intrinsics(640, 480), dtype=D)
    points = (torch.randn(7, 3, dtype=D) * 0.05 + torch.tensor([0, 0, 0.6], dtype=D)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: project(p, K), (points,))


def test_skeleton_matches_the_hand_model_and_puts_the_wrist_on_the_root(openhand):
    torch.manual_seed(4)
    skeleton = HandSkeleton(openhand)
    b, g, p, r = torch.randn(3, 2, 10), torch.randn(3, 2, 3), 0.4 * torch.randn(3, 2, 45), torch.randn(3, 2, 3)
    kp = skeleton(b, rotmats_of(g, p), r)
    ref = openhand(b, g, p, skeleton.transl(b, r))
    assert torch.allclose(kp, ref.keypoints, atol=1e-5)
    assert torch.allclose(kp[..., 0, :], r, atol=1e-6)
    posed = skeleton.pose(b, rotmats_of(g, p), r)
    frame, hand, vertex = torch.tensor([0, 2, 1]), torch.tensor([1, 0, 1]), torch.tensor([3, 500, 1000])
    chosen = skeleton.vertices_at(b, posed, skeleton.vertex_set((frame,), hand, vertex, torch.float32))
    assert torch.allclose(chosen, ref.vertices[frame, hand, vertex], atol=1e-5)


def test_skeleton_gradient_float64(openhand):
    skeleton = HandSkeleton(openhand).to(D)
    torch.manual_seed(5)
    b, g, p = torch.randn(1, 2, 10, dtype=D), _rand(1, 2, 3, scale=0.5), _rand(1, 2, 45, scale=0.3)
    r = torch.zeros(1, 2, 3, dtype=D)
    assert torch.autograd.gradcheck(lambda g_, p_: skeleton(b, rotmats_of(g_, p_), r)[..., :8, :], (g, p),
                                    atol=1e-5)


def test_weak_perspective_bridge_recovers_the_wrist():
    K = default_intrinsics(640, 480)
    rng = np.random.default_rng(0)
    local = rng.normal(0, 0.03, (21, 3))
    local[0] = 0
    local[:, 2] *= 0.01                       # a nearly flat hand: weak perspective is then exact
    root = np.array([0.05, -0.02, 0.7])
    px = project(torch.as_tensor(local + root), torch.as_tensor(K)).numpy()
    a, b = fit_weak_perspective(local, px)
    assert np.allclose(roots_from_weak_perspective(a, b, K), root, atol=2e-3)


def test_stored_network_camera_matches_the_camera_fitted_to_its_projection():
    """A result file since schema 3 stores the network's camera; refinement reads it in frame pixels, and it is
    the camera that an older file's keypoints and projection give back (what refinement fitted before)."""
    from core_model.network.decoder import weak_perspective_project
    from core_model.refine.arrays import network_camera

    rng = np.random.default_rng(3)
    n = 6
    keypoints = rng.normal(scale=0.04, size=(n, 2, 21, 3))
    camera = np.concatenate([rng.uniform(3, 8, (n, 2, 1)), rng.uniform(-0.5, 0.5, (n, 2, 2))], -1)
    bbox = np.concatenate([rng.uniform(0, 300, (n, 2)), np.repeat(rng.uniform(100, 400, (n, 1)), 2, 1)], -1)
    uv = weak_perspective_project(torch.from_numpy(keypoints - keypoints[:, :, :1]), torch.from_numpy(camera))
    box = bbox[:, None, None]
    pixels = box[..., :2] + (uv.numpy() + 1) / 2 * box[..., 2:3]
    arrays = {"keypoints": keypoints, "keypoints2d": pixels, "camera": camera, "bbox": bbox}
    frames = np.arange(1, n)
    a, b = network_camera(arrays, frames)
    fitted_a, fitted_b = network_camera({k: v for k, v in arrays.items() if k != "camera"}, frames)
    np.testing.assert_allclose(a, fitted_a, rtol=1e-9)
    np.testing.assert_allclose(b, fitted_b, atol=1e-7)
    np.testing.assert_allclose(b, pixels[frames, :, 0], atol=1e-9)  # the wrist lands at b
