"""Gauss-Newton (Levenberg-Marquardt) steps for the refinement's temporal phase.

Why: the acceleration term couples every frame to its neighbours with a stiffness far above the reprojection
term's, and first-order steps remove frame-to-frame jitter slowly. Measured on the real clips
(BENCHMARKS.md, "Test-time refinement" (d)): 30 L-BFGS iterations ended far from the objective's minimum (2D error
1.4-2.8x and jitter up to 2x the minimum's), which L-BFGS reached only after 400 iterations, 10-20x over the 5 ms
per frame budget. A Gauss-Newton step solves the objective's local least-squares model with its temporal
coupling, so a handful of them reach what hundreds of gradient steps do.

The unknowns are, per hand-frame, the 51 numbers the fit moves (orientation offset 3, pose 45, wrist 3) and, per
sequence and hand, the 10 shape offsets. The normal matrix is block-pentadiagonal in time (the acceleration term
couples frames t-2..t+2), with a cross-hand block per frame (relative-translation prior, capsules) and a border for
the shape; it is never formed densely. Each hand's band is factorised exactly (block Cholesky, one pass over the
frames batched over sequences and hands), and a few conjugate-gradient iterations preconditioned by it take up
what couples the hands.

Cost (BENCHMARKS.md, "Test-time refinement" (e)): the default four steps are about two thirds of the default
refinement's time. What made them affordable: the Jacobian by finger group (:class:`FingerJacobian`), one solve
per step with backtracking along it, four conjugate-gradient iterations. What did not: the bands in float32 (the
loops over the frames are bound by per-call cost and memory traffic, not arithmetic), reusing a step's matrix for
the next (the IRLS weights and capsule pairs change too much: the reused steps were rejected).

The gradient is always the exact one of the whole objective (autograd); the normal matrix is the Gauss-Newton
model of the terms that are sums of squares (reprojection with robust IRLS weights, acceleration, priors, joint
limits, capsules), with keypoint Jacobians of the kinematic chain in closed form (fingertips move with their
dominant joint; pose blend shapes are left out). Terms outside the model (eq. 5's norms, eq. 6) act through the
gradient, and the Levenberg-Marquardt damping takes a step only where the true objective falls.
"""

from __future__ import annotations

import dataclasses

import torch

from core_model.refine.capsules import SEGMENTS, capsule_axes, closest_points
from core_model.refine.kinematics import HandSkeleton, Posed

PARAMS = 51
"""Per hand-frame: orientation offset (0:3), hand pose (3:48), wrist position (48:51)."""
SHAPE = 10


def skew(v: torch.Tensor) -> torch.Tensor:
    """[..., 3] -> [..., 3, 3] with skew(a) @ b = a x b."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).unflatten(-1, (3, 3))


def right_jacobian(rotvec: torch.Tensor) -> torch.Tensor:
    """SO(3) right Jacobian [..., 3, 3]: exp(w + dw) = exp(w) exp(J_r(w) dw) to first order."""
    angle2 = (rotvec * rotvec).sum(-1, keepdim=True)[..., None]
    angle = angle2.sqrt()
    small = angle < 1e-4
    safe = torch.where(small, torch.ones_like(angle), angle)
    a = torch.where(small, 0.5 - angle2 / 24.0, (1 - torch.cos(safe)) / safe**2)
    b = torch.where(small, 1.0 / 6.0 - angle2 / 120.0, (safe - torch.sin(safe)) / safe**3)
    k = skew(rotvec)
    return torch.eye(3, dtype=rotvec.dtype, device=rotvec.device) - a * k + b * (k @ k)


FINGER_COLUMNS = 15
"""Per finger group, the unknowns its keypoints can depend on: orientation offset (0:3 of the 51), the finger's
three joints (9, contiguous in MANO's order: 3 + 9 f .. 12 + 9 f) and the wrist position (48:51)."""
_SHARED = [0, 1, 2, 12, 13, 14]
"""The orientation and wrist columns within a finger group's 15."""


@dataclasses.dataclass
class FingerJacobian:
    """d keypoints / d (orientation offset, pose, wrist) by finger group: blocks [..., 2, 5, 5, 3, 15], finger f's
    slot s holding keypoint ``slots[f, s]`` (21: an empty slot, zeros) against the group's
    :data:`FINGER_COLUMNS`.

    Why not [..., 21, 3, 51]: a keypoint moves with the orientation, the wrist and its own finger's joints only, so
    the dense Jacobian is three quarters zeros and its products (the normal matrix's blocks) take ten times the
    arithmetic of the grouped ones.
    The wrist and the knuckles move with the orientation and wrist alone; they fill the groups' spare slots."""

    blocks: torch.Tensor
    slots: torch.Tensor

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """Per-keypoint values [..., 21, 3, k] into the slots [..., 5, 5, 3, k] (zeros in empty ones)."""
        padded = torch.cat([x, torch.zeros_like(x[..., :1, :, :])], -3)
        return padded[..., self.slots.to(x.device), :, :]

    def rows(self, index: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Dense rows [K, 3, 51] of the keypoints at index (b, t, hand, keypoint), each K long."""
        *frame, keypoint = index
        finger, slot = _slot_of(self.slots.to(keypoint.device))
        f, s = finger[keypoint], slot[keypoint]
        values = self.blocks[(*frame, f, s)]                                                   # [K, 3, 15]
        columns = _finger_columns(keypoint.device)[f]                                          # [K, 15]
        out = values.new_zeros(len(keypoint), 3, PARAMS)
        return out.scatter_(-1, columns[:, None, :].expand(-1, 3, -1), values)

    def dense(self) -> torch.Tensor:
        """[..., 2, 21, 3, 51]."""
        lead = self.blocks.shape[:-4]                                                          # [..., 2]
        n = self.blocks[..., 0, 0, 0, 0].numel()
        flat = FingerJacobian(self.blocks.reshape(n, 5, 5, 3, FINGER_COLUMNS), self.slots)
        k = torch.arange(21, device=self.blocks.device)
        idx = torch.arange(n, device=k.device)
        rows = flat.rows((idx.repeat_interleave(21), k.repeat(n)))
        return rows.view(*lead, 21, 3, PARAMS)


def _slot_of(slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each keypoint's finger and slot in ``slots`` [5, 5]."""
    finger, slot = (torch.empty(22, dtype=torch.long, device=slots.device) for _ in range(2))
    f, s = torch.meshgrid(torch.arange(5, device=slots.device), torch.arange(5, device=slots.device), indexing="ij")
    finger[slots.flatten()], slot[slots.flatten()] = f.flatten(), s.flatten()
    return finger[:21], slot[:21]


def _finger_columns(device: torch.device) -> torch.Tensor:
    """[5, 15]: the 51 unknowns of each finger group (:data:`FINGER_COLUMNS`)."""
    f = torch.arange(5, device=device)[:, None]
    own = 3 + 9 * f + torch.arange(9, device=device)
    orient, wrist = torch.arange(3, device=device), torch.arange(48, 51, device=device)
    return torch.cat([orient.expand(5, 3), own, wrist.expand(5, 3)], -1)


class KeypointJacobian:
    """d keypoints / d (orientation offset, pose, wrist) per hand-frame, from the posed joints, by finger
    (:class:`FingerJacobian`)."""

    def __init__(self, skeleton: HandSkeleton) -> None:
        parents = skeleton.parents
        order = skeleton.order.tolist()                                    # ours <- MANO 16 joints + 5 tips
        owner = skeleton.vw[skeleton.hand_of_tip, skeleton.tips].argmax(-1)  # [2, 5] dominant joint of each tip
        moved = torch.zeros(2, 22, 16)                                     # keypoint 21: the empty slot
        for hand in range(2):
            for k, m in enumerate(order):
                joint = int(owner[hand, m - 16]) if m >= 16 else parents[m]  # a joint turns what lies beyond it
                while joint >= 0:
                    moved[hand, k, joint] = 1.0
                    joint = parents[joint]
        chains = [[1 + 3 * f, 2 + 3 * f, 3 + 3 * f] for f in range(5)]
        if len(parents) != 16 or any(parents[c[0]] != 0 or parents[c[1]] != c[0] or parents[c[2]] != c[1]
                                     for c in chains):
            raise ValueError("skeleton: expected MANO's kinematic tree (five chains of three joints, 1-3, ..., 13-15)")
        groups: list[list[int]] = [[] for _ in range(5)]
        rooted = []                                                        # moved by the orientation alone
        for k in range(21):
            turns = {j for j in range(1, 16) if moved[:, k, j].any()}
            if not turns:
                rooted.append(k)
                continue
            fingers = {(j - 1) // 3 for j in turns}
            if len(fingers) != 1:
                raise ValueError(f"skeleton: keypoint {k} moves with joints of several fingers {sorted(turns)}")
            groups[fingers.pop()].append(k)
        for k in rooted:                                                   # into the emptiest groups
            min(groups, key=len).append(k)
        if max(len(g) for g in groups) > 5:
            raise ValueError(f"skeleton: a finger group of more than five keypoints {groups}")
        self.slots = torch.tensor([g + [21] * (5 - len(g)) for g in groups])                    # [5, 5]
        self.joints = torch.tensor([[0, *c] for c in chains])                                    # [5, 4]
        self.moved = moved[:, self.slots[:, :, None], self.joints[:, None, :]]                  # [2, 5, 5, 4]
        self.real = (self.slots < 21).float()                                                    # [5, 5]

    def __call__(self, posed: Posed, keypoints: torch.Tensor, d_orient: torch.Tensor,
                 pose: torch.Tensor) -> FingerJacobian:
        """posed and keypoints [..., 2, 21, 3] at d_orient [..., 2, 3], pose [..., 2, 45]."""
        dev = keypoints.device
        moved, real, slots = self.moved.to(keypoints), self.real.to(keypoints), self.slots.to(dev)
        at = torch.cat([keypoints, torch.zeros_like(keypoints[..., :1, :])], -2)[..., slots, :]   # [..., 2, 5, 5, 3]
        joints = posed.P[..., self.joints.to(dev), :]                                            # [..., 2, 5, 4, 3]
        # A turn w (world frame) of joint j moves keypoint k by w x (k - P_j).
        lever = -skew(at[..., :, :, None, :] - joints[..., :, None, :, :])                     # [..., 2, 5, 5, 4, 3, 3]
        local = right_jacobian(pose.unflatten(-1, (15, 3)))                                      # [..., 2, 15, 3, 3]
        # the global rotation is exp(d_orient) R0: a change of d_orient turns the hand in the world frame by
        # J_l(d_orient) = J_r(-d_orient) times it
        world = torch.cat([right_jacobian(-d_orient)[..., None, :, :], posed.R[..., 1:, :, :] @ local], -3)
        world = world[..., self.joints.to(dev), :, :]                                            # [..., 2, 5, 4, 3, 3]
        turn = lever @ world[..., :, None, :, :, :] * moved[..., None, None]                  # [..., 2, 5, 5, 4, 3, 3]
        eye = torch.eye(3, dtype=keypoints.dtype, device=dev) * real[..., None, None]            # [5, 5, 3, 3]
        shift = eye.expand(*turn.shape[:-3], 3, 3)
        return FingerJacobian(torch.cat([turn.transpose(-3, -2).flatten(-2), shift], -1), self.slots)


def _add_grouped(target: torch.Tensor, blocks: torch.Tensor) -> None:
    """Add per-finger blocks [..., 5, 15, 15] (rows and columns :data:`FINGER_COLUMNS`) into target [..., 51, 51]
    in place: the orientation and wrist parts summed over the fingers, each finger's own on its diagonal block."""
    shared = blocks[..., _SHARED, :][..., _SHARED].sum(-3)                                     # [..., 6, 6]
    ends = (slice(0, 3), slice(48, 51))
    for a in range(2):
        for b in range(2):
            target[..., ends[a], ends[b]] += shared[..., 3 * a:3 * a + 3, 3 * b:3 * b + 3]
    own = target[..., 3:48, 3:48].unflatten(-1, (5, 9)).unflatten(-3, (5, 9))                 # [..., 5, 9, 5, 9]
    torch.diagonal(own, dim1=-4, dim2=-2).add_(blocks[..., 3:12, 3:12].movedim(-3, -1))
    for end, cols in zip(ends, (slice(0, 3), slice(12, 15))):
        target[..., 3:48, end].unflatten(-2, (5, 9)).add_(blocks[..., 3:12, cols])
        target[..., end, 3:48].unflatten(-1, (5, 9)).add_(blocks[..., cols, 3:12].movedim(-3, -2))


def _add_grouped_rows(target: torch.Tensor, rows: torch.Tensor) -> None:
    """Add per-finger rows [..., 5, 15, k] into target [..., 51, k] in place."""
    shared = rows[..., _SHARED, :].sum(-3)
    target[..., 0:3, :] += shared[..., :3, :]
    target[..., 48:51, :] += shared[..., 3:, :]
    target[..., 3:48, :].unflatten(-2, (5, 9)).add_(rows[..., 3:12, :])


@dataclasses.dataclass
class Normal:
    """The Gauss-Newton normal matrix in blocks, B sequences of T frames:

    frame [B, T, 2, 51, 51] each hand-frame's own block; cross [B, T, 51, 51] right-left coupling within a frame;
    next [B, T-1, 2, 51, 51] frame t with t+1; skip [B, T-2, 2, 51, 51] frame t with t+2; border [B, T, 2, 51, 20]
    hand-frame with both hands' shapes (right's 0:10, left's 10:20); shape [B, 20, 20].
    """

    frame: torch.Tensor
    cross: torch.Tensor
    next: torch.Tensor
    skip: torch.Tensor
    border: torch.Tensor
    shape: torch.Tensor

    @classmethod
    def zeros(cls, B: int, T: int, like: torch.Tensor) -> Normal:
        z = lambda *s: like.new_zeros(s)  # noqa: E731
        return cls(z(B, T, 2, PARAMS, PARAMS), z(B, T, PARAMS, PARAMS), z(B, max(T - 1, 0), 2, PARAMS, PARAMS),
                   z(B, max(T - 2, 0), 2, PARAMS, PARAMS), z(B, T, 2, PARAMS, 2 * SHAPE), z(B, 2 * SHAPE, 2 * SHAPE))

    def matvec(self, x: torch.Tensor, xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The product with x [B, T, 2, 51] and xs [B, 2, 10]. (einsum, not batched @: for many small
        matrix-vector products it is several times faster on the CPU.)"""
        mv, tmv = "...ij,...j->...i", "...ji,...j->...i"
        flat = xs.flatten(1)
        y = torch.einsum(mv, self.frame, x) + torch.einsum("bthij,bj->bthi", self.border, flat)
        y[:, :, 0] += torch.einsum(mv, self.cross, x[:, :, 1])
        y[:, :, 1] += torch.einsum(tmv, self.cross, x[:, :, 0])
        if self.next.shape[1]:
            y[:, :-1] += torch.einsum(mv, self.next, x[:, 1:])
            y[:, 1:] += torch.einsum(tmv, self.next, x[:, :-1])
        if self.skip.shape[1]:
            y[:, :-2] += torch.einsum(mv, self.skip, x[:, 2:])
            y[:, 2:] += torch.einsum(tmv, self.skip, x[:, :-2])
        ys = torch.einsum("bthij,bthi->bj", self.border, x) + torch.einsum(mv, self.shape, flat)
        return y, ys.view_as(xs)

    def damp(self, mu: float) -> Normal:
        """Levenberg-Marquardt: the diagonal scaled by 1 + mu (plus a floor that keeps empty blocks solvable)."""
        def lift(m: torch.Tensor) -> torch.Tensor:
            out = m.clone()
            d = torch.diagonal(out, dim1=-2, dim2=-1)
            d.add_(mu * d + 1e-6 * d.mean(-1, keepdim=True).clamp_min(1e-12) + 1e-12)
            return out

        return dataclasses.replace(self, frame=lift(self.frame), shape=lift(self.shape))


class BandSolver:
    """Exact solves with each hand's part of the normal matrix alone: its frames' band (51x51 blocks, two off the
    diagonal) by a block Cholesky factorisation, its shape by the Schur complement. One pass over the frames,
    each step batched over sequences and hands; float64, as the acceleration term makes the band far stiffer than
    the priors. What it leaves out (the right-left blocks within a frame, the shape of one hand against the
    other's frames) the conjugate gradients of :func:`solve` take up."""

    def __init__(self, normal: Normal) -> None:
        B, T = normal.frame.shape[:2]
        # one frame's blocks at a time to float64 and [B*2, ...] (converting the whole band first costs more than
        # the factorisation's arithmetic)
        at = lambda m, t: m[:, t].to(torch.float64).flatten(0, 1)  # noqa: E731
        own = torch.stack([normal.border[:, :, h, :, h * SHAPE:(h + 1) * SHAPE] for h in range(2)], 1)
        self.C = own.to(torch.float64).flatten(0, 1)                                          # [B*2, T, 51, 10]
        self.sequences = B
        tri = torch.linalg.solve_triangular
        self.L0, self.L1, self.L2 = [], [], []
        for t in range(T):
            a = at(normal.frame, t)
            l2 = tri(self.L0[t - 2], at(normal.skip, t - 2), upper=False).transpose(-1, -2) if t >= 2 else None
            l1 = None
            if t >= 1:
                e = at(normal.next, t - 1)
                e = e if l2 is None else e - self.L1[t - 1] @ l2.transpose(-1, -2)
                l1 = tri(self.L0[t - 1], e, upper=False).transpose(-1, -2)                     # L[t, t-1]
                a = a - l1 @ l1.transpose(-1, -2)
            if l2 is not None:
                a = a - l2 @ l2.transpose(-1, -2)
            self.L0.append(torch.linalg.cholesky(a))
            self.L1.append(l1)
            self.L2.append(l2)
        self.ZC = self._band(self.C)
        shape = torch.stack([normal.shape[:, h * SHAPE:(h + 1) * SHAPE, h * SHAPE:(h + 1) * SHAPE] for h in range(2)],
                            1).to(torch.float64).flatten(0, 1)
        self.schur = torch.linalg.cholesky(shape - torch.einsum("btpi,btpj->bij", self.C, self.ZC))

    def _band(self, rhs: torch.Tensor) -> torch.Tensor:
        """The band's inverse times rhs [B*2, T, 51, k]."""
        tri, T = torch.linalg.solve_triangular, rhs.shape[1]
        y = [rhs[:, 0]] * T
        for t in range(T):                                                                    # L y = rhs
            b = rhs[:, t]
            if t >= 1:
                b = b - self.L1[t] @ y[t - 1]
            if t >= 2:
                b = b - self.L2[t] @ y[t - 2]
            y[t] = tri(self.L0[t], b, upper=False)
        for t in reversed(range(T)):                                                          # L^T z = y
            b = y[t]
            if t + 1 < T:
                b = b - self.L1[t + 1].transpose(-1, -2) @ y[t + 1]
            if t + 2 < T:
                b = b - self.L2[t + 2].transpose(-1, -2) @ y[t + 2]
            y[t] = tri(self.L0[t].transpose(-1, -2), b, upper=True)
        return torch.stack(y, 1)

    def __call__(self, rx: torch.Tensor, rs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each hand's part of the matrix, inverse, times rx [B, T, 2, 51] and rs [B, 2, 10]."""
        gx = rx.to(torch.float64).transpose(1, 2).flatten(0, 1)[..., None]                    # [B*2, T, 51, 1]
        zg = self._band(gx)[..., 0]
        r = rs.to(torch.float64).flatten(0, 1) - torch.einsum("btpi,btp->bi", self.C, zg)
        xs = torch.cholesky_solve(r[..., None], self.schur)[..., 0]                           # [B*2, 10]
        x = zg - torch.einsum("btpi,bi->btp", self.ZC, xs)
        return (x.unflatten(0, (self.sequences, 2)).transpose(1, 2).to(rx.dtype),
                xs.view_as(rs).to(rs.dtype))


def solve(normal: Normal, gx: torch.Tensor, gs: torch.Tensor, iterations: int = 8, tol: float = 1e-3
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """H^-1 g for x [B, T, 2, 51] and the shape [B, 2, 10]: conjugate gradients on the whole matrix, preconditioned
    by each hand's exact part (:class:`BandSolver`), so that a few iterations settle what couples the hands."""
    precondition = BandSolver(normal)
    x, xs = torch.zeros_like(gx), torch.zeros_like(gs)
    rx, rs = gx.clone(), gs.clone()
    zx, zs = precondition(rx, rs)
    px, ps = zx, zs
    rz = (rx * zx).sum() + (rs * zs).sum()
    start = rz.abs()
    for iteration in range(iterations):
        qx, qs = normal.matvec(px, ps)
        alpha = rz / ((px * qx).sum() + (ps * qs).sum()).clamp_min(1e-30)
        x, xs = x + alpha * px, xs + alpha * ps
        rx, rs = rx - alpha * qx, rs - alpha * qs
        if iteration == iterations - 1:  # the last: no direction after it
            break
        zx, zs = precondition(rx, rs)
        rz_new = (rx * zx).sum() + (rs * zs).sum()
        if rz_new.abs() <= tol**2 * start:
            break
        px, ps = zx + (rz_new / rz) * px, zs + (rz_new / rz) * ps
        rz = rz_new
    return x, xs


# ---------------------------------------------------------------------------------------------- the terms' blocks


_GRAM = "...fkcp,...fkcq->...fpq"
"""Per finger group, the product of two grouped Jacobians over its slots and coordinates."""


def add_keypoint_term(normal: Normal, J: FingerJacobian, Js: torch.Tensor, Q: torch.Tensor) -> None:
    """A per-frame term whose Gauss-Newton matrix in keypoint space is Q [B, T, 2, 21, 3, 3] (block-diagonal over
    keypoints): J and Js [B, T, 2, 21, 3, 10] the keypoints' Jacobians."""
    Qg, Jsg = J.gather(Q), J.gather(Js)                                              # [B, T, 2, 5, 5, 3, 3 | 10]
    QJ, QJs = Qg @ J.blocks, Qg @ Jsg
    _add_grouped(normal.frame, torch.einsum(_GRAM, J.blocks, QJ))
    for h in range(2):
        own = slice(h * SHAPE, (h + 1) * SHAPE)
        _add_grouped_rows(normal.border[:, :, h, :, own], torch.einsum(_GRAM, J.blocks[:, :, h], QJs[:, :, h]))
        normal.shape[:, own, own] += torch.einsum("btfkcp,btfkcq->bpq", Jsg[:, :, h], QJs[:, :, h])


def add_acceleration(normal: Normal, J: FingerJacobian, Js: torch.Tensor, weight: torch.Tensor) -> None:
    """``sum weight_t |k_t - 2 k_{t+1} + k_{t+2}|^2`` over keypoints: weight [B, T-2, 2] (the term's weight, the
    triples' links and the 1/frames)."""
    if weight.shape[1] == 0:
        return
    F, Fs = J.blocks, J.gather(Js)                                                   # [B, T, 2, 5, 5, 3, 15 | 10]
    gram = lambda a, b: torch.einsum(_GRAM, a, b)  # noqa: E731
    B, T = F.shape[:2]
    # the weight of the triple starting at frame s is at s + 2, zero beyond the triples
    w = F.new_zeros(B, T + 2, 2)
    w[:, 2:T] = 2.0 * weight
    w = w[..., None, None, None]
    # frame t is member 0, 1 or 2 (coefficients 1, -2, 1) of the triples starting at t, t-1, t-2
    _add_grouped(normal.frame, gram(F, F) * (w[:, 2:] + 4.0 * w[:, 1:-1] + w[:, :-2]))
    _add_grouped(normal.next, gram(F[:, :-1], F[:, 1:]) * (-2.0 * (w[:, 2:-1] + w[:, 1:-2])))
    _add_grouped(normal.skip, gram(F[:, :-2], F[:, 2:]) * w[:, 2:-2])
    shape_acc = Fs[:, :-2] - 2 * Fs[:, 1:-1] + Fs[:, 2:]                            # [B, T-2, 2, 5, 5, 3, 10]
    wt = w[:, 2:T]
    for h in range(2):
        own = slice(h * SHAPE, (h + 1) * SHAPE)
        for i, c in enumerate((1.0, -2.0, 1.0)):
            _add_grouped_rows(normal.border[:, i:T - 2 + i, h, :, own],
                              c * wt[:, :, h] * gram(F[:, i:T - 2 + i, h], shape_acc[:, :, h]))
        normal.shape[:, own, own] += (wt[:, :, h, 0] * torch.einsum("btfkcp,btfkcq->btpq", shape_acc[:, :, h],
                                                                    shape_acc[:, :, h])).sum(1)


def add_diagonal(normal: Normal, diag: torch.Tensor) -> None:
    """A quadratic term with a diagonal matrix [B, T, 2, 51] on the per-frame unknowns."""
    torch.diagonal(normal.frame, dim1=-2, dim2=-1).add_(diag)


def add_relative(normal: Normal, weight: torch.Tensor) -> None:
    """``sum weight |root_left - root_right - target|^2``; weight [B, T] (with the 1/frames)."""
    w = 2.0 * weight[..., None]
    eye = torch.arange(48, 51)
    normal.frame[:, :, 0, eye, eye] += w
    normal.frame[:, :, 1, eye, eye] += w
    normal.cross[:, :, eye, eye] -= w


def add_limits(normal: Normal, pose: torch.Tensor, axes: torch.Tensor, low: torch.Tensor, high: torch.Tensor,
               weight: torch.Tensor) -> None:
    """``terms.joint_limits``' Gauss-Newton blocks: 3x3 per joint where an angle is beyond its limit; pose
    [B, T, 2, 45], axes [2, 15, 3, 3], low/high [2, 15, 3], weight [B, T, 2] (with the term's weight, 1/frames)."""
    angles = torch.einsum("hjdc,...hjc->...hjd", axes, pose.unflatten(-1, (15, 3)))
    active = ((angles < low) | (angles > high)).to(pose.dtype)                        # [B, T, 2, 15, 3]
    blocks = 2.0 * weight[..., None, None, None] * torch.einsum("hjdc,...hjd,hjde->...hjce", axes, active, axes)
    idx = torch.arange(15)
    for a in range(3):
        for b in range(3):
            normal.frame[..., 3 + 3 * idx + a, 3 + 3 * idx + b] += blocks[..., a, b]


def add_capsules(normal: Normal, keypoints: torch.Tensor, J: FingerJacobian, Js: torch.Tensor, radii: torch.Tensor,
                 pairs: tuple[torch.Tensor, ...], margin: float, weight: float) -> None:
    """``terms.capsule_collision``'s Gauss-Newton blocks, ``2 w g g^T`` per overlapping pair with g the gradient of
    its overlap (the common normal at the closest points, shared by the segments' ends as the closest points lie
    between them; the fingertip segments' shortening is left out of g)."""
    b_, t_, s, t = pairs
    if s.numel() == 0:
        return
    index = torch.as_tensor(SEGMENTS, device=keypoints.device)
    a, e = capsule_axes(keypoints, radii)
    right, left = (b_, t_, torch.zeros_like(s), s), (b_, t_, torch.ones_like(t), t)
    u, v, gap = closest_points(a[right], e[right], a[left], e[left])
    dist = gap.norm(dim=-1).clamp_min(1e-9)
    over = (radii[0][s] + radii[1][t] + margin - dist) > 0
    if not over.any():
        return
    b_, t_, s, t, u, v, n = b_[over], t_[over], s[over], t[over], u[over], v[over], (gap / dist[..., None])[over]
    # d overlap / d endpoints: -(1-u) n, -u n on the right capsule, +(1-v) n, +v n on the left
    g, gs = [], []
    for hand, seg, par, sign in ((0, s, u, -1.0), (1, t, v, 1.0)):
        rows = (b_, t_, torch.full_like(seg, hand))
        ends = [(sign * (1 - par)[..., None] * n, rows + (index[seg, 0],)), (sign * par[..., None] * n,
                                                                             rows + (index[seg, 1],))]
        g.append(sum(torch.einsum("kc,kcp->kp", d, J.rows(at)) for d, at in ends))
        gs.append(sum(torch.einsum("kc,kcp->kp", d, Js[at]) for d, at in ends))
    right_g, left_g = g
    shape_g = torch.cat(gs, -1)                                                          # [K, 20]
    w = 2.0 * weight
    outer = lambda x, y: x[:, :, None] * y[:, None, :]  # noqa: E731
    B, T = normal.frame.shape[:2]
    frame = b_ * T + t_
    for hand, g_h in ((0, right_g), (1, left_g)):
        normal.frame[:, :, hand].view(B * T, PARAMS, PARAMS).index_add_(0, frame, w * outer(g_h, g_h))
        normal.border[:, :, hand].view(B * T, PARAMS, 2 * SHAPE).index_add_(0, frame, w * outer(g_h, shape_g))
    normal.cross.view(B * T, PARAMS, PARAMS).index_add_(0, frame, w * outer(right_g, left_g))
    normal.shape.index_add_(0, b_, w * outer(shape_g, shape_g))
