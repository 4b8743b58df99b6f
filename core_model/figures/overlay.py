"""The hands drawn over a video frame: the crop box, and per hand either its 21 projected keypoints as a skeleton
or its mesh vertices as points (penetrating ones red). The viewer's video panel and the overlay mp4 draw with the
same function, so what is exported is what was seen.

Why the mesh needs a fit: a result stores only the keypoints' projection (``keypoints2d``). The model projects
with a weak-perspective camera (a scale and an image offset per hand applied to x, y), so a least-squares fit of
that scale and offset from the 21 keypoints to their projection reproduces it exactly and projects the vertices.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from core_model.fileio import atomic_path
from core_model.handmodel.keypoints import BONES
from core_model.render import HAND_COLOURS, PENETRATION_COLOUR, hex_rgb
from core_model.results import Reconstruction

OVERLAY_MODES = ("keypoints", "mesh", "masks", "none")
"""What is drawn over the video: the network's keypoints, its mesh's vertices (red where inside the other hand),
the perception's masks with the witnesses' landmarks (needs a result made with ``--witness fused``), or nothing."""
WITNESS_NAMES = {1: "MediaPipe", 2: "ours"}
WITNESS_DOTS = {1: (255, 255, 255), 2: (255, 0, 255)}  # MediaPipe white, the perception magenta


def drawable(result: Reconstruction, frame: int, hand: int) -> bool:
    """A hand can be drawn on ``frame`` when it was reconstructed and its projection is finite."""
    return bool(result.valid[frame, hand] and np.isfinite(result.keypoints2d[frame, hand]).all()
                and np.isfinite(result.vertices[frame, hand]).all())


def project_vertices(result: Reconstruction, frame: int, hand: int) -> np.ndarray:
    """[V, 2] frame pixels of one hand's vertices, through the weak-perspective fit described above."""
    xy = result.keypoints[frame, hand, :, :2].astype(np.float64)
    uv = result.keypoints2d[frame, hand].astype(np.float64)
    centred = xy - xy.mean(0)
    scale = float((centred * (uv - uv.mean(0))).sum() / max((centred ** 2).sum(), 1e-12))
    offset = uv.mean(0) - scale * xy.mean(0)
    return result.vertices[frame, hand, :, :2] * scale + offset


BOX_COLOUR = (255, 255, 255)
BOX_OUTLINE = (0, 0, 0)


def draw_box(image: np.ndarray, bbox: np.ndarray, thick: int) -> None:
    """The crop box (x, y, w, h) in place: a white line ``thick`` pixels wide with a black line either side of it,
    so that it reads on any frame (a white line alone vanished on a white basin or sheet)."""
    x, y, w, h = bbox
    corners = (round(x), round(y)), (round(x + w), round(y + h))
    cv2.rectangle(image, *corners, BOX_OUTLINE, thick + 2 * max(1, thick // 2 + 1), cv2.LINE_AA)
    cv2.rectangle(image, *corners, BOX_COLOUR, thick, cv2.LINE_AA)


def draw_overlay(image: np.ndarray, result: Reconstruction, frame: int, mode: str = "keypoints",
                 box: bool = True) -> np.ndarray:
    """A copy of ``image`` (RGB uint8 [H, W, 3], the video frame) with the crop box and the hands of ``frame``."""
    if mode not in OVERLAY_MODES:
        raise ValueError(f"mode: expected one of {OVERLAY_MODES}, got {mode!r}")
    out = np.ascontiguousarray(image).copy()
    thick = max(1, round(min(out.shape[:2]) / 240))
    bbox = result.bbox[frame]
    if box and np.isfinite(bbox).all():
        draw_box(out, bbox, thick)
    if mode == "none":
        return out
    if mode == "masks":
        return _draw_masks(out, result, frame, thick)
    red = hex_rgb(PENETRATION_COLOUR)
    for hand in range(2):
        if not drawable(result, frame, hand):
            continue
        colour = hex_rgb(HAND_COLOURS[hand])
        if mode == "keypoints":
            points = np.round(result.keypoints2d[frame, hand]).astype(np.int32)
            for a, b in BONES:
                cv2.line(out, tuple(points[a]), tuple(points[b]), colour, thick, cv2.LINE_AA)
            for p in points:
                cv2.circle(out, tuple(p), thick + 1, colour, -1, cv2.LINE_AA)
        else:
            points = np.round(project_vertices(result, frame, hand)).astype(np.int32)
            inside = np.asarray(result.inside[frame, hand], bool)
            h, w = out.shape[:2]
            keep = (points[:, 0] >= 0) & (points[:, 0] < w) & (points[:, 1] >= 0) & (points[:, 1] < h)
            out[points[keep & ~inside, 1], points[keep & ~inside, 0]] = colour
            out[points[keep & inside, 1], points[keep & inside, 0]] = red
    return out


def _draw_masks(out: np.ndarray, result: Reconstruction, frame: int, thick: int) -> np.ndarray:
    """The perception's masks tinted over their crop, each hand's landmarks as dots in its witness's colour, and
    which witness each hand came from."""
    bbox = result.bbox[frame]
    if result.masks is not None and np.isfinite(bbox).all():
        labels = np.asarray(result.masks[frame]).astype(np.uint8)
        x, y, side = (float(v) for v in bbox[:3])
        cell = side / labels.shape[0]
        matrix = np.array([[cell, 0, x + cell / 2 - 0.5], [0, cell, y + cell / 2 - 0.5]])
        pasted = cv2.warpAffine(labels, matrix, (out.shape[1], out.shape[0]), flags=cv2.INTER_NEAREST,
                                borderValue=0)
        tinted = out.astype(np.float32)
        for hand in range(2):
            sel = pasted == hand + 1
            tinted[sel] = 0.55 * tinted[sel] + 0.45 * np.array(hex_rgb(HAND_COLOURS[hand]), np.float32)
        out = tinted.astype(np.uint8)
    witness = result.witness[frame] if result.witness is not None else np.ones(2, np.int8)
    words = []
    for hand, name in enumerate(("R", "L")):
        source = int(witness[hand]) if np.isfinite(result.det_keypoints2d[frame, hand]).any() else 0
        words.append(f"{name}: {WITNESS_NAMES.get(source, 'none')}")
        for p in result.det_keypoints2d[frame, hand]:
            if np.isfinite(p).all():
                cv2.circle(out, tuple(np.round(p).astype(int)), thick + 1, WITNESS_DOTS.get(source, (255, 255, 255)),
                           -1, cv2.LINE_AA)
    text = "  ".join(words) + ("" if result.masks is not None else "  (no masks: run with --witness fused)")
    scale = max(0.4, min(out.shape[:2]) / 700)
    at = (6, int(22 * scale / 0.6))
    cv2.putText(out, text, at, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, at, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def write_overlay_video(video: str | os.PathLike[str], result: Reconstruction, path: str | os.PathLike[str],
                        mode: str = "keypoints") -> Iterator[tuple[int, int]]:
    """Write the overlay of every frame as an mp4 (MPEG-4 part 2, the codec OpenCV's wheels can write), atomically;
    yields (frames done, total) so a GUI worker or a CLI can show progress and cancel between frames."""
    from core_model.pipeline.video import open_source

    target = Path(path)
    if target.suffix.lower() != ".mp4":
        raise ValueError(f"path: the overlay video is an .mp4, got {target.name}")
    with open_source(video) as source, atomic_path(target) as tmp:
        info = source.info
        total = min(result.num_frames, info.frame_count)
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), info.fps, (info.width, info.height))
        if not writer.isOpened():
            raise OSError(f"path: OpenCV cannot write an mp4 video to {tmp.parent}")
        try:
            for index, frame in source:
                if index >= total:
                    break
                writer.write(cv2.cvtColor(draw_overlay(frame, result, index, mode), cv2.COLOR_RGB2BGR))
                yield index + 1, total
        finally:
            writer.release()
