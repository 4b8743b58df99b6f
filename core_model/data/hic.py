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

import logging
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import trimesh

from core_model.data.annotation_file import AnnotationError, Field, read_json
from core_model.data.camera import project
from core_model.data.windows import Augmentation, SequenceAnnotations, WindowDataset
from core_model.handmodel.keypoints import MANO21_TO_OURS

log = logging.getLogger(__name__)

HIC_FOCAL = 525.0
HIC_PRINCIPAL_POINT = (319.5, 239.5)
HIC_IMAGE_SIZE = (640, 480)
INTERACTING_SEQUENCES = ("01", "02", "03", "04", "05", "06", "07")
MAX_MESH_BYTES = 64 << 20  # a MANO fit is ~50 kB as PLY; anything this big is not one (and is not read)


def hic_intrinsics() -> np.ndarray:
    return np.array([[HIC_FOCAL, 0, HIC_PRINCIPAL_POINT[0]], [0, HIC_FOCAL, HIC_PRINCIPAL_POINT[1]], [0, 0, 1]])


def read_ply_vertices(path: Path) -> np.ndarray:
    """[V, 3] vertex positions of a PLY mesh (ASCII or binary), in the file's units; AnnotationError naming the file
    when it is not a readable mesh with finite vertices."""
    if not path.is_file():
        raise FileNotFoundError(f"mesh file: no such file {path}")
    if path.stat().st_size > MAX_MESH_BYTES:
        raise AnnotationError(f"mesh file {path}: {path.stat().st_size} bytes, more than a hand mesh holds "
                              f"({MAX_MESH_BYTES})")
    try:
        geometry = trimesh.load(path, file_type="ply", process=False)  # a Trimesh, or a PointCloud without faces
    except Exception as exc:  # trimesh's parsers raise many types; name the file and the reason
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AnnotationError(f"mesh file {path}: not a readable PLY mesh ({reason})") from None
    vertices = getattr(geometry, "vertices", None)
    if vertices is None:
        raise AnnotationError(f"mesh file {path}: no vertices found")
    vertices = np.asarray(vertices, dtype=np.float64)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or not len(vertices) or not np.isfinite(vertices).all():
        raise AnnotationError(f"mesh file {path}: expected finite [V, 3] vertices, got {vertices.shape}")
    return vertices


def _mesh_path(root: Path, field: Field) -> Path:
    """The mesh file an annotation names (relative to ``root``); AnnotationError naming the index when it is none."""
    name = field.str()
    path = root / name
    if not name.strip() or not path.is_file():
        raise field.error(f"names the mesh {name!r}, which is not a file under {root}")
    return path


def _sequence_of(image: Field) -> str:
    if image.has("seq_name"):
        return str(image["seq_name"].value)
    parts = Path(image["file_name"].str()).parts
    return parts[0] if len(parts) > 1 else ""


def _frame_of(image: Field) -> int:
    if image.has("frame_idx"):
        return image["frame_idx"].int()
    numbers = re.findall(r"\d+", Path(image["file_name"].str()).stem)
    return int(numbers[-1]) if numbers else image["id"].int()


def mesh_keypoints(vertices: np.ndarray, layer) -> np.ndarray:
    """Our 21 keypoints [..., 21, 3] of meshes [..., V, 3] of ``layer``'s topology: its joint regressor applied to
    the mesh (MANO's 16 joints) plus its fingertip vertices."""
    regressor = layer.J_regressor.double().numpy()
    joints = np.einsum("jv,...vc->...jc", regressor, vertices)
    tips = vertices[..., layer.fingertip_ids.numpy(), :]
    return np.concatenate([joints, tips], axis=-2)[..., list(MANO21_TO_OURS), :]


def load_hic_sequences(root: str | Path, hand_model, sequences: tuple[str, ...] | None = INTERACTING_SEQUENCES,
                       hand_types: tuple[str, ...] = ("interacting",)) -> list[SequenceAnnotations]:
    """HIC sequences at ``root`` (holding ``HIC.json`` and the files it names); ``sequences`` None keeps all. A
    file that does not hold what the format says is an
    :class:`~core_model.data.annotation_file.AnnotationError` naming the file, the place and what is wrong; an
    index without any frame of ``sequences`` and ``hand_types`` is one too."""
    root = Path(root)
    index_path = root / "HIC.json"
    if not index_path.is_file():
        raise FileNotFoundError(f"root: no HIC.json in {root}")
    data = read_json(index_path)
    images = {im["id"].int(): im for im in data["images"].list()}
    groups: dict[str, list[tuple[int, Field, Field]]] = defaultdict(list)
    for ann in data["annotations"].list():
        image = images.get(ann["image_id"].int())
        hand_type = ann.get("hand_type")
        if image is None or hand_type is None or hand_type.str() not in hand_types:
            continue
        seq = _sequence_of(image)
        if sequences is not None and seq not in sequences:
            continue
        groups[seq].append((_frame_of(image), image, ann))
    if not groups:
        raise data.error(f"no frame of sequences {list(sequences) if sequences is not None else 'any'} with hand "
                         f"types {list(hand_types)} among its {len(images)} images")
    K = hic_intrinsics()
    out = []
    for seq, items in sorted(groups.items()):
        items.sort(key=lambda it: it[0])
        out.append(_build(root, f"HIC/{seq}", items, K, hand_model))
    return out


def _build(root: Path, name: str, items, K: np.ndarray, hand_model) -> SequenceAnnotations:
    n = len(items)
    V = hand_model.num_vertices
    paths: list[list[Path | None]] = []
    for _, _, ann in items:
        pair = [ann.get(k) for k in ("right_mano_path", "left_mano_path")]
        paths.append([_mesh_path(root, p) if p is not None else None for p in pair])
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
    first = items[0][1]
    width, height = first.get("width"), first.get("height")
    return SequenceAnnotations(
        name=name, image_paths=[root / image["file_name"].str() for _, image, _ in items],
        K=np.broadcast_to(K, (n, 3, 3)).copy(),
        image_size=(width.int() if width is not None else HIC_IMAGE_SIZE[0],
                    height.int() if height is not None else HIC_IMAGE_SIZE[1]),
        keypoints3d=keypoints3d, joint_valid=np.repeat(matches[:, :, None], 21, axis=2), hand_valid=present,
        labelled=present.any(1), boxes=boxes, params=None, params_valid=None, vertices=lambda idx: vertices[idx],
        vertices_valid=matches)


class HICWindows(WindowDataset):
    """T-frame windows of HIC at ``root``; see :func:`load_hic_sequences` and :class:`WindowDataset`."""

    def __init__(self, root: str | Path, hand_model, window: int = 10, stride: int | None = None,
                 crop_size: int = 256, augmentation: Augmentation | None = None, margin: float = 1.3,
                 sequences: tuple[str, ...] | None = INTERACTING_SEQUENCES) -> None:
        super().__init__(load_hic_sequences(root, hand_model, sequences), hand_model, window=window, stride=stride,
                         crop_size=crop_size, augmentation=augmentation, margin=margin)
