"""What the synthetic hands and their surroundings look like: skin, nails, forearms, lights, backgrounds.

Everything is procedural and drawn from the sequence's random generator; nothing is downloaded. Skin tones
span light to dark; the palm side is lighter, knuckles and fingertips a little redder, nails paler; a forearm
stump continues each wrist so hands do not float. Backgrounds are textures (value noise, wood grain, stripes and
plaid, tiles, blurred clutter) with a soft shadow of the hands.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import torch
from scipy.ndimage import gaussian_filter, map_coordinates

from core_model.geometry.normals import vertex_normals
from core_model.handmodel.keypoints import FINGERS, MANO_JOINT_NAMES
from core_model.handmodel.layer import HandLayer

SKIN_TONES = np.array([
    [255, 224, 200], [241, 198, 170], [226, 176, 142], [205, 145, 108], [176, 116, 82], [141, 90, 62],
    [106, 66, 46], [80, 50, 36],
], dtype=np.float64) / 255.0
"""sRGB skin tones from light to dark; a sequence blends two neighbours."""


# ----------------------------------------------------------------------------------------------- hand regions


@dataclasses.dataclass(frozen=True)
class HandRegions:
    """Per-vertex weights of one hand side, from its rest mesh: palm [V] (0 back .. 1 palm side), nail [V],
    distal [V] (fingertip and knuckle redness); and the forearm stump as a mesh in the rest frame:
    forearm_vertices [Nf, 3], forearm_faces [Ff, 3]."""

    palm: np.ndarray
    nail: np.ndarray
    distal: np.ndarray
    forearm_vertices: np.ndarray
    forearm_faces: np.ndarray


def _forearm(axis: np.ndarray, across: np.ndarray, normal: np.ndarray, start: np.ndarray, half_width: float,
             half_thickness: float, length: float = 0.22, rings: int = 6, segments: int = 24):
    """A tapered elliptic tube from ``start`` along ``axis``, capped at the far end: (vertices, faces)."""
    theta = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    verts = []
    for i in range(rings):
        s = i / (rings - 1)
        grow = 1.0 + 0.3 * s
        ring = (start + axis * length * s + np.outer(np.cos(theta), across) * half_width * grow
                + np.outer(np.sin(theta), normal) * half_thickness * grow)
        verts.append(ring)
    verts = np.concatenate(verts)
    faces = []
    for i in range(rings - 1):
        for j in range(segments):
            a, b = i * segments + j, i * segments + (j + 1) % segments
            c, d = a + segments, b + segments
            faces += [(a, c, b), (b, c, d)]
    centre = len(verts)
    verts = np.concatenate([verts, (start + axis * length)[None]])
    last = (rings - 1) * segments
    faces += [(last + j, centre, last + (j + 1) % segments) for j in range(segments)]
    return verts, np.asarray(faces, dtype=np.int64)


@functools.lru_cache(maxsize=8)
def _regions_cached(layer: HandLayer) -> HandRegions:
    with torch.no_grad():
        out = layer(torch.zeros(1, 10), torch.zeros(1, 3), torch.zeros(1, 45))
    verts = out.vertices[0].double().numpy()
    joints = out.joints[0].double().numpy()
    faces = layer.data.faces
    normals = vertex_normals(verts, faces)
    if np.mean(np.einsum("ij,ij->i", normals, verts - verts.mean(0))) < 0:
        normals = -normals  # make them point outward whatever the winding
    wrist, middle1 = joints[0], joints[MANO_JOINT_NAMES.index("middle1")]
    index1, pinky1 = joints[MANO_JOINT_NAMES.index("index1")], joints[MANO_JOINT_NAMES.index("pinky1")]
    forward = (middle1 - wrist) / np.linalg.norm(middle1 - wrist)
    across = index1 - pinky1
    across = across - forward * (across @ forward)
    across /= np.linalg.norm(across)
    palm_dir = np.cross(across, forward) * (1.0 if layer.side == "right" else -1.0)
    palm = np.clip(0.5 + 0.9 * (normals @ palm_dir), 0, 1)

    dominant = layer.data.weights.argmax(1)
    nail = np.zeros(len(verts))
    distal = np.zeros(len(verts))
    tips = layer.data.fingertip_ids
    for f, finger in enumerate(FINGERS):
        j3 = MANO_JOINT_NAMES.index(f"{finger}3")
        j1 = MANO_JOINT_NAMES.index(f"{finger}1")
        tip = verts[tips[f]]
        bone = tip - joints[j3]
        sel = dominant == j3
        along = ((verts - joints[j3]) @ bone) / (bone @ bone)
        dorsal = -(normals @ palm_dir)
        nail[sel] = np.clip((along[sel] - 0.35) * 6, 0, 1) * np.clip((dorsal[sel] - 0.35) * 4, 0, 1)
        distal[sel] = np.clip(along[sel], 0, 1)
        knuckle = np.exp(-np.sum((verts - joints[j1]) ** 2, 1) / (2 * 0.008 ** 2)) * np.clip(dorsal, 0, 1)
        distal = np.maximum(distal, knuckle)

    back = -forward
    proj = (verts - wrist) @ back
    opening = verts[proj > proj.max() - 0.01]
    rel = opening - wrist
    centre_across = (rel @ across).mean()
    centre_normal = (rel @ palm_dir).mean()
    half_width = max(0.5 * np.ptp(rel @ across), 0.01)
    half_thickness = max(0.5 * np.ptp(rel @ palm_dir), 0.008)
    start = wrist + back * (proj.max() - 0.012) + across * centre_across + palm_dir * centre_normal
    fv, ff = _forearm(back, across, palm_dir, start, 0.97 * half_width, 0.97 * half_thickness)
    if layer.side == "left":
        ff = ff[:, ::-1].copy()
    return HandRegions(palm=palm, nail=nail, distal=distal, forearm_vertices=fv, forearm_faces=ff)


def hand_regions(layer: HandLayer) -> HandRegions:
    """Skin regions and forearm stump of one hand side (cached per layer)."""
    return _regions_cached(layer)


# ----------------------------------------------------------------------------------------------- skin


@dataclasses.dataclass
class Skin:
    """Per-vertex sRGB colours in [0, 1]: hands [2, V, 3], forearms [2, Nf, 3]; material constants."""

    hands: np.ndarray
    forearms: np.ndarray
    specular: float
    specular_power: float
    ambient: float


def sample_skin(rng: np.random.Generator, layers: tuple[HandLayer, HandLayer]) -> Skin:
    i = rng.integers(len(SKIN_TONES) - 1)
    base = SKIN_TONES[i] * (1 - (w := rng.uniform())) + SKIN_TONES[i + 1] * w
    base = np.clip(base * rng.uniform(0.95, 1.05, 3), 0, 1)
    hands, forearms = [], []
    phase = rng.uniform(0, 2 * np.pi, (6,))
    freq = rng.normal(0, 60, (6, 3))
    for layer in layers:
        reg = hand_regions(layer)
        rest = layer.v_template.double().numpy()
        palm_tone = np.clip(base * np.array([1.10, 1.03, 1.0]) + np.array([0.06, 0.02, 0.02]), 0, 1)
        colour = base[None] * (1 - reg.palm[:, None]) + palm_tone[None] * reg.palm[:, None]
        red = np.array([1.06, 0.90, 0.88])
        colour = colour * (1 + (red - 1)[None] * reg.distal[:, None] * 0.8)
        nail_tone = np.clip(base * 0.45 + np.array([0.55, 0.45, 0.45]), 0, 1)
        colour = colour * (1 - reg.nail[:, None]) + nail_tone[None] * reg.nail[:, None]
        mottle = np.sin(rest @ freq.T + phase).mean(1)
        colour = np.clip(colour * (1 + 0.06 * mottle)[:, None], 0, 1)
        hands.append(colour)
        forearms.append(np.tile(np.clip(base * 0.97, 0, 1), (len(reg.forearm_vertices), 1)))
    return Skin(hands=np.stack(hands), forearms=np.stack(forearms), specular=rng.uniform(0.08, 0.3),
                specular_power=rng.uniform(8, 25), ambient=rng.uniform(0.12, 0.28))


# ----------------------------------------------------------------------------------------------- lights


@dataclasses.dataclass
class Lighting:
    """A key and a fill light: unit directions from the hands toward each light in the camera frame (OpenCV axes;
    -z points back at the camera), colours and intensities."""

    key_direction: np.ndarray
    key_colour: np.ndarray
    key_intensity: float
    fill_direction: np.ndarray
    fill_colour: np.ndarray
    fill_intensity: float


def sample_lighting(rng: np.random.Generator) -> Lighting:
    def from_camera_side(spread: float) -> np.ndarray:
        v = np.array([rng.uniform(-spread, spread), rng.uniform(-spread, spread * 0.6) - 0.3, -1.0])
        return v / np.linalg.norm(v)

    warm = rng.uniform(-1, 1)  # -1 cool daylight .. 1 warm tungsten
    key_colour = np.clip(np.array([1.0, 0.95, 0.9]) + warm * np.array([0.0, -0.03, -0.12]), 0, 1)
    key = from_camera_side(1.6)
    fill = np.array([-key[0], rng.uniform(-0.5, 0.5), -1.0])
    return Lighting(key_direction=key, key_colour=key_colour, key_intensity=rng.uniform(0.65, 1.05),
                    fill_direction=fill / np.linalg.norm(fill), fill_colour=np.array([0.9, 0.93, 1.0]),
                    fill_intensity=rng.uniform(0.15, 0.45))


# ----------------------------------------------------------------------------------------------- backgrounds


def _value_noise(rng: np.random.Generator, size: int, octaves: int = 5, base_cells: int = 3) -> np.ndarray:
    out = np.zeros((size, size))
    amplitude, total = 1.0, 0.0
    for o in range(octaves):
        cells = base_cells * 2 ** o + 1
        grid = rng.uniform(0, 1, (cells, cells))
        coords = np.linspace(0, cells - 1, size)
        yy, xx = np.meshgrid(coords, coords, indexing="ij")
        out += amplitude * map_coordinates(grid, [yy, xx], order=3, mode="reflect")
        total += amplitude
        amplitude *= 0.55
    out /= total
    return (out - out.min()) / max(np.ptp(out), 1e-9)


def _palette(rng: np.random.Generator, count: int) -> np.ndarray:
    hue = rng.uniform(0, 1)
    colours = []
    for _ in range(count):
        h = (hue + rng.normal(0, 0.08)) % 1.0
        s, v = rng.uniform(0.05, 0.7), rng.uniform(0.15, 0.95)
        colours.append(_hsv_to_rgb(h, s, v))
    return np.array(colours)


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


def _colourise(field: np.ndarray, colours: np.ndarray) -> np.ndarray:
    stops = np.linspace(0, 1, len(colours))
    return np.stack([np.interp(field, stops, colours[:, c]) for c in range(3)], -1)


def _rotated_grid(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, np.pi)
    return xx * np.cos(angle) + yy * np.sin(angle), -xx * np.sin(angle) + yy * np.cos(angle)


def sample_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """[size, size, 3] float sRGB in [0, 1]: a procedural texture (value noise, wood, stripes/plaid, tiles,
    clutter), slightly defocused."""
    kind = rng.choice(["noise", "wood", "stripes", "tiles", "clutter"])
    colours = _palette(rng, 3)
    if kind == "noise":
        image = _colourise(_value_noise(rng, size, base_cells=int(rng.integers(2, 6))), colours)
    elif kind == "wood":
        u, v = _rotated_grid(rng, size)
        warp = _value_noise(rng, size, octaves=3) * rng.uniform(0.5, 2.0)
        rings = 0.5 + 0.5 * np.sin((v * rng.uniform(15, 40) + warp * 6) * np.pi)
        wood = np.array([[0.55, 0.36, 0.2], [0.75, 0.55, 0.35], [0.4, 0.25, 0.13]]) * rng.uniform(0.7, 1.2)
        image = _colourise(np.clip(rings ** 1.5, 0, 1), np.clip(wood, 0, 1))
    elif kind == "stripes":
        u, v = _rotated_grid(rng, size)
        freq = rng.uniform(4, 20)
        a = (np.sin(u * freq * 2 * np.pi) > rng.uniform(-0.5, 0.5)).astype(float)
        b = (np.sin(v * freq * rng.uniform(0.5, 2) * 2 * np.pi) > 0.3).astype(float) * (rng.uniform() < 0.5)
        field = np.clip(0.6 * a + 0.4 * b + 0.15 * _value_noise(rng, size, octaves=4, base_cells=8), 0, 1)
        image = _colourise(field, colours)
    elif kind == "tiles":
        u, v = _rotated_grid(rng, size)
        n = rng.uniform(3, 10)
        line = ((np.abs(((u * n) % 1) - 0.5) > 0.46) | (np.abs(((v * n) % 1) - 0.5) > 0.46)).astype(float)
        tone = _value_noise(rng, size, octaves=4, base_cells=6) * 0.3
        image = _colourise(np.clip(0.2 + tone, 0, 1), colours[:2]) * (1 - 0.5 * line[..., None])
    else:
        image = _colourise(_value_noise(rng, size, octaves=2), colours)
        yy, xx = np.mgrid[0:size, 0:size]
        for _ in range(int(rng.integers(4, 12))):
            cx, cy = rng.uniform(0, size, 2)
            rx, ry = rng.uniform(0.05, 0.35, 2) * size
            blob = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1 if rng.uniform() < 0.5 else \
                (np.abs(xx - cx) < rx) & (np.abs(yy - cy) < ry)
            image[blob] = _palette(rng, 1)[0] * rng.uniform(0.5, 1.0)
        image = gaussian_filter(image, sigma=(size / 120, size / 120, 0))
    image = image * (1 + 0.08 * (_value_noise(rng, size, octaves=3) - 0.5))[..., None]
    blur = rng.uniform(0, size / 160)
    if blur > 0.3:
        image = gaussian_filter(image, sigma=(blur, blur, 0))
    return np.clip(image, 0, 1)


def composite(rgb: np.ndarray, alpha: np.ndarray, background: np.ndarray, rng: np.random.Generator,
              shadow_offset: np.ndarray, shadow_strength: float) -> np.ndarray:
    """Hands (premultiplied ``rgb`` [S, S, 3] and ``alpha`` [S, S] in [0, 1]) over ``background`` with a soft shadow
    cast by ``alpha`` shifted by ``shadow_offset`` pixels; then sensor blur and noise. Returns uint8 [S, S, 3]."""
    size = alpha.shape[0]
    shifted = np.roll(alpha, (round(float(shadow_offset[1])), round(float(shadow_offset[0]))), axis=(0, 1))
    shadow = gaussian_filter(shifted, sigma=size / 35)
    back = background * (1 - shadow_strength * shadow)[..., None]
    image = rgb + back * (1 - alpha[..., None])
    sharp = rng.uniform(0, 0.7)
    if sharp > 0.25:
        image = gaussian_filter(image, sigma=(sharp, sharp, 0))
    image = image + rng.normal(0, rng.uniform(0.0, 0.015), image.shape)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
