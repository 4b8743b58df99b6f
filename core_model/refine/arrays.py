"""Refinement of a result file's arrays (DESIGN section 7): the network's result in, ``refined_*`` arrays out.

Why from the arrays and not from inside the pipeline: the arrays hold everything refinement needs (the 3D
keypoints, their projection into the frame, the crop, the detector's landmarks), so refinement runs after a
``run``, on an existing file, or in the viewer alike. Refinement starts from the network's own weak-perspective
camera per hand (the result's ``camera``, schema 3); in an older file, which does not store it, the camera is
recovered from the 3D keypoints and their projection (``camera.fit_weak_perspective``), exactly where the
network's keypoints are not degenerate.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import torch

from core_model.geometry.interpenetration import detect_interpenetration
from core_model.refine.camera import default_intrinsics, fit_weak_perspective, roots_from_weak_perspective
from core_model.refine.fit import RefineInput, Refiner, RefineResult
from core_model.refine.gating import ABSENT

REFITTED_ARRAYS = ("betas", "global_orient", "hand_pose", "transl", "keypoints", "vertices", "inside", "depth",
                   "keypoints2d")
"""Names of the network's per-frame result arrays that refinement computes again; it stores them as
``refined_<name>``, plus ``refined_gate`` [N, 2] (the file's whole refined part is
``core_model.results.REFINED_ARRAYS``)."""


def input_from_arrays(arrays: dict[str, np.ndarray], K: np.ndarray) -> tuple[RefineInput, np.ndarray]:
    """One sequence (B = 1) of the frames that have a reconstruction, and their indices [T] in the file."""
    for name in ("betas", "global_orient", "hand_pose", "keypoints", "keypoints2d", "bbox", "valid",
                 "det_keypoints2d", "det_score"):
        if name not in arrays:
            raise KeyError(f"arrays: missing {name!r} (a result file's arrays are needed)")
    valid = np.asarray(arrays["valid"], bool) & np.isfinite(arrays["keypoints"]).all((-1, -2))
    frames = np.flatnonzero(valid.any(-1) & np.isfinite(arrays["bbox"]).all(-1))
    if len(frames) == 0:
        raise ValueError("arrays: no frame holds a reconstructed hand")
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K: expected a [3, 3] intrinsic matrix, got {K.shape}")
    kp = np.asarray(arrays["keypoints"], np.float64)[frames]
    a, b = network_camera(arrays, frames)
    roots = roots_from_weak_perspective(a, b, K)
    rel = kp[:, 1, 0] - kp[:, 0, 0]

    def t(x, dtype=torch.float32):
        return torch.as_tensor(np.ascontiguousarray(x))[None].to(dtype)

    data = RefineInput(
        betas=t(arrays["betas"][frames]), global_orient=t(arrays["global_orient"][frames]),
        hand_pose=t(arrays["hand_pose"][frames]), roots=t(roots), rel_transl=t(rel),
        det_keypoints2d=t(arrays["det_keypoints2d"][frames]), det_score=t(arrays["det_score"][frames]),
        K=t(np.broadcast_to(K, (len(frames), 3, 3))), scale_px=t(arrays["bbox"][frames, 2]),
        valid=t(valid[frames], torch.bool), link=t(np.diff(frames) == 1, torch.bool),
        **{k: t(v) for k, v in silhouette_inputs(arrays, frames).items()})
    return data, frames


COVER_POINTS = 64
"""Cells of a frame's hand mask the cover term spreads its points over."""


def silhouette_inputs(arrays: dict[str, np.ndarray], frames: np.ndarray) -> dict[str, np.ndarray]:
    """The silhouette terms' inputs for ``frames`` from the result's ``masks`` over each crop ``bbox`` (none
    without masks): the distance of each mask cell to the hands' cells (crop sides), :data:`COVER_POINTS` cells
    spread over the hands, and the crop. A frame whose mask holds fewer than ``COVER_POINTS`` hand cells has
    none (weight 0): nothing there to fit to."""
    from scipy.ndimage import distance_transform_edt

    masks = arrays.get("masks")
    if masks is None:
        return {}
    masks = np.asarray(masks)[frames] > 0                                              # both hands' union
    M = masks.shape[-1]
    box = np.asarray(arrays["bbox"], np.float64)[frames]
    outside = np.zeros(masks.shape, np.float32)
    cover = np.zeros((len(frames), COVER_POINTS, 2), np.float32)
    weight = np.zeros((len(frames), COVER_POINTS), np.float32)
    for i, hands in enumerate(masks):
        cells = np.flatnonzero(hands)
        if len(cells) < COVER_POINTS or not np.isfinite(box[i]).all():
            continue
        outside[i] = distance_transform_edt(~hands) / M
        chosen = cells[np.linspace(0, len(cells) - 1, COVER_POINTS).round().astype(np.int64)]
        rows, cols = np.divmod(chosen, M)
        cover[i] = box[i, :2] + (np.stack([cols, rows], -1) + 0.5) / M * box[i, 2]
        weight[i] = 1.0
    crop = np.nan_to_num(box[:, :3], nan=0.0)
    crop[:, 2] = np.where(crop[:, 2] > 0, crop[:, 2], 1.0)
    return {"outside": outside, "cover_px": cover, "cover_weight": weight, "crop": crop}


def output_arrays(result: RefineResult, frames: np.ndarray, num_frames: int, refiner: Refiner
                  ) -> dict[str, np.ndarray]:
    """The ``refined_*`` arrays for all N frames in the result file's convention: right wrist at the origin, NaN
    (False) where nothing was refined."""
    b = result.betas[0]
    valid = torch.isfinite(result.keypoints[0]).all(-1).all(-1)                   # [T, 2]
    right = torch.nan_to_num(result.roots[0, :, 0])                               # [T, 3] camera frame
    transl = result.transl[0] - right[:, None]
    with torch.no_grad():
        verts = refiner.hand_model(torch.nan_to_num(b), torch.nan_to_num(result.global_orient[0]),
                                   torch.nan_to_num(result.hand_pose[0]), torch.nan_to_num(transl)).vertices
    verts = torch.where(valid[..., None, None], verts, torch.nan)
    host = {"betas": b, "global_orient": result.global_orient[0], "hand_pose": result.hand_pose[0],
            "transl": transl, "keypoints": result.keypoints[0] - right[:, None, None], "vertices": verts,
            "keypoints2d": result.keypoints2d[0]}
    host = {k: v.detach().float().cpu().numpy() for k, v in host.items()}
    both = valid.all(-1).cpu().numpy()
    inside = np.zeros(verts.shape[:-1], bool)
    depth = np.zeros(verts.shape[:-1], np.float32)
    if both.any():
        pen = detect_interpenetration(host["vertices"][both], refiner.meshes, depth="surface", backend="numpy")
        inside[both], depth[both] = pen.inside, pen.depth
    host["inside"], host["depth"] = inside, depth
    # A hand-frame that was not refined (no frame in the fit, or no hand in it) reads as such in every array:
    # NaN, False and the ABSENT gate, never a value that looks refined.
    refined = np.zeros((num_frames, 2), bool)
    refined[frames] = valid.cpu().numpy()
    out = {}
    for name, value in host.items():
        full = np.zeros((num_frames, *value.shape[1:]), value.dtype)
        full[frames] = value
        if value.dtype.kind == "f":
            full[~refined] = np.nan
        out[f"refined_{name}"] = full
    gate = np.zeros((num_frames, 2), np.int8)
    gate[frames] = result.gate[0]
    gate[~refined] = ABSENT
    out["refined_gate"] = gate
    return out


def network_camera(arrays: dict[str, np.ndarray], frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The network's weak perspective of ``frames`` in frame pixels: per hand the scale a [F, 2] (pixels per
    metre) and the wrist's pixel b [F, 2, 2], ``pixels = a * wrist_relative_xy + b``. From the stored camera
    (crop coordinates, ``uv = s * xy + t``, the crop spanning [-1, 1] over ``bbox``) where the file has it, else
    fitted to the keypoints and their projection."""
    camera = arrays.get("camera")
    if camera is None or not np.isfinite(np.asarray(camera)[frames]).all():
        kp = np.asarray(arrays["keypoints"], np.float64)[frames]
        return fit_weak_perspective(kp - kp[..., :1, :], np.asarray(arrays["keypoints2d"], np.float64)[frames])
    camera = np.asarray(camera, np.float64)[frames]
    box = np.asarray(arrays["bbox"], np.float64)[frames][:, None]             # [F, 1, 4] (x, y, side, side)
    half = box[..., 2] / 2
    return camera[..., 0] * half, box[..., :2] + (camera[..., 1:] + 1) * half[..., None]


def refine_result_arrays(arrays: dict[str, np.ndarray], refiner: Refiner, *, K: np.ndarray | None = None,
                         image_size: tuple[int, int] | None = None, device: torch.device | str = "cpu"
                         ) -> tuple[dict[str, np.ndarray], RefineResult]:
    """Refine a result file's arrays (``Reconstruction.arrays()`` or the pipeline's dict) as one sequence.

    K: the camera's intrinsics when known, else ``image_size`` (width, height) gives an assumed one
    (``camera.default_intrinsics``). Returns the ``refined_*`` arrays (:data:`REFITTED_ARRAYS` and
    ``refined_gate``) and the raw result (timings, per-term losses, gating reasons).
    """
    steps = refine_result_arrays_steps(arrays, refiner, K=K, image_size=image_size, device=device)
    while True:
        try:
            next(steps)
        except StopIteration as finished:
            return finished.value


def refine_result_arrays_steps(arrays: dict[str, np.ndarray], refiner: Refiner, *, K: np.ndarray | None = None,
                               image_size: tuple[int, int] | None = None, device: torch.device | str = "cpu"
                               ) -> Generator[tuple[int, int], None, tuple[dict[str, np.ndarray], RefineResult]]:
    """:func:`refine_result_arrays` one piece at a time: yields the fit's progress (``Refiner.refine_steps``),
    returns what it returns."""
    if K is None:
        if image_size is None:
            raise ValueError("K, image_size: give the intrinsics or the frame size (width, height)")
        K = default_intrinsics(*image_size)
    data, frames = input_from_arrays(arrays, K)
    result = yield from refiner.refine_steps(data.to(device))
    return output_arrays(result, frames, len(arrays["valid"]), refiner), result
