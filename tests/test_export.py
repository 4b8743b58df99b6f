"""Mesh export of a posed pair really round-trips through the files, and files are written atomically."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from core_model.export import export_hand_pair
from core_model.fileio import atomic_path
from core_model.handmodel.poses import NAMED_POSES, pose_of


@pytest.fixture(scope="module")
def posed(openhand):
    pose = torch.stack([pose_of(layer, NAMED_POSES["pinch"]) for layer in openhand.sides])[None]
    transl = torch.tensor([[[0.0, 0.0, 0.5], [0.1, 0.0, 0.5]]])
    with torch.no_grad():
        out = openhand(torch.zeros(1, 2, 10), torch.zeros(1, 2, 3), pose, transl)
    return out.vertices[0].numpy(), [layer.data.closed_faces for layer in openhand.sides]


def _parse_obj(text: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Objects of an OBJ file read by hand (its face indices are global and 1-based, normals after //)."""
    objects: dict[str, tuple[list, list]] = {}
    current, offset, seen = None, 0, 0
    for line in filter(str.strip, text.splitlines()):
        head, *rest = line.split()
        if head == "o":
            current, offset = rest[0], seen
            objects[current] = ([], [])
        elif head == "v":
            objects[current][0].append([float(x) for x in rest[:3]])
            seen += 1
        elif head == "f":
            objects[current][1].append([int(x.split("/")[0]) - 1 - offset for x in rest])
    return {k: (np.array(v), np.array(f)) for k, (v, f) in objects.items()}


def test_obj_keeps_two_named_hands(tmp_path, posed):
    vertices, faces = posed
    objects = _parse_obj(export_hand_pair(vertices, faces, tmp_path / "pair.obj").read_text())
    assert list(objects) == ["right_hand", "left_hand"]
    for hand, (v, f) in enumerate(objects.values()):
        np.testing.assert_allclose(v, vertices[hand], atol=1e-6)
        np.testing.assert_array_equal(f, faces[hand])


def test_glb_keeps_two_named_hands(tmp_path, posed):
    vertices, faces = posed
    path = export_hand_pair(vertices, faces, tmp_path / "pair.glb")
    scene = trimesh.load(path, process=False, force="scene")
    names = sorted(scene.geometry)
    assert names == ["left_hand", "right_hand"]
    for hand, name in enumerate(("right_hand", "left_hand")):
        mesh = scene.geometry[name]
        np.testing.assert_allclose(mesh.vertices, vertices[hand], atol=1e-6)
        np.testing.assert_array_equal(mesh.faces, faces[hand])
        assert mesh.is_watertight


def test_ply_concatenates_right_then_left_with_colours(tmp_path, posed):
    vertices, faces = posed
    inside = np.zeros(vertices.shape[:2], bool)
    inside[1, :10] = True
    mesh = trimesh.load(export_hand_pair(vertices, faces, tmp_path / "pair.ply", inside=inside), process=False)
    np.testing.assert_allclose(mesh.vertices, np.concatenate(vertices), atol=1e-6)
    colours = mesh.visual.vertex_colors
    v = vertices.shape[1]
    assert (colours[v : v + 10, :3] == [214, 39, 40]).all()  # penetrating vertices red
    assert not (colours[:v, :3] == colours[v + 10 :, :3][0]).all()  # the hands differ in colour


def test_bad_input_is_named(tmp_path, posed):
    vertices, faces = posed
    with pytest.raises(ValueError, match="file_format"):
        export_hand_pair(vertices, faces, tmp_path / "pair.stl")
    bad = vertices.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="vertices: contains NaN"):
        export_hand_pair(bad, faces, tmp_path / "pair.obj")
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


def test_atomic_path_leaves_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "result.npz"
    target.write_bytes(b"old")
    with pytest.raises(OSError), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise OSError("No space left on device")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.npz"]
