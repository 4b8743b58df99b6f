"""The reconstructed hands' silhouettes over a result's crops, to compare with the perception's masks.

Why rasterised here with OpenCV rather than rendered: the masks are 80 x 80 labels over each crop, and filling each
hand's projected triangles at that size is exact enough and costs about a millisecond a frame, with no GL.
"""

from __future__ import annotations

import cv2
import numpy as np

from core_model.refine.arrays import network_camera
from core_model.refine.camera import fit_weak_perspective
from core_model.results import Reconstruction


def hand_pixels(result: Reconstruction, refined: bool = False) -> np.ndarray:
    """[N, 2, V, 2] each hand's vertices in frame pixels (NaN where not reconstructed): by the network's own
    weak-perspective camera, or for the refined hands by the weak perspective that maps their keypoints onto their
    projected keypoints (the refined arrays keep the projection, not the camera)."""
    arrays = result.refined if refined else result.arrays()
    keypoints = np.asarray(arrays["keypoints"], np.float64)
    vertices = np.asarray(arrays["vertices"], np.float64)
    n = len(keypoints)
    frames = np.arange(n)
    if refined:
        a, b = fit_weak_perspective(keypoints - keypoints[..., :1, :], np.asarray(arrays["keypoints2d"], np.float64))
    else:
        a, b = network_camera({**arrays, "bbox": result.bbox}, frames)
    local = vertices - keypoints[..., :1, :]
    return a[..., None, None] * local[..., :2] + b[..., None, :]


def silhouettes(pixels: np.ndarray, faces: tuple[np.ndarray, np.ndarray], bbox: np.ndarray, size: int
                ) -> np.ndarray:
    """[N, size, size] int8 labels (0 background, 1 right, 2 left; the left drawn last) of the hands whose
    vertices are at ``pixels`` [N, 2, V, 2], over each frame's square crop ``bbox`` [N, 4]."""
    out = np.zeros((len(pixels), size, size), np.int8)
    for t in range(len(pixels)):
        if not np.isfinite(bbox[t]).all():
            continue
        for h in range(2):
            if not np.isfinite(pixels[t, h]).all():
                continue
            grid = ((pixels[t, h] - bbox[t, :2]) / bbox[t, 2] * size * 16).round().astype(np.int32)
            cv2.fillPoly(out[t], list(grid[faces[h]]), h + 1, shift=4)  # 4 fractional bits
    return out


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N] IoU of the hands (either label) in two label stacks [N, M, M]; NaN where both are empty."""
    a, b = a > 0, b > 0
    union = (a | b).sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, (a & b).sum((1, 2)) / union, np.nan)
