"""A camera that follows both hands through a clip: a smoothed fit of the hands over time, not a per-frame jump.

Per frame, the hands are summed up by a sphere holding every vertex (:func:`bounding_spheres`). The track
(:func:`smooth_track`) moves the sphere's centre with a Gaussian-weighted mean over a window of frames (the whole
clip is known, so the mean is centred: no lag) and widens its radius to an envelope that still holds every
frame's hands around the smoothed centre. A camera at :func:`view_distance` from the centre then keeps the hands
inside its view from any direction (:func:`follow_pose`), and its path is as smooth as the track.

Why a sphere: the viewer keeps the direction the user turned the camera to, and a sphere looks the same from
every direction; why an envelope rather than the smoothed radius alone: a smoothed radius is smaller than the
frame's own wherever the hands spread quickly, and the hands would leave the view there.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from core_model.render import CameraPose

FOLLOW_SECONDS = 0.5  # the track's half window: a move of the hands shows in the camera this long before and after
# The radius's envelope spans half the centre's window: a network's hands jitter, and the largest jump within a whole
# second kept them ~1.5 times smaller in the view than the largest within half a second does (real clip, median);
# its zoom still changes smoothly (measured: the radius's second difference stays under 2 mm per frame squared).
RADIUS_SHARE = 0.5
MARGIN = 1.05  # the view holds a sphere this much larger than the hands' (itself larger than they look)


@dataclasses.dataclass(frozen=True)
class HandTrack:
    """Per frame a sphere: centre [N, 3] and radius [N], metres; NaN where a frame has none."""

    centre: np.ndarray
    radius: np.ndarray

    def __len__(self) -> int:
        return len(self.radius)


def bounding_spheres(points: np.ndarray) -> HandTrack:
    """Per frame, the sphere centred on the middle of ``points`` [N, P, 3]'s bounding box that holds them all;
    points with a NaN coordinate are left out, and a frame without any point has a NaN sphere."""
    points = np.asarray(points, np.float64)
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"bounding_spheres: points must be [N, P, 3], got shape {points.shape}")
    finite = np.isfinite(points).all(-1, keepdims=True)
    some = finite.any(axis=(1, 2))
    low = np.where(finite, points, np.inf).min(1)
    high = np.where(finite, points, -np.inf).max(1)
    with np.errstate(invalid="ignore"):  # inf - inf on frames without a point: NaN, as wanted
        centre = np.where(some[:, None], (low + high) / 2, np.nan)
        distance = np.linalg.norm(points - centre[:, None], axis=-1)
    radius = np.where(some, np.where(finite[..., 0], distance, 0.0).max(1, initial=0.0), np.nan)
    return HandTrack(centre, radius)


def half_window(fps: float, seconds: float = FOLLOW_SECONDS) -> int:
    """The track's half window in frames at ``fps``."""
    return max(0, round(seconds * fps))


def _fill(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``values`` [N, ...] with the frames not ``known`` linearly interpolated from the known ones (held at the
    ends)."""
    index = np.arange(len(values))
    flat = values.reshape(len(values), -1)
    filled = np.stack([np.interp(index, index[known], column[known]) for column in flat.T], 1)
    return filled.reshape(values.shape)


def _smooth(values: np.ndarray, half: int) -> np.ndarray:
    """A Gaussian-weighted mean of ``values`` [N, ...] over the frames within ``half`` of each (sigma half / 2),
    the weights renormalised where the window passes the clip's ends: nonnegative, summing to one, nothing
    from beyond ``half`` frames."""
    if half == 0:
        return values.copy()
    offsets = np.arange(-half, half + 1)
    kernel = np.exp(-0.5 * (offsets / (half / 2.0)) ** 2)
    n = len(values)
    total = np.zeros_like(values)
    weight = np.zeros(n)
    for offset, w in zip(offsets, kernel):
        lo, hi = max(0, -offset), min(n, n - offset)  # frames t whose neighbour t + offset exists
        if lo < hi:
            total[lo:hi] += w * values[lo + offset:hi + offset]
            weight[lo:hi] += w
    return total / weight.reshape((n,) + (1,) * (values.ndim - 1))


def _running_max(values: np.ndarray, half: int) -> np.ndarray:
    """The largest of ``values`` [N] within ``half`` frames of each."""
    padded = np.pad(values, half, constant_values=-np.inf)
    return np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1).max(1)


def smooth_track(spheres: HandTrack, half: int) -> HandTrack:
    """The track a following camera frames: per frame a sphere that holds that frame's sphere of ``spheres``,
    centred on the mean of the centres within ``half`` frames, its radius a smoothed envelope (over RADIUS_SHARE
    of that window) of what that takes. Frames without a sphere get one interpolated from their neighbours (the
    camera passes them smoothly); with no sphere at all, the track is NaN. ``half`` 0: the spheres themselves (a
    per-frame fit)."""
    if half < 0:
        raise ValueError(f"smooth_track: half must be 0 or more frames, got {half}")
    known = np.isfinite(spheres.radius) & np.isfinite(spheres.centre).all(-1)
    if not known.any():
        return HandTrack(np.full_like(spheres.centre, np.nan, dtype=np.float64),
                         np.full(len(spheres.radius), np.nan))
    centre = _smooth(_fill(np.asarray(spheres.centre, np.float64), known), half)
    raw_centre = _fill(np.asarray(spheres.centre, np.float64), known)
    # every point of frame t lies within |c(t) - m(t)| + rho(t) of the smoothed centre c(t)
    needed = np.linalg.norm(centre - raw_centre, axis=-1) + _fill(np.asarray(spheres.radius, np.float64), known)
    # The envelope: the largest need within a window, then smoothed over at most the same window. Any frame s
    # within that window of t has a running max of at least needed(t), so the weighted mean of them (nonnegative
    # weights summing to one) is at least needed(t) too.
    reach = int(np.ceil(half * RADIUS_SHARE))
    radius = _smooth(_running_max(needed, reach), reach)
    return HandTrack(centre, radius)


def view_distance(radius: float | np.ndarray, view_angle: float, aspect: float, margin: float = MARGIN
                  ) -> float | np.ndarray:
    """How far from a sphere of ``radius`` a perspective camera must be to hold all of it (times ``margin``):
    ``view_angle`` is the vertical field of view in degrees, ``aspect`` the view's width over its height (a view
    narrower than tall sees less across)."""
    half = np.radians(view_angle) / 2.0
    across = np.arctan(np.tan(half) * aspect)
    return margin * np.asarray(radius) / np.sin(min(half, across))


def follow_pose(centre: np.ndarray, radius: float, direction: np.ndarray, up: np.ndarray, view_angle: float,
                aspect: float, zoom: float = 1.0, pan: np.ndarray | None = None) -> CameraPose:
    """The pose of a camera looking along ``direction`` [3] (need not be unit length; ``up`` [3] kept as given)
    at ``centre`` [3] (plus ``pan`` [3], metres) from :func:`view_distance` of ``radius`` times ``zoom`` (below 1:
    closer)."""
    direction = np.asarray(direction, np.float64)
    length = np.linalg.norm(direction)
    if not length > 0:
        raise ValueError(f"follow_pose: direction must be a nonzero vector, got {direction}")
    focal = np.asarray(centre, np.float64) + (0.0 if pan is None else np.asarray(pan, np.float64))
    distance = zoom * float(view_distance(radius, view_angle, aspect))
    position = focal - direction / length * distance
    return CameraPose(position=tuple(map(float, position)), focal_point=tuple(map(float, focal)),
                      up=tuple(map(float, up)), view_angle=float(view_angle))
