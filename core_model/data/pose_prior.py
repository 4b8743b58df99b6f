"""The pose prior of the synthetic set: named hand shapes, grouped into families, blended inside joint limits.

Extends :data:`core_model.handmodel.poses.NAMED_POSES` (open, fist, pinch, point, grasp, victory, ...) with the
shapes interacting hands make: interlaced fingers, sign-like shapes (ok, thumbs up, horns, three, call, L), claw,
hook, cup, tabletop. Angles are anatomical (flex, abduct, twist in degrees per finger and level), so the same
articulation drives MANO and OpenHand alike (:func:`core_model.handmodel.poses.articulation_to_pose`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core_model.handmodel.poses import NAMED_POSES, Articulation, limits_array


def _curl(mcp: float, pip: float, dip: float, spread: float = 0.0) -> dict[int, tuple[float, ...]]:
    return {1: (mcp, spread), 2: (pip,), 3: (dip,)}


_CURLED = _curl(85, 100, 60)
_THUMB_TUCKED = {1: (45, 10, 10), 2: (40,), 3: (45,)}

EXTRA_POSES: dict[str, Articulation] = {
    "interlace": Articulation.of(index=_curl(50, 55, 30, 14), middle=_curl(52, 58, 32, 2),
                                 ring=_curl(54, 60, 34, -10), pinky=_curl(56, 62, 36, -20),
                                 thumb={1: (10, 25), 2: (10,), 3: (15,)}),
    "spread": Articulation.of(index=_curl(0, 0, 0, 20), middle=_curl(0, 0, 0, 2), ring=_curl(0, 0, 0, -15),
                              pinky=_curl(0, 0, 0, -25), thumb={1: (-10, 40), 2: (0,), 3: (0,)}),
    "ok": Articulation.of(index=_curl(50, 62, 38, 4), middle=_curl(10, 8, 4, 2), ring=_curl(15, 10, 5, -8),
                          pinky=_curl(20, 10, 5, -16), thumb={1: (30, 10, 10), 2: (18, -6), 3: (28,)}),
    "thumbs_up": Articulation.of(index=_CURLED, middle=_CURLED, ring=_CURLED, pinky=_CURLED,
                                 thumb={1: (-15, 30, 0), 2: (-5,), 3: (0,)}),
    "horns": Articulation.of(index=_curl(0, 0, 0, 8), middle=_CURLED, ring=_CURLED, pinky=_curl(0, 0, 0, -12),
                             thumb=_THUMB_TUCKED),
    "three": Articulation.of(index=_curl(0, 0, 0, 10), middle=_curl(0, 0, 0), ring=_curl(0, 0, 0, -10),
                             pinky=_CURLED, thumb=_THUMB_TUCKED),
    "call": Articulation.of(index=_CURLED, middle=_CURLED, ring=_CURLED, pinky=_curl(0, 0, 0, -20),
                            thumb={1: (-10, 40, 0), 2: (0,), 3: (0,)}),
    "ell": Articulation.of(index=_curl(0, 0, 0, 4), middle=_CURLED, ring=_CURLED, pinky=_CURLED,
                           thumb={1: (-15, 45, 0), 2: (0,), 3: (0,)}),
    "claw": Articulation.of(index=_curl(15, 75, 55, 10), middle=_curl(15, 78, 55), ring=_curl(15, 78, 55, -8),
                            pinky=_curl(15, 80, 55, -15), thumb={1: (20, 30), 2: (20,), 3: (40,)}),
    "hook": Articulation.of(index=_curl(0, 95, 65), middle=_curl(0, 95, 65), ring=_curl(0, 95, 65),
                            pinky=_curl(0, 95, 65), thumb={1: (15, 15), 2: (10,), 3: (15,)}),
    "cup": Articulation.of(index=_curl(30, 25, 15, -2), middle=_curl(30, 25, 15), ring=_curl(30, 25, 15, 2),
                           pinky=_curl(32, 25, 15, 4), thumb={1: (30, 10, 10), 2: (10,), 3: (10,)}),
    "tabletop": Articulation.of(index=_curl(80, 0, 0), middle=_curl(80, 0, 0), ring=_curl(80, 0, 0),
                                pinky=_curl(80, 0, 0), thumb={1: (0, 25), 2: (5,), 3: (5,)}),
}

POSE_LIBRARY: dict[str, Articulation] = {**NAMED_POSES, **EXTRA_POSES}
"""Every named articulation: the hand model's own and the synthetic set's."""

POSE_FAMILIES: dict[str, tuple[str, ...]] = {
    "open": ("flat", "open", "relaxed", "spread", "cup"),
    "closed": ("fist", "grasp", "claw", "hook", "tabletop"),
    "sign": ("point", "victory", "pinch", "ok", "thumbs_up", "horns", "three", "call", "ell"),
    "interlace": ("interlace", "interlace", "grasp"),
    "any": tuple(n for n in POSE_LIBRARY if n != "flat"),
}
"""Pose names by the kind of interaction that uses them; ``any`` is the whole library."""


def articulation_array(name: str) -> np.ndarray:
    """[5, 3, 3] degrees of one named pose."""
    if name not in POSE_LIBRARY:
        raise ValueError(f"name: expected one of {sorted(POSE_LIBRARY)}, got {name!r}")
    return POSE_LIBRARY[name].as_array()


def sample_pose(rng: np.random.Generator, names: Sequence[str], count: int = 1, noise_deg: float = 7.0,
                blend_other: float = 0.25) -> np.ndarray:
    """[count, 5, 3, 3] natural articulations from the named poses ``names``.

    Each sample blends a pose of ``names`` with a second one (from ``names``, or with probability
    ``blend_other`` from the whole library), finger by finger, adds flexion noise of ``noise_deg`` and small
    abduction/twist noise, couples DIP to PIP flexion as real fingers do, and clips to the joint limits.
    """
    if count < 1:
        raise ValueError(f"count: expected a positive number of samples, got {count}")
    if not names:
        raise ValueError("names: expected at least one pose name")
    own = np.stack([articulation_array(n) for n in names])
    everything = np.stack([articulation_array(n) for n in POSE_FAMILIES["any"]])
    first = own[rng.integers(len(own), size=count)]
    other_pool = np.where(rng.uniform(size=count) < blend_other, 1, 0)
    second = np.where(other_pool[:, None, None, None] == 1, everything[rng.integers(len(everything), size=count)],
                      own[rng.integers(len(own), size=count)])
    mix = rng.uniform(0, 0.6, size=(count, 5, 1, 1))  # the first pose dominates, each finger on its own
    angles = (1 - mix) * first + mix * second
    angles[..., 0] += rng.normal(0, noise_deg, size=(count, 5, 3))
    angles[..., 1:] += rng.normal(0, noise_deg * 0.35, size=(count, 5, 3, 2))
    angles[:, 1:, 2, 0] = 0.5 * angles[:, 1:, 2, 0] + 0.5 * (2 / 3) * angles[:, 1:, 1, 0]  # DIP follows PIP
    return clip_to_limits(angles)


def clip_to_limits(angles: np.ndarray) -> np.ndarray:
    """Clip [..., 5, 3, 3] degrees to the anatomical joint limits."""
    limits = limits_array()
    return np.clip(angles, limits[..., 0], limits[..., 1])


def within_limits(angles: np.ndarray, tol: float = 1e-6) -> bool:
    limits = limits_array()
    return bool(np.all(angles >= limits[..., 0] - tol) and np.all(angles <= limits[..., 1] + tol))
