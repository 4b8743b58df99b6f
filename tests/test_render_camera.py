"""The "camera" view preset: from the real camera for camera-space hands, from in front of root-relative ones."""

from __future__ import annotations

import numpy as np

from core_model.render import fit_source_camera


def _half_angles(pose, points: np.ndarray) -> tuple[float, float]:
    """The largest angles (degrees) of ``points`` off the camera's axis, across and up."""
    rel = points - np.asarray(pose.position)
    return (float(np.degrees(np.arctan(np.abs(rel[:, 0] / rel[:, 2])).max())),
            float(np.degrees(np.arctan(np.abs(rel[:, 1] / rel[:, 2])).max())))


def test_camera_space_hands_are_seen_from_the_origin_and_all_framed():
    rng = np.random.default_rng(0)
    points = rng.uniform([-0.3, -0.2, 0.8], [0.3, 0.2, 1.0], (200, 3))
    bounds = np.stack([points.min(0), points.max(0)], 1).ravel()
    for size in ((400, 400), (200, 400)):
        pose = fit_source_camera(points, bounds, size)
        assert pose.position == (0.0, 0.0, 0.0) and pose.up == (0.0, -1.0, 0.0)
        np.testing.assert_allclose(pose.focal_point, points.mean(0))
        across, up = _half_angles(pose, points)
        aspect = size[0] / size[1]
        horizontal = np.degrees(np.arctan(np.tan(np.radians(pose.view_angle / 2)) * aspect))
        assert up < pose.view_angle / 2 and across < horizontal


def test_root_relative_hands_are_seen_along_the_axis_from_where_they_fill_the_view():
    points = np.array([[-0.1, -0.05, -0.02], [0.1, 0.05, 0.02]])
    pose = fit_source_camera(points, [-0.1, 0.1, -0.05, 0.05, -0.02, 0.02], (300, 300))
    assert pose.view_angle == 30.0
    np.testing.assert_allclose(pose.focal_point, 0.0, atol=1e-12)
    assert pose.position[:2] == (0.0, 0.0) and pose.position[2] < -0.3  # in front (-z), looking down +z
    across, up = _half_angles(pose, points)
    assert max(across, up) < 15.0
    empty = fit_source_camera(None, [-1, 1, -1, 1, -1, 1], (300, 300))
    assert empty.focal_point == (0.0, 0.0, 1.0)
