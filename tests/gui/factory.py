"""Result files and clips for tests, made the way the issue allows: synthetic hand poses through the hand model
(a known set of frames with the hands interpenetrating, the rest apart), penetration from core_model's detector,
projections through a pinhole camera, and a small clip written by OpenCV."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import roma
import torch

from core_model.geometry.interpenetration import HandMeshes, detect_interpenetration
from core_model.handmodel.poses import NAMED_POSES, pose_of
from core_model.results import Reconstruction, ResultMeta

WIDTH, HEIGHT, FOCAL, DEPTH = 320, 240, 300.0, 0.9
T, BLOCKS, HEADS = 4, 2, 2


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def make_result(model, n: int = 12, touching: range = range(4, 8), gt: bool = True, seed: int = 0,
                source: str = "", noise: float = 0.0, refined_gap: float | None = None,
                unrefined: tuple[int, ...] = ()) -> Reconstruction:
    """Both hands open, palms to the camera, 0.25 m apart except on ``touching`` frames where they overlap
    (0.07 m apart); ``noise`` metres of per-joint jitter on the keypoints (a jittery "method").

    refined_gap: also the test-time refinement's arrays (``result.refined``): the network's hands, except that on
    ``touching`` frames the left one is moved (along +x) to ``refined_gap`` metres from the right one (0.25: as on
    the other frames, apart), penetration detected anew; the frames in ``unrefined`` were not refined (NaN, False,
    the ABSENT gate)."""
    rng = np.random.default_rng(seed)
    pose = torch.stack([pose_of(layer, NAMED_POSES["open"]) for layer in model.sides])
    right = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    left = torch.tensor([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    orient = roma.rotmat_to_rotvec(torch.stack([right, left]))
    touched = np.array([t in touching for t in range(n)])
    gaps = np.where(touched, 0.07, 0.25)
    transl = np.zeros((n, 2, 3), np.float32)
    transl[:, 0, 0], transl[:, 1, 0] = -gaps / 2, gaps / 2
    transl[:, :, 2] = DEPTH
    with torch.no_grad():
        out = model(torch.zeros(n, 2, 10), orient.expand(n, 2, 3), pose.expand(n, 2, 45), torch.from_numpy(transl))
    vertices, keypoints = out.vertices.numpy(), out.keypoints.numpy()
    clean_keypoints, clean_vertices = keypoints.copy(), vertices.copy()
    keypoints = keypoints + rng.normal(0, noise, keypoints.shape).astype(np.float32)
    pen = detect_interpenetration(vertices, HandMeshes.from_model(model))
    uv = keypoints[..., :2] / keypoints[..., 2:] * FOCAL + np.array([WIDTH / 2, HEIGHT / 2], np.float32)
    lo, hi = uv.reshape(n, -1, 2).min(1), uv.reshape(n, -1, 2).max(1)
    side = (hi - lo).max(1) * 1.2
    centre = (lo + hi) / 2
    bbox = np.concatenate([centre - side[:, None] / 2, side[:, None], side[:, None]], 1).astype(np.float32)
    h = 7
    grid = np.stack(np.meshgrid(np.arange(h), np.arange(h), indexing="xy"), -1)
    chirality = np.zeros((n, 2, h, h), np.float32)
    for t in range(n):
        for hand in range(2):
            c = (uv[t, hand].mean(0) - bbox[t, :2]) / bbox[t, 2] * h
            chirality[t, hand] = np.exp(-((grid - c) ** 2).sum(-1) / 4.0)
    starts = list(range(0, n - T + 1, T // 2))
    windows = np.array([[s, s + T] for s in starts], np.int64)
    mhsa = _softmax(rng.normal(0, 1.5, (len(starts), BLOCKS, HEADS, 2 * T, 2 * T))).astype(np.float32)
    mhca = _softmax(rng.normal(0, 1.5, (len(starts), BLOCKS, 2, HEADS, T, T))).astype(np.float32)
    meta = ResultMeta(source_path=source, source_sha256="", fps=10.0, frame_count=n, model_preset="test",
                      checkpoint_sha256="", hand_model=model.name)
    zeros = np.zeros((n, 2), np.float32)
    return Reconstruction(
        meta=meta, betas=np.zeros((n, 2, 10), np.float32), global_orient=np.broadcast_to(
            orient.numpy(), (n, 2, 3)).copy(), hand_pose=np.broadcast_to(pose.numpy(), (n, 2, 45)).copy(),
        transl=transl, keypoints=keypoints, vertices=vertices, inside=np.asarray(pen.inside),
        depth=np.asarray(pen.depth, np.float32), bbox=bbox, keypoints2d=uv.astype(np.float32),
        det_keypoints2d=uv.astype(np.float32), det_score=zeros + 0.9, valid=np.ones((n, 2), bool),
        chirality_maps=chirality, window_frames=windows, mhsa_attention=mhsa, mhca_attention=mhca,
        gt={"keypoints": clean_keypoints, "vertices": clean_vertices} if gt else {},
        refined=_refined(model, vertices, keypoints, transl, orient, pose, (refined_gap - gaps) * touched, unrefined)
        if refined_gap is not None else {})


def _refined(model, vertices: np.ndarray, keypoints: np.ndarray, transl: np.ndarray, orient: torch.Tensor,
             pose: torch.Tensor, shift: np.ndarray, unrefined: tuple[int, ...]) -> dict[str, np.ndarray]:
    """The refinement's arrays: the left hand moved ``shift`` [N] metres along +x."""
    from core_model.refine.gating import ABSENT

    n = len(transl)
    move = np.zeros((n, 2, 3), np.float32)
    move[:, 1, 0] = shift
    vertices = vertices + move[:, :, None]
    keypoints = keypoints + move[:, :, None]
    pen = detect_interpenetration(vertices, HandMeshes.from_model(model))
    refined = {
        "betas": np.zeros((n, 2, 10), np.float32), "global_orient": np.broadcast_to(orient.numpy(), (n, 2, 3)).copy(),
        "hand_pose": np.broadcast_to(pose.numpy(), (n, 2, 45)).copy(), "transl": transl + move,
        "keypoints": keypoints, "vertices": vertices, "inside": np.asarray(pen.inside).copy(),
        "depth": np.asarray(pen.depth, np.float32).copy(),
        "keypoints2d": (keypoints[..., :2] / keypoints[..., 2:] * FOCAL
                        + np.array([WIDTH / 2, HEIGHT / 2], np.float32)).astype(np.float32),
        "gate": np.zeros((n, 2), np.int8)}
    skip = list(unrefined)
    for value in refined.values():
        if value.dtype.kind == "f":
            value[skip] = np.nan
        elif value.dtype == bool:
            value[skip] = False
    refined["gate"][skip] = ABSENT
    return refined


def write_clip(path: Path, n: int = 12, size: tuple[int, int] = (WIDTH, HEIGHT), fps: float = 10.0) -> Path:
    """A clip whose frames differ visibly: a bright bar moves across a grey frame."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(n):
        frame = np.full((size[1], size[0], 3), 70, np.uint8)
        x = 10 + i * (size[0] - 40) // max(n - 1, 1)
        cv2.rectangle(frame, (x, 10), (x + 20, size[1] - 10), (60, 200, 240), -1)
        writer.write(frame)
    writer.release()
    return path
