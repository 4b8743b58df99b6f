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

    def __post_init__(self) -> None:
        if self.betas.ndim != 4 or self.betas.shape[-2:] != (2, 10):
            raise ValueError(f"betas: expected [B, T, 2, 10], got {tuple(self.betas.shape)}")
        B, T = self.betas.shape[:2]
        expect = {"global_orient": (B, T, 2, 3), "hand_pose": (B, T, 2, 45), "roots": (B, T, 2, 3),
                  "rel_transl": (B, T, 3), "det_keypoints2d": (B, T, 2, 21, 2), "det_score": (B, T, 2),
                  "K": (B, T, 3, 3), "scale_px": (B, T), "valid": (B, T, 2), "link": (B, max(T - 1, 0))}
        for name, shape in expect.items():
            value = getattr(self, name)
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
                raise ValueError(f"{name}: expected a tensor of shape {list(shape)}, got "
                                 f"{tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__}")

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> RefineInput:
        fields = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            fields[f.name] = value.to(device) if value.dtype == torch.bool else value.to(device, dtype)
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
        """Refine ``data`` (on its device and dtype); see the module docstring."""
        cfg = self.config
        start = time.perf_counter()
        dev, dt = data.betas.device, data.betas.dtype
        self._module_to(dev, dt)
        B, T = data.betas.shape[:2]
        valid = data.valid
        vf = valid.to(dt)
        frames = max(int(valid.any(-1).sum()), 1)
        link = (data.link[..., None] & valid[:, 1:] & valid[:, :-1]).to(dt)                # [B, T-1, 2]
        # Unreconstructed hands hold NaN in a result file; any finite value keeps NaN out of the gradients.
        betas0 = torch.nan_to_num(data.betas)
        orient0 = torch.nan_to_num(data.global_orient)
        pose0 = torch.nan_to_num(data.hand_pose)
        roots0 = torch.where(valid[..., None], data.roots, data.roots.new_tensor([0.0, 0.0, 0.5]))
        roots0 = torch.nan_to_num(roots0, nan=0.5)
        rel0 = torch.nan_to_num(data.rel_transl)
        R0 = roma.rotvec_to_rotmat(orient0)
        det = torch.nan_to_num(data.det_keypoints2d)
        scale_px = torch.nan_to_num(data.scale_px, nan=1.0).clamp_min(1.0)

        with torch.no_grad():
            pred_px = project(self.skeleton(betas0, rotmats_of(orient0, pose0), roots0), data.K[:, :, None])
        gate = np.full((B, T, 2), 1, np.int8)
        if cfg.use_reproj:
            gate = gate_detections(
                data.det_keypoints2d.detach().cpu().double().numpy(), data.det_score.detach().cpu().numpy(),
                pred_px.cpu().double().numpy(), valid.cpu().numpy(), data.link.cpu().numpy(),
                min_score=cfg.min_score, swap_margin=cfg.swap_margin, blob_ratio=cfg.blob_ratio,
                max_shift=cfg.max_shift, track_frames=cfg.track_frames)
            if not cfg.gate:  # keep only the confidence test
                gate = np.where(gate == 1, 1, USED).astype(np.int8)
        score = torch.nan_to_num(data.det_score).clamp(0, 1)
        det_weight = torch.as_tensor(gate == USED, device=dev).to(dt) * score                # [B, T, 2]
        seen = torch.isfinite(data.det_keypoints2d).all(-1).to(dt)                           # [B, T, 2, 21]
        if cfg.use_reproj and cfg.rigid_init:
            orient0, roots0, rel0 = self._rigid_start(data, gate == USED, betas0, orient0, pose0, roots0, rel0,
                                                      scale_px)
            R0 = roma.rotvec_to_rotmat(orient0)

        d_orient = torch.zeros_like(orient0, requires_grad=True)
        d_pose = torch.zeros_like(pose0, requires_grad=True)
        d_betas = torch.zeros(B, 2, 10, dtype=dt, device=dev, requires_grad=True)
        roots = roots0.clone().requires_grad_(True)
        params = [d_orient, d_pose, roots, d_betas]
        root_w = roots0.new_tensor([cfg.w_root_xy, cfg.w_root_xy, cfg.w_root_z])
        both = valid.all(-1).to(dt)
        ctx: dict = {"contact": None, "pairs": None, "det_weight": det_weight}
        radii = self._radii(betas0, valid) if cfg.use_capsules and bool(both.any()) else None
        losses: dict[str, tuple[float, float]] = {}

        def state():
            rot = rotmats_of(orient0, pose0 + d_pose)
            rot = torch.cat([(roma.rotvec_to_rotmat(d_orient) @ R0)[..., None, :, :], rot[..., 1:, :, :]], -3)
            betas = betas0 + d_betas[:, None]
            return betas, rot, self.skeleton.pose(betas, rot, roots)

        def objective() -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
            betas, _, posed = state()
            kp = self.skeleton.keypoints(betas, posed)
            loss = {}
            if cfg.use_reproj:
                loss["reproj"] = cfg.w_reproj * terms.reprojection(
                    project(kp, data.K[:, :, None]), det, ctx["det_weight"][..., None] * seen,
                    scale_px[..., None].expand(B, T, 2), cfg.robust, cfg.robust_scale, frames)
            if ctx.get("align"):  # per-frame alignment to the landmarks first: no coupling between frames or hands
                if cfg.use_limits:
                    loss["limits"] = cfg.w_limits * terms.joint_limits(
                        pose0 + d_pose, self.axes, self.limits[..., 0], self.limits[..., 1], vf, frames)
                loss["prior"] = (terms.prior(d_pose, 0.0, cfg.w_pose * vf[..., None], frames)
                                 + terms.prior(d_betas, 0.0, cfg.w_betas * T, frames))
                return sum(loss.values()), loss
            if cfg.use_smooth and T > 1:
                loss["smooth"] = cfg.w_smooth * terms.smoothness(kp, link, frames)
            if cfg.use_accel and T > 2:
                loss["accel"] = cfg.w_accel * terms.acceleration(kp, link, frames)
            if cfg.use_inter and ctx["contact"] is not None:
                inside, nearest = ctx["contact"]
                points = self.skeleton.vertices_at(betas, posed, inside)
                partners = self.skeleton.vertices_at(betas, posed, nearest)
                loss["inter"] = cfg.w_inter * terms.interpenetration(points, partners, cfg.alpha, frames)
            if ctx["pairs"] is not None:
                loss["capsules"] = cfg.w_capsules * terms.capsule_collision(kp, radii, ctx["pairs"],
                                                                           cfg.capsule_margin, frames)
            if cfg.use_prior:
                loss["prior"] = (terms.prior(d_pose, 0.0, cfg.w_pose * vf[..., None], frames)
                                 + terms.prior(d_orient, 0.0, cfg.w_orient * vf[..., None], frames)
                                 + terms.prior(d_betas, 0.0, cfg.w_betas * T, frames)
                                 + terms.prior(roots, roots0, root_w * vf[..., None], frames)
                                 + terms.prior(roots[..., 1, :] - roots[..., 0, :], rel0,
                                               cfg.w_rel * both[..., None], frames))
            if cfg.use_limits:
                loss["limits"] = cfg.w_limits * terms.joint_limits(
                    pose0 + d_pose, self.axes, self.limits[..., 0], self.limits[..., 1], vf, frames)
            return (sum(loss.values()) if loss else None), loss

        def record(loss: dict[str, torch.Tensor]) -> None:
            for name, value in loss.items():
                losses[name] = (losses.get(name, (float(value.detach()), 0.0))[0], float(value.detach()))

        def normal_matrix(posed, kp: torch.Tensor, Js: torch.Tensor) -> gauss_newton.Normal:
            """The Gauss-Newton model of the whole objective's sum-of-squares terms at the current state (its posed
            joints, keypoints and shape Jacobian)."""
            with torch.no_grad():
                J = self._jacobian(posed, kp, d_orient, pose0 + d_pose)
                normal = gauss_newton.Normal.zeros(B, T, kp)
                if cfg.use_reproj:
                    gauss_newton.add_keypoint_term(normal, J, Js, self._reprojection_model(
                        kp, det, data.K, ctx["det_weight"][..., None] * seen, scale_px, cfg, frames))
                if cfg.use_accel and T > 2:
                    gauss_newton.add_acceleration(normal, J, Js, cfg.w_accel * link[:, :-1] * link[:, 1:] / frames)
                if cfg.use_prior:
                    w = 2.0 * vf[..., None] / frames
                    gauss_newton.add_diagonal(normal, torch.cat([
                        (cfg.w_orient * w).expand_as(orient0), (cfg.w_pose * w).expand_as(pose0), root_w * w], -1))
                    normal.shape += 2.0 * cfg.w_betas * T / frames * torch.eye(20, dtype=dt, device=dev)
                    gauss_newton.add_relative(normal, cfg.w_rel * both / frames)
                if ctx["pairs"] is not None:
                    gauss_newton.add_capsules(normal, kp, J, Js, radii, ctx["pairs"], cfg.capsule_margin,
                                              cfg.w_capsules / frames)
                if cfg.use_limits:
                    gauss_newton.add_limits(normal, pose0 + d_pose, self.axes, self.limits[..., 0],
                                            self.limits[..., 1], cfg.w_limits * vf / frames)
            return normal

        def shape_jacobian() -> torch.Tensor:
            """d keypoints / d shape offsets [B, T, 2, 21, 3, 10] at the current state (forward-mode AD)."""
            with torch.no_grad():
                _, rot, _ = state()
                at = roots.detach()

            def keypoints_of(shape: torch.Tensor) -> torch.Tensor:
                return self.skeleton(betas0 + shape[:, None], rot, at)

            basis = torch.eye(10, dtype=dt, device=dev)[:, None, None, :].expand(10, B, 2, 10)
            columns = torch.func.vmap(lambda v: torch.func.jvp(keypoints_of, (d_betas.detach(),), (v,))[1])(basis)
            return columns.movedim(0, -1)

        def gauss_newton_phase(steps: int) -> None:
            """``steps`` Levenberg-Marquardt iterations on the whole objective (capsule pairs looked up at each):
            a step is taken only where the objective falls."""
            mu = 1e-3
            Js = shape_jacobian()
            for _step in range(steps):
                with torch.no_grad():
                    betas, _, posed = state()
                    kp = self.skeleton.keypoints(betas, posed)
                if radii is not None:
                    ctx["pairs"] = capsules.candidate_pairs(kp, radii, both, cfg.capsule_margin + CAPSULE_REACH)
                total, loss = objective()
                if total is None or not total.requires_grad:
                    return
                record(loss)
                grads = torch.autograd.grad(total, params, allow_unused=True)
                grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
                gx, gs = torch.cat(grads[:3], -1), grads[3]
                dx, ds = gauss_newton.solve(normal_matrix(posed, kp, Js).damp(mu), gx, gs, iterations=GN_CG)
                before = [p.detach().clone() for p in params]
                for attempt in range(4):  # backtracking along the one solved step (a solve costs ten trials)
                    with torch.no_grad():
                        share = 0.5 ** attempt
                        for p, old, step in zip(params, before, (dx[..., :3], dx[..., 3:48], dx[..., 48:], ds)):
                            p.copy_(old - share * step)
                        trial = objective()[0]
                    if trial <= total:
                        mu = max(mu / 3.0, 1e-7) if attempt == 0 else mu * 4.0 ** attempt
                        break
                else:  # no share of the step made it fall: at a minimum of the model
                    with torch.no_grad():
                        for p, old in zip(params, before):
                            p.copy_(old)
                    break

        if cfg.use_reproj and cfg.align_steps > 0:
            ctx["align"] = True
            self._run_phase(dataclasses.replace(cfg, steps=cfg.align_steps), params, objective, lambda _: None,
                            0, cfg.align_steps)
            ctx["align"] = False
        if cfg.gn_steps > 0:  # the whole objective, before the first-order phases that settle the contacts
            gauss_newton_phase(cfg.gn_steps)
        # Phases end where the inside masks are refreshed and where the residual gate looks at the fit.
        cuts = sorted({0, cfg.steps} | {s for s in cfg.inter_refresh if 0 < s < cfg.steps}
                      | ({cfg.steps // 2} if cfg.gate and cfg.residual_gate > 0 else set()))
        for s0, s1 in itertools.pairwise(cuts):
            with torch.no_grad():
                betas, rot, posed = state()
                kp = self.skeleton.keypoints(betas, posed)
            if radii is not None:
                ctx["pairs"] = capsules.candidate_pairs(kp, radii, both, cfg.capsule_margin + CAPSULE_REACH)
            if cfg.use_inter and s0 in cfg.inter_refresh:
                near = None
                if ctx["pairs"] is not None:  # the frames where some capsules nearly touch
                    near = torch.zeros(B, T, dtype=torch.bool, device=dev)
                    near[ctx["pairs"][0], ctx["pairs"][1]] = True
                ctx["contact"] = self._contacts(betas, rot, roots, kp, valid, near)
            if cfg.use_reproj and s0 == cfg.steps // 2 and s0 > 0 and cfg.gate and cfg.residual_gate > 0:
                e = ((project(kp, data.K[:, :, None]) - det) ** 2).sum(-1).sqrt() / scale_px[..., None, None]
                e = torch.where(seen > 0, e, torch.nan)
                bad = (e.nanmedian(-1).values > cfg.residual_gate) & (ctx["det_weight"] > 0)
                if bad.any():
                    gate[bad.cpu().numpy()] = RESIDUAL
                    ctx["det_weight"] = ctx["det_weight"] * (~bad).to(dt)
            self._run_phase(cfg, params, objective, record, s0, s1)
        if cfg.steps == 0 or not losses:
            with torch.no_grad():
                record(objective()[1])

        with torch.no_grad():
            betas, rot, posed = state()
            kp = self.skeleton.keypoints(betas, posed)
            orient = roma.rotmat_to_rotvec(rot[..., 0, :, :])
            pose = (pose0 + d_pose)
            keep = valid[..., None]
            nan = torch.tensor(float("nan"), dtype=dt, device=dev)
            out = RefineResult(
                betas=torch.where(keep, betas, nan), global_orient=torch.where(keep, orient, nan),
                hand_pose=torch.where(keep, pose, nan), roots=torch.where(keep, roots, nan),
                transl=torch.where(keep, self.skeleton.transl(betas, roots), nan),
                keypoints=torch.where(keep[..., None], kp, nan),
                keypoints2d=torch.where(keep[..., None], project(kp, data.K[:, :, None]), nan),
                gate=gate, losses=losses, seconds=0.0)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
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
