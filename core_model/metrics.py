"""Evaluation metrics of the paper (section 4.1) in millimetres, per frame and as means.

Inputs are metres (DESIGN section 3), torch tensors or numpy arrays, with any leading frame dims ``[...]``
(``[N]`` or ``[B, T]``) before the hand axis: keypoints ``[..., 2, 21, 3]``, vertices ``[..., 2, V, 3]``.
``valid [..., 2]`` (bool, optional) drops hands without ground truth. Every result names its alignment
protocol (:mod:`core_model.geometry.alignment`): ``'wrist'`` (InterNet, InterWild) and ``'mcp-scaled'``
(IntagHand, ITH-3D) give numbers that cannot be compared with each other.

Without ground truth (real footage), :func:`jitter_2d` and :func:`jitter_3d` measure how much a sequence's
keypoints accelerate from frame to frame (numpy arrays, NaN where a hand is missing).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from core_model.geometry.alignment import Protocol, get_protocol, procrustes_align, root_align
from core_model.geometry.hand_box import box_side

MM = 1000.0
PCK_THRESHOLDS_MM = np.linspace(0.0, 50.0, 51)


class MetricInputError(ValueError):
    """Bad input to a metric; the message names the argument."""


@dataclasses.dataclass
class MetricResult:
    """One metric. per_hand: [..., 2] and per_frame: [...] (mean of the valid hands), NaN where undefined;
    mean: over all valid hands and frames (NaN if none). Unit and protocol travel with the numbers."""

    name: str
    protocol: str
    unit: str
    per_hand: np.ndarray
    per_frame: np.ndarray
    mean: float

    def __str__(self) -> str:
        return f"{self.name} [{self.protocol}] = {self.mean:.2f} {self.unit}"


@dataclasses.dataclass
class PCKResult:
    """3D PCK curve: thresholds_mm [K], pck [K] in 0..1 over all valid joints, auc (normalised to 0..1)."""

    protocol: str
    thresholds_mm: np.ndarray
    pck: np.ndarray
    auc: float

    def __str__(self) -> str:
        return (f"3D PCK AUC {self.thresholds_mm[0]:.0f}-{self.thresholds_mm[-1]:.0f} mm [{self.protocol}] = "
                f"{self.auc:.3f}")


def _tensor(name: str, x, last: tuple[int | None, ...]) -> torch.Tensor:
    if not isinstance(x, torch.Tensor | np.ndarray):
        raise MetricInputError(f"{name}: expected a torch.Tensor or numpy array, got {type(x).__name__}")
    t = torch.as_tensor(np.asarray(x) if isinstance(x, np.ndarray) else x.detach().cpu(), dtype=torch.float64)
    if t.ndim < len(last) or any(s is not None and t.shape[t.ndim - len(last) + i] != s for i, s in enumerate(last)):
        expected = ", ".join("N" if s is None else str(s) for s in last)
        raise MetricInputError(f"{name}: expected shape [..., {expected}], got {tuple(t.shape)}")
    if t.numel() == 0:
        raise MetricInputError(f"{name}: empty, shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise MetricInputError(f"{name}: contains NaN or inf")
    return t


def _pair(pred, gt, pred_name: str = "pred", gt_name: str = "gt", last=(2, 21, 3)):
    p, g = _tensor(pred_name, pred, last), _tensor(gt_name, gt, last)
    if p.shape != g.shape:
        raise MetricInputError(f"{pred_name}, {gt_name}: shapes differ, {tuple(p.shape)} vs {tuple(g.shape)}")
    return p, g


def _valid(valid, lead: torch.Size) -> torch.Tensor:
    if valid is None:
        return torch.ones(*lead, 2, dtype=torch.bool)
    v = torch.as_tensor(np.asarray(valid) if isinstance(valid, np.ndarray) else valid.detach().cpu()).bool()
    if tuple(v.shape) != (*lead, 2):
        raise MetricInputError(f"valid: expected shape {(*lead, 2)}, got {tuple(v.shape)}")
    return v


def _result(name: str, protocol: str, unit: str, per_hand: torch.Tensor, valid: torch.Tensor) -> MetricResult:
    per_hand = torch.where(valid, per_hand, torch.nan)
    per_frame = per_hand.nanmean(-1)
    mean = float(per_hand.nanmean()) if bool(valid.any()) else float("nan")
    return MetricResult(name, protocol, unit, per_hand.numpy(), per_frame.numpy(), mean)


def _joint_errors(pred: torch.Tensor, gt: torch.Tensor, protocol: Protocol) -> torch.Tensor:
    pk, gk, _, _ = root_align(pred, gt, protocol)
    return (pk - gk).norm(dim=-1) * MM                                      # [..., 2, 21]


def mpjpe(pred_keypoints, gt_keypoints, protocol: str | Protocol = "wrist", valid=None) -> MetricResult:
    """Mean per-joint position error after root alignment."""
    proto = get_protocol(protocol)
    p, g = _pair(pred_keypoints, gt_keypoints, "pred_keypoints", "gt_keypoints")
    return _result("MPJPE", proto.name, "mm", _joint_errors(p, g, proto).mean(-1), _valid(valid, p.shape[:-3]))


def pa_mpjpe(pred_keypoints, gt_keypoints, valid=None) -> MetricResult:
    """MPJPE after per-hand Procrustes alignment (scale, rotation, translation): no root protocol applies."""
    p, g = _pair(pred_keypoints, gt_keypoints, "pred_keypoints", "gt_keypoints")
    err = (procrustes_align(p, g) - g).norm(dim=-1).mean(-1) * MM
    return _result("PA-MPJPE", "procrustes", "mm", err, _valid(valid, p.shape[:-3]))


def mpvpe(pred_vertices, gt_vertices, pred_keypoints, gt_keypoints, protocol: str | Protocol = "wrist",
          valid=None) -> MetricResult:
    """Mean per-vertex position error; vertices follow their hand's root (and scale) from the keypoints."""
    proto = get_protocol(protocol)
    pk, gk = _pair(pred_keypoints, gt_keypoints, "pred_keypoints", "gt_keypoints")
    pv, gv = _pair(pred_vertices, gt_vertices, "pred_vertices", "gt_vertices", last=(2, None, 3))
    if pv.shape[:-2] != pk.shape[:-2]:
        raise MetricInputError(f"pred_vertices, pred_keypoints: frame dims differ, {tuple(pv.shape)} vs "
                               f"{tuple(pk.shape)}")
    _, _, pv, gv = root_align(pk, gk, proto, pv, gv)
    return _result("MPVPE", proto.name, "mm", (pv - gv).norm(dim=-1).mean(-1) * MM, _valid(valid, pk.shape[:-3]))


def accel_error(pred_keypoints, gt_keypoints, protocol: str | Protocol = "wrist", valid=None) -> MetricResult:
    """Acceleration error of HMMR (Kanazawa et al. 2019, as in its and VIBE's code).

    Keypoints ``[..., T, 2, 21, 3]``, time on dim -4. Acceleration is the second difference
    ``x[t-1] - 2 x[t] + x[t+1]`` of root-aligned joints (mm per frame squared, the unit the field prints as
    mm/s^2); the error is the mean over joints of the norm of the difference. Frames 0 and T-1, and frames whose
    neighbours are not valid, are NaN.
    """
    proto = get_protocol(protocol)
    p, g = _pair(pred_keypoints, gt_keypoints, "pred_keypoints", "gt_keypoints")
    if p.ndim < 4 or p.shape[-4] < 3:
        raise MetricInputError(f"pred_keypoints: expected a time axis of at least 3 frames at dim -4, "
                               f"got shape {tuple(p.shape)}")
    pk, gk, _, _ = root_align(p, g, proto)

    def accel(x):
        return x[..., :-2, :, :, :] - 2 * x[..., 1:-1, :, :, :] + x[..., 2:, :, :, :]

    err = (accel(pk) - accel(gk)).norm(dim=-1).mean(-1) * MM               # [..., T-2, 2]
    ok = _valid(valid, p.shape[:-3])
    ok_mid = ok[..., :-2, :] & ok[..., 1:-1, :] & ok[..., 2:, :]
    pad = torch.full_like(err[..., :1, :], torch.nan)
    per_hand = torch.cat([pad, err, pad], dim=-2)
    ok_full = torch.cat([torch.zeros_like(ok_mid[..., :1, :]), ok_mid, torch.zeros_like(ok_mid[..., :1, :])], -2)
    return _result("Accel_E", proto.name, "mm/frame^2", per_hand, ok_full)


def mrrpe(pred_keypoints, gt_keypoints, protocol: str | Protocol = "wrist", valid=None) -> MetricResult:
    """Mean relative-root position error: error of the left root relative to the right root (no scaling).

    The root joint is the protocol's (wrist or middle MCP). per_hand holds the same value for both hands.
    """
    proto = get_protocol(protocol)
    p, g = _pair(pred_keypoints, gt_keypoints, "pred_keypoints", "gt_keypoints")
    rel_p = p[..., 1, proto.root, :] - p[..., 0, proto.root, :]
    rel_g = g[..., 1, proto.root, :] - g[..., 0, proto.root, :]
    err = (rel_p - rel_g).norm(dim=-1) * MM
    ok = _valid(valid, p.shape[:-3]).all(-1, keepdim=True).expand(*p.shape[:-3], 2)
    return _result("MRRPE", proto.name, "mm", err[..., None].expand(*err.shape, 2), ok)


def mmpd(depth, valid=None, hands: str = "right") -> MetricResult:
    """Mean maximum penetration depth (paper 4.1) from per-vertex depths ``[..., 2, V]`` in metres.

    The paper measures the right hand's vertices against the left hand's surface (``hands='right'``, per_frame
    = that maximum, 0 without collision); ``hands='both'`` takes the deeper of the two directions. The depth
    comes from :func:`core_model.geometry.interpenetration.detect_interpenetration`.
    """
    d = _tensor("depth", depth, (2, None))
    if hands not in ("right", "both"):
        raise MetricInputError(f"hands: expected 'right' or 'both', got {hands!r}")
    per_hand = d.amax(-1) * MM                                                # [..., 2]
    ok = _valid(valid, d.shape[:-2]).all(-1)
    frame = per_hand[..., 0] if hands == "right" else per_hand.amax(-1)
    frame = torch.where(ok, frame, torch.nan)
    mean = float(frame.nanmean()) if bool(ok.any()) else float("nan")
    return MetricResult("MMPD", f"penetration of {'right into left' if hands == 'right' else 'either hand'}", "mm",
                        torch.where(ok[..., None], per_hand, torch.nan).numpy(), frame.numpy(), mean)


def pck_curve(pred_keypoints, gt_keypoints, protocol: str | Protocol = "wrist", valid=None,
              thresholds_mm: np.ndarray = PCK_THRESHOLDS_MM) -> PCKResult:
    """3D PCK over thresholds (default 0-50 mm) and the area under it, normalised by the threshold range."""
    proto = get_protocol(protocol)
    p, g = _pair(pred_keypoints, gt_keypoints, "pred_keypoints", "gt_keypoints")
    thresholds = np.asarray(thresholds_mm, dtype=np.float64)
    if thresholds.ndim != 1 or len(thresholds) < 2 or np.any(np.diff(thresholds) <= 0):
        raise MetricInputError("thresholds_mm: expected at least two increasing thresholds")
    err = _joint_errors(p, g, proto)[_valid(valid, p.shape[:-3])].reshape(-1).numpy()
    if err.size == 0:
        raise MetricInputError("valid: no valid hand")
    pck = (err[None, :] <= thresholds[:, None]).mean(1)
    auc = float(np.trapezoid(pck, thresholds) / (thresholds[-1] - thresholds[0]))
    return PCKResult(proto.name, thresholds, pck, auc)


# ----------------------------------------------------------------------------- without ground truth: jitter


def _triples(ok: np.ndarray) -> np.ndarray:
    """[N, ...] bool -> [N-2, ...]: ``ok`` on frames t-1, t and t+1 (indexed by t-1)."""
    return ok[:-2] & ok[1:-1] & ok[2:]


def _acceleration(x: np.ndarray) -> np.ndarray:
    """[N, ..., J, D] -> [N-2, ..., J]: |x[t-1] - 2 x[t] + x[t+1]| per point (indexed by t-1)."""
    return np.linalg.norm(x[:-2] - 2 * x[1:-1] + x[2:], axis=-1)


def jitter_2d(keypoints2d, ok, reference) -> tuple[float, int]:
    """Jitter of 2D keypoints in hand sizes: (mean, hand-triples used), (NaN, 0) without any.

    Per hand and triple of consecutive frames: the acceleration |x[t-1] - 2 x[t] + x[t+1]| (pixels per frame²),
    mean over the 21 keypoints, over the *reference* hand's size at frame t, ``box_side(reference)`` (the longer
    side of the box of its keypoints, PCK's normaliser); then the mean over hand-triples. keypoints2d and
    reference ``[N, 2, 21, 2]`` pixels; the reference is the detector's landmarks, so every series measured against
    them (network, refined, the detector's own) is divided by the same size and ratios of jitters are ratios of
    pixel accelerations. ok ``[N, 2]`` bool: the hand-frames to use; a triple counts where ``ok`` holds on all
    three frames and the keypoints and the size are finite.
    """
    points = np.asarray(keypoints2d, np.float64)
    reference = np.asarray(reference, np.float64)
    if points.shape != reference.shape or points.shape[1:] != (2, 21, 2):
        raise MetricInputError(f"keypoints2d, reference: expected equal shapes [N, 2, 21, 2], got "
                               f"{points.shape} and {reference.shape}")
    if len(points) < 3:
        return float("nan"), 0
    scale = box_side(reference)
    ok = np.asarray(ok, bool) & np.isfinite(points).all((-1, -2)) & (np.nan_to_num(scale) > 0)
    use = _triples(ok)
    if not use.any():
        return float("nan"), 0
    return float((_acceleration(points).mean(-1)[use] / scale[1:-1][use]).mean()), int(use.sum())


def jitter_3d(keypoints, ok) -> tuple[float, int]:
    """Jitter of 3D hand poses in mm/frame²: (mean, hand-triples used), (NaN, 0) without any.

    The acceleration |x[t-1] - 2 x[t] + x[t+1]| of the 20 finger keypoints relative to their hand's wrist (the
    hand's articulation, not its travel), mean over them, then over hand-triples. keypoints ``[N, 2, 21, 3]``
    metres; ok ``[N, 2]`` bool: a triple counts where ``ok`` holds on all three frames and the keypoints are finite.
    """
    keypoints = np.asarray(keypoints, np.float64)
    if keypoints.shape[1:] != (2, 21, 3):
        raise MetricInputError(f"keypoints: expected shape [N, 2, 21, 3], got {keypoints.shape}")
    if len(keypoints) < 3:
        return float("nan"), 0
    use = _triples(np.asarray(ok, bool) & np.isfinite(keypoints).all((-1, -2)))
    if not use.any():
        return float("nan"), 0
    rel = keypoints - keypoints[..., :1, :]
    return float((_acceleration(rel)[..., 1:].mean(-1)[use] * MM).mean()), int(use.sum())
