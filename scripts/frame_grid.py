#!/usr/bin/env python
"""Write contact sheets of a clip's consecutive frames, each thumbnail marked with its frame index.

Made for counting frames by eye (e.g. in which frames both hands are visible, see
benchmarks/real_validation/both_hands_visible.json): every frame of the clip lands on some sheet, in order,
``--cols`` x ``--rows`` frames per sheet, the 0-based frame index written in the thumbnail's top-left corner
(white text, black outline). A single frame can also be written at full size (``--frame N``).

    python scripts/frame_grid.py CLIP.mp4 --out /tmp/grids [--cols 6] [--rows 5] [--width 320]
    python scripts/frame_grid.py CLIP.mp4 --out /tmp/grids --frame 41
    python scripts/frame_grid.py CLIP.mp4 --out /tmp/grids --box 200,150,450,330   # thumbnails of a crop only

Images go only to the folder given with ``--out`` (never into the repository: the footage is not ours to commit),
named ``STEM_grid_FIRST-LAST.png`` (LAST inclusive; ``STEM_box_grid_...`` with ``--box``) or
``STEM_frame_NNNNN.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np


def label(image: np.ndarray, text: str, scale: float) -> None:
    """Write ``text`` in the top-left corner of ``image``: white with a black outline, legible on any background."""
    org = (4, 4 + round(22 * scale))
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), max(3, round(5 * scale)), cv2.LINE_AA)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), max(1, round(2 * scale)),
                cv2.LINE_AA)


def frames(path: Path):
    """Yield (index, BGR frame) for every decodable frame of the clip, in order."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SystemExit(f"cannot open {path}")
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        yield index, frame
        index += 1
    capture.release()


def write_sheet(out: Path, stem: str, tiles: list[tuple[int, np.ndarray]], cols: int, rows: int) -> Path:
    height, width = tiles[0][1].shape[:2]
    rows = min(rows, -(-len(tiles) // cols))  # a last, partial sheet only as tall as its frames need
    sheet = np.full((rows * (height + 2), cols * (width + 2), 3), 40, np.uint8)
    for slot, (_, tile) in enumerate(tiles):
        r, c = divmod(slot, cols)
        sheet[r * (height + 2):r * (height + 2) + height, c * (width + 2):c * (width + 2) + width] = tile
    name = out / f"{stem}_grid_{tiles[0][0]:05d}-{tiles[-1][0]:05d}.png"
    cv2.imwrite(str(name), sheet)
    return name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", type=Path, help="video file to read")
    parser.add_argument("--out", type=Path, required=True, help="folder for the images (created if missing)")
    parser.add_argument("--cols", type=int, default=6, help="thumbnails per row (default 6)")
    parser.add_argument("--rows", type=int, default=5, help="rows per sheet (default 5)")
    parser.add_argument("--width", type=int, default=320, help="thumbnail width in pixels (default 320)")
    parser.add_argument("--frame", type=int, help="write only this frame, at full size, with its index")
    parser.add_argument("--box", help="x0,y0,x1,y1: crop every frame to this box of frame pixels first")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.clip.stem + ("_box" if args.box else "")
    box = [int(v) for v in args.box.split(",")] if args.box else None
    per_sheet = args.cols * args.rows
    tiles: list[tuple[int, np.ndarray]] = []
    count = 0
    for index, frame in frames(args.clip):
        count = index + 1
        if box:
            frame = np.ascontiguousarray(frame[box[1]:box[3], box[0]:box[2]])
        if args.frame is not None:
            if index == args.frame:
                label(frame, str(index), max(1.0, frame.shape[1] / 640))
                name = args.out / f"{stem}_frame_{index:05d}.png"
                cv2.imwrite(str(name), frame)
                print(name)
                return
            continue
        scale = args.width / frame.shape[1]
        tile = cv2.resize(frame, (args.width, round(frame.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        label(tile, str(index), 0.8)
        tiles.append((index, tile))
        if len(tiles) == per_sheet:
            print(write_sheet(args.out, stem, tiles, args.cols, args.rows))
            tiles = []
    if args.frame is not None:
        raise SystemExit(f"frame {args.frame} not in the clip ({count} frames)")
    if tiles:
        print(write_sheet(args.out, stem, tiles, args.cols, args.rows))
    print(f"{count} frames")


if __name__ == "__main__":
    main()
