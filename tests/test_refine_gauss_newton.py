"""Gauss-Newton steps of the refinement (core_model.refine.gauss_newton): the closed-form keypoint Jacobian against
forward-mode autodiff, the blocked normal matrix against a dense one built from its residuals, the solve against
a dense solve, and the capsule blocks against autograd (a refinement with Gauss-Newton steps: test_refine_fit)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import roma
import torch

from core_model.refine import capsules, gauss_newton
from core_model.refine.kinematics import HandSkeleton, rotmats_of

PARAMS, SHAPE = gauss_newton.PARAMS, gauss_newton.SHAPE


@dataclasses.dataclass
class Chain:
    """Both hands' kinematics as a function of the fit's unknowns (orientation offset, pose offset, wrists, shape
    offset) around a start, as core_model.refine.fit composes them."""

    skeleton: HandSkeleton
    orient0: torch.Tensor
    pose0: torch.Tensor
    betas0: torch.Tensor

    def rotations(self, d_orient: torch.Tensor, d_pose: torch.Tensor) -> torch.Tensor:
        rot = rotmats_of(self.orient0, self.pose0 + d_pose)
        front = roma.rotvec_to_rotmat(d_orient) @ roma.rotvec_to_rotmat(self.orient0)
        return torch.cat([front[..., None, :, :], rot[..., 1:, :, :]], -3)

    def posed(self, d_orient, d_pose, roots, d_betas):
        return self.skeleton.pose(self.betas0 + d_betas[:, None], self.rotations(d_orient, d_pose), roots)

    def keypoints(self, d_orient, d_pose, roots, d_betas):
        return self.skeleton(self.betas0 + d_betas[:, None], self.rotations(d_orient, d_pose), roots)


def unknowns_of(vector: torch.Tensor, B: int, T: int) -> tuple[torch.Tensor, ...]:
    """The flat vector of every unknown (per hand-frame blocks of 51, then the shapes) as the fit's tensors."""
    frames = vector[:B * T * 2 * PARAMS].view(B, T, 2, PARAMS)
    return frames[..., :3], frames[..., 3:48], frames[..., 48:], vector[B * T * 2 * PARAMS:].view(B, 2, SHAPE)


@pytest.fixture(scope="module")
def chain(openhand):
    torch.manual_seed(0)
    B, T = 2, 5
    chain = Chain(HandSkeleton(openhand), torch.randn(B, T, 2, 3) * 0.8, torch.randn(B, T, 2, 45) * 0.4,
                  torch.randn(B, T, 2, 10) * 0.5)
    unknowns = (torch.randn(B, T, 2, 3) * 0.3, torch.randn(B, T, 2, 45) * 0.1,
                torch.randn(B, T, 2, 3) * 0.05 + torch.tensor([0.0, 0.0, 0.5]), torch.randn(B, 2, 10) * 0.2)
    return chain, unknowns


def test_keypoint_jacobian_matches_forward_mode_autodiff(chain):
    chain, unknowns = chain
    # Each hand-frame's keypoints depend on its own unknowns only: one tangent per unknown, set on every
    # hand-frame at once, gives every hand-frame's column.
    columns = []
    for k in range(PARAMS):
        tangent = [torch.zeros_like(u) for u in unknowns]
        group, index = (0, k) if k < 3 else (1, k - 3) if k < 48 else (2, k - 48)
        tangent[group][..., index] = 1.0
        columns.append(torch.func.jvp(chain.keypoints, unknowns, tuple(tangent))[1])
    expected = torch.stack(columns, -1)                                                # [B, T, 2, 21, 3, 51]
    got = gauss_newton.KeypointJacobian(chain.skeleton)(chain.posed(*unknowns), chain.keypoints(*unknowns),
                                                         unknowns[0], chain.pose0 + unknowns[1]).dense()
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)


def _dense(normal: gauss_newton.Normal, B: int, T: int) -> torch.Tensor:
    """The normal matrix as a dense matrix, column by column through its product."""
    n = B * T * 2 * PARAMS + B * 2 * SHAPE
    cols = []
    for i in range(n):
        e = torch.zeros(n, dtype=torch.float64)
        e[i] = 1.0
        x = e[:B * T * 2 * PARAMS].view(B, T, 2, PARAMS)
        y, ys = normal.matvec(x, e[B * T * 2 * PARAMS:].view(B, 2, SHAPE))
        cols.append(torch.cat([y.flatten(), ys.flatten()]))
    return torch.stack(cols, 1)


def test_normal_matrix_and_solve_match_dense_least_squares(openhand):
    """Blocks of random keypoint terms, acceleration and the relative prior against J^T W J of the same residuals
    written out densely (numpy), and the step against a dense solve."""
    rng = np.random.default_rng(1)
    B, T, K = 1, 6, 21 * 3
    slots = gauss_newton.KeypointJacobian(HandSkeleton(openhand)).slots
    blocks = torch.as_tensor(rng.normal(size=(B, T, 2, 5, 5, 3, gauss_newton.FINGER_COLUMNS))) * (slots < 21)[
        ..., None, None]
    grouped = gauss_newton.FingerJacobian(blocks, slots)
    J = grouped.dense().numpy()
    Js = rng.normal(size=(B, T, 2, 21, 3, SHAPE))
    root = rng.normal(size=(B, T, 2, 21, 3, 3))
    Q = root @ np.swapaxes(root, -1, -2)                                               # PSD per keypoint
    w_acc = rng.uniform(0.5, 2.0, size=(B, T - 2, 2))
    w_rel = rng.uniform(0.5, 2.0, size=(B, T))
    t64 = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    normal = gauss_newton.Normal.zeros(B, T, t64(np.zeros(1)))
    gauss_newton.add_keypoint_term(normal, grouped, t64(Js), t64(Q))
    gauss_newton.add_acceleration(normal, grouped, t64(Js), t64(w_acc))
    gauss_newton.add_relative(normal, t64(w_rel))
    normal.shape += torch.eye(2 * SHAPE, dtype=torch.float64)
    # dense: unknown index of (t, h, p) and of hand h's shape s
    n_frames = B * T * 2 * PARAMS
    col = lambda t, h: slice((t * 2 + h) * PARAMS, (t * 2 + h + 1) * PARAMS)  # noqa: E731
    shape_col = lambda h: slice(n_frames + h * SHAPE, n_frames + (h + 1) * SHAPE)  # noqa: E731
    H = np.eye(n_frames + 2 * SHAPE) * 0.0
    H[n_frames:, n_frames:] += np.eye(2 * SHAPE)
    for t in range(T):
        for h in range(2):
            A = np.zeros((K, H.shape[0]))
            A[:, col(t, h)], A[:, shape_col(h)] = J[0, t, h].reshape(K, PARAMS), Js[0, t, h].reshape(K, SHAPE)
            W = np.zeros((K, K))
            for k in range(21):
                W[3 * k:3 * k + 3, 3 * k:3 * k + 3] = Q[0, t, h, k]
            H += A.T @ W @ A
    for t in range(T - 2):
        for h in range(2):
            A = np.zeros((K, H.shape[0]))
            for i, c in enumerate((1.0, -2.0, 1.0)):
                A[:, col(t + i, h)] += c * J[0, t + i, h].reshape(K, PARAMS)
                A[:, shape_col(h)] += c * Js[0, t + i, h].reshape(K, SHAPE)
            H += 2 * w_acc[0, t, h] * A.T @ A
    for t in range(T):
        A = np.zeros((3, H.shape[0]))
        A[:, col(t, 1)][:, 48:] = np.eye(3)
        A[:, col(t, 0)][:, 48:] = -np.eye(3)
        H += 2 * w_rel[0, t] * A.T @ A
    np.testing.assert_allclose(_dense(normal, B, T).numpy(), H, rtol=1e-9, atol=1e-8)
    g = rng.normal(size=H.shape[0])
    damped = normal.damp(0.0)  # only the floor that keeps empty blocks solvable
    x, xs = gauss_newton.solve(damped, t64(g[:n_frames]).view(B, T, 2, PARAMS), t64(g[n_frames:]).view(B, 2, SHAPE),
                               iterations=30, tol=1e-12)
    expected = np.linalg.solve(_dense(damped, B, T).numpy(), g)
    got = np.concatenate([x.flatten().numpy(), xs.flatten().numpy()])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())


def test_capsule_blocks_are_the_outer_product_of_the_overlap_gradient(openhand):
    """One overlapping pair of palm capsules (no fingertip shortening): the frame's blocks equal
    2 w (d overlap / d unknowns)(...)^T from autograd through the kinematics."""
    B, T = 1, 1
    skeleton = HandSkeleton(openhand)
    orient0 = torch.tensor([[[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]])
    chain = Chain(skeleton, orient0, torch.zeros(B, T, 2, 45), torch.zeros(B, T, 2, 10))
    roots = torch.tensor([[[[0.0, 0.0, 0.5], [0.005, 0.004, 0.503]]]])                # hands nearly on top
    unknowns = (torch.zeros(B, T, 2, 3), torch.zeros(B, T, 2, 45), roots, torch.zeros(B, 2, 10))
    radii = torch.full((2, len(capsules.SEGMENTS)), 0.008)
    palm = capsules.SEGMENTS.index((0, 9))                                             # wrist to middle finger base
    pairs = (torch.tensor([0]), torch.tensor([0]), torch.tensor([palm]), torch.tensor([palm]))
    kp = chain.keypoints(*unknowns)
    J = gauss_newton.KeypointJacobian(skeleton)(chain.posed(*unknowns), kp, unknowns[0], unknowns[1])
    Js = torch.zeros(*kp.shape, SHAPE)
    normal = gauss_newton.Normal.zeros(B, T, kp)
    gauss_newton.add_capsules(normal, kp, J, Js, radii, pairs, 0.0, 0.5)

    def overlap(*u):
        a, e = capsules.capsule_axes(chain.keypoints(*u), radii)
        d = capsules.segment_distance(a[0, 0, 0, palm], e[0, 0, 0, palm], a[0, 0, 1, palm], e[0, 0, 1, palm])
        return radii[0, palm] + radii[1, palm] - d

    assert float(overlap(*unknowns)) > 0
    leaves = [u.clone().requires_grad_(True) for u in unknowns[:3]]
    g = torch.autograd.grad(overlap(*leaves, unknowns[3]), leaves)
    g = torch.cat(g, -1)[0, 0]                                                         # [2, 51]
    torch.testing.assert_close(normal.frame[0, 0, 0], 2 * 0.5 * torch.outer(g[0], g[0]), atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(normal.frame[0, 0, 1], 2 * 0.5 * torch.outer(g[1], g[1]), atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(normal.cross[0, 0], 2 * 0.5 * torch.outer(g[0], g[1]), atol=1e-6, rtol=1e-4)
