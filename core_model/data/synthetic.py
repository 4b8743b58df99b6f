"""Loader of the rendered synthetic set (:mod:`core_model.data.synth`) as T-frame windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core_model.data.synth import FORMAT
from core_model.data.windows import Augmentation, SequenceAnnotations, WindowDataset


def load_synthetic_sequences(root: str | Path, hand_model) -> list[SequenceAnnotations]:
    """Every sequence of the synthetic set at ``root``. Parameters and vertices count as valid when the set was
    rendered with ``hand_model`` (same name and vertex count); the 3D and 2D keypoints always are."""
    root = Path(root)
    index_path = root / "dataset.json"
    if not index_path.is_file():
        raise FileNotFoundError(f"root: no dataset.json in {root} (generate the set with `interhand synth`)")
    index = json.loads(index_path.read_text())
    if index.get("format") != FORMAT:
        raise ValueError(f"root: {index_path} is not an {FORMAT} index (format {index.get('format')!r})")
    same_model = index.get("hand_model") == hand_model.name and index.get("num_vertices") == hand_model.num_vertices
    sequences = []
    for name in index["sequence_names"]:
        directory = root / name
        with np.load(directory / "annotations.npz", allow_pickle=False) as npz:
            ann = {k: npz[k] for k in npz.files}
        n = len(ann["keypoints3d"])
        params = {k: ann[k] for k in ("betas", "global_orient", "hand_pose", "transl")}
        vertices_path = directory / "vertices.npy"

        def vertices(idx: np.ndarray, path: Path = vertices_path) -> np.ndarray:
            return np.asarray(np.load(path, mmap_mode="r")[idx])

        width, height = (int(v) for v in ann["image_size"])
        sequences.append(SequenceAnnotations(
            name=name,
            image_paths=[directory / "rgb" / f"{t:06d}.jpg" for t in range(n)],
            K=np.broadcast_to(ann["K"], (n, 3, 3)).copy(),
            image_size=(width, height),
            keypoints3d=ann["keypoints3d"],
            joint_valid=np.ones((n, 2, 21), bool),
            hand_valid=np.ones((n, 2), bool),
            labelled=np.ones(n, bool),
            boxes=ann["boxes"],
            params=params,
            params_valid=np.full((n, 2), same_model),
            vertices=vertices if same_model else None,
            vertices_valid=np.full((n, 2), same_model),
            visible=ann["visibility"].astype(bool) if "visibility" in ann else None,
        ))
    return sequences


class SyntheticWindows(WindowDataset):
    """T-frame windows of the synthetic set at ``root`` (see :class:`WindowDataset` for the arguments)."""

    def __init__(self, root: str | Path, hand_model, window: int = 10, stride: int | None = None,
                 crop_size: int = 256, augmentation: Augmentation | None = None, margin: float = 1.3) -> None:
        super().__init__(load_synthetic_sequences(root, hand_model), hand_model, window=window, stride=stride,
                         crop_size=crop_size, augmentation=augmentation, margin=margin)
