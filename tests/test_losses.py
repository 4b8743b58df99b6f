"""Loss terms of eq. 5-10: values on known cases, switches, gradients and the penetration descent."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from core_model import losses
from core_model.geometry.interpenetration import HandMeshes, detect_interpenetration
from core_model.handmodel.poses import NAMED_POSES, pose_of
from core_model.handmodel.registry import load_hand_model
from core_model.metrics import mmpd


@pytest.fixture(scope="module")
def model():
    return load_hand_model("openhand")


def test_l_alpha():
    x = torch.tensor([0.0, 0.001, 0.02, 1.0])
    y = losses.l_alpha(x, 0.02)
    assert y[0] == 0 and y[1] == pytest.approx(0.001, rel=1e-3) and y[3] == pytest.approx(0.02, rel=1e-6)
    assert y[2] == pytest.approx(0.02 * torch.tanh(torch.tensor(1.0)).item())


def test_smooth_joint_mano_reg_on_known_values():
    kp = torch.zeros(2, 4, 2, 21, 3)
    assert losses.smooth_loss(kp) == 0
    moving = kp.clone()
    moving[:, :, :, :, 0] = torch.arange(4.0)[None, :, None, None] * 0.01   # 1 cm per frame, every joint
    assert losses.smooth_loss(moving) == pytest.approx(3 * 2 * 21 * 0.01)
    gt = kp + torch.tensor([0.0, 0.003, 0.004])                              # 5 mm off everywhere
    labelled = torch.tensor([[True, False, True, False], [True, True, True, True]])
    expected = ((2 * 2 * 21 * 0.005) / 4 + (4 * 2 * 21 * 0.005) / 4) / 2
    assert losses.joint_loss(kp, gt, labelled) == pytest.approx(expected)
    assert losses.joint_loss(kp, gt, torch.zeros(2, 4, dtype=torch.bool)) == 0
    betas = torch.zeros(2, 4, 2, 10)
    betas[:, :, 0, 0] = 1.0                                                   # right differs from left by 1
    assert losses.mano_loss(betas, None, lambda_consist=1.0) == pytest.approx(4.0)
    assert losses.mano_loss(betas, betas, use_consist=False) == 0
    assert losses.mano_loss(betas, torch.zeros_like(betas), labelled, use_consist=False) == pytest.approx((2 + 4) / 2)
    pose = torch.full((2, 4, 2, 45), 0.1)
    assert losses.reg_loss(pose, betas, lambda_beta=0.1) == pytest.approx(4 * 2 * 45 * 0.01 + 0.1 * 4)


def test_total_loss_defaults_switches_and_missing_inputs(model):
    config = losses.LossConfig()
    assert (config.lambda_joint, config.lambda_inter, config.lambda_mano, config.lambda_reg,
            config.lambda_consist, config.lambda_beta, config.alpha) == (100, 10, 1, 0.1, 1, 0.1, 0.02)
    B, T = 1, 3
    kp = torch.randn(B, T, 2, 21, 3) * 0.01
    gt = kp + 0.001
    betas = torch.randn(B, T, 2, 10)
    pose = torch.randn(B, T, 2, 45) * 0.1
    no_inter = dataclasses.replace(config, use_inter=False)
    terms = losses.total_loss(no_inter, pred_keypoints=kp, gt_keypoints=gt, pred_betas=betas, pred_hand_pose=pose)
    assert terms.inter == 0
    expected = (terms.smooth + 100 * terms.joint + 1 * terms.mano + 0.1 * terms.reg)
    assert terms.total == pytest.approx(expected.item())
    assert set(terms.as_dict()) == {"smooth", "joint", "inter", "mano", "reg", "total"}
    only_smooth = losses.LossConfig(use_joint=False, use_inter=False, use_mano=False, use_reg=False)
    assert losses.total_loss(only_smooth, pred_keypoints=kp).total == pytest.approx(losses.smooth_loss(kp).item())
    with pytest.raises(losses.LossInputError, match="pred_vertices: required"):
        losses.total_loss(config, pred_keypoints=kp, gt_keypoints=gt, pred_betas=betas, pred_hand_pose=pose)
    with pytest.raises(losses.LossInputError, match="gt_keypoints: required"):
        losses.total_loss(no_inter, pred_keypoints=kp, pred_betas=betas, pred_hand_pose=pose)


def test_bad_input_names_the_argument():
    kp = torch.zeros(1, 3, 2, 21, 3)
    broken = kp.clone()
    broken[0, 1, 0, 3, 1] = float("nan")
    with pytest.raises(losses.LossInputError, match="keypoints: contains NaN or inf"):
        losses.smooth_loss(broken)
    with pytest.raises(losses.LossInputError, match="pred_keypoints, gt_keypoints: shapes differ"):
        losses.joint_loss(kp, kp[:, :2])
    with pytest.raises(losses.LossInputError, match="keypoints: empty batch"):
        losses.smooth_loss(kp[:0])
    with pytest.raises(losses.LossInputError, match="labelled: expected shape"):
        losses.joint_loss(kp, kp, torch.ones(3, dtype=torch.bool))
    with pytest.raises(losses.LossInputError, match="pred_betas: expected shape"):
        losses.mano_loss(torch.zeros(3, 2, 10))


def _overlapping_hands(model):
    pose = torch.stack([pose_of(model.right, NAMED_POSES["relaxed"]), pose_of(model.left, NAMED_POSES["relaxed"])])
    transl = torch.tensor([[0.0, 0.0, 0.0], [0.02, 0.015, 0.0]])
    return pose[None, None], transl[None, None]


def test_inter_loss_gradient_steps_separate_the_hands(model):
    meshes = HandMeshes.from_model(model)
    pose, transl0 = _overlapping_hands(model)
    betas, orient = torch.zeros(1, 1, 2, 10), torch.zeros(1, 1, 2, 3)
    with torch.no_grad():
        start = detect_interpenetration(model(betas, orient, pose, transl0).vertices, meshes)
    before = mmpd(start.depth, hands="both").mean
    assert before > 5                                                        # millimetres
    transl = transl0.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([transl], lr=5e-4)
    for _ in range(200):
        optimiser.zero_grad()
        loss = losses.inter_loss(model(betas, orient, pose, transl).vertices, meshes)
        if loss.item() == 0:
            break
        loss.backward()
        assert torch.isfinite(transl.grad).all()
        optimiser.step()
    with torch.no_grad():
        end = detect_interpenetration(model(betas, orient, pose, transl).vertices, meshes)
    after = mmpd(end.depth, hands="both").mean
    assert after <= 0.1 * before, (before, after)
