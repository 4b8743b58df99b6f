"""HIC (Tzionas et al., "Capturing Hands in Action") interacting sequences as T-frame windows.

Format assumed: the COCO-style ``HIC.json`` distributed with the MANO fits of HIC (the version the InterHand2.6M
authors' code reads; the original release only has depth/RGB and 2D annotations): ``images`` with ``id``,
``file_name``, ``width``, ``height`` and ``annotations`` with ``image_id``, ``hand_type`` ('right', 'left' or
'interacting') and ``right_mano_path`` / ``left_mano_path`` (PLY meshes of the MANO fit, metres, camera frame,
or null). The camera is fixed: f = 525, c = (319.5, 239.5), 640 x 480. The sequence of an image is its
``seq_name`` key if present, else the first folder of ``file_name``; the frame order is ``frame_idx`` if present,
else the number in the file name. By default the interacting frames of sequences 01-07 are used, as in the paper.

Keypoints are regressed from the meshes with the hand model in use when the meshes have its vertex count (MANO's
778 for real HIC, so MANO must be imported); otherwise the frames keep their boxes (projected meshes) for the crop
but have no valid keypoints or vertices.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import trimesh

from core_model.data.camera import project
from core_model.data.windows import Augmentation, SequenceAnnotations, WindowDataset
from core_model.handmodel.keypoints import MANO21_TO_OURS

log = logging.getLogger(__name__)

HIC_FOCAL = 525.0
HIC_PRINCIPAL_POINT = (319.5, 239.5)
HIC_IMAGE_SIZE = (640, 480)
INTERACTING_SEQUENCES = ("01", "02", "03", "04", "05", "06", "07")


def hic_intrinsics() -> np.ndarray:
    return np.array([[HIC_FOCAL, 0, HIC_PRINCIPAL_POINT[0]], [0, HIC_FOCAL, HIC_PRINCIPAL_POINT[1]], [0, 0, 1]])


def read_ply_vertices(path: Path) -> np.ndarray:
    """[V, 3] vertex positions of a PLY mesh (ASCII or binary), in the file's units."""
    geometry = trimesh.load(path, process=False)  # a Trimesh, or a PointCloud when the file has no faces
    if not hasattr(geometry, "vertices"):
        raise ValueError(f"mesh file {path}: no vertices found")
    return np.asarray(geometry.vertices, dtype=np.float64)


def _sequence_of(image: dict) -> str:
    if "seq_name" in image:
        return str(image["seq_name"])
    parts = Path(image["file_name"]).parts
    return parts[0] if len(parts) > 1 else ""


def _frame_of(image: dict) -> int:
    if "frame_idx" in image:
        return int(image["frame_idx"])
    numbers = re.findall(r"\d+", Path(image["file_name"]).stem)
    return int(numbers[-1]) if numbers else int(image["id"])


def mesh_keypoints(vertices: np.ndarray, layer) -> np.ndarray:
    """Our 21 keypoints [..., 21, 3] of meshes [..., V, 3] of ``layer``'s topology: its joint regressor applied to
    the mesh (MANO's 16 joints) plus its fingertip vertices."""
    regressor = layer.J_regressor.double().numpy()
    joints = np.einsum("jv,...vc->...jc", regressor, vertices)
    tips = vertices[..., layer.fingertip_ids.numpy(), :]
    return np.concatenate([joints, tips], axis=-2)[..., list(MANO21_TO_OURS), :]


def load_hic_sequences(root: str | Path, hand_model, sequences: tuple[str, ...] | None = INTERACTING_SEQUENCES,
                       hand_types: tuple[str, ...] = ("interacting",)) -> list[SequenceAnnotations]:
    """HIC sequences at ``root`` (holding ``HIC.json`` and the files it names); ``sequences`` None keeps all."""
    root = Path(root)
    index_path = root / "HIC.json"
    if not index_path.is_file():
        raise FileNotFoundError(f"root: no HIC.json in {root}")
    data = json.loads(index_path.read_text())
    images = {im["id"]: im for im in data["images"]}
    groups: dict[str, list[tuple[int, dict, dict]]] = defaultdict(list)
    for ann in data["annotations"]:
        image = images.get(ann["image_id"])
        if image is None or ann.get("hand_type") not in hand_types:
            continue
        seq = _sequence_of(image)
        if sequences is not None and seq not in sequences:
            continue
        groups[seq].append((_frame_of(image), image, ann))
    K = hic_intrinsics()
    out = []
    for seq, items in sorted(groups.items()):
        items.sort(key=lambda it: it[0])
        out.append(_build(root, f"HIC/{seq}", items, K, hand_model))
    if not out:
        log.warning("HIC at %s: no frames of sequences %s with hand types %s", root, sequences, hand_types)
    return out


def _build(root: Path, name: str, items, K: np.ndarray, hand_model) -> SequenceAnnotations:
    n = len(items)
    V = hand_model.num_vertices
    paths: list[list[Path | None]] = []
    for _, _, ann in items:
        paths.append([root / ann[k] if ann.get(k) else None for k in ("right_mano_path", "left_mano_path")])
    meshes = [[read_ply_vertices(p) if p is not None else None for p in pair] for pair in paths]
    present = np.array([[m is not None for m in pair] for pair in meshes])
    matches = np.array([[m is not None and m.shape[0] == V for m in pair] for pair in meshes])
    if present.any() and not matches[present].all():
        counts = sorted({m.shape[0] for pair in meshes for m in pair if m is not None})
        log.warning("%s: meshes have %s vertices, the hand model %s has %d: no 3D keypoints (import MANO to use "
                    "HIC's ground truth)", name, counts, hand_model.name, V)
    keypoints3d = np.zeros((n, 2, 21, 3))
    vertices = np.zeros((n, 2, V, 3), np.float32)
    boxes = np.full((n, 2, 4), np.nan)
    for t, pair in enumerate(meshes):
        for h, mesh in enumerate(pair):
            if mesh is None:
                continue
            uv = project(mesh, K)
            boxes[t, h] = (*uv.min(0), *uv.max(0))
            if matches[t, h]:
                keypoints3d[t, h] = mesh_keypoints(mesh, hand_model.sides[h])
                vertices[t, h] = mesh
    width, height = (int(items[0][1].get("width", HIC_IMAGE_SIZE[0])), int(items[0][1].get("height",
                                                                                              HIC_IMAGE_SIZE[1])))
    return SequenceAnnotations(
        name=name, image_paths=[root / image["file_name"] for _, image, _ in items],
        K=np.broadcast_to(K, (n, 3, 3)).copy(), image_size=(width, height), keypoints3d=keypoints3d,
        joint_valid=np.repeat(matches[:, :, None], 21, axis=2), hand_valid=present, labelled=present.any(1),
        boxes=boxes, params=None, params_valid=None, vertices=lambda idx: vertices[idx],
        vertices_valid=matches)


class HICWindows(WindowDataset):
    """T-frame windows of HIC at ``root``; see :func:`load_hic_sequences` and :class:`WindowDataset`."""

    def __init__(self, root: str | Path, hand_model, window: int = 10, stride: int | None = None,
                 crop_size: int = 256, augmentation: Augmentation | None = None, margin: float = 1.3,
                 sequences: tuple[str, ...] | None = INTERACTING_SEQUENCES) -> None:
        super().__init__(load_hic_sequences(root, hand_model, sequences), hand_model, window=window, stride=stride,
                         crop_size=crop_size, augmentation=augmentation, margin=margin)
