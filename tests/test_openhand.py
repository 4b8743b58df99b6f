"""OpenHand, the shipped hand model: closed, consistently wound, mirrored, with fingertips and meaningful shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from core_model.handmodel.keypoints import FINGERS
from core_model.handmodel.poses import NAMED_POSES, articulation_to_pose, rest_frames, sample_articulations

MIRROR = np.array([-1.0, 1.0, 1.0])


def _posed(layer, hand_pose: torch.Tensor, betas: torch.Tensor | None = None):
    n = hand_pose.shape[0]
    betas = torch.zeros(n, 10) if betas is None else betas
    with torch.no_grad():
        return layer(betas, torch.zeros(n, 3), hand_pose)


@pytest.mark.parametrize("side", ["right", "left"])
def test_capped_mesh_is_closed_outward_and_stays_so_in_natural_poses(openhand, side):
    layer = getattr(openhand, side)
    angles = sample_articulations(np.random.default_rng(7), 50)
    poses = torch.cat([torch.zeros(1, 45), articulation_to_pose(torch.as_tensor(angles, dtype=torch.float32),
                                                                rest_frames(layer))])
    out = _posed(layer, poses)
    for vertices in out.vertices.numpy():
        mesh = trimesh.Trimesh(vertices, layer.data.closed_faces, process=False)
        assert mesh.is_watertight
        assert mesh.is_winding_consistent
        assert mesh.volume > 1e-4  # m^3; a real hand is ~3-5e-4, and stays so when posed
    rest_volume = trimesh.Trimesh(out.vertices[0].numpy(), layer.data.closed_faces, process=False).volume
    volumes = [trimesh.Trimesh(v, layer.data.closed_faces, process=False).volume for v in out.vertices.numpy()]
    assert max(abs(v / rest_volume - 1) for v in volumes) < 0.15  # skinning neither collapses nor inflates


def test_left_is_the_mirror_of_right_in_rest_and_posed(openhand):
    right, left = openhand.right, openhand.left
    np.testing.assert_allclose(left.data.v_template, right.data.v_template * MIRROR, atol=1e-7)
    # A right pose mirrors to the left as axis-angle (x, -y, -z); shape and global orientation the same way.
    rng = np.random.default_rng(3)
    pose = articulation_to_pose(torch.as_tensor(sample_articulations(rng, 4), dtype=torch.float32),
                                rest_frames(right))
    orient = torch.as_tensor(rng.normal(0, 0.7, (4, 3)), dtype=torch.float32)
    betas = torch.as_tensor(rng.normal(0, 1, (4, 10)), dtype=torch.float32)
    flip = torch.tensor([1.0, -1.0, -1.0])
    with torch.no_grad():
        r = right(betas, orient, pose)
        l_ = left(betas, orient * flip, (pose.reshape(4, 15, 3) * flip).reshape(4, 45))
    np.testing.assert_allclose(l_.vertices.numpy(), r.vertices.numpy() * MIRROR, atol=1e-5)
    # Anatomical angles mean the same on both sides.
    np.testing.assert_allclose(articulation_to_pose(torch.ones(5, 3, 3) * 20, rest_frames(left)).reshape(15, 3),
                               articulation_to_pose(torch.ones(5, 3, 3) * 20, rest_frames(right)).reshape(15, 3)
                               * flip, atol=1e-5)


@pytest.mark.parametrize("side", ["right", "left"])
def test_fingertip_keypoints_are_the_ends_of_the_fingers(openhand, side):
    layer = getattr(openhand, side)
    for pose_name in ("flat", "fist", "point"):
        out = _posed(layer, articulation_to_pose(torch.as_tensor(NAMED_POSES[pose_name].as_array(),
                                                                 dtype=torch.float32), rest_frames(layer))[None])
        verts, kp = out.vertices[0].numpy(), out.keypoints[0].numpy()
        weights = layer.data.weights
        for f, finger in enumerate(FINGERS):
            tip, dip = kp[4 + 4 * f], kp[3 + 4 * f]
            assert np.linalg.norm(verts - tip, axis=1).min() < 1e-6  # a surface vertex
            # No vertex of that finger's distal segment reaches further along the segment.
            from core_model.handmodel.keypoints import MANO_JOINT_NAMES

            distal = np.flatnonzero(weights[:, MANO_JOINT_NAMES.index(f"{finger}3")] > 0.5)
            axis = (tip - dip) / np.linalg.norm(tip - dip)
            reach = (verts[distal] - dip) @ axis
            assert reach.max() <= (tip - dip) @ axis + 2e-3
            assert 0.012 < np.linalg.norm(tip - dip) < 0.04  # a distal phalanx, in metres


def _bone_lengths(layer, betas: torch.Tensor) -> np.ndarray:
    out = _posed(layer, torch.zeros(len(betas), 45), betas)
    kp = out.keypoints.numpy()
    parents = [0, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19]
    return np.linalg.norm(kp[:, 1:] - kp[:, parents[1:]], axis=-1)


@pytest.mark.parametrize("component", range(10))
def test_shape_components_move_bone_lengths_smoothly(openhand, component):
    steps = torch.linspace(-3, 3, 25)
    betas = torch.zeros(25, 10)
    betas[:, component] = steps
    lengths = _bone_lengths(openhand.right, betas)
    diffs = np.diff(lengths, axis=0)
    # Smooth: equal beta steps change every bone length by nearly equal amounts (no jumps, no kinks).
    assert np.abs(np.diff(diffs, axis=0)).max() < 1e-4
    assert np.abs(lengths[-1] - lengths[0]).max() < 0.5 * lengths[12].max()  # within anatomy at +-3 sd


def test_shape_components_mean_what_their_names_say(openhand):
    def measure(component: int, value: float) -> dict[str, float]:
        betas = torch.zeros(1, 10)
        betas[0, component] = value
        out = _posed(openhand.right, torch.zeros(1, 45), betas)
        kp, v = out.keypoints[0].numpy(), out.vertices[0].numpy()
        return {"length": np.linalg.norm(kp[12] - kp[0]), "width": np.linalg.norm(kp[5] - kp[17]),
                "palm": np.linalg.norm(kp[9] - kp[0]), "thickness": np.ptp(v[:, 1]),
                **{finger: np.linalg.norm(kp[4 + 4 * f] - kp[1 + 4 * f]) for f, finger in enumerate(FINGERS)}}

    names = openhand.meta["shape_components"]
    assert len(names) == 10
    grows = {0: ["length", "width", "palm"], 1: ["width"], 2: ["palm", "length"], 3: ["thickness"],
             5: ["thumb"], 6: ["index"], 7: ["middle"], 8: ["ring"], 9: ["pinky"]}
    for component, expected in grows.items():
        low, high = measure(component, -1.0), measure(component, 1.0)
        for key in expected:
            assert high[key] > low[key] * 1.02, (names[component], key)
        if component >= 5:  # a finger-length component leaves the other fingers (almost) alone
            change = high[expected[0]] - low[expected[0]]
            others = [f for f in FINGERS if f not in expected]
            assert all(abs(high[f] - low[f]) < 0.01 * change for f in others), names[component]


def test_named_poses_look_like_their_names(openhand):
    def keypoints(name: str) -> np.ndarray:
        layer = openhand.right
        pose = articulation_to_pose(torch.as_tensor(NAMED_POSES[name].as_array(), dtype=torch.float32),
                                    rest_frames(layer))
        return _posed(layer, pose[None]).keypoints[0].numpy()

    flat, fist, pinch, point = (keypoints(n) for n in ("flat", "fist", "pinch", "point"))
    reach = {name: np.linalg.norm(kp[[8, 12, 16, 20]] - kp[0], axis=1) for name, kp in
             (("flat", flat), ("fist", fist), ("point", point))}
    assert (reach["fist"] < 0.6 * reach["flat"]).all()              # fingertips pulled in
    assert reach["point"][0] > 0.95 * reach["flat"][0]               # the index stays out
    assert (reach["point"][1:] < 0.6 * reach["flat"][1:]).all()     # the rest curled
    assert np.linalg.norm(pinch[4] - pinch[8]) < 0.02                # thumb meets index
