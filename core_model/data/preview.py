"""A contact sheet of synthetic frames with their 2D keypoints drawn over them, for checking the set by eye."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from core_model.fileio import atomic_path
from core_model.handmodel.keypoints import BONES

HAND_RGB = ((40, 110, 255), (255, 140, 20))  # right blue, left orange


def draw_keypoints(image: Image.Image, keypoints2d: np.ndarray, visibility: np.ndarray | None = None,
                   scale: float = 1.0) -> Image.Image:
    """Draw both hands' skeletons (keypoints2d [2, 21, 2] pixels of ``image`` before ``scale``); hidden keypoints
    (visibility False) are drawn hollow."""
    draw = ImageDraw.Draw(image)
    radius = max(1.5, image.width / 140)
    for h in range(2):
        pts = keypoints2d[h] * scale
        for a, b in BONES:
            draw.line([tuple(pts[a]), tuple(pts[b])], fill=HAND_RGB[h], width=max(1, int(radius * 0.7)))
        for k, (x, y) in enumerate(pts):
            seen = True if visibility is None else bool(visibility[h, k])
            box = [x - radius, y - radius, x + radius, y + radius]
            draw.ellipse(box, fill=HAND_RGB[h] if seen else None, outline=(255, 255, 255) if seen else HAND_RGB[h])
    return image


def preview_grid(root: str | Path, path: str | Path, count: int = 12, columns: int = 4, cell: int = 256,
                 with_keypoints: bool = True) -> Path:
    """Write a grid of ``count`` frames spread over the sequences of the synthetic set at ``root``: each cell
    shows a frame and, beside it (``with_keypoints``), the same frame with projected keypoints."""
    root = Path(root)
    index = json.loads((root / "dataset.json").read_text())
    names = index["sequence_names"]
    if not names:
        raise ValueError(f"root: {root} holds no sequences")
    picks = []
    for i in range(count):
        name = names[i % len(names)]
        frames = index["frames"]
        picks.append((name, int((i // len(names) * 0.37 + 0.5 * (i % 2) + 0.2) * frames) % frames))
    per_cell = 2 if with_keypoints else 1
    rows = -(-count // columns)
    sheet = Image.new("RGB", (columns * cell * per_cell, rows * cell), (255, 255, 255))
    cache: dict[str, np.lib.npyio.NpzFile] = {}
    for i, (name, t) in enumerate(picks):
        if name not in cache:
            cache[name] = np.load(root / name / "annotations.npz")
        ann = cache[name]
        image = Image.open(root / name / "rgb" / f"{t:06d}.jpg").convert("RGB")
        scale = cell / image.width
        image = image.resize((cell, cell), Image.BILINEAR)
        x, y = (i % columns) * cell * per_cell, (i // columns) * cell
        sheet.paste(image, (x, y))
        if with_keypoints:
            sheet.paste(draw_keypoints(image.copy(), ann["keypoints2d"][t], ann["visibility"][t], scale), (x + cell, y))
    with atomic_path(path) as tmp:
        sheet.save(tmp)
    return Path(path)
