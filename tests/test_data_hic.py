"""HIC loader on a small fixture written here in the assumed real format (HIC.json + PLY meshes)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from core_model.data.camera import project
from core_model.data.hic import HICWindows, hic_intrinsics, load_hic_sequences, mesh_keypoints
from core_model.data.windows import Window

FRAMES = {"01": [3, 1, 2, 0, 4], "09": [0, 1]}  # 09 is not an interacting sequence; files listed out of order


def _hands(openhand, frame: int) -> np.ndarray:
    rng = np.random.default_rng(frame)
    with torch.no_grad():
        out = openhand(torch.zeros(2, 10), torch.from_numpy(rng.normal(0, 0.3, (2, 3))).float(),
                       torch.from_numpy(rng.normal(0, 0.1, (2, 45))).float(),
                       torch.tensor([[-0.04, 0.0, 0.55], [0.05, 0.01, 0.56]]))
    return out.vertices.numpy().astype(np.float64)


def write_hic_fixture(root, openhand, vertex_count: int | None = None) -> None:
    images, annotations = [], []
    for seq, frames in FRAMES.items():
        for frame in frames:
            image_id = len(images)
            file_name = f"{seq}/rgb/{frame:04d}.png"
            (root / file_name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((480, 640, 3), 120, np.uint8)).save(root / file_name)
            meshes = _hands(openhand, frame + 10 * int(seq))
            paths = []
            for h, side in enumerate(("right", "left")):
                if seq == "01" and frame == 2 and side == "left":
                    paths.append(None)  # a hand without a fit
                    continue
                faces = openhand.sides[h].data.faces
                verts = meshes[h]
                if vertex_count is not None:
                    verts, faces = verts[:vertex_count], faces[(faces < vertex_count).all(1)]
                path = f"{seq}/mano/{frame:04d}_{side}.ply"
                (root / path).parent.mkdir(parents=True, exist_ok=True)
                trimesh.Trimesh(verts, faces, process=False).export(root / path)
                paths.append(path)
            images.append({"id": image_id, "file_name": file_name, "width": 640, "height": 480})
            annotations.append({"id": image_id, "image_id": image_id, "hand_type": "interacting",
                                "right_mano_path": paths[0], "left_mano_path": paths[1]})
    (root / "HIC.json").write_text(json.dumps({"images": images, "annotations": annotations}))


@pytest.fixture(scope="module")
def hic_root(tmp_path_factory, openhand):
    root = tmp_path_factory.mktemp("hic")
    write_hic_fixture(root, openhand)
    return root


def test_interacting_sequences_in_frame_order_with_keypoints_from_meshes(hic_root, openhand):
    seqs = load_hic_sequences(hic_root, openhand)
    assert [s.name for s in seqs] == ["HIC/01"]
    seq = seqs[0]
    assert [p.name for p in seq.image_paths] == [f"{f:04d}.png" for f in range(5)]
    np.testing.assert_allclose(seq.K[0], hic_intrinsics())
    assert seq.hand_valid.tolist()[2] == [True, False] and seq.joint_valid[2, 1].sum() == 0
    meshes = _hands(openhand, 10)
    np.testing.assert_allclose(seq.keypoints3d[0, 0], mesh_keypoints(meshes[0], openhand.right), atol=1e-6)
    # Fingertips are mesh vertices; the regressed joints stay within a few mm of the model's own.
    with torch.no_grad():
        rng = np.random.default_rng(10)
        model_kp = openhand(torch.zeros(2, 10), torch.from_numpy(rng.normal(0, 0.3, (2, 3))).float(),
                            torch.from_numpy(rng.normal(0, 0.1, (2, 45))).float(),
                            torch.tensor([[-0.04, 0.0, 0.55], [0.05, 0.01, 0.56]])).keypoints.numpy()
    assert np.abs(seq.keypoints3d[0] - model_kp).max() < 0.01
    uv = project(seq.keypoints3d, seq.K[:, None, None])
    inside = (uv >= seq.boxes[..., None, :2]) & (uv <= seq.boxes[..., None, 2:])
    assert inside.all(-1)[seq.joint_valid].all()
    w = Window.from_dict(HICWindows(hic_root, openhand, window=4, stride=1, crop_size=48)[0])
    assert w.vertices_valid[0].all() and w.images.shape == (4, 3, 48, 48)
    np.testing.assert_allclose(w.vertices[0, 0].numpy(), meshes[0], atol=1e-5)


def test_meshes_of_another_model_give_boxes_but_no_keypoints(tmp_path, openhand):
    write_hic_fixture(tmp_path, openhand, vertex_count=778)  # MANO's count: not the model in use
    seq = load_hic_sequences(tmp_path, openhand, sequences=None)
    assert len(seq) == 2 and not any(s.joint_valid.any() for s in seq)
    assert np.isfinite(seq[0].boxes[0]).all() and seq[0].hand_valid[0].all()
    w = Window.from_dict(HICWindows(tmp_path, openhand, window=2, crop_size=32)[0])
    assert not w.joint_valid.any() and not w.vertices_valid.any() and w.images.shape == (2, 3, 32, 32)


def test_missing_index_is_named(tmp_path, openhand):
    with pytest.raises(FileNotFoundError, match=r"HIC\.json"):
        load_hic_sequences(tmp_path, openhand)
