"""Weights, switches and schedule of test-time refinement (one dataclass, so a run records what it used)."""

from __future__ import annotations

import dataclasses

ROBUST_KERNELS = ("huber", "geman-mcclure", "l2")
OPTIMIZERS = ("lbfgs", "adam")


@dataclasses.dataclass
class RefineConfig:
    """Every term has a weight and a switch; a switched-off term costs nothing.

    Units: reprojection residuals are divided by ``robust_scale`` times the frame's crop side (``scale_px``):
    with 0.02, a landmark 2 % of the crop off (about 5 px on a 256 px crop) costs 0.5. 3D terms are in metres,
    rotations in radians; every term is a sum per frame, averaged over the frames.
    """

    align_steps: int = 10                 # first, each frame alone to its landmarks (no temporal/inter terms)
    gn_steps: int = 4                     # then Gauss-Newton iterations on the whole objective (gauss_newton)
    steps: int = 30                       # last, iterations (L-BFGS) or steps (Adam), the contacts looked up
    optimizer: str = "lbfgs"              # one of OPTIMIZERS: "lbfgs" (line search: no rate to tune) or "adam"
    lr: float = 0.02                      # Adam step for rotations (radians); translations use lr_transl
    lr_transl: float = 0.01               # metres
    lr_betas: float = 0.05
    lr_final: float = 0.1                 # the rates decay linearly to this share of themselves

    use_reproj: bool = True
    rigid_init: bool = True               # start from a PnP of each hand's palm landmarks where it fits far better
    rigid_accept: float = 0.7             # ... its median landmark error below this share of the network's
    rigid_window: int = 8                 # corrections averaged over this many linked frames on each side
    w_reproj: float = 1.0
    robust: str = "huber"                 # one of ROBUST_KERNELS
    robust_scale: float = 0.02            # kernel scale in crop sides
    min_score: float = 0.5                # detector confidence below this is not a landmark to fit

    use_smooth: bool = True               # paper eq. 5: sum of joint displacement norms between frames
    w_smooth: float = 0.05
    use_accel: bool = True                # squared second differences of the joints (jitter)
    w_accel: float = 3e5                  # converged fits need it this high to halve rock-sign's jitter

    use_inter: bool = True                # paper eq. 6: l_alpha of the depth of vertices inside the other hand
    w_inter: float = 10.0
    alpha: float = 0.02                   # metres (paper: 2 cm)
    inter_refresh: tuple[int, ...] = (20,)  # steps where the inside masks and nearest vertices are found

    use_capsules: bool = True             # capsules on the keypoints kept apart (core_model.refine.capsules)
    w_capsules: float = 1e6               # squared metres of overlap
    capsule_margin: float = 0.002         # metres added to the radii
    capsule_quantile: float = 0.5         # a capsule's radius: this quantile of its vertices' distances

    use_prior: bool = True                # stay near the network's prediction
    w_pose: float = 0.3                   # per joint, squared radians
    w_orient: float = 2.0
    w_betas: float = 30.0                 # per frame (the shape is one per sequence); lower, converged fits buy
                                          # their 2D agreement with wrong hand sizes
    w_rel: float = 200.0                  # relative translation (left wrist - right wrist), squared metres
    w_root_xy: float = 0.0                # absolute wrist position from the network's camera, squared metres
    w_root_z: float = 20.0                # depth is what a weak-perspective camera knows least

    use_limits: bool = True               # anatomical joint limits (core_model.handmodel.poses)
    w_limits: float = 20.0

    use_silhouette: bool = True           # where the result has masks: surface inside them, covering them
    w_inside: float = 2.0                 # per frame, the surface points' mean robust distance off the mask
    w_cover: float = 2.0                  # per frame, the mask cells' mean robust distance to the surface; a
                                          # stronger cover pulls the hands into each other (asl: 8 % of frames
                                          # interpenetrate at 5, 1.6 % at 2; BENCHMARKS.md "Silhouettes")
    silhouette_knee: float = 0.02         # kernel scale in crop sides (as robust_scale)

    gate: bool = True                     # drop detections that contradict the prediction or their own track
    swap_margin: float = 0.6              # swapped fits better than this share of the given assignment: swap
    blob_ratio: float = 0.35              # two hands closer than this (hand sizes): one blob, dropped
    max_shift: float = 2.0                # detection further than this many hand sizes from the prediction
    residual_gate: float = 0.15           # median residual (crop sides) after half the steps: dropped
    track_frames: int = 2                 # neighbours on each side for the detections' own track check

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.robust not in ROBUST_KERNELS:
            raise ValueError(f"robust: expected one of {ROBUST_KERNELS}, got {self.robust!r}")
        if self.steps < 0:
            raise ValueError(f"steps: expected a non-negative number of steps, got {self.steps}")
        if not 0.0 < self.capsule_quantile <= 1.0:
            raise ValueError(f"capsule_quantile: expected a quantile in (0, 1], got {self.capsule_quantile}")
        if self.robust_scale <= 0 or self.alpha <= 0:
            raise ValueError(f"robust_scale, alpha: expected positive scales, got {self.robust_scale}, {self.alpha}")
