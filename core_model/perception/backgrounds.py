"""Backgrounds for the perception's training crops: real photographs where an installed package ships some under
an open licence, and the synthetic set's procedural textures.

The photographs come from scikit-image's bundled sample data and matplotlib's sample data (nothing is downloaded).
Each is used through random crops, scales, rotations, mirrors and colour shifts, so a dozen photographs give
backgrounds with real statistics (edges, clutter, a face and a body in ``astronaut`` and ``grace_hopper``)
that procedural noise lacks.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import cv2
import numpy as np

# file -> licence, as their packages' documentation states it.
SKIMAGE_PHOTOS = {
    "astronaut.png": "public domain (NASA)",
    "coffee.png": "CC0 (Rachel Michetti)",
    "chelsea.png": "CC0 (Stefan van der Walt)",
    "brick.png": "CC0 (Stefan van der Walt)",
    "grass.png": "CC0 (Stefan van der Walt)",
    "gravel.png": "CC0 (Stefan van der Walt)",
    "rocket.jpg": "public domain (SpaceX)",
    "motorcycle_left.png": "Middlebury stereo data set (free for research use)",
    "color.png": "CC0 (scikit-image)",
    "camera.png": "CC0 (scikit-image)",
}
MATPLOTLIB_PHOTOS = {"grace_hopper.jpg": "public domain (US Navy)"}


@dataclasses.dataclass(frozen=True)
class Photo:
    name: str
    licence: str
    image: np.ndarray  # [H, W, 3] uint8 RGB


def _read(path: Path) -> np.ndarray | None:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@functools.lru_cache(maxsize=1)
def photo_backgrounds() -> tuple[Photo, ...]:
    """The bundled photographs found in the installed packages (scikit-image is the ``train`` extra)."""
    found = []
    try:
        import skimage

        folder = Path(skimage.__file__).parent / "data"
        for name, licence in SKIMAGE_PHOTOS.items():
            if (image := _read(folder / name)) is not None:
                found.append(Photo(name, licence, image))
    except ImportError:
        pass
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "sample_data"
    for name, licence in MATPLOTLIB_PHOTOS.items():
        if (image := _read(folder / name)) is not None:
            found.append(Photo(name, licence, image))
    return tuple(found)


def photo_crop(rng: np.random.Generator, photo: np.ndarray, size: int) -> np.ndarray:
    """A random view of ``photo``: [size, size, 3] float in [0, 1] (scale, rotation, mirror, colour shift)."""
    h, w = photo.shape[:2]
    side = min(h, w) * rng.uniform(0.25, 1.0)
    angle = rng.uniform(-30, 30) if rng.uniform() < 0.5 else 0.0
    cx, cy = rng.uniform(side / 2, w - side / 2), rng.uniform(side / 2, h - side / 2)
    scale = size / side
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    matrix[:, 2] += np.array([size / 2, size / 2]) - np.array([cx, cy])
    out = cv2.warpAffine(photo, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    if rng.uniform() < 0.5:
        out = out[:, ::-1]
    out = out.astype(np.float32) / 255.0
    if rng.uniform() < 0.3:
        out = out.mean(-1, keepdims=True).repeat(3, -1)
    gain = rng.uniform(0.6, 1.3) * rng.uniform(0.85, 1.15, 3)
    return np.clip(out * gain.astype(np.float32), 0, 1)
