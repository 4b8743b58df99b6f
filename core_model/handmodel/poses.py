"""Natural hand poses from anatomical joint angles, for any hand model in MANO's layout.

A model's ``hand_pose`` rotates each joint about axes of its own rest frame, which differ between MANO and
OpenHand. Here the axes are derived from the rest skeleton (finger directions, palm normal, thumb side), so
"flex the index MCP by 60 degrees" means the same thing on every model and on both sides: flexion curls toward
the palm, abduction moves toward the thumb side, twist turns about the bone.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import roma
import torch

from core_model.handmodel.keypoints import FINGERS, MANO_JOINT_NAMES
from core_model.handmodel.layer import HandLayer

DOF = ("flex", "abduct", "twist")

# Degrees, (low, high) per joint level and dof; thumb levels are CMC, MCP, IP.
FINGER_LIMITS = {
    1: {"flex": (-20, 90), "abduct": (-25, 25), "twist": (-8, 8)},
    2: {"flex": (-5, 105), "abduct": (-4, 4), "twist": (-4, 4)},
    3: {"flex": (-10, 85), "abduct": (-4, 4), "twist": (-4, 4)},
}
THUMB_LIMITS = {
    1: {"flex": (-20, 55), "abduct": (-25, 50), "twist": (-25, 25)},
    2: {"flex": (-10, 65), "abduct": (-8, 8), "twist": (-8, 8)},
    3: {"flex": (-20, 85), "abduct": (-4, 4), "twist": (-4, 4)},
}


def joint_limits(finger: str, level: int) -> dict[str, tuple[float, float]]:
    return (THUMB_LIMITS if finger == "thumb" else FINGER_LIMITS)[level]


@dataclasses.dataclass(frozen=True)
class Articulation:
    """Anatomical angles in degrees, ``angles[finger][level] = (flex, abduct, twist)``, levels 1-3."""

    angles: dict[str, dict[int, tuple[float, float, float]]]

    @classmethod
    def of(cls, **fingers: dict[int, tuple[float, ...]]) -> Articulation:
        """Fill unspecified fingers/levels with zeros; a level may give (flex,) or (flex, abduct[, twist])."""
        angles = {}
        for finger in FINGERS:
            given = fingers.get(finger, {})
            angles[finger] = {lvl: tuple(given.get(lvl, ())) + (0.0,) * (3 - len(given.get(lvl, ())))
                              for lvl in (1, 2, 3)}
        return cls(angles)

    def as_array(self) -> np.ndarray:
        """[5, 3, 3] degrees: finger (thumb..pinky), level, dof."""
        return np.array([[self.angles[f][lvl] for lvl in (1, 2, 3)] for f in FINGERS], dtype=np.float64)

    @classmethod
    def from_array(cls, array: np.ndarray) -> Articulation:
        return cls({f: {lvl: tuple(float(x) for x in array[i, lvl - 1]) for lvl in (1, 2, 3)}
                    for i, f in enumerate(FINGERS)})


def _curl(mcp: float, pip: float, dip: float, spread: float = 0.0) -> dict[int, tuple[float, ...]]:
    return {1: (mcp, spread), 2: (pip,), 3: (dip,)}


NAMED_POSES: dict[str, Articulation] = {
    "flat": Articulation.of(),
    "open": Articulation.of(index=_curl(5, 5, 3, 10), middle=_curl(5, 5, 3), ring=_curl(5, 5, 3, -9),
                            pinky=_curl(5, 5, 3, -18), thumb={1: (0, 20), 2: (5,), 3: (5,)}),
    "relaxed": Articulation.of(index=_curl(20, 25, 12, 4), middle=_curl(25, 30, 15), ring=_curl(30, 35, 18, -4),
                               pinky=_curl(35, 40, 20, -8), thumb={1: (10, 15), 2: (10,), 3: (15,)}),
    "fist": Articulation.of(index=_curl(85, 100, 60), middle=_curl(88, 100, 60), ring=_curl(88, 100, 60),
                            pinky=_curl(88, 100, 60), thumb={1: (45, 15, 10), 2: (45,), 3: (50,)}),
    # Thumb and index tips 12 mm apart on OpenHand (angles fitted by gradient descent on the tip distance).
    "pinch": Articulation.of(index=_curl(60, 50, 28), middle=_curl(20, 25, 12), ring=_curl(22, 28, 14, -4),
                             pinky=_curl(25, 30, 15, -8), thumb={1: (27, 9, 10), 2: (16, -8, -8), 3: (25, -4)}),
    "point": Articulation.of(index=_curl(0, 0, 0, 4), middle=_curl(85, 100, 60), ring=_curl(88, 100, 60),
                             pinky=_curl(88, 100, 60), thumb={1: (40, 10, 10), 2: (40,), 3: (40,)}),
    "grasp": Articulation.of(index=_curl(45, 55, 30, 4), middle=_curl(48, 58, 32), ring=_curl(50, 60, 34, -4),
                             pinky=_curl(52, 62, 36, -8), thumb={1: (25, 45, 10), 2: (15,), 3: (20,)}),
    "victory": Articulation.of(index=_curl(0, 0, 0, 12), middle=_curl(0, 0, 0, -8), ring=_curl(85, 100, 60),
                               pinky=_curl(88, 100, 60), thumb={1: (45, 10, 10), 2: (40,), 3: (45,)}),
}


def rest_frames(layer: HandLayer) -> torch.Tensor:
    """[15, 3, 3]: for joints 1..15 the unit (flex, abduct, twist) axes as rows, in the rest pose's frame."""
    out = layer(torch.zeros(1, 10), torch.zeros(1, 3), torch.zeros(1, 45))
    joints = out.joints[0].double()
    keypoints = out.keypoints[0].double()
    wrist = joints[0]
    index1, middle1, pinky1 = (joints[MANO_JOINT_NAMES.index(n)] for n in ("index1", "middle1", "pinky1"))
    forward = torch.nn.functional.normalize(middle1 - wrist, dim=0)
    thumb_side = index1 - pinky1
    thumb_side = torch.nn.functional.normalize(thumb_side - forward * (thumb_side @ forward), dim=0)
    # t x f points out of the palm for a right hand; mirroring reverses the cross product.
    side_sign = 1.0 if layer.side == "right" else -1.0
    palm = torch.linalg.cross(thumb_side, forward) * side_sign

    frames = torch.zeros(15, 3, 3, dtype=torch.float64)
    for finger_index, finger in enumerate(FINGERS):
        chain = [MANO_JOINT_NAMES.index(f"{finger}{k}") for k in (1, 2, 3)]
        tip = keypoints[4 + 4 * finger_index]
        ends = [joints[chain[1]], joints[chain[2]], tip]
        # The thumb's pad faces between the palm and the other fingers, so it flexes across the palm.
        volar = torch.nn.functional.normalize(palm - thumb_side, dim=0) if finger == "thumb" else palm
        for j, end in zip(chain, ends):
            twist = torch.nn.functional.normalize(end - joints[j], dim=0)
            toward_palm = torch.nn.functional.normalize(volar - twist * (volar @ twist), dim=0)
            flex = torch.linalg.cross(twist, toward_palm)       # flex x twist = toward_palm
            abduct = torch.linalg.cross(flex, twist)            # rotating about it moves the bone sideways
            if (torch.linalg.cross(abduct, twist) @ thumb_side) < 0:
                abduct = -abduct                                # positive abduction goes toward the thumb
            # Twist about the bone turns the same anatomical way on both sides (mirroring reverses its sense).
            frames[j - 1] = torch.stack([flex, abduct, twist * side_sign])
    return frames.float()


def articulation_to_pose(angles_deg: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Anatomical angles [..., 5, 3, 3] (finger thumb..pinky, level, dof) in degrees -> hand_pose [..., 45]."""
    if angles_deg.shape[-3:] != (5, 3, 3):
        raise ValueError(f"angles_deg: expected shape [..., 5, 3, 3], got {tuple(angles_deg.shape)}")
    lead = angles_deg.shape[:-3]
    radians = torch.deg2rad(angles_deg.to(frames.dtype))
    pose = frames.new_zeros(*lead, 15, 3)
    for finger_index, finger in enumerate(FINGERS):
        for level in (1, 2, 3):
            j = MANO_JOINT_NAMES.index(f"{finger}{level}") - 1
            rot = None
            for dof in range(3):  # R = R_flex @ R_abduct @ R_twist
                r = roma.rotvec_to_rotmat(radians[..., finger_index, level - 1, dof, None] * frames[j, dof])
                rot = r if rot is None else rot @ r
            pose[..., j, :] = roma.rotmat_to_rotvec(rot)
    return pose.reshape(*lead, 45)


def limits_array() -> np.ndarray:
    """[5, 3, 3, 2] degrees (finger, level, dof, low/high)."""
    return np.array([[[joint_limits(f, lvl)[d] for d in DOF] for lvl in (1, 2, 3)] for f in FINGERS], np.float64)


def sample_articulations(rng: np.random.Generator, count: int) -> np.ndarray:
    """[count, 5, 3, 3] natural articulations: a blend of two named poses, per-finger variation, coupled
    PIP/DIP flexion as real fingers have, clipped to the joint limits."""
    names = [n for n in NAMED_POSES if n != "flat"]
    library = np.stack([NAMED_POSES[n].as_array() for n in names])
    first, second = rng.integers(len(names), size=(2, count))
    mix = rng.uniform(0, 1, size=(count, 5, 1, 1))  # each finger blends on its own
    angles = (1 - mix) * library[first] + mix * library[second]
    angles[:, :, :, 0] += rng.normal(0, 8, size=(count, 5, 3))
    angles[:, :, :, 1:] += rng.normal(0, 3, size=(count, 5, 3, 2))
    angles[:, 1:, 2, 0] = 0.5 * angles[:, 1:, 2, 0] + 0.5 * (2 / 3) * angles[:, 1:, 1, 0]  # DIP follows PIP
    limits = limits_array()
    return np.clip(angles, limits[..., 0], limits[..., 1])


def pose_of(layer: HandLayer, articulation: Articulation | np.ndarray | torch.Tensor) -> torch.Tensor:
    """hand_pose [..., 45] of ``layer`` for one named articulation or an array of angles."""
    if isinstance(articulation, Articulation):
        articulation = articulation.as_array()
    return articulation_to_pose(torch.as_tensor(np.asarray(articulation), dtype=torch.float32), rest_frames(layer))
