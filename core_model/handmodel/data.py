"""The arrays of one hand side in MANO's data layout, validated, stored as plain ``.npz``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from core_model.fileio import atomic_path
from core_model.handmodel.keypoints import MANO_PARENTS

NUM_JOINTS = 16
NUM_POSE_FEATURES = (NUM_JOINTS - 1) * 9

ARRAY_FIELDS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "faces",
                "closed_faces", "hands_components", "hands_mean", "fingertip_ids")


class HandModelFileError(ValueError):
    """A hand-model file is missing, malformed, or holds arrays of the wrong shape."""


@dataclasses.dataclass(frozen=True)
class HandModelData:
    """One side of a hand model. Shapes (V vertices, F faces):

    v_template [V, 3] metres; shapedirs [V, 3, S]; posedirs [V, 3, 135]; J_regressor [16, V];
    weights [V, 16]; kintree_table [2, 16]; faces [F, 3] (the surface as the model defines it);
    closed_faces [F', 3] (watertight: the wrist opening capped); hands_components [45, 45] (pose PCA basis, rows);
    hands_mean [45] (MANO's mean pose; zero for OpenHand); fingertip_ids [5] (thumb, index, middle, ring, pinky).
    """

    side: str
    v_template: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    weights: np.ndarray
    kintree_table: np.ndarray
    faces: np.ndarray
    closed_faces: np.ndarray
    hands_components: np.ndarray
    hands_mean: np.ndarray
    fingertip_ids: np.ndarray
    meta: dict[str, Any]

    def __post_init__(self) -> None:
        if self.side not in ("right", "left"):
            raise HandModelFileError(f"side: expected 'right' or 'left', got {self.side!r}")
        self.validate()

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def name(self) -> str:
        return str(self.meta.get("name", "unnamed"))

    @staticmethod
    def mano_kintree() -> np.ndarray:
        parents = np.array(MANO_PARENTS, dtype=np.int64)
        parents[0] = 4294967295  # MANO stores the root's parent as uint32 -1
        return np.stack([parents, np.arange(NUM_JOINTS)])

    def validate(self) -> None:
        """Check every array against MANO's layout; the error names the key."""
        v = self.v_template.shape[0] if self.v_template.ndim == 2 else -1
        expected = {
            "v_template": (v, 3),
            "shapedirs": (v, 3, None),
            "posedirs": (v, 3, NUM_POSE_FEATURES),
            "J_regressor": (NUM_JOINTS, v),
            "weights": (v, NUM_JOINTS),
            "kintree_table": (2, NUM_JOINTS),
            "faces": (None, 3),
            "closed_faces": (None, 3),
            "hands_components": (45, 45),
            "hands_mean": (45,),
            "fingertip_ids": (5,),
        }
        for key, shape in expected.items():
            array = getattr(self, key)
            if not isinstance(array, np.ndarray):
                raise HandModelFileError(f"{key}: expected a numpy array, got {type(array).__name__}")
            if array.ndim != len(shape) or any(e is not None and e != a for e, a in zip(shape, array.shape)):
                pretty = tuple("N" if e is None else e for e in shape)
                raise HandModelFileError(f"{key}: expected shape {pretty}, got {array.shape}")
            if not np.all(np.isfinite(array)):
                raise HandModelFileError(f"{key}: contains NaN or infinite values")
        if self.shapedirs.shape[2] < 10:
            raise HandModelFileError(f"shapedirs: expected at least 10 shape components, got {self.shapedirs.shape}")
        for key in ("faces", "closed_faces", "fingertip_ids"):
            array = getattr(self, key)
            if array.size and (array.min() < 0 or array.max() >= v):
                raise HandModelFileError(f"{key}: vertex indices outside [0, {v})")
        parents = self.kintree_table[0].astype(np.int64) % 4294967296
        if tuple(int(p) for p in parents[1:]) != MANO_PARENTS[1:]:
            raise HandModelFileError(f"kintree_table: expected MANO's tree {MANO_PARENTS}, got {parents.tolist()}")
        if not np.allclose(self.weights.sum(1), 1.0, atol=1e-3):
            raise HandModelFileError("weights: skinning weights of every vertex must sum to 1")

    def save(self, path: str | Path) -> None:
        arrays = {key: getattr(self, key) for key in ARRAY_FIELDS}
        with atomic_path(path) as tmp:
            np.savez_compressed(tmp, side=np.array(self.side), meta=np.array(json.dumps(self.meta)), **arrays)

    @classmethod
    def load(cls, path: str | Path) -> HandModelData:
        path = Path(path)
        if not path.is_file():
            raise HandModelFileError(f"hand model file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as npz:
                missing = [k for k in (*ARRAY_FIELDS, "side", "meta") if k not in npz.files]
                if missing:
                    raise HandModelFileError(f"{path}: missing keys {missing}")
                arrays = {key: npz[key] for key in ARRAY_FIELDS}
                side, meta = str(npz["side"]), json.loads(str(npz["meta"]))
        except (OSError, ValueError) as exc:
            if isinstance(exc, HandModelFileError):
                raise
            raise HandModelFileError(f"{path}: not a readable hand model file ({exc})") from exc
        return cls(side=side, meta=meta, **arrays)


def mirror_to_left(right: HandModelData) -> HandModelData:
    """The left hand as the exact mirror image of the right through the x = 0 plane.

    Positions and displacement fields get x negated and faces their winding flipped. Pose correctives see the
    mirrored rotation M R M (M = diag(-1, 1, 1)), whose (i, j) element is m_i m_j R_ij, so each posedirs column
    is multiplied by that sign and by the sign of the displaced coordinate. In axis-angle the mirror of a
    rotation (x, y, z) is (x, -y, -z), which is how a right-hand pose is used on the left.
    """
    m = np.array([-1.0, 1.0, 1.0], dtype=np.float32)
    element_sign = np.tile((m[:, None] * m[None, :]).ravel(), NUM_JOINTS - 1)
    aa_sign = np.tile(np.array([1.0, -1.0, -1.0], np.float32), 15)
    return dataclasses.replace(
        right,
        side="left",
        v_template=right.v_template * m,
        shapedirs=right.shapedirs * m[None, :, None],
        posedirs=right.posedirs * m[None, :, None] * element_sign[None, None, :],
        faces=right.faces[:, ::-1].copy(),
        closed_faces=right.closed_faces[:, ::-1].copy(),
        hands_components=right.hands_components * aa_sign[None, :],
        hands_mean=right.hands_mean * aa_sign,
    )
