"""The interaction prior and smooth motion of the synthetic set: two hands over L frames at 30 fps.

A sequence follows one interaction (:data:`INTERACTIONS`): palms together, interlaced fingers, steepled or
touching fingertips, a finger on the other palm, one hand grasping the other, a fist in the other palm, crossed
hands, one hand occluding the other, or hands apart; it may start apart and approach, and leave at the end.
Everything is built in a *pair frame* (OpenCV axes as seen from the front: the person's right hand at x < 0,
fingers up = -y, the body at +z), then turned and placed in front of the camera by a viewpoint that drifts slowly.

Motion: articulations (:mod:`core_model.data.pose_prior`), orientation offsets, gaps and the viewpoint are drawn
at keyframes 0.25-1.2 s apart (the speed varies per sequence), interpolated linearly and smoothed with a Gaussian,
which keeps angles inside the joint limits (a convex combination of in-limit keyframes). The left hand is placed
by anchors (a fingertip on the other palm, tips on tips, palm on palm), then pushed apart along the interaction's
direction until the capsule proxy (:mod:`core_model.data.capsules`) overlaps by at most the frame's allowance
(0-6 mm: some frames keep slight interpenetration, as real predictions have).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d, maximum_filter1d
from scipy.spatial.transform import Rotation

from core_model.data.capsules import separating_push
from core_model.data.pose_prior import POSE_FAMILIES, clip_to_limits, sample_pose
from core_model.handmodel.layer import HandModel
from core_model.handmodel.poses import articulation_to_pose, rest_frames

FPS = 30.0
UP, DOWN = np.array([0.0, -1.0, 0.0]), np.array([0.0, 1.0, 0.0])
TO_CAMERA, TO_BODY = np.array([0.0, 0.0, -1.0]), np.array([0.0, 0.0, 1.0])
TO_LEFT = np.array([1.0, 0.0, 0.0])  # toward the person's left hand in the pair frame
MIRROR = np.diag([-1.0, 1.0, 1.0])
PALM = -1  # anchor code: the palm centre (mean of wrist and the four knuckles)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def orientation(fingers, palm, side: str) -> np.ndarray:
    """3x3 rotation taking a hand's rest pose to one whose fingers point along ``fingers`` and whose palm faces
    ``palm`` (re-orthogonalised). Rest pose: fingers -x (right) / +x (left), palm -y, thumb +z."""
    f = _unit(fingers)
    p = np.asarray(palm, dtype=np.float64)
    p = _unit(p - f * (p @ f))
    first = -f if side == "right" else f
    second = -p
    return np.stack([first, second, np.cross(first, second)], axis=1)


def _random_direction(rng: np.random.Generator, around: np.ndarray, spread_deg: float) -> np.ndarray:
    rot = Rotation.from_rotvec(rng.normal(0, np.deg2rad(spread_deg) / np.sqrt(3), 3))
    return rot.apply(around)


@dataclasses.dataclass
class Interaction:
    """One interaction in the pair frame. The left hand is placed so that its anchor lands on the right hand's
    anchor plus ``offset`` plus a gap along ``direction``; it is then pushed along ``direction`` until separated.

    base: [2, 3, 3] rest-to-pair rotations (right, left); anchors: keypoint index or :data:`PALM` per hand;
    families: pose family per hand; allowance: largest capsule overlap kept (metres); gap: resting gap (metres).
    """

    name: str
    base: np.ndarray
    anchors: tuple[int, int]
    offset: np.ndarray
    direction: np.ndarray
    families: tuple[str, str]
    allowance: float
    gap: float = 0.0
    symmetric_pose: bool = False
    jitter_deg: float = 10.0

    def swapped(self) -> Interaction:
        """The mirror image: the right hand plays the left's role and vice versa."""
        base = np.stack([MIRROR @ self.base[1] @ MIRROR, MIRROR @ self.base[0] @ MIRROR])
        return dataclasses.replace(self, base=base, anchors=self.anchors[::-1], offset=-(MIRROR @ self.offset),
                                   direction=-(MIRROR @ self.direction), families=self.families[::-1])


def _symmetric(right: np.ndarray) -> np.ndarray:
    return np.stack([right, MIRROR @ right @ MIRROR])


def _tilt(rng: np.random.Generator, base: np.ndarray, degrees: float) -> np.ndarray:
    rot = Rotation.from_rotvec(TO_LEFT * np.deg2rad(rng.uniform(-degrees, degrees))).as_matrix()
    return rot @ base


def _prayer(rng):
    base = _tilt(rng, _symmetric(orientation(UP, TO_LEFT, "right")), 40)
    return Interaction("palms_together", base, (PALM, PALM), np.zeros(3), TO_LEFT, ("open", "open"),
                       rng.uniform(0, 0.004), symmetric_pose=True, jitter_deg=6)


def _interlace(rng):
    """Fingers slotted between each other: the middle knuckles meet, one hand shifted across the fingers by half a
    finger spacing (the pair frame's z), so each finger lies in a gap of the other hand, not on a finger."""
    base = _tilt(rng, _symmetric(orientation(_unit([0.45, -1, 0]), TO_LEFT, "right")), 35)
    offset = np.array([0.0, rng.uniform(-0.006, 0.006), rng.choice([-1, 1]) * rng.uniform(0.008, 0.011)])
    return Interaction("interlaced", base, (9, 9), offset, TO_LEFT, ("interlace", "interlace"),
                       rng.uniform(0.006, 0.010), symmetric_pose=True, jitter_deg=5)


def _steeple(rng):
    base = _tilt(rng, _symmetric(orientation(_unit([0.6, -1, 0]), _unit([1, 0.3, 0]), "right")), 45)
    tip = int(rng.choice([8, 12, 4]))
    return Interaction("steeple", base, (tip, tip), np.zeros(3), TO_LEFT, ("open", "open"),
                       rng.uniform(0, 0.002), symmetric_pose=True, jitter_deg=6)


def _tips(rng):
    right = orientation(_unit([1, -0.4, rng.uniform(-0.5, 0.5)]), rng.choice([-1, 1]) * TO_CAMERA, "right")
    left = orientation(_unit([-1, -0.4, rng.uniform(-0.5, 0.5)]), rng.choice([-1, 1]) * TO_CAMERA, "left")
    anchors = (int(rng.choice([4, 8, 8, 12])), int(rng.choice([4, 8, 8, 12, 16])))
    return Interaction("fingertips", np.stack([right, left]), anchors, np.zeros(3), TO_LEFT, ("sign", "sign"),
                       rng.uniform(0, 0.002), jitter_deg=15)


def _point_palm(rng):
    right = orientation(_unit([1, rng.uniform(-0.3, 0.3), rng.uniform(-0.6, 0.2)]), DOWN, "right")
    left = orientation(_unit([rng.uniform(-0.3, 0.3), -1, rng.uniform(-0.3, 0.3)]), -TO_LEFT, "left")
    return Interaction("finger_on_palm", np.stack([right, left]), (8, PALM), np.zeros(3), TO_LEFT,
                       ("sign", "open"), rng.uniform(0, 0.003), jitter_deg=12)


def _grasp(rng):
    right = orientation(_unit([0, rng.uniform(-0.3, 0.3), -1]), TO_LEFT, "right")
    left = orientation(-TO_LEFT, rng.choice([-1, 1]) * TO_CAMERA, "left")
    return Interaction("grasp", np.stack([right, left]), (PALM, 10), np.zeros(3), TO_LEFT, ("closed", "open"),
                       rng.uniform(0.002, 0.006), jitter_deg=10)


def _fist_in_palm(rng):
    """A fist pressed into the other, open palm (the knuckles' front face, at the middle PIP, on the palm)."""
    right = orientation(_unit([1, rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3)]), DOWN, "right")
    left = orientation(_unit([rng.uniform(-0.2, 0.2), -1, rng.uniform(-0.2, 0.2)]), -TO_LEFT, "left")
    return Interaction("fist_in_palm", np.stack([right, left]), (10, PALM), np.zeros(3), TO_LEFT,
                       ("closed", "open"), rng.uniform(0.002, 0.006), jitter_deg=10)


def _cross(rng):
    side = rng.choice([-1, 1])
    right = orientation(_unit([0.5, -1, 0]), side * TO_CAMERA, "right")
    left = MIRROR @ orientation(_unit([0.5, -1, 0]), side * TO_CAMERA, "right") @ MIRROR
    depth = rng.choice([-1, 1])
    offset = np.array([-rng.uniform(0.0, 0.05), rng.uniform(-0.03, 0.03), depth * rng.uniform(0.03, 0.06)])
    return Interaction("crossed", np.stack([right, left]), (0, 0), offset, np.array([0.0, 0.0, depth]),
                       ("any", "any"), rng.uniform(0, 0.002), jitter_deg=15)


def _random_orientation(rng, side: str) -> np.ndarray:
    fingers = _random_direction(rng, UP, 70)
    palm = _random_direction(rng, TO_CAMERA if rng.uniform() < 0.5 else (TO_LEFT if side == "right" else -TO_LEFT),
                             50)
    return orientation(fingers, palm, side)


def _occlude(rng):
    depth = rng.choice([-1, 1])
    offset = np.array([rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05), depth * rng.uniform(0.04, 0.1)])
    base = np.stack([_random_orientation(rng, "right"), _random_orientation(rng, "left")])
    return Interaction("occluding", base, (PALM, PALM), offset, np.array([0.0, 0.0, depth]), ("any", "any"),
                       0.0, jitter_deg=18)


def _apart(rng):
    base = np.stack([_random_orientation(rng, "right"), _random_orientation(rng, "left")])
    return Interaction("apart", base, (PALM, PALM), np.zeros(3), TO_LEFT, ("any", "any"), 0.0,
                       gap=rng.uniform(0.02, 0.12), jitter_deg=18)


INTERACTIONS: dict[str, tuple[float, Callable[[np.random.Generator], Interaction]]] = {
    "palms_together": (1.0, _prayer),
    "interlaced": (1.2, _interlace),
    "steeple": (0.8, _steeple),
    "fingertips": (1.2, _tips),
    "finger_on_palm": (1.0, _point_palm),
    "grasp": (1.0, _grasp),
    "fist_in_palm": (0.8, _fist_in_palm),
    "crossed": (1.0, _cross),
    "occluding": (1.2, _occlude),
    "apart": (0.6, _apart),
}
"""Name -> (relative frequency, generator) of the interaction prior."""


def sample_interaction(rng: np.random.Generator, name: str | None = None) -> Interaction:
    if name is None:
        names = list(INTERACTIONS)
        weights = np.array([INTERACTIONS[n][0] for n in names])
        name = names[rng.choice(len(names), p=weights / weights.sum())]
    if name not in INTERACTIONS:
        raise ValueError(f"name: expected one of {sorted(INTERACTIONS)}, got {name!r}")
    interaction = INTERACTIONS[name][1](rng)
    return interaction.swapped() if rng.uniform() < 0.5 else interaction


# ----------------------------------------------------------------------------------------------- keyframes


def _keyframe_times(rng: np.random.Generator, frames: int) -> tuple[np.ndarray, float]:
    """Keyframe times (frames) covering [0, frames - 1] and the mean interval; the speed varies per sequence."""
    mean_interval = rng.uniform(0.25, 1.2) * FPS
    times = [0.0]
    while times[-1] < frames - 1:
        times.append(times[-1] + mean_interval * rng.uniform(0.6, 1.4))
    return np.array(times), mean_interval


def _track(times: np.ndarray, values: np.ndarray, frames: int, sigma: float) -> np.ndarray:
    """Piecewise-linear through keyframe ``values`` [K, ...] then Gaussian-smoothed: [frames, ...]."""
    t = np.arange(frames, dtype=np.float64)
    flat = values.reshape(len(times), -1)
    linear = np.stack([np.interp(t, times, flat[:, j]) for j in range(flat.shape[1])], axis=1)
    if sigma > 0:
        linear = gaussian_filter1d(linear, sigma, axis=0, mode="nearest")
    return linear.reshape(frames, *values.shape[1:])


def _gap_schedule(rng: np.random.Generator, frames: int, rest: float) -> np.ndarray:
    """Gap along the interaction direction: approach at the start, leave at the end (sometimes), else ``rest``."""
    gap = np.full(frames, rest)
    t = np.arange(frames, dtype=np.float64)
    if rng.uniform() < 0.4:  # approach
        length = max(2.0, rng.uniform(0.25, 0.6) * frames)
        start = rng.uniform(0.06, 0.18)
        ramp = 0.5 * (1 + np.cos(np.pi * np.clip(t / length, 0, 1)))  # 1 -> 0
        gap += (start - rest) * ramp * (start > rest)
    if rng.uniform() < 0.3:  # leave
        length = max(2.0, rng.uniform(0.25, 0.5) * frames)
        end = rng.uniform(0.06, 0.18)
        ramp = 0.5 * (1 - np.cos(np.pi * np.clip((t - (frames - length)) / length, 0, 1)))  # 0 -> 1
        gap += max(end - rest, 0.0) * ramp
    return gap


@dataclasses.dataclass
class HandMotion:
    """Per-frame MANO-layout parameters of both hands in the camera frame (metres, axis-angle).

    betas [L, 2, 10]; global_orient [L, 2, 3]; hand_pose [L, 2, 45]; transl [L, 2, 3];
    articulation [L, 2, 5, 3, 3] anatomical degrees; vertices [L, 2, V, 3]; keypoints [L, 2, 21, 3];
    interaction: the name of the interaction; keyframe_interval: mean seconds between keyframes.
    """

    betas: np.ndarray
    global_orient: np.ndarray
    hand_pose: np.ndarray
    transl: np.ndarray
    articulation: np.ndarray
    vertices: np.ndarray
    keypoints: np.ndarray
    interaction: str
    keyframe_interval: float


def _anchor(keypoints: np.ndarray, code: int) -> np.ndarray:
    if code == PALM:
        return keypoints[..., [0, 5, 9, 13, 17], :].mean(-2)
    return keypoints[..., code, :]


def _posed_local(model: HandModel, betas: np.ndarray, hand_pose: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints [L, 2, 21, 3] of the posed hands without global rotation or translation, and root joints [2, 3]."""
    frames = hand_pose.shape[0]
    with torch.no_grad():
        out = model(torch.as_tensor(betas, dtype=torch.float32).expand(frames, 2, 10),
                    torch.zeros(frames, 2, 3), hand_pose, torch.zeros(frames, 2, 3))
    return out.keypoints.double().numpy(), out.joints[0, :, 0].double().numpy()


def synthesize_motion(model: HandModel, rng: np.random.Generator, frames: int, focal: float, size: int,
                      interaction: str | None = None) -> HandMotion:
    """Motion of two interacting hands over ``frames`` frames, framed for a ``size`` px camera of focal ``focal``."""
    # Long by design (about 85 lines): one generative story read top to bottom (shape, articulation, orientation,
    # viewpoint, placement, framing), each paragraph drawing from the same generator in a fixed order; moving a
    # paragraph out would not shorten the story, and reordering draws would change every synthetic set's seed.
    if frames < 1:
        raise ValueError(f"frames: expected at least 1, got {frames}")
    inter = sample_interaction(rng, interaction)
    times, interval = _keyframe_times(rng, frames)
    sigma = 0.35 * interval
    k = len(times)

    # Shape: one person, so the two hands differ only a little.
    betas_r = np.clip(rng.normal(0, 0.8, 10), -2.5, 2.5)
    betas = np.stack([betas_r, np.clip(betas_r + rng.normal(0, 0.15, 10), -2.5, 2.5)])

    # Articulation keyframes per hand; a symmetric interaction mirrors one pose with small differences.
    art = np.stack([sample_pose(rng, POSE_FAMILIES[inter.families[h]], k) for h in range(2)], axis=1)
    if inter.symmetric_pose:
        art[:, 1] = clip_to_limits(art[:, 0] + rng.normal(0, 3, art[:, 0].shape))
    articulation = _track(times, art, frames, sigma)

    hand_pose = torch.stack([articulation_to_pose(torch.as_tensor(articulation[:, h], dtype=torch.float32),
                                                  rest_frames(layer)) for h, layer in enumerate(model.sides)], 1)
    local, roots = _posed_local(model, betas, hand_pose)
    local = local - roots[None, :, None, :]  # rotate about the root joint, as the model does

    # Orientation offsets per hand (small rotations on top of the interaction's base) and the pair's viewpoint.
    jitter = np.deg2rad(inter.jitter_deg) / np.sqrt(3)
    delta = _track(times, rng.normal(0, jitter, (k, 2, 3)), frames, sigma)
    rot = np.stack([Rotation.from_rotvec(delta[:, h]).as_matrix() @ inter.base[h] for h in range(2)], 1)

    yaw0, pitch0 = rng.uniform(-150, 150), rng.uniform(-45, 50)
    view_keys = np.stack([np.full(k, yaw0), np.full(k, pitch0), np.zeros(k)], 1) + rng.normal(0, [12, 8, 6], (k, 3))
    view_angles = _track(times, view_keys, frames, 1.5 * sigma)
    view = Rotation.from_euler("yxz", view_angles, degrees=True).as_matrix()  # [L, 3, 3] pair -> camera

    # Place: right wrist at the origin of the pair frame; left by anchors, gap and push.
    kp_r = np.einsum("lij,lkj->lki", rot[:, 0], local[:, 0])
    kp_l_rel = np.einsum("lij,lkj->lki", rot[:, 1], local[:, 1])
    target = _anchor(kp_r, inter.anchors[0]) + inter.offset - _anchor(kp_l_rel, inter.anchors[1])
    gap = _gap_schedule(rng, frames, inter.gap)
    if inter.name == "apart":
        gap = gap + _track(times, rng.uniform(0.0, 0.1, k), frames, sigma)
    direction = np.tile(_unit(inter.direction), (frames, 1))
    placed = target + gap[:, None] * direction
    allowance = _track(times, rng.uniform(0, 1, k) ** 2, frames, sigma) * inter.allowance
    push = separating_push(kp_r, kp_l_rel + placed[:, None, :], direction, allowance)
    push = gaussian_filter1d(maximum_filter1d(push, size=5, mode="nearest"), max(1.0, 0.25 * sigma), mode="nearest")
    wrist_l = placed + push[:, None] * direction
    wrists = np.stack([np.zeros((frames, 3)), wrist_l], 1)
    keypoints_pair = np.stack([kp_r, kp_l_rel + wrist_l[:, None, :]], 1)

    # Frame the pair: centre, distance so that it fills 45-85 % of the image, an off-centre drift.
    centre = gaussian_filter1d(keypoints_pair.reshape(frames, -1, 3).mean(1), max(1.0, sigma), axis=0, mode="nearest")
    rel = np.einsum("lij,lnj->lni", view, keypoints_pair.reshape(frames, -1, 3) - centre[:, None])
    extent = float(np.ptp(rel[..., :2], axis=1).max())
    fill = rng.uniform(0.45, 0.8)
    depth = focal * max(extent, 0.08) / (fill * size)
    depth_track = depth * np.exp(_track(times, rng.normal(0, 0.06, k), frames, 1.5 * sigma))
    room = 0.4 * (1 - fill)  # off-centre drift that keeps the pair in view
    shift = _track(times, rng.uniform(-room, room, (k, 2)), frames, 1.5 * sigma) * size / focal
    cam_centre = np.concatenate([shift * depth_track[:, None], depth_track[:, None]], 1)
    near = (rel[..., 2] + cam_centre[:, None, 2]).min()
    if near < 0.12:  # never let a hand come closer than 12 cm to the camera
        cam_centre[:, 2] += 0.12 - near

    orient_cam = np.einsum("lij,lhjk->lhik", view, rot)
    wrist_cam = np.einsum("lij,lhj->lhi", view, wrists - centre[:, None]) + cam_centre[:, None]
    global_orient = Rotation.from_matrix(orient_cam.reshape(-1, 3, 3)).as_rotvec().reshape(frames, 2, 3)
    transl = wrist_cam - roots[None]

    with torch.no_grad():
        out = model(torch.as_tensor(betas, dtype=torch.float32).expand(frames, 2, 10),
                    torch.as_tensor(global_orient, dtype=torch.float32), hand_pose,
                    torch.as_tensor(transl, dtype=torch.float32))
    return HandMotion(
        betas=np.broadcast_to(betas, (frames, 2, 10)).astype(np.float32).copy(),
        global_orient=global_orient.astype(np.float32),
        hand_pose=hand_pose.numpy().astype(np.float32),
        transl=transl.astype(np.float32),
        articulation=articulation.astype(np.float32),
        vertices=out.vertices.numpy(),
        keypoints=out.keypoints.numpy(),
        interaction=inter.name,
        keyframe_interval=interval / FPS,
    )
