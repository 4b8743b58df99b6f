"""Test-time refinement of the network's two hands over a window (or a whole video) of frames.

Batched steps (per-frame L-BFGS alignment, Gauss-Newton on the whole objective: ``RefineConfig.gn_steps``,
:mod:`core_model.refine.gauss_newton`; then L-BFGS or Adam with the contacts) on every frame's pose,
orientation, both wrists' 3D positions (hence the relative translation) and each hand's shape (one correction per
sequence: a hand's shape does not change over time), minimising the detector's robust, confidence-weighted
reprojection error, the paper's smoothness (eq. 5) and interpenetration (eq. 6) terms, and a prior that keeps the
result near the network's prediction and inside the joint limits. Frames without trusted landmarks (see
:mod:`core_model.refine.gating`) are held by the smoothness and prior terms alone.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Generator, Iterator

import numpy as np
import roma
import torch

from core_model.geometry.interpenetration import HandMeshes, detect_interpenetration
from core_model.handmodel.keypoints import FINGERS, MANO_JOINT_NAMES
from core_model.handmodel.layer import HandModel
from core_model.handmodel.poses import limits_array, rest_frames
from core_model.refine import capsules, gauss_newton, rigid, terms
from core_model.refine.camera import project
from core_model.refine.config import RefineConfig
from core_model.refine.gating import RESIDUAL, USED, gate_detections
from core_model.refine.kinematics import HandSkeleton, rotmats_of

GN_CG = 4
"""Conjugate-gradient iterations per Gauss-Newton step (each hand's band solved exactly inside each): 8 cost a fifth
more time, 3 and 4 reach equal fits on the real clips, 2 let asl interpenetrate on 4.8 % of frames (BENCHMARKS.md,
"Test-time refinement" (e))."""

SURFACE_POINTS = 128
"""Vertices per hand the silhouette terms project (spread over the mesh by index)."""

GN_STEP_UNITS = 10
"""A Gauss-Newton step's weight in the fit's progress (``Refiner.refine_steps``), in L-BFGS iterations: on the real
clips one step (its normal matrix, its solve) took 7-30 times as long as one alignment or settling iteration
(asl, 62 frames: 0.3-1.2 s against 0.04 s; hand washing, 150 frames: 0.7-3.1 s against 0.06-0.19 s; one thread)."""

CAPSULE_REACH = 0.02
"""Metres: capsule pairs this far from touching at a phase's start are followed through the phase (the hands'
joints move less than this in the 15 or so iterations between looks; a Gauss-Newton step looks at each)."""


@dataclasses.dataclass
class RefineInput:
    """The network's prediction and the detector's landmarks for B sequences of T frames; hand 0 right, 1 left;
    camera frame (OpenCV), metres, pixels.

    betas [B,T,2,10], global_orient [B,T,2,3], hand_pose [B,T,2,45]: the network's parameters.
    roots [B,T,2,3]: each wrist in the camera frame (see ``camera.roots_from_weak_perspective``).
    rel_transl [B,T,3]: the network's left wrist minus right wrist.
    det_keypoints2d [B,T,2,21,2] pixels and det_score [B,T,2]: the detector's (NaN where it saw no such hand).
    K [B,T,3,3] intrinsics; scale_px [B,T] pixels of one residual unit (the crop side).
    valid [B,T,2] bool: hands to refine (False on padding and unreconstructed hands; their values are ignored).
    link [B,T-1] bool: frames t and t+1 are consecutive frames of the video.
    The hands' silhouette, where the result has masks (all four or none): outside [B,T,M,M] each mask cell's
    distance to the nearest hand cell in crop sides; cover_px [B,T,P,2] frame pixels of P cells spread over the
    hands' mask, cover_weight [B,T,P] (0 where a frame has no mask); crop [B,T,3] the mask's square (x, y, side).
    """

    betas: torch.Tensor
    global_orient: torch.Tensor
    hand_pose: torch.Tensor
    roots: torch.Tensor
    rel_transl: torch.Tensor
    det_keypoints2d: torch.Tensor
    det_score: torch.Tensor
    K: torch.Tensor
    scale_px: torch.Tensor
    valid: torch.Tensor
    link: torch.Tensor
    outside: torch.Tensor | None = None
    cover_px: torch.Tensor | None = None
    cover_weight: torch.Tensor | None = None
    crop: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.betas.ndim != 4 or self.betas.shape[-2:] != (2, 10):
            raise ValueError(f"betas: expected [B, T, 2, 10], got {tuple(self.betas.shape)}")
        B, T = self.betas.shape[:2]
        expect = {"global_orient": (B, T, 2, 3), "hand_pose": (B, T, 2, 45), "roots": (B, T, 2, 3),
                  "rel_transl": (B, T, 3), "det_keypoints2d": (B, T, 2, 21, 2), "det_score": (B, T, 2),
                  "K": (B, T, 3, 3), "scale_px": (B, T), "valid": (B, T, 2), "link": (B, max(T - 1, 0))}
        if self.outside is not None:
            M, P = self.outside.shape[-1], (self.cover_px.shape[-2] if self.cover_px is not None else 0)
            expect.update({"outside": (B, T, M, M), "cover_px": (B, T, P, 2), "cover_weight": (B, T, P),
                           "crop": (B, T, 3)})
        elif any(getattr(self, name) is not None for name in ("cover_px", "cover_weight", "crop")):
            raise ValueError("outside, cover_px, cover_weight, crop: give all of the silhouette's inputs or none")
        for name, shape in expect.items():
            value = getattr(self, name)
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
                raise ValueError(f"{name}: expected a tensor of shape {list(shape)}, got "
                                 f"{tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__}")

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> RefineInput:
        fields = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                value = value.to(device) if value.dtype == torch.bool else value.to(device, dtype)
            fields[f.name] = value
        return RefineInput(**fields)


@dataclasses.dataclass
class RefineResult:
    """The refined hands, shapes as :class:`RefineInput` ([B, T, 2, ...]); camera frame.

    betas, global_orient, hand_pose: refined parameters; roots [B,T,2,3] wrist positions; transl [B,T,2,3] the
    hand model's ``transl`` reproducing them; keypoints [B,T,2,21,3]; keypoints2d [B,T,2,21,2] pixels;
    gate [B,T,2] int8 why a hand's landmarks were (``gating.USED``) or were not fitted (``gating.REASONS``);
    losses: per term, its weighted value before the first and after the last step; seconds: wall time.
    """

    betas: torch.Tensor
    global_orient: torch.Tensor
    hand_pose: torch.Tensor
    roots: torch.Tensor
    transl: torch.Tensor
    keypoints: torch.Tensor
    keypoints2d: torch.Tensor
    gate: np.ndarray
    losses: dict[str, tuple[float, float]]
    seconds: float


class Refiner:
    """Holds what a hand model needs for refinement (kinematics, closed meshes, joint limits) so that refining
    many windows or videos builds it once. ``refine`` runs on the device and dtype of its input, and moves the
    hand model there (the pipeline's model already lives on that device)."""

    def __init__(self, hand_model: HandModel, config: RefineConfig | None = None) -> None:
        if not isinstance(hand_model, HandModel):
            raise TypeError(f"hand_model: expected a core_model.handmodel HandModel, got {type(hand_model).__name__}")
        self.config = config if config is not None else RefineConfig()
        if not isinstance(self.config, RefineConfig):
            raise TypeError(f"config: expected a RefineConfig, got {type(self.config).__name__}")
        self.hand_model = hand_model
        self.skeleton = HandSkeleton(hand_model)
        self.meshes = HandMeshes.from_model(hand_model)
        self.axes = torch.stack([rest_frames(layer) for layer in hand_model.sides])        # [2, 15, 3, 3]
        limits = np.zeros((15, 3, 2))
        table = np.deg2rad(limits_array())                                                 # [5, 3, 3, 2]
        for f, finger in enumerate(FINGERS):
            for level in (1, 2, 3):
                limits[MANO_JOINT_NAMES.index(f"{finger}{level}") - 1] = table[f, level - 1]
        self.limits = torch.as_tensor(limits, dtype=torch.float32).expand(2, 15, 3, 2).clone()
        self._jacobian = gauss_newton.KeypointJacobian(self.skeleton)

    @staticmethod
    def _reprojection_model(kp: torch.Tensor, det: torch.Tensor, K: torch.Tensor, weight: torch.Tensor,
                            scale_px: torch.Tensor, cfg: RefineConfig, frames: int) -> torch.Tensor:
        """The reprojection term's Gauss-Newton matrix per keypoint [B, T, 2, 21, 3, 3]: the projection's
        Jacobian scaled to kernel units, weighted by confidence and the robust kernel's IRLS weight."""
        K = K[:, :, None, None]
        z = kp[..., 2].clamp_min(1e-3)
        fx, fy = K[..., 0, 0], K[..., 1, 1]
        zero = torch.zeros_like(z)
        P = torch.stack([fx / z, zero, -fx * kp[..., 0] / z**2, zero, fy / z, -fy * kp[..., 1] / z**2], -1)
        P = P.unflatten(-1, (2, 3)) / (cfg.robust_scale * scale_px[:, :, None, None, None, None])
        u2 = ((project(kp, K[:, :, :, 0]) - det) ** 2).sum(-1) / (cfg.robust_scale * scale_px[..., None, None]) ** 2
        irls = {"l2": torch.ones_like(u2), "huber": u2.clamp_min(1.0).rsqrt(),
                "geman-mcclure": 1.0 / (u2 + 1.0) ** 2}[cfg.robust]
        w = cfg.w_reproj * weight * irls / frames
        return w[..., None, None] * (P.transpose(-1, -2) @ P)

    def _module_to(self, device: torch.device, dtype: torch.dtype) -> None:
        self.skeleton.to(device)
        self.hand_model.to(device)
        self.axes, self.limits = self.axes.to(device, dtype), self.limits.to(device, dtype)

    def refine(self, data: RefineInput) -> RefineResult:
        """Refine ``data`` (on its device and dtype); see the module docstring. The steps: align each frame to
        its landmarks, Gauss-Newton on the whole objective, then first-order phases that settle the contacts."""
        steps = self.refine_steps(data)
        while True:
            try:
                next(steps)
            except StopIteration as finished:
                return finished.value

    def progress_total(self) -> int:
        """The units of :meth:`refine_steps`' progress: the alignment's and the last phases' iterations, and each
        Gauss-Newton step as :data:`GN_STEP_UNITS` of them, so that the progress keeps pace with the time."""
        cfg = self.config
        return (cfg.align_steps if cfg.use_reproj else 0) + GN_STEP_UNITS * cfg.gn_steps + cfg.steps

    def refine_steps(self, data: RefineInput) -> Generator[tuple[int, int], None, RefineResult]:
        """:meth:`refine` one piece at a time: yields (units done, :meth:`progress_total`) after the alignment,
        after each Gauss-Newton step and after each of the last phases (where the contacts are looked up anew);
        returns the RefineResult. A Gauss-Newton that stops early (at a minimum) skips ahead. The fit is the same
        as :meth:`refine`'s; a caller may do other work between pieces (report progress, check for cancel, set
        its torch modes back)."""
        start = time.perf_counter()
        cfg, total = self.config, self.progress_total()
        self._module_to(data.betas.device, data.betas.dtype)
        fit = _Fit(self, data)
        fit.align()
        aligned = cfg.align_steps if cfg.use_reproj else 0
        yield aligned, total
        for step in fit.gauss_newton(cfg.gn_steps):
            yield aligned + GN_STEP_UNITS * step, total
        for step in fit.settle():
            yield aligned + GN_STEP_UNITS * cfg.gn_steps + step, total
        out = fit.result()
        if data.betas.device.type == "cuda":
            torch.cuda.synchronize(data.betas.device)
        out.seconds = time.perf_counter() - start
        return out

    @staticmethod
    def _run_phase(cfg: RefineConfig, params, objective, record, s0: int, s1: int) -> None:
        """Steps s0..s1: L-BFGS iterations (one closure evaluation each, plus its line search) or Adam steps
        with a linearly decaying rate."""
        if s1 <= s0:
            return
        d_orient, d_pose, roots, d_betas = params
        if cfg.optimizer == "lbfgs":
            opt = torch.optim.LBFGS(params, lr=1.0, max_iter=s1 - s0, history_size=10,
                                    line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

            def closure():
                opt.zero_grad(set_to_none=True)
                total, loss = objective()
                if total is None or not total.requires_grad:
                    return torch.zeros((), dtype=roots.dtype, device=roots.device)
                total.backward()
                record(loss)
                return total

            opt.step(closure)
            return
        opt = torch.optim.Adam([{"params": [d_orient, d_pose], "lr": cfg.lr},
                                {"params": [roots], "lr": cfg.lr_transl}, {"params": [d_betas], "lr": cfg.lr_betas}])
        for step in range(s0, s1):
            decay = 1.0 - (1.0 - cfg.lr_final) * step / max(cfg.steps - 1, 1)
            for group, base in zip(opt.param_groups, (cfg.lr, cfg.lr_transl, cfg.lr_betas)):
                group["lr"] = base * decay
            opt.zero_grad(set_to_none=True)
            total, loss = objective()
            record(loss)
            if total is None or not total.requires_grad:
                return
            total.backward()
            opt.step()

    def _rigid_start(self, data: RefineInput, used: np.ndarray, betas0, orient0, pose0, roots0, rel0, scale_px):
        """The start and prior targets with each hand's orientation and wrist re-solved from its palm landmarks
        where that fits them much better (:mod:`core_model.refine.rigid`). The relative translation's target
        follows where both hands were re-solved; elsewhere it keeps the network's."""
        cfg = self.config
        with torch.no_grad():
            local = self.skeleton(betas0, rotmats_of(orient0, pose0), torch.zeros_like(roots0))
        host = lambda x: x.detach().cpu().double().numpy()  # noqa: E731
        C, roots, taken = rigid.rigid_starts(
            host(local), host(roots0), host(data.det_keypoints2d), used & data.valid.cpu().numpy(), host(data.K),
            host(scale_px), data.link.cpu().numpy(), accept=cfg.rigid_accept, window=cfg.rigid_window)
        if not taken.any():
            return orient0, roots0, rel0
        C = torch.as_tensor(C, dtype=orient0.dtype, device=orient0.device)
        orient = roma.rotmat_to_rotvec(C @ roma.rotvec_to_rotmat(orient0))
        roots = torch.as_tensor(roots, dtype=roots0.dtype, device=roots0.device)
        both = torch.as_tensor(taken.all(-1), device=rel0.device)[..., None]
        return orient, roots, torch.where(both, roots[..., 1, :] - roots[..., 0, :], rel0)

    def _radii(self, betas: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Capsule radii [2, S] of each hand's mean refined shape, fitted on its rest pose."""
        with torch.no_grad():
            w = valid.to(betas.dtype)[..., None]
            mean = (betas * w).sum((0, 1)) / w.sum((0, 1)).clamp_min(1.0)                   # [2, 10]
            zeros, flat = mean.new_zeros(2, 3), mean.new_zeros(2, 45)
            verts = self.hand_model(mean, zeros, flat, self.skeleton.transl(mean, zeros)).vertices       # [2, V, 3]
            kp = self.skeleton(mean, rotmats_of(zeros, flat), zeros)                                     # [2, 21, 3]
            return capsules.fit_radii(verts, kp, self.config.capsule_quantile)

    def _contacts(self, betas, rot, roots, kp, valid, near=None):
        """Exact inside test on the frames whose hands' boxes overlap and, given ``near`` [B, T], where it holds;
        for every inside vertex, the nearest vertex of the other hand. Returns the two ``VertexSet`` (inside
        vertices, their partners), or None."""
        with torch.no_grad():
            lo, hi = kp.amin(-2), kp.amax(-2)                                     # [B, T, 2, 3]
            margin = 0.03                                                         # fingertip pads beyond joints
            overlap = ((lo[..., 0, :] - margin <= hi[..., 1, :]) & (lo[..., 1, :] - margin <= hi[..., 0, :])).all(-1)
            if near is not None:
                overlap &= near
            b, t = torch.nonzero(overlap & valid.all(-1), as_tuple=True)
            if len(b) == 0:
                return None
            orient = roma.rotmat_to_rotvec(rot[b, t, :, 0])
            pose = roma.rotmat_to_rotvec(rot[b, t, :, 1:]).flatten(-2)
            verts = self.hand_model(betas[b, t], orient, pose, self.skeleton.transl(betas[b, t], roots[b, t])).vertices
            backend = "numpy" if verts.device.type == "cpu" else "torch"
            inside = torch.as_tensor(detect_interpenetration(verts, self.meshes, depth="none", backend=backend)
                                     .inside, device=verts.device)
            f, h, v = torch.nonzero(inside, as_tuple=True)
            if len(f) == 0:
                return None
            partner = torch.empty_like(v)
            for s in range(0, len(f), 2048):                                      # bounded memory
                fs, hs = f[s:s + 2048], h[s:s + 2048]
                d = (verts[fs, 1 - hs] - verts[fs, hs, v[s:s + 2048]][:, None]).norm(dim=-1)
                partner[s:s + 2048] = d.argmin(-1)
            at = (b[f], t[f])
            return (self.skeleton.vertex_set(at, h, v, betas.dtype),
                    self.skeleton.vertex_set(at, 1 - h, partner, betas.dtype))


class _Fit:
    """One refinement in progress: the start (the network's hands, the gated landmarks), the offsets being
    fitted, and what the phases look up as they go (contacts, capsule pairs, the landmarks' weights).

    Why a class: the objective, its Gauss-Newton model and the phases all read the same state; as attributes it
    is named where closures over a shared dictionary were not."""

    def __init__(self, refiner: Refiner, data: RefineInput) -> None:
        self.refiner, self.cfg, self.data = refiner, refiner.config, data
        cfg = self.cfg
        self.dev, self.dt = data.betas.device, data.betas.dtype
        self.B, self.T = data.betas.shape[:2]
        self.valid = data.valid
        self.vf = self.valid.to(self.dt)
        self.frames = max(int(self.valid.any(-1).sum()), 1)
        self.link = (data.link[..., None] & self.valid[:, 1:] & self.valid[:, :-1]).to(self.dt)   # [B, T-1, 2]
        self.both = self.valid.all(-1).to(self.dt)
        self._start_values()
        self.gate = self._gate()
        score = torch.nan_to_num(data.det_score).clamp(0, 1)
        self.det_weight = torch.as_tensor(self.gate == USED, device=self.dev).to(self.dt) * score      # [B, T, 2]
        self.seen = torch.isfinite(data.det_keypoints2d).all(-1).to(self.dt)                            # [B, T, 2, 21]
        if cfg.use_reproj and cfg.rigid_init:
            self.orient0, self.roots0, self.rel0 = refiner._rigid_start(
                data, self.gate == USED, self.betas0, self.orient0, self.pose0, self.roots0, self.rel0, self.scale_px)
            self.R0 = roma.rotvec_to_rotmat(self.orient0)
        self.d_orient = torch.zeros_like(self.orient0, requires_grad=True)
        self.d_pose = torch.zeros_like(self.pose0, requires_grad=True)
        self.d_betas = torch.zeros(self.B, 2, 10, dtype=self.dt, device=self.dev, requires_grad=True)
        self.roots = self.roots0.clone().requires_grad_(True)
        self.params = [self.d_orient, self.d_pose, self.roots, self.d_betas]
        self.root_w = self.roots0.new_tensor([cfg.w_root_xy, cfg.w_root_xy, cfg.w_root_z])
        self.radii = refiner._radii(self.betas0, self.valid) if cfg.use_capsules and bool(self.both.any()) else None
        self.surface = self._surface() if data.outside is not None and cfg.use_silhouette else None
        self.contact = None          # (inside vertices, their partners) at the last refresh
        self.pairs = None            # capsule pairs near contact at the last look
        self.aligning = False        # the per-frame alignment's objective
        self.losses: dict[str, tuple[float, float]] = {}

    def _start_values(self) -> None:
        """The network's hands as the start; unreconstructed hands hold NaN in a result file, and any finite
        value keeps NaN out of the gradients."""
        data = self.data
        self.betas0 = torch.nan_to_num(data.betas)
        self.orient0 = torch.nan_to_num(data.global_orient)
        self.pose0 = torch.nan_to_num(data.hand_pose)
        roots0 = torch.where(self.valid[..., None], data.roots, data.roots.new_tensor([0.0, 0.0, 0.5]))
        self.roots0 = torch.nan_to_num(roots0, nan=0.5)
        self.rel0 = torch.nan_to_num(data.rel_transl)
        self.R0 = roma.rotvec_to_rotmat(self.orient0)
        self.det = torch.nan_to_num(data.det_keypoints2d)
        self.scale_px = torch.nan_to_num(data.scale_px, nan=1.0).clamp_min(1.0)

    def _surface(self):
        """The vertices the silhouette terms project: :data:`SURFACE_POINTS` per hand spread over the mesh (by
        index)."""
        V = self.refiner.hand_model.num_vertices
        index = torch.as_tensor(np.linspace(0, V - 1, SURFACE_POINTS).round().astype(np.int64), device=self.dev)
        return self.refiner.skeleton.surface(index, self.dt)

    def _gate(self) -> np.ndarray:
        """[B, T, 2] why each hand's landmarks are fitted or not (``gating``)."""
        cfg, data = self.cfg, self.data
        if not cfg.use_reproj:
            return np.full((self.B, self.T, 2), 1, np.int8)
        skeleton = self.refiner.skeleton
        with torch.no_grad():
            pred_px = project(skeleton(self.betas0, rotmats_of(self.orient0, self.pose0), self.roots0),
                              data.K[:, :, None])
        gate = gate_detections(
            data.det_keypoints2d.detach().cpu().double().numpy(), data.det_score.detach().cpu().numpy(),
            pred_px.cpu().double().numpy(), self.valid.cpu().numpy(), data.link.cpu().numpy(),
            min_score=cfg.min_score, swap_margin=cfg.swap_margin, blob_ratio=cfg.blob_ratio,
            max_shift=cfg.max_shift, track_frames=cfg.track_frames)
        if not cfg.gate:  # keep only the confidence test
            gate = np.where(gate == 1, 1, USED).astype(np.int8)
        return gate

    def state(self) -> tuple[torch.Tensor, torch.Tensor, object]:
        """(betas [B, T, 2, 10], rotations [B, T, 2, 16, 3, 3], the posed skeleton) at the current offsets."""
        rot = rotmats_of(self.orient0, self.pose0 + self.d_pose)
        rot = torch.cat([(roma.rotvec_to_rotmat(self.d_orient) @ self.R0)[..., None, :, :], rot[..., 1:, :, :]], -3)
        betas = self.betas0 + self.d_betas[:, None]
        return betas, rot, self.refiner.skeleton.pose(betas, rot, self.roots)

    def keypoints(self) -> tuple[torch.Tensor, torch.Tensor, object, torch.Tensor]:
        """(betas, rotations, posed skeleton, keypoints [B, T, 2, 21, 3]) at the current offsets, no gradients."""
        with torch.no_grad():
            betas, rot, posed = self.state()
            return betas, rot, posed, self.refiner.skeleton.keypoints(betas, posed)

    def objective(self) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """The weighted terms by name and their sum (None when no term applies)."""
        cfg, r, frames = self.cfg, self.refiner, self.frames
        betas, _, posed = self.state()
        kp = r.skeleton.keypoints(betas, posed)
        loss = {}
        if cfg.use_reproj:
            loss["reproj"] = cfg.w_reproj * terms.reprojection(
                project(kp, self.data.K[:, :, None]), self.det, self.det_weight[..., None] * self.seen,
                self.scale_px[..., None].expand(self.B, self.T, 2), cfg.robust, cfg.robust_scale, frames)
        limits = None
        if cfg.use_limits:
            limits = cfg.w_limits * terms.joint_limits(self.pose0 + self.d_pose, r.axes, r.limits[..., 0],
                                                       r.limits[..., 1], self.vf, frames)
        if self.aligning:  # per-frame alignment to the landmarks first: no coupling between frames or hands
            if limits is not None:
                loss["limits"] = limits
            loss["prior"] = (terms.prior(self.d_pose, 0.0, cfg.w_pose * self.vf[..., None], frames)
                             + terms.prior(self.d_betas, 0.0, cfg.w_betas * self.T, frames))
            return sum(loss.values()), loss
        if cfg.use_smooth and self.T > 1:
            loss["smooth"] = cfg.w_smooth * terms.smoothness(kp, self.link, frames)
        if cfg.use_accel and self.T > 2:
            loss["accel"] = cfg.w_accel * terms.acceleration(kp, self.link, frames)
        if cfg.use_inter and self.contact is not None:
            inside, nearest = self.contact
            points = r.skeleton.vertices_at(betas, posed, inside)
            partners = r.skeleton.vertices_at(betas, posed, nearest)
            loss["inter"] = cfg.w_inter * terms.interpenetration(points, partners, cfg.alpha, frames)
        if self.pairs is not None:
            loss["capsules"] = cfg.w_capsules * terms.capsule_collision(kp, self.radii, self.pairs,
                                                                       cfg.capsule_margin, frames)
        if cfg.use_prior:
            vf = self.vf[..., None]
            loss["prior"] = (terms.prior(self.d_pose, 0.0, cfg.w_pose * vf, frames)
                             + terms.prior(self.d_orient, 0.0, cfg.w_orient * vf, frames)
                             + terms.prior(self.d_betas, 0.0, cfg.w_betas * self.T, frames)
                             + terms.prior(self.roots, self.roots0, self.root_w * vf, frames)
                             + terms.prior(self.roots[..., 1, :] - self.roots[..., 0, :], self.rel0,
                                           cfg.w_rel * self.both[..., None], frames))
        if self.surface is not None:
            loss.update(self.silhouette(betas, posed))
        if limits is not None:
            loss["limits"] = limits
        return (sum(loss.values()) if loss else None), loss

    def silhouette(self, betas: torch.Tensor, posed) -> dict[str, torch.Tensor]:
        """The surface inside the hands' mask and covering it (``terms.silhouette_inside`` / ``_cover``): each hand
        is kept inside the union of the masks (the perception's right/left labels are its least reliable output),
        and the mask is covered by both hands together on frames where both are refined."""
        cfg, data = self.cfg, self.data
        points = self.refiner.skeleton.vertices(betas, posed, self.surface)                  # [B, T, 2, K, 3]
        px = project(points, data.K[:, :, None]).flatten(2, 3)                      # [B, T, 2K, 2]
        K = points.shape[3]
        has_mask = (data.cover_weight.sum(-1) > 0).to(self.dt)                            # [B, T]
        inside_w = (self.vf * has_mask[..., None]).repeat_interleave(K, -1)               # [B, T, 2K]
        cover_w = data.cover_weight * self.both[..., None]
        return {"inside": cfg.w_inside * terms.silhouette_inside(px, data.outside, data.crop, inside_w,
                                                                   cfg.silhouette_knee, self.frames),
                "cover": cfg.w_cover * terms.silhouette_cover(px, data.cover_px, cover_w, data.crop,
                                                                cfg.silhouette_knee, self.frames)}

    def record(self, loss: dict[str, torch.Tensor]) -> None:
        """Keep each term's first and latest value."""
        for name, value in loss.items():
            self.losses[name] = (self.losses.get(name, (float(value.detach()), 0.0))[0], float(value.detach()))

    def look_for_capsule_pairs(self, kp: torch.Tensor) -> None:
        if self.radii is not None:
            self.pairs = capsules.candidate_pairs(kp, self.radii, self.both, self.cfg.capsule_margin + CAPSULE_REACH)

    # -- the phases ---------------------------------------------------------------------------------------------

    def align(self) -> None:
        """Each frame's hands aligned to their landmarks alone (``align_steps``), before anything couples them."""
        cfg = self.cfg
        if not (cfg.use_reproj and cfg.align_steps > 0):
            return
        self.aligning = True
        Refiner._run_phase(dataclasses.replace(cfg, steps=cfg.align_steps), self.params, self.objective,
                           lambda _: None, 0, cfg.align_steps)
        self.aligning = False

    def gauss_newton(self, steps: int) -> Iterator[int]:
        """``steps`` Levenberg-Marquardt iterations on the whole objective (capsule pairs looked up at each): a
        step is taken only where the objective falls. Yields the steps done after each (none after the one that
        finds no step that makes it fall: the iterations end there)."""
        if steps <= 0:
            return
        mu = 1e-3
        Js = self.shape_jacobian()
        for index in range(steps):
            _, _, posed, kp = self.keypoints()
            self.look_for_capsule_pairs(kp)
            total, loss = self.objective()
            if total is None or not total.requires_grad:
                return
            self.record(loss)
            grads = torch.autograd.grad(total, self.params, allow_unused=True)
            grads = [torch.zeros_like(p) if g is None else g for p, g in zip(self.params, grads)]
            gx, gs = torch.cat(grads[:3], -1), grads[3]
            dx, ds = gauss_newton.solve(self.normal_matrix(posed, kp, Js).damp(mu), gx, gs, iterations=GN_CG)
            before = [p.detach().clone() for p in self.params]
            for attempt in range(4):  # backtracking along the one solved step (a solve costs ten trials)
                with torch.no_grad():
                    share = 0.5 ** attempt
                    for p, old, step in zip(self.params, before, (dx[..., :3], dx[..., 3:48], dx[..., 48:], ds)):
                        p.copy_(old - share * step)
                    trial = self.objective()[0]
                if trial <= total:
                    mu = max(mu / 3.0, 1e-7) if attempt == 0 else mu * 4.0 ** attempt
                    break
            else:  # no share of the step made it fall: at a minimum of the model
                with torch.no_grad():
                    for p, old in zip(self.params, before):
                        p.copy_(old)
                return
            yield index + 1

    def settle(self) -> Iterator[int]:
        """The first-order phases (``steps``) with the contacts. Phases end where the inside masks are refreshed
        and where the residual gate looks at the fit; yields the steps done after each phase."""
        cfg = self.cfg
        residual_gate = cfg.gate and cfg.residual_gate > 0
        cuts = sorted({0, cfg.steps} | {s for s in cfg.inter_refresh if 0 < s < cfg.steps}
                      | ({cfg.steps // 2} if residual_gate else set()))
        for s0, s1 in itertools.pairwise(cuts):
            betas, rot, _, kp = self.keypoints()
            self.look_for_capsule_pairs(kp)
            if cfg.use_inter and s0 in cfg.inter_refresh:
                near = None
                if self.pairs is not None:  # the frames where some capsules nearly touch
                    near = torch.zeros(self.B, self.T, dtype=torch.bool, device=self.dev)
                    near[self.pairs[0], self.pairs[1]] = True
                self.contact = self.refiner._contacts(betas, rot, self.roots, kp, self.valid, near)
            if cfg.use_reproj and s0 == cfg.steps // 2 and s0 > 0 and residual_gate:
                self.drop_far_landmarks(kp)
            Refiner._run_phase(cfg, self.params, self.objective, self.record, s0, s1)
            yield s1
        if cfg.steps == 0 or not self.losses:
            with torch.no_grad():
                self.record(self.objective()[1])

    def drop_far_landmarks(self, kp: torch.Tensor) -> None:
        """The residual gate: a hand whose landmarks the fit still misses by more than ``residual_gate`` crops
        (median) halfway through is no longer fitted to them (``gating.RESIDUAL``)."""
        e = ((project(kp, self.data.K[:, :, None]) - self.det) ** 2).sum(-1).sqrt() / self.scale_px[..., None, None]
        e = torch.where(self.seen > 0, e, torch.nan)
        bad = (e.nanmedian(-1).values > self.cfg.residual_gate) & (self.det_weight > 0)
        if bad.any():
            self.gate[bad.cpu().numpy()] = RESIDUAL
            self.det_weight = self.det_weight * (~bad).to(self.dt)

    # -- the Gauss-Newton model ---------------------------------------------------------------------------------

    def normal_matrix(self, posed, kp: torch.Tensor, Js: torch.Tensor) -> gauss_newton.Normal:
        """The Gauss-Newton model of the whole objective's sum-of-squares terms at the current state (its posed
        joints, keypoints and shape Jacobian)."""
        cfg, r, frames, dt, dev = self.cfg, self.refiner, self.frames, self.dt, self.dev
        with torch.no_grad():
            J = r._jacobian(posed, kp, self.d_orient, self.pose0 + self.d_pose)
            normal = gauss_newton.Normal.zeros(self.B, self.T, kp)
            if cfg.use_reproj:
                gauss_newton.add_keypoint_term(normal, J, Js, r._reprojection_model(
                    kp, self.det, self.data.K, self.det_weight[..., None] * self.seen, self.scale_px, cfg, frames))
            if cfg.use_accel and self.T > 2:
                link = self.link
                gauss_newton.add_acceleration(normal, J, Js, cfg.w_accel * link[:, :-1] * link[:, 1:] / frames)
            if cfg.use_prior:
                w = 2.0 * self.vf[..., None] / frames
                gauss_newton.add_diagonal(normal, torch.cat([
                    (cfg.w_orient * w).expand_as(self.orient0), (cfg.w_pose * w).expand_as(self.pose0),
                    self.root_w * w], -1))
                normal.shape += 2.0 * cfg.w_betas * self.T / frames * torch.eye(20, dtype=dt, device=dev)
                gauss_newton.add_relative(normal, cfg.w_rel * self.both / frames)
            if self.pairs is not None:
                gauss_newton.add_capsules(normal, kp, J, Js, self.radii, self.pairs, cfg.capsule_margin,
                                          cfg.w_capsules / frames)
            if cfg.use_limits:
                gauss_newton.add_limits(normal, self.pose0 + self.d_pose, r.axes, r.limits[..., 0],
                                        r.limits[..., 1], cfg.w_limits * self.vf / frames)
        return normal

    def shape_jacobian(self) -> torch.Tensor:
        """d keypoints / d shape offsets [B, T, 2, 21, 3, 10] at the current state (forward-mode AD)."""
        with torch.no_grad():
            _, rot, _ = self.state()
            at = self.roots.detach()

        def keypoints_of(shape: torch.Tensor) -> torch.Tensor:
            return self.refiner.skeleton(self.betas0 + shape[:, None], rot, at)

        basis = torch.eye(10, dtype=self.dt, device=self.dev)[:, None, None, :].expand(10, self.B, 2, 10)
        columns = torch.func.vmap(lambda v: torch.func.jvp(keypoints_of, (self.d_betas.detach(),), (v,))[1])(basis)
        return columns.movedim(0, -1)

    def result(self) -> RefineResult:
        """The refined hands; NaN where a hand was not refined."""
        skeleton, K = self.refiner.skeleton, self.data.K[:, :, None]
        with torch.no_grad():
            betas, rot, _, kp = self.keypoints()
            orient = roma.rotmat_to_rotvec(rot[..., 0, :, :])
            keep = self.valid[..., None]
            nan = torch.tensor(float("nan"), dtype=self.dt, device=self.dev)
            return RefineResult(
                betas=torch.where(keep, betas, nan), global_orient=torch.where(keep, orient, nan),
                hand_pose=torch.where(keep, self.pose0 + self.d_pose, nan), roots=torch.where(keep, self.roots, nan),
                transl=torch.where(keep, skeleton.transl(betas, self.roots), nan),
                keypoints=torch.where(keep[..., None], kp, nan),
                keypoints2d=torch.where(keep[..., None], project(kp, K), nan),
                gate=self.gate, losses=self.losses, seconds=0.0)
