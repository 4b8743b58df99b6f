"""Metrics against references computed another way, both alignment protocols, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch
from scipy.linalg import orthogonal_procrustes

from core_model import metrics
from core_model.geometry.alignment import PROTOCOLS, AlignmentInputError
from core_model.handmodel.registry import load_hand_model


@pytest.fixture(scope="module")
def gt():
    """[4, 2, 21, 3] keypoints and [4, 2, V, 3] vertices of OpenHand hands in random poses and places."""
    model = load_hand_model("openhand")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        out = model(torch.zeros(4, 2, 10), 0.5 * torch.randn(4, 2, 3, generator=gen),
                    0.2 * torch.randn(4, 2, 45, generator=gen), 0.1 * torch.randn(4, 2, 3, generator=gen))
    return out.keypoints.double(), out.vertices.double()


def test_global_offset_is_removed_by_both_protocols(gt):
    kp, verts = gt
    offset = torch.tensor([0.03, -0.02, 0.05], dtype=torch.float64)
    for protocol in PROTOCOLS:
        assert metrics.mpjpe(kp + offset, kp, protocol).mean == pytest.approx(0, abs=1e-9)
        assert metrics.mpvpe(verts + offset, verts, kp + offset, kp, protocol).mean == pytest.approx(0, abs=1e-9)


def test_known_offset_of_one_joint(gt):
    kp, _ = gt
    pred = kp.clone()
    pred[..., 20, 0] += 0.021                                            # the pinky tip, 21 mm
    for protocol in PROTOCOLS:
        result = metrics.mpjpe(pred, kp, protocol)
        assert result.protocol == protocol and result.unit == "mm"
        np.testing.assert_allclose(result.per_frame, 1.0)                # 21 mm / 21 joints
        assert str(result).startswith(f"MPJPE [{protocol}]")


def test_scaled_prediction_separates_the_protocols(gt):
    kp, _ = gt
    wrist = kp[..., :1, :]
    pred = wrist + 1.1 * (kp - wrist)                                    # 10 % too large about the wrist
    expected = 0.1 * (kp - wrist).norm(dim=-1).mean(-1).mean(-1) * 1000
    np.testing.assert_allclose(metrics.mpjpe(pred, kp, "wrist").per_frame, expected.numpy(), rtol=1e-9)
    assert metrics.mpjpe(pred, kp, "mcp-scaled").mean == pytest.approx(0, abs=1e-9)


def test_pa_mpjpe_matches_scipy_orthogonal_procrustes(gt):
    kp, _ = gt
    rotation = roma.random_rotmat(kp.shape[:2], dtype=torch.float64)
    pred = 1.3 * kp @ rotation.transpose(-1, -2) + 0.002 * torch.randn(kp.shape, dtype=torch.float64) + 0.1
    result = metrics.pa_mpjpe(pred, kp)
    assert result.protocol == "procrustes"
    expected = np.zeros(kp.shape[:2])
    for f in range(kp.shape[0]):
        for h in range(2):
            a, b = pred[f, h].numpy(), kp[f, h].numpy()
            a0, b0 = a - a.mean(0), b - b.mean(0)
            r, s = orthogonal_procrustes(a0, b0)
            aligned = (s / (a0 ** 2).sum()) * a0 @ r + b.mean(0)
            expected[f, h] = np.linalg.norm(aligned - b, axis=1).mean() * 1000
    np.testing.assert_allclose(result.per_hand, expected, rtol=1e-6)
    assert 0 < result.mean < 5


def test_accel_error_zero_for_constant_velocity_and_known_for_a_kick(gt):
    kp, _ = gt
    seq = kp[0].expand(10, 2, 21, 3).clone()[None]                       # [B=1, T=10, 2, 21, 3]
    t = torch.arange(10, dtype=torch.float64)[None, :, None, None, None]
    per_joint = torch.randn(1, 1, 2, 21, 3, dtype=torch.float64) * 0.01
    per_hand = torch.randn(1, 1, 2, 1, 3, dtype=torch.float64) * 0.01
    # Each joint on its own straight line at constant speed: no acceleration about a fixed-scale root. The
    # scaled protocol rescales every frame by a bone length that then changes non-linearly, so it gets whole
    # hands moving at constant velocity.
    cases = [("wrist", per_joint), ("wrist", per_hand), ("mcp-scaled", per_hand)]
    for protocol, velocity in cases:
        result = metrics.accel_error(seq + t * velocity, seq, protocol)
        assert np.isnan(result.per_frame[0, 0]) and np.isnan(result.per_frame[0, -1])
        assert result.mean == pytest.approx(0, abs=1e-9)
    kicked = seq.clone()
    kicked[0, 5, :, 20, 2] += 0.021                                       # one joint, one frame, 21 mm
    result = metrics.accel_error(kicked, seq, "wrist")
    # second differences at frames 4, 5, 6 are 21, -42, 21 mm on one of 21 joints
    np.testing.assert_allclose(result.per_frame[0, 4:7], [1.0, 2.0, 1.0])
    assert result.unit == "mm/frame^2"


def test_mrrpe_and_mmpd(gt):
    kp, _ = gt
    pred = kp.clone()
    pred[:, 1] += torch.tensor([0.0, 0.03, 0.04], dtype=torch.float64)  # left hand 50 mm off relative to right
    for protocol in PROTOCOLS:
        assert metrics.mrrpe(pred, kp, protocol).mean == pytest.approx(50.0)
    depth = torch.zeros(3, 2, 100, dtype=torch.float64)
    depth[0, 0, 7] = 0.004
    depth[1, 1, 3] = 0.006
    paper = metrics.mmpd(depth)
    np.testing.assert_allclose(paper.per_frame, [4.0, 0.0, 0.0])
    assert "right into left" in paper.protocol
    np.testing.assert_allclose(metrics.mmpd(depth, hands="both").per_frame, [4.0, 6.0, 0.0])


def test_pck_and_auc(gt):
    kp, _ = gt
    perfect = metrics.pck_curve(kp, kp, "mcp-scaled")
    assert perfect.auc == pytest.approx(1.0) and perfect.protocol == "mcp-scaled"
    pred = kp.clone()
    pred[..., 1:, 0] += 0.0245                                           # every non-root joint 24.5 mm off
    result = metrics.pck_curve(pred, kp, "wrist")
    frac = 1 / 21
    assert result.pck[result.thresholds_mm == 24][0] == pytest.approx(frac)
    assert result.pck[result.thresholds_mm == 25][0] == pytest.approx(1.0)
    assert result.auc == pytest.approx(frac + (1 - frac) * 25.5 / 50, abs=0.011)


def test_valid_mask(gt):
    kp, _ = gt
    pred = kp.clone()
    pred[0, 1, 5] += 1.0                                                 # a wild left hand in frame 0
    valid = torch.ones(4, 2, dtype=torch.bool)
    valid[0, 1] = False
    result = metrics.mpjpe(pred, kp, valid=valid)
    assert np.isnan(result.per_hand[0, 1]) and result.mean == pytest.approx(0, abs=1e-9)


def test_bad_input_names_the_argument(gt):
    kp, _ = gt
    broken = kp.clone()
    broken[0, 0, 0, 0] = float("nan")
    with pytest.raises(metrics.MetricInputError, match="pred_keypoints: contains NaN"):
        metrics.mpjpe(broken, kp)
    with pytest.raises(metrics.MetricInputError, match="pred_keypoints, gt_keypoints: shapes differ"):
        metrics.mpjpe(kp[:2], kp)
    with pytest.raises(metrics.MetricInputError, match="gt_keypoints: expected shape"):
        metrics.mpjpe(kp, kp[..., :20, :])
    with pytest.raises(metrics.MetricInputError, match="pred_keypoints: empty"):
        metrics.mpjpe(kp[:0], kp[:0])
    with pytest.raises(AlignmentInputError, match="protocol:"):
        metrics.mpjpe(kp, kp, "pelvis")
    with pytest.raises(metrics.MetricInputError, match="time axis"):
        metrics.accel_error(kp[:2], kp[:2])
    with pytest.raises(metrics.MetricInputError, match="valid: expected shape"):
        metrics.mpjpe(kp, kp, valid=torch.ones(4, dtype=torch.bool))
    with pytest.raises(metrics.MetricInputError, match="depth: contains NaN or inf"):
        metrics.mmpd(torch.full((2, 2, 5), float("inf")))


def _hand_box(width: float = 100.0, height: float = 50.0) -> np.ndarray:
    """21 landmarks spanning a width x height box: box side max(width, height)."""
    t = np.linspace(0, 1, 21)
    return np.stack([10 + width * t, 20 + height * t[::-1] ** 2], -1)


def test_jitter_2d_is_the_acceleration_over_the_reference_box_side():
    n, a = 8, 0.5
    t = np.arange(n, dtype=float)
    reference = np.broadcast_to(_hand_box(100, 50), (n, 2, 21, 2)).copy()   # box side 100 px
    pts = reference.copy()
    pts[..., 0] += a * t[:, None, None] ** 2                     # every keypoint on the same parabola: 2a px/frame^2
    ok = np.ones((n, 2), bool)
    value, count = metrics.jitter_2d(pts, ok, reference)
    assert count == 2 * (n - 2)
    assert value == pytest.approx(2 * a / 100)
    # the measured series' own box does not matter (halved in y here), the reference's does
    assert metrics.jitter_2d(pts * [1, 0.5], ok, reference)[0] == pytest.approx(2 * a / 100)
    assert metrics.jitter_2d(pts, ok, 2 * reference)[0] == pytest.approx(a / 100)
    lin = reference + 4 * t[:, None, None, None]
    assert metrics.jitter_2d(lin, ok, reference)[0] == pytest.approx(0, abs=1e-12)
    ok[3, 0] = False                                             # removes triples centred on 2, 3, 4 for hand 0
    assert metrics.jitter_2d(pts, ok, reference)[1] == 2 * (n - 2) - 3
    pts[5, 1, 7] = np.nan                                        # and a missing keypoint those centred on 4, 5, 6
    assert metrics.jitter_2d(pts, ok, reference)[1] == 2 * (n - 2) - 6
    assert metrics.jitter_2d(pts[:2], ok[:2], reference[:2]) == (pytest.approx(np.nan, nan_ok=True), 0)
    with pytest.raises(metrics.MetricInputError, match="keypoints2d, reference"):
        metrics.jitter_2d(pts, ok, reference[:, :1])


def test_jitter_3d_is_wrist_relative_in_mm():
    n, a = 6, 0.001                                              # metres
    t = np.arange(n, dtype=float)
    kp = np.zeros((n, 2, 21, 3))
    kp[..., 2] = a * t[:, None, None] ** 2                       # the whole hand moves: no wrist-relative motion
    assert metrics.jitter_3d(kp, np.ones((n, 2), bool)) == (pytest.approx(0), 2 * (n - 2))
    kp[:, :, 1:, 0] += a * t[:, None, None] ** 2                 # fingers accelerate against the wrist
    value, _ = metrics.jitter_3d(kp, np.ones((n, 2), bool))
    assert value == pytest.approx(2 * a * 1e3)                   # 2a metres = 2 mm / frame^2
    ok = np.ones((n, 2), bool)
    ok[2] = False
    assert metrics.jitter_3d(kp, ok)[1] == 2 * (n - 2) - 2 * 3
