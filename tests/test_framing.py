"""The camera that follows the hands (core_model.framing): it keeps both hands in its view on every frame of a
clip whose hands cross the frame, and moves far more smoothly than a camera fitted to each frame."""

from __future__ import annotations

import numpy as np
import pytest

from core_model.framing import (
    MARGIN,
    HandTrack,
    bounding_spheres,
    follow_pose,
    half_window,
    smooth_track,
    view_distance,
)

FPS = 30.0


def crossing_hands(n: int = 90, seed: int = 0) -> np.ndarray:
    """[n, 2P, 3]: two hands (blobs of points ~8 cm across) 0.9 m from the camera whose pair moves from 0.5 m left
    of the axis to 0.5 m right of it while the hands swap sides, with 1 cm of per-frame jitter on each hand."""
    rng = np.random.default_rng(seed)
    blob = rng.normal(0, 0.03, (2, 300, 3)).clip(-0.06, 0.06)
    t = np.linspace(0, 1, n)
    pair = np.stack([np.linspace(-0.5, 0.5, n), 0.1 * np.sin(2 * np.pi * t), np.full(n, 0.9)], 1)
    apart = np.stack([np.linspace(-0.15, 0.15, n), np.zeros(n), np.zeros(n)], 1)
    jitter = rng.normal(0, 0.01, (n, 2, 3))
    hands = pair[:, None] + np.stack([apart, -apart], 1) + jitter  # [n, 2, 3]: each hand's centre
    return (hands[:, :, None] + blob[None]).reshape(n, -1, 3)


def poses(track: HandTrack, direction=(0.0, 0.0, 1.0), aspect: float = 4 / 3, view_angle: float = 30.0):
    return [follow_pose(track.centre[t], track.radius[t], np.array(direction), np.array([0.0, -1.0, 0.0]),
                        view_angle, aspect) for t in range(len(track))]


def in_view(pose, points: np.ndarray, aspect: float) -> bool:
    """Every point inside the camera's view frustum."""
    forward = np.subtract(pose.focal_point, pose.position)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, pose.up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rel = points - np.asarray(pose.position)
    z, x, y = rel @ forward, rel @ right, rel @ down
    tan_v = np.tan(np.radians(pose.view_angle) / 2)
    return bool((z > 0).all() and (np.abs(y / z) < tan_v).all() and (np.abs(x / z) < tan_v * aspect).all())


@pytest.mark.parametrize("aspect", [4 / 3, 0.6])
@pytest.mark.parametrize("direction", [(0.0, 0.0, 1.0), (1.0, -1.0, 1.0)])
def test_hands_crossing_the_frame_stay_in_view_on_every_frame(aspect, direction):
    points = crossing_hands()
    track = smooth_track(bounding_spheres(points), half_window(FPS))
    for t, pose in enumerate(poses(track, direction, aspect)):
        assert in_view(pose, points[t], aspect), t


def test_the_camera_path_is_smoother_than_a_per_frame_fit():
    points = crossing_hands()
    spheres = bounding_spheres(points)
    followed = np.array([p.position for p in poses(smooth_track(spheres, half_window(FPS)))])
    per_frame = np.array([p.position for p in poses(smooth_track(spheres, 0))])
    accel = lambda path: np.linalg.norm(np.diff(path, 2, axis=0), axis=1).max()  # noqa: E731
    assert accel(followed) < 0.1 * accel(per_frame), (accel(followed), accel(per_frame))
    # and it still goes where the hands go: the pair crosses a metre, the camera with it
    assert followed[-1, 0] - followed[0, 0] > 0.8


def test_spheres_hold_their_points_and_frames_without_hands_are_bridged():
    points = crossing_hands(30)
    points[10:14] = np.nan  # no hands on four frames
    points[20, :5] = np.nan  # a few points missing on another
    spheres = bounding_spheres(points)
    assert np.isnan(spheres.radius[10:14]).all() and np.isnan(spheres.centre[10:14]).all()
    distance = np.linalg.norm(points - spheres.centre[:, None], axis=-1)
    known = np.isfinite(spheres.radius)
    assert (np.nan_to_num(distance[known]) <= spheres.radius[known, None] + 1e-12).all()
    track = smooth_track(spheres, 5)
    assert np.isfinite(track.centre).all() and np.isfinite(track.radius).all()
    inside = np.linalg.norm(points - track.centre[:, None], axis=-1) <= track.radius[:, None] + 1e-12
    assert inside[np.isfinite(distance)].all()  # the smoothed spheres hold every frame's points
    # the bridged frames lie between the hands' positions before and after the gap
    assert spheres.centre[9, 0] < track.centre[11, 0] < spheres.centre[14, 0]


def test_no_hands_at_all_and_bad_input():
    track = smooth_track(bounding_spheres(np.full((5, 4, 3), np.nan)), 2)
    assert np.isnan(track.centre).all() and np.isnan(track.radius).all()
    with pytest.raises(ValueError, match=r"\[N, P, 3\]"):
        bounding_spheres(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="half"):
        smooth_track(bounding_spheres(np.zeros((5, 4, 3))), -1)
    with pytest.raises(ValueError, match="direction"):
        follow_pose(np.zeros(3), 0.1, np.zeros(3), np.array([0.0, -1.0, 0.0]), 30.0, 1.0)


def test_view_distance_fits_the_narrower_side():
    wide = view_distance(0.1, 30.0, 2.0, margin=1.0)
    assert wide == pytest.approx(0.1 / np.sin(np.radians(15.0)))  # limited by the vertical angle
    narrow = view_distance(0.1, 30.0, 0.5, margin=1.0)
    across = np.arctan(np.tan(np.radians(15.0)) * 0.5)
    assert narrow == pytest.approx(0.1 / np.sin(across)) and narrow > wide
    pose = follow_pose(np.array([0.0, 0.0, 1.0]), 0.1, np.array([0.0, 0.0, 2.0]), np.array([0.0, -1.0, 0.0]),
                       30.0, 2.0, zoom=0.5, pan=np.array([0.1, 0.0, 0.0]))
    assert pose.focal_point == (0.1, 0.0, 1.0)
    assert np.linalg.norm(np.subtract(pose.focal_point, pose.position)) == pytest.approx(0.5 * MARGIN * wide)
