"""Measure and draw the two-hand region on real clips: ``python -m core_model.pipeline.regions_report VIDEO...``.

Prints, per clip, the share of frames with a two-hand region (both hands detected or placed from their tracks)
beside the share where MediaPipe alone reports two distinct hands (and two labelled one Left, one Right), and
optionally writes a PNG grid of frames with the crop, each hand's box and the landmarks drawn (right hand red,
left blue; dashed box = inferred hand).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core_model.handmodel.keypoints import BONES
from core_model.pipeline.detect import FrameHands, MediaPipeHandDetector, detect_frames
from core_model.pipeline.region import DETECTED, INFERRED, HandRegions, regions_from_detections
from core_model.pipeline.video import open_source

HAND_BGR = ((60, 60, 230), (230, 120, 40))  # right red, left blue (OpenCV draws BGR)


def draw_regions(frame_rgb: np.ndarray, regions: HandRegions, t: int) -> np.ndarray:
    """A BGR copy of the frame with frame t's crop (green), hand boxes and detector landmarks drawn."""
    import cv2

    image = np.ascontiguousarray(frame_rgb[:, :, ::-1])
    thick = max(1, round(max(image.shape[:2]) / 400))
    for hand in range(2):
        box = regions.hand_boxes[t, hand]
        if regions.source[t, hand] == DETECTED or regions.source[t, hand] == INFERRED:
            p0, p1 = tuple(int(v) for v in box[:2]), tuple(int(v) for v in box[2:])
            if regions.source[t, hand] == DETECTED:
                cv2.rectangle(image, p0, p1, HAND_BGR[hand], thick)
            else:  # dashed: a hand placed from its track
                for k in range(0, 20, 2):
                    a = np.array(p0) + (np.array(p1) - np.array(p0)) * np.array([[k / 20, 0], [(k + 1) / 20, 0]])
                    for seg in (a, a + [0, p1[1] - p0[1]]):
                        cv2.line(image, tuple(seg[0].astype(int)), tuple(seg[1].astype(int)), HAND_BGR[hand], thick)
                    b = np.array(p0) + (np.array(p1) - np.array(p0)) * np.array([[0, k / 20], [0, (k + 1) / 20]])
                    for seg in (b, b + [p1[0] - p0[0], 0]):
                        cv2.line(image, tuple(seg[0].astype(int)), tuple(seg[1].astype(int)), HAND_BGR[hand], thick)
        points = regions.det_keypoints2d[t, hand]
        if np.isfinite(points).all():
            for a, b in BONES:
                cv2.line(image, tuple(points[a].astype(int)), tuple(points[b].astype(int)), HAND_BGR[hand], thick)
            cv2.circle(image, tuple(points[0].astype(int)), 3 * thick, HAND_BGR[hand], -1)
    if regions.region_valid[t]:
        x, y, s, _ = regions.bbox[t]
        cv2.rectangle(image, (int(x), int(y)), (int(x + s), int(y + s)), (40, 200, 40), 2 * thick)
    label = f"{t} MP:{regions.detector_hands[t]} R:{'-ID'[regions.source[t, 0]]} L:{'-ID'[regions.source[t, 1]]}"
    cv2.putText(image, label, (8, 12 * thick + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * thick, (0, 255, 255), thick)
    return image


def analyse(path: Path) -> tuple[HandRegions, float]:
    """Detect hands on every frame of ``path`` and build the regions; also return the frame rate."""
    with open_source(path) as source, MediaPipeHandDetector() as detector:
        frames: list[FrameHands] = [hands for _, hands in detect_frames(source, detector, source.info.fps)]
        info = source.info
    return regions_from_detections(frames, info.fps, info.width, info.height), info.fps


def write_grid(path: Path, regions: HandRegions, out: Path, tiles: int = 6, tile_width: int = 480) -> None:
    """``tiles`` evenly spaced frames, drawn, in one PNG row."""
    import cv2

    picks = np.linspace(0, len(regions) - 1, tiles).round().astype(int)
    images = []
    with open_source(path) as source:
        for t in picks:
            drawn = draw_regions(source.read(int(t)), regions, int(t))
            scale = tile_width / drawn.shape[1]
            images.append(cv2.resize(drawn, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    height = max(i.shape[0] for i in images)
    row = np.hstack([np.pad(i, ((0, height - i.shape[0]), (0, 0), (0, 0))) for i in images])
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), row)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="+", type=Path)
    parser.add_argument("--grid", type=Path, default=None, help="PNG to write: one row of drawn frames per clip")
    parser.add_argument("--tiles", type=int, default=6)
    args = parser.parse_args(argv)
    rows = []
    print(f"{'clip':42s} {'frames':>6s} {'two-hand region':>16s} {'MediaPipe two':>14s} {'MP Left+Right':>14s} "
          f"{'any region':>11s}")
    for video in args.videos:
        regions, _ = analyse(video)
        share = regions.shares()
        print(f"{video.name:42s} {len(regions):6d} {share['two_hand_region']:16.1%} "
              f"{share['detector_two_hands']:14.1%} {share['detector_left_right']:14.1%} {share['any_region']:11.1%}")
        if args.grid is not None:
            tmp = args.grid.with_name(f".{video.stem}.row.png")
            write_grid(video, regions, tmp, args.tiles)
            rows.append(tmp)
    if args.grid is not None:
        import cv2

        images = [cv2.imread(str(r)) for r in rows]
        width = max(i.shape[1] for i in images)
        cv2.imwrite(str(args.grid), np.vstack([np.pad(i, ((0, 0), (0, width - i.shape[1]), (0, 0))) for i in images]))
        for r in rows:
            r.unlink()
        print(f"wrote {args.grid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
