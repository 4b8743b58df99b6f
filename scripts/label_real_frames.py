#!/usr/bin/env python
"""Label real frames by hand for the real validation set (benchmarks/real_validation; its README has the procedure).

The labeller looks at a frame through gridded, zoomed views whose tick labels are frame pixels, types the
keypoints into ``labels/ID.json``, and checks them drawn back over the frame. No detector or model output is ever
shown: a label seeded by a witness favours it.

    python scripts/label_real_frames.py view --source handwash --frame 40 [--box x0,y0,x1,y1] [--grid 10]
    python scripts/label_real_frames.py show ID [--box x0,y0,x1,y1] [--grid 10]
    python scripts/label_real_frames.py sheet --out sheet.png

Views are written under data/real-validation/views/ (ignored by git: the footage is not ours to commit).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core_model.handmodel.keypoints import BONES  # noqa: E402
from core_model.perception.realval import DEFAULT_FOLDER, FrameReader, load_validation_set  # noqa: E402

MEDIA = ROOT.parent / "shared" / "real-media"
VIEWS = ROOT / "data" / "real-validation" / "views"
COLOURS = {0: (230, 60, 40), 1: (40, 110, 240)}  # right red, left blue (RGB)


def _box(text: str | None, width: int, height: int) -> tuple[int, int, int, int]:
    if not text:
        return 0, 0, width, height
    x0, y0, x1, y1 = (round(float(v)) for v in text.split(","))
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def gridded(image: np.ndarray, box: tuple[int, int, int, int], grid: int, target: int = 1100) -> tuple[np.ndarray,
                                                                                                          float]:
    """The box of ``image`` enlarged to about ``target`` pixels on its longer side, with grid lines every ``grid``
    frame pixels (every fifth one stronger and labelled with its frame coordinate)."""
    x0, y0, x1, y1 = box
    crop = image[y0:y1, x0:x1]
    scale = target / max(crop.shape[:2])
    big = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    pad = 36
    out = np.full((big.shape[0] + pad, big.shape[1] + pad, 3), 255, np.uint8)
    out[pad:, pad:] = big
    for axis, (lo, hi) in enumerate(((x0, x1), (y0, y1))):
        for v in range((lo // grid + 1) * grid, hi, grid):
            p = pad + round((v - lo) * scale)
            strong = v % (5 * grid) == 0
            colour = (255, 255, 0) if strong else (200, 200, 200)
            if axis == 0:
                cv2.line(out, (p, pad), (p, out.shape[0]), colour, 1)
                if strong:
                    cv2.putText(out, str(v), (p - 14, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
            else:
                cv2.line(out, (pad, p), (out.shape[1], p), colour, 1)
                if strong:
                    cv2.putText(out, str(v), (0, p + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return out, scale


def draw_labels(view: np.ndarray, label, box, scale: float, pad: int = 36) -> np.ndarray:
    out = view.copy()
    x0, y0 = box[:2]
    for h in range(2):
        pts = (label.keypoints[h] - [x0, y0]) * scale + pad
        colour = COLOURS[h]
        for poly in label.polygons[h]:
            p = np.round((poly - [x0, y0]) * scale + pad).astype(np.int32)
            cv2.polylines(out, [p], True, colour, 1, cv2.LINE_AA)
        for a, b in BONES:
            if np.isfinite(pts[[a, b]]).all():
                cv2.line(out, tuple(np.round(pts[a]).astype(int)), tuple(np.round(pts[b]).astype(int)), colour, 1,
                         cv2.LINE_AA)
        for k, p in enumerate(pts):
            if np.isfinite(p).all():
                c = tuple(np.round(p).astype(int))
                cv2.circle(out, c, 3, colour, -1, cv2.LINE_AA)
                cv2.putText(out, str(k), (c[0] + 4, c[1] - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
    return out


def _save(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument("--media", type=Path, default=MEDIA)
    sub = parser.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("view", help="a gridded view of a frame (no labels)")
    v.add_argument("--source", required=True)
    v.add_argument("--frame", type=int, required=True)
    v.add_argument("--box")
    v.add_argument("--grid", type=int, default=10)
    s = sub.add_parser("show", help="a labelled frame's labels drawn over its gridded view")
    s.add_argument("id")
    s.add_argument("--box")
    s.add_argument("--grid", type=int, default=10)
    c = sub.add_parser("sheet", help="every labelled frame with its labels, on one contact sheet")
    c.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    dataset = load_validation_set(args.labels)
    reader = FrameReader(dataset, args.media)
    if args.cmd == "view":
        from core_model.perception.realval import LabelledFrame

        probe = LabelledFrame("view", args.source, args.frame, np.full((2, 21, 2), np.nan), np.zeros(2, bool),
                              ([], []), False)
        image = reader.read(probe)
        box = _box(args.box, image.shape[1], image.shape[0])
        view, _ = gridded(image, box, args.grid)
        _save(VIEWS / f"{args.source}_{args.frame:05d}_{'_'.join(map(str, box))}.png", view)
    elif args.cmd == "show":
        label = next((f for f in dataset.frames if f.id == args.id), None)
        if label is None:
            parser.error(f"no labels/{args.id}.json")
        image = reader.read(label)
        box = _box(args.box, image.shape[1], image.shape[0])
        view, scale = gridded(image, box, args.grid)
        _save(VIEWS / f"{args.id}_labels.png", draw_labels(view, label, box, scale))
    else:
        tiles = []
        for label in dataset.frames:
            image = reader.read(label)
            pts = label.keypoints[np.isfinite(label.keypoints).all(-1)]
            if len(pts):
                lo, hi = pts.min(0), pts.max(0)
                m = 0.25 * (hi - lo).max() + 10
                box = _box(f"{lo[0] - m},{lo[1] - m},{hi[0] + m},{hi[1] + m}", image.shape[1], image.shape[0])
            else:
                box = (0, 0, image.shape[1], image.shape[0])
            view, scale = gridded(image, box, 10_000, target=360)
            tile = draw_labels(view, label, box, scale)
            tile = np.pad(tile, ((0, 396 - tile.shape[0]), (0, 396 - tile.shape[1]), (0, 0)), constant_values=255)
            cv2.putText(tile, label.id, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
            tiles.append(tile)
        cols = 5
        while len(tiles) % cols:
            tiles.append(np.full_like(tiles[0], 255))
        rows = [np.concatenate(tiles[i:i + cols], 1) for i in range(0, len(tiles), cols)]
        _save(args.out, np.concatenate(rows, 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
