"""Silhouettes of reconstructed hands over a result's crops: the projection against the stored keypoints, the
rasterisation against a known shape, and the IoU against a hand count."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from core_model.figures.silhouette import hand_pixels, mask_iou, silhouettes
from core_model.network.decoder import weak_perspective_project
from core_model.results import Reconstruction, ResultMeta, empty_arrays


def _result(n: int = 3, v: int = 30) -> Reconstruction:
    rng = np.random.default_rng(1)
    arrays = empty_arrays(n, v, map_size=4)
    vertices = rng.normal(scale=0.04, size=(n, 2, v, 3))
    keypoints = vertices[:, :, :21]                          # keypoints among the vertices: checkable below
    camera = np.concatenate([rng.uniform(3, 6, (n, 2, 1)), rng.uniform(-0.4, 0.4, (n, 2, 2))], -1)
    bbox = np.concatenate([rng.uniform(0, 200, (n, 2)), np.repeat(rng.uniform(150, 300, (n, 1)), 2, 1)], -1)
    uv = weak_perspective_project(torch.from_numpy(keypoints - keypoints[:, :, :1]), torch.from_numpy(camera))
    box = bbox[:, None, None]
    arrays.update(vertices=vertices.astype(np.float32), keypoints=keypoints.astype(np.float32),
                  keypoints2d=(box[..., :2] + (uv.numpy() + 1) / 2 * box[..., 2:3]).astype(np.float32),
                  bbox=bbox.astype(np.float32), valid=np.ones((n, 2), bool))
    meta = ResultMeta(source_path="x", source_sha256="", fps=30.0, frame_count=n, model_preset="lite",
                      checkpoint_sha256="", hand_model="OpenHand")
    return Reconstruction(meta=meta, **arrays, camera=camera.astype(np.float32))


def test_vertices_are_projected_by_the_network_camera_and_by_the_refined_projection():
    result = _result()
    pixels = hand_pixels(result)
    np.testing.assert_allclose(pixels[:, :, :21], result.keypoints2d, atol=1e-3)
    # Refined arrays keep their projected keypoints, not a camera: the fitted weak perspective gives them back.
    refined = dataclasses.replace(result, refined={k: getattr(result, k) for k in ("keypoints", "vertices",
                                                                                      "keypoints2d")})
    np.testing.assert_allclose(hand_pixels(refined, refined=True)[:, :, :21], result.keypoints2d, atol=1e-2)


def test_silhouettes_fill_the_projected_triangles_and_iou_counts_cells():
    # One square hand (two triangles) covering the crop's middle half; the other hand absent.
    square = np.array([[50.0, 50.0], [150.0, 50.0], [150.0, 150.0], [50.0, 150.0]])
    pixels = np.full((1, 2, 4, 2), np.nan)
    pixels[0, 0] = square
    faces = (np.array([[0, 1, 2], [0, 2, 3]]), np.array([[0, 1, 2]]))
    labels = silhouettes(pixels, faces, np.array([[0.0, 0.0, 200.0, 200.0]]), 40)
    assert labels.dtype == np.int8 and set(np.unique(labels).tolist()) == {0, 1}
    assert abs(int((labels == 1).sum()) - 20 * 20) <= 2 * 21          # 10..30 of 40 cells each way, edges aside
    truth = np.zeros_like(labels)
    truth[0, 10:30, 10:20] = 2                                       # half of it, called the other hand
    assert mask_iou(labels, truth)[0] == np.float64((truth > 0).sum() / (labels > 0).sum())
    assert np.isnan(mask_iou(np.zeros_like(labels), np.zeros_like(labels))[0])


def test_masks_overlay_tints_the_masked_cells_and_marks_each_witness():
    from core_model.figures.overlay import WITNESS_DOTS, draw_overlay
    from core_model.render import HAND_COLOURS, hex_rgb

    result = _result(n=1)
    result.bbox[0] = (40.0, 20.0, 80.0, 80.0)
    masks = np.zeros((1, 8, 8), np.int8)
    masks[0, 2:6, 1:3] = 1                                 # right hand: crop columns 10..30, rows 20..60
    masks[0, 2:6, 5:7] = 2
    result.masks, result.witness = masks, np.array([[1, 2]], np.int8)
    result.det_keypoints2d[0] = np.nan
    result.det_keypoints2d[0, 1, 0] = (150.0, 110.0)       # one landmark of the left hand, outside the crop
    image = np.full((140, 200, 3), 100, np.uint8)
    out = draw_overlay(image, result, 0, "masks", box=False)
    right = np.array(hex_rgb(HAND_COLOURS[0]), float)
    np.testing.assert_allclose(out[60, 60], 0.55 * 100 + 0.45 * right, atol=1)   # inside the right hand's cells
    np.testing.assert_array_equal(out[60, 80], image[60, 80])                     # between the hands: untouched
    assert tuple(out[110, 150]) == WITNESS_DOTS[2]                                # the perception's landmark
