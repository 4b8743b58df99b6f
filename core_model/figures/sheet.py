"""A contact sheet of a result over its video: every k-th frame's crop with the perception's masks, the witnesses'
landmarks, and the network's and the refined hands' keypoints, side by side. What one looks at to judge a run on
real video, beside the numbers."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from core_model.fileio import atomic_path
from core_model.perception.draw import draw_hands
from core_model.pipeline.detect import MEDIAPIPE, PERCEPTION
from core_model.pipeline.region import crop_frame
from core_model.pipeline.video import open_source
from core_model.render import HAND_COLOURS, hex_rgb
from core_model.results import Reconstruction

TILE = 240
WITNESS_COLOURS = {MEDIAPIPE: (255, 255, 255), PERCEPTION: (255, 0, 255)}  # MediaPipe white, ours magenta


def contact_sheet(result: Reconstruction, video: str | os.PathLike[str], out: str | os.PathLike[str],
                  every: int = 15, columns: int = 4) -> Path:
    """Write the sheet (PNG/JPEG by ``out``'s suffix): per chosen frame two tiles of its crop, left the network's
    keypoints, right the refined ones (when the result has them), both over the masks (when it has them) with the
    witnesses' landmarks as dots (white MediaPipe, magenta the perception), and the frame's number."""
    if every < 1:
        raise ValueError(f"every: expected a positive step, got {every}")
    chosen = set(range(0, result.num_frames, every))
    tiles = []
    with open_source(video) as source:
        for index, frame in source:
            if index >= result.num_frames:
                break
            if index in chosen and np.isfinite(result.bbox[index]).all():
                tiles.append(_frame_tiles(result, index, frame))
    if not tiles:
        raise ValueError(f"result: no frame with a crop among every {every}th of {result.num_frames}")
    per_row = max(1, columns)
    blank = [np.zeros_like(tiles[0])]
    rows = [np.concatenate(tiles[i:i + per_row] + blank * (per_row - len(tiles[i:i + per_row])), axis=1)
            for i in range(0, len(tiles), per_row)]
    sheet = np.concatenate(rows, axis=0)
    out = Path(out)
    with atomic_path(out) as tmp:  # the temporary file keeps the suffix, which picks OpenCV's format
        if not cv2.imwrite(str(tmp), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
            raise OSError(f"out: could not write {out} (a .png or .jpg file)")
    return out


def _frame_tiles(result: Reconstruction, index: int, frame: np.ndarray) -> np.ndarray:
    """[TILE, 2 * TILE (or TILE), 3]: the crop with the network's, then the refined, keypoints."""
    box = result.bbox[index]
    crop = crop_frame(frame, box, TILE).astype(np.float32)
    if result.masks is not None:
        labels = cv2.resize(np.asarray(result.masks[index]).astype(np.uint8), (TILE, TILE),
                            interpolation=cv2.INTER_NEAREST)
        for hand in range(2):
            sel = labels == hand + 1
            crop[sel] = 0.6 * crop[sel] + 0.4 * np.array(hex_rgb(HAND_COLOURS[hand]), np.float32)
    crop = crop.astype(np.uint8)
    scale = TILE / box[2]

    def local(points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, np.float64) - box[:2]) * scale

    witness = result.witness[index] if result.witness is not None else np.full(2, MEDIAPIPE)
    for hand in range(2):
        for p in local(result.det_keypoints2d[index, hand]):
            if np.isfinite(p).all():
                cv2.circle(crop, tuple(np.round(p).astype(int)), 2, WITNESS_COLOURS.get(int(witness[hand]),
                                                                                       (255, 255, 255)), -1)
    network = np.where(result.valid[index][:, None, None], local(result.keypoints2d[index]), np.nan)
    tiles = [_label(draw_hands(crop, network, thick=2), f"{index} network")]
    if result.refined:
        refined = local(result.refined["keypoints2d"][index])
        tiles.append(_label(draw_hands(crop, refined, thick=2), f"{index} refined"))
    return np.concatenate(tiles, axis=1)


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    cv2.putText(tile, text, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(tile, text, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.rectangle(tile, (0, 0), (tile.shape[1] - 1, tile.shape[0] - 1), (40, 40, 40), 1)
    return tile
